"""Simulation modules: one JAX update rule per optimizer (``hdtheory.theory.REGISTRY`` names each one).

A simulation is a pure init/update pair over a fixed pytree state (optax's shape):

* ``prepare(problem, opt, steps) -> opt`` (optional): resolve hyperparameters that depend on the theory;
* ``init(theta0, opt) -> state``;
* ``update(theta, state, key, lr, sample, opt) -> (theta, state)``: one update (covering
  ``opt.steps_per_update`` inner steps), where ``lr`` is the scheduled step size of this update (a scalar when
  the update is one step; the vector of the step sizes of its inner steps when it covers more, so a schedule
  moves inside an LA-DiLoCo round as in the theory) and ``sample(key, n)`` returns a fresh batch
  ``(x (n, d), y (n,))`` from a vector problem, ``(x (n, d), y (n, m))`` from a matrix problem (the weights
  theta are then (m, d)); ``minibatch_gradient`` serves both shapes.

``opt`` arrives with ``lr = 1.0`` (``validation.simulate`` passes the traced step size separately, so a sweep
over lr compiles once).
"""
from __future__ import annotations


class Simulation:
    def prepare(self, problem, opt, steps):
        """The optimizer actually run for ``steps`` steps (hook for hyperparameters resolved from the
        theory before a run, e.g. a relative clip level); the identity by default."""
        return opt

    def init(self, theta0, opt):
        return ()

    def update(self, theta, state, key, lr, sample, opt):  # pragma: no cover
        raise NotImplementedError


def minibatch_gradient(theta, x, y):
    """(1/B) sum_b (theta x_b - y_b) x_b^T: a (d,) vector for theta (d,), an (m, d) matrix for theta (m, d)."""
    import jax.numpy as jnp

    r = x @ theta.T - y  # (B,) or (B, m) residuals
    return jnp.tensordot(r, x, axes=(0, 0)) / x.shape[0]
