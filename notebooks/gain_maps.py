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
# # Gain maps on power laws: where clipping, signSGD and LA-DiLoCo beat SGD
#
# On the power law $\lambda_j=j^{-2\alpha}$, $\theta^*_j=j^{-\beta}$ (`hd.powerlaw`), `hd.phases.gain_map` tunes two optimizers
# with `hd.tune` at every horizon and returns the ratio of their best predicted risks, $R_a^*(k)/R_b^*(k)$, with a phase
# label per cell: `a` (a better at every horizon), `b`, `a->b` (a better early, b late), `b->a`, `mixed`.
# Every number here is the theory's; section 4 checks a few cells against simulation at the tuned hyperparameters.
#
# Set `HDTHEORY_FAST=1` to run a reduced version (smaller d, fewer steps, cells and seeds; the tests do this).

# %%
import dataclasses
import os

import matplotlib.pyplot as plt
import numpy as np

import hdtheory as hd
import validation

FAST = os.environ.get("HDTHEORY_FAST") == "1"
d = 40 if FAST else 200
STEPS = 200 if FAST else 2000
SEEDS = 8 if FAST else 64
alphas = [0.5, 1.0] if FAST else [0.3, 0.5, 0.75, 1.0, 1.5]
betas = [0.25, 0.75] if FAST else [0.0, 0.25, 0.5, 0.75, 1.0]
horizons = [20, STEPS] if FAST else [20, 200, STEPS]
common = {"d": d, "horizons": horizons, "points": 10 if FAST else 16, "progress": False}


