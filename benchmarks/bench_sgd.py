"""SGD theory benchmarks. Prints ratios against baselines run in this process (and writes them to
benchmarks/results/bench_sgd.txt):

(i)   solver throughput (mode-steps/s) of hd.solve(method="exact") vs a hand-written Numba loop of the same
      recursion and a vectorised NumPy loop, at d = 100 and d = 10^4 (target >= 0.7x the hand loop);
(ii)  a 10^8-step solve at d = 10^4 (target <= 1 s after compilation), and its error against the exact
      recursion on the first 10^6 steps (10^8 exact steps at d = 10^4 = 10^12 mode-steps is not affordable);
(iii) theory vs a 16-seed JAX simulation of the same problem and horizon: time ratio (target >= 100x);
(iv)  the driver under a smooth schedule (one block per Python round trip): SGD, signSGD and clipped SGD under a
      warmup-cosine to 0 and to 0.01 of the peak at d = 1000, auto vs exact cost and the largest deviation.

Usage: python benchmarks/bench_sgd.py [--quick] [--only i|ii|iii|iv]
"""
from __future__ import annotations

import argparse
import math
import time

import numba as nb
import numpy as np

import hdtheory as hd
from _report import Report

report = Report("bench_sgd")


@nb.njit(cache=True)
def hand_loop(lam, rho, lr, B, sigma2, steps):
    """The recursion (E1) written by hand, constant lr: the baseline a user would write."""
    a = 1.0 - 2.0 * lr * lam + (1.0 + 1.0 / B) * lr * lr * lam * lam
    c = lr * lr / B
    E = sigma2 + np.dot(lam, rho)
    for _ in range(steps):
        En = sigma2
        for j in range(lam.shape[0]):
            r = a[j] * rho[j] + c * lam[j] * E
            rho[j] = r
            En += lam[j] * r
        E = En
    return E


def numpy_loop(lam, rho, lr, B, sigma2, steps):
    a = 1.0 - 2.0 * lr * lam + (1.0 + 1.0 / B) * lr * lr * lam * lam
    g = lr * lr / B * lam
    for _ in range(steps):
        E = sigma2 + lam @ rho
        rho = a * rho + g * E
    return sigma2 + lam @ rho


