"""hdtheory: deterministic high-dimensional risk curves of stochastic optimizers on streaming least squares.

    prob  = hd.powerlaw(d=1000, alpha=1.0, beta=0.7, noise=hd.Gaussian(0.1))
    curve = hd.solve(prob, hd.SGD(lr=0.5, batch=4), steps=10**6)
    lr_c  = hd.stability_threshold(prob, hd.SGD(lr=1.0, batch=4))

Generic verbs live here; optimizer-specific analysis in the optimizer's namespace (``hd.clipped_sgd``,
``hd.signsgd``, ``hd.la_diloco``, loaded on first use); theory-optimal hyperparameters by ``hd.tune`` (searches in ``hd.tuning``).
"""
__version__ = "0.2.0"

import importlib

from .driver import solve
from .grid import step_grid
from .matrix_problem import MatrixProblem, matrix_isotropic, matrix_powerlaw
from .noise import Gaussian, NoiseLaw, Rademacher, StudentT
from .optimizers import LA, SGD, SLA, ClippedSGD, LADiLoCo, Muon, RelativeClip, SignSGD, SignSVD
from .problems import Problem, from_covariance, isotropic, powerlaw
from .random_features import plrf
from .results import RiskCurve
from .schedules import Constant, Piecewise, PowerDecay, Sequence, WarmupCosine
from .sweeps import load_sweep, save_sweep, sweep
from .thresholds import EdgeOfStability, edge_of_stability, stability_threshold, stationary_risk, threshold_reason
from .tuning import Tuned, tune

#: optimizer namespaces and layers above ``solve``, imported on first access (they load Numba theories)
_LAZY = {"clipped_sgd": "hdtheory.theories.clipped_sgd", "signsgd": "hdtheory.theories.signsgd", "phases": "hdtheory.phases",
         "la_diloco": "hdtheory.theories.la_diloco", "signsvd": "hdtheory.theories.signsvd"}


def __getattr__(name):
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name])
        globals()[name] = module
        return module
    raise AttributeError(f"module 'hdtheory' has no attribute {name!r}")


def plot(*args, **kwargs):
    """Predicted curve vs simulated mean and band (see ``hdtheory.plotting.plot``)."""
    from .plotting import plot as _plot

    return _plot(*args, **kwargs)


__all__ = [
    "ClippedSGD", "Constant", "EdgeOfStability", "Gaussian", "LA", "LADiLoCo", "MatrixProblem", "Muon", "NoiseLaw",
    "Piecewise", "PowerDecay", "Problem", "Rademacher", "RelativeClip", "RiskCurve", "SGD", "SLA", "Sequence",
    "SignSGD", "SignSVD", "StudentT", "Tuned", "WarmupCosine", "clipped_sgd", "edge_of_stability",
    "from_covariance", "isotropic", "la_diloco", "load_sweep", "matrix_isotropic", "matrix_powerlaw", "phases",
    "plot", "plrf", "powerlaw", "save_sweep", "signsgd", "signsvd", "solve", "stability_threshold",
    "stationary_risk", "step_grid", "sweep", "threshold_reason", "tune", "tuning",
]
