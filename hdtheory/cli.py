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

Output files: ``--out`` is a plot (.png, .pdf or .svg; a name without a suffix gets .png), ``--save`` the
theory curve (.npz; a name without a suffix gets .npz, as in ``RiskCurve.save``). Both are checked before
anything is computed, and the messages name the path actually written.

Exit codes (the same for every command):
  0  done; for compare: OK, the theory is within tolerance of the simulation given the Monte-Carlo error.
     solve exits 0 whenever the curve was computed, a diverged one included (the output and the plot say so).
  1  compare: NOT OK, the theory is off by more than the tolerance beyond the Monte-Carlo error.
  2  usage, input or output-path error (the message names the flag and the value).
  3  compare: INCONCLUSIVE, too few seeds to tell (the output says about how many would decide).
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
import re
import sys
import time
import warnings

EXIT_OK, EXIT_DISAGREE, EXIT_INPUT, EXIT_INCONCLUSIVE = 0, 1, 2, 3
#: compare's verdict -> exit code
VERDICT_EXIT = {"ok": EXIT_OK, "not_ok": EXIT_DISAGREE, "inconclusive": EXIT_INCONCLUSIVE}
#: plot formats --out accepts; a name without a suffix gets the first
PLOT_SUFFIXES = (".png", ".pdf", ".svg")

PROBLEMS = ("powerlaw", "isotropic", "matrix_powerlaw", "matrix_isotropic")
#: optimizers that act on a weight matrix: their default problem is the matrix power law
MATRIX_OPTIMIZERS = ("signsvd", "muon")


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


