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
# # Clipped SGD: when does clipping help?
#
# `hd.ClippedSGD(lr, clip, batch)` runs $\theta\leftarrow\theta-\eta\,g\min(1,c/\|g\|)$. Its theory is SGD's per-mode
# recursion with three reduction factors $\mu$, $\nu$, $A$, functions of the excess MSE $q$ and the normalized clip level
# $\tau=c\sqrt{B/\operatorname{tr}K}$:
#
# $$\rho_j\leftarrow\rho_j\,[1-2\eta\lambda_j\mu+\eta^2\lambda_j^2A]+\tfrac{\eta^2}{B}\lambda_j\,\nu .$$
#
# Clipping at matched drift (lr $\eta/\mu$) injects less noise than SGD iff the clipping comparison criterion
# $\mathrm{CCC}=\mu^2\mathcal E/\nu>1$, where $\mathcal E=q+\sigma^2$ is the twice-risk. The derivation of the factors, of the
# criterion and of the max-CCC schedule is in [docs/derivations/clipped_sgd.md](../docs/derivations/clipped_sgd.md).
#
# Below: the factors, risk curves predicted vs simulated for Gaussian and Student-t(3) label noise, the gain map over
# (lr, clip), and the relative-clip edge of stability.
#
# Set `HDTHEORY_FAST=1` to run a reduced version (smaller d, fewer steps, seeds and grid points; the tests do this). The
# figures and numbers quoted in the text are from the full run.

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

FAST = os.environ.get("HDTHEORY_FAST") == "1"
d = 100 if FAST else 500                  # dimension
STEPS = 500 if FAST else 3000             # horizon of the risk curves
SEEDS = 4 if FAST else 16                 # seeds per simulated curve
MAP_STEPS = 300 if FAST else 1000         # horizon of the gain map
MAP_LRS, MAP_TAUS = (8, 7) if FAST else (22, 20)
THRESHOLD_STEPS, THRESHOLD_SEEDS, THRESHOLD_RTOL = (600, 4, 0.1) if FAST else (3000, 8, 0.02)


def tidy_legend(ax, **kwargs):
    """hd.plot labels each curve's band and quantiles; keep the theory and simulation entries, plus one grey key for each."""
    handles, labels = ax.get_legend_handles_labels()
    keep = [(h, l) for h, l in zip(handles, labels) if "theory" in l or "simulation" in l]
    if any("SEM" in l for l in labels):
        keep.append((Patch(color="0.5", alpha=0.35, lw=0), next(l for l in labels if "SEM" in l)))
    if any("single runs" in l for l in labels):
        keep.append((Line2D([], [], color="0.4", ls=":"), "10-90% of single runs"))
    ax.legend(*zip(*keep), fontsize=8, **kwargs)


lam = np.linspace(0.5, 1.5, d)                 # uniform spectrum: tr K = d, tr K / lambda_max = d / 1.5
theta_star = np.full(d, math.sqrt(4.0 / lam.sum()))
laws = {"Gaussian": hd.Gaussian(1.0), "Student-t(3)": hd.StudentT(1.0, 3)}
probs = {name: hd.Problem(lam, theta_star, noise=noise) for name, noise in laws.items()}
trK = lam.sum()
print(f"d = {d}, tr K = {trK:.1f}, initial twice-risk {2 * probs['Gaussian'].initial_risk:.3f}, sigma^2 = 1")

# %% [markdown]
# ## The reduction factors and the comparison criterion (B = 1, $q = 0.1\,\sigma^2$)
#
# Left: the drift factor $\mu$ and the noise factor $\nu/\mathcal E$ as functions of the clip level. Right: the criterion. For
# Gaussian label noise CCC stays below 1 at every clip level; for heavy-tailed Student-t(3) noise it exceeds 1 at moderate
# levels.

