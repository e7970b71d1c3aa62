"""Optimizers: one dataclass and one theory module each, registered by type.

Adding an optimizer = one module here (dataclass + ``Theory`` subclass + ``register``) and one
simulation module in ``validation/optimizers``; the driver does not change.
"""
from __future__ import annotations

from .base import ModeState, OptimizerMixin, Theory

_THEORIES: dict = {}


def register(opt_cls, theory: Theory):
    _THEORIES[opt_cls] = theory


def theory_for(opt) -> Theory:
    try:
        return _THEORIES[type(opt)]
    except KeyError:
        raise ValueError(f"no theory registered for optimizer {opt!r}") from None


from .sgd import SGD  # noqa: E402  (registers itself)
from .clipped_sgd import ClippedSGD, RelativeClip  # noqa: E402  (registers itself)
from .signsgd import SignSGD  # noqa: E402  (registers itself)
from . import la_diloco  # noqa: E402  (registers itself)
from .la_diloco import LA, SLA, LADiLoCo  # noqa: E402

__all__ = ["ClippedSGD", "LA", "LADiLoCo", "RelativeClip", "SGD", "SignSGD", "SLA", "ModeState", "OptimizerMixin",
           "Theory", "la_diloco", "register",
           "theory_for"]
