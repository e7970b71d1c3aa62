"""Clipped SGD: the optimizer dataclass and the relative clip level."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..schedules import Constant, Schedule, Sequence
from .base import OptimizerMixin, check_batch, check_positive


@dataclass(frozen=True)
class RelativeClip:
    """Clip level relative to the predicted risk: c_k = kappa sqrt(tr K * E_k / B) (E_k = 2 R_k, the
    theory's prediction), i.e. normalized level tau_k = kappa sqrt(E_k) (docs/derivations/clipped_sgd.md)."""

    kappa: float

    def __post_init__(self):
        object.__setattr__(self, "kappa", check_positive("RelativeClip kappa", self.kappa))

    def to_dict(self):
        return {"relative_kappa": self.kappa}


@dataclass(frozen=True)
class ClippedSGD(OptimizerMixin):
    """Clipped minibatch SGD: theta <- theta - lr * g * min(1, c_k / ||g||), g the averaged minibatch gradient.

    ``clip``: a number c > 0 in gradient-norm units (``math.inf`` = no clipping = SGD), a 1-D array of
    per-step levels c_k (inf entries allowed; the last one holds afterwards), or ``hd.RelativeClip(kappa)``.
    ``clip_schedule`` multiplies the clip level (or kappa) at step k; ``schedule`` multiplies lr."""

    lr: float
    clip: object = math.inf
    batch: int = 1
    schedule: Schedule | None = None
    clip_schedule: Schedule | None = None
    name = "clipped_sgd"
    hyper_names = ("lr", "clip")

    def __post_init__(self):
        self._validate_common()
        object.__setattr__(self, "batch", check_batch(self.batch))
        clip = self.clip
        if isinstance(clip, (list, tuple, np.ndarray)):
            if self.clip_schedule is not None:
                raise ValueError("give the per-step clip levels either as an array or as clip_schedule, not both")
            object.__setattr__(self, "clip_schedule", Sequence(clip))
            clip = 1.0
        if not isinstance(clip, RelativeClip):
            try:
                ok = not isinstance(clip, (bool, str)) and float(clip) > 0 and not math.isnan(float(clip))
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise ValueError(f"clip must be a number > 0 (inf = no clipping), an array of them, "
                                 f"or hd.RelativeClip(kappa); got {self.clip!r}")
            clip = float(clip)
        object.__setattr__(self, "clip", clip)
        if self.clip_schedule is not None and not isinstance(self.clip_schedule, Schedule):
            raise ValueError(f"clip_schedule must be an hd schedule, got {self.clip_schedule!r}")

    @property
    def relative(self) -> bool:
        return isinstance(self.clip, RelativeClip)

    @property
    def clip_sched(self) -> Schedule:
        return Constant() if self.clip_schedule is None else self.clip_schedule

    @property
    def schedules(self) -> tuple:
        return (self.sched, self.clip_sched)

    def clip_at(self, k, xp=np):
        """Clip level at step k in gradient-norm units (kappa for a relative level)."""
        base = self.clip.kappa if self.relative else self.clip
        return base * self.clip_sched(k, xp)

    def hyper_at(self, k) -> np.ndarray:
        """Rows: the step size and the clip level (kappa for a relative level) at the steps ``k``."""
        k = np.atleast_1d(np.asarray(k)).ravel()
        out = np.empty((2, k.size))
        out[0] = self.lr_at(k)
        out[1] = self.clip_at(k)
        return out

    def to_dict(self) -> dict:
        out = super().to_dict()
        if self.relative:
            out["clip"] = self.clip.to_dict()
        return out
