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
is touched. Which file a run creates, resumes or replaces is
:mod:`tdglnre.io.output_plan`'s (``force`` writes ``FILE.h5.partial`` and
renames it over the old file only when complete; ``resume`` continues that
partial file first; a run that fails before its first sample removes the file
it created; docs/file-format.md, "Reproducibility and crash safety"); how the
batches run (writer thread, Dask) is :mod:`tdglnre.io.batch_runs`'s. Each
batch is one call of :func:`tdglnre.physics.backends.simulate` with the run's
:class:`~tdglnre.physics.options.SolverOptions`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import ConfigError, DivergenceError
from ..physics.config import SimConfig
from ..physics.backends import simulate
from ..physics.options import SolverOptions
from ..physics.rng import check_seed
from .batch_runs import _dask_client, _Progress, _run_dask, _run_local
from .ensemble import EnsembleError, EnsembleWriter, check_count
from .output_plan import (PARTIAL_SUFFIX, _clean_up_failed, _finish_output, _OutputPlan,  # noqa: F401  (re-exported)
                          _plan_output, check_exclusive, partial_path, refuse_if_locked)
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

    return max(1, min(CUDA_BATCH, auto_batch_size(n_samples, config.N, len(config.snapshot_times), config.dtype,
                                                  config.screened)))


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
    float32, ``psi`` (n, T, 2, N, N) complex64 or None, ``a`` (n, T, 2, N, N)
    float32 (screened runs with ``store_fields``) or None, and ``seconds``; if a
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
    a = res.a.astype(np.float32) if store_fields and res.a is not None else None
    return {"start": start, "stop": stop, "theta": theta, "x": res.channels(), "psi": psi, "a": a,
            "seconds": time.perf_counter() - t0}


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


def _open_writer(plan: _OutputPlan, run: "_Run") -> EnsembleWriter:
    if plan.action == "resume":  # the file keeps the measurement it was created with
        return EnsembleWriter.resume(plan.write, run.config, run.prior, seed=run.seed, n_samples=run.n_samples,
                                     store_fields=run.store_fields, device=run.device, gpu_name=run.gpu)
    return EnsembleWriter.create(plan.write, run.config, run.prior, seed=run.seed, n_samples=run.n_samples,
                                 store_fields=run.store_fields, device=run.device, gpu_name=run.gpu,
                                 extra_attrs={"measurement": run.measurement} if run.measurement else None)


def generate_ensemble(config: SimConfig, prior: Prior, n_samples: int, seed: int, out: str | os.PathLike, *,
                      resume: bool = False, force: bool = False, workers: int | None = None,
                      scheduler: str | None = None, store_fields: bool = False, batch_size: int | None = None,
                      threads: int | None = None, progress: bool | Callable[[int], None] = True,
                      device: str = "cpu", writer_queue: int = WRITER_QUEUE,
                      measurement: str | None = None) -> dict[str, Any]:
    """Simulate ``n_samples`` quenches with θ ~ prior and write them to an HDF5 ensemble.

    Parameters
    ----------
    config, prior
        Resolved simulation settings and prior (e.g. from
        :func:`tdglnre.io.presets.load_preset`); both are validated here.
    n_samples, seed
        Number of samples S (global indices 0..S-1) and run seed in
        0..2**63−1 (:func:`check_seed`); sample k depends only on (seed, k).
    out
        Output ``.h5`` path, written in place (a crashed run leaves a file ``resume`` continues).
    resume, force
        Continue an interrupted run (refused if its config, prior, seed,
        n_samples or fields differ; ``out.partial`` first, :func:`partial_path`),
        or replace an existing file (written to ``out.partial``, renamed over
        ``out`` only when complete). See :mod:`tdglnre.io.output_plan`.
    workers, scheduler
        A local Dask cluster of this many single-threaded worker processes (numba uses
        ``cpu_count // workers`` threads in each), or an existing scheduler's
        ``[PROTOCOL://]HOST:PORT`` (:func:`check_scheduler_address`).
    store_fields
        Also store ψ (S, T, 2, N, N) complex64.
    batch_size, threads
        Samples per batch / Dask task (default :func:`default_batch_size`, on the GPU
        :func:`cuda_batch_size`) and numba threads here or per worker (:func:`check_threads`);
        neither changes the results.
    progress
        A tqdm bar on stderr (True), nothing (False), or a function called with
        the number of samples written after each batch (in local mode from the
        writer thread; an exception it raises stops the run).
    device
        ``"cpu"`` (the reference), ``"cuda"`` (local mode only) or ``"auto"``
        (CUDA on a usable GPU, always the CPU with Dask); recorded in the file
        (``device``, ``gpu_name``), and ``resume`` refuses another device.
    writer_queue
        Local mode: finished batches that may wait for the writer thread (≥ 1);
        0 writes in the main thread. Never changes the file's data.
    measurement
        A preset's measurement text, recorded as the root attribute
        ``measurement`` of a new file (``train`` applies it); simulations stay clean.

    Returns
    -------
    dict
        The run's summary (the keys are listed at :func:`_summary`).

    Raises
    ------
    ConfigError
        Invalid arguments (checked before any file is touched), CUDA not usable
        or asked for with Dask, or an unreachable Dask scheduler.
    EnsembleError
        Output exists (without force/resume), is unwritable, or does not match on resume.
    DivergenceError
        A sample diverged (named with its parameters); the samples before it stay in the file.
    """
    t_start = time.perf_counter()
    run = _check_run(config, prior, n_samples, seed, workers=workers, scheduler=scheduler,
                     store_fields=store_fields, batch_size=batch_size, threads=threads, device=device,
                     writer_queue=writer_queue, measurement=measurement)
    if not isinstance(out, (str, os.PathLike)) or str(out) == "":
        raise ConfigError(f"`out` must be a file path, got {out!r}")
    plan = _plan_output(Path(out), resume, force)
    with contextlib.ExitStack() as stack:
        client = None
        if run.mode != "local":  # connect before the output is created: a bad cluster leaves no file behind
            client, threads = stack.enter_context(_dask_client(run.workers, run.scheduler, run.threads))
            run = dataclasses.replace(run, threads=threads)
        figures = _write_samples(run, plan, client, progress)
    _finish_output(plan)
    summary = _summary(run, plan, *figures, time.perf_counter() - t_start)
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
                wait_s = _run_local(writer, run, written, simulate_batch)
            else:
                _run_dask(writer, client, run, written, simulate_batch)
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
    """The figures :func:`generate_ensemble` returns.

    ``path``, ``n_samples``, ``n_complete``, ``n_new``, ``resumed``, ``seed``,
    ``mode``, ``device``, ``gpu_name``, ``batch_size``, ``store_fields``,
    ``dtype``, ``wall_s``, ``loop_s``, ``samples_per_s``, ``write_s`` (the
    writer's time in HDF5 writes and flushes), ``write_fraction`` (of the loop
    time), ``write_wait_s`` (time the main thread waited for the writer: a full
    queue and the final drain; ``write_s`` when writing is synchronous),
    ``write_wait_fraction``, ``file_size_bytes``.
    """
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