def best_of(fn, repeat=3):
    times = []
    out = None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def throughput(d, steps):
    prob = hd.powerlaw(d, 1.0, 0.7, noise=hd.Gaussian(0.1))
    # distinct eigenvalues (no merging), so every engine does d modes per step
    opt = hd.SGD(0.5 * hd.stability_threshold(prob, hd.SGD(1.0, batch=4)), batch=4)
    lam, rho0 = prob.eigenvalues, prob.initial_error_modes()
    grid = np.array([0, steps])
    hd.solve(prob, opt, grid=np.array([0, 2]), method="exact")
    hand_loop(lam, rho0.copy(), opt.lr, 4, prob.sigma2, 2)
    t_solve, curve = best_of(lambda: hd.solve(prob, opt, grid=grid, method="exact"))
    t_hand, E_hand = best_of(lambda: hand_loop(lam, rho0.copy(), opt.lr, 4, prob.sigma2, steps))
    np_steps = max(steps // 10, 10)
    t_np, _ = best_of(lambda: numpy_loop(lam, rho0.copy(), opt.lr, 4, prob.sigma2, np_steps), repeat=1)
    assert abs(2 * curve.risk[-1] / E_hand - 1) < 1e-12, "solver and hand loop disagree"
    ms = d * steps
    report(f"(i) d={d:>6}: hd.solve exact {ms / t_solve:.3e} mode-steps/s | hand Numba loop {ms / t_hand:.3e} | "
          f"NumPy loop {d * np_steps / t_np:.3e} | ratio solve/hand = {t_hand / t_solve:.2f}x (target >= 0.7x), "
          f"solve/NumPy = {(t_np / np_steps) / (t_solve / steps):.1f}x")


def long_horizon(d, steps, check_steps):
    prob = hd.powerlaw(d, 1.0, 0.7, noise=hd.Gaussian(0.01))
    opt = hd.SGD(0.5 * hd.stability_threshold(prob, hd.SGD(1.0, batch=1)))
    hd.solve(prob, opt, steps=10**4)  # compile
    t, curve = best_of(lambda: hd.solve(prob, opt, steps=steps))
    report(f"(ii) d={d}: {steps:.0e} steps in {t:.3f} s ({curve.steps.size} record points, status {curve.status}) "
          f"(target <= 1 s)")
    grid = hd.step_grid(check_steps)
    t_ex = time.perf_counter()
    exact = hd.solve(prob, opt, grid=grid, method="exact")
    t_ex = time.perf_counter() - t_ex
    auto = hd.solve(prob, opt, grid=grid)
    err = np.max(np.abs(auto.risk / exact.risk - 1))
    errx = np.max(np.abs(auto.excess_risk / exact.excess_risk - 1))
    report(f"     error vs the exact recursion over {check_steps:.0e} steps: max rel. {err:.2e} (risk), {errx:.2e} "
          f"(excess) [exact recursion took {t_ex:.1f} s; extrapolated to {steps:.0e} steps: "
          f"{t_ex * steps / check_steps:.0f} s, {t_ex * steps / check_steps / t:.0f}x the block solver]")


def theory_vs_simulation(d, steps, seeds, dtype="float64"):
    import jax

    import validation

    # many modes carry the risk (alpha = 0.5), so 16 seeds resolve the mean (see tests/agreement/test_sgd.py)
    prob = hd.powerlaw(d, 0.5, 0.25, noise=hd.Gaussian(0.3))
    opt = hd.SGD(0.5 * hd.stability_threshold(prob, hd.SGD(1.0, batch=4)), batch=4)
    grid = hd.step_grid(steps)
    hd.solve(prob, opt, grid=grid)
    validation.simulate(prob, opt, grid=grid, seeds=seeds, key=0, dtype=dtype)  # compile
    t_th, curve = best_of(lambda: hd.solve(prob, opt, grid=grid))
    t_sim, sim = best_of(lambda: validation.simulate(prob, opt, grid=grid, seeds=seeds, key=1, dtype=dtype), repeat=1)
    rep = validation.compare(curve, sim)
    report(f"(iii) d={d}, {steps} steps, {seeds} seeds, {dtype} on {jax.devices()[0].platform}: theory {t_th * 1e3:.1f} ms, "
          f"simulation {t_sim:.2f} s, ratio {t_sim / t_th:.0f}x (target >= 100x); agreement: {rep.summary()}")


def smooth_schedules(d, steps):
    prob = hd.powerlaw(d, 1.0, 0.5, noise=hd.Gaussian(1e-2))
    spread = hd.Problem((np.arange(1, d + 1) / d) ** 2, np.ones(d) / np.sqrt(d), noise=hd.Gaussian(0.4))
    heavy = hd.Problem(np.linspace(0.5, 1.5, d), np.full(d, math.sqrt(4 / d)), noise=hd.StudentT(1.0, 3.0))
    for floor in (0.0, 0.01):
        sc = hd.WarmupCosine(steps // 100, steps, floor)
        for name, p, opt in [("SGD", prob, hd.SGD(0.9 * hd.stability_threshold(prob, hd.SGD(1.0)), schedule=sc)),
                             ("signSGD", spread, hd.SignSGD(0.2 / d, schedule=sc)),
                             ("clipped t3", heavy, hd.ClippedSGD(0.5 / heavy.trace, clip=math.sqrt(heavy.trace),
                                                                 schedule=sc))]:
            grid = hd.step_grid(steps)
            hd.solve(p, opt, grid=grid)
            t_auto, auto = best_of(lambda: hd.solve(p, opt, grid=grid))  # noqa: B023
            t_ex, ex = best_of(lambda: hd.solve(p, opt, grid=grid, method="exact"), repeat=1)  # noqa: B023
            report(f"(iv) WarmupCosine(floor {floor:g}) {name:10s} d={d} {steps:.0e} steps: "
                   f"auto {t_auto * 1e3:7.1f} ms, exact {t_ex * 1e3:7.1f} ms ({t_ex / t_auto:5.1f}x); max |auto/exact - 1| = "
                   f"{np.max(np.abs(auto.risk / ex.risk - 1)):.1e}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    ap.add_argument("--only", choices=["i", "ii", "iii", "iv"], default=None)
    ap.add_argument("--gpu-sizes", action="store_true", help="also (iii) at 1e5 steps and d = 1e4")
    a = ap.parse_args()
    if a.only in (None, "i"):
        throughput(100, 10**5 if a.quick else 10**6)
        throughput(10**4, 10**3 if a.quick else 10**4)
    if a.only in (None, "ii"):
        long_horizon(10**4, 10**8, 10**4 if a.quick else 10**6)
    if a.only in (None, "iii"):
        theory_vs_simulation(1000, 2000 if a.quick else 10**4, 16)
        if a.gpu_sizes:
            theory_vs_simulation(1000, 10**5, 16)
            theory_vs_simulation(1000, 10**5, 16, dtype="float32")
            theory_vs_simulation(10**4, 10**4, 16)
    if a.only in (None, "iv"):
        smooth_schedules(1000, 10**5 if a.quick else 10**6)


if __name__ == "__main__":
    main()
