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
# # signSGD vs SGD: each at its own optimal learning rate
#
# `hd.SignSGD(lr, batch)` runs $\theta\leftarrow\theta-\eta\,\mathrm{sign}(g)$. Its theory is a per-mode map on the spectrum
# $\mu$ of $D^{-1/4}KD^{-1/4}$ with $D=\operatorname{diag}K$ ($\sqrt\lambda$ for diagonal K: *diagonal preconditioning*), with a drift
# coefficient $a_B(s)$ (*effective lr* and *noise compression*) and noise weights $n_j$ from the arcsine law (*gradient-noise
# reshaping*):
#
# $$\tilde\rho_j\leftarrow(1-2\eta\, a_B(s)\,\mu_j)\,\tilde\rho_j+\eta^2n_j .$$
#
# signSGD never diverges; too large an lr stalls it (the no-progress lr). The derivation is in
# [docs/derivations/signsgd.md](../docs/derivations/signsgd.md).
#
# Set `HDTHEORY_FAST=1` to run a reduced version (smaller d, fewer steps and seeds; the tests do this). The figures and
# numbers quoted in the text are from the full run.

# %%
import math
import os

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

import hdtheory as hd
import validation

FAST = os.environ.get("HDTHEORY_FAST") == "1"
d = 100 if FAST else 400                  # dimension
steps = 300 if FAST else 2000             # horizon of the tuned curves
SEEDS = 4 if FAST else 16                 # seeds per simulated curve
STEPS_B8 = 300 if FAST else 1000          # horizon of the B = 8 curves
THRESHOLD_STEPS, THRESHOLD_SEEDS, THRESHOLD_RTOL = (500, 4, 0.1) if FAST else (2000, 8, 0.03)
B = 1

# theory-optimal constant lr at a horizon: optimal_lr(problem, opt, steps)
optimal_lr = hd.tuning.optimal_lr


def sgd_optimal_lr(prob, steps, batch):
    """SGD's lr minimising the predicted risk at `steps`: a scan below its stability threshold."""
    lr_t = hd.stability_threshold(prob, hd.SGD(1.0, batch=batch))
    lrs = lr_t * np.geomspace(1e-3, 0.99, 40)
    g = np.array([0, steps])
    risks = [hd.solve(prob, hd.SGD(l, batch=batch), grid=g).risk[-1] for l in lrs]
    return lrs[int(np.argmin(risks))]


def tidy_legend(ax, **kwargs):
    """hd.plot labels each curve's band and quantiles; keep the theory and simulation entries, plus one grey key for each."""
    handles, labels = ax.get_legend_handles_labels()
    keep = [(h, l) for h, l in zip(handles, labels) if "theory" in l or "simulation" in l]
    if any("SEM" in l for l in labels):
        keep.append((Patch(color="0.5", alpha=0.35, lw=0), next(l for l in labels if "SEM" in l)))
    if any("single runs" in l for l in labels):
        keep.append((Line2D([], [], color="0.4", ls=":"), "10-90% of single runs"))
    ax.legend(*zip(*keep), fontsize=8, **kwargs)


rng = np.random.default_rng(0)
lam_pl = (np.arange(1, d + 1) / d) ** 2.0
problems = {
    "isotropic (diagonal)": hd.Problem(np.ones(d), rng.normal(size=d) / math.sqrt(d), noise=hd.Gaussian(0.3)),
    "power law (diagonal)": hd.Problem(lam_pl, rng.normal(size=d) / math.sqrt(d), noise=hd.Gaussian(0.3)),
}
Q, _ = np.linalg.qr(rng.normal(size=(d, d)))
K = (Q * np.linspace(0.2, 2.0, d)) @ Q.T
K = 0.5 * (K + K.T)
problems["dense K"] = hd.from_covariance(K, target=rng.normal(size=d) / math.sqrt(d), noise=hd.Gaussian(0.3))

# %% [markdown]
# ## Each optimizer at its theory-optimal lr, predicted vs simulated (B = 1)
#
# For every problem, each optimizer gets the constant lr that minimises its predicted risk at the horizon; the curves are
# the theory (lines) and real runs (dots: seed mean, band: $\pm$ 2 SEM, dotted: 10-90% of single runs).

# %%
grid = hd.step_grid(steps, per_decade=12)
fig, axes = plt.subplots(1, 3, figsize=(16, 4.8), sharey=True)
for ax, (name, prob) in zip(axes, problems.items()):
    lr_sign = optimal_lr(prob, hd.SignSGD(1.0, batch=B), steps)
    lr_sgd = sgd_optimal_lr(prob, steps, B)
    for opt, color in [(hd.SGD(lr_sgd, batch=B), "C0"), (hd.SignSGD(lr_sign, batch=B), "C3")]:
        curve = hd.solve(prob, opt, grid=grid)
        sim = validation.simulate(prob, opt, grid=grid, seeds=SEEDS, key=0)
        rep = validation.compare(curve, sim, quantity="risk")
        print(f"{name:22s} {opt.name:8s} lr={opt.lr:.3g}: final risk theory {curve.risk[-1]:.4f}, "
              f"sim {sim.mean[-1]:.4f}; {rep.summary()}")
        hd.plot(curve, sim, ax=ax, label=f"{opt.name} (lr={opt.lr:.2g})", color=color)
    tidy_legend(ax, loc="lower left")
    ax.set_title(f"{name}, d = {d}")

