"""Writes notebooks/*.ipynb from the cell sources below (run: python notebooks/make_notebooks.py)."""
import pathlib

import nbformat as nbf

HERE = pathlib.Path(__file__).parent

SGD_CELLS = [
    ("md", """# SGD: predicted vs simulated risk, and the stochastic edge of stability

`hd.solve` integrates the exact per-mode second-moment recursion of SGD (research/sgd.md §1.2); `validation.simulate`
runs real SGD on Gaussian samples in JAX. Risk is $R=\\tfrac12\\mathbb E(\\langle x,\\theta\\rangle-y)^2$; we plot the excess
$R-\\sigma^2/2$."""),
    ("code", """import numpy as np
import matplotlib.pyplot as plt
import hdtheory as hd
import validation

prob = hd.powerlaw(d=500, alpha=0.75, beta=0.5, noise=hd.Gaussian(0.1))
lr_star = hd.stability_threshold(prob, hd.SGD(lr=1.0, batch=4))
print(f"d={prob.d}, tr K={prob.trace:.3f}, lambda_max={prob.lambda_max:.3f}, lr* (B=4) = {lr_star:.4f}")"""),
    ("md", "## Risk curves at two learning rates (B = 4), theory vs 16 seeds"),
    ("code", """grid = hd.step_grid(2000, per_decade=15)
fig, ax = plt.subplots(figsize=(7, 4.5))
for frac, color in [(0.2, "C0"), (0.5, "C1")]:
    opt = hd.SGD(lr=frac * lr_star, batch=4)
    curve = hd.solve(prob, opt, grid=grid)
    sim = validation.simulate(prob, opt, grid=grid, seeds=16, key=0)
    rep = validation.compare(curve, sim)
    print(f"lr = {frac:.1f} lr*: {rep.summary()}")
    hd.plot(curve, sim, ax=ax, label=f"lr={frac:.1f} lr*", color=color)
ax.set_title("SGD, power-law problem, B = 4");"""),
    ("md", """## Near the edge the expected risk is carried by rare runs

`hd.solve` predicts the *expected* risk. Close to the stability threshold a run's noise is amplified by
$1/(1-\\|\\mathcal K\\|)$ and, at finite d, the expectation is dominated by a few large runs: the seed mean converges slowly
and a typical (median) run sits well below the prediction. Measured on a GPU for this problem at 0.9 lr*: theory/mean
was about 2 with 16 seeds, 1.3 with 256 and 1.0-1.3 with 4096, while theory/median stayed about 2.5-3 (about 6 at
0.97 lr*). `compare` flags this through `skew` (mean/median of the runs)."""),
    ("code", """opt = hd.SGD(lr=0.9 * lr_star, batch=4)
curve = hd.solve(prob, opt, grid=grid)
for seeds in (16, 128):
    sim = validation.simulate(prob, opt, grid=grid, seeds=seeds, key=1)
    rep = validation.compare(curve, sim)
    late = sim.steps >= 100
    mean_ratio = np.median(curve.excess_risk[late] / sim.excess_risk[:, late].mean(axis=0))
    median_ratio = np.median(curve.excess_risk[late] / np.median(sim.excess_risk[:, late], axis=0))
    print(f"{seeds:4d} seeds: theory/mean {mean_ratio:.2f}, theory/median {median_ratio:.2f}, skew {rep.skew:.2f}, verdict {'OK' if rep.ok else 'NOT OK'}")
ax = hd.plot(curve, sim)
ax.set_title("0.9 lr*: the mean of 128 seeds vs the expected-risk prediction");"""),
    ("md", "## Long horizons cost what short ones do: $10^8$ steps, theory only"),
    ("code", """import time
fig, ax = plt.subplots(figsize=(7, 4.5))
for frac in (0.2, 0.5, 0.9):
    t = time.perf_counter()
    curve = hd.solve(prob, hd.SGD(lr=frac * lr_star, batch=4), steps=10**8)
    print(f"lr = {frac} lr*: {curve.steps.size} points to 1e8 steps in {time.perf_counter() - t:.3f} s, status {curve.status}")
    hd.plot(curve, ax=ax, label=f"lr={frac} lr*")
ax.set_title("SGD to $10^8$ steps: power-law decay, then the noise floor $\\\\sigma^2\\\\|K\\\\|/(2(1-\\\\|K\\\\|))$");"""),
    ("md", """## Stochastic edge of stability vs batch size

The exact threshold solves $\\|\\mathcal K\\|(\\eta)=\\frac{\\eta}{B}\\sum_j\\frac{\\lambda_j}{2-(1+1/B)\\eta\\lambda_j}=1$. At small batch it follows the
**trace edge** $2B/\\operatorname{tr}K$ (stochastic EoS); at large batch the **$\\lambda_{\\max}$ edge** $2B/((B+1)\\lambda_{\\max})$; the
crossover is near $B_\\times=\\operatorname{tr}K/\\lambda_{\\max}$ (sgd.md §1.4, V2 spectrum $\\lambda_j=1/j$, d = 100)."""),
    ("code", """v2 = hd.Problem(eigenvalues=1.0 / np.arange(1, 101), target=np.full(100, 0.03), noise=hd.Gaussian(0.1))
batches = np.unique(np.round(np.logspace(0, np.log10(512), 30)).astype(int))
edges = [hd.edge_of_stability(v2, int(B)) for B in batches]
fig, ax = plt.subplots(figsize=(7, 4.5))
ax.plot(batches, [e.exact for e in edges], "k-", lw=2, label="exact threshold ($\\\\|K\\\\|=1$)")
ax.plot(batches, [e.trace_edge for e in edges], "C0--", label="trace edge $2B/\\\\mathrm{tr}K$")
ax.plot(batches, [e.lambda_edge for e in edges], "C3--", label="$\\\\lambda_{max}$ edge $2B/((B+1)\\\\lambda_{max})$")
ax.fill_between(batches, [e.lower_bound for e in edges], [e.upper_bound for e in edges], color="0.8", label="closed-form bracket")
ax.axvline(edges[0].crossover_batch, color="0.5", ls=":", label="$B_\\\\times = \\\\mathrm{tr}K/\\\\lambda_{max}$")
ax.set(xscale="log", yscale="log", xlabel="batch size B", ylabel="largest stable lr", ylim=(0.2, 3))
ax.legend(fontsize=8)
for B in (1, 4, 32, 256):
    e = hd.edge_of_stability(v2, B)
    print(f"B={B:4d}: exact {e.exact:.6f}  trace edge {e.trace_edge:.4f}  lambda edge {e.lambda_edge:.4f}  binding: {e.binding}")"""),
    ("md", """### Checked with real runs

`validation.empirical_threshold` bisects on lr with real JAX runs: a run diverges when the seeds' mean risk grows
more than 10x between half the horizon and the horizon. The theory's threshold is the *mean-square* one, and finitely
many runs see divergence later (the same rare-run effect as above). Measured with 256 seeds on a GPU: +1.3% at B = 1,
+4.9% at B = 4, +1.0% at B = 256, but +10% at B = 32, where one mode binds the edge and does not self-average at any d."""),
    ("code", """for B in (4, 32):
    lr_t = hd.stability_threshold(v2, hd.SGD(1.0, batch=B))
    res = validation.empirical_threshold(v2, hd.SGD(1.0, batch=B), steps=3000, seeds=8, key=0, rtol=0.02, full=True)
    print(f"B={B}: theory {lr_t:.4f}, empirical {res.lr:.4f} (bracket {res.lo:.4f}-{res.hi:.4f}), ratio {res.lr / lr_t:.3f}")"""),
]

