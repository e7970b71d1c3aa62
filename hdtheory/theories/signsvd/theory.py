"""SignSVD and Muon on streaming matrix least squares: per-mode deterministic dynamics on the driver's contract.

Update: W <- W - lr polar(G) (SignSVD) or W <- W - lr NS(G) (Muon, Newton-Schulz), G the averaged minibatch
gradient. State: rho_j = ||(W - W*) u_j||^2 per eigenmode of K; twice the risk E = sum_j lambda_j rho_j + m sigma^2.
Exact identity: E[rho_j(k+1) | W] = rho_j - 2 lr D_j + lr^2 nu_j with nu_j = E[(Pi_X)_jj] (B <= min(m, n)); the
drift D_j by the closure the state calls for at each step (``closures.choose``): (C1) at B = 1, (C3) while the
residual's effective rank is >= 10 B, (C2) below it, (C4) noiseless with B >= 10 n. Muon at B = 1 is SignSVD at
lr x g(1) exactly (g the Newton-Schulz map: 0.6964 for the reference coefficients); at B > 1 it steps (C2) with
the gain map in place of the polar factor. Derivations, validity and measured accuracy:
docs/derivations/signsvd.md. Both never diverge (||W_k - W*||_F <= ||W_0 - W*||_F + k lr sqrt(min(B, n))): the
risk settles at a floor for every lr (``analysis.floor``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ...theory import Theory, Threshold
from . import closures as cl
from .factors import polar_factors

#: (C1) recomputes its coefficients once the weights lambda_j rho_j moved by this fraction of E
C1_TOL = 1e-2
#: draws of the data matrix per (C2) step: this many columns in all (each draw averages over its B columns), at
#: least C2_MIN_SAMPLES draws
C2_COLUMNS = 512
C2_MIN_SAMPLES = 8
#: (C3) is used while the residual's effective rank is at least this many times B
SPREAD_FACTOR = 10.0
#: SignSVD's (C2) is trusted up to this batch as a fraction of n
C2_MAX_BATCH_FRACTION = 0.25
#: the sampled mean field (C2) holds while at most this fraction of E is accumulated update noise, and at most
#: NOISE_FRACTION_SPIKY while the residual's effective rank is below SPIKY_RANK B
NOISE_FRACTION = 0.4
NOISE_FRACTION_SPIKY = 0.3
SPIKY_RANK = 2.0


@dataclass
class SignSVDState:
    """rho_j per eigenmode, the problem's scalars and the closures' constants."""

    rho: np.ndarray
    lam: np.ndarray
    sqrt_lam: np.ndarray
    sig2: float
    m: int
    batch: int
    mu: np.ndarray        # (C3) curvature
    nu: np.ndarray        # exact (B = 1) or deterministic-equivalent noise weight
    gain: float           # lr multiplier (Muon at B = 1)
    policy: int
    ns_coef: np.ndarray
    ns_steps: int
    c1_off: np.ndarray
    c1_w: np.ndarray
    seed: int
    regime: np.ndarray    # [last closure id, first step without a valid closure in the last call]
    noise: np.ndarray     # the part of rho_j injected by the update noise

    @property
    def msig2(self) -> float:
        return self.m * self.sig2


def _check_matrix(problem, name):
    if not hasattr(problem, "error_in_eigenbasis"):
        raise ValueError(f"{name} acts on a weight matrix: give a matrix problem (hd.MatrixProblem or "
                         f"hd.matrix_powerlaw), got {type(problem).__name__}")


class SignSVDTheory(Theory):
    policy = cl.POLICY_SIGNSVD

    def _gain_and_ns(self, opt):
        return 1.0, np.zeros(3), 0

    def init(self, problem, opt) -> SignSVDState:
        _check_matrix(problem, opt.name)
        lam, rho0, _ = problem.spectral_modes()
        mu, nu = polar_factors(lam, opt.batch)
        gain, ns_coef, ns_steps = self._gain_and_ns(opt)
        off, w = cl.c1_grid()
        return SignSVDState(rho=np.array(rho0, dtype=np.float64), lam=lam, sqrt_lam=np.sqrt(lam),
                            sig2=float(problem.sigma2), m=int(problem.outputs), batch=int(opt.batch), mu=mu, nu=nu,
                            gain=float(gain), policy=self.policy, ns_coef=ns_coef, ns_steps=int(ns_steps),
                            c1_off=off, c1_w=w, seed=0, regime=np.zeros(2, dtype=np.int64),
                            noise=np.zeros_like(lam))

    def risk(self, st) -> float:
        return 0.5 * float(cl.twice_risk(st.lam, st.rho, st.msig2))

    def step(self, st, k0, hyper, cap) -> int:
        samples = max(C2_MIN_SAMPLES, C2_COLUMNS // st.batch)
        return int(cl.run_steps(st.policy, st.lam, st.sqrt_lam, st.rho, st.msig2, st.sig2, st.m, st.batch,
                                np.ascontiguousarray(hyper[0]), st.gain, st.mu, st.nu, st.c1_off, st.c1_w, C1_TOL,
                                samples, st.seed, int(k0), st.ns_coef, st.ns_steps, SPREAD_FACTOR, 2.0 * cap,
                                st.regime, st.noise))

    def validity(self, st, opt) -> str:
        reg = cl.choose(st.policy, st.lam, st.rho, st.sig2, st.m, st.batch, st.lam.shape[0], SPREAD_FACTOR)
        if reg < 0:
            return (f"batch {st.batch} >= n = {st.lam.shape[0]} with a residual of effective rank below "
                    f"{SPREAD_FACTOR:g} B: no closure of {opt.name} holds there (the spread-residual closure is "
                    "stepped)")
        n = st.lam.shape[0]
        if reg == cl.C2 and st.policy == cl.POLICY_SIGNSVD and st.batch > C2_MAX_BATCH_FRACTION * n:
            return (f"batch {st.batch} > n/4 = {n / 4:g} with a residual of effective rank below {SPREAD_FACTOR:g} B: "
                    "the sampled mean field drops the spread of (W - W*)^T (W - W*) around its diagonal, which "
                    "matters when one step moves a large share of the directions (measured 35% off at B = n/3)")
        if reg == cl.C2:
            E = 2.0 * self.risk(st)
            phi = float(np.dot(st.lam, st.noise)) / max(E, 1e-300)
            spiky = cl.effective_rank(st.lam, st.rho, st.sig2, st.m) < SPIKY_RANK * st.batch
            limit = NOISE_FRACTION_SPIKY if spiky else NOISE_FRACTION
            if phi > limit:
                where = f" with a residual of effective rank below {SPIKY_RANK:g} B" if spiky else ""
                return (f"{opt.name} at B = {st.batch}: {phi:.0%} of the risk is accumulated update noise (above "
                        f"{limit:.0%}{where}); the mean field "
                        "keeps only the diagonal of (W - W*)^T (W - W*), whose spread by the update noise lowers the "
                        "drift (and moves the Newton-Schulz gains) there")
        return ""

    def threshold(self, problem, opt) -> Threshold:
        return Threshold(math.inf, f"{opt.name} is normalized (||update||_F^2 <= min(B, n)): the risk settles at a "
                                   "floor for every lr")

    def stationary_risk(self, problem, opt) -> float:
        from .analysis import floor

        return floor(problem, opt)

    def lr_scale(self, problem, opt) -> float:
        """Twice the critical lr (above it the risk does not move down from its start)."""
        from .analysis import critical_lr

        return 2.0 * critical_lr(problem, opt)


class MuonTheory(SignSVDTheory):
    policy = cl.POLICY_MUON

    def _gain_and_ns(self, opt):
        coef = np.asarray(opt.ns_coefficients, dtype=np.float64)
        if opt.momentum > 0.0 or opt.shape_factor:
            raise ValueError("the Muon theory covers Muon without momentum and without the shape factor "
                             "(momentum=0, shape_factor=False); simulate the others with validation.simulate")
        if opt.batch == 1:
            return opt.rank_one_gain, coef, 0
        return 1.0, coef, int(opt.ns_steps)
