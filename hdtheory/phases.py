"""Power-law phase maps from the theory: two optimizers, each at its own theory-optimal lr, over (alpha, beta).

``gain_map(alphas, betas, opt_a, opt_b, steps)`` builds, per cell, the power-law problem (``hd.powerlaw`` for vector
optimizers, ``hd.matrix_powerlaw`` when either acts on a matrix), tunes each optimizer's constant lr for every
horizon of the record grid (``tuned_risks``) and returns an ``xarray.Dataset`` with the risk ratio a / b per
horizon, the tuned lrs and a phase label per cell:

* ``a``: a better at every horizon;  ``b``: b better at every horizon;
* ``a->b``: a better early, b late (a trade-off);  ``b->a``: the reverse;  ``mixed``: more than one crossing.

The lr search: a log-spaced scan over [1e-4, 1] x the theory's lr scale (``Theory.lr_scale``), each lr solved once on
the horizons' grid, then per horizon up to ``REFINE`` solves at the vertex of the parabola through the three best
points so far (in log lr, log risk). A tuned lr on the scan's edge is flagged (``edge``); a curve outside its
theory's validity at the chosen lr makes the cell ``valid = False``.
"""
from __future__ import annotations

import math

import numpy as np

from .checks import check_int
from .driver import solve
from .theory import theory_for

#: parabolic refinements of each horizon's tuned lr after the scan (one solve each)
REFINE = 3
#: optimizers whose weights are a matrix (their phase maps use hd.matrix_powerlaw)
MATRIX_OPTIMIZERS = ("signsvd", "muon")


def horizons_grid(steps: int, per_decade: int = 2, first: int = 10) -> np.ndarray:
    """0 and log-spaced horizons from ``first`` to ``steps`` (per_decade per decade, rounded, unique)."""
    steps = check_int("steps", steps)
    n = max(int(round(per_decade * math.log10(max(steps / first, 1.0)))) + 1, 1)
    h = np.unique(np.round(np.geomspace(min(first, steps), steps, n)).astype(np.int64))
    return np.concatenate([[0], h])


def tuned_risks(problem, opt, grid, *, points: int = 20, decades: float = 4.0):
    """Per horizon of ``grid`` (grid[0] = 0): the theory-optimal constant lr and its risk, whether it sits on the
    scan's edge, and whether its curve is within the theory's validity. Returns (lr, risk, edge, valid) arrays
    over grid[1:]."""
    top = float(theory_for(opt).lr_scale(problem, opt))
    if not (math.isfinite(top) and top > 0):
        raise ValueError(f"no finite lr scale for {opt.name} on this problem")
    logs = np.linspace(math.log(top) - decades * math.log(10.0), math.log(top), points)
    H = grid.size - 1
    risk = np.full((points, H), np.inf)
    valid = np.ones((points, H), dtype=bool)
    for i, v in enumerate(logs):
        c = solve(problem, opt.with_lr(math.exp(v)), grid=grid)
        n = c.risk.size - 1
        risk[i, :n] = c.risk[1:]
        valid[i, :n] = c.valid[1:]
    best = np.argmin(risk, axis=0)
    lr_out, risk_out = np.exp(logs[best]), risk[best, np.arange(H)]
    valid_out = valid[best, np.arange(H)]
    edge = (best == 0) | (best == points - 1)
    for h in range(H):
        b = best[h]
        if edge[h] or not np.all(np.isfinite(risk[b - 1:b + 2, h])):
            continue
        xs, ys = list(logs[b - 1:b + 2]), list(np.log(risk[b - 1:b + 2, h]))
        for _ in range(REFINE):  # parabolic steps in (log lr, log risk) through the three best points so far
            order = np.argsort(ys)[:3]
            x, y = np.array(xs)[order], np.array(ys)[order]
            num = (x[1] - x[0]) ** 2 * (y[1] - y[2]) - (x[1] - x[2]) ** 2 * (y[1] - y[0])
            dd = (y[1] - y[2]) * (x[1] - x[0]) - (y[1] - y[0]) * (x[1] - x[2])
            if dd == 0:
                break
            v = float(np.clip(x[1] - 0.5 * num / dd, logs[b - 1], logs[b + 1]))
            if min(abs(v - xi) for xi in xs) < 1e-4:
                break
            c = solve(problem, opt.with_lr(math.exp(v)), grid=grid[: h + 2])
            if c.risk.size < h + 2:
                break
            xs.append(v)
            ys.append(math.log(c.risk[-1]))
            if c.risk[-1] < risk_out[h]:
                lr_out[h], risk_out[h], valid_out[h] = math.exp(v), c.risk[-1], c.valid[-1]
    return lr_out, risk_out, edge, valid_out


