"""Shared test helpers."""
import numpy as np


def simulator_first_batch(problem, batch, key=3):
    """The batch (x, y) that ``validation.simulate(problem, opt, grid=[0, 1], seeds=1, key=key)`` draws for its
    first update of a diagonal problem (same key splitting as validation/simulate.py), for steps by hand."""
    import jax

    with jax.enable_x64(True):
        skey = jax.random.split(jax.random.PRNGKey(key), 1)[0]
        kx, ke = jax.random.split(jax.random.fold_in(skey, 0))
        x = np.asarray(jax.random.normal(kx, (batch, problem.d), "float64")) * np.sqrt(problem.eigenvalues)
        y = x @ problem.target + np.asarray(problem.noise.sample_jax(ke, (batch,), "float64"))
    return x, y
