"""``validation.compare``: is a predicted curve within tolerance of a simulation, given the Monte-Carlo error?

The theory predicts the *expected* risk, so it is compared with the seeds' mean, by default on the excess
risk (R - sigma^2/2, exact on both sides since the simulation evaluates the population risk from theta),
which does not let a large noise floor hide an error. At every recorded point k > 0:

* a robust confidence interval [lo, hi] for the expected value of the compared quantity, from the seeds: the
  studentized (bootstrap-t) interval of the seed mean, at the two-sided level of +-z standard errors of a
  normal law (z = 3: 99.73%), ``resamples`` bootstrap resamples of the seeds;
* the tolerance band  theory +- rtol |theory|;
* *within*   the whole interval lies inside the band (the theory is within tolerance given the Monte-Carlo error);
* *outside*  the interval and the band do not meet (the theory is off by more than the tolerance, beyond the
  Monte-Carlo error);
* otherwise the point is undecided (the interval is wider than the data can resolve against the band).

Verdict: ``"ok"`` when at least ``min_fraction`` of the points are within, ``"not_ok"`` when more than
1 - ``min_fraction`` of them are outside, else ``"inconclusive"``, and then ``Agreement.seeds_needed`` says
about how many seeds would decide (the interval narrows like 1/sqrt(seeds); projection from the current
estimates). Divergence is decided on the expected risk too (see ``compare``). ``Agreement.ok`` is
``verdict == "ok"``.

Why bootstrap-t and not a plain SEM or a median of means: the risks of the seeds are positive and right-skewed
(near the stability threshold the expected risk is carried by rare runs; Student-t(3) label noise gives a risk of
infinite variance). A normal interval m +- z SEM is then too short on the upper side (its coverage error is
O(n^-1/2), driven by the skewness), and a median of means estimates a location between the median and the mean,
biased low in the very direction of the near-edge error. The bootstrap-t interval is second-order accurate
(coverage error O(1/n)) and, when a few seeds carry the mean, its upper arm grows with them: resamples that miss
those seeds have a small mean *and* a small spread, hence very negative studentized values. It cannot see runs
rarer than 1/seeds, so when the runs are heavily skewed (``Agreement.skew`` = median over points of seed mean /
seed median above ``skew_limit``, 1.5: near the edge) the upper arm is dropped: a seed mean below the theory is
then never a disagreement. Derivation and the measured error rates: docs/derivations/validation.md §2-§3.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

VERDICTS = ("ok", "not_ok", "inconclusive")
_LABEL = {"ok": "OK", "not_ok": "NOT OK", "inconclusive": "INCONCLUSIVE"}
#: at most this many float64 entries of bootstrap weights held at once
_CHUNK_ENTRIES = 1 << 22


class MismatchError(ValueError):
    """The curve and the simulation were made with different problems, optimizers or grids."""


@dataclass
class Agreement:
    """The result of ``compare``: per-point arrays and the verdict.

    ``theory`` and ``mean`` are the compared quantity (``quantity``: excess risk R - sigma^2/2 by default, or
    the risk R); ``lo``/``hi`` the robust interval of the seed mean; ``sem`` the plain standard error of the
    mean (for reference); ``in_band`` the theory inside [lo, hi]; ``agrees`` (= ``within``) the interval inside
    the tolerance band; ``outside`` the interval disjoint from it."""

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
    verdict: str = ""
    lo: np.ndarray = field(default_factory=lambda: np.zeros(0))
    hi: np.ndarray = field(default_factory=lambda: np.zeros(0))
    outside: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    seeds: int = 0
    seeds_needed: int | None = None  # inconclusive: about how many seeds would decide (None: unknown)
    quantity: str = "excess"
    rtol: float = 0.05
    level: float = 0.9973
    decided_by: str = "interval"  # or "divergence" (both diverged, or only the runs did)

    def __post_init__(self):
        if not self.verdict:
            self.verdict = "ok" if self.ok else "not_ok"
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")
        self.ok = self.verdict == "ok"

    @property
    def within(self) -> np.ndarray:
        return self.agrees

    @property
    def inconclusive(self) -> bool:
        return self.verdict == "inconclusive"

    def _points(self) -> np.ndarray:
        return self.steps > 0 if np.any(self.steps > 0) else np.ones(self.steps.shape, bool)

    @property
    def inband_fraction(self) -> float:
        return float(np.mean(self.in_band[self._points()])) if self.steps.size else 0.0

    @property
    def agree_fraction(self) -> float:
        return float(np.mean(self.agrees[self._points()])) if self.steps.size else 0.0

    @property
    def outside_fraction(self) -> float:
        return float(np.mean(self.outside[self._points()])) if self.outside.size else 0.0

    @property
    def max_rel_error(self) -> float:
        return float(np.max(self.rel_error)) if self.rel_error.size else 0.0

    @property
    def median_rel_error(self) -> float:
        return float(np.median(self.rel_error)) if self.rel_error.size else 0.0

    def summary(self) -> str:
        what = "excess risk" if self.quantity == "excess" else "risk"
        P = int(np.sum(self.steps > 0))
        head = (f"{_LABEL[self.verdict]}: {what}, {P} point{'s' if P != 1 else ''} k > 0, seed mean of {self.seeds} "
                f"vs theory: max rel. error {self.max_rel_error:.3%}, median {self.median_rel_error:.3%}")
        if self.decided_by == "divergence":
            return f"{head}. {self.message}"
        return (f"{head}; interval within the {self.rtol:.0%} tolerance at {self.agree_fraction:.0%} of points, "
                f"outside at {self.outside_fraction:.0%}. {self.message}")

    def __str__(self):
        return self.summary()


# ------------------------------------------------------------------------------------------------------
# the robust interval
# ------------------------------------------------------------------------------------------------------

def level_of(z: float) -> float:
    """Two-sided coverage of +-z standard errors of a normal law (z = 3: 0.9973)."""
    return math.erf(z / math.sqrt(2.0))


def bootstrap_t_interval(x, z: float = 3.0, resamples: int = 10000, seed: int = 0):
    """Studentized bootstrap interval of the mean of each column of ``x`` (seeds x points, finite).

    Returns (mean, lo, hi, sem). For each resample b of the seeds (multinomial weights, the same resample for
    every column), t*_b = (mean*_b - mean) / sem*_b; the interval is [mean - t*_(1-a/2) sem, mean - t*_(a/2) sem]
    with a = 1 - ``level_of(z)``. Resamples with sem* = 0 (every drawn seed equal) give t* = +-inf, so with a
    handful of seeds the interval is unbounded. Deterministic (``seed``)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    n, P = x.shape
    mean = x.mean(axis=0)
    if n < 2:
        inf = np.full(P, np.inf)
        return mean, -inf, inf.copy(), inf.copy()
    y = x - mean
    sd = np.sqrt(np.sum(y * y, axis=0) / (n - 1))
    sem = sd / math.sqrt(n)
    alpha = 1.0 - level_of(z)
    rng = np.random.default_rng(seed)
    rows = max(1, _CHUNK_ENTRIES // n)
    t = np.empty((resamples, P))
    y2 = y * y
    # a resample's spread below this counts as zero (all drawn seeds equal up to rounding)
    tiny = 1e-12 * (np.abs(mean) + sd) + np.finfo(float).tiny
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        for b0 in range(0, resamples, rows):
            b1 = min(resamples, b0 + rows)
            w = rng.multinomial(n, np.full(n, 1.0 / n), size=b1 - b0).astype(np.float64) / n
            m = w @ y
            var = np.maximum((w @ y2 - m * m) * (n / (n - 1.0)), 0.0)
            s = np.sqrt(var / n)
            tb = m / s
            zero = s <= tiny
            tb[zero] = np.where(np.abs(m[zero]) <= tiny[np.nonzero(zero)[1]], 0.0, np.sign(m[zero]) * np.inf)
            t[b0:b1] = tb
    t.sort(axis=0)
    k_lo = int(math.floor(alpha / 2 * resamples))
    k_hi = min(resamples - 1, int(math.ceil((1 - alpha / 2) * resamples)) - 1)
    q_lo, q_hi = t[k_lo], t[k_hi]
    with np.errstate(invalid="ignore"):
        lo = mean - q_hi * sem
        hi = mean - q_lo * sem
    flat = sem == 0  # every seed equal: the interval is the point
    lo[flat] = mean[flat]
    hi[flat] = mean[flat]
    return mean, lo, hi, sem


def min_seeds(z: float = 3.0) -> int:
    """The fewest seeds whose bootstrap-t interval can be bounded at level ``level_of(z)``: the resamples that draw
    one seed n times (probability n^(1-n)) must be rarer than (1 - level) / 2."""
    alpha = 1.0 - level_of(z)
    n = 2
    while n ** (1.0 - n) >= alpha / 2:
        n += 1
    return n


def _student(n, alpha):
    from scipy.stats import t

    return t.ppf(1.0 - alpha / 2, np.maximum(np.asarray(n, dtype=np.float64) - 1.0, 1.0))


def _seeds_needed(n, u, a, b, sem_t, consistent, min_fraction, z):
    """About how many seeds would decide, projecting the current estimates. ``u`` = (mean - theory) / tol; the
    interval's arms ``a`` (below) and ``b`` (above), in units of tol, are q SEM with SEM = ``sem_t`` (in units of
    tol) shrinking like 1/sqrt(N) and the quantile q = c(N) + (q_n - c(n)) sqrt(n / N): c the Student-t quantile at
    the level (the small-sample widening), q_n - c(n) the bootstrap's skewness correction, which is O(N^-1/2)
    (Edgeworth); infinite arms (too few seeds for the bootstrap) start from q_n = c(n). The offset ``u`` is kept
    where the theory lies outside the interval (a real difference) and shrinks like 1/sqrt(N) where it lies inside
    (``consistent``: the offset is then Monte-Carlo noise). None where no N <= 1e9 decides."""
    alpha = 1.0 - level_of(z)
    c_n = float(_student(n, alpha))
    with np.errstate(divide="ignore", invalid="ignore"):
        qa = np.where(np.isfinite(a) & (sem_t > 0), a / sem_t, c_n)
        qb = np.where(np.isfinite(b) & (sem_t > 0), b / sem_t, c_n)
    # consistent: the theory inside the interval, its unbounded arms replaced by the Student-t ones
    consistent = consistent & (u - qa * sem_t <= 0) & (0 <= u + qb * sem_t)
    N = np.unique(np.ceil(np.geomspace(max(n + 1, min_seeds(z)), 1e9, 600)))
    root = np.sqrt(n / N)[:, None]
    c_N = _student(N, alpha)[:, None]
    se_N = sem_t * root
    uN = np.where(consistent, u * root, u)
    lo = uN - se_N * (c_N + (qa - c_n) * root)
    hi = uN + se_N * (c_N + (qb - c_n) * root)
    within = np.mean((lo >= -1) & (hi <= 1), axis=1)
    # an offset that is Monte-Carlo noise shrinks with its arms: it never becomes a decided disagreement
    outside = np.mean(((lo > 1) | (hi < -1)) & ~consistent, axis=1)
    decided = (within >= min_fraction) | (outside > 1 - min_fraction)
    if not np.any(decided):
        return None
    best = int(N[np.argmax(decided)])
    digits = 10 ** max(0, int(math.floor(math.log10(best))) - 1)  # two significant digits, rounded up
    return int(math.ceil(best / digits) * digits)


# ------------------------------------------------------------------------------------------------------
# matching curve and simulation
# ------------------------------------------------------------------------------------------------------

def _differences(a, b, path=""):
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            if k not in a or k not in b:
                out.append(f"{path}{k}: {'missing' if k not in a else a[k]!r} vs {'missing' if k not in b else b[k]!r}")
            else:
                out += _differences(a[k], b[k], f"{path}{k}.")
        return out
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return [f"{path[:-1]}: {len(a)} entries vs {len(b)}"]
        out = []
        for i, (x, y) in enumerate(zip(a, b)):
            out += _differences(x, y, f"{path}{i}.")
        return out[:1] if out else []
    num = (int, float, np.integer, np.floating)
    if isinstance(a, num) and isinstance(b, num) and not isinstance(a, bool) and not isinstance(b, bool):
        fa, fb = float(a), float(b)
        if fa == fb or (math.isfinite(fa) and math.isfinite(fb) and math.isclose(fa, fb, rel_tol=1e-9, abs_tol=0)):
            return []
        return [f"{path[:-1]}: {a!r} vs {b!r}"]
    return [] if a == b else [f"{path[:-1]}: {a!r} vs {b!r}"]


def check_match(curve, sim):
    """Raise ``MismatchError`` (a ValueError) when the curve and the simulation were made with different
    problems or optimizers (their ``meta``) or on different grids. Entries missing from a ``meta`` are not
    checked (a hand-built curve has none)."""
    n = curve.steps.size
    if n > sim.steps.size or not np.array_equal(curve.steps, sim.steps[:n]) or (
            n < sim.steps.size and curve.status != "diverged"):
        raise MismatchError("curve and simulation are on different step grids; build both from the same grid "
                            "(hd.step_grid(steps) or an explicit grid=...)")
    cm, sm = getattr(curve, "meta", None) or {}, getattr(sim, "meta", None) or {}
    for key, what in (("optimizer", "optimizers"), ("problem", "problems")):
        if key in cm and key in sm:
            diff = _differences(cm[key], sm[key])
            if diff:
                raise MismatchError(f"curve and simulation were made with different {what} "
                                    f"({'; '.join(diff[:4])}{'; ...' if len(diff) > 4 else ''}; curve vs simulation): "
                                    "compare a curve with a simulation of the same problem and optimizer")
    if not math.isclose(float(curve.sigma2), float(sim.sigma2), rel_tol=1e-12, abs_tol=0):
        raise MismatchError(f"curve and simulation have different noise levels (sigma^2 {curve.sigma2!r} vs "
                            f"{sim.sigma2!r})")


# ------------------------------------------------------------------------------------------------------
# compare
# ------------------------------------------------------------------------------------------------------

def compare(curve, sim, *, rtol: float = 0.05, z: float = 3.0, min_fraction: float = 0.95,
            quantity: str = "excess", cap: float | None = None, resamples: int = 10000,
            skew_limit: float = 1.5) -> Agreement:
    """Compare a ``RiskCurve`` with a ``SimulatedRisk`` of the same problem, optimizer and grid.

    Per point k > 0 the robust interval of the seed mean (bootstrap-t at the level of +-``z`` normal standard
    errors) is set against the band theory +- ``rtol`` |theory|: *within* (inside it), *outside* (disjoint) or
    undecided. Verdict ``ok`` when at least ``min_fraction`` of the points are within, ``not_ok`` when more
    than 1 - ``min_fraction`` are outside, else ``inconclusive`` (``seeds_needed`` says about how many seeds
    would decide; one seed is always inconclusive).

    Divergence, on the expected risk like the theory: the simulation diverged when its seed mean at the last
    point is not finite or exceeds ``cap`` x max(R(0), sigma^2/2) (the theory's own criterion: ``cap`` defaults to
    the curve's ``meta["divergence_cap"]`` (an absolute risk) where the driver records one, else 1e8; a single
    overflowing seed makes the mean infinite). Both diverged: ok. Only the simulation: not ok. Only the theory
    (its curve ends early): the points before are compared as usual, and the runs' interval at the last point
    must reach the cap for the verdict to be anything but not ok (inconclusive then: rare runs may carry it).

    Raises ``MismatchError`` (a ValueError) if the grids differ (a diverged curve may be a prefix of the
    simulation grid) or the two ``meta`` dicts describe different problems or optimizers."""
    if quantity not in ("excess", "risk"):
        raise ValueError(f"quantity must be 'excess' or 'risk', got {quantity!r}")
    for name, v, lo in (("rtol", rtol, 0.0), ("z", z, 0.0)):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > lo):
            raise ValueError(f"{name} must be a number > {lo:g}, got {v!r}")
    if not (isinstance(min_fraction, (int, float)) and 0.5 < min_fraction <= 1):
        raise ValueError(f"min_fraction must be in (0.5, 1], got {min_fraction!r}")
    check_match(curve, sim)
    n = curve.steps.size
    shift = 0.5 * sim.sigma2 if quantity == "excess" else 0.0
    theory = curve.risk - (0.5 * curve.sigma2 if quantity == "excess" else 0.0)
    runs = sim.risk[:, :n] - shift
    seeds = sim.seeds
    finite = bool(np.all(np.isfinite(runs)))
    with np.errstate(invalid="ignore", over="ignore"):
        if finite:
            mean, lo, hi, sem = bootstrap_t_interval(runs, z, resamples)
        else:
            mean = runs.mean(axis=0)
            sem = sim.sem[:n]
            lo, hi = np.full(n, -np.inf), np.full(n, np.inf)
            ok_cols = np.all(np.isfinite(runs), axis=0)
            if np.any(ok_cols):
                _, lo[ok_cols], hi[ok_cols], _ = bootstrap_t_interval(runs[:, ok_cols], z, resamples)
            lo[~ok_cols] = mean[~ok_cols]
            hi[~ok_cols] = np.inf
        diff = np.abs(mean - theory)
        rel = np.where(theory != 0, diff / np.where(theory != 0, np.abs(theory), 1.0),
                       np.where(diff > 0, np.inf, 0.0))
        rel = np.where(np.isfinite(rel), rel, np.inf)
        tol = rtol * np.abs(theory)
        in_band = (lo <= theory) & (theory <= hi)
        within = (lo >= theory - tol) & (hi <= theory + tol) & np.isfinite(lo) & np.isfinite(hi)
        outside = (lo > theory + tol) | (hi < theory - tol)
    pts = curve.steps > 0
    P = int(np.sum(pts))
    msgs = []
    needed = None
    skew = 1.0
    if finite and P:
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            ratio = mean[pts] / np.median(runs[:, pts], axis=0)
        ratio = ratio[np.isfinite(ratio)]
        skew = float(np.median(ratio)) if ratio.size else 1.0
    skewed = skew > skew_limit
    if skewed:
        # the mean is carried by runs rarer than the seeds resolve: no interval from these seeds bounds it from
        # above (validation.md §3), so the upper arm is dropped: no point can be within, and only a seed mean
        # decisively *above* the theory is a disagreement
        hi = np.where(pts, np.inf, hi)
        with np.errstate(invalid="ignore"):
            within = within & ~pts
            outside = (lo > theory + tol) | (hi < theory - tol)
            in_band = (lo <= theory) & (theory <= hi)

    # ---- divergence (on the expected risk) -----------------------------------------------------------
    ref = max(float(sim.risk[0, 0]), 0.5 * sim.sigma2)
    recorded = (getattr(curve, "meta", None) or {}).get("divergence_cap")
    if cap is None and recorded is not None:
        cap_R = float(recorded)
        cap = cap_R / ref if ref > 0 else math.inf
    else:
        cap = 1e8 if cap is None else float(cap)
        if not cap > 0:
            raise ValueError(f"cap must be a number > 0, got {cap!r}")
        cap_R = cap * ref if ref > 0 else math.inf
    with np.errstate(invalid="ignore", over="ignore"):
        last = sim.risk[:, -1]
        last_mean = float(np.mean(last))
    seeds_past = int(np.sum(~np.isfinite(last) | (last > cap_R)))
    sim_div = not (math.isfinite(last_mean) and last_mean <= cap_R)
    theory_div = curve.status == "diverged"
    if theory_div or sim_div or seeds_past:
        msgs.append(f"theory {'diverged at step %d' % curve.diverged_step if theory_div else 'did not diverge'}; "
                    f"{seeds_past} of {seeds} seeds diverged (past {cap:g} x max(R(0), sigma^2/2) or not finite), "
                    f"seed mean at step {int(sim.steps[-1])} {'not finite' if not math.isfinite(last_mean) else '%.3g' % last_mean}")

    def regular():
        nonlocal needed
        if P == 0:
            return "inconclusive", "no recorded point after step 0"
        if seeds < 2:
            needed = 8
            return "inconclusive", "one seed: the Monte-Carlo error cannot be estimated; run several seeds (>= 8)"
        f_in, f_out = float(np.mean(within[pts])), float(np.mean(outside[pts]))
        crit = (f"criterion: the seed mean's {level_of(z):.2%} bootstrap-t interval within {rtol:.0%} of the theory at "
                f">= {min_fraction:.0%} of the points (OK), disjoint from it at > {1 - min_fraction:.0%} (NOT OK)")
        if f_out > 1 - min_fraction:
            return "not_ok", crit
        if f_in >= min_fraction:
            return "ok", crit
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(tol > 0, tol, np.nan)
            u, a, b = (mean - theory) / t, (mean - lo) / t, (hi - mean) / t
            sem_t = sem / t
        sel = pts & np.isfinite(u)
        undecided = int(np.sum(pts & ~within & ~outside))
        if skewed:
            needed = None
            how = ("how many seeds would decide cannot be projected from these: the runs that carry the mean are "
                   "rarer than 1/seeds (near the stability threshold thousands were needed, validation.md §3)")
        else:
            needed = _seeds_needed(seeds, u[sel], a[sel], b[sel], sem_t[sel], in_band[sel], min_fraction, z)
            how = (f"about {needed} seeds would decide (projected from these {seeds}: the interval narrows like "
                   "1/sqrt(seeds))" if needed else
                   "no seed count is projected to decide: the seed mean sits at the edge of the tolerance "
                   "(change rtol)")
        return "inconclusive", (f"too few seeds to tell: at {undecided} of {P} points the interval is too wide to "
                                f"decide against the {rtol:.0%} tolerance; {how}; {crit}")

    decided_by = "interval"
    if theory_div and sim_div:
        verdict, decided_by = "ok", "divergence"
        msgs.append("both diverged: the theory predicted the outcome")
    elif sim_div:
        verdict, decided_by = "not_ok", "divergence"
        msgs.append("the runs diverged, the theory did not")
    elif theory_div:
        verdict, text = regular()
        with np.errstate(invalid="ignore", over="ignore"):
            fin = np.isfinite(last)
            if np.all(fin) and seeds >= 2 and not skewed:
                m_last, _, hi_last, se_last = bootstrap_t_interval(last, z, resamples)
                if not np.isfinite(hi_last[0]):  # too few seeds for the bootstrap: the Student-t bound
                    hi_last = m_last + _student(seeds, 1.0 - level_of(z)) * se_last
                reach = bool(hi_last[0] >= cap_R)
            else:
                reach = True
        if verdict == "not_ok":
            msgs.append(text)
        elif reach:
            verdict = "inconclusive"
            msgs.append("the theory passed its cap, the runs' mean did not, but its interval reaches the cap "
                        "(rare runs may carry the expected risk): more seeds needed")
        else:
            verdict = "not_ok"
            msgs.append("the theory diverged but the runs' mean stays below the cap beyond the Monte-Carlo error")
    else:
        verdict, text = regular()
        msgs.append(text)

    if skewed and decided_by == "interval":
        msgs.append(f"runs are heavily skewed (mean/median = {skew:.2f} > {skew_limit:g}): the expected risk is carried by "
                    "rare runs, the seed mean converges slowly and no interval from these seeds bounds it from above, "
                    "so a seed mean below the theory is not read as a disagreement")
    return Agreement(steps=curve.steps, theory=theory, mean=mean, sem=sem, rel_error=rel, in_band=in_band,
                     agrees=within, ok=verdict == "ok", message="; ".join(msgs), skew=skew, verdict=verdict,
                     lo=lo, hi=hi, outside=outside, seeds=seeds, seeds_needed=needed if verdict == "inconclusive" else None,
                     quantity=quantity, rtol=rtol, level=level_of(z), decided_by=decided_by)
