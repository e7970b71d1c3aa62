"""The contract between an optimizer's equations (its *theory*) and the driver ``hd.solve``, and the one
registry that maps every optimizer to its theory and its simulation.

A theory owns its equations and an **opaque state** (any object: per-mode vectors, per-mode blocks, per-entry
moments); ``hd.solve`` owns the record grid, long-horizon stepping, divergence and status, and reads the state
only through these methods:

* ``init(problem, opt) -> state``;
* ``risk(state) -> float``: the expected risk R = 1/2 E||prediction - y||^2 (label noise included);
* ``step(state, k0, hyper, cap) -> int``: the exact step map over steps k0 .. k0 + m - 1, where
  ``hyper = opt.hyper_at(range(k0, k0 + m))`` holds every scheduled hyperparameter (one row per name in
  ``opt.hyper_names``, one column per step; m is a multiple of ``opt.steps_per_update``); it may be nonlinear
  and switch closures, and returns the steps done, stopping early once the risk exceeds ``cap`` or stops being
  finite;
* ``threshold(problem, opt) -> Threshold``: the largest stable base lr (inf, with the reason, where nothing
  diverges);
* optionally ``validity(state, opt) -> str``: "" where the theory's own validity test holds at this state, else
  the reason (``hd.solve`` then flags the recorded points and the curve's status);
* optionally ``stationary_risk(problem, opt) -> float`` (the risk the run settles at, where it is known) and
  ``lr_scale(problem, opt)`` (the top of a theory-optimal lr search; default: the threshold).

Optional capabilities (``None`` where a theory has none; it is then stepped exactly):

* ``block_form(state, opt) -> BlockForm``: the step written as a per-mode affine map whose closed-form powers
  advance many steps at once (``hdtheory.stepping``). A closure switch is reported by the block form's
  coefficient kernel (its regime id) and handled by the integrator like a schedule breakpoint.
"""
from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

#: how a block form's coefficients may change inside a run (``BlockForm.dependence``)
FIXED, STATE, SCALARS = 0, 1, 2
#: cost of one block the driver cuts alone (smooth schedules: a Python round trip), in per-mode exact updates;
#: read at solve time by the driver and by theories whose ``BlockForm.payoff`` includes it
SINGLE_BLOCK_COST = 2e5


class Threshold(NamedTuple):
    """Largest stable base lr (``math.inf`` where nothing diverges) and why."""

    lr: float
    reason: str = ""


@dataclass
class BlockForm:
    """A theory's step as a per-mode affine map  s_j <- (1 + am1_j) s_j + f_j + h_j E,  E = z[0] = 2 R,
    over the readout z = c0 + W @ s (``hdtheory.stepping`` advances it by closed-form powers).

    ``s`` is a flat float64 view into the theory's state (advanced in place). ``run`` is the theory's binding
    of ``stepping.integrate`` to its Numba coefficient kernel ``coef(hp, z, s, consts, am1, f, h) -> regime``
    (``hp`` one column of ``opt.hyper_at``); ``consts`` the tuple of arrays and numbers that kernel reads.
    ``dependence`` says what the coefficients depend on besides the hyperparameters: ``FIXED`` (nothing: reused
    across blocks), ``STATE`` (the state at the block's start: one pass per block) or ``SCALARS`` (the scalars
    z along the block: a predictor and correctors per block). ``switching``: the kernel's regime id can change
    along a run (the integrator then never lets a block cross a switch). ``min_block``: the block length, in
    updates, from which blocks start after the run's start or a breakpoint (None: the driver's default for the
    dependence). ``payoff``: under smooth schedules, the shortest single block, in updates, that costs less
    than the exact updates it replaces; the driver steps a shorter one exactly (None: the driver's default,
    max(MIN_BLOCK, SINGLE_BLOCK_COST / modes))."""

    run: Any
    consts: tuple
    s: np.ndarray
    W: np.ndarray
    c0: np.ndarray
    dependence: int = FIXED
    switching: bool = False
    min_block: float | None = None
    payoff: float | None = None
    #: per-mode block size: 1 = the scalar map above; p > 1 = s_j <- (I + am1_j) s_j + f_j + h_j E with p x p
    #: am1_j, the state component-major (``stepping.integrate_modes``, which ``run`` then binds)
    p: int = 1


