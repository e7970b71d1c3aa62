"""LA-DiLoCo stability: the per-mode outer maps, the (D6) criterion, lr scans, stable intervals, edges.

Criterion (D6) of docs/derivations/la_diloco.md §3 (after A. Agarwala, arXiv:2603.26954, 2026), exact: per mode
the outer map A_j on (R, C, V) with the multiplicative noise n -> m_j R, m_j = (a^(H) - q^2)/M, inside;
chi_j = [(I - A_j)^{-1} b]_R, b = dS'/dn (beta = 0: chi = alpha^2/(1 - D_j)); inner responses a^(h) and i^(m);
the H x H kernel

    Kbar_hs = 1[s < h] sum_j lambda_j i_j^(h-1-s) + (1/M) sum_j lambda_j a_j^(h) chi_j i_j^(H-1-s),

and the run is stable iff max_j specrad A_j < 1 and specrad Kbar < 1. The stable set in eta need not be an
interval (odd H, alpha < 1, inner momentum: §3): ``first_crossing`` returns the first crossing going up from
eta = 0+ (a geometric scan, then bisection on the first unstable cell); ``stable_intervals`` lists every
stable interval of the scan.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numba as nb
import numpy as np

from ..sgd import sgd_threshold
from .rounds import _outer_apply


def problem_modes(problem):
    """(lam, s0, mult) of the merged eigenmodes of ``problem`` (its ``spectral_modes`` protocol)."""
    if not (hasattr(problem, "spectral_modes") and hasattr(problem, "sigma2")):
        raise ValueError(f"LA-DiLoCo needs a problem with spectral_modes(merge=True) and sigma2 (hd.Problem, "
                         f"hd.powerlaw(...), ...), got {type(problem).__name__}")
    return problem.spectral_modes(merge=True)


def positive_modes(problem):
    """The merged modes with lambda > 0 (the others never move)."""
    lam, s0, mult = problem_modes(problem)
    keep = lam > 0
    return lam[keep], s0[keep], mult[keep]


def inner_responses(lam, mult, eta, opt):
    """Per-mode inner-loop responses at constant eta (§3, operational definitions for any mu):

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
    """Per-mode outer operators and the (D6) kernel at one eta (``round_operators``)."""

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
        """(D6): max_j specrad A_j < 1 and specrad Kbar < 1. For Kbar >= 0 (always when beta = 0) the second
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
    """(D6) at inner step size eta: per-mode outer maps A_j, chi_j and the H x H kernel Kbar (§3)."""
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


# ----------------------------------------------------------------------------------------------------------
# the (D6) test at one eta, in Numba (what the scans and bisections evaluate)


@nb.njit(cache=True)
def _schur_stable3(A):
    """Every eigenvalue of the real 3 x 3 matrix A strictly inside the unit circle (Jury's conditions on its
    characteristic polynomial z^3 + c2 z^2 + c1 z + c0)."""
    c2 = -(A[0, 0] + A[1, 1] + A[2, 2])
    c1 = (A[0, 0] * A[1, 1] - A[0, 1] * A[1, 0] + A[0, 0] * A[2, 2] - A[0, 2] * A[2, 0]
          + A[1, 1] * A[2, 2] - A[1, 2] * A[2, 1])
    c0 = -(A[0, 0] * (A[1, 1] * A[2, 2] - A[1, 2] * A[2, 1]) - A[0, 1] * (A[1, 0] * A[2, 2] - A[1, 2] * A[2, 0])
           + A[0, 2] * (A[1, 0] * A[2, 1] - A[1, 1] * A[2, 0]))
    return (1.0 + c2 + c1 + c0 > 0.0 and -1.0 + c2 - c1 + c0 < 0.0 and abs(c0) < 1.0
            and abs(c0 * c0 - 1.0) > abs(c0 * c2 - c1))


@nb.njit(cache=True)
def _chi3(A, b):
    """[(I - A)^{-1} b]_0 by Cramer's rule (3 x 3)."""
    m00, m01, m02 = 1.0 - A[0, 0], -A[0, 1], -A[0, 2]
    m10, m11, m12 = -A[1, 0], 1.0 - A[1, 1], -A[1, 2]
    m20, m21, m22 = -A[2, 0], -A[2, 1], 1.0 - A[2, 2]
    det = m00 * (m11 * m22 - m12 * m21) - m01 * (m10 * m22 - m12 * m20) + m02 * (m10 * m21 - m11 * m20)
    num = b[0] * (m11 * m22 - m12 * m21) - m01 * (b[1] * m22 - m12 * b[2]) + m02 * (b[1] * m21 - m11 * b[2])
    return num / det


