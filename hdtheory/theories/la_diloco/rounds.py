"""LA-DiLoCo: the exact per-mode round map and its per-round affine (block) form, Numba kernels.

Theory of A. Agarwala, "High dimensional theory of two-phase optimizers", arXiv:2603.26954 (2026), derived for
this package in docs/derivations/la_diloco.md (equation labels (D2)-(D4) there). Per mode j (eigenvalue
lambda_j, merged multiplicity m_j) a round is H inner steps of the worker chain (D2) (inner momentum: its
(S_ww, S_wm, S_mm) form) driven by the worker's own twice-risk E_w^(h) = sigma^2 + sum_i lambda_i r_i^(h), then
the outer step (D3) (beta = 0, state R) or (D4) (beta > 0, state (R, C, V)). Exact in expectation for Gaussian
x at every d.

Block form (docs/derivations/la_diloco.md §5). The worker chain is linear, so one round is exactly

    R' = (1 + am1) R + sum_g resp_g p_g,   p_g = sigma^2 + lambda a^(g) . R   (p_0 = E = 2 risk),

and with the worker-risk *shape* rho_g = lambda a^(g) . R_s / lambda . R_s of a state R_s held over a block,
p_g = sigma^2 + rho_g (E - sigma^2) and the round is the per-mode affine map s <- (1 + am1) s + f + h E.
The shape is read from the state ``ahead`` exact rounds past the block's start (the transient a block start
carries in the fast modes is damped to SHAPE_DAMP first). beta > 0: the same forcing enters the noise of the
pseudo-gradient, n = m R + f_n + h_n E, and the round is s_j <- A_j s_j + b (f_n + h_n E) with the 3 x 3
outer map A_j of (D6) (multiplicative noise inside) and b = dS'/dn. With R_s = R the map is the exact round.
"""
from __future__ import annotations

import math

import numba as nb
import numpy as np

#: the worker-risk shape of a block is read from the state ``ahead`` exact rounds into the block, enough for
#: the transient of the modes that shape the worker risks to decay to SHAPE_DAMP; SHAPE_AHEAD_MIN <= ahead <=
#: SHAPE_AHEAD_MAX rounds
SHAPE_DAMP = 0.03
SHAPE_AHEAD_MIN = 2
SHAPE_AHEAD_MAX = 64


@nb.njit(cache=True)
def _outer_apply(R, C, V, nn, u, alpha, beta, nesterov):
    """One outer step (D3)/(D4) given the pseudo-gradient noise variance nn, on scalars (``la_exact_rounds``)
    or per-mode arrays (``round_operators``)."""
    D2 = u * u * R + nn
    Vn = beta * beta * V + 2.0 * beta * u * C + D2
    X = beta * C + u * R
    if nesterov:
        b1 = 1.0 + beta
        W = beta ** 4 * V + 2.0 * beta * beta * b1 * u * C + b1 * b1 * D2
        Y = beta * beta * C + b1 * u * R
        Z = beta ** 3 * V + beta * (1.0 + 2.0 * beta) * u * C + b1 * D2
        return R - 2.0 * alpha * Y + alpha * alpha * W, X - alpha * Z, Vn
    return R - 2.0 * alpha * X + alpha * alpha * Vn, X - alpha * Vn, Vn


