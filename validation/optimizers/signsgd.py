"""signSGD update on real samples: theta <- theta - lr sign((1/B) sum_b x_b (<x_b, theta> - y_b)),
coordinatewise with sign(0) = 0 (``jnp.sign``; on a matrix problem entrywise in output x input coordinates); with ``per_example`` the mean of the per-example signs,
theta <- theta - lr (1/B) sum_b sign(x_b (<x_b, theta> - y_b)) (docs/derivations/signsgd.md §1)."""
from __future__ import annotations

import jax.numpy as jnp

from . import Simulation, minibatch_gradient


class SignSGDSimulation(Simulation):
    def update(self, theta, state, key, lr, sample, opt):
        x, y = sample(key, opt.batch)
        if opt.per_example:
            r = x @ theta.T - y  # (B,) or (B, m)
            step = jnp.mean(jnp.sign(jnp.einsum("b...,bn->b...n", r, x)), axis=0)  # mean of per-example signs
        else:
            step = jnp.sign(minibatch_gradient(theta, x, y))  # entrywise, in output x input coordinates
        return theta - lr * step, state

