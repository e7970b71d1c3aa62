"""signSGD's per-mode reduction of the covariance K (diagonal or dense) and the dense-K batch-noise diagnostic.

docs/derivations/signsgd.md §4 (the per-mode map (G3)/(G4), after Xiao, Marshall, Agarwala, Paquette (2024),
arXiv:2411.12135: diagonal preconditioning and gradient-noise reshaping). With D = diag(K),
K~ = D^{-1/4} K D^{-1/4} = sum_j mu_j w_j w_j^T (eigh), K_sigma = (2/pi) arcsin(D^{-1/2} K D^{-1/2}) (entrywise, the
covariance of sign x), the per-mode constants are

    mu_j (the preconditioned spectrum),   n_j = w_j^T D^{1/4} K_sigma D^{1/4} w_j (noise weights),
    rho~_j(0) = (w_j^T D^{1/4} e_0)^2,    sum_i sqrt(K_ii) (the floor's scale).

Matrix problems (W in R^{m x n}): the constants are a row's and rho~(0) is summed over the rows of W_0 - W*.
Diagonal K: mu_i = n_i = sqrt(lambda_i), O(d). Dense K: an O(d^3) setup (arcsine O(d^2), one eigh, one GEMM), done
once per problem object (cached by identity) and checked against sum n = sum sqrt(K_ii), sum mu n = tr(K K_sigma),
n >= 0, sum mu rho~(0) = e_0^T K e_0. Coordinates with K_ii <= 1e-12 max K_ii never move and are dropped; equal mu_j
are merged (exact). The noise term is exact for B = 1 and for diagonal K; for dense K at B >= 2 it is the d -> inf
limit, whose first O(B/d) correction (G5) ``sign_second_moment`` evaluates as a diagnostic (§5; not used by the
solver).
"""
from __future__ import annotations

import math
import weakref
from dataclasses import dataclass

import numpy as np
from scipy import integrate

from ...checks import check_batch
from .drift import laplace_unit, law_key


@dataclass(frozen=True)
class SignModes:
    """Per-mode constants of (G3): ``mu`` (spectrum of D^{-1/4} K D^{-1/4}: the paper's *diagonal
    preconditioning*, sqrt(lambda) for diagonal K), ``n`` (noise weights w^T D^{1/4} K_sigma D^{1/4} w: the
    *gradient-noise reshaping*, risk- and B-independent, sqrt(lambda) for diagonal K; SGD's is 2R lambda/B),
    ``rho0`` (rho~(0)), and ``sqrt_diag_sum`` = sum_i sqrt(K_ii). Arrays are read-only (shared by every solve
    of the problem)."""

    mu: np.ndarray
    n: np.ndarray
    rho0: np.ndarray
    sqrt_diag_sum: float


#: problem object -> {merge: SignModes}; weak keys, so a cached setup lives as long as its problem
_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def modes(problem, merge: bool = True) -> SignModes:
    """(mu, n, rho~(0), sum sqrt(K_ii)) for ``problem`` (module docstring), computed once per problem object."""
    try:
        per_problem = _CACHE.setdefault(problem, {})
    except TypeError:  # a problem type that cannot be weakly referenced or hashed: no cache
        per_problem = {}
    out = per_problem.get(bool(merge))
    if out is None:
        out = per_problem[bool(merge)] = _modes(problem, merge)
    return out


def _modes(problem, merge: bool) -> SignModes:
    for name in ("init", "target", "eigenvalues", "basis"):
        if not hasattr(problem, name):
            raise ValueError(f"signSGD theory needs the problem's {name!r} (an hd problem: hd.Problem, "
                             f"hd.from_covariance, ...), got {type(problem).__name__}")
    e0 = np.atleast_2d(np.asarray(problem.init, dtype=np.float64) - np.asarray(problem.target, dtype=np.float64))
    if problem.basis is None:
        mu = np.sqrt(problem.eigenvalues)
        n = mu.copy()
        rho = mu * e0[0] * e0[0] if e0.shape[0] == 1 else mu * np.einsum("ij,ij->j", e0, e0)
        ssum = float(mu.sum())
    else:
        K = problem.covariance()
        Kd = np.diag(K).copy()
        keep = Kd > 1e-12 * max(float(Kd.max()), 0.0)
        K, e, Kd = K[np.ix_(keep, keep)], e0[:, keep], Kd[keep]
        q = Kd ** 0.25
        Kt = K / np.outer(q, q)
        mu, W = np.linalg.eigh(0.5 * (Kt + Kt.T))
        mu = np.clip(mu, 0.0, None)
        sd = np.sqrt(Kd)
        C = np.clip(K / np.outer(sd, sd), -1.0, 1.0)
        Ks = (2.0 / math.pi) * np.arcsin(C)
        np.fill_diagonal(Ks, 1.0)
        N = Ks * np.outer(q, q)
        n = np.einsum("ij,ij->j", W, N @ W)
        if e.shape[0] == 1:
            rho = (W.T @ (q * e[0])) ** 2
        else:
            proj = (q * e) @ W
            rho = np.einsum("ij,ij->j", proj, proj)
        ssum = float(sd.sum())
        scale = ssum
        assert abs(n.sum() - ssum) <= 1e-10 * scale, "setup invariant sum n = sum sqrt(K_ii) failed"
        trKKs = float(np.sum(K * Ks))
        assert abs(float(mu @ n) - trKKs) <= 1e-10 * max(abs(trKKs), 1e-300) + 1e-12 * scale * mu.max(), \
            "setup invariant sum mu n = tr(K K_sigma) failed"
        assert np.all(n >= -1e-10 * scale), "setup invariant n >= 0 failed"
        s0 = float(np.einsum("ij,ij->", e @ K, e))
        assert abs(float(mu @ rho) - s0) <= 1e-10 * max(s0, 1e-300) + 1e-13 * scale, \
            "setup invariant sum mu rho(0) = e0^T K e0 failed"
        n = np.clip(n, 0.0, None)
    if merge:
        uniq, inv = np.unique(mu, return_inverse=True)
        if uniq.size < mu.size:
            n2, r2 = np.zeros_like(uniq), np.zeros_like(uniq)
            np.add.at(n2, inv, n)
            np.add.at(r2, inv, rho)
            mu, n, rho = uniq, n2, r2
    arrays = [np.ascontiguousarray(a, dtype=np.float64) for a in (mu, n, rho)]
    for a in arrays:
        a.setflags(write=False)
    return SignModes(*arrays, ssum)


