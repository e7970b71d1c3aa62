"""``hd.solve``: the one driver that integrates every optimizer's deterministic equations.

The driver owns the time grid, output sampling, long-horizon stepping and divergence detection;
the optimizer's theory module (``hdtheory.optimizers``) owns the equations (see
``hdtheory.optimizers.base``). Time stepping:

* exact: the module's exact step map, step by step (Numba), until blocks would be MIN_BLOCK updates
  long (k < MIN_BLOCK/delta after the start or a schedule breakpoint), or always with ``method="exact"``;
* blocks (``method="auto"``, modules with an affine form): about delta k steps at once with the
  closed-form powers of the per-mode map (``hdtheory.kernels``; research/sgd.md §5.3 method 2, extended):
  - E is interpolated geometrically across the block (exact for an exponential; the note's linear
    interpolation is unboundedly wrong once a finite spectrum decays exponentially without a floor);
  - the block's end value E1 is solved self-consistently (``kernels.block_solve``), not iterated to as
    in the note's predictor + 2 correctors, which contract only by ~||K|| (3-8% errors at 97% of the
    threshold);
  - step-size control: a block may change log E by at most DMAX sqrt(1 - beta), else it is halved;
  - scalar-dependent coefficients (clipped SGD, signSGD) are held at the scalars' weighted value
    z0 + (z1 - z0)(n - 1)/(2n) (research/signsgd.md §5.3), z1 the block's end value. Default
    (``predictor="extrapolate", correctors=1``): a first pass at z1 extrapolated from the previous block
    (geometrically in E), then one corrector pass at that pass's z1 (2 passes per block). The note's scheme
    is ``predictor="pass", correctors=2`` (a predictor pass at z1 = z0 and two correctors, 3 passes).
    ``correctors=0`` with the extrapolated predictor (1 pass) is an option only: the coefficients then lag
    the scalars and, on signSGD's V4 problem (Rademacher) at 1e7 steps, the curve limit-cycles 2.5% around
    the floor instead of settling on it (the default: 1.6e-15);
  - blocks never cross a record step or a schedule breakpoint; with a smooth schedule they are halved
    until the lr changes by at most a fraction delta inside them, and each mode's forcing uses the lr
    at the centre of its memory.
  With fixed coefficients between breakpoints (constant or piecewise schedules, scalar-independent
  modules) the whole block loop runs in one Numba call (``kernels.run_blocks``), block lengths being
  powers of two so that a^n, S0, S1 are reused. Cost: O(modes) per block and ~log(steps)/delta
  blocks, so 10^8 steps cost little more than 10^4.
  Scalar-dependent modules with a Numba coefficient kernel (``Theory.block_kernel``: clipped SGD,
  signSGD) run the same Python-path algorithm in one Numba call per segment between breakpoints of
  piecewise-constant schedules (``kernels.run_blocks_scalar``; the same curve to rounding, tested);
  smooth schedules, and modules with only a Python ``affine``, use ``_Blocks`` (one Python call per pass).
  Measured accuracy vs the exact recursion: <= 1.0e-3 relative over 32 hard cases (isotropic,
  linspace and power-law spectra, sigma 0..1e-2, 0.3 and 0.97 of the threshold), <= 1e-4 on power laws.
  Scalar-dependent blocks, blocks from 16 updates: clipped SGD <= 3.4e-4 over 3 laws x B in {1, 8} x fixed
  and relative clip (geometric spectrum), <= 5.1e-4 for relative clips at 0.3-0.97 of the threshold on
  power-law and geometric spectra, 1.7e-3 on an isotropic one at 0.97, sigma = 0.01 (clip = inf, i.e.
  SGD through this path: 1.6e-3, vs 8.3e-4 for the SGD loop, whose capped power-of-two blocks do better
  there), the same with predictor="extrapolate" and correctors = 0; signSGD <= 1e-6 on the note's V2
  setup at lr = 0.5/d, <= 1.7e-5 over lr in [0.1, 2]/d with schedules (extrapolate, correctors = 0:
  <= 5.3e-5); research/signsgd.md V9 reports ~1e-6.

Cost (CPU time, d = 1000, default grid, ratio to an SGD curve of the same problem; benchmarks/, 2-core CPU
under load), default (extrapolated predictor + 1 corrector): signSGD 1.8-2.2x at 1e4 steps and 2.9-3.6x at
1e6; clipped SGD 1.9-3.0x at 1e4 (Student-t B = 1, whose factors cost ~2.5 us per evaluation: 4.3x) and
2.5-4.1x at 1e6 (Student-t B = 1: 8.3-9.2x). The note's pass + 2 correctors: signSGD 2.1-2.5x and 3.9-5x, clipped 2.3-3.5x (5.7x)
at 1e4; extrapolate + 0 (1 pass, see above): signSGD 1.2-1.4x and 1.6-2.1x. Before the fused loop (Python
blocks): clipped 2.6-8x and 11-21x, signSGD 2.0-2.6x and 8-10x. A fused scalar-dependent block costs
1 + correctors passes of ~20 ns per mode (coefficients, log1p, expm1 for a^n, block_solve) against one
solve per block for SGD, hence the remaining gap to the 2x target (issues 4, 5) at long
horizons. First call with a cold Numba cache: +1.4 s (clipped) and +1.6 s (signSGD) for the bound loops.

Divergence (research/sgd.md §5.4): the run stops when E = 2R exceeds ``cap * max(E(0), sigma^2)``
or stops being finite; the curve then ends at the last recorded point with status ``diverged``.
"""
from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np

