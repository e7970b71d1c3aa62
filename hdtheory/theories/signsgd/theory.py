"""signSGD on streaming Gaussian least squares: per-mode deterministic dynamics (research/signsgd.md).

Update (DESIGN.md): theta_{k+1} = theta_k - lr_k sign(g_k), coordinatewise, sign(0) = 0, with g_k the
averaged minibatch gradient (1/B) sum_b x_b (<x_b, theta_k> - y_b) (only its sign matters, so averaged
vs summed is irrelevant here). ``per_example=True`` is the other sign placement (note §1.7): theta <-
theta - lr (1/B) sum_b sign(x_b r_b), the mean of the per-example signs. lr_k = lr * schedule(k); k is
the integer step index; risk R = 1/2 E[(<x, theta> - y)^2] = 1/2 (sigma^2 + s^2) with s^2 = e^T K e,
e = theta - theta*. Units are those of the note (lr = the step applied to theta; the paper's eta/d and
t = k/d are never used).

Drift function (note §1.3, E4-E5). E[sign g | e] ~ a_B(s) D^{-1/2} K e with D = diag(K) and

    a_1(s) = (2/pi) L(1/(2 s^2)) / s,
    a_B(s) = (2/pi) (B - 1)/s int_0^{pi/2} cos^{B-2}(th) L(sin^2(th) / (2 s^2))^B dth     (B >= 2),

where L(u) = E exp(-u eps^2) is the Laplace transform of the law of eps^2 (the label noise enters only
through it). We write a_B(s) = A_B g_B(s/sigma)/s with A_B = sqrt(2/pi) c_B, c_B = E||N(0, I_B)|| =
sqrt(2) Gamma((B+1)/2)/Gamma(B/2), so that g_B -> 1 for s >> sigma (every law) and g_B = 1 at sigma = 0.
Then g_1(x) = L_1(1/(2x^2)) (L_1: the law at unit sigma) and, for B >= 2,
g_B(x) = (2/pi)(B-1)/A_B int cos^{B-2} L_1(sin^2/(2x^2))^B. Closed forms (note §1.3):

* Gaussian:        g_B(x) = x / sqrt(1 + x^2), i.e. a_B(s) = A_B / sqrt(s^2 + sigma^2), every B;
* Rademacher B=1:  g_1(x) = exp(-1/(2 x^2));
* Rademacher B>=2: g_B(x) = 1F1(1/2; B/2; -B/(2x^2))  (the note's form divided by A_B: the Gamma factors
  cancel against c_B exactly, since c_B = (B-1) Gamma((B-1)/2) / (sqrt 2 Gamma(B/2)));
* Student-t_nu (eps = sigma sqrt((nu-2)/nu) T):  L_1(u) = E_W (1 + c/W)^{-1/2}, W ~ chi^2_nu,
  c = 2u(nu-2) (note §1.1), evaluated by a fixed composite quadrature in log sqrt(W) (``_laplace_student``;
  the note's Tricomi-U closed form is used only as a check: scipy's hyperu returns NaN for nu >~ 10 at
  small c); for B >= 2 the theta-integral by adaptive quadrature.

The solver evaluates g in Numba: closed form for Gaussian and Rademacher B = 1, otherwise a cubic spline of
log g in log x on 481 points over x in [1e-4, 1e4] (built once per (law, df, B) and cached; measured
against the reference below to < 1e-8 relative, tests/test_signsgd.py), extended by the limits: below
the table g is linear in x (a_B(0+) is finite for those laws), above it log g ~ 1/x^2.

Per-mode dynamics (note §1.4, E6). Let K~ = D^{-1/4} K D^{-1/4} = sum_j mu_j w_j w_j^T (eigh),
K_sigma = (2/pi) arcsin(D^{-1/2} K D^{-1/2}) (entrywise), n_j = w_j^T D^{1/4} K_sigma D^{1/4} w_j and
rho~_j(k) = E (w_j^T D^{1/4} e_k)^2. Then

    rho~_j(k+1) = (1 - 2 lr_k a_B(s_k) mu_j) rho~_j(k) + lr_k^2 n_j,     s_k^2 = sum_j mu_j rho~_j(k)   (E6)

(sign of the mean gradient), and for the mean of per-example signs (E7; the drift is that of B = 1 and
E[v v^T] = K_sigma/B + (1 - 1/B) m m^T gives the extra lr^2 a_1^2 mu^2 term)

    rho~_j(k+1) = (1 - 2 lr_k a_1 mu_j + (1 - 1/B) lr_k^2 a_1^2 mu_j^2) rho~_j(k) + (lr_k^2/B) n_j.  (E7)

a is evaluated at the mean s_k (mean-field closure; the O(1/d) fluctuation of s is neglected). The
noise term is exact for B = 1 (any K: E[S S^T | e] = K_sigma) and for diagonal K (any B: E S_i^2 = 1);
for dense K and B >= 2 it is the d -> infinity limit, with a first correction of relative size O(B/d)
derived and measured below ("Dense K with a batch"). Diagonal K (``hd.Problem(eigenvalues=...)``): mu_i = n_i =
sqrt(lambda_i), rho~_i = sqrt(lambda_i) (theta_0 - theta*)_i^2, setup O(d). Dense K
(``hd.from_covariance``; note §2.1, §2.2 item 2): the O(d^3) setup above, once (arcsine of the
correlation matrix O(d^2), one ``eigh`` of K~, one GEMM for n), then the same O(d) per-mode kernel; memory
O(d^2) during the setup only. The setup asserts the note's invariants: sum_j n_j = sum_i sqrt(K_ii),
sum_j mu_j n_j = tr(K K_sigma), n_j >= 0, sum_j mu_j rho~_j(0) = e_0^T K e_0. Not the SVD of D^{-1/2} K
(wrong for non-symmetric D^{-1/2} K, note §2.1). Coordinates with K_ii <= 1e-12 max_i K_ii never move
(x_i = 0, sign(0) = 0) and carry no risk: they are dropped. Equal mu_j are merged (sum rho~, sum n; exact).

Dense K with a batch (B >= 2, sign of the mean; derived here, the note only states "O(B/d)", §1.4). Condition
on z_b = <x_b, e> and eps: x_b = (K e / s^2) z_b + xi_b with xi_b ~ N(0, K_perp), K_perp = K - K e e^T K / s^2,
independent of z, so sum_b x_b r_b = (K e / s^2) <z, r> + ||r|| Y, Y ~ N(0, K_perp), and S = sign(h t + Y) with
t = <z, r>/(s ||r||) a scalar. In units of sqrt(K_perp,ii) coordinate i is shifted by u_i t / sqrt(1 - u_i^2),
u = D^{-1/2} K e / s, and two coordinates have correlation (C_ij - u_i u_j)/sqrt((1 - u_i^2)(1 - u_j^2)). For a
standard bivariate normal with correlation rho and shifts a_i, a_j, E sign(Y_i + a_i) sign(Y_j + a_j) =
(2/pi)[arcsin rho + (a_i a_j - rho (a_i^2 + a_j^2)/2) / sqrt(1 - rho^2)] + O(a^4) (the first derivatives vanish
at a = 0; the second come from the bivariate density at the origin). Expanding in u and averaging over t:

    E[S S^T | e] = K_sigma + tau_B(s) Gamma(e) + O(u^4),     tau_B = E[t^2] - 1,
    Gamma_ij = (2/pi) (u_i u_j - C_ij (u_i^2 + u_j^2)/2) / sqrt(1 - C_ij^2)   (i != j),   Gamma_ii = 0

(``sign_second_moment``; tau_B by two Stein steps, ``batch_noise_tau``: Gaussian (B-1) s^2/(s^2 + sigma^2),
tau_1 = 0 for every law, so B = 1 is exact as it must be; Gamma_ii = 0, so diagonal K is exact too). In the
per-mode map this would add lr^2 tau_B w_j^T D^{1/4} E[Gamma] D^{1/4} w_j to n_j, and E[Gamma] needs the full
second moment D^{-1/2} K E[e e^T] K D^{-1/2}, which the per-mode state (the diagonal of M~ in the K~ basis) does
not carry: keeping it costs O(d^3) per step. Measured, it is not worth it:

* at fixed e (d = 100, V3 matrix, delocalized e, B = 8): E[S^T K S] by Monte Carlo (10^5 batches) is 2.2% above
  tr(K K_sigma) and 0.1% (Gaussian, 2 SEM) / 0.05% (Rademacher) from tr(K (K_sigma + tau_B Gamma)) (the same
  check with 12000 batches and three laws is in tests/test_signsgd.py); at e_0 the relative term
  tau_B tr(K Gamma)/tr(K K_sigma) is 1.1%, 1.0%, 0.30%, 0.18% (V3, d = 250, 500, 1000, 2000) and 0.81%, 0.19%,
  0.11%, 0.06% (rotated (i/d)^2 spectrum), i.e. O(B/d);
* on the risk curve it is negligible: the full d x d recursion of (E1) with K_sigma + tau_B E[Gamma] (E[Gamma]
  from the exact second moment) differs from (E6) by <= 0.02% (B = 8, gamma = 0.5, t <= 2, d = 250 and 500, V3
  and rotated spectrum, Gaussian and Rademacher): the noise is a small part of the transient, and near the
  floor s^2 << sigma^2 makes tau_B small;
* the finite-d gap that the simulations do show at B = 8 is the drift's own O(B u^2) term (note §1.3,
  m_i = a_B w_i (1 + kappa u_i^2), kappa = -(B - 2) s^2 / (6 (s^2 + sigma^2)) for Gaussian noise), present for
  diagonal K too. A moment recursion with that term (Gaussian closure for e) vs an independent simulation
  (V3, B = 8, gamma = 0.5, Gaussian; excess of the seed mean over (E6) at t = 1/4, 1/2, 1, 2):
      V3 d = 250    predicted +0.45 +0.26 +0.14 +0.09%   measured (2048 seeds) +0.43 +0.32 +0.11 +0.12% (SEM .04-.06)
      V3 d = 500    predicted +0.29 +0.16 +0.07 +0.04%   measured (1024 seeds) +0.37 +0.20 +0.08 +0.05% (SEM .04-.07)
      V3 d = 1000                                        measured  (512 seeds) +0.14 +0.01 -0.05 -0.02% (SEM .04-.06)
      K = D, d = 250 predicted +0.18 +0.25 +0.16 +0.05%  measured (2048 seeds) +0.20 +0.26 +0.12 +0.04% (SEM .03-.06)
      K = D, d = 500 predicted +0.09 +0.13 +0.08 +0.02%  measured (1024 seeds) +0.09 +0.08 +0.12 +0.01% (SEM .03-.06)
  The gap falls as 1/d: the d -> infinity theory (E6) is right for dense K at B = 8. At gamma = 2 (floor regime)
  the B = 8 gap is larger, ~ +2/d for V3 and for its diagonal alike (Student-t: +0.6-0.9% at d = 300, +0.3-0.4%
  at d = 600), the fluctuation effect of the note's V5.

Theory vs ``validation.simulate`` on dense K (issue 5; sigma = 0.4, theta_0 = 0, lr = gamma/d, t = k/d; max over
the recorded points of |rel| = |seed mean - theory|/theory of R and of |z| = |seed mean - theory|/SEM). V3 is
the note's matrix; "rot" is Q diag((i/d)^2) Q^T with Q Haar (weak correlations everywhere):

    gamma = 0.5, d = 500, 64 seeds, t = 1/4 .. 4      Gaussian        Rademacher      Student-t_5
      V3   B = 1                                      0.72% (z 1.8)   0.72% (1.6)     0.40% (0.8)
      V3   B = 8 sign of mean                         0.34% (2.1)     0.46% (2.0)     0.40% (2.1)
      V3   B = 8 mean of signs                        0.12% (0.8)     0.17% (1.3)     0.21% (1.6)
      rot  B = 1                                      0.53% (1.2)     0.52% (1.6)     0.83% (2.1)
      rot  B = 8 sign of mean                         0.19% (1.2)     0.31% (1.9)     0.16% (0.8)
      rot  B = 8 mean of signs                        0.15% (0.9)     0.17% (2.0)     0.14% (2.1)
    gamma = 0.5, d = 1000, 32 seeds, t = 1/4 .. 2
      V3   Gaussian B = 1 0.61% (1.4), B = 8 0.55% (2.5), mean of signs B = 8 0.16% (1.4);
           B = 8 Rademacher 0.23% (0.9), Student-t_5 0.25% (1.1)
      rot  Gaussian B = 1 0.51% (1.4), B = 8 0.35% (1.3), mean of signs B = 8 0.18% (1.7);
           B = 8 Rademacher 0.45% (2.3), Student-t_5 0.20% (1.3)
    gamma = 1, d = 500, 64 seeds, t = 1/4 .. 2, B = 8 (12 cases: 3 laws x 2 matrices x 2 placements)
      max |rel| 0.83% (V3, t_5, sign of mean, z 2.7), all others <= 0.63%; max |z| 2.7

All within Monte Carlo error plus the finite-d terms above; the note's V3 B = 8 figures (0.60% at d = 500, 0.38% at
d = 1000) are reproduced. The default test run checks d = 300, gamma = 1, B = 8 per law (both matrices, both
placements); identity-shaped or SGD-shaped noise weights fail it.

Driver form: s <- (1 + am1) s + f + h E with am1 = -2 lr a mu (+ (1 - 1/B)(lr a_1 mu)^2), f = lr^2 n
(/B), h = 0; a depends on the scalar E = sigma^2 + sum mu rho~ (``scalar_dependent``), so the driver's
block integrator holds a at the block's weighted scalar (note §5.3). Readout E = sigma^2 + sum_j mu_j
rho~_j = 2R. The same coefficients as a Numba kernel of (lr, E) (``sign_coefficients``, bit-identical to
``affine``) drive the fused block loop (``Theory.block_kernel``, ``kernels.run_blocks_scalar``) under
piecewise-constant lr schedules, diagonal and dense K alike. Measured (CPU time, d = 1000, V2-like
spectrum, default grid, ratio to an SGD curve; benchmarks/bench_signsgd.py) at the solve's default
(extrapolated predictor + 1 corrector): 1.8-2.2x at 1e4 steps and 2.9-3.6x at 1e6 over Gaussian,
Rademacher, Student-t_5 x B in {1, 8}; 2.1-2.5x and 3.9-5x with the note's ``predictor="pass",
correctors=2``; 1.2-1.4x and 1.6-2.1x with one pass (``correctors=0``, which limit-cycles around the floor,
see hdtheory/driver.py); before the fused loop: 2.0-2.6x and 8-10x. Dense K, d = 500 (measured with 2 and
0 correctors): the solve without the setup 2.5x and 4.4x (1.6x, 1.9x); the O(d^3) setup (~40 ms) is redone by every
solve and dominates there (16x and 12x in all).

Validity (note §1.6): the map is meaningful while 2 lr a mu_max < 1 (a coordinate does not overshoot within
a step) and the effective dimension sum_i sqrt(K_ii)/sqrt(max K_ii) >> B; spiky spectra (power laws with
2 alpha >~ 1) are outside the theory (note V6). Not checked by the solver; see ``overshoot``.

Thresholds (note §3): signSGD never diverges (each coordinate moves by lr per step; a rising risk is
pulled back to a finite floor because the drift grows like s while the noise input is constant), so
``threshold`` is +inf. The useful limit is ``no_progress_lr`` (§3.3). The floor is (E8)
s*^2 a_B(s*) = (lr/2) sum_i sqrt(K_ii) (``stationary_risk``).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numba as nb
import numpy as np
from scipy import integrate, special
from scipy.interpolate import CubicSpline
from scipy.optimize import brentq, minimize_scalar

from ..noise import Gaussian, NoiseLaw, Rademacher, StudentT
from ..schedules import Schedule
from ..kernels import run_blocks_scalar
from .base import ModeState, OptimizerMixin, Theory, check_batch


# ------------------------------------------------------------------------------------------------------
# the drift function a_B(s) = A_B g_B(s/sigma)/s
# ------------------------------------------------------------------------------------------------------

#: Numba evaluation modes of g: closed forms, or the spline table
MODE_GAUSSIAN, MODE_RADEMACHER1, MODE_TABLE = 0, 1, 2
_TABLE_LOGX = (math.log(1e-4), math.log(1e4))
_TABLE_POINTS = 481


def c_batch(B: int) -> float:
    """c_B = E||N(0, I_B)|| = sqrt(2) Gamma((B+1)/2) / Gamma(B/2) (note §1.1)."""
    return math.sqrt(2.0) * math.exp(special.gammaln((B + 1) / 2.0) - special.gammaln(B / 2.0))


def _law_key(noise: NoiseLaw):
    if isinstance(noise, Gaussian):
        return ("gaussian", 0.0)
    if isinstance(noise, Rademacher):
        return ("rademacher", 0.0)
    if isinstance(noise, StudentT):
        return ("student_t", float(noise.df))
    raise ValueError(f"signSGD theory supports the noise laws Gaussian, Rademacher and StudentT, got {noise!r}")


def _laplace_unit(kind: str, df: float, u):
    """L_1(u) = E exp(-u eps^2) for the law at unit sigma (note §1.1 table); u >= 0 (array)."""
    u = np.asarray(u, dtype=np.float64)
    if kind == "gaussian":
        return 1.0 / np.sqrt(1.0 + 2.0 * u)
    if kind == "rademacher":
        return np.exp(-u)
    return _laplace_student(df, u.ravel()).reshape(u.shape)


@functools.lru_cache(maxsize=16)
def _student_nodes(df: float):
    """Nodes v and weights of int_0^inf v^(df-1) e^(-v^2) F(v) dv: composite 12-point Gauss-Legendre on 96
    panels uniform in log v over [1e-7, sqrt(df/2) + 12] (the weight is negligible outside)."""
    x, w = np.polynomial.legendre.leggauss(12)
    edges = np.linspace(math.log(1e-7), math.log(math.sqrt(df / 2.0) + 12.0), 97)
    mid, half = 0.5 * (edges[1:] + edges[:-1]), 0.5 * (edges[1:] - edges[:-1])
    lv = (mid[:, None] + half[:, None] * x[None, :]).ravel()
    v = np.exp(lv)
    wt = (half[:, None] * w[None, :]).ravel() * np.exp(df * lv - v * v)  # dv = v d(log v)
    return v, wt / wt.sum()  # normalized: L(0) = 1 exactly


def _laplace_student(df: float, u: np.ndarray) -> np.ndarray:
    """Student-t L_1(u) = E_W (1 + c/W)^(-1/2), W ~ chi^2_df, c = 2u(df-2). With W = 2v^2 (v^2 ~ Gamma(df/2)):
    L = int v^(df-1) e^(-v^2) v / sqrt(v^2 + z) dv / int v^(df-1) e^(-v^2) dv, z = c/2 = u(df-2), by the
    quadrature of ``_student_nodes``; smooth in log v at every scale of z. (scipy's closed form through
    hyperu returns NaN for df >~ 10 at small z, so it is only used as a check in the tests.)"""
    v, wt = _student_nodes(float(df))
    z = np.asarray(u, dtype=np.float64) * (df - 2.0)
    out = np.empty(z.shape)
    for i0 in range(0, z.size, 256):
        zz = z[i0:i0 + 256, None]
        out[i0:i0 + 256] = (wt * v / np.sqrt(v * v + zz)).sum(axis=1)
    return out


def _g_reference(kind: str, df: float, B: int, x) -> np.ndarray:
    """g_B(x) = s a_B(s) / A_B at s/sigma = x (module docstring): closed forms where they exist, else
    adaptive quadrature of the theta-integral (E5) with breakpoints where sin(th) ~ {0.1..30} x."""
    x = np.atleast_1d(np.asarray(x, dtype=np.float64))
    if kind == "gaussian":
        return x / np.sqrt(1.0 + x * x)
    if B == 1:
        return _laplace_unit(kind, df, 0.5 / (x * x))
    if kind == "rademacher":
        return special.hyp1f1(0.5, B / 2.0, -B / (2.0 * x * x))
    pref = (2.0 / math.pi) * (B - 1) / (math.sqrt(2.0 / math.pi) * c_batch(B))
    out = np.empty_like(x)
    for i, xi in enumerate(x):
        def f(th, xi=xi):
            return math.cos(th) ** (B - 2) * float(_laplace_unit(kind, df, math.sin(th) ** 2 / (2 * xi * xi))) ** B
        pts = [math.asin(q * xi) for q in (0.1, 0.3, 1.0, 3.0, 10.0, 30.0) if q * xi < 1]
        val, _ = integrate.quad(f, 0.0, math.pi / 2, points=pts or None, limit=400, epsabs=0.0, epsrel=1e-12)
        out[i] = pref * val
    return out


def drift_coefficient(noise: NoiseLaw, s, batch: int = 1) -> np.ndarray:
    """a_B(s) of research/signsgd.md (E5): E[sign g | e] ~ a_B(s) D^{-1/2} K e, with s^2 = e^T K e (twice the
    excess risk). Reference evaluation (closed forms or adaptive quadrature), vectorized over ``s``.

    This is the paper's *noise compression* in one function: the label-noise law enters the drift only
    through it (at equal sigma^2, laws with more mass near 0 drift faster: t_5 > Gaussian > Rademacher)."""
    B = check_batch(batch)
    kind, df = _law_key(noise)
    s = np.asarray(s, dtype=np.float64)
    A = math.sqrt(2.0 / math.pi) * c_batch(B)
    if noise.sigma == 0:
        return A / s
    return A * _g_reference(kind, df, B, np.atleast_1d(s / noise.sigma)).reshape(s.shape) / s


@functools.lru_cache(maxsize=64)
def _table(kind: str, df: float, B: int):
    """Cubic-spline coefficients (4, m) of log g_B on the uniform log x grid (module docstring)."""
    lx = np.linspace(*_TABLE_LOGX, _TABLE_POINTS)
    lg = np.log(_g_reference(kind, df, B, np.exp(lx)))
    spl = CubicSpline(lx, lg, bc_type="not-a-knot")
    coef = np.ascontiguousarray(spl.c, dtype=np.float64)
    coef.setflags(write=False)
    return float(lx[0]), float(lx[1] - lx[0]), coef


@dataclass(frozen=True)
class DriftLaw:
    """What the Numba kernels need to evaluate a_B(s) = A g(s/sigma)/s for one (law, sigma, B)."""

    A: float
    sigma: float
    mode: int
    lx0: float
    h: float
    coef: np.ndarray

    def __call__(self, s) -> np.ndarray:
        s = np.asarray(s, dtype=np.float64)
        out = np.array([drift(float(v), self.sigma, self.A, self.mode, self.lx0, self.h, self.coef)
                        for v in s.ravel()])
        return out.reshape(s.shape)


_EMPTY = np.zeros((4, 1))


def drift_law(noise: NoiseLaw, batch: int) -> DriftLaw:
    kind, df = _law_key(noise)
    B = check_batch(batch)
    A = math.sqrt(2.0 / math.pi) * c_batch(B)
    if noise.sigma == 0 or kind == "gaussian":
        return DriftLaw(A, noise.sigma, MODE_GAUSSIAN, 0.0, 1.0, _EMPTY)
    if kind == "rademacher" and B == 1:
        return DriftLaw(A, noise.sigma, MODE_RADEMACHER1, 0.0, 1.0, _EMPTY)
    lx0, h, coef = _table(kind, df, B)
    return DriftLaw(A, noise.sigma, MODE_TABLE, lx0, h, coef)


@nb.njit(cache=True)
def drift(s, sigma, A, mode, lx0, h, coef):
    """a_B(s) = A g(s/sigma)/s (module docstring); s >= 0. sigma = 0: A/s (inf at s = 0)."""
    if sigma == 0.0:
        return A / s if s > 0.0 else np.inf
    if mode == 0:
        return A / math.sqrt(s * s + sigma * sigma)
    if mode == 1:
        if s <= 0.0:
            return 0.0
        x = s / sigma
        return A * math.exp(-0.5 / (x * x)) / s
    m = coef.shape[1]
    if s <= 0.0:
        return A * math.exp(coef[3, 0] - lx0) / sigma
    lx = math.log(s / sigma)
    if lx <= lx0:  # g linear in x below the table: a = A g(x0) / (x0 sigma)
        return A * math.exp(coef[3, 0] - lx0) / sigma
    top = lx0 + h * m
    if lx >= top:  # log g ~ -C/x^2 above the table
        i = m - 1
        lg_top = ((coef[0, i] * h + coef[1, i]) * h + coef[2, i]) * h + coef[3, i]
        return A * math.exp(lg_top * math.exp(2.0 * (top - lx))) / s
    i = int((lx - lx0) / h)
    if i >= m:
        i = m - 1
    dx = lx - (lx0 + i * h)
    lg = ((coef[0, i] * dx + coef[1, i]) * dx + coef[2, i]) * dx + coef[3, i]
    return A * math.exp(lg) / s


# ------------------------------------------------------------------------------------------------------
# modes: the diagonal preconditioning (mu) and the reshaped gradient noise (n)
# ------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SignModes:
    """Per-mode constants of (E6): ``mu`` (spectrum of D^{-1/4} K D^{-1/4}: the paper's *diagonal
    preconditioning*, sqrt(lambda) for diagonal K), ``n`` (noise weights w^T D^{1/4} K_sigma D^{1/4} w: the
    *gradient-noise reshaping*, risk- and B-independent, sqrt(lambda) for diagonal K; SGD's is
    2R lambda/B), ``rho0`` (rho~(0)), and ``sqrt_diag_sum`` = sum_i sqrt(K_ii)."""

    mu: np.ndarray
    n: np.ndarray
    rho0: np.ndarray
    sqrt_diag_sum: float


def modes(problem, merge: bool = True, check: bool = True) -> SignModes:
    """(mu, n, rho~(0)) of research/signsgd.md §1.4/§2.1 for ``problem`` (module docstring)."""
    e0 = problem.init - problem.target
    if problem.basis is None:
        mu = np.sqrt(problem.eigenvalues)
        n = mu.copy()
        rho = mu * e0 * e0
        ssum = float(mu.sum())
    else:
        K = problem.covariance()
        Kd = np.diag(K).copy()
        keep = Kd > 1e-12 * max(float(Kd.max()), 0.0)
        K, e, Kd = K[np.ix_(keep, keep)], e0[keep], Kd[keep]
        q = Kd ** 0.25
        Kt = K / np.outer(q, q)
        mu, W = np.linalg.eigh(0.5 * (Kt + Kt.T))
        mu = np.clip(mu, 0.0, None)
        sd = np.sqrt(Kd)
        C = np.clip(K / np.outer(sd, sd), -1.0, 1.0)
        Ks = (2.0 / math.pi) * np.arcsin(C)
        np.fill_diagonal(Ks, 1.0)
        N = Ks * np.outer(q, q)
        n = np.einsum("ij,ij->j", W, N @ W)
        rho = (W.T @ (q * e)) ** 2
        ssum = float(sd.sum())
        if check:
            scale = ssum
            assert abs(n.sum() - ssum) <= 1e-10 * scale, "setup invariant sum n = sum sqrt(K_ii) failed"
            trKKs = float(np.sum(K * Ks))
            assert abs(float(mu @ n) - trKKs) <= 1e-10 * max(abs(trKKs), 1e-300) + 1e-12 * scale * mu.max(), \
                "setup invariant sum mu n = tr(K K_sigma) failed"
            assert np.all(n >= -1e-10 * scale), "setup invariant n >= 0 failed"
            s0 = float(e @ K @ e)
            assert abs(float(mu @ rho) - s0) <= 1e-10 * max(s0, 1e-300) + 1e-13 * scale, \
                "setup invariant sum mu rho(0) = e0^T K e0 failed"
        n = np.clip(n, 0.0, None)
    if merge:
        uniq, inv = np.unique(mu, return_inverse=True)
        if uniq.size < mu.size:
            n2, r2 = np.zeros_like(uniq), np.zeros_like(uniq)
            np.add.at(n2, inv, n)
            np.add.at(r2, inv, rho)
            mu, n, rho = uniq, n2, r2
    return SignModes(np.ascontiguousarray(mu), np.ascontiguousarray(n), np.ascontiguousarray(rho), ssum)


def batch_noise_tau(noise: NoiseLaw, s: float, batch: int) -> float:
    """tau_B(s) = E[t^2] - 1, t = <z, r> / (s ||r||), z ~ N(0, s^2 I_B), r = z - eps (module docstring, "Dense K
    with a batch"): the prefactor of the first correction to E[S S^T | e] = K_sigma for the sign of the mean.

    Two Stein steps in z give tau_B = (B - 1)(B - 2) s^2 E||r||^-2 (B >= 3), and with the Laplace transform of
    the note's §1.3 (E||r||^-2 = int_0^inf E exp(-u ||r||^2) du, substitution v = 2us^2/(1 + 2us^2))

        tau_B(s) = (B - 1)(B - 2)/2 int_0^1 (1 - v)^(B/2 - 2) L(v / (2 s^2))^B dv        (B >= 3),
        tau_2(s) = L(1/(2 s^2))^2 (the limit B -> 2),        tau_1 = 0 (t^2 = z^2/s^2: B = 1 is exact).

    Gaussian: (B - 1) s^2 / (s^2 + sigma^2); sigma = 0: B - 1. Evaluated by ``quad`` in w = sqrt(1 - v)."""
    B = check_batch(batch)
    kind, df = _law_key(noise)
    s = float(s)
    if B == 1 or s <= 0.0:
        return 0.0
    if noise.sigma == 0 or not math.isfinite(s):
        return B - 1.0
    x2 = (s / noise.sigma) ** 2
    if kind == "gaussian":
        return (B - 1.0) * x2 / (x2 + 1.0)

    def L(v):  # L_sigma(v / (2 s^2)) = L_1(v / (2 x^2)) for the law at unit sigma
        return float(_laplace_unit(kind, df, np.array([v / (2.0 * x2)]))[0])

    if B == 2:
        return L(1.0) ** 2
    val, _ = integrate.quad(lambda w: 2.0 * w ** (B - 3) * L(1.0 - w * w) ** B, 0.0, 1.0, limit=200,
                            epsabs=0.0, epsrel=1e-10)
    return 0.5 * (B - 1) * (B - 2) * val


def sign_second_moment(problem, e, batch: int, correction: bool = True) -> np.ndarray:
    """E[S S^T | e] for S = sign of the averaged minibatch gradient at the error e = theta - theta*, in the
    coordinate basis (d x d): K_sigma = (2/pi) arcsin(C) (what (E6) uses; exact for B = 1), plus with
    ``correction`` the first batch term tau_B(s) Gamma(e) of the module docstring ("Dense K with a batch"):

        Gamma_ij = (2/pi) (u_i u_j - C_ij (u_i^2 + u_j^2)/2) / sqrt(1 - C_ij^2)  (i != j),  Gamma_ii = 0,
        u = D^{-1/2} K e / s,  s^2 = e^T K e,  C = D^{-1/2} K D^{-1/2},

    accurate to O(u^4). A diagnostic for the size of what the per-mode map drops (relative size
    tau_B tr(K Gamma) / tr(K K_sigma) = O(B/d)); not used by the solver. Coordinates with K_ii = 0 have S_i = 0
    (zero rows). Raises ValueError if two coordinates are perfectly correlated (|C_ij| = 1, i != j: the
    expansion does not hold there)."""
    B = check_batch(batch)
    K = problem.covariance()
    e = np.asarray(e, dtype=np.float64)
    if e.shape != (problem.d,) or not np.all(np.isfinite(e)):
        raise ValueError(f"e must be a finite vector of length {problem.d}")
    Kd = np.diag(K).copy()
    keep = Kd > 1e-12 * max(float(Kd.max()), 0.0)
    out = np.zeros_like(K)
    Kk, ek = K[np.ix_(keep, keep)], e[keep]
    sd = np.sqrt(Kd[keep])
    C = np.clip(Kk / np.outer(sd, sd), -1.0, 1.0)
    np.fill_diagonal(C, 0.0)
    Ks = (2.0 / math.pi) * np.arcsin(C)
    np.fill_diagonal(Ks, 1.0)
    s2 = float(ek @ Kk @ ek)
    tau = batch_noise_tau(problem.noise, math.sqrt(max(s2, 0.0)), B) if correction else 0.0
    if tau != 0.0:
        if np.any(np.abs(C) >= 1.0 - 1e-12):
            raise ValueError("perfectly correlated coordinates (|C_ij| = 1): the batch correction does not apply")
        u = (Kk @ ek) / (math.sqrt(s2) * sd)
        G = (2.0 / math.pi) * (np.outer(u, u) - 0.5 * C * (u[:, None] ** 2 + u[None, :] ** 2)) / np.sqrt(1.0 - C * C)
        np.fill_diagonal(G, 0.0)
        Ks = Ks + tau * G
    out[np.ix_(keep, keep)] = Ks
    return out


# ------------------------------------------------------------------------------------------------------
# the theory module
# ------------------------------------------------------------------------------------------------------

@nb.njit(cache=True)
def signsgd_exact_steps(mu, n, rho, lr_seq, sigma2, sigma, A, mode, lx0, h, coef, batch, per_example, cap):
    """Apply (E6) (or (E7) with ``per_example``) len(lr_seq) times in place on rho; returns the number of
    steps done, stopping early once E = sigma^2 + sum mu rho passes ``cap`` or stops being finite.
    With sigma = 0 and s = 0 (theta = theta*) g = 0 and nothing moves."""
    d = mu.shape[0]
    s2 = 0.0
    for j in range(d):
        s2 += mu[j] * rho[j]
    inv_b = 1.0 / batch
    for k in range(lr_seq.shape[0]):
        lr = lr_seq[k]
        if s2 == 0.0 and sigma == 0.0:
            continue
        a = drift(math.sqrt(max(s2, 0.0)), sigma, A, mode, lx0, h, coef)
        c1 = 2.0 * lr * a
        if per_example:
            c2 = (1.0 - inv_b) * (lr * a) ** 2
            fn = lr * lr * inv_b
        else:
            c2 = 0.0
            fn = lr * lr
        acc = 0.0
        for j in range(d):
            r = (1.0 - c1 * mu[j] + c2 * mu[j] * mu[j]) * rho[j] + fn * n[j]
            rho[j] = r
            acc += mu[j] * r
        s2 = acc
        if not (sigma2 + s2 <= cap):
            return k + 1
    return lr_seq.shape[0]


@nb.njit(cache=True)
def sign_coefficients(hp, z, consts, am1, f, h):
    """Per-mode affine coefficients of (E6)/(E7) (``SignSGDTheory.affine`` at one step time) for hp = (lr,)
    and z = (E,): x = lr a_B(s) mu, am1 = -2 x, f = lr^2 n (E6), or am1 = x (-2 + (1 - 1/B) x),
    f = lr^2 n / B (E7, a = a_1), h = 0, with s^2 = E - sigma^2; all zero at s = sigma = 0 (theta = theta*).
    Same operation order as ``affine`` (bit-identical coefficients)."""
    mu, n, sigma2, sigma, A, mode, lx0, hx, coef, B, per_example = consts
    lr = hp[0]
    s2 = z[0] - sigma2
    if s2 <= 0.0 and sigma == 0.0:
        for j in range(mu.shape[0]):
            am1[j] = 0.0
            f[j] = 0.0
            h[j] = 0.0
        return
    a = drift(math.sqrt(max(s2, 0.0)), sigma, A, mode, lx0, hx, coef)
    la = lr * a
    fn = lr * lr / B if per_example else lr * lr
    for j in range(mu.shape[0]):
        x = la * mu[j]
        am1[j] = x * (-2.0 + (1.0 - 1.0 / B) * x) if per_example else -2.0 * x
        f[j] = fn * n[j]
        h[j] = 0.0


@nb.njit(cache=True)
def _run_blocks(consts, hp, s, W, c0, z, k, k_stop, k_ref, delta, span, grid, rec, i, cap, geo_tol, dmax,
                correctors, extrapolate):
    """``kernels.run_blocks_scalar`` bound to ``sign_coefficients`` (a cached specialization)."""
    return run_blocks_scalar(sign_coefficients, consts, hp, s, W, c0, z, k, k_stop, k_ref, delta, span, grid,
                             rec, i, cap, geo_tol, dmax, correctors, extrapolate)


class SignSGDTheory(Theory):
    span = 1
    scalar_dependent = True

    def init(self, problem, opt) -> ModeState:
        m = modes(problem)
        law = drift_law(problem.noise, 1 if opt.per_example else opt.batch)
        return ModeState(
            s=m.rho0.copy(),
            W=np.ascontiguousarray(m.mu[None, :]),
            c0=np.array([problem.sigma2]),
            sigma2=problem.sigma2,
            consts={"mu": m.mu, "n": m.n, "law": law},
        )

    def exact(self, state, opt, k0, lr_seq, cap):
        c = state.consts
        law = c["law"]
        return int(signsgd_exact_steps(c["mu"], c["n"], state.s, lr_seq, state.sigma2, law.sigma, law.A, law.mode,
                                       law.lx0, law.h, law.coef, opt.batch, opt.per_example, cap))

    def affine(self, state, opt, t, scalars):
        c = state.consts
        mu, n, law = c["mu"], c["n"], c["law"]
        lr = opt.lr_at(t)
        s2 = float(scalars[0]) - state.sigma2
        if s2 <= 0.0 and law.sigma == 0.0:
            return 0.0, 0.0, 0.0  # theta = theta*: g = 0, nothing moves
        a = drift(math.sqrt(max(s2, 0.0)), law.sigma, law.A, law.mode, law.lx0, law.h, law.coef)
        x = lr * a * mu
        if opt.per_example:
            B = opt.batch
            return x * (-2.0 + (1.0 - 1.0 / B) * x), lr * lr / B * n, 0.0
        return -2.0 * x, lr * lr * n, 0.0

    def block_kernel(self, state, opt):
        """The fused block loop with ``sign_coefficients``, see ``Theory.block_kernel``. The spline table is
        passed as a writable copy so that every law gives the wrapper the same Numba types (one compilation)."""
        c = state.consts
        law = c["law"]
        return _run_blocks, (c["mu"], c["n"], float(state.sigma2), float(law.sigma), float(law.A), int(law.mode),
                             float(law.lx0), float(law.h), np.array(law.coef), int(opt.batch), bool(opt.per_example))

    def threshold(self, problem, opt) -> float:
        """+inf: signSGD never diverges (research/signsgd.md §3.1). Each coordinate moves by at most lr per
        step, and in the theory the drift on s^2 grows like s (a_B ~ A_B/s) while the noise input
        lr^2 tr(K K_sigma) is constant, so the risk always settles at a finite floor that grows with lr
        (``stationary_risk``). The useful limit is ``no_progress_lr``."""
        return math.inf


# ------------------------------------------------------------------------------------------------------
# the four effects, the floor, the no-progress lr, the optimal constant lr
# ------------------------------------------------------------------------------------------------------

def _check_opt(opt):
    if not isinstance(opt, SignSGD):
        raise ValueError(f"expected an hd.SignSGD, got {opt!r}")


def _s_of_risk(problem, risk) -> float:
    s2 = 2.0 * float(risk) - problem.sigma2
    if not (math.isfinite(s2) and s2 >= -1e-12 * max(problem.sigma2, 1e-300)):
        raise ValueError(f"risk must be finite and >= sigma^2/2 = {0.5 * problem.sigma2}, got {risk!r}")
    return math.sqrt(max(s2, 0.0))


def effective_lr(problem, opt, risk=None) -> float:
    """The paper's *effective learning rate* lr a_B(s) (note §1.5 item 1): the drift of (E6) is
    -2 (lr a_B(s)) mu_j rho~_j, i.e. signSGD acts as a preconditioned gradient step with this lr at
    risk ``risk`` (default: the initial risk; s^2 = 2 risk - sigma^2). Gaussian, B = 1:
    (2/pi) lr / sqrt(2 R). With ``per_example`` the drift is a_1's at every B. Base lr (no schedule)."""
    _check_opt(opt)
    s = _s_of_risk(problem, problem.initial_risk if risk is None else risk)
    law = drift_law(problem.noise, 1 if opt.per_example else opt.batch)
    return float(opt.lr * law(s))


def overshoot(problem, opt, risk=None) -> float:
    """2 lr a_B(s) mu_max at risk ``risk`` (default the initial one): the theory is valid while this is << 1
    (note §1.6; at 1 a coordinate overshoots within one step)."""
    m = modes(problem)
    return 2.0 * effective_lr(problem, opt, risk) * float(m.mu.max())


def _floor_s(law: DriftLaw, Lam: float) -> float:
    """Root s* of s^2 a(s) = Lam (increasing in s; bracketing in log s, note §3.2)."""
    if Lam <= 0:
        return 0.0
    f = lambda ls: math.log(math.exp(2 * ls) * law(math.exp(ls)).item()) - math.log(Lam)  # noqa: E731
    lo, hi = math.log(Lam / law.A) - 1.0, math.log(Lam / law.A) + 1.0
    while f(lo) > 0:
        lo -= 2.0
    while f(hi) < 0:
        hi += 2.0
    return math.exp(brentq(f, lo, hi, xtol=1e-14, rtol=1e-15, maxiter=500))


def stationary_risk(problem, opt) -> float:
    """Risk floor at constant lr = opt.lr (note §3.2, E8): the fixed point of (E6),
    rho~_j* = lr n_j / (2 a_B(s*) mu_j), summed: s*^2 a_B(s*) = (lr/2) sum_i sqrt(K_ii); R* = (sigma^2 + s*^2)/2.
    It depends on K only through its diagonal. Gaussian: s*^2 = [L^2 + sqrt(L^4 + 4 A^2 L^2 sigma^2)]/(2A^2),
    L = (lr/2) sum sqrt(K_ii), A = sqrt(2/pi) c_B.

    ``per_example``: the exact fixed point of (E7), rho~_j* = lr n_j / (B a_1 mu_j (2 - (1-1/B) lr a_1 mu_j)),
    summed: s^2 = sum_j lr n_j / (B a_1(s) (2 - (1-1/B) lr a_1(s) mu_j)) solved by bracketing in log s (the
    note's boxed s^2 a_1 = L/B is its leading order)."""
    _check_opt(opt)
    m = modes(problem)
    lr = opt.lr
    if not opt.per_example:
        s = _floor_s(drift_law(problem.noise, opt.batch), 0.5 * lr * m.sqrt_diag_sum)
        return 0.5 * (problem.sigma2 + s * s)
    law = drift_law(problem.noise, 1)
    B = opt.batch

    def excess(ls):
        s = math.exp(ls)
        a = law(s).item()
        den = 2.0 - (1.0 - 1.0 / B) * lr * a * m.mu
        if np.any(den <= 0):
            return -math.inf  # past the (E7) stability edge for this s: the floor lies at larger s
        return math.log(float(np.sum(lr * m.n / (B * a * den)))) - 2 * ls

    s_lead = _floor_s(law, 0.5 * lr * m.sqrt_diag_sum / B)
    lo, hi = math.log(max(s_lead, 1e-300)) - 1.0, math.log(max(s_lead, 1e-300)) + 1.0
    while excess(lo) < 0:
        lo -= 2.0
    while excess(hi) > 0:
        hi += 2.0
    s = math.exp(brentq(excess, lo, hi, xtol=1e-14, rtol=1e-15, maxiter=500))
    return 0.5 * (problem.sigma2 + s * s)


def no_progress_lr(problem, opt) -> float:
    """The constant lr whose floor equals the initial risk (note §3.3): lr_np = 2 s0^2 a_B(s0) / sum_i sqrt(K_ii),
    s0^2 = e0^T K e0. Above it signSGD ends worse than it started (but stays finite): the natural
    "largest useful lr" (``hd.stability_threshold`` is +inf). ``per_example``: the root in lr of the exact (E7)
    fixed-point equation at s = s0 (module ``stationary_risk``). opt.lr is ignored; 0 if theta_0 = theta*.
    With a schedule, the returned value is for the base lr at constant schedule."""
    _check_opt(opt)
    m = modes(problem)
    s0 = math.sqrt(max(2.0 * problem.initial_risk - problem.sigma2, 0.0))
    if s0 == 0.0:
        return 0.0
    if not opt.per_example:
        a = drift_law(problem.noise, opt.batch)(s0).item()
        return 2.0 * s0 * s0 * a / m.sqrt_diag_sum
    B = opt.batch
    a = drift_law(problem.noise, 1)(s0).item()
    lead = 2.0 * B * s0 * s0 * a / m.sqrt_diag_sum
    if B == 1:
        return lead
    edge = 2.0 / ((1.0 - 1.0 / B) * a * m.mu.max()) * (1.0 - 1e-12)

    def f(lr):  # increasing in lr; f(0) = -s0^2 < 0 and f(lead) >= 0 (the denominators are <= 2)
        return float(np.sum(lr * m.n / (B * a * (2.0 - (1.0 - 1.0 / B) * lr * a * m.mu)))) - s0 * s0

    hi = min(lead, edge)
    return float(brentq(f, 0.0, hi, xtol=1e-15 * hi, rtol=1e-14, maxiter=500))


def optimal_lr(problem, opt, steps: int, *, full: bool = False, **solve_kwargs):
    """Theory-optimal constant lr for the horizon ``steps`` (note §3.4): minimizes the predicted risk
    R_steps(lr) of ``hd.solve`` (opt's batch, placement and schedule shape kept, lr varied) by a log-spaced
    scan over [1e-4, 2] x no_progress_lr followed by a bounded scalar search in log lr around the best
    scan point. Returns the lr, or (lr, risk at steps) with ``full=True``."""
    from ..driver import solve

    _check_opt(opt)
    lr_np = no_progress_lr(problem, opt)
    if lr_np <= 0:
        raise ValueError("theta_0 = theta*: no lr improves the risk")
    grid = np.array([0, int(steps)], dtype=np.int64)

    def final(log_lr):
        return float(solve(problem, opt.with_lr(math.exp(log_lr)), grid=grid, **solve_kwargs).risk[-1])

    logs = np.linspace(math.log(lr_np) - math.log(1e4), math.log(2.0 * lr_np), 25)
    vals = np.array([final(v) for v in logs])
    i = int(np.nanargmin(vals))
    lo, hi = logs[max(i - 1, 0)], logs[min(i + 1, logs.size - 1)]
    res = minimize_scalar(final, bounds=(lo, hi), method="bounded", options={"xatol": 1e-6})
    best, val = (float(res.x), float(res.fun)) if res.fun <= vals[i] else (float(logs[i]), float(vals[i]))
    return (math.exp(best), val) if full else math.exp(best)


def _register():
    from . import register

    register(SignSGD, SignSGDTheory())


_register()
