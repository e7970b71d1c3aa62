"""Clipping reduction factors (mu, nu-hat = nu / E, A) of clipped SGD on streaming Gaussian least squares.

Source: N. Marshall, K. L. Xiao, A. Agarwala, E. Paquette, arXiv:2406.11733 (2024), who introduce the drift and
variance reduction factors; the minibatch forms with the curvature factor A are derived in
docs/derivations/clipped_sgd.md (§2 and §4). With q the excess MSE, E = q + sigma^2, tau^2 = c^2 B / tr K the
normalized clip level, m = (1/B) sum_b r_b^2 the mean squared residual and s = min(1, tau / sqrt(m)):

    E[s g] = mu K e,   E[s^2 g g^T] = (nu / B) K + A K e e^T K,
    mu = F + (1 - 1/B) T1,   nu = E[min(m, tau^2)],
    A  = (1 + 1/B)(F + T2) - (4/B - 2/B^2) T2 - (4/B^2) tau^2 f,

F = P(m <= tau^2), f = p_m(tau^2), T1 = E[tau/sqrt(m); m > tau^2], T2 = E[tau^2/m; m > tau^2]. Per law:

* Gaussian noise, any B (and every law at sigma = 0): m = (E/B) chi^2_B, closed forms in the incomplete gamma
  function (``hdtheory.special``);
* Rademacher and Student-t at B = 1: closed forms for a Gaussian mixture of residual laws (Rademacher: one
  component N(sigma, q); Student-t(df): r | W ~ N(0, q + sigma^2 (df - 2)/W), W ~ chi^2_df, Gauss-Legendre in
  log W with 64 nodes between the chi^2 quantiles e^-32 and 1 - e^-32, ~1e-8);
* Rademacher and Student-t at B > 1: a table over u = log(q/sigma^2), w = log(tau^2/E) built once per
  (law, B) from the density of m/E (FFT inversion of its characteristic function), cubic in u and linear in w;
  Gaussian factors above the u range. Tables are cached in memory and on disk (``$HDTHEORY_CACHE`` or
  ``~/.cache/hdtheory``).

At a constant clip level the theory tabulates the Gaussian and Student-t B = 1 factors once per solve, piecewise
Chebyshev in log q over the range its run is expected to visit (``chebyshev``: within a few 1e-15, at a small
fraction of the cost; the closed forms elsewhere). At tau = inf the factors are SGD's (1, 1, 1 + 1/B) exactly.
"""
from __future__ import annotations

import cmath
import functools
import hashlib
import math
import os

import numba as nb
import numpy as np

from ...checks import check_batch
from ...jit import KERNEL, MAP_KERNEL
from ...noise import Gaussian, Rademacher, StudentT
from ...special import ERF_SERIES_MAX, ERFC_MIN, chi2_pdf, erf_small_vec, erfcx_vec, exp_vec, expint1, gamma_pq
from .chebyshev import DEGREE, WIDTH, fit_segments, table_factors, table_node

LAW_GAUSS, LAW_MIXTURE, LAW_TABLE, LAW_SHIFTED = 0, 1, 2, 3
#: Gauss-Legendre nodes in log W for the Student-t mixture, between the chi^2_df quantiles e^-STUDENT_TAIL and
#: 1 - e^-STUDENT_TAIL: mu within 1e-9, nu within 2e-7 relative for df >= 2.1 (1e-8 for df >= 2.5;
#: docs/derivations/clipped_sgd.md §4)
STUDENT_NODES = 64
STUDENT_TAIL = 32.0
#: q is clamped to at least this fraction of sigma^2 (the mixture forms divide by sqrt(q))
Q_FLOOR = 1e-12


# ------------------------------------------------------------------------------------------------
# reduction factors (mu, nu-hat = nu/E, A) -- Numba
# ------------------------------------------------------------------------------------------------