class Theory:
    """Base class of a theory (see the module docstring for the contract)."""

    def init(self, problem, opt):  # pragma: no cover
        raise NotImplementedError

    def risk(self, state) -> float:  # pragma: no cover
        raise NotImplementedError

    def step(self, state, k0: int, hyper: np.ndarray, cap: float) -> int:  # pragma: no cover
        raise NotImplementedError

    def threshold(self, problem, opt) -> Threshold:  # pragma: no cover
        raise NotImplementedError

    def block_form(self, state, opt) -> BlockForm | None:
        return None

    def validity(self, state, opt) -> str:
        """Why the theory is not to be trusted at this state ("" where its own validity test holds)."""
        return ""

    stationary_risk = None  # optional: (problem, opt) -> float

    def lr_scale(self, problem, opt) -> float:
        """The top of a theory-optimal lr search (``hd.tuning``): the stability threshold by default."""
        return self.threshold(problem, opt).lr


# ------------------------------------------------------------------------------------------------------
# the registry: one entry per optimizer, both engines, loaded lazily (no import side effects)
# ------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Entry:
    """An optimizer's three parts, as ``module:attribute`` paths (loaded on first use)."""

    name: str        # the optimizer's own name (``opt.name``, the CLI's optimizer name)
    optimizer: str   # its dataclass
    theory: str      # its Theory subclass
    simulation: str  # its JAX update rule (``validation.optimizers``)


REGISTRY: tuple[Entry, ...] = (
    Entry("sgd", "hdtheory.optimizers.sgd:SGD", "hdtheory.theories.sgd:SGDTheory",
          "validation.optimizers.sgd:SGDSimulation"),
    Entry("clipped_sgd", "hdtheory.optimizers.clipped_sgd:ClippedSGD",
          "hdtheory.theories.clipped_sgd.theory:ClippedSGDTheory",
          "validation.optimizers.clipped_sgd:ClippedSGDSimulation"),
    Entry("signsgd", "hdtheory.optimizers.signsgd:SignSGD", "hdtheory.theories.signsgd.theory:SignSGDTheory",
          "validation.optimizers.signsgd:SignSGDSimulation"),
    Entry("la_diloco", "hdtheory.optimizers.la_diloco:LADiLoCo",
          "hdtheory.theories.la_diloco.theory:LADiLoCoTheory",
          "validation.optimizers.la_diloco:LADiLoCoSimulation"),
    Entry("signsvd", "hdtheory.optimizers.signsvd:SignSVD", "hdtheory.theories.signsvd.theory:SignSVDTheory",
          "validation.optimizers.signsvd:SignSVDSimulation"),
    Entry("muon", "hdtheory.optimizers.signsvd:Muon", "hdtheory.theories.signsvd.theory:MuonTheory",
          "validation.optimizers.signsvd:MuonSimulation"),
)

_BY_NAME = {e.name: e for e in REGISTRY}
_LOADED: dict = {}


def register(e: Entry) -> None:
    """Add an optimizer defined outside the package (its dataclass's ``name`` must be ``e.name``)."""
    if not isinstance(e, Entry):
        raise ValueError(f"register takes an hdtheory.theory.Entry, got {e!r}")
    _BY_NAME[e.name] = e


def entries() -> tuple:
    """Every registered optimizer's entry (the built-ins first)."""
    return tuple(_BY_NAME.values())


def load(path: str):
    """The object named by a ``module:attribute`` path."""
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def entry(opt_or_name) -> Entry:
    """The registry entry of an optimizer (instance, class or name)."""
    name = opt_or_name if isinstance(opt_or_name, str) else getattr(opt_or_name, "name", None)
    try:
        return _BY_NAME[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown optimizer {opt_or_name!r}; known: {', '.join(_BY_NAME)}") from None


def _instance(path: str):
    obj = _LOADED.get(path)
    if obj is None:
        obj = _LOADED[path] = load(path)()
    return obj


def theory_for(opt) -> Theory:
    """The theory of ``opt`` (one shared instance per optimizer type)."""
    e = entry(opt)
    if not isinstance(opt, load(e.optimizer)):
        raise ValueError(f"expected an optimizer dataclass such as hd.SGD(...), got {opt!r}")
    return _instance(e.theory)


def simulation_for(opt):
    """The JAX simulation of ``opt`` (``validation.optimizers``; imports JAX)."""
    return _instance(entry(opt).simulation)


def optimizer_class(name: str):
    return load(entry(name).optimizer)


def inf_threshold(reason: str) -> Threshold:
    return Threshold(math.inf, reason)