from . import __version__
from .grid import as_grid
from .kernels import block_change, block_powers, block_solve, extrapolate_scalars, log_multipliers, run_blocks
from .optimizers import theory_for
from .optimizers.base import check_int, check_positive
from .problems import Problem
from .results import RiskCurve

#: |log(E1/E0)| above which a block interpolates E geometrically (kernels.block_solve). Linear
#: interpolation errs by ~|log(E1/E0)|^2/8 per block and these errors accumulate over an exponential
#: decay (0.05 left 1.4% after 1e-70 of decay at 97% of the threshold), so only flat blocks stay linear.
GEO_TOL = 1e-6
#: step-size control: a block may change log E by at most DMAX sqrt(1 - beta) (beta = the block's
#: noise-loop gain, ~||K||), else it is halved and redone. Worst error over 32 hard cases (isotropic,
#: linspace, power law; sigma 0..1e-2; 0.3 and 0.97 lr*): 4.2e-3 at 0.1, 1.0e-3 at 0.03, 7.7e-4 at 0.02,
#: at the same cost on power-law benchmarks.
DMAX = 0.03
#: blocks take over from exact steps once they are this many updates long: a block costs ~5 passes over
#: the modes, an exact step one pass, so shorter blocks are slower
MIN_BLOCK = 16

#: cost of one Python-level block (3 passes of affine + block kernels, ~150-300 us) in units of one exact
#: per-mode update (~1 ns): blocks start once they are this many mode-updates long (measured, 2-core CPU;
#: used only by modules without a fused loop, and under smooth schedules)
PY_BLOCK_COST = 2e5

#: a fused scalar-dependent block (kernels.run_blocks_scalar) costs 1 + correctors passes of coefficients,
#: log1p, a^n (expm1) and block_solve, ~20 ns per mode each, vs ~1.3 ns per mode for an exact step (more for
#: costly factors: the Student-t B = 1 clip factors add ~2.5 us to both): such blocks start once they are
#: MIN_BLOCK_SCALAR_PASS updates per pass long (at least MIN_BLOCK): 33 updates at correctors = 2, 22 at the default 1
MIN_BLOCK_SCALAR_PASS = 11

_EXACT_CHUNK = 1 << 16


