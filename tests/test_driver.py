"""hd.solve: block stepping against exact stepping (SGD's exact recursion as the reference), schedules,
divergence and status, argument checks."""

import numpy as np
import pytest

import hdtheory as hd

from tests.theories.test_sgd import V2_LAM, numpy_recursion


CASES = [  # (alpha, beta, B, fraction of threshold, sigma)
    (1.0, 2.0, 1, 0.97, 0.0), (1.0, 0.7, 4, 0.97, 0.0), (0.75, 0.25, 1, 0.97, 0.1), (0.6, 0.4, 8, 0.5, 0.1)]

@pytest.mark.parametrize("alpha,beta,B,frac,sigma", CASES)
def test_block_solver_within_half_percent_of_exact(alpha, beta, B, frac, sigma):
    prob = hd.powerlaw(500, alpha, beta, noise=hd.Gaussian(sigma))
    opt = hd.SGD(frac * hd.stability_threshold(prob, hd.SGD(1.0, batch=B)), batch=B)
    grid = hd.step_grid(3 * 10**5)
    exact = hd.solve(prob, opt, grid=grid, method="exact")
    auto = hd.solve(prob, opt, grid=grid)
    assert exact.ok and auto.ok
    assert np.max(np.abs(auto.excess_risk / exact.excess_risk - 1)) < 5e-3

@pytest.mark.parametrize("sigma", [0.0, 1e-3])
@pytest.mark.parametrize("spectrum", ["isotropic", "linspace"])
def test_exponential_decay_regime(spectrum, sigma):
    """A finite spectrum without (or below) a noise floor decays exponentially; linearly interpolating E
    inside blocks was unboundedly wrong there (1e-43 for 1e-86). Checked at 97% of the threshold down to
    risk 1e-250."""
    if spectrum == "isotropic":
        prob = hd.isotropic(100, noise=hd.Gaussian(sigma))
    else:
        prob = hd.Problem(np.linspace(0.1, 1.0, 50), np.full(50, 0.2), noise=hd.Gaussian(sigma))
    opt = hd.SGD(0.97 * hd.stability_threshold(prob, hd.SGD(1.0)))
    grid = hd.step_grid(3 * 10**5)
    exact = hd.solve(prob, opt, grid=grid, method="exact")
    auto = hd.solve(prob, opt, grid=grid)
    keep = exact.risk > 1e-250
    assert keep.sum() > 50
    assert np.max(np.abs(auto.risk[keep] / exact.risk[keep] - 1)) < 5e-3

@pytest.mark.parametrize("schedule", [hd.WarmupCosine(500, 40000), hd.PowerDecay(0.5, 100.0),
                                      hd.Piecewise((3000, 20000), (1.0, 0.3, 0.1))])
def test_schedules_within_half_percent(schedule):
    prob = hd.powerlaw(500, 1.0, 0.7, noise=hd.Gaussian(0.1))
    opt = hd.SGD(0.9 * hd.stability_threshold(prob, hd.SGD(1.0)), schedule=schedule)
    grid = hd.step_grid(40000)
    # the solver applies the schedule at the same step index as an independent NumPy recursion
    small = hd.powerlaw(60, 1.0, 0.7, noise=hd.Gaussian(0.1))
    short = hd.step_grid(5000)
    np.testing.assert_allclose(hd.solve(small, opt, grid=short, method="exact").risk,
                               numpy_recursion(small, opt, short), rtol=1e-11)
    exact = hd.solve(prob, opt, grid=grid, method="exact")
    auto = hd.solve(prob, opt, grid=grid)
    assert np.max(np.abs(auto.excess_risk / exact.excess_risk - 1)) < 5e-3

def test_blocks_declined_near_a_schedule_end_are_stepped_exactly_in_one_call(monkeypatch):
    """Where a cosine decays to 0, near its end not even two updates fit the schedule's pace; the stretch a block
    would have covered is then one exact call (it was one exact update per Python round trip: 360 calls here), and
    the curve stays as close to exact stepping."""
    from hdtheory.theory import theory_for

    prob = hd.powerlaw(300, 1.0, 0.7, noise=hd.Gaussian(0.01))
    opt = hd.SGD(0.9 * hd.stability_threshold(prob, hd.SGD(1.0)), schedule=hd.WarmupCosine(100, 10**5, 0.0))
    grid = hd.step_grid(10**5)
    cls = type(theory_for(opt))
    calls = []
    step = cls.step

    def counted(self, *args):
        calls.append(1)
        return step(self, *args)

    monkeypatch.setattr(cls, "step", counted)
    auto = hd.solve(prob, opt, grid=grid)
    n_calls = len(calls)
    monkeypatch.setattr(cls, "step", step)
    exact = hd.solve(prob, opt, grid=grid, method="exact")
    assert n_calls < 2 * grid.size
    assert np.max(np.abs(auto.excess_risk / exact.excess_risk - 1)) < 5e-3


