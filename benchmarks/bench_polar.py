"""SignSVD polar-factor benchmark: the QR route (polar of G = (1/B) R X^T from QR of the m x B residuals and the
n x B inputs and an SVD of a B x B core, O((m + n) B^2 + m n B)) vs the truncated SVD of the m x n gradient
(O(m n min(m, n))), both jitted, m = 400, n = 200, B in {1, 4, 16, 64}, float64 and float32. Prints the time of
each (best of --repeat, wall), their ratio and the largest entrywise difference of the two polar factors, and
writes them to benchmarks/results/bench_polar.txt.

Usage: python benchmarks/bench_polar.py [--quick] [--repeat N]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from _report import Report

report = Report("bench_polar")


def best_of(fn, args, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn(*args).block_until_ready()
        times.append(time.perf_counter() - t)
    return min(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="float64 only, fewer repeats")
    ap.add_argument("--repeat", type=int, default=None)
    args = ap.parse_args()
    repeat = args.repeat or (3 if args.quick else 10)

    import jax
    import jax.numpy as jnp

    from validation.optimizers.signsvd import polar_qr, polar_svd

    m, n = 400, 200
    qr_route = jax.jit(polar_qr)
    svd_route = jax.jit(lambda r, x: polar_svd(jnp.tensordot(r, x, axes=(0, 0)) / r.shape[0]))
    report(f"m = {m}, n = {n}; times in ms (best of {repeat}); ratio = SVD time / QR time; "
           f"device {jax.devices()[0].platform}")
    report(f"{'dtype':>8} {'B':>4} {'QR ms':>9} {'SVD ms':>9} {'ratio':>7} {'max|diff|':>10} {'||P||^2':>8}")
    for dtype in ("float64",) if args.quick else ("float64", "float32"):
        with jax.enable_x64(dtype == "float64"):
            rng = np.random.default_rng(0)
            for B in (1, 4, 16, 64):
                r = jnp.asarray(rng.standard_normal((B, m)), dtype)
                x = jnp.asarray(rng.standard_normal((B, n)), dtype)
                pq, ps = qr_route(r, x), svd_route(r, x)  # compile
                t_qr = best_of(qr_route, (r, x), repeat)
                t_svd = best_of(svd_route, (r, x), repeat)
                diff = float(jnp.abs(pq - ps).max())
                report(f"{dtype:>8} {B:>4} {1e3 * t_qr:9.3f} {1e3 * t_svd:9.3f} {t_svd / t_qr:7.1f} {diff:10.2e} "
                       f"{float(jnp.sum(pq * pq)):8.3f}")


if __name__ == "__main__":
    main()
