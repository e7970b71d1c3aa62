"""SignSVD and Muon: the optimizer dataclasses (matrix problems)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..checks import check_int
from ..schedules import Schedule
from .base import OptimizerMixin, check_batch


@dataclass(frozen=True)
class SignSVD(OptimizerMixin):
    """SignSVD: W <- W - lr * U V^T, where G = U S V^T is the compact SVD of the averaged minibatch gradient
    G = (1/B) sum_b (W x_b - y_b) x_b^T (rank <= B; singular values below a relative tolerance are dropped).

    ``lr`` is the per-step step size (||U V^T||_F^2 = rank G), ``batch`` = B, ``schedule`` multiplies lr."""

    lr: float
    batch: int = 1
    schedule: Schedule | None = None
    name = "signsvd"

    def __post_init__(self):
        self._validate_common()
        object.__setattr__(self, "batch", check_batch(self.batch))


#: the quintic Newton-Schulz coefficients of the reference Muon implementation
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


@dataclass(frozen=True)
class Muon(OptimizerMixin):
    """Muon: SignSVD with the polar factor replaced by ``ns_steps`` Newton-Schulz iterations
    X <- a X + (b A + c A^2) X, A = X X^T, from X = G / (||G||_F + eps) (each singular value s of G follows the
    scalar map s -> a s + b s^3 + c s^5 from s / ||G||_F), then W <- W - lr * X.

    The extras of the reference implementation (``optax.contrib.scale_by_muon``) are explicit options, off by
    default: ``momentum`` beta (the moving average M <- beta M + (1 - beta) G with bias correction 1/(1 - beta^t),
    whose Newton-Schulz image is applied), ``nesterov`` (optax's Nesterov combination of M and G) and
    ``shape_factor`` (multiply the update by max(1, m/n)^(1/2)). ``ns_dtype`` is the simulation's arithmetic for
    the iterations ("float32", "bfloat16" or "float64"; bfloat16 amplifies round-off directions of a low-rank
    gradient to O(1)). The theory covers momentum = 0 and no shape factor."""

    lr: float
    batch: int = 1
    ns_steps: int = 5
    ns_coefficients: tuple = NS_COEFFICIENTS
    schedule: Schedule | None = None
    momentum: float = 0.0
    nesterov: bool = False
    shape_factor: bool = False
    ns_dtype: str = "float32"
    name = "muon"

    def __post_init__(self):
        self._validate_common()
        object.__setattr__(self, "batch", check_batch(self.batch))
        object.__setattr__(self, "ns_steps", check_int("ns_steps", self.ns_steps, maximum=100))
        try:
            coef = tuple(float(c) for c in self.ns_coefficients)
        except (TypeError, ValueError):
            coef = ()
        if len(coef) != 3 or not all(math.isfinite(c) for c in coef):
            raise ValueError(f"ns_coefficients must be three finite numbers (a, b, c), got {self.ns_coefficients!r}")
        object.__setattr__(self, "ns_coefficients", coef)
        mom = self.momentum
        if isinstance(mom, bool) or not isinstance(mom, (int, float, np.floating)) or not 0.0 <= float(mom) < 1.0:
            raise ValueError(f"momentum must be a number in [0, 1), got {mom!r}")
        object.__setattr__(self, "momentum", float(mom))
        for flag in ("nesterov", "shape_factor"):
            if not isinstance(getattr(self, flag), (bool, np.bool_)):
                raise ValueError(f"{flag} must be True or False, got {getattr(self, flag)!r}")
            object.__setattr__(self, flag, bool(getattr(self, flag)))
        if self.nesterov and self.momentum == 0.0:
            raise ValueError("nesterov=True needs momentum > 0")
        if self.ns_dtype not in ("float32", "bfloat16", "float64"):
            raise ValueError(f"ns_dtype must be 'float32', 'bfloat16' or 'float64', got {self.ns_dtype!r}")

    def gain(self, s):
        """The Newton-Schulz output for relative singular values ``s`` = s_i / ||G||_F (exact arithmetic)."""
        a, b, c = self.ns_coefficients
        x = np.asarray(s, dtype=np.float64)
        for _ in range(self.ns_steps):
            x2 = x * x
            x = x * (a + x2 * (b + c * x2))
        return x

    @property
    def rank_one_gain(self) -> float:
        """Muon's update on a rank-one gradient is this multiple of SignSVD's (0.6963 for the reference
        coefficients and 5 steps)."""
        return float(self.gain(1.0))
