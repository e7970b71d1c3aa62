# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # LA-DiLoCo and its family: SGD vs LA vs SLA (Nesterov) vs LA-DiLoCo
#
# `hd.LADiLoCo(lr, batch=B, workers=M, inner_steps=H, outer_lr=alpha, outer_momentum=beta, nesterov=...)`: M workers
# restart from the slow weights $\theta$, each takes H SGD steps of size $\eta$ = `lr` on its own fresh batches of B samples;
# the pseudo-gradient $\Delta=\theta-\frac1M\sum_m\theta_m$ drives an outer step of rate $\alpha$, with heavy-ball or Nesterov
# outer momentum $\beta$. `hd.LA` is one worker (Lookahead), `hd.SLA` is LA with outer momentum. Curves are indexed by
# **inner steps per worker** $k=tH$; one inner step uses $M\cdot B$ samples, so SGD at batch B and LA-DiLoCo with M = 4
# workers at batch B/4 see the same data per step.
#
# The theory is exact in expectation for Gaussian data at every d. Per mode $j$ and round, the worker chain
# $r_j^{(h+1)}=a_jr_j^{(h)}+\frac{\eta^2}{B}\lambda_jE_w^{(h)}$, $E_w^{(h)}=\sigma^2+\sum_i\lambda_ir_i^{(h)}$ (each worker's noise
# is driven by its own, changing risk), then the outer step
# $\rho_j\leftarrow(1-\alpha u_j)^2\rho_j+\frac{\alpha^2}{M}\big(r_j^{(H)}-q_j^2\rho_j\big)$ with $q_j=(1-\eta\lambda_j)^H$,
# $u_j=1-q_j$; with outer momentum the state is three moments per mode. The stability threshold `hd.stability_threshold`
# is the first lr at which the round's outer maps or its kernel of worker risks reach spectral radius 1 (the
# *asymptotic threshold* below). The derivation of all of this is in
# [docs/derivations/la_diloco.md](../docs/derivations/la_diloco.md); how long constant-lr stretches are stepped in closed
# form is in [docs/derivations/blocks.md](../docs/derivations/blocks.md).
#
# Set `HDTHEORY_FAST=1` to run a reduced version (fewer steps, seeds and grid points; the tests do this). The figures and
# numbers quoted in the text are from the full run.

# %%
import math
import os
import time

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

import hdtheory as hd
import validation
horizon_threshold = hd.tuning.horizon_threshold

FAST = os.environ.get("HDTHEORY_FAST") == "1"
t_start = time.perf_counter()
d, B, H = 100, 4, 8
steps = 256 if FAST else 1024             # inner steps per worker of the tuned curves
SEEDS = 8 if FAST else 128                # seeds per simulated curve
N_FRACS = 8 if FAST else 16               # lr grid of the tuning scan
N_ETAS = 200 if FAST else 900             # lr grid of the stable-set scan
ROUNDS = 50 if FAST else 200              # horizon of the threshold comparison
THRESHOLD_RTOL = 0.05 if FAST else 0.01   # bisection tolerance of the empirical thresholds
HORIZONS = (250,) if FAST else (250, 1000, 4000)


def tidy_legend(ax, **kwargs):
    """hd.plot labels each curve's band and quantiles; keep the theory and simulation entries, plus one grey key for each."""
    handles, labels = ax.get_legend_handles_labels()
    keep = [(h, l) for h, l in zip(handles, labels) if "theory" in l or "simulation" in l]
    if any("SEM" in l for l in labels):
        keep.append((Patch(color="0.5", alpha=0.35, lw=0), next(l for l in labels if "SEM" in l)))
    if any("single runs" in l for l in labels):
        keep.append((Line2D([], [], color="0.4", ls=":"), "10-90% of single runs"))
    ax.legend(*zip(*keep), fontsize=8, **kwargs)