@nb.njit(cache=True)
def la_exact_rounds(lam, mult, s, lr_seq, H, inv_b, sigma2, cap, inv_m, alpha, beta, nesterov, mu):
    """Apply len(lr_seq)/H rounds of (D2) + (D3)/(D4) in place on s (s = R for beta = 0, [R, C, V]
    component-major for beta > 0); lr_seq = per-inner-step eta. Returns the inner steps done (a multiple of H);
    stops after the first round whose slow E exceeds cap or is not finite."""
    n = lam.shape[0]
    rounds = lr_seq.shape[0] // H
    r = np.empty(n)
    wm = np.zeros(n)
    mm = np.zeros(n)
    qw = np.empty(n)
    qb = np.zeros(n)
    a = np.empty(n)
    g = np.empty(n)
    p = np.empty(n)
    mom = beta > 0.0
    lr_prev = np.nan
    for t in range(rounds):
        Ew = sigma2
        for j in range(n):
            r[j] = s[j]
            qw[j] = 1.0
            Ew += lam[j] * s[j]
        if mu > 0.0:
            for j in range(n):
                wm[j] = 0.0
                mm[j] = 0.0
                qb[j] = 0.0
        for h in range(H):
            eta = lr_seq[t * H + h]
            En = sigma2
            if mu == 0.0:
                if eta != lr_prev:  # same arithmetic as sgd_exact_steps, so M = H = alpha = 1 is SGD to rounding
                    c = eta * eta * inv_b
                    for j in range(n):
                        a[j] = 1.0 + eta * lam[j] * (-2.0 + (1.0 + inv_b) * eta * lam[j])
                        g[j] = c * mult[j] * lam[j]
                        p[j] = 1.0 - eta * lam[j]
                    lr_prev = eta
                for j in range(n):
                    rj = a[j] * r[j] + g[j] * Ew
                    r[j] = rj
                    qw[j] *= p[j]
                    En += lam[j] * rj
            else:
                for j in range(n):
                    lj = lam[j]
                    N = lj * lj * inv_b * r[j] + mult[j] * lj * inv_b * Ew
                    mmn = mu * mu * mm[j] + 2.0 * mu * lj * wm[j] + lj * lj * r[j] + N
                    X = mu * wm[j] + lj * r[j]
                    rn = r[j] - 2.0 * eta * X + eta * eta * mmn
                    wm[j] = X - eta * mmn
                    mm[j] = mmn
                    r[j] = rn
                    qbn = mu * qb[j] + lj * qw[j]
                    qw[j] = qw[j] - eta * qbn
                    qb[j] = qbn
                    En += lj * rn
            Ew = En
        E = sigma2
        for j in range(n):
            R = s[j]
            q = qw[j]
            u = 1.0 - q
            nj = inv_m * (r[j] - q * q * R)
            if not mom:
                gj = 1.0 - alpha * u
                Rn = gj * gj * R + alpha * alpha * nj
            else:
                Rn, Cn, Vn = _outer_apply(R, s[n + j], s[2 * n + j], nj, u, alpha, beta, nesterov)
                s[n + j] = Cn
                s[2 * n + j] = Vn
            s[j] = Rn
            E += lam[j] * Rn
        if not (E <= cap):
            return (t + 1) * H
    return rounds * H


