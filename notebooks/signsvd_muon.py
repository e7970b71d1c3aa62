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
# # SignSVD and Muon on matrix least squares, and when they beat SignSGD
#
# `hd.SignSVD(lr, batch)` steps $W\leftarrow W-\eta\,U_rV_r^\top$ along the polar factor of the minibatch gradient; `hd.Muon`
# replaces the polar factor by five Newton–Schulz iterations. Their theory is a per-mode map on $\rho_j=\|(W-W^*)u_j\|^2$,
#
# $$\rho_j\leftarrow\rho_j-2\eta\,D_j+\eta^2\nu_j,\qquad \nu_j=\mathbb E[(\Pi_X)_{jj}]\ \text{(exact)},$$
#
# with the drift $D_j$ from the closure the state calls for at each step: exact in $x$ at $B=1$ (C1), the sampled mean field
# (C2) for spiky residuals, the closed form $D_j=\mu_j\rho_j/\sqrt{\mathcal E}$ (C3) for spread ones, sign descent (C4) for
# noiseless huge batches. Derivations and measured accuracy: [docs/derivations/signsvd.md](../docs/derivations/signsvd.md).
#
# Set `HDTHEORY_FAST=1` to run a reduced version (smaller n, fewer steps, seeds and cells; the tests do this).

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

import hdtheory as hd
import validation

FAST = os.environ.get("HDTHEORY_FAST") == "1"
n = 60 if FAST else 120          # inputs; outputs m = 2n
SEEDS = 4 if FAST else 16
STEPS = 200 if FAST else 1000


def theory_vs_sim(ax, prob, opt, steps, label, color):
    curve = hd.solve(prob, opt, steps)
    sim = validation.simulate(prob, opt, grid=curve.steps, seeds=SEEDS, key=1)
    ok = curve.valid
    ax.loglog(curve.steps[1:], curve.excess_risk[1:], color=color, label=f"{label}: theory")
    if not ok.all():
        ax.loglog(curve.steps[~ok], curve.excess_risk[~ok], "x", color=color, ms=4, label=f"{label}: outside validity")
    ax.loglog(sim.steps[1:], sim.excess_risk.mean(0)[1:], "o", mfc="none", color=color, ms=4, label=f"{label}: simulation")
    ratio = curve.risk / sim.mean
    return float(np.max(np.abs(ratio[1:][ok[1:]] - 1)))


# %% [markdown]
# ## 1. The batch transition
#
# $\mu_j(B)=\mathbb E[((XX^\top)^{1/2})_{jj}]$ is SignSVD's curvature of mode $j$. Above $\kappa_0(B)$ (where $\mathrm{df}(\kappa_0)=B$) the modes are
# square-root preconditioned, $\mu_j\approx\sqrt{B\lambda_j}$; below it they are SGD-like, $\mu_j\approx h_B\lambda_j$. As B grows the square-root block
# extends down the spectrum; at $B=1$ nothing is square-rooted.

# %%
lam = np.arange(1, (400 if FAST else 4000) + 1.0) ** -2.0
fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
for B, c in zip((1, 4, 16, 64), plt.cm.viridis(np.linspace(0, 0.9, 4))):
    bt = hd.signsvd.batch_transition(lam, B)
    axes[0].loglog(lam, bt.mu / np.sqrt(B * lam), color=c, label=f"B = {B}")
    axes[1].loglog(lam, bt.nu, color=c, label=f"B = {B}")
    if B > 1:
        for ax in axes:
            ax.axvline(bt.kappa0, color=c, ls=":", lw=1)
axes[0].set(xlabel=r"$\lambda_j$", ylabel=r"$\mu_j / \sqrt{B\lambda_j}$", title="drift: 1 = square-root preconditioned")
axes[1].set(xlabel=r"$\lambda_j$", ylabel=r"$\nu_j$", title=r"noise weight ($\sum_j\nu_j = B$); dotted: $\kappa_0(B)$")
axes[0].invert_xaxis()
axes[1].invert_xaxis()
axes[0].legend(fontsize=8)
fig.tight_layout()
bt16 = hd.signsvd.batch_transition(lam, 16)
print(f"alpha = 1, B = 16: kappa_0 = {bt16.kappa0:.3g}, h_16 = {bt16.sgd_gain:.3g}, "
      f"{int(bt16.square_root.sum())} modes above the transition")

# %% [markdown]
# ## 2. Each closure against simulation
#
# m = 2n outputs, $W_0=0$, a Haar-orthonormal target. Crosses mark points where the theory's own validity test fails.

