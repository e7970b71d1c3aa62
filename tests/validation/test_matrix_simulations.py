"""SignSVD and Muon simulations on matrix problems: the polar factor (QR route = truncated SVD, rank, projector),
Muon = optax.contrib.scale_by_muon, rotation equivariance (PT1, with signSGD as the negative control), scale
invariance (PT2), the driver (reproducible, a step by hand) and the isotropic noiseless floor."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hdtheory as hd
import validation
from hdtheory.matrix_problem import haar_orthonormal
from validation.optimizers.signsgd import SignSGDSimulation
from validation.optimizers.signsvd import (
    NS_EPS,
    MuonSimulation,
    SignSVDSimulation,
    muon_direction,
    newton_schulz,
    polar,
    polar_qr,
    polar_svd,
)

M, N = 30, 20


def _batch(B, seed=0, m=M, n=N):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((B, m)), rng.standard_normal((B, n))


@pytest.mark.parametrize("B", [1, 4, 19, 20, 25, 40])
def test_qr_polar_equals_truncated_svd_polar(B):
    with jax.enable_x64(True):
        r, x = _batch(B, seed=B)
        g = r.T @ x / B
        pq = np.asarray(polar_qr(jnp.asarray(r), jnp.asarray(x)))
        ps = np.asarray(polar_svd(jnp.asarray(g)))
        pp = np.asarray(polar(jnp.asarray(r), jnp.asarray(x)))  # the route the simulation takes
    assert np.abs(pq - ps).max() < 1e-12
    assert np.abs(pp - ps).max() < 1e-12
    assert np.sum(pq ** 2) == pytest.approx(min(B, M, N), abs=1e-10)  # ||P||_F^2 = rank G
    if B <= min(M, N):
        q, _ = np.linalg.qr(x.T)  # span of the inputs x_b in R^n
        np.testing.assert_allclose(pq.T @ pq, q @ q.T, atol=1e-12)
        q, _ = np.linalg.qr(r.T)  # span of the residuals in R^m
        np.testing.assert_allclose(pq @ pq.T, q @ q.T, atol=1e-12)
    if B < N:  # the pitfall: U V^T of an untruncated SVD carries N - B junk directions
        u, _, vt = np.linalg.svd(g, full_matrices=False)
        assert np.sum((u @ vt) ** 2) == pytest.approx(N)


def test_polar_of_one_sample_is_the_normalised_outer_product():
    with jax.enable_x64(True):
        r, x = _batch(1, seed=3)
        want = np.outer(r[0], x[0]) / (np.linalg.norm(r) * np.linalg.norm(x))
        np.testing.assert_allclose(np.asarray(polar(jnp.asarray(r), jnp.asarray(x))), want, atol=1e-14)
        np.testing.assert_allclose(np.asarray(polar_svd(jnp.asarray(r.T @ x))), want, atol=1e-14)


def test_polar_masks_rank_deficiency_under_jit_and_vmap():
    """Static shapes: a zero residual gives P = 0 (no NaN), a repeated sample rank 1, in one vmapped call."""
    with jax.enable_x64(True):
        r, x = _batch(3, seed=4)
        rs = np.stack([r, 0 * r, np.repeat(r[:1], 3, 0)])
        xs = np.stack([x, x, np.repeat(x[:1], 3, 0)])
        for f in (jax.jit(jax.vmap(polar_qr)), jax.jit(jax.vmap(lambda r, x: polar_svd(r.T @ x)))):
            p = np.asarray(f(jnp.asarray(rs), jnp.asarray(xs)))
            assert np.all(np.isfinite(p))
            np.testing.assert_allclose(np.sum(p ** 2, axis=(1, 2)), [3, 0, 1], atol=1e-10)
        np.testing.assert_allclose(p[2], np.outer(r[0], x[0]) / (np.linalg.norm(r[0]) * np.linalg.norm(x[0])),
                                   atol=1e-12)


_PLAIN, _NESTEROV = {"momentum": 0.0}, {"momentum": 0.95, "nesterov": True, "shape_factor": True}


@pytest.mark.parametrize("case, dtype, shape", [
    (_PLAIN, "float32", (M, N)), (_PLAIN, "float64", (N, M)), (_NESTEROV, "float32", (M, N)),
    (_NESTEROV, "float64", (M, N)), (_NESTEROV, "float32", (N, M)),
    ({"momentum": 0.9, "shape_factor": True}, "float32", (M, N))],
    ids=["plain-f32", "plain-f64-wide", "nesterov-shape-f32", "nesterov-shape-f64", "nesterov-shape-f32-wide",
         "momentum-shape-f32"])
def test_muon_direction_equals_optax_scale_by_muon(case, dtype, shape):
    """The same gradients through optax (in its x @ W layout: our G^T) and through ``muon_direction``."""
    from optax import chain
    from optax.contrib import MuonDimensionNumbers, scale_by_muon
    from optax.contrib._muon import scale_by_shape

    opt = hd.Muon(1.0, ns_dtype=dtype, **case)
    tx = scale_by_muon(beta=opt.momentum, nesterov=opt.nesterov, eps=NS_EPS)
    if opt.shape_factor:
        tx = chain(tx, scale_by_shape(MuonDimensionNumbers()))
    rng = np.random.default_rng(1)
    with jax.enable_x64(dtype == "float64"):
        ours, theirs = jax.jit(lambda g, s: muon_direction(g, s, opt)), jax.jit(tx.update)
        state, ostate = MuonSimulation().init(jnp.zeros(shape, dtype), opt), tx.init(jnp.zeros(shape[::-1], dtype))
        scale = 0.0
        for _ in range(5):
            g = jnp.asarray(rng.standard_normal(shape), dtype)
            before = state
            u, state = ours(g, state)
            ou, ostate = theirs(g.T, ostate)
            assert u.dtype == jnp.dtype(dtype)
            np.testing.assert_allclose(np.asarray(u), np.asarray(ou).T, atol=1e-5 if dtype == "float32" else 1e-13)
            scale = max(scale, float(jnp.abs(u).max()))
        assert scale > 0.1
        if opt.shape_factor:  # the factor max(1, m / n)^(1/2) (optax: fan_out / fan_in of G^T)
            bare, _ = muon_direction(g, before, dataclasses.replace(opt, shape_factor=False))
            np.testing.assert_allclose(np.asarray(u), np.sqrt(max(1, shape[0] / shape[1])) * np.asarray(bare),
                                       atol=2e-6 if dtype == "float32" else 1e-13)


@pytest.mark.parametrize("ns_dtype", ["float32", "float64"])
def test_newton_schulz_on_a_rank_one_matrix_is_the_rank_one_gain(ns_dtype):
    with jax.enable_x64(True):
        r, x = _batch(1, seed=5)
        g = 3.0 * np.outer(r[0], x[0])
        p = np.outer(r[0], x[0]) / (np.linalg.norm(r) * np.linalg.norm(x))
        opt = hd.Muon(1.0, ns_dtype=ns_dtype)
        out = np.asarray(newton_schulz(jnp.asarray(g), opt.ns_steps, opt.ns_coefficients, ns_dtype))
    s = np.linalg.norm(g)
    # float32: the round-off singular values (~1e-7) grow by a^5 ~ 485 over the five iterations
    tol = 1e-12 if ns_dtype == "float64" else 1e-4
    assert np.linalg.norm(out - opt.gain(s / (s + NS_EPS)) * p) < tol
    assert np.linalg.norm(out - opt.rank_one_gain * p) < max(tol, 1e-8)
    assert opt.rank_one_gain == pytest.approx(0.69644, abs=1e-5)


# --- whole trajectories on one sampled path -------------------------------------------------------------------

def _paths(sim, opt, problem, steps, key, o1s, o2s, cs):
    """W_1..W_steps of ``sim`` on one sampled path of ``problem`` (float64) seen through each transform
    (x, y) -> (c x O2^T, c y O1^T) of the stacks ``o1s``, ``o2s``, ``cs`` (the same draws for every transform):
    shape (transforms, steps, m, n)."""
    arrays, stream, base = problem.jax_arrays("float64"), problem.stream, dataclasses.replace(opt, lr=1.0)

    def one(o1, o2, c):
        def sample(k, b):
            x, y = stream.sample(arrays, k, b, "float64")
            return c * x @ o2.T, c * y @ o1.T

        def body(carry, k):
            th, st = sim.update(*carry, jax.random.fold_in(jax.random.PRNGKey(key), k), jnp.asarray(opt.lr), sample,
                                base)
            return (th, st), th

        th = arrays["init"]
        return jax.lax.scan(body, (th, sim.init(th, base)), jnp.arange(steps))[1]

    return np.asarray(jax.jit(jax.vmap(one))(jnp.asarray(o1s), jnp.asarray(o2s), jnp.asarray(cs)))


def _pt_problem():
    return hd.matrix_powerlaw(N, M, 0.5, 0.5, noise=hd.Gaussian(0.3), seed=1)


def test_rotation_equivariance_pt1():
    """Inputs rotated by O2 (n x n), outputs by O1 (m x m), on the same draws: the rotated problem (K' = O2 K O2^T,
    W*' = O1 W* O2^T) has the same SignSVD (and Muon) risk trajectory; signSGD is not equivariant."""
    p = _pt_problem()
    rng = np.random.default_rng(5)
    o1, o2 = haar_orthonormal(M, M, rng), haar_orthonormal(N, N, rng)
    rot = hd.MatrixProblem(eigenvalues=p.eigenvalues, target=o1 @ p.target @ o2.T, noise=p.noise, basis=o2)
    cases = [(SignSVDSimulation(), hd.SignSVD(0.05, batch=4), 1e-10),
             (MuonSimulation(), hd.Muon(0.05, batch=4, ns_dtype="float64"), 1e-10),
             (SignSGDSimulation(), hd.SignSGD(0.005, batch=4), None)]
    with jax.enable_x64(True):
        for sim, opt, tol in cases:
            w, wr = _paths(sim, opt, p, 100, 3, [np.eye(M), o1], [np.eye(N), o2], [1.0, 1.0])
            risk = np.array([p.risk(v) for v in w])
            risk_rot = np.array([rot.risk(v) for v in wr])
            assert risk[-1] < 0.8 * p.initial_risk  # it moved
            diff = np.abs(risk_rot / risk - 1).max()
            if tol is None:
                assert diff > 0.03, f"{opt.name} came out rotation-equivariant (max relative risk difference {diff:.2g})"
            else:
                assert diff < tol, (opt.name, diff)
                assert np.abs(o1 @ w @ o2.T - wr).max() < tol


@pytest.mark.parametrize("opt, tol", [(hd.SignSVD(0.05, batch=4), 1e-12), (hd.SignSGD(0.005, batch=4), 1e-12),
                                      (hd.Muon(0.05, batch=4, ns_dtype="float64"), 1e-6)], ids=lambda o: getattr(o, "name", ""))
def test_scale_invariance_pt2(opt, tol):
    """x -> c x, epsilon -> c epsilon (so G -> c^2 G): the same W trajectory, the risk times c^2 (Muon up to its
    1e-7 guard in ||G||_F + 1e-7)."""
    from hdtheory.theory import simulation_for

    c = 3.0
    p = _pt_problem()
    pc = hd.MatrixProblem(eigenvalues=c ** 2 * p.eigenvalues, target=p.target, noise=hd.Gaussian(0.3 * c))
    with jax.enable_x64(True):
        w, wc = _paths(simulation_for(opt), opt, p, 100, 4, [np.eye(M)] * 2, [np.eye(N)] * 2, [1.0, c])
    assert np.abs(wc - w).max() < tol
    rc, r = np.array([pc.risk(v) for v in wc]), np.array([p.risk(v) for v in w])
    assert r[-1] < 0.8 * r[0]
    np.testing.assert_allclose(rc, c ** 2 * r, rtol=max(tol, 1e-12))


# --- the driver -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("opt", [hd.SignSVD(0.05, batch=4), hd.Muon(0.05, batch=2, momentum=0.95, nesterov=True)],
                         ids=["signsvd", "muon"])