# %%
q = 0.1
w = np.linspace(-5, 4, 200)                      # log(tau^2 / E)
tau = np.sqrt(np.exp(w) * (q + 1.0))
fig, axes = plt.subplots(1, 2, figsize=(12, 4.3))
for (name, noise), color in zip(laws.items(), ["C0", "C3"]):
    mu, nu, A = hd.clipped_sgd.clip_factors(noise, 1, q, tau)
    axes[0].plot(np.exp(w), mu, color=color, label=rf"$\mu$, {name}")
    axes[0].plot(np.exp(w), nu / (q + 1), "--", color=color, label=rf"$\nu/\mathcal{{E}}$, {name}")
    axes[1].plot(np.exp(w), hd.clipped_sgd.ccc(noise, 1, q, tau), color=color, label=name)
    v, t = hd.clipped_sgd.max_ccc(noise, 1, q)
    print(f"{name}: max CCC = {v:.4f} at tau^2/E = {t * t / (q + 1):.3g}")
for ax in axes:
    ax.set_xscale("log")
    ax.set_xlabel(r"clip level $\tau^2/\mathcal{E}$")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
axes[0].set(ylabel="reduction factor", title="drift and noise reduction factors")
axes[1].axhline(1, color="k", lw=0.8)
axes[1].set(ylabel=r"CCC $= \mu^2\mathcal{E}/\nu$", title="clipping can beat SGD only where CCC > 1");

# %% [markdown]
# ## Risk curves: SGD vs the max-CCC schedule, predicted vs simulated
#
# The max-CCC schedule picks $\tau_k=\arg\max_\tau\mathrm{CCC}(q_k,\tau)$ and compensates the lr ($\eta/\mu_k$); the theory
# resolves it into explicit per-step sequences that the simulator runs. For Gaussian noise it never clips (it *is* SGD).
# A fixed clip ($\tau = 1$) at the same lr is shown as well. For Student-t(3) noise the risk of plain SGD has infinite
# variance, so its simulated mean is unreliable and the SGD simulation is shown for Gaussian noise only (the SGD line is
# the exact recursion in both panels).

# %%
lr = 1.0 / trK
grid = hd.step_grid(STEPS, per_decade=12)
fig, axes = plt.subplots(1, 2, figsize=(13, 4.8), sharey=True)
for ax, (name, prob) in zip(axes, probs.items()):
    runs = {"SGD": hd.SGD(lr),
            "fixed clip tau = 1": hd.ClippedSGD(lr, clip=math.sqrt(trK)),
            "max-CCC schedule": hd.clipped_sgd.max_ccc_schedule(prob, lr, 1, STEPS)}
    for (label, opt), color in zip(runs.items(), ["C0", "C1", "C2"]):
        curve = hd.solve(prob, opt, grid=grid)
        sim = None
        if not (label == "SGD" and name != "Gaussian"):
            sim = validation.simulate(prob, opt, grid=grid, seeds=SEEDS, key=0)
            print(f"{name:13s} {label:18s}: E(final) theory {2 * curve.risk[-1]:.4f}, "
                  f"sim {2 * sim.mean[-1]:.4f} +- {2 * sim.sem[-1]:.4f}")
        else:
            print(f"{name:13s} {label:18s}: E(final) theory {2 * curve.risk[-1]:.4f} (exact recursion)")
        hd.plot(curve, sim, ax=ax, label=label, color=color)
    for line in ax.get_lines():  # dashed, so that SGD stays visible where the schedule never clips
        if line.get_label() == "max-CCC schedule theory":
            line.set_linestyle("--")
    tidy_legend(ax, loc="lower left")
    ax.set_title(f"{name} label noise, B = 1, d = {d}, lr = 1/tr K")

# %% [markdown]
# ## Gain map over (lr, clip)
#
# Predicted risk after 1000 steps of clipped SGD at (lr, $\tau$) divided by the best SGD risk over the same lr range.
# Blue = clipping wins. For Gaussian noise no cell beats the best SGD; for Student-t(3) a band of moderate clip levels does.

# %%
lrs = np.geomspace(0.1, 40, MAP_LRS) / trK
taus = np.geomspace(0.25, 16, MAP_TAUS)
g2 = np.array([0, MAP_STEPS])


def final_risk(prob, opt):
    """Predicted risk at MAP_STEPS (inf if the theory diverged before)."""
    c = hd.solve(prob, opt, grid=g2)
    return c.risk[-1] if c.risk.size == 2 else np.inf