# %%
iso = hd.matrix_isotropic(n, 2 * n, seed=1)
pl = hd.matrix_powerlaw(n, 2 * n, 1.0, 0.5)
pln = hd.matrix_powerlaw(n, 2 * n, 1.0, 0.5, noise=hd.Gaussian(1 / np.sqrt(2 * n)))
cases = [("(C1) B = 1, power law", pl, hd.SignSVD(0.02), 3 * STEPS),
         ("(C3) B = 4, isotropic", iso, hd.SignSVD(0.2, batch=4), STEPS),
         ("(C2) -> (C3) B = 8, power law, m sigma^2 = 1", pln, hd.SignSVD(0.02, batch=8), STEPS),
         ("(C4) B = 10 n, isotropic, noiseless", hd.matrix_isotropic(20, 40, seed=2), hd.SignSVD(0.05, batch=200), 40)]
fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
for ax, (title, prob, opt, steps) in zip(axes, cases):
    err = theory_vs_sim(ax, prob, opt, steps, "SignSVD", "C0")
    ax.set(title=f"{title}\nworst |theory/sim - 1| = {err:.1%}", xlabel="step")
    ax.title.set_fontsize(9)
axes[0].set_ylabel("excess risk")
axes[0].legend(fontsize=7)
fig.tight_layout()

# %% [markdown]
# ## 3. Muon vs SignSVD
#
# Each singular value of $G/\|G\|_F$ goes through the quintic map $s\mapsto as+bs^3+cs^5$ five times. At $B=1$ there is one singular value
# ($s=1$), so Muon is exactly SignSVD at $0.6964\times$ the lr. At $B>1$ the gain depends on the spread of the singular values; the theory
# carries it inside the sampled mean field (C2), and flags the curve once the residual is mostly accumulated update noise (the mean field's
# singular values are then too concentrated: measured 10-15% off on such floors).

# %%
s = np.geomspace(1e-4, 1.2, 400)
fig, axes = plt.subplots(1, 3, figsize=(15, 3.6))
axes[0].semilogx(s, hd.signsvd.ns_gain(s), label="5 steps")
axes[0].semilogx(s, hd.signsvd.ns_gain(s, ns_steps=10), label="10 steps", alpha=0.7)
axes[0].axhline(1, color="k", lw=0.8)
axes[0].set(xlabel=r"$s_i / \|G\|_F$", ylabel="Newton-Schulz output", title=f"gain at s = 1: {hd.Muon(1.0).rank_one_gain:.4f}")
axes[0].legend(fontsize=8)
e1 = theory_vs_sim(axes[1], pln, hd.Muon(0.02), 3 * STEPS, "Muon B = 1", "C1")
theory_vs_sim(axes[1], pln, hd.SignSVD(0.02), 3 * STEPS, "SignSVD B = 1", "C0")
axes[1].set(title=f"B = 1 (Muon worst {e1:.1%})", xlabel="step", ylabel="excess risk")
e8 = theory_vs_sim(axes[2], pl, hd.Muon(0.02, batch=8), STEPS, "Muon B = 8", "C1")
theory_vs_sim(axes[2], pl, hd.SignSVD(0.02, batch=8), STEPS, "SignSVD B = 8", "C0")
axes[2].set(title=f"B = 8, noiseless (Muon worst where valid {e8:.1%})", xlabel="step")
for ax in axes[1:]:
    ax.legend(fontsize=6)
fig.tight_layout()

# %% [markdown]
# ## 4. Isotropic data: SignSVD and SignSGD are the same flow up to constants
#
# With $K=I$ both follow $\rho'=\rho-2\eta a\rho/\sqrt{\mathcal E}+\eta^2b$; at $\eta_{\rm sgn}=\eta_{\rm svd}\sqrt{B/(nm)}\,\gamma_{\rm sgn}/\gamma_{\rm svd}$ SignSGD's curve is
# SignSVD's slowed down by the time factor $f=(\gamma_{\rm svd}/\gamma_{\rm sgn})^2$ ($\pi^2/4$ at $B=1$). Below: SignSGD simulated at that lr and plotted
# at steps $k/f$, on SignSVD's theory curve.

# %%
fig, ax = plt.subplots(figsize=(5.5, 3.6))
lr_svd = 0.2
for B, c in ((1, "C0"), (8, "C2")):
    eq = hd.signsvd.isotropic_equivalence(n, 2 * n, B, lr_svd)
    curve = hd.solve(iso, hd.SignSVD(lr_svd, batch=B), STEPS)
    grid = np.unique(np.round(curve.steps * eq.time_factor).astype(int))
    sim = validation.simulate(iso, hd.SignSGD(eq.lr_signsgd, batch=B), grid=grid, seeds=SEEDS, key=2)
    ax.loglog(curve.steps[1:], curve.risk[1:], color=c, label=f"SignSVD theory, B = {B}")
    ax.loglog(sim.steps[1:] / eq.time_factor, sim.mean[1:], "o", mfc="none", ms=4, color=c,
              label=f"SignSGD simulation at k / {eq.time_factor:.3f}")
