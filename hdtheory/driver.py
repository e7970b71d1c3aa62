"""``hd.solve``: the one driver that integrates every optimizer's deterministic equations.

The driver owns the record grid, long-horizon stepping, divergence and the curve's status; the optimizer's
theory (``hdtheory.theory``) owns the equations and its state. Stepping:

* exact: the theory's exact step map, step by step, until blocks pay off (MIN_BLOCK updates long after the
  start or a schedule breakpoint), or always with ``method="exact"``;
* blocks (``method="auto"``, theories with a block form): about delta k steps at once by the closed-form
  powers of the per-mode affine map (``hdtheory.stepping.integrate``; derivation and measured accuracy in
  docs/derivations/blocks.md). Between breakpoints of piecewise-constant schedules one Numba call covers the
  whole segment; under smooth schedules the driver cuts one block at a time, short enough that every schedule
  moves by at most a fraction delta inside it (where such a block would be shorter than its pay-off length,
  ``BlockForm.payoff``, the stretch it would have covered is stepped exactly in one call).

Divergence: the run stops once the risk exceeds ``cap * max(R(0), sigma^2/2)`` or stops being finite (for an
optimizer that never diverges, the reference also holds its stationary risk at the schedule's peak lr, so that a
large but finite floor is not called a divergence); the curve then ends at the last recorded point with status
``diverged``. A run that ends at or above the
stability threshold has status ``unstable``.

Validity: where the theory has a validity test (``Theory.validity``), each recorded point says whether it held
there (``RiskCurve.valid``; a point recorded inside a block segment is valid when the test holds at both of the
segment's ends) and a curve with an invalid point has status ``outside_validity`` with the reason.
"""
from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np

from . import __version__
from . import theory as contract
from .checks import check_int, check_positive
from .grid import as_grid
from .results import RiskCurve
from .theory import SCALARS, theory_for

#: |log(E1/E0)| above which a block interpolates E geometrically (``stepping.block_solve``)
GEO_TOL = 1e-6
#: step-size control: a block may change log E by at most DMAX sqrt(1 - beta) (beta: the block's noise-loop gain)
DMAX = 0.03
#: blocks take over from exact steps once they are this many updates long (a block costs a few passes over
#: the modes, an exact update one)
MIN_BLOCK = 16
#: a block of scalar-dependent coefficients costs 1 + correctors passes of ~MIN_BLOCK_SCALAR_PASS exact updates
MIN_BLOCK_SCALAR_PASS = 11

_EXACT_CHUNK = 1 << 16


def _check_problem(problem):
    if not (hasattr(problem, "sigma2") and hasattr(problem, "to_dict")):
        raise ValueError(f"problem must be an hd problem (hd.Problem, hd.powerlaw(...), ...), "
                         f"got {type(problem).__name__}")


