"""The deterministic equivalent of power-law random features on the real axis: m(z) by Newton continuation, the
eigenvalue count and the forcing density (a Numba kernel, apart so that ``import hdtheory`` loads no Numba;
the equations: ``hdtheory.random_features.deterministic_equivalent`` and docs/derivations/plrf.md)."""
import math

import numba as nb
import numpy as np


@nb.njit(cache=True)
def resolvent_sweep(xs, eps, delta, omega, c2, d, p_star):
    """Solve m(z), z = x (1 + i eps), along the decreasing grid xs by Newton continuation (from the linear
    extrapolation of the two previous points). Per x return N(x) = (1/pi) [d arg s - d Im m - sum_j arg(1 + delta_j s)],
    s = -m / z (the count of eigenvalues of K below x: minus 1/pi times the imaginary part of the equivalent
    log det(K - z)), the forcing density
    q(x) = (1 / pi) Im[sum_j c_j^2 / (delta_j m - z) + P* / z] (the point mass P* at 0 removed) and a convergence flag."""
    n = xs.shape[0]
    count = np.empty(n)
    dens_f = np.empty(n)
    ok = np.ones(n, dtype=nb.boolean)
    m = 1.0 + 0.0j
    m_prev = m
    inv_d = 1.0 / d
    for k in range(n):
        z = xs[k] * (1.0 + 1.0j * eps)
        if k >= 2:
            guess = 2.0 * m - m_prev
            m_prev = m
            if (-guess / z).imag > 0.0:
                m = guess
        conv = False
        for _ in range(200):
            s1 = 0.0j
            s2 = 0.0j
            for q in range(delta.shape[0]):
                inv = 1.0 / (delta[q] * m - z)
                t = omega[q] * delta[q] * inv
                s1 += t
                s2 += t * delta[q] * inv
            phi = m + m * inv_d * s1 - 1.0
            dphi = 1.0 + inv_d * s1 - m * inv_d * s2
            step = phi / dphi
            mn = m - step
            # keep s = -m / z a Stieltjes transform (Im s > 0): halve steps that leave it
            tries = 0
            while (-mn / z).imag <= 0.0 and tries < 60:
                step *= 0.5
                mn = m - step
                tries += 1
            m = mn
            if abs(step) <= 1e-13 * abs(m):
                conv = True
                break
        ok[k] = conv
        s = -m / z
        acc = 0.0
        sf = 0.0j
        for q in range(delta.shape[0]):
            w = 1.0 + delta[q] * s
            acc += omega[q] * math.atan2(w.imag, w.real)
            sf += omega[q] * c2[q] / (delta[q] * m - z)
        count[k] = (d * math.atan2(s.imag, s.real) - d * m.imag - acc) / np.pi
        dens_f[k] = (sf + p_star / z).imag / np.pi
    return count, dens_f, ok
