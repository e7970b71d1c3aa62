"""RiskCurve: the theory's result, with a status, saved as one ``.npz`` (no pickle), atomically.

File names: results are ``.npz`` files. A name without a suffix gets ``.npz`` (``save("x")`` writes ``x.npz`` and
``load("x")`` reads ``x.npz``, like ``numpy.savez``); any other suffix is an error. ``read_npz`` says what it found
when a file is not what was asked for (missing, empty, not a zip, a corrupt zip, a foreign ``.npz``, pickled
objects, or the other kind of hdtheory file: a ``SimulatedRisk`` loaded as a ``RiskCurve`` or the reverse).
"""
from __future__ import annotations

import errno
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field

import numpy as np

STATUSES = ("ok", "diverged", "unstable", "outside_validity")
#: the kinds of hdtheory results file, and how to load each
KINDS = {"RiskCurve": "hd.RiskCurve.load", "SimulatedRisk": "validation.SimulatedRisk.load"}


class ResultFileError(ValueError):
    """A results file that cannot be read as asked; the message names the path and what it holds."""


def suffixed_path(path, suffix: str, what: str) -> str:
    """``path`` unchanged if it ends in ``suffix`` (any case), with ``suffix`` added if it has none; a ValueError
    naming ``what`` (the kind of file) for any other suffix or for something that is not a file name."""
    try:
        path = os.fspath(path)
    except TypeError:
        raise ValueError(f"a {what} path must be a string or os.PathLike, got {path!r}") from None
    if not isinstance(path, str) or not path or path.endswith(("/", os.sep)):
        raise ValueError(f"{path!r} is not a file name ({what} files end in {suffix})")
    ext = os.path.splitext(path)[1]
    if ext.lower() == suffix:
        return path
    if ext:
        raise ValueError(f"{path!r}: {what} files end in {suffix}; use a name ending in {suffix} (or no suffix, which "
                         f"gets {suffix}), not {ext!r}")
    return path + suffix


def npz_path(path) -> str:
    """The path ``save`` writes and ``load`` reads for ``path``: unchanged if it ends in ``.npz``, with ``.npz``
    added if it has no suffix; a ValueError for any other suffix."""
    return suffixed_path(path, ".npz", "results")


def check_writable(path) -> str:
    """``npz_path(path)``, after ``check_folder``."""
    return check_folder(npz_path(path))


def check_folder(out: str) -> str:
    """``out``, after checking that its folder exists and is writable and that it is not a folder (raises
    FileNotFoundError / PermissionError / IsADirectoryError naming the path)."""
    folder = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(folder):
        raise FileNotFoundError(errno.ENOENT, f"cannot write {out!r}: the folder {folder} does not exist")
    if os.path.isdir(out):
        raise IsADirectoryError(errno.EISDIR, f"cannot write {out!r}: it is a folder")
    if not os.access(folder, os.W_OK):
        raise PermissionError(errno.EACCES, f"cannot write {out!r}: the folder {folder} is not writable")
    return out


