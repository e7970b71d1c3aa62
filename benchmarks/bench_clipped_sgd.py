"""Clipped-SGD benchmarks. Prints ratios against baselines run in the same process and writes them to
benchmarks/results/bench_clipped_sgd.txt:

(i)   a clipped-SGD theory curve vs an SGD theory curve of the same problem, lr and horizon (CPU time, best of 15
      with the SGD run interleaved; target <= 2x) per noise law and B in {1, 8}, for fixed and relative clip
      levels, at 1e4 and 1e6 steps (d = 1000, default grid), for the default solve options and two others; with
      the curve's largest deviation from ``method="exact"`` at 1e4 steps;
(ii)  the theory vs a 16-seed simulation of the same run (d = 1000, 1e4 steps; skipped with --cost-only);
(iii) with --edges: empirical relative-clip thresholds vs the theory's edge (docs/derivations/clipped_sgd.md);
(iv)  with --compile: the first solve in a fresh process with an empty Numba cache (compile time).

Run: python benchmarks/bench_clipped_sgd.py [--quick] [--cost-only] [--edges] [--compile] [--default-only]
"""
from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

import hdtheory as hd
from _report import Report

report = Report("bench_clipped_sgd")


def best_of(f, n=3, clock=time.process_time):
    """Best of n; CPU time by default (a single-threaded solve on a machine shared with other jobs)."""
    out = math.inf
    for _ in range(n):
        t = clock()
        f()
        out = min(out, clock() - t)
    return out


def best_interleaved(fs, n):
    """Best of n CPU times of each of the callables, run in turn within every repetition: a machine whose speed
    drifts over seconds then slows the baseline and the measured runs alike, and their ratio holds."""
    out = [math.inf] * len(fs)
    for _ in range(n):
        for i, f in enumerate(fs):
            t = time.process_time()
            f()
            out[i] = min(out[i], time.process_time() - t)
    return out


def linspace_problem(d, noise):
    lam = np.linspace(0.5, 1.5, d)
    return hd.Problem(lam, np.full(d, math.sqrt(4.0 / lam.sum())), noise=noise)


LAWS = {"gauss": hd.Gaussian(1.0), "rademacher": hd.Rademacher(1.0), "student_t3": hd.StudentT(1.0, 3)}


#: repetitions of each timed solve (the best counts)
REPEATS = 15
#: solve options compared: the default, and the extrapolated predictor with one pass per block
OPTIONS = {"default": {}, "pass2": dict(predictor="pass", correctors=2),
           "extrap0": dict(predictor="extrapolate", correctors=0)}


def curve_costs(horizons, d=1000, options=OPTIONS):
    report(f"(i) theory curve cost, clipped / SGD (same problem, lr, steps; CPU time, best of {REPEATS}, interleaved); "
          "dev = max |rel| vs method='exact'")
    for steps in horizons:
        for name, noise in LAWS.items():
            for B in (1, 8):
                p = linspace_problem(d, noise)
                lr = 0.5 * B / p.trace
                for kw in options.values():
                    hd.solve(p, hd.ClippedSGD(lr, clip=math.sqrt(p.trace / B), batch=B), 100, **kw)  # compile
                hd.solve(p, hd.SGD(lr, batch=B), 100)
                for label, clip in [("fixed", math.sqrt(p.trace / B)), ("relative", hd.RelativeClip(1.0))]:
                    opt = hd.ClippedSGD(lr, clip=clip, batch=B)
                    ref = hd.solve(p, opt, steps, method="exact") if steps <= 10**4 else None
                    runs = [lambda: hd.solve(p, hd.SGD(lr, batch=B), steps)]
                    runs += [lambda kw=kw: hd.solve(p, opt, steps, **kw) for kw in options.values()]  # noqa: B023
                    t_sgd, *times = best_interleaved(runs, REPEATS)
                    line = []
                    for (oname, kw), t in zip(options.items(), times, strict=True):
                        dev = ""
                        if ref is not None:
                            dev = f" (dev {np.max(np.abs(hd.solve(p, opt, steps, **kw).risk / ref.risk - 1)):.0e})"
                        line.append(f"{oname} {t * 1e3:7.2f} ms {t / t_sgd:5.2f}x{dev}")
                    report(f"  steps={steps:>8d} {name:10s} B={B} {label:8s}: SGD {t_sgd * 1e3:6.2f} ms | "
                          + " | ".join(line))