@nb.njit(**KERNEL)
def _gauss_factors(B, y0):
    """Gaussian residuals, m = (E/B) chi^2_B, y0 = B tau^2 / E."""
    x = 0.5 * y0
    F, QB = gamma_pq(0.5 * B, x)
    tf = y0 * chi2_pdf(B, y0)  # tau^2 f
    nuhat = gamma_pq(0.5 * B + 1.0, x)[0] + (y0 / B) * QB
    if B == 1:
        return F, nuhat, 2.0 * F - 4.0 * tf
    T1 = math.sqrt(y0) * math.exp(math.lgamma(0.5 * (B - 1)) - math.lgamma(0.5 * B)) / math.sqrt(2.0) \
        * gamma_pq(0.5 * (B - 1), x)[1]
    if B == 2:
        T2 = x * expint1(x)
    else:
        T2 = y0 * gamma_pq(0.5 * B - 1.0, x)[1] / (B - 2.0)
    ib = 1.0 / B
    mu = F + (1.0 - ib) * T1
    A = (1.0 + ib) * (F + T2) - (4.0 * ib - 2.0 * ib * ib) * T2 - 4.0 * ib * ib * tf
    return mu, nuhat, A


@nb.njit(cache=True, inline="always", error_model="numpy")
def _d_term(b, p, phi):
    """D = p - 2 b phi(b), summed as its series below b = 0.1 (``_centred_terms``); scalars only, so that the
    loops it is inlined into still vectorize."""
    b2 = b * b
    series = 0.7978845608028654 * b * b2 * (
        1.0 / 3.0 - b2 * (1.0 / 10.0 - b2 * (1.0 / 56.0 - b2 * (1.0 / 432.0 - b2 * (1.0 / 4224.0 - b2 / 49920.0)))))
    return series if b < 0.1 else p - 2.0 * b * phi


@nb.njit(**MAP_KERNEL)
def _centred_terms(q, tau, vdesc, vasc, buf):
    """Per centred component (r ~ N(0, v), v = q + vext, b = tau / sqrt(v)): P = P(|r| <= tau) = erf(b/sqrt 2),
    Q = 1 - P, phi(b), b, and the nu term's D = P - 2 b phi(b), summed as its series below b = 0.1 where it
    cancels, sqrt(2/pi) sum_{n>=1} (-1)^(n+1) b^(2n+1) / ((2n+1) 2^(n-1) (n-1)!) (six terms: truncation < 1e-17
    relative). The components are given twice, ``vdesc`` by decreasing and ``vasc`` by increasing vext: the
    ``split`` components with b < 1 (the head of ``vdesc``) take P from the erf series into buf[0:5, :split],
    the others (the head of ``vasc``) Q from erfcx, each where it is well conditioned, into buf[5:10, :n - split].
    Both are branch-free loops from index 0 over whole arrays (a loop from a variable start, or over slices made
    per call, costs more than the terms). Returns split."""
    n = vdesc.shape[0]
    tau2 = tau * tau
    split = 0
    while split < n and q + vdesc[split] > tau2:
        split += 1
    P, Q, D, pb, bs = buf[0], buf[1], buf[2], buf[3], buf[4]
    for i in range(split):
        b = tau / math.sqrt(q + vdesc[i])
        p = erf_small_vec(min(b * 0.7071067811865476, ERF_SERIES_MAX))
        phi = exp_vec(-0.5 * b * b) * 0.3989422804014327
        P[i], Q[i], D[i], pb[i], bs[i] = p, 1.0 - p, _d_term(b, p, phi), phi, b
    P, Q, D, pb, bs = buf[5], buf[6], buf[7], buf[8], buf[9]
    for i in range(n - split):
        b = tau / math.sqrt(q + vasc[i])
        e = exp_vec(-0.5 * b * b)
        qc = e * erfcx_vec(max(b * 0.7071067811865476, ERFC_MIN))
        phi = e * 0.3989422804014327
        P[i], Q[i], D[i], pb[i], bs[i] = 1.0 - qc, qc, _d_term(b, 1.0 - qc, phi), phi, b
    return split


