"""Compute-optimal frontier of SGD on power-law random features and its phase map (Paquette, Paquette, Xiao,
Pennington 2024, "4+3 Phases of Compute-Optimal Neural Scaling Laws", arXiv:2405.15074).

With f = d B k flops (d features, batch B, k steps), the frontier is R*(f) = min_d R(f / (d B), d) over a log grid of
d, where R(k, d) is ``hd.solve``'s expected risk of SGD on ``hd.plrf(d, alpha, beta)`` (the deterministic equivalent,
v = 10 d, theta_0 = 0, no label noise). Defaults follow the paper's setting: summed-batch rate gamma = c / tr D with
c = 0.5, i.e. our averaged-batch lr = c B / tr D (tr D = sum_{j <= v} j^-2alpha), B = 1. The exponents eta
(R* ~ f^-eta) and xi (d* ~ f^xi) are least-squares slopes in log-log over the fit window: the flops where the
minimizing d lies inside the d grid with a margin (``MARGIN`` grid points each side), its top two decades by
default (largest d*, smallest finite-size corrections).
Predicted exponents per phase (``phase_of``): derived for Ia, II, III (2 alpha > 1); the sub-phases with 2 alpha < 1
(Ib, Ic, IVa, IVb) and their boundaries here are unverified. Method, window and measured tables:
docs/derivations/plrf.md.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np

from .checks import check_batch, check_int, check_positive

#: d grid points kept between the minimizing d and either end of the grid for a flop budget to enter the fit
MARGIN = 2


@dataclass(frozen=True)
class Phase:
    """A phase label with its predicted exponents (None where not known) and their status
    ('derived', 'unverified' or 'inadmissible')."""

    label: str
    xi: float | None
    eta: float | None
    status: str


def phase_of(alpha: float, beta: float) -> Phase:
    """Phase of SGD's compute-optimal frontier on PLRF(alpha, beta) and its predicted (xi, eta).

    Derived (2 alpha > 1): Ia (2 beta < 1): xi = 1/(2a+1), eta = (2a+2b-1)/(2a+1); II (2 beta > 1, beta < alpha):
    xi = b/(a+b), eta = (2a+2b-1)/(2(a+b)); III (beta > alpha): xi = 1/2, eta = 1 - 1/(4a). Boundaries go to the
    phase below (the exponents are continuous across them). 2 alpha <= 1, unverified: 2 beta < 1 and beta <= alpha:
    Ib (heuristic xi = 1/2, eta = (2a+2b-1)/2, assuming SGD noise negligible); 2 beta < 1, beta > alpha: Ic;
    2 beta >= 1: IVa (alpha >= 1/4), IVb (alpha < 1/4); no predicted exponents.
    """
    a, b = float(alpha), float(beta)
    if not (math.isfinite(a) and math.isfinite(b)) or a <= 0 or 2 * a + 2 * b <= 1:
        return Phase("inadmissible", None, None, "inadmissible")
    if 2 * a > 1:
        if 2 * b <= 1:
            return Phase("Ia", 1 / (2 * a + 1), (2 * a + 2 * b - 1) / (2 * a + 1), "derived")
        if b <= a:
            return Phase("II", b / (a + b), (2 * a + 2 * b - 1) / (2 * (a + b)), "derived")
        return Phase("III", 0.5, 1 - 1 / (4 * a), "derived")
    if 2 * b < 1:
        if b <= a:
            return Phase("Ib", 0.5, (2 * a + 2 * b - 1) / 2, "unverified")
        return Phase("Ic", None, None, "unverified")
    return Phase("IVa" if a >= 0.25 else "IVb", None, None, "unverified")


@dataclass(frozen=True)
class ComputeOptimal:
    """Fitted exponents of the frontier (``eta``: R* ~ f^-eta, ``xi``: d* ~ f^xi) over ``window`` (flops), the
    ``phase`` with its predicted exponents, and the ``frontier`` Dataset (f, d: IsoFLOP risk(f, d); f: d_star,
    risk_star, interior, in_window). ``status`` 'ok', or 'no_fit' with the reason in ``message``."""

    alpha: float
    beta: float
    batch: int
    eta: float
    xi: float
    window: tuple
    phase: Phase
    frontier: object = field(repr=False)
    status: str = "ok"
    message: str = ""


#: resolution of the deterministic-equivalent PLRF problems of the frontier (``hd.plrf``'s eps)
EPS = 0.02


@functools.lru_cache(maxsize=256)
def _problem(d: int, alpha: float, beta: float, v: int | None):
    from .random_features import plrf

    return plrf(d, alpha, beta, v=v, eps=EPS)


def _risk_curve(d, alpha, beta, batch, lr, c, f_max, v_ratio):
    """(steps, risk) of SGD on the deterministic-equivalent PLRF with d features up to f_max flops."""
    from .driver import solve
    from .optimizers import SGD

    v = None if v_ratio is None else round(v_ratio * d)
    prob = _problem(int(d), float(alpha), float(beta), v)
    rate = c * batch / prob.info["trace_D"] if lr is None else lr
    steps = max(math.ceil(f_max / (d * batch)), 2)
    curve = solve(prob, SGD(lr=rate, batch=batch), steps)
    return curve.steps, curve.risk, curve.status, rate


def compute_optimal(alpha: float, beta: float, *, batch: int = 1, c: float = 0.5, lr: float | None = None,
                    d_min: int = 32, d_max: int = 32768, per_octave: int = 2, f_min: float = 1e3,
                    f_max: float = 1e11, points: int = 81, decades: float = 2.0, window: tuple | None = None,
                    v_ratio: float | None = None) -> ComputeOptimal:
    """Compute-optimal frontier of SGD on ``hd.plrf(d, alpha, beta)`` (module docstring).

    ``lr``: a fixed averaged-batch lr for every d (default: c B / tr D per d); ``d_min``..``d_max`` with
    ``per_octave`` d values per doubling; ``points`` log-spaced flop budgets in [f_min, f_max]. The fit window: the
    top ``decades`` decades of the flops whose optimal d is interior (the largest d*, where finite-size corrections
    are smallest), cut further to ``window`` = (f_lo, f_hi) if given; ``v_ratio`` = v / d (default 10).
    """
    import xarray as xr

    batch = check_batch(batch)
    c = check_positive("c", c)
    if lr is not None:
        lr = check_positive("lr", lr)
    d_min, d_max = check_int("d_min", d_min, minimum=2), check_int("d_max", d_max, minimum=2)
    if d_max <= d_min:
        raise ValueError(f"d_max must exceed d_min, got {d_min}, {d_max}")
    per_octave, points = check_int("per_octave", per_octave), check_int("points", points, minimum=3)
    f_min, f_max = check_positive("f_min", f_min), check_positive("f_max", f_max)
    if f_max <= f_min:
        raise ValueError(f"f_max must exceed f_min, got {f_min:g}, {f_max:g}")
    decades = check_positive("decades", decades)
    if window is not None:
        lo, hi = (check_positive("window", float(x)) for x in window)
        if not hi > lo:
            raise ValueError(f"window must be (f_lo, f_hi) with f_lo < f_hi, got {window!r}")
    phase = phase_of(alpha, beta)
    if phase.label == "inadmissible":
        raise ValueError(f"PLRF(alpha={alpha!r}, beta={beta!r}) is inadmissible (needs alpha > 0, 2 alpha + 2 beta > 1)")
    n_d = max(round(per_octave * math.log2(d_max / d_min)) + 1, 3)
    ds = np.unique(np.round(np.geomspace(d_min, d_max, n_d)).astype(np.int64))
    fs = np.geomspace(f_min, f_max, points)
    risk = np.full((fs.size, ds.size), np.nan)
    lrs = np.full(ds.size, np.nan)
    for i, d in enumerate(ds):
        steps, r, status, lrs[i] = _risk_curve(int(d), alpha, beta, batch, lr, c, f_max, v_ratio)
        if status == "diverged":
            raise ValueError(f"SGD diverges on PLRF(alpha={alpha}, beta={beta}) at d = {d} with lr = {lrs[i]:.4g}: "
                             "lower c (or lr)")
        k = fs / (d * batch)
        ok = (k >= 1) & (k <= steps[-1])
        risk[ok, i] = np.exp(np.interp(np.log(k[ok]), np.log(steps[1:]), np.log(r[1:])))
    d_star, risk_star = np.full(fs.size, np.nan), np.full(fs.size, np.nan)
    interior = np.zeros(fs.size, dtype=bool)
    logd = np.log(ds.astype(np.float64))
    for n in range(fs.size):
        row = risk[n]
        if np.isnan(row).all():
            continue
        i = int(np.nanargmin(row))
        if MARGIN <= i < ds.size - MARGIN and np.isfinite(row[i - 1:i + 2]).all():
            x, y = logd[i - 1:i + 2], np.log(row[i - 1:i + 2])
            a2, a1, a0 = np.polyfit(x, y, 2)  # parabola in (log d, log R) through the minimum and its neighbours
            xm = float(np.clip(-a1 / (2 * a2), x[0], x[2])) if a2 > 0 else x[1]
            d_star[n], risk_star[n] = math.exp(xm), math.exp(a0 + a1 * xm + a2 * xm * xm)
            interior[n] = True
        else:
            d_star[n], risk_star[n] = ds[i], row[i]
    in_window = interior.copy()
    if interior.any():
        in_window &= fs >= fs[interior].max() / 10.0 ** decades
    if window is not None:
        in_window &= (fs >= lo) & (fs <= hi)
    status, message, eta, xi = "ok", "", math.nan, math.nan
    if in_window.sum() >= 3:
        lf = np.log(fs[in_window])
        eta = -float(np.polyfit(lf, np.log(risk_star[in_window]), 1)[0])
        xi = float(np.polyfit(lf, np.log(d_star[in_window]), 1)[0])
        win = (float(fs[in_window].min()), float(fs[in_window].max()))
    else:
        status, win = "no_fit", (math.nan, math.nan)
        message = (f"only {int(in_window.sum())} flop budgets have their optimal d inside the d grid "
                   f"[{ds[0]}, {ds[-1]}] with a margin of {MARGIN} points: widen the d grid or change f_min, f_max")
    frontier = xr.Dataset(
        {"risk": (("f", "d"), risk), "d_star": ("f", d_star), "risk_star": ("f", risk_star),
         "interior": ("f", interior), "in_window": ("f", in_window), "lr": ("d", lrs)},
        coords={"f": fs, "d": ds})
    frontier.attrs.update(alpha=float(alpha), beta=float(beta), batch=batch, c=c, eta=eta, xi=xi, phase=phase.label,
                          window_lo=win[0], window_hi=win[1], risk="1/2 MSE (P*/2 included)",
                          flops="f = d B k")
    return ComputeOptimal(alpha=float(alpha), beta=float(beta), batch=batch, eta=eta, xi=xi, window=win, phase=phase,
                          frontier=frontier, status=status, message=message)


def _cell(args):
    """One phase-map cell (module level, so that process executors can pickle it)."""
    alpha, beta, kwargs = args
    ph = phase_of(alpha, beta)
    if ph.label == "inadmissible":
        return ph.label, math.nan, math.nan, "inadmissible", ""
    try:
        res = compute_optimal(alpha, beta, **kwargs)
    except Exception as exc:  # noqa: BLE001  (a bad cell is recorded, never raised)
        return ph.label, math.nan, math.nan, "failed", f"{type(exc).__name__}: {exc}"
    return ph.label, res.eta, res.xi, res.status, res.message


def sgd_phase_map(alphas, betas, *, progress: bool = True, executor=None, **kwargs):
    """Fitted and predicted compute-optimal exponents of SGD on PLRF over the (alpha, beta) grid: an
    ``xarray.Dataset`` with eta, xi, eta_pred, xi_pred, phase, prediction status and the cell's fit status on
    (alpha, beta). ``kwargs`` go to ``compute_optimal``; ``executor``: any concurrent.futures-style executor
    (``submit``), e.g. a process pool or a Dask ``Client`` (None: in process); a cell whose task is lost is
    recorded as failed."""
    import xarray as xr

    alphas = np.atleast_1d(np.asarray(alphas, dtype=np.float64))
    betas = np.atleast_1d(np.asarray(betas, dtype=np.float64))
    import inspect

    from .sweeps import run_tasks

    try:
        inspect.signature(compute_optimal).bind(1.0, 1.0, **kwargs)
    except TypeError as exc:
        raise TypeError(f"sgd_phase_map: {exc} (its keyword arguments go to compute_optimal)") from None
    cells = [(float(a), float(b), dict(kwargs)) for a in alphas for b in betas]

    results = run_tasks(_cell, [(cell,) for cell in cells], executor, progress, "SGD compute-optimal phases")
    results = [(phase_of(a, b).label, math.nan, math.nan, "failed", r) if isinstance(r, str) else r
               for (a, b, _), r in zip(cells, results)]
    shape = (alphas.size, betas.size)
    get = lambda k: np.array([r[k] for r in results], dtype=object).reshape(shape)
    phases = [phase_of(a, b) for a, b, _ in cells]
    pred = lambda name: np.array([math.nan if getattr(p, name) is None else getattr(p, name)
                                  for p in phases]).reshape(shape)
    dims = ("alpha", "beta")
    return xr.Dataset({"eta": (dims, get(1).astype(float)), "xi": (dims, get(2).astype(float)),
                       "eta_pred": (dims, pred("eta")), "xi_pred": (dims, pred("xi")),
                       "phase": (dims, get(0).astype(str)),
                       "prediction": (dims, np.array([p.status for p in phases]).reshape(shape)),
                       "status": (dims, get(3).astype(str)), "message": (dims, get(4).astype(str))},
                      coords={"alpha": alphas, "beta": betas}, attrs={k: str(v) for k, v in kwargs.items()})