@nb.njit(cache=True)
def la_round_parts(lam, mult, eta, H, inv_b, inv_m, alpha, mu, c, am1, A, resp, u_out, v_out):
    """Operators of one round at a constant inner step eta (module docstring):

    u_out[j]  = 1 - q_j, accumulated as a sum (u' = u + eta lambda q for mu = 0, u + eta b' for mu > 0);
    v_out[j]  = a^(H) - q^2 (the worker's noise variance per unit start variance), propagated directly;
    am1[j]    = D_j - 1 = alpha u (alpha u - 2) + alpha^2 v / M (the beta = 0 round factor, no cancellation);
    A[g, j]   = lambda_j a_j^(g), g < H: the readouts p_g = sigma^2 + A[g] . R (p_0 = E);
    resp[g, j] = c times the worker variance of mode j at the round's end after a unit source in E_w at inner
                step g, the worker's own noise feedback E_w <- E_w + sum_i lambda_i w_i included (c = alpha^2/M:
                the response of R' for beta = 0; c = 1/M: of the pseudo-gradient noise n). The inner chain is
                time-invariant at constant eta, so resp[g] is the chain H - g steps after a unit source at step 0
                (one O(H n) pass instead of H)."""
    n = lam.shape[0]
    for j in range(n):
        lj = lam[j]
        qw = 1.0
        qb = 0.0
        u = 0.0
        cww = 0.0
        cwm = 0.0
        cmm = 0.0
        for g in range(H):
            A[g, j] = lj * (qw * qw + cww)
            if mu == 0.0:
                x = eta * lj
                cww = (1.0 - x) * (1.0 - x) * cww + x * x * inv_b * (cww + qw * qw)
                u += qw * x
                qw *= 1.0 - x
            else:
                N = lj * lj * inv_b * (cww + qw * qw)
                mmn = mu * mu * cmm + 2.0 * mu * lj * cwm + lj * lj * cww + N
                X = mu * cwm + lj * cww
                cww = cww - 2.0 * eta * X + eta * eta * mmn
                cwm = X - eta * mmn
                cmm = mmn
                qbn = mu * qb + lj * qw
                u += eta * qbn
                qw -= eta * qbn
                qb = qbn
        au = alpha * u
        am1[j] = au * (au - 2.0) + alpha * alpha * inv_m * cww
        u_out[j] = u
        v_out[j] = cww
    ww = np.zeros(n)
    wm = np.zeros(n)
    mm = np.zeros(n)
    for k in range(H):
        Ew = 1.0 if k == 0 else 0.0
        for j in range(n):
            Ew += lam[j] * ww[j]
        for j in range(n):
            lj = lam[j]
            if mu == 0.0:
                x = eta * lj
                ww[j] = (1.0 + x * (-2.0 + (1.0 + inv_b) * x)) * ww[j] + eta * eta * inv_b * mult[j] * lj * Ew
            else:
                N = lj * lj * inv_b * ww[j] + mult[j] * lj * inv_b * Ew
                mmn = mu * mu * mm[j] + 2.0 * mu * lj * wm[j] + lj * lj * ww[j] + N
                X = mu * wm[j] + lj * ww[j]
                ww[j] = ww[j] - 2.0 * eta * X + eta * eta * mmn
                wm[j] = X - eta * mmn
                mm[j] = mmn
        row = H - 1 - k
        for j in range(n):
            resp[row, j] = c * ww[j]


@nb.njit(cache=True)
def outer_step_minus_identity(u, m, alpha, beta, nesterov, out):
    """out = A - I for the (D4) outer map A on (R, C, V) with the noise n = m R inside (rows and columns R, C, V),
    each entry formed without the cancellation of 1 - 1 (u = 1 - q and m = (a^(H) - q^2)/M as sums)."""
    au = alpha * u
    D = u * u + m
    b2 = beta * beta
    if nesterov:
        b1 = 1.0 + beta
        out[0, 0] = b1 * au * (b1 * au - 2.0) + alpha * alpha * b1 * b1 * m
        out[0, 1] = 2.0 * alpha * b2 * (b1 * au - 1.0)
        out[0, 2] = alpha * alpha * b2 * b2
        out[1, 0] = u - alpha * b1 * D
        out[1, 1] = (beta - 1.0) - alpha * beta * (1.0 + 2.0 * beta) * u
        out[1, 2] = -alpha * b2 * beta
    else:
        out[0, 0] = au * (au - 2.0) + alpha * alpha * m
        out[0, 1] = 2.0 * alpha * beta * (au - 1.0)
        out[0, 2] = alpha * alpha * b2
        out[1, 0] = u - alpha * D
        out[1, 1] = (beta - 1.0) - 2.0 * alpha * beta * u
        out[1, 2] = -alpha * b2
    out[2, 0] = D
    out[2, 1] = 2.0 * beta * u
    out[2, 2] = (beta - 1.0) * (beta + 1.0)


@nb.njit(cache=True)
def noise_direction(alpha, beta, nesterov, b):
    """b = d(R', C', V')/dn: where a unit of pseudo-gradient noise variance enters the (D4) outer step."""
    c = 1.0 + beta if nesterov else 1.0
    b[0] = alpha * alpha * c * c
    b[1] = -alpha * c
    b[2] = 1.0


