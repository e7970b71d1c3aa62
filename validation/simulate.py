"""``validation.simulate``: run an optimizer on real Gaussian samples in JAX, many seeds at once.

The driver owns sampling (x = z diag(sqrt(lambda)) U^T ~ N(0, K), y = <x, theta*> + epsilon from the
problem's noise law), ``vmap`` over seeds, ``lax.scan`` over steps in compiled chunks of a fixed
length (one compilation per chunk length, memory bounded by chunk x seeds), and recording on the
same integer grid as the theory. The population risk is computed from theta in closed form,
1/2 (sigma^2 + sum_j lambda_j <u_j, theta - theta*>^2), never from minibatch losses.

Randomness: seed s uses key_s = split(PRNGKey(key), seeds)[s]; update k uses fold_in(key_s, k), so the
numbers do not depend on the chunk length. Same key, same numbers. Runs on JAX's default device (GPU
when JAX has one, CPU otherwise), in float64 by default.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass, field

import numpy as np

from hdtheory.grid import as_grid
from hdtheory.checks import check_int
from hdtheory.results import atomic_savez, read_npz

from hdtheory.theory import simulation_for


@dataclass
class SimulatedRisk:
    """Population risk of each seed's iterate on the record grid: ``risk[seed, point]``."""

    steps: np.ndarray
    risk: np.ndarray
    sigma2: float
    meta: dict = field(default_factory=dict)

    @property
    def seeds(self) -> int:
        return int(self.risk.shape[0])

    @property
    def excess_risk(self) -> np.ndarray:
        return self.risk - 0.5 * self.sigma2

    @property
    def mean(self) -> np.ndarray:
        return self.risk.mean(axis=0)

    @property
    def median(self) -> np.ndarray:
        return np.median(self.risk, axis=0)

    @property
    def sem(self) -> np.ndarray:
        """Standard error of the seed mean."""
        if self.seeds < 2:
            return np.full(self.steps.shape, np.inf)
        return self.risk.std(axis=0, ddof=1) / math.sqrt(self.seeds)

    @property
    def diverged(self) -> np.ndarray:
        """Per seed: True if its risk stopped being finite."""
        return ~np.all(np.isfinite(self.risk), axis=1)

    def save(self, path) -> str:
        """One .npz (no pickle), written atomically."""
        return atomic_savez(path, {**self.meta, "kind": "SimulatedRisk", "sigma2": self.sigma2}, steps=self.steps,
                            risk=self.risk)

    @classmethod
    def load(cls, path) -> "SimulatedRisk":
        arrays, meta = read_npz(path, expect="SimulatedRisk")
        sigma2 = meta.pop("sigma2")
        return cls(steps=arrays["steps"], risk=arrays["risk"], sigma2=sigma2, meta=meta)


@functools.lru_cache(maxsize=64)
def _chunk_runner(sim, opt, stream, length: int, dtype_name: str):
    """Compiled function running ``length`` updates for every seed from update index k0."""
    import jax
    import jax.numpy as jnp

    dtype = jnp.dtype(dtype_name)
    span = opt.steps_per_update
    inner = jnp.arange(span)

    def run(theta, state, seed_keys, k0, lr, arrays):
        def sample(key, n):
            return stream.sample(arrays, key, n, dtype)

        def one_seed(th, st, skey):
            def body(carry, i):
                th, st = carry
                u = k0 + i  # update index; it starts at inner step u * span
                # one scheduled step size per inner step of the update (a scalar when span = 1)
                lr_u = lr * opt.sched(u * span, jnp) if span == 1 else lr * opt.sched(u * span + inner, jnp)
                th, st = sim.update(th, st, jax.random.fold_in(skey, u), lr_u, sample, opt)
                return (th, st), stream.risk(arrays, th)

            (th, st), r = jax.lax.scan(body, (th, st), jnp.arange(length))
            return th, st, r

        return jax.vmap(one_seed)(theta, state, seed_keys)

    return jax.jit(run)


def simulate(problem, opt, steps: int | None = None, seeds: int = 16, key=0, *, grid=None,
             chunk: int = 1024, dtype: str = "float64", progress: bool = False) -> SimulatedRisk:
    """Run ``opt`` on ``problem`` with ``seeds`` independent streams of real samples.

    Returns ``SimulatedRisk`` with ``risk[seed, point]`` at the record grid (``hd.step_grid(steps)``
    unless ``grid`` is given). ``chunk`` = updates per compiled ``lax.scan`` (memory ~ chunk x seeds).
    """
    import jax
    import jax.numpy as jnp

    if not (hasattr(problem, "stream") and hasattr(problem, "jax_arrays")):
        raise ValueError(f"problem must be an hd problem (hd.Problem, hd.powerlaw(...), ...), got {type(problem).__name__}")
    seeds = check_int("seeds", seeds, maximum=10**7)
    chunk = check_int("chunk", chunk, maximum=10**7)
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    sim = simulation_for(opt)
    span = opt.steps_per_update
    g = as_grid(steps, grid, multiple_of=span)
    n_updates = int(g[-1]) // span
    requested = opt
    opt = sim.prepare(problem, opt, int(g[-1]))
    length = int(min(chunk, n_updates))
    base_opt = dataclasses.replace(opt, lr=1.0)
    with jax.enable_x64(dtype == "float64"):
        arrays = problem.jax_arrays(dtype)
        runner = _chunk_runner(sim, base_opt, problem.stream, length, dtype)
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            key = jax.random.PRNGKey(int(key))
        elif not (hasattr(key, "dtype") and (jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
                                            or key.shape == (2,))):
            raise ValueError(f"key must be an integer seed or a jax.random key, got {key!r}")
        keys = jax.random.split(key, int(seeds))
        theta = jnp.broadcast_to(arrays["init"], (int(seeds),) + tuple(arrays["init"].shape))
        state = jax.vmap(lambda th: sim.init(th, base_opt))(theta)
        out = np.full((int(seeds), g.size), np.nan)
        out[:, 0] = problem.initial_risk
        lr = jnp.asarray(opt.lr, dtype)
        want = g // span  # record points in updates
        chunks = range(0, n_updates, length)
        if progress:
            from tqdm.auto import tqdm

            chunks = tqdm(chunks, desc=f"simulate {opt.name}", unit="chunk", leave=False)
        for u0 in chunks:
            theta, state, r = runner(theta, state, keys, jnp.asarray(u0), lr, arrays)
            sel = (want > u0) & (want <= u0 + length)
            if np.any(sel):
                r = np.asarray(r)
                out[:, sel] = r[:, want[sel] - u0 - 1]
    out[~np.isfinite(out)] = np.inf  # overflow -> inf, never NaN
    meta = {"problem": problem.to_dict(), "optimizer": requested.to_dict(), "seeds": int(seeds), "dtype": dtype,
            "device": str(jax.devices()[0].platform)}
    return SimulatedRisk(steps=g, risk=out, sigma2=problem.noise_variance, meta=meta)
