"""Problems: constructors, conventions, serialisation and bad input."""

import numpy as np
import pytest

import hdtheory as hd


def test_powerlaw_convention():
    p = hd.powerlaw(100, alpha=0.75, beta=0.6, noise=hd.Gaussian(0.2))
    j = np.arange(1, 101)
    np.testing.assert_allclose(p.eigenvalues, j ** -1.5)
    np.testing.assert_allclose(p.target, j ** -0.6)
    assert p.initial_risk == pytest.approx(0.5 * (0.04 + np.sum(j ** (-1.5 - 1.2))))


def test_isotropic_and_risk():
    p = hd.isotropic(50, noise=hd.Rademacher(0.5), target_norm=2.0)
    assert p.initial_risk == pytest.approx(0.5 * (4.0 + 0.25))
    assert p.risk(p.target) == pytest.approx(0.125)


def test_from_covariance_basis_and_checks():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((6, 6))
    K = A @ A.T
    theta = rng.standard_normal(6)
    p = hd.from_covariance(K, target=theta)
    np.testing.assert_allclose(p.covariance(), K, atol=1e-12)
    e = -theta
    assert p.risk(np.zeros(6)) == pytest.approx(0.5 * e @ K @ e)
    with pytest.raises(ValueError, match="symmetric"):
        hd.from_covariance(A, target=theta)
    with pytest.raises(ValueError, match="semi-definite"):
        hd.from_covariance(-K, target=theta)


@pytest.mark.parametrize("kwargs,match", [
    (dict(eigenvalues=[1.0, -1.0], target=[0, 0]), "eigenvalues"),
    (dict(eigenvalues=[1.0, np.nan], target=[0, 0]), "eigenvalues"),
    (dict(eigenvalues=[1.0, 2.0], target=[0, 0, 0]), "target"),
    (dict(eigenvalues=[1.0, 2.0], target=[0, 0], init=[1.0]), "init"),
    (dict(eigenvalues=[1.0, 2.0], target=[0, np.inf]), "target"),
    (dict(eigenvalues=[1.0, 2.0], target=[0, 0], noise=0.1), "noise"),
])
def test_bad_problem_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        hd.Problem(**kwargs)


@pytest.mark.parametrize("kwargs,match", [
    (dict(lr=0.0), "lr"), (dict(lr=-1.0), "lr"), (dict(lr=np.nan), "lr"), (dict(lr="abc"), "lr"), (dict(lr=None), "lr"),
    (dict(lr=0.1, batch=0), "batch"), (dict(lr=0.1, batch=1.5), "batch"), (dict(lr=0.1, batch=float("inf")), "batch"),
    (dict(lr=0.1, batch="2"), "batch")])
def test_bad_optimizer_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        hd.SGD(**kwargs)


def test_problem_dict_roundtrip():
    rng = np.random.default_rng(1)
    A = rng.standard_normal((5, 5))
    p = hd.from_covariance(A @ A.T, target=rng.standard_normal(5), init=rng.standard_normal(5),
                           noise=hd.StudentT(0.2, 4.0))
    q = hd.Problem.from_dict(p.to_dict(arrays=True))
    for name in ("eigenvalues", "target", "init", "basis"):
        np.testing.assert_array_equal(getattr(q, name), getattr(p, name))
    assert q.noise == p.noise and q.initial_risk == p.initial_risk


def test_more_bad_input_is_named():
    import validation

    p = hd.powerlaw(10, 1.0, 0.5)
    with pytest.raises(ValueError, match="steps"):
        hd.solve(p, hd.SGD(0.1), steps=10**20)
    with pytest.raises(ValueError, match="delta"):
        hd.solve(p, hd.SGD(0.1), steps=10, delta="a")
    with pytest.raises(ValueError, match="square"):
        hd.from_covariance(np.zeros((0, 0)), [])
    with pytest.raises(ValueError, match="key"):
        validation.simulate(p, hd.SGD(0.1), steps=10, seeds=1, key="x")
    with pytest.raises(ValueError, match="boundaries"):
        hd.Piecewise((10.7,), (1.0, 0.5))
    with pytest.raises(ValueError, match="warmup"):
        hd.WarmupCosine(10.5, 100)
    with pytest.raises(ValueError, match="overflows"):
        hd.Problem([1e200], [1e200])
    with pytest.raises(ValueError, match="all zero"):
        hd.edge_of_stability(hd.Problem([0.0, 0.0], [1.0, 1.0]))
    assert hd.stability_threshold(p, hd.SGD(1.0, schedule=hd.Piecewise((5,), (0.0, 0.0)))) == float("inf")


