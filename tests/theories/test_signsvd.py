"""SignSVD / Muon theory: per-mode constants against closed forms and Monte Carlo, the closures' exact limits,
floors, the critical lr and the bounds every closure keeps."""
import math

import numpy as np
import pytest
from scipy.special import gammaln

import hdtheory as hd
from hdtheory.theories.signsvd import closures as cl
from hdtheory.theories.signsvd import factors as fa


def _echi(n):
    return math.sqrt(2.0) * math.exp(gammaln((n + 1) / 2) - gammaln(n / 2))


def test_single_sample_factors_isotropic_closed_form():
    mu, nu = fa.single_sample_factors(np.ones(200))
    np.testing.assert_allclose(mu, _echi(200) / 200, rtol=1e-10)  # E[x_j^2/||x||] = E chi_n / n
    np.testing.assert_allclose(nu, 1 / 200, rtol=1e-10)


def test_single_sample_factors_match_monte_carlo():
    lam = np.arange(1, 41.0) ** -2.0
    mu, nu = fa.single_sample_factors(lam)
    x = np.random.default_rng(0).standard_normal((200_000, 40)) * np.sqrt(lam)
    r = np.linalg.norm(x, axis=1)[:, None]
    np.testing.assert_allclose(np.mean(x**2 / r, 0)[:10], mu[:10], rtol=0.02)
    np.testing.assert_allclose(np.mean(x**2 / r**2, 0)[:10], nu[:10], rtol=0.02)
    assert nu.sum() == pytest.approx(1.0, abs=1e-8)


@pytest.mark.parametrize("B", [4, 16, 64])
def test_equivalent_noise_weights_sum_to_batch(B):
    lam = np.arange(1, 201.0) ** -1.0
    _, nu = fa.equivalent_factors(lam, B)
    assert nu.sum() == pytest.approx(min(B, 200), rel=1e-6)


def test_batch_transition_numbers():
    """alpha = 1, n = 8000, B = 16: kappa_0, the square-root block and the SGD-like gain (independent numbers)."""
    lam = np.arange(1, 8001.0) ** -2.0
    bt = hd.signsvd.batch_transition(lam, 16)
    assert bt.kappa0 == pytest.approx(9.05e-3, rel=2e-3)
    assert bt.mu[0] / math.sqrt(16 * lam[0]) == pytest.approx(0.979, abs=2e-3)
    assert bt.mu[15] / math.sqrt(16 * lam[15]) == pytest.approx(0.48, abs=5e-3)
    assert bt.sgd_gain == pytest.approx(36.2, rel=3e-3)
    np.testing.assert_allclose(bt.nu[[0, 15, 255]], [0.991, 0.30, 1.7e-3], rtol=0.02)
    assert bt.square_root[0] and not bt.square_root[1000]
    # h_B grows like B^(alpha + 1/2)
    h4, h64 = (hd.signsvd.batch_transition(lam, B).sgd_gain for B in (4, 64))
    assert h4 == pytest.approx(5.1, rel=0.01) and h64 == pytest.approx(280.7, rel=0.01)


def test_equivalent_factors_match_monte_carlo():
    lam = np.arange(1, 101.0) ** -1.0
    B = 8
    mu, nu = fa.equivalent_factors(lam, B)
    rng = np.random.default_rng(1)
    acc_mu, acc_nu, S = np.zeros(100), np.zeros(100), 1500
    for _ in range(S):
        X = rng.standard_normal((100, B)) * np.sqrt(lam)[:, None]
        U, s, _ = np.linalg.svd(X, full_matrices=False)
        acc_mu += np.einsum("jb,b,jb->j", U, s, U)
        acc_nu += np.einsum("jb,jb->j", U, U)
    np.testing.assert_allclose(acc_mu[:20] / S, mu[:20], rtol=0.05)
    np.testing.assert_allclose(acc_nu[:20] / S, nu[:20], rtol=0.05)


def test_c1_quadrature_converged_and_matches_monte_carlo():
    lam = np.arange(1, 61.0) ** -2.0
    rho = np.arange(1, 61.0) ** -1.0
    for msig2 in (0.0, 0.5):
        out, ref = np.empty(60), np.empty(60)
        cl.c1_coefficients(lam, rho, msig2, *cl.c1_grid(), out)
        cl.c1_coefficients(lam, rho, msig2, *cl.c1_grid(256, (-40.0, 30.0)), ref)
        np.testing.assert_allclose(out, ref, rtol=2e-4)
        x = np.random.default_rng(2).standard_normal((200_000, 60)) * np.sqrt(lam)
        a = np.mean(x**2 / np.sqrt(((x**2) @ rho + msig2) * np.sum(x**2, 1))[:, None], 0)
        np.testing.assert_allclose(a[:10], ref[:10], rtol=0.02)


def test_muon_at_batch_one_is_signsvd_at_scaled_lr():
    p = hd.matrix_powerlaw(60, 120, 1.0, 0.5, noise=hd.Gaussian(0.05))
    mu = hd.Muon(0.02)
    a = hd.solve(p, mu, 300)
    b = hd.solve(p, hd.SignSVD(0.02 * mu.rank_one_gain), 300)
    np.testing.assert_allclose(a.risk, b.risk, rtol=1e-12)
    assert mu.rank_one_gain == pytest.approx(0.6964, abs=2e-4)


