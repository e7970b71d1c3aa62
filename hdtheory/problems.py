"""Streaming least-squares problems: pure data read by both engines.

Data model: x ~ N(0, K) in R^d, y = <x, theta*> + epsilon with epsilon drawn
from the problem's noise law (mean 0, variance sigma^2), and

    risk(theta) = 1/2 E[(<x, theta> - y)^2] = 1/2 ((theta - theta*)^T K (theta - theta*) + sigma^2).

``K = U diag(eigenvalues) U^T``. ``basis`` is U (columns are eigenvectors), or ``None`` for the
coordinate basis (diagonal K). A Problem is pure data, built once and used by both engines through one small
protocol: what the theory reads (``spectral_modes``, ``sigma2``, ``noise``, ``covariance()``, ...) and what the
simulation needs (``stream``: how to sample a batch and the population risk of the weights in closed form, in
JAX; ``jax_arrays``: the arrays it reads).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np

from .noise import Gaussian, NoiseLaw, noise_from_dict


class InadmissibleWarning(UserWarning):
    """A problem with no large-d limit (``powerlaw`` with 2 alpha + 2 beta <= 1): its curves depend on d."""


def _vector(name: str, value, d: int | None = None) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, got shape {arr.shape}")
    if d is not None and arr.shape[0] != d:
        raise ValueError(f"{name} has length {arr.shape[0]} but the problem has d = {d} eigenvalues")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite entries")
    return arr


@dataclass(frozen=True, eq=False)
class Problem:
    """A streaming least-squares problem.

    Parameters
    ----------
    eigenvalues : (d,) array, >= 0
        Spectrum of the feature covariance K.
    target : (d,) array
        theta*, in the coordinate basis.
    init : (d,) array, optional
        theta_0, in the coordinate basis (default zeros).
    noise : NoiseLaw
        Label-noise law (default noiseless ``Gaussian(0)``).
    basis : (d, d) orthogonal array, optional
        Eigenvectors of K as columns; ``None`` means K = diag(eigenvalues) in the coordinate basis.
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
        d = lam.shape[0]
        if d < 1:
            raise ValueError("eigenvalues must hold at least one entry")
        if np.any(lam < 0):
            raise ValueError(f"eigenvalues must be >= 0 (K is a covariance); min is {lam.min()!r}")
        target = _vector("target", self.target, d)
        init = np.zeros(d) if self.init is None else _vector("init", self.init, d)
        if not isinstance(self.noise, NoiseLaw):
            raise ValueError(f"noise must be a NoiseLaw (hd.Gaussian, hd.Rademacher, hd.StudentT), got {self.noise!r}")
        basis = self.basis
        if basis is not None:
            basis = np.asarray(basis, dtype=np.float64)
            if basis.shape != (d, d):
                raise ValueError(f"basis must have shape ({d}, {d}), got {basis.shape}")
            if not np.all(np.isfinite(basis)):
                raise ValueError("basis contains NaN or infinite entries")
            if not np.allclose(basis.T @ basis, np.eye(d), atol=1e-8):
                raise ValueError("basis must be orthogonal (its columns are the eigenvectors of K)")
        for name, arr in (("eigenvalues", lam), ("target", target), ("init", init)):
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        if basis is not None:
            basis.setflags(write=False)
        object.__setattr__(self, "basis", basis)
        object.__setattr__(self, "info", dict(self.info))
        with np.errstate(over="ignore"):
            r0 = self.initial_risk
        if not math.isfinite(r0):
            raise ValueError("the initial risk 1/2 (theta_0 - theta*)^T K (theta_0 - theta*) overflows: rescale "
                             "eigenvalues, target or init")

    # --- derived quantities ---------------------------------------------------------------
    @property
    def d(self) -> int:
        return int(self.eigenvalues.shape[0])

    @property
    def sigma2(self) -> float:
        """Label-noise variance sigma^2."""
        return self.noise.variance

    @property
    def outputs(self) -> int:
        """Number of outputs m (1: the prediction is a scalar <x, theta>)."""
        return 1

    @property
    def noise_variance(self) -> float:
        """E||epsilon||^2, the label-noise variance summed over outputs (here sigma^2): the risk's floor is half of it."""
        return self.sigma2

    @property
    def trace(self) -> float:
        return float(self.eigenvalues.sum())

    @property
    def lambda_max(self) -> float:
        return float(self.eigenvalues.max())

    @property
    def diagonal(self) -> bool:
        """True when K is diagonal in the coordinate basis."""
        return self.basis is None

    def covariance(self) -> np.ndarray:
        """Dense K (d x d)."""
        if self.basis is None:
            return np.diag(self.eigenvalues)
        return (self.basis * self.eigenvalues) @ self.basis.T

    def initial_error_modes(self) -> np.ndarray:
        """rho_j(0) = <u_j, theta_0 - theta*>^2 for each eigenvector u_j ."""
        e = self.init - self.target
        if self.basis is not None:
            e = self.basis.T @ e
        return e * e

    def spectral_modes(self, merge: bool = True):
        """(eigenvalues, summed rho(0), multiplicity) with equal eigenvalues merged.

        Merging is exact for dynamics that depend on a mode only through its eigenvalue and enter the
        coupling through sum_j lambda_j rho_j (SGD: merged state S = sum rho with noise multiplicity m;
        docs/derivations/sgd.md).
        """
        lam = self.eigenvalues
        rho0 = self.initial_error_modes()
        if not merge:
            return lam.copy(), rho0, np.ones_like(lam)
        uniq, inv = np.unique(lam, return_inverse=True)
        if uniq.shape[0] == lam.shape[0]:
            return lam.copy(), rho0, np.ones_like(lam)
        s = np.zeros_like(uniq)
        m = np.zeros_like(uniq)
        np.add.at(s, inv, rho0)
        np.add.at(m, inv, 1.0)
        return uniq, s, m

    @property
    def stream(self) -> "GaussianStream":
        """The simulation's view of the problem (hashable: compiled runs are shared by problems of one kind)."""
        return GaussianStream(noise=self.noise, diagonal=self.basis is None)

    def jax_arrays(self, dtype) -> dict:
        """The arrays ``stream`` reads, as JAX arrays of ``dtype`` (``init`` gives the weights' shape)."""
        import jax.numpy as jnp

        lam = jnp.asarray(self.eigenvalues, dtype)
        return dict(lam=lam, sqrt_lam=jnp.sqrt(lam), basis=None if self.basis is None else jnp.asarray(self.basis, dtype),
                    target=jnp.asarray(self.target, dtype), init=jnp.asarray(self.init, dtype))

    def excess_risk(self, theta) -> float:
        """1/2 (theta - theta*)^T K (theta - theta*)."""
        e = np.asarray(theta, dtype=np.float64) - self.target
        if self.basis is not None:
            e = self.basis.T @ e
        return 0.5 * float(np.dot(self.eigenvalues, e * e))

    def risk(self, theta) -> float:
        """1/2 ((theta - theta*)^T K (theta - theta*) + sigma^2)."""
        return self.excess_risk(theta) + 0.5 * self.sigma2

    @property
    def initial_risk(self) -> float:
        return self.risk(self.init)

    def to_dict(self, arrays: bool = False) -> dict:
        """JSON-able description. With ``arrays=True`` it holds everything needed to rebuild it."""
        out = {
            "d": self.d,
            "noise": self.noise.to_dict(),
            "trace": self.trace,
            "lambda_max": self.lambda_max,
            "initial_risk": self.initial_risk,
            "diagonal": self.diagonal,
            "info": self.info,
        }
        if arrays:
            out.update(
                eigenvalues=self.eigenvalues.tolist(),
                target=self.target.tolist(),
                init=self.init.tolist(),
                basis=None if self.basis is None else self.basis.tolist(),
            )
        return out

    @classmethod
    def from_dict(cls, d: dict) -> "Problem":
        return cls(
            eigenvalues=d["eigenvalues"],
            target=d["target"],
            init=d["init"],
            noise=noise_from_dict(d["noise"]),
            basis=d.get("basis"),
            info=d.get("info", {}),
        )