@nb.njit(**KERNEL)
def _centred_mixture_factors(q, tau2, E, vext, wts, buf):
    """B = 1, residual r ~ sum_i w_i N(0, q + vext_i) (the Student-t scale mixture): the closed form of
    ``_shifted_factors`` at m0 = 0 in its symmetric form, a = -b, pa = pb = phi(b), from ``_centred_terms`` (which
    also sums the nu term v (P - 2 b phi(b)) as its series where it cancels: wide components, tight clip).
    ``vext`` and ``wts`` hold the n components twice (``law_spec``): by decreasing vext, then by increasing;
    ``buf`` is (10, n) scratch (``factor_scratch``)."""
    tau = math.sqrt(tau2)
    n = wts.shape[0] // 2
    vd, va, wd, wa = vext[:n], vext[n:], wts[:n], wts[n:]
    split = _centred_terms(q, tau, vd, va, buf)
    mu = 0.0
    nu = 0.0
    tdens = 0.0  # tau times the density of |r| at tau: sum_i w_i 2 phi(b_i) b_i
    for i in range(split):
        mu += wd[i] * buf[0, i]
        nu += wd[i] * ((q + vd[i]) * buf[2, i] + tau2 * buf[1, i])
        tdens += wd[i] * 2.0 * buf[3, i] * buf[4, i]
    for i in range(n - split):
        mu += wa[i] * buf[5, i]
        nu += wa[i] * ((q + va[i]) * buf[7, i] + tau2 * buf[6, i])
        tdens += wa[i] * 2.0 * buf[8, i] * buf[9, i]
    return mu, nu / E, 2.0 * mu - 2.0 * tdens


@nb.njit(**KERNEL)
def _shifted_factors(q, tau2, E, m0, vext, wts):
    """B = 1, residual r ~ sum_i w_i N(m0_i, q + vext_i) (Rademacher noise: one component N(sigma, q)):
    P = P(|r_i| <= tau) and the truncated moments of each Gaussian in closed form."""
    tau = math.sqrt(tau2)
    mu = 0.0
    nu = 0.0
    dens = 0.0
    for i in range(wts.shape[0]):
        v = q + vext[i]
        sv = math.sqrt(v)
        a = (-tau - m0[i]) / sv
        b = (tau - m0[i]) / sv
        P = 0.5 * (math.erfc(-b / math.sqrt(2.0)) - math.erfc(-a / math.sqrt(2.0)))
        pa = math.exp(-0.5 * a * a) / math.sqrt(2.0 * math.pi)
        pb = math.exp(-0.5 * b * b) / math.sqrt(2.0 * math.pi)
        mu += wts[i] * P
        nu += wts[i] * (m0[i] * m0[i] * P + 2.0 * m0[i] * sv * (pa - pb) + v * (P + a * pa - b * pb)
                        + tau2 * (1.0 - P))
        dens += wts[i] * (pa + pb) / sv
    return mu, nu / E, 2.0 * mu - 2.0 * tau * dens


@nb.njit(cache=True, inline="always")
def _table_component(tab, c, iu, t, jw, sw, edge):
    """Component c of the table at row offset t past iu (Catmull-Rom; linear next to the u edges) and column
    offset sw past jw (linear)."""
    if edge:
        v0 = tab[c, iu, jw] * (1 - sw) + tab[c, iu, jw + 1] * sw
        v1 = tab[c, iu + 1, jw] * (1 - sw) + tab[c, iu + 1, jw + 1] * sw
        return v0 * (1 - t) + v1 * t
    p0 = tab[c, iu - 1, jw] * (1 - sw) + tab[c, iu - 1, jw + 1] * sw
    p1 = tab[c, iu, jw] * (1 - sw) + tab[c, iu, jw + 1] * sw
    p2 = tab[c, iu + 1, jw] * (1 - sw) + tab[c, iu + 1, jw + 1] * sw
    p3 = tab[c, iu + 2, jw] * (1 - sw) + tab[c, iu + 2, jw + 1] * sw
    return p1 + 0.5 * t * (p2 - p0 + t * (2 * p0 - 5 * p1 + 4 * p2 - p3 + t * (3 * (p1 - p2) + p3 - p0)))