ax.set(xlabel="SignSVD step", ylabel="risk", title="isotropic equivalence")
ax.legend(fontsize=7)
fig.tight_layout()

# %% [markdown]
# ## 5. When does SignSVD (Muon) beat SignSGD? A power-law phase map
#
# Per $(\alpha,\beta)$ cell: the matrix power law ($\lambda_j=j^{-2\alpha}$, $\rho_j(0)=j^{-2\beta}$, axis-aligned K, m = n, noiseless), both
# optimizers at batch 8, each at its own theory-optimal constant lr for every horizon (`hd.phases.gain_map`, which tunes through
# `hd.solve`). The label says who wins at every horizon (`a` = SignSVD, `b` = SignSGD) or the direction of the crossing. A few cells
# are then checked by simulation at the tuned lrs.

# %%
alphas = [0.75, 1.0] if FAST else [0.5, 1.0, 1.5]
betas = [0.25, 0.5] if FAST else [0.0, 0.5, 1.0]
n_map, steps_map, B = (30, 100, 8) if FAST else (60, 1000, 8)
horizons = [10, steps_map] if FAST else [10, 100, 1000]
ds = hd.phases.gain_map(alphas, betas, hd.SignSVD(1.0, batch=B), hd.SignSGD(1.0, batch=B), steps_map, d=n_map,
                        horizons=horizons, points=8 if FAST else 10, progress=False)
fig, axes = plt.subplots(1, len(horizons), figsize=(4.2 * len(horizons), 3.6))
for ax, h in zip(np.atleast_1d(axes), horizons):
    r = ds.ratio.sel(horizon=h).values.T
    im = ax.imshow(np.log10(r), origin="lower", cmap="RdBu_r", vmin=-1.5, vmax=1.5, aspect="auto")
    ax.set_xticks(range(len(alphas)), [f"{a:g}" for a in alphas])
    ax.set_yticks(range(len(betas)), [f"{b:g}" for b in betas])
    for i in range(len(alphas)):
        for j in range(len(betas)):
            mark = "" if ds.valid.values[i, j] else "*"
            ax.text(i, j, f"{r[j, i]:.2g}{mark}\n{ds.phase.values[i, j]}", ha="center", va="center", fontsize=7)
    ax.set(xlabel=r"$\alpha$", ylabel=r"$\beta$", title=f"k = {h}")
fig.suptitle("risk of SignSVD / SignSGD, each at its tuned lr (* outside validity)", y=1.03)
fig.colorbar(im, ax=axes, label="log10 ratio (blue: SignSVD better)")
print(ds.phase.to_pandas() if hasattr(ds.phase, "to_pandas") else ds.phase.values)

# %% [markdown]
# A star marks a cell where a tuned curve is outside its theory's validity at some horizon: there the number is indicative only. Both
# optimizers are normalized, so on a noiseless problem the best constant lr for a horizon is the one whose transit just ends by then, and
# the risk reached is the floor that lr leaves, mostly update noise. SignSVD's mean field at $B>1$ is least accurate exactly there, which
# its validity test reports.
#
# Monte-Carlo spot checks: both optimizers simulated at the lrs the theory tuned for each horizon. Per horizon: the theory's and the
# simulation's risk ratio, and which of the two tuned theory curves were outside validity there; then the phase label both ratios give.

# %%
spots = [(alphas[0], betas[0]), (alphas[-1], betas[-1])] if FAST else [(0.5, 1.0), (1.0, 0.5), (1.5, 0.0)]
rows = []
for a, b in spots:
    cell = ds.sel(alpha=a, beta=b)
    prob = hd.phases.power_law_problem(a, b, n_map, None, True)
    sim_ratio = []
    for h in horizons:
        grid = np.array([0, h])
        risks, flags = [], []
        for key, opt in (("a", hd.SignSVD(1.0, batch=B)), ("b", hd.SignSGD(1.0, batch=B))):
            tuned = opt.with_lr(float(cell[f"lr_{key}"].sel(horizon=h)))
            risks.append(validation.simulate(prob, tuned, grid=grid, seeds=SEEDS, key=3).mean[-1])
            if not hd.solve(prob, tuned, grid=grid).valid[-1]:
                flags.append(tuned.name)
        sim_ratio.append(risks[0] / risks[1])
        rows.append(f"{a:>5g} {b:>4g} {h:>7d} {float(cell.ratio.sel(horizon=h)):>8.3g} {sim_ratio[-1]:>10.3g}   "
                    + (", ".join(flags) or "-"))
    print(f"alpha={a:g} beta={b:g}: phase by theory {cell.phase.values!s}, by simulation "
          f"{hd.phases.phase_label(np.array(sim_ratio))}")
print("alpha beta horizon   theory simulation   outside validity", *rows, sep="\n")