def parse_schedule(spec: str | None, flag: str = "--schedule"):
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
        forms = {"warmup_cosine": "warmup_cosine:WARMUP:TOTAL[:FLOOR] (integers WARMUP, TOTAL)",
                 "power_decay": "power_decay:POWER[:K0]", "piecewise": "piecewise:B1,B2:V0,V1,V2 (integer B)"}
        raise InputError(f"{flag} {spec!r}: write {forms.get(kind, kind)}; {e}") from None
    raise InputError(f"{flag} {spec!r}: expected warmup_cosine:WARMUP:TOTAL[:FLOOR], power_decay:POWER[:K0], "
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


def _float_tuple(text: str) -> tuple:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


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
        elif isinstance(default, str):
            p.add_argument(_flag(f.name), default=default, help=f"default {default}")
        elif isinstance(default, tuple):
            p.add_argument(_flag(f.name), type=_float_tuple, default=default, metavar="A,B,...",
                           help=f"comma-separated numbers, default {','.join(map(str, default))}")
        else:
            p.add_argument(_flag(f.name), type=float, default=default, help=f"default {default}")


def _build_optimizer(cls, args, lr: float, lr_flag: str = "--lr"):
    """The optimizer from the flags; a library error is re-raised naming the flag (and the value) it is about."""
    kwargs = {}
    for f, _ in _optimizer_fields(cls):
        value = getattr(args, f.name)
        if f.name.endswith("_schedule"):
            value = parse_schedule(value, _flag(f.name))
        elif f.name in FIELD_PARSERS and value is not None:
            value = FIELD_PARSERS[f.name](value)
        if value is not None:
            kwargs[f.name] = value
    schedule = parse_schedule(args.schedule)
    try:
        return cls(lr=lr, schedule=schedule, **kwargs)
    except ValueError as e:
        msg = str(e)
        if msg.startswith(("lr ", "lr:")):
            raise InputError(f"{lr_flag}: {msg}") from None
        for f, _ in sorted(_optimizer_fields(cls), key=lambda fd: -len(fd[0].name)):  # clip_schedule before clip
            if re.search(rf"\b{re.escape(f.name)}\b", msg):
                raise InputError(f"{_flag(f.name)} {getattr(args, f.name)!r}: {msg}") from None
        if "schedule" in msg:
            raise InputError(f"--schedule {args.schedule!r}: {msg}") from None
        raise InputError(f"{cls.name}: {msg}") from None


# ------------------------------------------------------------------------------------------------------
# checks done before any computation
# ------------------------------------------------------------------------------------------------------

def plot_path(path: str | None, flag: str = "--out") -> str | None:
    """The plot file ``--out`` writes: .png, .pdf or .svg; a name without a suffix gets .png. Checked
    before any computation (folder exists and is writable, not a folder)."""
    if path is None:
        return None
    if not path or path.endswith(("/", os.sep)) or os.path.isdir(path):
        raise InputError(f"{flag} {path!r}: not a file name")
    suffix = os.path.splitext(path)[1]
    if not suffix:
        path += PLOT_SUFFIXES[0]
    elif suffix.lower() not in PLOT_SUFFIXES:
        raise InputError(f"{flag} {path!r}: a plot must end in {', '.join(PLOT_SUFFIXES)} (or have no suffix, "
                         f"which gets {PLOT_SUFFIXES[0]}), not {suffix!r}")
    _check_folder(path, flag)
    return path


def save_path(path: str | None, flag: str = "--save") -> str | None:
    """The curve file ``--save`` writes, by ``RiskCurve.save``'s rule (.npz; no suffix gets .npz). Checked
    before any computation."""
    from .results import npz_path

    if path is None:
        return None
    if not path or path.endswith(("/", os.sep)) or os.path.isdir(path):
        raise InputError(f"{flag} {path!r}: not a file name")
    try:
        out = npz_path(path)
    except ValueError as e:
        raise InputError(f"{flag} {e}") from None
    _check_folder(out, flag)
    return out


def _check_folder(path: str, flag: str):
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise InputError(f"{flag} {path!r}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise InputError(f"{flag} {path!r}: the folder {folder} is not writable")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise InputError(f"{flag} {path!r}: the file exists and is not writable")


def _outputs(args):
    """Validated (plot, curve) paths of a solve/compare command, and the check that they differ."""
    out, save = plot_path(args.out), save_path(args.save)
    if out and save and os.path.abspath(out) == os.path.abspath(save):
        raise InputError(f"--out and --save name the same file {out!r}")
    return out, save


def _check_counts(args):
    for name in ("steps", "seeds", "per_decade", "d", "m"):
        v = getattr(args, name, None)
        if v is not None and v < 1:
            raise InputError(f"{_flag(name)} must be >= 1, got {v}")


def _problem(args):
    import hdtheory as hd

    from .noise import parse_noise

    try:
        noise = parse_noise(args.noise)
    except ValueError as e:
        raise InputError(f"--noise {args.noise!r}: {e}") from None
    kind = args.problem or ("matrix_powerlaw" if args.optimizer in MATRIX_OPTIMIZERS else "powerlaw")
    m = args.m if args.m is not None else 2 * args.d
    try:
        if kind == "powerlaw":
            return hd.powerlaw(args.d, args.alpha, args.beta, noise=noise)
        if kind == "matrix_powerlaw":
            return hd.matrix_powerlaw(args.d, m, args.alpha, args.beta, noise=noise, seed=args.problem_seed,
                                      rotated=args.rotated)
        if kind == "matrix_isotropic":
            return hd.matrix_isotropic(args.d, m, noise=noise, seed=args.problem_seed)
        return hd.isotropic(args.d, noise=noise)
    except ValueError as e:
        flag = next((f"--{n}" for n in ("alpha", "beta", "d", "m", "n") if str(e).startswith(n)), "--problem")
        raise InputError(f"{flag}: {e}") from None


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
        if not (math.isfinite(args.lr) and args.lr > 0):
            raise InputError(f"--lr must be a number > 0, got {args.lr}")
        return prob, _build_optimizer(cls, args, args.lr), "given"
    if args.lr_frac is not None:
        if not (math.isfinite(args.lr_frac) and args.lr_frac > 0):
            raise InputError(f"--lr-frac must be a number > 0, got {args.lr_frac}")
        lr_c = hd.stability_threshold(prob, probe)
        if not math.isfinite(lr_c):
            raise InputError(f"--lr-frac: {args.optimizer} has no finite stability threshold here "
                             f"({hd.threshold_reason(prob, probe)}); give --lr")
        if not lr_c > 0:
            raise InputError(f"--lr-frac: the stability threshold of {args.optimizer} here is {lr_c:g}; give --lr")
        lr = args.lr_frac * lr_c
        return (prob, _build_optimizer(cls, args, lr, lr_flag=f"--lr-frac {args.lr_frac:g} (lr = {lr:g})"),
                f"{args.lr_frac:g} x threshold {lr_c:.6g}")
    steps = getattr(args, "steps", 10000)
    lr = hd.tuning.optimal_lr(prob, probe, steps)
    return prob, _build_optimizer(cls, args, lr), f"theory-optimal constant lr for {steps} steps"


def _describe(prob, opt, how: str):
    import hdtheory as hd

    lr_c = hd.stability_threshold(prob, opt.with_lr(1.0))
    ratio = f"lr/threshold = {opt.lr / lr_c:.3f}" if math.isfinite(lr_c) else hd.threshold_reason(prob, opt)
    shape = f"n={prob.d} m={prob.outputs}" if prob.outputs > 1 else f"d={prob.d}"
    print(f"problem: {prob.info.get('constructor', 'problem')} {shape} trK={prob.trace:.4g} "
          f"lambda_max={prob.lambda_max:.4g} sigma^2={prob.sigma2:.4g} initial risk R(0)={prob.initial_risk:.4g}")
    print(f"optimizer: {opt}")
    print(f"lr = {opt.lr:.6g} ({how}); stability threshold {lr_c:.6g} ({ratio})")


def _save_plot(ax, path, title):
    import matplotlib.pyplot as plt

    ax.set_title(title, fontsize=10)
    ax.figure.tight_layout()
    try:
        ax.figure.savefig(path, dpi=130)
    finally:
        plt.close(ax.figure)
    print(f"plot written to {path} (excess risk R - sigma^2/2, log-log)")


def _title(prob, opt) -> str:
    return f"{opt.name} lr={opt.lr:.4g} on {prob.info.get('constructor', 'problem')} d={prob.d}"


# ------------------------------------------------------------------------------------------------------
# commands
# ------------------------------------------------------------------------------------------------------

def cmd_list(args) -> int:
    from .noise import noise_spec_help
    from .theory import entries, optimizer_class

    print("optimizers (hdtheory solve|compare|threshold|tune NAME):")
    for e in entries():
        cls = optimizer_class(e.name)
        flags = " ".join(_flag(f.name) for f, _ in _optimizer_fields(cls))
        doc = (cls.__doc__ or "").strip().splitlines()[0]
        print(f"  {e.name:12s} {doc}\n  {'':12s} flags: --lr --lr-frac --schedule {flags}")
    print("problems (--problem):")
    for name, text in PROBLEM_HELP.items():
        print(f"  {name:12s} {text}")
    print(f"noise (--noise): {noise_spec_help()}")
    print("exit codes: 0 done / OK, 1 NOT OK, 2 usage or input error, 3 INCONCLUSIVE (compare: more seeds needed)")
    return EXIT_OK


def cmd_solve(args) -> int:
    import hdtheory as hd

    _check_counts(args)
    out, save = _outputs(args)
    prob, opt, how = _resolve(args)
    _describe(prob, opt, how)
    t0 = time.perf_counter()
    curve = hd.solve(prob, opt, steps=args.steps)
    print(f"theory ({time.perf_counter() - t0:.3f} s): {curve.describe()}")
    if curve.status == "diverged":
        print(f"theory: the curve stops before the horizon {args.steps}: {curve.message}")
    if out:
        _save_plot(hd.plot(curve), out, _title(prob, opt))
    if save:
        print(f"curve saved to {curve.save(save)}")
    return EXIT_OK


def cmd_compare(args) -> int:
    import hdtheory as hd
    import validation

    _check_counts(args)
    out, save = _outputs(args)
    prob, opt, how = _resolve(args)
    _describe(prob, opt, how)
    grid = hd.step_grid(args.steps, per_decade=args.per_decade, multiple_of=opt.steps_per_update)
    t0 = time.perf_counter()
    curve = hd.solve(prob, opt, grid=grid)
    t1 = time.perf_counter()
    print(f"theory ({t1 - t0:.3f} s): {curve.describe()}")
    sim = validation.simulate(prob, opt, grid=grid, seeds=args.seeds, key=args.seed, progress=not args.quiet)
    t2 = time.perf_counter()
    import numpy as np

    with np.errstate(invalid="ignore", over="ignore"):
        last = float(np.mean(sim.risk[:, -1]))
    print(f"simulation ({args.seeds} seeds x {args.steps} steps on {sim.meta['device']}, {t2 - t1:.2f} s): "
          f"seed mean risk R = {last:.6g} at step {int(sim.steps[-1])} (excess risk R - sigma^2/2 = "
          f"{last - 0.5 * sim.sigma2:.6g})")
    rep = validation.compare(curve, sim)
    print(f"agreement: {rep.summary()}")
    if out:
        _save_plot(hd.plot(curve, sim), out, f"{_title(prob, opt)}: {rep.summary().split(':')[0]}")
    if save:
        print(f"curve saved to {curve.save(save)}")
    return VERDICT_EXIT[rep.verdict]


def cmd_threshold(args) -> int:
    import hdtheory as hd

    from .theory import optimizer_class

    prob = _problem(args)
    opt = _build_optimizer(optimizer_class(args.optimizer), args, 1.0)
    lr_c = hd.stability_threshold(prob, opt)
    reason = hd.threshold_reason(prob, opt)
    print(f"stability threshold of {args.optimizer}: lr* = {lr_c:.10g}" + (f" ({reason})" if reason else ""))
    return EXIT_OK


def cmd_tune(args) -> int:
    import hdtheory as hd

    from .theory import optimizer_class

    _check_counts(args)
    out, save = _outputs(args)
    prob = _problem(args)
    if args.lr_frac is not None:
        raise InputError("tune searches the lr itself: --lr-frac does not apply (--lr only starts the search)")
    lr0 = args.lr if args.lr is not None else 1.0
    opt = _build_optimizer(optimizer_class(args.optimizer), args, lr0)
    over = tuple(x.strip() for x in args.over.split(",") if x.strip())
    t0 = time.perf_counter()
    best = hd.tune(prob, opt, args.steps, over=over)
    if not math.isfinite(best.risk):
        print(f"hdtheory: error: no {', '.join(over)} in the search range reaches step {best.steps} without "
              f"diverging (status {best.status})", file=sys.stderr)
        return EXIT_INPUT
    at = f"step {best.steps}" + (f" ({args.steps * opt.samples_per_step} samples)" if "batch" in over else "")
    print(f"tuned {', '.join(over)} of {args.optimizer} for the risk at {at} "
          f"({best.evaluations} solves, {time.perf_counter() - t0:.2f} s):")
    for k, v in best.params.items():
        print(f"  {k} = {v:.6g}" + ("  (on the edge of its search range)" if k in best.edge else ""))
    print(f"predicted risk R = {best.risk:.6g} (excess {best.risk - 0.5 * prob.noise_variance:.6g}); "
          f"status {best.status}" + ("" if best.valid else " (outside the theory's validity there)"))
    if out or save:
        curve = hd.solve(prob, best.optimizer, steps=best.steps)
        if out:
            _save_plot(hd.plot(curve), out, _title(prob, best.optimizer) + " (tuned)")
        if save:
            print(f"curve saved to {curve.save(save)}")
    return EXIT_OK


PROBLEM_HELP = {
    "powerlaw": "eigenvalues j^(-2 alpha), target j^(-beta), j = 1..d (--d --alpha --beta; 2 alpha + 2 beta > 1)",
    "isotropic": "K = I_d, target (1, ..., 1)/sqrt(d) (--d)",
    "matrix_powerlaw": "W in R^(m x n): eigenvalues j^(-2 alpha), W* = O diag(j^(-beta)) with O Haar (--d = n, --m, "
                       "--alpha, --beta, --rotated, --problem-seed)",
    "matrix_isotropic": "W in R^(m x n): K = I_n, W* with orthonormal columns (--d = n, --m, --problem-seed)",
}


EXIT_HELP = """exit codes:
  0  done; compare: OK (the theory is within tolerance of the simulation given the Monte-Carlo error);
     solve: the curve was computed (a diverged curve included: the output and the plot say so)
  1  compare: NOT OK (off by more than the tolerance, beyond the Monte-Carlo error)
  2  usage, input or output-path error (the message names the flag)
  3  compare: INCONCLUSIVE (too few seeds to tell; the output says about how many would decide)"""


def _parser():
    from . import __version__
    from .noise import noise_spec_help
    from .theory import entries, optimizer_class

    fmt = argparse.RawDescriptionHelpFormatter
    p = argparse.ArgumentParser(prog="hdtheory", description="High-dimensional theory of optimizers vs simulation",
                                epilog=EXIT_HELP, formatter_class=fmt)
    p.add_argument("--version", action="version", version=f"hdtheory {__version__}")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="the optimizers, problems and noise laws that exist", epilog=EXIT_HELP,
                   formatter_class=fmt).set_defaults(run=cmd_list)
    for name, run, text in [("solve", cmd_solve, "the theory's risk curve (plot and .npz)"),
                            ("compare", cmd_compare, "theory vs JAX simulation: verdict and a plot"),
                            ("threshold", cmd_threshold, "the largest stable lr"),
                            ("tune", cmd_tune, "theory-optimal hyperparameters for the risk at a horizon")]:
        cmd = sub.add_parser(name, help=text, epilog=EXIT_HELP, formatter_class=fmt)
        osub = cmd.add_subparsers(dest="optimizer", required=True, metavar="OPTIMIZER")
        for e in entries():
            cls = optimizer_class(e.name)
            o = osub.add_parser(e.name, help=(cls.__doc__ or "").strip().splitlines()[0], epilog=EXIT_HELP,
                                formatter_class=fmt)
            o.set_defaults(run=run)
            o.add_argument("--problem", choices=PROBLEMS, default=None,
                           help="; ".join(f"{k}: {v}" for k, v in PROBLEM_HELP.items()) +
                           " (default: matrix_powerlaw for signsvd and muon, else powerlaw)")
            o.add_argument("--d", type=int, default=1000, help="dimension (matrix problems: n, the inputs)")
            o.add_argument("--m", type=int, default=None, help="matrix problems: outputs (default 2 d)")
            o.add_argument("--rotated", action="store_true", help="matrix_powerlaw: Haar-rotated eigenvectors of K")
            o.add_argument("--problem-seed", type=int, default=0, help="matrix problems: seed of the random target")
            o.add_argument("--alpha", type=float, default=0.75, help="power law: eigenvalues j^(-2 alpha)")
            o.add_argument("--beta", type=float, default=0.5, help="power law: target coefficients j^(-beta)")
            o.add_argument("--noise", default="gaussian:0.1", help=f"label noise: {noise_spec_help()}")
            if name != "threshold":
                o.add_argument("--lr", type=float, default=None, help="step size (per step, applied to the weights)")
                o.add_argument("--lr-frac", type=float, default=None, help="step size as a fraction of the threshold")
                o.add_argument("--steps", type=int, default=10000)
                o.add_argument("--out", default="risk.png" if name == "compare" else None,
                               help="plot: .png, .pdf or .svg (no suffix: .png)")
                o.add_argument("--save", default=None, help="also save the theory curve (.npz; no suffix: .npz)")
            if name == "tune":
                o.add_argument("--over", default="lr", help="comma-separated names to tune: lr, clip (clipped_sgd), "
                               "outer_lr (la_diloco), batch (at fixed samples = steps x batch); --lr starts the search")
            if name == "compare":
                o.add_argument("--per-decade", type=int, default=20, help="record points per decade of steps")
                o.add_argument("--seeds", type=int, default=16)
                o.add_argument("--seed", type=int, default=0)
                o.add_argument("--quiet", action="store_true", help="no progress bar")
            o.add_argument("--schedule", default=None, metavar="SPEC", help="lr schedule (module docstring)")
            _add_optimizer_flags(o, cls)
    return p


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"hdtheory: warning: {message}", file=sys.stderr)


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    warnings.showwarning = _show_warning
    try:
        return args.run(args)
    except ValueError as e:  # InputError and the library's own named argument errors
        print(f"hdtheory: error: {e}", file=sys.stderr)
        return EXIT_INPUT
    except OSError as e:  # an output that could not be written after all (disk full, removed folder, ...)
        print(f"hdtheory: error: {e.strerror or e}" + (f": {e.filename!r}" if e.filename else ""), file=sys.stderr)
        return EXIT_INPUT


if __name__ == "__main__":
    sys.exit(main())
