"""Cost of a power-law gain map: signSGD (or ``--a``) vs SGD, both lr-tuned per horizon, on an (alpha, beta) grid.

Prints the wall time of the map, its cost per cell and the ratio to one SGD and one signSGD solve of the same size
(measured in the same process), and writes benchmarks/results/bench_gain_map.txt.

    python benchmarks/bench_gain_map.py [--n 32] [--d 1000] [--steps 10000] [--workers 2] [--a signsgd|sgd4]

``--a sgd4`` maps SGD at batch 4 against SGD at batch 1: the same search at the cost of SGD solves, which
separates the search's cost from the optimizer's.
"""
from __future__ import annotations

import argparse
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from _report import Report

import hdtheory as hd


def per_solve(prob, opt, grid, repeat=5):
    hd.solve(prob, opt, grid=grid)
    t = time.perf_counter()
    for i in range(repeat):
        hd.solve(prob, opt.with_lr(opt.lr * (1 + 1e-3 * i)), grid=grid)
    return (time.perf_counter() - t) / repeat


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=32, help="alphas x betas grid side")
    ap.add_argument("--d", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=10**4)
    ap.add_argument("--workers", type=int, default=2, help="processes (0 = in process)")
    ap.add_argument("--a", choices=["signsgd", "sgd4"], default="signsgd", help="the optimizer mapped against SGD")
    args = ap.parse_args()
    out = Report("bench_gain_map" if args.a == "signsgd" else f"bench_gain_map_{args.a}")
    alphas = np.linspace(0.3, 2.0, args.n)
    betas = np.linspace(0.0, 1.5, args.n)
    grid = hd.phases.horizons_grid(args.steps)
    prob = hd.powerlaw(args.d, 1.0, 0.5)
    t_sgd = per_solve(prob, hd.SGD(0.3), grid)
    opt_a = hd.SignSGD(1.0) if args.a == "signsgd" else hd.SGD(1.0, batch=4)
    t_sign = per_solve(prob, opt_a.with_lr(1e-3), grid)
    t = time.perf_counter()
    if args.workers:
        with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn")) as ex:
            ds = hd.phases.gain_map(alphas, betas, opt_a, hd.SGD(1.0), args.steps, d=args.d, executor=ex)
    else:
        ds = hd.phases.gain_map(alphas, betas, opt_a, hd.SGD(1.0), args.steps, d=args.d)
    wall = time.perf_counter() - t
    cells = args.n ** 2
    phases, counts = np.unique(ds.phase.values, return_counts=True)
    lines = [
        (f"gain map {opt_a.name} (batch {opt_a.batch}) / SGD: {args.n} x {args.n} cells, d = {args.d}, {args.steps} steps, "
        f"{grid.size - 1} horizons, {args.workers or 'no'} worker processes"),
        f"  one solve (alpha = 1, beta = 0.5): SGD {t_sgd * 1e3:.2f} ms, {opt_a.name} {t_sign * 1e3:.2f} ms",
        (f"  map: {wall:.1f} s wall, {wall / cells * 1e3:.1f} ms per cell = {wall / cells / t_sgd:.1f} SGD solves "
        f"= {wall / cells / (t_sgd + t_sign):.1f} solve pairs per cell"),
        "  phases: " + ", ".join(f"{p}: {c}" for p, c in zip(phases, counts)),
        f"  cells with a tuned lr on the scan's edge: {int(ds.edge.sum())}, outside validity: {int((~ds.valid).sum())}",
    ]
    for line in lines:
        out(line)


if __name__ == "__main__":
    main()
