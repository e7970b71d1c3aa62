"""The block integrator: closed-form powers of a per-mode affine map, in Numba (derivation, precision and
measured accuracy: docs/derivations/blocks.md).

For  s_j <- a_j s_j + f_j + h_j E(k),  a_j = 1 + am1_j, held fixed over a block of n steps, with E interpolated
linearly, E(k+i) = E0 + (E1 - E0) i/n, the block is exact:

    s_j(k+n) = a_j^n s_j(k) + f_j S0_j + h_j [E0 S0_j + (E1 - E0)/n S1_j],
    S0 = sum_{m<n} a^m = expm1(n l)/am1,  l = log1p(am1),    S1 = sum_{i<n} i a^(n-1-i) = (S0 - n)/am1,

with power sums where |n l| < 1e-3 (the cancelling S0 - n) and signed integer powers where a <= 0. Where E changes
by more than a little inside a block it is interpolated geometrically, E(k+i) = E0 r^i, with the forcing sum
sum_{i<n} a^(n-1-i) r^i = (r^n - a^n)/(r - a); the end value E1 is solved self-consistently (``block_solve``).
``integrate`` is the one block loop every theory's block form runs through.
"""
from __future__ import annotations

import math

import numba as nb
import numpy as np

from .jit import KERNEL, MAP_KERNEL
from .special import LOG1P_SMALL_MAX, LOG1P_VEC_MAX, expm1_vec, log1p_small_vec, log1p_vec


@nb.njit(**MAP_KERNEL)
def log_multipliers(am1, ell):
    """ell_j = log1p(am1_j) where a_j > 0 (NaN where a_j <= 0: those use signed powers). Where every
    |am1_j| <= LOG1P_SMALL_MAX (slow modes only, the usual case) one pass of the short series
    ``log1p_small_vec``; else one branch-free pass of ``log1p_vec`` (every mode with |am1| <= LOG1P_VEC_MAX: all
    but the strongly damped), then libm's log1p for the rest."""
    n_fast = 0
    for j in range(am1.shape[0]):
        n_fast += abs(am1[j]) > LOG1P_SMALL_MAX
    if n_fast == 0:
        for j in range(am1.shape[0]):
            ell[j] = log1p_small_vec(am1[j])
        return
    for j in range(am1.shape[0]):
        ell[j] = log1p_vec(am1[j])
    for j in range(am1.shape[0]):
        x = am1[j]
        if not abs(x) <= LOG1P_VEC_MAX:
            ell[j] = math.log1p(x) if x > -1.0 else np.nan


@nb.njit(cache=True, inline="always", error_model="numpy")
def _power_terms(x, ell_j, nf, p1, p2, p3):
    """Per mode of ``block_powers``: (ell, ell^2/2, ell^3/6, expm1(n ell), S0 by its power sums, |n ell| < 1e-3)."""
    ell = ell_j if x > -1.0 else 0.0
    t = nf * ell
    l2 = ell * ell / 2.0
    l3 = ell * ell * ell / 6.0
    s0_sum = nf + ell * p1 + l2 * p2 + l3 * p3
    return ell, l2, l3, expm1_vec(t), s0_sum, abs(t) < 1e-3


@nb.njit(**MAP_KERNEL)
def block_powers(am1, ell_in, n, an, S0, S1):
    """Fill a^n, S0, S1 (see module docstring) for every mode; ``ell_in`` from ``log_multipliers``. One
    branch-free pass for a > 0 (``expm1_vec``; power sums where |n l| < 1e-3), then signed integer powers for
    the modes with a <= 0 (or NaN)."""
    nf = float(n)
    p1 = nf * (nf - 1.0) / 2.0
    p2 = (nf - 1.0) * nf * (2.0 * nf - 1.0) / 6.0
    p3 = p1 * p1
    p4 = nf * (nf - 1.0) * (2.0 * nf - 1.0) * (3.0 * nf * nf - 3.0 * nf - 1.0) / 30.0
    for j in range(am1.shape[0]):
        x = am1[j]
        ell, l2, l3, e, s0_sum, small = _power_terms(x, ell_in[j], nf, p1, p2, p3)
        sm = p1 + ell * p2 + l2 * p3 + l3 * p4
        an[j] = e + 1.0
        s0 = s0_sum if small else e / x
        S0[j] = s0
        S1[j] = (nf - 1.0) * s0_sum - sm if small else (s0 - nf) / x
    _signed_powers(am1, n, an, S0, S1)


