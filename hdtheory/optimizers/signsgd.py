"""signSGD: the optimizer dataclass."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..schedules import Schedule
from .base import OptimizerMixin, check_batch


@dataclass(frozen=True)
class SignSGD(OptimizerMixin):
    """signSGD: theta <- theta - lr * sign((1/B) sum_b x_b (<x_b, theta> - y_b)), coordinatewise, sign(0) = 0.

    ``lr`` is the per-step step size applied to theta (each coordinate moves by exactly lr or 0),
    ``batch`` = B, ``schedule`` multiplies lr. ``per_example=True`` takes the mean of the per-example
    signs instead, theta <- theta - lr (1/B) sum_b sign(x_b r_b) (docs/derivations/signsgd.md §1)."""

    lr: float
    batch: int = 1
    schedule: Schedule | None = None
    per_example: bool = False
    name = "signsgd"

    def __post_init__(self):
        self._validate_common()
        object.__setattr__(self, "batch", check_batch(self.batch))
        if not isinstance(self.per_example, (bool, np.bool_)):
            raise ValueError(f"per_example must be True or False, got {self.per_example!r}")
        object.__setattr__(self, "per_example", bool(self.per_example))
