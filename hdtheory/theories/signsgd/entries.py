"""signSGD's per-entry closure (S2) for axis-aligned K and Gaussian label noise (docs/derivations/signsgd.md §9).

For K = diag(lambda) each row of the error W - W* (one row for a vector problem) is a vector signSGD run, and with
Gaussian data and noise one update entry's mean is exact: E[sign G_k | e] = f_B(c_k), c_k = corr(r, x_k) =
sqrt(lambda_k) e_k / sqrt(q), q = sum_l lambda_l e_l^2 + sigma^2, with (f_1 = (2/pi) arcsin c, f_2 = c)

    f_B(c) = 1 - 2 I_{(1-c)/2}(B/2, B/2) = K_B int_0^c (1 - t^2)^{B/2-1} dt,   K_B = f_B'(0) = sqrt(2/pi) c_B,

and sign^2 = 1. The closure models entry k of a row as N(a_k, v_k) and holds the rest of the row's residual
q_{-k} = q - lambda_k (a_k^2 + v_k) at its mean; with D = a + sqrt(v) xi, xi ~ N(0, 1), and the self-normalised
c(xi) = sqrt(lambda) D / sqrt(q_{-k} + lambda D^2) (|c| <= 1):

    a' = a - lr E f_B(c),   E D'^2 = a^2 + v - 2 lr E[D f_B(c)] + lr^2,   v' = max(E D'^2 - a'^2, 0)     (S2)

and the risk is sum_r w_r q_r / 2 over the rows carried (weights w_r). Mean of per-example signs: the drift is
f_1's and lr^2 becomes lr^2 (1/B + (1 - 1/B) E f_1(c)^2). The expectations over xi, with w = sqrt(lambda/q_{-k}) D
(c = w / sqrt(1 + w^2)): where w is small, the odd series of f_B(c(w)) (whose derivative is
K_B (1 + w^2)^{-(B+1)/2}) over the Gaussian moments of w; else 24-node Gauss-Hermite, or Gauss-Legendre in
asinh(w) where D's spread crosses f's transition; v = 0 and q_{-k} = 0 (c = sign D) in closed form; each to ~1e-7.
f_B for B >= 3 from a table of 20001 points on [-1, 1].

Validity: Gaussian label noise; the approximations are the Gaussian entry law and a deterministic q_{-k}. It
reduces to the linearized per-mode map (G3) where every |c| << 1, and to exact sign descent |a| <- ||a| - lr|
where one entry is its row's whole residual.
"""
from __future__ import annotations

import functools
import math

import numba as nb
import numpy as np
from scipy import special

from ...checks import check_batch
from ...jit import KERNEL
from ...special import atan_vec

#: the odd series of f_B(c(w)) in w, SERIES_TERMS terms, where its first omitted term is < SERIES_TOL relative
SERIES_TERMS = 8
SERIES_TOL = 1e-7
SERIES_SPREAD = float(np.prod(np.arange(1, 2 * SERIES_TERMS + 2, 2, dtype=np.float64)) ** (1.0 / SERIES_TERMS))
#: the stepping kernel's first pass: the series to this many terms, branch-free, for every entry it suits
FAST_TERMS = 5
#: Gauss-Hermite nodes; used while the entry's spread s = sqrt(lambda v / q_{-k}) has beta_B s <= GH_SPREAD,
#: beta_B = sqrt(max(B, 2)/2) (f_B's transition in w has width ~1/beta_B); error < 1e-8
GH_NODES = 24
GH_SPREAD = 0.5
#: Gauss-Legendre nodes in asinh(beta_B w) over xi in [-XI_RANGE, XI_RANGE] for wider entries (error < 1e-6)
GL_NODES = 64
XI_RANGE = 8.5
TABLE_POINTS = 20001

XI, WT = np.polynomial.hermite_e.hermegauss(GH_NODES)
WT = WT / WT.sum()
XL, WL = np.polynomial.legendre.leggauss(GL_NODES)
for _a in (XI, WT, XL, WL):
    _a.setflags(write=False)


def kappa(B: int) -> float:
    """K_B = f_B'(0) = Gamma(B) / (2^(B-2) Gamma(B/2)^2) (= sqrt(2/pi) c_B)."""
    return math.exp(special.gammaln(B) - (B - 2) * math.log(2.0) - 2.0 * special.gammaln(B / 2.0))