def test_simulate_matrix_problem(opt):
    p = hd.matrix_powerlaw(N, M, 1.0, 0.5, noise=hd.Gaussian(0.1), seed=2)
    a = validation.simulate(p, opt, steps=60, seeds=3, key=7)
    b = validation.simulate(p, opt, steps=60, seeds=3, key=7, chunk=60 if opt.name == "signsvd" else 17)  # Muon's
    c = validation.simulate(p, opt, steps=60, seeds=3, key=8)  # state crosses the chunk boundaries
    np.testing.assert_array_equal(a.risk, b.risk)
    assert not np.allclose(a.risk, c.risk)
    assert a.risk[:, 0] == pytest.approx(p.initial_risk)
    assert np.all(np.isfinite(a.risk)) and np.all(a.risk[:, -1] < a.risk[:, 0])


def test_simulated_signsvd_step_by_hand():
    """The first recorded risk equals one SignSVD step taken in numpy on the driver's first batch."""
    p = hd.matrix_powerlaw(N, M, 1.0, 0.5, noise=hd.Gaussian(0.2), seed=3, rotated=True)
    lr, B = 0.1, 4
    sim = validation.simulate(p, hd.SignSVD(lr, batch=B), grid=[0, 1], seeds=1, key=3)
    with jax.enable_x64(True):
        skey = jax.random.split(jax.random.PRNGKey(3), 1)[0]
        x, y = (np.asarray(v) for v in p.stream.sample(p.jax_arrays("float64"), jax.random.fold_in(skey, 0), B,
                                                       "float64"))
    u, s, vt = np.linalg.svd((p.init @ x.T - y.T) @ x / B, full_matrices=False)
    assert np.sum(s > 1e-10 * s[0]) == B
    w = p.init - lr * u[:, :B] @ vt[:B]
    assert sim.risk[0, 1] == pytest.approx(p.risk(w), rel=1e-12)


