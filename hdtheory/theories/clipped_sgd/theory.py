"""Clipped SGD on streaming Gaussian least squares: per-mode recursion with clipping reduction factors.

Update (DESIGN.md): g_k = (1/B) sum_b x_b (<x_b, theta_k> - y_b),
theta_{k+1} = theta_k - lr_k g_k min(1, c_k / ||g_k||).

Theory (research/clipped_sgd.md §1; source: Marshall, Xiao, Agarwala, Paquette, arXiv 2406.11733, whose
B = 1 ODE is the lr*lambda -> 0 limit of what is implemented here, §1.7). With q = sum_j lambda_j rho_j
(excess MSE), E = q + sigma^2 (twice the risk) and the normalized clip level

    tau^2 = c^2 B / tr K                                            (§1.3: ||g||^2 ~ (tr K / B) m),

the clip decision depends on the batch only through the mean squared residual m = (1/B) sum_b r_b^2,
r_b = z_b - eps_b, z_b ~ N(0, q). Stein's lemma in the Gaussian z gives (§1.4, exact for that model)

    E[s g] = mu K e,   E[s^2 g g^T] = (nu/B) K + A K e e^T K,     s = min(1, tau / sqrt(m)),
    mu = F + (1 - 1/B) T1,   nu = N,
    A  = (1 + 1/B)(F + T2) - (4/B - 2/B^2) T2 - (4/B^2) tau^2 f,

with F = P(m <= tau^2), f = p_m(tau^2), T1 = E[tau/sqrt(m); m > tau^2], T2 = E[tau^2/m; m > tau^2],
N = E min(m, tau^2). The per-mode recursion (§1.5, boxed), in our units (lr = step applied to theta):

    rho_j(k+1) = rho_j(k) [1 - 2 lr lambda_j mu_k + lr^2 lambda_j^2 A_k] + (lr^2 / B) lambda_j nu_k,

(mu_k, nu_k, A_k) evaluated at (q_k, tau_k). As c -> inf: mu = 1, nu = E, A = 1 + 1/B, which is
research/sgd.md (E1) identically (the kernel takes that branch for c = inf, so the limit is exact).
Equal eigenvalues are merged as for SGD (state S_j = sum of rho, forcing times the multiplicity).
In the driver's affine form: am1 = lr lambda (-2 mu + lr lambda A), f = 0, h = (lr^2/B) m_j lambda_j nu/E;
the factors depend on the scalar E, so ``scalar_dependent = True``. The same coefficients as a Numba kernel
of (lr, clip level) and E (``clipped_coefficients``, bit-identical to ``affine``) drive the fused block loop
(``Theory.block_kernel``, ``kernels.run_blocks_scalar``) under piecewise-constant lr and clip schedules
(``Sequence`` clip levels included). Measured (CPU time, d = 1000, linspace spectrum, default grid, ratio
to an SGD curve; benchmarks/bench_clipped_sgd.py) at the solve's default (extrapolated predictor + 1
corrector): 1.9-3.0x at 1e4 steps (Student-t_3 B = 1: 3.2-4.3x) and 2.5-4.1x at 1e6 (Student-t_3 B = 1:
8.3-9.2x) over Gaussian,
Rademacher, Student-t_3 x B in {1, 8} x fixed/relative clip; 2.4-4.4x and 4.5-6x with the note's
``predictor="pass", correctors=2``; 1.4-2.7x and 1.9-2.8x with one pass (``correctors=0``, which can
limit-cycle, see hdtheory/driver.py); before the fused loop: 2.6-8x and 11-21x, every block a Python call.

Factors (§1.6), nu-hat = nu / E:
* Gaussian noise, any B: m = (E/B) chi^2_B, closed forms in the chi-square survival function
  (``hdtheory.special``); with sigma = 0 every law is this case;
* Rademacher and Student-t at B = 1: closed forms for a Gaussian mixture of residual laws
  (Rademacher: one component N(sigma, q) by symmetry; Student-t(df): r | W ~ N(0, q + sigma^2 (df-2)/W),
  W ~ chi^2_df, averaged by Gauss-Legendre in log W, 96 nodes: ~2e-7, §1.6; the centred components in
  their symmetric form, ~2.5 us per evaluation: ``_mixture_factors``);
* Rademacher and Student-t at B > 1: a table over u = log(q/sigma^2) and w = log(tau^2/E), built once
  per (law, B) from the density of m/E, obtained by FFT inversion of its characteristic function
  phi_X(t/B)^B (§1.6) and integrated by trapezoid; cubic in u, linear in w inside the kernel. Outside
  the u range: Gaussian factors above (residuals Gaussian-dominated), the edge value below.
  Tables are cached in memory and on disk (``$HDTHEORY_CACHE`` or ``~/.cache/hdtheory``).

Clip levels (§2.2): a constant c (gradient-norm units; inf = SGD), times an optional ``clip_schedule``
(any hd schedule, e.g. ``hd.Sequence(c_k)`` for an explicit per-step sequence, inf entries allowed), or
``hd.RelativeClip(kappa)``: c_k = kappa sqrt(tr K E_k / B), i.e. tau_k = kappa sqrt(E_k), with E_k the
theory's predicted twice-risk. A relative level is resolved into the c_k sequence the simulator runs by
``resolve_clip`` (the real algorithm cannot observe E_k).

Validity (§1.3): the model replaces ||x||^2 by tr K and drops the full-gradient part of ||g||^2; it needs
tr K / lambda_max >> B and a large effective rank. Power laws with alpha > 1/2 violate this (the note
measures ~1% at d_int ~ 7, ~6% at 1.6); ``init`` warns when tr K/lambda_max < 20 or
(B - 1) lambda_max / tr K > 0.05.

Stability (§3): with a finite fixed clip level nothing diverges (||theta_{k+1} - theta_k|| <= lr c):
``threshold`` returns inf, and ``stationary_risk`` gives the floor, which grows like lr^2 c^2. With a
relative level the recursion for Gaussian noise is linear with SGD's structure under
(1, 1 + 1/B, 1) -> (mu, A, nu-hat) at tau^2/E = kappa^2, and divergence (q -> inf, Gaussian-dominated
residuals) has the same threshold for every noise law (§3.3).
"""
from __future__ import annotations

