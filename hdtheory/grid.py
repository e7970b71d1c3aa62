"""The record grid: one integer step grid shared by both engines.

``step_grid(steps)`` is log-spaced, always holds 0 and ``steps``, and every step up to a small
threshold, so early transients are resolved. ``compare`` refuses curves on different grids.
"""
from __future__ import annotations

import numpy as np


def check_steps(steps) -> int:
    from .checks import check_int

    return check_int("steps", steps)


def step_grid(steps: int, per_decade: int = 20, multiple_of: int = 1) -> np.ndarray:
    """Sorted unique int64 steps: 0, every step up to ``per_decade``, then ``per_decade`` points per
    decade up to and including ``steps``. With ``multiple_of`` = H every point is a multiple of H (for
    optimizers whose update spans H steps, e.g. one LA-DiLoCo round)."""
    steps = check_steps(steps)
    if per_decade < 1:
        raise ValueError(f"per_decade must be >= 1, got {per_decade!r}")
    h = int(multiple_of)
    if h < 1 or steps % h:
        raise ValueError(f"steps = {steps} must be a positive multiple of {h}")
    n = steps // h
    dense = np.arange(0, min(n, per_decade) + 1)
    ndec = np.log10(max(n, 1))
    logs = np.round(np.logspace(0, ndec, max(int(np.ceil(ndec * per_decade)), 1) + 1)).astype(np.int64)
    g = np.unique(np.concatenate([dense, logs, [0, n]]))
    g = g[(g >= 0) & (g <= n)]
    return (g * h).astype(np.int64)


def as_grid(steps=None, grid=None, multiple_of: int = 1) -> np.ndarray:
    """Resolve the (steps, grid) arguments of ``solve``/``simulate`` into a validated grid."""
    if grid is None:
        if steps is None:
            raise ValueError("give steps (an integer >= 1) or an explicit grid")
        return step_grid(steps, multiple_of=multiple_of)
    g = np.asarray(grid)
    if g.ndim != 1 or g.size < 2 or not np.issubdtype(g.dtype, np.number):
        raise ValueError("grid must be a 1-D array of at least two integer steps")
    if np.any(g != np.round(g)):
        raise ValueError("grid steps must be integers")
    g = g.astype(np.int64)
    if g[0] != 0 or np.any(np.diff(g) <= 0):
        raise ValueError("grid must start at 0 and be strictly increasing")
    if steps is not None and g[-1] != check_steps(steps):
        raise ValueError(f"grid ends at {g[-1]} but steps = {steps}")
    if np.any(g % multiple_of):
        raise ValueError(f"every grid step must be a multiple of {multiple_of} for this optimizer")
    return g
