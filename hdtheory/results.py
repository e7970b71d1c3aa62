"""RiskCurve: the theory's result, with a status, saved as one ``.npz`` (no pickle), atomically."""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field

import numpy as np

STATUSES = ("ok", "diverged", "unstable")


def atomic_savez(path, meta: dict, **arrays) -> str:
    """Write ``arrays`` and ``meta`` (as a JSON string) to ``path`` (.npz), through a temporary file and
    ``os.replace`` (no pickle)."""
    arrays["meta"] = np.array(json.dumps(meta))
    path = os.fspath(path)
    if not path.endswith(".npz"):
        path += ".npz"
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(suffix=".npz.tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def read_npz(path):
    """Inverse of ``atomic_savez``: (dict of arrays, meta dict)."""
    with np.load(os.fspath(path), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files if k != "meta"}
        meta = json.loads(str(z["meta"]))
    return arrays, meta


@dataclass
class RiskCurve:
    """Predicted expected risk on a step grid.

    ``risk`` = 1/2 E[(<x, theta_k> - y)^2] (includes sigma^2/2); ``excess_risk`` drops sigma^2/2.
    ``status``: ``ok``; ``diverged`` (the risk passed the divergence cap or stopped being finite at
    ``diverged_step``; the curve ends at the last recorded point before it); ``unstable`` (the curve
    is complete but the step map in force at the end is above the stability threshold, so the risk
    grows without bound afterwards). ``message`` says why.
    """

    steps: np.ndarray
    risk: np.ndarray
    sigma2: float
    status: str = "ok"
    diverged_step: int | None = None
    message: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.steps = np.asarray(self.steps, dtype=np.int64)
        self.risk = np.asarray(self.risk, dtype=np.float64)
        if self.steps.shape != self.risk.shape:
            raise ValueError("steps and risk must have the same shape")
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}")

    @property
    def excess_risk(self) -> np.ndarray:
        return self.risk - 0.5 * self.sigma2

    @property
    def diverged(self) -> bool:
        return self.status != "ok"

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def __repr__(self):
        last = f"{self.risk[-1]:.4g}" if self.risk.size else "-"
        return (f"RiskCurve({self.steps.size} points to step {self.steps[-1] if self.steps.size else '-'}, "
                f"final risk {last}, status={self.status!r})")

    def save(self, path) -> str:
        meta = dict(self.meta)
        meta.update(status=self.status, diverged_step=self.diverged_step, message=self.message,
                    sigma2=self.sigma2, units={"steps": "iterations", "risk": "1/2 E[(<x,theta>-y)^2]"})
        return atomic_savez(path, meta, steps=self.steps, risk=self.risk)

    @classmethod
    def load(cls, path) -> "RiskCurve":
        arrays, meta = read_npz(path)
        steps, risk = arrays["steps"], arrays["risk"]
        status = meta.pop("status")
        dstep = meta.pop("diverged_step")
        message = meta.pop("message")
        sigma2 = meta.pop("sigma2")
        meta.pop("units", None)
        return cls(steps=steps, risk=risk, sigma2=sigma2, status=status, diverged_step=dstep,
                   message=message, meta=meta)
