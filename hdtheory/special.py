"""Special functions inside Numba kernels: regularized incomplete gamma, exponential integral E1,
chi-square density and survival function (for integer or half-integer degrees of freedom), and a branch-free
atan (within 2 ulp of libm) for loops that should vectorize (a libm call does not).

Algorithms: series for x < a + 1 and a modified-Lentz continued fraction otherwise (Numerical
Recipes §6.2, both O(sqrt(a)) iterations); E1 by its power series (x < 1) and continued fraction (x >= 1).
Checked against scipy.special (gammainc, gammaincc, exp1, chi2) to ~1e-14 relative in tests/test_clipped_sgd.py.
"""
from __future__ import annotations

import math

import numba as nb
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

_EPS = 1e-16
_TINY = 1e-300
_EULER = 0.5772156649015329


@nb.njit(cache=True)
def gamma_pq(a, x):
    """(P(a, x), Q(a, x)) = regularized lower and upper incomplete gamma functions, a > 0, x >= 0."""
    if x <= 0.0:
        return 0.0, 1.0
    if math.isinf(x):
        return 1.0, 0.0
    lpre = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1.0:
        ap = a
        term = 1.0 / a
        tot = term
        for _ in range(100000):
            ap += 1.0
            term *= x / ap
            tot += term
            if abs(term) < abs(tot) * _EPS:
                break
        p = tot * math.exp(lpre)
        return p, 1.0 - p
    b = x + 1.0 - a
    c = 1.0 / _TINY
    d = 1.0 / b
    h = d
    for i in range(1, 100000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        if abs(d) < _TINY:
            d = _TINY
        c = b + an / c
        if abs(c) < _TINY:
            c = _TINY
        d = 1.0 / d
        dl = d * c
        h *= dl
        if abs(dl - 1.0) < _EPS:
            break
    q = math.exp(lpre) * h
    return 1.0 - q, q


@nb.njit(cache=True)
def expint1(x):
    """E1(x) = int_x^inf e^-t / t dt, x > 0."""
    if x <= 0.0:
        return math.inf
    if x < 1.0:
        tot = -_EULER - math.log(x)
        term = 1.0
        for k in range(1, 200):
            term *= -x / k
            tot -= term / k
            if abs(term / k) < _EPS * abs(tot):
                break
        return tot
    b = x + 1.0
    c = 1.0 / _TINY
    d = 1.0 / b
    h = d
    for i in range(1, 100000):
        an = -1.0 * i * i
        b += 2.0
        d = 1.0 / (an * d + b)
        c = b + an / c
        dl = c * d
        h *= dl
        if abs(dl - 1.0) < _EPS:
            break
    return h * math.exp(-x)


@nb.njit(cache=True)
def chi2_sf(k, y):
    """P(chi^2_k > y) = Q(k/2, y/2)."""
    return gamma_pq(0.5 * k, 0.5 * y)[1]


@nb.njit(cache=True)
def chi2_pdf(k, y):
    """Density of chi^2_k at y > 0."""
    if y <= 0.0:
        return 0.0
    return math.exp((0.5 * k - 1.0) * math.log(y) - 0.5 * y - 0.5 * k * math.log(2.0) - math.lgamma(0.5 * k))


@nb.njit(cache=True, inline="always", error_model="numpy")
def atan_vec(x):
    """atan(x) within 2 ulp, branch-free so that loops over it vectorize (Cephes' reduction to |x| <= 0.66 and
    its rational approximation)."""
    ax = abs(x)
    big = ax > 2.414213562373095  # tan(3 pi / 8)
    mid = ax > 0.66
    z = -1.0 / ax if big else ((ax - 1.0) / (ax + 1.0) if mid else ax)
    y0 = 1.5707963267948966 if big else (0.7853981633974483 if mid else 0.0)
    extra = 6.123233995736766e-17 if big else (3.061616997868383e-17 if mid else 0.0)
    zz = z * z
    P = ((((-8.750608600031904122785e-1 * zz - 1.615753718733365076637e1) * zz - 7.500855792314704667340e1) * zz
          - 1.228866684490136173410e2) * zz - 6.485021904942025371773e1)
    Q = (((((zz + 2.485846490142306297962e1) * zz + 1.650270098316988542046e2) * zz + 4.328810604912902668951e2)
          * zz + 4.853903996359136964868e2) * zz + 1.945506571482613964425e2)
    r = y0 + (z * (zz * P / Q) + z + extra)
    return r if x >= 0.0 else -r


@intrinsic
def _bits_as_float(typingctx, bits):
    """The float64 whose IEEE bit pattern is the int64 ``bits`` (a register reinterpretation: it vectorizes)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())
    return types.float64(types.int64), codegen


@nb.njit(cache=True, inline="always")
def _pow2(k):
    """2^k for integer k in [-1074, 1023], subnormals included, built from exponent bits (no table lookup: a
    gather per mode would cost a third of a vectorized exp): the product of 2^max(k, -1022) and the normal rest
    2^(k - max(k, -1022)), exact."""
    k1 = max(k, -1022)
    return _bits_as_float((k1 + 1023) << 52) * _bits_as_float((k - k1 + 1023) << 52)


_LN2_HI = 6.93147180369123816490e-01  # Cephes/fdlibm split of log 2: k * _LN2_HI is exact for |k| < 2^11
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.4426950408889634


#: Taylor coefficients 1/n!, n = 2..13, of expm1(r) = r + r^2 sum_n c_n r^(n-2)
_EXPM1_C = np.array([1.0 / math.factorial(n) for n in range(2, 14)])
_EXPM1_C.setflags(write=False)


@nb.njit(cache=True, inline="always", error_model="numpy")
def _exp_split(t):
    """(2^k, expm1(r)) with t = k log 2 + r, |r| <= log(2)/2, t clamped to [-740, 709]: expm1(r) by its Taylor
    series to r^13 (truncation < 1e-17 relative), Horner from the top. t must not be NaN."""
    tc = min(max(t, -740.0), 709.0)
    k = math.floor(tc * _INV_LN2 + 0.5)
    r = (tc - k * _LN2_HI) - k * _LN2_LO
    p = _EXPM1_C[_EXPM1_C.shape[0] - 1]
    for n in range(_EXPM1_C.shape[0] - 2, -1, -1):
        p = p * r + _EXPM1_C[n]
    return _pow2(int(k)), r + r * r * p


@nb.njit(cache=True, inline="always", error_model="numpy")
def expm1_vec(t):
    """expm1(t) within ~2 ulp for t >= -740 (and -1 below), branch-free so that loops over it vectorize:
    2^k expm1(r) + (2^k - 1) from ``_exp_split`` (exactly expm1(r) at k = 0, so no cancellation near 0). Compile
    callers without ``reassoc`` (``jit.MAP_KERNEL``): reassociating the polynomial costs its accuracy. t must not
    be NaN."""
    s, em = _exp_split(t)
    return s * em + (s - 1.0)


#: |x| up to which ``log1p_vec`` sums its series (u^2 <= 1/9 there)
LOG1P_VEC_MAX = 0.5
#: 1/(2n+1), n = 1..18: atanh(u) = u + u w sum_n c_n w^(n-1), w = u^2
_LOG1P_C = 1.0 / np.arange(3.0, 38.0, 2.0)
_LOG1P_C.setflags(write=False)


@nb.njit(cache=True, inline="always", error_model="numpy")
def log1p_vec(x):
    """log1p(x) within ~2 ulp for |x| <= LOG1P_VEC_MAX (meaningless beyond), branch-free so that loops over it
    vectorize: log1p(x) = 2 atanh(u), u = x / (2 + x), by the odd series of atanh to u^37 (|u| <= 1/3: truncation
    < 1e-18 relative). Compile callers without ``reassoc`` (``jit.MAP_KERNEL``)."""
    u = x / (2.0 + x)
    w = u * u
    p = _LOG1P_C[_LOG1P_C.shape[0] - 1]
    for n in range(_LOG1P_C.shape[0] - 2, -1, -1):
        p = p * w + _LOG1P_C[n]
    return 2.0 * u + 2.0 * u * (w * p)


#: |x| up to which ``log1p_small_vec`` holds (its series to x^10: truncation < 1e-21 relative)
LOG1P_SMALL_MAX = 0.01


@nb.njit(cache=True, inline="always", error_model="numpy")
def log1p_small_vec(x):
    """log1p(x) within ~1 ulp for |x| <= LOG1P_SMALL_MAX (meaningless beyond): x - x^2/2 + ... - x^10/10 by
    Horner, no division (about a fifth of ``log1p_vec``'s cost in a loop over modes). Compile callers without
    ``reassoc``."""
    p = -1.0 / 10.0
    p = p * x + 1.0 / 9.0
    p = p * x - 1.0 / 8.0
    p = p * x + 1.0 / 7.0
    p = p * x - 1.0 / 6.0
    p = p * x + 1.0 / 5.0
    p = p * x - 1.0 / 4.0
    p = p * x + 1.0 / 3.0
    p = p * x - 1.0 / 2.0
    return x + x * (x * p)


@nb.njit(cache=True, inline="always", error_model="numpy")
def exp_vec(t):
    """exp(t) within ~2 ulp (relative, subnormal results included) for t in [-740, 709]; 0-ish below:
    2^k expm1(r) + 2^k from ``_exp_split``. Compile callers without ``reassoc``."""
    s, em = _exp_split(t)
    return s * em + s


#: ``erf_small_vec`` holds for |x| <= ERF_SERIES_MAX, ``erfcx_vec`` for x >= ERFC_MIN
ERF_SERIES_MAX = 0.75
ERFC_MIN = 0.5
_ERF_TERMS = 19
_ERF_C = np.array([(-1.0) ** n / (math.factorial(n) * (2 * n + 1)) for n in range(_ERF_TERMS)])
_ERF_C *= 2.0 / math.sqrt(math.pi)
_ERF_C.setflags(write=False)
#: erfcx(x) (x + K) = sum_n c_n T_n(s), s the image of t = (x - K)/(x + K) on [t0, 1] in [-1, 1]: smooth up to x = inf
_ERFCX_K = 2.0
_ERFCX_T0 = (ERFC_MIN - _ERFCX_K) / (ERFC_MIN + _ERFCX_K)
_ERFCX_DEGREE = 20


def _erfcx_chebyshev():
    from scipy.special import erfcx

    def scaled(s):
        t = _ERFCX_T0 + 0.5 * (s + 1.0) * (1.0 - _ERFCX_T0)
        with np.errstate(divide="ignore", invalid="ignore"):
            x = _ERFCX_K * (1.0 + t) / (1.0 - t)
            out = (x + _ERFCX_K) * erfcx(x)
        return np.where(t >= 1.0, 1.0 / math.sqrt(math.pi), out)

    c = np.polynomial.chebyshev.chebinterpolate(scaled, _ERFCX_DEGREE)
    c.setflags(write=False)
    return c


_ERFCX_C = _erfcx_chebyshev()


@nb.njit(cache=True, inline="always", error_model="numpy")
def erf_small_vec(x):
    """erf(x) within ~2 ulp for |x| <= ERF_SERIES_MAX (its Taylor series to x^37), branch-free; compile callers
    without ``reassoc``."""
    w = x * x
    p = _ERF_C[_ERF_TERMS - 1]
    for n in range(_ERF_TERMS - 2, -1, -1):
        p = p * w + _ERF_C[n]
    return x * p


@nb.njit(cache=True, inline="always", error_model="numpy")
def erfcx_vec(x):
    """erfcx(x) = exp(x^2) erfc(x) for x >= ERFC_MIN within ~1e-14 relative (meaningless below), from a degree-20
    Chebyshev series of (x + K) erfcx(x) in t = (x - K)/(x + K) (built at import from scipy's erfcx),
    branch-free; erfc(x) = exp_vec(-x^2) erfcx_vec(x). Compile callers without ``reassoc``."""
    t = (x - _ERFCX_K) / (x + _ERFCX_K)
    s = 2.0 * (t - _ERFCX_T0) / (1.0 - _ERFCX_T0) - 1.0
    b1 = 0.0
    b2 = 0.0
    for n in range(_ERFCX_DEGREE, 0, -1):
        b0 = 2.0 * s * b1 - b2 + _ERFCX_C[n]
        b2 = b1
        b1 = b0
    g = s * b1 - b2 + _ERFCX_C[0]
    return g / (x + _ERFCX_K)