def show(ds, title, axes):
    """One heatmap of log10 ratio per horizon, phase labels written in the cells."""
    for ax, h in zip(axes, ds.horizon.values):
        r = np.log10(ds.ratio.sel(horizon=h).values.T)
        im = ax.imshow(r, origin="lower", cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
        ax.set_xticks(range(len(ds.alpha)), [f"{a:g}" for a in ds.alpha.values])
        ax.set_yticks(range(len(ds.beta)), [f"{b:g}" for b in ds.beta.values])
        ax.set_xlabel("alpha")
        ax.set_ylabel("beta")
        ax.set_title(f"{title}, k = {h}", fontsize=9)
        for i in range(len(ds.alpha)):
            for j in range(len(ds.beta)):
                mark = "" if bool(ds.valid.values[i, j]) else "*"
                ax.text(i, j, f"{ds.phase.values[i, j]}{mark}", ha="center", va="center", fontsize=7)
    return im


# %% [markdown]
# ## 1. Clipped SGD vs SGD, by noise law
#
# Clipped SGD is tuned over lr *and* a fixed clip level (`over_a=("lr", "clip")`; no clipping is one of the candidates, so
# the ratio never exceeds 1 by more than the search's tolerance). Under Gaussian label noise clipping buys almost nothing (at
# most half a percent here); under heavy-tailed noise (Student-t, 2.5 degrees of freedom, same variance) it removes part of the noise floor. A `*` marks a
# cell where a tuned curve left its theory's validity.

# %%
noises = {"Gaussian": hd.Gaussian(0.5), "Student-t (df 2.5)": hd.StudentT(0.5, 2.5)}
clip_maps = {name: hd.phases.gain_map(alphas, betas, hd.ClippedSGD(1.0), hd.SGD(1.0), STEPS, noise=noise,
                                      over_a=("lr", "clip"), **common)
             for name, noise in noises.items()}
fig, axes = plt.subplots(2, len(horizons), figsize=(3.6 * len(horizons), 6.4), squeeze=False)
for row, (name, ds) in zip(axes, clip_maps.items()):
    im = show(ds, f"clipped / SGD, {name}", row)
fig.colorbar(im, ax=axes, label="log10 risk ratio (blue: clipped SGD better)")
for name, ds in clip_maps.items():
    print(f"{name}: best ratio {float(ds.ratio.min()):.3f}, worst {float(ds.ratio.max()):.4f}")

# %% [markdown]
# ## 2. signSGD vs SGD
#
# SignSGD's step does not shrink with the gradient, so at a fixed lr it stalls on a floor set by the lr; tuned per horizon it
# competes with SGD early on spectra where SGD's stable lr is small (slow decay, small alpha), and loses late.

# %%
sign_map = hd.phases.gain_map(alphas, betas, hd.SignSGD(1.0), hd.SGD(1.0), STEPS, noise=hd.Gaussian(0.1), **common)
fig, axes = plt.subplots(1, len(horizons), figsize=(3.6 * len(horizons), 3.2), squeeze=False)
im = show(sign_map, "signSGD / SGD", axes[0])
fig.colorbar(im, ax=axes, label="log10 risk ratio (blue: signSGD better)")
print(sign_map.phase.to_pandas())

# %% [markdown]
# ## 3. LA-DiLoCo vs data-parallel SGD at equal samples
#
# Four workers, eight inner steps per round, batch 1 each, tuned over inner lr and outer lr, against SGD at batch 4 (the
# same four samples per step, but communicating every step). With `per="samples"` both are compared after the same number
# of samples.

# %%
dil = hd.LADiLoCo(1.0, batch=1, workers=4, inner_steps=8)
sample_horizons = [4 * 8 * 4, 4 * STEPS] if FAST else [4 * 8 * 8, 4 * 200, 4 * STEPS]
dil_map = hd.phases.gain_map(alphas, betas, dil, hd.SGD(1.0, batch=4), 0, noise=hd.Gaussian(0.1), per="samples",
                             over_a=("lr", "outer_lr"), **{**common, "horizons": sample_horizons})
fig, axes = plt.subplots(1, len(sample_horizons), figsize=(3.6 * len(sample_horizons), 3.2), squeeze=False)
im = show(dil_map, "LA-DiLoCo / SGD (samples)", axes[0])
fig.colorbar(im, ax=axes, label="log10 risk ratio (blue: LA-DiLoCo better)")
print(f"ratio range {float(dil_map.ratio.min()):.3f} .. {float(dil_map.ratio.max()):.3f}")

# %% [markdown]
# ## 4. Monte-Carlo spot checks
#
# For a few cells: simulate both optimizers at the hyperparameters the theory chose for the last horizon and compare the
# simulated ratio (seed means) with the theory's.

# %%
def spot(ds, a, b, opt_a, opt_b, noise, over_a, per="steps"):
    cell = ds.sel(alpha=a, beta=b).isel(horizon=-1)
    prob = hd.powerlaw(d, a, b, noise=noise)
    h = int(cell.horizon)
    sims, theory = [], []
    for key, opt, over in (("a", opt_a, over_a), ("b", opt_b, ("lr",))):
        tuned = dataclasses.replace(opt, **{n: float(cell[f"{n}_{key}"]) for n in over})
        steps = h if per == "steps" else hd.tuning.steps_for_samples(tuned, h)
        grid = np.array([0, steps])
        sims.append(validation.simulate(prob, tuned, grid=grid, seeds=SEEDS, key=7))
        theory.append(hd.solve(prob, tuned, grid=grid).risk[-1])
    r_sim = sims[0].mean[-1] / sims[1].mean[-1]
    se = r_sim * np.hypot(*(s.risk[:, -1].std() / np.sqrt(SEEDS) / s.mean[-1] for s in sims))
    return float(cell.ratio), theory[0] / theory[1], r_sim, se


checks = [("clipped / SGD, Student-t", clip_maps["Student-t (df 2.5)"], alphas[0], betas[-1], hd.ClippedSGD(1.0),
           hd.SGD(1.0), noises["Student-t (df 2.5)"], ("lr", "clip"), "steps"),
          ("signSGD / SGD", sign_map, alphas[-1], betas[0], hd.SignSGD(1.0), hd.SGD(1.0), hd.Gaussian(0.1), ("lr",),
           "steps"),
          ("LA-DiLoCo / SGD", dil_map, alphas[1], betas[1], dil, hd.SGD(1.0, batch=4), hd.Gaussian(0.1),
           ("lr", "outer_lr"), "samples")]
for name, ds, a, b, oa, ob, noise, over, per in checks:
    mapped, theory, sim, se = spot(ds, a, b, oa, ob, noise, over, per)
    print(f"{name:26s} alpha={a:g} beta={b:g}: map {mapped:.4f}, theory {theory:.4f}, simulation {sim:.4f} +- {se:.4f}")

# %% [markdown]
# ## 5. Explore
#
# Theory curves of SGD and signSGD for one cell, at lr given as a fraction of each method's lr scale (its stability
# threshold, or for signSGD the lr past which it makes no progress). With ipywidgets installed and outside the fast mode
# the sliders redraw the figure; otherwise one static figure is drawn.

# %%
def explore(alpha=1.0, beta=0.5, batch=1, lr_frac=0.3):
    prob = hd.powerlaw(d, alpha, beta, noise=hd.Gaussian(0.1))
    _fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for opt, color in ((hd.SGD(1.0, batch=batch), "C0"), (hd.SignSGD(1.0, batch=batch), "C3")):
        lr = lr_frac * hd.tuning.lr_scale(prob, opt)
        curve = hd.solve(prob, opt.with_lr(lr), STEPS)
        ax.loglog(curve.steps[1:], curve.excess_risk[1:], color=color, label=f"{opt.name}, lr = {lr:.3g}")
    ax.set_xlabel("step")
    ax.set_ylabel("excess risk")
    ax.set_title(f"alpha = {alpha:g}, beta = {beta:g}, B = {batch}", fontsize=9)
    ax.legend(fontsize=8)
    return ax


try:
    import ipywidgets as widgets
except ImportError:
    widgets = None
if widgets is not None and not FAST:
    widgets.interact(explore, alpha=(0.3, 2.0, 0.05), beta=(0.0, 1.5, 0.05), batch=[1, 2, 4, 8, 16],
                     lr_frac=widgets.FloatLogSlider(value=0.3, base=10, min=-3, max=0))
else:
    explore()