@dataclass(frozen=True)
class GaussianStream:
    """Samples of a vector problem in JAX: x = z diag(sqrt(lambda)) U^T ~ N(0, K), y = <x, theta*> + epsilon, and
    the population risk 1/2 (sigma^2 + sum_j lambda_j <u_j, theta - theta*>^2) in closed form."""

    noise: NoiseLaw
    diagonal: bool

    def sample(self, arrays, key, n, dtype):
        import jax

        kx, ke = jax.random.split(key)
        x = jax.random.normal(kx, (n, arrays["target"].shape[0]), dtype) * arrays["sqrt_lam"]
        if not self.diagonal:
            x = x @ arrays["basis"].T
        return x, x @ arrays["target"] + self.noise.sample_jax(ke, (n,), dtype)

    def risk(self, arrays, theta):
        import jax.numpy as jnp

        e = theta - arrays["target"]
        if not self.diagonal:
            e = arrays["basis"].T @ e
        return 0.5 * (self.noise.variance + jnp.sum(arrays["lam"] * e * e))


def from_covariance(K, target, init=None, noise: NoiseLaw | None = None, info: dict | None = None) -> Problem:
    """Problem with a dense covariance K (any basis), eigendecomposed once (O(d^3)).

    Theory for rotation-invariant optimizers (SGD) depends only on (lambda_j, <u_j, theta_0-theta*>^2);
    the simulation samples x = U diag(sqrt(lambda)) z, which has law N(0, K).
    """
    K = np.asarray(K, dtype=np.float64)
    if K.ndim != 2 or K.shape[0] != K.shape[1] or K.shape[0] < 1:
        raise ValueError(f"K must be a non-empty square matrix, got shape {K.shape}")
    if not np.all(np.isfinite(K)):
        raise ValueError("K contains NaN or infinite entries")
    scale = max(float(np.max(np.abs(K))), 1e-300)
    if not np.allclose(K, K.T, atol=1e-10 * scale, rtol=0):
        raise ValueError("K must be symmetric")
    lam, U = np.linalg.eigh(0.5 * (K + K.T))
    tol = 1e-10 * max(float(lam.max()), 0.0) * K.shape[0]
    if lam.min() < -tol:
        raise ValueError(f"K must be positive semi-definite; its smallest eigenvalue is {lam.min():.3e}")
    lam = np.clip(lam, 0.0, None)
    return Problem(
        eigenvalues=lam,
        target=target,
        init=init,
        noise=Gaussian(0.0) if noise is None else noise,
        basis=U,
        info={"constructor": "from_covariance", **(info or {})},
    )


