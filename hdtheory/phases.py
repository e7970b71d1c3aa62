"""Power-law phase maps from the theory, over (alpha, beta): two optimizers each at its own theory-optimal
hyperparameters (``gain_map``), and SGD's compute-optimal frontier on power-law random features
(``compute_optimal``, ``sgd_phase_map``, ``phase_of``: ``hdtheory/compute_optimal.py``).

``gain_map(alphas, betas, opt_a, opt_b, steps)`` builds, per cell, the power-law problem (``hd.powerlaw`` for vector
optimizers, ``hd.matrix_powerlaw`` when either acts on a matrix), tunes each optimizer (lr by default, with
``hd.tuning.lr_search`` warm-started along the row; ``clip``, ``outer_lr`` with ``hd.tune`` where asked) for every
horizon of the record grid and returns an ``xarray.Dataset`` with the risk ratio a / b per horizon, the tuned values and
a phase label per cell:

* ``a``: a better at every horizon;  ``b``: b better at every horizon;
* ``a->b``: a better early, b late (a trade-off);  ``b->a``: the reverse;  ``mixed``: more than one crossing.

A tuned value on its search range's edge is flagged (``edge``); a curve outside its theory's validity at the
chosen point makes the cell ``valid = False``. Cells are independent: ``executor=`` spreads them over processes or
a Dask cluster.
"""
from __future__ import annotations

import math

import numpy as np

from .checks import check_int
from .compute_optimal import ComputeOptimal, compute_optimal, phase_of, sgd_phase_map

__all__ = ["ComputeOptimal", "compute_optimal", "gain_map", "horizons_grid", "phase_label", "phase_of",
           "power_law_problem", "sgd_phase_map"]

#: optimizers whose weights are a matrix (their phase maps use hd.matrix_powerlaw)
MATRIX_OPTIMIZERS = ("signsvd", "muon")


def horizons_grid(steps: int, per_decade: int = 2, first: int = 10) -> np.ndarray:
    """0 and log-spaced horizons from ``first`` to ``steps`` (per_decade per decade, rounded, unique)."""
    steps = check_int("steps", steps)
    n = max(round(per_decade * math.log10(max(steps / first, 1.0))) + 1, 1)
    h = np.unique(np.round(np.geomspace(min(first, steps), steps, n)).astype(np.int64))
    return np.concatenate([[0], h])


def phase_label(ratio) -> str:
    """'a', 'b', 'a->b', 'b->a' or 'mixed' from the ratios a/b over increasing horizons."""
    r = np.asarray(ratio, dtype=np.float64)
    r = r[np.isfinite(r)]
    if r.size == 0:
        return "undetermined"
    s = np.sign(np.log(r))
    s = s[s != 0]
    if s.size == 0:
        return "equal"
    changes = int(np.sum(s[1:] != s[:-1]))
    if changes == 0:
        return "a" if s[0] < 0 else "b"
    if changes == 1:
        return "a->b" if s[0] < 0 else "b->a"
    return "mixed"


def power_law_problem(alpha, beta, d, noise, matrix: bool, m=None, seed: int = 0):
    from .matrix_problem import matrix_powerlaw
    from .problems import powerlaw

    if matrix:
        return matrix_powerlaw(d, m if m is not None else d, alpha, beta, noise=noise, seed=seed)
    return powerlaw(d, alpha, beta, noise=noise)


def _steps_of(opt, horizons, per):
    """Steps of ``opt`` at each horizon: the horizons themselves (per="steps"), or horizons in samples divided by
    the samples one step consumes (``opt.samples_per_step``). Every horizon must be positive, increasing and a
    whole number of updates (of samples per update with per="samples"); a ValueError names the first that is not."""
    h = [int(x) for x in np.atleast_1d(horizons)]
    unit = opt.steps_per_update * (opt.samples_per_step if per == "samples" else 1)
    what = "samples" if per == "samples" else "steps"
    for i, x in enumerate(h):
        if x <= 0 or (i and x <= h[i - 1]):
            raise ValueError(f"horizons must be positive and increasing, got {h}")
        if x % unit:
            raise ValueError(f"horizon {x} is not a whole number of {opt.name} updates: give {what} that are "
                             f"multiples of {unit}")
    if per == "steps":
        return np.asarray(h, dtype=np.int64)
    from .tuning import steps_for_samples

    return np.array([steps_for_samples(opt, x) for x in h], dtype=np.int64)


