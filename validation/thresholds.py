"""``validation.empirical_threshold``: the lr at which real runs stop being stable, by bisection.

A run at lr "diverges" when the seeds' mean (``statistic="mean"``, what the theory predicts) or median
(``statistic="median"``, a typical run) risk grows by more than ``growth`` between half the horizon and the
horizon, or stops being finite. ``criterion="no_progress"`` is for optimizers that never diverge (signSGD): a
run fails when its risk averaged over the second half of the horizon is no better than the initial risk; it
estimates ``hd.signsgd.no_progress_lr``. The search (shared with ``hd.tuning.horizon_threshold``, the same
criterion applied to the theory's expected risk) starts from the closed-form lower bound
2B / (tr K + (B + 1) lambda_max), doubles or halves to a bracket, then bisects in log lr.

Near the theory's (mean-square) threshold the seed mean is carried by rare runs, so finitely many seeds see
divergence later than the theory says; compare against ``horizon_threshold`` for like with like. Measured
ratios: docs/derivations/validation.md.
"""
from __future__ import annotations

import math

import numpy as np

from hdtheory.tuning import EmpiricalThreshold, criterion_fails, criterion_grid, default_lr0, search_threshold

from .simulate import simulate


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
    grid = criterion_grid(opt.steps_per_update, steps, criterion)

    def diverges(lr):
        sim = simulate(problem, opt.with_lr(lr), grid=grid, seeds=seeds, key=key)
        return criterion_fails(problem, sim.risk, stat, growth, criterion)

    lr = float(lr0 if lr0 is not None else default_lr0(problem, opt))
    lo, hi, evals = search_threshold(diverges, lr, rtol, max_evals, "empirical threshold" if progress else None)
    res = EmpiricalThreshold(lr=math.sqrt(lo * hi), lo=lo, hi=hi, evaluations=evals)
    return res if full else res.lr