@nb.njit(cache=True)
def d6_kernel(lam, mult, eta, H, inv_b, inv_m, alpha, beta, nesterov, mu, K, certify):
    """(D6) at inner step eta: 0 if an outer map is unstable or a response is not finite; else Kbar in K and 1;
    with ``certify``, 2 (stable, K not formed) where max_h sum_s |Kbar_hs| < 1 is shown by a bound on the row
    sums of |Kbar| (mu > 0; for mu = 0 Kbar is formed in O(H modes) anyway).

    mu = 0: a^(h) = av^h and i^(m) = c av^m (av = 1 - 2 x + (1 + 1/B) x^2, c = eta^2 lambda m_j / B), so both
    terms of Kbar depend on h - s only: Kbar_hs = 1[s < h] t_(h-1-s) + g_(h+H-1-s), t_k = sum_j lambda c av^k,
    g_k = (1/M) sum_j lambda chi c av^k. mu > 0: the inner chain step by step, Kbar by the O(H^2 modes) sum."""
    n = lam.shape[0]
    b = np.empty(3)
    cb = 1.0 + beta if nesterov else 1.0
    b[0] = alpha * alpha * cb * cb
    b[1] = -alpha * cb
    b[2] = 1.0
    A3 = np.empty((3, 3))
    chi = np.empty(n)
    aH = np.empty(n)
    q = np.empty(n)
    av = np.empty(n if mu == 0.0 else 0)
    a = np.empty((H + 1 if mu != 0.0 else 0, n))
    i = np.empty((H if mu != 0.0 else 0, n))
    if mu == 0.0:
        for j in range(n):
            x = eta * lam[j]
            av[j] = 1.0 + x * (-2.0 + (1.0 + inv_b) * x)
            q[j] = (1.0 - x) ** H
            aH[j] = av[j] ** H
    else:
        for j in range(n):
            lj = lam[j]
            ww, wm, mmv = 1.0, 0.0, 0.0
            a[0, j] = ww
            for k in range(H):
                mmn = mu * mu * mmv + 2.0 * mu * lj * wm + lj * lj * ww + (lj * lj * inv_b) * ww
                X = mu * wm + lj * ww
                ww, wm, mmv = ww - 2.0 * eta * X + eta * eta * mmn, X - eta * mmn, mmn
                a[k + 1, j] = ww
            inj = mult[j] * lj * inv_b
            ww, wm, mmv = eta * eta * inj, -eta * inj, inj
            i[0, j] = ww
            for k in range(H - 1):
                mmn = mu * mu * mmv + 2.0 * mu * lj * wm + lj * lj * ww + (lj * lj * inv_b) * ww
                X = mu * wm + lj * ww
                ww, wm, mmv = ww - 2.0 * eta * X + eta * eta * mmn, X - eta * mmn, mmn
                i[k + 1, j] = ww
            qw, qb = 1.0, 0.0
            for k in range(H):
                qb = mu * qb + lj * qw
                qw = qw - eta * qb
            q[j] = qw
            aH[j] = a[H, j]
            for k in range(H + 1):
                if not math.isfinite(a[k, j]):
                    return 0
            for k in range(H):
                if not math.isfinite(i[k, j]):
                    return 0
    for j in range(n):
        if not (math.isfinite(q[j]) and math.isfinite(aH[j])):
            return 0
        u = 1.0 - q[j]
        m = (aH[j] - q[j] * q[j]) * inv_m
        if beta == 0.0:
            D = (1.0 - alpha * u) ** 2 + alpha * alpha * m
            if not abs(D) < 1.0:
                return 0
            chi[j] = alpha * alpha / (1.0 - D)
        else:
            for c in range(3):
                R = 1.0 if c == 0 else 0.0
                C = 1.0 if c == 1 else 0.0
                V = 1.0 if c == 2 else 0.0
                r0, r1, r2 = _outer_apply(R, C, V, m * R, u, alpha, beta, nesterov)
                A3[0, c] = r0
                A3[1, c] = r1
                A3[2, c] = r2
            if not _schur_stable3(A3):
                return 0
            chi[j] = _chi3(A3, b)
    if mu == 0.0:
        t = np.zeros(H)
        g = np.zeros(2 * H - 1)
        for j in range(n):
            c = eta * eta * inv_b * mult[j] * lam[j]
            wt = lam[j] * c
            wg = wt * chi[j] * inv_m
            pw = 1.0
            for k in range(2 * H - 1):
                if k < H:
                    t[k] += wt * pw
                g[k] += wg * pw
                pw *= av[j]
        for k in range(2 * H - 1):
            if not math.isfinite(g[k]):
                return 0
        for k in range(H):
            if not math.isfinite(t[k]):
                return 0
        for h in range(H):
            for s in range(H):
                K[h, s] = (t[h - 1 - s] if s < h else 0.0) + g[h + H - 1 - s]
        return 1
    t = np.zeros(H)
    for k in range(H):
        for j in range(n):
            t[k] += lam[j] * i[k, j]
    w = np.empty(n)
    for j in range(n):
        w[j] = lam[j] * chi[j] * inv_m
    if certify:
        tabs = 0.0
        Sabs = np.zeros(n)
        for j in range(n):
            for k in range(H):
                Sabs[j] += abs(i[k, j])
        worst = 0.0
        for h in range(H):
            if h >= 1:
                tabs += abs(t[h - 1])
            row = tabs
            for j in range(n):
                row += abs(w[j] * a[h, j]) * Sabs[j]
            worst = max(worst, row)
        if worst < 1.0:
            return 2
    for h in range(H):
        for s in range(H):
            acc = t[h - 1 - s] if s < h else 0.0
            m = H - 1 - s
            for j in range(n):
                acc += w[j] * a[h, j] * i[m, j]
            K[h, s] = acc
            if not math.isfinite(acc):
                return 0
    return 1


