"""Command line: ``hdtheory compare ...`` runs theory vs simulation and writes a plot.

Example::

    hdtheory compare --problem powerlaw --d 1000 --alpha 1.0 --beta 0.7 --noise gaussian:0.1 \\
        --optimizer sgd --lr-frac 0.5 --batch 4 --steps 10000 --seeds 16 --out risk.png
"""
from __future__ import annotations

import argparse
import sys
import time


def _problem(args):
    import hdtheory as hd
    from hdtheory.noise import parse_noise

    noise = parse_noise(args.noise)
    if args.problem == "powerlaw":
        return hd.powerlaw(args.d, args.alpha, args.beta, noise=noise)
    if args.problem == "isotropic":
        return hd.isotropic(args.d, noise=noise)
    raise ValueError(f"unknown problem {args.problem!r}")


def _optimizer(args, problem):
    import hdtheory as hd

    if args.optimizer != "sgd":
        raise ValueError(f"unknown optimizer {args.optimizer!r} (available: sgd)")
    if (args.lr is None) == (args.lr_frac is None):
        raise ValueError("give exactly one of --lr and --lr-frac")
    lr = args.lr
    if lr is None:
        lr = args.lr_frac * hd.stability_threshold(problem, hd.SGD(1.0, batch=args.batch))
    return hd.SGD(lr=lr, batch=args.batch)


def cmd_compare(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import hdtheory as hd
    import validation

    prob = _problem(args)
    opt = _optimizer(args, prob)
    lr_c = hd.stability_threshold(prob, opt)
    print(f"problem: {args.problem} d={prob.d} trK={prob.trace:.4g} lambda_max={prob.lambda_max:.4g} "
          f"sigma^2={prob.sigma2:.4g}")
    print(f"optimizer: {opt}   stability threshold lr* = {lr_c:.6g} (lr/lr* = {opt.lr / lr_c:.3f})")
    grid = hd.step_grid(args.steps, per_decade=args.per_decade)
    t0 = time.perf_counter()
    curve = hd.solve(prob, opt, grid=grid)
    t1 = time.perf_counter()
    print(f"theory: {curve} in {t1 - t0:.3f} s")
    sim = validation.simulate(prob, opt, grid=grid, seeds=args.seeds, key=args.seed, progress=not args.quiet)
    t2 = time.perf_counter()
    print(f"simulation: {args.seeds} seeds x {args.steps} steps on {sim.meta['device']} in {t2 - t1:.2f} s")
    rep = validation.compare(curve, sim)
    print(f"agreement: {rep.summary()}")
    ax = hd.plot(curve, sim)
    ax.set_title(f"{opt.name.upper()} lr={opt.lr:.4g} B={opt.batch} on {args.problem} d={prob.d}", fontsize=10)
    ax.figure.tight_layout()
    ax.figure.savefig(args.out, dpi=130)
    plt.close(ax.figure)
    print(f"plot written to {args.out}")
    if args.save:
        print(f"curve saved to {curve.save(args.save)}")
    return 0 if rep.ok else 1


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="hdtheory", description="High-dimensional optimizer theory vs simulation")
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("compare", help="theory vs JAX simulation; prints the agreement and writes a plot")
    c.add_argument("--problem", choices=["powerlaw", "isotropic"], default="powerlaw")
    c.add_argument("--d", type=int, default=1000)
    c.add_argument("--alpha", type=float, default=0.75, help="eigenvalues j^(-2 alpha)")
    c.add_argument("--beta", type=float, default=0.5, help="target coefficients j^(-beta)")
    c.add_argument("--noise", default="gaussian:0.1", help="gaussian:SIGMA | rademacher:SIGMA | student_t:SIGMA:DF")
    c.add_argument("--optimizer", default="sgd")
    c.add_argument("--lr", type=float, default=None, help="step size (per step, applied to theta)")
    c.add_argument("--lr-frac", type=float, default=None, help="step size as a fraction of the stability threshold")
    c.add_argument("--batch", type=int, default=1)
    c.add_argument("--steps", type=int, default=10000)
    c.add_argument("--per-decade", type=int, default=20)
    c.add_argument("--seeds", type=int, default=16)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--out", default="risk.png")
    c.add_argument("--save", default=None, help="also save the theory curve (.npz)")
    c.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    try:
        return cmd_compare(args)
    except ValueError as e:
        print(f"hdtheory: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
