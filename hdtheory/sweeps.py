"""Sweeps: ``hd.solve`` over the Cartesian product of named coordinates, as one labeled ``xarray.Dataset``.

    ds = hd.sweep({"lr": [0.1, 0.3, 1.0], "batch": [1, 4]},
                  lambda lr, batch: (prob, hd.SGD(lr=lr, batch=batch)), steps=10**4)
    ds.risk.sel(lr=0.3, batch=4)            # one curve on the shared record grid
    save_sweep(ds, "lr_batch.nc"); ds2 = load_sweep("lr_batch.nc")

How it runs: ``build(**cell)`` is called **in the calling process** for every cell (so it may be a lambda or a
closure), then each cell's ``(problem, optimizer, grid)`` goes to the module-level ``solve_cell``: in-process when
``executor`` is None, else through ``executor.submit`` (any concurrent.futures-style executor:
``ProcessPoolExecutor``, a Dask ``distributed.Client``). Problems and optimizers are frozen dataclasses, so they
pickle; a cell's numbers are the same bitwise wherever it runs. A progress bar (tqdm) counts finished cells.

What comes back (dims: the coordinates in the order given, then ``step``):

* ``risk``, ``excess_risk`` (float, NaN after a curve stops early), ``valid`` (bool, False where nothing was
  recorded) on (*coords, step);
* ``status`` (``ok``, ``diverged``, ``unstable``, ``outside_validity`` or ``error``), ``message``,
  ``diverged_step`` (-1 where none), ``sigma2`` (the curve's noise variance; NaN for an error), and ``problem`` /
  ``optimizer``: the JSON of each cell's ``to_dict()`` (``""`` where ``build`` failed), on the coordinates;
* attrs: ``problem`` / ``optimizer``: JSON of the ``to_dict()`` entries that are equal in every built cell;
  ``solve_options`` (JSON), ``kind`` and ``hdtheory_version``.

Guarantees: one bad cell never stops the sweep: a diverging or invalid curve keeps its status, and an exception
raised by ``build`` or ``solve`` in a cell makes it ``error`` with the exception in ``message``. Bad input to
``sweep`` itself (coordinates, grid, ``build`` returning something other than ``(problem, optimizer)``) raises at
once. ``save_sweep`` / ``load_sweep`` write and read netCDF-3 through scipy (no extra dependency), atomically, and
the round trip is lossless (integers beyond int32 are stored as exact float64 and restored).
"""
from __future__ import annotations

import errno
import itertools
import json
import keyword
import math
import os
import queue
import tempfile

import numpy as np

from .grid import as_grid, step_grid
from .results import STATUSES, ResultFileError, check_folder, suffixed_path

#: every status a sweep cell can have: a curve's, or ``error`` (build or solve raised)
SWEEP_STATUSES = STATUSES + ("error",)
#: names of the Dataset's own variables and dimension, not allowed as coordinate names
RESERVED = ("step", "risk", "excess_risk", "valid", "status", "message", "diverged_step", "sigma2", "problem",
            "optimizer")
KIND = "hdtheory.sweep"
#: attribute that marks an integer variable stored as float64 in a netCDF-3 file (value: its numpy dtype)
_INT_ATTR = "hdtheory_dtype"


def solve_cell(problem, optimizer, grid, options):
    """One cell, where the executor runs it: ``hd.solve(problem, optimizer, grid=grid, **options)``; an exception
    comes back as its text (a str) instead of a RiskCurve."""
    from .driver import solve

    try:
        return solve(problem, optimizer, grid=grid, **options)
    except Exception as e:  # noqa: BLE001  (a bad cell is recorded, never raised)
        return f"solve raised {type(e).__name__}: {e}"


