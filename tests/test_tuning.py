"""hd.tune: closed-form optima, agreement with the one-horizon searches, every tunable name, errors."""
import math

import numpy as np
import pytest

import hdtheory as hd
from hdtheory.tuning import lr_search, optimal_clip, optimal_lr, tune


def test_isotropic_noiseless_optimum_is_closed_form():
    # all lambda = 1, no noise: E(k+1) = (1 - 2 lr + lr^2 (1 + (d + 1) / B)) E(k), minimized at every horizon by
    # lr* = 1 / (1 + (d + 1) / B)
    d, B = 40, 2
    p = hd.isotropic(d, noise=hd.Gaussian(0.0))
    t = tune(p, hd.SGD(0.01, batch=B), 200)
    lr_star = 1.0 / (1.0 + (d + 1) / B)
    assert t.params["lr"] == pytest.approx(lr_star, rel=2e-3)
    q = 1.0 - lr_star  # the per-step factor at lr*: 1 - 2 lr* + lr*^2 / lr* = 1 - lr*
    assert t.risk == pytest.approx(p.initial_risk * q ** 200, rel=1e-5)
    assert t.edge == () and t.valid and t.status == "ok"


def test_batch_at_fixed_samples_closed_form():
    # same problem at N samples: risk(B) = R0 (1 - lr*(B))^(N / B), smallest at B = 1 (the search's lower edge)
    d, N = 40, 256
    p = hd.isotropic(d, noise=hd.Gaussian(0.0))
    t = tune(p, hd.SGD(0.01, batch=4), N // 4, over=("lr", "batch"), batches=[1, 2, 4, 8, 16])
    expected = {B: p.initial_risk * (1.0 - 1.0 / (1.0 + (d + 1) / B)) ** (N // B) for B in (1, 2, 4, 8, 16)}
    assert t.optimizer.batch == 1 and t.steps == N and "batch" in t.edge
    assert t.risk == pytest.approx(expected[1], rel=1e-5)


def test_tune_matches_the_bounded_scalar_search_and_reproduces_its_risk():
    p = hd.powerlaw(200, 1.0, 0.5, noise=hd.Gaussian(0.1))
    for opt in (hd.SGD(1.0, batch=4), hd.SignSGD(1.0, batch=4)):
        t = tune(p, opt, 1000)
        _, r_ref = optimal_lr(p, opt, 1000, full=True)
        assert t.risk == pytest.approx(r_ref, rel=2e-3) and t.risk >= r_ref * (1 - 1e-9)
        assert hd.solve(p, t.optimizer, grid=np.array([0, 1000])).risk[-1] == pytest.approx(t.risk, rel=1e-12)
        assert t.evaluations < 30


def test_many_horizons_share_one_scan():
    p = hd.powerlaw(100, 1.0, 0.5, noise=hd.Gaussian(0.1))
    many = tune(p, hd.SGD(1.0), [100, 1000])
    for t in many:
        one = tune(p, hd.SGD(1.0), t.steps)
        assert t.risk == pytest.approx(one.risk, rel=2e-3)
        assert hd.solve(p, t.optimizer, grid=np.array([0, t.steps])).risk[-1] == pytest.approx(t.risk, rel=1e-12)
    assert many[1].params["lr"] <= many[0].params["lr"] * 1.01
    res = lr_search(p, hd.SGD(1.0), np.array([0, 100, 1000]), points=16)
    assert np.allclose(res.risk, [t.risk for t in many], rtol=1e-12) and res.evaluations == many[0].evaluations


@pytest.mark.parametrize("near", [(0.01, 0.02), (1e-4, 1e-4), (0.9, 1.0), (0.05, 0.5)])
def test_a_warm_started_scan_finds_the_full_scans_optimum(near):
    p = hd.powerlaw(100, 1.0, 0.5, noise=hd.Gaussian(0.1))
    grid = np.array([0, 10, 100, 1000])
    full = lr_search(p, hd.SignSGD(1.0), grid, points=16)
    warm = lr_search(p, hd.SignSGD(1.0), grid, points=16, near=near)
    np.testing.assert_array_equal(warm.lr, full.lr)
    np.testing.assert_array_equal(warm.risk, full.risk)
    assert warm.evaluations <= full.evaluations


@pytest.mark.parametrize("factor", [1.0, 1.004, 0.7, 3.0, 1e-3, 1e3])
def test_a_guessed_search_reaches_the_closed_form(factor):
    """A local search around a guessed optimum (near it, off by a factor, far off, or past the range's top)
    finds the closed-form optimum of the isotropic problem at every horizon, for fewer solves than a scan."""
    d, B = 40, 2
    p = hd.isotropic(d, noise=hd.Gaussian(0.0))
    opt = hd.SGD(1.0, batch=B)
    lr_star = 1.0 / (1.0 + (d + 1) / B)
    grid = np.array([0, 20, 60, 200])
    cold = lr_search(p, opt, grid, points=16)
    res = lr_search(p, opt, grid, points=16, guess=lr_star / cold.scale * factor)
    np.testing.assert_allclose(res.lr, lr_star, rtol=2e-3)
    np.testing.assert_allclose(res.risk, p.initial_risk * (1.0 - lr_star) ** grid[1:], rtol=1e-5)
    assert np.all(res.risk <= cold.risk * (1 + 1e-6)) and not res.edge.any() and np.all(res.valid)
    if factor in (1.0, 1.004):
        assert res.evaluations <= 4 * (grid.size - 1) < cold.evaluations


def test_a_guess_at_the_top_of_the_range_is_an_edge_optimum(monkeypatch):
    """With the range's top below the optimum the scan's best point is its top lattice point (an edge); the
    guessed search reports the same point, guessed inside the range or past it."""
    from hdtheory import tuning

    p = hd.powerlaw(100, 1.0, 0.5, noise=hd.Gaussian(0.1))
    top = tuning.lr_scale(p, hd.SGD(1.0))
    monkeypatch.setattr(tuning, "lr_scale", lambda problem, opt: 0.1 * top)
    grid = np.array([0, 10, 100])
    cold = lr_search(p, hd.SGD(1.0), grid, points=16)
    assert np.all(cold.edge) and np.allclose(cold.lr, cold.scale, rtol=1e-12)
    for guess in (0.9, 5.0):
        res = lr_search(p, hd.SGD(1.0), grid, points=16, guess=guess)
        assert np.all(res.edge)
        np.testing.assert_array_equal(res.lr, cold.lr)
        np.testing.assert_array_equal(res.risk, cold.risk)


def test_an_optimum_just_below_the_lattice_top_is_refined():
    """SGD at 10 steps on a flat power law is best at 0.86 times its threshold, between the lattice's last two
    points: the search probes towards the top, finds the optimum inside the range and matches a fine scan."""
    p = hd.powerlaw(200, 0.35, 0.5)
    grid = np.array([0, 10])
    res = lr_search(p, hd.SGD(1.0), grid, points=16)
    lrs = res.scale * np.linspace(0.7, 1.0, 301)
    fine = [hd.solve(p, hd.SGD(lr), grid=grid).risk[-1] for lr in lrs]
    assert not res.edge[0] and 0.75 < res.lr[0] / res.scale < 0.95
    assert res.risk[0] <= min(fine) * (1 + 1e-5)  # every value is a solve: lower is better


def test_clip_tuning_helps_under_heavy_tails_and_never_hurts():
    p = hd.powerlaw(100, 0.5, 0.5, noise=hd.StudentT(1.0, 2.5))
    floor = 0.5 * p.sigma2
    sgd = tune(p, hd.SGD(1.0), 500)
    both = tune(p, hd.ClippedSGD(1.0), 500, over=("lr", "clip"))
    assert math.isfinite(both.params["clip"]) and both.valid and both.status == "ok"
    assert both.risk - floor < 0.8 * (sgd.risk - floor)  # clipping removes > 20% of SGD's excess risk here
    r = hd.solve(p, both.optimizer, grid=np.array([0, 500])).risk[-1]
    assert r == pytest.approx(both.risk, rel=1e-12)
    # at the tuned lr, the dedicated clip search finds the same level's risk
    _c, r_clip, _ = optimal_clip(p, both.params["lr"], 1, 500)
    assert r_clip == pytest.approx(both.risk, rel=1e-3)
    # Gaussian noise: clipping cannot beat tuned SGD by more than the search's tolerance
    g = hd.powerlaw(100, 0.5, 0.5, noise=hd.Gaussian(1.0))
    assert tune(g, hd.ClippedSGD(1.0), 500, over=("lr", "clip")).risk >= tune(g, hd.SGD(1.0), 500).risk * (1 - 1e-4)


def test_outer_lr_only_its_product_with_lr_matters_for_one_worker_one_step():
    # LA-DiLoCo with M = 1, H = 1 is SGD at lr x outer_lr: tuning both reaches SGD's tuned risk
    p = hd.powerlaw(100, 1.0, 0.5, noise=hd.Gaussian(0.1))
    sgd = tune(p, hd.SGD(1.0, batch=2), 400)
    dil = tune(p, hd.LADiLoCo(1.0, batch=2, outer_lr=0.5), 400, over=("lr", "outer_lr"))
    assert dil.risk == pytest.approx(sgd.risk, rel=2e-3)


@pytest.mark.parametrize("opt,over,match", [
    (hd.SGD(0.1), ("clip",), "no hyperparameter 'clip'"),
    (hd.SGD(0.1), ("momentum",), "cannot tune 'momentum'"),
    (hd.SGD(0.1), (), "at least one"),
    (hd.ClippedSGD(0.1, clip=hd.RelativeClip(1.0)), ("clip",), "fixed clip level"),
])
def test_bad_requests_name_what_is_wrong(opt, over, match):
    with pytest.raises(ValueError, match=match):
        tune(hd.isotropic(10), opt, 100, over=over)


def test_batch_tuning_takes_one_horizon():
    with pytest.raises(ValueError, match="one horizon"):
        tune(hd.isotropic(10), hd.SGD(0.1), [10, 100], over=("lr", "batch"))


def test_a_search_where_everything_diverges_says_so():
    p = hd.powerlaw(50, 1.0, 0.5, noise=hd.Gaussian(0.1))
    t = tune(p, hd.LADiLoCo(1e4), 20, over=("outer_lr",))
    assert math.isinf(t.risk) and t.status == "diverged" and not t.valid


@pytest.mark.parametrize("warm", [{"near": (0.5, 0.6)}, {"guess": 0.5}])
def test_a_warm_start_on_a_diverging_range_still_finds_the_full_scans_optimum(monkeypatch, warm):
    """Started where every lr diverges, the walk (``near``) or the local search falling back to it (``guess``)
    ends at the full scan's optimum."""
    from hdtheory import tuning

    p = hd.powerlaw(100, 1.0, 0.5, noise=hd.Gaussian(0.1))
    grid = np.array([0, 100, 1000])
    top = tuning.lr_scale(p, hd.SGD(1.0))
    # a lattice reaching far above the threshold, started where every lr diverges
    monkeypatch.setattr(tuning, "lr_scale", lambda problem, opt: 1e4 * top)
    full = lr_search(p, hd.SGD(1.0), grid, points=16, decades=8)
    high = lr_search(p, hd.SGD(1.0), grid, points=16, decades=8, **warm)
    assert np.all(np.isfinite(full.risk)) and np.all(high.valid)
    np.testing.assert_array_equal(high.risk, full.risk)
    np.testing.assert_array_equal(high.lr, full.lr)


def test_options_that_do_not_apply_are_refused():
    p = hd.isotropic(10)
    with pytest.raises(ValueError, match="add 'batch' to over"):
        tune(p, hd.SGD(0.1), 100, samples=10**6)
    with pytest.raises(ValueError, match="near and guess warm-start"):
        tune(p, hd.ClippedSGD(0.1), 100, over=("lr", "clip"), near=(0.1, 0.2))
