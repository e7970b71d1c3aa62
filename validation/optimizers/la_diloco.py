"""LA-DiLoCo on real samples (the algorithm of docs/derivations/la_diloco.md §1): one update = one round.

Per round (slow weights theta, outer buffer v = the state): the M workers are ``vmap``-ped, each running a
``lax.scan`` over its H inner steps from w = theta with a fresh inner buffer b = 0 (reset every round):
g = (1/B) sum_b x_b (<x_b, w> - y_b), b <- mu b + g, w <- w - eta_h b, on its own fresh samples; then
Delta = theta - mean_m w_m, v <- beta v + Delta, and theta <- theta - alpha v (heavy ball) or
theta <- theta - alpha (Delta + beta v) (Nesterov, PyTorch form). The driver vmaps seeds outside.

Keys: worker m at inner step h draws its batch with ``round_keys(key, M, H)[m, h]`` =
fold_in(split(key, M)[m], h): independent per worker and per step (a batch shared between workers would make
M a no-op). ``eta_h`` comes from the driver (one step size per inner step, scheduled).
"""
from __future__ import annotations

from . import Simulation


def round_keys(key, workers: int, inner_steps: int):
    """(workers, inner_steps) keys of one round (see the module docstring)."""
    import jax
    import jax.numpy as jnp

    wkeys = jax.random.split(key, workers)
    return jax.vmap(lambda k: jax.vmap(lambda h: jax.random.fold_in(k, h))(jnp.arange(inner_steps)))(wkeys)


class LADiLoCoSimulation(Simulation):
    def steps_per_update(self, opt) -> int:
        return opt.inner_steps

    def init(self, theta0, opt):
        import jax.numpy as jnp

        return jnp.zeros_like(theta0)  # outer buffer v_0 = 0

    def update(self, theta, state, key, lr, sample, opt):
        import jax
        import jax.numpy as jnp

        H, M, B = opt.inner_steps, opt.workers, opt.batch
        mu, alpha, beta = opt.inner_momentum, opt.outer_lr, opt.outer_momentum
        etas = jnp.broadcast_to(jnp.asarray(lr, theta.dtype), (H,))
        keys = round_keys(key, M, H)

        def worker(wkeys):
            def step(carry, inp):
                w, b = carry
                k, eta = inp
                x, y = sample(k, B)
                g = x.T @ (x @ w - y) / B  # averaged minibatch gradient at the worker's weights
                b = mu * b + g
                return (w - eta * b, b), None

            (w, _), _ = jax.lax.scan(step, (theta, jnp.zeros_like(theta)), (wkeys, etas))
            return w

        w_mean = jnp.mean(jax.vmap(worker)(keys), axis=0)
        delta = theta - w_mean  # pseudo-gradient
        v = beta * state + delta
        step = delta + beta * v if opt.nesterov else v
        return theta - alpha * step, v