def _check_coords(coords) -> dict:
    if not isinstance(coords, dict) or not coords:
        raise ValueError(f"coords must be a non-empty dict of coordinate name -> 1-D values, got {coords!r}")
    out = {}
    for name, values in coords.items():
        if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
            raise ValueError(f"coordinate name {name!r} must be a Python identifier (build is called as build(**cell))")
        if name in RESERVED:
            raise ValueError(f"coordinate name {name!r} is taken by the sweep's own variables {RESERVED}")
        if isinstance(values, (str, bytes)) or np.ndim(values) == 0:
            raise ValueError(f"coordinate {name!r} must be a 1-D sequence of values, got {values!r} (wrap a single "
                             "value in a list)")
        arr = np.asarray(values)
        if arr.ndim != 1 or arr.size == 0:
            raise ValueError(f"coordinate {name!r} must be a non-empty 1-D sequence, got shape {arr.shape}")
        if arr.dtype.kind in "US":
            arr = arr.astype(str).astype(object)
        elif arr.dtype.kind not in "biuf":
            bad = type(next(v for v in arr if not isinstance(v, (str, int, float, bool, np.generic)))).__name__ \
                if any(not isinstance(v, (str, int, float, bool, np.generic)) for v in arr) else str(arr.dtype)
            raise ValueError(f"coordinate {name!r} holds {bad} values; coordinates must be numbers, strings or "
                             "booleans (pass labels and map them to objects inside build)")
        if len(set(arr.tolist())) != arr.size:
            raise ValueError(f"coordinate {name!r} has repeated values {arr.tolist()}: each value labels one cell")
        out[name] = arr
    return out


def _build_cell(build, cell: dict):
    """(problem, optimizer), or the error text where build raised. Raises TypeError where build returned
    something else (a bug in build, not a bad cell)."""
    try:
        built = build(**cell)
    except Exception as e:  # noqa: BLE001  (a cell build cannot make is recorded, never raised)
        return f"build raised {type(e).__name__}: {e}"
    if not (isinstance(built, tuple) and len(built) == 2):
        raise TypeError(f"build({_cell_text(cell)}) must return (problem, optimizer), got {_short(built)}")
    problem, opt = built
    if not (hasattr(problem, "sigma2") and hasattr(problem, "to_dict")):
        raise TypeError(f"build({_cell_text(cell)}) returned {_short(problem)} as the problem: expected an hd "
                        "problem (hd.Problem, hd.powerlaw(...), hd.MatrixProblem, ...)")
    if not (hasattr(opt, "steps_per_update") and hasattr(opt, "to_dict") and hasattr(opt, "hyper_at")):
        raise TypeError(f"build({_cell_text(cell)}) returned {_short(opt)} as the optimizer: expected an hd "
                        "optimizer (hd.SGD, hd.ClippedSGD, ...)")
    return problem, opt


def _cell_text(cell: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in cell.items())


def _short(x) -> str:
    text = repr(x)
    return f"{type(x).__name__} {text[:80]}{'...' if len(text) > 80 else ''}"


def _json(x) -> str:
    def default(v):
        if isinstance(v, np.generic):
            return v.item()
        if isinstance(v, np.ndarray):
            return v.tolist()
        return repr(v)

    return json.dumps(x, default=default, sort_keys=True)


def _common(dicts: list) -> dict:
    """The entries equal (as JSON) in every dict."""
    if not dicts:
        return {}
    first = dicts[0]
    return {k: v for k, v in first.items() if all(k in d and _json(d[k]) == _json(v) for d in dicts[1:])}


def _default_grid(steps, built) -> np.ndarray:
    spans = sorted({int(b[1].steps_per_update) for b in built if not isinstance(b, str)})
    span = math.lcm(*spans) if spans else 1
    if steps is not None and int(steps) % span:
        raise ValueError(f"steps = {steps} must be a multiple of {span}, the least common multiple of the cells' "
                         f"steps per update {spans} (the sweep records every cell on one grid); or pass grid=")
    return step_grid(steps, multiple_of=span)


class _NoBar:
    def update(self, n=1):
        pass

    def close(self):
        pass


def run_tasks(fn, tasks, executor=None, progress=True, desc="cells", unit="cell") -> list:
    """[fn(*args) for args in tasks], in order: in process (``executor`` None) or through ``executor.submit``
    (concurrent.futures executors, a Dask ``Client``: anything whose futures have ``result()``), with a progress
    bar (counting ``unit``) that moves as futures finish. A task whose future raises (a dead worker, a failed
    transfer) comes back as the text "the executor raised ..."; ``fn`` itself should catch what it wants recorded."""
    bar = _NoBar()
    if progress:  # tqdm.auto warns in a notebook without ipywidgets even when disabled: import it only when shown
        from tqdm.auto import tqdm

        bar = tqdm(total=len(tasks), desc=desc, unit=unit, leave=False)
    results = [None] * len(tasks)
    try:
        if executor is None:
            for index, args in enumerate(tasks):
                results[index] = fn(*args)
                bar.update()
            return results
        futures = {index: executor.submit(fn, *args) for index, args in enumerate(tasks)}
        done = queue.Queue()
        if all(hasattr(f, "add_done_callback") for f in futures.values()):
            for index, future in futures.items():
                future.add_done_callback(lambda f, index=index: done.put(index))
            order = (done.get() for _ in futures)
        else:
            order = iter(futures)
        try:
            for index in order:
                try:
                    results[index] = futures[index].result()
                except Exception as e:  # noqa: BLE001  (the executor lost the task: a dead worker, a failed transfer)
                    results[index] = f"the executor raised {type(e).__name__}: {e}"
                futures[index] = None  # let the executor forget it
                bar.update()
        except BaseException:
            for future in futures.values():
                if future is not None:
                    future.cancel()
            raise
        return results
    finally:
        bar.close()


