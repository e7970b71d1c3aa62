"""validation: the same optimizers on the same problems as real JAX simulations, and the distance
between prediction and reality::

    sim = validation.simulate(prob, opt, steps=10**4, seeds=16, key=0)
    rep = validation.compare(hd.solve(prob, opt, steps=10**4), sim)
"""
from .compare import Agreement, compare
from .simulate import SimulatedRisk, simulate
from .thresholds import EmpiricalThreshold, empirical_threshold

__all__ = ["Agreement", "EmpiricalThreshold", "SimulatedRisk", "compare", "empirical_threshold", "simulate"]
