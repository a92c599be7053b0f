"""Solver throughput benchmark (``tdglnre bench``).

Measures site-updates per second (one site of both bands advanced one step)
of the numba kernel in float64 and float32 and of the NumPy reference, all in
one run so that the ratios are meaningful on a noisy machine.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from .config import SimConfig
from .lattice import landau_links
from . import reference
from .solver import initial_state, numba_threads, simulate, state_to_psi

log = logging.getLogger(__name__)


def _config(N: int, steps: int, dtype: str) -> SimConfig:
    # paper-like physics: h = 0.5, D = (4, 1), a few vortices and some drag
    return SimConfig(N=N, L=N / 2.0, dt=1e-3, eta=0.5, n_v=4, nu=0.3,
                     snapshot_times=(steps * 1e-3,), dtype=dtype)


def _time_numba(N: int, batch: int, steps: int, dtype: str, repeats: int) -> float:
    cfg = _config(N, steps, dtype)
    simulate(_config(N, 1, dtype), n_samples=batch)  # compile / load the cache
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        simulate(cfg, n_samples=batch, batch_size=batch)
        best = min(best, time.perf_counter() - t0)
    return batch * N * N * steps / best / 1e6


def _time_numpy(N: int, batch: int, steps: int) -> float:
    cfg = _config(N, steps, "float64")
    links = landau_links(N, cfg.L, cfg.n_v)
    pars = dict(alpha=cfg.alpha, beta=cfg.beta, D=cfg.D, eta=cfg.eta, nu=cfg.nu)
    states = [state_to_psi(initial_state(0, k, N)) for k in range(batch)]
    t0 = time.perf_counter()
    for p in states:
        reference.evolve(p[0], p[1], links, cfg.dt, steps, **pars)
    return batch * N * N * steps / (time.perf_counter() - t0) / 1e6


def run_benchmark(sizes: tuple[int, ...] = (64, 128), batch: int = 8, steps: int = 1000,
                  numpy_steps: int = 50, threads: int | None = None, repeats: int = 2) -> dict:
    """Site-updates per second (millions) of the numba kernel and the NumPy reference.

    Parameters
    ----------
    sizes
        Lattice sizes N; the top-level keys describe the first.
    batch
        Samples per run (the numba kernel is parallel over samples).
    steps
        Euler steps per numba run.
    numpy_steps
        Euler steps per sample for the (slow) NumPy reference.
    threads
        numba threads (default: all).
    repeats
        numba runs per setting; the fastest counts.

    Returns
    -------
    dict
        ``numba_float64_msites``, ``numba_float32_msites``, ``numpy_msites``,
        ``speedup_float64``, ``speedup_float32``, ``N``, ``batch``, ``steps``,
        ``numpy_steps``, ``threads`` and ``per_size`` (one such dict per N).
    """
    per_size = []
    with numba_threads(threads):
        import numba

        n_thr = numba.get_num_threads()
        for N in sizes:
            log.info("benchmarking N=%d", N)
            f64 = _time_numba(N, batch, steps, "float64", repeats)
            f32 = _time_numba(N, batch, steps, "float32", repeats)
            ref = _time_numpy(N, batch, numpy_steps)
            per_size.append({
                "N": int(N), "batch": int(batch), "steps": int(steps), "numpy_steps": int(numpy_steps),
                "threads": int(n_thr),
                "numba_float64_msites": f64, "numba_float32_msites": f32, "numpy_msites": ref,
                "speedup_float64": f64 / ref, "speedup_float32": f32 / ref,
            })
    out = dict(per_size[0])
    out["per_size"] = per_size
    return out
