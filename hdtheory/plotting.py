"""Plots: predicted curve vs simulated mean and band, log-log. Takes and returns a matplotlib Axes;
never calls ``show()``.

Readable for every outcome: the theory line is drawn up to its last recorded point (with a marker there, so a
curve of one or two points is visible), a diverged curve gets a labelled vertical line at its divergence step, the
y-axis is clipped to a few decades around the theory (a diverging simulation is drawn up to the top edge and
marked there, never autoscaled to 1e300), and non-finite values are left out instead of reaching the tick code.
"""
from __future__ import annotations

import numpy as np

#: the y-axis reaches at most this factor above the largest theory value when the simulation goes further
HEADROOM_MAX = 1e4
#: and at least this factor above it
HEADROOM_MIN = 3.0
#: the y-axis spans at most this many decades
DECADES_MAX = 14


def _positive(y):
    y = np.asarray(y, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(y) & (y > 0), y, np.nan)


def _limits(theory_vals, sim_vals, sim_low):
    """(bottom, top) of the y-axis from the values that must show (theory) and those that may (simulation)."""
    th = theory_vals[np.isfinite(theory_vals)]
    sv = sim_vals[np.isfinite(sim_vals)]
    lowv = sim_low[np.isfinite(sim_low)]
    if th.size:
        top = th.max() * HEADROOM_MIN
        if sv.size:
            top = max(top, min(sv.max() * 1.5, th.max() * HEADROOM_MAX))
    elif sv.size:
        top = min(sv.max(), np.median(sv) * HEADROOM_MAX) * 1.5
    else:
        return 1e-3, 1.0
    lows = [a.min() for a in (th, sv, lowv) if a.size]
    bottom = min(lows) / 2.0 if lows else top * 1e-3
    bottom = max(bottom, top * 10.0 ** -DECADES_MAX, np.finfo(float).tiny)
    if not bottom < top:
        bottom = top / 10.0
    return float(bottom), float(top)