prob = hd.powerlaw(d, 1.0, 0.5, noise=hd.Gaussian(0.01))   # lambda_j = j^-2, theta*_j = j^-1/2
variants = {                                                # alpha, beta fixed near their tuned values
    "SGD B=4": hd.SGD(1.0, batch=B),
    "LA a=1.5": hd.LA(1.0, batch=B, inner_steps=H, outer_lr=1.5),
    "SLA-Nesterov a=0.5 b=0.9": hd.SLA(1.0, 0.9, batch=B, inner_steps=H, outer_lr=0.5),
    "LA-DiLoCo M=4 B=1 a=1.5": hd.LADiLoCo(1.0, batch=B // 4, workers=4, inner_steps=H, outer_lr=1.5),
}
# tuned by the theory: the lr minimising the predicted risk at `steps`, on a grid below each variant's threshold
fracs = np.geomspace(0.05, 0.95, N_FRACS)
tuned = {}
for name, opt in variants.items():
    thr = hd.stability_threshold(prob, opt)
    final = [hd.solve(prob, opt.with_lr(f * thr), grid=np.array([0, steps])).risk[-1] for f in fracs]
    i = int(np.argmin(final))
    tuned[name] = opt.with_lr(fracs[i] * thr)
    print(f"{name:26s} threshold {thr:.4f}  tuned lr {fracs[i] * thr:.4f} ({fracs[i]:.2f} x threshold)  "
          f"predicted excess risk at k={steps}: {final[i] - prob.sigma2 / 2:.3e}")

# %% [markdown]
# ## Predicted vs simulated, each at its tuned lr
#
# `hd.solve` gives the expected risk; `validation.simulate` runs the algorithm on real Gaussian samples (128 seeds; lines:
# theory, dots: seed mean, band: mean $\pm$ 2 SEM, dotted: 10-90% quantiles of single runs). Right: simulated mean /
# theory. On this power law $\operatorname{tr}K/\lambda_{\max}=1.6$: a few modes carry the risk, single runs are skewed,
# and the mean of 128 seeds scatters by a few percent around the expectation (more often below it: the rare large runs
# are under-sampled). SLA-Nesterov, which moves the slow modes with $\eta/(1-\beta)$ and annihilates the saturated ones
# (below), ends ~3x lower than the others at the same samples.

# %%
grid = hd.step_grid(steps, per_decade=10, multiple_of=H)
fig, axes = plt.subplots(1, 2, figsize=(14, 5))
for (name, opt), color in zip(tuned.items(), ["C0", "C1", "C2", "C3"]):
    curve = hd.solve(prob, opt, grid=grid)
    sim = validation.simulate(prob, opt, grid=grid, seeds=SEEDS, key=0)
    print(f"{name:26s} {validation.compare(curve, sim).summary()}")
    hd.plot(curve, sim, ax=axes[0], label=name, color=color)
    m = grid > 0
    axes[1].plot(grid[m], sim.mean[m] / curve.risk[m], "o-", ms=3, color=color, label=name)
    axes[1].fill_between(grid[m], (sim.mean - 2 * sim.sem)[m] / curve.risk[m], (sim.mean + 2 * sim.sem)[m] / curve.risk[m],
                         color=color, alpha=0.15, lw=0)
tidy_legend(axes[0], loc="lower left")
axes[0].set_title(f"power law, d = {d}: theory (lines) vs mean of {SEEDS} seeds")
axes[1].axhline(1, color="k", lw=0.8)
axes[1].set(xscale="log", xlabel="inner step k", ylabel="simulated mean risk / theory", ylim=(0.7, 1.3),
            title=r"simulated mean / theory ($\pm$ 2 SEM)")
axes[1].grid(True, which="major", alpha=0.3)
axes[1].legend(fontsize=8);

# %% [markdown]
# ## Signal vs noise: LA against SGD at the same effective lr
#
# Per mode and per round, the **signal** is the contraction of the mean, $1-\alpha u_j$ with the effective eigenvalue
# $u_j=1-(1-\eta\lambda_j)^H$; the **noise** is the stationary second moment per unit driving twice-risk,
# $\rho_j^\infty/E\approx\frac{\alpha\eta}{MB}\frac{1+p_j^H}{(2-\eta\lambda_j)(2-\alpha u_j)}$, $p_j=1-\eta\lambda_j$
# (`hd.la_diloco.signal_noise`, exact for frozen worker risks). The comparator is SGD at $\eta_{\rm eff}=\alpha\eta$ and batch
# MB. Slow modes ($H\eta\lambda\ll1$) are identical to it; saturated modes contract by $|1-\alpha|$ per round whatever
# $\lambda$ and get noise $\alpha\eta/(MB(2-\eta\lambda)(2-\alpha))$. Below ($\eta_{\rm eff}=0.5$, H = 8, B = 4): $\alpha=0.5$
# puts up to ~25% less noise into the stiff directions but gives up their signal; $\alpha=1.5$ buys signal in the middle
# of the spectrum (and lets $\eta_{\rm eff}$ exceed $2/\lambda_{\max}$: its mean edge is $|1-\alpha u|<1$) for more noise. Near
# $\eta\lambda=1$ the 1/B corrections that the closed form drops matter at B = 4 (solid vs dashed).

# %%
lam = np.geomspace(1e-4, 1.0, 200)
eta_eff = 0.5
fig, axes = plt.subplots(1, 2, figsize=(13, 4.6))
for alpha, color in [(0.5, "C1"), (1.5, "C2")]:
    sn = hd.la_diloco.signal_noise(lam, hd.LA(eta_eff / alpha, batch=B, inner_steps=H, outer_lr=alpha))
    axes[0].loglog(lam, 1 - sn.rate, color=color, label=rf"LA $\alpha$={alpha}, $\eta$={eta_eff / alpha:.3g}")
    axes[1].semilogx(lam, sn.noise / sn.sgd_noise, color=color, label=rf"LA $\alpha$={alpha}: exact (frozen risk)")
    axes[1].semilogx(lam, sn.noise_approx / sn.sgd_noise, "--", color=color,
                     label=rf"LA $\alpha$={alpha}: closed form (1/B dropped)")
    k = int(np.argmin(np.abs(lam - 0.3)))
    print(f"alpha={alpha}: at lambda=0.3 per-step contraction {sn.rate[k]:.4f} vs SGD {sn.sgd_rate[k]:.4f}, "
          f"noise / SGD's {sn.noise[k] / sn.sgd_noise[k]:.3f}; noise / SGD's over the spectrum "
          f"{np.min(sn.noise / sn.sgd_noise):.3f}-{np.max(sn.noise / sn.sgd_noise):.3f}")
axes[0].loglog(lam, 1 - sn.sgd_rate, "k:", label=rf"SGD $\eta_{{\rm eff}}$={eta_eff}, batch {sn.sgd_batch}")
axes[0].set(xlabel=r"eigenvalue $\lambda$", ylabel="1 - per-inner-step mean contraction (signal)",
            title="signal: how fast the mean of each mode contracts")
axes[1].axhline(1, color="k", ls=":", label="SGD")
axes[1].set(xlabel=r"eigenvalue $\lambda$", ylabel="stationary noise / SGD's", title="noise relative to SGD")
for ax in axes:
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)