def phase_label(ratio) -> str:
    """'a', 'b', 'a->b', 'b->a' or 'mixed' from the ratios a/b over increasing horizons."""
    r = np.asarray(ratio, dtype=np.float64)
    r = r[np.isfinite(r)]
    if r.size == 0:
        return "undetermined"
    s = np.sign(np.log(r))
    s = s[s != 0]
    if s.size == 0:
        return "equal"
    changes = int(np.sum(s[1:] != s[:-1]))
    if changes == 0:
        return "a" if s[0] < 0 else "b"
    if changes == 1:
        return "a->b" if s[0] < 0 else "b->a"
    return "mixed"


def power_law_problem(alpha, beta, d, noise, matrix: bool, m=None, seed: int = 0):
    from .matrix_problem import matrix_powerlaw
    from .problems import powerlaw

    if matrix:
        return matrix_powerlaw(d, m if m is not None else d, alpha, beta, noise=noise, seed=seed)
    return powerlaw(d, alpha, beta, noise=noise)


def gain_map(alphas, betas, opt_a, opt_b, steps: int, *, d: int = 1000, m: int | None = None, noise=None,
             horizons=None, points: int = 20, progress: bool = True):
    """Risk ratio of ``opt_a`` to ``opt_b``, each at its theory-optimal constant lr per horizon, on the power laws
    (alpha, beta); see the module docstring. ``m``: outputs of the matrix problems (default d). Returns an
    ``xarray.Dataset`` with ``ratio``, ``risk_a``, ``risk_b``, ``lr_a``, ``lr_b`` on (alpha, beta, horizon), and
    ``phase``, ``edge`` (a tuned lr on the scan's edge somewhere) and ``valid`` on (alpha, beta)."""
    import warnings

    import xarray as xr

    from .problems import InadmissibleWarning

    alphas = np.atleast_1d(np.asarray(alphas, dtype=np.float64))
    betas = np.atleast_1d(np.asarray(betas, dtype=np.float64))
    grid = horizons_grid(steps) if horizons is None else np.concatenate([[0], np.asarray(horizons, dtype=np.int64)])
    matrix = opt_a.name in MATRIX_OPTIMIZERS or opt_b.name in MATRIX_OPTIMIZERS
    H = grid.size - 1
    shape = (alphas.size, betas.size, H)
    out = {k: np.full(shape, np.nan) for k in ("risk_a", "risk_b", "lr_a", "lr_b")}
    edge = np.zeros(shape[:2], dtype=bool)
    valid = np.ones(shape[:2], dtype=bool)
    phase = np.empty(shape[:2], dtype=object)
    cells = [(i, j) for i in range(alphas.size) for j in range(betas.size)]
    if progress:
        from tqdm.auto import tqdm

        cells = tqdm(cells, desc=f"gain map {opt_a.name} / {opt_b.name}", unit="cell", leave=False)
    for i, j in cells:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", InadmissibleWarning)
            prob = power_law_problem(alphas[i], betas[j], d, noise, matrix, m)
        for key, opt in (("a", opt_a), ("b", opt_b)):
            lr, risk, e, v = tuned_risks(prob, opt, grid, points=points)
            out[f"lr_{key}"][i, j], out[f"risk_{key}"][i, j] = lr, risk
            edge[i, j] |= bool(e.any())
            valid[i, j] &= bool(v.all())
        phase[i, j] = phase_label(out["risk_a"][i, j] / out["risk_b"][i, j])
    coords = {"alpha": alphas, "beta": betas, "horizon": grid[1:]}
    dims3, dims2 = ("alpha", "beta", "horizon"), ("alpha", "beta")
    ds = xr.Dataset({"ratio": (dims3, out["risk_a"] / out["risk_b"]),
                     **{k: (dims3, v) for k, v in out.items()},
                     "phase": (dims2, phase.astype(str)), "edge": (dims2, edge), "valid": (dims2, valid)},
                    coords=coords)
    ds.attrs.update(opt_a=str(opt_a.to_dict()), opt_b=str(opt_b.to_dict()), d=int(d),
                    m=int(m if m is not None else d) if matrix else 1, noise=str(noise.to_dict() if noise else None))
    return ds
