"""SignSVD's drift closures as Numba kernels, on the per-mode state rho_j = ||Delta u_j||^2 (K's eigenbasis).

Every closure steps  rho_j <- rho_j - 2 lr D_j + lr^2 nu_j,  E = sum_j lambda_j rho_j + m sigma^2  (twice the risk),
with the drift capped by Cauchy-Schwarz, D_j <= sqrt(rho_j nu_j), and rho clipped at 0. The noise term is exact
(P^T P = Pi_X for B <= min(m, n)); the drift is where the closures differ (docs/derivations/signsvd.md):

* (C1) B = 1, exact in x: D_j = rho_j E[x_j^2 / sqrt((sum_l rho_l x_l^2 + m sigma^2) ||x||^2)], a 2-D integral;
* (C2) mean field in the outputs: R^T R ~ X^T diag(rho) X + m sigma^2 I given the data X (n x B), and
  D_j = rho_j E_X[(X H X^T)_jj], sampled over X at each step; with a Newton-Schulz gain g the same kernel gives
  Muon (the polar factor's singular values 1 replaced by g(s / ||s||));
* (C3) spread residual: D_j = mu_j rho_j / sqrt(E) with the deterministic equivalents mu_j, nu_j (``factors``);
* (C4) noiseless, B >> n: sqrt(rho_j) <- |sqrt(rho_j) - lr| (the polar factor of Delta K is that of Delta).
"""
from __future__ import annotations

import math

import numba as nb
import numpy as np

#: regime ids of the closures
C1, C2, C3, C4 = 1, 2, 3, 4
#: nodes of the (C1) quadrature in each of log(t E), log(s tr K) and their span (relative error ~1e-4)
C1_NODES = 32
C1_SPAN = (-20.0, 14.0)


@nb.njit(cache=True)
def twice_risk(lam, rho, msig2):
    e = msig2
    for j in range(lam.shape[0]):
        e += lam[j] * rho[j]
    return e


@nb.njit(cache=True)
def effective_rank(lam, rho, sig2, m):
    """(tr S)^2 / tr S^2 of the residual covariance S = Delta K Delta^T + sigma^2 I (diagonal-Q form)."""
    e1 = m * sig2
    e2 = 0.0
    for j in range(lam.shape[0]):
        w = lam[j] * rho[j]
        e1 += w
        e2 += w * w
    den = e2 + 2.0 * sig2 * (e1 - m * sig2) + m * sig2 * sig2
    return e1 * e1 / den if den > 0.0 else math.inf


@nb.njit(cache=True)
def apply_drift(rho, coef, nu, lr, noise):
    """rho_j <- rho_j - 2 lr min(coef_j rho_j, sqrt(rho_j nu_j)) + lr^2 nu_j, clipped at 0; ``noise`` (the part
    of rho_j injected by the lr^2 nu_j terms, contracted at the same rate) follows, kept in [0, rho_j]."""
    for j in range(rho.shape[0]):
        r = rho[j]
        d = coef[j] * r
        cs = math.sqrt(max(r, 0.0) * nu[j])
        d = min(d, cs)
        rate = 2.0 * lr * d / r if r > 0.0 else 0.0
        r = r - 2.0 * lr * d + lr * lr * nu[j]
        rho[j] = max(0.0, r)
        q = noise[j] * max(1.0 - rate, 0.0) + lr * lr * nu[j]
        noise[j] = min(q, rho[j])


@nb.njit(cache=True)
def c1_coefficients(lam, rho, msig2, offsets, weights, out):
    """(C1): out_j = E[x_j^2 / sqrt((sum_l rho_l x_l^2 + m sigma^2) ||x||^2)], x ~ N(0, diag(lambda)), from

        1/sqrt(a b) = (1/pi) int int (t s)^{-1/2} e^{-t a - s b} dt ds,
        out_j = (1/pi) int int (t s)^{-1/2} e^{-t m sigma^2} lambda_j / (1 + 2 lambda_j (t rho_j + s)) prod_l (1 + 2 lambda_l (t rho_l + s))^{-1/2},

    by the trapezoid rule in (log t, log s) on ``offsets`` around t = 1/E, s = 1/tr K, with the analytic
    pieces below the grid (the integrand goes like sqrt(t) sqrt(s) there) folded into the first weights."""
    n = lam.shape[0]
    E = twice_risk(lam, rho, msig2)
    tr = 0.0
    for j in range(n):
        tr += lam[j]
        out[j] = 0.0
    if E <= 0.0:
        return
    nt = offsets.shape[0]
    for a in range(nt):
        t = math.exp(offsets[a]) / E
        ct = t * msig2
        if ct > 700.0:
            continue
        for b in range(nt):
            s = math.exp(offsets[b]) / tr
            L = 0.0
            for l in range(n):
                L += math.log1p(2.0 * lam[l] * (t * rho[l] + s))
            base = math.exp(-0.5 * L - ct) * math.sqrt(t * s) * weights[a] * weights[b] / math.pi
            if base < 1e-300:
                continue
            for j in range(n):
                out[j] += base * lam[j] / (1.0 + 2.0 * lam[j] * (t * rho[j] + s))


