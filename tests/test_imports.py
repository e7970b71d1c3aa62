"""The package's layering: no import cycles, light modules stay light, namespaces load on first use."""
import subprocess
import sys

import pytest

import hdtheory

MODULES = ["hdtheory.checks", "hdtheory.schedules", "hdtheory.noise", "hdtheory.grid", "hdtheory.results",
           "hdtheory.problems", "hdtheory.optimizers", "hdtheory.theory", "hdtheory.stepping", "hdtheory.driver",
           "hdtheory.thresholds", "hdtheory.tuning", "hdtheory.sweeps", "hdtheory.phases", "hdtheory.random_features",
           "hdtheory.compute_optimal", "hdtheory.plotting", "hdtheory.cli",
           "hdtheory.theories.sgd", "hdtheory.theories.clipped_sgd", "hdtheory.theories.signsgd",
           "hdtheory.theories.la_diloco", "validation", "validation.simulate", "validation.compare",
           "validation.thresholds"]


def _loaded_after(module: str) -> set:
    code = f"import sys, {module}; print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in ('hdtheory', 'validation', 'jax', 'numba'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return set(out.stdout.split())


@pytest.mark.parametrize("module", MODULES)
def test_every_module_imports_on_its_own(module):
    """Each module imports first, in a fresh interpreter (an import cycle fails here for some entry point)."""
    _loaded_after(module)


def test_light_modules_load_no_theory_and_no_jax():
    for module in ("hdtheory.grid", "hdtheory.schedules", "hdtheory.problems", "hdtheory.optimizers",
                   "hdtheory.results", "hdtheory.theory"):
        loaded = _loaded_after(module)
        assert not any(m.startswith("hdtheory.theories") for m in loaded), (module, loaded)
        assert "jax" not in loaded and "numba" not in loaded, (module, loaded)


def test_the_package_loads_optimizer_namespaces_on_first_use():
    loaded = _loaded_after("hdtheory")
    assert "jax" not in loaded
    assert not any(m.startswith(("hdtheory.theories.clipped_sgd", "hdtheory.theories.signsgd",
                                 "hdtheory.theories.la_diloco")) for m in loaded)
    for name in ("clipped_sgd", "signsgd", "la_diloco", "tuning"):
        assert getattr(hdtheory, name).__name__.endswith(name)
