"""signSGD on streaming Gaussian least squares (vector and matrix problems): the two closures on the driver's contract.

Update: theta_{k+1} = theta_k - lr_k sign(g_k) coordinatewise (entrywise for a matrix W, in output x input
coordinates), sign(0) = 0, g_k the minibatch gradient; with ``per_example`` the mean of the per-example signs. The
rows of a matrix problem decouple exactly (row i is a vector run started at row i of W_0 - W*), so its expected risk
is the sum over rows. Two closures (docs/derivations/signsgd.md §4, §9):

* (G3)/(G4), linearized per-mode map (after Xiao, Marshall, Agarwala, Paquette (2024), arXiv:2411.12135): with the
  per-mode constants mu_j, n_j of ``modes`` and rho~_j(k) = E (w_j^T D^{1/4} e_k)^2 summed over rows,

      rho~_j(k+1) = (1 - 2 lr_k a_B(s_k) mu_j) rho~_j(k) + lr_k^2 m n_j                                (G3)
      rho~_j(k+1) = (1 - 2 lr_k a_1 mu_j + (1 - 1/B) lr_k^2 a_1^2 mu_j^2) rho~_j(k) + (lr_k^2/B) m n_j   (G4)

  (sign of the mean / mean of per-example signs), a_B the drift law (``drift``) at the mean per-row
  s_k^2 = sum_j mu_j rho~_j(k) / m, m outputs; R = (m sigma^2 + sum_j mu_j rho~_j)/2. Block form: am1 = -2 lr a mu
  (or x(-2 + (1 - 1/B) x), x = lr a_1 mu), f = lr^2 m n (or /B), h = 0, readout E = m sigma^2 + sum mu rho~
  (``SCALARS``). At s = sigma = 0 nothing moves.
* (S2), the per-entry closure for axis-aligned K and Gaussian noise (``entries``), stepped exactly.

Which one (``closure``): (S2) for axis-aligned K with Gaussian (or no) label noise on matrix problems, and on vector
problems whose residual leans on single coordinates, L > LOCALIZED at the start or at the (G3) floor
(``localization``: L = sqrt(B) times the excess-weighted mean of c_k^2, c_k the correlation of coordinate k with the
residual; B -> 1 for per-example signs); (G3)/(G4) otherwise. (G3)/(G4) are valid (§7, ``validity``) while
L <= LOCALIZED (per recorded state for axis-aligned K and from the first failure on; once, at the start and the
floor, for dense K) and while (G3)'s drift stays within its Cauchy-Schwarz bound 2 lr sqrt(m n_j rho~_j) (where it
is held). signSGD never diverges: the risk settles at a finite floor for every lr
(``stationary_risk``, (G6)); the useful limit is ``no_progress_lr``.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numba as nb
import numpy as np

from ...jit import KERNEL
from ...stepping import integrate
from ...theory import SCALARS, BlockForm, Theory, Threshold
from . import entries
from .analysis import no_progress_lr, outputs, stationary_risk
from .drift import DriftLaw, drift, drift_law
from .modes import modes

#: (G3)/(G4) are valid while L <= LOCALIZED (``localization``; measured: (G3) is 0.8-1.7% off simulations at
#: L = 0.1 for B = 1-8, its error growing like L^1.5); (S2) replaces them beyond it where it applies
LOCALIZED = 0.1
#: (S2) carries every row of a matrix problem up to this many outputs, else this many representative rows
#: (``representative_rows``)
MAX_ROWS = 256
ROW_SEED = 0


@nb.njit(**KERNEL)
def signsgd_exact_steps(mu, n, rho, lr_seq, sigma2, sigma, A, mode, lx0, h, coef, batch, per_example, cap, inv_m):
    """Apply (G3) (or (G4) with ``per_example``) len(lr_seq) times in place on rho; returns the number of
    steps done, stopping early once E = sigma2 + sum mu rho passes ``cap`` or stops being finite. ``sigma2`` is
    the total noise variance m sigma^2, ``n`` the noise weights times m, ``inv_m`` = 1/m (the drift is taken at
    the per-row s^2 = inv_m sum mu rho). (G3)'s drift 2 lr a mu_j rho~_j is capped at its Cauchy-Schwarz bound
    2 lr sqrt(n_j rho~_j) (|E <w, e> <w, S>| <= sqrt(E <w, e>^2 E <w, S>^2); it binds only past the overshoot,
    2 lr a mu > 1 near rho~ ~ lr^2 n). With sigma = 0 and s = 0 (theta = theta*) g = 0 and nothing moves."""
    d = mu.shape[0]
    s2 = 0.0
    for j in range(d):
        s2 += mu[j] * rho[j]
    inv_b = 1.0 / batch
    for k in range(lr_seq.shape[0]):
        lr = lr_seq[k]
        if s2 == 0.0 and sigma == 0.0:
            continue
        a = drift(math.sqrt(max(s2 * inv_m, 0.0)), sigma, A, mode, lx0, h, coef)
        c1 = 2.0 * lr * a
        if per_example:
            c2 = (1.0 - inv_b) * (lr * a) ** 2
            fn = lr * lr * inv_b
        else:
            c2 = 0.0
            fn = lr * lr
        acc = 0.0
        if per_example or not _past_bound(a, mu, rho, n):  # the usual case, one vectorized loop
            for j in range(d):
                r = (1.0 - c1 * mu[j] + c2 * mu[j] * mu[j]) * rho[j] + fn * n[j]
                rho[j] = r
                acc += mu[j] * r
        else:
            for j in range(d):
                if a * a * mu[j] * mu[j] * rho[j] > n[j]:
                    # the drift 2 lr a mu rho~ past its Cauchy-Schwarz bound 2 lr sqrt(n rho~) (an overshoot)
                    r = rho[j] - 2.0 * lr * math.sqrt(n[j] * rho[j]) + fn * n[j]
                else:
                    r = (1.0 - c1 * mu[j]) * rho[j] + fn * n[j]
                rho[j] = r
                acc += mu[j] * r
        s2 = acc
        if not (sigma2 + s2 <= cap):
            return k + 1
    return lr_seq.shape[0]


@nb.njit(**KERNEL)
def sign_coefficients(hp, z, s, consts, am1, f, h):
    """(G3)/(G4) as the block form s <- (1 + am1) s + f + h E at hp = (lr,), z = (E,): x = lr a_B(s) mu,
    am1 = -2 x, f = lr^2 n (G3), or am1 = x (-2 + (1 - 1/B) x), f = lr^2 n / B (G4, a = a_1), h = 0, with the
    per-row s^2 = (E - sigma2)/m (``sigma2`` = m sigma^2, ``n`` = m n_j), (G3)'s drift capped as in
    ``signsgd_exact_steps`` at the block's start state s and am1 >= -2 (a multiplier held over a block must not
    exceed 1 in size; only past the validity of (G3)); all zero at s = sigma = 0 (theta = theta*). One regime
    (0)."""
    mu, n, sigma2, sigma, A, mode, lx0, hx, coef, B, per_example, inv_m = consts
    lr = hp[0]
    s2 = (z[0] - sigma2) * inv_m
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
    elif not _past_bound(a, mu, s, n):  # the usual case, one vectorized loop
        for j in range(mu.shape[0]):
            am1[j] = max(-2.0 * (la * mu[j]), -2.0)
            f[j] = fn * n[j]
            h[j] = 0.0
    else:
        for j in range(mu.shape[0]):
            if a * a * mu[j] * mu[j] * s[j] > n[j]:  # the Cauchy-Schwarz bound on the drift, at the block's start
                am1[j] = -2.0 * lr * math.sqrt(n[j] / s[j])
            else:
                am1[j] = -2.0 * (la * mu[j])
            # past 2 lr a mu = 2 a frozen multiplier would grow; the exact map stays bounded
            am1[j] = max(am1[j], -2.0)
            f[j] = fn * n[j]
            h[j] = 0.0
    return 0


@nb.njit(**KERNEL)
def _validity_sums(mu, rho, count, n, inv_m, sigma, A, mode, lx0, hx, coef, per_example):
    """What ``validity`` reads, in one call: (sum_j x_j, sum_j x_j^2 / count_j, past) with x_j = mu_j rho_j the
    excess of merged mode j and ``past`` whether (G3)'s drift passes its Cauchy-Schwarz bound at this state
    (``_past_bound``, at the drift of the per-row s^2 = inv_m sum_j x_j; False for (G4) and at zero excess)."""
    sx = 0.0
    sxx = 0.0
    for j in range(mu.shape[0]):
        x = mu[j] * rho[j]
        sx += x
        sxx += x * x / count[j]
    past = False
    if sx > 0.0 and not per_example:
        a = drift(math.sqrt(sx * inv_m), sigma, A, mode, lx0, hx, coef)
        past = _past_bound(a, mu, rho, n)
    return sx, sxx, past


@nb.njit(**KERNEL)
def _past_bound(a, mu, rho, n):
    """Whether some mode's linearized drift exceeds its Cauchy-Schwarz bound: a^2 mu_j^2 rho_j > n_j. A vectorized
    count (the usual answer is no): the step kernels then drop the bound's per-mode branch and square root."""
    a2 = a * a
    hits = 0
    for j in range(mu.shape[0]):
        hits += a2 * mu[j] * mu[j] * rho[j] > n[j]
    return hits > 0


