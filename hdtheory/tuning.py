"""Theory-optimal hyperparameters: searches over ``hd.solve`` (the layer above the driver).

* ``tune(problem, opt, steps, over=("lr",))``: the optimizer at the hyperparameters that minimize the predicted
  risk at ``steps`` (or at each of several horizons), with the achieved risk (``Tuned``). ``over`` names any of
  ``lr``, ``clip`` (ClippedSGD, a fixed level; inf = SGD is a candidate), ``outer_lr`` (LA-DiLoCo) and ``batch``
  (at a fixed number of samples: steps x batch of the given optimizer, or ``samples=``);
* ``lr_search(problem, opt, grid)``: the constant-lr part of it for every horizon of a record grid at once
  (one solve per scanned lr serves every horizon);
* ``optimal_lr``, ``optimal_clip``: the classic one-horizon searches (a bounded scalar search to tight tolerance);
* ``horizon_threshold(problem, opt, steps)``: the finite-horizon threshold of the expected risk, found by the
  same search and criterion as ``validation.empirical_threshold`` applied to ``hd.solve`` instead of a seed
  mean, so that the two compare like with like.

A search over one hyperparameter scans it on a log grid (lr: [1e-4, 1] x the theory's lr scale
``Theory.lr_scale``, i.e. the stability threshold, or where an optimizer never diverges the lr past which it makes
no progress; clip: tau^2 / E_0 in [1e-3, 1e3] with c = tau sqrt(tr K / B); outer_lr: [1e-2, 4]) and refines around
the best point by Brent's method in (log value, log risk), inside the bracket of its two neighbours. Several
hyperparameters are tuned by coordinate descent (``rounds`` sweeps). A curve that diverges or stops before the
horizon counts as infinite risk. An optimum on the scan's edge is reported in ``Tuned.edge``; a curve outside its
theory's validity there in ``Tuned.valid``. Warm starts (``near``, ``guess``): a lattice walk from a neighbour's
optima, or a local search around a predicted optimum (docs/derivations/tuning.md §3).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar

from .checks import check_batch, check_int, check_positive
from .driver import solve
from .theory import theory_for

#: refinement of a scanned optimum (Brent's method in log value): at most REFINE solves, stopping once the
#: optimum's log value is located to about XTOL (the risk then within ~1e-5 relative; docs/derivations/tuning.md)
REFINE = 8
XTOL = 2e-3
GOLDEN = 0.5 * (3.0 - math.sqrt(5.0))
#: log-spaced scan ranges of the continuous hyperparameters (lr: relative to the theory's lr scale)
LR_DECADES = 4.0
CLIP_RANGE = (1e-3, 1e3)       # tau^2 / E_0
OUTER_LR_RANGE = (1e-2, 4.0)
TUNABLE = ("lr", "clip", "outer_lr", "batch")
#: local search around a predicted optimum (``lr_search(guess=...)``): the bracket's half width in log lr, how
#: often it may shift (doubling), and the stop on the parabola's predicted gain in log risk
LOCAL_STEP = 0.01
LOCAL_MOVES = 6
LOCAL_FTOL = 1e-6
#: a lattice optimum at an end is probed this many times, each halfway between the end and the probe before
EDGE_PROBES = 3


@dataclass(frozen=True)
class Tuned:
    """What ``tune`` found for one horizon."""

    optimizer: object      # the given optimizer at the tuned hyperparameters
    risk: float            # predicted risk at ``steps`` (inf: nothing converged)
    steps: int             # the horizon (with ``batch`` tuned at fixed samples: samples / (batch x workers))
    params: dict           # tuned name -> value
    edge: tuple            # names whose optimum sits on the edge of its search range
    valid: bool            # the theory's validity test held at the horizon
    status: str            # the curve's status at the tuned point
    evaluations: int       # solves spent


def _final_risk(problem, opt, grid, accept=("ok", "unstable", "diverged"), **solve_kwargs) -> float:
    """The predicted risk at the grid's end; inf where the curve stops before it or its status is not accepted."""
    curve = solve(problem, opt, grid=grid, **solve_kwargs)
    return float(curve.risk[-1]) if curve.status in accept and curve.risk.size == grid.size else math.inf


def lr_scale(problem, opt) -> float:
    """The top of every lr search: the theory's stability threshold of ``opt`` on ``problem`` (in base-lr units),
    or where nothing diverges the lr past which it makes no progress (``Theory.lr_scale``)."""
    top = float(theory_for(opt).lr_scale(problem, opt))
    if not (math.isfinite(top) and top > 0):
        raise ValueError(f"no finite lr scale for {opt.name} on this problem: give the lr range by hand")
    return top


