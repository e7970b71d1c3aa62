"""Near the stability edge the expected risk is carried by rare runs: theory / seed mean and theory / seed
median at 0.9 and 0.97 of the threshold, for 16, 256 and 4096 seeds (d = 500 power law, B = 4).
Recipe for the numbers in docs/derivations/validation.md and the SGD notebook (a GPU helps: 4096 seeds).
Usage: python benchmarks/near_edge_seeds.py
"""
import hdtheory as hd, validation, numpy as np, time
prob = hd.powerlaw(d=500, alpha=0.75, beta=0.5, noise=hd.Gaussian(0.1))
lr_star = hd.stability_threshold(prob, hd.SGD(lr=1.0, batch=4))
grid = hd.step_grid(2000, per_decade=15)
for frac in (0.9, 0.97):
    opt = hd.SGD(lr=frac * lr_star, batch=4)
    curve = hd.solve(prob, opt, grid=grid)
    for seeds in (16, 256, 4096):
        t=time.time(); sim = validation.simulate(prob, opt, grid=grid, seeds=seeds, key=5)
        rep = validation.compare(curve, sim)
        ex = sim.excess_risk
        med = np.median(ex, axis=0); mean = ex.mean(axis=0)
        i = [10, 20, 30, 40, 47]
        print(f"frac {frac} seeds {seeds} ({time.time()-t:.1f}s): {rep.summary()}")
        print("   step", grid[i].tolist())
        print("   theory/mean", np.round(curve.excess_risk[i]/mean[i], 3).tolist(), " theory/median", np.round(curve.excess_risk[i]/med[i], 3).tolist())
