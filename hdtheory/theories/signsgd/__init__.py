"""signSGD theory (``hd.signsgd``): the drift law, the per-mode reduction of K, the solver's theory and the floors.

* ``drift``: a_B(s) for Gaussian, Rademacher and Student-t label noise (``drift_coefficient``, ``drift_law``);
* ``modes``: mu, n, rho~(0) for diagonal and dense K (``modes``; the dense-K batch diagnostic
  ``batch_noise_tau``, ``sign_second_moment``);
* ``theory``: ``SignSGDTheory``, what ``hd.solve`` steps (vector and matrix problems), and which closure it takes
  (``closure``, ``localization``);
* ``entries``: the per-entry closure (S2) for axis-aligned K and Gaussian noise (``f_batch``, ``entries_steps``);
* ``analysis``: ``effective_lr``, ``overshoot``, ``stationary_risk``, ``no_progress_lr``.

The theory-optimal lr is ``hd.tuning.optimal_lr`` (scanned up to twice the no-progress lr). Derivations and
measured accuracy: docs/derivations/signsgd.md.
"""
from .analysis import effective_lr, no_progress_lr, overshoot, stationary_risk
from .drift import DriftLaw, c_batch, drift_coefficient, drift_law
from .entries import f_batch
from .modes import SignModes, batch_noise_tau, modes, sign_second_moment
from .theory import EntryState, SignSGDState, SignSGDTheory, closure, localization

__all__ = ["DriftLaw", "EntryState", "SignModes", "SignSGDState", "SignSGDTheory", "batch_noise_tau", "c_batch",
           "closure", "drift_coefficient", "drift_law", "effective_lr", "f_batch", "localization", "modes",
           "no_progress_lr", "overshoot", "sign_second_moment", "stationary_risk"]