import cmath
import functools
import hashlib
import math
import os
import warnings
from dataclasses import dataclass

import numba as nb
import numpy as np
from scipy.optimize import brentq

from ..noise import Gaussian, Rademacher, StudentT
from ..schedules import Constant, Schedule, Sequence
from ..kernels import run_blocks_scalar
from ..special import chi2_pdf, expint1, gamma_pq
from .base import ModeState, OptimizerMixin, Theory, check_batch, check_positive
from .sgd import sgd_threshold

LAW_GAUSS, LAW_MIXTURE, LAW_TABLE = 0, 1, 2
#: Gauss-Legendre nodes in log W for the Student-t mixture (research/clipped_sgd.md §1.6: 96 nodes ~ 2e-7)
STUDENT_NODES = 96
#: q is clamped to at least this fraction of sigma^2 (the mixture forms divide by sqrt(q); §5.3)
Q_FLOOR = 1e-12


# ------------------------------------------------------------------------------------------------
# reduction factors (mu, nu-hat = nu/E, A) -- Numba
# ------------------------------------------------------------------------------------------------

@nb.njit(cache=True)
def _gauss_factors(B, y0):
    """Gaussian residuals, m = (E/B) chi^2_B, y0 = B tau^2 / E (research/clipped_sgd.md §1.6)."""
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


@nb.njit(cache=True)
def _mixture_factors(q, tau2, E, m0, vext, wts):
    """B = 1, residual r ~ sum_i w_i N(m0_i, q + vext_i) (research/clipped_sgd.md §1.6).

    Centred components (m0_i = 0: the Student-t scale mixture) use the symmetric form of the same closed
    form, a = -b, pa = pb = phi(b), P = erf(b/sqrt 2) (1 - P by erfc above b = 1): one error function and
    one exp per node instead of two erfc and two exp. Their nu term v (P - 2 b phi(b)) cancels for small b = tau/sqrt(v) (wide components, tight
    clip: a relative error ~1e-16 sqrt(v)/tau, measured 1e-7 in nu-hat at tau = 1e-3); below b = 0.1 the
    difference is summed as its series, erf(b/sqrt 2) - 2 b phi(b) = sqrt(2/pi) sum_{n>=1} (-1)^(n+1)
    b^(2n+1) / ((2n+1) 2^(n-1) (n-1)!) (six terms: truncation < 1e-17 relative)."""
    tau = math.sqrt(tau2)
    mu = 0.0
    nu = 0.0
    dens = 0.0
    for i in range(wts.shape[0]):
        v = q + vext[i]
        sv = math.sqrt(v)
        if m0[i] == 0.0:
            b = tau / sv
            if b < 1.0:  # P = P(|r| <= tau) and its complement Q, each where it is well conditioned
                P = math.erf(b / math.sqrt(2.0))
                Q = 1.0 - P
            else:
                Q = math.erfc(b / math.sqrt(2.0))
                P = 1.0 - Q
            pb = math.exp(-0.5 * b * b) / math.sqrt(2.0 * math.pi)
            if b < 0.1:
                b2 = b * b
                D = math.sqrt(2.0 / math.pi) * b * b2 * (
                    1.0 / 3.0 - b2 * (1.0 / 10.0 - b2 * (1.0 / 56.0 - b2 * (1.0 / 432.0 - b2 * (1.0 / 4224.0 - b2 / 49920.0)))))
            else:
                D = P - 2.0 * b * pb
            mu += wts[i] * P
            nu += wts[i] * (v * D + tau2 * Q)
            dens += wts[i] * 2.0 * pb / sv
            continue
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


