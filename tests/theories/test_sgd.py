"""SGD theory against independent references: the isotropic closed form, the exact thresholds and spectral
radii of lambda_j = 1/j, power-law values, a plain NumPy recursion of the per-mode equations without mode
merging, and the full d x d second-moment matrix recursion (no eigenbasis, no diagonal closure)."""
import math

import numpy as np
import pytest

import hdtheory as hd
from hdtheory.theories.sgd import kernel_norm


def numpy_recursion(prob, opt, grid):
    """(E1) step by step in NumPy on unmerged modes: an independent re-implementation."""
    lam = prob.eigenvalues
    rho = prob.initial_error_modes().copy()
    out = [0.5 * (prob.sigma2 + lam @ rho)]
    gi = 1
    for k in range(int(grid[-1])):
        lr = float(opt.lr_at(np.array([k]))[0])
        E = prob.sigma2 + lam @ rho
        rho = (1 - lr * lam) ** 2 * rho + lr**2 * lam**2 / opt.batch * rho + lr**2 / opt.batch * lam * E
        if k + 1 == grid[gi]:
            out.append(0.5 * (prob.sigma2 + lam @ rho))
            gi += 1
    return np.array(out)

def matrix_recursion(K, theta0, target, sigma2, lr, B, steps):
    """M <- M - lr(KM + MK) + lr^2 (1 + 1/B) KMK + lr^2/B (tr(KM) + sigma^2) K (sgd.md §1.2), full matrix."""
    e = theta0 - target
    M = np.outer(e, e)
    risks = [0.5 * (np.trace(K @ M) + sigma2)]
    for _ in range(steps):
        KM = K @ M
        M = M - lr * (KM + KM.T) + lr**2 * (1 + 1 / B) * KM @ K + lr**2 / B * (np.trace(KM) + sigma2) * K
        risks.append(0.5 * (np.trace(K @ M) + sigma2))
    return np.array(risks)

@pytest.mark.parametrize("gamma,expected_rate,expected_excess", [
    (0.5, 0.749781, 0.041694), (1.0, 0.998498, 0.125251), (1.5, 0.745778, 0.377264)])
def test_v1_isotropic_closed_form(gamma, expected_rate, expected_excess):
    d, sigma2, B = 1000, 0.25, 1
    prob = hd.isotropic(d, noise=hd.Gaussian(0.5))
    lr = gamma / d
    q = (1 - lr) ** 2 + lr**2 / B + d * lr**2 / B
    S_inf = d * lr**2 * sigma2 / B / (1 - q)
    assert -d * math.log(q) == pytest.approx(expected_rate, abs=1e-6)
    grid = hd.step_grid(20000)
    closed = 0.5 * (sigma2 + S_inf + (1.0 - S_inf) * q ** grid.astype(float))
    exact = hd.solve(prob, hd.SGD(lr), grid=grid, method="exact")
    assert np.max(np.abs(exact.risk / closed - 1)) < 1e-10
    auto = hd.solve(prob, hd.SGD(lr), grid=grid)
    assert np.max(np.abs(auto.risk / closed - 1)) < 5e-3
    long = hd.solve(prob, hd.SGD(lr), steps=10**7)
    assert long.excess_risk[-1] == pytest.approx(expected_excess, abs=2e-6)

V2_LAM = 1.0 / np.arange(1, 101)

@pytest.mark.parametrize("B,expected,binding", [(1, 0.336923, "trace"), (4, 1.048915, "trace"),
                                                (32, 1.872642, "lambda_max"), (256, 1.984339, "lambda_max")])
def test_v2_threshold_and_spectral_radius(B, expected, binding):
    prob = hd.Problem(V2_LAM, np.zeros(100), noise=hd.Gaussian(1.0))
    lr_star = hd.stability_threshold(prob, hd.SGD(1.0, batch=B))
    assert lr_star == pytest.approx(expected, abs=2e-6)
    edge = hd.edge_of_stability(prob, B)
    assert edge.binding == binding
    assert edge.lower_bound <= lr_star <= edge.upper_bound

    def specrad(lr):  # independent: eigenvalues of diag(a) + lr^2/B lam lam^T
        a = (1 - lr * V2_LAM) ** 2 + lr**2 * V2_LAM**2 / B
        return np.max(np.abs(np.linalg.eigvals(np.diag(a) + lr**2 / B * np.outer(V2_LAM, V2_LAM))))

    assert specrad(0.99 * lr_star) < 1 < specrad(1.01 * lr_star)
    assert specrad(lr_star) == pytest.approx(1.0, abs=1e-9)

