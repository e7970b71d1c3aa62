"""hd.sweep: labeled results over a Cartesian product of cells, bad cells recorded, executors bitwise equal to the
in-process sweep, and a lossless netCDF round trip."""
import json
import multiprocessing
from concurrent.futures import Future, ProcessPoolExecutor

import numpy as np
import pytest
import xarray as xr

import hdtheory as hd
from hdtheory.results import ResultFileError
from hdtheory.sweeps import SWEEP_STATUSES, load_sweep, save_sweep, solve_cell

PROB = hd.powerlaw(d=60, alpha=1.0, beta=0.7, noise=hd.Gaussian(0.1))
STEPS = 500


def build_sgd(lr, batch):
    return PROB, hd.SGD(lr=lr, batch=batch)


#: three lrs (the last one diverges at batch 1) x two batches
COORDS = {"lr": [0.1, 0.5, 5.0], "batch": [1, 4]}


@pytest.fixture(scope="module")
def reference():
    return hd.sweep(COORDS, build_sgd, STEPS, progress=False)


def test_dims_coords_variables_and_attrs(reference):
    ds = reference
    assert ds.risk.dims == ("lr", "batch", "step") and ds.status.dims == ("lr", "batch")
    assert ds.valid.dims == ds.excess_risk.dims == ds.risk.dims
    assert ds.sizes["lr"] == 3 and ds.sizes["batch"] == 2
    np.testing.assert_array_equal(ds.lr, COORDS["lr"])
    np.testing.assert_array_equal(ds.batch, COORDS["batch"])
    np.testing.assert_array_equal(ds.step, hd.step_grid(STEPS))
    assert ds.valid.dtype == bool and ds.step.dtype == np.int64
    assert set(ds.status.values.ravel()) <= set(SWEEP_STATUSES)
    np.testing.assert_array_equal(ds.excess_risk, ds.risk - 0.5 * ds.sigma2)
    assert ds.attrs["kind"] == "hdtheory.sweep" and ds.attrs["hdtheory_version"] == hd.__version__
    # attrs hold what every cell shares; the per-cell JSON holds the rest
    assert json.loads(ds.attrs["problem"])["d"] == 60
    shared = json.loads(ds.attrs["optimizer"])
    assert shared["name"] == "sgd" and "lr" not in shared and "batch" not in shared
    cell = json.loads(ds.optimizer.sel(lr=0.5, batch=4).item())
    assert cell["lr"] == 0.5 and cell["batch"] == 4
    assert json.loads(ds.problem.sel(lr=0.5, batch=4).item()) == json.loads(ds.attrs["problem"])


def test_a_cell_equals_a_direct_solve_bitwise(reference):
    curve = hd.solve(PROB, hd.SGD(lr=0.5, batch=4), steps=STEPS)
    cell = reference.sel(lr=0.5, batch=4)
    np.testing.assert_array_equal(cell.risk.values, curve.risk)
    np.testing.assert_array_equal(cell.valid.values, curve.valid)
    assert cell.status.item() == curve.status and cell.message.item() == curve.message
    assert cell.sigma2.item() == curve.sigma2


def test_a_diverging_cell_is_recorded_and_the_sweep_goes_on(reference):
    bad = reference.sel(lr=5.0, batch=1)
    curve = hd.solve(PROB, hd.SGD(lr=5.0, batch=1), steps=STEPS)
    n = curve.risk.size
    assert bad.status.item() == curve.status == "diverged" and bad.message.item() == curve.message
    assert bad.diverged_step.item() == curve.diverged_step
    np.testing.assert_array_equal(bad.risk.values[:n], curve.risk)
    assert np.isnan(bad.risk.values[n:]).all() and not bad.valid.values[n:].any()
    assert reference.status.sel(lr=0.1).values.tolist() == ["ok", "ok"]
    assert reference.diverged_step.sel(lr=0.1).values.tolist() == [-1, -1]


def test_build_and_solve_exceptions_are_error_cells():
    matrix = hd.matrix_powerlaw(n=8, m=8, alpha=1.0, beta=0.5, noise=hd.Gaussian(0.1), seed=0)

    def build(kind, lr):
        if kind == "broken":
            raise RuntimeError(f"no problem for lr={lr}")
        if kind == "mismatch":  # a matrix optimizer on a vector problem: solve raises
            return PROB, hd.SignSVD(lr=lr)
        return (matrix, hd.SignSVD(lr=lr)) if kind == "matrix" else (PROB, hd.SGD(lr=lr))

    ds = hd.sweep({"kind": ["broken", "mismatch", "sgd"], "lr": [0.01, 0.1]}, build, 50, progress=False)
    assert ds.status.sel(kind="broken").values.tolist() == ["error", "error"]
    assert ds.message.sel(kind="broken", lr=0.1).item() == "build raised RuntimeError: no problem for lr=0.1"
    assert ds.problem.sel(kind="broken", lr=0.1).item() == "" and np.isnan(ds.sigma2.sel(kind="broken")).all()
    assert ds.status.sel(kind="mismatch").values.tolist() == ["error", "error"]
    assert ds.message.sel(kind="mismatch", lr=0.1).item().startswith("solve raised ")
    assert np.isnan(ds.risk.sel(kind="mismatch")).all() and not ds.valid.sel(kind="mismatch").any()
    assert ds.status.sel(kind="sgd").values.tolist() == ["ok", "ok"]
    # the attrs hold only what the built cells share: the problem differs in nothing, the optimizers in name
    assert "name" not in json.loads(ds.attrs["optimizer"])