@nb.njit(cache=True)
def _table_factors(u, w, tab, u0, du, w0, dw):
    """Cubic (Catmull-Rom) in u, linear in w, clamped to the grid."""
    nu_, nw = tab.shape[1], tab.shape[2]
    fu = min(max((u - u0) / du, 0.0), nu_ - 1.0)
    fw = min(max((w - w0) / dw, 0.0), nw - 1.0)
    jw = min(int(fw), nw - 2)
    sw = fw - jw
    iu = min(int(fu), nu_ - 2)
    t = fu - iu
    out = np.empty(3)
    for c in range(3):
        if iu == 0 or iu == nu_ - 2:
            v0 = tab[c, iu, jw] * (1 - sw) + tab[c, iu, jw + 1] * sw
            v1 = tab[c, iu + 1, jw] * (1 - sw) + tab[c, iu + 1, jw + 1] * sw
            out[c] = v0 * (1 - t) + v1 * t
        else:
            p = np.empty(4)
            for r in range(4):
                i = iu - 1 + r
                p[r] = tab[c, i, jw] * (1 - sw) + tab[c, i, jw + 1] * sw
            out[c] = p[1] + 0.5 * t * (p[2] - p[0] + t * (2 * p[0] - 5 * p[1] + 4 * p[2] - p[3]
                                                         + t * (3 * (p[1] - p[2]) + p[3] - p[0])))
    return out[0], out[1], out[2]


@nb.njit(cache=True)
def clip_factors_nb(q, tau2, sigma2, B, law, m0, vext, wts, tab, grid):
    """(mu, nu/E, A) at excess MSE q and normalized clip tau^2; tau2 = inf gives SGD's (1, 1, 1 + 1/B)."""
    if not (tau2 < math.inf):
        return 1.0, 1.0, 1.0 + 1.0 / B
    q = max(q, 0.0)
    E = q + sigma2
    if E <= 0.0:
        return 1.0, 1.0, 1.0 + 1.0 / B
    if law == LAW_GAUSS or sigma2 == 0.0:
        return _gauss_factors(B, B * tau2 / E)
    q = max(q, Q_FLOOR * sigma2)
    E = q + sigma2
    if law == LAW_MIXTURE:
        return _mixture_factors(q, tau2, E, m0, vext, wts)
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


@nb.njit(cache=True)
def _factors_pairs(q, tau2, sigma2, B, law, m0, vext, wts, tab, grid, mu, nuhat, A):
    for i in range(q.shape[0]):
        mu[i], nuhat[i], A[i] = clip_factors_nb(q[i], tau2[i], sigma2, B, law, m0, vext, wts, tab, grid)