@nb.njit(**KERNEL)
def _integrate(consts, hp, s, W, c0, z, k, k_stop, k_ref, delta, span, grid, rec, i, cap, geo_tol, dmax,
               dependence, correctors, extrapolate, single, switching, carry):
    return integrate(sign_coefficients, consts, hp, s, W, c0, z, k, k_stop, k_ref, delta, span, grid, rec, i, cap,
                     geo_tol, dmax, dependence, correctors, extrapolate, single, switching, carry)


@dataclass
class SignSGDState:
    """(G3)/(G4): rho~_j per merged mode summed over rows (preconditioned eigenvalue mu_j, noise weight n_j
    times m), the readout E = c0 + W rho~ (W = mu as a row, c0 = m sigma^2), the drift law, the optimizer's batch
    and sign placement, and what ``validity`` reads: ``count`` (coordinates merged into each mode, axis-aligned K;
    None for dense K), ``fixed_reason`` (dense K: the start and floor test, done once) and ``invalid`` (the first
    failure's reason, kept)."""

    rho: np.ndarray
    mu: np.ndarray
    n: np.ndarray
    W: np.ndarray
    c0: np.ndarray
    sigma2: float
    law: DriftLaw
    batch: int
    per_example: bool
    outputs: int = 1
    count: np.ndarray | None = None
    fixed_reason: str = ""
    invalid: str = ""
    closure = "G3"


