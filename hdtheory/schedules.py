"""Learning-rate schedules, usable by both engines.

A schedule is a multiplier m(k) >= 0 of the optimizer's base ``lr``: the step size applied at step k
(k = 0, 1, ...; the update that produces theta_{k+1}) is ``lr * m(k)``. ``__call__(k, xp)`` works
on NumPy arrays (theory) and on traced JAX arrays (``xp=jax.numpy``, simulation), so both engines use
the same numbers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


class Schedule:
    kind = "base"
    #: True only for a schedule whose multiplier is 1 at every step (lets solvers skip lr probes)
    constant = False
    #: True when the multiplier changes only at ``breakpoints()``
    piecewise_constant = False

    def __call__(self, k, xp=np):  # pragma: no cover
        raise NotImplementedError

    def breakpoints(self) -> tuple:
        """Steps where the multiplier jumps (the theory cuts its blocks there)."""
        return ()

    def peak(self, steps: int | None = None) -> float:
        """max_k m(k) (over k < steps when given)."""
        n = 10**6 if steps is None else max(int(steps), 1)
        k = np.unique(np.concatenate([np.arange(min(n, 4096)), np.geomspace(1, n, 4096).astype(np.int64) - 1,
                                      np.asarray(self.breakpoints(), dtype=np.int64)]))
        k = k[(k >= 0) & (k < n)]
        return float(np.max(self(k)))

    def to_dict(self) -> dict:
        return {"kind": self.kind, **{k: v for k, v in self.__dict__.items()}}


@dataclass(frozen=True)
class Constant(Schedule):
    """m(k) = 1."""

    kind = "constant"
    constant = True
    piecewise_constant = True

    def __call__(self, k, xp=np):
        return xp.ones_like(xp.asarray(k, dtype=float))

    def peak(self, steps=None):
        return 1.0


@dataclass(frozen=True)
class WarmupCosine(Schedule):
    """Linear warmup then cosine decay:
    m(k) = (k+1)/warmup for k < warmup; then floor + (1-floor)(1 + cos(pi (k-warmup)/(total-warmup)))/2
    until k = total; m(k) = floor afterwards."""

    warmup: int
    total: int
    floor: float = 0.0
    kind = "warmup_cosine"

    def __post_init__(self):
        from .checks import check_int

        object.__setattr__(self, "warmup", check_int("warmup", self.warmup, minimum=0))
        object.__setattr__(self, "total", check_int("total", self.total))
        if self.total <= self.warmup:
            raise ValueError(f"need 0 <= warmup < total, got warmup={self.warmup}, total={self.total}")
        if not (0 <= self.floor <= 1):
            raise ValueError(f"floor must be in [0, 1], got {self.floor}")

    def __call__(self, k, xp=np):
        k = xp.asarray(k, dtype=float)
        w, T = float(self.warmup), float(self.total)
        warm = (k + 1.0) / max(w, 1.0)
        frac = xp.clip((k - w) / (T - w), 0.0, 1.0)
        cos = self.floor + (1.0 - self.floor) * 0.5 * (1.0 + xp.cos(math.pi * frac))
        return xp.where(k < w, warm, cos)

    def peak(self, steps=None):
        return 1.0


@dataclass(frozen=True)
class PowerDecay(Schedule):
    """m(k) = (1 + k/k0)^(-power), power >= 0."""

    power: float
    k0: float = 1.0
    kind = "power_decay"

    def __post_init__(self):
        if not (math.isfinite(self.power) and self.power >= 0):
            raise ValueError(f"power must be finite and >= 0, got {self.power}")
        if not (math.isfinite(self.k0) and self.k0 > 0):
            raise ValueError(f"k0 must be finite and > 0, got {self.k0}")

    def __call__(self, k, xp=np):
        k = xp.asarray(k, dtype=float)
        return (1.0 + k / self.k0) ** (-self.power)

    def peak(self, steps=None):
        return 1.0


@dataclass(frozen=True)
class Piecewise(Schedule):
    """Piecewise constant: m(k) = values[i] for boundaries[i-1] <= k < boundaries[i]
    (boundaries increasing, len(values) = len(boundaries) + 1)."""

    boundaries: tuple
    values: tuple
    kind = "piecewise"
    piecewise_constant = True

    def __post_init__(self):
        from .checks import check_int

        b = tuple(check_int("Piecewise boundaries", x) for x in self.boundaries)
        v = tuple(float(x) for x in self.values)
        if len(v) != len(b) + 1:
            raise ValueError("Piecewise needs len(values) == len(boundaries) + 1")
        if any(b2 <= b1 for b1, b2 in zip(b, b[1:])) or (b and b[0] <= 0):
            raise ValueError("Piecewise boundaries must be positive and strictly increasing")
        if any(not math.isfinite(x) or x < 0 for x in v):
            raise ValueError("Piecewise values must be finite and >= 0")
        object.__setattr__(self, "boundaries", b)
        object.__setattr__(self, "values", v)

    def __call__(self, k, xp=np):
        k = xp.asarray(k)
        idx = xp.zeros(k.shape, dtype=int) if hasattr(k, "shape") else 0
        for b in self.boundaries:
            idx = idx + (k >= b)
        return xp.asarray(self.values, dtype=float)[idx]

    def breakpoints(self):
        return self.boundaries

    def peak(self, steps=None):
        if steps is None:
            return max(self.values)
        return max(v for v, start in zip(self.values, (0,) + self.boundaries) if start < steps)


class Sequence(Schedule):
    """An explicit multiplier per step: m(k) = values[k] for k < len(values), the last value afterwards.

    Values must be > 0; ``inf`` is allowed (a clip schedule uses it for "no clipping at this step"; an lr
    schedule rejects it). This is how schedules resolved from the theory (a relative clip level, the
    max-CCC clip and compensated lr of clipped SGD, docs/derivations/clipped_sgd.md) are handed to the simulator. The
    theory cuts its blocks wherever the value changes, so a sequence that changes at every step is
    stepped exactly."""

    kind = "sequence"
    piecewise_constant = True

    def __init__(self, values):
        v = np.array(values, dtype=np.float64).ravel()
        if v.size == 0:
            raise ValueError("Sequence needs at least one value")
        if np.any(np.isnan(v)) or np.any(v <= 0):
            raise ValueError("Sequence values must be > 0 (inf allowed), got NaN or a value <= 0")
        v.setflags(write=False)
        self.values = v
        change = np.flatnonzero(v[1:] != v[:-1]) + 1
        self._breakpoints = tuple(int(i) for i in change)
        self.constant = bool(np.all(v == 1.0))
        self._hash = hash(v.tobytes())

    def __eq__(self, other):
        return isinstance(other, Sequence) and np.array_equal(self.values, other.values)

    def __hash__(self):
        return self._hash

    def __repr__(self):
        return f"Sequence(<{self.values.size} values in [{self.values.min():g}, {self.values.max():g}]>)"

    def __call__(self, k, xp=np):
        n = self.values.size
        if xp is np:
            idx = np.clip(np.floor(np.asarray(k, dtype=np.float64)), 0, n - 1).astype(np.int64)
            return self.values[idx]
        idx = xp.clip(xp.floor(xp.asarray(k)).astype(xp.int32), 0, n - 1)
        return xp.asarray(self.values)[idx]

    def breakpoints(self):
        return self._breakpoints

    def peak(self, steps=None):
        v = self.values if steps is None else self.values[: max(int(steps), 1)]
        return float(v.max())

    def to_dict(self):
        return {"kind": self.kind, "values": self.values.tolist()}


_KINDS = {c.kind: c for c in (Constant, WarmupCosine, PowerDecay, Piecewise, Sequence)}


def schedule_from_dict(d: dict | None) -> Schedule:
    if d is None:
        return Constant()
    d = dict(d)
    kind = d.pop("kind")
    return _KINDS[kind](**d)
