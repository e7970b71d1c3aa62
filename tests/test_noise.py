"""Noise laws: variance in NumPy and JAX, bad input, parsing (every field required, each error names it)."""

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
    assert parse_noise("gaussian:0.1") == hd.Gaussian(0.1)
    assert parse_noise(" Student-T : 0.2 : 4 ") == hd.StudentT(0.2, 4.0)
    assert parse_noise("gaussian:0") == hd.Gaussian(0.0)


@pytest.mark.parametrize("spec,match", [
    ("gaussian", "gaussian needs sigma: write gaussian:SIGMA"),          # no silent sigma = 0
    ("rademacher", "rademacher needs sigma"),
    ("student_t:0.3", "student_t needs df: write student_t:SIGMA:DF"),   # no silent df = 3
    ("student_t", "student_t needs sigma, df"),
    ("gaussian:0.1:3", r"gaussian takes 1 field \(gaussian:SIGMA\); got 2"),  # extra fields are errors
    ("student_t:0.1:3:9", "student_t takes 2 fields"),
    ("gaussian:abc", "gaussian sigma must be a number, got 'abc'"),
    ("student_t:0.1:x", "student_t df must be a number, got 'x'"),
    ("gaussian:", "gaussian sigma must be a number, got ''"),
    ("cauchy:1", "unknown noise law 'cauchy'.*gaussian:SIGMA"),
    ("", "empty noise spec"),
    ("gaussian:-1", "sigma must be finite and >= 0"),
    ("gaussian:inf", "sigma must be finite"),
    ("student_t:0.1:2", "df must be finite and > 2"),
])
def test_parse_noise_errors_name_the_field(spec, match):
    with pytest.raises(ValueError, match=match):
        parse_noise(spec)