@nb.njit(**MAP_KERNEL)
def block_powers_unforced(am1, ell_in, n, an, S0, S1):
    """``block_powers`` for a map with no forcing by E (h = 0 for every mode), which needs a^n and S0 only: S1 is
    set to 0 where a > 0 (it multiplies h), saving its division and power sums per mode."""
    nf = float(n)
    p1 = nf * (nf - 1.0) / 2.0
    p2 = (nf - 1.0) * nf * (2.0 * nf - 1.0) / 6.0
    p3 = p1 * p1
    for j in range(am1.shape[0]):
        x = am1[j]
        ell, l2, l3, e, s0_sum, small = _power_terms(x, ell_in[j], nf, p1, p2, p3)
        an[j] = e + 1.0
        S0[j] = s0_sum if small else e / x
        S1[j] = 0.0
    _signed_powers(am1, n, an, S0, S1)


@nb.njit(**MAP_KERNEL)
def _signed_powers(am1, n, an, S0, S1):
    """a^n, S0, S1 by signed integer powers for the modes with a <= 0 (or NaN), counted first in a vectorized scan
    (the pass itself, a power per hit, does not vectorize)."""
    n_signed = 0
    for j in range(am1.shape[0]):
        n_signed += not am1[j] > -1.0
    if n_signed == 0:
        return
    nf = float(n)
    for j in range(am1.shape[0]):
        x = am1[j]
        if not x > -1.0:
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


@nb.njit(**KERNEL)
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


@nb.njit(cache=True, inline="always")
def forced_by_E(h):
    """Whether some mode is forced by E (h_j != 0): the block then depends on E's path and needs S1. A vectorized
    count (an early exit would scan the usual all-zero h one mode at a time)."""
    hits = 0
    for j in range(h.shape[0]):
        hits += h[j] != 0.0
    return hits > 0


@nb.njit(**KERNEL)
def block_solve(am1, ell, f, h, an, S0, S1, beta, s_in, s_out, n, E0, W, c0, z, geo_tol):
    """One block with a self-consistent end value E1 = z[0]: linear interpolation with E1 solved exactly
    (the block is affine in E1: E_out(E1) = E_out(E0) + beta (E1 - E0)); then, if |log(E1/E0)| > geo_tol,
    geometric interpolation with E1 solved by secant iteration in log E1. Where no mode is forced by E (h = 0)
    the block does not depend on E1 and one application is the answer."""
    block_apply(an, S0, S1, f, h, s_in, s_out, n, E0, E0, W, c0, z)
    if not forced_by_E(h):
        return
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


@nb.njit(**KERNEL)
def block_apply(an, S0, S1, f, h, s_in, s_out, n, E0, E1, W, c0, z):
    """s_out = one block of n steps from s_in (module docstring); z = c0 + W @ s_out."""
    slope = (E1 - E0) / n
    for j in range(s_in.shape[0]):
        s_out[j] = an[j] * s_in[j] + f[j] * S0[j] + h[j] * (E0 * S0[j] + slope * S1[j])
    readout(W, c0, s_out, z)


