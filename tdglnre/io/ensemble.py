"""HDF5 ensemble files, schema v1 and v2 (documented in docs/file-format.md).

* :func:`open_ensemble` / :class:`Ensemble` — validated, read-only access to
  the complete samples of a file.
* :class:`EnsembleWriter` — creates or resumes a file and appends batches of
  samples crash-safely: data is written and flushed *before* the root
  attribute ``n_complete`` is advanced (and flushed again), so an interrupted
  file never presents incomplete samples as complete.

Layout::

    /                      attrs: format="tdglnre-ensemble", format_version=1 (2: screened), generated_by,
                                  creation_date, seed, config, prior, parameter_names,
                                  channels, snapshot_times, n_complete, n_samples, store_fields,
                                  compression, device, gpu_name, measurement, a_noise (N and L live
                                  inside the JSON ``config``; device/gpu_name since issue 11, absent in
                                  older files; measurement only when the preset declares an instrument;
                                  a_noise="langevin" in screened files: thermal noise kicks a too)
    /theta   (S, P)          float64  inferred parameters, parameter_names order
    /x       (S, T, N, N, C) float32  channels [rho1, rho2, curlJ] (v2: [rho1, rho2, curlJ, B]); one sample
                                      per chunk, compressed
    /psi     (S, T, 2, N, N) complex64 (optional, --store-fields) band 1, band 2; [i, j] = [y, x]
    /a       (S, T, 2, N, N) float32  (v2 with --store-fields) the link field a_x, a_y of a screened run

Version 2 is written only for a screened config (λ < ∞, docs/physics.md): its
config JSON holds ``lam`` and ``sigma``, its channels add the field B and its
fields add a. Fixed-field files are still written, and read, as version 1.

The reader checks these shapes against the stored config (N), snapshot times
(T), parameter names (P) and channels (C) and refuses a file where they disagree.
"""

from __future__ import annotations

import datetime as _dt
import errno
import functools
import json
import logging
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .. import __version__
from ..errors import ConfigError, TDGLError
from ..physics.config import SimConfig
from ..physics.observables import channel_names
from ..physics.rng import SEED_MAX, check_seed  # SEED_MAX: the root attribute ``seed`` is a signed 64-bit integer
from .priors import Prior

log = logging.getLogger(__name__)

FORMAT = "tdglnre-ensemble"
FORMAT_VERSION = 2
#: Attribute ``a_noise`` of screened files: thermal noise kicks a as well as ψ (files written before it lack it).
A_NOISE = "langevin"


def _thermal_possible(prior: Any, config: Any) -> bool:
    """Whether a run of this prior and config can have T > 0 (the prior's T, else the config's)."""
    if "T" in prior.names:
        return prior.high("T") > 0.0
    return float(getattr(config, "T", 0.0)) > 0.0

#: Compression of the x and psi chunks: (filter, options, shuffle).
#: Measured on paper-preset channels: gzip level 1 with byte-shuffle, see docs/file-format.md.
DEFAULT_COMPRESSION: tuple[str, int | None, bool] = ("gzip", 1, True)

__all__ = ["DiskFullError", "Ensemble", "EnsembleError", "EnsembleWriter", "FORMAT", "FORMAT_VERSION", "SEED_MAX",
           "file_device", "open_ensemble", "read_header"]


class EnsembleError(TDGLError, ValueError):
    """An ensemble file is missing, unreadable, of the wrong kind, or incomplete; the message says which."""


class DiskFullError(EnsembleError):
    """The disk is full or the file size limit is reached; the samples written before are kept in the file."""


