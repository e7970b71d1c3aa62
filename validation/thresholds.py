"""``validation.empirical_threshold``: the divergence lr found with real runs, by bisection.

A run at lr "diverges" when the seeds' mean (``statistic="mean"``, the quantity the theory predicts) or
median (``statistic="median"``, a typical run) risk grows by more than ``growth`` between half the
horizon and the horizon (or stops being finite). The theory's threshold is the mean-square one; near it
the mean is carried by rare runs, so finitely many seeds see divergence later than the theory says.
Measured on sgd.md V2 (d = 100, 20000 steps, 256 seeds, H100), empirical / theory:

    B        1      4      32     256
    mean   1.013  1.049  1.101  1.010
    median 1.022  1.060  1.101  1.015

At B = 32 one mode binds the edge and does not self-average at any d: the estimate is not stable there
(8 seeds: 1.02-1.10 across keys at 2000-8000 steps), and sgd.md V2's "within 5%" does not hold for it. Below the mean-square threshold the risk settles to
a floor (ratio ~ 1); above it, it grows like q^k with q the spectral radius of the step map
(research/sgd.md §1.5), so the horizon must be >> 1/log q near the threshold (V2: q = 1.000466 at
1.01 lr* for B = 1, i.e. ~2150 steps per e-fold). The search starts from ``lr0`` (default the
closed-form lower bound 2B / (tr K + (B + 1) lambda_max), which uses no solver), doubles or halves to
a bracket, then bisects in log lr until hi/lo <= 1 + rtol. Independent of the theory's solver.

``criterion="no_progress"`` is for optimizers that never diverge (signSGD: ``hd.stability_threshold`` is +inf,
research/signsgd.md §3): a run "fails" when the seeds' statistic of its risk averaged over the second half
of the horizon (11 points in [steps/2, steps]) is at least the initial risk, i.e. it ends no better than it
started. The result estimates the theory's no-progress lr (``hd.signsgd.no_progress_lr``, the constant lr
whose floor is the initial risk) once ``steps`` is long enough for the slowest modes to reach their floor.

``horizon_threshold`` runs the same search and criterion on the theory's expected risk (``hd.solve``) instead of
a seed mean: the finite-horizon threshold that ``empirical_threshold`` estimates with infinitely many seeds.
Empirical / horizon compares like with like; horizon / ``hd.stability_threshold`` is the part of a gap that the
horizon explains (O(1/horizon)). LA-DiLoCo (research/la_diloco.md), lambda_j = 1/j, d = 100, sigma 0.1, 1000
rounds of H = 8, 128 seeds, M 4, alpha 1, B 1: empirical / (L6) = 1.054 but horizon / (L6) = 1.0027, so the
horizon explains 0.3% of it. There tr K / lambda_max = 5.2 and the seed mean is carried by single runs: at
1.01 / 1.03 / 1.05 x (L6) the expected risk grows x6e3 / x2e13 / x2e25 from round 500 to 1000 while the mean of
128 seeds shrinks (x0.40 / 0.18 / 0.46), the median is flat (x1.03 / 0.98 / 1.07) and the largest seed holds
38-45% of the mean at round 500 (the same effect as SGD at B = 4 on sgd.md V2 above, +4.9%; LA-DiLoCo with H = 1
is SGD at batch MB). With many effective dimensions (lambda uniform in [0.5, 1.5], d = 100, tr K / lambda_max
= 67; tests/test_la_diloco.py) empirical / horizon = 0.992-1.008 (200 rounds, 8-16 seeds, 10 keys,
bisection to 1%); at 800 rounds and 32 seeds (bisection to 0.5%), horizon / (L6), empirical / (L6) and
empirical / horizon are:

    M 4, alpha 1, B 1                       1.0044  1.0085  1.0041
    M 1, alpha 0.5, B 1                     1.0147  1.0133  0.9986
    M 4, alpha 0.8, Nesterov 0.9, B 2       1.0133  1.0147  1.0014
    M 1, alpha 0.7, HB 0.5, mu 0.5, B 4     1.0112  1.0099  0.9986
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .simulate import simulate


@dataclass(frozen=True)
class EmpiricalThreshold:
    lr: float   # geometric mean of the final bracket
    lo: float   # largest lr seen to be stable
    hi: float   # smallest lr seen to diverge
    evaluations: int


def _default_lr0(problem, opt) -> float:
    B = getattr(opt, "batch", 1)
    return 2.0 * B / (problem.trace + (B + 1.0) * problem.lambda_max)


def _criterion_grid(span: int, steps: int, criterion: str) -> np.ndarray:
    """Record grid of the criterion: (0, half, steps) for divergence, 0 and 11 points of the second half for
    no_progress; every point at an update boundary (one LA-DiLoCo round = H steps)."""
    if steps % span or steps < 2 * span:
        raise ValueError(f"steps must be a multiple of {span} and at least {2 * span} for this optimizer")
    half = steps // span // 2 * span
    if criterion == "divergence":
        return np.array([0, half, steps], dtype=np.int64)
    late = np.linspace(half // span, steps // span, 11).astype(np.int64) * span
    return np.unique(np.concatenate([[0], late]))


def _fails(problem, risk, stat, growth, criterion) -> bool:
    """The criterion on risk[seed, point] (grid of ``_criterion_grid``): True = diverged / no progress."""
    if criterion == "no_progress":
        late = stat(risk[:, 1:].mean(axis=1))
        return not np.isfinite(late) or late >= problem.initial_risk
    mid, end = stat(risk[:, 1]), stat(risk[:, 2])
    return not (np.isfinite(end) and np.isfinite(mid)) or end > growth * mid


def _search(fails, lr, rtol, max_evals, desc=None):
    """Double or halve from lr to a bracket (lo passes, hi fails), then bisect in log lr until hi/lo <= 1 + rtol.
    Returns (lo, hi, evaluations)."""
    lo, hi, evals = None, None, 0
    bar = None
    if desc:
        from tqdm.auto import tqdm

        bar = tqdm(total=None, desc=desc, unit="run", leave=False)
    while (lo is None or hi is None) and evals < max_evals:
        evals += 1
        if fails(lr):
            hi = lr
            lr /= 2.0
        else:
            lo = lr
            lr *= 2.0
        if bar:
            bar.update()
    while lo is not None and hi is not None and hi / lo > 1.0 + rtol and evals < max_evals:
        evals += 1
        mid = math.sqrt(lo * hi)
        if fails(mid):
            hi = mid
        else:
            lo = mid
        if bar:
            bar.update()
    if bar:
        bar.close()
    if lo is None or hi is None:
        raise RuntimeError(f"could not bracket the divergence lr in {max_evals} runs (lo={lo}, hi={hi})")
    return lo, hi, evals


def empirical_threshold(problem, opt, steps: int = 20000, seeds: int = 8, key=0, *, rtol: float = 0.01,
                        growth: float = 10.0, lr0: float | None = None, max_evals: int = 40,
                        statistic: str = "mean", progress: bool = False, full: bool = False,
                        criterion: str = "divergence"):
    """Largest lr at which real runs of ``opt`` (other hyperparameters fixed) do not diverge
    (``criterion="divergence"``) or still make progress (``criterion="no_progress"``, module docstring).

    Returns the lr (float), or ``EmpiricalThreshold`` with the bracket when ``full=True``."""
    if steps < 4:
        raise ValueError("steps must be >= 4")
    if statistic not in ("median", "mean"):
        raise ValueError(f"statistic must be 'median' or 'mean', got {statistic!r}")
    if criterion not in ("divergence", "no_progress"):
        raise ValueError(f"criterion must be 'divergence' or 'no_progress', got {criterion!r}")
    stat = np.median if statistic == "median" else np.mean
    from .optimizers import simulation_for

    grid = _criterion_grid(simulation_for(opt).steps_per_update(opt), steps, criterion)

    def diverges(lr):
        sim = simulate(problem, opt.with_lr(lr), grid=grid, seeds=seeds, key=key)
        return _fails(problem, sim.risk, stat, growth, criterion)

    lr = float(lr0 if lr0 is not None else _default_lr0(problem, opt))
    lo, hi, evals = _search(diverges, lr, rtol, max_evals, "empirical threshold" if progress else None)
    res = EmpiricalThreshold(lr=math.sqrt(lo * hi), lo=lo, hi=hi, evaluations=evals)
    return res if full else res.lr


def horizon_threshold(problem, opt, steps: int = 20000, *, growth: float = 10.0, rtol: float = 1e-4,
                      lr0: float | None = None, max_evals: int = 200, full: bool = False,
                      criterion: str = "divergence"):
    """What ``empirical_threshold`` would return with infinitely many seeds and the mean statistic: the same
    search (same grid, ``growth`` and ``criterion``) applied to the theory's expected risk ``hd.solve(...)``
    instead of a seed mean (a theory curve stopped at its divergence cap counts as diverged).

    The theory's threshold ``hd.stability_threshold`` is asymptotic (k -> infinity): just above it the expected
    risk grows like specrad^k, too slowly to grow by ``growth`` between half the horizon and the horizon. This
    function is the finite-horizon threshold of the same expected risk, so ``empirical_threshold / horizon_threshold``
    compares like with like, and ``horizon_threshold / stability_threshold`` is the part of an empirical/theory gap
    that the horizon explains. Measured (LA-DiLoCo, lambda_j = 1/j, d = 100, sigma 0.1, 1000 rounds of H = 8):
    horizon / (L6) = 1.0027 (M 4, alpha 1, B 1), 1.0095 (M 1, alpha 0.5, B 1), 1.0074 (M 4, alpha 0.8, Nesterov
    0.9, B 2), 1.0059 (M 1, alpha 0.7, heavy ball 0.5, mu 0.5, B 4), -> 1 as 1/horizon (1.0002-1.0006 at 16000
    rounds). Deterministic: ``rtol`` can be tight. Returns the lr, or ``EmpiricalThreshold`` when ``full=True``."""
    import hdtheory as hd

    if criterion not in ("divergence", "no_progress"):
        raise ValueError(f"criterion must be 'divergence' or 'no_progress', got {criterion!r}")
    from hdtheory.optimizers import theory_for

    grid = _criterion_grid(theory_for(opt).steps_per_update(opt), steps, criterion)

    def fails(lr):
        curve = hd.solve(problem, opt.with_lr(lr), grid=grid)
        risk = np.full(grid.size, np.inf)
        risk[: curve.risk.size] = curve.risk
        return _fails(problem, risk[None, :], np.mean, growth, criterion)

    lr = float(lr0 if lr0 is not None else _default_lr0(problem, opt))
    lo, hi, evals = _search(fails, lr, rtol, max_evals)
    res = EmpiricalThreshold(lr=math.sqrt(lo * hi), lo=lo, hi=hi, evaluations=evals)
    return res if full else res.lr