@nb.njit(**KERNEL)
def block_change(E0, E1, beta, dmax):
    """Step-size control of a block: (|log(E1/E0)|, the largest accepted value dmax sqrt(1 - beta)).
    Interpolation errors ~ |log(E1/E0)|^2/8 are amplified by 1/(1 - beta) through the noise loop; the
    change counts as 0 where E has underflowed."""
    change = abs(math.log(E1 / E0)) if (E0 > 1e-280 and E1 > 1e-280) else 0.0
    return change, dmax * math.sqrt(max(1.0 - beta, 1e-4))


@nb.njit(**KERNEL)
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

#: a corrector pass is skipped once the previous pass ended within this relative distance of the end scalars its
#: coefficients assumed (measured: signSGD and clipped-SGD curves within 1e-5 of the exact map as with every
#: corrector; floors reached to 1e-10, the plateau reuse below taking over there)
CTOL = 1e-7
#: the same after an extrapolated predictor: its coefficients sit at the weighted scalars of a block already
#: within CTOL_GUESS of the end it assumed (measured: signSGD and clipped-SGD curves within 4e-6 of the exact map,
#: as with the corrector; floors reached to 1e-12)
CTOL_GUESS = 1e-4
#: scalar-dependent coefficients are reused (with their powers, as fixed ones are) while the scalars at which a pass
#: wants them stay within this relative distance of where they were last evaluated: on a plateau of the risk (a
#: floor) blocks then cost what fixed ones do, and the floor is still reached to ~ZTOL
ZTOL = 1e-11


@nb.njit(**KERNEL)
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


