"""LA-DiLoCo on the theory contract (``hdtheory.theory``): state, exact rounds, block forms, threshold.

Equations: docs/derivations/la_diloco.md ((D2)-(D4) the round, (D6) stability, §5 the block form), after
A. Agarwala, arXiv:2603.26954 (2026); exact in expectation for Gaussian x at every d. One update is one round
of H inner steps per worker; the curve is indexed by inner steps (k = t H), and row 0 of the hyperparameters
is the lr of each inner step.

Block forms (``rounds``): beta = 0, the per-mode round s <- (1 + am1) s + f + h E (scalar blocks); beta > 0,
the 3 x 3 map of (R, C, V) per mode (``stepping.integrate_modes``, p = 3). Both read the worker-risk shape from
the block-start state (``dependence = STATE``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numba as nb
import numpy as np

from ... import theory as contract
from ...stepping import integrate, integrate_modes
from ...theory import STATE, BlockForm, Theory, Threshold
from .rounds import (
    la_coefficients,
    la_exact_rounds,
    la_momentum_coefficients,
    shape_ahead,
)
from .stability import first_crossing, positive_modes, problem_modes

#: blocks start once they are this many rounds long, and at least BLOCK_PER_AHEAD times the rounds ``ahead``
#: the shape is read from (a block costs about 3 + ahead exact rounds: round operators, ahead rounds, passes;
#: and a block not much longer than ahead reads its shape from too late a state)
MIN_BLOCK_ROUNDS = 32
BLOCK_PER_AHEAD = 4
# a block cut by the driver under a smooth schedule costs one Python round trip (about
# hdtheory.theory.SINGLE_BLOCK_COST exact mode-steps) and three coefficient evaluations instead of one: it pays
# off from 3 (3 + ahead) rounds plus the round trip on (shorter ones are stepped exactly)


@nb.njit(cache=True)
def _integrate_rounds(consts, hp, s, W, c0, z, k, k_stop, k_ref, delta, span, grid, rec, i, cap, geo_tol, dmax,
                      dependence, correctors, extrapolate, single, switching, carry):
    return integrate(la_coefficients, consts, hp, s, W, c0, z, k, k_stop, k_ref, delta, span, grid, rec, i, cap,
                     geo_tol, dmax, dependence, correctors, extrapolate, single, switching, carry)


@nb.njit(cache=True)
def _integrate_momentum(consts, hp, s, W, c0, z, k, k_stop, k_ref, delta, span, grid, rec, i, cap, geo_tol, dmax,
                        dependence, correctors, extrapolate, single, switching, carry):
    return integrate_modes(la_momentum_coefficients, 3, consts, hp, s, W, c0, z, k, k_stop, k_ref, delta, span, grid,
                           rec, i, cap, geo_tol, dmax, dependence, correctors, extrapolate, single, switching, carry)


@dataclass
class LADiLoCoState:
    """Per merged mode (eigenvalue lam_j, multiplicity mult_j): s = R (beta = 0) or [R, C, V] component-major
    (beta > 0), R = E e_j^2, C = E e_j v_j, V = E v_j^2 (e the slow weights' error, v the outer buffer); the
    readout E = c0 + W @ s = sigma^2 + lam . R; and the optimizer's constants."""

    s: np.ndarray
    W: np.ndarray
    c0: np.ndarray
    lam: np.ndarray
    mult: np.ndarray
    sigma2: float
    inner_steps: int
    inv_b: float
    inv_m: float
    outer_lr: float
    outer_momentum: float
    nesterov: bool
    inner_momentum: float


class LADiLoCoTheory(Theory):
    def init(self, problem, opt) -> LADiLoCoState:
        lam, s0, mult = problem_modes(problem)
        n = lam.shape[0]
        mom = opt.outer_momentum > 0
        size = 3 * n if mom else n
        s = np.zeros(size)
        s[:n] = s0
        W = np.zeros((1, size))
        W[0, :n] = lam
        return LADiLoCoState(s=s, W=W, c0=np.array([float(problem.sigma2)]), lam=np.ascontiguousarray(lam),
                             mult=np.ascontiguousarray(mult, dtype=np.float64), sigma2=float(problem.sigma2),
                             inner_steps=int(opt.inner_steps), inv_b=1.0 / opt.batch, inv_m=1.0 / opt.workers,
                             outer_lr=float(opt.outer_lr), outer_momentum=float(opt.outer_momentum),
                             nesterov=bool(opt.nesterov), inner_momentum=float(opt.inner_momentum))

    def risk(self, st) -> float:
        return 0.5 * float((st.c0 + st.W @ st.s)[0])

    def step(self, st, k0, hyper, cap) -> int:
        return int(la_exact_rounds(st.lam, st.mult, st.s, np.ascontiguousarray(hyper[0]), st.inner_steps, st.inv_b,
                                   st.sigma2, 2.0 * cap, st.inv_m, st.outer_lr, st.outer_momentum, st.nesterov,
                                   st.inner_momentum))

    def block_form(self, st, opt) -> BlockForm:
        base = (st.lam, st.mult, st.sigma2, st.inner_steps, st.inv_b, st.inv_m, st.outer_lr, st.inner_momentum)
        mom = st.outer_momentum > 0
        ahead = int(shape_ahead(st.lam, st.mult, float(opt.lr * opt.sched.peak()), *base[3:], st.outer_momentum,
                                st.nesterov)) if st.inner_steps > 1 else 0
        rounds = float(max(MIN_BLOCK_ROUNDS, BLOCK_PER_AHEAD * ahead))
        trip = contract.SINGLE_BLOCK_COST / (st.inner_steps * max(st.lam.shape[0], 1))
        payoff = 3.0 * (3 + ahead) + trip
        if not all(sc.piecewise_constant for sc in opt.schedules):
            rounds = 3.0 * rounds + trip
        if mom:
            return BlockForm(run=_integrate_momentum, consts=base + (st.outer_momentum, st.nesterov), s=st.s, W=st.W,
                             c0=st.c0, dependence=STATE, min_block=rounds, payoff=payoff, p=3)
        return BlockForm(run=_integrate_rounds, consts=base, s=st.s, W=st.W, c0=st.c0, dependence=STATE,
                         min_block=rounds, payoff=payoff)

    def threshold(self, problem, opt) -> Threshold:
        """First crossing of (D6) going up in the base lr, divided by the schedule's peak."""
        lam, _, mult = positive_modes(problem)
        peak = opt.sched.peak()
        if peak <= 0:
            return Threshold(math.inf, "the lr schedule is zero at every step")
        if lam.size == 0:
            return Threshold(math.inf, "every eigenvalue is zero: nothing moves")
        eta = first_crossing(lam, mult, opt)
        if not math.isfinite(eta):
            return Threshold(math.inf, "(D6) holds at every lr of the scan (up to where every mean map is unstable)")
        return Threshold(eta / peak, "")

    def stationary_risk(self, problem, opt) -> float:
        from .analysis import stationary_risk

        return stationary_risk(problem, opt)
