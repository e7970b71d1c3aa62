"""Simulation modules: one JAX update rule per optimizer, registered by optimizer type.

A simulation module is a pure init/update pair over a fixed pytree state (optax's shape):

* ``prepare(problem, opt, steps) -> opt`` (optional): resolve hyperparameters that depend on the theory
* ``init(theta0, opt) -> state``
* ``update(theta, state, key, lr, sample, opt) -> (theta, state)``: one update (covering
  ``steps_per_update(opt)`` inner steps, the class's ``span`` by default), where ``lr`` is the scheduled
  step size of this update (a scalar when the update is one step; the vector of the step sizes of its
  ``span`` inner steps when it covers more, so a schedule moves inside an LA-DiLoCo round as in the
  theory) and ``sample(key, n)`` returns a fresh batch ``(x (n, d), y (n,))`` from the problem.

``opt`` arrives with ``lr = 1.0`` (the driver passes the traced step size separately, so a sweep over
lr compiles once).
"""
from __future__ import annotations

_SIMS: dict = {}


class Simulation:
    span: int = 1

    def prepare(self, problem, opt, steps):
        """The optimizer actually run for ``steps`` steps (hook for hyperparameters resolved from the
        theory before a run, e.g. a relative clip level); the identity by default."""
        return opt

    def steps_per_update(self, opt) -> int:
        """Inner steps covered by one update of ``opt`` (default: the class's ``span``)."""
        return self.span

    def init(self, theta0, opt):
        return ()

    def update(self, theta, state, key, lr, sample, opt):  # pragma: no cover
        raise NotImplementedError


def register(opt_cls, sim: Simulation):
    _SIMS[opt_cls] = sim


def simulation_for(opt) -> Simulation:
    try:
        return _SIMS[type(opt)]
    except KeyError:
        raise ValueError(f"no simulation registered for optimizer {opt!r}") from None


from . import clipped_sgd, la_diloco, sgd, signsgd  # noqa: E402,F401  (register themselves)