@nb.njit(cache=True)
def clipped_exact_steps(lam, mult, rho, lr_seq, cl_seq, relative, B, trK, sigma2, cap, law, m0, vext, wts, tab,
                        grid, E_rec):
    """Apply the §1.5 recursion len(lr_seq) times in place on rho (clip level cl_seq[k] in gradient-norm
    units, or kappa_k when ``relative``); record E before each step in E_rec when it is long enough; stop
    early (returning the steps done) once E exceeds ``cap`` or is not finite."""
    d = lam.shape[0]
    E = sigma2
    for j in range(d):
        E += lam[j] * rho[j]
    rec = E_rec.shape[0] >= lr_seq.shape[0]
    ib = 1.0 / B
    for k in range(lr_seq.shape[0]):
        if rec:
            E_rec[k] = E
        lr = lr_seq[k]
        c = cl_seq[k]
        tau2 = c * c * E if relative else c * c * B / trK
        mu, nuh, A = clip_factors_nb(E - sigma2, tau2, sigma2, B, law, m0, vext, wts, tab, grid)
        g = lr * lr * ib * nuh * E
        En = sigma2
        for j in range(d):
            el = lr * lam[j]
            r = rho[j] * (1.0 + el * (-2.0 * mu + el * A)) + g * mult[j] * lam[j]
            rho[j] = r
            En += lam[j] * r
        E = En
        if not (E <= cap):
            return k + 1
    return lr_seq.shape[0]


@nb.njit(cache=True)
def clipped_coefficients(hp, z, consts, am1, f, h):
    """Per-mode affine coefficients of the §1.5 recursion (``ClippedSGDTheory.affine`` at one step time) for
    hyperparameters hp = (lr, clip level c, or kappa when relative) and scalars z = (E,):
    am1 = lr lambda (-2 mu + lr lambda A), f = 0, h = (lr^2/B) nu-hat m lambda, the factors at
    q = E - sigma^2 and tau^2 = c^2 B / tr K (fixed level) or kappa^2 E (relative). Same operation order as
    ``affine`` (bit-identical coefficients)."""
    lam, mult, sigma2, B, trK, relative, law, m0, vext, wts, tab, grid = consts
    lr = hp[0]
    c = hp[1]
    E = z[0]
    tau2 = c * c * E if relative else c * c * B / trK
    mu, nuh, A = clip_factors_nb(E - sigma2, tau2, sigma2, B, law, m0, vext, wts, tab, grid)
    g = lr * lr / B * nuh
    for j in range(lam.shape[0]):
        el = lr * lam[j]
        am1[j] = el * (-2.0 * mu + el * A)
        f[j] = 0.0
        h[j] = g * mult[j] * lam[j]


@nb.njit(cache=True)
def _run_blocks(consts, hp, s, W, c0, z, k, k_stop, k_ref, delta, span, grid, rec, i, cap, geo_tol, dmax,
                correctors, extrapolate):
    """``kernels.run_blocks_scalar`` bound to ``clipped_coefficients`` (a cached specialization)."""
    return run_blocks_scalar(clipped_coefficients, consts, hp, s, W, c0, z, k, k_stop, k_ref, delta, span, grid,
                             rec, i, cap, geo_tol, dmax, correctors, extrapolate)


# ------------------------------------------------------------------------------------------------
# noise-law specification and the B > 1 tables (scipy / numpy, built once)
# ------------------------------------------------------------------------------------------------

def _student_nodes(df: float, n: int = STUDENT_NODES):
    """Gauss-Legendre nodes/weights for W ~ chi^2_df in u = log W on [-30, log(df + 60 + 12 sqrt(df))]
    (research/clipped_sgd.md §1.6), weights normalized to sum 1."""
    from scipy.stats import chi2

    x, w = np.polynomial.legendre.leggauss(n)
    lo, hi = -30.0, math.log(df + 60.0 + 12.0 * math.sqrt(df))
    u = 0.5 * (hi - lo) * x + 0.5 * (hi + lo)
    W = np.exp(u)
    wt = 0.5 * (hi - lo) * w * chi2.pdf(W, df) * W
    return W, wt / wt.sum()


