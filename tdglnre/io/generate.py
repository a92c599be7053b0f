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
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import ConfigError, DivergenceError
from ..physics.config import SimConfig
from ..physics.solver import simulate
from .ensemble import EnsembleError, EnsembleWriter
from .priors import Prior

log = logging.getLogger(__name__)

__all__ = ["generate_ensemble", "simulate_batch", "default_batch_size"]


def default_batch_size(threads: int | None = None) -> int:
    """Samples per batch: at least 16 and two per numba thread (does not change results)."""
    if threads is None:
        import numba

        threads = numba.get_num_threads()
    return max(16, 2 * int(threads))


def simulate_batch(config_json: str, prior_json: str, seed: int, start: int, stop: int,
                   store_fields: bool = False, threads: int | None = None) -> dict[str, Any]:
    """Simulate global samples ``start .. stop-1`` (runs in this process or on a Dask worker).

    Returns a dict with ``start``, ``theta`` (n, P) float64, ``x`` (n, T, N, N, C)
    float32, ``psi`` (n, T, 2, N, N) complex64 or None, and ``seconds``; if a
    sample diverges, instead ``divergence = (sample, step, params)`` (so that
    the error crosses process boundaries intact).
    """
    t0 = time.perf_counter()
    config = SimConfig.from_json(config_json)
    prior = Prior.from_json(prior_json)
    idx = np.arange(start, stop, dtype=np.int64)
    theta = prior.sample(seed, idx)
    params = prior.params(theta)
    try:
        res = simulate(config, params, seed=seed, sample_indices=idx, batch_size=max(1, stop - start),
                       threads=threads)
    except DivergenceError as exc:
        return {"start": start, "stop": stop,
                "divergence": (exc.sample, exc.step, {k: float(v) for k, v in exc.params.items()})}
    x = res.channels()
    psi = res.psi.astype(np.complex64) if store_fields else None
    return {"start": start, "stop": stop, "theta": theta, "x": x, "psi": psi,
            "seconds": time.perf_counter() - t0}


def _raise_if_diverged(r: dict[str, Any]) -> None:
    if "divergence" in r:
        sample, step, params = r["divergence"]
        raise DivergenceError(sample, step, params)


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