def sweep(coords: dict, build, steps: int | None = None, *, grid=None, executor=None, progress: bool = True,
          options: dict | None = None):
    """``hd.solve`` on every cell of the Cartesian product of ``coords``; see the module docstring.

    Parameters
    ----------
    coords : dict
        Coordinate name -> 1-D values (numbers, strings or booleans, each value once); the names are the keyword
        arguments of ``build`` and the leading dims of the result, in this order.
    build : callable
        ``build(**cell) -> (problem, optimizer)``, called in this process (a lambda or closure is fine). An
        exception makes that cell ``error``; returning anything else raises TypeError.
    steps : int
        Horizon; the shared record grid is ``hd.step_grid(steps, multiple_of=L)`` with L the least common multiple
        of the cells' ``steps_per_update`` (for one-step optimizers, the grid ``hd.solve(..., steps=steps)`` uses).
    grid : int array, optional
        Explicit shared record grid (overrides the default; must end at ``steps`` if both are given).
    executor : concurrent.futures-style executor, optional
        None: in-process. Else ``executor.submit(solve_cell, problem, optimizer, grid, options)`` per cell
        (``ProcessPoolExecutor``, ``distributed.Client``, ...); results equal the in-process sweep bitwise.
    progress : bool
        A tqdm progress bar over finished cells.
    options : dict, optional
        Keyword arguments of ``hd.solve`` for every cell (``method``, ``delta``, ``cap``, ...).
    """
    import xarray as xr

    from . import __version__

    coords = _check_coords(coords)
    if not callable(build):
        raise TypeError(f"build must be a callable build(**cell) -> (problem, optimizer), got {_short(build)}")
    options = dict(options or {})
    for bad in ("steps", "grid"):
        if bad in options:
            raise ValueError(f"options must not hold {bad!r}: pass it to sweep itself (all cells share one grid)")
    if grid is not None:
        grid = as_grid(steps, grid)
    elif steps is None:
        raise ValueError("give steps (an integer >= 1) or an explicit grid")
    else:
        as_grid(steps, None)  # validates steps with solve's message

    names = list(coords)
    shape = tuple(coords[n].size for n in names)
    cells = [dict(zip(names, (coords[n][i].item() if isinstance(coords[n][i], np.generic) else coords[n][i]
                              for n, i in zip(names, idx))))
             for idx in itertools.product(*(range(s) for s in shape))]
    built = [_build_cell(build, cell) for cell in cells]
    if grid is None:
        grid = _default_grid(steps, built)

    jobs = [i for i, b in enumerate(built) if not isinstance(b, str)]
    solved = run_tasks(solve_cell, [(built[i][0], built[i][1], grid, options) for i in jobs], executor, progress,
                       f"sweep {' x '.join(names)}")
    results = dict(zip(jobs, solved))

    n, points = len(cells), grid.size
    risk = np.full((n, points), np.nan)
    valid = np.zeros((n, points), dtype=bool)
    status = np.empty(n, dtype=object)
    message = np.empty(n, dtype=object)
    dstep = np.full(n, -1, dtype=np.int64)
    sigma2 = np.full(n, np.nan)
    problem_json = np.full(n, "", dtype=object)
    opt_json = np.full(n, "", dtype=object)
    problems, opts = [], []
    for i, b in enumerate(built):
        if isinstance(b, str):
            status[i], message[i] = "error", b
            continue
        pd, od = b[0].to_dict(), b[1].to_dict()
        problems.append(pd)
        opts.append(od)
        problem_json[i], opt_json[i] = _json(pd), _json(od)
        curve = results[i]
        if isinstance(curve, str):
            status[i], message[i] = "error", curve
            continue
        m = curve.risk.size
        risk[i, :m], valid[i, :m] = curve.risk, curve.valid
        status[i], message[i], sigma2[i] = curve.status, curve.message, float(curve.sigma2)
        if curve.diverged_step is not None:
            dstep[i] = int(curve.diverged_step)

    dims, dims_step = tuple(names), tuple(names) + ("step",)
    risk = risk.reshape(shape + (points,))

    def cellwise(a):
        return a.reshape(shape)

    data = {
        "risk": (dims_step, risk, {"long_name": "risk 1/2 E[(prediction - y)^2] (includes sigma^2/2)"}),
        "excess_risk": (dims_step, risk - 0.5 * cellwise(sigma2)[..., None], {"long_name": "risk - sigma^2/2"}),
        "valid": (dims_step, valid.reshape(shape + (points,)),
                  {"long_name": "recorded and within the theory's validity"}),
        "status": (dims, cellwise(status), {"values": " ".join(SWEEP_STATUSES)}),
        "message": (dims, cellwise(message)),
        "diverged_step": (dims, cellwise(dstep), {"long_name": "step where the risk diverged; -1: it did not"}),
        "sigma2": (dims, cellwise(sigma2), {"long_name": "noise variance of the risk (NaN: error)"}),
        "problem": (dims, cellwise(problem_json), {"long_name": "JSON of problem.to_dict() ('' where build failed)"}),
        "optimizer": (dims, cellwise(opt_json), {"long_name": "JSON of optimizer.to_dict() ('' where build failed)"}),
    }
    xcoords = {name: (name, coords[name]) for name in names}
    xcoords["step"] = ("step", grid.astype(np.int64), {"units": "iterations"})
    attrs = {"kind": KIND, "hdtheory_version": __version__, "problem": _json(_common(problems)),
             "optimizer": _json(_common(opts)), "solve_options": _json(options)}
    return xr.Dataset(data, coords=xcoords, attrs=attrs)


