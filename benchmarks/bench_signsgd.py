"""signSGD theory benchmarks (issue 5, item 7). Prints ratios against baselines run in this process:

(i)   diagonal signSGD curve cost vs the SGD curve on the same problem and horizon (hd.solve, default method and
      grid; target <= 2x): Gaussian, Rademacher and Student-t_5 noise, B in {1, 8}, d = 1000, horizons 10^4 and
      10^6 (plus Gaussian B = 1 at d = 10^4, 10^7 steps); and the block solver's error vs the exact map;
(ii)  dense K (note V3, d = 500): the solve vs an SGD solve on the same dense problem at 10^4 and 10^6 steps,
      with the O(d^3) setup (from_covariance + modes of D^-1/4 K D^-1/4) timed separately (every signSGD solve
      redoes it); the setup cost at d = 2000 (without --quick);
(iii) with --validate: theory vs JAX simulation on the note's V2 setup for every law and B in {1, 8}
      (max relative error and max |z| of the seed mean; longer and larger than the unit tests).

Measured (2-core shared CPU, CPU time, best of 3; ratios to the SGD curve of the same problem):

  (i)  diagonal, d = 1000        1e4 steps      1e6 steps     d = 1e4, 1e7 steps (Gaussian B = 1)
       before (Python blocks)    2.0-2.6x        8.3-10.2x    5.5x
       fused, default            1.9-2.5x        4.0-5.1x     4.4x
       fused, extrapolate + 0    1.1-1.4x        1.6-2.2x     1.7x
       deviation from method="exact" at 1e4: <= 2e-6 (default), <= 6e-6 (extrapolate + 0)
  (ii) dense, d = 500: setup ~40 ms per solve (redone by every solve); solve without it 2.5x / 4.4x
       (extrapolate + 0: 1.6x / 1.9x), before 2.7x / 12.4x; with the setup 16x / 12x (before 16x / 20x).

Usage: python benchmarks/bench_signsgd.py [--quick] [--validate] [--default-only]
Set OPENBLAS_NUM_THREADS=1 on a machine shared with other jobs: multi-threaded eigh of 2000 x 2000 is 60x
slower when the cores are oversubscribed.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import hdtheory as hd


def best_of(fn, repeat=3):
    """(best CPU time of ``repeat`` runs, last result): the solves are single-threaded, and CPU time is steadier
    than wall time on a machine shared with other jobs."""
    times, out = [], None
    for _ in range(repeat):
        t = time.process_time()
        out = fn()
        times.append(time.process_time() - t)
    return min(times), out


LAWS = {"gaussian": hd.Gaussian(0.4), "rademacher": hd.Rademacher(0.4), "student_t5": hd.StudentT(0.4, 5.0)}


#: solve options compared: the default, and the extrapolated predictor with one pass per block
OPTIONS = {"default": {}, "pass2": dict(predictor="pass", correctors=2),
           "extrap0": dict(predictor="extrapolate", correctors=0)}


def curve_cost(d, steps, law="gaussian", B=1, options=OPTIONS):
    lam = (np.arange(1, d + 1) / d) ** 2  # distinct eigenvalues: no mode merging for either optimizer
    prob = hd.Problem(lam, np.ones(d) / np.sqrt(d), noise=LAWS[law])
    sign = hd.SignSGD(0.2 / d, batch=B)
    sgd = hd.SGD(0.5 * hd.stability_threshold(prob, hd.SGD(1.0, batch=B)), batch=B)
    grid = hd.step_grid(steps)
    hd.solve(prob, sgd, grid=grid)  # compile
    t_sgd, _ = best_of(lambda: hd.solve(prob, sgd, grid=grid))
    ex = hd.solve(prob, sign, grid=grid, method="exact") if steps <= 10**4 else None
    line = []
    for name, kw in options.items():
        hd.solve(prob, sign, grid=grid, **kw)
        t_sign, c_sign = best_of(lambda: hd.solve(prob, sign, grid=grid, **kw))
        dev = f" (dev {np.max(np.abs(c_sign.risk / ex.risk - 1)):.0e})" if ex is not None else ""
        line.append(f"{name} {t_sign * 1e3:7.2f} ms {t_sign / t_sgd:5.2f}x{dev}")
    print(f"(i) {law:>10} B={B} d={d:>6} steps={steps:.0e}: SGD {t_sgd * 1e3:7.2f} ms | " + " | ".join(line),
          flush=True)


def dense_problem(d):
    rng = np.random.default_rng(7)
    D = ((np.arange(1, d + 1) / d) ** 2)[rng.permutation(d)]
    signs = rng.choice([-1, 1], d)
    i = np.arange(d)
    K = np.sqrt(np.outer(D, D)) * 0.6 ** np.abs(i[:, None] - i[None, :])  # note V3
    return hd.from_covariance(K, target=signs / np.sqrt(d), noise=hd.Gaussian(0.4))


def dense_cost(d, horizons, options=OPTIONS):
    t0 = time.process_time()
    prob = dense_problem(d)
    t1 = time.process_time()
    t_setup, _ = best_of(lambda: hd.signsgd.modes(prob))
    print(f"(ii) dense d={d}: from_covariance {t1 - t0:.2f} s, signSGD setup (arcsin, eigh, GEMM) {t_setup:.3f} s",
          flush=True)
    sign = hd.SignSGD(0.5 / d)
    sgd = hd.SGD(0.5 * hd.stability_threshold(prob, hd.SGD(1.0)))
    for steps in horizons:
        grid = hd.step_grid(steps)
        hd.solve(prob, sgd, grid=grid)
        t_sgd, _ = best_of(lambda: hd.solve(prob, sgd, grid=grid))
        for name, kw in options.items():
            hd.solve(prob, sign, grid=grid, **kw)
            t_sign, curve = best_of(lambda: hd.solve(prob, sign, grid=grid, **kw))
            print(f"(ii) dense d={d} steps={steps:.0e} {name}: signSGD {t_sign * 1e3:8.2f} ms (of which setup "
                  f"{t_setup * 1e3:.1f} ms), SGD {t_sgd * 1e3:7.2f} ms, ratio {t_sign / t_sgd:5.2f}x, "
                  f"without the setup {(t_sign - t_setup) / t_sgd:5.2f}x; R(end) = {curve.risk[-1]:.5f}", flush=True)


def validate(d, seeds):
    import validation

    lam = (np.arange(1, d + 1) / d) ** 2
    for law in (hd.Gaussian(0.4), hd.Rademacher(0.4), hd.StudentT(0.4, 5.0)):
        prob = hd.Problem(lam, np.ones(d) / np.sqrt(d), noise=law)
        for B, per_example in ((1, False), (8, False), (8, True)):
            opt = hd.SignSGD(0.5 / d, batch=B, per_example=per_example)
            grid = (np.array([0, 0.25, 0.5, 1, 2, 4]) * d).astype(np.int64)
            t = time.perf_counter()
            sim = validation.simulate(prob, opt, grid=grid, seeds=seeds, key=11)
            curve = hd.solve(prob, opt, grid=grid)
            err = (sim.mean - curve.risk)[1:]
            print(f"(iii) {law.kind:>10} B={B} per_example={per_example!s:5} d={d} {seeds} seeds: max |rel| "
                  f"{np.max(np.abs(err / curve.risk[1:])):.2%}, max |z| {np.max(np.abs(err / sim.sem[1:])):.1f} "
                  f"({time.perf_counter() - t:.0f} s)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--validate", action="store_true", help="also (iii), theory vs simulation (minutes on CPU)")
    ap.add_argument("--default-only", action="store_true", help="the default solve options only "
                    "(for an older hdtheory without predictor=)")
    a = ap.parse_args()
    opts = {"default": {}} if a.default_only else OPTIONS
    horizons = (10**4,) if a.quick else (10**4, 10**6)
    for steps in horizons:
        for law in LAWS:
            for B in (1, 8):
                curve_cost(1000, steps, law, B, opts)
    if not a.quick:
        curve_cost(10**4, 10**7, options=opts)
    dense_cost(500, horizons, opts)
    if not a.quick:
        t = time.process_time()
        prob = dense_problem(2000)
        hd.signsgd.modes(prob)
        print(f"(ii) dense d=2000: from_covariance + signSGD setup {time.process_time() - t:.2f} s")
    if a.validate:
        validate(1000, 32)


if __name__ == "__main__":
    main()
