"""The generic verbs dispatched by optimizer: ``hd.stability_threshold`` and ``hd.stationary_risk``; and the
closed forms of SGD's stochastic edge of stability (docs/derivations/sgd.md).

For SGD the exact threshold is the root of ||K||(lr) = 1 (E4), i.e. where the spectral radius of the
mean-square step map diag(a) + (lr^2/B) lambda lambda^T crosses 1 (docs/derivations/sgd.md §3). Two edges bound it:

* trace edge (stochastic EoS, small batch):  lr ~ 2B / tr K          (||K|| ~ lr tr K / (2B));
* lambda_max edge (classical EoS, large batch):  lr = 2B / ((B + 1) lambda_max);

with the bracket  2B / (tr K + (B+1) lambda_max) <= lr* <= min(2B/tr K, 2B/((B+1) lambda_max)) and the
crossover batch B_x = tr K / lambda_max: the trace edge binds for B + 1 < B_x.
"""
from __future__ import annotations

from dataclasses import dataclass

from .checks import check_batch
from .theory import theory_for


def stability_threshold(problem, opt) -> float:
    """Largest stable base ``lr`` for ``opt``'s other hyperparameters (its ``lr`` is ignored).

    With a schedule, the returned base lr keeps lr * max_k schedule(k) at the threshold.
    Returns ``math.inf`` for optimizers that never diverge: signSGD moves each coordinate by at most lr per
    step, and its risk settles at a finite floor for every lr (docs/derivations/signsgd.md; the floor grows like
    lr^2 at large lr); its useful limit is ``hd.signsgd.no_progress_lr`` (the lr whose floor is the initial
    risk), found with real runs by ``validation.empirical_threshold(..., criterion="no_progress")``.
    Where the stable set in lr is not an interval (LA-DiLoCo with inner or outer momentum,
    docs/derivations/la_diloco.md) this is the first crossing going up from lr = 0+;
    ``hd.la_diloco.stable_intervals`` lists the others; ``threshold_reason`` says why a threshold is inf."""
    return float(theory_for(opt).threshold(problem, opt).lr)


def threshold_reason(problem, opt) -> str:
    """Why ``stability_threshold`` is what it is (empty where it is an ordinary finite edge)."""
    return theory_for(opt).threshold(problem, opt).reason


def stationary_risk(problem, opt) -> float:
    """The risk a run of ``opt`` settles at on ``problem`` (its floor), where the optimizer's theory knows it in
    closed form or by a fixed point (clipped SGD at a fixed clip level, signSGD, LA-DiLoCo)."""
    theory = theory_for(opt)
    if theory.stationary_risk is None:
        raise ValueError(f"no stationary risk is known for {type(opt).__name__}: solve to a long horizon instead")
    return float(theory.stationary_risk(problem, opt))


@dataclass(frozen=True)
class EdgeOfStability:
    """SGD's edges of stability at batch B (all in per-step lr units)."""

    batch: int
    exact: float          # root of ||K|| = 1
    trace_edge: float     # 2B / tr K
    lambda_edge: float    # 2B / ((B+1) lambda_max)
    lower_bound: float    # 2B / (tr K + (B+1) lambda_max)
    crossover_batch: float  # tr K / lambda_max

    @property
    def binding(self) -> str:
        """'trace' (stochastic EoS) when 2B/tr K < 2B/((B+1) lambda_max), else 'lambda_max'."""
        return "trace" if self.trace_edge < self.lambda_edge else "lambda_max"

    @property
    def upper_bound(self) -> float:
        return min(self.trace_edge, self.lambda_edge)


def edge_of_stability(problem, batch: int = 1) -> EdgeOfStability:
    """Exact SGD threshold and its closed-form edges for ``problem`` at batch ``batch``."""
    from .theories.sgd import sgd_threshold

    B = check_batch(batch)
    lam, _, mult = problem.spectral_modes(merge=True)
    tr, lmax = problem.trace, problem.lambda_max
    if lmax <= 0:
        raise ValueError("eigenvalues are all zero: SGD is stable at every lr (no edge of stability)")
    return EdgeOfStability(
        batch=B,
        exact=sgd_threshold(lam, mult, B),
        trace_edge=2.0 * B / tr,
        lambda_edge=2.0 * B / ((B + 1.0) * lmax),
        lower_bound=2.0 * B / (tr + (B + 1.0) * lmax),
        crossover_batch=tr / lmax,
    )
