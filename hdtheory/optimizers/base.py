"""Optimizer dataclasses' shared behaviour and the theory-module interface used by ``hd.solve``.

The theory of an optimizer is, per mode of K, a map of a small per-mode state (DESIGN.md). A theory
module supplies (see ``Theory``):

* ``init(problem, opt) -> ModeState``: per-mode state ``s`` (flattened), per-mode constants, and
  *linear readouts* ``scalars = c0 + W @ s`` whose first entry is the twice-risk
  E = 2 R = sigma^2 + sum_j lambda_j rho_j (research/sgd.md §1.1);
* ``exact(state, opt, k0, lr_seq, cap) -> n_done``: the exact step map over the inner steps
  k0 .. k0 + len(lr_seq) - 1, ``lr_seq`` holding the step size of every *inner step* (its length is a
  multiple of the span); returns the inner steps done (a multiple of the span), stopping early once
  E > cap or E is not finite (a Numba kernel; it may be nonlinear);
* optionally ``affine(state, opt, t, scalars) -> (am1, f, h)``: the same step written as a
  per-mode affine map  s_j <- (1 + am1_j) s_j + f_j + h_j E  whose coefficients may depend on the
  hyperparameters at step time ``t`` (``opt.lr_at(t)``, and any other schedule in ``opt.schedules``)
  and on the scalars. When present, the driver advances n steps at once with
  the closed-form powers of this map (``hdtheory.kernels``), the scalars held at a weighted value
  and E interpolated geometrically across the block with its end value solved self-consistently
  (``hdtheory.driver``; research/sgd.md §5.3 method 2, extended; research/signsgd.md §5.3 for the
  weighting of scalar-dependent coefficients). ``t`` may be a per-mode float array (under a smooth
  schedule the driver evaluates each mode's forcing at its own time), so the coefficients must broadcast.
  Modules whose step cannot be written this way (SignSVD's nonlinear closures, research notes) leave
  ``affine = None`` and are stepped exactly;
* optionally, for scalar-dependent ``affine`` coefficients, ``block_kernel(state, opt) -> (run, consts)``
  and ``hyper(opt, t)``: the same coefficients as a Numba kernel of (hyperparameters, scalars), bound into
  the fused block loop ``kernels.run_blocks_scalar`` so that the whole late-time loop between schedule
  breakpoints runs in one Numba call (clipped SGD, signSGD). Without it (the default) the driver runs the
  same blocks in Python through ``affine``; both give the same curve to rounding;
* ``span`` / ``steps_per_update(opt)``: inner steps per update (1; H = ``opt.inner_steps`` for one
  LA-DiLoCo round, where curves are recorded at multiples of H). The driver calls
  ``steps_per_update(opt)``, which returns the class's ``span`` unless a module overrides it;
* ``threshold(problem, opt)``: the largest stable base lr.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from ..schedules import Constant, Schedule


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


class OptimizerMixin:
    """Behaviour shared by every optimizer dataclass: lr schedule, validation, serialisation.

    Every optimizer dataclass has ``lr`` (the per-step step size applied to theta) and ``schedule``
    (a multiplier of lr; ``None`` = constant)."""

    name = "optimizer"

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

    def with_lr(self, lr):
        return dataclasses.replace(self, lr=lr)

    def to_dict(self) -> dict:
        out = {"name": self.name}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = v.to_dict() if isinstance(v, Schedule) else v
        return out


@dataclass
class ModeState:
    """Theory state: per-mode state ``s`` (n_modes * p, float64), readout ``scalars = c0 + W @ s``
    (scalars[0] is the twice-risk E), per-mode constants, and the label-noise variance."""

    s: np.ndarray
    W: np.ndarray
    c0: np.ndarray
    sigma2: float
    consts: dict

    def scalars(self, s=None) -> np.ndarray:
        s = self.s if s is None else s
        return self.c0 + self.W @ s


class Theory:
    """Interface of a theory module (see the module docstring)."""

    #: inner steps covered by one application of ``exact`` (1 for SGD; H for one LA-DiLoCo round)
    span: int = 1
    #: whether ``affine`` coefficients depend on the scalars (if not, the driver reuses them)
    scalar_dependent: bool = False

    def steps_per_update(self, opt) -> int:
        """Inner steps covered by one update of ``opt`` (default: the class's ``span``)."""
        return self.span

    def init(self, problem, opt) -> ModeState:  # pragma: no cover
        raise NotImplementedError

    def exact(self, state: ModeState, opt, k0: int, lr_seq: np.ndarray, cap: float) -> int:  # pragma: no cover
        raise NotImplementedError

    affine = None  # optional: (state, opt, t, scalars) -> (am1, f, h)

    def block_kernel(self, state: ModeState, opt):
        """Optional fused Numba block loop for scalar-dependent ``affine`` coefficients: ``(run, consts)``,
        or None (the default) to let the driver run its blocks in Python through ``affine``.

        ``run`` is a module-level ``@njit(cache=True)`` wrapper of ``kernels.run_blocks_scalar`` that binds
        the module's Numba coefficient kernel ``coef(hp, z, consts, am1, f, h)`` as a global (filling, for
        hyperparameters ``hp`` = ``self.hyper(opt, t)`` and scalars z, the same per-mode (am1, f, h) as
        ``affine(state, opt, t, z)``, to rounding); ``consts`` is the tuple of per-solve constants it reads
        (keep its Numba types the same for every law and option: each new type tuple compiles the loop
        again, ~1.5 s). The driver calls ``run`` between schedule breakpoints of piecewise-constant
        schedules (``hp`` fixed there); smooth schedules use the Python path. Example (clipped_sgd.py)::

            @nb.njit(cache=True)
            def _run_blocks(consts, hp, s, W, c0, z, k, k_stop, k_ref, delta, span, grid, rec, i, cap,
                            geo_tol, dmax, correctors, extrapolate):
                return run_blocks_scalar(clipped_coefficients, consts, hp, s, W, c0, z, k, k_stop, k_ref,
                                         delta, span, grid, rec, i, cap, geo_tol, dmax, correctors,
                                         extrapolate)
        """
        return None

    def hyper(self, opt, t) -> np.ndarray:
        """Hyperparameters of step ``t`` read by the coefficient kernel of ``block_kernel`` (float64 array;
        default: the lr alone)."""
        return np.array([float(opt.lr_at(t))])

    def threshold(self, problem, opt) -> float:  # pragma: no cover
        """Largest stable base lr for opt's other hyperparameters (inf if nothing diverges)."""
        raise NotImplementedError