# %% [markdown]
# ## Nesterov outer momentum: a transformed effective spectrum
#
# The outer optimizer sees the effective eigenvalue $u(\lambda)=1-(1-\eta\lambda)^H$ (`hd.la_diloco.effective_spectrum`):
# $\approx H\eta\lambda$ at the bottom, and the whole inner-stable range folds into a cluster near 1 (for even H,
# $u\in(0,1]$ for $0<\eta\lambda<2$). Per round the mean follows heavy ball $e_{t+1}=(1+\beta-\alpha u)e_t-\beta e_{t-1}$ or
# Nesterov $e_{t+1}=(1+\beta)(1-\alpha u)e_t-\beta(1-\alpha u)e_{t-1}$; Nesterov's root modulus $\sqrt{\beta(1-\alpha u)}$
# vanishes at $\alpha u=1$, so it annihilates the cluster while slow modes move with $\eta/(1-\beta)$; heavy ball's cluster
# decays at $\sqrt\beta$ only, and single-level Nesterov on the raw spectrum is unstable beyond
# $\eta\lambda=2(1+\beta)/(1+2\beta)=1.357$. Right: per-inner-step rate $|z_{\max}|^{1/H}$ (`hd.la_diloco.mean_rate`),
# $\eta=1$, H = 8, $\alpha=1$, $\beta=0.9$.