def test_rotated_problem_through_the_driver():
    """Noiseless, the rotated problem's own sampler draws exactly the rotated path (x' = x O2^T, y' = y O1^T):
    validation.simulate gives the same SignSVD risk for both."""
    p = hd.matrix_powerlaw(N, M, 0.5, 0.5, seed=4, rotated=True)
    rng = np.random.default_rng(6)
    o1, o2 = haar_orthonormal(M, M, rng), haar_orthonormal(N, N, rng)
    rot = hd.MatrixProblem(eigenvalues=p.eigenvalues, target=o1 @ p.target @ o2.T, basis=o2 @ p.basis)
    opt = hd.SignSVD(0.05, batch=3)
    a = validation.simulate(p, opt, steps=80, seeds=2, key=1)
    b = validation.simulate(rot, opt, steps=80, seeds=2, key=1)
    np.testing.assert_allclose(b.risk, a.risk, rtol=1e-10)


def _isotropic(n=50, m=100):
    return hd.MatrixProblem(eigenvalues=np.ones(n), target=haar_orthonormal(m, n, np.random.default_rng(0)))


def test_isotropic_noiseless_floor():
    """n = 50, m = 100, K = I, sigma = 0, rho_j(0) = 1 (twice-risk E(0) = n), B = 4: at lr = 1 the twice-risk
    settles at E_* = n lr^2 / 4 (within 10%); lr = 2 is critical: E stays at n (here exactly, as the first step
    W* - W_1 = O (I - 2 P_X) keeps orthonormal columns, and so does every later one)."""
    p = _isotropic()
    n = p.n
    s = validation.simulate(p, hd.SignSVD(1.0, batch=4), steps=500, seeds=8, key=1)
    tail = 2 * s.risk[:, s.steps >= 150].mean()
    assert tail == pytest.approx(n / 4, rel=0.10)
    s2 = validation.simulate(p, hd.SignSVD(2.0, batch=4), steps=500, seeds=8, key=1)  # the same compiled chunk
    np.testing.assert_allclose(2 * s2.risk, n, rtol=0.03)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="matrix problem"):
        validation.simulate(hd.powerlaw(10, 1.0, 0.5), hd.SignSVD(0.1), steps=5, seeds=1)
    with pytest.raises(ValueError, match="ns_dtype='float64' needs 64-bit JAX"):
        validation.simulate(hd.matrix_powerlaw(4, 3, 1.0, 0.5), hd.Muon(0.1, ns_dtype="float64"), steps=5, seeds=1,
                            dtype="float32")
