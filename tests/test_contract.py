"""The theory contract seen from the driver: an opaque state, a theory stepped exactly (no block form), and a
block form whose closure switches mid-run (regime breakpoints), on toy optimizers registered from outside."""
import math
from dataclasses import dataclass

import numba as nb
import numpy as np
import pytest

import hdtheory as hd
from hdtheory import theory
from hdtheory.optimizers.base import OptimizerMixin
from hdtheory.schedules import Schedule
from hdtheory.stepping import integrate
from hdtheory.theories.sgd import SGDTheory


@dataclass(frozen=True)
class Relax(OptimizerMixin):
    """A toy: the risk relaxes as R <- (1 - lr) R + lr R_inf."""

    lr: float
    schedule: Schedule | None = None
    name = "toy_relax"


@dataclass
class RelaxState:
    values: list  # deliberately not an array: the driver must not look inside
    floor: float


class RelaxTheory(theory.Theory):
    def init(self, problem, opt):
        return RelaxState(values=[problem.initial_risk], floor=0.5 * problem.sigma2 + 0.25)

    def risk(self, state):
        return state.values[0]

    def step(self, state, k0, hyper, cap):
        for n, lr in enumerate(hyper[0]):
            state.values[0] = (1.0 - lr) * state.values[0] + lr * state.floor
            if not state.values[0] <= cap:
                return n + 1
        return hyper.shape[1]

    def threshold(self, problem, opt):
        return theory.Threshold(2.0, "the map contracts for lr < 2")


@dataclass(frozen=True)
class Switch(OptimizerMixin):
    """A toy SGD whose step size halves once the risk falls below ``level`` (a closure switch)."""

    lr: float
    level: float = 0.02
    batch: int = 1
    schedule: Schedule | None = None
    name = "toy_switch"


@nb.njit
def _switch_lr(lr, E, level):
    return lr if E >= 2.0 * level else 0.5 * lr


@nb.njit
def _switch_coefficients(hp, z, s, consts, am1, f, h):
    lam, mult, inv_b, level = consts
    lr = _switch_lr(hp[0], z[0], level)
    for j in range(lam.shape[0]):
        am1[j] = lr * lam[j] * (-2.0 + (1.0 + inv_b) * lr * lam[j])
        f[j] = 0.0
        h[j] = lr * lr * inv_b * mult[j] * lam[j]
    return 0 if z[0] >= 2.0 * level else 1


@nb.njit
def _switch_integrate(consts, hp, s, W, c0, z, k, k_stop, k_ref, delta, span, grid, rec, i, cap, geo_tol, dmax,
                      dependence, correctors, extrapolate, single, switching, carry):
    return integrate(_switch_coefficients, consts, hp, s, W, c0, z, k, k_stop, k_ref, delta, span, grid, rec, i, cap,
                     geo_tol, dmax, dependence, correctors, extrapolate, single, switching, carry)


@dataclass
class SwitchState:
    rho: np.ndarray
    lam: np.ndarray
    mult: np.ndarray
    sigma2: float
    inv_b: float
    level: float


class SwitchTheory(theory.Theory):
    switching = True

    def init(self, problem, opt):
        lam, s0, mult = problem.spectral_modes()
        return SwitchState(s0.copy(), lam, mult, problem.sigma2, 1.0 / opt.batch, opt.level)

    def risk(self, st):
        return 0.5 * float(st.sigma2 + st.lam @ st.rho)

    def step(self, st, k0, hyper, cap):
        for n, lr0 in enumerate(hyper[0]):
            E = st.sigma2 + st.lam @ st.rho
            lr = _switch_lr(lr0, E, st.level)
            a = 1.0 + lr * st.lam * (-2.0 + (1.0 + st.inv_b) * lr * st.lam)
            st.rho[:] = a * st.rho + lr * lr * st.inv_b * st.mult * st.lam * E
            if not 0.5 * (st.sigma2 + st.lam @ st.rho) <= cap:
                return n + 1
        return hyper.shape[1]

    def block_form(self, st, opt):
        return theory.BlockForm(run=_switch_integrate, consts=(st.lam, st.mult, st.inv_b, st.level), s=st.rho,
                                W=st.lam[None, :].copy(), c0=np.array([st.sigma2]), dependence=theory.SCALARS,
                                switching=self.switching)

    def threshold(self, problem, opt):
        return SGDTheory().threshold(problem, hd.SGD(opt.lr, batch=opt.batch))


class NoSwitchTheory(SwitchTheory):
    switching = False  # the same closure with its switch hidden from the integrator


@pytest.fixture
def toys(monkeypatch):
    for name, opt, th in [("toy_relax", Relax, RelaxTheory), ("toy_switch", Switch, SwitchTheory)]:
        monkeypatch.setitem(theory._BY_NAME, name, theory.Entry(name, f"{__name__}:{opt.__name__}",
                                                                f"{__name__}:{th.__name__}", "none:none"))
    yield


def test_a_theory_without_block_form_is_stepped_exactly(toys):
    prob = hd.isotropic(10, noise=hd.Gaussian(0.2))
    curve = hd.solve(prob, Relax(0.01), steps=10**4)
    R0, floor = prob.initial_risk, 0.5 * prob.sigma2 + 0.25
    np.testing.assert_allclose(curve.risk, floor + (R0 - floor) * 0.99 ** curve.steps.astype(float), rtol=1e-10)
    assert curve.status == "ok"
    bad = hd.solve(prob, Relax(2.0), steps=100)
    assert bad.status == "unstable" and "contracts for lr < 2" in bad.message


def test_a_closure_switch_is_cut_like_a_breakpoint(toys, monkeypatch):
    prob = hd.powerlaw(300, 1.0, 0.5, noise=hd.Gaussian(0.05))
    lr = 0.5 * hd.stability_threshold(prob, hd.SGD(1.0))
    opt = Switch(lr, level=float(hd.solve(prob, hd.SGD(lr), grid=[0, 20000]).risk[-1]))  # crossed at ~2e4 steps
    grid = hd.step_grid(2 * 10**5)
    exact = hd.solve(prob, opt, grid=grid, method="exact")
    below = np.flatnonzero(exact.risk < opt.level)
    assert 0 < below[0] < grid.size - 20  # the switch happens mid-run, in the block regime
    auto = hd.solve(prob, opt, grid=grid)
    err = np.max(np.abs(auto.excess_risk / exact.excess_risk - 1))
    monkeypatch.setitem(theory._LOADED, theory._BY_NAME["toy_switch"].theory, NoSwitchTheory())
    hidden = hd.solve(prob, opt, grid=grid)
    err_hidden = np.max(np.abs(hidden.excess_risk / exact.excess_risk - 1))
    assert err < 2e-4 < err_hidden  # measured 7.5e-5 and 2.2e-3


def test_registry_refuses_unknown_and_mistyped_optimizers():
    with pytest.raises(ValueError, match="unknown optimizer"):
        theory.entry("adamw")
    with pytest.raises(ValueError, match="Entry"):
        theory.register(("sgd", "a", "b", "c"))
    prob = hd.isotropic(4)
    with pytest.raises(ValueError, match="optimizer"):
        hd.solve(prob, object(), steps=10)


def test_math_inf_threshold_reason_is_exposed():
    prob = hd.isotropic(4)
    assert math.isfinite(hd.stability_threshold(prob, hd.SGD(1.0)))
    assert hd.threshold_reason(prob, hd.SGD(1.0)) == ""