# %% [markdown]
# ## Dense K with a batch: B = 8, both sign placements, predicted vs simulated
#
# For dense K and $B\ge2$ the noise weights use $K_\sigma=\frac2\pi\arcsin C$ ($C$ the correlation matrix of the gradient), the
# $d\to\infty$ limit of $E[SS^\top\mid e]$ for the sign vector $S$; the first correction, $\tau_B(s)\Gamma(e)$
# (`hd.signsgd.sign_second_moment`), is $O(B/d)$ and changed the measured curves by $\le0.02\%$. The mean of per-example
# signs (`per_example=True`) drifts like $B=1$ with noise $K_\sigma/B$.

# %%
prob = problems["dense K"]
e0 = prob.init - prob.target
K = prob.covariance()
for batch in (1, 8):
    corr = hd.signsgd.sign_second_moment(prob, e0, batch) - hd.signsgd.sign_second_moment(prob, e0, batch, correction=False)
    rel = np.sum(K * corr) / np.sum(K * hd.signsgd.sign_second_moment(prob, e0, 1))
    print(f"B = {batch}: first batch correction of tr(K E[SS^T]) at theta_0: {rel:+.3%}")
grid8 = hd.step_grid(STEPS_B8, per_decade=12)
fig, ax = plt.subplots(figsize=(7.5, 4.8))
for per_example, color in [(False, "C3"), (True, "C2")]:
    opt = hd.SignSGD(1.0 / d, batch=8, per_example=per_example)
    curve = hd.solve(prob, opt, grid=grid8)
    sim = validation.simulate(prob, opt, grid=grid8, seeds=SEEDS, key=1)
    name = "mean of signs" if per_example else "sign of mean"
    print(f"B = 8, {name:13s}: {validation.compare(curve, sim, quantity='risk').summary()}")
    hd.plot(curve, sim, ax=ax, label=f"{name}, B = 8", color=color)
tidy_legend(ax, loc="lower left")
ax.set_title(f"signSGD on dense K, d = {d}, B = 8, lr = 1/d");

# %% [markdown]
# ## Noise compression: the drift coefficient $a_B(s)$ for three label-noise laws
#
# $s$ is the root excess MSE in units of the noise level $\sigma$ (here $\sigma=1$). For $s\gg1$ the label noise does not
# matter and $a_B(s)\propto1/s$: signSGD moves like a normalized gradient. For $s\lesssim1$ the drift levels off at a
# constant set by the noise law near zero (for Gaussian noise $a_B(s)=c_B\sqrt{2/\pi}/\sqrt{1+s^2}$). Rademacher noise at
# B = 1 is the extreme case: the label's sign decides the gradient's sign unless $|\langle x,\theta-\theta^*\rangle|>\sigma$,
# and the drift collapses below $s\approx1$. A larger batch raises the plateau.

# %%
s = np.geomspace(0.05, 20, 200)
fig, ax = plt.subplots(figsize=(7.5, 4.8))
for noise, style in [(hd.Gaussian(1.0), "-"), (hd.Rademacher(1.0), "--"), (hd.StudentT(1.0, 5), ":")]:
    for batch, color in [(1, "C0"), (8, "C1")]:
        ax.loglog(s, hd.signsgd.drift_coefficient(noise, s, batch), style, color=color,
                  label=f"{type(noise).__name__}, B = {batch}")
ax.set(xlabel=r"$s = \sqrt{\mathrm{excess\ MSE}}\,/\,\sigma$", ylabel=r"drift coefficient $a_B(s)$", ylim=(1e-3, 5),
       title="signSGD drift coefficient vs noise level")
ax.grid(True, which="major", alpha=0.3)
ax.legend(fontsize=8);

# %% [markdown]
# ## No divergence: the stationary risk vs lr, and the no-progress lr (theory and simulation)
#
# On the isotropic problem: signSGD's stationary risk is finite at every lr (it grows like $\mathrm{lr}^2$ at large lr,
# where SGD would have diverged) and reaches the initial risk at the no-progress lr. The last line compares that lr with the one found by real runs
# (`validation.empirical_threshold(..., criterion="no_progress")`) on a smaller isotropic problem.

# %%
prob = problems["isotropic (diagonal)"]
opt = hd.SignSGD(1.0, batch=1)
lr_np = hd.signsgd.no_progress_lr(prob, opt)
lrs = lr_np * np.geomspace(1e-3, 10, 40)
floors = [hd.signsgd.stationary_risk(prob, opt.with_lr(l)) for l in lrs]
fig, ax = plt.subplots(figsize=(7.5, 4.8))
ax.loglog(lrs, floors, label="signSGD stationary risk (theory)")
ax.axhline(prob.initial_risk, color="k", lw=0.8, label="initial risk")
ax.axhline(prob.sigma2 / 2, color="k", ls=":", lw=0.8, label=r"noise floor $\sigma^2/2$")
ax.axvline(lr_np, color="C3", ls="--", label="no-progress lr (theory)")
ax.set(xlabel="lr", ylabel="stationary risk", title=f"signSGD, isotropic problem, d = {d}, B = 1")
ax.grid(True, which="major", alpha=0.3)
ax.legend(fontsize=8)
small = hd.Problem(np.ones(100), rng.normal(size=100) / 10, noise=hd.Gaussian(0.3))
lt = hd.signsgd.no_progress_lr(small, opt)
le = validation.empirical_threshold(small, opt, steps=THRESHOLD_STEPS, seeds=THRESHOLD_SEEDS, key=0,
                                    criterion="no_progress", lr0=lt, rtol=THRESHOLD_RTOL)
print(f"no-progress lr, d = 100: theory {lt:.4g}, empirical {le:.4g} (ratio {le / lt:.3f})")
