"""The command line: every registered optimizer on every built-in problem, theory alone or against a simulation.

    hdtheory list
    hdtheory solve   sgd --problem powerlaw --d 1000 --lr-frac 0.5 --batch 4 --steps 100000 --out curve.png
    hdtheory compare clipped_sgd --clip 2.0 --batch 4 --steps 10000 --seeds 16 --out risk.png
    hdtheory threshold la_diloco --workers 4 --inner-steps 8

Optimizers and their flags come from the registry and the optimizer dataclasses' fields (a new optimizer
appears here without editing this module). Schedules: ``--schedule warmup_cosine:WARMUP:TOTAL[:FLOOR]``,
``power_decay:POWER[:K0]``, ``piecewise:B1,B2:V0,V1,V2``; a clip level is a number, ``inf`` or
``relative:KAPPA``. The step size is ``--lr`` (per step, applied to the weights), ``--lr-frac`` (a fraction of
the stability threshold), or by default the theory-optimal constant lr for the horizon (``hd.tuning``).

Exit codes: 0 = done (compare: the theory agrees with the simulation), 1 = compare found a disagreement,
2 = usage or input error (named), 3 = the theory curve did not reach the horizon (diverged).
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
import time

EXIT_OK, EXIT_DISAGREE, EXIT_INPUT, EXIT_INCOMPLETE = 0, 1, 2, 3

PROBLEMS = ("powerlaw", "isotropic")


class InputError(ValueError):
    """Bad command-line input; the message names it."""


# ------------------------------------------------------------------------------------------------------
# parsing values
# ------------------------------------------------------------------------------------------------------

def _number(text: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise InputError(f"{what}: expected a number, got {text!r}") from None


def parse_schedule(spec: str | None):
    """``warmup_cosine:W:T[:FLOOR]``, ``power_decay:P[:K0]``, ``piecewise:B1,B2:V0,V1,V2``, ``constant``."""
    from . import schedules

    if spec is None or spec in ("", "none", "constant"):
        return None
    kind, *parts = spec.split(":")
    try:
        if kind == "warmup_cosine" and len(parts) in (2, 3):
            return schedules.WarmupCosine(int(parts[0]), int(parts[1]), *(float(p) for p in parts[2:]))
        if kind == "power_decay" and len(parts) in (1, 2):
            return schedules.PowerDecay(*(float(p) for p in parts))
        if kind == "piecewise" and len(parts) == 2:
            return schedules.Piecewise(tuple(int(b) for b in parts[0].split(",")),
                                       tuple(float(v) for v in parts[1].split(",")))
    except ValueError as e:
        raise InputError(f"--schedule {spec!r}: {e}") from None
    raise InputError(f"--schedule {spec!r}: expected warmup_cosine:WARMUP:TOTAL[:FLOOR], power_decay:POWER[:K0], "
                     "piecewise:B1,B2:V0,V1,V2 or constant")


def parse_clip(spec: str):
    """A clip level: a number, ``inf`` or ``relative:KAPPA``."""
    from .optimizers.clipped_sgd import RelativeClip

    if spec.startswith("relative:"):
        return RelativeClip(_number(spec.split(":", 1)[1], "--clip relative:KAPPA"))
    return _number(spec, "--clip")


#: fields whose values need more than int/float/bool, by field name
FIELD_PARSERS = {"clip": parse_clip}
#: fields every optimizer command handles itself
COMMON_FIELDS = ("lr", "schedule")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _optimizer_fields(cls):
    """(field, default) of the hyperparameters the command line sets for an optimizer dataclass."""
    return [(f, f.default) for f in dataclasses.fields(cls) if f.name not in COMMON_FIELDS]


def _add_optimizer_flags(p, cls):
    for f, default in _optimizer_fields(cls):
        if f.name.endswith("_schedule"):
            p.add_argument(_flag(f.name), default=None, metavar="SPEC", help="a schedule (see --schedule)")
        elif f.name in FIELD_PARSERS:
            p.add_argument(_flag(f.name), default=None, help=f"default {default}")
        elif isinstance(default, bool):
            p.add_argument(_flag(f.name), action=argparse.BooleanOptionalAction, default=default)
        elif isinstance(default, int):
            p.add_argument(_flag(f.name), type=int, default=default, help=f"default {default}")
        else:
            p.add_argument(_flag(f.name), type=float, default=default, help=f"default {default}")


def _build_optimizer(cls, args, lr: float):
    kwargs = {}
    for f, _ in _optimizer_fields(cls):
        value = getattr(args, f.name)
        if f.name.endswith("_schedule"):
            value = parse_schedule(value)
        elif f.name in FIELD_PARSERS and value is not None:
            value = FIELD_PARSERS[f.name](value)
        if value is not None:
            kwargs[f.name] = value
    return cls(lr=lr, schedule=parse_schedule(args.schedule), **kwargs)


# ------------------------------------------------------------------------------------------------------
# checks done before any computation
# ------------------------------------------------------------------------------------------------------

def _check_out(path: str | None, suffix: str, flag: str):
    if path is None:
        return
    if not path.lower().endswith(suffix):
        raise InputError(f"{flag} {path!r}: the file must end in {suffix}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise InputError(f"{flag} {path!r}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise InputError(f"{flag} {path!r}: the folder {folder} is not writable")


def _problem(args):
    import hdtheory as hd
    from .noise import parse_noise

    try:
        noise = parse_noise(args.noise)
    except ValueError as e:
        raise InputError(f"--noise {args.noise!r}: {e}") from None
    if args.problem == "powerlaw":
        return hd.powerlaw(args.d, args.alpha, args.beta, noise=noise)
    return hd.isotropic(args.d, noise=noise)


def _resolve(args):
    """(problem, optimizer, how the lr was chosen) from the parsed arguments."""
    import hdtheory as hd
    from .theory import optimizer_class

    cls = optimizer_class(args.optimizer)
    prob = _problem(args)
    if args.lr is not None and args.lr_frac is not None:
        raise InputError("give at most one of --lr and --lr-frac")
    probe = _build_optimizer(cls, args, 1.0)  # validates every other hyperparameter first
    if args.lr is not None:
        return prob, _build_optimizer(cls, args, args.lr), "given"
    if args.lr_frac is not None:
        if not (math.isfinite(args.lr_frac) and args.lr_frac > 0):
            raise InputError(f"--lr-frac must be a number > 0, got {args.lr_frac}")
        lr_c = hd.stability_threshold(prob, probe)
        if not math.isfinite(lr_c):
            raise InputError(f"--lr-frac: {args.optimizer} has no finite stability threshold here "
                             f"({hd.threshold_reason(prob, probe)}); give --lr")
        return prob, _build_optimizer(cls, args, args.lr_frac * lr_c), f"{args.lr_frac:g} x threshold {lr_c:.6g}"
    steps = getattr(args, "steps", 10000)
    lr = hd.tuning.optimal_lr(prob, probe, steps)
    return prob, _build_optimizer(cls, args, lr), f"theory-optimal constant lr for {steps} steps"


def _describe(prob, opt, how: str):
    import hdtheory as hd

    lr_c = hd.stability_threshold(prob, opt.with_lr(1.0))
    ratio = f"lr/threshold = {opt.lr / lr_c:.3f}" if math.isfinite(lr_c) else hd.threshold_reason(prob, opt)
    print(f"problem: {prob.info.get('constructor', 'problem')} d={prob.d} trK={prob.trace:.4g} "
          f"lambda_max={prob.lambda_max:.4g} sigma^2={prob.sigma2:.4g} initial risk={prob.initial_risk:.4g}")
    print(f"optimizer: {opt}")
    print(f"lr = {opt.lr:.6g} ({how}); stability threshold {lr_c:.6g} ({ratio})")


def _save_plot(ax, path, title):
    import matplotlib.pyplot as plt

    ax.set_title(title, fontsize=10)
    ax.figure.tight_layout()
    ax.figure.savefig(path, dpi=130)
    plt.close(ax.figure)
    print(f"plot written to {path}")


def _title(prob, opt) -> str:
    return f"{opt.name} lr={opt.lr:.4g} on {prob.info.get('constructor', 'problem')} d={prob.d}"


# ------------------------------------------------------------------------------------------------------
# commands
# ------------------------------------------------------------------------------------------------------

def cmd_list(args) -> int:
    from .theory import entries, optimizer_class

    print("optimizers (hdtheory solve|compare|threshold NAME):")
    for e in entries():
        cls = optimizer_class(e.name)
        flags = " ".join(_flag(f.name) for f, _ in _optimizer_fields(cls))
        doc = (cls.__doc__ or "").strip().splitlines()[0]
        print(f"  {e.name:12s} {doc}\n  {'':12s} flags: --lr --lr-frac --schedule {flags}")
    print(f"problems (--problem): {', '.join(PROBLEMS)}")
    print("noise (--noise): gaussian:SIGMA, rademacher:SIGMA, student_t:SIGMA:DF")
    return EXIT_OK


def cmd_solve(args) -> int:
    import hdtheory as hd

    _check_out(args.out, ".png", "--out")
    _check_out(args.save, ".npz", "--save")
    prob, opt, how = _resolve(args)
    _describe(prob, opt, how)
    t0 = time.perf_counter()
    curve = hd.solve(prob, opt, steps=args.steps)
    print(f"theory: {curve} in {time.perf_counter() - t0:.3f} s")
    if args.out:
        _save_plot(hd.plot(curve), args.out, _title(prob, opt))
    if args.save:
        print(f"curve saved to {curve.save(args.save)}")
    return EXIT_OK if curve.steps[-1] == args.steps else EXIT_INCOMPLETE


def cmd_compare(args) -> int:
    import hdtheory as hd
    import validation

    _check_out(args.out, ".png", "--out")
    _check_out(args.save, ".npz", "--save")
    if args.seeds < 1:
        raise InputError(f"--seeds must be >= 1, got {args.seeds}")
    prob, opt, how = _resolve(args)
    _describe(prob, opt, how)
    grid = hd.step_grid(args.steps, per_decade=args.per_decade, multiple_of=opt.steps_per_update)
    t0 = time.perf_counter()
    curve = hd.solve(prob, opt, grid=grid)
    t1 = time.perf_counter()
    print(f"theory: {curve} in {t1 - t0:.3f} s")
    sim = validation.simulate(prob, opt, grid=grid, seeds=args.seeds, key=args.seed, progress=not args.quiet)
    t2 = time.perf_counter()
    print(f"simulation: {args.seeds} seeds x {args.steps} steps on {sim.meta['device']} in {t2 - t1:.2f} s")
    rep = validation.compare(curve, sim)
    print(f"agreement: {rep.summary()}")
    if args.out:
        _save_plot(hd.plot(curve, sim), args.out, _title(prob, opt))
    if args.save:
        print(f"curve saved to {curve.save(args.save)}")
    return EXIT_OK if rep.ok else EXIT_DISAGREE


def cmd_threshold(args) -> int:
    import hdtheory as hd
    from .theory import optimizer_class

    prob = _problem(args)
    opt = _build_optimizer(optimizer_class(args.optimizer), args, 1.0)
    lr_c = hd.stability_threshold(prob, opt)
    reason = hd.threshold_reason(prob, opt)
    print(f"stability threshold of {args.optimizer}: lr* = {lr_c:.10g}" + (f" ({reason})" if reason else ""))
    return EXIT_OK


def _parser():
    from . import __version__
    from .theory import entries, optimizer_class

    p = argparse.ArgumentParser(prog="hdtheory", description="High-dimensional theory of optimizers vs simulation")
    p.add_argument("--version", action="version", version=f"hdtheory {__version__}")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="the optimizers, problems and noise laws that exist").set_defaults(run=cmd_list)
    for name, run, text in [("solve", cmd_solve, "the theory's risk curve (plot and .npz)"),
                            ("compare", cmd_compare, "theory vs JAX simulation: agreement and a plot"),
                            ("threshold", cmd_threshold, "the largest stable lr")]:
        cmd = sub.add_parser(name, help=text)
        osub = cmd.add_subparsers(dest="optimizer", required=True, metavar="OPTIMIZER")
        for e in entries():
            cls = optimizer_class(e.name)
            o = osub.add_parser(e.name, help=(cls.__doc__ or "").strip().splitlines()[0])
            o.set_defaults(run=run)
            o.add_argument("--problem", choices=PROBLEMS, default="powerlaw")
            o.add_argument("--d", type=int, default=1000, help="dimension")
            o.add_argument("--alpha", type=float, default=0.75, help="power law: eigenvalues j^(-2 alpha)")
            o.add_argument("--beta", type=float, default=0.5, help="power law: target coefficients j^(-beta)")
            o.add_argument("--noise", default="gaussian:0.1",
                           help="gaussian:SIGMA | rademacher:SIGMA | student_t:SIGMA:DF")
            if name != "threshold":
                o.add_argument("--lr", type=float, default=None, help="step size (per step, applied to the weights)")
                o.add_argument("--lr-frac", type=float, default=None, help="step size as a fraction of the threshold")
                o.add_argument("--steps", type=int, default=10000)
                o.add_argument("--out", default=None if name == "solve" else "risk.png", help="plot (.png)")
                o.add_argument("--save", default=None, help="also save the theory curve (.npz)")
            if name == "compare":
                o.add_argument("--per-decade", type=int, default=20, help="record points per decade of steps")
                o.add_argument("--seeds", type=int, default=16)
                o.add_argument("--seed", type=int, default=0)
                o.add_argument("--quiet", action="store_true", help="no progress bar")
            o.add_argument("--schedule", default=None, metavar="SPEC", help="lr schedule (module docstring)")
            _add_optimizer_flags(o, cls)
    return p


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.run(args)
    except ValueError as e:  # InputError and the library's own named argument errors
        print(f"hdtheory: error: {e}", file=sys.stderr)
        return EXIT_INPUT


if __name__ == "__main__":
    sys.exit(main())
