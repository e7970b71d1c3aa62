"""Streaming matrix least squares: W in R^{m x n}, pure data read by both engines.

Data model: x ~ N(0, K) in R^n, y = W* x + epsilon in R^m with epsilon i.i.d. per output from the problem's
noise law (mean 0, variance sigma^2), and, summed over the m outputs,

    risk(W) = 1/2 E||W x - y||^2 = 1/2 (sum_j lambda_j ||(W - W*) u_j||^2 + m sigma^2),

with K = U diag(lambda) U^T. The per-mode state the theories read is rho_j = ||(W - W*) u_j||^2
(``initial_error_modes``). With m = 1 this is the vector problem (``hd.Problem``) exactly. The protocol is the
vector problem's: ``spectral_modes``, ``sigma2`` (per output), ``noise_variance`` (m sigma^2), ``outputs`` (m),
``stream`` and ``jax_arrays`` for the simulation.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np

from .noise import Gaussian, NoiseLaw, noise_from_dict
from .problems import InadmissibleWarning, _check_d, _finite, _vector


def _matrix(name: str, value, shape=None) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (m, n) array, got shape {arr.shape}")
    if shape is not None and arr.shape != shape:
        raise ValueError(f"{name} has shape {arr.shape} but the problem needs {shape} (m outputs, n eigenvalues)")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite entries")
    return arr


@dataclass(frozen=True, eq=False)
class MatrixProblem:
    """A streaming matrix least-squares problem (m outputs, n inputs).

    Parameters
    ----------
    eigenvalues : (n,) array, >= 0
        Spectrum of the input covariance K.
    target : (m, n) array
        W*, in the coordinate basis (output x input).
    init : (m, n) array, optional
        W_0 (default zeros).
    noise : NoiseLaw
        Label-noise law of each output (default noiseless).
    basis : (n, n) orthogonal array, optional
        Eigenvectors of K as columns; ``None``: K = diag(eigenvalues) in the coordinate basis (axis-aligned).
    info : dict
        Free-form description of how the problem was built (saved with results).
    """

    eigenvalues: np.ndarray
    target: np.ndarray
    init: np.ndarray | None = None
    noise: NoiseLaw = field(default_factory=lambda: Gaussian(0.0))
    basis: np.ndarray | None = None
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        lam = _vector("eigenvalues", self.eigenvalues)
        n = lam.shape[0]
        if n < 1:
            raise ValueError("eigenvalues must hold at least one entry")
        if np.any(lam < 0):
            raise ValueError(f"eigenvalues must be >= 0 (K is a covariance); min is {lam.min()!r}")
        target = _matrix("target", self.target)
        if target.shape[1] != n:
            raise ValueError(f"target has shape {target.shape} but there are n = {n} eigenvalues: it must be (m, {n})")
        init = np.zeros_like(target) if self.init is None else _matrix("init", self.init, target.shape)
        if not isinstance(self.noise, NoiseLaw):
            raise ValueError(f"noise must be a NoiseLaw (hd.Gaussian, hd.Rademacher, hd.StudentT), got {self.noise!r}")
        basis = self.basis
        if basis is not None:
            basis = _matrix("basis", basis, (n, n))
            if not np.allclose(basis.T @ basis, np.eye(n), atol=1e-8):
                raise ValueError("basis must be orthogonal (its columns are the eigenvectors of K)")
            basis.setflags(write=False)
        for name, arr in (("eigenvalues", lam), ("target", target), ("init", init)):
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        object.__setattr__(self, "basis", basis)
        object.__setattr__(self, "info", dict(self.info))
        with np.errstate(over="ignore"):
            r0 = self.initial_risk
        if not math.isfinite(r0):
            raise ValueError("the initial risk overflows: rescale eigenvalues, target or init")

    # --- the protocol -----------------------------------------------------------------------
    @property
    def n(self) -> int:
        """Inputs (the number of eigenmodes of K)."""
        return int(self.eigenvalues.shape[0])

    @property
    def m(self) -> int:
        return int(self.target.shape[0])

    d = n
    outputs = m

    @property
    def sigma2(self) -> float:
        """Label-noise variance of one output."""
        return self.noise.variance

    @property
    def noise_variance(self) -> float:
        """E||epsilon||^2 = m sigma^2: the risk's floor is half of it."""
        return self.m * self.noise.variance

    @property
    def trace(self) -> float:
        return float(self.eigenvalues.sum())

    @property
    def lambda_max(self) -> float:
        return float(self.eigenvalues.max())

    @property
    def diagonal(self) -> bool:
        """True when K is diagonal in the coordinate basis (the eigenvectors are the input axes)."""
        return self.basis is None

    def covariance(self) -> np.ndarray:
        if self.basis is None:
            return np.diag(self.eigenvalues)
        return (self.basis * self.eigenvalues) @ self.basis.T

    def error_in_eigenbasis(self) -> np.ndarray:
        """(W_0 - W*) U, the residual with its columns in K's eigenbasis (m x n)."""
        e = self.init - self.target
        return e if self.basis is None else e @ self.basis

    def initial_error_modes(self) -> np.ndarray:
        """rho_j(0) = ||(W_0 - W*) u_j||^2 for each eigenvector u_j."""
        e = self.error_in_eigenbasis()
        return np.einsum("ij,ij->j", e, e)

    def spectral_modes(self, merge: bool = False):
        """(eigenvalues, rho(0), multiplicity), one entry per mode (never merged: the matrix theories are not
        functions of the eigenvalue alone)."""
        lam = self.eigenvalues
        return lam.copy(), self.initial_error_modes(), np.ones_like(lam)

    def excess_risk(self, W) -> float:
        e = np.asarray(W, dtype=np.float64) - self.target
        if self.basis is not None:
            e = e @ self.basis
        return 0.5 * float(np.einsum("j,ij,ij->", self.eigenvalues, e, e))

    def risk(self, W) -> float:
        return self.excess_risk(W) + 0.5 * self.noise_variance

    @property
    def initial_risk(self) -> float:
        return self.risk(self.init)

    @property
    def stream(self) -> MatrixStream:
        return MatrixStream(noise=self.noise, diagonal=self.basis is None)

    def jax_arrays(self, dtype) -> dict:
        import jax.numpy as jnp

        lam = jnp.asarray(self.eigenvalues, dtype)
        return dict(lam=lam, sqrt_lam=jnp.sqrt(lam), basis=None if self.basis is None else jnp.asarray(self.basis, dtype),
                    target=jnp.asarray(self.target, dtype), init=jnp.asarray(self.init, dtype))

    # --- serialisation ------------------------------------------------------------------------
    def to_dict(self, arrays: bool = False) -> dict:
        out = {"kind": "matrix", "n": self.n, "m": self.m, "d": self.n, "noise": self.noise.to_dict(),
               "trace": self.trace, "lambda_max": self.lambda_max, "initial_risk": self.initial_risk,
               "diagonal": self.diagonal, "info": self.info}
        if arrays:
            out.update(eigenvalues=self.eigenvalues.tolist(), target=self.target.tolist(), init=self.init.tolist(),
                       basis=None if self.basis is None else self.basis.tolist())
        return out

    @classmethod
    def from_dict(cls, d: dict) -> MatrixProblem:
        return cls(eigenvalues=d["eigenvalues"], target=d["target"], init=d["init"], noise=noise_from_dict(d["noise"]),
                   basis=d.get("basis"), info=d.get("info", {}))


