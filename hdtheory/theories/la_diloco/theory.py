"""LA-DiLoCo and its family (LA, SLA, Nesterov outer momentum, M workers, inner momentum): exact theory.

Algorithm (research/la_diloco.md §1.1, the definition both engines implement). Hyperparameters: inner step
size eta = ``lr`` (applied to the worker weights), per-worker batch B, workers M, inner steps H, outer rate
alpha, outer momentum beta (0 = none), ``nesterov``, inner momentum mu (0 = none)::

    state: slow weights theta_t, outer buffer v_t (v_0 = 0)
    round t: for each worker m (independent fresh samples):
                 w <- theta_t ; b <- 0                           (restart from the slow weights, buffer reset)
                 H times: g = (1/B) sum_b x_b (<x_b, w> - y_b) ;  b <- mu b + g ;  w <- w - eta b
                 theta_{t,m} <- w
             Delta_t = theta_t - (1/M) sum_m theta_{t,m}           (pseudo-gradient, not divided by eta or H)
             v_{t+1} = beta v_t + Delta_t
             heavy ball:  theta_{t+1} = theta_t - alpha v_{t+1}
             Nesterov:    theta_{t+1} = theta_t - alpha (Delta_t + beta v_{t+1})   (PyTorch form, §5.3)

With M = 1, H = 1, alpha = 1 (any beta = 0) it is SGD(eta, B) step for step. **Curves are indexed by inner
steps per worker** k = t H (the slow weights are recorded at round boundaries only; samples per round are
M H B), so LA with alpha = 1 and M = 1 lies on the SGD curve, and an lr schedule is evaluated per inner step.

Theory (research/la_diloco.md §2; exact in expectation for Gaussian x at every d, any label-noise law through
sigma^2). Our conventions are the note's: eta = the applied inner step, averaged minibatch gradients, twice-risk
E = sigma^2 + sum_j lambda_j R_j = 2 risk. Per mode j (eigenvalue lambda, merged multiplicity m_j: the state is
the sum over the merged modes, so only the additive noise carries m_j, as for SGD), per round:

* worker chain, mu = 0 (L2): r^(0) = R; r^(h+1) = a_h r^(h) + (eta_h^2/B) m_j lambda E_w^(h),
  a_h = 1 - 2 eta_h lambda + (1 + 1/B) eta_h^2 lambda^2, E_w^(h) = sigma^2 + sum_i lambda_i r_i^(h) (the worker's
  own twice-risk, changing inside the round); mean factor q = prod_h (1 - eta_h lambda).
* worker chain, mu > 0 (§2.4): (S_ww, S_wm, S_mm) from (R, 0, 0); per step N = (lambda^2/B) S_ww +
  m_j (lambda/B) E_w, S_mm' = mu^2 S_mm + 2 mu lambda S_wm + lambda^2 S_ww + N, X = mu S_wm + lambda S_ww,
  S_ww' = S_ww - 2 eta X + eta^2 S_mm', S_wm' = X - eta S_mm'; r^(H) = S_ww; the mean factor q is the heavy-ball
  residual polynomial (mean of (w, b) from (1, 0): b' = mu b + lambda w, w' = w - eta b').
* outer, with u = 1 - q and n = (r^(H) - q^2 R)/M (variance of the averaged pseudo-gradient noise):
  beta = 0 (L3): R' = (1 - alpha u)^2 R + alpha^2 n   (state: R only);
  beta > 0 (L4): state (R, C, V) = (E e^2, E e v, E v^2), V' = beta^2 V + 2 beta u C + u^2 R + n,
  X = beta C + u R; heavy ball R' = R - 2 alpha X + alpha^2 V', C' = X - alpha V'; Nesterov with
  W = beta^4 V + 2 beta^2 (1+beta) u C + (1+beta)^2 (u^2 R + n), Y = beta^2 C + (1+beta) u R,
  Z = beta^3 V + beta (1+2beta) u C + (1+beta)(u^2 R + n): R' = R - 2 alpha Y + alpha^2 W, C' = X - alpha Z.

Each (L4) line was re-derived here from §1.1 (E[Delta e] = u R, E[Delta v] = u C, E[Delta^2] = u^2 R + n) and
agrees with the note. State layout: s = [R (n_modes)] for beta = 0, [R, C, V, rounds done] for beta > 0
(component-major; the round counter is used by the beta > 0 blocks below); readout E = sigma^2 + lambda . R. One
``exact`` update = one round = H inner steps at the per-inner-step step sizes the driver passes (``lr_seq``);
cost O(modes) per inner step, like SGD (the H worker risks E_w^(h) are independent moments, so a round cannot be
done exactly in O(modes), note §2.2).

Block form (long horizons, beta = 0; derived here from (L2)/§2.4 and (L3)). The worker chain is linear, so
r^(H) = a^(H) R + sum_s i^(H-1-s) E_w^(s) (a^(h), i^(m) as in "Stability" below), and its risks satisfy
E_w^(g) = p_g + sum_{s<g} L_gs E_w^(s) with p_g = sigma^2 + sum_i lambda_i a_i^(g) R_i (p_0 = E) and
L_gs = sum_i lambda_i i_i^(g-1-s), i.e. E_w = (I - L)^{-1} p. One round is therefore exactly

    R_j' = D_j R_j + sum_{g<H} resp_gj p_g,      D = (1 - alpha u)^2 + alpha^2 (a^(H) - q^2)/M,

resp_g = (alpha^2/M) sum_s i^(H-1-s) [(I - L)^{-1}]_sg: the round-end response of R_j to a unit source in E_w
at inner step g, the worker's own noise feedback included. The chain is time-invariant at constant eta, so
resp_g is the chain H - g steps after a unit source at step 0 (``la_round_parts``, O(H modes) for all g).
Checked against ``la_exact_rounds``: <= 1e-14 relative per mode (mu = 0 and > 0, H up to 64; test 1e-13).
The H readouts p_g are independent moments, so a block of many rounds needs them along the block. Written as
p_g = sigma^2 + rho_g (E - sigma^2), g >= 1, with the worker-risk *shape* rho held over a block, the round is
the driver's per-mode step s <- (1 + am1) s + f + h E with

    am1 = D - 1 = alpha u (alpha u - 2) + alpha^2 v / M,   h = resp_0 + sum_g rho_g resp_g,
    f = sigma^2 sum_g (1 - rho_g) resp_g,

(am1 without cancellation: u = 1 - q is accumulated as a sum, v = a^(H) - q^2 propagated directly), and the
driver interpolates E and solves its end value as for SGD. The shape is a ratio of moments of the same slowly
evolving state and is re-read every block; the coefficients depend on the state, hence
``scalar_dependent = True`` (the driver re-evaluates them per block; ``scalars`` itself is not used). With
rho = the shape of the round's own start state the step is the exact round.
Which state gives the shape: the block's start state makes the scheme unstable near the threshold when the
modes that shape the worker risks relax slowly per round (alpha >= 1): it carries a transient left by the
previous block, which the true dynamics damp within a few rounds but a held shape keeps for the whole block,
and its feedback on the same modes grew the error x1.5 per block (1.3e-2 at 0.95 eta*, alpha = 1, M = 1,
constant lr, power law d = 1000, 2^21 inner steps). The shape is therefore read from the state ``ahead``
exact rounds into the block (``round_parts``: the transient of every mode with a^(H-1) <= 1/2 damped to
SHAPE_DAMP = 3%, 2 <= ahead <= 64 rounds; e.g. 2 at alpha = 1, 17 at alpha = 1.9, where 2 rounds still left
1.3e-2). Relaxing those modes with E held fixed instead (no extra exact rounds) removed their lag behind a
decaying E and left a 5e-3 bias; the exact rounds keep it.
Step time: a round "at step time t" applies lr(t) at all its H inner steps; the driver passes the middle step
of a block (the mean of its rounds' centres) and, under a moving schedule, per-mode memory centres (the
coefficients are then evaluated at the block's middle and at the largest memory centre and interpolated
linearly in t, as clipped_sgd.py does, the shape read at each of the two). Cost per block: the round operators
(O(H modes), cached per eta), ``ahead`` exact rounds and O(H modes) for the shape, once per eta (twice under a
moving schedule), against O(H modes) per round stepped exactly.
beta > 0: the per-mode state (R, C, V) has a 3 x 3 round map (complex eigenvalues for underdamped modes),
which the driver's real diagonal affine form cannot hold: these runs are stepped exactly. The driver offers
blocks to every module with an ``affine``, so for beta > 0 ``affine`` steps the block exactly itself and hands
it over as the constant map s <- s_end (am1 = -1, f = s_end, h = 0: the driver's block formula applies it
exactly for any length), locating the block by the round counter (k = H x rounds done, length 2 (t - k) + 1
from the middle step t; a t that does not fit raises). Result: equal to method="exact" (tests), same cost.
Where blocks start: the driver's Python block path starts them H ceil(max(16, 2e5/modes)/delta) inner steps
after the start or a breakpoint (1.6e5 at H = 8, d = 1000; 1.3e6 at H = 64), because its cost model counts an
update as one mode step while an LA-DiLoCo update is H (see benchmarks/bench_la_diloco.py (iv)).
Measured accuracy: see "Checks" below.

Stability (note §3.4, L6, exact): per mode the outer map A_j on (R, C, V) with the multiplicative noise
n -> m_j R, m_j = (a^(H) - q^2)/M, kept inside; chi_j = [(I - A_j)^{-1} b]_R with b = (alpha^2, -alpha, 1)
(heavy ball) or (alpha^2 (1+beta)^2, -alpha (1+beta), 1) (Nesterov) (beta = 0: chi = alpha^2/(1 - D_j));
inner responses a^(h) (S_ww after h homogeneous steps from (1, 0, 0), additive noise dropped) and i^(m) (S_ww
m homogeneous steps after a unit E_w injected (eta^2 lambda/B, -eta lambda/B, lambda/B) m_j); the H x H kernel

    Kbar_hs = 1[s < h] sum_j lambda_j i_j^(h-1-s) + (1/M) sum_j lambda_j a_j^(h) chi_j i_j^(H-1-s),

and the run is stable iff max_j specrad A_j < 1 and specrad Kbar < 1. The stable set in eta need not be an
interval (odd H, alpha < 1: the inner loop may be locally unstable, §5.3): ``threshold`` returns the **first
crossing** going up from eta = 0+ (a 400-point geometric scan, then bisection on the first unstable cell);
``stable_intervals`` lists every stable interval of the scan. For Kbar >= 0 (always when beta = 0) the test
specrad Kbar < 1 is done as an M-matrix test (one linear solve), which makes H = 400 thresholds affordable.

Checks (tests/test_la_diloco.py, benchmarks/la_diloco_checks.py, 2-core CPU):
* block form: the round identity (own shape) vs ``la_exact_rounds`` <= 9.1e-15 relative per mode (60 random
  cases, H up to 64, mu 0 and > 0; test 1e-13); 1 + am1 = (L6)'s D to 1e-12. Blocks vs method="exact" (max
  relative error of the excess risk on a 20-per-decade grid, delta = 0.01, power law d = 1000, lambda_j = j^-2,
  2^21 inner steps, H = 8 unless said; alpha 0.3-1.9, M 1-8, B 1-2, mu 0/0.3/0.5, H = 3, 4, 8, 64):
  constant lr at 0.95 eta*: 3e-8 to 1.6e-6 noiseless, 5e-5 to 7.5e-5 onto a sigma = 0.01 floor;
  WarmupCosine(1000, 3e6, 0.01) at 0.95 eta*: <= 9.6e-4 (alpha 1.9; 3.9e-4 alpha 1, 4.5e-4 M 4 alpha 1.5);
  PowerDecay(1, 1e4): <= 7.8e-6; H = 64 (2^22, cosine): 1.0e-4, 6.0e-4 (alpha 1.9); 0.5 eta*: <= 7.5e-5;
  isotropic d = 1000 with PowerDecay(1, 1e3), 2^29 steps: 1.1e-4 (SGD's own block error there 4.3e-5).
  Before the shape was read ahead: 1.3e-2 (alpha >= 1, constant lr). beta > 0 blocks: equal to exact to 4e-15
  (constant) / 1.3e-13 (cosine);
* cost (benchmarks/bench_la_diloco.py (iv), d = 1000, stepping only, ns per inner step): 1e6 steps, constant
  lr, H = 8: exact 1500-1600, blocks 300-360 (SGD's curve: 13); mu = 0.5: 4600 -> 800; H = 1: 4400 -> 200;
  cosine: 2100 -> 850 (SGD's curve: 260); 1e8 steps (H = 8): 0.42 s, exact ~140 s, SGD's curve 0.016 s.
  At 1e6 the exact phase before blocks start (1.6e5 steps) dominates; H = 64 starts blocks only at 1.28e6.
  With the driver's Python-block threshold divided by H (proposed): 170-280 at 1e6 (H = 8, 64), 0.28 s at 1e8.
  Where blocks are short (a schedule moving fast, soon after they start) they can cost more than exact
  stepping: 2.6e5 steps with a cosine over the run, 3200 vs 2000 (beta = 0), 4500 vs 2300 (beta > 0, exact
  blocks through the driver's Python path);
* SGD reductions (M = H = alpha = 1; M = alpha = 1 at any H, with a piecewise schedule moving inside rounds;
  H = 1 = SGD(alpha eta, MB); mu irrelevant at H = 1): max relative difference 0 to 2.2e-16 (test: <= 1e-12);
* a full d x d second-moment recursion written from §1.1 (dense rotated K, no eigenbasis, no diagonal
  closure), all six variants (HB, Nesterov, inner momentum, M = 4, H = 1, 3, 8): <= 2e-15 over 30 rounds;
* the note's V2 round-40 risks, V3 stationary risk, V4 thresholds (plain and momentum), V4c large batch, V5
  worker noise, V7 saturated limit: every printed digit; (L6) vs the spectral radius of the full per-mode
  round map: < 1 at 0.999 eta*, > 1 at 1.001 eta*;
* Monte Carlo, V2 cases A-E, 1000 seeds, rounds 10/20/40: d = 100 all |z| <= 1.5; d = 1000 all |z| <= 1.8
  (case B's round 40 is +29-32% at z = 0.9: heavy tails, the note's remark on V2);
* power law (d = 300, alpha 1, beta 0.5) at 0.5 eta*, 128 rounds, 256-512 seeds: median relative error
  0.2-3.7% per variant, every point but step 0 (zero SEM) within 3 SEM except one point of case D at 256 seeds;
* empirical thresholds (validation.empirical_threshold, mean criterion, d = 100, lambda_j = 1/j, 128 seeds,
  1000 rounds, bisection to 0.5%) / (L6): M 4 H 8 alpha 1 B 1: 1.054; M 1 H 8 alpha 0.5 B 1: 1.029;
  M 4 H 8 alpha 0.8 Nesterov 0.9 B 2: 1.010; M 1 H 8 alpha 0.7 HB 0.5 mu 0.5 B 4: 1.018. Of the 1.054, the
  finite horizon explains 0.3% (``validation.horizon_threshold``, the same criterion on the theory's curve:
  1.0027 x (L6) at 1000 rounds, O(1/rounds)); the rest is rare runs: lambda_j = 1/j has 5.2 effective
  dimensions, and near the edge the 128-seed mean is carried by single runs (the theory's expected risk
  grows x2e13 from round 500 to 1000 at 1.03 eta* while the seed mean shrinks), as for SGD at B = 4 there
  (+4.9%, validation/thresholds.py). Like with like, on lambda uniform in [0.5, 1.5] (67 effective
  dimensions), 800 rounds, 32 seeds: empirical / horizon threshold 0.9986-1.0041 and empirical / (L6)
  1.0085-1.0147 for the four variants (tests/test_la_diloco.py, threshold block).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numba as nb
import numpy as np

from ..schedules import Schedule
from .base import ModeState, OptimizerMixin, Theory, check_batch, check_int, check_positive
from .sgd import sgd_threshold


# ----------------------------------------------------------------------------------------------------------
# exact round map (Numba)


@nb.njit(cache=True)
def _outer_apply(R, C, V, nn, u, alpha, beta, nesterov):
    """One outer step (L3)/(L4) given the pseudo-gradient noise variance nn, on scalars (``la_exact_rounds``)
    or per-mode arrays (``round_operators``)."""
    D2 = u * u * R + nn
    Vn = beta * beta * V + 2.0 * beta * u * C + D2
    X = beta * C + u * R
    if nesterov:
        b1 = 1.0 + beta
        W = beta ** 4 * V + 2.0 * beta * beta * b1 * u * C + b1 * b1 * D2
        Y = beta * beta * C + b1 * u * R
        Z = beta ** 3 * V + beta * (1.0 + 2.0 * beta) * u * C + b1 * D2
        return R - 2.0 * alpha * Y + alpha * alpha * W, X - alpha * Z, Vn
    return R - 2.0 * alpha * X + alpha * alpha * Vn, X - alpha * Vn, Vn


@nb.njit(cache=True)
def la_exact_rounds(lam, mult, s, lr_seq, H, inv_b, sigma2, cap, inv_m, alpha, beta, nesterov, mu):
    """Apply len(lr_seq)/H rounds of (L2)/(§2.4) + (L3)/(L4) in place on s; lr_seq = per-inner-step eta.
    Returns the inner steps done (a multiple of H); stops after the first round whose slow E exceeds cap or
    is not finite."""
    n = lam.shape[0]
    rounds = lr_seq.shape[0] // H
    r = np.empty(n)
    wm = np.zeros(n)
    mm = np.zeros(n)
    qw = np.empty(n)
    qb = np.zeros(n)
    a = np.empty(n)
    g = np.empty(n)
    p = np.empty(n)
    mom = beta > 0.0
    lr_prev = np.nan
    for t in range(rounds):
        Ew = sigma2
        for j in range(n):
            r[j] = s[j]
            qw[j] = 1.0
            Ew += lam[j] * s[j]
        if mu > 0.0:
            for j in range(n):
                wm[j] = 0.0
                mm[j] = 0.0
                qb[j] = 0.0
        for h in range(H):
            eta = lr_seq[t * H + h]
            En = sigma2
            if mu == 0.0:
                if eta != lr_prev:  # same arithmetic as sgd_exact_steps, so M = H = alpha = 1 is SGD to rounding
                    c = eta * eta * inv_b
                    for j in range(n):
                        a[j] = 1.0 + eta * lam[j] * (-2.0 + (1.0 + inv_b) * eta * lam[j])
                        g[j] = c * mult[j] * lam[j]
                        p[j] = 1.0 - eta * lam[j]
                    lr_prev = eta
                for j in range(n):
                    rj = a[j] * r[j] + g[j] * Ew
                    r[j] = rj
                    qw[j] *= p[j]
                    En += lam[j] * rj
            else:
                for j in range(n):
                    lj = lam[j]
                    N = lj * lj * inv_b * r[j] + mult[j] * lj * inv_b * Ew
                    mmn = mu * mu * mm[j] + 2.0 * mu * lj * wm[j] + lj * lj * r[j] + N
                    X = mu * wm[j] + lj * r[j]
                    rn = r[j] - 2.0 * eta * X + eta * eta * mmn
                    wm[j] = X - eta * mmn
                    mm[j] = mmn
                    r[j] = rn
                    qbn = mu * qb[j] + lj * qw[j]
                    qw[j] = qw[j] - eta * qbn
                    qb[j] = qbn
                    En += lj * rn
            Ew = En
        E = sigma2
        for j in range(n):
            R = s[j]
            q = qw[j]
            u = 1.0 - q
            nj = inv_m * (r[j] - q * q * R)
            if not mom:
                gj = 1.0 - alpha * u
                Rn = gj * gj * R + alpha * alpha * nj
            else:
                Rn, Cn, Vn = _outer_apply(R, s[n + j], s[2 * n + j], nj, u, alpha, beta, nesterov)
                s[n + j] = Cn
                s[2 * n + j] = Vn
            s[j] = Rn
            E += lam[j] * Rn
        if not (E <= cap):
            return (t + 1) * H
    return rounds * H


@nb.njit(cache=True)
def la_round_parts(lam, mult, eta, H, inv_b, inv_m, alpha, mu, am1, A, resp):
    """Operators of one round at a constant inner step eta, beta = 0 (module docstring, "Block form"):

    am1[j]    = D_j - 1 = alpha u (alpha u - 2) + alpha^2 v / M, formed without cancellation: u = 1 - q is
                accumulated as a sum (u' = u + eta lambda q for mu = 0, u' = u + eta b' for mu > 0) and
                v = a^(H) - q^2 (the worker's noise variance per unit start variance) is propagated directly;
    A[g, j]   = lambda_j a_j^(g), g < H, so that the readouts are p_g = sigma^2 + A[g] . R (p_0 = E);
    resp[g, j] = what a unit of p_g adds to R_j after the round: alpha^2/M times the worker variance of mode j
                at the end of the round after a unit source in E_w at inner step g, with the worker's own noise
                feedback E_w <- E_w + sum_i lambda_i w_i inside the round. The inner chain is time-invariant at
                constant eta, so resp[g] is the chain H - g steps after a unit source at step 0 (one O(H n) pass
                instead of H)."""
    n = lam.shape[0]
    for j in range(n):
        lj = lam[j]
        qw = 1.0
        qb = 0.0
        u = 0.0
        cww = 0.0
        cwm = 0.0
        cmm = 0.0
        for g in range(H):
            A[g, j] = lj * (qw * qw + cww)
            if mu == 0.0:
                x = eta * lj
                cww = (1.0 - x) * (1.0 - x) * cww + x * x * inv_b * (cww + qw * qw)
                u += qw * x
                qw *= 1.0 - x
            else:
                N = lj * lj * inv_b * (cww + qw * qw)
                mmn = mu * mu * cmm + 2.0 * mu * lj * cwm + lj * lj * cww + N
                X = mu * cwm + lj * cww
                cww = cww - 2.0 * eta * X + eta * eta * mmn
                cwm = X - eta * mmn
                cmm = mmn
                qbn = mu * qb + lj * qw
                u += eta * qbn
                qw -= eta * qbn
                qb = qbn
        au = alpha * u
        am1[j] = au * (au - 2.0) + alpha * alpha * inv_m * cww
    ww = np.zeros(n)
    wm = np.zeros(n)
    mm = np.zeros(n)
    c = alpha * alpha * inv_m
    for k in range(H):
        Ew = 1.0 if k == 0 else 0.0
        for j in range(n):
            Ew += lam[j] * ww[j]
        for j in range(n):
            lj = lam[j]
            if mu == 0.0:
                x = eta * lj
                ww[j] = (1.0 + x * (-2.0 + (1.0 + inv_b) * x)) * ww[j] + eta * eta * inv_b * mult[j] * lj * Ew
            else:
                N = lj * lj * inv_b * ww[j] + mult[j] * lj * inv_b * Ew
                mmn = mu * mu * mm[j] + 2.0 * mu * lj * wm[j] + lj * lj * ww[j] + N
                X = mu * wm[j] + lj * ww[j]
                ww[j] = ww[j] - 2.0 * eta * X + eta * eta * mmn
                wm[j] = X - eta * mmn
                mm[j] = mmn
        row = H - 1 - k
        for j in range(n):
            resp[row, j] = c * ww[j]


# ----------------------------------------------------------------------------------------------------------
# per-mode responses at a constant eta (stability, stationary state, analysis functions)


def _positive_modes(problem):
    lam, s0, mult = problem.spectral_modes(merge=True)
    keep = lam > 0
    return lam[keep], s0[keep], mult[keep]


def inner_responses(lam, mult, eta, opt):
    """Per-mode inner-loop responses at constant eta (note §3.4, operational definitions for any mu):

    a[h, j] = a_j^(h), h = 0..H: worker variance after h steps per unit initial variance (additive noise off);
    i[m, j] = i_j^(m), m = 0..H-1: what a unit of E_w at one inner step adds to the worker variance m + 1
              steps later (includes the merged multiplicity m_j);
    q[j] = mean factor of the round (q_H(eta lambda): (1 - eta lambda)^H for mu = 0, heavy-ball polynomial).
    Non-finite entries (locally unstable inner loops at large H) are left as inf/nan: callers treat them as
    unstable."""
    H, B, mu = opt.inner_steps, opt.batch, opt.inner_momentum
    lam = np.asarray(lam, dtype=np.float64)
    mult = np.asarray(mult, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        if mu == 0.0:
            x = eta * lam
            av = 1.0 + x * (-2.0 + (1.0 + 1.0 / B) * x)
            h = np.arange(H + 1)[:, None]
            a = av[None, :] ** h
            i = (eta * eta / B) * mult * lam * a[:H]
            q = (1.0 - x) ** H
            return a, i, q

        def chain(ww, wm, mmv, steps, out):
            out[0] = ww
            for k in range(steps):
                mmn = mu * mu * mmv + 2.0 * mu * lam * wm + lam * lam * ww + (lam * lam / B) * ww
                X = mu * wm + lam * ww
                ww, wm, mmv = ww - 2.0 * eta * X + eta * eta * mmn, X - eta * mmn, mmn
                out[k + 1] = ww
            return out

        n = lam.shape[0]
        a = chain(np.ones(n), np.zeros(n), np.zeros(n), H, np.empty((H + 1, n)))
        inj = mult * lam / B
        i = chain(eta * eta * inj, -eta * inj, inj, H - 1, np.empty((H, n)))
        qw, qb = np.ones(n), np.zeros(n)
        for _ in range(H):
            qb = mu * qb + lam * qw
            qw = qw - eta * qb
        return a, i, qw


@dataclass
class RoundOperators:
    """Per-mode outer operators and the (L6) kernel at one eta (``round_operators``)."""

    lam: np.ndarray
    a: np.ndarray        # (H+1, n) a_j^(h)
    i: np.ndarray        # (H, n)   i_j^(m)
    q: np.ndarray        # (n,) mean factor of a round
    A: np.ndarray        # (n, p, p) outer map with the multiplicative noise inside (p = 1 or 3)
    chi: np.ndarray      # (n,) [(I - A)^{-1} b]_R
    outer_radius: float  # max_j specrad A_j
    kernel: np.ndarray   # (H, H) Kbar (inf where an outer map is unstable or a response is not finite)

    @property
    def radius(self) -> float:
        """specrad Kbar (inf if not finite)."""
        K = self.kernel
        return float(np.max(np.abs(np.linalg.eigvals(K)))) if np.all(np.isfinite(K)) else math.inf

    @property
    def stable(self) -> bool:
        """(L6): max_j specrad A_j < 1 and specrad Kbar < 1. For Kbar >= 0 (always when beta = 0) the second
        test is the M-matrix criterion, specrad Kbar < 1 iff (I - Kbar) x = 1 has a solution x > 0 (one LU
        solve, ~20x cheaper than the eigenvalues at H = 400); otherwise the eigenvalues."""
        K = self.kernel
        if not (self.outer_radius < 1.0 and np.all(np.isfinite(K))):
            return False
        if np.all(K >= 0):
            try:
                x = np.linalg.solve(np.eye(K.shape[0]) - K, np.ones(K.shape[0]))
            except np.linalg.LinAlgError:
                return False
            return bool(np.all(x > 0) and np.all(np.isfinite(x)))
        return self.radius < 1.0


def round_operators(lam, mult, eta, opt) -> RoundOperators:
    """(L6) at inner step size eta: per-mode outer maps A_j, chi_j and the H x H kernel Kbar (note §3.4)."""
    lam = np.asarray(lam, dtype=np.float64)
    H, M = opt.inner_steps, opt.workers
    alpha, beta, nest = opt.outer_lr, opt.outer_momentum, opt.nesterov
    a, i, q = inner_responses(lam, mult, eta, opt)
    n = lam.shape[0]
    with np.errstate(over="ignore", invalid="ignore"):
        u = 1.0 - q
        m = (a[H] - q * q) / M
        finite = bool(np.all(np.isfinite(a)) and np.all(np.isfinite(i)) and np.all(np.isfinite(q)))
        if beta == 0.0:
            D = (1.0 - alpha * u) ** 2 + alpha * alpha * m
            A = D[:, None, None]
            outer_radius = float(np.max(np.abs(D))) if n else 0.0
            chi = alpha * alpha / (1.0 - D)
        else:
            z, o = np.zeros(n), np.ones(n)
            cols = [_outer_apply(R, C, V, m * R, u, alpha, beta, nest) for R, C, V in ((o, z, z), (z, o, z), (z, z, o))]
            A = np.stack([np.stack(c, axis=-1) for c in cols], axis=-1)  # A[j, row, col]
            b = np.array([alpha * alpha, -alpha, 1.0]) * (
                np.array([(1 + beta) ** 2, 1 + beta, 1.0]) if nest else 1.0)
            if finite:
                outer_radius = float(np.max(np.abs(np.linalg.eigvals(A)))) if n else 0.0
                chi = np.linalg.solve(np.eye(3)[None] - A, np.broadcast_to(b, (n, 3))[..., None])[:, 0, 0] \
                    if outer_radius < 1.0 else np.full(n, np.inf)
            else:
                outer_radius, chi = math.inf, np.full(n, np.inf)
        if not finite or not outer_radius < 1.0:
            return RoundOperators(lam, a, i, q, A, chi, math.inf if not finite else outer_radius,
                                  np.full((H, H), np.inf))
        t = i @ lam  # t_m = sum_j lambda_j i_j^(m)
        hh, ss = np.meshgrid(np.arange(H), np.arange(H), indexing="ij")
        T = np.where(ss < hh, t[np.clip(hh - 1 - ss, 0, H - 1)], 0.0)
        Kbar = T + (a[:H] * (lam * chi / M)[None, :]) @ i[::-1].T
    return RoundOperators(lam, a, i, q, A, chi, outer_radius, Kbar)


def _stable(lam, mult, eta, opt) -> bool:
    return round_operators(lam, mult, eta, opt).stable


def _scan_top(lam, opt) -> float:
    """Upper end of the lr scan: beyond 2 (1 + mu) max(1, 2/alpha) / lambda_max every mean map is unstable
    (the inner residual polynomial then exceeds 2/alpha - 1 in modulus, note §3.4 large-batch edge)."""
    return 2.0 * (1.0 + opt.inner_momentum) * max(1.0, 2.0 / opt.outer_lr) / float(np.max(lam)) * 1.05


def _bisect(pred, lo, hi, rtol=1e-13):
    """Largest eta in [lo, hi) with pred true, given pred(lo) and not pred(hi) (boolean bisection)."""
    while hi - lo > rtol * hi:
        mid = 0.5 * (lo + hi)
        if pred(mid):
            lo = mid
        else:
            hi = mid
    return lo


def _scan(lam, mult, opt, points=400, stop_at_first=True):
    top = _scan_top(lam, opt)
    lo = top * 1e-4
    pred = lambda eta: _stable(lam, mult, eta, opt)  # noqa: E731
    while not pred(lo):
        lo *= 0.5
        if lo < top * 1e-30:
            raise RuntimeError("no stable lr found: check the problem's spectrum")
    etas = np.geomspace(lo, top, points)
    flags = []
    for eta in etas:
        flags.append(pred(eta))
        if stop_at_first and not flags[-1]:
            break
    return etas[: len(flags)], np.array(flags), pred


def first_crossing(lam, mult, opt, points=400) -> float:
    """First eta (going up from 0+) where (L6) fails; inf if the whole scan is stable."""
    lam = np.asarray(lam, dtype=np.float64)
    if lam.size == 0:
        return math.inf
    etas, flags, pred = _scan(lam, mult, opt, points)
    if flags[-1]:
        return math.inf
    k = len(flags) - 1
    return _bisect(pred, float(etas[k - 1]) if k else 0.0, float(etas[k]))


def stable_intervals(problem, opt, points=400):
    """Every stable interval (lo, hi) of eta found by a ``points``-point geometric scan of (L6) up to the
    scan top (note §5.3: the stable set need not be an interval), each end refined by bisection."""
    lam, _, mult = _positive_modes(problem)
    etas, flags, pred = _scan(lam, mult, opt, points, stop_at_first=False)
    out, start = [], 0.0
    for k in range(1, len(etas)):
        if flags[k] != flags[k - 1]:
            edge = _bisect(pred, etas[k - 1], etas[k]) if flags[k - 1] else \
                _bisect(lambda e: not pred(e), etas[k - 1], etas[k])
            if flags[k - 1]:
                out.append((start, edge))
            else:
                start = edge
    if flags[-1]:
        out.append((start, float(etas[-1])))
    return out


# ----------------------------------------------------------------------------------------------------------
# closed-form approximations of the threshold (note §3.4)


@dataclass(frozen=True)
class LADiLoCoEdges:
    """The exact threshold (L6) of the inner lr and its closed-form approximations (note §3.4)."""

    exact: float            # first crossing of (L6)
    slow_mode: float        # eta*_SGD(MB)/alpha (exact at H = 1 with beta = mu = 0; slow-mode regime)
    trace_edge: float       # 2 M B / (alpha tr K) (the cruder slow-mode estimate)
    saturated: float        # eta*_SGD(B): the H -> infinity limit (H eta lambda_min >> 1), any alpha in (0, 2)
    large_batch: float      # B -> infinity edge (beta = mu = 0, 0 < alpha < 2): 2/lambda_max (H even),
                            # (1 + (2/alpha - 1)^(1/H))/lambda_max (H odd)
    frozen_worker: float    # first crossing of row 0 of Kbar (frozen worker risk, beta = mu = 0): rough
    bracket: tuple          # (lo, hi) from the max / min row sums of Kbar (Kbar >= 0), (nan, nan) otherwise


def edges(problem, opt, points=400) -> LADiLoCoEdges:
    lam, _, mult = _positive_modes(problem)
    H, M, B, alpha = opt.inner_steps, opt.workers, opt.batch, opt.outer_lr
    plain = opt.outer_momentum == 0.0 and opt.inner_momentum == 0.0
    exact = first_crossing(lam, mult, opt, points)
    nan = math.nan
    if plain and alpha < 2:
        lb = (2.0 if H % 2 == 0 else 1.0 + (2.0 / alpha - 1.0) ** (1.0 / H)) / float(lam.max())
    else:
        lb = nan

    def crossing(stat):
        """First eta where stat(Kbar) >= 1 or an outer map is unstable (scan + bisection)."""
        def ok(eta):
            ro = round_operators(lam, mult, eta, opt)
            return ro.outer_radius < 1.0 and np.all(np.isfinite(ro.kernel)) and stat(ro.kernel) < 1.0
        top = _scan_top(lam, opt)
        etas = np.geomspace(top * 1e-8, top, points)
        prev = 0.0
        for eta in etas:
            if not ok(eta):
                return _bisect(ok, prev, float(eta))
            prev = float(eta)
        return math.inf

    nonneg = plain or bool(np.all(round_operators(lam, mult, 0.5 * exact, opt).kernel >= 0))
    if nonneg:
        bracket = (crossing(lambda K: K.sum(axis=1).max()), crossing(lambda K: K.sum(axis=1).min()))
    else:
        bracket = (nan, nan)
    return LADiLoCoEdges(
        exact=exact,
        slow_mode=sgd_threshold(lam, mult, M * B) / alpha,
        trace_edge=2.0 * M * B / (alpha * float(np.sum(mult * lam))),
        saturated=sgd_threshold(lam, mult, B),
        large_batch=lb,
        frozen_worker=crossing(lambda K: K[0].sum()) if plain else nan,
        bracket=bracket,
    )


# ----------------------------------------------------------------------------------------------------------
# the paper's results as functions (note §3.1, §3.5, §4.1)


def effective_spectrum(lam, opt):
    """u(lambda) = 1 - q_H(eta lambda): the effective eigenvalue the outer optimizer sees (note §4.1);
    ~ H eta lambda for slow modes, -> 1 for saturated ones (the fold of the inner-stable range)."""
    lam = np.asarray(lam, dtype=np.float64)
    return 1.0 - inner_responses(lam, np.ones_like(lam), opt.lr, opt)[2]


def mean_rate(lam, opt):
    """Deterministic per-inner-step contraction of the mean of each mode (note §4.1): |z_max|^(1/H), z the
    roots of the outer recurrence in the effective eigenvalue u: plain z = 1 - alpha u; heavy ball
    z^2 - (1 + beta - alpha u) z + beta = 0; Nesterov z^2 - (1+beta)(1 - alpha u) z + beta (1 - alpha u) = 0
    (characteristic polynomials of the (e, v) maps of §1.1 with Delta = u e, re-derived here)."""
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
    noise_approx: np.ndarray  # the note's closed form (1/B corrections dropped; beta = mu = 0 only, else nan)
    sgd_lr: float           # the comparator: SGD at eta_eff = alpha eta/((1-beta)(1-mu)), batch M B
    sgd_batch: int
    sgd_rate: np.ndarray    # |1 - eta_eff lambda|
    sgd_noise: np.ndarray   # eta_eff / (MB (2 - (1 + 1/(MB)) eta_eff lambda))


def signal_noise(lam, opt) -> SignalNoise:
    """The signal/noise trade-off of LA(-DiLoCo) vs SGD (note §3.1, claim (ii)). Signal: the per-inner-step
    contraction of each mode's mean (``mean_rate``). Noise: with every worker risk frozen at E, the stationary
    per-mode second moment is rho_j^inf = E (chi_j / M) sum_m i_j^(m) (the (L6) quantities); for beta = mu = 0
    and the 1/B corrections dropped this is the note's
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
    """Long-run risk 1/2 E_inf of a stable run (note §3.4): E^vec = (I - Kbar)^{-1} sigma^2 1 (the H worker
    risks of a round), E_inf = E^vec_0. inf if the run is unstable."""
    lam, _, mult = _positive_modes(problem)
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
    ratio: float            # >= 1, = 1 at H = 1 (note §3.5)
    saturated_ratio: float  # the H -> infinity limit of the ratio (beta = mu = 0), from SGD's ||K||


def worker_noise(problem, opt) -> WorkerNoise:
    """The extra noise of M > 1 workers (note §3.5, claim (iii)) at equal samples per inner step: M workers
    at batch B feed each worker's own batch-B noise into its later inner steps before averaging, so the slow
    weights carry more noise than one worker at batch MB (equality iff H = 1). The saturated-limit ratio is
    ||K(eta,B)|| (1 - ||K(eta,MB)||) / (M ||K(eta,MB)|| (1 - ||K(eta,B)||)). Mitigation (note §3.5): at fixed
    eta_eff = alpha eta, raise alpha and lower eta, or shorten H; call this function along such a line."""
    from dataclasses import replace

    from .sgd import kernel_norm

    half = 0.5 * problem.sigma2
    ew = stationary_risk(problem, opt) - half
    ep = stationary_risk(problem, replace(opt, workers=1, batch=opt.workers * opt.batch)) - half
    lam, _, mult = _positive_modes(problem)
    kb = kernel_norm(lam, mult, opt.lr, opt.batch)
    kmb = kernel_norm(lam, mult, opt.lr, opt.workers * opt.batch)
    sat = kb * (1.0 - kmb) / (opt.workers * kmb * (1.0 - kb)) if kb < 1 and kmb > 0 else math.nan
    return WorkerNoise(ew, ep, ew / ep if ep > 0 else math.nan, sat)


# ----------------------------------------------------------------------------------------------------------


#: the worker-risk shape of a block is read from the state a few exact rounds into the block, enough for the
#: transient of the modes that shape the worker risks to decay to SHAPE_DAMP of its start (module docstring,
#: "Block form"); at least SHAPE_AHEAD_MIN and at most SHAPE_AHEAD_MAX rounds
SHAPE_DAMP = 0.03
SHAPE_AHEAD_MIN = 2
SHAPE_AHEAD_MAX = 64


@dataclass
class RoundParts:
    """``la_round_parts`` at one eta (module docstring, "Block form")."""

    am1: np.ndarray    # (n,)    D - 1
    A: np.ndarray      # (H, n)  lambda a^(g)
    resp: np.ndarray   # (H, n)  response of R' to a unit p_g
    rsum: np.ndarray   # (n,)    sum_{g >= 1} resp[g]
    ahead: int         #         exact rounds into a block at which the shape is read


def round_parts(lam, mult, eta, opt) -> RoundParts:
    """Operators of one beta = 0 round at a constant inner step eta (``la_round_parts``) and the number of
    rounds ``ahead``: the smallest m in [SHAPE_AHEAD_MIN, SHAPE_AHEAD_MAX] with D_j^m <= SHAPE_DAMP for every
    mode that shapes the worker risks (a_j^(H-1) <= 1/2: it loses half its weight in E_w within a round)."""
    lam = np.ascontiguousarray(lam, dtype=np.float64)
    mult = np.ascontiguousarray(mult, dtype=np.float64)
    n, H = lam.shape[0], opt.inner_steps
    am1, A, resp = np.empty(n), np.empty((H, n)), np.empty((H, n))
    la_round_parts(lam, mult, float(eta), H, 1.0 / opt.batch, 1.0 / opt.workers, opt.outer_lr,
                   opt.inner_momentum, am1, A, resp)
    ahead = SHAPE_AHEAD_MIN
    with np.errstate(invalid="ignore", divide="ignore"):
        shaping = (A[H - 1] <= 0.5 * lam) & (lam > 0)
        if H > 1 and np.any(shaping):
            D = float(np.max(np.abs(1.0 + am1[shaping])))
            if not D < 1.0:
                ahead = SHAPE_AHEAD_MAX
            elif D > 0.0:
                ahead = int(min(max(math.ceil(math.log(SHAPE_DAMP) / math.log(D)), SHAPE_AHEAD_MIN),
                                SHAPE_AHEAD_MAX))
    return RoundParts(am1, A, resp, resp[1:].sum(axis=0), ahead)


def round_coefficients(P: RoundParts, lam, R, sigma2, R_shape=None):
    """(am1, f, h) with R' = (1 + am1) R + f + h E for one beta = 0 round: p_0 = E and p_g = sigma^2 + rho_g
    (E - sigma^2), g >= 1, with the worker-risk shape rho_g = A_g . R_s / lambda . R_s of R_s = ``R_shape``
    (default R); h = resp_0 + sum_g rho_g resp_g, f = sigma^2 sum_g (1 - rho_g) resp_g. With R_shape = R this
    is the exact round (tests: <= 1e-13 vs ``la_exact_rounds``)."""
    if P.A.shape[0] == 1:
        return P.am1, np.zeros_like(P.am1), P.resp[0]
    Rs = R if R_shape is None else R_shape
    ex = float(lam @ Rs)  # E - sigma^2, without the cancellation
    rho = P.A[1:] @ Rs / ex if ex > 0 else np.ones(P.A.shape[0] - 1)  # R_s = 0: any shape, same forcing
    shaped = rho @ P.resp[1:]
    return P.am1, sigma2 * (P.rsum - shaped), P.resp[0] + shaped


class LADiLoCoTheory(Theory):
    span = 1
    #: the block coefficients depend on the state (the worker-risk shape), so the driver must not cache them
    scalar_dependent = True

    def steps_per_update(self, opt) -> int:
        return opt.inner_steps

    def init(self, problem, opt) -> ModeState:
        """State: beta = 0: R (n modes); beta > 0: [R, C, V, rounds done] (the round counter lets ``affine``
        know where a block starts, see ``_exact_block``); readout E = sigma^2 + lambda . R."""
        lam, s0, mult = problem.spectral_modes(merge=True)
        n = lam.shape[0]
        mom = opt.outer_momentum > 0
        size = 3 * n + 1 if mom else n
        s = np.zeros(size)
        s[:n] = s0
        W = np.zeros((1, size))
        W[0, :n] = lam
        return ModeState(s=s, W=W, c0=np.array([problem.sigma2]), sigma2=problem.sigma2,
                         consts={"lam": lam, "mult": mult, "parts": {}, "last": None, "ahead": None,
                                 "exact_block": None})

    def exact(self, state, opt, k0, lr_seq, cap):
        c = state.consts
        n = c["lam"].shape[0]
        mom = opt.outer_momentum > 0
        s = state.s[:3 * n] if mom else state.s
        done = int(la_exact_rounds(c["lam"], c["mult"], s, lr_seq, opt.inner_steps, 1.0 / opt.batch,
                                   state.sigma2, cap, 1.0 / opt.workers, opt.outer_lr, opt.outer_momentum,
                                   opt.nesterov, opt.inner_momentum))
        if mom:
            state.s[3 * n] += done // opt.inner_steps
        return done

    # ------------------------------------------------------------------------------------------ block form

    def _coefficients(self, st, opt, eta):
        """(am1, f, h) of one round at inner step eta (``round_coefficients``) with the worker-risk shape read
        ``ahead`` exact rounds at eta into the block; round operators cached per eta. Under a moving schedule the
        shape is read at each eta asked for (block middle and end): reading the middle's shape for the end too
        left 2.8e-3 instead of 3.9e-4 (cosine, 0.95 eta*, alpha = 1), the fast modes following the lr."""
        c = st.consts
        cache = c["parts"]
        P = cache.get(eta)
        if P is None:
            if len(cache) >= 8:  # a moving schedule asks for new etas every block
                cache.clear()
            P = cache[eta] = round_parts(c["lam"], c["mult"], eta, opt)
        Rs = None
        if opt.inner_steps > 1:
            ah = c["ahead"]
            if ah is not None and ah[0] == eta and np.array_equal(ah[1], st.s):
                Rs = ah[2]
            else:
                Rs = st.s.copy()
                la_exact_rounds(c["lam"], c["mult"], Rs, np.full(P.ahead * opt.inner_steps, eta), opt.inner_steps,
                                1.0 / opt.batch, st.sigma2, np.inf, 1.0 / opt.workers, opt.outer_lr, 0.0, False,
                                opt.inner_momentum)
                c["ahead"] = (eta, st.s.copy(), Rs)
        return round_coefficients(P, c["lam"], st.s, st.sigma2, Rs)

    def affine(self, state, opt, t, scalars):
        """Per-round affine map s <- (1 + am1) s + f + h E for the driver's blocks (module docstring, "Block
        form"); ``t`` is the step time whose lr the round uses at all its H inner steps: the driver passes the
        middle step t_mid of a block, then, under a moving schedule, per-mode memory centres t_j in
        [t_mid, block end] (up to rounding), where the coefficients are evaluated at t_mid and max t_j and
        interpolated linearly in t (as clipped_sgd.py does). ``scalars`` is not used: the shape is read from
        ``state.s`` (the block's start). Results are memoised per block start, so the driver's corrector passes
        cost nothing. beta > 0: ``_exact_block``."""
        if opt.outer_momentum > 0:
            return self._exact_block(state, opt, t)
        tt = np.asarray(t, dtype=np.float64)
        memo = state.consts["last"]
        if memo is None or not np.array_equal(memo[0], state.s):
            memo = state.consts["last"] = (state.s.copy(), {})
        key = tt.tobytes()
        out = memo[1].get(key)
        if out is not None:
            return out
        if tt.ndim == 0:
            out = self._coefficients(state, opt, float(opt.lr_at(tt)))
            memo[1]["mid"] = (float(tt), out)
        else:
            lo, hi = memo[1].get("mid", (float(tt.min()), None))[0], float(tt.max())
            c0 = memo[1]["mid"][1] if "mid" in memo[1] else self._coefficients(state, opt, float(opt.lr_at(lo)))
            if hi > lo:
                c1 = self._coefficients(state, opt, float(opt.lr_at(hi)))
                x = (tt - lo) / (hi - lo)
                c0 = tuple(v0 + (v1 - v0) * x for v0, v1 in zip(c0, c1))
            out = c0
        memo[1][key] = out
        return out

    def _exact_block(self, st, opt, t):
        """beta > 0 (per-mode state (R, C, V) under a 3 x 3 map: no diagonal affine form): the block is stepped
        exactly here and handed to the driver as the constant map s <- s_end (am1 = -1, f = s_end, h = 0, which
        the driver's block formula applies exactly for any block length), the round counter as s <- s + 1.
        The block is [k, k + n) with k = H x (rounds done) and n = 2 (t - k) + 1, t the middle step the driver
        passes; per-mode times (moving schedules) reuse the block just computed. The rounds are stepped with
        checkpoints at nu >> j rounds, so a block the driver halves (step-size control) costs nothing more."""
        n = st.consts["lam"].shape[0]
        H = opt.inner_steps
        k0 = int(round(float(st.s[3 * n]))) * H
        tt = np.asarray(t, dtype=np.float64)
        blk = st.consts["exact_block"]
        if tt.ndim:
            if blk is None or blk[0] != k0 or blk[2] is None:
                raise RuntimeError("LA-DiLoCo exact block: per-mode times before the block's middle step")
            return blk[2]
        steps = 2.0 * (float(tt) - k0) + 1.0
        nu = int(round(steps / H))
        if nu < 1 or abs(steps - nu * H) > 1e-6:
            raise RuntimeError(f"LA-DiLoCo exact block: t = {float(tt)} is not the middle step of a block of whole "
                               f"rounds starting at step {k0} (driver time convention changed?)")
        if blk is None or blk[0] != k0 or nu not in blk[1]:
            c = st.consts
            marks = sorted({nu >> j for j in range(nu.bit_length())})
            lr_seq = np.ascontiguousarray(opt.lr_at(np.arange(k0, k0 + nu * H)), dtype=np.float64)
            s = st.s[:3 * n].copy()
            states, done = {}, 0
            for m in marks:
                la_exact_rounds(c["lam"], c["mult"], s, lr_seq[done * H:m * H], H, 1.0 / opt.batch, st.sigma2,
                                np.inf, 1.0 / opt.workers, opt.outer_lr, opt.outer_momentum, opt.nesterov,
                                opt.inner_momentum)
                states[m] = np.append(s, 1.0)
                done = m
            blk = [k0, states, None]
        am1 = np.full(3 * n + 1, -1.0)
        am1[-1] = 0.0
        blk[2] = (am1, blk[1][nu], np.zeros(3 * n + 1))
        st.consts["exact_block"] = blk
        return blk[2]

    def threshold(self, problem, opt) -> float:
        """First crossing of (L6) in the base lr (see the module docstring), divided by the schedule's peak."""
        lam, _, mult = _positive_modes(problem)
        peak = opt.sched.peak()
        return first_crossing(lam, mult, opt) / peak if peak > 0 else math.inf


def _register():
    from . import register

    register(LADiLoCo, LADiLoCoTheory())


_register()