@nb.njit(**KERNEL)
def _table_factors(u, w, tab, u0, du, w0, dw):
    """Cubic (Catmull-Rom) in u, linear in w, clamped to the grid."""
    nu_, nw = tab.shape[1], tab.shape[2]
    fu = min(max((u - u0) / du, 0.0), nu_ - 1.0)
    fw = min(max((w - w0) / dw, 0.0), nw - 1.0)
    jw = min(int(fw), nw - 2)
    sw = fw - jw
    iu = min(int(fu), nu_ - 2)
    t = fu - iu
    edge = iu == 0 or iu == nu_ - 2
    return (_table_component(tab, 0, iu, t, jw, sw, edge), _table_component(tab, 1, iu, t, jw, sw, edge),
            _table_component(tab, 2, iu, t, jw, sw, edge))


@nb.njit(**KERNEL)
def factor_scratch(law, wts):
    """Scratch memory of ``clip_factors_scratch`` for a law's spec: allocated once by a loop that evaluates the
    factors at every step (an allocation costs about half a mixture evaluation)."""
    return np.empty((10, wts.shape[0] // 2 if law == LAW_MIXTURE else 0))


@nb.njit(**KERNEL)
def clip_factors_nb(q, tau2, sigma2, B, law, m0, vext, wts, tab, grid):
    """(mu, nu/E, A) at excess MSE q and normalized clip tau^2; tau2 = inf gives SGD's (1, 1, 1 + 1/B)."""
    return clip_factors_scratch(q, tau2, sigma2, B, law, m0, vext, wts, tab, grid, factor_scratch(law, wts))


@nb.njit(**KERNEL)
def clip_factors_scratch(q, tau2, sigma2, B, law, m0, vext, wts, tab, grid, scratch):
    """``clip_factors_nb`` with its scratch memory from ``factor_scratch(law, wts)``."""
    if not (tau2 < math.inf):
        return 1.0, 1.0, 1.0 + 1.0 / B
    q = max(q, 0.0)
    E = q + sigma2
    if E <= 0.0:
        return 1.0, 1.0, 1.0 + 1.0 / B
    if law != LAW_TABLE:
        covered, mu, nuh, A = table_factors(q, tau2, E, tab, grid)
        if covered:
            return mu, nuh, A
    if law == LAW_GAUSS or sigma2 == 0.0:
        return _gauss_factors(B, B * tau2 / E)
    q = max(q, Q_FLOOR * sigma2)
    E = q + sigma2
    if law == LAW_MIXTURE:
        return _centred_mixture_factors(q, tau2, E, vext, wts, scratch)
    if law == LAW_SHIFTED:
        return _shifted_factors(q, tau2, E, m0, vext, wts)
    u = math.log(q / sigma2)
    if u > grid[1]:
        return _gauss_factors(B, B * tau2 / E)
    w = math.log(tau2 / E)
    mu, nuh, A = _table_factors(u, w, tab, grid[0], grid[2], grid[3], grid[4])
    if w < grid[3]:
        # below the table (tau^2 << m almost surely): mu ~ (1 - 1/B) tau E[m^-1/2], nu ~ tau^2, A ~ tau^2
        g = math.exp(w - grid[3])
        return mu * math.sqrt(g), nuh * g, A * g
    if w > grid[5]:
        # beyond the table: the deficits from SGD's (1, 1, 1 + 1/B) decay like the tail of r^2,
        # (tau^2)^(-p) with p = grid[6] ((df - 2)/2 for Student-t; Rademacher tails are Gaussian)
        g = math.exp(-grid[6] * (w - grid[5]))
        mu = 1.0 + (mu - 1.0) * g
        nuh = 1.0 + (nuh - 1.0) * g
        A = 1.0 + 1.0 / B + (A - 1.0 - 1.0 / B) * g
    return mu, nuh, A


@nb.njit(**KERNEL)
def _factors_pairs(q, tau2, sigma2, B, law, m0, vext, wts, tab, grid, mu, nuhat, A):
    scratch = factor_scratch(law, wts)
    for i in range(q.shape[0]):
        mu[i], nuhat[i], A[i] = clip_factors_scratch(q[i], tau2[i], sigma2, B, law, m0, vext, wts, tab, grid, scratch)



# ------------------------------------------------------------------------------------------------
# noise-law specification and the B > 1 tables (scipy / numpy, built once)
# ------------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=32)
def _student_nodes(df: float, n: int = STUDENT_NODES):
    """Gauss-Legendre nodes/weights for W ~ chi^2_df in u = log W between the quantiles e^-STUDENT_TAIL and
    1 - e^-STUDENT_TAIL, weights normalized to sum 1 (cached: ~10 ms to build; the arrays are shared, never
    written)."""
    from scipy.stats import chi2

    x, w = np.polynomial.legendre.leggauss(n)
    tail = math.exp(-STUDENT_TAIL)
    lo, hi = math.log(chi2.ppf(tail, df)), math.log(chi2.isf(tail, df))
    u = 0.5 * (hi - lo) * x + 0.5 * (hi + lo)
    W = np.exp(u)
    wt = 0.5 * (hi - lo) * w * chi2.pdf(W, df) * W
    return W, wt / wt.sum()


@nb.njit(**KERNEL)
def _phi_mixture_pow(omega, B, v, wts, out):
    """out_j = (sum_i w_i (1 - 2 i t v_i)^(-1/2))^B at t = omega_j / B: characteristic function of the
    mean of B squared centred-Gaussian-mixture residuals (normalized units)."""
    for j in range(omega.shape[0]):
        t = omega[j] / B
        acc = 0j
        for i in range(v.shape[0]):
            acc += wts[i] / cmath.sqrt(1.0 - 2j * t * v[i])
        out[j] = cmath.exp(B * cmath.log(acc)) if acc != 0 else 0j


#: table grids: u = log(q/sigma^2) in [U_LO, U_HI], w = log(tau^2/E) in [W_LO, W_HI]
U_LO, U_HI, DU = -7.0, 7.0, 0.25
W_LO, W_HI, DW = -10.0, 6.0, 0.01
FFT_N = 1 << 17


def _pieces_from_density(x, p, y0):
    """F, tau^2 f, T1, T2, N/E at y0 = tau^2/E from the density p of y = m/E on the uniform grid x."""
    h = x[1] - x[0]

    def cum(g):
        c = np.empty_like(g)
        c[0] = 0.0
        c[1:] = np.cumsum(0.5 * (g[1:] + g[:-1])) * h
        return c

    xs = np.where(x > 0, x, 1.0)
    CF = cum(p)
    C1 = cum(x * p)
    Ch = cum(np.where(x > 0, p / np.sqrt(xs), 0.0))
    Ci = cum(np.where(x > 0, p / xs, 0.0))
    F = np.interp(y0, x, CF)
    tf = y0 * np.interp(y0, x, p)
    T1 = np.sqrt(y0) * (Ch[-1] - np.interp(y0, x, Ch))
    T2 = y0 * (Ci[-1] - np.interp(y0, x, Ci))
    N = np.interp(y0, x, C1) + y0 * (CF[-1] - F)
    return F, tf, T1, T2, N


def _combine(B, F, tf, T1, T2, N):
    ib = 1.0 / B
    mu = F + (1.0 - ib) * T1
    A = (1.0 + ib) * (F + T2) - (4.0 * ib - 2.0 * ib * ib) * T2 - 4.0 * ib * ib * tf
    return mu, N, A


def _table_column(law_key, B, u, w):
    """Factors at q/sigma^2 = e^u over w = log(tau^2/E): density of y = m/E by FFT."""
    kind, par = law_key
    r = math.exp(u)
    qn, sn = r / (1.0 + r), 1.0 / (1.0 + r)  # q/E, sigma^2/E
    if kind == "rademacher":
        L = 64.0
    else:
        L = 2000.0
    N = FFT_N
    omega = 2.0 * np.pi * np.arange(N // 2 + 1) / L
    if kind == "rademacher":
        t = omega / B
        z = 1.0 - 2j * t * qn
        phi = (np.exp(1j * t * sn / z) / np.sqrt(z)) ** B
    else:
        W, wt = _student_nodes(par)
        v = qn + sn * (par - 2.0) / W
        phi = np.empty(omega.shape, dtype=np.complex128)
        _phi_mixture_pow(omega, float(B), v, wt, phi)
    p = (N / L) * np.fft.irfft(np.conj(phi), n=N)
    x = np.arange(N) * (L / N)
    return _combine(B, *_pieces_from_density(x, p, np.exp(w)))


def _cache_dir():
    d = os.environ.get("HDTHEORY_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "hdtheory")
    return d


@functools.lru_cache(maxsize=32)
def factor_table(law_key, B):
    """(tab[3, nu, nw] of (mu, nu-hat, A), grid) for a non-Gaussian law at batch B > 1; cached on disk."""
    u = np.arange(U_LO, U_HI + 1e-9, DU)
    w = np.arange(W_LO, W_HI + 1e-9, DW)
    tail = 0.5 * (law_key[1] - 2.0) if law_key[0] == "student_t" else 50.0
    grid = np.array([U_LO, u[-1], DU, W_LO, DW, w[-1], tail])
    tag = hashlib.sha1(repr(("v1", law_key, B, U_LO, U_HI, DU, W_LO, W_HI, DW, FFT_N, STUDENT_NODES, STUDENT_TAIL))
                       .encode()).hexdigest()[:16]
    path = os.path.join(_cache_dir(), f"clip_table_{tag}.npy")
    try:
        tab = np.load(path)
        if tab.shape == (3, u.size, w.size) and np.all(np.isfinite(tab)):
            return tab, grid
    except (OSError, ValueError):
        pass
    tab = np.empty((3, u.size, w.size))
    for i, ui in enumerate(u):
        tab[:, i, :] = _table_column(law_key, B, ui, w)
    try:
        os.makedirs(_cache_dir(), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp.npy"
        np.save(tmp, tab)
        os.replace(tmp, path)
    except OSError:
        pass
    return tab, grid


_EMPTY = np.zeros(1)
_EMPTY_TAB = np.zeros((3, 2, 2))
_EMPTY_GRID = np.array([0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0])


def law_spec(noise, batch: int):
    """Arguments (law, m0, vext, wts, tab, grid) of the factor kernels for a noise law and batch."""
    s2 = noise.variance
    if isinstance(noise, Gaussian) or s2 == 0.0:
        return LAW_GAUSS, _EMPTY, _EMPTY, _EMPTY, _EMPTY_TAB, _EMPTY_GRID
    if isinstance(noise, Rademacher):
        key = ("rademacher", 0.0)
    elif isinstance(noise, StudentT):
        if not noise.df > 2:
            raise ValueError("clipped-SGD theory needs Student-t with df > 2 (finite variance)")
        key = ("student_t", float(noise.df))
    else:
        raise ValueError(f"no clipped-SGD factors for noise law {noise!r}")
    if batch == 1:
        if key[0] == "rademacher":
            return LAW_SHIFTED, np.array([math.sqrt(s2)]), np.zeros(1), np.ones(1), _EMPTY_TAB, _EMPTY_GRID
        W, wt = _student_nodes(key[1])  # W ascending: vext decreasing
        vext = s2 * (key[1] - 2.0) / W
        return (LAW_MIXTURE, _EMPTY, np.concatenate([vext, vext[::-1]]), np.concatenate([wt, wt[::-1]]),
                _EMPTY_TAB, _EMPTY_GRID)
    tab, grid = factor_table(key, int(batch))
    return LAW_TABLE, _EMPTY, _EMPTY, _EMPTY, tab, grid


def with_factor_table(spec, sigma2: float, batch: int, clip2: float, relative: bool, u_lo: float, u_hi: float):
    """``spec`` with a Chebyshev table of its factors (``chebyshev``) over u = log q in [u_lo, u_hi] (whole
    segments from u_lo, u_lo >= log(Q_FLOOR sigma^2) under label noise) at one clip level: ``clip2`` = tau^2 for a
    fixed level, kappa^2 for a relative one. Elsewhere the kernels evaluate the factors themselves. For Gaussian
    noise and the Student-t mixture at B = 1; the spec itself for the others (the B > 1 laws have a table of their
    own; Rademacher's single component is cheap, and its factors sharpen into steps as q -> 0, where segments
    would not converge)."""
    law, m0, vext, wts, tab, grid = spec
    if law != LAW_GAUSS and law != LAW_MIXTURE:
        return spec
    if sigma2 > 0.0:
        u_lo = max(u_lo, math.log(Q_FLOOR * sigma2))
    segments = max(1, int(math.ceil((u_hi - u_lo) / WIDTH)))
    values = _table_values(u_lo, segments, sigma2, batch, float(clip2), bool(relative), *spec)
    table = np.array([1.0, u_lo, float(segments), float(clip2), 1.0 if relative else 0.0])
    return law, m0, vext, wts, fit_segments(values), table


@nb.njit(**KERNEL)
def _table_values(u_lo, segments, sigma2, B, clip2, relative, law, m0, vext, wts, tab, grid):
    """The factors at the nodes of a table (``chebyshev.table_node``), values[c, i, j]."""
    values = np.empty((3, segments, DEGREE + 1))
    scratch = factor_scratch(law, wts)
    for i in range(segments):
        for j in range(DEGREE + 1):
            q = math.exp(table_node(u_lo, i, j))
            tau2 = clip2 * (q + sigma2) if relative else clip2
            mu, nuh, A = clip_factors_scratch(q, tau2, sigma2, B, law, m0, vext, wts, tab, grid, scratch)
            values[0, i, j], values[1, i, j], values[2, i, j] = mu, nuh, A
    return values


def clip_factors(noise, batch: int, q, tau):
    """Reduction factors (mu, nu, A) (module docstring) at excess MSE ``q`` and normalized
    clip level ``tau`` = c sqrt(B / tr K) (broadcasting arrays). ``nu`` is in MSE units (nu = E at tau = inf)."""
    batch = check_batch(batch)
    spec = law_spec(noise, batch)
    q, tau = np.broadcast_arrays(np.asarray(q, dtype=np.float64), np.asarray(tau, dtype=np.float64))
    shape = q.shape
    q, tau2 = np.ascontiguousarray(q.ravel()), np.ascontiguousarray(tau.ravel() ** 2)
    mu, nuh, A = (np.empty(q.shape) for _ in range(3))
    s2 = noise.variance
    _factors_pairs(q, tau2, s2, batch, *spec, mu, nuh, A)
    nu = nuh * (np.maximum(q, 0.0) + s2)
    mu, nu, A = (v.reshape(shape) for v in (mu, nu, A))
    return (mu[()], nu[()], A[()]) if mu.ndim == 0 else (mu, nu, A)

