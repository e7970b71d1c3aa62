"""One registry serves both engines: every optimizer has its dataclass, its theory, its simulation and its
command-line entry (tests/test_cli.py checks the last), and nothing exists outside the registry."""
import dataclasses
import inspect

import pytest

import hdtheory as hd
from hdtheory import optimizers, theory
from hdtheory.optimizers.base import OptimizerMixin

ENTRIES = theory.entries()


@pytest.mark.parametrize("e", ENTRIES, ids=lambda e: e.name)
def test_every_entry_has_a_dataclass_a_theory_and_a_simulation(e):
    from validation.optimizers import Simulation

    cls = theory.load(e.optimizer)
    assert dataclasses.is_dataclass(cls) and issubclass(cls, OptimizerMixin) and cls.name == e.name
    th = theory.load(e.theory)
    assert issubclass(th, theory.Theory)
    for method in ("init", "risk", "step", "threshold"):
        assert getattr(th, method) is not getattr(theory.Theory, method), f"{e.name} theory lacks {method}"
    sim = theory.load(e.simulation)
    assert issubclass(sim, Simulation) and sim.update is not Simulation.update, f"{e.name} lacks a simulation"


def test_every_optimizer_dataclass_is_registered():
    names = {e.name for e in ENTRIES}
    for _, cls in inspect.getmembers(optimizers, inspect.isclass):
        if issubclass(cls, OptimizerMixin) and dataclasses.is_dataclass(cls):
            assert cls.name in names, f"{cls.__name__} has no registry entry"
            assert getattr(hd, cls.__name__) is cls  # and is public


def test_steps_per_update_and_hyperparameters_live_on_the_dataclass():
    assert hd.SGD(0.1).steps_per_update == 1
    assert hd.LADiLoCo(0.1, inner_steps=8).steps_per_update == 8
    assert hd.ClippedSGD(0.1, clip=2.0).hyper_names == ("lr", "clip")
    h = hd.ClippedSGD(0.1, clip=2.0, schedule=hd.Piecewise((2,), (1.0, 0.5))).hyper_at([0, 1, 2, 3])
    assert h.shape == (2, 4) and h.flags.c_contiguous
    assert list(h[0]) == [0.1, 0.1, 0.05, 0.05] and list(h[1]) == [2.0] * 4
