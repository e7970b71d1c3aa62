"""Plots: predicted curve vs simulated mean and band, log-log. Takes and returns a matplotlib Axes;
never calls ``show()``."""
from __future__ import annotations

import numpy as np


def plot(curve, sim=None, ax=None, *, excess: bool = True, label: str | None = None, color=None, z: float = 2.0):
    """Plot a ``RiskCurve`` (line) and optionally a ``SimulatedRisk`` (seed mean +- z SEM band, and the
    10-90% quantiles of single runs, dotted). Step 0 is skipped (log axis); where the band reaches below 0
    it is not drawn."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 4.4))
    name = label or curve.meta.get("optimizer", {}).get("name", "theory")
    y = curve.excess_risk if excess else curve.risk
    m = curve.steps > 0
    (line,) = ax.plot(curve.steps[m], y[m], color=color, lw=2, label=f"{name} theory", zorder=3)
    c = line.get_color()
    if curve.status == "diverged":
        ax.axvline(curve.diverged_step, color=c, ls=":", lw=1)
    if sim is not None:
        runs = sim.excess_risk if excess else sim.risk
        ms = sim.steps > 0
        with np.errstate(invalid="ignore"):
            mean = runs.mean(axis=0)
            sem = sim.sem
            lo, hi = np.quantile(runs, [0.1, 0.9], axis=0)
        ax.plot(sim.steps[ms], mean[ms], "o", ms=3, color=c, alpha=0.8,
                label=f"{name} simulation, mean of {sim.seeds} seeds")
        low = mean - z * sem
        low = np.where(low > 0, low, np.nan)  # a band reaching below 0 cannot be drawn on a log axis: leave a gap
        ax.fill_between(sim.steps[ms], low[ms], (mean + z * sem)[ms], color=c,
                        alpha=0.25, lw=0, label=f"mean $\\pm$ {z:g} SEM")
        ax.plot(sim.steps[ms], lo[ms], ":", color=c, lw=1, alpha=0.7)
        ax.plot(sim.steps[ms], hi[ms], ":", color=c, lw=1, alpha=0.7, label="10-90% of single runs")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("step k")
    ax.set_ylabel(r"excess risk $R(\theta_k) - \sigma^2/2$" if excess else r"risk $R(\theta_k)$")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    return ax