@nb.njit(cache=True)
def _ahead_scalar(am1, A, lam, H):
    """Exact rounds before the shape is read (beta = 0): the smallest m in [SHAPE_AHEAD_MIN, SHAPE_AHEAD_MAX]
    with D_j^m <= SHAPE_DAMP for every mode that shapes the worker risks (a_j^(H-1) <= 1/2)."""
    ahead = SHAPE_AHEAD_MIN
    if H <= 1:
        return ahead
    D = -1.0
    for j in range(lam.shape[0]):
        if lam[j] > 0.0 and A[H - 1, j] <= 0.5 * lam[j]:
            D = max(D, abs(1.0 + am1[j]))
    if D < 0.0:
        return ahead
    if not D < 1.0:
        return SHAPE_AHEAD_MAX
    if D > 0.0:
        m = math.ceil(math.log(SHAPE_DAMP) / math.log(D))
        ahead = int(min(max(m, SHAPE_AHEAD_MIN), SHAPE_AHEAD_MAX))
    return ahead


@nb.njit(cache=True)
def _ahead_matrix(Am1, A, lam, H):
    """As ``_ahead_scalar`` for beta > 0: the smallest m with ||A_j^m||_inf <= SHAPE_DAMP for every shaping mode
    (A_j = I + Am1[:, :, j], the 3 x 3 outer map), within [SHAPE_AHEAD_MIN, SHAPE_AHEAD_MAX]."""
    ahead = SHAPE_AHEAD_MIN
    if H <= 1:
        return ahead
    P = np.empty((3, 3))
    Q = np.empty((3, 3))
    for j in range(lam.shape[0]):
        if not (lam[j] > 0.0 and A[H - 1, j] <= 0.5 * lam[j]):
            continue
        for a in range(3):
            for b in range(3):
                P[a, b] = Am1[a, b, j] + (1.0 if a == b else 0.0)
        m = 1
        while m < SHAPE_AHEAD_MAX:
            norm = 0.0
            for a in range(3):
                row = abs(P[a, 0]) + abs(P[a, 1]) + abs(P[a, 2])
                norm = max(norm, row)
            if norm <= SHAPE_DAMP or math.isnan(norm):
                break
            for a in range(3):
                for b in range(3):
                    acc = P[a, b]
                    for c in range(3):
                        acc += P[a, c] * Am1[c, b, j]
                    Q[a, b] = acc
            P[:, :] = Q
            m += 1
        ahead = max(ahead, m)
    return min(ahead, SHAPE_AHEAD_MAX)


@nb.njit(cache=True)
def _shaped_forcing(A, resp, lam, Rs, sigma2, fs, hs):
    """fs, hs with sum_g resp_g p_g = fs + hs E under the worker-risk shape rho_g = A_g . Rs / lambda . Rs of the
    state Rs (g >= 1; p_0 = E): hs = resp_0 + sum_g rho_g resp_g, fs = sigma^2 sum_g (1 - rho_g) resp_g."""
    H, n = A.shape[0], A.shape[1]
    ex = 0.0
    for j in range(n):
        ex += lam[j] * Rs[j]  # E - sigma^2, without the cancellation
    for j in range(n):
        hs[j] = resp[0, j]
        fs[j] = 0.0
    for g in range(1, H):
        if ex > 0.0:
            acc = 0.0
            for j in range(n):
                acc += A[g, j] * Rs[j]
            rho = acc / ex
        else:
            rho = 1.0  # R_s = 0: any shape, same forcing
        for j in range(n):
            hs[j] += rho * resp[g, j]
            fs[j] += (1.0 - rho) * resp[g, j]
    for j in range(n):
        fs[j] *= sigma2