fig, axes = plt.subplots(1, 2, figsize=(13, 4.8), sharey=True)
t0 = time.perf_counter()
for ax, (name, prob) in zip(axes, probs.items()):
    sgd = np.array([final_risk(prob, hd.SGD(l)) for l in lrs])
    best_sgd = np.min(sgd[np.isfinite(sgd)])
    gain = np.array([[final_risk(prob, hd.ClippedSGD(l, clip=t * math.sqrt(trK))) for l in lrs] for t in taus]) / best_sgd
    im = ax.pcolormesh(lrs * trK, taus, np.log10(gain), cmap="RdBu_r", vmin=-0.3, vmax=0.3, shading="nearest")
    i, j = np.unravel_index(np.argmin(gain), gain.shape)
    ax.plot(lrs[j] * trK, taus[i], "k*", ms=12, label=f"best: {gain[i, j]:.3f} x best SGD")
    ax.set(xscale="log", yscale="log", xlabel=r"lr $\times$ tr K", title=f"{name} label noise, {MAP_STEPS} steps")
    ax.legend(fontsize=8, loc="upper right")
    print(f"{name}: best clipped / best SGD = {np.min(gain):.4f}")
axes[0].set_ylabel(r"clip level $\tau = c\sqrt{B/\mathrm{tr}K}$")
fig.colorbar(im, ax=axes, label=r"$\log_{10}$(clipped risk / best SGD risk)")
print(f"{2 * lrs.size * (taus.size + 1)} theory curves in {time.perf_counter() - t0:.1f} s")

# %% [markdown]
# ## Fixed vs relative clip level: no divergence vs a sharp edge
#
# With a fixed c nothing diverges (each step moves $\theta$ by at most lr $\cdot$ c): the stationary risk grows like
# $\mathrm{lr}^2c^2$. With a relative level $c_k=\kappa\sqrt{\operatorname{tr}K\,\mathcal E_k/B}$ (`hd.RelativeClip`) there is a
# sharp edge of stability, at lr $=(\mu/\hat\nu)\times$ the SGD edge for small lr (right). The last line checks that edge
# against real runs (`validation.empirical_threshold`) on a small power-law problem.

# %%
prob = probs["Gaussian"]
es = hd.stability_threshold(prob, hd.SGD(1.0))
fr = np.geomspace(0.3, 100, 30)
fig, axes = plt.subplots(1, 2, figsize=(12, 4.3))
axes[0].loglog(fr, [hd.stationary_risk(prob, hd.ClippedSGD(f * es, clip=math.sqrt(trK))) for f in fr],
               label=r"fixed clip $\tau = 1$")
axes[0].loglog(fr, [hd.stationary_risk(prob, hd.ClippedSGD(f * es)) for f in fr], "--",
               label="SGD (infinite above its edge)")
axes[0].axvline(1, color="k", ls=":", lw=0.8)
axes[0].set(xlabel="lr / SGD threshold", ylabel="stationary risk", title="stationary risk vs lr (Gaussian noise)")
axes[0].legend(fontsize=8)
kap = np.geomspace(0.1, 10, 40)
axes[1].semilogx(kap, [hd.stability_threshold(prob, hd.ClippedSGD(1.0, clip=hd.RelativeClip(k))) / es for k in kap])
axes[1].axhline(1, color="k", ls=":", lw=0.8)
axes[1].set(xlabel=r"relative clip level $\kappa$", ylabel="relative-clip edge / SGD edge",
            title="edge of stability with a relative clip level")
for ax in axes:
    ax.grid(True, which="major", alpha=0.3)
small = hd.powerlaw(200, 0.25, 0.3, noise=hd.Gaussian(0.5))
opt = hd.ClippedSGD(1.0, clip=hd.RelativeClip(0.5))
lt = hd.stability_threshold(small, opt)
le = validation.empirical_threshold(small, opt, steps=THRESHOLD_STEPS, seeds=THRESHOLD_SEEDS, key=0,
                                    rtol=THRESHOLD_RTOL, lr0=lt)
print(f"relative clip kappa = 0.5, d = 200: theory edge {lt:.4f}, empirical {le:.4f} (ratio {le / lt:.3f})")
