"""signSGD update on real samples: theta <- theta - lr sign((1/B) sum_b x_b (<x_b, theta> - y_b)),
coordinatewise with sign(0) = 0 (``jnp.sign``); with ``per_example`` the mean of the per-example signs,
theta <- theta - lr (1/B) sum_b sign(x_b (<x_b, theta> - y_b)) (docs/derivations/signsgd.md §1)."""
from __future__ import annotations

import jax.numpy as jnp

from . import Simulation


class SignSGDSimulation(Simulation):
    def update(self, theta, state, key, lr, sample, opt):
        x, y = sample(key, opt.batch)
        r = x @ theta - y
        if opt.per_example:
            step = jnp.mean(jnp.sign(x * r[:, None]), axis=0)
        else:
            step = jnp.sign(x.T @ r / opt.batch)  # sign of the averaged minibatch gradient
        return theta - lr * step, state