def test_divergence_is_flagged_not_nan():
    prob = hd.Problem(V2_LAM, np.ones(100) * 0.1, noise=hd.Gaussian(0.1))
    lr_star = hd.stability_threshold(prob, hd.SGD(1.0))
    fast = hd.solve(prob, hd.SGD(3.0 * lr_star), steps=10**6)
    assert fast.status == "diverged" and fast.diverged and np.all(np.isfinite(fast.risk))
    assert fast.steps[-1] < fast.diverged_step <= 10**6
    slow = hd.solve(prob, hd.SGD(1.01 * lr_star), steps=200)
    assert slow.status == "unstable" and slow.diverged and np.all(np.isfinite(slow.risk))
    assert "threshold" in slow.message
    ok = hd.solve(prob, hd.SGD(0.99 * lr_star), steps=200)
    assert ok.status == "ok"

def test_bad_solve_input():
    prob = hd.powerlaw(10, 1.0, 0.5)
    for steps in (0, -5, 2.5, None):
        with pytest.raises(ValueError, match="steps"):
            hd.solve(prob, hd.SGD(0.1), steps=steps)
    with pytest.raises(ValueError, match="method"):
        hd.solve(prob, hd.SGD(0.1), steps=10, method="rk4")
    with pytest.raises(ValueError, match="grid"):
        hd.solve(prob, hd.SGD(0.1), grid=[0, 5, 3])
    with pytest.raises(ValueError, match="problem"):
        hd.solve("not a problem", hd.SGD(0.1), steps=10)


def test_a_large_stationary_risk_is_not_a_divergence():
    """signSGD never diverges: at a huge lr its floor is far above R(0), and the driver's cap holds it."""
    prob = hd.powerlaw(100, 1.0, 0.5, noise=hd.Gaussian(0.1))
    curve = hd.solve(prob, hd.SignSGD(1e4), steps=2000)
    assert curve.status == "ok" and curve.steps[-1] == 2000
    assert curve.risk[-1] > 1e8 * prob.initial_risk
    assert curve.meta["divergence_cap"] > curve.risk[-1]


def test_a_breakpoint_inside_a_round_is_not_a_divergence():
    """A schedule breakpoint that is not a multiple of the round length H: exact chunks stay whole rounds."""
    prob = hd.powerlaw(100, 1.0, 0.5, noise=hd.Gaussian(0.1))
    opt = hd.LA(0.3, batch=1, inner_steps=8, outer_lr=0.5, schedule=hd.Piecewise((1001,), (1.0, 0.5)))
    grid = hd.step_grid(2 * 10**5, multiple_of=8)
    auto = hd.solve(prob, opt, grid=grid)
    exact = hd.solve(prob, opt, grid=grid, method="exact")
    assert auto.status == exact.status == "ok"
    assert np.max(np.abs(auto.excess_risk / exact.excess_risk - 1)) < 2e-3


@pytest.mark.parametrize("opt", [hd.SGD(0.3), hd.SGD(0.5, batch=8), hd.SignSGD(2e-4, batch=8), hd.SignSGD(1e-3),
                                 hd.ClippedSGD(0.3, clip=1.0), hd.SLA(0.3, 0.5, inner_steps=8)],
                         ids=["sgd", "sgd-b8", "signsgd-g3", "signsgd-s2", "clipped", "la-diloco"])
def test_a_curve_cut_at_a_record_point_is_the_longer_curve_up_to_it(opt):
    # hd.tuning.lr_search solves each lr only as far as a horizon needs it: it relies on this, bitwise,
    # blocks included (10^6 steps: every theory with a block form uses it)
    prob = hd.powerlaw(300, 1.0, 0.5, noise=hd.StudentT(0.1) if opt.name == "clipped_sgd" else hd.Gaussian(0.1))
    steps = 10**5 if opt.name == "signsgd" and opt.batch == 1 else 10**6
    grid = hd.step_grid(steps, per_decade=2, multiple_of=8)
    full = hd.solve(prob, opt, grid=grid)
    assert full.steps[-1] == steps and grid.size > 10
    for h in (grid.size // 3, 2 * grid.size // 3, grid.size - 2):
        cut = hd.solve(prob, opt, grid=grid[: h + 1])
        np.testing.assert_array_equal(cut.risk, full.risk[: h + 1])
