"""Generic Numba kernels of the block integrator (research/sgd.md §5.3 method 2).

For a per-mode affine step  s_j <- a_j s_j + f_j + h_j E(k)  with a_j = 1 + am1_j held fixed over a
block of n steps and E interpolated linearly, E(k+i) = E0 + (E1 - E0) i/n, the block is exact:

    s_j(k+n) = a_j^n s_j(k) + f_j S0_j + h_j [E0 S0_j + (E1 - E0)/n S1_j],
    S0 = sum_{m<n} a^m = expm1(n l)/am1,            l = log1p(am1),
    S1 = sum_{i<n} i a^(n-1-i) = (S0 - n)/am1.

Precision (research/sgd.md §5.4): am1 is formed directly, never as a - 1; for |n l| < 1e-3 the
cancelling S0 - n is replaced by power sums (S0 = sum_r l^r/r! P_r, P_r = sum_{m<n} m^r, to r = 3,
relative truncation error < 1e-13). Modes with a <= 0 (possible for clipped SGD, LA: research notes)
use signed integer powers. n = 1 gives S0 = 1, S1 = 0: one exact step.
"""
from __future__ import annotations

import math

import numba as nb
import numpy as np


@nb.njit(cache=True)
def log_multipliers(am1, ell):
    """ell_j = log1p(am1_j) where a_j > 0 (NaN where a_j <= 0: those use signed powers)."""
    for j in range(am1.shape[0]):
        ell[j] = math.log1p(am1[j]) if am1[j] > -1.0 else np.nan


@nb.njit(cache=True)
def block_powers(am1, ell_in, n, an, S0, S1):
    """Fill a^n, S0, S1 (see module docstring) for every mode; ``ell_in`` from ``log_multipliers``."""
    nf = float(n)
    p1 = nf * (nf - 1.0) / 2.0
    p2 = (nf - 1.0) * nf * (2.0 * nf - 1.0) / 6.0
    p3 = p1 * p1
    p4 = nf * (nf - 1.0) * (2.0 * nf - 1.0) * (3.0 * nf * nf - 3.0 * nf - 1.0) / 30.0
    for j in range(am1.shape[0]):
        x = am1[j]
        if x > -1.0:
            ell = ell_in[j]
            t = nf * ell
            if abs(t) < 1e-3:
                l2 = ell * ell / 2.0
                l3 = ell * ell * ell / 6.0
                s0 = nf + ell * p1 + l2 * p2 + l3 * p3
                sm = p1 + ell * p2 + l2 * p3 + l3 * p4
                an[j] = math.exp(t)
                S0[j] = s0
                S1[j] = (nf - 1.0) * s0 - sm
            else:
                e = math.expm1(t)
                an[j] = e + 1.0
                s0 = e / x
                S0[j] = s0
                S1[j] = (s0 - nf) / x
        else:
            a = 1.0 + x
            p = a ** n
            an[j] = p
            s0 = (1.0 - p) / (-x)
            S0[j] = s0
            S1[j] = (nf - s0) / (-x)


@nb.njit(cache=True)
def block_apply(an, S0, S1, f, h, s_in, s_out, n, E0, E1, W, c0, z):
    """s_out = one block of n steps from s_in (module docstring); z = c0 + W @ s_out."""
    slope = (E1 - E0) / n
    for j in range(s_in.shape[0]):
        s_out[j] = an[j] * s_in[j] + f[j] * S0[j] + h[j] * (E0 * S0[j] + slope * S1[j])
    for r in range(W.shape[0]):
        acc = c0[r]
        for j in range(s_out.shape[0]):
            acc += W[r, j] * s_out[j]
        z[r] = acc


@nb.njit(cache=True)
def run_blocks(am1, ell, f, h, s, W, c0, k, k_stop, k_ref, delta, span, grid, rec, i, cap):
    """Fused block loop for coefficients fixed over [k, k_stop) (lr constant there, coefficients
    independent of the scalars): blocks of n steps, n the largest power of two (in updates) with
    n <= delta (k - k_ref) (at least one update, never past the next record step), each with its end value E1 solved exactly (see
    ``hdtheory.solve._Blocks._pass``); records rec[i] = E/2 at grid[i]. Updates s in place.

    Returns (k, i, diverged): diverged = 1 when E passed ``cap`` or stopped being finite."""
    size = s.shape[0]
    an = np.empty(size)
    S0 = np.empty(size)
    S1 = np.empty(size)
    s_new = np.empty(size)
    z = np.empty(W.shape[0])
    E0 = c0[0]
    for j in range(size):
        E0 += W[0, j] * s[j]
    n_prev = -1
    beta = 0.0
    while k < k_stop:
        # block length: the largest power of two (in updates) <= delta (k - k_ref), so that runs of equal
        # blocks reuse a^n, S0, S1 (computing them costs one expm1 per mode)
        target_n = delta * (k - k_ref) / span
        nu_q = 1
        while nu_q * 2 <= target_n:
            nu_q *= 2
        n = nu_q * span
        lim = grid[i] - k if i < grid.shape[0] else k_stop - k
        if k_stop - k < lim:
            lim = k_stop - k
        if n > lim:
            n = lim
        nu = n // span
        if nu != n_prev:
            block_powers(am1, ell, nu, an, S0, S1)
            beta = 0.0
            for j in range(size):
                beta += W[0, j] * h[j] * S1[j]
            beta /= nu
            n_prev = nu
        block_apply(an, S0, S1, f, h, s, s_new, nu, E0, E0, W, c0, z)
        if beta < 1.0:
            E1 = (z[0] - beta * E0) / (1.0 - beta)
            block_apply(an, S0, S1, f, h, s, s_new, nu, E0, E1, W, c0, z)
        for j in range(size):
            s[j] = s_new[j]
        k += n
        E0 = z[0]
        if not (E0 <= cap):
            return k, i, 1
        if i < grid.shape[0] and k == grid[i]:
            rec[i] = 0.5 * E0
            i += 1
    return k, i, 0
