"""Piecewise Chebyshev tables of the clipping reduction factors in u = log q, for one clip level.

At a constant clip level (a fixed tau^2, or a relative kappa: tau^2 = kappa^2 E) the factors (mu, nu-hat, A) are
functions of q alone. For Gaussian noise (closed forms in y0 = B tau^2 / E) and the B = 1 Student-t mixture they
are analytic in u = log q in a strip about the real axis (their singularities sit at q = -sigma^2, or q = -v_i for
the mixture's components, i.e. at Im u = pi; without label noise exp(-y0/2) stays bounded for |Im u| < pi/2). On
segments of width 1 in u a degree-18 interpolant at the Chebyshev-Gauss nodes then matches them to
a few 1e-15 (mu and nu-hat relative, A relative to max(|A|, 2 mu), the scale at which A enters the recursion;
docs/derivations/clipped_sgd.md §4) at a small fraction of the cost (the mixture's 64 nodes, the incomplete gamma
functions). A segment whose last two coefficients exceed TAIL_TOL of that scale is left out (NaN); there, outside
the table, or at another clip level the factors are evaluated directly.

Layout: tab[c, i, k] is coefficient k of factor c on segment i, u in [u_lo + i, u_lo + i + 1); grid = (1, u_lo,
number of segments, the clip key, relative) where the key is tau^2 (fixed level) or kappa^2 (relative).
"""
from __future__ import annotations

import math

import numba as nb
import numpy as np

from ...jit import KERNEL

#: degree of each segment's interpolant, and the segments' width in u = log q
DEGREE = 18
WIDTH = 1.0
#: a segment is kept where its last two coefficients are below this fraction of the factor's scale there
TAIL_TOL = 1e-14
#: a clip level within this relative distance of the table's key uses the table
KEY_TOL = 1e-14

_J = np.arange(DEGREE + 1)
#: Chebyshev-Gauss nodes x_j = cos(pi (j + 1/2) / (DEGREE + 1)) and the transform c = f @ _TRANSFORM
_NODES = np.cos(np.pi * (_J + 0.5) / (DEGREE + 1))
_TRANSFORM = (2.0 / (DEGREE + 1)) * np.cos(np.pi * np.outer(_J + 0.5, _J) / (DEGREE + 1))
_TRANSFORM[:, 0] *= 0.5


@nb.njit(**KERNEL)
def table_node(u_lo, i, j):
    """u of node j of segment i of a table from u_lo."""
    return u_lo + WIDTH * (i + 0.5 * (_NODES[j] + 1.0))


@nb.njit(**KERNEL)
def fit_segments(values):
    """tab (3, segments, DEGREE + 1) from the factors (mu, nu-hat, A) at the nodes, values[c, i, j] at
    ``table_node(u_lo, i, j)``; a segment whose interpolant has not converged is NaN."""
    nc, ns, nn = values.shape
    tab = np.zeros((nc, ns, nn))
    for c in range(nc):
        for i in range(ns):
            for j in range(nn):
                v = values[c, i, j]
                for k in range(nn):
                    tab[c, i, k] += v * _TRANSFORM[j, k]
    for i in range(ns):
        ok = True
        for c in range(nc):
            scale = 0.0
            for j in range(nn):
                v = abs(values[c, i, j])
                if c == 2:
                    v = max(v, 2.0 * abs(values[0, i, j]))
                scale = max(scale, v)
            tail = max(abs(tab[c, i, nn - 1]), abs(tab[c, i, nn - 2]))
            if not tail <= TAIL_TOL * scale:
                ok = False
        if not ok:
            tab[:, i, :] = np.nan
    return tab


@nb.njit(**KERNEL)
def _clenshaw3(tab, i, x):
    """The three series of segment i at x in [-1, 1] by Clenshaw's recurrence, in one loop (three independent
    chains)."""
    a1 = a2 = b1 = b2 = c1 = c2 = 0.0
    x2 = 2.0 * x
    for k in range(tab.shape[2] - 1, 0, -1):
        a0 = x2 * a1 - a2 + tab[0, i, k]
        b0 = x2 * b1 - b2 + tab[1, i, k]
        c0 = x2 * c1 - c2 + tab[2, i, k]
        a2, a1, b2, b1, c2, c1 = a1, a0, b1, b0, c1, c0
    return x * a1 - a2 + tab[0, i, 0], x * b1 - b2 + tab[1, i, 0], x * c1 - c2 + tab[2, i, 0]


@nb.njit(**KERNEL)
def table_factors(q, tau2, E, tab, grid):
    """(covered, mu, nu-hat, A) at excess MSE q and clip tau^2 (E = q + sigma^2) from the table; covered is
    False where the table does not apply (another clip level, q outside it, a segment left out)."""
    if not grid[0] == 1.0:
        return False, 0.0, 0.0, 0.0
    key = tau2 / E if grid[4] == 1.0 else tau2
    if not abs(key - grid[3]) <= KEY_TOL * grid[3]:
        return False, 0.0, 0.0, 0.0
    y = (math.log(q) - grid[1]) / WIDTH
    if not (y >= 0.0 and y < grid[2]):
        return False, 0.0, 0.0, 0.0
    i = int(y)
    if not tab[0, i, 0] == tab[0, i, 0]:
        return False, 0.0, 0.0, 0.0
    mu, nuh, A = _clenshaw3(tab, i, 2.0 * (y - i) - 1.0)
    return True, mu, nuh, A
