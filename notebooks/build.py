"""Regenerate the notebooks from their sources and execute them, with outputs saved.

The sources are the jupytext percent-format files ``notebooks/<name>.py``; each is paired with
``notebooks/<name>.ipynb`` (jupytext formats ``ipynb,py:percent``). This script rewrites the .ipynb from the
.py and executes it in full mode (``HDTHEORY_FAST`` unset) with the ``python3`` kernel, working directory
``notebooks/``, so that the committed .ipynb show the figures (PNG) and printed numbers::

    python notebooks/build.py                    # every notebook
    python notebooks/build.py signsgd_vs_sgd     # only these (names, with or without .py/.ipynb)
    python notebooks/build.py --no-execute       # only convert (no outputs): quick sync check

Cell ids are derived from the cell index (``cell-0``, ``cell-1``, ... in nbformat 4.5) and execution
timing is not recorded, so rebuilding an unchanged source changes only outputs that are themselves
non-deterministic (printed timings).

Matplotlib: the kernel runs headless with the inline backend (``MPLBACKEND`` =
``module://matplotlib_inline.backend_inline``, which renders with Agg); plain ``MPLBACKEND=Agg`` would
suppress the figure outputs.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

import jupytext
from nbclient import NotebookClient

HERE = pathlib.Path(__file__).resolve().parent
NOT_NOTEBOOKS = {"build.py"}
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
PAIRING = "ipynb,py:percent"
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"


def sources() -> list[pathlib.Path]:
    """The notebook sources: every .py in notebooks/ except this script."""
    return sorted(p for p in HERE.glob("*.py") if p.name not in NOT_NOTEBOOKS)


def read_source(path: pathlib.Path):
    """The notebook of a .py source, with pairing metadata, kernelspec and deterministic cell ids."""
    nb = jupytext.read(path, fmt="py:percent")
    nb.nbformat, nb.nbformat_minor = 4, 5
    nb.metadata["jupytext"] = {"formats": PAIRING}
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i}"
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb


def execute(nb, timeout: int = 1800, fast: bool = False):
    """Run ``nb`` in place with the python3 kernel in notebooks/ (full mode unless ``fast``)."""
    env = {"MPLBACKEND": INLINE_BACKEND, "HDTHEORY_FAST": "1" if fast else None}
    saved = {k: os.environ.get(k) for k in env}
    try:
        for k, v in env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                       resources={"metadata": {"path": str(HERE)}}).execute()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return nb


def build(path: pathlib.Path, run: bool = True, timeout: int = 1800) -> float:
    """Write ``path``'s .ipynb from the .py source (executed unless ``run`` is False); returns seconds taken."""
    t = time.perf_counter()
    nb = read_source(path)
    if run:
        execute(nb, timeout=timeout)
        nb.metadata.pop("widgets", None)
    jupytext.write(nb, path.with_suffix(".ipynb"), fmt="ipynb")
    return time.perf_counter() - t


def _resolve(names: list[str]) -> list[pathlib.Path]:
    if not names:
        return sources()
    out = []
    for name in names:
        p = HERE / (pathlib.Path(name).stem + ".py")
        if not p.is_file() or p.name in NOT_NOTEBOOKS:
            sys.exit(f"build.py: no notebook source {p}")
        out.append(p)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="notebooks to build (default: all)")
    ap.add_argument("--no-execute", action="store_true", help="only convert .py -> .ipynb, without outputs")
    ap.add_argument("--timeout", type=int, default=1800, help="per-cell timeout in seconds (default 1800)")
    args = ap.parse_args(argv)
    for path in _resolve(args.names):
        print(f"{path.stem} ...", end=" ", flush=True)
        dt = build(path, run=not args.no_execute, timeout=args.timeout)
        print(f"{dt:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