def _lr_logs(problem, opt, points, decades=LR_DECADES, top=None):
    """The lr lattice (log lr): ``points`` values over [10^-decades, 1] x the lr scale."""
    top = lr_scale(problem, opt) if top is None else top
    return np.linspace(math.log(top) - decades * math.log(10.0), math.log(top), points)


def _log(r) -> float:
    return math.log(r) if r > 0 and math.isfinite(r) else math.inf


def _refine(evaluate, logs, vals, best, refine=REFINE, xtol=XTOL, ftol=None, fspan=math.inf):
    """Brent's minimization of log risk over ``logs`` (log value) inside [logs[best - 1], logs[best + 1]], a
    bracket of the best scan point (whose neighbours are finite and not lower): parabolic steps through the
    three lowest points, starting from the three scan points, safeguarded by golden sections where a parabola
    would leave the bracket or not shrink it. ``evaluate(x)`` returns (risk, extra). Stops after ``refine``
    evaluations, once the minimum is located to about ``xtol``, or (``ftol``) once the parabola through the three
    lowest points, all within ``fspan`` of the lowest (where a parabola models the curve), has its vertex less
    than ``ftol`` below the lowest (in log risk). Returns (x, risk, extra or None, evaluations, curvature) of the
    lowest point seen, with the curvature of log risk there by the last parabola (nan where none). (scipy's Brent
    would solve the three scanned points again.)"""
    a, b = float(logs[best - 1]), float(logs[best + 1])
    x, fx, r_best, extra = float(logs[best]), _log(vals[best]), float(vals[best]), None
    (fw, w), (fv, v) = sorted([(_log(vals[best - 1]), a), (_log(vals[best + 1]), b)])
    d, e, n = 0.0, b - a, 0  # e: the step before last (the bracket: the first parabola may be taken)
    while n < refine:
        xm = 0.5 * (a + b)
        if abs(x - xm) <= 2.0 * xtol - 0.5 * (b - a):
            break
        if (ftol is not None and max(abs(w - x), abs(v - x)) <= fspan
                and _parabola_gain(x, fx, w, fw, v, fv) < ftol):
            break
        golden = True
        if abs(e) > xtol and math.isfinite(fw) and math.isfinite(fv):
            r = (x - w) * (fx - fv)
            q = (x - v) * (fx - fw)
            p = (x - v) * q - (x - w) * r
            q = 2.0 * (q - r)
            p = -p if q > 0.0 else p
            q = abs(q)
            if abs(p) < abs(0.5 * q * e) and q * (a - x) < p < q * (b - x):
                e, d, golden = d, p / q, False
                if (x + d) - a < 2.0 * xtol or b - (x + d) < 2.0 * xtol:
                    d = math.copysign(xtol, xm - x)
        if golden:
            e = (a - x) if x >= xm else (b - x)
            d = GOLDEN * e
        u = x + d if abs(d) >= xtol else x + math.copysign(xtol, d)
        ru, ex = evaluate(u)
        n += 1
        fu = _log(ru)
        if fu <= fx:
            if u >= x:
                a = x
            else:
                b = x
            v, fv, w, fw, x, fx = w, fw, x, fx, u, fu
            r_best, extra = ru, ex
        else:
            if u < x:
                a = u
            else:
                b = u
            if fu <= fw or w == x:
                v, fv, w, fw = w, fw, u, fu
            elif fu <= fv or v == x or v == w:
                v, fv = u, fu
    return x, r_best, extra, n, _curvature(x, fx, w, fw, v, fv)


def _curvature(x, fx, w, fw, v, fv) -> float:
    """The second derivative of the parabola through (x, fx), (w, fw), (v, fv) (nan where they define none)."""
    if w == x or v == x or w == v or not (math.isfinite(fx) and math.isfinite(fw) and math.isfinite(fv)):
        return math.nan
    return 2.0 * ((fw - fx) / (w - x) - (fv - fx) / (v - x)) / (w - v)


def _parabola_gain(x, fx, w, fw, v, fv) -> float:
    """How far the parabola through (x, fx), (w, fw), (v, fv) falls below fx at its vertex: g^2 / (2 c), g its
    slope at x and c its curvature (inf where the points do not define a convex one)."""
    c = _curvature(x, fx, w, fw, v, fv)
    if not c > 0:
        return math.inf
    g = (fw - fx) / (w - x) - 0.5 * c * (w - x)
    return g * g / (2.0 * c)


