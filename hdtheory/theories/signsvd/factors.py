"""SignSVD's per-mode constants: curvature mu_j(B) and noise weight nu_j(B) of the polar factor of a Gaussian
minibatch, exact at B = 1 and by deterministic equivalents for B > 1.

For X = [x_1 .. x_B] with x_b ~ N(0, diag(lambda)) (K's eigenbasis),

    mu_j(B) = E[((X X^T)^{1/2})_jj],     nu_j(B) = E[(Pi_X)_jj],   Pi_X the projector on span(X),  sum_j nu_j = min(B, n).

B = 1 (exact 1-D integrals, from 1/sqrt(b) = pi^{-1/2} int s^{-1/2} e^{-s b} ds and E x^2 e^{-c x^2} = lambda (1 + 2 lambda c)^{-3/2}):

    nu_j = int_0^inf lambda_j / (1 + 2 lambda_j s) P(s) ds,   mu_j = pi^{-1/2} int_0^inf s^{-1/2} lambda_j / (1 + 2 lambda_j s) P(s) ds,
    P(s) = prod_l (1 + 2 lambda_l s)^{-1/2}.

B > 1 (sample-covariance resolvent equivalent, K^(K^ + s)^{-1} ~ K (K + kappa(s))^{-1} with s = kappa (1 - df(kappa)/B),
df(kappa) = sum_l lambda_l / (lambda_l + kappa), and A^{1/2} = (2/pi) int_0^inf A (A + u^2)^{-1} du):

    mu_j = sqrt(B) (2/pi) int_0^inf lambda_j / (lambda_j + kappa(u^2)) du,     nu_j = lambda_j / (lambda_j + kappa_0),  df(kappa_0) = B
    (nu_j = 1 for B >= n). Derivation and measured accuracy: docs/derivations/signsvd.md.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from ...checks import check_batch

#: points of the kappa-grid of the deterministic-equivalent integral for mu (B > 1)
_U_POINTS = 3000
#: log-spaced points of the s-integrals at B = 1
_S_POINTS = 4000


def _product(lam: np.ndarray, s: np.ndarray) -> np.ndarray:
    """P(s) = prod_l (1 + 2 lambda_l s)^{-1/2} on a grid of s (evaluated in logs)."""
    return np.exp(-0.5 * np.log1p(2.0 * np.outer(s, lam)).sum(axis=1))


def _s_grid(lam: np.ndarray):
    """A log-spaced grid of s covering where P(s) lives, and its log-trapezoid weights (ds = s dlog s)."""
    scale = 1.0 / max(float(lam.sum()), 1e-300)
    logs = np.linspace(math.log(scale) - 30.0, math.log(scale) + 40.0, _S_POINTS)
    s = np.exp(logs)
    w = np.full(s.shape, logs[1] - logs[0]) * s
    w[0] *= 0.5
    w[-1] *= 0.5
    return s, w


def single_sample_factors(lam) -> tuple[np.ndarray, np.ndarray]:
    """(mu_j(1), nu_j(1)) by the exact 1-D integrals (mu_j = E[x_j^2/||x||], nu_j = E[x_j^2/||x||^2])."""
    lam = np.asarray(lam, dtype=np.float64)
    s, w = _s_grid(lam)
    P = _product(lam, s)
    core = lam[None, :] / (1.0 + 2.0 * np.outer(s, lam)) * P[:, None]  # (S, n)
    nu = w @ core
    mu = (w / np.sqrt(s)) @ core / math.sqrt(math.pi)
    # the pieces below the grid: int_0^s0 ds = s0 and pi^{-1/2} int_0^s0 s^{-1/2} ds = 2 sqrt(s0/pi), P ~ 1 there
    nu += s[0] * lam
    mu += 2.0 * math.sqrt(s[0] / math.pi) * lam
    return mu, nu


def _df(lam, kappa):
    return np.sum(lam[None, :] / (lam[None, :] + kappa[:, None]), axis=1)


def kappa0(lam, batch: int) -> float:
    """kappa_0(B): the root of df(kappa) = B (0 where B >= the number of modes with lambda > 0)."""
    lam = np.asarray(lam, dtype=np.float64)
    B = check_batch(batch)
    if B >= np.count_nonzero(lam > 0):
        return 0.0
    lo, hi = 0.0, float(lam.max()) * lam.shape[0]
    for _ in range(200):
        mid = 0.5 * (lo + hi) if lo > 0 else hi * 1e-3 if hi > 1e-300 else 0.0
        if _df(lam, np.array([mid]))[0] > B:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-15 * hi:
            break
    return 0.5 * (lo + hi)


def equivalent_factors(lam, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """(mu_j(B), nu_j(B)) by the deterministic equivalents (B > 1; within a few % of Monte Carlo for B >= 8)."""
    lam = np.asarray(lam, dtype=np.float64)
    B = check_batch(batch)
    k0 = kappa0(lam, B)
    n_pos = np.count_nonzero(lam > 0)
    nu = np.ones_like(lam) if B >= n_pos else lam / (lam + k0)
    # parametrize by kappa >= kappa_0 (no root finding): u(kappa) = sqrt(kappa (1 - df(kappa)/B)), with
    # kappa - kappa_0 log-spaced (u ~ sqrt(kappa - kappa_0) near the start), and the tail lambda_j / u_max above
    top = float(lam.max()) * 1e8 + float(lam.sum())
    scale = max(k0, float(lam[lam > 0].min()))
    kap = k0 + np.concatenate([[0.0], np.geomspace(scale * 1e-14, top, _U_POINTS)])
    df = _df(lam, kap)
    u = np.sqrt(np.maximum(kap * (1.0 - df / B), 0.0))
    g = lam[None, :] / (lam[None, :] + kap[:, None])  # (U, n)
    if k0 == 0.0:
        g[0] = (lam > 0).astype(np.float64)
    du = np.diff(u)
    integral = 0.5 * (du[:, None] * (g[1:] + g[:-1])).sum(axis=0) + lam / u[-1]
    mu = math.sqrt(B) * (2.0 / math.pi) * integral
    return mu, nu


@functools.lru_cache(maxsize=32)
def _factors_cached(lam_bytes: bytes, batch: int):
    lam = np.frombuffer(lam_bytes, dtype=np.float64)
    return single_sample_factors(lam) if batch == 1 else equivalent_factors(lam, batch)


def polar_factors(lam, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """(mu_j(B), nu_j(B)) for the spectrum ``lam``: exact at B = 1, deterministic equivalents for B > 1
    (cached per spectrum and batch)."""
    lam = np.ascontiguousarray(lam, dtype=np.float64)
    mu, nu = _factors_cached(lam.tobytes(), check_batch(batch))
    return mu.copy(), nu.copy()


@dataclass(frozen=True)
class BatchTransition:
    """SignSVD's batch transition on a spectrum: modes with lambda_j >> kappa_0 are square-root preconditioned
    (mu_j ~ sqrt(B lambda_j), nu_j ~ 1), modes with lambda_j << kappa_0 are SGD-like (mu_j ~ h_B lambda_j,
    nu_j ~ lambda_j / kappa_0). ``kappa0`` is 0 for B >= n (every mode above the transition), NaN at B = 1."""

    batch: int
    eigenvalues: np.ndarray
    kappa0: float
    mu: np.ndarray
    nu: np.ndarray
    sgd_gain: float  # h_B = mu_j / lambda_j at the smallest eigenvalue (its limit for lambda_j -> 0)

    @property
    def square_root(self) -> np.ndarray:
        """Per mode: True above the transition (lambda_j > kappa_0)."""
        return self.eigenvalues > (self.kappa0 if self.batch > 1 else math.inf)


def batch_transition(eigenvalues, batch: int) -> BatchTransition:
    """mu, nu, kappa_0 and the SGD-like gain h_B of SignSVD at batch B on the spectrum ``eigenvalues``."""
    lam = np.ascontiguousarray(eigenvalues, dtype=np.float64)
    B = check_batch(batch)
    mu, nu = polar_factors(lam, B)
    k0 = kappa0(lam, B) if B > 1 else math.nan
    h = float(mu[np.argmin(lam)] / lam.min()) if lam.min() > 0 else math.nan
    return BatchTransition(batch=B, eigenvalues=lam, kappa0=k0, mu=mu, nu=nu, sgd_gain=h)
