"""hdtheory: deterministic high-dimensional risk curves of stochastic optimizers on streaming least
squares (see DESIGN.md). Public API::

    prob  = hd.powerlaw(d=1000, alpha=1.0, beta=0.7, noise=hd.Gaussian(0.1))
    curve = hd.solve(prob, hd.SGD(lr=0.5, batch=4), steps=10**6)
    lr_c  = hd.stability_threshold(prob, hd.SGD(lr=1.0, batch=4))
"""
__version__ = "0.1.0"

from .grid import step_grid
from .noise import Gaussian, NoiseLaw, Rademacher, StudentT
from .optimizers import SGD, ClippedSGD, RelativeClip, SignSGD
from .optimizers import clipped_sgd, signsgd  # helper namespaces: hd.signsgd.no_progress_lr, hd.clipped_sgd.*
from .optimizers.clipped_sgd import (ClippingAdvice, ccc, clip_factors, clipping_advice, max_ccc,
                                     max_ccc_schedule, optimal_clip, resolve_clip, stationary_risk)
from .optimizers import LA, SLA, LADiLoCo, la_diloco
from .problems import Problem, from_covariance, isotropic, powerlaw
from .results import RiskCurve
from .schedules import Constant, Piecewise, PowerDecay, Sequence, WarmupCosine
from .driver import solve
from .thresholds import EdgeOfStability, edge_of_stability, stability_threshold


def plot(*args, **kwargs):
    """Predicted curve vs simulated mean and band (see ``hdtheory.plotting.plot``)."""
    from .plotting import plot as _plot

    return _plot(*args, **kwargs)


__all__ = [
    "ClippedSGD", "ClippingAdvice", "RelativeClip", "Sequence", "ccc", "clip_factors", "clipping_advice", "max_ccc",
    "max_ccc_schedule", "optimal_clip", "resolve_clip", "stationary_risk",
    "LA", "LADiLoCo", "SLA", "la_diloco",
    "Constant", "EdgeOfStability", "Gaussian", "NoiseLaw", "Piecewise", "PowerDecay", "Problem",
    "Rademacher", "RiskCurve", "SGD", "SignSGD", "clipped_sgd", "StudentT", "WarmupCosine", "edge_of_stability", "from_covariance",
    "isotropic", "plot", "powerlaw", "signsgd", "solve", "stability_threshold",
    "step_grid",
]