def _cell(alpha, beta, opt_a, opt_b, horizons, d, m, noise, matrix, over_a, over_b, per, points, refine, near):
    """One cell of ``gain_map`` (both optimizers tuned at every horizon); updates ``near`` for the next cell."""
    import warnings

    from .problems import InadmissibleWarning
    from .tuning import LR_DECADES, lr_search, tune

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", InadmissibleWarning)
        prob = power_law_problem(alpha, beta, d, noise, matrix, m)
    out, edge = {}, False
    valid = not any(issubclass(w.category, InadmissibleWarning) for w in caught)  # no d -> infinity limit
    for key, opt, over in (("a", opt_a, over_a), ("b", opt_b, over_b)):
        steps = _steps_of(opt, horizons, per)
        if over != ("lr",):
            tuned = tune(prob, opt, list(steps), over=over, points=points, refine=refine)
            out[f"risk_{key}"] = np.array([t.risk for t in tuned])
            for name in over:
                out[f"{name}_{key}"] = np.array([float(t.params[name]) for t in tuned])
            edge |= any(t.edge for t in tuned)
            valid &= all(t.valid for t in tuned)
            continue
        seen = near[key]
        if len(seen) == 2:
            warm = {"guess": _extrapolate(seen, beta), "curvature": seen[-1][2]}
        else:  # the previous cell's optima, or the lattice's middle
            frac = seen[-1][1] if seen else np.array([10.0 ** (-0.5 * LR_DECADES)])
            warm = {"near": (float(frac.min()), float(frac.max()))}
        res = lr_search(prob, opt, np.concatenate([[0], steps]), points=points, refine=refine, **warm)
        out[f"risk_{key}"], out[f"lr_{key}"] = res.risk, res.lr
        near[key] = (seen + [(float(beta), res.lr / res.scale, res.curvature)])[-2:]
        edge |= bool(res.edge.any())
        valid &= bool(res.valid.all())
    out["edge"], out["valid"] = edge, valid
    return out


def _extrapolate(seen, beta):
    """The optimal lr fractions predicted at ``beta`` from the row's last two cells ``seen`` = [(beta_i,
    fractions_i, curvatures_i)]: the line through them in (beta, log fraction)."""
    if seen[-1][0] == seen[-2][0]:
        return seen[-1][1]
    (b0, f0, _), (b1, f1, _) = seen[-2], seen[-1]
    return np.exp(np.log(f1) + (np.log(f1) - np.log(f0)) * (beta - b1) / (b1 - b0))


def gain_row(alpha, betas, *args):
    """One row (fixed alpha) of ``gain_map``, the lr search of each cell started from the previous cells' optima
    (``gain_map``; the first cell walks from the lattice's middle): a list, per beta, of the cell's dict of per-horizon
    arrays (risk_<x>, <param>_<x>) and the flags edge, valid, or the text of the exception the cell raised (the other
    cells go on)."""
    near = {"a": [], "b": []}  # per optimizer, the row's last two cells: (beta, optimal lr fractions, curvatures)
    row = []
    for beta in betas:
        try:
            row.append(_cell(alpha, beta, *args, near))
        except Exception as e:  # noqa: BLE001  (a bad cell is recorded, never raised)
            row.append(f"alpha={alpha:g}, beta={beta:g}: {type(e).__name__}: {e}")
            near = {"a": [], "b": []}
    return row


