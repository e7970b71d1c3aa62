"""hd.plrf: the exact reduction of a sampled W (against a direct PLRF Monte Carlo and closed forms), the deterministic
equivalent (against averages over draws of W, its own totals and the F0 scaling law) and the argument checks."""
import math

import numpy as np
import pytest

import hdtheory as hd
import hdtheory.random_features as plrf_mod


def test_sampled_reduction_closed_forms():
    d, v, a, b = 30, 120, 1.0, 0.7
    prob = hd.plrf(d, a, b, v=v, seed=3)
    delta, target = plrf_mod.hidden(v, a, b)
    W = plrf_mod.sample_features(d, v, 3)
    K = W.T @ (delta[:, None] * W)
    np.testing.assert_allclose(prob.covariance(), K, rtol=1e-10, atol=1e-14)
    theta = np.linalg.solve(K, W.T @ (delta * target))
    np.testing.assert_allclose(prob.target, theta, rtol=1e-8)
    resid = W @ theta - target
    p_star = float(np.sum(delta * resid * resid))
    assert prob.sigma2 == pytest.approx(p_star, rel=1e-8)
    # theta_0 = 0: twice the initial risk is the whole loss sum_j j^-(2a+2b), exactly
    assert 2 * prob.initial_risk == pytest.approx(float(np.sum(delta * target ** 2)), rel=1e-12)
    # same seed, same problem; label noise adds its variance to P*
    assert np.array_equal(hd.plrf(d, a, b, v=v, seed=3).eigenvalues, prob.eigenvalues)
    assert hd.plrf(d, a, b, v=v, seed=3, noise=hd.Gaussian(0.1)).sigma2 == pytest.approx(p_star + 0.01, rel=1e-10)


def test_sampled_reduction_matches_direct_plrf_simulation():
    """SGD on real PLRF samples (x in R^v, features W^T x, label <x, b>) vs the exact recursion of the reduced problem."""
    d, v, a, b, B, runs, steps = 20, 80, 1.0, 0.7, 2, 4000, 200
    prob = hd.plrf(d, a, b, v=v, seed=1)
    delta, target = plrf_mod.hidden(v, a, b)
    W = plrf_mod.sample_features(d, v, 1)
    lr = 0.8 * B / delta.sum()
    curve = hd.solve(prob, hd.SGD(lr=lr, batch=B), grid=np.array([0, 1, 3, 10, 30, 100, 200]))
    rng = np.random.default_rng(0)
    theta = np.zeros((runs, d))
    sq = np.sqrt(delta)
    got = {}
    for k in range(1, steps + 1):
        x = rng.standard_normal((runs, B, v)) * sq
        feats = x @ W
        err = np.einsum("rbd,rd->rb", feats, theta) - x @ target
        theta -= lr / B * np.einsum("rbd,rb->rd", feats, err)
        if k in curve.steps:
            e = theta @ W.T - target
            got[k] = 0.5 * float(np.mean(np.sum(delta * e * e, axis=1)))
    for k, r in zip(curve.steps[1:], curve.risk[1:]):
        assert got[int(k)] == pytest.approx(r, rel=0.06), k


@pytest.mark.parametrize("a, b", [(1.0, 0.7), (0.4, 1.0), (0.75, 0.25)])
def test_deterministic_equivalent_vs_draws_of_W(a, b):
    d, draws = 100, 24
    det = hd.plrf(d, a, b)
    lr = 0.5 / det.info["trace_D"]
    curve = hd.solve(det, hd.SGD(lr=lr, batch=1), 20000)
    risks, p_star, top = [], [], []
    for s in range(draws):
        p = hd.plrf(d, a, b, seed=s)
        risks.append(hd.solve(p, hd.SGD(lr=lr, batch=1), grid=curve.steps).risk)
        p_star.append(p.sigma2)
        top.append(np.sort(p.eigenvalues)[::-1][:10])
    risks = np.array(risks)
    mean, se = risks.mean(0), risks.std(0) / math.sqrt(draws)
    # within 4 standard errors of the mean over draws, plus 2% for the discretization (first order in eps)
    assert np.all(np.abs(curve.risk - mean) <= 4 * se + 0.02 * mean)
    assert det.sigma2 == pytest.approx(np.mean(p_star), rel=4 * np.std(p_star) / math.sqrt(draws) / np.mean(p_star) + 0.02)
    np.testing.assert_allclose(det.eigenvalues[:10], np.mean(top, 0), rtol=0.06)


