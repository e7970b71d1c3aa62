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

    span = simulation_for(opt).steps_per_update(opt)  # record at update boundaries (one LA-DiLoCo round = H steps)
    if steps % span or steps < 2 * span:
        raise ValueError(f"steps must be a multiple of {span} and at least {2 * span} for this optimizer")
    half = steps // span // 2 * span
    if criterion == "divergence":
        grid = np.array([0, half, steps], dtype=np.int64)
    else:
        late = np.linspace(half // span, steps // span, 11).astype(np.int64) * span
        grid = np.unique(np.concatenate([[0], late]))
    evals = 0

    def diverges(lr):
        nonlocal evals
        evals += 1
        sim = simulate(problem, opt.with_lr(lr), grid=grid, seeds=seeds, key=key)
        if criterion == "no_progress":
            late = stat(sim.risk[:, 1:].mean(axis=1))
            return not np.isfinite(late) or late >= problem.initial_risk
        mid, end = stat(sim.risk[:, 1]), stat(sim.risk[:, 2])
        return not (np.isfinite(end) and np.isfinite(mid)) or end > growth * mid

    lr = float(lr0 if lr0 is not None else _default_lr0(problem, opt))
    lo, hi = None, None
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=None, desc="empirical threshold", unit="run", leave=False)
    while (lo is None or hi is None) and evals < max_evals:
        if diverges(lr):
            hi = lr
            lr /= 2.0
        else:
            lo = lr
            lr *= 2.0
        if bar:
            bar.update()
    while lo is not None and hi is not None and hi / lo > 1.0 + rtol and evals < max_evals:
        mid = math.sqrt(lo * hi)
        if diverges(mid):
            hi = mid
        else:
            lo = mid
        if bar:
            bar.update()
    if bar:
        bar.close()
    if lo is None or hi is None:
        raise RuntimeError(f"could not bracket the divergence lr in {max_evals} runs (lo={lo}, hi={hi})")
    res = EmpiricalThreshold(lr=math.sqrt(lo * hi), lo=lo, hi=hi, evaluations=evals)
    return res if full else res.lr
