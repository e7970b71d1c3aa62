"""SignSVD and Muon theory vs simulation on the reference cases, and the cost of a theory step vs a simulated step.

Cases (m = 2n outputs, W_0 = 0, Haar-orthonormal target): isotropic n = 200 at lr = 0.2 and B = 1, 4, 16, 64; power
law alpha = 1, beta = 1/2 (n = 200, lr = 0.02) at B = 1 (3000 steps) and B = 8 (1000 steps), noiseless and with
m sigma^2 = 1; Muon at B = 1, 8 and 16. Prints the worst |theory / simulation - 1| over the record grid with the
simulation's standard error there, the closure in force and the time per step of both engines.

    python benchmarks/signsvd_checks.py [--seeds 16] [--quick]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from _report import Report

import hdtheory as hd
import validation


def cases(quick: bool):
    n = 100 if quick else 200
    iso = hd.matrix_isotropic(n, 2 * n, seed=1)
    pl = hd.matrix_powerlaw(n, 2 * n, 1.0, 0.5, seed=0)
    pln = hd.matrix_powerlaw(n, 2 * n, 1.0, 0.5, noise=hd.Gaussian(1 / np.sqrt(2 * n)), seed=0)
    out = [(f"isotropic n={n} SignSVD B={B}", iso, hd.SignSVD(0.2, batch=B), 1200) for B in (1, 4, 16, 64)]
    out += [("power law SignSVD B=1 sigma=0", pl, hd.SignSVD(0.02), 3000),
            ("power law SignSVD B=1 m sigma^2=1", pln, hd.SignSVD(0.02), 3000),
            ("power law SignSVD B=8 sigma=0", pl, hd.SignSVD(0.02, batch=8), 1000),
            ("power law SignSVD B=8 m sigma^2=1", pln, hd.SignSVD(0.02, batch=8), 1000),
            ("power law Muon B=1 m sigma^2=1", pln, hd.Muon(0.02), 3000),
            ("power law Muon B=8 m sigma^2=1", pln, hd.Muon(0.02, batch=8), 1000),
            ("power law Muon B=8 sigma=0", pl, hd.Muon(0.02, batch=8), 1000),
            (f"isotropic n={n} Muon B=16", iso, hd.Muon(0.2, batch=16), 600)]
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=16)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    rep = Report("signsvd_checks")
    rep(f"{'case':40s} {'worst':>7s} {'se':>6s} {'at k':>6s} {'valid':>6s} {'theory/step':>12s} {'sim/step/seed':>14s}")
    for name, p, opt, steps in cases(args.quick):
        hd.solve(p, opt, 2)  # compile
        t0 = time.perf_counter()
        curve = hd.solve(p, opt, steps)
        t1 = time.perf_counter()
        sim = validation.simulate(p, opt, grid=curve.steps, seeds=args.seeds, key=11)
        t2 = time.perf_counter()
        r = curve.risk / sim.mean
        se = sim.sem / sim.mean
        ok = curve.valid
        i = int(np.argmax(np.where(ok, np.abs(r - 1), -1)))
        rep(f"{name:40s} {abs(r[i] - 1):7.4f} {se[i]:6.3f} {int(curve.steps[i]):6d} {ok.mean():6.2f} "
            f"{(t1 - t0) / steps * 1e6:10.1f}us {(t2 - t1) / steps / args.seeds * 1e6:12.1f}us")
        if not ok.all():
            j = int(np.argmax(~ok))
            rep(f"{'':40s} outside validity from k = {int(curve.steps[j])}: worst there {np.max(np.abs(r[~ok] - 1)):.4f}")


if __name__ == "__main__":
    main()
