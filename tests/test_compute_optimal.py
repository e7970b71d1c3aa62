"""Compute-optimal frontier of SGD on PLRF: fitted exponents against the derived phase table (Ia, II, III), the
frontier's own consistency (d* minimizes the IsoFLOP data), the phase labels, the phase map and its executors."""
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from hdtheory.compute_optimal import compute_optimal, phase_of, sgd_phase_map


def table(a, b):
    """The derived exponents (xi, eta) written out independently of phase_of."""
    if 2 * b < 1:
        return 1 / (2 * a + 1), (2 * a + 2 * b - 1) / (2 * a + 1)
    if b < a:
        return b / (a + b), (2 * a + 2 * b - 1) / (2 * a + 2 * b)
    return 0.5, 1 - 1 / (4 * a)


@pytest.mark.parametrize("a, b, label", [(0.7, 0.3, "Ia"), (0.75, 0.25, "Ia"), (1.0, 0.7, "II"), (1.25, 0.75, "II"),
                                         (1.0, 1.5, "III"), (0.8, 1.2, "III")])
def test_exponents_match_the_table(a, b, label):
    res = compute_optimal(a, b)
    xi, eta = table(a, b)
    assert res.status == "ok" and res.phase.label == label and res.phase.status == "derived"
    assert res.phase.xi == pytest.approx(xi) and res.phase.eta == pytest.approx(eta)
    assert abs(res.eta - eta) <= 0.03 and abs(res.xi - xi) <= 0.03, (res.eta, eta, res.xi, xi)
    fr = res.frontier
    assert int(fr.in_window.sum()) >= 10 and res.window[1] / res.window[0] >= 10


def test_phase_III_near_the_high_dimensional_line_needs_larger_d():
    """alpha = 0.7: the finite-size drift of xi toward 1/2 is slow (0.530 with d <= 32768); on a grid up to 131072 the
    fit is within 0.03 of the table."""
    res = compute_optimal(0.7, 1.0, d_max=131072, f_max=1e12)
    assert abs(res.xi - 0.5) <= 0.03 and abs(res.eta - (1 - 1 / 2.8)) <= 0.03


def test_frontier_minimizes_the_isoflop_data():
    res = compute_optimal(1.0, 0.7, d_min=32, d_max=4096, f_max=1e9)
    fr = res.frontier
    risk = fr.risk.values
    for n in np.flatnonzero(fr.interior.values):
        row = risk[n]
        i = int(np.nanargmin(row))
        # the refined minimum lies between the grid neighbours of the discrete one and is no worse than it
        assert fr.d.values[i - 1] <= fr.d_star.values[n] <= fr.d.values[i + 1]
        assert fr.risk_star.values[n] <= row[i] * (1 + 1e-12)
    # more compute never hurts at the optimum, and the optimal d grows
    w = fr.in_window.values
    assert np.all(np.diff(fr.risk_star.values[w]) < 0) and np.all(np.diff(fr.d_star.values[w]) > 0)
    # risk(f, d) is the risk after f / d steps: f = d k at B = 1, so rows at fixed d decrease with f
    col = risk[:, 3]
    col = col[np.isfinite(col)]
    assert np.all(np.diff(col) <= 0)


def test_phase_labels():
    assert phase_of(0.3, 0.1).label == "inadmissible" and phase_of(0.25, 0.25).label == "inadmissible"
    assert [phase_of(0.7, b).label for b in (0.3, 0.6, 0.9)] == ["Ia", "II", "III"]
    # exponents are continuous across 2 beta = 1 and beta = alpha
    for a, b in ((0.8, 0.5), (1.0, 1.0)):
        lo, hi = phase_of(a, b - 1e-9), phase_of(a, b + 1e-9)
        assert lo.label != hi.label
        assert lo.xi == pytest.approx(hi.xi, abs=1e-6) and lo.eta == pytest.approx(hi.eta, abs=1e-6)
    for (a, b), label in {(0.4, 0.3): "Ib", (0.3, 0.4): "Ic", (0.4, 1.0): "IVa", (0.2, 0.8): "IVb"}.items():
        ph = phase_of(a, b)
        assert ph.label == label and ph.status == "unverified"
    assert phase_of(0.4, 0.3).xi == 0.5 and phase_of(0.4, 1.0).xi is None


def test_phase_map_and_executors():
    kw = {"d_min": 32, "d_max": 2048, "f_max": 1e9}
    ds = sgd_phase_map([1.0], [0.3, 0.7], progress=False, **kw)
    assert ds.eta.shape == (1, 2) and list(ds.phase.values[0]) == ["Ia", "II"]
    one = compute_optimal(1.0, 0.7, **kw)
    assert ds.eta.values[0, 1] == pytest.approx(one.eta) and ds.xi.values[0, 1] == pytest.approx(one.xi)
    assert ds.xi_pred.values[0, 0] == pytest.approx(1 / 3)
    with ThreadPoolExecutor(2) as pool:
        ds2 = sgd_phase_map([1.0], [0.3, 0.7, -0.6], progress=False, executor=pool, **kw)
    np.testing.assert_allclose(ds2.eta.values[0, :2], ds.eta.values[0])
    assert ds2.phase.values[0, 2] == "inadmissible" and np.isnan(ds2.eta.values[0, 2])

    class SubmitOnly:
        def submit(self, fn, *args):
            class Done:
                def result(self_inner):
                    return fn(*args)
            return Done()

    ds3 = sgd_phase_map([1.0], [0.7], progress=False, executor=SubmitOnly(), **kw)
    assert ds3.eta.values[0, 0] == pytest.approx(one.eta)


def test_errors():
    with pytest.raises(ValueError, match="inadmissible"):
        compute_optimal(0.3, 0.1)
    with pytest.raises(ValueError, match="d_max must exceed"):
        compute_optimal(1.0, 0.5, d_min=100, d_max=50)
    with pytest.raises(ValueError, match="diverges"):
        compute_optimal(1.0, 0.7, lr=3.0, d_min=32, d_max=256, f_max=1e6)
    res = compute_optimal(1.0, 0.7, d_min=32, d_max=64, f_max=1e5)
    assert res.status == "no_fit" and np.isnan(res.eta) and "widen" in res.message


def test_fit_settings_are_checked_before_any_solve():
    with pytest.raises(ValueError, match="decades"):
        compute_optimal(1.0, 0.7, decades=-1)
    with pytest.raises(ValueError, match="f_lo < f_hi"):
        compute_optimal(1.0, 0.7, window=(1e8, 1e6))
    with pytest.raises(TypeError, match="go to compute_optimal"):
        sgd_phase_map([1.0], [0.7], progress=False, bacth=2)
