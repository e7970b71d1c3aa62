"""RiskCurve: saving and loading without loss; one suffix rule for save and load; a load that says what it found;
a repr that says what its numbers are."""
import json
import zipfile

import numpy as np
import pytest

import hdtheory as hd
from hdtheory.results import ResultFileError, npz_path


def test_save_load_roundtrip(tmp_path):
    prob = hd.powerlaw(50, 1.0, 0.5, noise=hd.StudentT(0.1, 4))
    curve = hd.solve(prob, hd.SGD(0.3, batch=2, schedule=hd.WarmupCosine(10, 1000)), steps=1000)
    path = curve.save(tmp_path / "c.npz")
    back = hd.RiskCurve.load(path)
    np.testing.assert_array_equal(back.steps, curve.steps)
    np.testing.assert_array_equal(back.risk, curve.risk)
    assert back.status == curve.status and back.sigma2 == curve.sigma2
    assert back.meta["optimizer"]["schedule"]["kind"] == "warmup_cosine"
    assert back.meta == curve.meta  # the file's own bookkeeping ("kind") is not part of meta
    assert not list(tmp_path.glob("*.tmp"))


def _curve():
    return hd.solve(hd.powerlaw(20, 1.0, 0.5, noise=hd.Gaussian(0.1)), hd.SGD(0.2), steps=50)


def test_suffix_rule_is_the_same_for_save_and_load(tmp_path):
    """No suffix: .npz is added (as numpy.savez does), on save and on load alike; .npz is kept (any case);
    another suffix is an error naming the path."""
    c = _curve()
    assert c.save(tmp_path / "x") == str(tmp_path / "x.npz")
    assert (tmp_path / "x.npz").exists() and not (tmp_path / "x").exists()
    assert hd.RiskCurve.load(tmp_path / "x").steps[-1] == 50
    assert hd.RiskCurve.load(str(tmp_path / "x.npz")).steps[-1] == 50
    assert npz_path("a/b.NPZ") == "a/b.NPZ" and npz_path("run") == "run.npz"
    for bad in ("c.json", "c.npy", "run.v2"):
        with pytest.raises(ValueError, match=f"{bad}.*npz"):
            c.save(tmp_path / bad)
        with pytest.raises(ValueError, match=f"{bad}.*npz"):
            hd.RiskCurve.load(tmp_path / bad)
    # a file without the suffix is pointed at, not silently read
    (tmp_path / "bare").write_bytes((tmp_path / "x.npz").read_bytes())
    with pytest.raises(FileNotFoundError, match="bare.npz.*without the suffix"):
        hd.RiskCurve.load(tmp_path / "bare")


def test_save_errors_name_the_users_path(tmp_path):
    c = _curve()
    with pytest.raises(FileNotFoundError, match="nope/c.npz.*does not exist"):
        c.save(tmp_path / "nope" / "c.npz")
    (tmp_path / "d.npz").mkdir()
    with pytest.raises(IsADirectoryError, match="d.npz"):
        c.save(tmp_path / "d.npz")
    assert not list(tmp_path.glob("*.tmp"))


def test_load_says_what_kind_of_file_it_found(tmp_path):
    import validation

    c = _curve()
    good = tmp_path / "good.npz"
    c.save(good)
    cases = {}
    (tmp_path / "empty.npz").write_bytes(b"")
    cases["empty.npz"] = "an empty file"
    (tmp_path / "text.npz").write_text('{"steps": [0, 1]}')
    cases["text.npz"] = "JSON or other text"
    (tmp_path / "img.npz").write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 20)
    cases["img.npz"] = "a PNG image"
    np.save(tmp_path / "arr.npy", np.arange(3))
    (tmp_path / "arr.npz").write_bytes((tmp_path / "arr.npy").read_bytes())
    cases["arr.npz"] = r"single NumPy array \(.npy\)"
    (tmp_path / "cut.npz").write_bytes(good.read_bytes()[:200])
    cases["cut.npz"] = "corrupt or truncated .npz"
    np.savez(tmp_path / "foreign.npz", x=np.arange(3), y=np.ones(2))
    cases["foreign.npz"] = r"arrays \['x', 'y'\] but was not written by hdtheory.*no hdtheory metadata"
    np.savez(tmp_path / "pickled.npz", meta=np.array([{"a": 1}], dtype=object))
    cases["pickled.npz"] = "pickled Python objects"
    np.savez(tmp_path / "badmeta.npz", meta=np.array("not json"), steps=np.arange(2), risk=np.ones(2))
    cases["badmeta.npz"] = "not hdtheory's JSON metadata"
    np.savez(tmp_path / "norisk.npz", meta=np.array(json.dumps({"status": "ok"})), steps=np.arange(2))
    cases["norisk.npz"] = "lacks 'risk'"
    for name, match in cases.items():
        with pytest.raises(ResultFileError, match=match):
            hd.RiskCurve.load(tmp_path / name)
    with pytest.raises(FileNotFoundError, match="no such results file"):
        hd.RiskCurve.load(tmp_path / "missing.npz")
    # the other kind of hdtheory file
    p = hd.powerlaw(20, 1.0, 0.5, noise=hd.Gaussian(0.1))
    sim = validation.simulate(p, hd.SGD(0.2), steps=20, seeds=3)
    spath = sim.save(tmp_path / "sim")
    with pytest.raises(ResultFileError, match=r"SimulatedRisk file \(3 seeds x \d+ points\).*validation.SimulatedRisk.load"):
        hd.RiskCurve.load(spath)
    from hdtheory.results import read_npz

    with pytest.raises(ResultFileError, match="a RiskCurve file.*hd.RiskCurve.load"):
        read_npz(good, expect="SimulatedRisk")
    assert zipfile.is_zipfile(good)


def test_repr_and_describe_say_what_the_numbers_are():
    c = _curve()
    r = repr(c)
    assert "final risk" in r and "excess risk" in r and "risk - sigma^2/2" in r and "status='ok'" in r
    assert f"{c.risk[-1]:.4g}" in r and f"{c.excess_risk[-1]:.4g}" in r
    assert "risk R = " in c.describe() and "excess risk R - sigma^2/2 = " in c.describe()
    p = hd.powerlaw(50, 0.75, 0.5, noise=hd.Gaussian(0.1))
    d = hd.solve(p, hd.SGD(100.0), steps=300)
    assert d.status == "diverged"
    r = repr(d)
    assert "diverged at step 2" in r and f"last recorded risk {d.risk[-1]:.4g} at step 1" in r
    assert "final risk" not in r and "diverged at step 2" in d.describe()
    one = hd.solve(p, hd.SGD(1e6), steps=300)
    assert one.steps.size == 1 and "(the initial risk)" in repr(one)


def test_validity_flags_round_trip(tmp_path):
    c = hd.RiskCurve(steps=[0, 1, 2], risk=[1.0, 0.5, 0.4], sigma2=0.0, status="outside_validity",
                     message="why", valid=[True, True, False])
    d = hd.RiskCurve.load(c.save(tmp_path / "v"))
    np.testing.assert_array_equal(d.valid, [True, True, False])
    assert d.status == "outside_validity" and "outside the theory's validity: why" in d.describe()
    assert not d.diverged
    with pytest.raises(ValueError, match="valid"):
        hd.RiskCurve(steps=[0, 1], risk=[1.0, 0.5], sigma2=0.0, valid=[True])
