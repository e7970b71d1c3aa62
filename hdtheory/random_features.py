"""Power-law random features (PLRF) as streaming Gaussian least squares (Paquette, Paquette, Xiao, Pennington 2024,
"4+3 Phases of Compute-Optimal Neural Scaling Laws", arXiv:2405.15074).

Model: hidden x ~ N(0, D) in R^v, D = diag(j^-2 alpha); target b_j = j^-beta; label <x, b> (+ label noise); features
W^T x with W (v x d) i.i.d. N(0, 1/d); weights theta in R^d. Given W this *is* Gaussian least squares on the features:

    K = W^T D W,   theta* = K^-1 W^T D b,   P* = ||D^(1/2) (W theta* - b)||^2,

and the residual <x, b> - <W^T x, theta*> is Gaussian, independent of the features, with variance P*: it joins the
label noise (sigma^2 = P* + the given noise's variance). Conventions: the paper's loss is the MSE, our risk is half of
it (R = MSE / 2, so P* adds P*/2 to the risk); its SGD sums the minibatch gradient with rate gamma, ours averages it
with lr = gamma B.

* ``plrf(d, alpha, beta, seed=s)``: one draw of W, reduced exactly (SVD of D^(1/2) W): exact for that W at every d.
* ``plrf(d, alpha, beta)``: no sampling: the deterministic equivalent of the spectrum of K and of the forcing weights
  lambda rho(0), from m(z) solving 1 = m + (1/d) sum_j j^-2a m / (j^-2a m - z), discretized into d modes at the
  eigenvalue quantiles, with the limit level F0 = P* from the tau equation. Valid as d grows with v / d fixed (> 1);
  measured against draws of W in docs/derivations/plrf.md.

v defaults to 10 d (needed for 2 alpha < 1, where tr D grows with v; for 2 alpha > 1 only the tail beyond v is cut).
Derivations, discretization and accuracy: docs/derivations/plrf.md.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

from .noise import Gaussian, NoiseLaw
from .problems import Problem, _check_d, _finite

#: default hidden dimension v = V_RATIO d
V_RATIO = 10
#: hidden modes summed exactly in the deterministic equivalent (at least 12 alpha / EPS, where a resonance of the sums
#: spans >= 6 consecutive j); beyond, a Gauss-Legendre quadrature in log j
EXACT_MODES = 500
#: default relative imaginary part eps of z = x (1 + i eps) in the deterministic equivalent (the log grid of x has
#: step eps / 2); the discretization error is first order in eps (docs/derivations/plrf.md)
EPS = 0.01


def default_v(d: int) -> int:
    """v = 10 d (the authors' setting: 2 alpha < 1 needs v proportional to d)."""
    return V_RATIO * int(d)


def _check_args(d, alpha, beta, v):
    d = _check_d(d)
    alpha, beta = _finite("alpha", alpha), _finite("beta", beta)
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0 (a decaying hidden spectrum j^-2alpha), got {alpha!r}")
    if 2 * alpha + 2 * beta <= 1:
        raise ValueError(f"PLRF(alpha={alpha:g}, beta={beta:g}) is inadmissible: 2 alpha + 2 beta = "
                         f"{2 * alpha + 2 * beta:g} <= 1, so the initial loss sum_j j^-(2 alpha + 2 beta) grows "
                         "without bound with v; take 2 alpha + 2 beta > 1")
    v = default_v(d) if v is None else _check_d(v)
    return d, alpha, beta, v


def _noise_law(p_star: float, noise: NoiseLaw | None) -> Gaussian:
    """The label noise of the reduced problem: the Gaussian residual (variance P*) plus the given law."""
    if noise is None:
        return Gaussian(math.sqrt(p_star))
    if not isinstance(noise, NoiseLaw):
        raise ValueError(f"noise must be a NoiseLaw (hd.Gaussian, ...), got {noise!r}")  # noqa: TRY004
    if noise.variance > 0 and not isinstance(noise, Gaussian):
        raise ValueError(f"noise {noise!r}: the PLRF residual is Gaussian with variance P* = {p_star:.4g}; its sum with "
                         f"a {type(noise).__name__} law is not a law the project has (only Gaussian + Gaussian is "
                         "Gaussian); pass hd.Gaussian(sigma) or no noise")
    return Gaussian(math.sqrt(p_star + noise.variance))


def hidden(v: int, alpha: float, beta: float):
    """(j^-2alpha, j^-beta), j = 1..v: the hidden spectrum diag(D) and the target b."""
    j = np.arange(1, v + 1, dtype=np.float64)
    return j ** (-2.0 * alpha), j ** (-float(beta))


def sample_features(d: int, v: int, seed) -> np.ndarray:
    """W (v x d), i.i.d. N(0, 1/d), from ``numpy.random.default_rng(seed)``."""
    return np.random.default_rng(seed).standard_normal((v, d)) / math.sqrt(d)


def plrf(d: int, alpha: float, beta: float, v: int | None = None, seed=None, noise: NoiseLaw | None = None, *,
         eps: float = EPS) -> Problem:
    """PLRF problem with d features (see the module docstring).

    ``seed`` given: one draw of W and its exact reduction (dense K, basis = its eigenvectors). ``seed=None``: the
    deterministic equivalent (diagonal K with d modes). Either way theta_0 = 0 and the noise is
    Gaussian(sqrt(P* + sigma^2)) (P* in MSE units, so the risk floor is (P* + sigma^2) / 2); a non-Gaussian ``noise``
    with sigma > 0 is a ValueError. ``info`` records alpha, beta, d, v, seed, P* and tr D. ``eps``: the deterministic
    equivalent's resolution (relative smoothing of the spectrum; its error is first order in eps).
    """
    d, alpha, beta, v = _check_args(d, alpha, beta, v)
    delta, b = hidden(v, alpha, beta)
    info = {"constructor": "plrf", "d": d, "v": v, "alpha": alpha, "beta": beta,
            "trace_D": float(delta.sum()), "noise_sigma2": 0.0 if noise is None else float(noise.variance)}
    if seed is not None:
        lam, basis, target, p_star = _reduce(sample_features(d, v, seed), delta, b)
        info.update(seed=seed if isinstance(seed, (int, np.integer)) else str(seed), sampled=True, P_star=p_star)
        return Problem(eigenvalues=lam, target=target, basis=basis, noise=_noise_law(p_star, noise), info=info)
    if v <= d:
        raise ValueError(f"the deterministic equivalent needs v > d (got v = {v}, d = {d}): for v <= d the residual "
                         "vanishes and the model is not a random-features model; sample W with seed=... instead")
    de = deterministic_equivalent(d, alpha, beta, v, eps=eps)
    info.update(seed=None, sampled=False, P_star=de.p_star, tau=de.tau)
    return Problem(eigenvalues=de.eigenvalues, target=np.sqrt(de.forcing / de.eigenvalues),
                   noise=_noise_law(de.p_star, noise), info=info)


def _reduce(W, delta, b):
    """Exact reduction of one draw: A = D^(1/2) W = Q S U^T, K = U S^2 U^T, theta* = U S^-1 Q^T c with c = D^(1/2) b,
    P* = ||c - Q Q^T c||^2 (the residual computed directly, not as a difference of norms)."""
    v, d = W.shape
    A = np.sqrt(delta)[:, None] * W
    c = np.sqrt(delta) * b
    Q, S, Ut = np.linalg.svd(A, full_matrices=v < d)
    r = min(v, d)
    Q, S = Q[:, :r], S[:r]
    coef = Q.T @ c
    resid = c - Q @ coef
    p_star = float(resid @ resid)
    keep = S > S[0] * 1e-15 * max(v, d)
    w = np.zeros(d)
    w[:r][keep] = coef[keep] / S[keep]
    lam = np.zeros(d)
    lam[:r] = S * S
    basis = Ut.T
    return lam, basis, basis @ w, p_star


# --- deterministic equivalent ------------------------------------------------------------------------------------

def _atoms(v: int, alpha: float, beta: float, eps: float = EPS):
    """The hidden modes as weighted atoms (delta_n, omega_n, c2_n): the first J one by one, the rest by a
    Gauss-Legendre quadrature in log j of the midpoint-rule integral int_{J+1/2}^{v+1/2} (nodes eps / (8 alpha) apart in
    log j, finer than the narrowest resonance of the sums at Im z = eps x)."""
    J = min(v, max(EXACT_MODES, math.ceil(12.0 * alpha / eps)))
    j = np.arange(1, J + 1, dtype=np.float64)
    t, w = [j], [np.ones(J)]
    if v > J:
        lo, hi = math.log(J + 0.5), math.log(v + 0.5)
        panels = max(1, math.ceil((hi - lo) * max(alpha, 0.25) / eps))
        xg, wg = np.polynomial.legendre.leggauss(8)
        edges = np.linspace(lo, hi, panels + 1)
        mid, half = 0.5 * (edges[1:] + edges[:-1]), 0.5 * np.diff(edges)
        u = (mid[:, None] + half[:, None] * xg[None, :]).ravel()
        wu = (half[:, None] * wg[None, :]).ravel()
        t.append(np.exp(u))
        w.append(wu * np.exp(u))
    t, w = np.concatenate(t), np.concatenate(w)
    return t ** (-2.0 * alpha), w, t ** (-2.0 * alpha - 2.0 * beta)


def _tau(d: int, delta, omega) -> float:
    """tau > 0 with sum_n omega_n tau delta_n / (1 + tau delta_n) = d (exists iff sum omega > d, i.e. v > d)."""
    if not float(np.sum(omega)) > d:
        raise ValueError(f"the deterministic equivalent needs more hidden features than parameters: v = "
                         f"{float(np.sum(omega)):g} <= d = {d}")
    f = lambda lt: float(np.sum(omega * delta / (delta + math.exp(-lt)))) - d
    lo, hi = -5.0, 5.0
    while f(lo) > 0:
        lo -= 5.0
    while f(hi) < 0:
        hi += 5.0
    return math.exp(brentq(f, lo, hi, xtol=1e-14, rtol=1e-14, maxiter=500))


def limit_level(d: int, alpha: float, beta: float, v: int | None = None) -> float:
    """Deterministic-equivalent P* (MSE units): F0 = sum_j j^-(2a+2b) / (1 + tau j^-2a) with
    (1/d) sum_j tau j^-2a / (1 + tau j^-2a) = 1 (needs v > d). Scales as d^(-2 alpha + max(0, 1 - 2 beta))."""
    d, alpha, beta, v = _check_args(d, alpha, beta, v)
    if v <= d:
        raise ValueError(f"the limit level needs v > d (got v = {v}, d = {d})")
    delta, omega, c2 = _atoms(v, alpha, beta)
    tau = _tau(d, delta, omega)
    return float(np.sum(omega * c2 / (1.0 + tau * delta)))


@dataclass(frozen=True)
class DeterministicEquivalent:
    """The discretized deterministic equivalent of PLRF(d, alpha, beta) with v hidden features."""

    eigenvalues: np.ndarray   # (d,) descending: the modes of K
    forcing: np.ndarray       # (d,) lambda_i rho_i(0) per mode (MSE units)
    p_star: float             # the limit level F0 = P*
    tau: float                # the root of (1/d) sum_j tau / (j^2alpha + tau) = 1
    x: np.ndarray             # the real grid of the resolvent sweep
    count: np.ndarray         # N(x): eigenvalues of K below x
    forcing_cdf: np.ndarray   # forcing mass below x
    d: int
    v: int
    alpha: float
    beta: float


def deterministic_equivalent(d: int, alpha: float, beta: float, v: int | None = None, *,
                             eps: float = EPS) -> DeterministicEquivalent:
    """Deterministic-equivalent spectrum of K = W^T D W and forcing weights, discretized into d modes.

    Mode i takes the bin N in [i-1, i] of the eigenvalue count N(x) (from the bottom; ``random_features_resolvent.resolvent_sweep``), its
    eigenvalue the mean of x over the bin, its forcing weight the mass of the forcing density there (at
    z = x (1 + i eps), on a log grid of step eps / 2). Sums are
    renormalized to the exact totals (tr K -> tr D, forcing + P* -> sum_j j^-(2a+2b)).
    """
    d, alpha, beta, v = _check_args(d, alpha, beta, v)
    if v <= d:
        raise ValueError(f"the deterministic equivalent needs v > d hidden features, got v = {v}, d = {d}")
    eps = float(eps)
    if not 1e-4 <= eps <= 0.05:
        raise ValueError(f"eps must be in [1e-4, 0.05], got {eps!r}")
    delta, omega, c2 = _atoms(v, alpha, beta, eps)
    tau = _tau(d, delta, omega)
    p_star = float(np.sum(omega * c2 / (1.0 + tau * delta)))
    trace = float(np.sum(omega * delta))
    x_hi = 3.0 * (1.0 + trace / d) * (1.0 + 3.0 / math.sqrt(d)) ** 2
    x_lo = 1e-3 / tau
    n = math.ceil(math.log(x_hi / x_lo) / (0.5 * eps)) + 1
    xs = np.exp(np.linspace(math.log(x_hi), math.log(x_lo), n))
    from .random_features_resolvent import resolvent_sweep

    count, dens_f, ok = resolvent_sweep(xs, eps, delta, omega, c2, float(d), p_star)
    if not ok.all():
        raise ArithmeticError(f"PLRF deterministic equivalent: the equation for m(z) did not converge at "
                              f"{int((~ok).sum())} of {n} grid points (d = {d}, alpha = {alpha}, beta = {beta}, v = {v})")
    # ascending order; N made monotone and mapped affinely onto [0, d] (the smoothing leaves O(eps) at the ends).
    # Per bin N in [i-1, i]: eigenvalue int x dN from the pointwise count (the smoothed density (d/pi) Im s is not
    # used: its Lorentzian tails at Im z = eps x add up over the decades of the grid), forcing weight int q dx
    # (its tails carry O(eps) of the weights, whose bulk sits at the top)
    xs, count, dens_f = xs[::-1], np.maximum.accumulate(count[::-1]), np.maximum(dens_f[::-1], 0.0)
    count = (count - count[0]) * (d / (count[-1] - count[0]))
    c_x = np.concatenate([[0.0], np.cumsum(np.sqrt(xs[1:] * xs[:-1]) * np.diff(count))])
    c_f = np.concatenate([[0.0], np.cumsum(0.5 * (dens_f[1:] * xs[1:] + dens_f[:-1] * xs[:-1]) * np.diff(np.log(xs)))])
    key = count + np.arange(count.size) * (1e-12 * d / count.size)
    edges = np.arange(d + 1, dtype=np.float64)
    lam = np.diff(np.interp(edges, key, c_x))
    forcing = np.diff(np.interp(edges, key, c_f))
    lam *= trace / lam.sum()
    forcing *= (float(np.sum(omega * c2)) - p_star) / forcing.sum()
    lam, forcing = lam[::-1].copy(), forcing[::-1].copy()
    if np.any(lam <= 0) or np.any(forcing < 0):
        raise ArithmeticError("PLRF deterministic equivalent: a non-positive eigenvalue or negative forcing weight")
    return DeterministicEquivalent(eigenvalues=lam, forcing=forcing, p_star=p_star, tau=tau, x=xs, count=count,
                                   forcing_cdf=c_f, d=d, v=v, alpha=alpha, beta=beta)
