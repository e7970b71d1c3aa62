"""signSGD's closed-form analysis: the effective lr, the overshoot measure, the risk floor and the no-progress lr.

docs/derivations/signsgd.md §6-§7, after Xiao, Marshall, Agarwala, Paquette (2024), arXiv:2411.12135 (the four
effects). The floor is the fixed point of (G3), rho~_j* = lr n_j / (2 a_B(s*) mu_j), summed:

    s*^2 a_B(s*) = (lr/2) sum_i sqrt(K_ii),    R* = (sigma^2 + s*^2)/2                              (G6)

(it depends on K only through its diagonal; per-example placement: the exact fixed point of (G4)). The no-progress
lr is the constant lr whose floor equals the initial risk, lr_np = 2 s0^2 a_B(s0) / sum_i sqrt(K_ii). All use the
base lr (no schedule). Matrix problems (m outputs): s is the per-row value, s^2 = (2 R - m sigma^2)/m (rows
decouple; the floor is m times a row's), so R* = m (sigma^2 + s*^2)/2.
"""
from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np
from scipy.optimize import brentq

from ...optimizers.signsgd import SignSGD
from .drift import DriftLaw, drift_law
from .modes import modes


def outputs(problem) -> int:
    """The number of outputs m of a problem (1 for a vector problem)."""
    return int(getattr(problem, "outputs", 1))


def _check_opt(opt):
    if not isinstance(opt, SignSGD):
        raise ValueError(f"expected an hd.SignSGD, got {opt!r}")


def _s_of_risk(problem, risk) -> float:
    """The per-row s at ``risk``: s^2 = (2 risk - m sigma^2)/m."""
    m = outputs(problem)
    s2 = (2.0 * float(risk) - problem.noise_variance) / m
    if not (math.isfinite(s2) and s2 >= -1e-12 * max(problem.sigma2, 1e-300)):
        raise ValueError(f"risk must be finite and >= m sigma^2/2 = {0.5 * problem.noise_variance}, got {risk!r}")
    return math.sqrt(max(s2, 0.0))


def effective_lr(problem, opt, risk=None) -> float:
    """The paper's *effective learning rate* lr a_B(s): the drift of (G3) is -2 (lr a_B(s)) mu_j rho~_j, i.e.
    signSGD acts as a preconditioned gradient step with this lr at risk ``risk`` (default: the initial risk;
    s^2 = 2 risk - sigma^2). Gaussian, B = 1: (2/pi) lr / sqrt(2 R). With ``per_example`` the drift is a_1's at
    every B."""
    _check_opt(opt)
    s = _s_of_risk(problem, problem.initial_risk if risk is None else risk)
    law = drift_law(problem.noise, 1 if opt.per_example else opt.batch)
    return float(opt.lr * law(s))


def overshoot(problem, opt, risk=None) -> float:
    """2 lr a_B(s) mu_max at risk ``risk`` (default the initial one): above 1 the fastest mode overshoots within
    one step (its rho~ is then set by the noise term; what (G3) must not pass is the Cauchy-Schwarz bound on its
    drift, docs/derivations/signsgd.md §7)."""
    m = modes(problem)
    return 2.0 * effective_lr(problem, opt, risk) * float(m.mu.max())


def _floor_s(law: DriftLaw, Lam: float) -> float:
    """Root s* of s^2 a(s) = Lam (increasing in s; bracketing in log s)."""
    if Lam <= 0:
        return 0.0
    f = lambda ls: math.log(math.exp(2 * ls) * law(math.exp(ls)).item()) - math.log(Lam)  # noqa: E731
    lo, hi = math.log(Lam / law.A) - 1.0, math.log(Lam / law.A) + 1.0
    while f(lo) > 0:
        lo -= 2.0
    while f(hi) < 0:
        hi += 2.0
    return math.exp(brentq(f, lo, hi, xtol=1e-14, rtol=1e-15, maxiter=500))