def f_batch(c, B: int) -> np.ndarray:
    """f_B(c) = E[sign(sum_b xi_b eta_b)] for B pairs of standard normals with correlation c (reference)."""
    B = check_batch(B)
    c = np.clip(np.asarray(c, dtype=np.float64), -1.0, 1.0)
    if B == 1:
        return (2.0 / math.pi) * np.arcsin(c)
    if B == 2:
        return c.copy()
    return 1.0 - 2.0 * special.betainc(0.5 * B, 0.5 * B, 0.5 * (1.0 - c))


def series(B: int, terms: int = SERIES_TERMS):
    """(c, d, eps_max): f_B(w / sqrt(1 + w^2)) = sum_n c_n w^(2n+1) (c_n = K_B (-1)^n (p)_n / (n! (2n+1)),
    p = (B+1)/2: its derivative is K_B (1 + w^2)^(-p)), its square sum_n d_n w^(2n+2), and eps_max[N-1] =
    (SERIES_TOL |c_0 / c_N|)^(1/N), the largest eps = t^2 (a^2 + SERIES_SPREAD v) at which N terms reach
    SERIES_TOL relative (the first omitted term against the first; Gaussian w has E w^(2N+2) / E w^2 <= eps^N)."""
    K, p = kappa(B), 0.5 * (B + 1)
    c = np.empty(terms + 1)
    poch = 1.0
    for n in range(terms + 1):
        c[n] = K * (-1) ** n * poch / (math.factorial(n) * (2 * n + 1))
        poch *= p + n
    eps_max = np.array([(SERIES_TOL * K / abs(c[n])) ** (1.0 / n) for n in range(1, terms + 1)])
    c = c[:terms]
    d = np.array([sum(c[i] * c[j - i] for i in range(j + 1)) for j in range(terms)])
    return c, d, eps_max


@functools.lru_cache(maxsize=32)
def table(B: int) -> np.ndarray:
    """f_B on TABLE_POINTS uniform points of [-1, 1] (read-only)."""
    out = f_batch(np.linspace(-1.0, 1.0, TABLE_POINTS), B)
    out.setflags(write=False)
    return out


@nb.njit(cache=True, inline="always", error_model="numpy")
def _f(c, w, kind, tab):
    """f_B(c) at c = w / sqrt(1 + w^2): kind 1 (B = 1) (2/pi) atan w, kind 2 (B = 2) c, else the table
    (branch-free within each kind)."""
    if kind == 1:
        return 0.6366197723675814 * atan_vec(w)
    if kind == 2:
        return c
    x = (c + 1.0) * (0.5 * (tab.shape[0] - 1))
    i = min(max(int(x), 0), tab.shape[0] - 2)
    u = x - i
    return tab[i] + u * (tab[i + 1] - tab[i])


@nb.njit(**KERNEL)
def quadrature_moments(a, v, lam, qm, kind, tab, beta):
    """(E f(c), E[D f(c)], E f(c)^2) for D ~ N(a, v), c = sqrt(lam) D / sqrt(qm + lam D^2), by quadrature or
    closed forms (where the series of ``entries_steps`` does not reach SERIES_TOL). With w = t D, t = sqrt(lam/qm),
    s = t sqrt(v): v = 0 or qm = 0 (c = sign D) in closed form; Gauss-Hermite where beta s <= GH_SPREAD; else
    (D's spread crosses f's transition, width ~1/(beta s) in xi) Gauss-Legendre in u = asinh(beta w) over
    xi in [-XI_RANGE, XI_RANGE]."""
    sv = math.sqrt(v)
    if qm <= 0.0:  # the entry is its row's whole residual: c = sign(D)
        if sv == 0.0:
            sg = 1.0 if a > 0.0 else (-1.0 if a < 0.0 else 0.0)
            return sg, abs(a), sg * sg
        z = a / (sv * math.sqrt(2.0))
        e = math.erf(z)
        return e, a * e + sv * 0.7978845608028654 * math.exp(-z * z), 1.0
    t = math.sqrt(lam / qm)
    if sv == 0.0:
        w = t * a
        g = _f(w / math.sqrt(1.0 + w * w), w, kind, tab)
        return g, a * g, g * g
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s = t * sv
    if beta * s <= GH_SPREAD:
        for i in range(XI.shape[0]):
            D = a + sv * XI[i]
            w = t * D
            g = _f(w / math.sqrt(1.0 + w * w), w, kind, tab)
            p = WT[i]
            s0 += p * g
            s1 += p * D * g
            s2 += p * g * g
        return s0, s1, s2
    xi0 = -a / sv
    sb = beta * s
    ulo = math.asinh(sb * (-XI_RANGE - xi0))
    uhi = math.asinh(sb * (XI_RANGE - xi0))
    um = 0.5 * (uhi + ulo)
    uh = 0.5 * (uhi - ulo)
    for i in range(XL.shape[0]):
        u = um + uh * XL[i]
        e = math.exp(u)
        sh = 0.5 * (e - 1.0 / e)
        ch = 0.5 * (e + 1.0 / e)
        x = xi0 + sh / sb
        p = WL[i] * uh * ch / sb * 0.3989422804014327 * math.exp(-0.5 * x * x)
        D = sv * (x - xi0)
        w = sh / beta
        g = _f(w / math.sqrt(1.0 + w * w), w, kind, tab)
        s0 += p * g
        s1 += p * D * g
        s2 += p * g * g
    return s0, s1, s2