@dataclass(frozen=True)
class MatrixStream:
    """Samples of a matrix problem in JAX: x (B, n) ~ N(0, K) by rows, y = x W*^T + epsilon (B, m), and the
    population risk 1/2 (m sigma^2 + sum_j lambda_j ||(W - W*) u_j||^2) in closed form."""

    noise: NoiseLaw
    diagonal: bool

    def sample(self, arrays, key, n, dtype):
        import jax

        kx, ke = jax.random.split(key)
        target = arrays["target"]
        x = jax.random.normal(kx, (n, target.shape[1]), dtype) * arrays["sqrt_lam"]
        if not self.diagonal:
            x = x @ arrays["basis"].T
        return x, x @ target.T + self.noise.sample_jax(ke, (n, target.shape[0]), dtype)

    def risk(self, arrays, W):
        import jax.numpy as jnp

        e = W - arrays["target"]
        if not self.diagonal:
            e = e @ arrays["basis"]
        return 0.5 * (self.noise.variance * e.shape[0] + jnp.sum(arrays["lam"] * e * e))


def haar_orthonormal(rows: int, cols: int, rng: np.random.Generator) -> np.ndarray:
    """A Haar-distributed rows x cols matrix with orthonormal columns (rows >= cols) or rows (rows < cols)."""
    a = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q = q * np.sign(np.diag(r))  # the sign fix that makes QR's Q Haar-distributed
    return q if rows >= cols else q.T


def matrix_powerlaw(n: int, m: int, alpha: float, beta: float, noise: NoiseLaw | None = None, seed: int = 0,
                    *, rotated: bool = False) -> MatrixProblem:
    """Matrix power law: lambda_j = j^(-2 alpha), W* = O diag(j^(-beta)) U^T, W_0 = 0, j = 1..n.

    O is an m x n Haar matrix with orthonormal columns drawn from ``seed`` (m >= n), so that
    rho_j(0) = ||W* u_j||^2 = j^(-2 beta) exactly; for m < n its rows are orthonormal and rho_j(0) =
    j^(-2 beta) ||O e_j||^2 (mean m/n). K is diagonal (U = I) unless ``rotated``, which draws a Haar basis U from
    the same seed. Admissible as n -> infinity iff 2 alpha + 2 beta > 1.
    """
    n, m = _check_d(n), _check_d(m)
    alpha, beta = _finite("alpha", alpha), _finite("beta", beta)
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0 (decaying spectrum), got {alpha!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    if 2 * alpha + 2 * beta <= 1:
        warnings.warn(f"matrix_powerlaw(alpha={alpha:g}, beta={beta:g}): 2 alpha + 2 beta <= 1, so the initial risk "
                      "grows without bound with n: its curves depend on n", InadmissibleWarning, stacklevel=2)
    rng = np.random.default_rng(int(seed))
    j = np.arange(1, n + 1, dtype=np.float64)
    target = haar_orthonormal(m, n, rng) * j ** (-beta)
    basis = haar_orthonormal(n, n, rng) if rotated else None
    if basis is not None:
        target = target @ basis.T
    return MatrixProblem(eigenvalues=j ** (-2.0 * alpha), target=target, noise=Gaussian(0.0) if noise is None else noise,
                         basis=basis, info={"constructor": "matrix_powerlaw", "n": n, "m": m, "alpha": alpha,
                                            "beta": beta, "seed": int(seed), "rotated": bool(rotated)})


def matrix_isotropic(n: int, m: int, noise: NoiseLaw | None = None, seed: int = 0) -> MatrixProblem:
    """K = I_n, W* an m x n Haar matrix with orthonormal columns (m >= n: rho_j(0) = 1 for every j), W_0 = 0."""
    n, m = _check_d(n), _check_d(m)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    target = haar_orthonormal(m, n, np.random.default_rng(int(seed)))
    return MatrixProblem(eigenvalues=np.ones(n), target=target, noise=Gaussian(0.0) if noise is None else noise,
                         info={"constructor": "matrix_isotropic", "n": n, "m": m, "seed": int(seed)})