def plot(curve, sim=None, ax=None, *, excess: bool = True, label: str | None = None, color=None, z: float = 2.0):
    """Plot a ``RiskCurve`` (line) and optionally a ``SimulatedRisk`` (seed mean +- z SEM band, and the
    10-90% quantiles of single runs, dotted). Step 0 is skipped (log axis); where the band reaches below 0
    it is not drawn. A diverged curve ends at its last recorded point (marked) and a dashed line, labelled, marks
    the divergence step; points where the theory's validity test failed (``curve.valid``) are marked x; simulated
    points above the y-range are drawn as triangles at the top edge."""
    import matplotlib.pyplot as plt
    from matplotlib.transforms import blended_transform_factory

    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 4.4))
    # an Axes that already holds curves drawn here keeps them in view: the limits below are united with its own
    previous = (ax.get_xlim(), ax.get_ylim()) if (ax.lines or ax.collections) and ax.get_yscale() == "log" else None
    name = label or curve.meta.get("optimizer", {}).get("name", "theory")
    y = _positive(curve.excess_risk if excess else curve.risk)
    m = (curve.steps > 0) & np.isfinite(y)
    suffix = {"diverged": " (diverged)", "unstable": " (unstable past the horizon)"}.get(curve.status, "")
    (line,) = ax.plot(curve.steps[m], y[m], color=color, lw=2, label=f"{name} theory{suffix}", zorder=3)
    c = line.get_color()
    bad = m & ~curve.valid
    if np.any(bad):  # points where the theory's own validity test failed: drawn over, and said so in the legend
        ax.plot(curve.steps[bad], y[bad], ls="none", marker="x", ms=5, color=c, zorder=4,
                label=f"{name} theory outside its validity")
    if np.any(m) and (curve.status == "diverged" or np.sum(m) < 3):  # mark where a short or stopped curve ends
        last = np.nonzero(m)[0][-1]
        ax.plot([curve.steps[last]], [y[last]], "o" if curve.status != "diverged" else "X", color=c, ms=7,
                zorder=4)
    # the y-range is anchored on the theory, its initial value included (a curve of one or two points then shows
    # how far it rose before it stopped)
    theory_vals = np.concatenate([y[m], y[:1] if curve.steps.size and np.isfinite(y[0]) else np.zeros(0)])
    if curve.status == "diverged" and curve.diverged_step:
        ax.axvline(curve.diverged_step, color=c, ls="--", lw=1.2,
                   label=f"theory diverged at step {curve.diverged_step} (risk past its cap)")
        if not np.any(m):  # nothing after step 0 to draw: say so where the line would be
            ax.text(0.02, 0.5, f"{name} theory diverged before its first recorded step > 0", transform=ax.transAxes,
                    fontsize=8, color=c)
    sim_vals = np.zeros(0)
    sim_low = np.zeros(0)
    if sim is not None:
        runs = sim.excess_risk if excess else sim.risk
        ms = sim.steps > 0
        with np.errstate(invalid="ignore", over="ignore"):
            mean = runs.mean(axis=0)
            sem = sim.sem
            lo, hi = np.quantile(np.where(np.isfinite(runs), runs, np.inf), [0.1, 0.9], axis=0)
            band_lo, band_hi = mean - z * sem, mean + z * sem
        mean_p = _positive(mean)
        sim_vals = mean_p[ms]
        sim_low = np.concatenate([_positive(band_lo)[ms], _positive(lo)[ms]])
    bottom, top = _limits(theory_vals, sim_vals, sim_low)
    if sim is not None:
        def clip(v):
            v = _positive(v)
            return np.where(v > top, np.nan, np.maximum(v, bottom * 0.5))

        steps = sim.steps[ms]
        ax.plot(steps, clip(mean)[ms], "o", ms=3, color=c, alpha=0.8, label=f"{name} simulation, mean of {sim.seeds} seeds")
        with np.errstate(invalid="ignore"):
            b_lo = np.where(band_lo > 0, np.minimum(band_lo, top), np.nan)  # a band below 0 cannot be drawn on a log axis
            b_hi = np.where(np.isfinite(band_hi), np.minimum(band_hi, top), np.nan)
        ok = np.isfinite(b_lo[ms]) & np.isfinite(b_hi[ms])
        if np.any(ok):
            ax.fill_between(steps, np.where(ok, b_lo[ms], np.nan), np.where(ok, b_hi[ms], np.nan), color=c,
                            alpha=0.25, lw=0, label=f"mean $\\pm$ {z:g} SEM")
        ax.plot(steps, clip(lo)[ms], ":", color=c, lw=1, alpha=0.7)
        ax.plot(steps, clip(hi)[ms], ":", color=c, lw=1, alpha=0.7, label="10-90% of single runs")
        with np.errstate(invalid="ignore"):
            above = ~(mean[ms] <= top)  # inf and nan included
        if np.any(above):
            tr = blended_transform_factory(ax.transData, ax.transAxes)
            ax.plot(steps[above], np.full(int(np.sum(above)), 0.97), "^", ms=5, color=c, transform=tr, clip_on=False,
                    label=f"simulation mean above the axis ({int(np.sum(above))} points"
                          f"{', diverging' if not np.all(np.isfinite(mean[ms][above])) or np.any(mean[ms][above] > top) else ''})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    xs = [s for s in (curve.steps[curve.steps > 0], sim.steps[sim.steps > 0] if sim is not None else np.zeros(0))
          if s.size]
    xmax = max([float(s.max()) for s in xs] + [float(curve.diverged_step or 1)])
    xmin = min([float(s.min()) for s in xs] + [float(curve.diverged_step or xmax)])
    left, right = xmin / 1.3, xmax * 1.3
    if previous is not None:
        (x0, x1), (y0, y1) = previous
        left, right = min(left, x0), max(right, x1)
        bottom, top = min(bottom, y0), max(top, y1)
    ax.set_ylim(bottom, top)
    ax.set_xlim(left, right)
    ax.set_xlabel("step k")
    ax.set_ylabel(r"excess risk $R(\theta_k) - \sigma^2/2$" if excess else r"risk $R(\theta_k)$")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    return ax
