"""Noise laws: variance in NumPy and JAX, bad input, parsing."""

import numpy as np
import pytest

import hdtheory as hd
from hdtheory.noise import noise_from_dict, parse_noise


@pytest.mark.parametrize("law", [hd.Gaussian(0.3), hd.Rademacher(0.3), hd.StudentT(0.3, 5.0)])
def test_noise_variance_numpy_and_jax(law):
    x = law.sample_numpy(np.random.default_rng(0), 400_000)
    assert np.var(x) == pytest.approx(0.09, rel=0.03)
    assert noise_from_dict(law.to_dict()) == law
    import jax

    with jax.enable_x64(True):
        y = np.asarray(law.sample_jax(jax.random.PRNGKey(0), (400_000,), "float64"))
    assert np.var(y) == pytest.approx(0.09, rel=0.03)

def test_noise_bad_input_and_parse():
    with pytest.raises(ValueError):
        hd.Gaussian(-1.0)
    with pytest.raises(ValueError, match="df"):
        hd.StudentT(0.1, 2.0)
    assert parse_noise("student_t:0.2:3") == hd.StudentT(0.2, 3.0)
    assert parse_noise("rademacher:0.1") == hd.Rademacher(0.1)
