"""SignSVD and Muon theory vs JAX simulation on matrix least squares (small n, m; each case a few seconds)."""
import numpy as np
import pytest

import hdtheory as hd
import validation


def _worst(curve, sim, start=1):
    r = curve.risk[start:] / sim.mean[start:]
    se = sim.sem[start:] / sim.mean[start:]
    return float(np.max(np.abs(r - 1) - 3 * se)), float(np.max(np.abs(r - 1)))


CASES = {
    # name: (problem, optimizer, steps, tolerance on |ratio - 1| beyond 3 standard errors)
    "isotropic B=4 (C3)": (lambda: hd.matrix_isotropic(200, 400, seed=1), hd.SignSVD(0.2, batch=4), 300, 0.03),
    "power law B=1 (C1)": (lambda: hd.matrix_powerlaw(60, 120, 1.0, 0.5), hd.SignSVD(0.03), 400, 0.03),
    "power law B=8 noise (C2 -> C3)": (lambda: hd.matrix_powerlaw(60, 120, 1.0, 0.5, noise=hd.Gaussian(0.07)),
                                       hd.SignSVD(0.03, batch=8), 200, 0.03),
    "Muon B=1": (lambda: hd.matrix_powerlaw(60, 120, 1.0, 0.5, noise=hd.Gaussian(0.05)), hd.Muon(0.03), 300, 0.03),
    "Muon B=8 noise": (lambda: hd.matrix_powerlaw(60, 120, 1.0, 0.5, noise=hd.Gaussian(0.07)),
                       hd.Muon(0.03, batch=8), 200, 0.03),
}


@pytest.mark.parametrize("name", list(CASES))
def test_theory_tracks_simulation(name):
    build, opt, steps, tol = CASES[name]
    p = build()
    curve = hd.solve(p, opt, steps)
    assert curve.status == "ok" and curve.valid.all()
    sim = validation.simulate(p, opt, grid=curve.steps, seeds=16, key=7)
    excess, worst = _worst(curve, sim)
    assert excess < tol, f"{name}: worst |theory/sim - 1| = {worst:.3f}"


def test_muon_noise_floor_is_flagged_not_trusted():
    """Muon at B > 1 on a noiseless isotropic problem: the floor is noise-dominated, where the mean-field gains are
    ~10% off; the curve says so from the point where most of the risk is update noise."""
    p = hd.matrix_isotropic(60, 120, seed=1)
    curve = hd.solve(p, hd.Muon(0.2, batch=8), 300)
    assert curve.status == "outside_validity" and "update noise" in curve.message
    assert curve.valid[:5].all() and not curve.valid[-1]


def test_mean_field_noise_floor_flag_fires_where_it_fails():
    """SignSVD's mean field (C2) on a noiseless isotropic problem with r_eff < 10 B: accurate while the residual is
    mostly signal, 6-16% off once it is mostly update noise (the spread of (W - W*)^T (W - W*) that the diagonal
    state drops lowers the drift); the flag separates the two."""
    p = hd.matrix_isotropic(60, 120, seed=1)
    opt = hd.SignSVD(0.2, batch=8)
    curve = hd.solve(p, opt, 150)
    assert curve.status == "outside_validity" and "update noise" in curve.message
    sim = validation.simulate(p, opt, grid=curve.steps, seeds=16, key=7)
    r = np.abs(curve.risk / sim.mean - 1)
    se = sim.sem / sim.mean
    ok = curve.valid
    assert ok[:20].all()
    assert np.max(r[ok] - 3 * se[ok]) < 0.03, f"valid part: worst {np.max(r[ok]):.3f}"
    assert np.max(r[~ok]) > 0.05, f"flagged part: worst {np.max(r[~ok]):.3f}"


def test_large_batch_mean_field_is_flagged():
    """B = n/3 on an isotropic noiseless problem: (C2) is 25-35% off around the knee; the curve says so."""
    curve = hd.solve(hd.matrix_isotropic(60, 120, seed=1), hd.SignSVD(0.2, batch=20), 100)
    assert curve.status == "outside_validity" and "mean field" in curve.message
