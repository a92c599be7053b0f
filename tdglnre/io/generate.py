"""Generate an HDF5 ensemble: θ ~ prior, quench simulation, channels → file.

:func:`generate_ensemble` is the library function behind ``tdglnre generate``.
Samples are simulated in batches of consecutive global indices, either in this
process (numba threads over the samples of a batch) or on a Dask cluster
(``workers=K`` starts a LocalCluster on loopback, ``scheduler=ADDRESS``
connects to an existing one). This process is always the single HDF5 writer:
batches are written in index order as they complete (out-of-order completions
are buffered), each followed by a flush and only then by advancing
``n_complete``.

Sample k's θ and initial state depend only on (seed, k), so the file content is
identical for any batch size, worker count, interruption and resumption.

``device="cuda"`` runs the batches on the GPU (:mod:`tdglnre.physics.cuda`,
local mode only); the file records the device and the GPU's name, and a file
is resumed only on the device it was started on (docs/file-format.md,
"Devices"). In local mode a writer thread takes finished batches from a
bounded queue and writes them in index order while the next batch is
computed, with the same flush-then-``n_complete`` crash safety.

Every argument is validated (and a Dask cluster connected) before the output
is touched. A new file is written in place; ``force`` over an existing file
writes ``FILE.h5.partial`` (:func:`partial_path`) and renames it over the old
file only when complete; ``resume`` continues that partial file first. A run
that fails before its first sample removes the file it created
(docs/file-format.md, "Reproducibility and crash safety").
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import logging
import math
import os
import queue
import re
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from ..errors import ConfigError, DivergenceError
from ..physics.config import SimConfig
from ..physics.backends import simulate
from ..physics.options import SolverOptions
from ..physics.rng import check_seed
from .ensemble import EnsembleError, EnsembleWriter, check_count
from .priors import Prior

log = logging.getLogger(__name__)

__all__ = ["generate_ensemble", "simulate_batch", "default_batch_size", "check_seed", "check_threads",
           "check_scheduler_address", "check_device", "partial_path", "PARTIAL_SUFFIX", "CUDA_BATCH",
           "WRITER_QUEUE"]

#: Largest default batch on the GPU (samples resident on the device at once; never changes results).
CUDA_BATCH = 1024
#: Default bound of the writer thread's queue (finished batches waiting to be written).
WRITER_QUEUE = 2


def default_batch_size(threads: int | None = None) -> int:
    """Samples per batch: at least 16 and two per numba thread (does not change results)."""
    if threads is None:
        import numba

        threads = numba.get_num_threads()
    return max(16, 2 * int(threads))


def cuda_batch_size(config: SimConfig, n_samples: int) -> int:
    """Default samples per batch on the GPU: :data:`CUDA_BATCH`, fewer if the device buffers need it."""
    from ..physics.cuda import auto_batch_size

    return max(1, min(CUDA_BATCH, auto_batch_size(n_samples, config.N, len(config.snapshot_times), config.dtype)))


def check_device(device: Any) -> str:
    """Resolve ``"cpu" | "cuda" | "auto"`` to the device that runs (:func:`tdglnre.physics.cuda.resolve_device`).

    Raises
    ------
    ConfigError
        Unknown name, or ``"cuda"`` where numba-cuda or a GPU is missing (one line saying what).
    """
    if device == "cpu":
        return "cpu"  # no CUDA import on the default path
    if device not in ("cuda", "auto"):
        raise ConfigError(f"device must be one of ['cpu', 'cuda', 'auto'], got {device!r}")
    from ..physics.cuda import resolve_device

    return resolve_device(device)


def simulate_batch(config: SimConfig | str, prior: Prior | str, seed: int, start: int, stop: int,
                   store_fields: bool = False, options: SolverOptions | str | None = None) -> dict[str, Any]:
    """Simulate global samples ``start .. stop-1`` (runs in this process or on a Dask worker).

    ``config``, ``prior`` and the run's :class:`~tdglnre.physics.options.SolverOptions`
    are the objects, or their JSON text where the batch crosses to a Dask
    worker (:meth:`SimConfig.to_json`, :meth:`Prior.to_json`,
    :meth:`SolverOptions.to_json`); the config and prior are not validated
    again here (the caller, :func:`generate_ensemble`, did). The batch runs
    through :func:`tdglnre.physics.backends.simulate` on the options' device
    (a resolved ``"cpu"`` or ``"cuda"``; on ``"cuda"`` the channels, and ψ,
    are computed on the GPU).

    Returns a dict with ``start``, ``theta`` (n, P) float64, ``x`` (n, T, N, N, C)
    float32, ``psi`` (n, T, 2, N, N) complex64 or None, and ``seconds``; if a
    sample diverges, instead ``divergence = (sample, step, params, reason)`` (so that
    the error crosses process boundaries intact).
    """
    t0 = time.perf_counter()
    if isinstance(config, str):
        config = SimConfig.from_json(config)
    if isinstance(prior, str):
        prior = Prior.from_json(prior)
    if isinstance(options, str):
        options = SolverOptions.from_json(options)
    idx = np.arange(start, stop, dtype=np.int64)
    theta = prior.sample(seed, idx)
    params = prior.params(theta)
    try:
        res = simulate(config, params, seed=seed, sample_indices=idx, options=options, want_psi=store_fields,
                       want_channels=True)
    except DivergenceError as exc:
        return {"start": start, "stop": stop,
                "divergence": (exc.sample, exc.step, {k: float(v) for k, v in exc.params.items()}, exc.reason)}
    psi = res.psi.astype(np.complex64) if store_fields else None
    return {"start": start, "stop": stop, "theta": theta, "x": res.channels(), "psi": psi,
            "seconds": time.perf_counter() - t0}


def _raise_if_diverged(r: dict[str, Any]) -> None:
    if "divergence" in r:
        sample, step, params, reason = r["divergence"]
        raise DivergenceError(sample, step, params, reason)


class _Progress:
    """tqdm bar on stderr (samples/s and ETA), or nothing."""

    def __init__(self, enabled: bool, total: int, initial: int, desc: str):
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=initial, unit="sample", desc=desc, file=sys.stderr,
                            dynamic_ncols=True, smoothing=0.1)

    def update(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# ------------------------------------------------------------------ validation
#: Dask comm protocols accepted in a scheduler address.
SCHEDULER_PROTOCOLS = ("tcp", "tls", "ws", "wss", "ucx")
_ADDRESS_RE = re.compile(
    r"^(?:(?P<proto>[A-Za-z][A-Za-z0-9+.-]*)://)?(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(?P<port>[0-9]{1,5})$"
)


def check_threads(threads: Any, *, this_machine: bool = True) -> int | None:
    """Validate a numba thread count (None = numba's default).

    On this machine (local runs and ``workers=K`` clusters) the count must lie in
    1..``numba.config.NUMBA_NUM_THREADS``, the most numba can use here; for an
    external ``scheduler`` only ``threads >= 1`` is checked (its workers may
    have more cores).
    """
    if threads is None:
        return None
    try:
        ok = not isinstance(threads, (bool, np.bool_)) and int(threads) == threads
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise ConfigError(f"threads must be a positive integer, got {threads!r}")
    threads = int(threads)
    if this_machine:
        import numba

        hi = int(numba.config.NUMBA_NUM_THREADS)
        if not 1 <= threads <= hi:
            raise ConfigError(f"threads must be in 1..{hi}, got {threads}")
    elif threads < 1:
        raise ConfigError(f"threads must be a positive integer, got {threads}")
    return threads


def check_scheduler_address(address: Any) -> str:
    """Check the syntax of a Dask scheduler address ``[PROTOCOL://]HOST:PORT`` (no connection is made).

    Raises
    ------
    ConfigError
        Not a string, unknown protocol, missing/invalid host or a port outside 1..65535.
    """
    expected = (f"expected [PROTOCOL://]HOST:PORT such as tcp://10.0.0.5:8786 (PROTOCOL one of "
                f"{', '.join(SCHEDULER_PROTOCOLS)}; PORT in 1..65535)")
    if not isinstance(address, str):
        raise ConfigError(f"invalid Dask scheduler address {address!r}: {expected}")
    m = _ADDRESS_RE.match(address.strip())
    if m is None:
        raise ConfigError(f"invalid Dask scheduler address {address!r}: {expected}")
    proto = (m.group("proto") or "tcp").lower()
    if proto not in SCHEDULER_PROTOCOLS:
        raise ConfigError(f"invalid Dask scheduler address {address!r}: unknown protocol {proto!r}; {expected}")
    if not 1 <= int(m.group("port")) <= 65535:
        raise ConfigError(f"invalid Dask scheduler address {address!r}: port {m.group('port')} is outside 1..65535")
    return address.strip()


# ---------------------------------------------------------------- output file
#: Suffix of the file a ``force`` run writes before it replaces the old output.
PARTIAL_SUFFIX = ".partial"


def partial_path(out: str | os.PathLike) -> Path:
    """The temporary file beside ``out`` (``FILE.h5`` → ``FILE.h5.partial``).

    A ``force=True`` run over an existing file writes here and replaces
    ``out`` only when every sample is complete, so a failure or crash never
    destroys the old output; ``resume=True`` continues this file first if it
    exists.
    """
    p = Path(out)
    return p.with_name(p.name + PARTIAL_SUFFIX)


@dataclass(frozen=True)
class _OutputPlan:
    """What a run does with its output: create or resume ``write``; replace ``target`` by it at the end."""

    action: str  # "create" | "resume"
    target: Path
    write: Path

    @property
    def replaces(self) -> bool:
        return self.write != self.target


def _plan_output(out: Path, resume: bool, force: bool) -> _OutputPlan:
    """Decide which file to create or resume; touches nothing on disk.

    * ``resume``: continue ``out.partial`` if it exists (an interrupted forced
      run), else ``out``; create ``out`` if neither exists.
    * new file: written in place at ``out`` (a crash leaves it resumable).
    * ``force`` over an existing ``out`` (or a stale ``out.partial``): written
      to ``out.partial``, which replaces ``out`` only on success.
    """
    for name, flag in (("resume", resume), ("force", force)):
        if not isinstance(flag, (bool, np.bool_)):
            raise ConfigError(f"`{name}` must be True or False, got {flag!r}")
    check_exclusive(resume=resume, force=force)
    if out.is_dir():
        raise EnsembleError(f"output {out} is a directory; give a file name such as {out / 'ensemble.h5'}")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise EnsembleError(f"cannot create output file {out}: directory {parent} does not exist")
    part = partial_path(out)
    if part.is_dir():
        raise EnsembleError(f"{part} is a directory; remove it (tdglnre uses this name for unfinished output)")
    if resume:
        if part.exists():
            log.info("--resume: continuing the interrupted forced run in %s (it replaces %s when complete)", part, out)
            return _OutputPlan("resume", out, part)
        if out.exists():
            return _OutputPlan("resume", out, out)
        log.info("--resume: %s does not exist yet; starting a new file", out)
    elif out.exists():
        if not force:
            hint = f" (the interrupted forced run in {part})" if part.exists() else ""
            raise EnsembleError(f"output file {out} already exists; use --force to overwrite it or --resume to "
                                f"continue an interrupted run{hint}")
        if not os.access(out, os.W_OK):
            raise EnsembleError(f"cannot overwrite output file {out}: permission denied")
    elif part.exists() and not force:
        raise EnsembleError(f"{part} holds an interrupted forced run for {out}; continue it with --resume or "
                            "start over with --force")
    if not os.access(parent, os.W_OK):
        raise EnsembleError(f"cannot create output file {out}: directory {parent} is not writable")
    if force and (out.exists() or part.exists()):
        refuse_if_locked(out, "--force cannot replace it")
        refuse_if_locked(part, "--force cannot start over")
        return _OutputPlan("create", out, part)
    return _OutputPlan("create", out, out)


def refuse_if_locked(path: Path, what: str) -> None:
    """Raise :class:`EnsembleError` if another process holds ``path`` open for writing (HDF5's file lock).

    HDF5 locks a file it writes with ``flock(LOCK_EX)``; a shared lock that
    cannot be taken means a writer (a ``generate`` run) has it open. Readers
    hold shared locks and do not count. Where ``flock`` does not exist
    nothing is checked.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not Unix
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return  # missing or unreadable: the caller's other checks speak
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise EnsembleError(f"{path} is being written by another process (is a generate run still writing "
                                f"it?); {what}") from None
    finally:
        os.close(fd)  # releases this shared lock only


def _open_writer(plan: _OutputPlan, run: "_Run") -> EnsembleWriter:
    if plan.action == "resume":  # the file keeps the measurement it was created with
        return EnsembleWriter.resume(plan.write, run.config, run.prior, seed=run.seed, n_samples=run.n_samples,
                                     store_fields=run.store_fields, device=run.device, gpu_name=run.gpu)
    return EnsembleWriter.create(plan.write, run.config, run.prior, seed=run.seed, n_samples=run.n_samples,
                                 store_fields=run.store_fields, device=run.device, gpu_name=run.gpu,
                                 extra_attrs={"measurement": run.measurement} if run.measurement else None)


def _fsync(path: Path, directory: bool = False) -> None:
    """Best-effort fsync of a file (or a directory entry) before/after a rename."""
    try:
        fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0))
    except OSError:  # pragma: no cover - platform dependent
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - platform dependent
        pass
    finally:
        os.close(fd)


def _finish_output(plan: _OutputPlan) -> None:
    """After a complete run: move ``plan.write`` over ``plan.target`` (atomic rename)."""
    if not plan.replaces:
        return
    refuse_if_locked(plan.target, f"the completed ensemble is kept in {plan.write}: rerun with --resume to "
                                  "move it into place once that run has finished")
    _fsync(plan.write)
    os.replace(plan.write, plan.target)
    _fsync(plan.target.parent if str(plan.target.parent) else Path("."), directory=True)
    log.info("replaced %s with the completed %s", plan.target, plan.write)


def _clean_up_failed(plan: _OutputPlan, n_complete: int, n_samples: int) -> None:
    """After a failed run: remove a file this run created without any sample; say where partial data is."""
    if plan.action == "create" and n_complete == 0:
        try:
            plan.write.unlink()
            log.info("removed %s: the run failed before any sample was written", plan.write)
        except OSError as exc:  # pragma: no cover - e.g. removed meanwhile
            log.debug("could not remove %s: %s", plan.write, exc)
        return
    if plan.replaces and n_complete < n_samples:
        log.warning("run stopped: %d of %d samples are kept in %s; %s is unchanged; continue with --resume "
                    "(or start over with --force)", n_complete, n_samples, plan.write, plan.target)


def generate_ensemble(
    config: SimConfig,
    prior: Prior,
    n_samples: int,
    seed: int,
    out: str | os.PathLike,
    *,
    resume: bool = False,
    force: bool = False,
    workers: int | None = None,
    scheduler: str | None = None,
    store_fields: bool = False,
    batch_size: int | None = None,
    threads: int | None = None,
    progress: bool | Callable[[int], None] = True,
    device: str = "cpu",
    writer_queue: int = WRITER_QUEUE,
    measurement: str | None = None,
) -> dict[str, Any]:
    """Simulate ``n_samples`` quenches with θ ~ prior and write them to an HDF5 ensemble.

    Parameters
    ----------
    config, prior
        Resolved simulation settings and prior (e.g. from
        :func:`tdglnre.io.presets.load_preset`); both are validated here.
    n_samples
        Number of samples S (global indices 0..S-1).
    seed
        Run seed, an integer in 0..2**63−1 (:func:`check_seed`); sample k
        depends only on (seed, k).
    out
        Output ``.h5`` path. A new file is written in place, so a crashed
        run leaves a partial file that ``resume`` continues; a run that fails
        before writing any sample removes the file it created.
    resume
        Continue an interrupted run (refused if its config, prior, seed,
        n_samples or fields differ): ``out + ".partial"`` (an interrupted
        ``force`` run, :func:`partial_path`) if it exists, else ``out``. A
        missing file is started from scratch.
    force
        Replace an existing file. The new ensemble is written to
        ``out + ".partial"`` and renamed over ``out`` only when complete;
        until then (and after any failure or crash) ``out`` is untouched.
    workers
        Run on a local Dask cluster with this many single-threaded worker
        processes on loopback (numba uses ``cpu_count // workers`` threads in each).
    scheduler
        Address of an existing Dask scheduler (``[PROTOCOL://]HOST:PORT``,
        e.g. ``tcp://host:8786``; :func:`check_scheduler_address`) instead.
    store_fields
        Also store ψ (S, T, 2, N, N) complex64.
    batch_size
        Samples per batch / Dask task (default :func:`default_batch_size`;
        on the GPU :func:`cuda_batch_size`); never changes the results.
    threads
        numba threads in this process (local mode) or per worker; at most
        ``numba.config.NUMBA_NUM_THREADS`` unless ``scheduler`` is given
        (:func:`check_threads`).
    progress
        Show a tqdm bar on stderr (True), nothing (False), or call a function
        with the number of samples finished after each batch is written (in
        local mode with a writer thread the call comes from that thread; an
        exception it raises stops the run like one in the main thread).
    device
        ``"cpu"`` (default, the reference), ``"cuda"`` (the GPU backend,
        :mod:`tdglnre.physics.cuda`; local mode only) or ``"auto"`` (CUDA when
        a real GPU is usable, else the CPU; always the CPU with Dask). Recorded
        in the file (root attributes ``device``, ``gpu_name``); ``resume``
        refuses a file started on another device.
    writer_queue
        Local mode: finished batches that may wait for the HDF5 writer thread
        (≥ 1), so that writing overlaps with computing; 0 writes in the main
        thread between batches. Never changes the file's data.
    measurement
        Text form of the instrument the images are meant for (a preset's
        ``measurement``, :func:`tdglnre.io.presets.preset_measurement`);
        recorded as the root attribute ``measurement`` of a new file, so that
        ``train`` applies it by default. The simulations stay clean.

    Returns
    -------
    dict
        Summary: ``path``, ``n_samples``, ``n_complete``, ``n_new``,
        ``resumed``, ``seed``, ``mode``, ``device``, ``gpu_name``, ``wall_s``,
        ``samples_per_s``, ``write_s`` (the writer's own time in HDF5 writes
        and flushes), ``write_fraction`` (``write_s`` / loop time),
        ``write_wait_s`` (time the main thread waited for the writer: a full
        queue and the final drain; equal to ``write_s`` when writing is
        synchronous), ``write_wait_fraction``, ``file_size_bytes``.

    Raises
    ------
    ConfigError
        Invalid config, prior or arguments (all checked before any file is
        created or replaced), ``device="cuda"`` without a usable GPU or with
        Dask, or the Dask scheduler cannot be reached.
    EnsembleError
        Output exists (without force/resume), is unwritable, or does not match on resume.
    DivergenceError
        A sample diverged (names the sample and its parameters); the samples
        before it stay complete in the file being written (the old output of
        a ``force`` run is kept).
    """
    t_start = time.perf_counter()
    run = _check_run(config, prior, n_samples, seed, workers=workers, scheduler=scheduler,
                     store_fields=store_fields, batch_size=batch_size, threads=threads, device=device,
                     writer_queue=writer_queue, measurement=measurement)
    if not isinstance(out, (str, os.PathLike)) or str(out) == "":
        raise ConfigError(f"`out` must be a file path, got {out!r}")
    out_path = Path(out)
    plan = _plan_output(out_path, resume, force)
    with contextlib.ExitStack() as stack:
        client = None
        if run.mode != "local":  # connect before the output is created: a bad cluster leaves no file behind
            client, threads = stack.enter_context(_dask_client(run.workers, run.scheduler, run.threads))
            run = dataclasses.replace(run, threads=threads)
        n_before, n_complete, write_s, wait_s, loop_s = _write_samples(run, plan, client, progress)
    _finish_output(plan)
    summary = _summary(run, plan, n_before, n_complete, write_s, wait_s, loop_s, time.perf_counter() - t_start)
    log.info("generate summary: %s", summary)
    return summary


@dataclass(frozen=True)
class _Run:
    """The checked arguments of one :func:`generate_ensemble` call (everything but the output)."""

    config: SimConfig
    prior: Prior
    n_samples: int
    seed: int
    store_fields: bool
    batch_size: int
    threads: int | None
    device: str  # resolved: "cpu" | "cuda"
    gpu: str
    workers: int | None
    scheduler: str | None
    writer_queue: int
    measurement: str | None

    @property
    def options(self) -> SolverOptions:
        """The solver options of every batch (on the CPU one kernel call a batch; on the GPU automatic batches)."""
        return SolverOptions.from_config(self.config, batch_size=self.batch_size if self.device == "cpu" else None,
                                         threads=self.threads, device=self.device)

    @property
    def mode(self) -> str:
        if self.workers is not None:
            return f"dask-local({self.workers})"
        return "local" if self.scheduler is None else f"dask({self.scheduler})"


def check_exclusive(*, resume: bool = False, force: bool = False, workers: Any = None, scheduler: Any = None) -> None:
    """The one check of the option pairs that exclude each other: resume/force and workers/scheduler."""
    if resume and force:
        raise ConfigError("--resume and --force are mutually exclusive (resume continues a file, force starts over)")
    if workers is not None and scheduler is not None:
        raise ConfigError("--workers and --scheduler are mutually exclusive: give either --workers (local Dask "
                          "cluster) or --scheduler (existing cluster), not both")


def _check_run(config: Any, prior: Any, n_samples: Any, seed: Any, *, workers: Any, scheduler: Any,
               store_fields: Any, batch_size: Any, threads: Any, device: Any, writer_queue: Any,
               measurement: Any) -> _Run:
    """Validate every argument of a run once, before the output is touched (ConfigError naming the argument)."""
    if not isinstance(config, SimConfig):
        raise ConfigError(f"config must be a SimConfig, got {type(config).__name__}")
    if not isinstance(prior, Prior):
        raise ConfigError(f"prior must be a Prior, got {type(prior).__name__}")
    config.validate()
    prior.validate(config)
    n_samples = check_count("n_samples", n_samples)
    seed = check_seed(seed)
    check_exclusive(workers=workers, scheduler=scheduler)
    if workers is not None:
        workers = check_count("workers", workers)
    if batch_size is not None:
        batch_size = check_count("batch_size", batch_size)
    if scheduler is not None:
        scheduler = check_scheduler_address(scheduler)
    threads = check_threads(threads, this_machine=scheduler is None)
    if isinstance(writer_queue, (bool, np.bool_)) or not isinstance(writer_queue, (int, np.integer)) or writer_queue < 0:
        raise ConfigError(f"writer_queue must be an integer >= 0 (0: write in the main thread), got {writer_queue!r}")
    if not isinstance(store_fields, (bool, np.bool_)):
        raise ConfigError(f"store_fields must be True or False, got {store_fields!r}")
    if measurement is not None and not isinstance(measurement, str):
        raise ConfigError(f"measurement must be text (a preset's measurement) or None, got {measurement!r}")
    local = workers is None and scheduler is None
    device, gpu = _resolve_device(device, local)
    if batch_size is None:
        batch_size = (cuda_batch_size(config, n_samples) if device == "cuda" else
                      default_batch_size(threads) if local else 16)
    return _Run(config, prior, n_samples, seed, bool(store_fields), batch_size, threads, device, gpu, workers,
                scheduler, int(writer_queue), measurement)


def _resolve_device(device: Any, local: bool) -> tuple[str, str]:
    """The device that runs (``"cpu"``/``"cuda"``) and the GPU's name; CUDA runs in this process only."""
    requested = device
    device = check_device(device)
    if device == "cuda" and not local:
        if requested != "auto":
            raise ConfigError("--device cuda runs in this process only; drop --workers/--scheduler (Dask workers "
                              "run the CPU solver)")
        log.info("device auto: Dask workers run the CPU solver")
        device = "cpu"
    if device != "cuda":
        return device, ""
    from ..physics.cuda import gpu_name

    return device, gpu_name()


def _write_samples(run: _Run, plan: _OutputPlan, client: Any,
                   progress: bool | Callable[[int], None]) -> tuple[int, int, float, float, float]:
    """Open the output and simulate the missing samples into it.

    Returns (samples complete before, samples complete now, writer seconds,
    seconds waited for the writer, loop seconds). A failed run removes a file
    it created without any sample and says where the complete samples are.
    """
    writer = _open_writer(plan, run)
    n_before = writer.n_complete
    log.info("generate: %s, %d samples (%d already complete), seed %d, %s on %s%s", plan.target, run.n_samples,
             n_before, run.seed, run.mode, run.device + (f" ({run.gpu})" if run.gpu else ""),
             f" (writing {plan.write})" if plan.replaces else "")
    callback = progress if callable(progress) else None
    bar = _Progress(bool(progress) and callback is None, run.n_samples, n_before, plan.target.name)

    def written(n: int) -> None:
        bar.update(n)
        if callback is not None:
            callback(n)

    t_loop = time.perf_counter()
    ok = False
    wait_s = 0.0
    try:
        if n_before < run.n_samples:
            if client is None:
                wait_s = _run_local(writer, run, written)
            else:
                _run_dask(writer, client, run, written)
                wait_s = writer.write_seconds  # written synchronously by this thread
        ok = writer.n_complete == run.n_samples
        if not ok:  # pragma: no cover - defensive
            raise EnsembleError(f"internal error: {writer.n_complete} of {run.n_samples} samples written")
    finally:
        bar.close()
        n_complete, write_s = writer.n_complete, writer.write_seconds
        writer.close()
        if not ok:
            _clean_up_failed(plan, n_complete, run.n_samples)
    return n_before, n_complete, write_s, wait_s, time.perf_counter() - t_loop


def _summary(run: _Run, plan: _OutputPlan, n_before: int, n_complete: int, write_s: float, wait_s: float,
             loop_s: float, wall_s: float) -> dict[str, Any]:
    """The figures :func:`generate_ensemble` returns (see its docstring)."""
    n_new = n_complete - n_before
    return {
        "path": str(plan.target),
        "n_samples": run.n_samples,
        "n_complete": n_complete,
        "n_new": n_new,
        "resumed": plan.action == "resume",
        "seed": run.seed,
        "mode": run.mode,
        "device": run.device,
        "gpu_name": run.gpu,
        "batch_size": run.batch_size,
        "store_fields": run.store_fields,
        "dtype": run.config.dtype,
        "wall_s": wall_s,
        "loop_s": loop_s,
        "samples_per_s": n_new / loop_s if loop_s > 0 else math.nan,
        "write_s": write_s,
        "write_fraction": write_s / loop_s if loop_s > 0 else 0.0,
        "write_wait_s": wait_s,
        "write_wait_fraction": wait_s / loop_s if loop_s > 0 else 0.0,
        "file_size_bytes": plan.target.stat().st_size,
    }


def _batches(n_from: int, n_to: int, batch_size: int) -> list[tuple[int, int]]:
    return [(s, min(n_to, s + batch_size)) for s in range(n_from, n_to, batch_size)]


class _WriterThread:
    """Writes finished batches on a background thread, in order, through a bounded queue.

    The main thread :meth:`put` s a batch and goes on computing the next one;
    the writer thread calls :meth:`EnsembleWriter.write_batch` (data flushed
    before ``n_complete`` advances, as in the synchronous path) and then
    ``written(n)``. An exception in the writer thread (an HDF5 error, or one
    raised by ``written``) stops it and is re-raised in the main thread at its
    next :meth:`put` or at :meth:`finish`. ``wait_s`` is the time the main
    thread spent blocked on the writer.
    """

    def __init__(self, writer: EnsembleWriter, written: Callable[[int], None], maxsize: int):
        self._writer = writer
        self._written = written
        self._q: queue.Queue = queue.Queue(maxsize=maxsize)
        self._abort = threading.Event()
        self.error: BaseException | None = None
        self.wait_s = 0.0
        self._thread = threading.Thread(target=self._loop, name="tdglnre-hdf5-writer", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            item = self._q.get()
            if item is None or self._abort.is_set():
                return
            start, theta, x, psi = item
            try:
                self._writer.write_batch(start, theta, x, psi)
                self._written(theta.shape[0])
            except BaseException as exc:  # handed to the main thread
                self.error = exc
                return

    def _raise_if_failed(self) -> None:
        if self.error is not None:
            raise self.error

    def _put(self, item: Any) -> None:
        while True:
            self._raise_if_failed()
            if not self._thread.is_alive():
                return  # stopped (aborted): nothing will take the item
            try:
                self._q.put(item, timeout=0.05)
                return
            except queue.Full:
                continue

    def put(self, start: int, theta: np.ndarray, x: np.ndarray, psi: np.ndarray | None) -> None:
        """Queue a batch for writing; blocks (counted in ``wait_s``) while the queue is full."""
        t0 = time.perf_counter()
        self._put((start, theta, x, psi))
        self.wait_s += time.perf_counter() - t0

    def finish(self) -> None:
        """Write everything queued, stop the thread; re-raise its error."""
        t0 = time.perf_counter()
        self._put(None)
        self._thread.join()
        self.wait_s += time.perf_counter() - t0
        self._raise_if_failed()

    def stop(self, drain: bool) -> None:
        """After a failure in the main thread: write what is queued (``drain``) or only the batch in hand."""
        if not drain:
            self._abort.set()
        try:
            self._put(None)
        except BaseException:  # the writer's own error; the main thread's error wins
            pass
        self._thread.join()


def _run_local(writer: EnsembleWriter, run: _Run, written: Callable[[int], None]) -> float:
    """Compute the batches here; write them on a writer thread (``run.writer_queue`` ≥ 1) or inline (0).

    Returns the seconds the main thread waited for writing.
    """
    options = run.options

    def batch(start: int, stop: int) -> dict[str, Any]:
        r = simulate_batch(run.config, run.prior, run.seed, start, stop, run.store_fields, options)
        _raise_if_diverged(r)
        return r

    batches = _batches(writer.n_complete, run.n_samples, run.batch_size)
    if run.writer_queue == 0:
        for start, stop in batches:
            r = batch(start, stop)
            writer.write_batch(start, r["theta"], r["x"], r["psi"])
            written(stop - start)
        return writer.write_seconds
    wt = _WriterThread(writer, written, run.writer_queue)
    try:
        for start, stop in batches:
            r = batch(start, stop)
            wt.put(start, r["theta"], r["x"], r["psi"])
        wt.finish()
    except Exception:
        # e.g. a divergence: the batches before it are still written (they stay complete in the file)
        wt.stop(drain=True)
        raise
    except BaseException:
        # Ctrl-C: stop after the batch being written
        wt.stop(drain=False)
        raise
    return wt.wait_s


@contextlib.contextmanager
def _dask_client(workers: int | None, scheduler: str | None,
                 threads: int | None) -> Iterator[tuple[Any, int | None]]:
    """Start a LocalCluster (``workers``) or connect to ``scheduler``; yield (client, numba threads per task)."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:  # pragma: no cover - depends on the install
        raise ConfigError("--workers/--scheduler need dask.distributed: pip install 'tdglnre[dask]'") from None

    cluster = None
    client = None
    dlog = logging.getLogger("distributed")
    old_level = dlog.level
    if not log.isEnabledFor(logging.DEBUG):  # Dask's INFO chatter only with -vv
        dlog.setLevel(logging.WARNING)
    try:
        if workers is not None:
            if threads is None:
                threads = max(1, (os.cpu_count() or 1) // workers)
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                   host="127.0.0.1", dashboard_address=None,
                                   silence_logs=logging.WARNING)
            client = Client(cluster)
        else:
            try:
                client = Client(scheduler, timeout="30s")
            except (OSError, TimeoutError, ValueError) as exc:
                raise ConfigError(f"cannot connect to the Dask scheduler at {scheduler!r}: {exc}") from None
        yield client, threads
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
        dlog.setLevel(old_level)


def _run_dask(writer: EnsembleWriter, client: Any, run: _Run, written: Callable[[int], None]) -> None:
    """Submit the batches to the Dask cluster (config and prior as JSON); write them here in index order."""
    from dask.distributed import as_completed

    seed, n_samples, store_fields, threads = run.seed, run.n_samples, run.store_fields, run.threads

    n_threads = sum(w.get("nthreads", 1) for w in client.scheduler_info().get("workers", {}).values())
    window = max(4, 2 * max(n_threads, 1))
    log.info("dask: %d worker threads, %d tasks in flight, %d numba threads per task",
             n_threads, window, threads or 0)

    # the Dask boundary: plain text crosses it
    cj, pj, oj = run.config.to_json(), run.prior.to_json(), run.options.to_json()
    todo = deque(_batches(writer.n_complete, n_samples, run.batch_size))
    ac = as_completed()

    def submit_next() -> None:
        if todo:
            a, b = todo.popleft()
            ac.add(client.submit(simulate_batch, cj, pj, seed, a, b, store_fields, oj,
                                 pure=False, key=f"tdglnre-batch-{a}-{b}-{os.getpid()}-{time.time_ns()}"))

    for _ in range(window):
        submit_next()
    buffer: dict[int, dict[str, Any]] = {}
    for fut in ac:
        r = fut.result()
        fut.release()
        _raise_if_diverged(r)
        buffer[r["start"]] = r
        while writer.n_complete in buffer:
            rb = buffer.pop(writer.n_complete)
            writer.write_batch(rb["start"], rb["theta"], rb["x"], rb["psi"])
            written(rb["stop"] - rb["start"])
        submit_next()
    if writer.n_complete != n_samples:  # pragma: no cover - defensive
        raise EnsembleError(f"internal error: {writer.n_complete} of {n_samples} samples written")