CLIPPED_CELLS = [
    ("md", """# Clipped SGD: when does clipping help?

`hd.ClippedSGD(lr, clip, batch)` runs $\\theta\\leftarrow\\theta-\\eta\\,g\\min(1,c/\\|g\\|)$. Its theory (research/clipped_sgd.md §1) is SGD's
per-mode recursion with three reduction factors, functions of the excess MSE $q$ and the normalized clip level
$\\tau=c\\sqrt{B/\\operatorname{tr}K}$:

$$\\rho_j\\leftarrow\\rho_j\\,[1-2\\eta\\lambda_j\\mu+\\eta^2\\lambda_j^2A]+\\tfrac{\\eta^2}{B}\\lambda_j\\,\\nu .$$

Clipping at matched drift (lr $\\eta/\\mu$) injects less noise than SGD iff $\\mathrm{CCC}=\\mu^2\\mathcal E/\\nu>1$ (§2.1). Below: the factors, risk
curves predicted vs simulated for Gaussian and Student-t(3) label noise, the gain map over (lr, clip), and the
relative-clip edge of stability."""),
    ("code", """import math, time
import numpy as np
import matplotlib.pyplot as plt
import hdtheory as hd
import validation

d = 500
lam = np.linspace(0.5, 1.5, d)                 # the note's §4 spectrum: tr K = d, tr K / lambda_max = d / 1.5
theta_star = np.full(d, math.sqrt(4.0 / lam.sum()))
laws = {"Gaussian": hd.Gaussian(1.0), "Student-t(3)": hd.StudentT(1.0, 3)}
probs = {name: hd.Problem(lam, theta_star, noise=noise) for name, noise in laws.items()}
trK = lam.sum()"""),
    ("md", "## The reduction factors and the comparison criterion (B = 1, q = 0.1 sigma^2)"),
    ("code", """q = 0.1
w = np.linspace(-5, 4, 200)                      # log(tau^2 / E)
tau = np.sqrt(np.exp(w) * (q + 1.0))
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
for name, noise in laws.items():
    mu, nu, A = hd.clip_factors(noise, 1, q, tau)
    axes[0].plot(np.exp(w), mu, label=f"mu, {name}")
    axes[0].plot(np.exp(w), nu / (q + 1), "--", label=f"nu/E, {name}")
    axes[1].plot(np.exp(w), hd.ccc(noise, 1, q, tau), label=name)
    v, t = hd.max_ccc(noise, 1, q)
    print(f"{name}: max CCC = {v:.4f} at tau^2/E = {t * t / (q + 1):.3g}")
for ax in axes:
    ax.set_xscale("log"); ax.set_xlabel("tau^2 / E"); ax.legend()
axes[1].axhline(1, color="k", lw=0.8); axes[1].set_ylabel("CCC = mu^2 E / nu")
axes[1].set_title("clipping can beat SGD only where CCC > 1");"""),
    ("md", """## Risk curves: SGD vs the max-CCC schedule, predicted vs simulated

The max-CCC schedule (§2.2) picks $\\tau_k=\\arg\\max_\\tau\\mathrm{CCC}(q_k,\\tau)$ and compensates the lr ($\\eta/\\mu_k$); it is resolved by the theory into
explicit per-step sequences that the simulator runs. For Gaussian noise it never clips (it *is* SGD). A fixed clip
(tau = 1) at the same lr is shown as well. For Student-t(3), plain SGD's simulated mean is unreliable (infinite variance
of the risk, §5.3), so the SGD simulation is shown for Gaussian noise only."""),
    ("code", """steps, lr = 3000, 1.0 / trK
grid = hd.step_grid(steps, per_decade=12)
fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
for ax, (name, prob) in zip(axes, probs.items()):
    runs = {"SGD": hd.SGD(lr),
            "fixed clip tau=1": hd.ClippedSGD(lr, clip=math.sqrt(trK)),
            "max-CCC schedule": hd.max_ccc_schedule(prob, lr, 1, steps)}
    for (label, opt), color in zip(runs.items(), ["C0", "C1", "C2"]):
        curve = hd.solve(prob, opt, grid=grid)
        sim = None
        if not (label == "SGD" and name != "Gaussian"):
            sim = validation.simulate(prob, opt, grid=grid, seeds=16, key=0)
            print(f"{name:13s} {label:17s}: E(final) theory {2 * curve.risk[-1]:.4f}, sim {2 * sim.mean[-1]:.4f} +- {2 * sim.sem[-1]:.4f}")
        else:
            print(f"{name:13s} {label:17s}: E(final) theory {2 * curve.risk[-1]:.4f} (exact recursion)")
        hd.plot(curve, sim, ax=ax, label=label, color=color)
    ax.set_title(f"{name} label noise, B = 1, d = {d}")"""),
    ("md", """## Gain map over (lr, clip)

Predicted risk after 1000 steps of clipped SGD at (lr, tau) divided by the best SGD risk over lr (V-G of the note).
Blue = clipping wins. For Gaussian noise no cell beats the best SGD; for Student-t(3) a band of moderate clip levels does."""),
    ("code", """lrs = np.geomspace(0.1, 40, 22) / trK
taus = np.geomspace(0.25, 16, 20)
g2 = np.array([0, 1000])
fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
t0 = time.perf_counter()
for ax, (name, prob) in zip(axes, probs.items()):
    sgd = np.array([hd.solve(prob, hd.SGD(l), grid=g2).risk[-1] if hd.solve(prob, hd.SGD(l), grid=g2).risk.size == 2 else np.inf for l in lrs])
    best_sgd = np.nanmin(np.where(np.isfinite(sgd), sgd, np.nan))
    gain = np.empty((taus.size, lrs.size))
    for i, t in enumerate(taus):
        for j, l in enumerate(lrs):
            c = hd.solve(prob, hd.ClippedSGD(l, clip=t * math.sqrt(trK)), grid=g2)
            gain[i, j] = c.risk[-1] / best_sgd if c.risk.size == 2 else np.inf
    im = ax.pcolormesh(lrs * trK, taus, np.log10(gain), cmap="RdBu_r", vmin=-0.3, vmax=0.3, shading="nearest")
    ax.set_xscale("log"); ax.set_yscale("log"); ax.set_xlabel("lr x tr K"); ax.set_title(name)
    print(f"{name}: best clipped / best SGD = {np.min(gain):.4f}")
axes[0].set_ylabel("tau = c sqrt(B / tr K)")
fig.colorbar(im, ax=axes, label="log10(clipped / best SGD)")
print(f"{2 * lrs.size * (taus.size + 1)} theory curves in {time.perf_counter() - t0:.1f} s")"""),
    ("md", """## Fixed vs relative clip level: no divergence vs a sharp edge

With a fixed c nothing diverges (each step moves theta by at most lr c): the floor grows like lr^2 c^2 (§3.2). With a
relative level $c_k=\\kappa\\sqrt{\\operatorname{tr}K\\,\\mathcal E_k/B}$ there is a sharp edge of stability, at lr = (mu/nu-hat) x the SGD edge
for small lr (§3.3)."""),
    ("code", """prob = probs["Gaussian"]
es = hd.stability_threshold(prob, hd.SGD(1.0))
fr = np.geomspace(0.3, 100, 30)
floors = [hd.stationary_risk(prob, hd.ClippedSGD(f * es, clip=math.sqrt(trK))) for f in fr]
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
axes[0].loglog(fr, floors, label="fixed tau = 1: stationary risk")
axes[0].loglog(fr, [hd.stationary_risk(prob, hd.ClippedSGD(f * es)) for f in fr], label="SGD (inf above its edge)")
axes[0].set_xlabel("lr / SGD threshold"); axes[0].legend()
kap = np.geomspace(0.1, 10, 40)
axes[1].semilogx(kap, [hd.stability_threshold(prob, hd.ClippedSGD(1.0, clip=hd.RelativeClip(k))) / es for k in kap])
axes[1].set_xlabel("kappa"); axes[1].set_ylabel("relative-clip edge / SGD edge")
small = hd.powerlaw(200, 0.25, 0.3, noise=hd.Gaussian(0.5))
opt = hd.ClippedSGD(1.0, clip=hd.RelativeClip(0.5))
lt = hd.stability_threshold(small, opt)
le = validation.empirical_threshold(small, opt, steps=3000, seeds=8, key=0, rtol=0.02, lr0=lt)
print(f"relative clip kappa = 0.5, d = 200: theory edge {lt:.4f}, empirical {le:.4f} (ratio {le / lt:.3f})")"""),
]