def _local(evaluate, x0, lo, hi, step, moves, refine, ftol, curvature=math.nan):
    """The minimum of log risk near a predicted optimum x0 in [lo, hi] (log values): the three points x0 - step,
    x0, x0 + step, shifted towards the lower side with the step doubled until the middle one is lowest (at most
    ``moves`` times), then ``_refine`` inside that bracket to the ``ftol`` stop (once its points are within
    2 ``step`` of the lowest; its location stop is at ``step`` / 100). With an expected ``curvature`` it first
    solves x0, its neighbour and the vertex their slope and that curvature predict, and stops there where their
    parabola shows less than ``ftol`` to gain. ``evaluate(x)`` returns (risk, extra). Returns (x, risk, extra,
    evaluations, edge, curvature): edge says the lowest point is lo or hi (the search range's end, as a lattice's
    end point), curvature is that of the last parabola (nan where none); x is None where no finite bracket is
    found within ``moves`` (the caller falls back to the lattice)."""
    seen = {}

    def f(x):
        if x not in seen:
            seen[x] = evaluate(x)
        return _log(seen[x][0])

    x = min(max(x0, lo), hi)
    d = step
    if curvature > 0:  # a probe: x0, its neighbour and the vertex their slope and the expected curvature give
        x1 = x + step if x + step <= hi else x - step
        f0, f1 = f(x), f(x1)
        if math.isfinite(f0) and math.isfinite(f1):
            u = 0.5 * (x + x1) - (f1 - f0) / (x1 - x) / curvature
            u = min(max(u, x - 4.0 * step, lo), x + 4.0 * step, hi)
            if min(abs(u - x), abs(u - x1)) > 1e-3 * step:
                pts = sorted((x, x1, u), key=f)
                if (max(abs(pts[1] - pts[0]), abs(pts[2] - pts[0])) <= 2.0 * step and pts[0] not in (lo, hi)
                        and _parabola_gain(pts[0], f(pts[0]), pts[1], f(pts[1]), pts[2], f(pts[2])) < ftol):
                    c = _curvature(pts[0], f(pts[0]), pts[1], f(pts[1]), pts[2], f(pts[2]))
                    return pts[0], seen[pts[0]][0], seen[pts[0]][1], len(seen), False, c
                x = pts[0]
    for _ in range(moves + 1):
        a, b = max(x - d, lo), min(x + d, hi)
        fa, fx, fb = f(a), f(x), f(b)
        if math.isfinite(fx) and fx <= fa and fx <= fb and a < x < b:
            break
        low = min((x, a, b), key=f)
        if not math.isfinite(f(low)):
            return None, math.inf, None, len(seen), False, math.nan
        if low in (lo, hi):  # the range's end is the lowest point: an edge optimum, not refined
            return low, seen[low][0], seen[low][1], len(seen), True, math.nan
        x = low
        d *= 2.0
    else:
        return None, math.inf, None, len(seen), False, math.nan
    logs, vals = np.array([a, x, b]), np.array([seen[a][0], seen[x][0], seen[b][0]])
    xr, r, extra, n, c = _refine(evaluate, logs, vals, 1, refine, xtol=0.01 * step, ftol=ftol, fspan=2.0 * step)
    return xr, r, (seen[x][1] if extra is None else extra), len(seen) + n, False, c


@dataclass(frozen=True)
class LRSearch:
    """Per horizon of a record grid (grid[1:]): what ``lr_search`` found."""

    lr: np.ndarray         # tuned constant base lr
    risk: np.ndarray       # predicted risk at the horizon
    edge: np.ndarray       # the scan's best point was the lattice's first or last
    valid: np.ndarray      # the theory's validity test held at the horizon
    status: np.ndarray     # status of the tuned curve
    scale: float           # the theory's lr scale (the lattice's top)
    evaluations: int       # solves spent (the refinements solve only up to their horizon)
    curvature: np.ndarray  # d^2 log risk / d (log lr)^2 at the optimum by the last parabola (nan where none)


