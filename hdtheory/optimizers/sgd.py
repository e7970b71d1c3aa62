"""SGD: the optimizer dataclass."""
from __future__ import annotations

from dataclasses import dataclass

from ..schedules import Schedule
from .base import OptimizerMixin, check_batch


@dataclass(frozen=True)
class SGD(OptimizerMixin):
    """Minibatch SGD: theta <- theta - lr * (1/B) sum_b x_b (<x_b, theta> - y_b).

    ``lr`` is the per-step step size applied to theta, ``batch`` = B (gradients are averaged),
    ``schedule`` multiplies lr (``None`` = constant)."""

    lr: float
    batch: int = 1
    schedule: Schedule | None = None
    name = "sgd"

    def __post_init__(self):
        self._validate_common()
        object.__setattr__(self, "batch", check_batch(self.batch))
