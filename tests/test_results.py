"""RiskCurve: saving and loading without loss."""

import numpy as np

import hdtheory as hd


def test_save_load_roundtrip(tmp_path):
    prob = hd.powerlaw(50, 1.0, 0.5, noise=hd.StudentT(0.1, 4))
    curve = hd.solve(prob, hd.SGD(0.3, batch=2, schedule=hd.WarmupCosine(10, 1000)), steps=1000)
    path = curve.save(tmp_path / "c.npz")
    back = hd.RiskCurve.load(path)
    np.testing.assert_array_equal(back.steps, curve.steps)
    np.testing.assert_array_equal(back.risk, curve.risk)
    assert back.status == curve.status and back.sigma2 == curve.sigma2
    assert back.meta["optimizer"]["schedule"]["kind"] == "warmup_cosine"
    assert not list(tmp_path.glob("*.tmp"))
