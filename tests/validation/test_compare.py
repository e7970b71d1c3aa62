"""validation.compare: grids and metadata, the three verdicts, the robust interval, skewed and heavy-tailed runs,
divergence, one seed. (Error rates on a right and a wrong theory: test_verdict.py.)"""
import math

import numpy as np
import pytest

import hdtheory as hd
import validation
from validation.compare import MismatchError, bootstrap_t_interval, level_of
from validation.simulate import SimulatedRisk


def _concentrated_problem(noise, d=400):
    """Many modes carry the risk (slowly decaying spectrum), so seed means converge fast."""
    return hd.powerlaw(d, 0.5, 0.25, noise=noise)


def _relabel(curve, like):
    """``curve`` claiming to describe the optimizer and problem of ``like`` (a wrong theory of the same run)."""
    curve.meta = dict(like.meta)
    return curve


def test_compare_refuses_different_grids_problems_and_optimizers():
    p = hd.powerlaw(30, 1.0, 0.5, noise=hd.Gaussian(0.1))
    opt = hd.SGD(0.2)
    sim = validation.simulate(p, opt, steps=100, seeds=8)
    with pytest.raises(ValueError, match="grid"):
        validation.compare(hd.solve(p, opt, steps=200), sim)
    with pytest.raises(MismatchError, match=r"different optimizers \(lr: 0.02 vs 0.2"):
        validation.compare(hd.solve(p, hd.SGD(0.02), steps=100), sim)
    with pytest.raises(MismatchError, match="different optimizers.*batch: 2 vs 1"):
        validation.compare(hd.solve(p, hd.SGD(0.2, batch=2), steps=100), sim)
    with pytest.raises(MismatchError, match="different optimizers.*name: 'signsgd' vs 'sgd'"):
        validation.compare(hd.solve(p, hd.SignSGD(0.2), steps=100), sim)
    with pytest.raises(MismatchError, match="different problems.*d: 31 vs 30"):
        validation.compare(hd.solve(hd.powerlaw(31, 1.0, 0.5, noise=hd.Gaussian(0.1)), opt, steps=100), sim)
    with pytest.raises(MismatchError, match="different problems.*sigma"):
        validation.compare(hd.solve(hd.powerlaw(30, 1.0, 0.5, noise=hd.Gaussian(0.2)), opt, steps=100), sim)
    # a curve saved and loaded keeps its metadata and still matches; a hand-made one (no meta) is not checked
    assert validation.compare(hd.solve(p, opt, steps=100), sim).verdict in ("ok", "inconclusive")
    bare = hd.solve(p, opt, steps=100)
    bare.meta = {}
    validation.compare(bare, sim)
    # a wrong theory labelled as this optimizer is judged, not refused
    wrong = _relabel(hd.solve(p, hd.SGD(0.02), steps=100), sim)
    rep = validation.compare(wrong, sim)
    assert rep.verdict == "not_ok" and not rep.ok, rep.summary()


def test_bootstrap_t_interval_covers_skewed_means_where_the_sem_does_not():
    """Coverage of the 99.73% interval on 2000 replicates (columns) of positive, right-skewed samples. Measured:
    n = 16, Pareto(1.5) (infinite variance): the true mean lies above the bootstrap-t interval in 6.8% of
    replicates and above mean + 3 SEM in 26%; exponential: 0.6% vs 3.6%; normal samples: 0.2-0.25% per side
    (nominal 0.135%). Below the interval: <= 0.25% everywhere."""
    rng = np.random.default_rng(5)
    R, n = 2000, 16
    for draw, mu, boot_max, sem_min in ((lambda s: rng.pareto(1.5, s) + 1.0, 3.0, 0.12, 0.18),
                                        (lambda s: rng.exponential(1.0, s), 1.0, 0.015, 0.02)):
        x = draw((n, R))
        m, lo, hi, se = bootstrap_t_interval(x, z=3.0, resamples=4000)
        above_boot, above_sem = np.mean(mu > hi), np.mean(mu > m + 3 * se)
        assert above_boot < boot_max and above_sem > sem_min and above_boot < above_sem / 3, (above_boot, above_sem)
        assert np.mean(mu < lo) < 0.005
    x = rng.standard_normal((n, R))
    _, lo, hi, _ = bootstrap_t_interval(x, z=3.0, resamples=4000)
    assert np.mean((0 < lo) | (0 > hi)) < 0.01
    # too few seeds for a bounded interval: +-inf (n = 1) or infinite arms (n = 3 draws all-equal resamples)
    _, lo, hi, _ = bootstrap_t_interval(np.ones((1, 2)))
    assert np.all(np.isinf(lo)) and np.all(np.isinf(hi))
    _, lo, hi, _ = bootstrap_t_interval(rng.exponential(1.0, (3, 5)))
    assert np.all(np.isinf(hi))
    # identical seeds: the interval is the point
    m, lo, hi, _ = bootstrap_t_interval(np.full((8, 3), 2.5))
    np.testing.assert_array_equal(lo, m) and np.testing.assert_array_equal(hi, m)
    assert level_of(3.0) == pytest.approx(0.9973, abs=1e-4)