def check_count(name: str, value: Any) -> int:
    """``value`` as an int >= 1 (Python or NumPy integers; bools, floats such as 16.7 or 16.0, NaN refused)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def file_device(attrs: Any) -> tuple[str, str]:
    """The (device, gpu_name) a file was generated on, from its root attributes.

    Files written before the CUDA backend (issue 11) have neither attribute;
    they were generated on the CPU, so ``("cpu", "")`` is returned for them.
    """
    device = _attr_str(attrs["device"]) if "device" in attrs else "cpu"
    name = _attr_str(attrs["gpu_name"]) if "gpu_name" in attrs else ""
    return device, name


def _now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).astimezone().isoformat(timespec="seconds")


def _attr_str(v: Any) -> str:
    if isinstance(v, bytes):
        return v.decode("utf-8")
    if isinstance(v, np.ndarray) and v.shape == ():
        return _attr_str(v[()])
    return str(v)


def _json_attr(attrs: h5py.AttributeManager, key: str, path: str) -> Any:
    if key not in attrs:
        raise EnsembleError(f"{path}: tdglnre file lacks the root attribute {key!r} (damaged or written by another tool)")
    try:
        return json.loads(_attr_str(attrs[key]))
    except (json.JSONDecodeError, TypeError) as exc:
        raise EnsembleError(f"{path}: root attribute {key!r} is not valid JSON: {exc}") from None


def _open_h5(path: str | os.PathLike, mode: str) -> h5py.File:
    """Open an HDF5 file, turning every failure into a precise :class:`EnsembleError`."""
    p = Path(path)
    if not p.exists():
        raise EnsembleError(f"{p}: no such file")
    if p.is_dir():
        raise EnsembleError(f"{p}: is a directory, not an ensemble file")
    try:
        with open(p, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise EnsembleError(f"{p}: cannot read: {exc.strerror or exc}") from None
    if len(head) == 0:
        raise EnsembleError(f"{p}: file is empty (not an HDF5 file; an interrupted write?)")
    if not h5py.is_hdf5(str(p)):
        raise EnsembleError(f"{p}: not an HDF5 file (no HDF5 signature); expected a tdglnre ensemble (.h5)")
    try:
        return h5py.File(p, mode)
    except OSError as exc:
        msg = str(exc)
        if "truncated" in msg.lower() or "eof" in msg.lower():
            size = p.stat().st_size
            raise EnsembleError(
                f"{p}: truncated HDF5 file ({size} bytes on disk, shorter than its header says); "
                "the file was cut off during a copy or write — re-copy it or regenerate it"
            ) from None
        if "lock" in msg.lower():
            raise EnsembleError(f"{p}: file is locked by another process (is a generate run still writing it?): {msg}") from None
        raise EnsembleError(f"{p}: cannot open HDF5 file: {msg}") from None


def _format_version(raw: Any, path: str) -> int:
    """The integer ``format_version`` attribute, or a one-line error naming the file."""
    v = raw.item() if isinstance(raw, np.generic) else raw
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return int(v)
    if isinstance(v, float) and v.is_integer():
        return int(v)
    shown = _attr_str(v) if isinstance(v, (bytes, str)) else v
    raise EnsembleError(f"{path}: format_version={shown!r} is not an integer (damaged or written by another tool)")


def _check_shapes(f: h5py.File, path: str, config: SimConfig, names: list[str], channels: list[str],
                  times: list[float], prior: Prior) -> None:
    """Refuse datasets whose shapes contradict the stored config, times, parameters or channels."""
    if names != list(prior.inferred):
        raise EnsembleError(f"{path}: parameter_names {names} do not match the stored prior's inferred "
                            f"parameters {list(prior.inferred)} (file damaged or edited)")
    if [float(t) for t in config.snapshot_times] != times:
        raise EnsembleError(f"{path}: snapshot_times {times} do not match the stored config's "
                            f"{list(config.snapshot_times)} (file damaged or edited)")
    N, T, C, P = config.N, len(times), len(channels), len(names)
    S = int(f["x"].shape[0]) if f["x"].ndim else -1
    expected = {
        "x": ((S, T, N, N, C), f"N={N}, T={T} snapshot(s), C={C} channels"),
        "theta": ((S, P), f"P={P} inferred parameters"),
    }
    for name in ("psi", "a"):
        if name in f:
            expected[name] = ((S, T, 2, N, N), f"N={N}, T={T} snapshot(s), 2 {'bands' if name == 'psi' else 'links'}")
    for name, (shape, why) in expected.items():
        got = tuple(int(d) for d in f[name].shape)
        if got != shape:
            raise EnsembleError(f"{path}: dataset {name!r} has shape {got} but the stored config ({why}, "
                                f"S={S} samples in 'x') implies {shape} (file damaged or edited)")


def read_header(f: h5py.File, path: str | os.PathLike) -> dict[str, Any]:
    """Check the magic string and version of an open file and decode its root attributes.

    Returns a dict with ``config`` (SimConfig), ``prior`` (Prior),
    ``parameter_names``, ``channels``, ``snapshot_times``, ``seed``,
    ``n_complete``, ``n_samples`` and ``attrs`` (all root attributes as Python
    str/int/float/bool; the JSON-valued ones stay JSON text).
    """
    path = str(path)
    attrs = f.attrs
    fmt = _attr_str(attrs["format"]) if "format" in attrs else None
    if fmt != FORMAT:
        what = "no 'format' attribute" if fmt is None else f"format={fmt!r}"
        raise EnsembleError(f"{path}: HDF5 file but not a tdglnre ensemble ({what}; expected format={FORMAT!r})")
    if "format_version" not in attrs:
        raise EnsembleError(f"{path}: tdglnre file lacks 'format_version'")
    version = _format_version(attrs["format_version"], path)
    if version > FORMAT_VERSION:
        writer = _attr_str(attrs["generated_by"]) if "generated_by" in attrs else "an unknown writer"
        raise EnsembleError(
            f"{path}: written with format_version={version} (by {writer}); this tdglnre {__version__} reads up to "
            f"version {FORMAT_VERSION} — upgrade tdglnre"
        )
    if version < 1:
        raise EnsembleError(f"{path}: invalid format_version={version}")
    try:
        config = SimConfig.from_dict(_json_attr(attrs, "config", path))
        prior = Prior.from_dict(_json_attr(attrs, "prior", path))
    except ConfigError as exc:
        raise EnsembleError(f"{path}: stored config/prior is invalid: {exc}") from None
    names = _json_attr(attrs, "parameter_names", path)
    channels = _json_attr(attrs, "channels", path)
    times = _json_attr(attrs, "snapshot_times", path)
    for key in ("seed", "n_complete"):
        if key not in attrs:
            raise EnsembleError(f"{path}: tdglnre file lacks the root attribute {key!r}")
    for ds in ("theta", "x"):
        if ds not in f:
            raise EnsembleError(f"{path}: dataset {ds!r} is missing (file damaged or written by another tool)")
    _check_shapes(f, path, config, list(names), list(channels), [float(t) for t in times], prior)
    S = int(f["x"].shape[0])
    n_complete = int(attrs["n_complete"])
    if not 0 <= n_complete <= S:
        raise EnsembleError(f"{path}: n_complete={n_complete} is outside 0..{S}")
    decoded: dict[str, Any] = {}
    for k, v in attrs.items():
        s = v
        if isinstance(v, (bytes, np.bytes_)):
            s = v.decode("utf-8")
        elif isinstance(v, np.generic):
            s = v.item()
        decoded[k] = s
    return dict(config=config, prior=prior, parameter_names=list(names), channels=list(channels),
                snapshot_times=[float(t) for t in times], seed=int(attrs["seed"]), n_complete=n_complete,
                n_samples=S, attrs=decoded)


class Ensemble:
    """Read-only view of the complete samples of an ensemble file.

    Use :func:`open_ensemble`. Only the first :attr:`n_complete` samples are
    readable; asking for more raises :class:`EnsembleError`.
    """

    def __init__(self, path: str | os.PathLike, *, require_complete: bool = False):
        self.path = str(path)
        self._f = _open_h5(path, "r")
        try:
            hdr = read_header(self._f, self.path)
        except BaseException:
            self._f.close()
            raise
        self.config: SimConfig = hdr["config"]
        self.prior: Prior = hdr["prior"]
        self.parameter_names: list[str] = hdr["parameter_names"]
        self.channels: list[str] = hdr["channels"]
        self.snapshot_times: list[float] = hdr["snapshot_times"]
        self.seed: int = hdr["seed"]
        self.n_samples: int = hdr["n_samples"]
        self.n_complete: int = hdr["n_complete"]
        self.attrs: dict[str, Any] = hdr["attrs"]
        self.has_fields: bool = "psi" in self._f
        if require_complete and self.n_complete < self.n_samples:
            n = self.n_complete
            self.close()
            raise EnsembleError(
                f"{self.path}: samples missing: only {n} of {self.n_samples} samples are complete "
                "(interrupted run; continue it with `tdglnre generate ... --resume`)"
            )

    # -------------------------------------------------------------- context
    def __enter__(self) -> "Ensemble":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Close the file."""
        if getattr(self, "_f", None) is not None:
            try:
                self._f.close()
            finally:
                self._f = None

    def __repr__(self) -> str:
        return (f"Ensemble({self.path!r}, n_complete={self.n_complete}/{self.n_samples}, "
                f"parameters={self.parameter_names}, N={self.config.N}, T={len(self.snapshot_times)})")

    # -------------------------------------------------------------- reading
    def _range(self, start: int, stop: int | None) -> tuple[int, int]:
        if self._f is None:
            raise EnsembleError(f"{self.path}: ensemble is closed")
        stop = self.n_complete if stop is None else int(stop)
        start = int(start)
        if start < 0 or stop < start:
            raise EnsembleError(f"{self.path}: invalid sample range [{start}, {stop})")
        if stop > self.n_complete:
            raise EnsembleError(
                f"{self.path}: samples missing: requested samples [{start}, {stop}) but only the first "
                f"{self.n_complete} of {self.n_samples} are complete"
                + (" (interrupted run; continue it with `tdglnre generate ... --resume`)"
                   if self.n_complete < self.n_samples else "")
            )
        return start, stop

    def _read(self, name: str, start: int, stop: int | None) -> np.ndarray:
        a, b = self._range(start, stop)
        try:
            return self._f[name][a:b]
        except OSError as exc:
            raise EnsembleError(f"{self.path}: cannot read {name}[{a}:{b}] (file damaged or truncated?): {exc}") from None

    def theta(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Parameters (n, P) float64 of samples start..stop-1 (default: all complete)."""
        return self._read("theta", start, stop)

    def x(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Network channels (n, T, N, N, C) float32."""
        return self._read("x", start, stop)

    def psi(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Order parameters (n, T, 2, N, N) complex64 (only with ``--store-fields``)."""
        if not self.has_fields:
            raise EnsembleError(f"{self.path}: no stored fields (psi); generate with --store-fields")
        return self._read("psi", start, stop)

    def a(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Link field (n, T, 2, N, N) float32, [:, :, 0] = a_x (screened runs with ``--store-fields`` only)."""
        if "a" not in self._f:
            why = "generate with --store-fields" if self.config.screened else "the run had no screening (lam = inf)"
            raise EnsembleError(f"{self.path}: no stored vector potential (a); {why}")
        return self._read("a", start, stop)

    def summary(self) -> dict[str, Any]:
        """Schema, config, prior, counts, parameter ranges and file size (for ``tdglnre inspect``)."""
        th = self.theta(0, self.n_complete) if self.n_complete else np.zeros((0, len(self.parameter_names)))
        ranges = {}
        for c, n in enumerate(self.parameter_names):
            col = th[:, c]
            ranges[n] = {
                "prior": self.prior[n].describe(),
                "min": float(col.min()) if col.size else None,
                "max": float(col.max()) if col.size else None,
                "mean": float(col.mean()) if col.size else None,
            }
        ds = self._f["x"]
        return {
            "path": self.path,
            "format": self.attrs.get("format"),
            "format_version": self.attrs.get("format_version"),
            "generated_by": self.attrs.get("generated_by"),
            "creation_date": self.attrs.get("creation_date"),
            "device": file_device(self.attrs)[0],
            "gpu_name": file_device(self.attrs)[1],
            "measurement": self.attrs.get("measurement"),
            "seed": self.seed,
            "n_samples": self.n_samples,
            "n_complete": self.n_complete,
            "complete": self.n_complete == self.n_samples,
            "parameter_names": self.parameter_names,
            "fixed": self.prior.fixed_values(),
            "channels": self.channels,
            "snapshot_times": self.snapshot_times,
            "x_shape": list(ds.shape),
            "x_chunks": list(ds.chunks) if ds.chunks else None,
            "compression": ds.compression,
            "has_fields": self.has_fields,
            "config": self.config.to_dict(),
            "prior": self.prior.to_dict(),
            "parameter_ranges": ranges,
            "file_size_bytes": os.path.getsize(self.path),
        }


def open_ensemble(path: str | os.PathLike, *, require_complete: bool = False) -> Ensemble:
    """Open an ensemble file for reading, checking magic string, version and integrity.

    Parameters
    ----------
    path
        The ``.h5`` file.
    require_complete
        Raise if the file is an interrupted run (``n_complete < n_samples``);
        by default the complete prefix is readable.

    Raises
    ------
    EnsembleError
        Missing file, not HDF5, not a tdglnre file, newer format version,
        truncated file, or (``require_complete``) samples missing.
    """
    return Ensemble(path, require_complete=require_complete)


# ====================================================================== writer
def _hold_metadata(f: h5py.File) -> None:
    """Keep dirty HDF5 metadata in memory until an explicit flush (best effort).

    With evictions disabled the on-disk metadata only changes inside
    ``flush()``, so a process killed while writing chunks leaves the file as it
    was at the previous flush.
    """
    try:
        cfg = f.id.get_mdc_config()
        cfg.evictions_enabled = False
        cfg.incr_mode = 0  # H5C_incr__off
        cfg.flash_incr_mode = 0  # H5C_flash_incr__off
        cfg.decr_mode = 0  # H5C_decr__off
        f.id.set_mdc_config(cfg)
    except Exception as exc:  # pragma: no cover - depends on the HDF5 build
        log.debug("could not disable HDF5 metadata-cache evictions: %s", exc)


#: Bytes reserved for HDF5 metadata (chunk index, attributes) on top of a batch's uncompressed size.
WRITE_MARGIN = 1 << 16
_DISK_FULL_ERRNOS = (errno.EFBIG, errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
_DISK_FULL_TEXT = ("file too large", "no space left", "quota exceeded", "errno = 27", "errno = 28")


def is_disk_full(exc: BaseException) -> bool:
    """Whether an OSError or an HDF5 RuntimeError says that the disk is full or the file size limit is reached."""
    if isinstance(exc, OSError) and exc.errno in _DISK_FULL_ERRNOS:
        return True
    return isinstance(exc, (OSError, RuntimeError)) and any(t in str(exc).lower() for t in _DISK_FULL_TEXT)


@functools.lru_cache(maxsize=1)
def _libc_fallocate() -> Any:
    """libc's ``fallocate`` (Linux), or None."""
    try:
        import ctypes

        fn = ctypes.CDLL(None, use_errno=True).fallocate
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        return None
    fn.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64)
    fn.restype = ctypes.c_int
    return fn


def _fallocate_keep_size(fd: int, offset: int, length: int) -> int:
    """Allocate disk blocks for ``[offset, offset+length)`` without changing the file size; 0 or an errno.

    Linux ``fallocate(FALLOC_FL_KEEP_SIZE)``; where it does not exist or the
    file system does not support it, ``errno.EOPNOTSUPP``.
    """
    fn = _libc_fallocate()
    if fn is None:  # pragma: no cover - not Linux
        return errno.EOPNOTSUPP
    if fn(fd, 1, offset, length) == 0:  # 1 = FALLOC_FL_KEEP_SIZE
        return 0
    import ctypes

    return ctypes.get_errno() or errno.EIO


def reserve_space(fd: int, nbytes: int) -> None:
    """Make sure the file open as ``fd`` can grow by ``nbytes``, before HDF5 writes anything.

    HDF5 cannot recover from a failed write (it has already updated the
    superblock in its flush; the file is then truncated and unreadable), so
    the room is checked first: against the file size limit
    (``RLIMIT_FSIZE``, ``ulimit -f``) and by allocating the blocks on disk
    without changing the file size (the file system's free space and quota).

    Raises
    ------
    OSError
        ``EFBIG`` (file size limit) or ``ENOSPC``/``EDQUOT`` (disk full).
    """
    size = os.fstat(fd).st_size
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        if soft == resource.RLIM_INFINITY:
            soft = -1
    except (ImportError, OSError, ValueError):  # pragma: no cover - not Unix
        soft = -1
    if soft >= 0 and size + nbytes > soft:
        raise OSError(errno.EFBIG, f"{os.strerror(errno.EFBIG)} (the file size limit, ulimit -f, is {soft} bytes)")
    err = _fallocate_keep_size(fd, size, nbytes)
    if err in _DISK_FULL_ERRNOS:
        raise OSError(err, os.strerror(err))
    if err:  # no fallocate here: compare with the free space instead
        st = os.fstatvfs(fd)
        if st.f_bavail * st.f_frsize < nbytes:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class EnsembleWriter:
    """Single writer of an ensemble file: create or resume, then append batches in order.

    Every :meth:`write_batch` reserves the room the batch needs
    (:func:`reserve_space`), writes ``theta``, ``x`` (and ``psi``), flushes,
    then advances ``n_complete`` and flushes again. A full disk or the file
    size limit raises :class:`DiskFullError` before anything is written, so
    the file keeps its complete samples and ``--resume`` continues it.
    """

    def __init__(self, f: h5py.File, path: str, n_complete: int):
        self._f = f
        _hold_metadata(f)
        self.path = path
        self.n_complete = n_complete
        self.n_samples = int(f["x"].shape[0])
        self.write_seconds = 0.0
        self._broken = False

    # ---------------------------------------------------------------- create
    @classmethod
    def create(cls, path: str | os.PathLike, config: SimConfig, prior: Prior, *, seed: int, n_samples: int,
               store_fields: bool = False, compression: tuple[str, int | None, bool] = DEFAULT_COMPRESSION,
               extra_attrs: dict[str, Any] | None = None, device: str = "cpu",
               gpu_name: str = "") -> "EnsembleWriter":
        """Create (truncate) ``path`` with the v1 layout for ``n_samples`` samples.

        ``seed`` (0..:data:`SEED_MAX`) and ``n_samples`` (≥ 1) are checked before
        the file is opened; if writing the layout fails, the half-written file
        is removed instead of being left to block a rerun. ``device``
        (``"cpu"`` or ``"cuda"``) and ``gpu_name`` (``""`` on the CPU) are
        recorded as provenance (docs/file-format.md, "Schema v1").
        """
        if device not in ("cpu", "cuda"):
            raise ConfigError(f"device must be 'cpu' or 'cuda' (a resolved device), got {device!r}")
        p = Path(path)
        seed = check_seed(seed)
        n_samples = check_count("n_samples", n_samples)
        if p.parent and not p.parent.exists():
            raise EnsembleError(f"cannot create {p}: directory {p.parent} does not exist")
        try:
            f = h5py.File(p, "w")
        except OSError as exc:
            reason = exc.strerror if getattr(exc, "strerror", None) else str(exc)
            if not os.access(p.parent if str(p.parent) else ".", os.W_OK):
                reason = "permission denied (directory not writable)"
            raise EnsembleError(f"cannot create output file {p}: {reason}") from None
        try:
            N = config.N
            T = len(config.snapshot_times)
            channels = channel_names(config)
            C = len(channels)
            P = len(prior.inferred)
            filt, level, shuffle = compression
            comp: dict[str, Any] = {}
            if filt:
                comp = dict(compression=filt, shuffle=shuffle)
                if level is not None:
                    comp["compression_opts"] = level
            a = f.attrs
            a["format"] = FORMAT
            a["format_version"] = FORMAT_VERSION if config.screened else 1  # fixed-field files stay v1
            a["generated_by"] = f"tdglnre {__version__}"
            if config.screened:  # thermal noise kicks a too (docs/physics.md, "The kick of a")
                a["a_noise"] = A_NOISE
            a["creation_date"] = _now_iso()
            a["seed"] = int(seed)
            a["config"] = config.to_json()
            a["prior"] = prior.to_json()
            a["parameter_names"] = json.dumps(list(prior.inferred))
            a["channels"] = json.dumps(list(channels))
            a["snapshot_times"] = json.dumps([float(t) for t in config.snapshot_times])
            a["n_samples"] = int(n_samples)
            a["store_fields"] = bool(store_fields)
            a["compression"] = json.dumps(list(compression))
            a["device"] = device
            a["gpu_name"] = str(gpu_name)
            for k, v in (extra_attrs or {}).items():
                a[k] = v
            a["n_complete"] = 0
            f.create_dataset("theta", shape=(n_samples, P), dtype="f8",
                             chunks=(min(max(n_samples, 1), 4096), max(P, 1)) if P else None,
                             fillvalue=np.nan)
            f.create_dataset("x", shape=(n_samples, T, N, N, C), dtype="f4", chunks=(1, T, N, N, C),
                             fillvalue=np.nan, **comp)
            if store_fields:
                f.create_dataset("psi", shape=(n_samples, T, 2, N, N), dtype="c8", chunks=(1, T, 2, N, N), **comp)
                if config.screened:
                    f.create_dataset("a", shape=(n_samples, T, 2, N, N), dtype="f4", chunks=(1, T, 2, N, N), **comp)
            f.flush()
        except BaseException as exc:
            try:
                f.close()
            except (OSError, RuntimeError):  # the failure that got us here, again
                pass
            try:
                p.unlink()
            except OSError:  # pragma: no cover - e.g. removed meanwhile
                pass
            if isinstance(exc, (OSError, RuntimeError)) and is_disk_full(exc):
                raise DiskFullError(f"cannot create output file {p}: disk full or file too large "
                                    f"({' '.join(str(exc).split())})") from None
            raise
        return cls(f, str(p), 0)

    # ---------------------------------------------------------------- resume
    @classmethod
    def resume(cls, path: str | os.PathLike, config: SimConfig, prior: Prior, *, seed: int, n_samples: int,
               store_fields: bool = False, device: str | None = None,
               gpu_name: str | None = None) -> "EnsembleWriter":
        """Reopen an interrupted file; refuse if its config, prior, seed, size, fields or device differ.

        ``device`` (``"cpu"``/``"cuda"``; None: not checked) must be the one
        the file was started on (files without the attribute were written on
        the CPU): the backends agree only to floating-point tolerance, so a
        file mixing them would not be reproducible. A different ``gpu_name``
        on the same device is only logged as a warning.
        """
        f = _open_h5(path, "r+")
        try:
            hdr = read_header(f, path)
            diffs = []
            if hdr["config"] != config:
                old, new = hdr["config"].to_dict(), config.to_dict()
                keys = [k for k in new if old.get(k) != new.get(k)]
                diffs.append("config (" + ", ".join(f"{k}: file {old.get(k)!r} vs {new.get(k)!r}" for k in keys) + ")")
            if hdr["prior"] != prior:
                diffs.append(f"prior (file: {hdr['prior'].describe()}; command: {prior.describe()})")
            if hdr["seed"] != int(seed):
                diffs.append(f"seed (file {hdr['seed']} vs {int(seed)})")
            if hdr["n_samples"] != int(n_samples):
                diffs.append(f"n_samples (file {hdr['n_samples']} vs {int(n_samples)})")
            has_psi = "psi" in f
            if has_psi != bool(store_fields):
                diffs.append(f"store_fields (file {has_psi} vs {bool(store_fields)})")
            if config.screened and f.attrs.get("a_noise") != A_NOISE and _thermal_possible(prior, config):
                diffs.append("thermal noise (the file was started by a tdglnre whose noise did not kick the vector "
                             "potential a; its samples and new ones would differ in the physics)")
            f_dev, f_gpu = file_device(f.attrs)
            if device is not None and f_dev != device:
                diffs.append(f"device (file {f_dev!r} vs {device!r}; results differ by floating-point rounding "
                             f"between devices: resume with --device {f_dev})")
            elif device == "cuda" and gpu_name is not None and f_gpu != gpu_name:
                log.warning("resuming %s on GPU %r; it was started on %r (results may differ in the last bits)",
                            path, gpu_name, f_gpu)
            if diffs:
                raise EnsembleError(f"cannot --resume {path}: the command differs from the file in " + "; ".join(diffs)
                                    + " (use the original settings, or --force to start over)")
        except BaseException:
            f.close()
            raise
        return cls(f, str(path), hdr["n_complete"])

    # ----------------------------------------------------------------- write
    def write_batch(self, start: int, theta: np.ndarray, x: np.ndarray, psi: np.ndarray | None = None,
                    a: np.ndarray | None = None) -> None:
        """Write samples ``start .. start+len(theta)-1`` (must continue at ``n_complete``); ``a``: screened fields.

        Raises
        ------
        DiskFullError
            No room for the batch (nothing of it was written; the file keeps
            ``n_complete`` samples), or HDF5 failed to write for lack of room.
        EnsembleError
            Out-of-order batch, or HDF5 failed to write; the writer then
            accepts no more batches.
        """
        import time

        if self._broken:
            raise EnsembleError(f"{self.path}: an earlier write failed; no more samples can be written")
        if start != self.n_complete:
            raise EnsembleError(f"{self.path}: batches must be written in order: got start={start}, "
                                f"expected {self.n_complete}")
        n = theta.shape[0]
        stop = start + n
        if stop > self.n_samples:
            raise EnsembleError(f"{self.path}: batch [{start}, {stop}) exceeds the {self.n_samples} allocated samples")
        if psi is not None and "psi" not in self._f:
            raise EnsembleError(f"{self.path}: file was created without fields (psi)")
        if ("a" in self._f) != (a is not None):
            raise EnsembleError(f"{self.path}: the batch {'lacks' if a is None else 'has'} the vector potential a "
                                f"that the file {'holds' if a is None else 'does not hold'}")
        t0 = time.perf_counter()
        nbytes = theta.nbytes + x.nbytes + (0 if psi is None else psi.nbytes) + (0 if a is None else a.nbytes)
        try:
            reserve_space(self._f.id.get_vfd_handle(), nbytes + nbytes // 16 + WRITE_MARGIN)
        except OSError as exc:
            raise self._disk_full(exc, start, stop) from None
        try:
            self._write(start, stop, theta, x, psi, a)
        except (OSError, RuntimeError) as exc:
            self._freeze()
            if is_disk_full(exc):
                raise self._disk_full(exc, start, stop) from None
            raise EnsembleError(f"{self.path}: writing samples {start}..{stop - 1} failed: "
                                f"{' '.join(str(exc).split())}") from None
        self.n_complete = stop
        self.write_seconds += time.perf_counter() - t0
        log.debug("wrote samples %d..%d; n_complete=%d", start, stop - 1, stop)

    def _write(self, start: int, stop: int, theta: np.ndarray, x: np.ndarray, psi: np.ndarray | None,
               a: np.ndarray | None = None) -> None:
        f = self._f
        f["theta"][start:stop] = theta
        f["x"][start:stop] = x
        if psi is not None:
            f["psi"][start:stop] = psi
        if a is not None:
            f["a"][start:stop] = a
        f.flush()  # data is on disk before n_complete says so
        f.attrs.modify("n_complete", stop)
        f.flush()

    def _disk_full(self, exc: BaseException, start: int, stop: int) -> DiskFullError:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else " ".join(str(exc).split())
        return DiskFullError(
            f"{self.path}: disk full or file too large ({reason}) while writing samples {start}..{stop - 1}; "
            f"the {self.n_complete} of {self.n_samples} samples before are kept: free some space and continue "
            "with --resume")

    def _freeze(self) -> None:
        """After a failed HDF5 write: make further writes to the file fail, so that closing cannot damage it more."""
        self._broken = True
        try:
            fd = self._f.id.get_vfd_handle()
            ro = os.open(self.path, os.O_RDONLY)
            try:
                os.dup2(ro, fd)
            finally:
                os.close(ro)
        except (OSError, RuntimeError, ValueError) as exc:  # pragma: no cover - platform dependent
            log.debug("could not protect %s after a failed write: %s", self.path, exc)

    def close(self) -> None:
        if self._f is not None:
            try:
                self._f.close()
            except (OSError, RuntimeError) as exc:
                if not self._broken:
                    raise
                log.debug("closing %s after a failed write: %s", self.path, exc)
            finally:
                self._f = None

    def __enter__(self) -> "EnsembleWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
