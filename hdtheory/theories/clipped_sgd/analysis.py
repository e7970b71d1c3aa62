"""Clipped-SGD analysis above the theory: when clipping helps (the clipping comparison criterion, CCC), the
max-CCC clip schedule, relative clip levels resolved into explicit sequences, and the stationary risk.

Source: N. Marshall, K. L. Xiao, A. Agarwala, E. Paquette, arXiv:2406.11733 (2024), who define the CCC
mu^2 E / nu: at matched drift (clipped SGD at lr / mu against SGD at lr) clipping injects less noise than SGD
iff CCC > 1, and with the max-CCC schedule and the compensated lr clipped SGD is never worse than SGD
(strictly better where max CCC > 1). For Gaussian and Rademacher noise max CCC <= 1 at every q (the sup 1 is
approached as tau -> inf): no clip level beats SGD; heavy-tailed Student-t noise can exceed 1
(docs/derivations/clipped_sgd.md §6).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from ...checks import check_batch, check_positive
from ...optimizers.clipped_sgd import ClippedSGD
from ...schedules import Sequence
from .factors import clip_factors, clip_factors_nb, law_spec
from .theory import ClippedSGDTheory, check_problem, clipped_exact_steps

_THEORY = ClippedSGDTheory()
_NO_REC = np.zeros(0)


def _check(problem, opt):
    check_problem(problem)
    if not isinstance(opt, ClippedSGD):
        raise ValueError(f"opt must be an hd.ClippedSGD, got {type(opt).__name__}")


def predicted_E(problem, opt, steps: int) -> np.ndarray:
    """The theory's twice-risk E_k before every step k = 0..steps-1 (exact recursion, O(modes) per step)."""
    _check(problem, opt)
    st = _THEORY.init(problem, opt)
    steps = int(steps)
    out = np.full(steps, np.inf)
    hp = opt.hyper_at(np.arange(steps))
    clipped_exact_steps(st.lam, st.mult, st.rho, hp[0], hp[1], st.relative, st.batch, st.trK, st.sigma2, math.inf,
                        *st.spec, out)
    return out


def resolve_clip(problem, opt, steps: int) -> ClippedSGD:
    """The same optimizer with its clip levels as an explicit per-step sequence c_k (k < steps), computed by the
    theory for a ``RelativeClip`` (c_k = kappa_k sqrt(tr K E_k / B), E_k the predicted twice-risk: a real run
    cannot observe E_k); the simulator runs this sequence. Non-relative optimizers are returned unchanged."""
    _check(problem, opt)
    if not opt.relative:
        return opt
    E = predicted_E(problem, opt, steps)
    c = opt.clip_at(np.arange(int(steps))) * np.sqrt(problem.trace * E / opt.batch)
    c = np.where(np.isfinite(c) & (c > 0), c, np.inf)
    return ClippedSGD(lr=opt.lr, clip=c, batch=opt.batch, schedule=opt.schedule)


def stationary_risk(problem, opt) -> float:
    """The risk at the fixed point of the recursion (``ClippedSGDTheory.stationary_risk``; also
    ``hd.stationary_risk``)."""
    _check(problem, opt)
    return _THEORY.stationary_risk(problem, opt)


def ccc(noise, batch: int, q, tau):
    """Clipping comparison criterion mu^2 E / nu at excess MSE ``q`` and normalized clip level ``tau``
    (broadcasting): > 1 iff, at matched drift (clipped at lr/mu vs SGD at lr), clipping injects less noise than
    SGD."""
    mu, nu, _ = clip_factors(noise, batch, q, tau)
    E = np.asarray(q, dtype=np.float64) + noise.variance
    return mu * mu * E / nu


_W_SCAN = np.linspace(-8.0, 8.0, 321)
#: a CCC gain below this is treated as none (the B > 1 tables are accurate to ~1e-6 near tau -> inf)
HELPS_TOL = 1e-6


def max_ccc(noise, batch: int, q: float):
    """(max over tau of CCC, argmax tau) at excess MSE q; (1.0, inf) when no finite tau beats SGD
    (always so for Gaussian and Rademacher noise; the sup 1 is approached as tau -> inf)."""
    batch = check_batch(batch)
    E = float(q) + noise.variance
    taus = np.sqrt(np.exp(_W_SCAN) * E)
    vals = ccc(noise, batch, np.full(taus.shape, float(q)), taus)
    i = int(np.argmax(vals))
    if not vals[i] > 1.0 + HELPS_TOL:
        return 1.0, math.inf
    if 0 < i < vals.size - 1:  # parabolic refinement in w
        y0, y1, y2 = vals[i - 1], vals[i], vals[i + 1]
        den = y0 - 2 * y1 + y2
        dw = 0.5 * (y0 - y2) / den if den < 0 else 0.0
        w = _W_SCAN[i] + dw * (_W_SCAN[1] - _W_SCAN[0])
        tau = math.sqrt(math.exp(w) * E)
        v = float(ccc(noise, batch, q, tau))
        if v > vals[i]:
            return v, tau
    return float(vals[i]), float(taus[i])