@nb.njit(**KERNEL)
def _updates_in_block(k, k_stop, k_ref, delta, span, grid, i, single, pow2, nu_cap):
    """Updates in the next block: the rest of a ``single`` block; else about delta (k - k_ref) steps, the largest
    power of two (in updates, at most ``nu_cap``) below it where ``pow2`` (so that a^n, S0, S1 are reused);
    never past the next record step or k_stop, at least one."""
    lim = k_stop - k
    if i < grid.shape[0] and grid[i] - k < lim:
        lim = grid[i] - k
    if single:
        nu = lim // span
    elif pow2:
        target_n = delta * (k - k_ref) / span
        nu = 1
        while nu * 2 <= target_n and nu * 2 <= nu_cap:
            nu *= 2
        nu = min(nu, lim // span)
    else:
        nu = min(int(delta * (k - k_ref)) // span, lim // span)
    return max(nu, 1)


@nb.njit(**KERNEL)
def _grown_cap(nu_cap, nu, change, allowed):
    """The cap on power-of-two blocks doubles back once blocks change log E by a quarter of what is allowed."""
    if change < allowed / 4.0 and nu >= nu_cap and nu_cap < (1 << 61):
        return 2 * nu_cap
    return nu_cap


@nb.njit(**KERNEL)
def _commit(s, s_new, z, z1, carry, k, n_block, cap, grid, rec, i):
    """Accept a block that ends at step k: the state and scalars move on, ``carry`` keeps this block's start
    scalars and length (n_block, 0 for a single update); rec[i] = E/2 where k is a record step.
    Returns (i, diverged)."""
    for j in range(s.shape[0]):
        s[j] = s_new[j]
    for r in range(z.shape[0]):
        carry[2 + r] = z[r]
        z[r] = z1[r]
    carry[0] = k
    carry[1] = n_block
    if not (z[0] <= cap):
        return i, True
    if i < grid.shape[0] and k == grid[i]:
        rec[i] = 0.5 * z[0]
        i += 1
    return i, False


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
    and up to ``correctors`` more passes, each at the z1 of the pass before, until a pass ends at the scalars its
    coefficients assumed (to CTOL relative: a further pass would change nothing that matters).

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
    zp = carry[2:]  # the previous block's start scalars
    za = np.empty(nz)
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
    forced_h = True  # some mode is forced by E (h != 0): S1 is needed
    nu_pow = -1
    beta = 0.0
    nu_cap = 1 << 62
    zev = np.empty(nz)  # the scalars at which the coefficients in hand were evaluated
    # (not across a closure switch: there the coefficients jump)
    lazy = by_scalars and ZTOL > 0.0 and not single and not moving and not switching
    reused = False  # the last block reused the coefficients of the one before (a plateau: lengths as for fixed ones)
    while k < k_stop:
        nu = _updates_in_block(k, k_stop, k_ref, delta, span, grid, i, single, fixed or reused, nu_cap)
        block = nu >= 2
        passes = 1 + correctors if (by_scalars and block) else 1
        guess = by_scalars and block and extrapolate and n_prev > 0
        evaluated = False
        reg0 = 0
        if switching:
            reg0 = coef(hp[0], z, s, consts, am1b, fb, hb)
        while True:
            w = (nu - 1.0) / (2.0 * nu)
            if guess:
                extrapolate_scalars(z, zp, nu * span / n_prev, zg)
            for p in range(passes):
                if p > 0:
                    # the end scalars this pass's coefficients assume (the previous pass's end): stop once a pass
                    # ends where its coefficients assumed it would
                    settled = True
                    tol = CTOL_GUESS if (p == 1 and guess) else CTOL
                    for r in range(nz):
                        if abs(z1[r] - za[r]) > tol * abs(z1[r]):
                            settled = False
                    if settled:
                        break
                for r in range(nz):
                    if p == 0:
                        za[r] = zg[r] if guess else z[r]
                        zc[r] = z[r] + (zg[r] - z[r]) * w if guess else z[r]
                    else:
                        za[r] = z1[r]
                        zc[r] = z[r] + (z1[r] - z[r]) * w
                need = not have_coef or not (fixed or lazy)
                if have_coef and lazy:
                    for r in range(nz):
                        if abs(zc[r] - zev[r]) > ZTOL * abs(zev[r]):
                            need = True
                if not need and p >= 1:
                    break  # the coefficients of the pass before: the same block again
                if need:
                    evaluated = True
                    coef(hp[0], zc, s, consts, am1, f, h)
                    log_multipliers(am1, ell)
                    forced_h = forced_by_E(h)
                    have_coef = True
                    nu_pow = -1
                    for r in range(nz):
                        zev[r] = zc[r]
                if nu != nu_pow:
                    if forced_h or moving:  # a moving schedule's interpolation reads S1 (_interpolate_forcing)
                        block_powers(am1, ell, nu, an, S0, S1)
                    else:
                        block_powers_unforced(am1, ell, nu, an, S0, S1)
                    nu_pow = nu
                    if not (moving and block):
                        beta = 0.0  # E's weight on its own block end: 0 without E forcing
                        if forced_h:
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
            if fixed or reused:
                nu_cap = nu
            block = nu >= 2
            passes = 1 + correctors if (by_scalars and block) else 1
            guess = guess and block
        if fixed or reused:
            nu_cap = _grown_cap(nu_cap, nu, change, allowed)
        reused = lazy and not evaluated
        n_prev = nu * span if block else 0.0
        k += nu * span
        i, diverged = _commit(s, s_new, z, z1, carry, k, n_prev, cap, grid, rec, i)
        if switching and not block and coef(hp[0], z, s, consts, am1b, fb, hb) != reg0:
            k_ref = k
        if diverged:
            return k, i, 1, k_ref
        if single:
            break
    return k, i, 0, k_ref


# ------------------------------------------------------------------------------------------------------
# the block integrator for a p x p map per mode (``BlockForm.p`` > 1)
# ------------------------------------------------------------------------------------------------------
# For s_j <- A_j s_j + f_j + h_j E with p x p matrices A_j = I + am1_j a block of n steps is
#
#     s_j(k+n) = A^n s_j + S0 f_j + E0 S0 h_j + (E1 - E0)/n S1 h_j              (E linear in the block),
#     s_j(k+n) = A^n s_j + S0 f_j + E0 G(r) h_j,  G(r) = sum_{i<n} A^(n-1-i) r^i   (E geometric, E1 = E0 r^n),
#
# S0 = sum_{m<n} A^m and S1 = sum_{i<n} i A^(n-1-i) as in the scalar form. They are built along the binary
# expansion of n, most significant bit first, with Q = A^m - I kept apart from I (slow modes lose no digits):
#     doubling   Q <- 2 Q + Q^2,   S0 v <- 2 S0 v + Q S0 v,   S1 v <- 2 S1 v + Q S1 v + m S0 v,
#                G v <- (1 + r^m) G v + Q G v;
#     increment  Q <- Q + am1 + am1 Q,   S0 v <- v + S0 v + am1 S0 v,   S1 v <- S1 v + am1 S1 v + m v,
#                G v <- G v + am1 G v + r^m v;
# only the vectors S0 f, S0 h, S1 h and G h are formed, and G is rebuilt with its own Q for each trial r (no
# stored chain: every work array is at most p x p x modes, so a call allocates little). Layout: mode index last
# (am1[a, b, j], f[a, j]; the state component-major, s[a * modes + j]), so every inner loop runs over the modes.


@nb.njit(**KERNEL)
def _bit_length(n):
    L = 0
    while n > 0:
        n >>= 1
        L += 1
    return L


@nb.njit(**KERNEL)
def _mat_double(Q, T):
    """Q <- 2 Q + Q Q per mode (Q, T (p, p, modes); T scratch)."""
    p, nm = Q.shape[0], Q.shape[2]
    for a in range(p):
        for b in range(p):
            t = T[a, b]
            q = Q[a, b]
            for j in range(nm):
                t[j] = 2.0 * q[j]
            for c in range(p):
                qac = Q[a, c]
                qcb = Q[c, b]
                for j in range(nm):
                    t[j] += qac[j] * qcb[j]
    Q[:, :, :] = T


@nb.njit(**KERNEL)
def _mat_increment(am1, Q, T):
    """Q <- Q + am1 + am1 Q per mode (A^m - I -> A^(m+1) - I)."""
    p, nm = Q.shape[0], Q.shape[2]
    for a in range(p):
        for b in range(p):
            t = T[a, b]
            for j in range(nm):
                t[j] = Q[a, b, j] + am1[a, b, j]
            for c in range(p):
                ac = am1[a, c]
                qcb = Q[c, b]
                for j in range(nm):
                    t[j] += ac[j] * qcb[j]
    Q[:, :, :] = T


@nb.njit(**KERNEL)
def _mat_vec(M, v, out, c):
    """out = c v + M v per mode (M (p, p, modes), v and out (p, modes), out != v)."""
    p, nm = v.shape[0], v.shape[1]
    for a in range(p):
        o = out[a]
        va = v[a]
        for j in range(nm):
            o[j] = c * va[j]
        for b in range(p):
            mab = M[a, b]
            vb = v[b]
            for j in range(nm):
                o[j] += mab[j] * vb[j]


@nb.njit(**KERNEL)
def mode_powers(am1, f, h, nu, Q, X, Y0, Y1, T, tv):
    """Q = A^nu - I, X = S0 f, Y0 = S0 h, Y1 = S1 h per mode (see above); T (p, p, modes) and tv (p, modes) are
    scratch."""
    L = _bit_length(nu)
    Q[:, :, :] = am1
    X[:, :] = f
    Y0[:, :] = h
    Y1[:, :] = 0.0
    m = 1.0
    for l in range(1, L):
        _mat_vec(Q, X, tv, 2.0)
        X[:, :] = tv
        _mat_vec(Q, Y1, tv, 2.0)
        Y1[:, :] = tv + m * Y0
        _mat_vec(Q, Y0, tv, 2.0)
        Y0[:, :] = tv
        _mat_double(Q, T)
        m *= 2.0
        if (nu >> (L - 1 - l)) & 1:
            _mat_vec(am1, X, tv, 1.0)
            X[:, :] = tv + f
            _mat_vec(am1, Y1, tv, 1.0)
            Y1[:, :] = tv + m * h
            _mat_vec(am1, Y0, tv, 1.0)
            Y0[:, :] = tv + h
            _mat_increment(am1, Q, T)
            m += 1.0


@nb.njit(**KERNEL)
def mode_geometric(am1, h, nu, r, G, Qg, T, tv):
    """G = G(r) h = sum_{i<nu} A^(nu-1-i) r^i h per mode (see above); Qg, T (p, p, modes) and tv scratch."""
    L = _bit_length(nu)
    Qg[:, :, :] = am1
    G[:, :] = h
    rm = r
    for l in range(1, L):
        _mat_vec(Qg, G, tv, 1.0 + rm)
        G[:, :] = tv
        _mat_double(Qg, T)
        rm = rm * rm
        if (nu >> (L - 1 - l)) & 1:
            _mat_vec(am1, G, tv, 1.0)
            G[:, :] = tv + rm * h
            _mat_increment(am1, Qg, T)
            rm *= r


@nb.njit(**KERNEL)
def mode_block_apply(Q, X, Y0, Y1, s_in, s_out, nu, E0, E1, W, c0, z):
    """s_out = one block of nu steps from s_in, E linear from E0 to E1 (Q = A^nu - I; X, Y0, Y1 the sums);
    z = c0 + W @ s_out."""
    p, nm = X.shape[0], X.shape[1]
    slope = (E1 - E0) / nu
    for a in range(p):
        o = a * nm
        for j in range(nm):
            s_out[o + j] = s_in[o + j] + X[a, j] + E0 * Y0[a, j] + slope * Y1[a, j]
        for b in range(p):
            q = Q[a, b]
            ob = b * nm
            for j in range(nm):
                s_out[o + j] += q[j] * s_in[ob + j]
    readout(W, c0, s_out, z)


@nb.njit(**KERNEL)
def mode_block_apply_geometric(Q, X, am1s, hs, s_in, s_out, nu, E0, E1, W, c0, z, G, Qg, T, tv):
    """As ``mode_block_apply`` with E geometric from E0 to E1 > 0 (G from the coefficients am1s, hs)."""
    p, nm = X.shape[0], X.shape[1]
    r = math.exp(math.log(E1 / E0) / nu)
    mode_geometric(am1s, hs, nu, r, G, Qg, T, tv)
    for a in range(p):
        o = a * nm
        for j in range(nm):
            s_out[o + j] = s_in[o + j] + X[a, j] + E0 * G[a, j]
        for b in range(p):
            q = Q[a, b]
            ob = b * nm
            for j in range(nm):
                s_out[o + j] += q[j] * s_in[ob + j]
    readout(W, c0, s_out, z)


@nb.njit(**KERNEL)
def mode_block_solve(Q, X, Y0, Y1, am1s, hs, beta, s_in, s_out, nu, E0, W, c0, z, geo_tol, G, Qg, T, tv):
    """``block_solve`` for the p x p form: linear interpolation with E1 solved exactly, then, if
    |log(E1/E0)| > geo_tol, geometric interpolation with E1 solved by secant iteration in log E1."""
    mode_block_apply(Q, X, Y0, Y1, s_in, s_out, nu, E0, E0, W, c0, z)
    if beta < 1.0:
        E1 = (z[0] - beta * E0) / (1.0 - beta)
        mode_block_apply(Q, X, Y0, Y1, s_in, s_out, nu, E0, E1, W, c0, z)
    E1 = z[0]
    if not (E0 > 1e-280 and E1 > 1e-280 and beta < 1.0) or abs(math.log(E1 / E0)) <= geo_tol:
        return
    u0 = math.log(E1)
    mode_block_apply_geometric(Q, X, am1s, hs, s_in, s_out, nu, E0, E1, W, c0, z, G, Qg, T, tv)
    if not (z[0] > 0.0):
        mode_block_apply(Q, X, Y0, Y1, s_in, s_out, nu, E0, E1, W, c0, z)
        return
    g0 = math.log(z[0]) - u0
    if abs(g0) < 1e-10:
        return
    u1 = u0 + g0 / (1.0 - beta)
    for _ in range(60):
        mode_block_apply_geometric(Q, X, am1s, hs, s_in, s_out, nu, E0, math.exp(u1), W, c0, z, G, Qg, T, tv)
        if not (z[0] > 0.0):
            mode_block_apply_geometric(Q, X, am1s, hs, s_in, s_out, nu, E0, math.exp(u0), W, c0, z, G, Qg, T, tv)
            return
        g1 = math.log(z[0]) - u1
        if abs(g1) < 1e-10 or g1 == g0:
            return
        u2 = u1 - g1 * (u1 - u0) / (g1 - g0)
        u0, g0, u1 = u1, g1, u2


@nb.njit(**KERNEL)
def _mode_gain(Y1, W, nu):
    """The block's noise-loop gain beta = W[0] . S1 h / nu."""
    p, nm = Y1.shape[0], Y1.shape[1]
    beta = 0.0
    for a in range(p):
        for j in range(nm):
            beta += W[0, a * nm + j] * Y1[a, j]
    return beta / nu


@nb.njit(**KERNEL)
def _mode_interpolate_forcing(Y0, Y1, W, nu, am1b, fb, hb, am1c, fc, hc, am1, f, h):
    """Coefficients of a block whose hyperparameters move from start (b) to end (c): each mode at the centre of
    its memory as the readout sees it, x_j = (W_j . S1 h_j) / (W_j . S0 h_j) / (nu - 1) (clipped to [0, 1]; 1/2
    where W_j . S0 h_j = 0), by linear interpolation (``_interpolate_forcing`` for p x p modes)."""
    p, nm = Y0.shape[0], Y0.shape[1]
    for j in range(nm):
        num = 0.0
        den = 0.0
        for a in range(p):
            num += W[0, a * nm + j] * Y1[a, j]
            den += W[0, a * nm + j] * Y0[a, j]
        x = num / den / max(nu - 1.0, 1.0) if abs(den) > 1e-300 else 0.5
        x = min(max(x, 0.0), 1.0)
        for a in range(p):
            f[a, j] = fb[a, j] + (fc[a, j] - fb[a, j]) * x
            h[a, j] = hb[a, j] + (hc[a, j] - hb[a, j]) * x
            for b in range(p):
                am1[a, b, j] = am1b[a, b, j] + (am1c[a, b, j] - am1b[a, b, j]) * x


@nb.njit(inline="always")
def integrate_modes(coef, p, consts, hp, s, W, c0, z, k, k_stop, k_ref, delta, span, grid, rec, i, cap, geo_tol,
                    dmax, dependence, correctors, extrapolate, single, switching, carry):
    """``integrate`` for a p x p affine map per mode, s_j <- (I + am1_j) s_j + f_j + h_j E (``BlockForm.p``).

    ``coef(hp_row, z, s, consts, am1, f, h) -> regime`` fills am1 (p, p, modes), f and h (p, modes); the state
    is component-major (component a of mode j at s[a * modes + j]). Block lengths, step-size control, moving
    hyperparameters (A^n at the block's middle, the forcing sums at each mode's memory centre), switches and
    ``carry`` as in ``integrate``; ``dependence`` FIXED (coefficients reused) or STATE (once per block, at its
    start; a halved block reuses them: the state is the same). SCALARS, ``correctors`` and ``extrapolate`` are
    not supported (one pass per block). Returns (k, i, status, k_ref) as ``integrate``."""
    size = s.shape[0]
    nm = size // p
    nz = W.shape[0]
    am1 = np.empty((p, p, nm))
    f = np.empty((p, nm))
    h = np.empty((p, nm))
    Q = np.empty((p, p, nm))
    X = np.empty((p, nm))
    Y0 = np.empty((p, nm))
    Y1 = np.empty((p, nm))
    T = np.empty((p, p, nm))
    Qg = np.empty((p, p, nm))
    G = np.empty((p, nm))
    tv = np.empty((p, nm))
    s_new = np.empty(size)
    z1 = np.empty(nz)
    moving = False
    for r in range(hp.shape[1]):
        if hp[1, r] != hp[2, r]:
            moving = True
    nb_ = nm if moving else 0
    am1b = np.empty((p, p, nb_))
    fb = np.empty((p, nb_))
    hb = np.empty((p, nb_))
    am1c = np.empty((p, p, nb_))
    fc = np.empty((p, nb_))
    hc = np.empty((p, nb_))
    am1i = np.empty((p, p, nb_))
    fi = np.empty((p, nb_))
    hi = np.empty((p, nb_))
    Qi = np.empty((p, p, nb_))
    Xi = np.empty((p, nb_))
    Y0i = np.empty((p, nb_))
    Y1i = np.empty((p, nb_))
    ns = nm if switching else 0
    am1w = np.empty((p, p, ns))
    fw = np.empty((p, ns))
    hw = np.empty((p, ns))
    fixed = dependence == 0
    have_coef = False
    nu_pow = 0
    nu_cap = 1 << 62
    while k < k_stop:
        nu = _updates_in_block(k, k_stop, k_ref, delta, span, grid, i, single, fixed, nu_cap)
        block = nu >= 2
        reg0 = 0
        if switching:
            reg0 = coef(hp[0], z, s, consts, am1w, fw, hw)
        if not (fixed and have_coef):
            coef(hp[0], z, s, consts, am1, f, h)
            if moving:
                coef(hp[1], z, s, consts, am1b, fb, hb)
                coef(hp[2], z, s, consts, am1c, fc, hc)
            have_coef = True
            nu_pow = 0
        while True:
            if nu != nu_pow:
                mode_powers(am1, f, h, nu, Q, X, Y0, Y1, T, tv)
                nu_pow = nu
            if moving and block:
                # A^n at the block's middle; the sums and G at each mode's memory centre
                _mode_interpolate_forcing(Y0, Y1, W, nu, am1b, fb, hb, am1c, fc, hc, am1i, fi, hi)
                mode_powers(am1i, fi, hi, nu, Qi, Xi, Y0i, Y1i, T, tv)
                beta = _mode_gain(Y1i, W, nu)
                mode_block_solve(Q, Xi, Y0i, Y1i, am1i, hi, beta, s, s_new, nu, z[0], W, c0, z1, geo_tol, G, Qg, T,
                                 tv)
            else:
                beta = _mode_gain(Y1, W, nu)
                mode_block_solve(Q, X, Y0, Y1, am1, h, beta, s, s_new, nu, z[0], W, c0, z1, geo_tol, G, Qg, T, tv)
            change, allowed = block_change(z[0], z1[0], beta, dmax)
            ok = change <= allowed
            if ok and switching and nu > 1:
                ok = coef(hp[0], z1, s_new, consts, am1w, fw, hw) == reg0
            if ok or nu == 1:
                break
            if single:
                return k, i, 2, k_ref
            nu //= 2
            if fixed and not single:
                nu_cap = nu
            block = nu >= 2
        if fixed and not single:
            nu_cap = _grown_cap(nu_cap, nu, change, allowed)
        k += nu * span
        i, diverged = _commit(s, s_new, z, z1, carry, k, nu * span if block else 0.0, cap, grid, rec, i)
        if switching and not block and coef(hp[0], z, s, consts, am1w, fw, hw) != reg0:
            k_ref = k
        if diverged:
            return k, i, 1, k_ref
        if single:
            break
    return k, i, 0, k_ref
