"""SignSVD and Muon on real samples of a matrix problem (weights W of shape (m, n), G = (1/B) sum_b (W x_b - y_b) x_b^T).

* SignSVD: W <- W - lr polar(G), polar(G) = U_r V_r^T over the compact SVD G = U S V^T keeping the singular values
  above rtol * s_max (rtol = 10 max(m, n) eps of the dtype), so ||polar(G)||_F^2 = rank G = min(B, m, n) for a
  generic batch. For B < min(m, n) the polar factor is computed exactly from the batch: G = (1/B) R X^T with
  R = (W X - Y) (m x B), X (n x B); R = Q_R T_R, X = Q_X T_X (reduced QR), T_R T_X^T = U_B S_B V_B^T, and
  polar(G) = Q_R U_B V_B^T Q_X^T (tiny S_B dropped the same way): O((m + n) B^2) instead of an m x n SVD, and
  none of the junk directions an SVD of a rank-deficient G carries in its round-off singular values.
* Muon: W <- W - lr f NS(M_hat), NS = ``opt.ns_steps`` quintic Newton-Schulz iterations X <- a X + (b A + c A^2) X,
  A = X X^T, from X = M_hat / (||M_hat||_F + 1e-7) (rows <= cols, transposed back), in ``opt.ns_dtype``;
  f = max(1, m/n)^(1/2) with ``shape_factor`` (else 1). M_hat is G without momentum; with ``momentum`` = beta
  the semantics are ``optax.contrib.scale_by_muon``'s: mu <- beta mu + (1 - beta) G, M_hat = mu / (1 - beta^t)
  (bias-corrected, t = 1, 2, ... the update count), or with ``nesterov``
  M_hat = beta mu / (1 - beta^(t+1)) + (1 - beta) G / (1 - beta^t). Up to the 1e-7 guard the bias correction and
  the (1 - beta) are scale factors that NS removes, so without Nesterov this is NS of M <- beta M + G.

Valid for matrix problems only (``hd.MatrixProblem``); on a vector problem use ``hd.SignSGD`` or ``hd.SGD``.
Newton-Schulz amplifies the round-off directions of a low-rank G (slope a ~ 3.4 at 0 per iteration): harmless in
float32/float64, but in bfloat16 they reach O(1) singular values (a rank-one 60 x 40 G gives ||NS(G)||_F^2 ~ 2.3
instead of 0.70^2), so ``ns_dtype="bfloat16"`` with B << min(m, n) is not a rank-B update.
"""
from __future__ import annotations

import jax.numpy as jnp

from . import Simulation, minibatch_gradient

#: the guard added to ||G||_F before the Newton-Schulz iterations (the reference Muon implementation's)
NS_EPS = 1e-7


def default_rtol(shape, dtype) -> float:
    """Relative singular-value cut of the polar factor: 10 max(m, n) eps of ``dtype``."""
    return 10.0 * max(shape) * float(jnp.finfo(dtype).eps)


def _masked_polar(u, s, vt, rtol):
    """U diag(s > rtol s_max) V^T, by masking (static shapes under jit/vmap); 0 when s_max = 0."""
    keep = (s > rtol * s[..., :1]).astype(u.dtype)
    return (u * keep[..., None, :]) @ vt


def polar_svd(g, rtol=None):
    """The truncated polar factor U_r V_r^T of ``g`` (m, n) from its compact SVD."""
    rtol = default_rtol(g.shape, g.dtype) if rtol is None else rtol
    u, s, vt = jnp.linalg.svd(g, full_matrices=False)
    return _masked_polar(u, s, vt, rtol)


def _after(a, b):
    """``a``, made to depend on ``b`` (a + 0 * one entry of b): the LAPACK calls of a step then run one after the
    other. Two batched LAPACK calls running at once on XLA's CPU thread pool can deadlock it (each holds a pool
    thread while its batch waits to be mapped over the same pool; seen with 2 cores)."""
    return a + 0.0 * b.reshape(-1)[0]


