"""LA-DiLoCo and its family (LA, SLA): the optimizer dataclass and its constructors."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..schedules import Schedule
from .base import OptimizerMixin, check_batch, check_int, check_positive


def _check_momentum(name: str, value) -> float:
    try:
        if isinstance(value, (bool, str, bytes)):
            raise TypeError
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}") from None
    if not (0.0 <= out < 1.0):
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return out


@dataclass(frozen=True)
class LADiLoCo(OptimizerMixin):
    """LA-DiLoCo: M workers restart from the slow weights, each takes H inner
    (momentum-)SGD steps of size ``lr`` at batch B on its own fresh samples; the slow weights take an outer
    heavy-ball or Nesterov step of rate ``outer_lr`` (alpha) and momentum ``outer_momentum`` (beta) on the
    pseudo-gradient Delta = theta - mean of the workers' weights. Inner momentum buffers reset every round.

    ``lr`` = eta, the inner step applied to the worker weights (a schedule multiplies it per inner step);
    curves are indexed by inner steps per worker (k = round * H). Defaults give SGD(lr, batch)."""

    lr: float
    batch: int = 1
    workers: int = 1
    inner_steps: int = 1
    outer_lr: float = 1.0
    outer_momentum: float = 0.0
    nesterov: bool = False
    inner_momentum: float = 0.0
    schedule: Schedule | None = None
    name = "la_diloco"

    def __post_init__(self):
        self._validate_common()
        object.__setattr__(self, "batch", check_batch(self.batch))
        object.__setattr__(self, "workers", check_int("workers", self.workers))
        object.__setattr__(self, "inner_steps", check_int("inner_steps", self.inner_steps, maximum=10**7))
        object.__setattr__(self, "outer_lr", check_positive("outer_lr", self.outer_lr))
        object.__setattr__(self, "outer_momentum", _check_momentum("outer_momentum", self.outer_momentum))
        object.__setattr__(self, "inner_momentum", _check_momentum("inner_momentum", self.inner_momentum))
        if not isinstance(self.nesterov, (bool, np.bool_)):
            raise ValueError(f"nesterov must be True or False, got {self.nesterov!r}")
        object.__setattr__(self, "nesterov", bool(self.nesterov))

    @property
    def samples_per_step(self) -> int:
        return int(self.batch * self.workers)

    @property
    def steps_per_update(self) -> int:
        """One update is a round of H inner steps per worker."""
        return self.inner_steps

    @property
    def eta_eff(self) -> float:
        """Slow-mode effective SGD step per inner step, alpha eta / ((1 - beta)(1 - mu))
        (docs/derivations/la_diloco.md §4)."""
        return self.outer_lr * self.lr / ((1.0 - self.outer_momentum) * (1.0 - self.inner_momentum))


def LA(lr, batch=1, inner_steps=1, outer_lr=1.0, inner_momentum=0.0, schedule=None) -> LADiLoCo:
    """LA = Lookahead with inner SGD: one worker, H fast steps, slow step theta += alpha (w - theta)
    (§1 of docs/derivations/la_diloco.md: M = 1, beta = 0)."""
    return LADiLoCo(lr, batch=batch, workers=1, inner_steps=inner_steps, outer_lr=outer_lr,
                    inner_momentum=inner_momentum, schedule=schedule)


def SLA(lr, outer_momentum, batch=1, inner_steps=1, outer_lr=1.0, nesterov=True, inner_momentum=0.0,
        schedule=None) -> LADiLoCo:
    """SLA = LA with outer momentum (one worker; Nesterov by default, the variant with the largest speed-up in
    docs/derivations/la_diloco.md §4; ``nesterov=False`` gives heavy ball). The paper's exact definition is not
    verified."""
    return LADiLoCo(lr, batch=batch, workers=1, inner_steps=inner_steps, outer_lr=outer_lr,
                    outer_momentum=outer_momentum, nesterov=nesterov, inner_momentum=inner_momentum,
                    schedule=schedule)