def test_theory_depends_on_the_spectrum_only():
    a = hd.matrix_powerlaw(40, 80, 1.0, 0.5, seed=3)
    b = hd.matrix_powerlaw(40, 80, 1.0, 0.5, seed=3, rotated=True)
    for opt in (hd.SignSVD(0.05), hd.SignSVD(0.05, batch=4)):
        np.testing.assert_allclose(hd.solve(a, opt, 200).risk, hd.solve(b, opt, 200).risk, rtol=1e-12)


def test_isotropic_floor_and_critical_lr():
    n, m = 100, 200
    p = hd.matrix_isotropic(n, m, seed=0)
    for lr in (0.5, 1.0):
        opt = hd.SignSVD(lr, batch=4)
        fl = hd.signsvd.floor(p, opt)
        assert 2 * fl == pytest.approx(n * lr**2 / 4, rel=0.02)  # E_* = n lr^2 / 4 (mu ~ sqrt(B), nu = B/n)
        c = hd.solve(p, opt, 4000)
        assert c.risk[-1] == pytest.approx(fl, rel=0.01)
    assert hd.signsvd.critical_lr(p, hd.SignSVD(1.0, batch=4)) == pytest.approx(2.0, rel=0.02)
    # the floor of a noiseless run is proportional to lr^2
    f1, f2 = (hd.solve(p, hd.SignSVD(lr, batch=4), 4000).risk[-1] for lr in (0.25, 0.5))
    assert f2 / f1 == pytest.approx(4.0, rel=0.02)


def test_bounds_hold_along_every_closure():
    p = hd.matrix_powerlaw(50, 100, 1.0, 0.5)
    E0 = 2 * p.initial_risk
    for B, lr in ((1, 0.05), (4, 0.05), (8, 0.02)):
        c = hd.solve(p, hd.SignSVD(lr, batch=B), 400)
        k = c.steps
        bound = (math.sqrt(E0) + k * lr * math.sqrt(p.lambda_max * min(B, 50))) ** 2
        assert np.all(2 * c.risk <= bound * (1 + 1e-12)) and np.all(c.risk >= 0)


def test_closure_switches_mid_run():
    """A spiky noiseless residual starts in the sampled mean field (C2) and label noise spreads it until the
    spread-residual closure (C3) takes over."""
    from hdtheory.theories.signsvd.theory import SPREAD_FACTOR
    from hdtheory.theory import theory_for

    p = hd.matrix_powerlaw(60, 120, 1.0, 0.5, noise=hd.Gaussian(0.1))
    opt = hd.SignSVD(0.02, batch=4)
    th = theory_for(opt)
    st = th.init(p, opt)
    assert cl.choose(st.policy, st.lam, st.rho, st.sig2, st.m, st.batch, 60, SPREAD_FACTOR) == cl.C2
    th.step(st, 0, opt.hyper_at(np.arange(400)), math.inf)
    assert cl.choose(st.policy, st.lam, st.rho, st.sig2, st.m, st.batch, 60, SPREAD_FACTOR) == cl.C3


def test_noiseless_large_batch_is_sign_descent():
    p = hd.matrix_isotropic(10, 20, seed=1)
    c = hd.solve(p, hd.SignSVD(0.25, batch=200), 8, grid=np.arange(9))
    # sqrt(rho) <- |sqrt(rho) - lr| from 1: 0.75, 0.5, 0.25, 0, 0.25, 0, ...; E = n rho
    np.testing.assert_allclose(2 * c.risk, 10 * np.array([1, .75, .5, .25, 0, .25, 0, .25, 0]) ** 2, atol=1e-12)


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="matrix problem"):
        hd.solve(hd.powerlaw(20, 1.0, 0.5), hd.SignSVD(0.1), 10)
    with pytest.raises(ValueError, match="momentum"):
        hd.solve(hd.matrix_isotropic(10, 20), hd.Muon(0.1, momentum=0.9), 10)


def test_isotropic_equivalence_with_signsgd_at_batch_one():
    """SignSGD's theory at the matched lr, read at f k, reproduces SignSVD's at k (B = 1, f = 2.4551 at n = 100)."""
    p = hd.matrix_isotropic(100, 200, seed=0)
    eq = hd.signsvd.isotropic_equivalence(100, 200, 1, 0.2)
    assert eq.time_factor == pytest.approx(2.4551, abs=2e-4)
    svd = hd.solve(p, hd.SignSVD(0.2), 400)
    grid = np.unique(np.round(svd.steps * eq.time_factor).astype(int))
    sgn = hd.solve(p, hd.SignSGD(eq.lr_signsgd), grid=grid)
    ratio = np.interp(svd.steps * eq.time_factor, sgn.steps, sgn.risk) / svd.risk
    np.testing.assert_allclose(ratio, 1.0, atol=0.02)  # measured: <= 0.7% in descent, 1.7% on the floor
