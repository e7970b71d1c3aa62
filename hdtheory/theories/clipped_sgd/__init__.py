"""``hd.clipped_sgd``: clipped SGD's reduction factors, the clipping comparison criterion and advice, the
max-CCC schedule, relative clip levels resolved into sequences, and the stationary risk (the optimizer is
``hd.ClippedSGD``, its theory ``ClippedSGDTheory``; ``hd.tuning.optimal_clip`` searches a fixed clip level)."""
from .analysis import (HELPS_TOL, ClippingAdvice, ccc, clipping_advice, max_ccc, max_ccc_schedule, predicted_E,
                       resolve_clip, stationary_risk)
from .factors import clip_factors, law_spec
from .theory import ClippedSGDState, ClippedSGDTheory

__all__ = ["HELPS_TOL", "ClippedSGDState", "ClippedSGDTheory", "ClippingAdvice", "ccc", "clip_factors",
           "clipping_advice", "law_spec", "max_ccc", "max_ccc_schedule", "predicted_E", "resolve_clip",
           "stationary_risk"]
