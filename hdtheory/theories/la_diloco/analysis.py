"""LA-DiLoCo analysis: signal and noise against SGD, the extra noise of workers, the mean rate on the effective
spectrum, the stationary risk (docs/derivations/la_diloco.md §3-§4, after A. Agarwala, arXiv:2603.26954, 2026).

All are closed forms or small linear solves on the (D6) quantities (``stability.round_operators``) at one lr.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .stability import inner_responses, positive_modes, round_operators


def effective_spectrum(lam, opt):
    """u(lambda) = 1 - q_H(eta lambda): the effective eigenvalue the outer optimizer sees (§4);
    ~ H eta lambda for slow modes, -> 1 for saturated ones (the fold of the inner-stable range)."""
    lam = np.asarray(lam, dtype=np.float64)
    return 1.0 - inner_responses(lam, np.ones_like(lam), opt.lr, opt)[2]


def mean_rate(lam, opt):
    """Deterministic per-inner-step contraction of the mean of each mode (§4): |z_max|^(1/H), z the
    roots of the outer recurrence in the effective eigenvalue u: plain z = 1 - alpha u; heavy ball
    z^2 - (1 + beta - alpha u) z + beta = 0; Nesterov z^2 - (1+beta)(1 - alpha u) z + beta (1 - alpha u) = 0
    (characteristic polynomials of the (e, v) maps of §1 with Delta = u e, re-derived here)."""
    u = effective_spectrum(lam, opt)
    al, be, H = opt.outer_lr, opt.outer_momentum, opt.inner_steps
    if be == 0.0:
        z = np.abs(1.0 - al * u)
    else:
        tr = (1.0 + be) * (1.0 - al * u) if opt.nesterov else 1.0 + be - al * u
        det = be * (1.0 - al * u) if opt.nesterov else np.full_like(u, be)
        disc = np.sqrt((tr * tr - 4.0 * det).astype(complex))
        z = np.maximum(np.abs((tr + disc) / 2), np.abs((tr - disc) / 2))
    return z ** (1.0 / H)


@dataclass
class SignalNoise:
    """Per-mode signal (mean contraction) and noise (stationary variance per unit driving twice-risk) of an
    LA-DiLoCo optimizer and of the SGD it is compared with (``signal_noise``)."""

    lam: np.ndarray
    u: np.ndarray           # effective eigenvalue 1 - q_H(eta lambda)
    rate: np.ndarray        # per-inner-step mean contraction |z_max|^(1/H)
    noise: np.ndarray       # rho_j^inf / E with the worker risks frozen at E (exact for that frozen problem)
    noise_approx: np.ndarray  # the closed form of §4 (1/B corrections dropped; beta = mu = 0 only, else nan)
    sgd_lr: float           # the comparator: SGD at eta_eff = alpha eta/((1-beta)(1-mu)), batch M B
    sgd_batch: int
    sgd_rate: np.ndarray    # |1 - eta_eff lambda|
    sgd_noise: np.ndarray   # eta_eff / (MB (2 - (1 + 1/(MB)) eta_eff lambda))


def signal_noise(lam, opt) -> SignalNoise:
    """The signal/noise trade-off of LA(-DiLoCo) vs SGD (§4). Signal: the per-inner-step
    contraction of each mode's mean (``mean_rate``). Noise: with every worker risk frozen at E, the stationary
    per-mode second moment is rho_j^inf = E (chi_j / M) sum_m i_j^(m) (the (D6) quantities); for beta = mu = 0
    and the 1/B corrections dropped this is the closed form
    alpha eta (1 + p^H) / (M B (2 - eta lambda)(2 - alpha u)) (re-derived here: 1 - p^(2H) = u (1 + p^H)).
    The SGD comparator has the same slow-mode step eta_eff and the same samples per inner step (batch MB).
    Slow modes coincide with SGD; saturated modes (H eta lambda >> 1) contract by |1 - alpha| per round and
    get noise alpha eta/(MB (2 - eta lambda)(2 - alpha)), less than SGD's for alpha < 1."""
    lam = np.asarray(lam, dtype=np.float64)
    ro = round_operators(lam, np.ones_like(lam), opt.lr, opt)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        noise = ro.chi / opt.workers * ro.i.sum(axis=0)
        if opt.outer_momentum == 0.0 and opt.inner_momentum == 0.0:
            x, u = opt.lr * lam, 1.0 - ro.q
            approx = (opt.outer_lr * opt.lr * (1.0 + (1.0 - x) ** opt.inner_steps)
                      / (opt.workers * opt.batch * (2.0 - x) * (2.0 - opt.outer_lr * u)))
        else:
            approx = np.full_like(lam, np.nan)
        MB = opt.workers * opt.batch
        le = opt.eta_eff
        sgd_noise = le / (MB * (2.0 - (1.0 + 1.0 / MB) * le * lam))
    return SignalNoise(lam=lam, u=1.0 - ro.q, rate=mean_rate(lam, opt), noise=noise, noise_approx=approx,
                       sgd_lr=le, sgd_batch=MB, sgd_rate=np.abs(1.0 - le * lam), sgd_noise=sgd_noise)


def stationary_risk(problem, opt) -> float:
    """Long-run risk 1/2 E_inf of a stable run (§3): E^vec = (I - Kbar)^{-1} sigma^2 1 (the H worker
    risks of a round), E_inf = E^vec_0. inf if the run is unstable."""
    lam, _, mult = positive_modes(problem)
    ro = round_operators(lam, mult, opt.lr, opt)
    if not ro.stable:
        return math.inf
    H = opt.inner_steps
    Ev = np.linalg.solve(np.eye(H) - ro.kernel, np.full(H, problem.sigma2))
    return 0.5 * float(Ev[0])


@dataclass(frozen=True)
class WorkerNoise:
    """Excess stationary risk of M workers x batch B vs 1 worker x batch MB (same eta, alpha, H, momenta)."""

    excess_workers: float   # R_inf - sigma^2/2 for (M, B)
    excess_pooled: float    # the same for (1, MB)
    ratio: float            # >= 1, = 1 at H = 1 (§4)
    saturated_ratio: float  # the H -> infinity limit of the ratio (beta = mu = 0), from SGD's ||K||


def worker_noise(problem, opt) -> WorkerNoise:
    """The extra noise of M > 1 workers (§4) at equal samples per inner step: M workers
    at batch B feed each worker's own batch-B noise into its later inner steps before averaging, so the slow
    weights carry more noise than one worker at batch MB (equality iff H = 1). The saturated-limit ratio is
    ||K(eta,B)|| (1 - ||K(eta,MB)||) / (M ||K(eta,MB)|| (1 - ||K(eta,B)||)). Mitigation (§4): at fixed
    eta_eff = alpha eta, raise alpha and lower eta, or shorten H; call this function along such a line."""
    from dataclasses import replace

    from ..sgd import kernel_norm

    half = 0.5 * problem.sigma2
    ew = stationary_risk(problem, opt) - half
    ep = stationary_risk(problem, replace(opt, workers=1, batch=opt.workers * opt.batch)) - half
    lam, _, mult = positive_modes(problem)
    kb = kernel_norm(lam, mult, opt.lr, opt.batch)
    kmb = kernel_norm(lam, mult, opt.lr, opt.workers * opt.batch)
    sat = kb * (1.0 - kmb) / (opt.workers * kmb * (1.0 - kb)) if kb < 1 and kmb > 0 else math.nan
    return WorkerNoise(ew, ep, ew / ep if ep > 0 else math.nan, sat)