@dataclass
class EntryState:
    """(S2): per carried row r and input k the entry mean a[r, k] and variance v[r, k] of the error, the rows'
    q_r = sum_k lambda_k (a^2 + v) + sigma^2 and weights w_r (``representative_rows``), and the constants of
    ``entries.entries_steps``."""

    lam: np.ndarray
    a: np.ndarray
    v: np.ndarray
    q: np.ndarray
    w: np.ndarray
    sigma2: float
    consts: tuple
    batch: int
    per_example: bool
    closure = "S2"


def _error_rows(problem) -> np.ndarray:
    e0 = np.asarray(problem.init, dtype=np.float64) - np.asarray(problem.target, dtype=np.float64)
    return np.atleast_2d(e0)


def representative_rows(e0: np.ndarray, lam: np.ndarray, max_rows: int = MAX_ROWS, seed: int = ROW_SEED):
    """(rows, weights) standing for the rows of e0 (m x n) in (S2): all rows (weights 1) when m <= max_rows.
    Else the max_rows/2 rows with the largest sum_k lambda_k |e_rk|^3 (the area under a row's sign-descent risk
    curve: the rows that set the late plunge) with weight 1, and max_rows/2 of the others by systematic sampling
    in that order (a fixed seed's offset), each weighted by (others)/(drawn) and with every column rescaled so
    that the weighted sum of squares over the drawn rows is the others' (a column whose drawn entries are all 0
    gets the others' root mean square). The initial risk is then exact."""
    m = e0.shape[0]
    if m <= max_rows:
        return e0.copy(), np.ones(m)
    key = np.abs(e0) ** 3 @ lam
    order = np.argsort(-key, kind="stable")
    top, rest = order[:max_rows // 2], order[max_rows // 2:]
    drawn = max_rows - top.size
    step = rest.size / drawn
    offset = np.random.default_rng(seed).uniform(0.0, step)
    pick = rest[np.minimum((offset + step * np.arange(drawn)).astype(np.int64), rest.size - 1)]
    rows = e0[pick].copy()
    want = np.sum(e0[rest] ** 2, axis=0)
    have = np.sum(rows * rows, axis=0) * step
    ok = have > 0
    rows[:, ok] *= np.sqrt(want[ok] / have[ok])
    empty = ~ok & (want > 0)
    rows[:, empty] = np.sqrt(want[empty] / rest.size)
    return np.vstack([e0[top], rows]), np.r_[np.ones(top.size), np.full(drawn, step)]


def entries_supported(problem, opt) -> bool:
    """(S2) applies: axis-aligned K and Gaussian label noise (or none: sigma = 0 for any law)."""
    return problem.basis is None and (problem.noise.sigma == 0 or getattr(problem.noise, "kind", "") == "gaussian")


def _effective_batch(opt) -> int:
    return 1 if opt.per_example else int(opt.batch)


def _start_localization(problem, opt) -> tuple[float, np.ndarray]:
    """(L at the start, diag K): ``localization``'s first number, which does not depend on lr."""
    return _start_localization_at(problem, _effective_batch(opt))


@functools.lru_cache(maxsize=64)
def _start_localization_at(problem, batch: int) -> tuple[float, np.ndarray]:
    """``_start_localization`` for the effective batch, cached per problem object (a solve's closure choice and
    its localization both ask; diag K is returned read-only)."""
    rootB = math.sqrt(batch)
    e0 = _error_rows(problem)
    if problem.basis is None:
        Kd = np.asarray(problem.eigenvalues, dtype=np.float64)
        Ke = e0 * Kd
    else:  # O(m n^2), without forming K
        U = np.asarray(problem.basis, dtype=np.float64)
        lam = np.asarray(problem.eigenvalues, dtype=np.float64)
        Ke = ((e0 @ U) * lam) @ U.T
        Kd = (U * U) @ lam
    q = np.einsum("ij,ij->i", Ke, e0) + problem.sigma2
    keep = Kd > 0
    x = np.zeros_like(Ke)  # q_r c_rk^2
    x[:, keep] = Ke[:, keep] ** 2 / Kd[keep]
    live = q > 0
    num = float(np.sum(x[live] ** 2 / q[live, None]))
    den = float(np.sum(x[live]))
    Kd = np.array(Kd)
    Kd.setflags(write=False)
    return (rootB * num / den if den > 0 else 0.0), Kd


def localization(problem, opt) -> tuple[float, float]:
    """(L at the start, L at the (G3) floor at the schedule's peak lr), L = sqrt(B) <c^2> the excess-weighted
    mean of c^2 times sqrt(B),

        L = sqrt(B) sum_{r,k} q_r c_rk^4 / sum_{r,k} q_r c_rk^2,   c_rk^2 = (E K)_rk^2 / (K_kk q_r),

    c_rk the correlation of input k with row r's residual, q_r = (E K E^T)_rr + sigma^2 (B -> 1 for per-example
    signs): how far the drift is from its linearization where the excess sits (for diagonal K the weights
    q_r c_rk^2 = lambda_k e_rk^2 are the entries' excess; sqrt(B) is measured: at equal L, B = 1, 4, 8 give
    (G3) errors within a factor 2). At the (G3) floor c_k^2 = sqrt(K_kk) / sum_i sqrt(K_ii) (1 - sigma^2/q*), so
    L* = sqrt(B) (1 - sigma^2/q*) tr K / (sum_i sqrt(K_ii))^2."""
    start, Kd = _start_localization(problem, opt)
    rootB = math.sqrt(_effective_batch(opt))
    sd = np.sqrt(np.clip(Kd, 0.0, None))
    try:
        q_star = 2.0 * stationary_risk(problem, opt.with_lr(opt.lr * opt.sched.peak())) / outputs(problem)
    except (ValueError, ArithmeticError):
        q_star = math.inf
    frac = 1.0 - problem.sigma2 / q_star if q_star > 0 and math.isfinite(q_star) else 1.0
    floor = rootB * frac * float(np.sum(sd * sd)) / float(sd.sum()) ** 2 if sd.sum() > 0 else 0.0
    return start, floor


def closure(problem, opt) -> str:
    """"S2" or "G3" (module docstring): the closure ``SignSGDTheory`` integrates for ``problem`` and ``opt``."""
    for name in ("init", "target", "eigenvalues", "basis", "noise"):
        if not hasattr(problem, name):
            raise ValueError(f"signSGD theory needs the problem's {name!r} (an hd problem: hd.Problem, "
                             f"hd.from_covariance, hd.matrix_powerlaw, ...), got {type(problem).__name__}")
    if not entries_supported(problem, opt):
        return "G3"
    if outputs(problem) > 1 or np.ndim(problem.target) == 2:
        return "S2"
    if _start_localization(problem, opt)[0] > LOCALIZED:  # the floor's L (an lr-dependent root) not needed
        return "S2"
    return "S2" if localization(problem, opt)[1] > LOCALIZED else "G3"


class SignSGDTheory(Theory):
    def init(self, problem, opt):
        if closure(problem, opt) == "S2":
            return self._init_entries(problem, opt)
        m = modes(problem)
        law = drift_law(problem.noise, 1 if opt.per_example else opt.batch)
        mu = np.array(m.mu)
        mout = outputs(problem)
        count = None
        fixed = ""
        if problem.basis is None:
            lam = np.sqrt(np.asarray(problem.eigenvalues, dtype=np.float64))
            uniq, cnt = np.unique(lam, return_counts=True)
            count = cnt.astype(np.float64) if uniq.size == mu.size else np.ones(mu.size)
        else:
            start, floor = localization(problem, opt)
            fixed = _localized_reason(start, floor, _effective_batch(opt))
        return SignSGDState(rho=np.array(m.rho0), mu=mu, n=np.array(m.n) * mout,
                            W=np.ascontiguousarray(mu[None, :]), c0=np.array([float(problem.noise_variance)]),
                            sigma2=float(problem.noise_variance), law=law, batch=int(opt.batch),
                            per_example=bool(opt.per_example), outputs=mout, count=count, fixed_reason=fixed)

    def _init_entries(self, problem, opt) -> EntryState:
        lam = np.ascontiguousarray(problem.eigenvalues, dtype=np.float64)
        rows, w = representative_rows(_error_rows(problem), lam)
        rows = np.ascontiguousarray(rows)
        sigma2 = float(problem.sigma2)
        q = rows * rows @ lam + sigma2
        return EntryState(lam=lam, a=rows, v=np.zeros_like(rows), q=np.ascontiguousarray(q), w=w, sigma2=sigma2,
                          consts=entries.law_constants(opt.batch, opt.per_example),
                          batch=int(opt.batch), per_example=bool(opt.per_example))

    def risk(self, st) -> float:
        if isinstance(st, EntryState):
            return 0.5 * float(st.w @ st.q)
        return 0.5 * float((st.c0 + st.W @ st.rho)[0])

    def step(self, st, k0, hyper, cap) -> int:
        if isinstance(st, EntryState):
            return int(entries.entries_steps(st.lam, st.a, st.v, st.q, st.w, hyper[0], st.sigma2, *st.consts,
                                             st.batch, st.per_example, 2.0 * cap))
        law = st.law
        return int(signsgd_exact_steps(st.mu, st.n, st.rho, hyper[0], st.sigma2, law.sigma, law.A, law.mode,
                                       law.lx0, law.h, law.coef, st.batch, st.per_example, 2.0 * cap,
                                       1.0 / st.outputs))

    def block_form(self, st, opt) -> BlockForm | None:
        """(G3)/(G4) only ((S2) is stepped exactly). The spline table is passed as a writable copy so that every
        law gives the same Numba types (one compilation of the bound integrator)."""
        if isinstance(st, EntryState):
            return None
        law = st.law
        consts = (st.mu, st.n, float(st.sigma2), float(law.sigma), float(law.A), int(law.mode), float(law.lx0),
                  float(law.h), np.array(law.coef), int(st.batch), bool(st.per_example), 1.0 / st.outputs)
        return BlockForm(run=_integrate, consts=consts, s=st.rho, W=st.W, c0=st.c0, dependence=SCALARS)

    def validity(self, st, opt) -> str:
        """(S2): "" (its approximations are not tested). (G3)/(G4): the localization test L <= LOCALIZED
        (``localization``), per state for axis-aligned K (from the excess x_j = mu_j rho~_j of each mode, spread
        evenly over its count_j merged coordinates and the rows: L = sqrt(B) sum_j x_j^2/count_j / (E sum_j x_j)),
        once at the start and the floor for dense K; and (G3)'s drift within its Cauchy-Schwarz bound,
        a^2 mu_j^2 rho~_j <= m n_j (for axis-aligned K: f_B'(0) |c_j| <= 1). A failure sticks: the error of a
        nonlinear phase outlives it."""
        if isinstance(st, EntryState):
            return ""
        if st.invalid:
            return st.invalid
        law = st.law
        sx, sxx, past = _validity_sums(st.mu, st.rho, st.count if st.count is not None else st.mu, st.n,
                                       1.0 / st.outputs, law.sigma, law.A, law.mode, law.lx0, law.h,
                                       law.coef, st.per_example)  # sxx unused without count
        E = float(st.c0[0] + sx)
        why = st.fixed_reason
        if not why and st.count is not None and E > 0 and sx > 0:
            B = _effective_batch(opt)
            why = _localized_reason(math.sqrt(B) * sxx / (E * sx), 0.0, B)
        if not why and past:
            why = ("the linearized drift of a mode exceeds its Cauchy-Schwarz bound (there (G3) holds it at the "
                   "bound): a mean sign past 1")
        st.invalid = why
        return why

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


def _localized_reason(start: float, floor: float, B: int) -> str:
    what = (f"sqrt(B) times the excess-weighted mean of c_k^2 (c_k the correlation of input k with the residual, "
            f"B = {B})")
    if start > LOCALIZED:
        return (f"the residual leans on single inputs: {what} is {start:.3g} > {LOCALIZED:g}, where the linearized "
                f"drift of (G3) fails (those inputs do sign descent)")
    if floor > LOCALIZED:
        return (f"at the floor {what} is {floor:.3g} > {LOCALIZED:g} (tr K / (sum_k sqrt(K_kk))^2 is not small), "
                f"where the linearized drift of (G3) fails")
    return ""