@nb.njit(cache=True, inline="always")
def _series_terms(lj, aj, vj, qr, cs, ds, em, terms):
    """(ok, E f, E[D f], E f^2, E D^2) of one entry D ~ N(a, v) in a row with residual qr, by the odd series of
    f(c(w)) (``series``) to ``terms`` terms; ``ok``: the entry suits it (lambda > 0, q_{-k} > 0 and
    t^2 (a^2 + SERIES_SPREAD v) <= em, t^2 = lambda / q_{-k}), the moments mean nothing where not. Sums the
    series over the moments of D itself, M_k = a M_{k-1} + (k - 1) v M_{k-2}, against c_n t^(2n+1) (no division
    but t^2). Branch-free, so that loops over entries vectorize."""
    m2 = aj * aj + vj
    qm = qr - lj * m2
    ok = lj > 0.0 and qm > 1e-15 * qr
    t2 = lj / qm if ok else 0.0
    ok = ok and t2 * aj * aj + SERIES_SPREAD * t2 * vj <= em
    t = math.sqrt(t2)
    M_prev = 1.0
    M_odd = aj
    f0 = 0.0
    f1 = 0.0
    f2 = 0.0
    tp = t
    for nn in range(terms):
        kk = 2.0 * nn + 2.0
        M_even = aj * M_odd + (kk - 1.0) * vj * M_prev
        M_next = aj * M_even + kk * vj * M_odd
        cc = cs[nn] * tp
        f0 += cc * M_odd
        f1 += cc * M_even
        f2 += ds[nn] * tp * t * M_even
        tp *= t2
        M_prev = M_even
        M_odd = M_next
    return ok, f0, f1, f2, m2


@nb.njit(cache=True, inline="always")
def _update(aj, m2, f0, f1, f2, lr, lr2, inv_b, per_example):
    """(S2) for one entry from its moments (E f, E[D f], E f^2) and E D^2 = m2: (a', v')."""
    noise = lr2 * (inv_b + (1.0 - inv_b) * f2) if per_example else lr2
    an = aj - lr * f0
    return an, max(m2 - 2.0 * lr * f1 + noise - an * an, 0.0)


@nb.njit(**KERNEL)
def entry_moments(a, v, lam, qm, kind, tab, cs, ds, eps_max, beta):
    """(E f(c), E[D f(c)], E f(c)^2) for D ~ N(a, v), c = sqrt(lam) D / sqrt(qm + lam D^2), as ``entries_steps``
    evaluates them for an entry its FAST_TERMS pass leaves: the series to SERIES_TERMS terms where it suits,
    else ``quadrature_moments`` (each to ~1e-7)."""
    ok, f0, f1, f2, _ = _series_terms(lam, a, v, qm + lam * (a * a + v), cs, ds, eps_max[SERIES_TERMS - 1],
                                      SERIES_TERMS)
    if ok:
        return f0, f1, f2
    return quadrature_moments(a, v, lam, qm, kind, tab, beta)


@nb.njit(**KERNEL)
def series_pass(lam, ar, vr, qr, lr, lr2, inv_b, per_example, cs, ds, em, done):
    """One (S2) step of one row (a, v) with residual qr by the series to FAST_TERMS terms, for every entry it
    suits (most entries); marks them in ``done``. Returns the sum of lambda (a^2 + v) over them and one past
    the last index it left."""
    acc = 0.0
    last = 0
    for j in range(lam.shape[0]):
        lj = lam[j]
        aj = ar[j]
        ok, f0, f1, f2, m2 = _series_terms(lj, aj, vr[j], qr, cs, ds, em, FAST_TERMS)
        an, vn = _update(aj, m2, f0, f1, f2, lr, lr2, inv_b, per_example)
        done[j] = ok
        ar[j] = an if ok else aj
        vr[j] = vn if ok else vr[j]
        acc += lj * (an * an + vn) if ok else 0.0
        last = max(last, j + 1 if not ok and lj > 0.0 else 0)
    return acc, last


