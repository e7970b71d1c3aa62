"""hd.phases: labels, the gain map's layout, its equal-samples mode, other tuned hyperparameters, executors."""
from concurrent.futures import ThreadPoolExecutor

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


def test_warm_started_cells_match_cold_tuning():
    """Along a row each cell's search starts from its neighbours' optima (a local search around their
    extrapolation): every tuned risk is within the search's tolerance of tuning the cell from scratch, never
    worse by more than 2e-5 (the cold scan's own accuracy is ~1e-5)."""
    betas = [0.2, 0.4, 0.6, 0.8]
    ds = hd.phases.gain_map([1.0], betas, hd.SignSGD(1.0), hd.SGD(1.0), 1000, d=100, progress=False)
    for key, opt in (("a", hd.SignSGD(1.0)), ("b", hd.SGD(1.0))):
        for beta in betas:
            cold = [t.risk for t in hd.tune(hd.powerlaw(100, 1.0, beta), opt, list(ds.horizon.values))]
            got = ds[f"risk_{key}"].sel(alpha=1.0, beta=beta).values
            assert np.all(got <= np.array(cold) * (1 + 2e-5))
            np.testing.assert_allclose(got, cold, rtol=1e-4)


def test_gain_map_at_equal_samples_and_on_an_executor():
    # LA-DiLoCo with 2 workers and H = 2 vs SGD at the same batch: per="samples" gives LA-DiLoCo half the steps
    dil = hd.LADiLoCo(1.0, batch=2, workers=2, inner_steps=2)
    kw = {"d": 40, "noise": hd.Gaussian(0.1), "horizons": [64, 256], "points": 8, "progress": False, "per": "samples"}
    ds = hd.phases.gain_map([1.0], [0.5], dil, hd.SGD(1.0, batch=2), 0, **kw)
    p = hd.powerlaw(40, 1.0, 0.5, noise=hd.Gaussian(0.1))
    lr = float(ds.lr_a.sel(alpha=1.0, beta=0.5, horizon=256))
    r = hd.solve(p, dil.with_lr(lr), grid=np.array([0, 16, 64])).risk[-1]  # 256 samples = 64 inner steps x 2 x 2
    assert r == pytest.approx(float(ds.risk_a.sel(alpha=1.0, beta=0.5, horizon=256)), rel=1e-9)
    lr_b = float(ds.lr_b.sel(alpha=1.0, beta=0.5, horizon=256))
    r_b = hd.solve(p, hd.SGD(lr_b, batch=2), grid=np.array([0, 32, 128])).risk[-1]
    assert r_b == pytest.approx(float(ds.risk_b.sel(alpha=1.0, beta=0.5, horizon=256)), rel=1e-9)
    with ThreadPoolExecutor(2) as ex:
        again = hd.phases.gain_map([1.0], [0.5], dil, hd.SGD(1.0, batch=2), 0, executor=ex, **kw)
    assert again.equals(ds)


def test_gain_map_tunes_the_clip_level_where_asked():
    ds = hd.phases.gain_map([0.5], [0.5], hd.ClippedSGD(1.0), hd.SGD(1.0), 300, d=50, noise=hd.StudentT(1.0, 2.5),
                            horizons=[300], points=8, over_a=("lr", "clip"), progress=False)
    assert "clip_a" in ds and float(ds.ratio.squeeze()) < 0.99  # clipping helps under these heavy tails


def test_gain_map_rejects_bad_requests():
    with pytest.raises(ValueError, match="per must be"):
        hd.phases.gain_map([1.0], [0.5], hd.SGD(1.0), hd.SGD(1.0), 100, d=10, per="flops", progress=False)
    with pytest.raises(ValueError, match="whole number of la_diloco updates"):
        hd.phases.gain_map([1.0], [0.5], hd.LADiLoCo(1.0, workers=4, inner_steps=8), hd.SGD(1.0), 100, d=10,
                           horizons=[8, 16], per="samples", progress=False)


def test_a_failing_cell_is_recorded_and_its_neighbours_go_on(monkeypatch):
    real = phases._cell

    def flaky(alpha, beta, *args):
        if beta == 0.75:
            raise RuntimeError("no such cell")
        return real(alpha, beta, *args)

    monkeypatch.setattr(phases, "_cell", flaky)
    ds = hd.phases.gain_map([1.0, 2.0], [0.5, 0.75, 1.0], hd.SGD(1.0), hd.SGD(1.0, batch=2), 100, d=20,
                            horizons=[100], points=6, progress=False)
    assert list(ds.phase.values[:, 1]) == ["error", "error"] and np.isnan(ds.ratio.values[:, 1]).all()
    assert np.isfinite(ds.ratio.values[:, [0, 2]]).all() and "error" not in ds.phase.values[:, [0, 2]]
    assert "no such cell" in ds.attrs["errors"] and not ds.valid.values[:, 1].any()


def test_default_horizons_are_whole_updates_and_inadmissible_cells_are_flagged():
    dil = hd.LADiLoCo(1.0, workers=2, inner_steps=4)
    ds = hd.phases.gain_map([0.25, 1.0], [0.25], dil, hd.SGD(1.0), 100, d=20, points=6, progress=False)
    assert np.all(ds.horizon.values % 4 == 0) and ds.horizon.values[-1] == 100
    assert list(ds.valid.values[:, 0]) == [False, True]  # 2 alpha + 2 beta = 1 at alpha = 0.25: no d -> inf limit