def polar_qr(r, x, rtol=None):
    """The truncated polar factor of G = r^T x (any positive multiple), from the batch itself: ``r`` (B, m) the
    residuals, ``x`` (B, n) the inputs (the sampler's row convention). Exact for any B; cheapest for B < min(m, n)."""
    rtol = default_rtol((r.shape[1], x.shape[1]), r.dtype) if rtol is None else rtol
    q_r, t_r = jnp.linalg.qr(r.T)  # (m, k), (k, B), k = min(m, B)
    q_x, t_x = jnp.linalg.qr(_after(x, q_r).T)  # (n, l), (l, B), l = min(n, B)
    core = polar_svd(_after(t_r @ t_x.T, q_x), rtol)  # (k, l): the polar factor of G in the two column spaces
    return (q_r @ core) @ q_x.T


def polar(r, x, rtol=None):
    """polar(G) for G = (1/B) r^T x: the QR route for B < min(m, n), else the truncated SVD of G."""
    b, m, n = r.shape[0], r.shape[1], x.shape[1]
    if b < min(m, n):
        return polar_qr(r, x, rtol)
    return polar_svd(jnp.tensordot(r, x, axes=(0, 0)) / b, rtol)


def newton_schulz(g, steps, coefficients, dtype="float32", eps=NS_EPS):
    """``steps`` quintic Newton-Schulz iterations on g / (||g||_F + eps) in ``dtype`` (the ops of
    ``optax.contrib``'s orthogonalize_via_newton_schulz, Frobenius preconditioning); returned in g's dtype."""
    import jax

    if jax.dtypes.canonicalize_dtype(jnp.dtype(dtype)) != jnp.dtype(dtype):
        raise ValueError(f"ns_dtype={dtype!r} needs 64-bit JAX: run the simulation with dtype='float64' "
                         "(validation.simulate's default) or use ns_dtype='float32'")
    x = g.astype(dtype)
    transposed = x.shape[0] > x.shape[1]
    if transposed:
        x = x.T
    x = x / (jnp.linalg.norm(x) + eps)
    a, b, c = (jnp.asarray(v, dtype) for v in coefficients)
    for _ in range(int(steps)):
        A = x @ x.T
        x = a * x + (b * A + c * A @ A) @ x
    if transposed:
        x = x.T
    return x.astype(g.dtype)


def _check_matrix(theta, name):
    if theta.ndim != 2:
        raise ValueError(f"{name} needs a matrix problem (weights of shape (m, n), e.g. hd.matrix_powerlaw(...)); "
                         f"got weights of shape {tuple(theta.shape)}: use hd.SignSGD or hd.SGD on a vector problem")


class SignSVDSimulation(Simulation):
    def update(self, theta, state, key, lr, sample, opt):
        _check_matrix(theta, "SignSVD")
        x, y = sample(key, opt.batch)
        return theta - lr * polar(x @ theta.T - y, x), state


class MuonSimulation(Simulation):
    """State: () without momentum, else (mu, t) with mu the (m, n) moment in W's dtype and t the update count."""

    def init(self, theta0, opt):
        if opt.momentum == 0.0:
            return ()
        return jnp.zeros_like(theta0), jnp.zeros((), jnp.int32)

    def update(self, theta, state, key, lr, sample, opt):
        _check_matrix(theta, "Muon")
        x, y = sample(key, opt.batch)
        g = minibatch_gradient(theta, x, y)
        u, state = muon_direction(g, state, opt)
        return theta - lr * u, state


def muon_direction(g, state, opt):
    """(the update direction f NS(M_hat), the new state) for the gradient ``g`` (m, n): what
    ``optax.contrib.scale_by_muon`` (then ``scale_by_shape`` with ``shape_factor``) returns for g^T in optax's
    (fan_in, fan_out) layout, transposed."""
    if opt.momentum == 0.0:
        m_hat = g
    else:
        beta = opt.momentum
        mu, t = state
        mu = (1 - beta) * g + beta * mu
        t = t + 1  # int32: 2^31 updates are out of reach of a simulation
        if opt.nesterov:
            m_hat = beta * (mu / (1 - beta ** (t + 1)).astype(mu.dtype)) + (1 - beta) * (g / (1 - beta ** t).astype(g.dtype))
        else:
            m_hat = mu / (1 - beta ** t).astype(mu.dtype)
        state = (mu, t)
    u = newton_schulz(m_hat, opt.ns_steps, opt.ns_coefficients, opt.ns_dtype)
    if opt.shape_factor:
        m, n = g.shape
        u = jnp.sqrt(jnp.maximum(1, m / n)) * u
    return u, state
