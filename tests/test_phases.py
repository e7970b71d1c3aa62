"""hd.phases: labels, the per-horizon lr tuning (against hd.tuning.optimal_lr) and the gain map's layout."""
import numpy as np
import pytest

import hdtheory as hd
from hdtheory import phases


@pytest.mark.parametrize("ratio,label", [([0.5, 0.7, 0.9], "a"), ([2, 3], "b"), ([0.5, 1.5, 3], "a->b"),
                                          ([2, 0.5], "b->a"), ([0.5, 2, 0.5], "mixed"), ([np.nan], "undetermined")])
def test_phase_label(ratio, label):
    assert phases.phase_label(ratio) == label


def test_horizons_grid():
    g = phases.horizons_grid(1000)
    assert g[0] == 0 and g[-1] == 1000 and np.all(np.diff(g) > 0)


def test_tuned_risks_match_optimal_lr():
    p = hd.powerlaw(100, 1.0, 0.5, noise=hd.Gaussian(0.1))
    grid = np.array([0, 100, 1000])
    lr, risk, edge, valid = phases.tuned_risks(p, hd.SGD(1.0), grid, points=20)
    for h, k in enumerate((100, 1000)):
        _, r_ref = hd.tuning.optimal_lr(p, hd.SGD(1.0), k, full=True)
        assert risk[h] == pytest.approx(r_ref, rel=2e-3)
        assert not edge[h] and valid[h]
    assert lr[1] <= lr[0] * 1.01  # a longer horizon never wants a larger constant lr here


def test_gain_map_layout_and_values():
    ds = hd.phases.gain_map([1.0], [0.25, 0.5], hd.SignSGD(1.0), hd.SGD(1.0), 300, d=50,
                            noise=hd.Gaussian(0.1), horizons=[10, 300], points=8, progress=False)
    assert ds.ratio.dims == ("alpha", "beta", "horizon") and ds.phase.dims == ("alpha", "beta")
    assert list(ds.horizon.values) == [10, 300]
    np.testing.assert_allclose(ds.ratio.values, ds.risk_a.values / ds.risk_b.values)
    # the SGD side equals a direct solve at its tuned lr
    p = hd.powerlaw(50, 1.0, 0.5, noise=hd.Gaussian(0.1))
    lr = float(ds.lr_b.sel(alpha=1.0, beta=0.5, horizon=300))
    assert hd.solve(p, hd.SGD(lr), grid=np.array([0, 10, 300])).risk[-1] == pytest.approx(
        float(ds.risk_b.sel(alpha=1.0, beta=0.5, horizon=300)), rel=1e-9)
