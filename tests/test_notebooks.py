"""The notebooks: each notebooks/<name>.py (jupytext percent format) is the source of notebooks/<name>.ipynb.

(a) every source has a paired .ipynb with the same cells (rebuild with ``python notebooks/build.py``);
(b) every committed .ipynb carries its outputs, with at least one figure;
(c) every source executes without error in fast mode (HDTHEORY_FAST=1, MPLBACKEND=Agg).
"""
import pathlib

import jupytext
import pytest
from nbclient import NotebookClient

NOTEBOOK_DIR = pathlib.Path(__file__).resolve().parent.parent / "notebooks"
SOURCES = sorted(p for p in NOTEBOOK_DIR.glob("*.py") if p.name != "build.py")
IPYNBS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
REBUILD = "run `python notebooks/build.py` to regenerate the notebooks from their .py sources"


def _cells(nb):
    return [(c.cell_type, c.source.strip()) for c in nb.cells]


def test_notebooks_exist():
    assert SOURCES, "no notebook sources in notebooks/"


def test_every_ipynb_has_a_source():
    orphans = [p.name for p in IPYNBS if not p.with_suffix(".py").is_file()]
    assert not orphans, f"notebooks without a .py source: {orphans}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.stem)
def test_ipynb_matches_source(path):
    ipynb = path.with_suffix(".ipynb")
    assert ipynb.is_file(), f"{ipynb.name} is missing: {REBUILD}"
    src, nb = jupytext.read(path, fmt="py:percent"), jupytext.read(ipynb)
    formats = nb.metadata.get("jupytext", {}).get("formats", "")
    assert "py:percent" in formats, f"{ipynb.name} is not paired with its .py source (jupytext formats {formats!r}): {REBUILD}"
    a, b = _cells(src), _cells(nb)
    assert len(a) == len(b), f"{path.name} has {len(a)} cells, {ipynb.name} {len(b)}: {REBUILD}"
    differ = [i for i, (x, y) in enumerate(zip(a, b)) if x != y]
    if differ:
        pytest.fail(f"cells {differ} of {ipynb.name} differ from {path.name}: {REBUILD}", pytrace=False)


@pytest.mark.parametrize("path", IPYNBS, ids=lambda p: p.stem)
def test_ipynb_has_outputs(path):
    nb = jupytext.read(path)
    code = [c for c in nb.cells if c.cell_type == "code"]
    outputs = [o for c in code for o in c.get("outputs", [])]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    errors = [o for o in outputs if o.output_type == "error"]
    assert images, f"{path.name} has no figure outputs: {REBUILD}"
    assert not errors, f"{path.name} was saved with an error output: {REBUILD}"
    unexecuted = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.get("execution_count") is None]
    assert not unexecuted, f"{path.name}: cells {unexecuted} were not executed: {REBUILD}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.stem)
def test_notebook_executes_fast(path, monkeypatch):
    monkeypatch.setenv("HDTHEORY_FAST", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = jupytext.read(path, fmt="py:percent")
    NotebookClient(nb, timeout=600, kernel_name="python3", record_timing=False,
                   resources={"metadata": {"path": str(NOTEBOOK_DIR)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
