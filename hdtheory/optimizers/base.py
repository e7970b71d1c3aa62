"""What every optimizer dataclass shares: the lr and its schedule, every scheduled hyperparameter
(``hyper_names`` / ``hyper_at``), the steps one update covers, validation and serialisation.

An optimizer is a frozen dataclass of hyperparameters and schedules; it holds no arrays and no engine code.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..checks import check_batch, check_int, check_lr, check_positive  # noqa: F401  (re-exported)
from ..schedules import Constant, Schedule


class OptimizerMixin:
    """Behaviour shared by every optimizer dataclass: lr schedule, validation, serialisation.

    Every optimizer dataclass has ``lr`` (the per-step step size applied to theta) and ``schedule``
    (a multiplier of lr; ``None`` = constant)."""

    name = "optimizer"
    #: the scheduled hyperparameters the step map reads, in the row order of ``hyper_at``
    hyper_names: tuple = ("lr",)

    def _validate_common(self):
        object.__setattr__(self, "lr", check_lr(self.lr))
        if self.schedule is not None and not isinstance(self.schedule, Schedule):
            raise ValueError(f"schedule must be an hd schedule (Constant, WarmupCosine, ...), got {self.schedule!r}")
        if not math.isfinite(self.sched.peak()):
            raise ValueError("the lr schedule must be finite at every step")

    @property
    def sched(self) -> Schedule:
        return Constant() if self.schedule is None else self.schedule

    def lr_at(self, k, xp=np):
        """Step size applied at step k: lr * schedule(k)."""
        return self.lr * self.sched(k, xp)

    @property
    def schedules(self) -> tuple:
        """Every schedule the step map depends on (the driver cuts blocks at their breakpoints and keeps
        each one nearly constant inside a block): the lr schedule here; ClippedSGD adds its clip schedule."""
        return (self.sched,)

    @property
    def steps_per_update(self) -> int:
        """Steps covered by one update (curves are recorded at multiples of it): 1 unless an update is a
        round of several inner steps."""
        return 1

    @property
    def samples_per_step(self) -> int:
        """Fresh samples one step consumes: the batch (LA-DiLoCo: batch x workers per inner step)."""
        return int(self.batch)

    def hyper_at(self, k) -> np.ndarray:
        """Every scheduled hyperparameter at the steps ``k``: a C-contiguous float64 array with one row per
        name in ``hyper_names`` and one column per step."""
        k = np.atleast_1d(np.asarray(k)).ravel()
        out = np.empty((1, k.size))
        out[0] = self.lr_at(k)
        return out

    def with_lr(self, lr):
        return dataclasses.replace(self, lr=lr)

    def to_dict(self) -> dict:
        out = {"name": self.name}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = v.to_dict() if isinstance(v, Schedule) else v
        return out