def solve(problem: Problem, opt, steps: int | None = None, *, grid=None, method: str = "auto",
          delta: float = 0.01, correctors: int = 1, predictor: str = "extrapolate", cap: float = 1e8) -> RiskCurve:
    """Predicted expected risk of ``opt`` on ``problem`` at every step of the record grid.

    Parameters
    ----------
    steps : int
        Horizon (iterations); the default grid is ``hd.step_grid(steps)``.
    grid : int array, optional
        Explicit record grid (starts at 0, strictly increasing); overrides the default.
    method : "auto" | "exact"
        "exact" applies the exact step map at every step (cost O(modes * steps));
        "auto" uses blocks at late times (measured <= 1e-3 relative to the exact recursion at delta = 0.01,
        see the module docstring).
    delta : float
        Block length as a fraction of the current step (0 < delta <= 0.1).
    correctors : int
        Scalar-dependent coefficients (clipped SGD, signSGD): passes per block after the first one, each
        re-evaluating the coefficients at the scalars' weighted value from the previous pass's end value
        (default 1: two passes per block; see the module docstring for accuracy and cost).
    predictor : "pass" | "extrapolate"
        Scalar-dependent coefficients: the first pass of a block holds the coefficients at the start
        scalars ("pass", research/signsgd.md §5.3), or at the end value extrapolated from the previous
        block ("extrapolate"; a pass at the start scalars where there is none). With "extrapolate" and
        correctors=0 a block costs one pass instead of three (see the module docstring for accuracy).
    cap : float
        Divergence cap on E / max(E(0), sigma^2).
    """
    if not isinstance(problem, Problem):
        raise ValueError(f"problem must be an hd.Problem, got {type(problem).__name__}")
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
    extrapolate = predictor == "extrapolate"
    theory = theory_for(opt)
    span = theory.steps_per_update(opt)
    g = as_grid(steps, grid, multiple_of=span)
    st = theory.init(problem, opt)
    z = st.scalars()
    E0 = float(z[0])
    ref = max(E0, st.sigma2)
    cap_E = cap * ref if ref > 0 else math.inf

    risk = np.full(g.shape, np.nan)
    risk[0] = 0.5 * E0
    use_blocks = method == "auto" and theory.affine is not None
    scheds = opt.schedules
    breakpoints = np.asarray(sorted({int(b) for sc in scheds for b in sc.breakpoints()}), dtype=np.int64)
    k, i = 0, 1
    status, dstep, message = "ok", None, ""
    blk = _Blocks(theory, st, opt, correctors, extrapolate) if use_blocks else None
    piecewise = all(sc.piecewise_constant for sc in scheds)
    # fused Numba block loop when the coefficients are fixed between breakpoints (kernels.run_blocks), or
    # when the module has a Numba coefficient kernel of the scalars (kernels.run_blocks_scalar)
    fused = use_blocks and not theory.scalar_dependent and piecewise
    kernel = theory.block_kernel(st, opt) if use_blocks and theory.scalar_dependent and piecewise else None
    # first step where delta k >= the block length that pays off: MIN_BLOCK updates for the fused Numba loop,
    # MIN_BLOCK_SCALAR_PASS per pass for the fused scalar-dependent one; a Python-level block (scalar-dependent
    # coefficients without a kernel, smooth schedules) costs ~PY_BLOCK_COST mode-updates
    if fused:
        min_block = MIN_BLOCK
    elif kernel is not None:
        min_block = max(MIN_BLOCK, MIN_BLOCK_SCALAR_PASS * (1 + correctors))
    else:
        min_block = max(MIN_BLOCK, PY_BLOCK_COST / max(st.s.shape[0], 1))
    k_block = span * int(math.ceil(min_block / delta))

    while i < g.size:
        target = int(g[i])
        k_ref = int(breakpoints[breakpoints <= k][-1]) if np.any(breakpoints <= k) else 0
        late = use_blocks and k - k_ref >= k_block
        nxt = breakpoints[breakpoints > k]
        k_stop = min(int(nxt[0]) if nxt.size else int(g[-1]), int(g[-1]))
        k_stop -= (k_stop - k) % span
        if late and fused and k_stop > k:
            # coefficients fixed until the next breakpoint: one fused Numba call records every point there
            am1, ell, f, h = blk.coefficients(float(k), z)
            k, i, div = run_blocks(am1, ell, f, h, st.s, st.W, st.c0, k, k_stop, k_ref, delta, span, g, risk, i,
                                   cap_E, GEO_TOL, DMAX)
            z = st.scalars()
            ok = not div
            if ok:
                continue
        elif late and kernel is not None and k_stop > k:
            # scalar-dependent coefficients, hyperparameters fixed until the next breakpoint: the Python
            # path's blocks (predictor + correctors, step-size control) in one fused Numba call
            run, consts = kernel
            z = np.array(z, dtype=np.float64)
            k, i, div = run(consts, theory.hyper(opt, k), st.s, st.W, st.c0, z, k, k_stop, k_ref, delta, span, g,
                            risk, i, cap_E, GEO_TOL, DMAX, correctors, extrapolate)
            ok = not div
            if ok:
                continue
        else:
            n = _block_length(k, k_ref, target, delta, span, breakpoints, opt) if late else 0
            if n >= 2 * span:
                z, n = blk.advance(k, n, z)
                k += n
                ok = bool(np.isfinite(z[0]) and z[0] <= cap_E)
            else:
                m = target - k
                if use_blocks:
                    m = min(m, max(k_ref + k_block - k, span))
                m = max(span, min(m, _EXACT_CHUNK - _EXACT_CHUNK % span))
                lr_seq = np.ascontiguousarray(opt.lr_at(np.arange(k, k + m)), dtype=np.float64)
                done = theory.exact(st, opt, k, lr_seq, cap_E)
                k += done
                z = st.scalars()
                ok = done == m and bool(np.isfinite(z[0]) and z[0] <= cap_E)
        if not ok:
            status, dstep = "diverged", k
            message = (f"the risk passed {cap:g} x max(E(0), sigma^2) or stopped being finite at step {k}"
                       f" (at or before it for a block); the curve ends at step {int(g[i - 1])}")
            break
        if k == target:
            risk[i] = 0.5 * float(z[0])
            i += 1

    steps_out, risk_out = g[:i], risk[:i]
    if status == "ok":
        lr_end = float(opt.lr_at(np.array([max(int(g[-1]) - 1, 0)]))[0])
        lr_star = _threshold(problem, dataclasses.replace(opt, schedule=None).with_lr(1.0))  # lr is ignored
        if not lr_end < lr_star:
            status = "unstable"
            message = (f"lr = {lr_end:g} at the last step is at or above the stability threshold {lr_star:g}: "
                       "the expected risk grows geometrically from here on")
    meta = {"problem": problem.to_dict(), "optimizer": opt.to_dict(), "method": method, "delta": delta,
            "hdtheory_version": __version__}
    return RiskCurve(steps=steps_out, risk=risk_out, sigma2=st.sigma2, status=status, diverged_step=dstep,
                     message=message, meta=meta)


