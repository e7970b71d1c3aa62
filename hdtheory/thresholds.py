"""Stability thresholds: ``hd.stability_threshold`` (any optimizer) and the closed forms of SGD's
stochastic edge of stability (research/sgd.md §1.4, §2.2).

For SGD the exact threshold is the root of ||K||(lr) = 1 (E4), i.e. where the spectral radius of the
mean-square step map diag(a) + (lr^2/B) lambda lambda^T crosses 1 (sgd.md §1.4 proof). Two edges bound it:

* trace edge (stochastic EoS, small batch):  lr ~ 2B / tr K          (||K|| ~ lr tr K / (2B));
* lambda_max edge (classical EoS, large batch):  lr = 2B / ((B + 1) lambda_max);

with the bracket  2B / (tr K + (B+1) lambda_max) <= lr* <= min(2B/tr K, 2B/((B+1) lambda_max)) and the
crossover batch B_x = tr K / lambda_max: the trace edge binds for B + 1 < B_x.
"""
from __future__ import annotations

from dataclasses import dataclass

from .optimizers import theory_for
from .optimizers.sgd import sgd_threshold


def stability_threshold(problem, opt) -> float:
    """Largest stable base ``lr`` for ``opt``'s other hyperparameters (its ``lr`` is ignored).

    With a schedule, the returned base lr keeps lr * max_k schedule(k) at the threshold.
    Returns ``math.inf`` for optimizers that never diverge: signSGD moves each coordinate by at most lr per
    step, and its risk settles at a finite floor for every lr (research/signsgd.md §3.1; the floor grows like
    lr^2 at large lr); its useful limit is ``hd.signsgd.no_progress_lr`` (the lr whose floor is the initial
    risk), found with real runs by ``validation.empirical_threshold(..., criterion="no_progress")``.
    Where the stable set in lr is not an interval (LA-DiLoCo with inner or outer momentum,
    research/la_diloco.md §5.3) this is the first crossing going up from lr = 0+;
    ``hd.la_diloco.stable_intervals`` lists the others."""
    return theory_for(opt).threshold(problem, opt)


@dataclass(frozen=True)
class EdgeOfStability:
    """SGD's edges of stability at batch B (all in per-step lr units)."""

    batch: int
    exact: float          # root of ||K|| = 1 (sgd.md E4)
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
    from .optimizers.base import check_batch

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
