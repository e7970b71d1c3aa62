"""LA-DiLoCo theory benchmarks (issue 6, item 8). Prints ratios against baselines run in this process:

(i)   theory cost of one outer round (H inner steps per worker, exact recursion, hd.solve(method="exact"))
      vs H exact SGD steps on the same problem (SGD's recursion, method="exact"), for H in {1, 8, 64} with
      and without momentum: the note's O(d) per inner step says the ratio stays O(1) in H;
(ii)  (L6) threshold cost (hd.stability_threshold) vs H;
(iii) theory vs a JAX simulation of the same problem and horizon (M = 4, H = 8): time ratio, and the
      simulation's agreement with the theory;
(iv)  long horizons: hd.solve cost per inner step at 1e4 and 1e6 inner steps, before (method="exact", the
      only path before the block form) and after (method="auto": blocks over many rounds, module docstring
      "Block form"), against SGD's curve (method="auto") on the same problem and horizon; with the largest
      relative difference auto vs exact.

Usage: python benchmarks/bench_la_diloco.py [--quick] [--seeds N] [--d D] [--only-long] [--what-if]
"""
from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np

import hdtheory as hd


def best_of(f, repeat=3):
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        out.append(time.perf_counter() - t)
    return min(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seeds", type=int, default=64)
    ap.add_argument("--d", type=int, default=1000)
    ap.add_argument("--only-long", action="store_true", help="run (iv) only")
    ap.add_argument("--what-if", action="store_true", help="(iv) also with the proposed driver change")
    args = ap.parse_args()
    d = args.d
    if args.only_long:
        return long_horizons(d, args.quick, args.what_if)
    prob = hd.powerlaw(d, 1.0, 0.5, noise=hd.Gaussian(0.1))
    steps = 2**14 if args.quick else 2**17
    print(f"(i) theory cost per inner step, d = {d}, {steps} inner steps (exact stepping)")
    sgd = hd.SGD(0.5 * hd.stability_threshold(prob, hd.SGD(1.0)))
    grid = np.array([0, steps])
    hd.solve(prob, sgd, grid=grid, method="exact")  # compile
    t_sgd = best_of(lambda: hd.solve(prob, sgd, grid=grid, method="exact"))
    print(f"    SGD: {t_sgd / steps * 1e9:8.1f} ns per step")
    for H in (1, 8, 64):
        for label, kw in [("plain", {}), ("Nesterov 0.9", dict(outer_momentum=0.9, nesterov=True)),
                          ("inner mu 0.5", dict(inner_momentum=0.5))]:
            opt = hd.LADiLoCo(1.0, workers=4, inner_steps=H, outer_lr=0.8, **kw)
            t0 = time.perf_counter()
            thr = hd.stability_threshold(prob, opt)
            t_thr = time.perf_counter() - t0
            opt = opt.with_lr(0.5 * thr)
            theory = hd.la_diloco.LADiLoCoTheory()
            st = theory.init(prob, opt)
            seq = np.full(steps, opt.lr)
            theory.exact(st, opt, 0, seq[:H], np.inf)  # compile

            def run():
                s = theory.init(prob, opt)
                theory.exact(s, opt, 0, seq, np.inf)

            t = best_of(run)
            print(f"    H = {H:3d} {label:13s}: round = {t / (steps // H) * 1e6:8.2f} us, "
                  f"per inner step {t / steps * 1e9:7.1f} ns = {t / t_sgd:5.2f} x SGD;  threshold {t_thr:6.3f} s")

    print("(iii) theory vs simulation (M = 4, H = 8, alpha 0.8, Nesterov 0.6, B = 2)")
    import validation

    opt = hd.LADiLoCo(1.0, batch=2, workers=4, inner_steps=8, outer_lr=0.8, outer_momentum=0.6, nesterov=True)
    opt = opt.with_lr(0.5 * hd.stability_threshold(prob, opt))
    sim_steps = 2**10 if args.quick else 2**12
    g = hd.step_grid(sim_steps, per_decade=10, multiple_of=8)
    t0 = time.perf_counter()
    curve = hd.solve(prob, opt, grid=g)
    t_th = time.perf_counter() - t0
    validation.simulate(prob, opt, grid=g[:3], seeds=args.seeds, key=0)  # compile a chunk
    t0 = time.perf_counter()
    sim = validation.simulate(prob, opt, grid=g, seeds=args.seeds, key=1)
    t_sim = time.perf_counter() - t0
    rep = validation.compare(curve, sim)
    print(f"    theory {t_th:.3f} s (incl. threshold status check), simulation {t_sim:.2f} s "
          f"({args.seeds} seeds x {opt.workers} workers, {sim.meta['device']}): ratio {t_sim / t_th:.0f}x")
    print(f"    {rep.summary()}")
    long_horizons(d, args.quick, args.what_if)


def long_horizons(d, quick, what_if=False):
    """(iv): stepping cost per inner step, exact vs blocks, against SGD's curve. The final status check of
    hd.solve (the stability threshold: 0.1 s to seconds for LA-DiLoCo at d = 1000, growing with H) is switched
    off for both optimizers while timing (their ``threshold`` returns inf in this process), so the numbers are
    the stepping alone. ``what_if``: also with the driver's Python-block threshold PY_BLOCK_COST divided by H
    (the driver change the LA-DiLoCo module docstring proposes: an update spans H inner steps, so blocks pay off
    H times earlier), set in this process only."""
    import math

    from hdtheory import driver
    from hdtheory.optimizers import la_diloco, sgd as sgd_module

    prob = hd.powerlaw(d, 1.0, 0.5, noise=hd.Gaussian(1e-2))
    thresholds = (la_diloco.LADiLoCoTheory.threshold, sgd_module.SGDTheory.threshold)
    horizons = (10_240, 1_000_000) if not quick else (10_240, 262_144)
    print(f"(iv) long horizons, power law d = {d}, sigma = 0.01, lr = 0.9 eta*: stepping cost in ns per inner step "
          f"(status threshold check off); x = ratio to SGD's curve (method auto) at the same horizon")
    cases = [(1, "M 4", dict(workers=4, outer_lr=1.5)), (8, "LA", dict(outer_lr=0.5)),
             (8, "M 4", dict(workers=4, outer_lr=1.0)), (8, "M 4 mu .5", dict(workers=4, inner_momentum=0.5)),
             (8, "M 4 a 1.9", dict(workers=4, outer_lr=1.9)),
             (8, "M 4 Nest .6", dict(workers=4, outer_momentum=0.6, nesterov=True)),
             (64, "M 4", dict(workers=4, outer_lr=1.0))]
    scenarios = [("driver as is", None)] + ([("what-if: PY_BLOCK_COST / H", True)] if what_if else [])
    py_cost = driver.PY_BLOCK_COST
    for title, wi in scenarios:
        print(f"  [{title}]")
        for sname in ("constant", "cosine"):
            for H, label, kw in cases:
                driver.PY_BLOCK_COST = py_cost / H if wi else py_cost
                base = hd.LADiLoCo(1.0, inner_steps=H, **kw)
                lr = 0.9 * hd.stability_threshold(prob, base)
                for steps in horizons:
                    sc = hd.WarmupCosine(steps // 100, steps, 0.01) if sname == "cosine" else None
                    opt = dataclasses.replace(base, lr=lr, schedule=sc)
                    sgd = hd.SGD(0.9 * hd.stability_threshold(prob, hd.SGD(1.0)), schedule=sc)
                    g = hd.step_grid(steps - steps % H, multiple_of=H, per_decade=10)
                    k = int(g[-1])
                    hd.solve(prob, opt, grid=g[:4])  # compile
                    rep = 3 if steps < 10**5 else 1
                    la_diloco.LADiLoCoTheory.threshold = sgd_module.SGDTheory.threshold = lambda *a: math.inf
                    try:
                        driver.PY_BLOCK_COST = py_cost  # SGD (span 1) is not affected by the what-if
                        t_sgd = best_of(lambda: hd.solve(prob, sgd, grid=g), repeat=3)
                        driver.PY_BLOCK_COST = py_cost / H if wi else py_cost
                        out = {}
                        t_ex = best_of(lambda: out.update(ex=hd.solve(prob, opt, grid=g, method="exact")), rep)
                        t_au = best_of(lambda: out.update(au=hd.solve(prob, opt, grid=g)), rep)
                    finally:
                        la_diloco.LADiLoCoTheory.threshold, sgd_module.SGDTheory.threshold = thresholds
                    ex, au = out["ex"], out["au"]
                    err = float(np.max(np.abs(au.excess_risk / ex.excess_risk - 1)))
                    print(f"    {sname:8s} H = {H:2d} {label:11s} {k:>9,d} steps: exact {t_ex / k * 1e9:7.1f} ns "
                          f"({t_ex / t_sgd:6.1f} x), blocks {t_au / k * 1e9:7.1f} ns ({t_au / t_sgd:6.1f} x), "
                          f"SGD {t_sgd / k * 1e9:6.2f} ns; auto vs exact {err:.1e}", flush=True)
        for steps in (10**8,):
            H = 8
            driver.PY_BLOCK_COST = py_cost / H if wi else py_cost
            base = hd.LADiLoCo(1.0, inner_steps=H, workers=4, outer_lr=1.0)
            opt = base.with_lr(0.9 * hd.stability_threshold(prob, base))
            g = hd.step_grid(steps, multiple_of=H, per_decade=10)
            sgd = hd.SGD(0.9 * hd.stability_threshold(prob, hd.SGD(1.0)))
            la_diloco.LADiLoCoTheory.threshold = sgd_module.SGDTheory.threshold = lambda *a: math.inf
            try:
                t_au = best_of(lambda: hd.solve(prob, opt, grid=g), 2)
                driver.PY_BLOCK_COST = py_cost
                t_sgd = best_of(lambda: hd.solve(prob, sgd, grid=g), repeat=3)
            finally:
                la_diloco.LADiLoCoTheory.threshold, sgd_module.SGDTheory.threshold = thresholds
            print(f"    constant H =  8 M 4 {steps:>11,d} steps: blocks {t_au:.2f} s ({t_au / t_sgd:5.1f} x SGD's "
                  f"{t_sgd:.3f} s; exact stepping: ~{steps * d * 1.4e-9:.0f} s at 1.4 ns per mode and inner step)",
                  flush=True)
    driver.PY_BLOCK_COST = py_cost


if __name__ == "__main__":
    main()
