"""``validation.compare``: the distance between a predicted curve and a simulation.

The theory predicts the *expected* risk, so it is compared with the seeds' mean. By default the
comparison is on the excess risk (R - sigma^2/2, exact on both sides since the simulation evaluates
the population risk from theta), which does not let a large noise floor hide an error. Per point:

* relative error  |mean_sim - theory| / theory;
* in band         |mean_sim - theory| <= z * SEM (the seeds' confidence band, Monte-Carlo error alone);
* agrees          in band, or relative error <= rtol (finite-d and finite-seed tolerance).

Verdict ``ok``: at least ``min_fraction`` of the points agree and the divergence status matches
(a diverged curve compared with finite runs, or the reverse, is never ok).

Near the stability threshold the expected risk is carried by rare runs: measured at d = 500 (power law
alpha = 0.75, B = 4, 0.9 lr*), theory/seed-mean is ~2 with 16 seeds, ~1.3 with 256 and 1.0-1.3 with
4096, while theory/median stays ~2.5-3 (~6 at 0.97 lr*). The seed mean then converges slowly and its SEM
is unreliable; ``Agreement.skew`` (median over points of mean/median of the runs) flags this, and the
message says so when it exceeds 1.5.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Agreement:
    steps: np.ndarray
    theory: np.ndarray
    mean: np.ndarray
    sem: np.ndarray
    rel_error: np.ndarray
    in_band: np.ndarray
    agrees: np.ndarray
    ok: bool
    message: str
    skew: float = 1.0  # median over points of (seed mean / seed median) of the compared quantity

    @property
    def inband_fraction(self) -> float:
        return float(np.mean(self.in_band))

    @property
    def agree_fraction(self) -> float:
        return float(np.mean(self.agrees))

    @property
    def max_rel_error(self) -> float:
        return float(np.max(self.rel_error))

    @property
    def median_rel_error(self) -> float:
        return float(np.median(self.rel_error))

    def summary(self) -> str:
        return (f"{'OK' if self.ok else 'NOT OK'}: {self.steps.size} points, max rel. error "
                f"{self.max_rel_error:.3%}, median {self.median_rel_error:.3%}, in the seeds' band "
                f"{self.inband_fraction:.0%}, agreeing {self.agree_fraction:.0%}. {self.message}")

    def __str__(self):
        return self.summary()


def compare(curve, sim, *, rtol: float = 0.05, z: float = 3.0, min_fraction: float = 0.95,
            quantity: str = "excess", cap: float = 1e8) -> Agreement:
    """Compare a ``RiskCurve`` with a ``SimulatedRisk`` recorded on the same grid.

    Divergence: a seed diverged when its final risk is not finite or exceeds ``cap`` x max(R(0), sigma^2/2)
    (the theory's own criterion); the simulation diverged when most seeds did. When both diverged the
    verdict is ok (the theory predicted the outcome); when only one did it is not. With one seed there is
    no confidence band and only ``rtol`` applies.

    Raises ValueError if the grids differ (a diverged curve may be a prefix of the simulation grid)."""
    if quantity not in ("excess", "risk"):
        raise ValueError("quantity must be 'excess' or 'risk'")
    n = curve.steps.size
    if n > sim.steps.size or not np.array_equal(curve.steps, sim.steps[:n]) or (
            n < sim.steps.size and curve.status != "diverged"):
        raise ValueError("curve and simulation are on different step grids; build both from the same grid "
                         "(hd.step_grid(steps) or an explicit grid=...)")
    shift = 0.5 * sim.sigma2 if quantity == "excess" else 0.0
    theory = curve.risk - (0.5 * curve.sigma2 if quantity == "excess" else 0.0)
    runs = sim.risk[:, :n] - shift
    with np.errstate(invalid="ignore", over="ignore"):
        mean = runs.mean(axis=0)
        sem = sim.sem[:n]
        diff = np.abs(mean - theory)
        rel = np.where(theory > 0, diff / np.where(theory > 0, theory, 1.0), np.where(diff > 0, np.inf, 0.0))
        rel = np.where(np.isfinite(rel), rel, np.inf)
        in_band = np.isfinite(diff) & np.isfinite(sem) & (diff <= z * sem)
    agrees = in_band | (rel <= rtol)
    frac = float(np.mean(agrees))
    ref = max(float(sim.risk[0, 0]), 0.5 * sim.sigma2)
    final = sim.risk[:, -1]
    seeds_div = ~np.isfinite(final) | (final > cap * ref if ref > 0 else np.zeros(final.shape, bool))
    sim_div = bool(np.mean(seeds_div) > 0.5)
    theory_div = curve.status == "diverged"
    msgs = []
    if theory_div or sim_div or np.any(seeds_div):
        msgs.append(f"theory {'diverged at step %d' % curve.diverged_step if theory_div else 'did not diverge'}; "
                    f"{int(np.sum(seeds_div))} of {sim.seeds} seeds diverged")
    if theory_div and sim_div:
        ok = True
    elif theory_div or sim_div or np.any(seeds_div):
        ok = False
    else:
        ok = frac >= min_fraction
    skew = 1.0
    if not np.any(seeds_div):
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            ratio = mean[1:] / np.median(runs[:, 1:], axis=0)
        ratio = ratio[np.isfinite(ratio)]
        skew = float(np.median(ratio)) if ratio.size else 1.0
    if not msgs:
        msgs.append(f"criterion: within {z:g} SEM or {rtol:.0%} at >= {min_fraction:.0%} of points")
    if sim.seeds < 2:
        msgs.append("one seed: no confidence band, only the relative tolerance applies")
    if skew > 1.5:
        msgs.append(f"runs are heavily skewed (mean/median = {skew:.2f}): the expected risk is carried by rare runs, "
                    "the seed mean converges slowly and its SEM understates the error; use many more seeds "
                    "before reading a NOT OK as a theory error")
    return Agreement(steps=curve.steps, theory=theory, mean=mean, sem=sem, rel_error=rel, in_band=in_band,
                     agrees=agrees, ok=bool(ok), message="; ".join(msgs), skew=skew)