SIGNSGD_CELLS = [
    ("md", """# signSGD vs SGD: each at its own optimal learning rate

`hd.SignSGD(lr, batch)` runs $\\theta\\leftarrow\\theta-\\eta\\,\\mathrm{sign}(g)$. Its theory (research/signsgd.md §1.4) is a per-mode map on the spectrum
$\\mu$ of $D^{-1/4}KD^{-1/4}$ ($\\sqrt\\lambda$ for diagonal K, *diagonal preconditioning*), with drift $a_B(s)$ (*effective lr* and *noise
compression*) and noise weights $n_j$ from the arcsine law (*gradient-noise reshaping*):
$\\tilde\\rho_j\\leftarrow(1-2\\eta a_B(s)\\mu_j)\\tilde\\rho_j+\\eta^2n_j$. signSGD never diverges; too large an lr stalls it (the no-progress lr)."""),
    ("code", """import math
import numpy as np
import matplotlib.pyplot as plt
import hdtheory as hd
import validation

d, steps, B = 400, 2000, 1
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

def sgd_optimal_lr(prob, steps, batch):
    lr_t = hd.stability_threshold(prob, hd.SGD(1.0, batch=batch))
    lrs = lr_t * np.geomspace(1e-3, 0.99, 40)
    g = np.array([0, steps])
    risks = [hd.solve(prob, hd.SGD(l, batch=batch), grid=g).risk[-1] for l in lrs]
    return lrs[int(np.argmin(risks))]"""),
    ("code", """grid = hd.step_grid(steps, per_decade=12)
fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
for ax, (name, prob) in zip(axes, problems.items()):
    lr_sign = hd.signsgd.optimal_lr(prob, hd.SignSGD(1.0, batch=B), steps)
    lr_sgd = sgd_optimal_lr(prob, steps, B)
    for opt, color in [(hd.SGD(lr_sgd, batch=B), "C0"), (hd.SignSGD(lr_sign, batch=B), "C3")]:
        curve = hd.solve(prob, opt, grid=grid)
        sim = validation.simulate(prob, opt, grid=grid, seeds=16, key=0)
        rep = validation.compare(curve, sim, quantity="risk")
        print(f"{name:22s} {opt.name:8s} lr={opt.lr:.3g}: final risk theory {curve.risk[-1]:.4f}, sim {sim.mean[-1]:.4f}; {rep.summary()}")
        hd.plot(curve, sim, ax=ax, label=f"{opt.name} (lr={opt.lr:.2g})", color=color)
    ax.set_title(name)"""),
    ("md", """## Dense K with a batch: B = 8, both sign placements, predicted vs simulated

For dense K and $B\\ge2$ the noise weights use $K_\\sigma=\\frac2\\pi\\arcsin C$, the $d\\to\\infty$ limit of $E[SS^\\top\\mid e]$; the first
correction, $\\tau_B(s)\\Gamma(e)$ (`hd.signsgd.sign_second_moment`), is $O(B/d)$ and changed the measured curves by $\\le0.02\\%$ (module
docstring of `hdtheory/optimizers/signsgd.py`). The mean of per-example signs (`per_example=True`) drifts like $B=1$ with noise $K_\\sigma/B$."""),
    ("code", """prob = problems["dense K"]
e0 = prob.init - prob.target
K = prob.covariance()
for B in (1, 8):
    corr = hd.signsgd.sign_second_moment(prob, e0, B) - hd.signsgd.sign_second_moment(prob, e0, B, correction=False)
    print(f"B = {B}: first batch correction of tr(K E[SS^T]) at theta_0: {np.sum(K * corr) / np.sum(K * hd.signsgd.sign_second_moment(prob, e0, 1)):+.3%}")
grid8 = hd.step_grid(1000, per_decade=12)
fig, ax = plt.subplots(figsize=(6.5, 4))
for per_example, color in [(False, "C3"), (True, "C2")]:
    opt = hd.SignSGD(1.0 / d, batch=8, per_example=per_example)
    curve = hd.solve(prob, opt, grid=grid8)
    sim = validation.simulate(prob, opt, grid=grid8, seeds=16, key=1)
    name = "mean of signs" if per_example else "sign of mean"
    print(f"B = 8, {name:13s}: {validation.compare(curve, sim, quantity='risk').summary()}")
    hd.plot(curve, sim, ax=ax, label=f"{name}, B = 8", color=color)
ax.set_title(f"dense K, d = {d}, lr = 1/d");"""),
    ("md", "## Noise compression: the drift $\\sigma a_B(s)$ for three label-noise laws"),
    ("code", """s = np.geomspace(0.05, 20, 200)
fig, ax = plt.subplots(figsize=(6.5, 4))
for noise, style in [(hd.Gaussian(1.0), "-"), (hd.Rademacher(1.0), "--"), (hd.StudentT(1.0, 5), ":")]:
    for B, color in [(1, "C0"), (8, "C1")]:
        ax.loglog(s, hd.signsgd.drift_coefficient(noise, s, B), style, color=color, label=f"{type(noise).__name__}, B={B}")
ax.set_xlabel("s = sqrt(excess MSE) / sigma"); ax.set_ylabel("a_B(s)"); ax.legend(fontsize=8);"""),
    ("md", "## No divergence: the stationary risk vs lr, and the no-progress lr (theory and simulation)"),
    ("code", """prob = problems["isotropic (diagonal)"]
opt = hd.SignSGD(1.0, batch=1)
lr_np = hd.signsgd.no_progress_lr(prob, opt)
lrs = lr_np * np.geomspace(1e-3, 0.95, 30)
floors = [hd.signsgd.stationary_risk(prob, opt.with_lr(l)) for l in lrs]
fig, ax = plt.subplots(figsize=(6.5, 4))
ax.loglog(lrs, floors, label="signSGD stationary risk")
ax.axhline(prob.initial_risk, color="k", lw=0.8, label="initial risk")
ax.axvline(lr_np, color="C3", ls="--", label="no-progress lr (theory)")
ax.set_xlabel("lr"); ax.legend()
small = hd.Problem(np.ones(100), rng.normal(size=100) / 10, noise=hd.Gaussian(0.3))
lt = hd.signsgd.no_progress_lr(small, opt)
le = validation.empirical_threshold(small, opt, steps=2000, seeds=8, key=0, criterion="no_progress", lr0=lt, rtol=0.03)
print(f"no-progress lr, d = 100: theory {lt:.4g}, empirical {le:.4g} (ratio {le / lt:.3f})")"""),
]


