"""signSGD theory (``hd.signsgd``): the drift law, the per-mode reduction of K, the solver's theory and the floors.

* ``drift``: a_B(s) for Gaussian, Rademacher and Student-t label noise (``drift_coefficient``, ``drift_law``);
* ``modes``: mu, n, rho~(0) for diagonal and dense K (``modes``; the dense-K batch diagnostic
  ``batch_noise_tau``, ``sign_second_moment``);
* ``theory``: ``SignSGDTheory``, what ``hd.solve`` steps;
* ``analysis``: ``effective_lr``, ``overshoot``, ``stationary_risk``, ``no_progress_lr``.

The theory-optimal lr is ``hd.tuning.optimal_lr`` (scanned up to twice the no-progress lr). Derivations and
measured accuracy: docs/derivations/signsgd.md.
"""
from .analysis import effective_lr, no_progress_lr, overshoot, stationary_risk
from .drift import DriftLaw, c_batch, drift_coefficient, drift_law
from .modes import SignModes, batch_noise_tau, modes, sign_second_moment
from .theory import SignSGDState, SignSGDTheory

__all__ = ["DriftLaw", "SignModes", "SignSGDState", "SignSGDTheory", "batch_noise_tau", "c_batch",
           "drift_coefficient", "drift_law", "effective_lr", "modes", "no_progress_lr", "overshoot",
           "sign_second_moment", "stationary_risk"]
