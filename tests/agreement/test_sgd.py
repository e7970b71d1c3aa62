"""SGD: theory vs simulation (noise laws, dense K, schedules). At 32 seeds the verdict of ``compare`` is
INCONCLUSIVE on the early, noisy points of these runs (it asks for 1e3-5e3 seeds to decide them within 5%): the
tests then require that the theory is not refuted and that the seed mean's error is small; where a decision is
affordable (dense K, 128 seeds) they require OK."""
import numpy as np
import pytest

import hdtheory as hd
import validation


def _concentrated_problem(noise, d=400):
    """Many modes carry the risk (slowly decaying spectrum), so seed means converge fast."""
    return hd.powerlaw(d, 0.5, 0.25, noise=noise)


@pytest.mark.parametrize("noise", [hd.Gaussian(0.3), hd.Rademacher(0.3), hd.StudentT(0.3, 5.0)])
def test_theory_matches_simulation_diagonal(noise):
    p = _concentrated_problem(noise)
    opt = hd.SGD(0.5 * hd.stability_threshold(p, hd.SGD(1.0, batch=4)), batch=4)
    grid = hd.step_grid(1000, per_decade=10)
    rep = validation.compare(hd.solve(p, opt, grid=grid), validation.simulate(p, opt, grid=grid, seeds=32, key=1))
    assert rep.verdict != "not_ok", rep.summary()
    assert rep.median_rel_error < 0.05, rep.summary()


def test_theory_matches_simulation_student_t3():
    """t(3) noise has an infinite fourth moment, so a seed's risk has infinite variance and the
    SEM band of ``compare`` is not a valid confidence band (measured: 90% in band at 256 seeds while
    the error shrinks, 19% -> 6% max, 3.4% -> 1.4% median, from 32 to 256 seeds). The expected risk
    still depends on the law only through sigma^2; check the seed mean's error."""
    p = _concentrated_problem(hd.StudentT(0.3, 3.0))
    opt = hd.SGD(0.5 * hd.stability_threshold(p, hd.SGD(1.0, batch=4)), batch=4)
    grid = hd.step_grid(1000, per_decade=10)
    rep = validation.compare(hd.solve(p, opt, grid=grid), validation.simulate(p, opt, grid=grid, seeds=128, key=2))
    assert rep.median_rel_error < 0.03, rep.summary()
    assert rep.max_rel_error < 0.15, rep.summary()


def test_theory_matches_simulation_dense_K():
    rng = np.random.default_rng(2)
    d = 200
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    lam = 1.0 / np.sqrt(np.arange(1, d + 1))
    p = hd.from_covariance((Q * lam) @ Q.T, target=Q @ (np.ones(d) / np.sqrt(d)), noise=hd.Gaussian(0.2))
    opt = hd.SGD(0.6 * hd.stability_threshold(p, hd.SGD(1.0, batch=1)))
    grid = hd.step_grid(1000, per_decade=10)
    rep = validation.compare(hd.solve(p, opt, grid=grid), validation.simulate(p, opt, grid=grid, seeds=128, key=2))
    assert rep.ok, rep.summary()
    assert rep.median_rel_error < 0.05, rep.summary()


def test_theory_matches_simulation_with_schedule():
    p = _concentrated_problem(hd.Gaussian(0.3))
    opt = hd.SGD(0.8 * hd.stability_threshold(p, hd.SGD(1.0, batch=2)), batch=2,
                 schedule=hd.WarmupCosine(50, 800, 0.05))
    grid = hd.step_grid(800, per_decade=10)
    rep = validation.compare(hd.solve(p, opt, grid=grid), validation.simulate(p, opt, grid=grid, seeds=32, key=3))
    assert rep.verdict != "not_ok", rep.summary()
    assert rep.median_rel_error < 0.05, rep.summary()
