"""Clipped SGD on streaming Gaussian least squares: SGD's per-mode recursion with clipping reduction factors.

Update: g_k = (1/B) sum_b x_b (<x_b, theta_k> - y_b),  theta_{k+1} = theta_k - lr_k g_k min(1, c_k / ||g_k||).

Source: N. Marshall, K. L. Xiao, A. Agarwala, E. Paquette, "To Clip or not to Clip: the Dynamics of SGD with
Gradient Clipping in High-Dimensions", arXiv:2406.11733 (2024): reduction factors and the B = 1 ODE, which is the
lr lambda -> 0 limit of the recursion here (minibatch and curvature terms: docs/derivations/clipped_sgd.md §3).
With rho_j = E <u_j, theta - theta*>^2, q = sum_j lambda_j rho_j, E = q + sigma^2 = 2R and the normalized clip
level tau^2 = c^2 B / tr K (a ``RelativeClip(kappa)``: tau^2 = kappa^2 E),

    rho_j(k+1) = rho_j(k) [1 - 2 lr lambda_j mu_k + lr^2 lambda_j^2 A_k] + (lr^2 / B) lambda_j nu_k,

with (mu, nu = nu-hat E, A) evaluated at (q_k, tau_k) (``factors``). At c = inf the factors are SGD's
(1, E, 1 + 1/B) and this is SGD's recursion exactly. Equal eigenvalues are merged (forcing times the
multiplicity). Block form: am1 = lr lambda (-2 mu + lr lambda A), f = 0, h = (lr^2/B) nu-hat m lambda; the
factors depend on E (``SCALARS``), except without clipping and for a relative level with Gaussian residuals,
where they depend on tau^2/E = kappa^2 only (``FIXED``).

Validity: the model replaces ||x_b||^2 by tr K and drops the full-gradient part of ||g||^2, so it needs
tr K / lambda_max >> B and a large effective rank: the curve is ``outside_validity`` above
(B + 1) lambda_max / tr K = 0.6 (where the measured error passes ~3%).

Stability: a finite fixed clip level bounds every step (||theta_{k+1} - theta_k|| <= lr c), so nothing
diverges and the risk settles at a floor (``stationary_risk``). A relative level gives SGD's structure under
(1, 1 + 1/B, 1) -> (mu, A, nu-hat) with Gaussian factors at tau^2/E = kappa^2, the edge for every noise law.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass

import numba as nb
import numpy as np
from scipy.optimize import brentq

from ...jit import KERNEL
from ...stepping import integrate
from ...theory import FIXED, SCALARS, BlockForm, Theory, Threshold
from ..sgd import sgd_threshold
from .factors import (
    LAW_GAUSS,
    LAW_MIXTURE,
    Q_FLOOR,
    _gauss_factors,
    clip_factors_nb,
    clip_factors_scratch,
    factor_scratch,
    law_spec,
    with_factor_table,
)

_EMPTY = np.zeros(0)

_PROTOCOL = ("spectral_modes", "sigma2", "noise", "trace", "lambda_max", "initial_risk")


def check_problem(problem):
    """Raise a ValueError unless ``problem`` has what the clipped-SGD theory reads."""
    missing = [a for a in _PROTOCOL if not hasattr(problem, a)]
    if missing:
        raise ValueError(f"the clipped-SGD theory needs a problem with {', '.join(_PROTOCOL)} (a Gaussian "
                         f"least-squares problem such as hd.powerlaw(...)); {type(problem).__name__} lacks "
                         f"{', '.join(missing)}")


@nb.njit(**KERNEL)
def clipped_exact_steps(lam, mult, rho, lr_seq, cl_seq, relative, B, trK, sigma2, cap, law, m0, vext, wts, tab,
                        grid, E_rec):
    """Apply the recursion len(lr_seq) times in place on rho (clip level cl_seq[k] in gradient-norm units, or
    kappa_k when ``relative``); record E before each step in E_rec when it is long enough; stop early
    (returning the steps done) once E exceeds ``cap`` or is not finite."""
    d = lam.shape[0]
    E = sigma2
    for j in range(d):
        E += lam[j] * rho[j]
    rec = E_rec.shape[0] >= lr_seq.shape[0]
    ib = 1.0 / B
    scratch = factor_scratch(law, wts)
    for k in range(lr_seq.shape[0]):
        if rec:
            E_rec[k] = E
        lr = lr_seq[k]
        c = cl_seq[k]
        tau2 = c * c * E if relative else c * c * B / trK
        mu, nuh, A = clip_factors_scratch(E - sigma2, tau2, sigma2, B, law, m0, vext, wts, tab, grid, scratch)
        g = lr * lr * ib * nuh * E
        En = sigma2
        for j in range(d):
            el = lr * lam[j]
            r = rho[j] * (1.0 + el * (-2.0 * mu + el * A)) + g * mult[j] * lam[j]
            rho[j] = r
            En += lam[j] * r
        E = En
        if not (E <= cap):
            return k + 1
    return lr_seq.shape[0]


@nb.njit(**KERNEL)
def clipped_coefficients(hp, z, s, consts, am1, f, h):
    """The recursion as the block form s <- (1 + am1) s + f + h E at hp = (lr, clip level c, or kappa when
    relative) and z = (E,): am1 = lr lambda (-2 mu + lr lambda A), f = 0, h = (lr^2/B) nu-hat m lambda, the
    factors at q = E - sigma^2 and tau^2 = c^2 B / tr K (fixed level) or kappa^2 E (relative); regime 0."""
    lam, mult, sigma2, B, trK, relative, law, m0, vext, wts, tab, grid = consts
    lr = hp[0]
    c = hp[1]
    E = z[0]
    tau2 = c * c * E if relative else c * c * B / trK
    mu, nuh, A = clip_factors_nb(E - sigma2, tau2, sigma2, B, law, m0, vext, wts, tab, grid)
    g = lr * lr / B * nuh
    for j in range(lam.shape[0]):
        el = lr * lam[j]
        am1[j] = el * (-2.0 * mu + el * A)
        f[j] = 0.0
        h[j] = g * mult[j] * lam[j]
    return 0


@nb.njit(**KERNEL)
def _stationary_excess(logq, lam, mult, sigma2, B, lr, c, relative, trK, law, m0, vext, wts, tab, grid):
    """log(q' / q) for q = e^logq, q' = sum_j lambda_j rho_j* with rho_j* = lr nu(q) / (B (2 mu - lr lambda_j A))
    the recursion's fixed point at the factors of q (``ClippedSGDTheory.stationary_risk``); inf where some mode
    has no fixed point (2 mu - lr lambda_j A <= 0)."""
    q = math.exp(logq)
    E = q + sigma2
    tau2 = c * c * E if relative else c * c * B / trK
    mu, nuh, A = clip_factors_nb(q, tau2, sigma2, B, law, m0, vext, wts, tab, grid)
    acc = 0.0
    for j in range(lam.shape[0]):
        den = 2.0 * mu - lr * lam[j] * A
        if not den > 0.0:
            return math.inf
        acc += mult[j] * lam[j] / den
    return math.log(lr * nuh * E / B * acc) - logq


@nb.njit(**KERNEL)
def _integrate(consts, hp, s, W, c0, z, k, k_stop, k_ref, delta, span, grid, rec, i, cap, geo_tol, dmax,
               dependence, correctors, extrapolate, single, switching, carry):
    return integrate(clipped_coefficients, consts, hp, s, W, c0, z, k, k_stop, k_ref, delta, span, grid, rec, i,
                     cap, geo_tol, dmax, dependence, correctors, extrapolate, single, switching, carry)


@dataclass
class ClippedSGDState:
    """rho_j per merged mode (eigenvalue lam_j, multiplicity mult_j) and what the step map reads of the
    problem and the optimizer (``spec``: the noise law's factor arguments, ``factors.law_spec``)."""

    rho: np.ndarray
    lam: np.ndarray
    mult: np.ndarray
    sigma2: float
    batch: int
    trK: float
    relative: bool
    spec: tuple

    @property
    def consts(self) -> tuple:
        """The arguments of ``clipped_coefficients`` after hp, z, s."""
        return (self.lam, self.mult, float(self.sigma2), int(self.batch), float(self.trK), bool(self.relative),
                *self.spec)


#: largest (B + 1) lambda_max / tr K at which the curve is trusted (``ClippedSGDTheory.validity``)
VALIDITY_BOUND = 0.6


#: most segments (e-folds of q) of a factor table (``chebyshev``): beyond, the run's far end sums the mixture
TABLE_SEGMENTS = 48


class ClippedSGDTheory(Theory):
    def init(self, problem, opt) -> ClippedSGDState:
        check_problem(problem)
        lam, s0, mult = problem.spectral_modes(merge=True)
        lam = np.ascontiguousarray(lam, dtype=np.float64)
        mult = np.ascontiguousarray(mult, dtype=np.float64)
        rho = np.ascontiguousarray(s0, dtype=np.float64)
        trK = float(np.sum(lam * mult))
        spec = law_spec(problem.noise, opt.batch)
        if spec[0] == LAW_GAUSS or spec[0] == LAW_MIXTURE:
            spec = self._tabled(problem, opt, spec, float(lam @ rho), trK)
        return ClippedSGDState(rho=rho, lam=lam, mult=mult, sigma2=float(problem.sigma2), batch=int(opt.batch),
                               trK=trK, relative=bool(opt.relative), spec=spec)

    def _tabled(self, problem, opt, spec, q0, trK):
        """The spec with a factor table where the clip level is constant and finite (no clip schedule): over q
        from the initial excess to the stationary one at the peak lr, an e-fold beyond each (four below the
        initial excess where there is no stationary one); elsewhere, or at another level, the factors are
        evaluated directly."""
        base = opt.clip.kappa if opt.relative else opt.clip
        if opt.clip_schedule is not None or not math.isfinite(base):
            return spec
        s2 = float(problem.sigma2)
        if not (q0 > 0.0 or s2 > 0.0):
            return spec
        u0 = math.log(max(q0, Q_FLOOR * s2))
        # the stationary risk at the peak lr, as the driver asks for it (so the cache answers one of the two)
        at_peak = opt if opt.schedule is None else dataclasses.replace(opt, schedule=None).with_lr(
            opt.lr * opt.sched.peak())
        try:
            qs = 2.0 * self.stationary_risk(problem, at_peak) - s2
        except (ValueError, ArithmeticError):
            qs = math.nan
        u1 = math.log(qs) if (qs > 0.0 and math.isfinite(qs)) else u0 - 4.0
        hi = max(u0, u1) + 1.0
        lo = max(min(u0, u1) - 1.0, hi - TABLE_SEGMENTS)
        clip2 = base * base if opt.relative else base * base * opt.batch / trK
        return with_factor_table(spec, s2, opt.batch, clip2, opt.relative, lo, hi)

    def risk(self, st) -> float:
        return 0.5 * float(st.sigma2 + st.lam @ st.rho)

    def step(self, st, k0, hyper, cap) -> int:
        return int(clipped_exact_steps(st.lam, st.mult, st.rho, hyper[0], hyper[1], st.relative, st.batch, st.trK,
                                       st.sigma2, 2.0 * cap, *st.spec, _EMPTY))

    def validity(self, st, opt) -> str:
        """Outside where the dropped full-gradient part of ||g||^2, at most (B + 1) lambda_max / tr K of the kept
        one, exceeds VALIDITY_BOUND while the clip can act (measured: ~1% error at 0.29, ~6% at 1.2)."""
        clipping = st.relative or math.isfinite(opt.clip) or opt.clip_schedule is not None
        bound = (st.batch + 1) * float(st.lam.max()) / st.trK if st.trK > 0 else 0.0
        if clipping and bound > VALIDITY_BOUND:
            return (f"(B + 1) lambda_max / tr K = {bound:.3g} > {VALIDITY_BOUND:g}: the clip model replaces ||g||^2 by "
                    "tr K E / B and needs tr K / lambda_max >> B (measured ~6% off at 1.2, 20-60% at B >~ tr K / "
                    "lambda_max)")
        return ""

    def block_form(self, st, opt) -> BlockForm:
        # the factors depend on E except where they are SGD's (no clipping at any step) or depend on tau^2/E only
        # with Gaussian residuals (a relative level and Gaussian noise or sigma = 0: tau^2/E = kappa^2)
        unclipped = not st.relative and math.isinf(opt.clip) and opt.clip_schedule is None
        fixed = unclipped or (st.relative and st.spec[0] == LAW_GAUSS)
        return BlockForm(run=_integrate, consts=st.consts, s=st.rho, W=np.ascontiguousarray(st.lam[None, :]),
                         c0=np.array([st.sigma2]), dependence=FIXED if fixed else SCALARS)

    def threshold(self, problem, opt) -> Threshold:
        """inf for a finite fixed clip level; SGD's threshold where the level is inf at some step; for a
        ``RelativeClip`` the edge with Gaussian factors at kappa * max(clip_schedule) (the largest kappa
        binds: mu / nu-hat decreases with kappa)."""
        lam, _, mult = problem.spectral_modes(merge=True)
        peak = opt.sched.peak()
        if peak <= 0:
            return Threshold(math.inf, "the lr schedule is zero at every step")
        cpeak = opt.clip_sched.peak()
        if opt.relative:
            kappa = opt.clip.kappa * cpeak
            if math.isinf(kappa):
                return Threshold(sgd_threshold(lam, mult, opt.batch) / peak, "")
            mu, nuh, A = _gauss_factors(opt.batch, opt.batch * kappa * kappa)
            lr = sgd_threshold(lam, mult, opt.batch, mu=mu, A=A, nuhat=nuh) / peak
            reason = "" if math.isfinite(lr) else (
                f"at relative clip level kappa = {kappa:g} the step map has no lambda_max edge (A <= 0) and its "
                "noise gain stays below 1 at every lr: no divergence")
            return Threshold(lr, reason)
        if math.isinf(opt.clip * cpeak):
            return Threshold(sgd_threshold(lam, mult, opt.batch) / peak, "")
        return Threshold(math.inf, "a finite fixed clip level bounds every step: no divergence")

    def lr_scale(self, problem, opt) -> float:
        """The top of a theory-optimal lr search: the threshold where it is finite; for a finite fixed clip level
        (no divergence) twice the no-progress lr, the constant lr whose stationary risk is the initial risk
        (above it the run ends worse than it started), over the lr schedule's peak; without label noise (no
        floor) SGD's threshold, past which the risk no longer tends to 0."""
        top = self.threshold(problem, opt).lr
        peak = opt.sched.peak()
        if math.isfinite(top) or opt.relative or not peak > 0:
            return top
        lam, _, mult = problem.spectral_modes(merge=True)
        if problem.sigma2 == 0:
            return sgd_threshold(lam, mult, opt.batch) / peak
        R0 = float(problem.initial_risk)
        base = dataclasses.replace(opt, schedule=None)
        if not R0 > self.stationary_risk(problem, base.with_lr(1e-300)):
            raise ValueError("the initial risk is at the noise floor: no lr improves it")

        def excess(log_lr):
            return math.log(self.stationary_risk(problem, base.with_lr(math.exp(log_lr))) / R0)

        lo = hi = math.log(sgd_threshold(lam, mult, opt.batch))
        while excess(lo) >= 0:
            lo -= math.log(16.0)
        while excess(hi) <= 0:
            hi += math.log(16.0)
        return 2.0 * math.exp(brentq(excess, lo, hi, xtol=1e-8)) / peak

    def stationary_risk(self, problem, opt) -> float:
        """Risk at the fixed point of the recursion for the base lr and the clip level at step 0:
        rho_j* = lr nu(q*) / (B (2 mu(q*) - lr lambda_j A(q*))), q* = sum_j lambda_j rho_j*, a scalar root in
        log q. For a fixed c it exists at every lr (the floor grows like lr^2 c^2); for SGD or a relative level
        it is inf at or above the threshold. Returns R* = (sigma^2 + q*)/2."""
        return _stationary_risk(problem, opt)


@functools.lru_cache(maxsize=64)
def _stationary_risk(problem, opt) -> float:
    """``ClippedSGDTheory.stationary_risk``, cached per (problem object, optimizer): every solve at a fixed clip
    level asks for it twice (the divergence reference and the factor table's range), and an lr sweep re-solves one
    problem many times."""
    check_problem(problem)
    lam, _, mult = problem.spectral_modes(merge=True)
    s2, B, lr = problem.sigma2, opt.batch, opt.lr
    spec = law_spec(problem.noise, B)
    trK = problem.trace
    cl = float(opt.clip_at(0))

    lam = np.ascontiguousarray(lam, dtype=np.float64)
    mult = np.ascontiguousarray(mult, dtype=np.float64)

    def resid(logq):
        return _stationary_excess(logq, lam, mult, s2, B, lr, cl, opt.relative, trK, *spec)

    lo = math.log(1e-300 + 1e-14 * max(s2, 1e-300))
    hi = math.log(1e14 * max(s2, 2.0 * problem.initial_risk, 1.0))
    if s2 == 0:
        return 0.0 if not (resid(hi) > 0) else math.inf
    if resid(hi) > 0:
        return math.inf
    if resid(lo) < 0:
        return 0.5 * s2
    return 0.5 * (s2 + math.exp(brentq(resid, lo, hi, xtol=1e-13)))
