"""validation.compare: grids, skewed runs, divergence, one seed."""
import numpy as np
import pytest

import hdtheory as hd
import validation


def _concentrated_problem(noise, d=400):
    """Many modes carry the risk (slowly decaying spectrum), so seed means converge fast."""
    return hd.powerlaw(d, 0.5, 0.25, noise=noise)


def test_compare_refuses_different_grids_and_flags_mismatch():
    p = hd.powerlaw(30, 1.0, 0.5, noise=hd.Gaussian(0.1))
    opt = hd.SGD(0.2)
    sim = validation.simulate(p, opt, steps=100, seeds=2)
    with pytest.raises(ValueError, match="grid"):
        validation.compare(hd.solve(p, opt, steps=200), sim)
    # a wrong prediction is not ok
    wrong = hd.solve(p, hd.SGD(0.02), steps=100)
    assert not validation.compare(wrong, sim).ok

def test_compare_flags_heavily_skewed_runs():
    """Near the edge the runs are skewed (mean >> median); compare says so instead of only NOT OK."""
    p = hd.powerlaw(200, 0.75, 0.5, noise=hd.Gaussian(0.1))
    opt = hd.SGD(0.97 * hd.stability_threshold(p, hd.SGD(1.0, batch=4)), batch=4)
    grid = hd.step_grid(1000, per_decade=10)
    rep = validation.compare(hd.solve(p, opt, grid=grid), validation.simulate(p, opt, grid=grid, seeds=32, key=0))
    assert rep.skew > 1.5 and "rare runs" in rep.message, rep.summary()
    calm = _concentrated_problem(hd.Gaussian(0.3))
    opt = hd.SGD(0.3 * hd.stability_threshold(calm, hd.SGD(1.0, batch=4)), batch=4)
    rep = validation.compare(hd.solve(calm, opt, grid=grid), validation.simulate(calm, opt, grid=grid, seeds=16))
    assert rep.skew < 1.2 and "rare runs" not in rep.message

def test_simulation_divergence_is_inf_not_nan_and_matched_divergence_is_ok():
    p = hd.powerlaw(30, 1.0, 0.5, noise=hd.Gaussian(0.1))
    lr = 5 * hd.stability_threshold(p, hd.SGD(1.0))
    sim = validation.simulate(p, hd.SGD(lr), steps=3000, seeds=2)
    assert not np.any(np.isnan(sim.risk)) and np.all(sim.diverged)
    curve = hd.solve(p, hd.SGD(lr), steps=3000)
    assert curve.status == "diverged"
    rep = validation.compare(curve, sim)
    assert rep.ok and "2 of 2 seeds diverged" in rep.message
    # a stable prediction against diverging runs, and the reverse, are not ok
    stable_sim = validation.simulate(p, hd.SGD(0.5 * lr / 5), grid=curve.steps, seeds=2)
    assert not validation.compare(curve, stable_sim).ok
    assert not validation.compare(hd.solve(p, hd.SGD(0.1 * lr), steps=3000), sim).ok

def test_compare_with_one_seed_uses_only_the_tolerance():
    p = _concentrated_problem(hd.Gaussian(0.3), d=200)
    good = hd.SGD(0.3 * hd.stability_threshold(p, hd.SGD(1.0)))
    sim = validation.simulate(p, good, steps=300, seeds=1, key=0)
    assert not np.any(validation.compare(hd.solve(p, good, steps=300), sim).in_band)
    wrong = validation.compare(hd.solve(p, hd.SGD(0.1 * good.lr), steps=300), sim)
    assert not wrong.ok and "one seed" in wrong.message
