"""LA-DiLoCo and its family (LA, SLA): the public namespace ``hd.la_diloco``.

Theory after A. Agarwala, "High dimensional theory of two-phase optimizers", arXiv:2603.26954 (2026), derived
for this package in docs/derivations/la_diloco.md: the exact per-mode round map (``rounds``), the (D6)
stability criterion with its scans and closed-form edges (``stability``), the signal/noise, worker-noise,
mean-rate and stationary-risk results (``analysis``), and the theory on the driver's contract (``theory``).
"""
from .analysis import (
                       SignalNoise,
                       WorkerNoise,
                       effective_spectrum,
                       mean_rate,
                       signal_noise,
                       stationary_risk,
                       worker_noise,
)
from .rounds import la_exact_rounds, la_round_parts
from .stability import (
                       LADiLoCoEdges,
                       RoundOperators,
                       edges,
                       first_crossing,
                       inner_responses,
                       round_operators,
                       stable_intervals,
)
from .theory import LADiLoCoState, LADiLoCoTheory

__all__ = [
    "LADiLoCoEdges", "LADiLoCoState", "LADiLoCoTheory", "RoundOperators", "SignalNoise", "WorkerNoise", "edges",
    "effective_spectrum", "first_crossing", "inner_responses", "la_exact_rounds", "la_round_parts", "mean_rate",
    "round_operators", "signal_noise", "stable_intervals", "stationary_risk", "worker_noise",
]
