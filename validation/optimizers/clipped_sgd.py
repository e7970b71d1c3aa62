"""Clipped SGD on real samples: theta <- theta - lr g min(1, c_k / ||g||), g the averaged minibatch
gradient, ||g|| its exact Euclidean norm (no approximation of the theory's ||g||^2 ~ tr K m / B here).

The state is the step counter k (the clip schedule is a function of k). A ``RelativeClip`` level
(c_k = kappa sqrt(tr K E_k / B), E_k the theory's predicted twice-risk) is resolved by the theory into an
explicit sequence before the run (``prepare``), since a real run cannot observe E_k.
"""
from __future__ import annotations

from hdtheory.theories.clipped_sgd.analysis import resolve_clip

from . import Simulation


class ClippedSGDSimulation(Simulation):
    def prepare(self, problem, opt, steps):
        return resolve_clip(problem, opt, steps)

    def init(self, theta0, opt):
        import jax.numpy as jnp

        return jnp.zeros((), dtype=jnp.int32)

    def update(self, theta, k, key, lr, sample, opt):
        import jax.numpy as jnp

        x, y = sample(key, opt.batch)
        g = x.T @ (x @ theta - y) / opt.batch  # averaged minibatch gradient
        c = opt.clip_at(k, jnp)
        norm = jnp.sqrt(jnp.sum(g * g))
        scale = jnp.where(norm > c, c / jnp.where(norm > 0, norm, 1.0), 1.0)
        return theta - lr * scale * g, k + 1