# %%
x = np.linspace(1e-3, 1.999, 800)         # eta lambda with eta = 1
rates = {
    "GD = LA with alpha=1 (H=8)": hd.LA(1.0, inner_steps=8),
    "SLA heavy ball (H=8, b=0.9)": hd.SLA(1.0, 0.9, inner_steps=8, nesterov=False),
    "SLA Nesterov (H=8, b=0.9)": hd.SLA(1.0, 0.9, inner_steps=8),
    "single-level Nesterov (H=1, b=0.9)": hd.SLA(1.0, 0.9, inner_steps=1),
}
fig, axes = plt.subplots(1, 2, figsize=(13, 4.6))
for H_ in (2, 3, 8):
    axes[0].plot(x, hd.la_diloco.effective_spectrum(x, hd.LA(1.0, inner_steps=H_)), label=rf"$u(\eta\lambda)$, H = {H_}")
axes[0].plot(x, x, "k:", label=r"raw $\eta\lambda$")
axes[0].set(xlabel=r"$\eta\lambda$", ylabel="effective eigenvalue u", ylim=(-0.2, 2.0),
            title="the effective spectrum seen by the outer step")
axes[0].legend(fontsize=8)
for name, opt in rates.items():
    r = hd.la_diloco.mean_rate(x, opt)
    axes[1].plot(x, r, label=name)
    print(f"{name:36s} rate at eta lambda = 0.01 / 0.5 / 1.5: " + " / ".join(f"{v:.4f}" for v in np.interp([0.01, 0.5, 1.5], x, r)))
axes[1].axhline(1, color="k", lw=0.8)
axes[1].set(xlabel=r"$\eta\lambda$", ylabel="per-inner-step rate of the mean", ylim=(0, 1.4),
            title="convergence rate of the mean (1 = no progress)")
axes[1].legend(fontsize=8)
for ax in axes:
    ax.grid(True, which="major", alpha=0.3)

# %% [markdown]
# ## The extra noise of M workers, and what removes it
#
# At equal samples per inner step, M workers at batch B put more noise into the slow weights than one worker at batch MB:
# each worker's own batch-B noise feeds its later inner steps before the average divides it by M (equality iff H = 1).
# Shown: excess stationary risk of (M 4, B 1) over (M 1, B 4), `hd.la_diloco.worker_noise`, at fixed
# $\eta_{\rm eff}=\alpha\eta=0.25$ on the spectrum $\lambda_j=1/j$ (d = 100, $\sigma^2=0.1$). Raising $\alpha$ (and lowering
# $\eta$) or shortening H removes most of it.

# %%
harmonic = hd.Problem(1.0 / np.arange(1, 101), np.zeros(100), noise=hd.Gaussian(math.sqrt(0.1)))
alphas = np.geomspace(0.4, 2.0, 13)
fig, ax = plt.subplots(figsize=(7.5, 4.8))
for H_ in (2, 8, 32):
    ratio = []
    for a in alphas:
        w = hd.la_diloco.worker_noise(harmonic, hd.LADiLoCo(0.25 / a, batch=1, workers=4, inner_steps=H_, outer_lr=a))
        ratio.append(w.ratio if np.isfinite(w.excess_workers) else np.nan)
    ax.plot(alphas, ratio, "o-", ms=3, label=f"H = {H_}")
