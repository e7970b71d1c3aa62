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


# ------------------------------------------------------------------------------------------------------
# threshold searches: the bracketing shared with validation.empirical_threshold
# ------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EmpiricalThreshold:
    """A threshold lr found by bracketing and bisection (``validation.empirical_threshold``, ``horizon_threshold``)."""

    lr: float   # geometric mean of the final bracket
    lo: float   # largest lr seen to be stable
    hi: float   # smallest lr seen to diverge
    evaluations: int


def default_lr0(problem, opt) -> float:
    B = getattr(opt, "batch", 1)
    return 2.0 * B / (problem.trace + (B + 1.0) * problem.lambda_max)


def criterion_grid(span: int, steps: int, criterion: str) -> np.ndarray:
    """Record grid of the criterion: (0, half, steps) for divergence, 0 and 11 points of the second half for
    no_progress; every point at an update boundary (one LA-DiLoCo round = H steps)."""
    if steps % span or steps < 2 * span:
        raise ValueError(f"steps must be a multiple of {span} and at least {2 * span} for this optimizer")
    half = steps // span // 2 * span
    if criterion == "divergence":
        return np.array([0, half, steps], dtype=np.int64)
    late = np.linspace(half // span, steps // span, 11).astype(np.int64) * span
    return np.unique(np.concatenate([[0], late]))


def criterion_fails(problem, risk, stat, growth, criterion) -> bool:
    """The criterion on risk[seed, point] (grid of ``_criterion_grid``): True = diverged / no progress."""
    if criterion == "no_progress":
        late = stat(risk[:, 1:].mean(axis=1))
        return not np.isfinite(late) or late >= problem.initial_risk
    mid, end = stat(risk[:, 1]), stat(risk[:, 2])
    return not (np.isfinite(end) and np.isfinite(mid)) or end > growth * mid


def search_threshold(fails, lr, rtol, max_evals, desc=None):
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


def horizon_threshold(problem, opt, steps: int = 20000, *, growth: float = 10.0, rtol: float = 1e-4,
                      lr0: float | None = None, max_evals: int = 200, full: bool = False,
                      criterion: str = "divergence"):
    """What ``validation.empirical_threshold`` would return with infinitely many seeds and the mean statistic:
    the same search (grid, ``growth``, ``criterion``) applied to the theory's expected risk (a curve stopped at
    its divergence cap counts as diverged). ``hd.stability_threshold`` is asymptotic; this is the threshold of
    the same expected risk at a finite horizon, -> the asymptotic one as 1/horizon (measured ratios:
    docs/derivations/validation.md). Returns the lr, or ``EmpiricalThreshold`` when ``full=True``."""
    if criterion not in ("divergence", "no_progress"):
        raise ValueError(f"criterion must be 'divergence' or 'no_progress', got {criterion!r}")
    grid = criterion_grid(opt.steps_per_update, steps, criterion)

    def fails(lr):
        curve = solve(problem, opt.with_lr(lr), grid=grid)
        risk = np.full(grid.size, np.inf)
        risk[: curve.risk.size] = curve.risk
        return criterion_fails(problem, risk[None, :], np.mean, growth, criterion)

    lr = float(lr0 if lr0 is not None else default_lr0(problem, opt))
    lo, hi, evals = search_threshold(fails, lr, rtol, max_evals)
    res = EmpiricalThreshold(lr=math.sqrt(lo * hi), lo=lo, hi=hi, evaluations=evals)
    return res if full else res.lr