def lr_search(problem, opt, grid, *, points: int = 20, decades: float = LR_DECADES, refine: int = REFINE,
              near=None, guess=None, curvature=None) -> LRSearch:
    """The theory-optimal constant lr of ``opt`` at every horizon of ``grid`` (grid[0] = 0). The scan lattice has
    ``points`` log-spaced lrs over [10^-decades, 1] x the theory's lr scale; then each horizon is refined
    (``_refine``, at most ``refine`` solves) on the grid cut at it. Cold (``near`` and ``guess`` None), every
    lattice lr is solved on the whole grid. ``near`` = (f_lo, f_hi), fractions of the lr scale where the optima are
    expected (a neighbouring cell's), replaces the scan by a walk: from the lattice point nearest f_lo at the last
    horizon, and from each horizon's optimum at the one before, it steps downhill (down while the curve diverges or
    stops early) to a lattice point lower than both neighbours, solving each point only up to the horizon it is
    needed at (a solve to horizon h gives the risk at every earlier one). On a risk unimodal in lr at each horizon
    the result is the full scan's, at fewer solves and far fewer steps. ``guess``: per horizon, the predicted
    optimum as a fraction of the lr scale (e.g. extrapolated from neighbouring cells); each horizon is then searched
    locally around it (``_local``: a bracket LOCAL_STEP wide in log lr, refined to a gain below LOCAL_FTOL), and
    only the horizons where that finds no bracket go through the walk (from the lattice point nearest their guess)
    or scan. A lattice optimum at an end of the lattice is probed halfway to its neighbour, then halfway to the end
    again (EDGE_PROBES times at most), and refined from the first probe that is lower (the optimum lies inside the
    range); else it is reported as an edge. ``curvature``: per horizon, the expected d^2 log risk / d (log lr)^2 at
    the optimum (a neighbour's ``LRSearch.curvature``): the local search then first solves the guess, its neighbour
    and the vertex their slope and this curvature predict, and stops there where the parabola through the three
    shows less than LOCAL_FTOL to gain."""
    grid = np.asarray(grid, dtype=np.int64)
    top = lr_scale(problem, opt)
    logs = _lr_logs(problem, opt, points, decades, top)
    H = grid.size - 1
    risk = np.full((points, H), np.inf)
    valid = np.zeros((points, H), dtype=bool)  # False where a curve stopped before the horizon
    status = np.full((points, H), "not solved", dtype=object)
    reach = np.zeros(points, dtype=np.int64)  # horizons known per lattice point
    evaluations = 0

    def need(i, h):  # lattice point i solved through horizon h
        nonlocal evaluations
        if reach[i] > h:
            return risk[i, h]
        c = solve(problem, opt.with_lr(math.exp(logs[i])), grid=grid[: h + 2])
        n = c.risk.size - 1
        risk[i, :n] = c.risk[1:]
        valid[i, :n] = c.valid[1:]
        status[i, : h + 1] = c.status
        reach[i], evaluations = h + 1, evaluations + 1
        return risk[i, h]

    def at(v, h):
        c = solve(problem, opt.with_lr(math.exp(v)), grid=grid[: h + 2])
        if c.risk.size < h + 2:
            return math.inf, None
        return float(c.risk[-1]), (bool(c.valid[-1]), c.status)

    lr_out, risk_out = np.full(H, np.nan), np.full(H, np.inf)
    valid_out, status_out = np.zeros(H, dtype=bool), np.full(H, "not solved", dtype=object)
    edge = np.zeros(H, dtype=bool)
    curv_out = np.full(H, np.nan)
    todo = list(range(H))
    if guess is not None:
        g = np.broadcast_to(np.asarray(guess, dtype=np.float64), (H,))
        cv = np.broadcast_to(np.asarray(np.nan if curvature is None else curvature, dtype=np.float64), (H,))
        for h in range(H - 1, -1, -1):
            if not (g[h] > 0 and math.isfinite(g[h])):
                continue
            x0 = math.log(float(g[h]) * top)
            x, r, extra, n, at_edge, c = _local(lambda v, h=h: at(v, h), x0, float(logs[0]), float(logs[-1]),
                                                LOCAL_STEP, LOCAL_MOVES, refine, LOCAL_FTOL, float(cv[h]))
            evaluations += n
            if x is not None:
                lr_out[h], risk_out[h], edge[h], curv_out[h] = math.exp(x), r, at_edge, c
                valid_out[h], status_out[h] = extra
                todo.remove(h)
    if not todo:
        return LRSearch(lr=lr_out, risk=risk_out, edge=edge, valid=valid_out, status=status_out, scale=top,
                        evaluations=evaluations, curvature=curv_out)
    best = np.zeros(H, dtype=np.int64)
    if near is None and guess is None:
        for i in range(points):
            need(i, H - 1)
        best[:] = np.argmin(risk, axis=0)
    else:
        def nearest(frac):
            return int(np.argmin(np.abs(logs - math.log(float(frac) * top)))) if frac > 0 else 0

        c = nearest(np.min(np.asarray(near, dtype=np.float64)) if guess is None else g[todo[-1]])
        for h in todo[::-1]:
            if guess is not None and np.isfinite(g[h]):
                c = nearest(g[h])
            best[h] = c = _walk(lambda i, h=h: need(i, h), c, points)
    for h in todo:
        b = best[h]
        lr_out[h], risk_out[h], valid_out[h], status_out[h] = math.exp(logs[b]), risk[b, h], valid[b, h], status[b, h]
        edge[h] = b in (0, points - 1)
        x3, v3 = logs, risk[:, h]
        if edge[h]:  # the optimum may still lie between the end point and its neighbour: probe towards the end
            inner = b - 1 if b else b + 1
            if not (np.isfinite(risk[b, h]) and np.isfinite(risk[inner, h])):
                continue
            x_in, r_in = float(logs[inner]), float(risk[inner, h])
            for _ in range(EDGE_PROBES):
                mid = 0.5 * (x_in + logs[b])
                r_mid, extra = at(mid, h)
                evaluations += 1
                if r_mid < risk[b, h]:
                    break
                x_in, r_in = mid, r_mid
            if not r_mid < risk[b, h]:
                continue
            lr_out[h], risk_out[h], edge[h] = math.exp(mid), r_mid, False
            valid_out[h], status_out[h] = extra
            pts = sorted([(x_in, r_in), (mid, r_mid), (float(logs[b]), float(risk[b, h]))])
            x3, v3, b = np.array([t[0] for t in pts]), np.array([t[1] for t in pts]), 1
        elif not np.all(np.isfinite(risk[b - 1:b + 2, h])):
            continue
        x, r, extra, n, curv_out[h] = _refine(lambda v, h=h: at(v, h), x3, v3, b, refine)
        evaluations += n
        if extra is not None:
            lr_out[h], risk_out[h] = math.exp(x), r
            valid_out[h], status_out[h] = extra
    return LRSearch(lr=lr_out, risk=risk_out, edge=edge, valid=valid_out, status=status_out, scale=top,
                    evaluations=evaluations, curvature=curv_out)