@nb.njit(**KERNEL)
def _series_gathered(gl, ga, gv, gok, n, qr, lr, lr2, inv_b, per_example, cs, ds, em):
    """``series_pass`` to SERIES_TERMS terms over the first n gathered entries (lambda, a, v) = (gl, ga, gv),
    in place; gok marks those it suits."""
    for i in range(n):
        aj = ga[i]
        ok, f0, f1, f2, m2 = _series_terms(gl[i], aj, gv[i], qr, cs, ds, em, SERIES_TERMS)
        an, vn = _update(aj, m2, f0, f1, f2, lr, lr2, inv_b, per_example)
        gok[i] = ok
        ga[i] = an if ok else aj
        gv[i] = vn if ok else gv[i]


@nb.njit(**KERNEL)
def entries_steps(lam, a, v, q, w, lr_seq, sigma2, kind, tab, cs, ds, eps_max, beta, batch, per_example, cap):
    """Apply (S2) len(lr_seq) times in place on the rows of (a, v) (R x n) and their q (R,), for the drift law
    (kind, tab, cs, ds, eps_max, beta) of ``law_constants`` (f_B; f_1 with ``per_example``). Returns the steps
    done, stopping early once 2 R = sum_r w_r q_r (w: the rows' weights) passes ``cap`` or stops being finite.
    Entries with lambda = 0 never move (x_k = 0), nor do rows with q_r = 0 (e = 0, sigma = 0: g = 0). Each row
    in three passes: ``series_pass`` (FAST_TERMS terms) over every entry; the series to SERIES_TERMS terms over
    the entries it left, gathered; ``quadrature_moments`` for the rest (``entry_moments`` is the last two)."""
    R, n = a.shape
    inv_b = 1.0 / batch
    em_fast = eps_max[FAST_TERMS - 1]
    em_all = eps_max[SERIES_TERMS - 1]
    done = np.zeros(n, dtype=np.bool_)
    idx = np.zeros(n, dtype=np.int64)
    gl = np.zeros(n)
    ga = np.zeros(n)
    gv = np.zeros(n)
    gok = np.zeros(n, dtype=np.bool_)
    for k in range(lr_seq.shape[0]):
        lr = lr_seq[k]
        lr2 = lr * lr
        total = 0.0
        for r in range(R):
            qr = q[r]
            if not qr > 0.0:  # e = 0 and sigma = 0: the gradient is 0, sign 0, the row never moves
                continue
            ar = a[r]
            vr = v[r]
            acc, last = series_pass(lam, ar, vr, qr, lr, lr2, inv_b, per_example, cs, ds, em_fast, done)
            m = 0
            for j in range(last):
                if not done[j] and lam[j] > 0.0:
                    idx[m] = j
                    gl[m] = lam[j]
                    ga[m] = ar[j]
                    gv[m] = vr[j]
                    m += 1
            _series_gathered(gl, ga, gv, gok, m, qr, lr, lr2, inv_b, per_example, cs, ds, em_all)
            acc += sigma2
            for i in range(m):
                j = idx[i]
                if not gok[i]:
                    aj = ar[j]
                    vj = vr[j]
                    m2 = aj * aj + vj
                    qm = qr - gl[i] * m2
                    if not qm > 1e-15 * qr:
                        qm = 0.0
                    f0, f1, f2 = quadrature_moments(aj, vj, gl[i], qm, kind, tab, beta)
                    ga[i], gv[i] = _update(aj, m2, f0, f1, f2, lr, lr2, inv_b, per_example)
                ar[j] = ga[i]
                vr[j] = gv[i]
                acc += gl[i] * (ga[i] * ga[i] + gv[i])
            q[r] = acc
            total += w[r] * acc
        if not (total <= cap):
            return k + 1
    return lr_seq.shape[0]


def law_constants(B: int, per_example: bool = False):
    """(kind, table, c, d, eps_max, beta): the evaluation, series and transition scale of the law whose mean is
    an update entry's (``entries_steps`` reads them in this order): f_B for the sign of the mean, f_1 for the
    mean of per-example signs."""
    B = 1 if per_example else check_batch(B)
    kind = 1 if B == 1 else (2 if B == 2 else 3)
    tab = table(B) if kind == 3 else np.zeros(2)
    return (kind, np.array(tab), *series(B), math.sqrt(max(B, 2) / 2.0))
