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
# # SGD's compute-optimal phases on power-law random features
#
# `hd.plrf(d, alpha, beta)` is the power-law random-features model (hidden spectrum $j^{-2\alpha}$, target $j^{-\beta}$,
# $d$ Gaussian features of a $v=10d$ dimensional input) reduced to Gaussian least squares: for one draw of $W$ with a
# `seed`, its deterministic equivalent without. At a flop budget $f=d\,B\,k$ the compute-optimal model size is
# $d^*(f)=\arg\min_d R(f/(dB),d)$, with $R^*\sim f^{-\eta}$ and $d^*\sim f^{\xi}$. `compute_optimal` measures both from the
# theory's risk curves; the derived table covers phases Ia, II and III ($2\alpha>1$), the sub-phases with $2\alpha<1$
# are measured and labelled unverified. Derivations and the measured tables: [docs/derivations/plrf.md](../docs/derivations/plrf.md).
#
# Set `HDTHEORY_FAST=1` to run a reduced version (coarser maps, smaller d, fewer seeds; the tests do this).

# %%
import os
import time

import matplotlib.pyplot as plt
import numpy as np

import hdtheory as hd
import validation
from hdtheory.compute_optimal import compute_optimal, phase_of, sgd_phase_map

FAST = os.environ.get("HDTHEORY_FAST") == "1"
GRID = dict(d_min=32, d_max=2048, f_max=1e9) if FAST else {}
SEEDS = 8 if FAST else 64

# %% [markdown]
# ## 1. The phase diagram from the fitted exponents
#
# Each cell runs the frontier (a log grid of d, one theory curve per d) and fits the exponents over the top two decades
# of flops whose optimum is inside the grid. Colours: fitted $\xi$ and $\eta$; numbers: fitted minus predicted where a
# prediction exists.

# %%
alphas = np.array([0.4, 1.0]) if FAST else np.array([0.3, 0.4, 0.6, 0.7, 0.85, 1.0, 1.25])
betas = np.array([0.3, 1.2]) if FAST else np.array([0.2, 0.3, 0.45, 0.6, 0.8, 1.0, 1.3])
t0 = time.perf_counter()
pm = sgd_phase_map(alphas, betas, progress=False, **GRID)
print(f"{alphas.size * betas.size} cells in {time.perf_counter() - t0:.0f} s")
fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
for ax, name in zip(axes, ("xi", "eta")):
    val = pm[name].values
    im = ax.pcolormesh(np.arange(betas.size + 1), np.arange(alphas.size + 1), val, cmap="viridis", shading="flat")
    for i in range(alphas.size):
        for j in range(betas.size):
            lab = str(pm.phase.values[i, j])
            if lab == "inadmissible":
                ax.text(j + 0.5, i + 0.5, "—", ha="center", va="center", color="w")
                continue
            pred = pm[name + "_pred"].values[i, j]
            delta = "" if np.isnan(pred) else f"\n{val[i, j] - pred:+.3f}"
            ax.text(j + 0.5, i + 0.5, f"{lab}{'?' if pm.prediction.values[i, j] != 'derived' else ''}{delta}",
                    ha="center", va="center", fontsize=7, color="w")
    ax.set_xticks(np.arange(betas.size) + 0.5, [f"{b:g}" for b in betas])
    ax.set_yticks(np.arange(alphas.size) + 0.5, [f"{a:g}" for a in alphas])
    ax.set(xlabel=r"$\beta$", ylabel=r"$\alpha$", title=f"fitted {name} (phase; fitted - predicted)")
    fig.colorbar(im, ax=ax)
fig.tight_layout()

# %%
print(f"{'cell':>12} {'phase':>6} {'eta':>7} {'pred':>7} {'xi':>7} {'pred':>7}  status")
for i, a in enumerate(alphas):
    for j, b in enumerate(betas):
        c = pm.isel(alpha=i, beta=j)
        if str(c.phase.values) == "inadmissible":
            continue
        print(f"({a:.2f},{b:.2f}) {str(c.phase.values):>6} {float(c.eta):7.3f} {float(c.eta_pred):7.3f} "
              f"{float(c.xi):7.3f} {float(c.xi_pred):7.3f}  {str(c.prediction.values)}")

# %% [markdown]
# ## 2. IsoFLOP slices
#
# Risk against d at fixed flops, with the minimum (the refined d*) marked; the frontier below.