@functools.lru_cache(maxsize=64)
def _threshold(problem, opt) -> float:
    """The stability threshold for solve's end-of-run check, cached per (problem object, optimizer): an lr
    sweep re-solves one problem many times, and some thresholds cost ~0.3 s (LA-DiLoCo with momentum: a scan
    of the exact (L6) criterion). Problems hash by identity (``Problem`` is frozen, eq=False)."""
    return theory_for(opt).threshold(problem, opt)


def _block_length(k, k_ref, target, delta, span, breakpoints, opt) -> int:
    n = int(delta * (k - k_ref)) // span * span
    n = min(n, target - k)
    nxt = breakpoints[breakpoints > k]
    if nxt.size:
        n = min(n, int(nxt[0]) - k)
    # halve until every schedule (lr, and e.g. a clip level) changes by at most a fraction delta inside the block
    moving = [sc for sc in opt.schedules if not sc.constant]
    while n >= 2 * span and moving:
        ends = np.array([k, k + n - 1], dtype=np.float64)
        if all(m0 == m1 or abs(m1 - m0) <= delta * max(abs(m0), abs(m1)) for m0, m1 in (sc(ends) for sc in moving)):
            break
        n = (n // 2) // span * span
    return n


class _Blocks:
    """Work arrays and coefficient cache of the block integrator for one solve."""

    def __init__(self, theory, st, opt, correctors, extrapolate=False):
        self.theory, self.st, self.opt, self.correctors = theory, st, opt, correctors
        self.extrapolate = extrapolate
        size = st.s.shape[0]
        self.an, self.S0, self.S1 = np.empty(size), np.empty(size), np.empty(size)
        self.s_new = np.empty(size)
        self.z1 = np.empty(st.W.shape[0])
        self.zg = np.empty(st.W.shape[0])
        self._last = None  # (step where the last block ended, its length, its start scalars)
        self._key = None
        self._coef = None

    def coefficients(self, t, zc):
        """(am1, log1p(am1), f, h) at step time ``t`` (a float, or one per mode), cached while the
        schedules' values are unchanged and the module's coefficients do not depend on the scalars."""
        key = None
        if np.ndim(t) == 0 and not self.theory.scalar_dependent:
            key = tuple(float(sc(t)) for sc in self.opt.schedules)
            if key == self._key:
                return self._coef
        # writable copies: the kernels then see the same array types as in the fused scalar loop (one Numba
        # specialization of block_solve etc., not a second one for read-only broadcast views)
        am1, f, h = (np.array(np.broadcast_to(c, self.st.s.shape), dtype=np.float64)
                     for c in self.theory.affine(self.st, self.opt, t, zc))
        ell = np.empty_like(am1)
        log_multipliers(am1, ell)
        self._coef = (am1, ell, f, h)
        self._key = key
        return self._coef

    def _pass(self, times, zc, nu, z0):
        """One block at coefficients (lr, scalars ``zc``), its end value solved self-consistently by
        ``kernels.block_solve`` (linear interpolation of E solved exactly; geometric where E changes by
        more than GEO_TOL in log). Iterating E1 <- E_out(E1) instead (the note's predictor-corrector)
        contracts only by ~||K|| and leaves 3-8% errors at 97% of the threshold.

        ``times`` is (t_mid, t_start, t_end), the block's middle, first and last step. When a schedule
        moves across the block, a^n keeps the coefficients at t_mid (the product of the per-step factors,
        to second order) while each mode's forcing uses the hyperparameters at the centre of its memory,
        step t_start + S1_j/S0_j (the midpoint for slow modes, the block end for modes that equilibrate
        within the block); holding t_mid for them leaves an O(delta) error."""
        st = self.st
        t_mid, t0, t1 = times
        am1, ell, f, h = self.coefficients(t_mid, zc)
        block_powers(am1, ell, nu, self.an, self.S0, self.S1)
        if t1 != t0 and not all(sc.constant for sc in self.opt.schedules):
            t = self.S1 / np.maximum(self.S0, 1e-300) / max(nu - 1, 1)
            an = self.an.copy()
            am1, ell, f, h = self.coefficients(t0 + (t1 - t0) * np.clip(t, 0.0, 1.0), zc)
            block_powers(am1, ell, nu, self.an, self.S0, self.S1)
            self.an[:] = an
        beta = float(np.dot(st.W[0], h * self.S1)) / nu
        block_solve(am1, ell, f, h, self.an, self.S0, self.S1, beta, st.s, self.s_new, nu, float(z0[0]), st.W,
                    st.c0, self.z1, GEO_TOL)
        return beta

    def advance(self, k, n, z0):
        """Advance up to n steps (n/span updates) from scalars z0; returns (new scalars, steps advanced).
        A block rejected by ``kernels.block_change`` is halved and redone (step-size control).

        Scalar-dependent coefficients (as ``kernels.run_blocks_scalar``, which does the same): a first pass
        at z0, or with ``extrapolate`` at the weighted value of the end scalars extrapolated from the
        previous block when it ended at k; then ``correctors`` passes at z0 + (z1 - z0)(nu - 1)/(2 nu)."""
        span = self.theory.steps_per_update(self.opt)
        nu = n // span
        z0 = np.asarray(z0, dtype=np.float64)
        last = self._last if (self.extrapolate and self._last is not None and self._last[0] == k) else None
        while True:
            n = nu * span
            times = (k + (n - 1) / 2.0, float(k), float(k + n - 1))
            if self.theory.scalar_dependent:
                w = (nu - 1.0) / (2.0 * nu)
                zc = z0
                if last is not None:
                    extrapolate_scalars(z0, last[2], n / last[1], self.zg)
                    zc = z0 + (self.zg - z0) * w
                beta = self._pass(times, zc, nu, z0)
                for _ in range(self.correctors):
                    beta = self._pass(times, z0 + (self.z1 - z0) * w, nu, z0)
            else:
                beta = self._pass(times, z0, nu, z0)
            change, allowed = block_change(float(z0[0]), float(self.z1[0]), beta, DMAX)
            if change <= allowed or nu == 1:
                break
            nu //= 2
        self.st.s[:] = self.s_new
        self._last = (k + n, n, z0.copy())
        return self.z1.copy(), n
