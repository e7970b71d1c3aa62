"""Optimizer dataclasses: hyperparameters and schedules only (their equations live in ``hdtheory.theories``,
their JAX update rules in ``validation.optimizers``; ``hdtheory.theory.REGISTRY`` ties the three together)."""
from .base import OptimizerMixin
from .clipped_sgd import ClippedSGD, RelativeClip
from .la_diloco import LA, SLA, LADiLoCo
from .sgd import SGD
from .signsgd import SignSGD
from .signsvd import Muon, SignSVD

__all__ = ["ClippedSGD", "LA", "LADiLoCo", "OptimizerMixin", "RelativeClip", "SGD", "SLA", "SignSGD", "SignSVD", "Muon"]
