"""SGD on streaming Gaussian least squares: the exact per-mode second-moment recursion.

Update: theta_{k+1} = theta_k - lr_k (1/B) sum_b x_b (<x_b, theta_k> - y_b), a fresh batch every step. With
rho_j(k) = E <u_j, theta_k - theta*>^2 on the eigenvectors of K and E = 2 R = sigma^2 + sum_j lambda_j rho_j,

    rho_j(k+1) = (1 - 2 lr_k lambda_j + (1 + 1/B) lr_k^2 lambda_j^2) rho_j(k) + (lr_k^2 / B) lambda_j E(k)

(Isserlis' theorem on the Gaussian fourth moment; the discrete-time form of the homogenized-SGD risk equations of
Paquette, Paquette, Adlam, Pennington 2022, arXiv:2205.07069, and of Paquette, Paquette, Xiao, Pennington 2024,
arXiv:2405.15074, in our averaged-batch, per-step units). Exact in expectation at every d for Gaussian x and any
noise law of variance sigma^2; equal eigenvalues merge exactly into one state of multiplicity m. Stable iff
(1 + 1/B) lr lambda_max < 2 and ||K||(lr) = (lr/B) sum_j lambda_j / (2 - (1 + 1/B) lr lambda_j) < 1; the threshold
is the root of ||K|| = 1. Derivation, conversions and measured accuracy: docs/derivations/sgd.md.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numba as nb
import numpy as np
from scipy.optimize import brentq

from ..jit import KERNEL
from ..stepping import integrate
from ..theory import FIXED, BlockForm, Theory, Threshold


@nb.njit(**KERNEL)
def sgd_exact_steps(lam, mult, rho, lr_seq, inv_b, sigma2, cap):
    """Apply (E1) len(lr_seq) times in place on rho; stop early (returning the number of steps
    done) as soon as E exceeds ``cap`` or is not finite."""
    d = lam.shape[0]
    a = np.empty(d)
    g = np.empty(d)
    E = sigma2
    for j in range(d):
        E += lam[j] * rho[j]
    lr_prev = np.nan
    for k in range(lr_seq.shape[0]):
        lr = lr_seq[k]
        if lr != lr_prev:
            c = lr * lr * inv_b
            for j in range(d):
                a[j] = 1.0 + lr * lam[j] * (-2.0 + (1.0 + inv_b) * lr * lam[j])
                g[j] = c * mult[j] * lam[j]
            lr_prev = lr
        En = sigma2
        for j in range(d):
            r = a[j] * rho[j] + g[j] * E
            rho[j] = r
            En += lam[j] * r
        E = En
        if not (E <= cap):
            return k + 1
    return lr_seq.shape[0]


def kernel_norm(lam, mult, lr: float, batch: int, mu: float = 1.0, A: float | None = None,
                nuhat: float = 1.0) -> float:
    """||K||(lr) = (lr nuhat / B) sum_j m_j lambda_j / (2 mu - A lr lambda_j), with SGD's (mu, A, nuhat) =
    (1, 1 + 1/B, 1) (clipped SGD at a relative clip level substitutes its factors); inf past the lambda_max edge."""
    A = 1.0 + 1.0 / batch if A is None else A
    den = 2.0 * mu - A * lr * lam
    if np.any(den[lam > 0] <= 0):
        return math.inf
    return float(lr * nuhat / batch * np.sum(mult * lam / den))


def sgd_threshold(lam, mult, batch: int, mu: float = 1.0, A: float | None = None, nuhat: float = 1.0) -> float:
    """Largest stable lr: the root of ||K||(lr) = 1 below the lambda_max edge 2 mu / (A lambda_max)
    (||K|| increases with lr there). With A <= 0 there is no lambda_max edge and ||K|| tends to
    (nuhat / (B |A|)) sum_j m_j as lr -> inf: inf if that limit is <= 1."""
    A = 1.0 + 1.0 / batch if A is None else A
    lam = np.asarray(lam, dtype=np.float64)
    mult = np.asarray(mult, dtype=np.float64)
    keep = lam > 0
    lam, mult = lam[keep], mult[keep]
    if lam.size == 0:
        return math.inf
    f = lambda lr: kernel_norm(lam, mult, lr, batch, mu, A, nuhat) - 1.0  # noqa: E731
    if A > 0:
        top = 2.0 * mu / (A * lam.max())
        hi = top * (1.0 - 1e-15)
        if f(hi) < 0:  # numerically at the edge: the lambda_max edge binds
            return top
    else:
        hi = 2.0 * batch / (nuhat * float(np.sum(mult * lam)))
        while f(hi) < 0:
            hi *= 2.0
            if hi > 1e300:
                return math.inf
        top = hi
    return float(brentq(f, 0.0, hi, xtol=1e-15 * top, rtol=1e-15, maxiter=500))


@nb.njit(**KERNEL)
def sgd_coefficients(hp, z, s, consts, am1, f, h):
    """(E1) as the block form s <- (1 + am1) s + f + h E at step size hp[0]; fixed coefficients (regime 0)."""
    lam, mult, inv_b = consts
    lr = hp[0]
    c = lr * lr * inv_b
    for j in range(lam.shape[0]):
        am1[j] = lr * lam[j] * (-2.0 + (1.0 + inv_b) * lr * lam[j])
        f[j] = 0.0
        h[j] = c * mult[j] * lam[j]
    return 0


@nb.njit(**KERNEL)
def _integrate(consts, hp, s, W, c0, z, k, k_stop, k_ref, delta, span, grid, rec, i, cap, geo_tol, dmax,
               dependence, correctors, extrapolate, single, switching, carry):
    return integrate(sgd_coefficients, consts, hp, s, W, c0, z, k, k_stop, k_ref, delta, span, grid, rec, i, cap,
                     geo_tol, dmax, dependence, correctors, extrapolate, single, switching, carry)


@dataclass
class SGDState:
    """rho_j = E <u_j, theta - theta*>^2 per merged mode (eigenvalue lam_j, multiplicity mult_j)."""

    rho: np.ndarray
    lam: np.ndarray
    mult: np.ndarray
    sigma2: float
    inv_b: float


class SGDTheory(Theory):
    def init(self, problem, opt) -> SGDState:
        lam, s0, mult = problem.spectral_modes(merge=True)
        return SGDState(rho=np.ascontiguousarray(s0, dtype=np.float64), lam=np.ascontiguousarray(lam),
                        mult=np.ascontiguousarray(mult, dtype=np.float64), sigma2=float(problem.sigma2),
                        inv_b=1.0 / opt.batch)

    def risk(self, st) -> float:
        return 0.5 * float(st.sigma2 + st.lam @ st.rho)

    def step(self, st, k0, hyper, cap) -> int:
        return int(sgd_exact_steps(st.lam, st.mult, st.rho, hyper[0], st.inv_b, st.sigma2, 2.0 * cap))

    def block_form(self, st, opt) -> BlockForm:
        return BlockForm(run=_integrate, consts=(st.lam, st.mult, st.inv_b), s=st.rho,
                         W=np.ascontiguousarray(st.lam[None, :]), c0=np.array([st.sigma2]), dependence=FIXED)

    def threshold(self, problem, opt) -> Threshold:
        lam, _, mult = problem.spectral_modes(merge=True)
        peak = opt.sched.peak()
        if peak <= 0:
            return Threshold(math.inf, "the lr schedule is zero at every step")
        return Threshold(sgd_threshold(lam, mult, opt.batch) / peak, "")