def test_deterministic_equivalent_totals():
    d, a, b = 300, 1.0, 0.6
    de = plrf_mod.deterministic_equivalent(d, a, b)
    delta, target = plrf_mod.hidden(10 * d, a, b)
    assert de.eigenvalues.size == d and np.all(np.diff(de.eigenvalues) <= 0)
    # E tr K = tr D, and the forcing plus the limit level is the whole initial loss
    assert de.eigenvalues.sum() == pytest.approx(delta.sum(), rel=1e-3)
    assert de.forcing.sum() + de.p_star == pytest.approx(float(np.sum(delta * target ** 2)), rel=1e-3)
    # the raw count (before the affine map onto [0, d]) and the forcing mass are close to their totals already
    assert de.count[-1] == pytest.approx(d)
    assert de.forcing_cdf[-1] == pytest.approx(de.forcing.sum(), rel=0.02)
    prob = hd.plrf(d, a, b)
    assert prob.sigma2 == pytest.approx(de.p_star) and prob.d == d and prob.diagonal


@pytest.mark.parametrize("a, b", [(1.0, 0.3), (1.0, 0.8), (0.75, 0.25), (0.4, 1.0)])
def test_limit_level_scaling(a, b):
    """F0 ~ d^(-2 alpha + max(0, 1 - 2 beta)) at v = 10 d (local slope between d = 1e4 and 1e5)."""
    f1, f2 = plrf_mod.limit_level(10**4, a, b), plrf_mod.limit_level(10**5, a, b)
    slope = math.log10(f2 / f1)
    want = -2 * a + max(0.0, 1 - 2 * b)
    # corrections decay like d^-|1 - 2 beta| (the small-j sum vs its integral)
    assert slope == pytest.approx(want, abs=0.02 + 3 * 10.0 ** (-4 * abs(1 - 2 * b)))


def test_limit_level_tau_closed_form():
    """2 alpha > 1, v/d -> infinity: tau ~ kappa d^(2 alpha), kappa = c^-2a, c = (pi / 2a) / sin(pi / 2a)."""
    a, d = 1.0, 2000
    delta, omega, _ = plrf_mod._atoms(10**7, a, 0.5)
    tau = plrf_mod._tau(d, delta, omega)
    c = (math.pi / (2 * a)) / math.sin(math.pi / (2 * a))
    assert tau / d ** (2 * a) == pytest.approx(c ** (-2 * a), rel=0.01)


def test_errors():
    with pytest.raises(ValueError, match="inadmissible"):
        hd.plrf(100, 0.3, 0.2)
    with pytest.raises(ValueError, match="d must be"):
        hd.plrf(0, 1.0, 0.5)
    with pytest.raises(ValueError, match="alpha must be > 0"):
        hd.plrf(10, -1.0, 2.0)
    with pytest.raises(ValueError, match="v > d"):
        hd.plrf(100, 1.0, 0.5, v=50)
    with pytest.raises(ValueError, match="Gaussian"):
        hd.plrf(50, 1.0, 0.5, noise=hd.Rademacher(0.1))
    # v <= d is fine for a sampled W (K singular, P* = 0); a zero-variance non-Gaussian law is no noise at all
    p = hd.plrf(20, 1.0, 0.5, v=10, seed=0)
    assert p.sigma2 < 1e-20 and np.sum(p.eigenvalues > 1e-12) == 10
    assert hd.plrf(50, 1.0, 0.5, seed=0, noise=hd.Rademacher(0.0)).sigma2 == pytest.approx(
        hd.plrf(50, 1.0, 0.5, seed=0).sigma2)


def test_the_deterministic_equivalent_refuses_v_at_most_d():
    for v in (50, 100):
        with pytest.raises(ValueError, match="v > d"):
            plrf_mod.deterministic_equivalent(100, 1.0, 0.5, v=v)
