"""SignSVD's closed forms: floor, critical lr and the isotropic equivalence with SignSGD.

In the (C3) form the effective SGD step is lr / sqrt(E); the floor is where the noise-loop gain
lr S / sqrt(E) reaches 1, S = sum_j lambda_j nu_j / (2 mu_j) (normalized methods self-tune to the edge of stability):

    sqrt(E_*) = (lr S + sqrt(lr^2 S^2 + 4 m sigma^2)) / 2,      lr_crit = (E(0) - m sigma^2) / (S sqrt(E(0))),

the largest lr at which the risk still moves down from its start (isotropic: E_* = n lr^2/4, lr_crit = 2 sqrt(rho(0))).
Isotropic data (K = I): SignSVD and SignSGD have the same dynamics up to constants, with efficiencies
gamma_svd = E||X||_* / sqrt(n B) and gamma_sgn = c_B; at matched lr SignSGD needs f = (gamma_svd/gamma_sgn)^2 times
the steps (pi^2/4 at B = 1, pi/2 for 1 << B << n). Derivations: docs/derivations/signsvd.md.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ...checks import check_batch, check_int
from .factors import polar_factors


def _lr_and_gain(opt):
    gain = getattr(opt, "rank_one_gain", 1.0) if opt.batch == 1 else 1.0
    return opt.lr * gain


def noise_sum(eigenvalues, batch: int) -> float:
    """S = sum_j lambda_j nu_j / (2 mu_j), the noise-loop constant of the (C3) form."""
    lam = np.asarray(eigenvalues, dtype=np.float64)
    mu, nu = polar_factors(lam, batch)
    keep = mu > 0
    return float(np.sum(lam[keep] * nu[keep] / (2.0 * mu[keep])))


def floor(problem, opt) -> float:
    """The risk E_*/2 the run settles at (constant lr; Muon: its effective lr at B = 1)."""
    S = noise_sum(problem.eigenvalues, opt.batch)
    lr = _lr_and_gain(opt)
    msig2 = problem.noise_variance
    root = 0.5 * (lr * S + math.sqrt((lr * S) ** 2 + 4.0 * msig2))
    return 0.5 * root * root


def critical_lr(problem, opt) -> float:
    """lr_crit = (E(0) - m sigma^2) / (S sqrt(E(0))) (Muon at B = 1: divided by its gain)."""
    S = noise_sum(problem.eigenvalues, opt.batch)
    E0 = 2.0 * problem.initial_risk
    msig2 = problem.noise_variance
    if not E0 > msig2:
        raise ValueError("W_0 = W*: no lr improves the risk")
    gain = _lr_and_gain(opt) / opt.lr
    return (E0 - msig2) / (S * math.sqrt(E0)) / gain


def nuclear_norm_mean(n: int, batch: int, samples: int = 4000, seed: int = 0) -> float:
    """E||X||_* for X an n x B standard Gaussian matrix (B = 1: E chi_n exactly; else Monte Carlo)."""
    n, B = check_int("n", n), check_batch(batch)
    if min(n, B) == 1:  # ||X||_* = ||X||_F, a chi variable
        k = max(n, B)
        return math.sqrt(2.0) * math.exp(math.lgamma((k + 1) / 2) - math.lgamma(k / 2))
    rng = np.random.default_rng(seed)
    tot = 0.0
    for _ in range(samples // 100):
        X = rng.standard_normal((100, n, B))
        tot += np.linalg.svd(X, compute_uv=False).sum()
    return tot / (samples // 100 * 100)


@dataclass(frozen=True)
class IsotropicEquivalence:
    """SignSVD vs SignSGD on isotropic data: efficiencies, the lr of SignSGD that matches SignSVD's curve up to the
    time factor, and the time factor f (SignSGD at k f steps = SignSVD at k steps)."""

    gamma_svd: float
    gamma_sgn: float
    time_factor: float
    lr_signsgd: float


def isotropic_equivalence(n: int, m: int, batch: int, lr_signsvd: float) -> IsotropicEquivalence:
    """The constants of the isotropic equivalence: E_sgn(f k) = E_svd(k) at lr_sgn = lr_svd sqrt(B/(n m)) gamma_sgn /
    gamma_svd."""
    from ..signsgd import c_batch

    n, m, B = check_int("n", n), check_int("m", m), check_batch(batch)
    g_svd = nuclear_norm_mean(n, B) / math.sqrt(n * B)
    g_sgn = math.sqrt(2.0 / math.pi) * c_batch(B)
    return IsotropicEquivalence(gamma_svd=g_svd, gamma_sgn=g_sgn, time_factor=(g_svd / g_sgn) ** 2,
                                lr_signsgd=float(lr_signsvd) * math.sqrt(B / (n * m)) * g_sgn / g_svd)
