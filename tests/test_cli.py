"""The command line, run as a user runs it: the installed console script in a subprocess.

Exit codes: 0 done / OK, 1 NOT OK, 2 usage or input error, 3 INCONCLUSIVE (hdtheory/cli.py)."""
import shutil
import subprocess
import sys

import numpy as np
import pytest

import hdtheory as hd
from hdtheory.cli import _parser
from hdtheory.theory import entries

EXE = shutil.which("hdtheory") or str(__import__("pathlib").Path(sys.executable).with_name("hdtheory"))
PNG = b"\x89PNG\r\n\x1a\n"


def run(*args, cwd=None):
    return subprocess.run([EXE, *args], capture_output=True, text=True, cwd=cwd, timeout=600)


def _no_traceback(r):
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout, r.stderr


def test_compare_ok_exits_0_and_names_without_suffix_get_one(tmp_path):
    """A theory within tolerance at 128 seeds (the setting of tests/validation/test_verdict.py): OK, exit 0;
    ``--out noext`` writes noext.png and ``--save c`` writes c.npz, and the output names those files."""
    r = run("compare", "sgd", "--problem", "isotropic", "--d", "200", "--noise", "gaussian:0.5", "--lr-frac", "0.5",
            "--steps", "600", "--per-decade", "10", "--seeds", "128", "--out", "noext", "--save", "c", "--quiet",
            cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "agreement: OK" in r.stdout and "plot written to noext.png" in r.stdout
    assert "curve saved to c.npz" in r.stdout
    assert (tmp_path / "noext.png").read_bytes()[:8] == PNG and not (tmp_path / "noext").exists()
    curve = hd.RiskCurve.load(tmp_path / "c")  # the same rule on load
    assert curve.steps[-1] == 600 and curve.meta["optimizer"]["name"] == "sgd"
    # the printed numbers say what they are
    assert "risk R = " in r.stdout and "excess risk R - sigma^2/2 = " in r.stdout


def test_compare_not_ok_exits_1_and_warnings_are_one_line(tmp_path):
    """Clipped SGD where its theory is documented not to hold (tr K / lambda_max = 1.08 << B... the model needs
    tr K / lambda_max >> B; measured 20-60% off): NOT OK, exit 1, and the theory's curve says it is outside its
    validity."""
    r = run("compare", "clipped_sgd", "--alpha", "2", "--beta", "0", "--d", "20", "--clip", "0.3", "--lr", "1.0",
            "--steps", "300", "--per-decade", "10", "--seeds", "64", "--out", "c.png", "--quiet", cwd=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "agreement: NOT OK" in r.stdout
    assert "outside the theory's validity" in r.stdout and "tr K / lambda_max >> B" in r.stdout
    assert (tmp_path / "c.png").read_bytes()[:8] == PNG


def test_compare_inconclusive_exits_3_and_says_how_many_seeds(tmp_path):
    r = run("compare", "sgd", "--d", "50", "--steps", "100", "--seeds", "8", "--lr-frac", "0.5", "--quiet",
            "--out", "i.png", cwd=tmp_path)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "agreement: INCONCLUSIVE" in r.stdout and "seeds would decide" in r.stdout
    assert (tmp_path / "i.png").exists()


@pytest.mark.parametrize("args", [["--lr", "100"], ["--lr-frac", "5"]])
def test_compare_divergent_runs_plot_without_traceback(tmp_path, args):
    """Theory and runs both diverge: OK (the theory predicted it), exit 0, a plot and no traceback."""
    r = run("compare", "sgd", "--d", "100", "--steps", "300", "--seeds", "4", *args, "--quiet", "--out", "d.png",
            cwd=tmp_path)
    _no_traceback(r)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "theory (" in r.stdout and "diverged at step" in r.stdout and "both diverged" in r.stdout
    assert (tmp_path / "d.png").read_bytes()[:8] == PNG


def test_solve_diverged_curve_exits_0_and_says_diverged(tmp_path):
    r = run("solve", "sgd", "--d", "100", "--steps", "300", "--lr", "100", "--out", "s.png", "--save", "s.npz",
            cwd=tmp_path)
    _no_traceback(r)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "diverged at step 2" in r.stdout and "last recorded risk R = " in r.stdout
    assert "stops before the horizon 300" in r.stdout
    assert (tmp_path / "s.png").read_bytes()[:8] == PNG
    assert hd.RiskCurve.load(tmp_path / "s.npz").status == "diverged"


@pytest.mark.parametrize("name,flags", [("signsgd", ["--lr", "1e4"]), ("clipped_sgd", ["--clip", "1", "--lr", "1e5"])])
def test_a_large_stationary_risk_is_not_a_divergence(name, flags):
    """Optimizers whose threshold is inf settle at a floor for every lr; at a huge lr that floor is ~1e9 x R(0),
    above a cap of 1e8 x R(0), so the driver's cap also holds the theory's stationary risk: the curve reaches
    the horizon."""
    r = run("solve", name, "--d", "100", "--steps", "2000", *flags)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "diverged" not in r.stdout and "at step 2000" in r.stdout


def test_every_registered_optimizer_has_every_command():
    parser = _parser()
    sub = next(a for a in parser._actions if a.dest == "cmd")
    for cmd in ("solve", "compare", "threshold", "tune"):
        osub = next(a for a in sub.choices[cmd]._actions if a.dest == "optimizer")
        assert set(osub.choices) == {e.name for e in entries()}


@pytest.mark.parametrize("name", [e.name for e in entries()])
def test_every_optimizer_solves_with_its_defaults(tmp_path, name):
    r = run("solve", name, "--d", "50", "--steps", "200", "--lr", "0.01", "--out", str(tmp_path / "c.png"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "theory (" in r.stdout and (tmp_path / "c.png").exists()


def test_list_help_and_version():
    r = run("list")
    assert r.returncode == 0
    for e in entries():
        assert e.name in r.stdout
    assert "powerlaw" in r.stdout and "isotropic" in r.stdout and "student_t:SIGMA:DF" in r.stdout
    assert "exit codes" in r.stdout
    h = run("compare", "sgd", "--help")
    assert h.returncode == 0 and "3  compare: INCONCLUSIVE" in h.stdout
    v = run("--version")
    assert v.returncode == 0 and v.stdout.startswith("hdtheory ")


@pytest.mark.parametrize("args,named", [
    (["--lr", "-1"], "--lr"),
    (["--lr", "0"], "--lr"),
    (["--lr-frac", "0"], "--lr-frac"),
    (["--batch", "0", "--lr", "0.1"], "--batch 0"),
    (["--noise", "cauchy:1", "--lr", "0.1"], "--noise"),
    (["--noise", "gaussian", "--lr", "0.1"], "gaussian needs sigma"),
    (["--noise", "student_t:0.3", "--lr", "0.1"], "student_t needs df"),
    (["--noise", "gaussian:0.1:3", "--lr", "0.1"], "takes 1 field"),
    (["--noise", "gaussian:abc", "--lr", "0.1"], "gaussian sigma must be a number, got 'abc'"),
    (["--lr", "0.1", "--lr-frac", "0.5"], "--lr-frac"),
    (["--lr", "0.1", "--schedule", "cosine:3"], "--schedule"),
    (["--lr", "0.1", "--schedule", "warmup_cosine:a:10"], "warmup_cosine:WARMUP:TOTAL"),
    (["--lr", "0.1", "--alpha", "-1"], "--alpha"),
    (["--lr", "0.1", "--steps", "0"], "--steps"),
    (["--lr", "0.1", "--out", "x.jpg"], "--out"),
    (["--lr", "0.1", "--out", "/nonexistent/folder/x.png"], "does not exist"),
    (["--lr", "0.1", "--save", "c.json"], "--save 'c.json'"),
    (["--lr", "0.1", "--save", "/nonexistent/c.npz"], "does not exist"),
    (["--lr", "0.1", "--out", "."], "not a file name"),
])
def test_bad_input_is_named_and_exits_2(tmp_path, args, named):
    r = run("solve", "sgd", "--d", "20", "--steps", "10", *args, cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "error" in r.stderr and named in r.stderr, r.stderr
    _no_traceback(r)
    assert not list(tmp_path.glob("*.png")) and not list(tmp_path.glob("*.npz"))


def test_compare_checks_outputs_and_seeds_before_simulating(tmp_path):
    for args, named in ((["--out", "/nonexistent/x.png"], "does not exist"), (["--seeds", "0"], "--seeds"),
                        (["--save", "x.txt"], "--save")):
        r = run("compare", "sgd", "--d", "20", "--steps", "10", "--lr", "0.1", *args, cwd=tmp_path)
        assert r.returncode == 2 and named in r.stderr, r.stderr
        assert "simulation" not in r.stdout and "theory (" not in r.stdout


def test_lr_frac_without_a_finite_threshold_is_refused(tmp_path):
    r = run("solve", "signsgd", "--d", "20", "--steps", "10", "--lr-frac", "0.5", cwd=tmp_path)
    assert r.returncode == 2 and "no finite stability threshold" in r.stderr and "--lr-frac" in r.stderr


def test_inadmissible_power_law_warns_on_one_line(tmp_path):
    r = run("solve", "sgd", "--d", "50", "--alpha", "0.25", "--beta", "0.25", "--steps", "10", "--lr", "0.05")
    assert r.returncode == 0, r.stderr
    assert "hdtheory: warning: powerlaw(alpha=0.25, beta=0.25): 2 alpha + 2 beta = 1 <= 1" in r.stderr
    assert np.isfinite(float(r.stdout.split("risk R = ")[1].split()[0]))


def test_matrix_optimizers_default_to_the_matrix_power_law(tmp_path):
    r = run("compare", "signsvd", "--d", "40", "--m", "80", "--noise", "gaussian:0.1", "--lr", "0.03", "--steps", "100",
            "--per-decade", "5", "--seeds", "8", "--quiet", "--out", "m.png", cwd=tmp_path)
    _no_traceback(r)
    assert r.returncode in (0, 3), r.stdout + r.stderr
    assert "matrix_powerlaw n=40 m=80" in r.stdout and (tmp_path / "m.png").read_bytes()[:8] == PNG
    r = run("solve", "muon", "--d", "30", "--ns-coefficients", "3.4445,-4.7750,2.0315", "--ns-dtype", "float64",
            "--lr", "0.05", "--steps", "50", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    r = run("solve", "signsvd", "--problem", "powerlaw", "--d", "30", "--lr", "0.05", "--steps", "50", cwd=tmp_path)
    assert r.returncode == 2 and "matrix problem" in r.stderr


def test_tune_prints_the_tuned_values_and_their_risk(tmp_path):
    r = run("tune", "clipped_sgd", "--d", "100", "--alpha", "0.5", "--beta", "0.5", "--noise", "student_t:1:2.5",
            "--steps", "500", "--over", "lr,clip", "--out", str(tmp_path / "t.png"))
    assert r.returncode == 0, r.stdout + r.stderr
    best = hd.tune(hd.powerlaw(100, 0.5, 0.5, noise=hd.StudentT(1.0, 2.5)), hd.ClippedSGD(1.0), 500,
                   over=("lr", "clip"))
    assert f"clip = {best.params['clip']:.6g}" in r.stdout and f"R = {best.risk:.6g}" in r.stdout
    assert (tmp_path / "t.png").read_bytes().startswith(PNG)
    bad = run("tune", "sgd", "--d", "20", "--steps", "50", "--over", "clip")
    assert bad.returncode == 2 and "no hyperparameter 'clip'" in bad.stderr
    _no_traceback(bad)


def test_tune_where_every_candidate_diverges_exits_2():
    r = run("tune", "sgd", "--lr", "1e6", "--d", "20", "--steps", "50", "--over", "batch")
    assert r.returncode == 2 and "without diverging" in r.stderr and "batch =" not in r.stdout
    _no_traceback(r)