def test_v2_half_threshold_noise_floor():
    prob = hd.Problem(V2_LAM, np.zeros(100), noise=hd.Gaussian(1.0))
    lr = 0.5 * hd.stability_threshold(prob, hd.SGD(1.0, batch=1))
    assert kernel_norm(V2_LAM, np.ones(100), lr, 1) == pytest.approx(0.463529, abs=2e-6)
    curve = hd.solve(prob, hd.SGD(lr), steps=10**6)
    assert curve.risk[-1] / 0.5 == pytest.approx(1.864035, abs=1e-5)

def test_v5_powerlaw_values():
    prob = hd.powerlaw(2000, 1.0, 2.0)
    lr = 0.5 / prob.trace
    assert lr == pytest.approx(0.304056, abs=1e-6)
    curve = hd.solve(prob, hd.SGD(lr), grid=np.array([0, 100, 1000, 10**4, 10**5, 10**6]))
    E = 2 * curve.risk[1:]
    np.testing.assert_allclose(E, [5.29e-4, 1.502e-5, 4.698e-7, 1.482e-8, 4.502e-10], rtol=2e-3)

def test_random_spectrum_near_threshold_and_numpy_reference():
    rng = np.random.default_rng(3)
    lam = rng.exponential(size=300)
    prob = hd.Problem(lam, rng.standard_normal(300) / 10, init=rng.standard_normal(300) / 10,
                      noise=hd.Rademacher(0.3))
    opt = hd.SGD(0.97 * hd.stability_threshold(prob, hd.SGD(1.0, batch=2)), batch=2)
    grid = hd.step_grid(20000)
    ref = numpy_recursion(prob, opt, grid)
    exact = hd.solve(prob, opt, grid=grid, method="exact")
    np.testing.assert_allclose(exact.risk, ref, rtol=1e-10)
    auto = hd.solve(prob, opt, grid=grid)
    assert np.max(np.abs(auto.risk / ref - 1)) < 5e-3

def test_dense_covariance_matches_full_matrix_recursion_and_is_basis_free():
    rng = np.random.default_rng(0)
    d = 12
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    lam = np.linspace(0.1, 1.0, d)
    K = (Q * lam) @ Q.T
    target, init = rng.standard_normal(d), rng.standard_normal(d) * 0.3
    prob = hd.from_covariance(K, target=target, init=init, noise=hd.Gaussian(0.2))
    opt = hd.SGD(0.8 * hd.stability_threshold(prob, hd.SGD(1.0, batch=2)), batch=2)
    ref = matrix_recursion(K, init, target, 0.04, opt.lr, 2, 300)
    curve = hd.solve(prob, opt, grid=np.arange(301), method="exact")
    np.testing.assert_allclose(curve.risk, ref, rtol=1e-10)
    # the same problem in its eigenbasis (diagonal) gives the same curve
    diag = hd.Problem(lam, Q.T @ target, init=Q.T @ init, noise=hd.Gaussian(0.2))
    np.testing.assert_allclose(hd.solve(diag, opt, steps=10**5).risk, hd.solve(prob, opt, steps=10**5).risk,
                               rtol=1e-9)

def test_long_horizon_1e8_steps_reaches_the_stationary_limit():
    prob = hd.powerlaw(200, 0.5, 0.5, noise=hd.Gaussian(0.1))
    opt = hd.SGD(0.8 * hd.stability_threshold(prob, hd.SGD(1.0)))
    curve = hd.solve(prob, opt, steps=10**8)
    assert curve.ok and curve.steps[-1] == 10**8 and curve.steps.size < 400
    lam = prob.eigenvalues
    knorm = kernel_norm(lam, np.ones_like(lam), opt.lr, 1)
    # lambda_min = 200^-1 and lr ~ 0.1: relaxation ~ 1e3-1e4 steps, so 1e8 is stationary (sgd.md E5)
    assert curve.risk[-1] == pytest.approx(0.5 * 0.01 / (1 - knorm), rel=1e-9)

def test_unstable_rate_matches_secular_root():
    """Above the threshold the late ratio E(k+1)/E(k) is the spectral radius q (sgd.md §1.5, PT4)."""
    lam = np.linspace(0.1, 1, 50)
    prob = hd.Problem(lam, np.ones(50) * 0.1)
    lr = 0.07
    curve = hd.solve(prob, hd.SGD(lr), grid=np.array([0, 5999, 6000]), method="exact")
    q = np.max(np.abs(np.linalg.eigvals(np.diag((1 - lr * lam) ** 2 + lr**2 * lam**2) + lr**2 * np.outer(lam, lam))))
    assert q == pytest.approx(1.000804, abs=1e-6)
    assert curve.risk[2] / curve.risk[1] == pytest.approx(q, rel=1e-9)
