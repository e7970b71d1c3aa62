"""signSGD on streaming Gaussian least squares: the per-mode deterministic dynamics on the driver's contract.

Update: theta_{k+1} = theta_k - lr_k sign(g_k) coordinatewise, sign(0) = 0, g_k the minibatch gradient; with
``per_example`` the mean of the per-example signs. Theory (Xiao, Marshall, Agarwala, Paquette (2024),
arXiv:2411.12135, extended in docs/derivations/signsgd.md §4, eqs. (G3)/(G4)): with the per-mode constants mu_j, n_j
of ``modes`` and rho~_j(k) = E (w_j^T D^{1/4} e_k)^2,

    rho~_j(k+1) = (1 - 2 lr_k a_B(s_k) mu_j) rho~_j(k) + lr_k^2 n_j                                (G3)
    rho~_j(k+1) = (1 - 2 lr_k a_1 mu_j + (1 - 1/B) lr_k^2 a_1^2 mu_j^2) rho~_j(k) + (lr_k^2/B) n_j   (G4)

(sign of the mean / mean of per-example signs), s_k^2 = sum_j mu_j rho~_j(k), a_B the drift law (``drift``) at the
mean s_k (mean-field closure), risk R = (sigma^2 + s^2)/2. Block form: s <- (1 + am1) s + f + h E with
am1 = -2 lr a mu (or x(-2 + (1 - 1/B) x), x = lr a_1 mu), f = lr^2 n (or /B), h = 0, readout E = sigma^2 + sum mu rho~;
a depends on E, so the coefficients are scalar-dependent (``SCALARS``). At s = sigma = 0 (theta = theta*) nothing
moves.

Validity (§7): 2 lr a mu_max < 1 (``overshoot``), effective dimension sum_i sqrt(K_ii)/sqrt(max K_ii) >> B; spiky
spectra (power laws with 2 alpha >~ 1) are outside the theory. signSGD never diverges: the risk settles at a finite
floor for every lr (``stationary_risk``, (G6)); the useful limit is ``no_progress_lr``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numba as nb
import numpy as np

from ...stepping import integrate
from ...theory import SCALARS, BlockForm, Theory, Threshold
from .analysis import no_progress_lr, stationary_risk
from .drift import DriftLaw, drift, drift_law
from .modes import modes


@nb.njit(cache=True)
def signsgd_exact_steps(mu, n, rho, lr_seq, sigma2, sigma, A, mode, lx0, h, coef, batch, per_example, cap):
    """Apply (G3) (or (G4) with ``per_example``) len(lr_seq) times in place on rho; returns the number of
    steps done, stopping early once E = sigma^2 + sum mu rho passes ``cap`` or stops being finite.
    With sigma = 0 and s = 0 (theta = theta*) g = 0 and nothing moves."""
    d = mu.shape[0]
    s2 = 0.0
    for j in range(d):
        s2 += mu[j] * rho[j]
    inv_b = 1.0 / batch
    for k in range(lr_seq.shape[0]):
        lr = lr_seq[k]
        if s2 == 0.0 and sigma == 0.0:
            continue
        a = drift(math.sqrt(max(s2, 0.0)), sigma, A, mode, lx0, h, coef)
        c1 = 2.0 * lr * a
        if per_example:
            c2 = (1.0 - inv_b) * (lr * a) ** 2
            fn = lr * lr * inv_b
        else:
            c2 = 0.0
            fn = lr * lr
        acc = 0.0
        for j in range(d):
            r = (1.0 - c1 * mu[j] + c2 * mu[j] * mu[j]) * rho[j] + fn * n[j]
            rho[j] = r
            acc += mu[j] * r
        s2 = acc
        if not (sigma2 + s2 <= cap):
            return k + 1
    return lr_seq.shape[0]


@nb.njit(cache=True)
def sign_coefficients(hp, z, s, consts, am1, f, h):
    """(G3)/(G4) as the block form s <- (1 + am1) s + f + h E at hp = (lr,), z = (E,): x = lr a_B(s) mu,
    am1 = -2 x, f = lr^2 n (G3), or am1 = x (-2 + (1 - 1/B) x), f = lr^2 n / B (G4, a = a_1), h = 0, with
    s^2 = E - sigma^2; all zero at s = sigma = 0 (theta = theta*). One regime (0)."""
    mu, n, sigma2, sigma, A, mode, lx0, hx, coef, B, per_example = consts
    lr = hp[0]
    s2 = z[0] - sigma2
    if s2 <= 0.0 and sigma == 0.0:
        for j in range(mu.shape[0]):
            am1[j] = 0.0
            f[j] = 0.0
            h[j] = 0.0
        return 0
    a = drift(math.sqrt(max(s2, 0.0)), sigma, A, mode, lx0, hx, coef)
    la = lr * a
    fn = lr * lr / B if per_example else lr * lr
    if per_example:
        c2 = 1.0 - 1.0 / B
        for j in range(mu.shape[0]):
            x = la * mu[j]
            am1[j] = x * (-2.0 + c2 * x)
            f[j] = fn * n[j]
            h[j] = 0.0
    else:
        for j in range(mu.shape[0]):
            am1[j] = -2.0 * (la * mu[j])
            f[j] = fn * n[j]
            h[j] = 0.0
    return 0


@nb.njit(cache=True)
def _integrate(consts, hp, s, W, c0, z, k, k_stop, k_ref, delta, span, grid, rec, i, cap, geo_tol, dmax,
               dependence, correctors, extrapolate, single, switching, carry):
    return integrate(sign_coefficients, consts, hp, s, W, c0, z, k, k_stop, k_ref, delta, span, grid, rec, i, cap,
                     geo_tol, dmax, dependence, correctors, extrapolate, single, switching, carry)


@dataclass
class SignSGDState:
    """rho~_j per merged mode (preconditioned eigenvalue mu_j, noise weight n_j), the readout E = c0 + W rho~
    (W = mu as a row, c0 = sigma^2), the drift law and the optimizer's batch and sign placement."""

    rho: np.ndarray
    mu: np.ndarray
    n: np.ndarray
    W: np.ndarray
    c0: np.ndarray
    sigma2: float
    law: DriftLaw
    batch: int
    per_example: bool