def _check_output(out: Path, resume: bool, force: bool) -> str:
    """Decide what to do with the output path: "create" or "resume"."""
    if resume and force:
        raise ConfigError("--resume and --force are mutually exclusive (resume continues a file, force starts over)")
    if out.is_dir():
        raise EnsembleError(f"output {out} is a directory; give a file name such as {out / 'ensemble.h5'}")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise EnsembleError(f"cannot create output file {out}: directory {parent} does not exist")
    if out.exists():
        if resume:
            return "resume"
        if not force:
            raise EnsembleError(f"output file {out} already exists; use --force to overwrite it or --resume to "
                                "continue an interrupted run")
        if not os.access(out, os.W_OK):
            raise EnsembleError(f"cannot overwrite output file {out}: permission denied")
        return "create"
    if not os.access(parent, os.W_OK):
        raise EnsembleError(f"cannot create output file {out}: directory {parent} is not writable")
    if resume:
        log.info("--resume: %s does not exist yet; starting a new file", out)
    return "create"


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
        Run seed (non-negative integer); sample k depends only on (seed, k).
    out
        Output ``.h5`` path.
    resume
        Continue an interrupted file (refused if its config, prior, seed,
        n_samples or fields differ). A missing file is started from scratch.
    force
        Overwrite an existing file.
    workers
        Run on a local Dask cluster with this many single-threaded worker
        processes on loopback (numba uses ``cpu_count // workers`` threads in each).
    scheduler
        Address of an existing Dask scheduler (``tcp://host:8786``) instead.
    store_fields
        Also store ψ (S, T, 2, N, N) complex64.
    batch_size
        Samples per batch / Dask task (default :func:`default_batch_size`);
        never changes the results.
    threads
        numba threads in this process (local mode) or per worker.
    progress
        Show a tqdm bar on stderr (True), nothing (False), or call a function
        with the number of samples finished after each batch.

    Returns
    -------
    dict
        Summary: ``path``, ``n_samples``, ``n_complete``, ``n_new``,
        ``resumed``, ``seed``, ``mode``, ``wall_s``, ``samples_per_s``,
        ``write_s``, ``write_fraction``, ``file_size_bytes``.

    Raises
    ------
    ConfigError
        Invalid config, prior or arguments.
    EnsembleError
        Output exists (without force/resume), is unwritable, or does not match on resume.
    DivergenceError
        A sample diverged (names the sample and its parameters); the samples
        before it stay complete in the file.
    """
    t_start = time.perf_counter()
    if not isinstance(config, SimConfig):
        raise ConfigError(f"config must be a SimConfig, got {type(config).__name__}")
    if not isinstance(prior, Prior):
        raise ConfigError(f"prior must be a Prior, got {type(prior).__name__}")
    config.validate()
    prior.validate(config)
    if isinstance(n_samples, bool) or int(n_samples) != n_samples or n_samples < 1:
        raise ConfigError(f"n_samples must be a positive integer, got {n_samples!r}")
    n_samples = int(n_samples)
    if isinstance(seed, bool) or int(seed) != seed or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    if workers is not None and scheduler is not None:
        raise ConfigError("give either --workers (local Dask cluster) or --scheduler (existing cluster), not both")
    if workers is not None and (isinstance(workers, bool) or workers < 1):
        raise ConfigError(f"workers must be a positive integer, got {workers!r}")
    if batch_size is not None and (isinstance(batch_size, bool) or batch_size < 1):
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    if threads is not None and threads < 1:
        raise ConfigError(f"threads must be a positive integer, got {threads!r}")

    out_path = Path(out)
    action = _check_output(out_path, resume, force)
    if action == "resume":
        writer = EnsembleWriter.resume(out_path, config, prior, seed=seed, n_samples=n_samples,
                                       store_fields=store_fields)
    else:
        writer = EnsembleWriter.create(out_path, config, prior, seed=seed, n_samples=n_samples,
                                       store_fields=store_fields)
    n_before = writer.n_complete
    mode = "local" if workers is None and scheduler is None else (
        f"dask-local({workers})" if workers is not None else f"dask({scheduler})")
    log.info("generate: %s, %d samples (%d already complete), seed %d, %s", out_path, n_samples, n_before, seed, mode)

    callback = progress if callable(progress) else None
    bar = _Progress(bool(progress) and callback is None, n_samples, n_before, out_path.name)

    def written(n: int) -> None:
        bar.update(n)
        if callback is not None:
            callback(n)

    t_sim = time.perf_counter()
    try:
        if n_before < n_samples:
            if workers is None and scheduler is None:
                _run_local(writer, config, prior, seed, n_samples, store_fields,
                           batch_size or default_batch_size(threads), threads, written)
            else:
                _run_dask(writer, config, prior, seed, n_samples, store_fields, batch_size or 16,
                          threads, workers, scheduler, written)
    finally:
        bar.close()
        n_complete = writer.n_complete
        write_s = writer.write_seconds
        writer.close()
    t_end = time.perf_counter()
    n_new = n_complete - n_before
    loop_s = t_end - t_sim
    summary = {
        "path": str(out_path),
        "n_samples": n_samples,
        "n_complete": n_complete,
        "n_new": n_new,
        "resumed": action == "resume",
        "seed": seed,
        "mode": mode,
        "batch_size": batch_size or (16 if mode != "local" else default_batch_size(threads)),
        "store_fields": bool(store_fields),
        "dtype": config.dtype,
        "wall_s": t_end - t_start,
        "loop_s": loop_s,
        "samples_per_s": n_new / loop_s if loop_s > 0 else math.nan,
        "write_s": write_s,
        "write_fraction": write_s / loop_s if loop_s > 0 else 0.0,
        "file_size_bytes": out_path.stat().st_size,
    }
    log.info("generate summary: %s", summary)
    return summary


def _batches(n_from: int, n_to: int, batch_size: int) -> list[tuple[int, int]]:
    return [(s, min(n_to, s + batch_size)) for s in range(n_from, n_to, batch_size)]


def _run_local(writer: EnsembleWriter, config: SimConfig, prior: Prior, seed: int, n_samples: int,
               store_fields: bool, batch_size: int, threads: int | None,
               written: Callable[[int], None]) -> None:
    cj, pj = config.to_json(), prior.to_json()
    for start, stop in _batches(writer.n_complete, n_samples, batch_size):
        r = simulate_batch(cj, pj, seed, start, stop, store_fields, threads)
        _raise_if_diverged(r)
        writer.write_batch(start, r["theta"], r["x"], r["psi"])
        written(stop - start)


def _run_dask(writer: EnsembleWriter, config: SimConfig, prior: Prior, seed: int, n_samples: int,
              store_fields: bool, batch_size: int, threads: int | None, workers: int | None,
              scheduler: str | None, written: Callable[[int], None]) -> None:
    try:
        from dask.distributed import Client, LocalCluster, as_completed
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
            except (OSError, TimeoutError) as exc:
                raise ConfigError(f"cannot connect to the Dask scheduler at {scheduler!r}: {exc}") from None
        n_threads = sum(w.get("nthreads", 1) for w in client.scheduler_info().get("workers", {}).values())
        window = max(4, 2 * max(n_threads, workers or 1))
        log.info("dask: %d worker threads, %d tasks in flight, %d numba threads per task",
                 n_threads, window, threads or 0)

        cj, pj = config.to_json(), prior.to_json()
        todo = deque(_batches(writer.n_complete, n_samples, batch_size))
        ac = as_completed()

        def submit_next() -> None:
            if todo:
                a, b = todo.popleft()
                ac.add(client.submit(simulate_batch, cj, pj, seed, a, b, store_fields, threads,
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
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
        dlog.setLevel(old_level)