def c1_grid(nodes: int = C1_NODES, span=C1_SPAN):
    """Offsets (in log) and trapezoid weights of the (C1) quadrature, the first weight carrying the piece below."""
    offsets = np.linspace(span[0], span[1], nodes)
    h = offsets[1] - offsets[0]
    w = np.full(nodes, h)
    w[0] = 0.5 * h + 2.0  # int_{-inf}^{u0} e^{u/2} du = 2 e^{u0/2}
    w[-1] = 0.5 * h
    return offsets, w


@nb.njit(cache=True)
def c2_coefficients(sqrt_lam, rho, msig2, batch, samples, seed, ns_coef, ns_steps, coef, nu):
    """(C2) by ``samples`` draws of X (n x B), X_jb ~ N(0, lambda_j), seeded by ``seed``. With C = X^T X,
    A = X^T diag(rho) X + m sigma^2 I (the mean field of R^T R) and the eigendecomposition
    C^{1/2} A C^{1/2} = V diag(S^2) V^T (S: the singular values of B G in the mean field; two symmetric B x B
    eigendecompositions per draw),

        Y = X C^{-1/2} V,  Z = X C^{1/2} V,   coef_j = E[sum_b Z_jb Y_jb g_b / S_b],   nu_j = E[sum_b Y_jb^2 g_b^2],

    where g_b = 1 (SignSVD: the polar factor) or the Newton-Schulz map of S_b / ||S|| (``ns_steps`` > 0, Muon).
    (X C^{-1/2} has orthonormal columns; the drift is rho_j (X H X^T)_jj with H the polar identity's middle factor.)"""
    n = sqrt_lam.shape[0]
    B = batch
    np.random.seed(seed)
    for j in range(n):
        coef[j] = 0.0
        nu[j] = 0.0
    a0, b0, c0 = ns_coef[0], ns_coef[1], ns_coef[2]
    X = np.empty((n, B))
    C = np.empty((B, B))
    A = np.empty((B, B))
    N = np.empty((B, B))
    Ch = np.empty((B, B))
    Cih = np.empty((B, B))
    P = np.empty((B, B))
    Pi = np.empty((B, B))
    g = np.empty(B)
    for _ in range(samples):
        for j in range(n):
            for b in range(B):
                X[j, b] = sqrt_lam[j] * np.random.standard_normal()
        for b in range(B):
            for c in range(b + 1):
                acc = 0.0
                acr = 0.0
                for j in range(n):
                    xx = X[j, b] * X[j, c]
                    acc += xx
                    acr += xx * rho[j]
                C[b, c] = acc
                C[c, b] = acc
                A[b, c] = acr
                A[c, b] = acr
            A[b, b] += msig2
        wc, Vc = np.linalg.eigh(C)
        for a in range(B):
            for b in range(B):
                s1 = 0.0
                s2 = 0.0
                for c in range(B):
                    ev = max(wc[c], 0.0)
                    r = math.sqrt(ev)
                    s1 += Vc[a, c] * r * Vc[b, c]
                    s2 += Vc[a, c] * (1.0 / r if r > 0.0 else 0.0) * Vc[b, c]
                Ch[a, b] = s1
                Cih[a, b] = s2
        N[:, :] = Ch @ A @ Ch
        S2, V = np.linalg.eigh(N)
        smax = 0.0
        snorm = 0.0
        for b in range(B):
            S2[b] = max(S2[b], 0.0)
            smax = max(smax, S2[b])
            snorm += S2[b]
        snorm = math.sqrt(snorm)
        for b in range(B):
            if S2[b] <= 1e-24 * smax:
                g[b] = 0.0
                continue
            if ns_steps > 0:
                x = math.sqrt(S2[b]) / snorm
                for _k in range(ns_steps):
                    x2 = x * x
                    x = x * (a0 + x2 * (b0 + c0 * x2))
                g[b] = x
            else:
                g[b] = 1.0
        P[:, :] = Cih @ V  # Y = X P
        Pi[:, :] = Ch @ V  # Z = X Pi
        for j in range(n):
            acc = 0.0
            accn = 0.0
            for b in range(B):
                if g[b] == 0.0:
                    continue
                y = 0.0
                z = 0.0
                for c in range(B):
                    y += X[j, c] * P[c, b]
                    z += X[j, c] * Pi[c, b]
                acc += z * y * g[b] / math.sqrt(S2[b])
                accn += y * y * g[b] * g[b]
            coef[j] += acc
            nu[j] += accn
    for j in range(n):
        coef[j] /= samples
        nu[j] /= samples