def test_an_outside_validity_cell_records_its_status():
    iso = hd.isotropic(100, noise=hd.Gaussian(0.1))
    ds = hd.sweep({"batch": [1, 100]}, lambda batch: (iso, hd.ClippedSGD(lr=0.2, batch=batch, clip=0.1)), 200,
                  progress=False)
    assert ds.status.values.tolist() == ["ok", "outside_validity"]
    assert "lambda_max / tr K" in ds.message.sel(batch=100).item()
    assert ds.valid.sel(batch=1).all() and not ds.valid.sel(batch=100).any()


def test_a_shared_grid_and_optimizers_of_several_steps_per_update():
    def build(opt):
        return PROB, (hd.SGD(lr=0.2) if opt == "sgd" else hd.LADiLoCo(lr=0.2, inner_steps=4))

    ds = hd.sweep({"opt": ["sgd", "diloco"]}, build, 400, progress=False)
    np.testing.assert_array_equal(ds.step, hd.step_grid(400, multiple_of=4))
    assert (ds.status == "ok").all()
    grid = np.array([0, 8, 40, 400])
    ds = hd.sweep({"opt": ["sgd", "diloco"]}, build, grid=grid, progress=False)
    np.testing.assert_array_equal(ds.step, grid)
    np.testing.assert_array_equal(ds.risk.sel(opt="sgd"), hd.solve(PROB, hd.SGD(lr=0.2), grid=grid).risk)
    with pytest.raises(ValueError, match="least common multiple"):
        hd.sweep({"opt": ["sgd", "diloco"]}, build, 402, progress=False)


def test_bad_input_raises_naming_what_is_wrong():
    with pytest.raises(ValueError, match="non-empty dict"):
        hd.sweep({}, build_sgd, 10)
    with pytest.raises(ValueError, match="'lr' must be a 1-D sequence"):
        hd.sweep({"lr": 0.1, "batch": [1]}, build_sgd, 10)
    with pytest.raises(ValueError, match="'lr' must be a non-empty"):
        hd.sweep({"lr": [], "batch": [1]}, build_sgd, 10)
    with pytest.raises(ValueError, match="repeated"):
        hd.sweep({"lr": [0.1, 0.1], "batch": [1]}, build_sgd, 10)
    with pytest.raises(ValueError, match="taken"):
        hd.sweep({"step": [1]}, lambda step: None, 10)
    with pytest.raises(ValueError, match="identifier"):
        hd.sweep({"learning rate": [1]}, lambda **kw: None, 10)
    with pytest.raises(ValueError, match="Gaussian values"):
        hd.sweep({"noise": [hd.Gaussian(0.1), hd.Gaussian(0.2)]}, lambda noise: None, 10)
    with pytest.raises(TypeError, match=r"build\(lr=0.1\) must return \(problem, optimizer\)"):
        hd.sweep({"lr": [0.1]}, lambda lr: hd.SGD(lr=lr), 10, progress=False)
    with pytest.raises(TypeError, match="as the optimizer"):
        hd.sweep({"lr": [0.1]}, lambda lr: (PROB, lr), 10, progress=False)
    with pytest.raises(TypeError, match="as the problem"):
        hd.sweep({"lr": [0.1]}, lambda lr: (hd.SGD(lr=lr), PROB), 10, progress=False)
    with pytest.raises(TypeError, match="callable"):
        hd.sweep({"lr": [0.1]}, "build", 10)
    with pytest.raises(ValueError, match="steps"):
        hd.sweep({"lr": [0.1]}, build_sgd)
    with pytest.raises(ValueError, match="grid"):
        hd.sweep({"lr": [0.1]}, build_sgd, grid=[1, 2])
    with pytest.raises(ValueError, match="options must not hold 'steps'"):
        hd.sweep({"lr": [0.1]}, build_sgd, 10, options={"steps": 3})


def test_solve_options_reach_every_cell():
    ds = hd.sweep({"lr": [0.1]}, lambda lr: (PROB, hd.SGD(lr=lr)), 3000, progress=False, options={"method": "exact"})
    curve = hd.solve(PROB, hd.SGD(lr=0.1), steps=3000, method="exact")
    np.testing.assert_array_equal(ds.risk.sel(lr=0.1), curve.risk)
    assert json.loads(ds.attrs["solve_options"]) == {"method": "exact"}


