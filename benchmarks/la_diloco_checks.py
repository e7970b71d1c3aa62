"""LA-DiLoCo measurements behind the tables of docs/derivations/la_diloco.md §6 (run on a GPU; hours on a CPU),
written to benchmarks/results/la_diloco_checks.txt as well:

(a) theory vs simulation on the V2 cases (d = 100 and 1000, lambda_j = 1/j, theta* ~ N(0, 2/d), sigma^2 = 0.1)
    and a power law, at rounds 10/20/40: relative error and z-score of the seed mean;
(b) validation.empirical_threshold (mean criterion, 2000 rounds, 256 seeds) vs hd.stability_threshold on four
    V4 configurations (plain, LA, Nesterov, heavy ball with inner momentum).

Usage: python benchmarks/la_diloco_checks.py [--seeds N] [--skip-v2] [--pl-d D] [--pl-seeds N] [--pl-rounds R]
       [--thr-seeds N] [--thr-rounds R] [--thr-configs K] [--skip-thresholds]
The CPU run reported in docs/derivations/la_diloco.md: --seeds 1000 (V2), --pl-d 300 --pl-seeds 256
--pl-rounds 128, --thr-seeds 128 --thr-rounds 1000.
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np
from _report import Report

import hdtheory as hd
import validation

report = Report("la_diloco_checks")


def v2(d):
    rng = np.random.default_rng(7)
    return hd.Problem(1.0 / np.arange(1, d + 1), rng.normal(0, math.sqrt(2 / d), d), noise=hd.Gaussian(math.sqrt(0.1)))


CASES = {  # (M, H, alpha, beta, nesterov, mu, B, eta)
    "A LA": (1, 8, 0.5, 0.0, False, 0.0, 4, 0.6),
    "B LA-DiLoCo": (4, 8, 0.5, 0.0, False, 0.0, 1, 0.5),
    "C DiLoCo-Nesterov": (4, 8, 1.0, 0.6, True, 0.0, 2, 0.4),
    "D SLA-HB+inner": (1, 8, 0.7, 0.5, False, 0.5, 4, 0.3),
    "E H=1 Nesterov": (4, 1, 1.5, 0.3, True, 0.0, 1, 0.3),
}


def opt_of(M, H, alpha, beta, nest, mu, B, eta):
    return hd.LADiLoCo(eta, batch=B, workers=M, inner_steps=H, outer_lr=alpha, outer_momentum=beta,
                       nesterov=nest, inner_momentum=mu)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=2000)
    ap.add_argument("--skip-v2", action="store_true")
    ap.add_argument("--pl-d", type=int, default=1000)
    ap.add_argument("--pl-seeds", type=int, default=2000)
    ap.add_argument("--pl-rounds", type=int, default=512)
    ap.add_argument("--thr-seeds", type=int, default=256)
    ap.add_argument("--thr-rounds", type=int, default=2000)
    ap.add_argument("--thr-configs", type=int, default=4)
    ap.add_argument("--skip-thresholds", action="store_true")
    args = ap.parse_args()
    report("(a) theory vs simulation, excess risk at rounds 10/20/40 (E: 50/100/200)")
    for d in () if args.skip_v2 else (100, 1000):
        prob = v2(d)
        for name, case in CASES.items():
            opt = opt_of(*case)
            H = opt.inner_steps
            r = (50, 100, 200) if H == 1 else (10, 20, 40)
            g = np.array([0, *[k * H for k in r]])
            t = time.time()
            c = hd.solve(prob, opt, grid=g)
            s = validation.simulate(prob, opt, grid=g, seeds=args.seeds, key=11)
            ex = s.excess_risk.mean(axis=0)[1:]
            th = c.excess_risk[1:]
            z = (ex - th) / s.sem[1:]
            report(f"  d={d:4d} {name:18s} theory risk {c.risk[-1]:.5f}; rel. err "
                  + " ".join(f"{e:+.2%}" for e in ex / th - 1) + "; z " + " ".join(f"{v:+.1f}" for v in z)
                  + f"  ({time.time() - t:.0f}s)")
    pl = hd.powerlaw(args.pl_d, 1.0, 0.5, noise=hd.Gaussian(0.1))
    for name, case in CASES.items():
        opt = opt_of(*case)
        opt = opt.with_lr(0.5 * hd.stability_threshold(pl, opt))
        g = hd.step_grid(args.pl_rounds * opt.inner_steps, per_decade=5, multiple_of=opt.inner_steps)
        rep = validation.compare(hd.solve(pl, opt, grid=g), validation.simulate(pl, opt, grid=g, seeds=args.pl_seeds,
                                                                                key=5))
        report(f"  powerlaw({args.pl_d}, 1, 0.5) at 0.5 eta* {name:18s}: {rep.summary()}")
    if args.skip_thresholds:
        return
    report(f"(b) empirical vs theory thresholds (d = 100, lambda_j = 1/j, sigma = 0.1; mean criterion, "
          f"{args.thr_seeds} seeds, {args.thr_rounds} rounds)")
    prob = hd.Problem(1.0 / np.arange(1, 101), np.full(100, 0.03), noise=hd.Gaussian(0.1))
    for name, case in [("M4 H8 a1 B1", (4, 8, 1.0, 0.0, False, 0.0, 1)),
                       ("M1 H8 a0.5 B1", (1, 8, 0.5, 0.0, False, 0.0, 1)),
                       ("M4 H8 a.8 Nest.9 B2", (4, 8, 0.8, 0.9, True, 0.0, 2)),
                       ("M1 H8 a.7 HB.5 mu.5 B4", (1, 8, 0.7, 0.5, False, 0.5, 4))][: args.thr_configs]:
        opt = opt_of(*case, 1.0)
        lt = hd.stability_threshold(prob, opt)
        t = time.time()
        r = validation.empirical_threshold(prob, opt, steps=args.thr_rounds * opt.inner_steps, seeds=args.thr_seeds,
                                           key=0, rtol=0.005,
                                           lr0=0.5 * lt, full=True)
        report(f"  {name:24s}: theory {lt:.5f} empirical {r.lr:.5f} ratio {r.lr / lt:.4f} "
              f"({r.evaluations} runs, {time.time() - t:.0f}s)")


if __name__ == "__main__":
    main()