@nb.njit(cache=True)
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
    """Factors at q/sigma^2 = e^u over w = log(tau^2/E): density of y = m/E by FFT (§1.6)."""
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
    tag = hashlib.sha1(repr(("v1", law_key, B, U_LO, U_HI, DU, W_LO, W_HI, DW, FFT_N, STUDENT_NODES))
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
            return LAW_MIXTURE, np.array([math.sqrt(s2)]), np.zeros(1), np.ones(1), _EMPTY_TAB, _EMPTY_GRID
        W, wt = _student_nodes(key[1])
        return LAW_MIXTURE, np.zeros(W.size), s2 * (key[1] - 2.0) / W, wt, _EMPTY_TAB, _EMPTY_GRID
    tab, grid = factor_table(key, int(batch))
    return LAW_TABLE, _EMPTY, _EMPTY, _EMPTY, tab, grid


def clip_factors(noise, batch: int, q, tau):
    """Reduction factors (mu, nu, A) of research/clipped_sgd.md §1.4 at excess MSE ``q`` and normalized
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


# ------------------------------------------------------------------------------------------------
# theory module
# ------------------------------------------------------------------------------------------------

def _warn_validity(problem, batch):
    lmax, tr = problem.lambda_max, problem.trace
    if lmax <= 0:
        return
    dint = tr / lmax
    if dint < 20 or (batch - 1) * lmax / tr > 0.05:
        warnings.warn(f"clipped-SGD theory: tr K / lambda_max = {dint:.3g} (batch {batch}); the model of "
                      "research/clipped_sgd.md §1.3 needs tr K / lambda_max >> B (measured error ~1% at 7, ~6% at 1.6)",
                      stacklevel=4)


class ClippedSGDTheory(Theory):
    span = 1
    scalar_dependent = True

    def init(self, problem, opt) -> ModeState:
        lam, s0, mult = problem.spectral_modes(merge=True)
        _warn_validity(problem, opt.batch)
        spec = law_spec(problem.noise, opt.batch)
        return ModeState(
            s=np.ascontiguousarray(s0, dtype=np.float64),
            W=np.ascontiguousarray(lam[None, :]),
            c0=np.array([problem.sigma2]),
            sigma2=problem.sigma2,
            consts={"lam": lam, "mult": mult, "trK": float(np.sum(lam * mult)), "spec": spec},
        )

    def _tau2(self, st, opt, t, E):
        cl = np.atleast_1d(np.asarray(opt.clip_at(t), dtype=np.float64))
        return cl * cl * E if opt.relative else cl * cl * opt.batch / st.consts["trK"]

    def exact(self, state, opt, k0, lr_seq, cap, E_rec=_EMPTY[:0]):
        c = state.consts
        cl_seq = np.ascontiguousarray(opt.clip_at(np.arange(k0, k0 + lr_seq.shape[0])), dtype=np.float64)
        return int(clipped_exact_steps(c["lam"], c["mult"], state.s, lr_seq, cl_seq, opt.relative, opt.batch,
                                       c["trK"], state.sigma2, cap, *c["spec"], E_rec))

    def affine(self, state, opt, t, scalars):
        c = state.consts
        lam, mult = c["lam"], c["mult"]
        E = float(scalars[0])
        tt = np.asarray(t, dtype=np.float64)
        # per-mode times (a smooth schedule inside a block): the factors are evaluated at the two extreme
        # times and interpolated linearly (the block keeps the schedules within a fraction delta)
        ends = np.array([tt.min(), tt.max()]) if tt.ndim else tt.reshape(1)
        tau2 = np.ascontiguousarray(self._tau2(state, opt, ends, E))
        mu, nuh, A = np.empty_like(tau2), np.empty_like(tau2), np.empty_like(tau2)
        _factors_pairs(np.full(tau2.shape, E - state.sigma2), tau2, state.sigma2, opt.batch, *c["spec"], mu, nuh, A)
        if tt.ndim and ends[1] > ends[0]:
            x = (tt - ends[0]) / (ends[1] - ends[0])
            mu, nuh, A = (v[0] + (v[1] - v[0]) * x for v in (mu, nuh, A))
        elif tt.ndim:
            mu, nuh, A = mu[0], nuh[0], A[0]
        lr = opt.lr_at(t)
        el = lr * lam
        return el * (-2.0 * mu + el * A), np.zeros_like(lam), (lr * lr / opt.batch) * nuh * mult * lam

    def block_kernel(self, state, opt):
        """The fused block loop with ``clipped_coefficients`` (hp = ``hyper``), see ``Theory.block_kernel``."""
        c = state.consts
        return _run_blocks, (c["lam"], c["mult"], float(state.sigma2), int(opt.batch), float(c["trK"]),
                             bool(opt.relative), *c["spec"])

    def hyper(self, opt, t):
        return np.array([float(opt.lr_at(t)), float(opt.clip_at(t))])

    def threshold(self, problem, opt) -> float:
        """inf for a finite fixed clip level (no divergence, research/clipped_sgd.md §3.2); SGD's threshold
        when the level is inf at some step; for ``RelativeClip`` the §3.3 edge with Gaussian factors at
        kappa * max(clip_schedule) (the largest kappa binds: mu/nu-hat decreases with kappa)."""
        lam, _, mult = problem.spectral_modes(merge=True)
        peak = opt.sched.peak()
        if peak <= 0:
            return math.inf
        cpeak = opt.clip_sched.peak()
        if opt.relative:
            kappa = opt.clip.kappa * cpeak
            if math.isinf(kappa):
                return sgd_threshold(lam, mult, opt.batch) / peak
            mu, nuh, A = _gauss_factors(opt.batch, opt.batch * kappa * kappa)
            return sgd_threshold(lam, mult, opt.batch, mu=mu, A=A, nuhat=nuh) / peak
        if math.isinf(opt.clip * cpeak):
            return sgd_threshold(lam, mult, opt.batch) / peak
        return math.inf


_THEORY = ClippedSGDTheory()


# ------------------------------------------------------------------------------------------------
# user-facing functions: resolved schedules, stationary risk, clipping advice
# ------------------------------------------------------------------------------------------------

def _check(problem, opt):
    from ..problems import Problem

    if not isinstance(problem, Problem):
        raise ValueError(f"problem must be an hd.Problem, got {type(problem).__name__}")
    if not isinstance(opt, ClippedSGD):
        raise ValueError(f"opt must be an hd.ClippedSGD, got {type(opt).__name__}")


def predicted_E(problem, opt, steps: int) -> np.ndarray:
    """The theory's twice-risk E_k before every step k = 0..steps-1 (exact recursion, O(modes) per step)."""
    _check(problem, opt)
    st = _THEORY.init(problem, opt)
    out = np.full(int(steps), np.inf)
    lr_seq = np.ascontiguousarray(opt.lr_at(np.arange(int(steps))), dtype=np.float64)
    _THEORY.exact(st, opt, 0, lr_seq, math.inf, out)
    return out


def resolve_clip(problem, opt, steps: int) -> ClippedSGD:
    """The same optimizer with its clip levels as an explicit per-step sequence c_k (k < steps), computed
    by the theory for a ``RelativeClip`` (c_k = kappa_k sqrt(tr K E_k / B), research/clipped_sgd.md §2.2);
    the simulator runs this sequence. Non-relative optimizers are returned unchanged."""
    _check(problem, opt)
    if not opt.relative:
        return opt
    E = predicted_E(problem, opt, steps)
    c = opt.clip_at(np.arange(int(steps))) * np.sqrt(problem.trace * E / opt.batch)
    c = np.where(np.isfinite(c) & (c > 0), c, np.inf)
    return ClippedSGD(lr=opt.lr, clip=c, batch=opt.batch, schedule=opt.schedule)


def stationary_risk(problem, opt) -> float:
    """Risk at the fixed point of the recursion for a constant lr and clip level (research/clipped_sgd.md
    §3.2): rho_j* = lr nu(q*) / (B (2 mu(q*) - lr lambda_j A(q*))), q* = sum_j lambda_j rho_j*, a scalar
    root in log q. For fixed c it exists at every lr (the floor grows like lr^2 c^2 tr K / (4 B beta_B^2));
    for SGD or a relative level it is inf at or above the threshold. Returns R* = (sigma^2 + q*)/2."""
    _check(problem, opt)
    lam, _, mult = problem.spectral_modes(merge=True)
    s2, B, lr = problem.sigma2, opt.batch, opt.lr
    spec = law_spec(problem.noise, B)
    trK = problem.trace
    cl = float(opt.clip_at(0))

    def resid(logq):
        q = math.exp(logq)
        E = q + s2
        tau2 = cl * cl * E if opt.relative else cl * cl * B / trK
        mu, nuh, A = clip_factors_nb(q, tau2, s2, B, *spec)
        den = 2.0 * mu - lr * lam * A
        if np.any(den <= 0):
            return math.inf
        return math.log(lr * nuh * E / B * np.sum(mult * lam / den)) - logq

    lo, hi = math.log(1e-300 + 1e-14 * max(s2, 1e-300)), math.log(1e14 * max(s2, 2.0 * problem.initial_risk, 1.0))
    if s2 == 0:
        return 0.0 if not (resid(hi) > 0) else math.inf
    if resid(hi) > 0:
        return math.inf
    if resid(lo) < 0:
        return 0.5 * s2
    return 0.5 * (s2 + math.exp(brentq(resid, lo, hi, xtol=1e-13)))


def ccc(noise, batch: int, q, tau):
    """Clipping comparison criterion mu^2 E / nu (research/clipped_sgd.md §2.1): > 1 iff, at matched drift
    (clipped at lr/mu vs SGD at lr), clipping injects less noise than SGD."""
    mu, nu, _ = clip_factors(noise, batch, q, tau)
    E = np.asarray(q, dtype=np.float64) + noise.variance
    return mu * mu * E / nu


_W_SCAN = np.linspace(-8.0, 8.0, 321)
#: a CCC gain below this is treated as none (the B > 1 tables are accurate to ~1e-6 near tau -> inf)
HELPS_TOL = 1e-6


def max_ccc(noise, batch: int, q: float):
    """(max over tau of CCC, argmax tau) at excess MSE q; (1.0, inf) when no finite tau beats SGD
    (always so for Gaussian and Rademacher noise: §2.1; the sup 1 is approached as tau -> inf)."""
    batch = check_batch(batch)
    E = float(q) + noise.variance
    taus = np.sqrt(np.exp(_W_SCAN) * E)
    vals = ccc(noise, batch, np.full(taus.shape, float(q)), taus)
    i = int(np.argmax(vals))
    if not vals[i] > 1.0 + HELPS_TOL:
        return 1.0, math.inf
    if 0 < i < vals.size - 1:  # parabolic refinement in w
        y0, y1, y2 = vals[i - 1], vals[i], vals[i + 1]
        den = y0 - 2 * y1 + y2
        dw = 0.5 * (y0 - y2) / den if den < 0 else 0.0
        w = _W_SCAN[i] + dw * (_W_SCAN[1] - _W_SCAN[0])
        tau = math.sqrt(math.exp(w) * E)
        v = float(ccc(noise, batch, q, tau))
        if v > vals[i]:
            return v, tau
    return float(vals[i]), float(taus[i])


@dataclass(frozen=True)
class ClippingAdvice:
    """Whether some clip level beats SGD somewhere between the initial and the noise-floor excess MSE."""

    helps: bool
    max_ccc: float      # largest CCC found
    q: float            # excess MSE where it is attained
    tau: float          # normalized clip level there (inf if clipping never helps)
    clip: float         # the same level in gradient-norm units, c = tau sqrt(tr K / B)


def clipping_advice(problem, batch: int = 1, points: int = 25) -> ClippingAdvice:
    """Scan q over [1e-3 sigma^2, q0] (log-spaced) for max_tau CCC(q, tau) (research/clipped_sgd.md §2.1;
    the paper's Theorem 3: with the max-CCC schedule and compensated lr clipped SGD is never worse than
    SGD, strictly better where max CCC > 1; if CCC <= 1 everywhere no clip schedule beats SGD)."""
    batch = check_batch(batch)
    s2 = problem.sigma2
    q0 = max(2.0 * problem.initial_risk - s2, 1e-3 * s2)
    if s2 == 0:
        return ClippingAdvice(False, 1.0, q0, math.inf, math.inf)
    best = (1.0, q0, math.inf)
    for q in np.geomspace(1e-3 * s2, max(q0, 2e-3 * s2), points):
        v, tau = max_ccc(problem.noise, batch, q)
        if v > best[0]:
            best = (v, float(q), tau)
    v, q, tau = best
    return ClippingAdvice(v > 1.0 + HELPS_TOL, v, q, tau, tau * math.sqrt(problem.trace / batch))


def max_ccc_schedule(problem, lr: float, batch: int, steps: int, compensate: bool = True,
                     max_lr_factor: float = 100.0) -> ClippedSGD:
    """The max-CCC schedule of research/clipped_sgd.md §2.2 (4): at each step tau_k = argmax CCC(q_k, tau)
    (no clipping where max CCC <= 1; the argmax is tabulated over 60 log-spaced q and interpolated) and, with ``compensate``, lr_k = lr / mu_k (capped at
    ``max_lr_factor`` lr, with a warning), q_k from the theory run along. Returned as a ClippedSGD with
    explicit per-step sequences (clip and lr schedule), which both engines run as is."""
    from ..problems import Problem

    if not isinstance(problem, Problem):
        raise ValueError(f"problem must be an hd.Problem, got {type(problem).__name__}")
    lr = check_positive("lr", lr)
    batch = check_batch(batch)
    steps = int(steps)
    lam, s0, mult = problem.spectral_modes(merge=True)
    rho = np.array(s0, dtype=np.float64)
    s2, trK = problem.sigma2, problem.trace
    spec = law_spec(problem.noise, batch)
    clips, lrs = np.empty(steps), np.empty(steps)
    capped = False
    scale = math.sqrt(trK / batch)
    # argmax_tau CCC as a function of q: tabulated on a log grid (60 points) and interpolated in log q
    # (w* = log(tau*^2 / E) varies slowly with q and CCC is flat at its maximum)
    q0 = float(lam @ rho)
    qg = np.geomspace(1e-4 * max(s2, 1e-300), 10.0 * max(q0, s2, 1e-300), 60)
    wstar = np.full(qg.size, np.inf)
    if s2 > 0:
        for i, qi in enumerate(qg):
            v, tau = max_ccc(problem.noise, batch, qi)
            if v > 1.0 + HELPS_TOL:
                wstar[i] = math.log(tau * tau / (qi + s2))
    lq = np.log(qg)
    for k in range(steps):
        q = float(lam @ rho)
        x = min(max(math.log(max(q, 1e-300)), lq[0]), lq[-1])
        i = min(int(np.searchsorted(lq, x)), qg.size - 1)
        i0 = max(i - 1, 0)
        if np.isinf(wstar[i0]) or np.isinf(wstar[i]):
            w = wstar[i0] if abs(x - lq[i0]) <= abs(lq[i] - x) else wstar[i]
        else:
            t = 0.0 if i == i0 else (x - lq[i0]) / (lq[i] - lq[i0])
            w = wstar[i0] + t * (wstar[i] - wstar[i0])
        tau = math.sqrt(math.exp(w) * (q + s2)) if np.isfinite(w) else math.inf
        mu = clip_factors_nb(q, tau * tau, s2, batch, *spec)[0]
        lk = lr / mu if compensate else lr
        if lk > max_lr_factor * lr:
            lk, capped = max_lr_factor * lr, True
        clips[k], lrs[k] = tau * scale, lk / lr
        clipped_exact_steps(lam, mult, rho, np.array([lk]), np.array([clips[k]]), False, batch, trK, s2, math.inf,
                            *spec, _EMPTY[:0])
    if capped:
        warnings.warn(f"max_ccc_schedule: the compensated lr lr/mu was capped at {max_lr_factor} lr", stacklevel=2)
    return ClippedSGD(lr=lr, clip=clips, batch=batch, schedule=Sequence(lrs))


def optimal_clip(problem, lr: float, batch: int, steps: int, bounds=(1e-3, 1e3)):
    """Theory-optimal constant clip level at a given lr: minimizes the predicted risk at ``steps`` over
    c = tau sqrt(tr K / B), tau^2/E_0 in ``bounds`` (log-bounded search), and compares with c = inf.
    Returns (c_best, risk_best, risk_sgd); c_best = inf when no finite level does better."""
    from scipy.optimize import minimize_scalar

    from ..driver import solve

    lr = check_positive("lr", lr)
    batch = check_batch(batch)
    grid = np.array([0, int(steps)])
    scale = math.sqrt(problem.trace / batch)
    E0 = 2.0 * problem.initial_risk

    def risk(logt):
        c = math.sqrt(math.exp(logt) * E0) * scale
        cur = solve(problem, ClippedSGD(lr=lr, clip=c, batch=batch), grid=grid)
        return float(cur.risk[-1]) if cur.status == "ok" and cur.risk.size == 2 else math.inf

    sgd_curve = solve(problem, ClippedSGD(lr=lr, clip=math.inf, batch=batch), grid=grid)
    r_sgd = float(sgd_curve.risk[-1]) if sgd_curve.risk.size == 2 else math.inf
    lo, hi = math.log(bounds[0]), math.log(bounds[1])
    ws = np.linspace(lo, hi, 13)
    vals = [risk(w) for w in ws]
    i = int(np.argmin(vals))
    a, b = ws[max(i - 1, 0)], ws[min(i + 1, ws.size - 1)]
    res = minimize_scalar(risk, bounds=(a, b), method="bounded", options={"xatol": 1e-3})
    w_best, r_best = (res.x, res.fun) if res.fun < vals[i] else (ws[i], vals[i])
    if not r_best < r_sgd:
        return math.inf, r_sgd, r_sgd
    return math.sqrt(math.exp(w_best) * E0) * scale, float(r_best), r_sgd


def _register():
    from . import register

    register(ClippedSGD, _THEORY)


_register()
