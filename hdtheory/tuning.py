"""Theory-optimal hyperparameters: searches over ``hd.solve`` (the layer above the driver).

* ``optimal_lr(problem, opt, steps)``: the constant base lr that minimizes the predicted risk at ``steps``
  (every other hyperparameter and the schedule's shape kept);
* ``optimal_clip(problem, lr, batch, steps)``: clipped SGD's best fixed clip level at a given lr;
* ``horizon_threshold(problem, opt, steps)``: the finite-horizon threshold of the expected risk, found by the
  same search and criterion as ``validation.empirical_threshold`` applied to ``hd.solve`` instead of a seed
  mean, so that the two compare like with like.

The lr search scans log lr over [1e-4, 1] x the theory's lr scale (``Theory.lr_scale``: the stability
threshold, or where an optimizer never diverges the lr past which it makes no progress), then refines around
the best scan point by a bounded scalar search.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar

from .checks import check_batch, check_int, check_positive
from .driver import solve
from .theory import theory_for


def _final_risk(problem, opt, grid, accept=("ok", "unstable", "diverged"), **solve_kwargs) -> float:
    """The predicted risk at the grid's end; inf where the curve stops before it or its status is not accepted."""
    curve = solve(problem, opt, grid=grid, **solve_kwargs)
    return float(curve.risk[-1]) if curve.status in accept and curve.risk.size == grid.size else math.inf


def optimal_lr(problem, opt, steps: int, *, full: bool = False, points: int = 25, **solve_kwargs):
    """Theory-optimal constant base lr of ``opt`` for the horizon ``steps``: minimizes the predicted risk at
    ``steps`` by a log-spaced scan of ``points`` values over [1e-4, 1] x ``lr_scale`` and a bounded scalar
    search around the best one. Returns the lr, or (lr, risk at steps) with ``full=True``."""
    steps = check_int("steps", steps)
    top = float(theory_for(opt).lr_scale(problem, opt))
    if not (math.isfinite(top) and top > 0):
        raise ValueError(f"no finite lr scale for {type(opt).__name__} on this problem: give the lr range by hand")
    grid = np.array([0, steps], dtype=np.int64)

    def final(log_lr):
        return _final_risk(problem, opt.with_lr(math.exp(log_lr)), grid, **solve_kwargs)

    logs = np.linspace(math.log(top) - math.log(1e4), math.log(top), points)
    vals = np.array([final(v) for v in logs])
    if not np.any(np.isfinite(vals)):
        raise ValueError("every lr of the scan diverged")
    i = int(np.nanargmin(vals))
    lo, hi = logs[max(i - 1, 0)], logs[min(i + 1, logs.size - 1)]
    res = minimize_scalar(final, bounds=(lo, hi), method="bounded", options={"xatol": 1e-6})
    best, val = (float(res.x), float(res.fun)) if res.fun <= vals[i] else (float(logs[i]), float(vals[i]))
    return (math.exp(best), val) if full else math.exp(best)


def optimal_clip(problem, lr: float, batch: int, steps: int, bounds=(1e-3, 1e3)):
    """Theory-optimal fixed clip level of clipped SGD at step size ``lr``: minimizes the predicted risk at
    ``steps`` over c = tau sqrt(tr K / B) with tau^2 / E_0 in ``bounds`` (E_0 = 2 R(0); a log-spaced scan, then
    a bounded search) and compares with c = inf. Returns (c_best, risk_best, risk_sgd); c_best = inf when no
    finite level does better."""
    from .optimizers.clipped_sgd import ClippedSGD

    lr = check_positive("lr", lr)
    batch = check_batch(batch)
    grid = np.array([0, check_int("steps", steps)])
    scale = math.sqrt(problem.trace / batch)
    E0 = 2.0 * problem.initial_risk

    def risk(logt):
        c = math.sqrt(math.exp(logt) * E0) * scale
        return _final_risk(problem, ClippedSGD(lr=lr, clip=c, batch=batch), grid, accept=("ok",))

    r_sgd = _final_risk(problem, ClippedSGD(lr=lr, clip=math.inf, batch=batch), grid)
    lo, hi = math.log(bounds[0]), math.log(bounds[1])
    ws = np.linspace(lo, hi, 13)
    vals = [risk(w) for w in ws]
    i = int(np.argmin(vals))
    a, b = ws[max(i - 1, 0)], ws[min(i + 1, ws.size - 1)]
    res = minimize_scalar(risk, bounds=(a, b), method="bounded", options={"xatol": 1e-3})
    w_best, r_best = (res.x, res.fun) if res.fun < vals[i] else (ws[i], vals[i])
    if not r_best < r_sgd:
        return math.inf, r_sgd, r_sgd
    return math.sqrt(math.exp(w_best) * E0) * scale, float(r_best), r_sgd
