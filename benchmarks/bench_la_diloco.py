"""LA-DiLoCo theory benchmarks (issue 6, item 8). Prints ratios against baselines run in this process:

(i)   theory cost of one outer round (H inner steps per worker, exact recursion, hd.solve(method="exact"))
      vs H exact SGD steps on the same problem (SGD's recursion, method="exact"), for H in {1, 8, 64} with
      and without momentum: the note's O(d) per inner step says the ratio stays O(1) in H;
(ii)  (L6) threshold cost (hd.stability_threshold) vs H;
(iii) theory vs a JAX simulation of the same problem and horizon (M = 4, H = 8): time ratio, and the
      simulation's agreement with the theory.

Usage: python benchmarks/bench_la_diloco.py [--quick] [--seeds N] [--d D]
"""
from __future__ import annotations

import argparse
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
    args = ap.parse_args()
    d = args.d
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


if __name__ == "__main__":
    main()