def _walk(value, c, points):
    """The lattice index of the lowest ``value(i)``, i in [0, points), found by descent from ``c``: first down
    while the value is not finite (a diverging or early-stopped curve: too large an lr), up from the start if
    that reaches no finite value, then downhill to a point below its upper and not above its lower neighbour
    (np.argmin's choice among equals). Exact for a unimodal sequence with a non-finite plateau at its top."""
    start = c
    while not math.isfinite(value(c)) and c > 0:
        c -= 1
    if not math.isfinite(value(c)):
        c = start
        while not math.isfinite(value(c)) and c < points - 1:
            c += 1
        if not math.isfinite(value(c)):
            return start
    while c > 0 and value(c - 1) <= value(c):
        c -= 1
    while c < points - 1 and value(c + 1) < value(c):
        c += 1
    return c


# ------------------------------------------------------------------------------------------------------
# tune: any subset of the tunable hyperparameters at one or several horizons
# ------------------------------------------------------------------------------------------------------

def steps_for_samples(opt, samples: int) -> int:
    """The steps of ``opt`` that consume at most ``samples`` fresh samples, in whole updates."""
    span = opt.steps_per_update
    return int(samples) // opt.samples_per_step // span * span


def _check_over(opt, over):
    over = (over,) if isinstance(over, str) else tuple(over)
    if not over:
        raise ValueError("over must name at least one hyperparameter")
    for name in over:
        if name not in TUNABLE:
            raise ValueError(f"cannot tune {name!r}: tunable hyperparameters are {TUNABLE}")
        if name == "batch":
            continue
        if not hasattr(opt, name):
            raise ValueError(f"{type(opt).__name__} has no hyperparameter {name!r} to tune")
    if "clip" in over:
        from .optimizers.clipped_sgd import RelativeClip

        if isinstance(opt.clip, RelativeClip) or opt.clip_schedule is not None:
            raise ValueError("clip tuning searches a fixed clip level: give ClippedSGD a number as clip")
    if len(set(over)) != len(over):
        raise ValueError(f"over names a hyperparameter twice: {over}")
    return over


def _clip_unit(problem, batch) -> float:
    """The clip level at tau^2 / E_0 = 1: c = sqrt(t) x this, with t = tau^2 / E_0 and c = tau sqrt(tr K / B)."""
    return math.sqrt(problem.trace / batch * 2.0 * problem.initial_risk)


def _clip_logs(problem, opt, points):
    return np.linspace(math.log(CLIP_RANGE[0]), math.log(CLIP_RANGE[1]), points), _clip_unit(problem, opt.batch)


class _Objective:
    """Risk at one horizon as a function of the optimizer, counting solves and remembering the best point."""

    def __init__(self, problem, steps):
        self.problem, self.grid, self.evaluations = problem, np.array([0, steps], dtype=np.int64), 0
        self.best = (math.inf, None, False, "diverged")  # until some candidate reaches the horizon

    def __call__(self, opt) -> float:
        self.evaluations += 1
        c = solve(self.problem, opt, grid=self.grid)
        r = float(c.risk[-1]) if c.risk.size == self.grid.size and c.status != "diverged" else math.inf
        if r < self.best[0]:
            self.best = (r, opt, bool(c.valid[-1]), c.status)
        return r


