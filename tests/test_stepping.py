"""The block integrator's kernels against direct sums and step-by-step application."""
import numpy as np
import pytest

from hdtheory import stepping


def _direct_powers(am1, n):
    a = 1.0 + am1
    m = np.arange(n)
    S0 = np.array([np.sum(x ** m) for x in a])
    S1 = np.array([np.sum(np.arange(n) * x ** (n - 1 - np.arange(n))) for x in a])
    return a ** n, S0, S1


@pytest.mark.parametrize("n", [1, 2, 7, 64, 1000])
def test_block_powers_match_direct_sums(n):
    # slow modes (series branch), ordinary modes, a <= 0 (signed powers) and a mode with n log a ~ 1e-3
    am1 = np.array([-1e-9, -1e-6, -3e-3, -0.2, -0.9, -1.3, -1.9, 1e-7, 2e-6 / n])
    ell = np.empty_like(am1)
    stepping.log_multipliers(am1, ell)
    an, S0, S1 = (np.empty_like(am1) for _ in range(3))
    stepping.block_powers(am1, ell, n, an, S0, S1)
    dan, dS0, dS1 = _direct_powers(am1, n)
    # a^n = expm1(n l) + 1: relative to 1, so a fast mode's tiny a^n carries an absolute error ~1e-16
    np.testing.assert_allclose(an, dan, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(S0, dS0, rtol=1e-11)
    np.testing.assert_allclose(S1, dS1, rtol=1e-9, atol=1e-12 * n * n)


@pytest.mark.parametrize("n", [1, 7, 1000])
def test_unforced_block_powers_match_the_forced_ones(n):
    """Without E forcing only a^n and S0 are needed: the same values (a^n bit for bit, S0 to an ulp: one division
    where the forced kernel may share a reciprocal), S1 zero where a > 0."""
    am1 = np.array([-1e-9, -1e-6, -3e-3, -0.2, -0.9, -1.3, -1.9, 1e-7, 2e-6 / n])
    ell = np.empty_like(am1)
    stepping.log_multipliers(am1, ell)
    full = [np.empty_like(am1) for _ in range(3)]
    part = [np.full_like(am1, np.nan) for _ in range(3)]
    stepping.block_powers(am1, ell, n, *full)
    stepping.block_powers_unforced(am1, ell, n, *part)
    assert np.array_equal(full[0], part[0])
    np.testing.assert_allclose(part[1], full[1], rtol=4e-16, atol=0)
    assert np.all(part[2][am1 > -1.0] == 0.0) and np.all(np.isfinite(part[2]))


@pytest.mark.parametrize("scale", [1e-6, 0.009, 0.011, 0.4, 0.9])
def test_log_multipliers_agree_with_libm_on_both_paths(scale):
    # all |am1| <= LOG1P_SMALL_MAX (short series) or not (log1p_vec and libm); a <= 0 gives NaN
    am1 = -np.random.default_rng(5).uniform(0.0, scale, 500)
    am1[0] = scale
    ell = np.empty_like(am1)
    stepping.log_multipliers(am1, ell)
    np.testing.assert_allclose(ell, np.log1p(am1), rtol=4e-16, atol=0)
    bad = np.array([-1.0, -1.5, 1e-3])
    stepping.log_multipliers(bad, ell[:3])
    assert np.isnan(ell[0]) and np.isnan(ell[1]) and ell[2] == pytest.approx(np.log1p(1e-3), rel=4e-16)


def _step_by_step(am1, f, h, s, n, E_of_i, W, c0):
    s = s.copy()
    for i in range(n):
        s = (1.0 + am1) * s + f + h * E_of_i(i)
    return s, c0 + W @ s


@pytest.mark.parametrize("geometric", [False, True])
def test_block_apply_equals_steps_with_the_interpolated_forcing(geometric):
    rng = np.random.default_rng(0)
    size, n = 20, 50
    am1 = -rng.uniform(1e-4, 0.5, size)
    f = rng.uniform(0, 1e-3, size)
    h = rng.uniform(0, 1e-3, size)
    s = rng.uniform(0, 1, size)
    W = rng.uniform(0, 1, (2, size))
    c0 = np.array([0.1, 0.2])
    E0, E1 = 2.0, 0.5
    ell = np.empty(size)
    stepping.log_multipliers(am1, ell)
    an, S0, S1, out = (np.empty(size) for _ in range(4))
    z = np.empty(2)
    stepping.block_powers(am1, ell, n, an, S0, S1)
    if geometric:
        r = (E1 / E0) ** (1.0 / n)
        stepping.block_apply_geometric(am1, ell, f, h, an, S0, s, out, n, E0, E1, W, c0, z)
        ref, zref = _step_by_step(am1, f, h, s, n, lambda i: E0 * r**i, W, c0)
    else:
        stepping.block_apply(an, S0, S1, f, h, s, out, n, E0, E1, W, c0, z)
        ref, zref = _step_by_step(am1, f, h, s, n, lambda i: E0 + (E1 - E0) * i / n, W, c0)
    np.testing.assert_allclose(out, ref, rtol=1e-11)
    np.testing.assert_allclose(z, zref, rtol=1e-11)


def test_block_solve_end_value_is_self_consistent():
    """The end value E1 = z[0] that block_solve returns reproduces itself: a block interpolating E
    geometrically from E0 to that E1 ends at E1."""
    rng = np.random.default_rng(1)
    size, n = 30, 200
    lam = rng.uniform(0.01, 1.0, size)
    lr = 0.05  # B = 2, ||K|| ~ 0.2: a stable block that decays
    am1 = lr * lam * (-2.0 + 1.5 * lr * lam)
    f = np.zeros(size)
    h = lr * lr * 0.5 * lam
    s = rng.uniform(0, 0.1, size)
    W = lam[None, :]
    c0 = np.array([0.01])
    E0 = float(c0[0] + W[0] @ s)
    ell = np.empty(size)
    stepping.log_multipliers(am1, ell)
    an, S0, S1, out = (np.empty(size) for _ in range(4))
    z = np.empty(1)
    stepping.block_powers(am1, ell, n, an, S0, S1)
    beta = float(W[0] @ (h * S1)) / n
    stepping.block_solve(am1, ell, f, h, an, S0, S1, beta, s, out, n, E0, W, c0, z, 1e-6)
    E1 = float(z[0])
    assert abs(np.log(E1 / E0)) > 1e-3  # the geometric branch was taken
    check = np.empty(1)
    stepping.block_apply_geometric(am1, ell, f, h, an, S0, s, np.empty(size), n, E0, E1, W, c0, check)
    assert check[0] == pytest.approx(E1, rel=1e-9)


def test_block_change_and_extrapolation():
    change, allowed = stepping.block_change(1.0, np.e, 0.0, 0.03)
    assert change == pytest.approx(1.0) and allowed == pytest.approx(0.03)
    assert stepping.block_change(1.0, 2.0, 0.99, 0.03)[1] == pytest.approx(0.003)
    assert stepping.block_change(0.0, 2.0, 0.0, 0.03)[0] == 0.0  # underflowed E counts as no change
    out = np.empty(2)
    stepping.extrapolate_scalars(np.array([2.0, 3.0]), np.array([4.0, 1.0]), 2.0, out)
    np.testing.assert_allclose(out, [0.5, 7.0])  # E geometrically (2 * (1/2)^2), the rest linearly