def batch_noise_tau(noise, s: float, batch: int) -> float:
    """tau_B(s) = E[t^2] - 1, t = <z, r> / (s ||r||), z ~ N(0, s^2 I_B), r = z - eps: the prefactor of the first
    correction (G5) to E[S S^T | e] = K_sigma for the sign of the mean (docs/derivations/signsgd.md §5):

        tau_B(s) = (B - 1)(B - 2)/2 int_0^1 (1 - v)^(B/2 - 2) L(v / (2 s^2))^B dv        (B >= 3),
        tau_2(s) = L(1/(2 s^2))^2,        tau_1 = 0 (B = 1 is exact).

    Gaussian: (B - 1) s^2 / (s^2 + sigma^2); sigma = 0: B - 1. Evaluated by ``quad`` in w = sqrt(1 - v)."""
    B = check_batch(batch)
    kind, df = law_key(noise)
    s = float(s)
    if B == 1 or s <= 0.0:
        return 0.0
    if noise.sigma == 0 or not math.isfinite(s):
        return B - 1.0
    x2 = (s / noise.sigma) ** 2
    if kind == "gaussian":
        return (B - 1.0) * x2 / (x2 + 1.0)

    def L(v):  # L_sigma(v / (2 s^2)) = L_1(v / (2 x^2)) for the law at unit sigma
        return float(laplace_unit(kind, df, np.array([v / (2.0 * x2)]))[0])

    if B == 2:
        return L(1.0) ** 2
    val, _ = integrate.quad(lambda w: 2.0 * w ** (B - 3) * L(1.0 - w * w) ** B, 0.0, 1.0, limit=200,
                            epsabs=0.0, epsrel=1e-10)
    return 0.5 * (B - 1) * (B - 2) * val


def sign_second_moment(problem, e, batch: int, correction: bool = True) -> np.ndarray:
    """E[S S^T | e] for S = sign of the averaged minibatch gradient at the error e = theta - theta*, in the
    coordinate basis (d x d): K_sigma = (2/pi) arcsin(C) (what (G3) uses; exact for B = 1), plus with
    ``correction`` the first batch term tau_B(s) Gamma(e) of (G5):

        Gamma_ij = (2/pi) (u_i u_j - C_ij (u_i^2 + u_j^2)/2) / sqrt(1 - C_ij^2)  (i != j),  Gamma_ii = 0,
        u = D^{-1/2} K e / s,  s^2 = e^T K e,  C = D^{-1/2} K D^{-1/2},

    accurate to O(u^4). A diagnostic for the size of what the per-mode map drops (relative size
    tau_B tr(K Gamma) / tr(K K_sigma) = O(B/d)); not used by the solver. Coordinates with K_ii = 0 have S_i = 0
    (zero rows). Raises ValueError if two coordinates are perfectly correlated (|C_ij| = 1, i != j: the
    expansion does not hold there)."""
    B = check_batch(batch)
    K = problem.covariance()
    e = np.asarray(e, dtype=np.float64)
    if e.shape != (problem.d,) or not np.all(np.isfinite(e)):
        raise ValueError(f"e must be a finite vector of length {problem.d}")
    Kd = np.diag(K).copy()
    keep = Kd > 1e-12 * max(float(Kd.max()), 0.0)
    out = np.zeros_like(K)
    Kk, ek = K[np.ix_(keep, keep)], e[keep]
    sd = np.sqrt(Kd[keep])
    C = np.clip(Kk / np.outer(sd, sd), -1.0, 1.0)
    np.fill_diagonal(C, 0.0)
    Ks = (2.0 / math.pi) * np.arcsin(C)
    np.fill_diagonal(Ks, 1.0)
    s2 = float(ek @ Kk @ ek)
    tau = batch_noise_tau(problem.noise, math.sqrt(max(s2, 0.0)), B) if correction else 0.0
    if tau != 0.0:
        if np.any(np.abs(C) >= 1.0 - 1e-12):
            raise ValueError("perfectly correlated coordinates (|C_ij| = 1): the batch correction does not apply")
        u = (Kk @ ek) / (math.sqrt(s2) * sd)
        G = (2.0 / math.pi) * (np.outer(u, u) - 0.5 * C * (u[:, None] ** 2 + u[None, :] ** 2)) / np.sqrt(1.0 - C * C)
        np.fill_diagonal(G, 0.0)
        Ks = Ks + tau * G
    out[np.ix_(keep, keep)] = Ks
    return out
