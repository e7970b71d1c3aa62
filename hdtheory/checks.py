"""Argument checks shared by every module: each names the argument it rejects."""
from __future__ import annotations

import math

import numpy as np


def check_positive(name: str, value) -> float:
    """float(value) if it is a finite number > 0, else a ValueError naming ``name``."""
    try:
        if isinstance(value, (bool, str, bytes)):
            raise TypeError
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}") from None
    if not math.isfinite(out) or out <= 0:
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")
    return out


def check_int(name: str, value, minimum: int = 1, maximum: int = 10**15) -> int:
    """int(value) if it is an integer in [minimum, maximum], else a ValueError naming ``name``."""
    try:
        if isinstance(value, (bool, str, bytes)) or not np.isscalar(value):
            raise TypeError
        ok = math.isfinite(float(value)) and float(value) == int(value)
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok or not (minimum <= int(value) <= maximum):
        raise ValueError(f"{name} must be an integer in [{minimum}, {maximum:.0e}], got {value!r}")
    return int(value)


def check_lr(lr) -> float:
    return check_positive("lr", lr)


def check_batch(batch) -> int:
    return check_int("batch", batch)