class SignSGDTheory(Theory):
    def init(self, problem, opt) -> SignSGDState:
        m = modes(problem)
        law = drift_law(problem.noise, 1 if opt.per_example else opt.batch)
        mu = np.array(m.mu)
        return SignSGDState(rho=np.array(m.rho0), mu=mu, n=np.array(m.n), W=np.ascontiguousarray(mu[None, :]),
                            c0=np.array([float(problem.sigma2)]), sigma2=float(problem.sigma2), law=law,
                            batch=int(opt.batch), per_example=bool(opt.per_example))

    def risk(self, st) -> float:
        return 0.5 * float((st.c0 + st.W @ st.rho)[0])

    def step(self, st, k0, hyper, cap) -> int:
        law = st.law
        return int(signsgd_exact_steps(st.mu, st.n, st.rho, hyper[0], st.sigma2, law.sigma, law.A, law.mode,
                                       law.lx0, law.h, law.coef, st.batch, st.per_example, 2.0 * cap))

    def block_form(self, st, opt) -> BlockForm:
        """The spline table is passed as a writable copy so that every law gives the same Numba types (one
        compilation of the bound integrator)."""
        law = st.law
        consts = (st.mu, st.n, float(st.sigma2), float(law.sigma), float(law.A), int(law.mode), float(law.lx0),
                  float(law.h), np.array(law.coef), int(st.batch), bool(st.per_example))
        return BlockForm(run=_integrate, consts=consts, s=st.rho, W=st.W, c0=st.c0, dependence=SCALARS)

    def threshold(self, problem, opt) -> Threshold:
        return Threshold(math.inf, "signSGD moves each coordinate by at most lr per step: the risk settles at a "
                                   "finite floor for every lr")

    def stationary_risk(self, problem, opt) -> float:
        return stationary_risk(problem, opt)

    def lr_scale(self, problem, opt) -> float:
        """Twice the no-progress lr (the top of the lr search; above it the run ends worse than it started)."""
        lr_np = no_progress_lr(problem, opt)
        if not lr_np > 0:
            raise ValueError("theta_0 = theta*: no lr improves the risk")
        return 2.0 * lr_np