ax.axhline(1, color="k", ls=":", label="H = 1 (no extra noise)")
ax.set(xscale="log", yscale="log", xlabel=r"outer lr $\alpha$ ($\eta = 0.25/\alpha$)",
       ylabel="excess risk: 4 workers x B 1 / 1 worker x B 4",
       title=r"extra noise of 4 workers at equal samples, $\lambda_j = 1/j$")
ax.grid(True, which="major", alpha=0.3)
ax.legend(fontsize=8)
for a in (0.5, 1.0, 1.5, 2.0):
    w = hd.la_diloco.worker_noise(harmonic, hd.LADiLoCo(0.25 / a, batch=1, workers=4, inner_steps=8, outer_lr=a))
    print(f"H = 8, alpha = {a}: excess {w.excess_workers:.6f} (M 4, B 1) vs {w.excess_pooled:.6f} (M 1, B 4), ratio {w.ratio:.2f}")

# %% [markdown]
# ## A stable set that is not an interval
#
# The exact test: stable iff every per-mode outer map $\mathcal A_j$ and the $H\times H$ kernel $\bar{\mathcal K}$ of the worker
# risks have spectral radius below 1. The inner loop itself need not be stable, and with inner momentum the round's mean
# factor $q_H(\eta\lambda)$ oscillates in $\eta$, so the stable set can have gaps. Two modes ($\lambda$ = 1, 0.5), H = 3,
# $\alpha$ = 1.5, inner momentum 0.5, B = $10^6$: `hd.stability_threshold` returns the **first** crossing;
# `hd.la_diloco.stable_intervals` lists every stable interval (green).

# %%
two = hd.Problem([1.0, 0.5], [0.3, 0.3], noise=hd.Gaussian(0.1))
opt = hd.LA(1.0, batch=10**6, inner_steps=3, outer_lr=1.5, inner_momentum=0.5)
etas = np.linspace(0.01, 4.5, N_ETAS)
lam2, mult2 = np.array([1.0, 0.5]), np.ones(2)
radius = []
for e in etas:
    ro = hd.la_diloco.round_operators(lam2, mult2, e, opt)
    radius.append(max(ro.outer_radius, ro.radius) if np.all(np.isfinite(ro.kernel)) else ro.outer_radius)
intervals = hd.la_diloco.stable_intervals(two, opt)
fig, ax = plt.subplots(figsize=(7.5, 4.5))
ax.semilogy(etas, radius, "k-", lw=1, label=r"max(specrad $\mathcal{A}_j$, specrad $\bar{\mathcal{K}}$)")
for n, (lo, hi) in enumerate(intervals):
    ax.axvspan(lo, hi, color="C2", alpha=0.25, label="stable intervals" if n == 0 else None)
ax.axhline(1, color="C3", lw=0.8)
ax.axvline(hd.stability_threshold(two, opt), color="C0", ls="--", label="stability_threshold (first crossing)")
ax.set(xlabel=r"inner lr $\eta$", ylabel="spectral radius per round", ylim=(0.05, 50),
       title=r"two modes, H = 3, $\alpha$ = 1.5, inner momentum 0.5")
ax.legend(fontsize=8)
print("stable intervals:", ", ".join(f"({lo:.4f}, {hi:.4f})" for lo, hi in intervals))

# %% [markdown]
# ## Theory threshold vs real runs, compared like with like
#
# `validation.empirical_threshold` bisects on lr with real runs: a run "diverges" when the seeds' mean risk grows more than
# 10x between half the horizon and the horizon. Just above the asymptotic threshold the expected risk grows too slowly to do
# that within a finite horizon, so the empirical threshold is compared with the *horizon threshold*: the same criterion
# applied to the theory's own expected-risk curve. On a problem with many effective dimensions ($\lambda$ uniform in
# [0.5, 1.5], d = 100, $\operatorname{tr}K/\lambda_{\max}=67$), 200 rounds, 8 seeds:

# %%
lam_u = np.linspace(0.5, 1.5, 100)
uni = hd.Problem(lam_u, np.random.default_rng(0).normal(size=100) / math.sqrt(lam_u.sum()), noise=hd.Gaussian(0.3))
fig, ax = plt.subplots(figsize=(7.5, 4.8))
for (name, opt), color in zip({"M 4, H 8, alpha 1, B 1": hd.LADiLoCo(1.0, workers=4, inner_steps=8),
                               "LA: M 1, H 8, alpha 0.5, B 1": hd.LA(1.0, inner_steps=8, outer_lr=0.5)}.items(), ["C0", "C1"]):
    lt = hd.stability_threshold(uni, opt)
    lh = horizon_threshold(uni, opt, ROUNDS * 8)
    le = validation.empirical_threshold(uni, opt, steps=ROUNDS * 8, seeds=8, key=0, rtol=THRESHOLD_RTOL, lr0=lh)
    print(f"{name:30s} asymptotic {lt:.5f}   horizon {lh:.5f} ({lh / lt:.4f} x)   empirical {le:.5f} "
          f"({le / lt:.4f} x asymptotic, {le / lh:.4f} x horizon)")
    f = np.linspace(0.97, 1.1, 27)
    growth = []
    for x_ in f:
        c = hd.solve(uni, opt.with_lr(x_ * lt), grid=np.array([0, ROUNDS * 4, ROUNDS * 8]))
        growth.append(c.risk[2] / c.risk[1] if c.risk.size == 3 else np.inf)
    ax.semilogy(f, growth, color=color, label=f"{name}: theory E(end)/E(mid)")
    ax.axvline(le / lt, color=color, ls="--", lw=1, label=f"{name}: empirical threshold")
ax.axhline(10, color="k", lw=0.8, label="growth criterion 10")
ax.axvline(1, color="k", ls=":", label="asymptotic threshold")
ax.set(xlabel="lr / asymptotic threshold", ylabel="expected risk at k / at k/2",
       title=f"growth of the expected risk over the second half of {ROUNDS} rounds")
ax.grid(True, which="major", alpha=0.3)
ax.legend(fontsize=8);

# %% [markdown]
# The dashed lines (empirical thresholds) sit where the theory's curve crosses 10: at a finite horizon real runs agree with
# the theory's expected risk to within the bisection's 1%, and the horizon effect itself is O(1/horizon) (it shrinks ~4x
# per 4x rounds).
#
# **On $\lambda_j=1/j$** (d = 100, $\sigma=0.1$, M 4, H 8, $\alpha$ 1, B 1; 128 seeds, 1000 rounds) the empirical threshold
# was 1.054 x the asymptotic one, but the horizon explains only +0.27% of it (below). There
# $\operatorname{tr}K/\lambda_{\max}=5.2$: a few modes carry the risk and near the edge the seed mean is carried by single
# runs (as for SGD at B = 4 on the same problem, +4.9%: with H = 1 this optimizer *is* SGD at batch MB). Measured at
# 1.01 / 1.03 / 1.05 x the asymptotic threshold: the theory's expected risk grows x6e3 / x2e13 / x2e25 from round 500 to
# 1000, while the mean of 128 seeds shrinks (x0.40 / x0.18 / x0.46), the median is flat (x1.03 / 0.98 / 1.07), and the
# largest seed holds 38-45% of the mean at round 500. The theory is right about the expectation; 128 seeds do not measure
# it there.

# %%
harmonic_t = hd.Problem(1.0 / np.arange(1, 101), np.full(100, 0.03), noise=hd.Gaussian(0.1))
opt = hd.LADiLoCo(1.0, workers=4, inner_steps=8)
lt = hd.stability_threshold(harmonic_t, opt)
for r in HORIZONS:
    print(f"lambda_j = 1/j, {r:4d} rounds: horizon threshold / asymptotic = {horizon_threshold(harmonic_t, opt, 8 * r) / lt:.4f}")
print(f"notebook ran in {time.perf_counter() - t_start:.0f} s")