def test_a_process_pool_equals_the_in_process_sweep_bitwise(reference):
    # spawn: the parent has Numba (and maybe JAX) threads running, which fork does not copy safely
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        ds = hd.sweep(COORDS, build_sgd, STEPS, executor=pool, progress=False)
    xr.testing.assert_identical(ds, reference)


@pytest.fixture
def dask_client():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=True, dashboard_address=None,
                                  silence_logs=40) as cluster, distributed.Client(cluster) as client:
        yield client


def test_a_dask_cluster_equals_the_in_process_sweep_bitwise(reference, dask_client):
    ds = hd.sweep(COORDS, build_sgd, STEPS, executor=dask_client, progress=True)
    xr.testing.assert_identical(ds, reference)


class _InlineExecutor:
    """Runs each submission at once; its futures have no add_done_callback, and one submission fails."""

    class _Done:
        def __init__(self, fn, args):
            self.fn, self.args = fn, args

        def result(self):
            if self.args[1].lr == 0.5:
                raise ConnectionError("worker lost")
            return self.fn(*self.args)

        def cancel(self):
            return False

    def submit(self, fn, *args):
        return self._Done(fn, args)


def test_any_executor_and_a_lost_cell_is_an_error(reference):
    ds = hd.sweep(COORDS, build_sgd, STEPS, executor=_InlineExecutor(), progress=False)
    assert ds.status.sel(lr=0.5).values.tolist() == ["error", "error"]
    assert ds.message.sel(lr=0.5, batch=1).item() == "the executor raised ConnectionError: worker lost"
    xr.testing.assert_identical(ds.drop_sel(lr=0.5), reference.drop_sel(lr=0.5))


def test_a_future_that_fails_through_callbacks_is_an_error():
    class Failing:
        def submit(self, fn, *args):
            f = Future()
            f.set_exception(MemoryError("out of memory on the worker"))
            return f

    ds = hd.sweep({"lr": [0.1, 0.2]}, lambda lr: (PROB, hd.SGD(lr=lr)), 20,
                  executor=Failing(), progress=False)
    assert ds.status.values.tolist() == ["error", "error"]
    assert "MemoryError: out of memory" in ds.message.values[0]


def test_solve_cell_returns_the_exception_text():
    assert solve_cell(PROB, hd.SGD(lr=0.1), np.array([0, 5]), {"method": "nope"}).startswith("solve raised ValueError")


def test_save_and_load_round_trip_is_lossless(reference, tmp_path):
    ds = reference.copy()
    ds["message"] = ds.message.copy(data=np.where(ds.status == "ok", "ünïcode θ × ∞", ds.message).astype(object))
    path = save_sweep(ds, tmp_path / "sweep")
    assert path.endswith("sweep.nc") and sorted(p.name for p in tmp_path.iterdir()) == ["sweep.nc"]
    back = load_sweep(tmp_path / "sweep.nc")
    xr.testing.assert_identical(back, ds)
    for name in ("risk", "valid", "step", "diverged_step", "batch"):
        assert back[name].dtype == ds[name].dtype, name
    assert back.status.values.tolist() == ds.status.values.tolist()
    # error cells (empty JSON, NaN sigma2) and integers beyond int32 (netCDF-3 has no int64) survive too
    errs = hd.sweep({"lr": [0.1, -1.0]}, lambda lr: (PROB, hd.SGD(lr=lr)), 50, progress=False)
    assert errs.status.values.tolist()[1] == "error"
    errs = errs.assign_coords(step=errs.step + 3 * 10**9).assign(diverged_step=errs.diverged_step - 2**40)
    xr.testing.assert_identical(load_sweep(save_sweep(errs, tmp_path / "errs.nc")), errs)
    with pytest.raises(ValueError, match="beyond 2\\^53"):
        save_sweep(errs.assign(diverged_step=errs.diverged_step * 0 + 2**60), tmp_path / "huge.nc")


def test_save_and_load_errors(reference, tmp_path):
    with pytest.raises(ValueError, match=r"\.nc"):
        save_sweep(reference, tmp_path / "sweep.npz")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        save_sweep(reference, tmp_path / "missing" / "sweep.nc")
    with pytest.raises(FileNotFoundError, match="no such sweep file"):
        load_sweep(tmp_path / "nothing.nc")
    (tmp_path / "text.nc").write_text("hello")
    with pytest.raises(ResultFileError, match="could not be read"):
        load_sweep(tmp_path / "text.nc")
    xr.Dataset({"x": ("a", [1.0])}).to_netcdf(tmp_path / "other.nc", engine="scipy")
    with pytest.raises(ResultFileError, match="not an hdtheory sweep"):
        load_sweep(tmp_path / "other.nc")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.nc", "text.nc"]  # no temporary file left


def test_the_package_exports_sweep():
    assert hd.sweep.__module__ == "hdtheory.sweeps" and "sweep" in hd.__all__