def _search_one(f, opt, name, problem, points, refine):
    """Tune one continuous hyperparameter of ``opt`` (the others fixed) for the objective ``f``. Returns (opt,
    risk, on_edge)."""
    if name == "lr":
        logs, to_value = _lr_logs(problem, opt, points), math.exp
    elif name == "clip":
        logs, scale = _clip_logs(problem, opt, points)
        to_value = lambda w: math.sqrt(math.exp(w)) * scale
    else:
        logs, to_value = np.linspace(*np.log(OUTER_LR_RANGE), points), math.exp

    def at(w):
        o = dataclasses.replace(opt, **{name: to_value(w)})
        return f(o), o

    vals = np.empty(points)
    opts = []
    for i, w in enumerate(logs):
        vals[i], o = at(w)
        opts.append(o)
    candidates = [(vals.min(), opts[int(np.argmin(vals))])] if np.isfinite(vals.min()) else []
    if name == "clip":  # no clipping is always a candidate
        o = dataclasses.replace(opt, clip=math.inf)
        candidates.append((f(o), o))
    best = int(np.argmin(vals))
    edge = best in (0, points - 1)
    if not edge and np.all(np.isfinite(vals[best - 1:best + 2])):
        _, r, o, _, _ = _refine(at, logs, vals, best, refine)
        if o is not None:
            candidates.append((r, o))
    if not candidates:
        return opt, math.inf, edge
    r, o = min(candidates, key=lambda t: t[0])
    if name == "clip" and math.isinf(o.clip):
        edge = False
    return o, r, edge


def _tune_at(problem, opt, steps, names, points, rounds, refine):
    """Coordinate descent over the continuous hyperparameters ``names`` at one horizon."""
    f = _Objective(problem, steps)
    edges = {}
    for _ in range(rounds if len(names) > 1 else 1):
        for name in names:
            opt, _, edges[name] = _search_one(f, opt, name, problem, points, refine)
    risk, best, valid, status = f.best
    best = opt if best is None else best
    return Tuned(optimizer=best, risk=risk, steps=int(steps), params={n: getattr(best, n) for n in names},
                 edge=tuple(n for n in names if edges.get(n)), valid=valid, status=status,
                 evaluations=f.evaluations)


def tune(problem, opt, steps, over=("lr",), *, samples: int | None = None, batches=None, points: int = 16,
         rounds: int = 2, refine: int = REFINE, near=None, guess=None):
    """The theory-optimal hyperparameters of ``opt`` for the predicted risk at ``steps`` (see the module
    docstring). ``steps``: a horizon, or a sequence of horizons (then a list of ``Tuned``, one per horizon; tuning
    only ``lr`` shares one scan among them). ``over``: names from ``lr``, ``clip``, ``outer_lr``, ``batch``;
    ``batch`` compares ``batches`` (default: powers of 2 up to 1024 that leave at least one update) at fixed
    ``samples`` (default steps x ``opt.samples_per_step``), tuning the other names at each. The given values of
    the tuned hyperparameters are only starting points (the first round of coordinate descent uses them for the
    names tuned after). ``near``, ``guess``: warm starts of the lr search (``lr_search``), for lr alone."""
    over = _check_over(opt, over)
    if "batch" not in over and (samples is not None or batches is not None):
        raise ValueError("samples and batches apply to tuning over batch: add 'batch' to over")
    if (near is not None or guess is not None) and tuple(n for n in over if n != "batch") != ("lr",):
        raise ValueError("near and guess warm-start the lr search and apply when lr is the only continuous name "
                         "tuned")
    points = check_int("points", points)
    if points < 3:
        raise ValueError(f"points must be at least 3, got {points}")
    many = np.ndim(steps) > 0
    horizons = [check_int("steps", int(s)) for s in np.atleast_1d(steps)]
    if many and "batch" in over:
        raise ValueError("tune over batch takes one horizon (a number of samples), not a sequence")
    names = tuple(n for n in over if n != "batch")
    if "batch" not in over:
        if names == ("lr",):
            grid = np.concatenate([[0], np.asarray(horizons, dtype=np.int64)])
            if np.any(np.diff(grid) <= 0):
                raise ValueError("the horizons must increase")
            res = lr_search(problem, opt, grid, points=points, refine=refine, near=near, guess=guess)
            out = [Tuned(optimizer=opt.with_lr(float(res.lr[h])), risk=float(res.risk[h]), steps=horizons[h],
                         params={"lr": float(res.lr[h])}, edge=("lr",) if res.edge[h] else (),
                         valid=bool(res.valid[h]), status=str(res.status[h]), evaluations=res.evaluations)
                   for h in range(len(horizons))]
        else:
            out = [_tune_at(problem, opt, s, names, points, rounds, refine) for s in horizons]
        return out if many else out[0]
    total = horizons[0] * opt.samples_per_step if samples is None else check_int("samples", samples)
    cands = batches if batches is not None else [2 ** i for i in range(11)]
    results, spent = [], 0
    for B in cands:
        candidate = dataclasses.replace(opt, batch=check_batch(B))
        s = steps_for_samples(candidate, total)
        if s < candidate.steps_per_update:
            continue
        r = _tune_at(problem, candidate, s, names, points, rounds, refine) if names else None
        if r is None:
            f = _Objective(problem, s)
            rr = f(candidate)
            r = Tuned(candidate, rr, s, {}, (), f.best[2], f.best[3], 1)
        spent += r.evaluations
        results.append(r)
    if not results:
        raise ValueError(f"no batch in {list(cands)} leaves a full update within {total} samples")
    best = min(results, key=lambda r: r.risk)
    Bs = [r.optimizer.batch for r in results]
    edge = best.edge + (("batch",) if len(Bs) > 1 and best.optimizer.batch in (min(Bs), max(Bs)) else ())
    return dataclasses.replace(best, params={**best.params, "batch": best.optimizer.batch}, edge=edge,
                               evaluations=spent)