def compile_time():
    """First solve (clipped and SGD) in a fresh interpreter with an empty Numba cache, then with a warm one."""
    code = ("import time, math; t = time.perf_counter(); import hdtheory as hd; t1 = time.perf_counter();"
            "p = hd.Problem([0.5, 1.0, 1.5] * 100, [0.1] * 300, noise=hd.StudentT(1.0, 3));"
            "hd.solve(p, hd.SGD(0.001), 10**4); t2 = time.perf_counter();"
            "hd.solve(p, hd.ClippedSGD(0.001, clip=3.0), 10**4); t3 = time.perf_counter();"
            "hd.solve(p, hd.ClippedSGD(0.001, clip=hd.RelativeClip(1.0)), 10**4); t4 = time.perf_counter();"
            "hd.solve(p, hd.SignSGD(0.001), 10**4); t5 = time.perf_counter();"
            "report(f'import {t1 - t:.2f} s, first SGD solve {t2 - t1:.2f} s, first clipped (fixed) {t3 - t2:.2f} s, '"
            "      f'then relative {t4 - t3:.2f} s, first signSGD {t5 - t4:.2f} s')")
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, NUMBA_CACHE_DIR=tmp, HDTHEORY_CACHE=tmp)
        for label in ("cold Numba cache", "warm Numba cache"):
            out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
            report(f"(iv) {label}: {out.stdout.strip()}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--cost-only", action="store_true", help="only (i)")
    ap.add_argument("--edges", action="store_true")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--default-only", action="store_true", help="(i) with the default solve options only "
                    "(for an older hdtheory without predictor=)")
    args = ap.parse_args()
    d = 1000
    curve_costs([10**4] if args.quick else [10**4, 10**6], d,
                {"default": {}} if args.default_only else OPTIONS)
    if args.compile:
        compile_time()
    if args.cost_only:
        return
    report("(ii) theory vs 16-seed simulation (d = 1000, 1e4 steps)")
    import validation

    for name in (["gauss"] if args.quick else list(LAWS)):
        p = linspace_problem(d, LAWS[name])
        opt = hd.ClippedSGD(0.5 / p.trace, clip=math.sqrt(p.trace))
        validation.simulate(p, opt, 10**4, seeds=16)
        t_sim = best_of(lambda: validation.simulate(p, opt, 10**4, seeds=16), n=2, clock=time.perf_counter)
        t_th = best_of(lambda: hd.solve(p, opt, 10**4), clock=time.perf_counter)
        report(f"  {name:10s}: theory {t_th * 1e3:.2f} ms, simulation {t_sim:.2f} s, ratio {t_sim / t_th:.0f}x")
    if args.edges:
        report("(iii) relative-clip edge: empirical (20000 steps, 64 seeds) / theory, d = 500")
        for name in ["gauss", "student_t3"]:
            for B, kappa in [(1, 1.0), (8, 0.5)]:
                p = linspace_problem(500, LAWS[name])
                opt = hd.ClippedSGD(1.0, clip=hd.RelativeClip(kappa), batch=B)
                lt = hd.stability_threshold(p, opt)
                res = validation.empirical_threshold(p, opt, steps=20000, seeds=64, key=0, lr0=lt, full=True)
                report(f"  {name:10s} B={B} kappa={kappa}: theory {lt:.5f}, empirical {res.lr:.5f}"
                      f" [{res.lo:.5f}, {res.hi:.5f}], ratio {res.lr / lt:.3f}")


if __name__ == "__main__":
    main()
