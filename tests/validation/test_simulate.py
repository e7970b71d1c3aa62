"""validation.simulate: reproducibility, chunk independence, the closed-form population risk, save/load, bad input."""
import numpy as np
import pytest

import hdtheory as hd
import validation

from tests import simulator_first_batch


def test_simulate_is_reproducible_and_chunk_independent():
    p = hd.powerlaw(50, 1.0, 0.5, noise=hd.StudentT(0.1, 3))
    opt = hd.SGD(0.2, batch=2)
    a = validation.simulate(p, opt, steps=300, seeds=3, key=7)
    b = validation.simulate(p, opt, steps=300, seeds=3, key=7, chunk=37)
    c = validation.simulate(p, opt, steps=300, seeds=3, key=8)
    np.testing.assert_array_equal(a.risk, b.risk)
    assert not np.allclose(a.risk, c.risk)
    assert a.risk[:, 0] == pytest.approx(p.initial_risk)
    np.testing.assert_array_equal(a.steps, hd.step_grid(300))

def test_population_risk_is_computed_from_theta():
    """One SGD step by hand, with the same samples the simulator draws, gives the recorded risk."""
    p = hd.Problem([1.0, 0.5, 0.25], [1.0, -1.0, 0.5], noise=hd.Gaussian(0.1))
    opt = hd.SGD(0.3, batch=2)
    sim = validation.simulate(p, opt, grid=[0, 1], seeds=1, key=3)
    x, y = simulator_first_batch(p, 2, key=3)
    theta = p.init - 0.3 * x.T @ (x @ p.init - y) / 2
    assert sim.risk[0, 1] == pytest.approx(p.risk(theta), rel=1e-12)

def test_simulated_risk_save_load(tmp_path):
    p = hd.powerlaw(20, 1.0, 0.5, noise=hd.Rademacher(0.1))
    sim = validation.simulate(p, hd.SGD(0.3, batch=2), steps=50, seeds=3, key=4)
    back = validation.SimulatedRisk.load(sim.save(tmp_path / "s.npz"))
    np.testing.assert_array_equal(back.risk, sim.risk)
    np.testing.assert_array_equal(back.steps, sim.steps)
    assert back.sigma2 == sim.sigma2 and back.meta["seeds"] == 3

def test_bad_simulate_input():
    p = hd.powerlaw(10, 1.0, 0.5)
    with pytest.raises(ValueError, match="seeds"):
        validation.simulate(p, hd.SGD(0.1), steps=10, seeds=0)
    with pytest.raises(ValueError, match="steps"):
        validation.simulate(p, hd.SGD(0.1), steps=0)

@pytest.mark.slow
def test_single_run_spread_shrinks_like_inverse_sqrt_d():
    """Concentration (sgd.md V10b): lambda_i = i/d, sigma = 0.1, |theta*| = 1, lr = gamma/d with gamma = 1;
    the seeds' spread of the risk around the deterministic curve shrinks ~ 1/sqrt(d) (16x d -> ~4x)."""
    spreads = []
    for d in (100, 1600):
        p = hd.Problem(np.arange(1, d + 1) / d, np.ones(d) / np.sqrt(d), noise=hd.Gaussian(0.1))
        opt = hd.SGD(1.0 / d)
        grid = hd.step_grid(2 * d, per_decade=10)
        sim = validation.simulate(p, opt, grid=grid, seeds=16, key=0)
        curve = hd.solve(p, opt, grid=grid)
        spreads.append(np.median(sim.risk.std(axis=0)[1:] / curve.risk[1:]))
    assert spreads[1] < spreads[0] / 2.5, spreads