@nb.njit(cache=True)
def la_coefficients(hp, z, s, consts, am1, f, h):
    """beta = 0: the round at inner step hp[0] as s <- (1 + am1) s + f + h E, with the worker-risk shape read
    ``ahead`` exact rounds from the block-start state s (module docstring). Regime 0 (no switches)."""
    lam, mult, sigma2, H, inv_b, inv_m, alpha, mu = consts
    eta = hp[0]
    n = lam.shape[0]
    A = np.empty((H, n))
    resp = np.empty((H, n))
    u = np.empty(n)
    v = np.empty(n)
    la_round_parts(lam, mult, eta, H, inv_b, inv_m, alpha, mu, alpha * alpha * inv_m, am1, A, resp, u, v)
    if H == 1:
        for j in range(n):
            f[j] = 0.0
            h[j] = resp[0, j]
        return 0
    Rs = s.copy()
    ahead = _ahead_scalar(am1, A, lam, H)
    la_exact_rounds(lam, mult, Rs, np.full(ahead * H, eta), H, inv_b, sigma2, np.inf, inv_m, alpha, 0.0, False, mu)
    _shaped_forcing(A, resp, lam, Rs, sigma2, f, h)
    return 0


@nb.njit(cache=True)
def _outer_maps(u, v, inv_m, alpha, beta, nesterov, out):
    """out[:, :, j] = the 3 x 3 round map minus the identity of mode j (``outer_step_minus_identity``)."""
    m3 = np.empty((3, 3))
    for j in range(u.shape[0]):
        outer_step_minus_identity(u[j], inv_m * v[j], alpha, beta, nesterov, m3)
        for a in range(3):
            for c in range(3):
                out[a, c, j] = m3[a, c]


@nb.njit(cache=True)
def la_momentum_coefficients(hp, z, s, consts, am1, f, h):
    """beta > 0: the round at inner step hp[0] as s_j <- (I + am1_j) s_j + f_j + h_j E per mode (s_j = (R, C, V)_j,
    am1 (3, 3, n), f and h (3, n)), with the worker-risk shape read ``ahead`` exact rounds from the block-start
    state s (module docstring). Regime 0."""
    lam, mult, sigma2, H, inv_b, inv_m, alpha, mu, beta, nesterov = consts
    eta = hp[0]
    n = lam.shape[0]
    A = np.empty((H, n))
    resp = np.empty((H, n))
    u = np.empty(n)
    v = np.empty(n)
    d = np.empty(n)
    la_round_parts(lam, mult, eta, H, inv_b, inv_m, alpha, mu, inv_m, d, A, resp, u, v)
    _outer_maps(u, v, inv_m, alpha, beta, nesterov, am1)
    fs = np.empty(n)
    hs = np.empty(n)
    if H == 1:
        for j in range(n):
            fs[j] = 0.0
            hs[j] = resp[0, j]
    else:
        Rs = s.copy()
        ahead = _ahead_matrix(am1, A, lam, H)
        la_exact_rounds(lam, mult, Rs, np.full(ahead * H, eta), H, inv_b, sigma2, np.inf, inv_m, alpha, beta,
                        nesterov, mu)
        _shaped_forcing(A, resp, lam, Rs, sigma2, fs, hs)
    b = np.empty(3)
    noise_direction(alpha, beta, nesterov, b)
    for c in range(3):
        for j in range(n):
            f[c, j] = b[c] * fs[j]
            h[c, j] = b[c] * hs[j]
    return 0


@nb.njit(cache=True)
def shape_ahead(lam, mult, eta, H, inv_b, inv_m, alpha, mu, beta, nesterov):
    """The exact rounds ``ahead`` a block reads its worker-risk shape from, at inner step eta."""
    n = lam.shape[0]
    A = np.empty((H, n))
    resp = np.empty((H, n))
    u = np.empty(n)
    v = np.empty(n)
    am1 = np.empty(n)
    la_round_parts(lam, mult, eta, H, inv_b, inv_m, alpha, mu, inv_m, am1, A, resp, u, v)
    if beta == 0.0:
        return _ahead_scalar(am1, A, lam, H)
    Am1 = np.empty((3, 3, n))
    _outer_maps(u, v, inv_m, alpha, beta, nesterov, Am1)
    return _ahead_matrix(Am1, A, lam, H)
