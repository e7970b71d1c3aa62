"""validation.empirical_threshold vs the exact threshold on lambda_j = 1/j, d = 100, for
B in {1, 4, 32, 256}, mean and median criteria, 256 seeds, 20000 steps. Recipe for the table in
docs/derivations/validation.md (a GPU helps; minutes on a CPU).
Usage: python benchmarks/v2_empirical_thresholds.py
"""
import hdtheory as hd, validation, numpy as np, time
V2 = hd.Problem(1.0 / np.arange(1, 101), np.full(100, 0.03), noise=hd.Gaussian(0.1))
for B in (1, 4, 32, 256):
    lt = hd.stability_threshold(V2, hd.SGD(1.0, batch=B))
    for stat in ("median", "mean"):
        t = time.time()
        r = validation.empirical_threshold(V2, hd.SGD(1.0, batch=B), steps=20000, seeds=256, key=0, rtol=0.005,
                                           statistic=stat, full=True)
        print(f"V2 B={B:3d} {stat:6s}: theory {lt:.5f} empirical {r.lr:.5f} ratio {r.lr/lt:.4f} "
              f"({r.evaluations} runs, {time.time()-t:.1f}s)", flush=True)
