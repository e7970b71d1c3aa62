"""Generic Numba kernels of the block integrator (research/sgd.md §5.3 method 2, extended).

For a per-mode affine step  s_j <- a_j s_j + f_j + h_j E(k)  with a_j = 1 + am1_j held fixed over a
block of n steps and E interpolated linearly, E(k+i) = E0 + (E1 - E0) i/n, the block is exact:

    s_j(k+n) = a_j^n s_j(k) + f_j S0_j + h_j [E0 S0_j + (E1 - E0)/n S1_j],
    S0 = sum_{m<n} a^m = expm1(n l)/am1,            l = log1p(am1),
    S1 = sum_{i<n} i a^(n-1-i) = (S0 - n)/am1.

Precision (research/sgd.md §5.4): am1 is formed directly, never as a - 1; for |n l| < 1e-3 the
cancelling S0 - n is replaced by power sums (S0 = sum_r l^r/r! P_r, P_r = sum_{m<n} m^r, to r = 3,
relative truncation error < 1e-13). Modes with a <= 0 (possible for clipped SGD, LA: research notes)
use signed integer powers. n = 1 gives S0 = 1, S1 = 0: one exact step.

Where E changes by more than a few percent inside a block (exponential decay of a finite spectrum without
a noise floor: one mode with sigma = 0 decays by 1e11 over a 64-step block), linear interpolation
overestimates the forcing without bound (measured: 6.6e-43 for an exact 1e-86 at 1e5 steps). There E is
interpolated *geometrically*, E(k+i) = E0 r^i (exact for an exponential, second order otherwise), with

    sum_{i<n} a^(n-1-i) r^i = (r^n - a^n) / (r - a)   (series where r ~ a),

and E1 = E0 r^n solved by a secant iteration in log E1 (``block_solve``). This is an addition to the note's
method, derived here and checked against the exact recursion in tests/test_properties.py.
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


@nb.njit(cache=True, inline="always")
def readout(W, c0, s, z):
    """z = c0 + W @ s (the scalar summaries; z[0] = E)."""
    for r in range(W.shape[0]):
        acc = c0[r]
        for j in range(s.shape[0]):
            acc += W[r, j] * s[j]
        z[r] = acc


@nb.njit(cache=True)
def block_apply_geometric(am1, ell, f, h, an, S0, s_in, s_out, n, E0, E1, W, c0, z):
    """As ``block_apply`` with E interpolated geometrically from E0 to E1 (E0, E1 > 0): the forcing sum

        G_j = sum_{i<n} a_j^(n-1-i) r^i = (R - a_j^n) / (r - a_j),   R = E1/E0 = r^n,

    evaluated as ((R - 1) - S0_j am1_j) / (expm1(log r) - am1_j) (a^n - 1 = S0 am1 exactly, so no
    transcendental per mode); where r ~ a_j (|n (l_j - log r)| < 1e-3, cancellation) as
    r^(n-1) sum_{m<n} e^(m x), x = l_j - log r, by power sums to third order."""
    nf = float(n)
    lr = math.log(E1 / E0) / nf
    Rm1 = math.expm1(nf * lr)
    rm1 = math.expm1(lr)
    scale = math.exp((nf - 1.0) * lr)
    p1 = nf * (nf - 1.0) / 2.0
    p2 = (nf - 1.0) * nf * (2.0 * nf - 1.0) / 6.0
    p3 = p1 * p1
    for j in range(s_in.shape[0]):
        x = ell[j] - lr  # NaN for a_j <= 0: direct form (r - a_j >= r > 0 there)
        if abs(nf * x) < 1e-3:
            G = scale * (nf + x * p1 + x * x / 2.0 * p2 + x * x * x / 6.0 * p3)
        else:
            G = (Rm1 - S0[j] * am1[j]) / (rm1 - am1[j])
        s_out[j] = an[j] * s_in[j] + f[j] * S0[j] + h[j] * E0 * G
    readout(W, c0, s_out, z)


@nb.njit(cache=True)
def block_solve(am1, ell, f, h, an, S0, S1, beta, s_in, s_out, n, E0, W, c0, z, geo_tol):
    """One block with a self-consistent end value E1 = z[0]: linear interpolation with E1 solved exactly
    (the block is affine in E1: E_out(E1) = E_out(E0) + beta (E1 - E0)); then, if |log(E1/E0)| > geo_tol,
    geometric interpolation with E1 solved by secant iteration in log E1."""
    block_apply(an, S0, S1, f, h, s_in, s_out, n, E0, E0, W, c0, z)
    if beta < 1.0:
        E1 = (z[0] - beta * E0) / (1.0 - beta)
        block_apply(an, S0, S1, f, h, s_in, s_out, n, E0, E1, W, c0, z)
    # beta >= 1: no consistent interpolation (the block's noise loop is unstable); keep the E-held
    # predictor and let the divergence check end the run
    E1 = z[0]
    if not (E0 > 1e-280 and E1 > 1e-280 and beta < 1.0) or abs(math.log(E1 / E0)) <= geo_tol:
        return  # linear and geometric interpolation agree to ~geo_tol^2 / 8 here
    u0 = math.log(E1)
    block_apply_geometric(am1, ell, f, h, an, S0, s_in, s_out, n, E0, E1, W, c0, z)
    if not (z[0] > 0.0):
        block_apply(an, S0, S1, f, h, s_in, s_out, n, E0, E1, W, c0, z)
        return
    g0 = math.log(z[0]) - u0
    if abs(g0) < 1e-10:
        return
    # second point: a Newton step with the linear interpolation's sensitivity beta (a plain fixed-point step
    # contracts only by ~beta, close to 1 near the stability threshold); then secant iterations in log E1.
    # s_out and z always hold the pass at the last evaluated point.
    u1 = u0 + g0 / (1.0 - beta)
    for _ in range(60):
        block_apply_geometric(am1, ell, f, h, an, S0, s_in, s_out, n, E0, math.exp(u1), W, c0, z)
        if not (z[0] > 0.0):
            block_apply_geometric(am1, ell, f, h, an, S0, s_in, s_out, n, E0, math.exp(u0), W, c0, z)
            return
        g1 = math.log(z[0]) - u1
        if abs(g1) < 1e-10 or g1 == g0:
            return
        u2 = u1 - g1 * (u1 - u0) / (g1 - g0)
        u0, g0, u1 = u1, g1, u2


@nb.njit(cache=True)
def block_apply(an, S0, S1, f, h, s_in, s_out, n, E0, E1, W, c0, z):
    """s_out = one block of n steps from s_in (module docstring); z = c0 + W @ s_out."""
    slope = (E1 - E0) / n
    for j in range(s_in.shape[0]):
        s_out[j] = an[j] * s_in[j] + f[j] * S0[j] + h[j] * (E0 * S0[j] + slope * S1[j])
    readout(W, c0, s_out, z)


@nb.njit(cache=True)
def block_change(E0, E1, beta, dmax):
    """Step-size control of a block: (|log(E1/E0)|, the largest accepted value dmax sqrt(1 - beta)).
    Interpolation errors ~ |log(E1/E0)|^2/8 are amplified by 1/(1 - beta) through the noise loop; the
    change counts as 0 where E has underflowed."""
    change = abs(math.log(E1 / E0)) if (E0 > 1e-280 and E1 > 1e-280) else 0.0
    return change, dmax * math.sqrt(max(1.0 - beta, 1e-4))


@nb.njit(cache=True)
def extrapolate_scalars(z, zp, ratio, out):
    """Scalars at the end of a block, extrapolated from the previous block (scalars zp at its start, z at its
    end = this block's start, ``ratio`` = this block's length / the previous one's): E = z[0] geometrically,
    z[0] (z[0]/zp[0])^ratio (linearly if either is <= 0), the other scalars linearly."""
    for r in range(z.shape[0]):
        if r == 0 and z[0] > 0.0 and zp[0] > 0.0:
            out[0] = z[0] * math.exp(ratio * math.log(z[0] / zp[0]))
        else:
            out[r] = z[r] + (z[r] - zp[r]) * ratio




# ------------------------------------------------------------------------------------------------------
# the block integrator
# ------------------------------------------------------------------------------------------------------

@nb.njit(cache=True)
def _interpolate_forcing(S0, S1, nu, am1b, fb, hb, am1c, fc, hc, am1, f, h):
    """Coefficients of a block whose hyperparameters move from start (b) to end (c): each mode at the centre
    of its memory, the fraction x_j = S1_j / (S0_j (nu - 1)) of the way along the block (the midpoint for
    slow modes, the end for modes that equilibrate within the block), by linear interpolation."""
    for j in range(am1.shape[0]):
        x = S1[j] / max(S0[j], 1e-300) / max(nu - 1.0, 1.0)
        x = min(max(x, 0.0), 1.0)
        am1[j] = am1b[j] + (am1c[j] - am1b[j]) * x
        f[j] = fb[j] + (fc[j] - fb[j]) * x
        h[j] = hb[j] + (hc[j] - hb[j]) * x


@nb.njit(inline="always")
def integrate(coef, consts, hp, s, W, c0, z, k, k_stop, k_ref, delta, span, grid, rec, i, cap, geo_tol, dmax,
              dependence, correctors, extrapolate, single, switching, carry):
    """Advance the per-mode affine map s_j <- (1 + am1_j) s_j + f_j + h_j E over [k, k_stop) in blocks.

    ``coef(hp_row, z, s, consts, am1, f, h) -> regime`` is the theory's Numba coefficient kernel. ``hp`` holds
    three rows of hyperparameters: the block's middle (the coefficients of a^n), its start and its end; where
    start and end differ (a schedule moving inside a single block) each mode's forcing is taken at the centre
    of its memory (``_interpolate_forcing``). ``dependence`` (``hdtheory.theory``): FIXED coefficients are
    evaluated once and blocks are powers of two (in updates) so that a^n, S0, S1 are reused; STATE: once per
    block, at its start; SCALARS: held at the scalars' weighted value z0 + (z1 - z0)(nu - 1)/(2 nu), z1 the
    block's end value, from a first pass at z0 (or at z1 extrapolated from the previous block, ``extrapolate``)
    and ``correctors`` more passes, each at the z1 of the pass before.

    Block length: about delta (k - k_ref) steps (a multiple of ``span``, at least one update), never past the
    next record step or k_stop; with ``single`` exactly one block of up to k_stop - k steps (a rejected one is
    returned to the caller). Step-size control: a block whose |log(E1/E0)| exceeds dmax sqrt(1 - beta) is
    halved and redone (for FIXED coefficients the
    cap persists and doubles back once blocks change log E by a quarter of that). With ``switching``, a block
    whose end regime differs from its start regime is halved down to one update, and block growth restarts
    there (k_ref = the switch), as at a schedule breakpoint.

    ``carry`` = [step where the previous block ended, its length, its start scalars...] links consecutive calls
    (extrapolation); it is updated. s and z (= c0 + W s) are updated in place; rec[i] = E/2 is recorded at
    grid[i]. Returns (k, i, status, k_ref): status 0 = done, 1 = diverged (E passed ``cap`` or stopped being
    finite), 2 = a ``single`` block was rejected by the step-size control (nothing advanced)."""
    size = s.shape[0]
    nz = W.shape[0]
    am1 = np.empty(size)
    ell = np.empty(size)
    f = np.empty(size)
    h = np.empty(size)
    an = np.empty(size)
    S0 = np.empty(size)
    S1 = np.empty(size)
    s_new = np.empty(size)
    z1 = np.empty(nz)
    zc = np.empty(nz)
    zg = np.empty(nz)
    zp = np.empty(nz)
    for r in range(nz):
        zp[r] = carry[2 + r]
    moving = False
    for r in range(hp.shape[1]):
        if hp[1, r] != hp[2, r]:
            moving = True
    nm = size if (moving or switching) else 0
    am1b = np.empty(nm)
    fb = np.empty(nm)
    hb = np.empty(nm)
    am1c = np.empty(nm)
    fc = np.empty(nm)
    hc = np.empty(nm)
    am1i = np.empty(nm)
    elli = np.empty(nm)
    fi = np.empty(nm)
    hi = np.empty(nm)
    S0i = np.empty(nm)
    S1i = np.empty(nm)
    fixed = dependence == 0
    by_scalars = dependence == 2
    n_prev = carry[1] if carry[0] == k else 0.0
    have_coef = False
    nu_pow = -1
    beta = 0.0
    nu_cap = 1 << 62
    while k < k_stop:
        lim = k_stop - k
        if i < grid.shape[0] and grid[i] - k < lim:
            lim = grid[i] - k
        if single:
            nu = lim // span
        elif fixed:
            target_n = delta * (k - k_ref) / span
            nu = 1
            while nu * 2 <= target_n and nu * 2 <= nu_cap:
                nu *= 2
            nu = min(nu, lim // span)
        else:
            nu = min(int(delta * (k - k_ref)) // span, lim // span)
        if nu < 1:
            nu = 1
        block = nu >= 2
        passes = 1 + correctors if (by_scalars and block) else 1
        guess = by_scalars and block and extrapolate and n_prev > 0
        reg0 = 0
        if switching:
            reg0 = coef(hp[0], z, s, consts, am1b, fb, hb)
        while True:
            w = (nu - 1.0) / (2.0 * nu)
            if guess:
                extrapolate_scalars(z, zp, nu * span / n_prev, zg)
            for p in range(passes):
                for r in range(nz):
                    if p == 0:
                        zc[r] = z[r] + (zg[r] - z[r]) * w if guess else z[r]
                    else:
                        zc[r] = z[r] + (z1[r] - z[r]) * w
                if not (fixed and have_coef):
                    coef(hp[0], zc, s, consts, am1, f, h)
                    log_multipliers(am1, ell)
                    have_coef = True
                    nu_pow = -1
                if nu != nu_pow:
                    block_powers(am1, ell, nu, an, S0, S1)
                    nu_pow = nu
                    if not (moving and block):
                        beta = 0.0
                        for j in range(size):
                            beta += W[0, j] * h[j] * S1[j]
                        beta /= nu
                if moving and block:
                    coef(hp[1], zc, s, consts, am1b, fb, hb)
                    coef(hp[2], zc, s, consts, am1c, fc, hc)
                    _interpolate_forcing(S0, S1, nu, am1b, fb, hb, am1c, fc, hc, am1i, fi, hi)
                    log_multipliers(am1i, elli)
                    block_powers(am1i, elli, nu, s_new, S0i, S1i)  # s_new: scratch for the unused a^n
                    beta = 0.0
                    for j in range(size):
                        beta += W[0, j] * hi[j] * S1i[j]
                    beta /= nu
                    block_solve(am1i, elli, fi, hi, an, S0i, S1i, beta, s, s_new, nu, z[0], W, c0, z1, geo_tol)
                else:
                    block_solve(am1, ell, f, h, an, S0, S1, beta, s, s_new, nu, z[0], W, c0, z1, geo_tol)
            change, allowed = block_change(z[0], z1[0], beta, dmax)
            ok = change <= allowed
            if ok and switching and nu > 1:
                ok = coef(hp[0], z1, s_new, consts, am1b, fb, hb) == reg0
            if ok or nu == 1:
                break
            if single:
                return k, i, 2, k_ref  # rejected: the caller halves the block (and re-reads its hyperparameters)
            nu //= 2
            if fixed and not single:
                nu_cap = nu
            block = nu >= 2
            passes = 1 + correctors if (by_scalars and block) else 1
            guess = guess and block
        if fixed and not single and change < allowed / 4.0 and nu >= nu_cap:
            nu_cap = 2 * nu_cap if nu_cap < (1 << 61) else nu_cap
        for j in range(size):
            s[j] = s_new[j]
        for r in range(nz):
            zp[r] = z[r]
            z[r] = z1[r]
        n_prev = nu * span if block else 0.0
        k += nu * span
        if switching and not block and coef(hp[0], z, s, consts, am1b, fb, hb) != reg0:
            k_ref = k
        carry[0] = k
        carry[1] = n_prev
        for r in range(nz):
            carry[2 + r] = zp[r]
        if not (z[0] <= cap):
            return k, i, 1, k_ref
        if i < grid.shape[0] and k == grid[i]:
            rec[i] = 0.5 * z[0]
            i += 1
        if single:
            break
    return k, i, 0, k_ref