def stationary_risk(problem, opt) -> float:
    """Risk floor at constant lr = opt.lr, (G6). Gaussian: s*^2 = [L^2 + sqrt(L^4 + 4 A^2 L^2 sigma^2)]/(2A^2),
    L = (lr/2) sum sqrt(K_ii), A = sqrt(2/pi) c_B.

    ``per_example``: the exact fixed point of (G4), rho~_j* = lr n_j / (B a_1 mu_j (2 - (1-1/B) lr a_1 mu_j)),
    summed: s^2 = sum_j lr n_j / (B a_1(s) (2 - (1-1/B) lr a_1(s) mu_j)) solved by bracketing in log s (the
    boxed s^2 a_1 = L/B is its leading order)."""
    _check_opt(opt)
    return _stationary_risk(problem, opt if opt.schedule is None else dataclasses.replace(opt, schedule=None))


@functools.lru_cache(maxsize=64)
def _stationary_risk(problem, opt) -> float:
    """``stationary_risk`` (which reads the base lr only), cached per (problem object, optimizer): a solve asks for
    it twice (the closure's floor localization and the divergence reference), an lr sweep many times per problem."""
    m = modes(problem)
    lr = opt.lr
    rows = outputs(problem)
    if not opt.per_example:
        s = _floor_s(drift_law(problem.noise, opt.batch), 0.5 * lr * m.sqrt_diag_sum)
        return 0.5 * rows * (problem.sigma2 + s * s)
    law = drift_law(problem.noise, 1)
    B = opt.batch

    def excess(ls):
        s = math.exp(ls)
        a = law(s).item()
        den = 2.0 - (1.0 - 1.0 / B) * lr * a * m.mu
        if np.any(den <= 0):
            return -math.inf  # past the (G4) stability edge for this s: the floor lies at larger s
        return math.log(float(np.sum(lr * m.n / (B * a * den)))) - 2 * ls

    s_lead = _floor_s(law, 0.5 * lr * m.sqrt_diag_sum / B)
    lo, hi = math.log(max(s_lead, 1e-300)) - 1.0, math.log(max(s_lead, 1e-300)) + 1.0
    while excess(lo) < 0:
        lo -= 2.0
    while excess(hi) > 0:
        hi += 2.0
    s = math.exp(brentq(excess, lo, hi, xtol=1e-14, rtol=1e-15, maxiter=500))
    return 0.5 * rows * (problem.sigma2 + s * s)


def no_progress_lr(problem, opt) -> float:
    """The constant lr whose floor equals the initial risk: lr_np = 2 s0^2 a_B(s0) / sum_i sqrt(K_ii),
    s0^2 = e0^T K e0. Above it signSGD ends worse than it started (but stays finite): the natural "largest useful
    lr" (``hd.stability_threshold`` is +inf). ``per_example``: the root in lr of the exact (G4) fixed-point
    equation at s = s0. opt.lr is ignored; 0 if theta_0 = theta*. With a schedule, the value is for the base lr
    at constant schedule."""
    _check_opt(opt)
    m = modes(problem)
    s0 = _s_of_risk(problem, max(problem.initial_risk, 0.5 * problem.noise_variance))
    if s0 == 0.0:
        return 0.0
    if not opt.per_example:
        a = drift_law(problem.noise, opt.batch)(s0).item()
        return 2.0 * s0 * s0 * a / m.sqrt_diag_sum
    B = opt.batch
    a = drift_law(problem.noise, 1)(s0).item()
    lead = 2.0 * B * s0 * s0 * a / m.sqrt_diag_sum
    if B == 1:
        return lead
    edge = 2.0 / ((1.0 - 1.0 / B) * a * m.mu.max()) * (1.0 - 1e-12)

    def f(lr):  # increasing in lr; f(0) = -s0^2 < 0 and f(lead) >= 0 (the denominators are <= 2)
        return float(np.sum(lr * m.n / (B * a * (2.0 - (1.0 - 1.0 / B) * lr * a * m.mu)))) - s0 * s0

    hi = min(lead, edge)
    return float(brentq(f, 0.0, hi, xtol=1e-15 * hi, rtol=1e-14, maxiter=500))