@dataclass(frozen=True)
class ClippingAdvice:
    """Whether some clip level beats SGD somewhere between the initial and the noise-floor excess MSE."""

    helps: bool
    max_ccc: float      # largest CCC found
    q: float            # excess MSE where it is attained
    tau: float          # normalized clip level there (inf if clipping never helps)
    clip: float         # the same level in gradient-norm units, c = tau sqrt(tr K / B)


def clipping_advice(problem, batch: int = 1, points: int = 25) -> ClippingAdvice:
    """Scan q over [1e-3 sigma^2, q0] (log-spaced) for max_tau CCC(q, tau): with the max-CCC schedule and the
    compensated lr clipped SGD is never worse than SGD, strictly better where max CCC > 1; if CCC <= 1
    everywhere no clip schedule beats SGD."""
    batch = check_batch(batch)
    s2 = problem.sigma2
    q0 = max(2.0 * problem.initial_risk - s2, 1e-3 * s2)
    if s2 == 0:
        return ClippingAdvice(False, 1.0, q0, math.inf, math.inf)
    best = (1.0, q0, math.inf)
    for q in np.geomspace(1e-3 * s2, max(q0, 2e-3 * s2), points):
        v, tau = max_ccc(problem.noise, batch, q)
        if v > best[0]:
            best = (v, float(q), tau)
    v, q, tau = best
    return ClippingAdvice(v > 1.0 + HELPS_TOL, v, q, tau, tau * math.sqrt(problem.trace / batch))


def max_ccc_schedule(problem, lr: float, batch: int, steps: int, compensate: bool = True,
                     max_lr_factor: float = 100.0) -> ClippedSGD:
    """The max-CCC schedule: at each step tau_k = argmax CCC(q_k, tau) (no clipping where max CCC <= 1; the
    argmax is tabulated over 60 log-spaced q and interpolated) and, with ``compensate``, lr_k = lr / mu_k
    (capped at ``max_lr_factor`` lr, with a warning), q_k from the theory run along. Returned as a ClippedSGD
    with explicit per-step sequences (clip and lr schedule), which both engines run as is."""
    check_problem(problem)
    lr = check_positive("lr", lr)
    batch = check_batch(batch)
    steps = int(steps)
    lam, s0, mult = problem.spectral_modes(merge=True)
    rho = np.array(s0, dtype=np.float64)
    s2, trK = problem.sigma2, problem.trace
    spec = law_spec(problem.noise, batch)
    clips, lrs = np.empty(steps), np.empty(steps)
    capped = False
    scale = math.sqrt(trK / batch)
    # argmax_tau CCC as a function of q: tabulated on a log grid (60 points) and interpolated in log q
    # (w* = log(tau*^2 / E) varies slowly with q and CCC is flat at its maximum)
    q0 = float(lam @ rho)
    qg = np.geomspace(1e-4 * max(s2, 1e-300), 10.0 * max(q0, s2, 1e-300), 60)
    wstar = np.full(qg.size, np.inf)
    if s2 > 0:
        for i, qi in enumerate(qg):
            v, tau = max_ccc(problem.noise, batch, qi)
            if v > 1.0 + HELPS_TOL:
                wstar[i] = math.log(tau * tau / (qi + s2))
    lq = np.log(qg)
    for k in range(steps):
        q = float(lam @ rho)
        x = min(max(math.log(max(q, 1e-300)), lq[0]), lq[-1])
        i = min(int(np.searchsorted(lq, x)), qg.size - 1)
        i0 = max(i - 1, 0)
        if np.isinf(wstar[i0]) or np.isinf(wstar[i]):
            w = wstar[i0] if abs(x - lq[i0]) <= abs(lq[i] - x) else wstar[i]
        else:
            t = 0.0 if i == i0 else (x - lq[i0]) / (lq[i] - lq[i0])
            w = wstar[i0] + t * (wstar[i] - wstar[i0])
        tau = math.sqrt(math.exp(w) * (q + s2)) if np.isfinite(w) else math.inf
        mu = clip_factors_nb(q, tau * tau, s2, batch, *spec)[0]
        lk = lr / mu if compensate else lr
        if lk > max_lr_factor * lr:
            lk, capped = max_lr_factor * lr, True
        clips[k], lrs[k] = tau * scale, lk / lr
        clipped_exact_steps(lam, mult, rho, np.array([lk]), np.array([clips[k]]), False, batch, trK, s2, math.inf,
                            *spec, _NO_REC)
    if capped:
        warnings.warn(f"max_ccc_schedule: the compensated lr lr/mu was capped at {max_lr_factor} lr", stacklevel=2)
    return ClippedSGD(lr=lr, clip=clips, batch=batch, schedule=Sequence(lrs))