def test_skewed_runs_near_the_edge_are_inconclusive_not_a_disagreement():
    """Near the edge (0.97 lr*) the expected risk is carried by rare runs; with 32 seeds the seed mean is ~2x below
    the exact theory at most points, and a plain or bootstrap interval calls that a disagreement (measured: NOT OK
    for 4 of 4 keys before the skew rule). compare says INCONCLUSIVE, gives no projected seed count, and names the
    rare runs. A calm problem has skew ~1."""
    p = hd.powerlaw(200, 0.75, 0.5, noise=hd.Gaussian(0.1))
    opt = hd.SGD(0.97 * hd.stability_threshold(p, hd.SGD(1.0, batch=4)), batch=4)
    grid = hd.step_grid(1000, per_decade=10)
    rep = validation.compare(hd.solve(p, opt, grid=grid), validation.simulate(p, opt, grid=grid, seeds=32, key=0))
    assert rep.skew > 1.5 and "rare runs" in rep.message, rep.summary()
    assert rep.verdict == "inconclusive" and rep.seeds_needed is None and "cannot be projected" in rep.message
    assert np.all(np.isinf(rep.hi[1:]))
    calm = _concentrated_problem(hd.Gaussian(0.3), d=200)
    opt = hd.SGD(0.3 * hd.stability_threshold(calm, hd.SGD(1.0, batch=4)), batch=4)
    rep = validation.compare(hd.solve(calm, opt, grid=grid), validation.simulate(calm, opt, grid=grid, seeds=16))
    assert rep.skew < 1.2 and "rare runs" not in rep.message
    assert rep.verdict != "not_ok", rep.summary()


def test_student_t3_noise_the_right_theory_is_never_not_ok():
    """Student-t(3) label noise: a seed's risk has infinite variance. Two groups of 64 seeds: never NOT OK (measured:
    INCONCLUSIVE, 2800-2900 seeds projected); the interval's upper arm reaches 6.7 and 14.6 SEM where the heavy
    tail shows (median over points 3.9-4.2; a normal interval has 3)."""
    p = _concentrated_problem(hd.StudentT(0.3, 3.0), d=200)
    opt = hd.SGD(0.5 * hd.stability_threshold(p, hd.SGD(1.0, batch=4)), batch=4)
    grid = hd.step_grid(400, per_decade=8)
    curve = hd.solve(p, opt, grid=grid, method="exact")
    sim = validation.simulate(p, opt, grid=grid, seeds=128, key=4)
    wider = []
    for g in range(2):
        sub = SimulatedRisk(sim.steps, sim.risk[64 * g:64 * (g + 1)], sim.sigma2, sim.meta)
        rep = validation.compare(curve, sub)
        assert rep.verdict != "not_ok", rep.summary()
        wider.append(np.max(((rep.hi - rep.mean) / rep.sem)[1:]))
    assert max(wider) > 5.0, wider


def _fake(steps, risk, sigma2=0.0, status="ok", dstep=None):
    return hd.RiskCurve(steps=np.asarray(steps), risk=np.asarray(risk, float), sigma2=sigma2, status=status,
                        diverged_step=dstep)


def _fake_sim(steps, runs, sigma2=0.0):
    return SimulatedRisk(steps=np.asarray(steps), risk=np.asarray(runs, float), sigma2=sigma2)


