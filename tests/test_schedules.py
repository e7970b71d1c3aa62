"""Schedules: NumPy and JAX agree."""
import math

import numpy as np
import pytest

import hdtheory as hd


def test_schedules_numpy_and_jax_agree():
    import jax.numpy as jnp

    k = np.arange(0, 3000, 7)
    for s in (hd.Constant(), hd.WarmupCosine(100, 2000, 0.1), hd.PowerDecay(0.7, 50.0),
              hd.Piecewise((100, 1000), (1.0, 0.5, 0.1))):
        np.testing.assert_allclose(s(k), np.asarray(s(jnp.asarray(k), jnp)), rtol=1e-6)
    w = hd.WarmupCosine(100, 2000)
    assert w(np.array([0]))[0] == pytest.approx(0.01) and w(np.array([99]))[0] == pytest.approx(1.0)
    assert w(np.array([2000]))[0] == pytest.approx(0.0, abs=1e-12)
    assert math.isclose(hd.Piecewise((10,), (0.5, 2.0)).peak(), 2.0)
    with pytest.raises(ValueError):
        hd.Piecewise((10, 5), (1, 1, 1))
