"""SignSVD and Muon theory (``hd.signsvd``): per-mode constants, closures, the solver's theories and closed forms.

* ``factors``: mu_j(B), nu_j(B) (exact at B = 1, deterministic equivalents above), ``kappa0``, ``batch_transition``;
* ``closures``: the drift closures (C1)-(C4) as Numba kernels and the rule that picks one at each step;
* ``theory``: ``SignSVDTheory`` and ``MuonTheory``, what ``hd.solve`` steps;
* ``analysis``: ``floor``, ``critical_lr``, ``isotropic_equivalence``, ``noise_sum``;
* ``ns_gain``: Muon's Newton-Schulz map of relative singular values.

Derivations and measured accuracy: docs/derivations/signsvd.md.
"""
import numpy as np

from .analysis import (
    IsotropicEquivalence,
    critical_lr,
    floor,
    isotropic_equivalence,
    noise_sum,
    nuclear_norm_mean,
)
from .factors import (
    BatchTransition,
    batch_transition,
    equivalent_factors,
    kappa0,
    polar_factors,
    single_sample_factors,
)
from .theory import MuonTheory, SignSVDState, SignSVDTheory


def ns_gain(s, ns_steps: int = 5, coefficients=(3.4445, -4.7750, 2.0315)):
    """Newton-Schulz output for relative singular values s = s_i / ||G||_F (``hd.Muon(...).gain``)."""
    from ...optimizers.signsvd import Muon

    return Muon(1.0, ns_steps=ns_steps, ns_coefficients=coefficients).gain(np.asarray(s, dtype=np.float64))


__all__ = ["BatchTransition", "IsotropicEquivalence", "MuonTheory", "SignSVDState", "SignSVDTheory", "batch_transition",
           "critical_lr", "equivalent_factors", "floor", "isotropic_equivalence", "kappa0", "noise_sum",
           "ns_gain", "nuclear_norm_mean", "polar_factors", "single_sample_factors"]
