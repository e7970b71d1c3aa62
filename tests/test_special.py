"""The branch-free elementary functions of ``hdtheory.special`` against libm (through Numba's math module)."""
import math

import numba as nb
import numpy as np
import pytest
from scipy import special as sc

from hdtheory.jit import MAP_KERNEL
from hdtheory.special import (
    ERF_SERIES_MAX,
    ERFC_MIN,
    LOG1P_SMALL_MAX,
    LOG1P_VEC_MAX,
    _pow2,
    atan_vec,
    erf_small_vec,
    erfcx_vec,
    exp_vec,
    expm1_vec,
    log1p_small_vec,
    log1p_vec,
)


@nb.njit(**MAP_KERNEL)
def _expm1_vec(t, out):
    for j in range(t.shape[0]):
        out[j] = expm1_vec(t[j])


@nb.njit(**MAP_KERNEL)
def _log1p_vec(t, out):
    for j in range(t.shape[0]):
        out[j] = log1p_vec(t[j])


@nb.njit(**MAP_KERNEL)
def _log1p_small_vec(t, out):
    for j in range(t.shape[0]):
        out[j] = log1p_small_vec(t[j])


@nb.njit(**MAP_KERNEL)
def _atan_vec(t, out):
    for j in range(t.shape[0]):
        out[j] = atan_vec(t[j])


def _ulps(got, want):
    return np.abs(got - want) / np.spacing(np.maximum(np.abs(want), np.finfo(float).tiny))


@pytest.mark.parametrize("lo, hi", [(-1e-8, 1e-8), (-1e-3, 1e-3), (-0.4, 0.4), (-3.0, 3.0), (-60.0, 60.0),
                                    (-740.0, 709.0)])
def test_expm1_vec_is_within_2_ulp_of_libm(lo, hi):
    t = np.random.default_rng(1).uniform(lo, hi, 20000)
    got = np.empty_like(t)
    _expm1_vec(t, got)
    want = np.array([math.expm1(x) for x in t])
    assert np.max(_ulps(got, want)) <= 2.0


def test_expm1_vec_at_the_edges():
    t = np.array([0.0, -0.0, 1e-300, -1e-300, -740.0, -1e4, -np.inf, 709.0, 0.5 * math.log(2.0)])
    got = np.empty_like(t)
    _expm1_vec(t, got)
    assert got[0] == 0.0 and got[2] == 1e-300 and got[3] == -1e-300
    assert np.all(got[4:7] == -1.0)
    assert got[7] == pytest.approx(math.expm1(709.0), rel=4e-16)
    assert got[8] == pytest.approx(math.expm1(t[8]), rel=4e-16)


@nb.njit(**MAP_KERNEL)
def _pow2_all(k, out):
    for j in range(k.shape[0]):
        out[j] = _pow2(k[j])


def test_pow2_from_exponent_bits_is_exact_subnormals_included():
    k = np.arange(-1074, 1024)
    got = np.empty(k.size)
    _pow2_all(k, got)  # the vectorized loop, as expm1_vec and exp_vec use it
    assert np.array_equal(got, np.ldexp(1.0, k))
    assert _pow2(-1074) == 5e-324 and _pow2(1023) == 2.0 ** 1023 and _pow2(0) == 1.0


def test_atan_vec_is_within_2_ulp_of_libm():
    t = np.concatenate([np.random.default_rng(2).standard_cauchy(20000), [0.0, 0.66, 2.414213562373095, 1e300]])
    got = np.empty_like(t)
    _atan_vec(t, got)
    assert np.max(_ulps(got, np.arctan(t))) <= 2.0


@pytest.mark.parametrize("kernel, scale, ulps", [(_log1p_vec, s, 2.0) for s in (1e-12, 1e-3, 0.1, LOG1P_VEC_MAX)]
                         + [(_log1p_small_vec, s, 1.0) for s in (1e-12, 1e-4, LOG1P_SMALL_MAX)])
def test_log1p_kernels_are_within_their_ulps_of_libm_on_their_ranges(kernel, scale, ulps):
    """log1p_vec within 2 ulp on |x| <= LOG1P_VEC_MAX, log1p_small_vec within 1 ulp on |x| <= LOG1P_SMALL_MAX."""
    t = np.concatenate([np.random.default_rng(3).uniform(-scale, scale, 20000), [0.0, scale, -scale]])
    got = np.empty_like(t)
    kernel(t, got)
    assert got[-3] == 0.0
    assert np.max(_ulps(got, np.log1p(t))) <= ulps


@nb.njit(**MAP_KERNEL)
def _erf_erfc_exp(t, erf_out, erfc_out, exp_out, erfcx_out):
    for j in range(t.shape[0]):
        erf_out[j] = erf_small_vec(min(t[j], ERF_SERIES_MAX))
        x = max(t[j], ERFC_MIN)
        erfc_out[j] = exp_vec(-(x * x)) * erfcx_vec(x)
        exp_out[j] = exp_vec(-t[j])
        erfcx_out[j] = erfcx_vec(x)


def test_erf_erfc_erfcx_and_exp_vec_against_scipy_on_their_ranges():
    t = np.concatenate([np.linspace(0.0, 30.0, 30001), np.geomspace(30.0, 1e8, 200)])
    e1, e2, e3, e4 = (np.empty_like(t) for _ in range(4))
    _erf_erfc_exp(t, e1, e2, e3, e4)
    small = t <= ERF_SERIES_MAX
    assert np.max(_ulps(e1[small], sc.erf(t[small]))) <= 3.0
    large = (t >= ERFC_MIN) & (sc.erfc(t) > 1e-300)
    assert np.max(np.abs(e2[large] / sc.erfc(t[large]) - 1.0)) < 1e-14
    assert np.all(e2[t > 27.3] < 1e-300)
    assert np.max(np.abs(e4[t >= ERFC_MIN] / sc.erfcx(t[t >= ERFC_MIN]) - 1.0)) < 1e-14
    normal = np.exp(-t) > 1e-300
    assert np.max(_ulps(e3[normal], np.exp(-t[normal]))) <= 2.0
