"""LA-DiLoCo theory benchmarks. Prints ratios against baselines run in this process (and writes them to
benchmarks/results/bench_la_diloco.txt):

(i)   cost of one outer round (H inner steps per worker, the exact recursion ``LADiLoCoTheory.step``) vs H exact
      SGD steps on the same problem, for H in {1, 8, 64} with and without momentum (the recursion is O(modes) per
      inner step, so the ratio stays O(1) in H), and the (D6) threshold's cost;
(ii)  theory vs a JAX simulation of the same problem and horizon (M = 4, H = 8): time ratio and agreement;
(iii) long horizons: hd.solve cost per inner step at 1e4 and 1e6 inner steps, method="exact" vs "auto" (blocks:
      per-round affine map for beta = 0, the 3 x 3 map per mode for beta > 0), against SGD's curve on the same
      problem, with the largest relative difference auto vs exact; and 1e8 inner steps (auto only);
(iv)  with --min-block: cost at 1e6 steps and accuracy at 2^18 for several block starts (theory.MIN_BLOCK_ROUNDS),
      the measurement behind its value.

The final status check of hd.solve (the stability threshold) is switched off while timing (iii)-(iv), so those
numbers are the stepping alone.

Usage: python benchmarks/bench_la_diloco.py [--quick] [--seeds N] [--d D] [--only-long] [--min-block]
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import time

import numpy as np
from _report import Report

import hdtheory as hd
from hdtheory.theories.la_diloco import theory as la_theory
from hdtheory.theories.sgd import SGDTheory
from hdtheory.theory import Threshold

report = Report("bench_la_diloco")


def best_of(f, repeat=3):
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        out.append(time.perf_counter() - t)
    return min(out)


class no_status_check:
    """Within the block: every LA-DiLoCo and SGD threshold is inf (hd.solve's end-of-run check costs nothing)."""

    def __enter__(self):
        self.saved = la_theory.LADiLoCoTheory.threshold, SGDTheory.threshold
        la_theory.LADiLoCoTheory.threshold = SGDTheory.threshold = lambda *a: Threshold(math.inf, "timing")

    def __exit__(self, *exc):
        la_theory.LADiLoCoTheory.threshold, SGDTheory.threshold = self.saved


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seeds", type=int, default=64)
    ap.add_argument("--d", type=int, default=1000)
    ap.add_argument("--only-long", action="store_true", help="run (iii) only")
    ap.add_argument("--min-block", action="store_true", help="also (iv)")
    args = ap.parse_args()
    d = args.d
    if not args.only_long:
        round_costs(d, args.quick)
        simulation(d, args.quick, args.seeds)
    long_horizons(d, args.quick)
    if args.min_block:
        min_block(d)


def round_costs(d, quick):
    prob = hd.powerlaw(d, 1.0, 0.5, noise=hd.Gaussian(0.1))
    steps = 2**14 if quick else 2**17
    report(f"(i) theory cost per inner step, d = {d}, {steps} inner steps (exact stepping)")
    sgd = hd.SGD(0.5 * hd.stability_threshold(prob, hd.SGD(1.0)))
    grid = np.array([0, steps])
    hd.solve(prob, sgd, grid=grid, method="exact")  # compile
    t_sgd = best_of(lambda: hd.solve(prob, sgd, grid=grid, method="exact"))
    report(f"    SGD: {t_sgd / steps * 1e9:8.1f} ns per step")
    theory = la_theory.LADiLoCoTheory()
    for H in (1, 8, 64):
        for label, kw in [("plain", {}), ("Nesterov 0.9", {"outer_momentum": 0.9, "nesterov": True}),
                          ("HB 0.9", {"outer_momentum": 0.9}), ("inner mu 0.5", {"inner_momentum": 0.5})]:
            opt = hd.LADiLoCo(1.0, workers=4, inner_steps=H, outer_lr=0.8, **kw)
            hd.stability_threshold(prob, opt.with_lr(2.0))  # compile
            t0 = time.perf_counter()
            thr = hd.stability_threshold(prob, opt)
            t_thr = time.perf_counter() - t0
            opt = opt.with_lr(0.5 * thr)
            hyper = opt.hyper_at(np.arange(steps))
            theory.step(theory.init(prob, opt), 0, hyper[:, :H], math.inf)  # compile
            t = best_of(lambda: theory.step(theory.init(prob, opt), 0, hyper, math.inf))  # noqa: B023
            report(f"    H = {H:3d} {label:13s}: round = {t / (steps // H) * 1e6:8.2f} us, per inner step "
                   f"{t / steps * 1e9:7.1f} ns = {t / t_sgd:5.2f} x SGD;  threshold {t_thr:6.3f} s")


def simulation(d, quick, seeds):
    import validation

    prob = hd.powerlaw(d, 1.0, 0.5, noise=hd.Gaussian(0.1))
    report("(ii) theory vs simulation (M = 4, H = 8, alpha 0.8, Nesterov 0.6, B = 2)")
    opt = hd.LADiLoCo(1.0, batch=2, workers=4, inner_steps=8, outer_lr=0.8, outer_momentum=0.6, nesterov=True)
    opt = opt.with_lr(0.5 * hd.stability_threshold(prob, opt))
    sim_steps = 2**10 if quick else 2**12
    g = hd.step_grid(sim_steps, per_decade=10, multiple_of=8)
    t0 = time.perf_counter()
    curve = hd.solve(prob, opt, grid=g)
    t_th = time.perf_counter() - t0
    validation.simulate(prob, opt, grid=g[:3], seeds=seeds, key=0)  # compile a chunk
    t0 = time.perf_counter()
    sim = validation.simulate(prob, opt, grid=g, seeds=seeds, key=1)
    t_sim = time.perf_counter() - t0
    rep = validation.compare(curve, sim)
    report(f"    theory {t_th:.3f} s (incl. threshold status check), simulation {t_sim:.2f} s "
           f"({seeds} seeds x {opt.workers} workers, {sim.meta['device']}): ratio {t_sim / t_th:.0f}x")
    report(f"    {rep.summary()}")


CASES = [(1, "M 4", {"workers": 4, "outer_lr": 1.5}), (8, "LA", {"outer_lr": 0.5}),
         (8, "M 4", {"workers": 4, "outer_lr": 1.0}), (8, "M 4 mu .5", {"workers": 4, "inner_momentum": 0.5}),
         (8, "M 4 a 1.9", {"workers": 4, "outer_lr": 1.9}),
         (8, "M 4 Nest .6", {"workers": 4, "outer_momentum": 0.6, "nesterov": True}),
         (8, "M 4 HB .9", {"workers": 4, "outer_lr": 0.8, "outer_momentum": 0.9}),
         (64, "M 4", {"workers": 4, "outer_lr": 1.0}), (64, "M 4 Nest .9", {"workers": 4, "outer_lr": 0.8,
                                                                             "outer_momentum": 0.9, "nesterov": True})]


def long_horizons(d, quick):
    prob = hd.powerlaw(d, 1.0, 0.5, noise=hd.Gaussian(1e-2))
    horizons = (10_240, 1_000_000) if not quick else (10_240, 262_144)
    report(f"(iii) long horizons, power law d = {d}, sigma = 0.01, lr = 0.9 eta*: stepping cost in ns per inner step "
           f"(status check off); x = ratio to SGD's curve (method auto) at the same horizon")
    for sname in ("constant", "cosine"):
        for H, label, kw in CASES:
            base = hd.LADiLoCo(1.0, inner_steps=H, **kw)
            lr = 0.9 * hd.stability_threshold(prob, base)
            for steps in horizons:
                sc = hd.WarmupCosine(steps // 100, steps, 0.01) if sname == "cosine" else None
                opt = dataclasses.replace(base, lr=lr, schedule=sc)
                sgd = hd.SGD(0.9 * hd.stability_threshold(prob, hd.SGD(1.0)), schedule=sc)
                g = hd.step_grid(steps - steps % H, multiple_of=H, per_decade=10)
                k = int(g[-1])
                rep = 3 if steps < 10**5 else 1
                out = {}
                with no_status_check():
                    hd.solve(prob, opt, grid=g[:4])  # compile
                    t_sgd = best_of(lambda: hd.solve(prob, sgd, grid=g), repeat=3)  # noqa: B023
                    t_ex = best_of(lambda: out.update(ex=hd.solve(prob, opt, grid=g, method="exact")),  # noqa: B023
                                   rep)
                    t_au = best_of(lambda: out.update(au=hd.solve(prob, opt, grid=g)), max(rep, 2))  # noqa: B023
                err = float(np.max(np.abs(out["au"].excess_risk / out["ex"].excess_risk - 1)))
                report(f"    {sname:8s} H = {H:2d} {label:11s} {k:>9,d} steps: exact {t_ex / k * 1e9:7.1f} ns "
                       f"({t_ex / t_sgd:6.1f} x), blocks {t_au / k * 1e9:7.1f} ns ({t_au / t_sgd:6.1f} x), "
                       f"SGD {t_sgd / k * 1e9:6.2f} ns; auto vs exact {err:.1e}")
    steps = 10**8
    sgd = hd.SGD(0.9 * hd.stability_threshold(prob, hd.SGD(1.0)))
    g1 = hd.step_grid(steps, per_decade=10)
    with no_status_check():
        hd.solve(prob, sgd, grid=g1[:4])
        t_sgd = best_of(lambda: hd.solve(prob, sgd, grid=g1), repeat=3)
    for H, label, kw in [(8, "M 4", {"workers": 4, "outer_lr": 1.0}),
                         (8, "M 4 Nest .9", {"workers": 4, "outer_lr": 0.8, "outer_momentum": 0.9, "nesterov": True}),
                         (8, "M 4 HB .6", {"workers": 4, "outer_lr": 1.0, "outer_momentum": 0.6}),
                         (64, "M 4 Nest .9", {"workers": 4, "outer_lr": 0.8, "outer_momentum": 0.9, "nesterov": True})]:
        base = hd.LADiLoCo(1.0, inner_steps=H, **kw)
        opt = base.with_lr(0.9 * hd.stability_threshold(prob, base))
        g = hd.step_grid(steps, multiple_of=H, per_decade=10)
        with no_status_check():
            hd.solve(prob, opt, grid=g[:4])
            t_au = best_of(lambda: hd.solve(prob, opt, grid=g), 2)  # noqa: B023
        per_step = 1.4e-9 * d * (1 if base.outer_momentum == 0 else 1.6)  # measured exact cost per inner step
        report(f"    constant H = {H:2d} {label:11s} {steps:>11,d} steps: blocks {t_au:.2f} s ({t_au / t_sgd:5.1f} x "
               f"SGD's {t_sgd:.3f} s; exact stepping: ~{steps * per_step:.0f} s)")


def min_block(d):
    """(iv): blocks from MIN_BLOCK_ROUNDS rounds on: cost at 1e6 steps (constant lr) and the largest error at
    2^18 steps and delta = 0.01 (the first blocks carry it: the worker-risk shape drifts inside a block)."""
    prob = hd.powerlaw(d, 1.0, 0.5, noise=hd.Gaussian(1e-2))
    saved = la_theory.MIN_BLOCK_ROUNDS
    report(f"(iv) block start (MIN_BLOCK_ROUNDS, at least {la_theory.BLOCK_PER_AHEAD} x ahead), power law d = {d}, "
           f"sigma = 0.01, lr = 0.95 eta*, H = 8, M = 4")
    try:
        for label, kw in [("alpha 1", {"outer_lr": 1.0}), ("alpha 1.9", {"outer_lr": 1.9}),
                          ("Nest .6", {"outer_lr": 1.0, "outer_momentum": 0.6, "nesterov": True})]:
            base = hd.LADiLoCo(1.0, inner_steps=8, workers=4, **kw)
            opt = base.with_lr(0.95 * hd.stability_threshold(prob, base))
            g6 = hd.step_grid(10**6, multiple_of=8, per_decade=10)
            g18 = hd.step_grid(2**18, multiple_of=8, per_decade=20)
            with no_status_check():
                ref = hd.solve(prob, opt, grid=g18, method="exact")
                for mb in (8, 16, 32, 64, 128, 200):
                    la_theory.MIN_BLOCK_ROUNDS = mb
                    hd.solve(prob, opt, grid=g6[:4])
                    t = best_of(lambda: hd.solve(prob, opt, grid=g6), 3)  # noqa: B023
                    au = hd.solve(prob, opt, grid=g18)
                    err = float(np.max(np.abs(au.excess_risk / ref.excess_risk - 1)))
                    report(f"    {label:9s} min block {mb:4d} rounds: 1e6 steps {t:.3f} s, error at 2^18 {err:.1e}")
    finally:
        la_theory.MIN_BLOCK_ROUNDS = saved


if __name__ == "__main__":
    main()