def test_verdicts_on_synthetic_runs():
    """The rules on hand-made runs: the verdict, the seeds needed, and how many the projection asks for."""
    rng = np.random.default_rng(0)
    steps = np.arange(0, 21)
    truth = 1.0 + 0.0 * steps
    runs = truth * (1 + 0.1 * rng.standard_normal((600, steps.size)))
    runs[:, 0] = 1.0
    curve = _fake(steps, truth)
    ok = validation.compare(curve, _fake_sim(steps, runs))
    assert ok.verdict == "ok" and ok.ok and ok.seeds_needed is None, ok.summary()
    few = validation.compare(curve, _fake_sim(steps, runs[:16]))
    assert few.verdict == "inconclusive" and not few.ok and few.inconclusive
    # spread 10% per seed, tolerance 5%, arms ~3.1 SEM at 100+ seeds: one point needs (3.1 * 0.1 / 0.05)^2 ~ 40
    # seeds, 19 of 20 points ~100 (measured projections from 16 seeds: 91-150 over five keys)
    assert 60 <= few.seeds_needed <= 300, few.summary()
    assert f"about {few.seeds_needed} seeds" in few.message
    decided = validation.compare(curve, _fake_sim(steps, runs[16:16 + int(1.5 * few.seeds_needed)]))
    assert decided.verdict == "ok", decided.summary()
    off = validation.compare(_fake(steps, truth * 1.2), _fake_sim(steps, runs[:16]))
    assert off.verdict == "not_ok" and off.outside_fraction > 0.9
    one = validation.compare(curve, _fake_sim(steps, runs[:1]))
    assert one.verdict == "inconclusive" and "one seed" in one.message
    # at the tolerance's edge no seed count decides
    edge = validation.compare(_fake(steps, truth / 1.05), _fake_sim(steps, runs[:16]))
    assert edge.verdict == "inconclusive"


def test_divergence_on_synthetic_runs():
    steps = np.arange(0, 6)
    runs = np.ones((8, 6)) + 0.01 * np.arange(8)[:, None]
    runs[:, 0] = 1.0
    theory_div = _fake(steps[:3], [1.0, 1.0, 1.0], status="diverged", dstep=3)
    rep = validation.compare(theory_div, _fake_sim(steps, runs))
    assert rep.verdict == "not_ok" and "stays below the cap" in rep.message
    blown = runs.copy()
    blown[0, 3:] = np.inf  # one overflowing seed: the expected risk is infinite
    rep = validation.compare(theory_div, _fake_sim(steps, blown))
    assert rep.verdict == "ok" and rep.decided_by == "divergence" and "1 of 8 seeds diverged" in rep.message
    rep = validation.compare(_fake(steps, np.ones(6)), _fake_sim(steps, blown))
    assert rep.verdict == "not_ok" and "the runs diverged, the theory did not" in rep.message
    # a heavy seed whose interval reaches the cap: the theory's divergence cannot be ruled out
    heavy = runs.copy()
    heavy[0, -1] = 5e8
    rep = validation.compare(theory_div, _fake_sim(steps, heavy))
    assert rep.verdict == "inconclusive" and "reaches the cap" in rep.message
    # a cap recorded by the driver (an absolute risk, e.g. raised above a stationary risk) is the one used
    theory_div.meta = {"divergence_cap": 1.5}
    high = runs.copy()
    high[:, -1] = 2.0
    assert validation.compare(theory_div, _fake_sim(steps, high)).verdict == "ok"
    assert validation.compare(theory_div, _fake_sim(steps, high), cap=1e8).verdict == "not_ok"


def test_simulation_divergence_is_inf_not_nan_and_matched_divergence_is_ok():
    p = hd.powerlaw(30, 1.0, 0.5, noise=hd.Gaussian(0.1))
    lr = 5 * hd.stability_threshold(p, hd.SGD(1.0))
    sim = validation.simulate(p, hd.SGD(lr), steps=3000, seeds=2)
    assert not np.any(np.isnan(sim.risk)) and np.all(sim.diverged)
    curve = hd.solve(p, hd.SGD(lr), steps=3000)
    assert curve.status == "diverged"
    rep = validation.compare(curve, sim)
    assert rep.ok and rep.verdict == "ok" and "2 of 2 seeds diverged" in rep.message
    # a stable prediction against diverging runs, and the reverse, are not ok
    stable_sim = validation.simulate(p, hd.SGD(0.1 * lr), grid=hd.step_grid(3000), seeds=2)
    assert validation.compare(_relabel(curve, stable_sim), stable_sim).verdict == "not_ok"
    stable = _relabel(hd.solve(p, hd.SGD(0.1 * lr), steps=3000), sim)
    assert validation.compare(stable, sim).verdict == "not_ok"


def test_compare_bad_arguments_are_named():
    p = hd.powerlaw(20, 1.0, 0.5, noise=hd.Gaussian(0.1))
    opt = hd.SGD(0.2)
    sim = validation.simulate(p, opt, steps=20, seeds=2)
    curve = hd.solve(p, opt, steps=20)
    for kwargs, match in ((dict(quantity="loss"), "quantity"), (dict(rtol=-1), "rtol"), (dict(z=math.nan), "z"),
                          (dict(min_fraction=0.2), "min_fraction")):
        with pytest.raises(ValueError, match=match):
            validation.compare(curve, sim, **kwargs)