def atomic_savez(path, meta: dict, **arrays) -> str:
    """Write ``arrays`` and ``meta`` (as a JSON string) to ``path`` (``npz_path``: .npz), through a temporary
    file in the same folder and ``os.replace`` (no pickle). Returns the path written. Errors name ``path``."""
    arrays["meta"] = np.array(json.dumps(meta))
    path = check_writable(path)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(suffix=".npz.tmp", dir=folder)
    except OSError as e:
        raise type(e)(e.errno, f"cannot write {path!r}: {e.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
    except OSError as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise type(e)(e.errno, f"cannot write {path!r}: {e.strerror}") from None
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _sniff(head: bytes) -> str:
    """What a file that is not an .npz holds, from its first bytes."""
    if not head:
        return "an empty file"
    for magic, what in ((b"\x93NUMPY", "a single NumPy array (.npy), not an .npz archive"),
                        (b"\x89PNG", "a PNG image"), (b"%PDF", "a PDF document"), (b"\x1f\x8b", "gzip data"),
                        (b"\x80", "a Python pickle"), (b"\x89HDF", "an HDF5 file")):
        if head.startswith(magic):
            return what
    try:
        text = head.decode("utf-8").lstrip()
    except UnicodeDecodeError:
        return "binary data of an unknown format"
    if text[:1] in "{[":
        return "a JSON or other text file"
    return "a text file"


def _kind_of(arrays: dict, meta: dict) -> str | None:
    if meta.get("kind") in KINDS:
        return meta["kind"]
    risk = arrays.get("risk")
    if risk is None or "steps" not in arrays:
        return None
    if risk.ndim == 2 or "seeds" in meta:
        return "SimulatedRisk"
    if risk.ndim == 1 and "status" in meta:
        return "RiskCurve"
    return None


def _describe(kind: str, arrays: dict) -> str:
    risk = arrays["risk"]
    if kind == "SimulatedRisk" and risk.ndim == 2:
        return f"a SimulatedRisk file ({risk.shape[0]} seeds x {risk.shape[1]} points)"
    return f"a {kind} file ({risk.size} points)"


def read_npz(path, expect: str | None = None):
    """Inverse of ``atomic_savez``: (dict of arrays, meta dict), from ``npz_path(path)``.

    Raises FileNotFoundError for a missing file and ``ResultFileError`` (a ValueError) naming the path and what
    it holds for anything that is not an hdtheory results file, or not of the kind ``expect`` ("RiskCurve",
    "SimulatedRisk") when given. The ``kind`` entry of ``meta`` is removed."""
    if expect is not None and expect not in KINDS:
        raise ValueError(f"expect must be one of {sorted(KINDS)} or None, got {expect!r}")
    raw = os.fspath(path) if isinstance(path, (str, os.PathLike)) else path
    path = npz_path(path)
    if not os.path.exists(path):
        hint = ""
        if isinstance(raw, str) and raw != path and os.path.isfile(raw):
            hint = f" (there is a file {raw!r} without the suffix: hdtheory results files end in .npz)"
        raise FileNotFoundError(errno.ENOENT, f"no such results file: {path!r}{hint}")
    if os.path.isdir(path):
        raise ResultFileError(f"{path!r} is a folder, not a results file")
    with open(path, "rb") as fh:
        head = fh.read(16)
    if not head.startswith(b"PK"):
        raise ResultFileError(f"{path!r} is not an .npz file: it holds {_sniff(head)}")
    try:
        with np.load(path, allow_pickle=False) as z:
            names = list(z.files)
            arrays = {}
            for k in names:
                if k == "meta":
                    continue
                arrays[k] = z[k]
            meta_raw = z["meta"] if "meta" in names else None
    except zipfile.BadZipFile as e:
        raise ResultFileError(f"{path!r} is a corrupt or truncated .npz (zip) file ({e})") from None
    except ValueError as e:
        if "allow_pickle" in str(e) or "pickle" in str(e).lower():
            raise ResultFileError(f"{path!r} holds pickled Python objects, which hdtheory files never do and which "
                                  "are not loaded (they can run code): not an hdtheory results file") from None
        raise ResultFileError(f"{path!r} is a damaged .npz file ({e})") from None
    except (OSError, EOFError) as e:
        raise ResultFileError(f"{path!r} could not be read as an .npz file ({e})") from None
    foreign = (f"{path!r} is an .npz file with arrays {sorted(n for n in names)} but was not written by hdtheory "
               "(hd.RiskCurve.save / validation.SimulatedRisk.save)")
    if meta_raw is None or meta_raw.dtype.kind not in "US" or meta_raw.ndim != 0:
        raise ResultFileError(foreign + ": it has no hdtheory metadata")
    try:
        meta = json.loads(str(meta_raw))
    except json.JSONDecodeError:
        raise ResultFileError(foreign + ": its 'meta' entry is not hdtheory's JSON metadata") from None
    if not isinstance(meta, dict):
        raise ResultFileError(foreign + ": its 'meta' entry is not hdtheory's metadata")
    kind = _kind_of(arrays, meta)
    if kind is None:
        missing = [k for k in ("steps", "risk") if k not in arrays]
        raise ResultFileError(foreign + (f": it lacks {', '.join(repr(m) for m in missing)}" if missing else
                                         ": its contents match no hdtheory result"))
    if expect is not None and kind != expect:
        raise ResultFileError(f"{path!r} is {_describe(kind, arrays)}, not a {expect}: load it with {KINDS[kind]}")
    meta.pop("kind", None)
    return arrays, meta


@dataclass
class RiskCurve:
    """Predicted expected risk on a step grid.

    ``risk`` = 1/2 E[(<x, theta_k> - y)^2] (includes sigma^2/2); ``excess_risk`` drops sigma^2/2.
    ``status``: ``ok``; ``diverged`` (the risk passed the divergence cap or stopped being finite at
    ``diverged_step``; the curve ends at the last recorded point before it); ``unstable`` (the curve
    is complete but the step map in force at the end is above the stability threshold, so the risk
    grows without bound afterwards); ``outside_validity`` (the theory's own validity test failed at some
    recorded points: ``valid`` is False there and the numbers there are not to be trusted). ``message`` says
    why. ``valid``: one boolean per recorded point (all True by default).
    """

    steps: np.ndarray
    risk: np.ndarray
    sigma2: float
    status: str = "ok"
    diverged_step: int | None = None
    message: str = ""
    meta: dict = field(default_factory=dict)
    valid: np.ndarray | None = None

    def __post_init__(self):
        self.steps = np.asarray(self.steps, dtype=np.int64)
        self.risk = np.asarray(self.risk, dtype=np.float64)
        if self.steps.shape != self.risk.shape:
            raise ValueError("steps and risk must have the same shape")
        self.valid = (np.ones(self.steps.shape, dtype=bool) if self.valid is None
                      else np.asarray(self.valid, dtype=bool))
        if self.valid.shape != self.steps.shape:
            raise ValueError("valid must have one entry per recorded point")
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}")

    @property
    def excess_risk(self) -> np.ndarray:
        return self.risk - 0.5 * self.sigma2

    @property
    def diverged(self) -> bool:
        """True if the run diverged or ends above the stability threshold."""
        return self.status in ("diverged", "unstable")

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def __repr__(self):
        n = self.steps.size
        if n == 0:
            return f"RiskCurve(no points, status={self.status!r})"
        k, r = int(self.steps[-1]), float(self.risk[-1])
        if self.status == "diverged":
            at = f" at step {self.diverged_step}" if self.diverged_step is not None else ""
            return (f"RiskCurve({n} points, diverged{at}: last recorded risk {r:.4g} at step {k}"
                    f"{' (the initial risk)' if k == 0 else ''}, status='diverged')")
        return (f"RiskCurve({n} points to step {k}, final risk {r:.4g} (excess risk {r - 0.5 * self.sigma2:.4g} = "
                f"risk - sigma^2/2), status={self.status!r})")

    def describe(self) -> str:
        """One line for people: what the last number is and what the status means."""
        n = self.steps.size
        if n == 0:
            return "no points"
        k, r = int(self.steps[-1]), float(self.risk[-1])
        if self.status == "diverged":
            return (f"diverged at step {self.diverged_step}: the expected risk passed the divergence cap; last recorded "
                    f"risk R = {r:.4g} at step {k}{' (the initial risk)' if k == 0 else ''}")
        line = (f"risk R = {r:.6g} at step {k} (excess risk R - sigma^2/2 = {r - 0.5 * self.sigma2:.6g}, "
                f"{n} points)")
        if self.status == "unstable":
            line += "; unstable: " + (self.message or "the step map at the end is above the stability threshold")
        if self.status == "outside_validity":
            line += "; outside the theory's validity: " + self.message
        return line

    def save(self, path) -> str:
        """Write one ``.npz`` (no pickle), atomically; a name without a suffix gets ``.npz``. Returns the path."""
        meta = dict(self.meta)
        meta.update(kind="RiskCurve", status=self.status, diverged_step=self.diverged_step, message=self.message,
                    sigma2=self.sigma2, units={"steps": "iterations", "risk": "1/2 E[(<x,theta>-y)^2]"})
        return atomic_savez(path, meta, steps=self.steps, risk=self.risk, valid=self.valid)

    @classmethod
    def load(cls, path) -> "RiskCurve":
        """Read a file written by ``save`` (the same suffix rule); a ``ResultFileError`` says what a file holds
        when it is not a RiskCurve."""
        arrays, meta = read_npz(path, expect="RiskCurve")
        p = npz_path(path)
        steps, risk = arrays["steps"], arrays["risk"]
        try:
            status = meta.pop("status")
            sigma2 = float(meta.pop("sigma2"))
            dstep = meta.pop("diverged_step", None)
            message = meta.pop("message", "")
            meta.pop("units", None)
            return cls(steps=steps, risk=risk, sigma2=sigma2, status=status, diverged_step=dstep,
                       message=message, meta=meta, valid=arrays.get("valid"))
        except (KeyError, TypeError, ValueError) as e:
            raise ResultFileError(f"{p!r} is a damaged RiskCurve file ({type(e).__name__}: {e})") from None
