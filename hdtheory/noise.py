"""Label-noise laws, usable by both engines.

A noise law is the law of epsilon in ``y = <x, theta*> + epsilon``: mean 0, variance ``sigma**2``.
SGD's *expected* risk depends on the law only through sigma^2; clipped SGD and signSGD depend on the whole law, so each law also says what
it is (``kind`` and parameters) and can be sampled with NumPy (theory-side checks) and with JAX
(the simulations in ``validation``).

All three laws are scaled so that ``Var(epsilon) = sigma**2`` exactly:

* ``Gaussian(sigma)``:        epsilon = sigma * N(0, 1)
* ``Rademacher(sigma)``:      epsilon = +-sigma with probability 1/2 each
* ``StudentT(sigma, df)``:    epsilon = sigma * sqrt((df - 2) / df) * t_df, df > 2
  (t_df has variance df / (df - 2)).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def _check_sigma(sigma: float) -> float:
    sigma = float(sigma)
    if not math.isfinite(sigma) or sigma < 0:
        raise ValueError(f"noise sigma must be finite and >= 0, got {sigma!r}")
    return sigma


@dataclass(frozen=True)
class NoiseLaw:
    """Base class: a zero-mean label-noise law with standard deviation ``sigma``."""

    sigma: float = 0.0

    def __post_init__(self):
        object.__setattr__(self, "sigma", _check_sigma(self.sigma))

    @property
    def variance(self) -> float:
        """sigma^2, the variance of epsilon."""
        return self.sigma ** 2

    kind = "base"

    def to_dict(self) -> dict:
        return {"kind": self.kind, "sigma": self.sigma}

    # --- sampling -------------------------------------------------------------------------
    def sample_numpy(self, rng: np.random.Generator, shape) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def sample_jax(self, key, shape, dtype):  # pragma: no cover
        raise NotImplementedError


@dataclass(frozen=True)
class Gaussian(NoiseLaw):
    """epsilon ~ N(0, sigma^2)."""

    kind = "gaussian"

    def sample_numpy(self, rng, shape):
        return self.sigma * rng.standard_normal(shape)

    def sample_jax(self, key, shape, dtype):
        import jax

        return self.sigma * jax.random.normal(key, shape, dtype)


@dataclass(frozen=True)
class Rademacher(NoiseLaw):
    """epsilon = +-sigma with probability 1/2 each (variance sigma^2)."""

    kind = "rademacher"

    def sample_numpy(self, rng, shape):
        return self.sigma * (2.0 * rng.integers(0, 2, size=shape) - 1.0)

    def sample_jax(self, key, shape, dtype):
        import jax

        return self.sigma * jax.random.rademacher(key, shape, dtype)


@dataclass(frozen=True)
class StudentT(NoiseLaw):
    """epsilon = sigma * sqrt((df-2)/df) * t_df: Student-t with ``df`` > 2 degrees of freedom,
    rescaled to variance sigma^2 (heavy tails; df = 3 is the usual heavy-tailed test case)."""

    df: float = 3.0
    kind = "student_t"

    def __post_init__(self):
        super().__post_init__()
        df = float(self.df)
        if not math.isfinite(df) or df <= 2:
            raise ValueError(f"StudentT df must be finite and > 2 (finite variance), got {self.df!r}")
        object.__setattr__(self, "df", df)

    @property
    def scale(self) -> float:
        """Multiplier of a standard t_df variable: sigma * sqrt((df-2)/df)."""
        return self.sigma * math.sqrt((self.df - 2.0) / self.df)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "sigma": self.sigma, "df": self.df}

    def sample_numpy(self, rng, shape):
        return self.scale * rng.standard_t(self.df, size=shape)

    def sample_jax(self, key, shape, dtype):
        import jax

        return self.scale * jax.random.t(key, self.df, shape, dtype)


_KINDS = {"gaussian": Gaussian, "rademacher": Rademacher, "student_t": StudentT}


def noise_from_dict(d: dict) -> NoiseLaw:
    """Inverse of ``NoiseLaw.to_dict``."""
    d = dict(d)
    kind = d.pop("kind")
    if kind not in _KINDS:
        raise ValueError(f"unknown noise kind {kind!r}; expected one of {sorted(_KINDS)}")
    return _KINDS[kind](**d)


#: the command-line form of each law: its fields after the kind, in order
SPEC_FIELDS = {"gaussian": ("sigma",), "rademacher": ("sigma",), "student_t": ("sigma", "df")}
_ALIASES = {"student": "student_t", "t": "student_t", "studentt": "student_t", "normal": "gaussian"}


def noise_spec_help() -> str:
    """The accepted forms, for messages and ``--help``."""
    return ", ".join(f"{k}:{':'.join(f.upper() for f in v)}" for k, v in SPEC_FIELDS.items())


def parse_noise(spec: str) -> NoiseLaw:
    """Parse a command-line noise spec: ``gaussian:SIGMA``, ``rademacher:SIGMA``, ``student_t:SIGMA:DF``
    (e.g. ``gaussian:0.1``, ``student_t:0.1:3``). Every field is required and nothing else is accepted: a
    missing sigma or df, an extra field or a field that is not a number is a ValueError naming it."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"empty noise spec; expected one of {noise_spec_help()}")
    parts = [p.strip() for p in spec.strip().split(":")]
    name = parts[0].lower().replace("-", "_")
    kind = _ALIASES.get(name, name)
    if kind not in SPEC_FIELDS:
        raise ValueError(f"unknown noise law {parts[0]!r}; expected one of {noise_spec_help()}")
    fields = SPEC_FIELDS[kind]
    form = f"{kind}:{':'.join(f.upper() for f in fields)}"
    values = parts[1:]
    if len(values) < len(fields):
        missing = ", ".join(fields[len(values):])
        raise ValueError(f"{kind} needs {missing}: write {form} (e.g. "
                         f"{kind}:{':'.join(('0.1', '3')[:len(fields)])})")
    if len(values) > len(fields):
        raise ValueError(f"{kind} takes {len(fields)} field{'s' if len(fields) > 1 else ''} ({form}); "
                         f"got {len(values)}: {':'.join(values)!r}")
    numbers = {}
    for field_name, text in zip(fields, values):
        try:
            numbers[field_name] = float(text)
        except ValueError:
            raise ValueError(f"{kind} {field_name} must be a number, got {text!r} (write {form})") from None
    return _KINDS[kind](**numbers)