# %%
cells = [(0.7, 0.3), (1.0, 0.7), (0.7, 1.0)]
fig, axes = plt.subplots(2, 3, figsize=(13, 7))
for col, (a, b) in enumerate(cells):
    res = compute_optimal(a, b, **GRID)
    fr = res.frontier
    ax = axes[0, col]
    picks = np.flatnonzero(fr.interior.values)[:: max(1, int(fr.interior.sum()) // 6)]
    for n, color in zip(picks, plt.cm.plasma(np.linspace(0, 0.9, picks.size))):
        ax.loglog(fr.d, fr.risk.values[n], color=color, lw=1, label=f"f = {float(fr.f[n]):.0e}")
        ax.plot(fr.d_star.values[n], fr.risk_star.values[n], "o", color=color, ms=5)
    ax.set(xlabel="d", ylabel="risk", title=f"({a}, {b}) {res.phase.label}: IsoFLOP slices")
    ax.legend(fontsize=6)
    ax = axes[1, col]
    w = fr.in_window.values
    ax.loglog(fr.f, fr.risk_star, "k-", lw=1, label=r"$R^*(f)$")
    f_w = fr.f.values[w]
    ax.loglog(f_w, fr.risk_star.values[w][0] * (f_w / f_w[0]) ** (-res.eta), "r--",
              label=fr"fit $\eta$ = {res.eta:.3f} (table {res.phase.eta:.3f})")
    ax2 = ax.twinx()
    ax2.loglog(fr.f, fr.d_star, "b-", lw=1)
    ax2.set_ylabel(fr"$d^*$ (blue), fit $\xi$ = {res.xi:.3f} (table {res.phase.xi:.3f})", color="b")
    ax.set(xlabel="flops f = d B k", ylabel="risk at d*")
    ax.legend(fontsize=7, loc="lower left")
fig.tight_layout()

# %% [markdown]
# ## 3. Monte-Carlo spot check on sampled PLRF problems
#
# For one draw of W the problem is Gaussian least squares exactly, so `validation.simulate` on `hd.plrf(..., seed=s)` is
# a real SGD run on the random features. Averaged over seeds it should sit on the theory of that draw; the deterministic
# equivalent (dashed) is the average over draws of W.

# %%
d_mc = 60 if FAST else 200
fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
for ax, (a, b) in zip(axes, cells):
    prob = hd.plrf(d_mc, a, b, seed=0)
    opt = hd.SGD(lr=0.5 / prob.info["trace_D"], batch=1)
    curve = hd.solve(prob, opt, 2000 if FAST else 20000)
    sim = validation.simulate(prob, opt, grid=curve.steps, seeds=SEEDS, key=1)
    det = hd.solve(hd.plrf(d_mc, a, b), opt, grid=curve.steps)
    err = np.max(np.abs(curve.risk[1:] / sim.mean[1:] - 1))
    ax.loglog(curve.steps[1:], curve.risk[1:], "k-", label="theory, this W")
    ax.loglog(sim.steps[1:], sim.mean[1:], "o", mfc="none", ms=3, label=f"simulation ({SEEDS} seeds)")
    ax.loglog(det.steps[1:], det.risk[1:], "r--", label="deterministic equivalent")
    ax.set(xlabel="step k", ylabel="risk", title=f"({a}, {b}) d = {d_mc}: max |theory/sim - 1| = {err:.3f}")
    ax.legend(fontsize=7)
fig.tight_layout()

# %% [markdown]
# ## 4. Explore (alpha, beta, batch, lr)
#
# With ipywidgets installed (and outside fast mode) the sliders recompute a frontier; otherwise one static figure.

# %%
def explore(alpha=1.0, beta=0.7, batch=1, c=0.5):
    ph = phase_of(alpha, beta)
    fig, ax = plt.subplots(figsize=(6, 4))
    if ph.label == "inadmissible":
        ax.set_title(f"({alpha}, {beta}) inadmissible: 2 alpha + 2 beta <= 1")
        return fig
    try:
        res = compute_optimal(alpha, beta, batch=batch, c=c, d_max=4096 if FAST else 16384, f_max=1e9 if FAST else 1e10)
    except ValueError as exc:
        ax.set_title(str(exc)[:80])
        return fig
    fr = res.frontier
    for i in range(0, fr.d.size, 2):
        ax.loglog(fr.f, fr.risk.values[:, i], color="0.75", lw=0.7)
    ax.loglog(fr.f, fr.risk_star, "k-", lw=2, label="frontier")
    pred = "" if ph.eta is None else f" (table {ph.eta:.3f}, {ph.xi:.3f})"
    ax.set(xlabel="flops", ylabel="risk", title=f"{ph.label}: eta = {res.eta:.3f}, xi = {res.xi:.3f}{pred}")
    ax.legend(fontsize=8)
    return fig


try:
    if FAST:
        raise ImportError
    import ipywidgets as widgets

    widgets.interact(explore, alpha=(0.3, 1.5, 0.05), beta=(0.1, 2.0, 0.05), batch=[1, 2, 4, 8], c=(0.1, 1.0, 0.05))
except ImportError:
    explore()
