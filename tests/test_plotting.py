"""Plots stay readable for divergent and unstable runs: the theory line is drawn up to where it stops, divergence
is labelled, the y-axis is clipped around the theory, and non-finite or astronomically large simulated values
never reach matplotlib's tick code (``hdtheory compare sgd --lr 100`` used to end in an OverflowError)."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import hdtheory as hd  # noqa: E402
from validation.simulate import SimulatedRisk  # noqa: E402

P = hd.powerlaw(100, 0.75, 0.5, noise=hd.Gaussian(0.1))
LR_C = hd.stability_threshold(P, hd.SGD(1.0))
GRID = hd.step_grid(300, per_decade=20)


def _runs(curve_like, growth, seeds=6):
    """Hand-made runs on GRID: the initial risk times growth**k per seed, with inf once they overflow."""
    rng = np.random.default_rng(0)
    k = GRID.astype(float)
    with np.errstate(over="ignore"):
        risk = P.initial_risk * np.exp(np.outer(rng.uniform(0.8, 1.2, seeds), k * np.log(growth)))
    risk[~np.isfinite(risk)] = np.inf
    return SimulatedRisk(GRID, risk, P.sigma2, meta=dict(curve_like.meta))


def _render(ax, tmp_path, name):
    ax.figure.savefig(tmp_path / name, dpi=60)  # draws ticks and labels: where the OverflowError came from
    bottom, top = ax.get_ylim()
    plt.close(ax.figure)
    return bottom, top


def _theory_line(ax):
    return next(l for l in ax.get_lines() if l.get_label().endswith(("theory", "theory (diverged)",
                                                                      "theory (unstable past the horizon)")))


@pytest.mark.parametrize("lr", [100.0, 5 * LR_C])
def test_divergent_theory_and_runs(tmp_path, lr):
    curve = hd.solve(P, hd.SGD(lr), grid=GRID)
    assert curve.status == "diverged"
    sim = _runs(curve, growth=1e3)  # overflows to inf within the grid
    ax = hd.plot(curve, sim)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(f"theory diverged at step {curve.diverged_step}" in t for t in labels), labels
    assert any("above the axis" in t for t in labels), labels
    line = _theory_line(ax)
    assert np.all(np.isfinite(line.get_ydata()))
    bottom, top = _render(ax, tmp_path, "d.png")
    assert 0 < bottom < top < 1e300 and np.log10(top / bottom) <= 15
    assert top >= np.nanmax(curve.excess_risk)  # the theory is inside the axes, up to where it stops
    ax = hd.plot(curve)  # solve's plot: no simulation
    assert len(_theory_line(ax).get_xdata()) == int(np.sum(curve.steps > 0))
    assert any(l.get_marker() == "X" for l in ax.get_lines())  # the last recorded point is marked
    _render(ax, tmp_path, "s.png")


def test_a_curve_that_diverges_before_step_1_is_said_so(tmp_path):
    curve = hd.solve(P, hd.SGD(1e6), grid=GRID)
    assert curve.steps.size == 1
    ax = hd.plot(curve, _runs(curve, growth=1e6))
    assert any("diverged before its first recorded step" in t.get_text() for t in ax.texts)
    _render(ax, tmp_path, "x.png")


def test_unstable_and_stable_curves_keep_their_simulation_in_view(tmp_path):
    unstable = hd.solve(P, hd.SGD(1.05 * LR_C), grid=GRID)
    assert unstable.status == "unstable"
    ax = hd.plot(unstable, _runs(unstable, growth=1.001))
    assert "unstable past the horizon" in _theory_line(ax).get_label()
    _render(ax, tmp_path, "u.png")
    stable = hd.solve(P, hd.SGD(0.5 * LR_C), grid=GRID)
    sim = _runs(stable, growth=0.99)
    ax = hd.plot(stable, sim)
    bottom, top = _render(ax, tmp_path, "ok.png")
    ex = sim.excess_risk.mean(axis=0)[1:]
    assert bottom <= min(np.min(stable.excess_risk[1:]), ex.min()) and top >= ex.max()


def test_curves_drawn_on_one_axes_all_stay_in_view(tmp_path):
    """Notebooks draw several curves on one Axes: each call widens the limits, none clips an earlier curve."""
    fig, ax = plt.subplots()
    curves = [hd.solve(P, hd.SGD(f * LR_C), steps=10**4) for f in (0.9, 0.05)]
    for c in curves:
        hd.plot(c, ax=ax)
    bottom, top = _render(ax, tmp_path, "many.png")
    for c in curves:
        y = c.excess_risk[c.steps > 0]
        assert bottom <= y.min() and y.max() <= top
    assert ax.get_xlim()[1] >= 10**4


def test_points_outside_validity_are_marked():
    import matplotlib

    matplotlib.use("Agg")
    curve = hd.solve(hd.matrix_isotropic(30, 60, seed=1), hd.Muon(0.2, batch=8), 300)
    assert curve.status == "outside_validity"
    ax = hd.plot(curve)
    labels = ax.get_legend_handles_labels()[1]
    assert any("outside its validity" in t for t in labels)