def gain_map(alphas, betas, opt_a, opt_b, steps: int, *, d: int = 1000, m: int | None = None, noise=None,
             horizons=None, points: int = 16, refine: int | None = None, over_a=("lr",), over_b=("lr",),
             per: str = "steps", executor=None, progress: bool = True):
    """Risk ratio of ``opt_a`` to ``opt_b``, each at its theory-optimal hyperparameters (``hd.tune`` over
    ``over_a`` / ``over_b``; the given values only start the search) per horizon, on the power laws (alpha, beta);
    see the module docstring. ``horizons`` (default ``horizons_grid(steps)``) count steps, or samples with
    ``per="samples"`` (each optimizer then runs horizon / (batch x workers) steps: LA-DiLoCo vs SGD at equal
    samples; they must then be whole numbers of each optimizer's updates). ``m``: outputs of the matrix problems
    (default d). ``points``, ``refine``: the lr lattice and the most solves of each horizon's refinement
    (default ``hd.tuning.REFINE``; ``hd.tuning.lr_search``, accuracy in docs/derivations/tuning.md). Along a row
    each lr search starts from the cells before it: the first walks the lattice from its middle, the second from
    the first's optima, and from the third on each horizon is searched locally around the line through the two
    previous cells' optima (in beta, log lr), with the previous cell's curvature. ``executor``: a
    concurrent.futures-style executor (``submit``) to spread the rows (fixed alpha) over, e.g. a
    ``ProcessPoolExecutor`` or a Dask ``Client``; None = in process; the result does not depend on it.
    Returns an ``xarray.Dataset`` with ``ratio``, ``risk_a``, ``risk_b`` and each tuned hyperparameter
    (``lr_a``, ``clip_b``, ...) on (alpha, beta, horizon), and ``phase``, ``edge`` (a tuned value on its search
    range's edge somewhere) and ``valid`` (False where a tuned curve left its theory's validity, or where
    2 alpha + 2 beta <= 1 leaves the problem without a d -> infinity limit) on (alpha, beta). A cell that raises
    stays NaN with phase ``error``; ``attrs["errors"]`` holds the messages. Phase labels: ``phase_label``."""
    import xarray as xr

    from .sweeps import run_tasks
    from .tuning import _check_over

    if per not in ("steps", "samples"):
        raise ValueError(f"per must be 'steps' or 'samples', got {per!r}")
    over_a, over_b = _check_over(opt_a, over_a), _check_over(opt_b, over_b)
    if "batch" in over_a + over_b:
        raise ValueError("gain_map tunes continuous hyperparameters only (batch changes the horizons' meaning)")
    alphas = np.atleast_1d(np.asarray(alphas, dtype=np.float64))
    betas = np.atleast_1d(np.asarray(betas, dtype=np.float64))
    if horizons is None:  # log-spaced, rounded up to whole updates of both optimizers
        unit = math.lcm(*(o.steps_per_update * (o.samples_per_step if per == "samples" else 1) for o in (opt_a, opt_b)))
        hz = np.unique(-(-horizons_grid(steps)[1:] // unit) * unit)
    else:
        hz = np.asarray(horizons, dtype=np.int64)
    for opt in (opt_a, opt_b):
        _steps_of(opt, hz, per)  # bad horizons fail before any work
    matrix = opt_a.name in MATRIX_OPTIMIZERS or opt_b.name in MATRIX_OPTIMIZERS
    if refine is None:
        from .tuning import REFINE as refine
    args = [(a, betas, opt_a, opt_b, hz, d, m, noise, matrix, over_a, over_b, per, points, refine) for a in alphas]
    rows = run_tasks(gain_row, args, executor, progress, desc=f"gain map {opt_a.name} / {opt_b.name}", unit="row")
    shape = (alphas.size, betas.size, hz.size)
    keys = ["risk_a", "risk_b"] + [f"{n}_a" for n in over_a] + [f"{n}_b" for n in over_b]
    out = {k: np.full(shape, np.nan) for k in keys}
    edge = np.zeros(shape[:2], dtype=bool)
    valid = np.zeros(shape[:2], dtype=bool)
    phase = np.full(shape[:2], "error", dtype=object)
    errors = {}
    for i, row in enumerate(rows):
        if isinstance(row, str):  # the executor lost the row: its cells stay NaN with phase "error"
            errors[f"alpha={alphas[i]:g}"] = row
            continue
        for j, res in enumerate(row):
            if isinstance(res, str):  # the cell raised
                errors[f"alpha={alphas[i]:g}, beta={betas[j]:g}"] = res
                continue
            for k in keys:
                out[k][i, j] = res[k]
            edge[i, j], valid[i, j] = res["edge"], res["valid"]
            phase[i, j] = phase_label(res["risk_a"] / res["risk_b"])
    coords = {"alpha": alphas, "beta": betas, "horizon": hz}
    dims3, dims2 = ("alpha", "beta", "horizon"), ("alpha", "beta")
    ds = xr.Dataset({"ratio": (dims3, out["risk_a"] / out["risk_b"]), **{k: (dims3, v) for k, v in out.items()},
                     "phase": (dims2, phase.astype(str)), "edge": (dims2, edge), "valid": (dims2, valid)},
                    coords=coords)
    ds.attrs.update(opt_a=str(opt_a.to_dict()), opt_b=str(opt_b.to_dict()), d=int(d), per=per,
                    m=int(m if m is not None else d) if matrix else 1, noise=str(noise.to_dict() if noise else None),
                    errors=str(errors))
    return ds
