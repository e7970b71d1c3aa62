"""Benchmark output: every line printed is also written to ``benchmarks/results/<script>.txt`` with the machine,
the package version and the git commit it was measured on (written atomically when the script ends)."""
from __future__ import annotations

import atexit
import datetime
import os
import pathlib
import platform
import subprocess
import sys

RESULTS = pathlib.Path(__file__).resolve().parent / "results"


class Report:
    def __init__(self, name: str, argv=None):
        self.path = RESULTS / f"{name}.txt"
        self.lines = [f"# {name} {' '.join(argv if argv is not None else sys.argv[1:])}".rstrip(), f"# {_where()}"]
        atexit.register(self.write)

    def __call__(self, text: str = ""):
        print(text, flush=True)
        self.lines.append(text)

    def write(self):
        RESULTS.mkdir(exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("\n".join(self.lines) + "\n")
        os.replace(tmp, self.path)


def _where() -> str:
    import hdtheory

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=RESULTS.parent, timeout=10).stdout.strip() or "unknown"
    except OSError:
        commit = "unknown"
    return (f"{datetime.date.today()} hdtheory {hdtheory.__version__} commit {commit} {platform.machine()} "
            f"{os.cpu_count()} cores python {platform.python_version()}")