def nc_path(path) -> str:
    """The path ``save_sweep`` writes and ``load_sweep`` reads: unchanged if it ends in ``.nc``, with ``.nc`` added
    if it has no suffix; a ValueError for any other suffix."""
    return suffixed_path(path, ".nc", "sweep")


def _encode(ds):
    """netCDF-3 holds no int64/unsigned integers: store them as float64 (exact below 2^53) marked with their dtype."""
    out = ds.copy()
    for name, var in ds.variables.items():
        if var.dtype.kind in "iu" and var.dtype not in (np.int8, np.int16, np.int32):
            values = np.asarray(var.values)
            if values.size and np.abs(values).max() > 2 ** 53:
                raise ValueError(f"{name!r} holds integers beyond 2^53, which a netCDF-3 file cannot hold exactly")
            attrs = dict(var.attrs, **{_INT_ATTR: str(var.dtype)})
            new = (var.dims, values.astype(np.float64), attrs)
            out = out.assign_coords({name: new}) if name in ds.coords else out.assign({name: new})
    return out


def _decode(ds):
    out = ds
    for name, var in ds.variables.items():
        if _INT_ATTR in var.attrs:
            attrs = {k: v for k, v in var.attrs.items() if k != _INT_ATTR}
            new = (var.dims, np.asarray(var.values).astype(var.attrs[_INT_ATTR]), attrs)
            out = out.assign_coords({name: new}) if name in ds.coords else out.assign({name: new})
    return out


def save_sweep(ds, path) -> str:
    """Write a sweep's Dataset as netCDF-3 (scipy engine) through a temporary file in the same folder and
    ``os.replace``; a name without a suffix gets ``.nc``. Returns the path written."""
    path = check_folder(nc_path(path))
    folder = os.path.dirname(os.path.abspath(path))
    encoded = _encode(ds)
    fd, tmp = tempfile.mkstemp(suffix=".nc.tmp", dir=folder)
    os.close(fd)
    try:
        encoded.to_netcdf(tmp, engine="scipy")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load_sweep(path):
    """Read a file written by ``save_sweep`` (the same suffix rule) into memory; a ``ResultFileError`` where the
    file is not an hdtheory sweep."""
    import xarray as xr

    path = nc_path(path)
    if not os.path.exists(path):
        raise FileNotFoundError(errno.ENOENT, f"no such sweep file: {path!r}")
    try:
        ds = xr.load_dataset(path, engine="scipy")
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise ResultFileError(f"{path!r} could not be read as a netCDF-3 sweep file ({type(e).__name__}: {e})") \
            from None
    if ds.attrs.get("kind") != KIND:
        raise ResultFileError(f"{path!r} is a netCDF file but not an hdtheory sweep (no kind = {KIND!r} attribute)")
    return _decode(ds)