LA_CELLS = [
    ("md", r"""# LA-DiLoCo and its family: SGD vs LA vs SLA (Nesterov) vs LA-DiLoCo

`hd.LADiLoCo(lr, batch=B, workers=M, inner_steps=H, outer_lr=alpha, outer_momentum=beta, nesterov=...)` (research/la_diloco.md
§1.1): M workers restart from the slow weights $\theta$, each takes H SGD steps of size $\eta$ = `lr` on its own fresh batches
of B samples; the pseudo-gradient $\Delta=\theta-\frac1M\sum_m\theta_m$ drives an outer step of rate $\alpha$, with heavy-ball or
Nesterov outer momentum $\beta$. `hd.LA` is one worker (Lookahead), `hd.SLA` is LA with outer momentum. Curves are indexed by
**inner steps per worker** $k=tH$; one inner step uses $M\cdot B$ samples, so SGD at batch B and LA-DiLoCo with M = 4 workers at
batch B/4 see the same data per step.

Theory (note §2, exact in expectation for Gaussian data at every d): per mode $j$ and round, the worker chain (L2)
$r_j^{(h+1)}=a_jr_j^{(h)}+\frac{\eta^2}{B}\lambda_jE_w^{(h)}$, $E_w^{(h)}=\sigma^2+\sum_i\lambda_ir_i^{(h)}$ (each worker's noise is driven by its
own, changing risk), then the outer step (L3)
$\rho_j\leftarrow(1-\alpha u_j)^2\rho_j+\frac{\alpha^2}{M}\big(r_j^{(H)}-q_j^2\rho_j\big)$ with $q_j=(1-\eta\lambda_j)^H$, $u_j=1-q_j$; with outer
momentum the state is three moments per mode (L4)."""),
    ("code", r"""import math, time
import numpy as np
import matplotlib.pyplot as plt
import hdtheory as hd
import validation
from validation.thresholds import horizon_threshold

t_start = time.perf_counter()
d, B, H, steps = 100, 4, 8, 1024
prob = hd.powerlaw(d, 1.0, 0.5, noise=hd.Gaussian(0.01))   # lambda_j = j^-2, theta*_j = j^-1/2 (note §4.2's problem, at d = 100)
variants = {                                                # alpha, beta fixed near the note's tuned values (§4.2)
    "SGD B=4": hd.SGD(1.0, batch=B),
    "LA a=1.5": hd.LA(1.0, batch=B, inner_steps=H, outer_lr=1.5),
    "SLA-Nesterov a=0.5 b=0.9": hd.SLA(1.0, 0.9, batch=B, inner_steps=H, outer_lr=0.5),
    "LA-DiLoCo M=4 B=1 a=1.5": hd.LADiLoCo(1.0, batch=B // 4, workers=4, inner_steps=H, outer_lr=1.5),
}
# tuned by the theory: the lr minimising the predicted risk at `steps`, on a grid below each variant's threshold (L6)
fracs = np.geomspace(0.05, 0.95, 16)
tuned = {}
for name, opt in variants.items():
    thr = hd.stability_threshold(prob, opt)
    final = [hd.solve(prob, opt.with_lr(f * thr), grid=np.array([0, steps])).risk[-1] for f in fracs]
    i = int(np.argmin(final))
    tuned[name] = opt.with_lr(fracs[i] * thr)
    print(f"{name:26s} threshold {thr:.4f}  tuned lr {fracs[i] * thr:.4f} ({fracs[i]:.2f} x threshold)  "
          f"predicted excess risk at k={steps}: {final[i] - prob.sigma2 / 2:.3e}")"""),
    ("md", r"""## Predicted vs simulated, each at its tuned lr

`hd.solve` gives the expected risk; `validation.simulate` runs the algorithm on real Gaussian samples (128 seeds; lines: theory,
dots: seed mean, band: mean $\pm$ 2 SEM, dotted: 10-90% quantiles of single runs). Right: simulated mean / theory. On this power law
$\operatorname{tr}K/\lambda_{\max}=1.6$: a few modes carry the risk, single runs are skewed, and the mean of 128 seeds scatters by a few
percent around the expectation (more often below it: the rare large runs are under-sampled). SLA-Nesterov, which moves the slow
modes with $\eta/(1-\beta)$ and annihilates the saturated ones (below), ends ~3x lower than the others at the same samples."""),
    ("code", r"""grid = hd.step_grid(steps, per_decade=10, multiple_of=H)
fig, axes = plt.subplots(1, 2, figsize=(13, 4.6))
for (name, opt), color in zip(tuned.items(), ["C0", "C1", "C2", "C3"]):
    curve = hd.solve(prob, opt, grid=grid)
    sim = validation.simulate(prob, opt, grid=grid, seeds=128, key=0)
    print(f"{name:26s} {validation.compare(curve, sim).summary()}")
    hd.plot(curve, sim, ax=axes[0], label=name, color=color)
    m = grid > 0
    axes[1].plot(grid[m], sim.mean[m] / curve.risk[m], "o-", ms=3, color=color, label=name)
    axes[1].fill_between(grid[m], (sim.mean - 2 * sim.sem)[m] / curve.risk[m], (sim.mean + 2 * sim.sem)[m] / curve.risk[m],
                         color=color, alpha=0.15, lw=0)
handles, labels = axes[0].get_legend_handles_labels()
axes[0].legend([h for h, l in zip(handles, labels) if l.endswith("theory")], [l for l in labels if l.endswith("theory")], fontsize=8)
axes[0].set_title(f"power law d={d}: theory (lines) vs mean of 128 seeds")
axes[1].axhline(1, color="k", lw=0.8)
axes[1].set(xscale="log", xlabel="inner step k", ylabel="simulated mean risk / theory", ylim=(0.7, 1.3))
axes[1].legend(fontsize=8);"""),
    ("md", r"""## Signal vs noise: LA against SGD at the same effective lr (note §3.1)

Per mode and per round, the **signal** is the contraction of the mean, $1-\alpha u_j$ with the effective eigenvalue
$u_j=1-(1-\eta\lambda_j)^H$; the **noise** is the stationary second moment per unit driving twice-risk,
$\rho_j^\infty/E\approx\frac{\alpha\eta}{MB}\frac{1+p_j^H}{(2-\eta\lambda_j)(2-\alpha u_j)}$, $p_j=1-\eta\lambda_j$ (`hd.la_diloco.signal_noise`, exact for frozen worker
risks). The comparator is SGD at $\eta_{\rm eff}=\alpha\eta$ and batch MB. Slow modes ($H\eta\lambda\ll1$) are identical to it; saturated modes
contract by $|1-\alpha|$ per round whatever $\lambda$ and get noise $\alpha\eta/(MB(2-\eta\lambda)(2-\alpha))$. Below ($\eta_{\rm eff}=0.5$, H = 8, B = 4):
$\alpha=0.5$ puts up to ~25% less noise into the stiff directions but gives up their signal; $\alpha=1.5$ buys signal in the middle of the
spectrum (and lets $\eta_{\rm eff}$ exceed $2/\lambda_{\max}$: its mean edge is $|1-\alpha u|<1$) for more noise. Near $\eta\lambda=1$ the 1/B
corrections that the closed form drops matter at B = 4 (solid vs dashed)."""),
    ("code", r"""lam = np.geomspace(1e-4, 1.0, 200)
eta_eff = 0.5
fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
for alpha, color in [(0.5, "C1"), (1.5, "C2")]:
    sn = hd.la_diloco.signal_noise(lam, hd.LA(eta_eff / alpha, batch=B, inner_steps=H, outer_lr=alpha))
    axes[0].loglog(lam, 1 - sn.rate, color=color, label=f"LA alpha={alpha}, eta={eta_eff / alpha:.3g}")
    axes[1].semilogx(lam, sn.noise / sn.sgd_noise, color=color, label=f"LA alpha={alpha}: exact (frozen risk)")
    axes[1].semilogx(lam, sn.noise_approx / sn.sgd_noise, "--", color=color, label=f"alpha={alpha}: closed form (1/B dropped)")
    k = int(np.argmin(np.abs(lam - 0.3)))
    print(f"alpha={alpha}: at lambda=0.3 per-step contraction {sn.rate[k]:.4f} vs SGD {sn.sgd_rate[k]:.4f}, "
          f"noise / SGD's {sn.noise[k] / sn.sgd_noise[k]:.3f}; noise / SGD's over the spectrum "
          f"{np.min(sn.noise / sn.sgd_noise):.3f}-{np.max(sn.noise / sn.sgd_noise):.3f}")
axes[0].loglog(lam, 1 - sn.sgd_rate, "k:", label=f"SGD eta_eff={eta_eff}, batch {sn.sgd_batch}")
axes[0].set(xlabel="lambda", ylabel="1 - per-inner-step mean contraction (signal)")
axes[1].axhline(1, color="k", ls=":", label="SGD")
axes[1].set(xlabel="lambda", ylabel="stationary noise / SGD's")
for ax in axes:
    ax.legend(fontsize=8)"""),
    ("md", r"""## Nesterov outer momentum: a transformed effective spectrum (note §4.1)

The outer optimizer sees the effective eigenvalue $u(\lambda)=1-(1-\eta\lambda)^H$ (`hd.la_diloco.effective_spectrum`): $\approx H\eta\lambda$ at
the bottom, and the whole inner-stable range folds into a cluster near 1 (for even H, $u\in(0,1]$ for $0<\eta\lambda<2$). Per round the
mean follows heavy ball $e_{t+1}=(1+\beta-\alpha u)e_t-\beta e_{t-1}$ or Nesterov $e_{t+1}=(1+\beta)(1-\alpha u)e_t-\beta(1-\alpha u)e_{t-1}$; Nesterov's
root modulus $\sqrt{\beta(1-\alpha u)}$ vanishes at $\alpha u=1$, so it annihilates the cluster while slow modes move with $\eta/(1-\beta)$; heavy
ball's cluster decays at $\sqrt\beta$ only, and single-level Nesterov on the raw spectrum is unstable beyond
$\eta\lambda=2(1+\beta)/(1+2\beta)=1.357$. Right: per-inner-step rate $|z_{\max}|^{1/H}$ (`hd.la_diloco.mean_rate`), $\eta=1$, H = 8, $\alpha=1$, $\beta=0.9$."""),
    ("code", r"""x = np.linspace(1e-3, 1.999, 800)         # eta lambda with eta = 1
rates = {
    "GD = LA with alpha=1 (H=8)": hd.LA(1.0, inner_steps=8),
    "SLA heavy ball (H=8, b=0.9)": hd.SLA(1.0, 0.9, inner_steps=8, nesterov=False),
    "SLA Nesterov (H=8, b=0.9)": hd.SLA(1.0, 0.9, inner_steps=8),
    "single-level Nesterov (H=1, b=0.9)": hd.SLA(1.0, 0.9, inner_steps=1),
}
fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
for H_ in (2, 3, 8):
    axes[0].plot(x, hd.la_diloco.effective_spectrum(x, hd.LA(1.0, inner_steps=H_)), label=f"u(eta lambda), H={H_}")
axes[0].plot(x, x, "k:", label="raw eta lambda")
axes[0].set(xlabel="eta lambda", ylabel="effective eigenvalue u", ylim=(-0.2, 2.0))
axes[0].legend(fontsize=8)
for name, opt in rates.items():
    r = hd.la_diloco.mean_rate(x, opt)
    axes[1].plot(x, r, label=name)
    print(f"{name:36s} rate at eta lambda = 0.01 / 0.5 / 1.5: " + " / ".join(f"{v:.4f}" for v in np.interp([0.01, 0.5, 1.5], x, r)))
axes[1].axhline(1, color="k", lw=0.8)
axes[1].set(xlabel="eta lambda", ylabel="per-inner-step rate of the mean", ylim=(0, 1.4))
axes[1].legend(fontsize=8);"""),
    ("md", r"""## The extra noise of M workers, and what removes it (note §3.5)

At equal samples per inner step, M workers at batch B put more noise into the slow weights than one worker at batch MB: each
worker's own batch-B noise feeds its later inner steps before the average divides it by M (equality iff H = 1). Shown: excess
stationary risk of (M 4, B 1) over (M 1, B 4), `hd.la_diloco.worker_noise`, at fixed $\eta_{\rm eff}=\alpha\eta=0.25$ on the note's V5 problem
($\lambda_j=1/j$, d = 100, $\sigma^2=0.1$). Raising $\alpha$ (and lowering $\eta$) or shortening H removes most of it."""),
    ("code", r"""v2 = hd.Problem(1.0 / np.arange(1, 101), np.zeros(100), noise=hd.Gaussian(math.sqrt(0.1)))
alphas = np.geomspace(0.4, 2.0, 13)
fig, ax = plt.subplots(figsize=(6.5, 4.2))
for H_ in (2, 8, 32):
    ratio = []
    for a in alphas:
        w = hd.la_diloco.worker_noise(v2, hd.LADiLoCo(0.25 / a, batch=1, workers=4, inner_steps=H_, outer_lr=a))
        ratio.append(w.ratio if np.isfinite(w.excess_workers) else np.nan)
    ax.plot(alphas, ratio, "o-", ms=3, label=f"H = {H_}")
ax.axhline(1, color="k", ls=":", label="H = 1 (no extra noise)")
ax.set(xscale="log", yscale="log", xlabel="outer lr alpha (eta = 0.25 / alpha)",
       ylabel="excess risk: 4 workers x B 1 / 1 worker x B 4")
ax.legend(fontsize=8)
for a in (0.5, 1.0, 1.5, 2.0):
    w = hd.la_diloco.worker_noise(v2, hd.LADiLoCo(0.25 / a, batch=1, workers=4, inner_steps=8, outer_lr=a))
    print(f"H = 8, alpha = {a}: excess {w.excess_workers:.6f} (M 4, B 1) vs {w.excess_pooled:.6f} (M 1, B 4), ratio {w.ratio:.2f}")"""),
    ("md", r"""## A stable set that is not an interval (note §5.3)

(L6) is the exact test: stable iff every per-mode outer map $\mathcal A_j$ and the $H\times H$ kernel $\bar{\mathcal K}$ of the worker risks have spectral
radius below 1. The inner loop itself need not be stable, and with inner momentum the round's mean factor $q_H(\eta\lambda)$ oscillates in
$\eta$, so the stable set can have gaps. Two modes ($\lambda$ = 1, 0.5), H = 3, $\alpha$ = 1.5, inner momentum 0.5, B = $10^6$:
`hd.stability_threshold` returns the **first** crossing; `hd.la_diloco.stable_intervals` lists every stable interval."""),
    ("code", r"""two = hd.Problem([1.0, 0.5], [0.3, 0.3], noise=hd.Gaussian(0.1))
opt = hd.LA(1.0, batch=10**6, inner_steps=3, outer_lr=1.5, inner_momentum=0.5)
etas = np.linspace(0.01, 4.5, 900)
lam2, mult2 = np.array([1.0, 0.5]), np.ones(2)
radius = []
for e in etas:
    ro = hd.la_diloco.round_operators(lam2, mult2, e, opt)
    radius.append(max(ro.outer_radius, ro.radius) if np.all(np.isfinite(ro.kernel)) else ro.outer_radius)
intervals = hd.la_diloco.stable_intervals(two, opt)
fig, ax = plt.subplots(figsize=(7, 4))
ax.semilogy(etas, radius, "k-", lw=1, label="max(specrad A_j, specrad Kbar)")
for lo, hi in intervals:
    ax.axvspan(lo, hi, color="C2", alpha=0.25)
ax.axhline(1, color="C3", lw=0.8)
ax.axvline(hd.stability_threshold(two, opt), color="C0", ls="--", label="stability_threshold (first crossing)")
ax.set(xlabel="inner lr eta", ylim=(0.05, 50))
ax.legend(fontsize=8)
print("stable intervals:", ", ".join(f"({lo:.4f}, {hi:.4f})" for lo, hi in intervals))"""),
    ("md", r"""## Theory threshold vs real runs, compared like with like

`validation.empirical_threshold` bisects on lr with real runs: a run "diverges" when the seeds' mean risk grows more than 10x
between half the horizon and the horizon. Just above the asymptotic threshold (L6) the expected risk grows too slowly to do that
within a finite horizon, so the empirical threshold is compared with `horizon_threshold`: the same criterion applied to the theory's
own expected-risk curve. On a problem with many effective dimensions ($\lambda$ uniform in [0.5, 1.5], d = 100,
$\operatorname{tr}K/\lambda_{\max}=67$), 200 rounds, 8 seeds:"""),
    ("code", r"""lam_u = np.linspace(0.5, 1.5, 100)
uni = hd.Problem(lam_u, np.random.default_rng(0).normal(size=100) / math.sqrt(lam_u.sum()), noise=hd.Gaussian(0.3))
rounds = 200
fig, ax = plt.subplots(figsize=(7, 4))
for (name, opt), color in zip({"M 4, H 8, alpha 1, B 1": hd.LADiLoCo(1.0, workers=4, inner_steps=8),
                               "LA: M 1, H 8, alpha 0.5, B 1": hd.LA(1.0, inner_steps=8, outer_lr=0.5)}.items(), ["C0", "C1"]):
    lt = hd.stability_threshold(uni, opt)
    lh = horizon_threshold(uni, opt, steps=rounds * 8, lr0=lt)
    le = validation.empirical_threshold(uni, opt, steps=rounds * 8, seeds=8, key=0, rtol=0.01, lr0=lh)
    print(f"{name:30s} (L6) {lt:.5f}   horizon {lh:.5f} ({lh / lt:.4f} x)   empirical {le:.5f} "
          f"({le / lt:.4f} x (L6), {le / lh:.4f} x horizon)")
    f = np.linspace(0.97, 1.1, 27)
    growth = []
    for x_ in f:
        c = hd.solve(uni, opt.with_lr(x_ * lt), grid=np.array([0, rounds * 4, rounds * 8]))
        growth.append(c.risk[2] / c.risk[1] if c.risk.size == 3 else np.inf)
    ax.semilogy(f, growth, color=color, label=f"{name}: theory E(end)/E(mid)")
    ax.axvline(le / lt, color=color, ls="--", lw=1)
ax.axhline(10, color="k", lw=0.8, label="growth criterion 10")
ax.axvline(1, color="k", ls=":", label="(L6)")
ax.set(xlabel="lr / (L6) threshold", ylabel="expected risk at k / at k/2")
ax.legend(fontsize=8);"""),
    ("md", r"""The dashed lines (empirical thresholds) sit where the theory's curve crosses 10: at a finite horizon real runs agree with the theory's
expected risk to within the bisection's 1%, and the horizon effect itself is O(1/horizon) (it shrinks ~4x per 4x rounds).

**On $\lambda_j=1/j$** (d = 100, $\sigma=0.1$, M 4, H 8, $\alpha$ 1, B 1; 128 seeds, 1000 rounds) the empirical threshold was 1.054 x (L6), but
the horizon explains only +0.27% of it (below). There $\operatorname{tr}K/\lambda_{\max}=5.2$: a few modes carry the risk and near the edge the
seed mean is carried by single runs (as for SGD at B = 4 on the same problem, +4.9%: with H = 1 this optimizer *is* SGD at batch MB).
Measured at 1.01 / 1.03 / 1.05 x (L6): the theory's expected risk grows x6e3 / x2e13 / x2e25 from round 500 to 1000, while the mean of
128 seeds shrinks (x0.40 / x0.18 / x0.46), the median is flat (x1.03 / 0.98 / 1.07), and the largest seed holds 38-45% of the mean at
round 500. The theory is right about the expectation; 128 seeds do not measure it there."""),
    ("code", r"""v2t = hd.Problem(1.0 / np.arange(1, 101), np.full(100, 0.03), noise=hd.Gaussian(0.1))
opt = hd.LADiLoCo(1.0, workers=4, inner_steps=8)
lt = hd.stability_threshold(v2t, opt)
for r in (250, 1000, 4000):
    print(f"lambda_j = 1/j, {r:4d} rounds: horizon threshold / (L6) = {horizon_threshold(v2t, opt, steps=8 * r, lr0=lt) / lt:.4f}")
print(f"notebook ran in {time.perf_counter() - t_start:.0f} s")"""),
]

def build(cells, path):
    nb = nbf.v4.new_notebook()
    nb.cells = [nbf.v4.new_markdown_cell(src) if kind == "md" else nbf.v4.new_code_cell(src) for kind, src in cells]
    for i, cell in enumerate(nb.cells):  # deterministic ids: regenerating leaves unchanged notebooks unchanged
        cell["id"] = f"cell-{i:03d}"
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbf.write(nb, path)


if __name__ == "__main__":
    build(SGD_CELLS, HERE / "sgd_risk_curves_and_edge_of_stability.ipynb")
    build(CLIPPED_CELLS, HERE / "clipped_sgd_when_clipping_helps.ipynb")
    build(SIGNSGD_CELLS, HERE / "signsgd_vs_sgd.ipynb")
    build(LA_CELLS, HERE / "la_diloco_family.ipynb")