def isotropic(d: int, noise: NoiseLaw | None = None, target_norm: float = 1.0, scale: float = 1.0) -> Problem:
    """K = scale * I_d, theta* = target_norm * (1, ..., 1)/sqrt(d), theta_0 = 0."""
    d = _check_d(d)
    scale, target_norm = _finite("scale", scale), _finite("target_norm", target_norm)
    if not scale > 0:
        raise ValueError(f"scale must be finite and > 0, got {scale!r}")
    return Problem(
        eigenvalues=np.full(d, float(scale)),
        target=np.full(d, float(target_norm) / math.sqrt(d)),
        noise=Gaussian(0.0) if noise is None else noise,
        info={"constructor": "isotropic", "d": d, "target_norm": float(target_norm), "scale": float(scale)},
    )


def powerlaw(d: int, alpha: float, beta: float, noise: NoiseLaw | None = None) -> Problem:
    """Power-law problem (the diagonal model: power-law random features with v = d, W = I):

        eigenvalues  lambda_j = j^(-2 alpha),   target  theta*_j = j^(-beta),   j = 1..d,   theta_0 = 0,

    so the per-mode initial excess is lambda_j theta*_j^2 = j^(-(2 alpha + 2 beta)) and
    2 R(0) - sigma^2 = sum_j j^(-2 alpha - 2 beta). (Admissible as d -> infinity iff 2 alpha + 2 beta > 1.)
    """
    d = _check_d(d)
    alpha, beta = _finite("alpha", alpha), _finite("beta", beta)
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0 (decaying spectrum), got {alpha!r}")
    if 2 * alpha + 2 * beta <= 1:
        warnings.warn(f"powerlaw(alpha={alpha:g}, beta={beta:g}): 2 alpha + 2 beta = {2 * alpha + 2 * beta:g} <= 1, so "
                      "the initial excess risk 1/2 sum_j j^-(2 alpha + 2 beta) grows without bound as d grows (it is "
                      f"{0.5 * float(np.sum(np.arange(1, d + 1, dtype=np.float64) ** -(2 * alpha + 2 * beta))):.4g} "
                      f"at d = {d}): the problem has no d -> infinity limit and its curves depend on d; "
                      "take 2 alpha + 2 beta > 1", InadmissibleWarning, stacklevel=2)
    j = np.arange(1, d + 1, dtype=np.float64)
    return Problem(
        eigenvalues=j ** (-2.0 * alpha),
        target=j ** (-float(beta)),
        noise=Gaussian(0.0) if noise is None else noise,
        info={"constructor": "powerlaw", "d": d, "alpha": float(alpha), "beta": float(beta)},
    )


def _check_d(d) -> int:
    try:
        ok = not isinstance(d, (bool, str, bytes)) and int(d) == d and int(d) >= 1
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise ValueError(f"d must be an integer >= 1, got {d!r}")
    return int(d)


def _finite(name: str, value) -> float:
    try:
        if isinstance(value, (bool, str, bytes)):
            raise TypeError
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(out):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return out
