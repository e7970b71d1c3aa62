"""signSGD's drift law a_B(s): how the sign of a minibatch gradient shrinks the error, for each label-noise law.

Xiao, Marshall, Agarwala, Paquette (2024), arXiv:2411.12135 (the drift for Gaussian noise at B = 1), extended to
any batch and three noise laws in docs/derivations/signsgd.md §3, eqs. (G1)-(G2): E[sign g | e] ~ a_B(s) D^{-1/2} K e,

    a_1(s) = (2/pi) L(1/(2 s^2)) / s,
    a_B(s) = (2/pi) (B - 1)/s int_0^{pi/2} cos^{B-2}(th) L(sin^2(th) / (2 s^2))^B dth     (B >= 2),

s^2 = e^T K e, L(u) = E exp(-u eps^2) the Laplace transform of the law of eps^2 (the label noise enters only through
it). Written a_B(s) = A_B g_B(s/sigma)/s with A_B = sqrt(2/pi) c_B, c_B = E||N(0, I_B)||, so that g_B -> 1 for
s >> sigma and g_B = 1 at sigma = 0. Closed forms: Gaussian g_B(x) = x/sqrt(1 + x^2) (every B); Rademacher
g_1(x) = exp(-1/(2x^2)), g_B(x) = 1F1(1/2; B/2; -B/(2x^2)); Student-t by a fixed quadrature of L and, for B >= 2,
adaptive quadrature of the theta-integral (``drift_coefficient``, the reference).

The solver evaluates a in Numba (``drift``): the closed form for Gaussian noise and Rademacher B = 1, otherwise a
cubic spline of log g in log x on 481 points over x in [1e-4, 1e4] (built once per (law, df, B); < 2e-7 relative
to the reference), extended by the limits (g linear in x below the table, log g ~ 1/x^2 above it).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numba as nb
import numpy as np
from scipy import integrate, special
from scipy.interpolate import CubicSpline

from ...checks import check_batch

#: Numba evaluation modes of g: closed forms, or the spline table
MODE_GAUSSIAN, MODE_RADEMACHER1, MODE_TABLE = 0, 1, 2
_TABLE_LOGX = (math.log(1e-4), math.log(1e4))
_TABLE_POINTS = 481
_LAWS = ("gaussian", "rademacher", "student_t")


def c_batch(B: int) -> float:
    """c_B = E||N(0, I_B)|| = sqrt(2) Gamma((B+1)/2) / Gamma(B/2)."""
    return math.sqrt(2.0) * math.exp(special.gammaln((B + 1) / 2.0) - special.gammaln(B / 2.0))


def law_key(noise):
    """(kind, df) of a label-noise law (its ``kind``; Student-t also its ``df``); ValueError for other laws."""
    kind = getattr(noise, "kind", None)
    if kind not in _LAWS:
        raise ValueError(f"signSGD theory supports the noise laws Gaussian, Rademacher and StudentT, got {noise!r}")
    return kind, float(noise.df) if kind == "student_t" else 0.0


def laplace_unit(kind: str, df: float, u):
    """L_1(u) = E exp(-u eps^2) for the law at unit sigma; u >= 0 (array)."""
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
    L = int v^(df-1) e^(-v^2) v / sqrt(v^2 + z) dv / int v^(df-1) e^(-v^2) dv, z = u(df-2), by the quadrature of
    ``_student_nodes``; smooth in log v at every scale of z. (The closed form through scipy's hyperu returns NaN
    for df >~ 10 at small z; the tests use it only as a check.)"""
    v, wt = _student_nodes(float(df))
    z = np.asarray(u, dtype=np.float64) * (df - 2.0)
    out = np.empty(z.shape)
    for i0 in range(0, z.size, 256):
        zz = z[i0:i0 + 256, None]
        out[i0:i0 + 256] = (wt * v / np.sqrt(v * v + zz)).sum(axis=1)
    return out


def _g_reference(kind: str, df: float, B: int, x) -> np.ndarray:
    """g_B(x) = s a_B(s) / A_B at s/sigma = x: closed forms where they exist, else adaptive quadrature of the
    theta-integral (G2) with breakpoints where sin(th) ~ {0.1..30} x."""
    x = np.atleast_1d(np.asarray(x, dtype=np.float64))
    if kind == "gaussian":
        return x / np.sqrt(1.0 + x * x)
    if B == 1:
        return laplace_unit(kind, df, 0.5 / (x * x))
    if kind == "rademacher":
        return special.hyp1f1(0.5, B / 2.0, -B / (2.0 * x * x))
    pref = (2.0 / math.pi) * (B - 1) / (math.sqrt(2.0 / math.pi) * c_batch(B))
    out = np.empty_like(x)
    for i, xi in enumerate(x):
        def f(th, xi=xi):
            return math.cos(th) ** (B - 2) * float(laplace_unit(kind, df, math.sin(th) ** 2 / (2 * xi * xi))) ** B
        pts = [math.asin(q * xi) for q in (0.1, 0.3, 1.0, 3.0, 10.0, 30.0) if q * xi < 1]
        val, _ = integrate.quad(f, 0.0, math.pi / 2, points=pts or None, limit=400, epsabs=0.0, epsrel=1e-12)
        out[i] = pref * val
    return out


def drift_coefficient(noise, s, batch: int = 1) -> np.ndarray:
    """a_B(s) of (G2): E[sign g | e] ~ a_B(s) D^{-1/2} K e, with s^2 = e^T K e (twice the excess risk). Reference
    evaluation (closed forms or adaptive quadrature), vectorized over ``s``.

    This is the paper's *noise compression* in one function: the label-noise law enters the drift only through it
    (at equal sigma^2, laws with more mass near 0 drift faster: t_5 > Gaussian > Rademacher)."""
    B = check_batch(batch)
    kind, df = law_key(noise)
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
    """What the Numba kernels need to evaluate a_B(s) = A g(s/sigma)/s for one (law, sigma, B); callable on s."""

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


def drift_law(noise, batch: int) -> DriftLaw:
    """The solver's evaluation of a_B for ``noise`` at batch ``batch`` (closed form or spline table)."""
    kind, df = law_key(noise)
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