def solve(problem, opt, steps: int | None = None, *, grid=None, method: str = "auto", delta: float = 0.01,
          correctors: int = 1, predictor: str = "extrapolate", cap: float = 1e8) -> RiskCurve:
    """Predicted expected risk of ``opt`` on ``problem`` at every step of the record grid.

    Parameters
    ----------
    steps : int
        Horizon (iterations); the default grid is ``hd.step_grid(steps)``.
    grid : int array, optional
        Explicit record grid (starts at 0, strictly increasing); overrides the default.
    method : "auto" | "exact"
        "exact" applies the exact step map at every step (cost O(modes * steps)); "auto" uses blocks at late
        times where the theory has a block form (accuracy: docs/derivations/blocks.md).
    delta : float
        Block length as a fraction of the current step (0 < delta <= 0.1).
    correctors : int
        Scalar-dependent block forms (clipped SGD, signSGD): passes per block after the first one.
    predictor : "pass" | "extrapolate"
        Scalar-dependent block forms: the first pass of a block holds the coefficients at the start scalars
        ("pass") or at the end value extrapolated from the previous block ("extrapolate").
    cap : float
        Divergence cap on R / max(R(0), sigma^2/2).
    """
    _check_problem(problem)
    if method not in ("auto", "exact"):
        raise ValueError(f"method must be 'auto' or 'exact', got {method!r}")
    delta = check_positive("delta", delta)
    if delta > 0.1:
        raise ValueError(f"delta must be in (0, 0.1], got {delta!r}")
    if check_positive("cap", cap) <= 1:
        raise ValueError(f"cap must be > 1, got {cap!r}")
    correctors = check_int("correctors", correctors, minimum=0, maximum=10)
    if predictor not in ("pass", "extrapolate"):
        raise ValueError(f"predictor must be 'pass' or 'extrapolate', got {predictor!r}")
    theory = theory_for(opt)
    span = opt.steps_per_update
    g = as_grid(steps, grid, multiple_of=span)
    st = theory.init(problem, opt)
    R0 = float(theory.risk(st))
    ref = max(R0, 0.5 * problem.noise_variance, _settled_risk(problem, opt))
    cap_R = cap * ref if ref > 0 else math.inf

    risk = np.full(g.shape, np.nan)
    risk[0] = R0
    valid = np.ones(g.shape, dtype=bool)
    check = _Validity(theory, st, opt)
    valid[0] = check()
    form = theory.block_form(st, opt) if method == "auto" else None
    blocks = _Blocks(form, opt, span, delta, correctors, predictor == "extrapolate", cap_R) if form else None
    breakpoints = np.asarray(sorted({int(b) for sc in opt.schedules for b in sc.breakpoints()}), dtype=np.int64)
    k, i, k_switch = 0, 1, 0
    status, dstep, message = "ok", None, ""
    while i < g.size:
        target = int(g[i])
        past = breakpoints[breakpoints <= k]
        k_ref = max(int(past[-1]) if past.size else 0, k_switch)
        nxt = breakpoints[breakpoints > k]
        k_stop = min(int(nxt[0]) if nxt.size else int(g[-1]), int(g[-1]))
        k_stop -= (k_stop - k) % span
        done, declined = None, 0
        if blocks is not None and k - k_ref >= blocks.k_block and k_stop > k:
            done = blocks.advance(k, k_stop, k_ref, target, breakpoints, g, risk, i)
            declined = blocks.declined
        if done is not None:
            i0 = i
            k, i, diverged, k_switch = done
            ok = not diverged
            if i > i0:  # points recorded inside a block segment: valid if the test holds at both of its ends
                valid[i0:i] = valid[i0 - 1] and check()
        else:
            m = target - k
            if blocks is not None:  # exact until blocks start, or over the short block just declined
                m = min(m, max(k_ref + blocks.k_block - k, declined, span))
            m = max(span, min(m, _EXACT_CHUNK) // span * span)  # whole updates, even after a breakpoint mid-round
            done = theory.step(st, k, opt.hyper_at(np.arange(k, k + m)), cap_R)
            k += done
            R = float(theory.risk(st))
            if blocks is not None:
                blocks.refresh()
            ok = done == m and R <= cap_R
            if ok and k == target:
                risk[i] = R
                valid[i] = check()
                i += 1
        if not ok:
            status, dstep = "diverged", k
            message = (f"the risk passed {cap:g} x max(R(0), sigma^2/2) or stopped being finite at step {k}"
                       f" (at or before it for a block); the curve ends at step {int(g[i - 1])}")
            break

    steps_out, risk_out, valid_out = g[:i], risk[:i], valid[:i]
    if status == "ok":
        lr_end = float(opt.lr_at(np.array([max(int(g[-1]) - 1, 0)]))[0])
        lr_star, reason = _threshold(problem, dataclasses.replace(opt, schedule=None).with_lr(1.0))
        if not lr_end < lr_star:
            status = "unstable"
            message = (f"lr = {lr_end:g} at the last step is at or above the stability threshold {lr_star:g}"
                       f"{' (' + reason + ')' if reason else ''}: the expected risk grows geometrically from here on")
    if status in ("ok", "unstable") and not valid_out.all():
        first = int(steps_out[np.argmin(valid_out)])
        status = "outside_validity"
        message = (f"from step {first} on ({int((~valid_out).sum())} of {valid_out.size} recorded points): "
                   f"{check.reason}" + (f"; also {message}" if message else ""))
    meta = {"problem": problem.to_dict(), "optimizer": opt.to_dict(), "method": method, "delta": delta,
            "divergence_cap": cap_R, "hdtheory_version": __version__}
    return RiskCurve(steps=steps_out, risk=risk_out, sigma2=problem.noise_variance, status=status, diverged_step=dstep,
                     message=message, meta=meta, valid=valid_out)


class _Validity:
    """The theory's own validity test at the current state (``Theory.validity``); keeps the first failure's reason."""

    def __init__(self, theory, state, opt):
        self.theory, self.state, self.opt, self.reason = theory, state, opt, ""

    def __call__(self) -> bool:
        why = self.theory.validity(self.state, self.opt)
        if why and not self.reason:
            self.reason = why
        return not why


def _settled_risk(problem, opt) -> float:
    """For an optimizer whose threshold is inf (it never diverges): its stationary risk at the schedule's peak
    lr, where its theory knows it; else 0."""
    import warnings

    theory = theory_for(opt)
    lr_star, _ = _threshold(problem, dataclasses.replace(opt, schedule=None).with_lr(1.0))
    if math.isfinite(lr_star) or theory.stationary_risk is None:
        return 0.0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = float(theory.stationary_risk(problem, dataclasses.replace(opt, schedule=None).with_lr(
                opt.lr * opt.sched.peak())))
    except (ValueError, ArithmeticError):
        return 0.0
    return value if math.isfinite(value) else 0.0


@functools.lru_cache(maxsize=64)
def _threshold(problem, opt):
    """The stability threshold for solve's end-of-run check, cached per (problem object, optimizer): an lr
    sweep re-solves one problem many times and some thresholds cost a scan. Problems hash by identity."""
    return theory_for(opt).threshold(problem, opt)


class _Blocks:
    """The block form of one solve and the driver's side of the block integrator."""

    def __init__(self, form, opt, span, delta, correctors, extrapolate, cap_R):
        self.form, self.opt, self.span, self.delta = form, opt, span, delta
        self.correctors, self.extrapolate, self.cap_E = correctors, extrapolate, 2.0 * cap_R
        self.piecewise = all(sc.piecewise_constant for sc in opt.schedules)
        self.moving = [sc for sc in opt.schedules if not sc.constant]
        self.z = np.ascontiguousarray(form.c0 + form.W @ form.s, dtype=np.float64)
        self.carry = np.zeros(2 + self.z.shape[0])
        self.carry[0] = -1.0
        size = max(form.s.shape[0], 1)
        #: under smooth schedules a single block costs a Python round trip: the shortest one worth cutting
        #: (updates); a shorter one is declined and its stretch stepped exactly
        payoff = form.payoff if form.payoff is not None else max(MIN_BLOCK, contract.SINGLE_BLOCK_COST / size)
        self.min_single = span * max(2, int(math.ceil(payoff)))
        if form.min_block is not None:
            min_block = form.min_block
        elif not self.piecewise:
            min_block = payoff
        elif form.dependence == SCALARS and form.switching:
            # coefficients evaluated at every pass (1 + correctors per block); elsewhere they are reused while the
            # scalars stay within stepping.ZTOL of their last evaluation, and a block costs what a fixed one does
            min_block = max(MIN_BLOCK, MIN_BLOCK_SCALAR_PASS * (1 + correctors))
        else:
            min_block = MIN_BLOCK
        #: blocks start once delta (k - k_ref) reaches min_block updates
        self.k_block = span * int(math.ceil(min_block / delta))
        #: the stretch ``advance`` last declined to block (0: none): no block of min_single updates fit there
        self.declined = 0
        #: the longest single block tried first (0: no limit): the length the step-size control accepted after its
        #: last rejection, grown by a quarter at every block it then takes at that length at the first try (each
        #: rejected try costs a whole block)
        self.single_cap = 0

    def refresh(self):
        """Re-read the scalars after exact steps moved the state."""
        self.z[:] = self.form.c0 + self.form.W @ self.form.s

    def _run(self, hp, k, k_stop, k_ref, grid, rec, i, single):
        f = self.form
        return f.run(f.consts, hp, f.s, f.W, f.c0, self.z, k, k_stop, k_ref, self.delta, self.span, grid, rec, i,
                     self.cap_E, GEO_TOL, DMAX, f.dependence, self.correctors, self.extrapolate, single, f.switching,
                     self.carry)

    def advance(self, k, k_stop, k_ref, target, breakpoints, grid, rec, i):
        """Blocks from k: the whole segment up to k_stop (piecewise-constant schedules), else one block cut
        here. Returns (k, i, diverged, k_switch), or None where no block that pays off fits (the stretch it
        would have covered then in ``declined``, for the driver to step exactly)."""
        self.declined = 0
        if self.piecewise:
            self.carry[0] = -1.0  # no extrapolation across a breakpoint
            hp = np.repeat(self.opt.hyper_at(np.array([k])).T, 3, axis=0)
            k, i, status, k_switch = self._run(hp, k, k_stop, k_ref, grid, rec, i, False)
            return k, i, status == 1, k_switch
        n0 = self._longest_block(k, k_ref, target, breakpoints)
        n = self._halved_for_schedules(k, n0)
        if n >= self.min_single and self.single_cap:
            n = max(min(n, self.single_cap), self.min_single)
        first = True
        while n >= self.min_single:
            times = np.array([k + (n - 1) / 2.0, float(k), float(k + n - 1)])
            hp = np.ascontiguousarray(self.opt.hyper_at(times).T)
            k1, i, status, k_switch = self._run(hp, k, k + n, k_ref, grid, rec, i, True)
            if status != 2:
                if not first:
                    self.single_cap = n
                elif self.single_cap and n >= self.single_cap:
                    self.single_cap = n + max(n // 4 // self.span, 1) * self.span
                return k1, i, status == 1, k_switch
            first = False
            # halved, but min_single is tried before the block is declined
            n = max((n // self.span // 2) * self.span, self.min_single) if n > self.min_single else 0
        if not first:  # the control rejected every length down to min_single: try only that one next
            self.single_cap = self.min_single
        self.declined = n0  # exact updates are exact: step the whole stretch, then try again
        return None

    def _longest_block(self, k, k_ref, target, breakpoints) -> int:
        """delta (k - k_ref) in whole updates, never past the next record step or breakpoint."""
        n = int(self.delta * (k - k_ref)) // self.span * self.span
        n = min(n, target - k)
        nxt = breakpoints[breakpoints > k]
        if nxt.size:
            n = min(n, int(nxt[0]) - k) // self.span * self.span  # a breakpoint need not fall on a whole update
        return n

    def _halved_for_schedules(self, k, n) -> int:
        """n halved until every moving schedule changes by at most a fraction delta inside the block (or until
        it is shorter than two updates)."""
        span, delta = self.span, self.delta
        while n >= 2 * span:
            ends = np.array([k, k + n - 1], dtype=np.float64)
            if all(m0 == m1 or abs(m1 - m0) <= delta * max(abs(m0), abs(m1))
                   for m0, m1 in (sc(ends) for sc in self.moving)):
                break
            n = (n // 2) // span * span
        return n
