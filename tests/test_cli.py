"""The command line, run as a user runs it: the installed console script in a subprocess."""
import shutil
import subprocess
import sys

import pytest

from hdtheory.cli import _parser
from hdtheory.theory import entries

EXE = shutil.which("hdtheory") or str(__import__("pathlib").Path(sys.executable).with_name("hdtheory"))


def run(*args, cwd=None):
    return subprocess.run([EXE, *args], capture_output=True, text=True, cwd=cwd, timeout=600)


def test_compare_writes_a_plot_and_the_curve(tmp_path):
    out, save = tmp_path / "risk.png", tmp_path / "c.npz"
    r = run("compare", "sgd", "--problem", "powerlaw", "--d", "300", "--alpha", "0.5", "--beta", "0.25",
            "--noise", "gaussian:0.3", "--lr-frac", "0.5", "--batch", "4", "--steps", "500", "--seeds", "16",
            "--out", str(out), "--save", str(save), "--quiet")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "agreement: OK" in r.stdout
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert save.exists()


def test_every_registered_optimizer_has_every_command():
    parser = _parser()
    sub = next(a for a in parser._actions if a.dest == "cmd")
    for cmd in ("solve", "compare", "threshold"):
        osub = next(a for a in sub.choices[cmd]._actions if a.dest == "optimizer")
        assert set(osub.choices) == {e.name for e in entries()}


@pytest.mark.parametrize("name", [e.name for e in entries()])
def test_every_optimizer_solves_with_its_defaults(tmp_path, name):
    r = run("solve", name, "--d", "50", "--steps", "200", "--lr", "0.01", "--out", str(tmp_path / "c.png"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "theory:" in r.stdout and (tmp_path / "c.png").exists()


def test_list_and_version():
    r = run("list")
    assert r.returncode == 0
    for e in entries():
        assert e.name in r.stdout
    v = run("--version")
    assert v.returncode == 0 and v.stdout.startswith("hdtheory ")


@pytest.mark.parametrize("args,named", [
    (["--lr", "-1"], "lr"),
    (["--batch", "0", "--lr", "0.1"], "batch"),
    (["--noise", "cauchy:1", "--lr", "0.1"], "--noise"),
    (["--lr", "0.1", "--lr-frac", "0.5"], "--lr-frac"),
    (["--lr", "0.1", "--schedule", "cosine:3"], "--schedule"),
    (["--lr", "0.1", "--out", "x.jpg"], "--out"),
    (["--lr", "0.1", "--out", "/nonexistent/folder/x.png"], "does not exist"),
    (["--lr", "0.1", "--save", "c.json"], "--save"),
])
def test_bad_input_is_named_and_exits_2(tmp_path, args, named):
    r = run("solve", "sgd", "--d", "20", "--steps", "10", *args, cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "error" in r.stderr and named in r.stderr
    assert not list(tmp_path.glob("*.png"))


def test_lr_frac_without_a_finite_threshold_is_refused(tmp_path):
    r = run("solve", "signsgd", "--d", "20", "--steps", "10", "--lr-frac", "0.5", cwd=tmp_path)
    assert r.returncode == 2 and "no finite stability threshold" in r.stderr
