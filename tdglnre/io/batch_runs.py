"""How ``generate`` runs its batches: in this process (with a writer thread) or on a Dask cluster.

This process is always the single HDF5 writer: batches are written in index
order as they complete (out-of-order Dask completions are buffered), each
followed by a flush and only then by advancing ``n_complete``. In local mode a
writer thread takes finished batches from a bounded queue and writes them
while the next batch is computed. ``run`` is :func:`tdglnre.io.generate`'s
checked run and ``simulate_batch`` its :func:`~tdglnre.io.generate.simulate_batch`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import sys
import threading
import time
from collections import deque
from typing import Any, Callable, Iterator

import numpy as np

from ..errors import ConfigError, DivergenceError
from .ensemble import EnsembleError, EnsembleWriter

log = logging.getLogger("tdglnre.io.generate")

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


def _batches(n_from: int, n_to: int, batch_size: int) -> list[tuple[int, int]]:
    return [(s, min(n_to, s + batch_size)) for s in range(n_from, n_to, batch_size)]


def _write_batch(writer: EnsembleWriter, start: int, theta: np.ndarray, x: np.ndarray, psi: np.ndarray | None,
                 a: np.ndarray | None) -> None:
    """``writer.write_batch``, with the screened run's link field ``a`` only where there is one."""
    if a is None:
        writer.write_batch(start, theta, x, psi)
    else:
        writer.write_batch(start, theta, x, psi, a=a)


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
            start, theta, x, psi, a = item
            try:
                _write_batch(self._writer, start, theta, x, psi, a)
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

    def put(self, start: int, theta: np.ndarray, x: np.ndarray, psi: np.ndarray | None,
            a: np.ndarray | None = None) -> None:
        """Queue a batch for writing; blocks (counted in ``wait_s``) while the queue is full."""
        t0 = time.perf_counter()
        self._put((start, theta, x, psi, a))
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


def _run_local(writer: EnsembleWriter, run: Any, written: Callable[[int], None], simulate_batch: Callable) -> float:
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
            _write_batch(writer, start, r["theta"], r["x"], r["psi"], r.get("a"))
            written(stop - start)
        return writer.write_seconds
    wt = _WriterThread(writer, written, run.writer_queue)
    try:
        for start, stop in batches:
            r = batch(start, stop)
            wt.put(start, r["theta"], r["x"], r["psi"], r.get("a"))
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


def _run_dask(writer: EnsembleWriter, client: Any, run: Any, written: Callable[[int], None],
              simulate_batch: Callable) -> None:
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
            _write_batch(writer, rb["start"], rb["theta"], rb["x"], rb["psi"], rb.get("a"))
            written(rb["stop"] - rb["start"])
        submit_next()
    if writer.n_complete != n_samples:  # pragma: no cover - defensive
        raise EnsembleError(f"internal error: {writer.n_complete} of {n_samples} samples written")