def optimal_lr(problem, opt, steps: int, *, full: bool = False, points: int = 25, **solve_kwargs):
    """Theory-optimal constant base lr of ``opt`` for the horizon ``steps``: minimizes the predicted risk at
    ``steps`` by a log-spaced scan of ``points`` values over [1e-4, 1] x ``lr_scale`` and a bounded scalar
    search around the best one (tighter and dearer than ``tune``). Returns the lr, or (lr, risk at steps) with
    ``full=True``."""
    steps = check_int("steps", steps)
    grid = np.array([0, steps], dtype=np.int64)
    logs = _lr_logs(problem, opt, points)

    def final(log_lr):
        return _final_risk(problem, opt.with_lr(math.exp(log_lr)), grid, **solve_kwargs)

    vals = np.array([final(v) for v in logs])
    if not np.any(np.isfinite(vals)):
        raise ValueError("every lr of the scan diverged")
    i = int(np.nanargmin(vals))
    lo, hi = logs[max(i - 1, 0)], logs[min(i + 1, logs.size - 1)]
    res = minimize_scalar(final, bounds=(lo, hi), method="bounded", options={"xatol": 1e-6})
    best, val = (float(res.x), float(res.fun)) if res.fun <= vals[i] else (float(logs[i]), float(vals[i]))
    return (math.exp(best), val) if full else math.exp(best)


def optimal_clip(problem, lr: float, batch: int, steps: int, bounds=CLIP_RANGE):
    """Theory-optimal fixed clip level of clipped SGD at step size ``lr``: minimizes the predicted risk at
    ``steps`` over c = tau sqrt(tr K / B) with tau^2 / E_0 in ``bounds`` (E_0 = 2 R(0); a log-spaced scan, then
    a bounded search) and compares with c = inf. Returns (c_best, risk_best, risk_sgd); c_best = inf when no
    finite level does better."""
    from .optimizers.clipped_sgd import ClippedSGD

    lr = check_positive("lr", lr)
    batch = check_batch(batch)
    grid = np.array([0, check_int("steps", steps)])
    unit = _clip_unit(problem, batch)

    def risk(logt):
        c = math.sqrt(math.exp(logt)) * unit
        return _final_risk(problem, ClippedSGD(lr=lr, clip=c, batch=batch), grid, accept=("ok",))

    r_sgd = _final_risk(problem, ClippedSGD(lr=lr, clip=math.inf, batch=batch), grid)
    lo, hi = math.log(bounds[0]), math.log(bounds[1])
    ws = np.linspace(lo, hi, 13)
    vals = [risk(w) for w in ws]
    i = int(np.argmin(vals))
    a, b = ws[max(i - 1, 0)], ws[min(i + 1, ws.size - 1)]
    res = minimize_scalar(risk, bounds=(a, b), method="bounded", options={"xatol": 1e-3})
    w_best, r_best = (res.x, res.fun) if res.fun < vals[i] else (ws[i], vals[i])
    if not r_best < r_sgd:
        return math.inf, r_sgd, r_sgd
    return math.sqrt(math.exp(w_best)) * unit, float(r_best), r_sgd