@nb.njit(cache=True)
def m_matrix_stable(K):
    """For K >= 0: specrad K < 1 iff (I - K) x = 1 has a solution x > 0 (Gaussian elimination with partial
    pivoting; a zero pivot counts as singular, i.e. not stable)."""
    H = K.shape[0]
    Mx = np.empty((H, H))
    x = np.ones(H)
    for r in range(H):
        for c in range(H):
            Mx[r, c] = (1.0 if r == c else 0.0) - K[r, c]
    for c in range(H):
        piv = c
        for r in range(c + 1, H):
            if abs(Mx[r, c]) > abs(Mx[piv, c]):
                piv = r
        if Mx[piv, c] == 0.0:
            return False
        if piv != c:
            for cc in range(H):
                Mx[c, cc], Mx[piv, cc] = Mx[piv, cc], Mx[c, cc]
            x[c], x[piv] = x[piv], x[c]
        for r in range(c + 1, H):
            fct = Mx[r, c] / Mx[c, c]
            if fct != 0.0:
                for cc in range(c, H):
                    Mx[r, cc] -= fct * Mx[c, cc]
                x[r] -= fct * x[c]
    for r in range(H - 1, -1, -1):
        acc = x[r]
        for cc in range(r + 1, H):
            acc -= Mx[r, cc] * x[cc]
        x[r] = acc / Mx[r, r]
    for r in range(H):
        if not (x[r] > 0.0 and math.isfinite(x[r])):
            return False
    return True


def _stable(lam, mult, eta, opt) -> bool:
    """(D6) at inner step eta (``d6_kernel``; for Kbar >= 0 the M-matrix test, else its eigenvalues)."""
    H = opt.inner_steps
    K = np.empty((H, H))
    code = d6_kernel(lam, mult, float(eta), H, 1.0 / opt.batch, 1.0 / opt.workers, float(opt.outer_lr),
                     float(opt.outer_momentum), bool(opt.nesterov), float(opt.inner_momentum), K, True)
    if code != 1:
        return code == 2
    if np.all(K >= 0):
        return bool(m_matrix_stable(K))
    return float(np.max(np.abs(np.linalg.eigvals(K)))) < 1.0


def _scan_top(lam, opt) -> float:
    """Upper end of the lr scan: beyond 2 (1 + mu) max(1, 2/alpha) / lambda_max every mean map is unstable
    (the inner residual polynomial then exceeds 2/alpha - 1 in modulus, §3, large batch)."""
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
    lam = np.ascontiguousarray(lam, dtype=np.float64)
    mult = np.ascontiguousarray(mult, dtype=np.float64)
    top = _scan_top(lam, opt)
    lo = top * 1e-4
    pred = lambda eta: _stable(lam, mult, eta, opt)
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
    """First eta (going up from 0+) where (D6) fails; inf if the whole scan is stable."""
    lam = np.asarray(lam, dtype=np.float64)
    if lam.size == 0:
        return math.inf
    etas, flags, pred = _scan(lam, mult, opt, points)
    if flags[-1]:
        return math.inf
    k = len(flags) - 1
    return _bisect(pred, float(etas[k - 1]) if k else 0.0, float(etas[k]))


def stable_intervals(problem, opt, points=400):
    """Every stable interval (lo, hi) of eta found by a ``points``-point geometric scan of (D6) up to the
    scan top (§3: the stable set need not be an interval), each end refined by bisection."""
    lam, _, mult = positive_modes(problem)
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
# closed-form approximations of the threshold (§3)


@dataclass(frozen=True)
class LADiLoCoEdges:
    """The exact threshold (D6) of the inner lr and its closed-form approximations (§3)."""

    exact: float            # first crossing of (D6)
    slow_mode: float        # eta*_SGD(MB)/alpha (exact at H = 1 with beta = mu = 0; slow-mode regime)
    trace_edge: float       # 2 M B / (alpha tr K) (the cruder slow-mode estimate)
    saturated: float        # eta*_SGD(B): the H -> infinity limit (H eta lambda_min >> 1), any alpha in (0, 2)
    large_batch: float      # B -> infinity edge (beta = mu = 0, 0 < alpha < 2): 2/lambda_max (H even),
                            # (1 + (2/alpha - 1)^(1/H))/lambda_max (H odd)
    frozen_worker: float    # first crossing of row 0 of Kbar (frozen worker risk, beta = mu = 0): rough
    bracket: tuple          # (lo, hi) from the max / min row sums of Kbar (Kbar >= 0), (nan, nan) otherwise


def edges(problem, opt, points=400) -> LADiLoCoEdges:
    lam, _, mult = positive_modes(problem)
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