@nb.njit(cache=True)
def run_steps(regime_of, lam, sqrt_lam, rho, msig2, sig2, m, batch, lr_seq, gain, mu, nu_fixed, c1_off, c1_w,
              c1_tol, c2_samples, c2_seed, k0, ns_coef, ns_steps, spread, cap, out_regime, noise):
    """Step the closure chosen at each step (``regime_of`` policy encoded by the theory: see ``choose``) over
    ``lr_seq``; returns the steps done (early once E > cap or not finite). ``out_regime[0]`` gets the last
    regime, ``out_regime[1]`` the first step (relative) at which no closure held (-1 if none); ``noise`` tracks
    the part of rho injected by the update noise (``apply_drift``)."""
    n = lam.shape[0]
    coef = np.empty(n)
    nu = np.empty(n)
    scaled = np.empty(n)
    last = np.full(n, -1.0)
    last_noise = 0.0
    out_regime[1] = -1
    for i in range(lr_seq.shape[0]):
        lr = lr_seq[i] * gain
        E = twice_risk(lam, rho, msig2)
        reg = choose(regime_of, lam, rho, sig2, m, batch, n, spread)
        if reg == C4:
            for j in range(n):
                r = abs(math.sqrt(rho[j]) - lr)
                rho[j] = r * r
                noise[j] = 0.0
        elif reg == C1:
            # the coefficients are homogeneous of degree -1/2 in (rho, m sigma^2): keep sqrt(E) coef and recompute
            # it only once the shape lambda rho / E (and m sigma^2 / E) moved by c1_tol
            moved = abs(msig2 / E - last_noise)
            for j in range(n):
                moved += lam[j] * abs(rho[j] / E - last[j])
            if last[0] < 0.0 or moved > c1_tol:
                c1_coefficients(lam, rho, msig2, c1_off, c1_w, scaled)
                root = math.sqrt(E)
                for j in range(n):
                    scaled[j] *= root
                    last[j] = rho[j] / E
                last_noise = msig2 / E
            inv = 1.0 / math.sqrt(E)
            for j in range(n):
                coef[j] = scaled[j] * inv
            apply_drift(rho, coef, nu_fixed, lr, noise)
        elif reg == C2:  # drift and noise weight from the same samples
            c2_coefficients(sqrt_lam, rho, msig2, batch, c2_samples, c2_seed + k0 + i, ns_coef, ns_steps, coef, nu)
            apply_drift(rho, coef, nu, lr, noise)
        else:
            if reg < 0 and out_regime[1] < 0:
                out_regime[1] = i
            inv = 1.0 / math.sqrt(E) if E > 0.0 else 0.0
            for j in range(n):
                coef[j] = mu[j] * inv
            apply_drift(rho, coef, nu_fixed, lr, noise)
        out_regime[0] = reg
        E = twice_risk(lam, rho, msig2)
        if not (E <= cap):
            return i + 1
    return lr_seq.shape[0]


#: ``regime_of`` policies: SignSVD's decision table, or Muon's (always the sampled mean field at B > 1)
POLICY_SIGNSVD, POLICY_MUON = 0, 1


@nb.njit(cache=True)
def choose(policy, lam, rho, sig2, m, batch, n, spread):
    """The closure in force at this state: C1 at B = 1; for Muon at B > 1, C2; for SignSVD at B > 1, C4 if
    sigma = 0 and B >= 10 n (m >= n), C3 while the residual's effective rank is >= ``spread`` B, else C2 (B < n).
    A negative id (-C3) means (C3) stepped where no closure holds (B >= n and a spiky residual)."""
    if batch == 1:
        return C1
    if policy == POLICY_MUON:
        return C2 if batch < n else -C3
    if sig2 == 0.0 and batch >= 10 * n and m >= n:
        return C4
    if effective_rank(lam, rho, sig2, m) >= spread * batch:
        return C3
    return C2 if batch < n else -C3