def test_inadmissible_power_law_warns():
    """2 alpha + 2 beta <= 1: the initial excess 1/2 sum_j j^-(2 alpha + 2 beta) diverges as d grows."""
    import warnings

    from hdtheory.problems import InadmissibleWarning

    with pytest.warns(InadmissibleWarning, match=r"2 alpha \+ 2 beta = 1 <= 1.*at d = 100"):
        hd.powerlaw(100, 0.25, 0.25)
    with pytest.warns(InadmissibleWarning, match="2 alpha \\+ 2 beta = 0.6"):
        hd.powerlaw(100, 0.5, -0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        hd.powerlaw(100, 0.5, 0.25)  # 1.5 > 1: admissible, silent


@pytest.mark.parametrize("call,match", [
    (lambda: hd.powerlaw(0, 1.0, 0.5), "d must be an integer >= 1, got 0"),
    (lambda: hd.powerlaw("10", 1.0, 0.5), "d must be an integer >= 1, got '10'"),
    (lambda: hd.powerlaw(10.5, 1.0, 0.5), "d must be an integer"),
    (lambda: hd.powerlaw(10, "1", 0.5), "alpha must be a number, got '1'"),
    (lambda: hd.powerlaw(10, 1.0, None), "beta must be a number, got None"),
    (lambda: hd.powerlaw(10, 1.0, float("nan")), "beta must be finite"),
    (lambda: hd.powerlaw(10, -1.0, 0.5), "alpha must be > 0"),
    (lambda: hd.isotropic(10, scale="x"), "scale must be a number"),
    (lambda: hd.isotropic(10, scale=-1.0), "scale must be finite and > 0"),
    (lambda: hd.isotropic(10, target_norm=float("inf")), "target_norm must be finite"),
])
def test_constructor_errors_name_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# --- matrix problems ---------------------------------------------------------------------------------------------

def test_matrix_powerlaw_modes_and_risk():
    p = hd.matrix_powerlaw(20, 40, 1.0, 0.5, noise=hd.Gaussian(0.1), seed=3)
    j = np.arange(1, 21.0)
    np.testing.assert_allclose(p.initial_error_modes(), j ** -1.0, rtol=1e-12)  # rho_j(0) = j^-2 beta exactly
    assert p.outputs == 40 and p.d == p.n == 20 and p.noise_variance == pytest.approx(40 * 0.01)
    assert p.initial_risk == pytest.approx(0.5 * (np.sum(j ** -3.0) + 0.4))
    r = hd.matrix_powerlaw(20, 40, 1.0, 0.5, seed=3, rotated=True)
    np.testing.assert_allclose(r.initial_error_modes(), j ** -1.0, rtol=1e-10)
    assert not r.diagonal and np.allclose(r.covariance(), r.covariance().T)


def test_matrix_stream_risk_is_the_closed_form_and_samples_have_the_law():
    import jax
    import jax.numpy as jnp

    p = hd.matrix_powerlaw(6, 4, 1.0, 0.5, noise=hd.Gaussian(0.3), seed=1, rotated=True)
    W = np.random.default_rng(0).standard_normal((4, 6))
    with jax.enable_x64(True):
        arrays = p.jax_arrays(jnp.float64)
        assert float(p.stream.risk(arrays, jnp.asarray(W))) == pytest.approx(p.risk(W), rel=1e-12)
        x, y = p.stream.sample(arrays, jax.random.PRNGKey(0), 200_000, jnp.float64)
        x, y = np.asarray(x), np.asarray(y)
    mc = 0.5 * np.mean(np.sum((x @ W.T - y) ** 2, axis=1))
    assert mc == pytest.approx(p.risk(W), rel=0.02)
    np.testing.assert_allclose(np.cov(x.T), p.covariance(), atol=0.02)


def test_matrix_problem_round_trip_and_errors():
    p = hd.matrix_powerlaw(5, 3, 1.0, 0.0, noise=hd.Rademacher(0.2), seed=2)
    q = hd.MatrixProblem.from_dict(p.to_dict(arrays=True))
    np.testing.assert_array_equal(q.target, p.target)
    assert q.initial_risk == p.initial_risk and q.noise == p.noise
    with pytest.raises(ValueError, match="target has shape"):
        hd.MatrixProblem(eigenvalues=np.ones(3), target=np.ones((2, 4)))
    with pytest.raises(ValueError, match="init has shape"):
        hd.MatrixProblem(eigenvalues=np.ones(3), target=np.ones((2, 3)), init=np.ones((3, 3)))
    with pytest.raises(ValueError, match="orthogonal"):
        hd.MatrixProblem(eigenvalues=np.ones(2), target=np.ones((2, 2)), basis=np.ones((2, 2)))
    with pytest.raises(ValueError, match="alpha"):
        hd.matrix_powerlaw(5, 3, 0.0, 0.5)
