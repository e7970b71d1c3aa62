"""Property tests of the SGD theory: rescaling, permuting and merging modes, affinity and monotonicity in the
noise, the threshold bracket and its dichotomy, the Volterra form of the recursion, blocks on any spectrum."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hdtheory as hd
from hdtheory.theories.sgd import kernel_norm

spectra = st.lists(st.floats(0.05, 2.0), min_size=2, max_size=30).map(np.array)
SET = settings(max_examples=25, deadline=None)
GRID = hd.step_grid(3000)


def _problem(lam, seed=0, sigma=0.1):
    rng = np.random.default_rng(seed)
    return hd.Problem(lam, rng.standard_normal(lam.size) / np.sqrt(lam.size), noise=hd.Gaussian(sigma))


@SET
@given(spectra, st.floats(0.1, 10.0), st.integers(1, 8), st.floats(0.1, 0.95))
def test_pt1_rescaling(lam, c, B, frac):
    """(lambda, lr, rho0, sigma^2) -> (c lambda, lr/c, rho0/c, sigma^2) leaves E(k) unchanged."""
    p = _problem(lam)
    lr = frac * hd.stability_threshold(p, hd.SGD(1.0, batch=B))
    q = hd.Problem(c * lam, p.target / np.sqrt(c), noise=p.noise)
    a = hd.solve(p, hd.SGD(lr, batch=B), grid=GRID)
    b = hd.solve(q, hd.SGD(lr / c, batch=B), grid=GRID)
    np.testing.assert_allclose(a.risk, b.risk, rtol=1e-9)
    assert hd.stability_threshold(q, hd.SGD(1.0, batch=B)) == pytest.approx(
        hd.stability_threshold(p, hd.SGD(1.0, batch=B)) / c, rel=1e-10)


@SET
@given(spectra, st.randoms(use_true_random=False), st.floats(0.1, 0.95))
def test_pt2_permutation_and_merging(lam, rnd, frac):
    p = _problem(lam)
    perm = list(range(lam.size))
    rnd.shuffle(perm)
    q = hd.Problem(lam[perm], p.target[perm], noise=p.noise)
    opt = hd.SGD(frac * hd.stability_threshold(p, hd.SGD(1.0)))
    np.testing.assert_allclose(hd.solve(p, opt, grid=GRID).risk, hd.solve(q, opt, grid=GRID).risk, rtol=1e-12)
    # duplicated eigenvalues merged (solver) vs unmerged (reference recursion of the test module)
    lam2 = np.concatenate([lam, lam[:2]])
    r = _problem(lam2, seed=1)
    from tests.theories.test_sgd import numpy_recursion

    opt2 = hd.SGD(frac * hd.stability_threshold(r, hd.SGD(1.0)))
    g = np.arange(0, 201, 10)
    np.testing.assert_allclose(hd.solve(r, opt2, grid=g, method="exact").risk, numpy_recursion(r, opt2, g),
                               rtol=1e-10)


def test_pt2_splitting_a_mode_is_a_different_problem():
    """Deliberate failing case: one mode split into two copies without multiplicity changes the risk."""
    lam = np.linspace(0.1, 1.0, 50)
    p = hd.Problem(lam, np.ones(50) * 0.2, noise=hd.Gaussian(0.1))
    lam_s = np.concatenate([lam, [lam[-1]]])
    tgt = np.concatenate([np.ones(49) * 0.2, [0.2 / np.sqrt(2)] * 2])
    q = hd.Problem(lam_s, tgt, noise=hd.Gaussian(0.1))
    opt = hd.SGD(0.5 * hd.stability_threshold(p, hd.SGD(1.0)))
    a, b = hd.solve(p, opt, steps=2000), hd.solve(q, opt, steps=2000)
    assert a.risk[0] == pytest.approx(b.risk[0])
    assert np.max(np.abs(a.risk / b.risk - 1)) > 1e-3


@SET
@given(spectra, st.floats(0.0, 0.5), st.floats(0.1, 0.95), st.integers(1, 6))
def test_pt3_affine_and_monotone(lam, sigma, frac, B):
    p = _problem(lam, sigma=sigma)
    opt = hd.SGD(frac * hd.stability_threshold(p, hd.SGD(1.0, batch=B)), batch=B)
    # affinity is a property of the exact dynamics (the block solver's geometric interpolation is not linear)
    full = 2 * hd.solve(p, opt, grid=GRID, method="exact").risk
    noiseless = 2 * hd.solve(hd.Problem(lam, p.target), opt, grid=GRID, method="exact").risk
    pure_noise = 2 * hd.solve(hd.Problem(lam, np.zeros(lam.size), noise=p.noise), opt, grid=GRID, method="exact").risk
    np.testing.assert_allclose(full, noiseless + pure_noise, rtol=1e-9, atol=1e-15)
    full = 2 * hd.solve(p, opt, grid=GRID).risk
    louder = 2 * hd.solve(hd.Problem(lam, p.target, noise=hd.Gaussian(sigma + 0.1)), opt, grid=GRID).risk
    assert np.all(louder >= full * (1 - 1e-12))
    bigger_batch = 2 * hd.solve(p, hd.SGD(opt.lr, batch=B + 1), grid=GRID).risk
    assert np.all(bigger_batch <= full * (1 + 1e-9))


@SET
@given(spectra, st.integers(1, 64))
def test_pt4_threshold_bracket_monotone_and_dichotomy(lam, B):
    p = _problem(lam)
    lr_b = hd.stability_threshold(p, hd.SGD(1.0, batch=B))
    e = hd.edge_of_stability(p, B)
    assert e.lower_bound * (1 - 1e-12) <= lr_b <= e.upper_bound * (1 + 1e-12)
    assert hd.stability_threshold(p, hd.SGD(1.0, batch=B + 1)) >= lr_b * (1 - 1e-12)
    assert kernel_norm(lam, np.ones_like(lam), lr_b, B) == pytest.approx(1.0, abs=1e-9) or lr_b == pytest.approx(
        e.lambda_edge, rel=1e-12)
    # below: converges to sigma^2 / (1 - ||K||); above: flagged
    lr = 0.7 * lr_b
    curve = hd.solve(p, hd.SGD(lr, batch=B), steps=10**7)
    kn = kernel_norm(lam, np.ones_like(lam), lr, B)
    assert 2 * curve.risk[-1] == pytest.approx(0.01 / (1 - kn), rel=1e-6)
    assert hd.solve(p, hd.SGD(1.05 * lr_b, batch=B), steps=10**5).diverged


@SET
@given(spectra, st.floats(0.1, 0.9), st.integers(1, 4))
def test_pt5_volterra_convolution_equals_recursion(lam, frac, B):
    """E(k) = F(k) + sum_s K(k-1-s) E(s) (sgd.md E2) and sum_m K(m) = ||K||; B = inf closed form."""
    p = _problem(lam)
    lr = frac * hd.stability_threshold(p, hd.SGD(1.0, batch=B))
    n = 300
    a = 1 - 2 * lr * lam + (1 + 1 / B) * lr**2 * lam**2
    rho0 = p.initial_error_modes()
    pw = a[None, :] ** np.arange(n + 1)[:, None]
    F = p.sigma2 + pw @ (lam * rho0)
    Kern = lr**2 / B * pw @ lam**2
    E = np.empty(n + 1)
    for k in range(n + 1):
        E[k] = F[k] + np.dot(Kern[:k][::-1], E[:k])
    curve = hd.solve(p, hd.SGD(lr, batch=B), grid=np.arange(n + 1), method="exact")
    np.testing.assert_allclose(2 * curve.risk, E, rtol=1e-10)
    knorm = lr**2 / B * np.sum(lam**2 / (1 - a))
    assert knorm == pytest.approx(kernel_norm(lam, np.ones_like(lam), lr, B), rel=1e-12)


wide_spectra = st.lists(st.floats(-4.0, 0.5), min_size=1, max_size=25).map(lambda v: 10.0 ** np.array(v))


@settings(max_examples=30, deadline=None)
@given(wide_spectra, st.integers(1, 16), st.floats(0.05, 0.97), st.floats(0.0, 0.5), st.integers(0, 10**6))
def test_block_solver_within_half_percent_for_any_spectrum(lam, B, frac, sigma, seed):
    """Issue contract: hd.solve within 0.5% of the exact recursion at every recorded point, up to 97% of the
    threshold, for any spectrum (here: log-uniform over 4.5 decades, random targets and inits)."""
    rng = np.random.default_rng(seed)
    p = hd.Problem(lam, rng.standard_normal(lam.size), init=rng.standard_normal(lam.size) * 0.1,
                   noise=hd.Gaussian(sigma))
    opt = hd.SGD(frac * hd.stability_threshold(p, hd.SGD(1.0, batch=B)), batch=B)
    grid = hd.step_grid(10**5)
    exact = hd.solve(p, opt, grid=grid, method="exact")
    auto = hd.solve(p, opt, grid=grid)
    assert exact.ok and auto.ok
    # atol only matters once both curves have underflowed (sigma = 0, one fast mode: risk -> 1e-300 and 0)
    np.testing.assert_allclose(auto.risk, exact.risk, rtol=5e-3, atol=1e-250)


def test_ten_million_steps_against_the_exact_recursion():
    p = hd.powerlaw(20, 1.5, 0.5, noise=hd.Gaussian(1e-3))
    opt = hd.SGD(0.95 * hd.stability_threshold(p, hd.SGD(1.0, batch=2)), batch=2)
    grid = hd.step_grid(10**7, per_decade=10)
    exact = hd.solve(p, opt, grid=grid, method="exact")
    auto = hd.solve(p, opt, grid=grid)
    assert np.max(np.abs(auto.excess_risk / exact.excess_risk - 1)) < 5e-3