# ------------------------------------------------------------------------------------------------------
# threshold searches: the bracketing shared with validation.empirical_threshold
# ------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EmpiricalThreshold:
    """A threshold lr found by bracketing and bisection (``validation.empirical_threshold``, ``horizon_threshold``)."""

    lr: float   # geometric mean of the final bracket
    lo: float   # largest lr seen to be stable
    hi: float   # smallest lr seen to diverge
    evaluations: int


def default_lr0(problem, opt) -> float:
    B = getattr(opt, "batch", 1)
    return 2.0 * B / (problem.trace + (B + 1.0) * problem.lambda_max)


def criterion_grid(span: int, steps: int, criterion: str) -> np.ndarray:
    """Record grid of the criterion: (0, half, steps) for divergence, 0 and 11 points of the second half for
    no_progress; every point at an update boundary (one LA-DiLoCo round = H steps)."""
    if steps % span or steps < 2 * span:
        raise ValueError(f"steps must be a multiple of {span} and at least {2 * span} for this optimizer")
    half = steps // span // 2 * span
    if criterion == "divergence":
        return np.array([0, half, steps], dtype=np.int64)
    late = np.linspace(half // span, steps // span, 11).astype(np.int64) * span
    return np.unique(np.concatenate([[0], late]))


def criterion_fails(problem, risk, stat, growth, criterion) -> bool:
    """The criterion on risk[seed, point] (grid of ``_criterion_grid``): True = diverged / no progress."""
    if criterion == "no_progress":
        late = stat(risk[:, 1:].mean(axis=1))
        return not np.isfinite(late) or late >= problem.initial_risk
    mid, end = stat(risk[:, 1]), stat(risk[:, 2])
    return not (np.isfinite(end) and np.isfinite(mid)) or end > growth * mid


def search_threshold(fails, lr, rtol, max_evals, desc=None):
    """Double or halve from lr to a bracket (lo passes, hi fails), then bisect in log lr until hi/lo <= 1 + rtol.
    Returns (lo, hi, evaluations)."""
    lo, hi, evals = None, None, 0
    bar = None
    if desc:
        from tqdm.auto import tqdm

        bar = tqdm(total=None, desc=desc, unit="run", leave=False)
    while (lo is None or hi is None) and evals < max_evals:
        evals += 1
        if fails(lr):
            hi = lr
            lr /= 2.0
        else:
            lo = lr
            lr *= 2.0
        if bar:
            bar.update()
    while lo is not None and hi is not None and hi / lo > 1.0 + rtol and evals < max_evals:
        evals += 1
        mid = math.sqrt(lo * hi)
        if fails(mid):
            hi = mid
        else:
            lo = mid
        if bar:
            bar.update()
    if bar:
        bar.close()
    if lo is None or hi is None:
        raise RuntimeError(f"could not bracket the divergence lr in {max_evals} runs (lo={lo}, hi={hi})")
    return lo, hi, evals


def horizon_threshold(problem, opt, steps: int = 20000, *, growth: float = 10.0, rtol: float = 1e-4,
                      lr0: float | None = None, max_evals: int = 200, full: bool = False,
                      criterion: str = "divergence"):
    """What ``validation.empirical_threshold`` would return with infinitely many seeds and the mean statistic:
    the same search (grid, ``growth``, ``criterion``) applied to the theory's expected risk (a curve stopped at
    its divergence cap counts as diverged). ``hd.stability_threshold`` is asymptotic; this is the threshold of
    the same expected risk at a finite horizon, -> the asymptotic one as 1/horizon (measured ratios:
    docs/derivations/validation.md). Returns the lr, or ``EmpiricalThreshold`` when ``full=True``."""
    if criterion not in ("divergence", "no_progress"):
        raise ValueError(f"criterion must be 'divergence' or 'no_progress', got {criterion!r}")
    grid = criterion_grid(opt.steps_per_update, steps, criterion)

    def fails(lr):
        curve = solve(problem, opt.with_lr(lr), grid=grid)
        risk = np.full(grid.size, np.inf)
        risk[: curve.risk.size] = curve.risk
        return criterion_fails(problem, risk[None, :], np.mean, growth, criterion)

    lr = float(lr0 if lr0 is not None else default_lr0(problem, opt))
    lo, hi, evals = search_threshold(fails, lr, rtol, max_evals)
    res = EmpiricalThreshold(lr=math.sqrt(lo * hi), lo=lo, hi=hi, evaluations=evals)
    return res if full else res.lr
