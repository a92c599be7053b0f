"""Solver throughput benchmark (``tdglnre bench``).

Measures site-updates per second (one site of both bands advanced one step)
of the numba kernel in float64 and float32, of the screened kernel (λ < ∞:
ψ and the link field a, :data:`SCREENING`) in float64, and of the NumPy
reference, all in one run so that the ratios are meaningful on a noisy
machine; the fixed-field and screened kernels are timed alternately. With
``device="cuda"`` it times the GPU kernels instead (:func:`bench_cuda`,
docs/gpu.md "Benchmark"); ``device="auto"`` without a usable GPU runs the CPU
benchmark and says so in the result (``fallback``).
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Sequence

import numpy as np

from ..errors import ConfigError, ResourceError
from .config import SimConfig
from .lattice import landau_links
from . import reference
from .solver import initial_state, numba_threads, simulate, state_to_psi

log = logging.getLogger(__name__)


#: Screening of the screened-kernel timing: λ = 2 (4 lattice spacings), σ = 2, stable at dt = 0.001.
SCREENING = {"lam": 2.0, "sigma": 2.0}


def _config(N: int, steps: int, dtype: str, **screening: float) -> SimConfig:
    # paper-like physics: h = 0.5, D = (4, 1), a few vortices and some drag
    return SimConfig(N=N, L=N / 2.0, dt=1e-3, eta=0.5, n_v=4, nu=0.3,
                     snapshot_times=(steps * 1e-3,), dtype=dtype, **screening)


def _time_numba(N: int, batch: int, steps: int, dtype: str, repeats: int,
                variants: Sequence[dict] = ({},)) -> list[float]:
    """Rates (Msites/s) of the config variants (``_config`` keywords), timed alternately; the fastest run counts."""
    cfgs = [_config(N, steps, dtype, **v) for v in variants]
    for v in variants:
        simulate(_config(N, 1, dtype, **v), n_samples=batch)  # compile / load the cache
    best = [np.inf] * len(cfgs)
    for _ in range(repeats):
        for k, cfg in enumerate(cfgs):
            t0 = time.perf_counter()
            simulate(cfg, n_samples=batch, batch_size=batch)
            best[k] = min(best[k], time.perf_counter() - t0)
    return [batch * N * N * steps / b / 1e6 for b in best]


def _time_numpy(N: int, batch: int, steps: int) -> float:
    cfg = _config(N, steps, "float64")
    links = landau_links(N, cfg.L, cfg.n_v)
    pars = dict(alpha=cfg.alpha, beta=cfg.beta, D=cfg.D, eta=cfg.eta, nu=cfg.nu)
    states = [state_to_psi(initial_state(0, k, N)) for k in range(batch)]
    t0 = time.perf_counter()
    for p in states:
        reference.evolve(p[0], p[1], links, cfg.dt, steps, **pars)
    return batch * N * N * steps / (time.perf_counter() - t0) / 1e6


def memory_needed(N: int, batch: int) -> int:
    """Bytes the benchmark needs at its peak for lattice size N (an upper estimate).

    The numba run holds the batch's states, work buffers, snapshots (4 float64
    planes each) and complex128 ψ (2 planes): 128 bytes per site and sample,
    plus the initial-state draw. The NumPy reference holds the batch's complex
    states (32 bytes per site and sample), the links and ~12 complex
    temporaries of one step (~256 bytes per site). The two phases do not overlap.
    """
    sites = int(N) * int(N)
    numba_phase = 128 * batch * sites + 32 * sites
    numpy_phase = 32 * batch * sites + 256 * sites
    return max(numba_phase, numpy_phase)


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (MemAvailable, else free pages), or None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def check_benchmark_request(sizes: tuple[int, ...], batch: int, steps: int, numpy_steps: int,
                            repeats: int = 1) -> None:
    """Validate a benchmark request before anything is allocated.

    Raises
    ------
    ConfigError
        A size below 4 or a non-positive batch, step or repeat count.
    ResourceError
        The largest size needs more memory than is available.
    """
    if not sizes:
        raise ConfigError("bench needs at least one lattice size")
    for N in sizes:
        if isinstance(N, bool) or not isinstance(N, (int, np.integer)) or N < 4:
            raise ConfigError(f"bench lattice sizes must be integers >= 4 (the solver's smallest N), got {N!r}")
    for name, v in (("batch", batch), ("steps", steps), ("numpy_steps", numpy_steps), ("repeats", repeats)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ConfigError(f"bench {name} must be an integer >= 1, got {v!r}")
    avail = available_memory()
    N = max(sizes)
    need = memory_needed(N, batch)
    if avail is not None and need > avail:
        raise ResourceError(
            f"bench at N={N} with batch={batch} needs about {need / 2**30:.3g} GiB of memory, "
            f"but only {avail / 2**30:.3g} GiB is available; use smaller --sizes or --batch"
        )


def check_cases(cases: Sequence[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """Validate (N, batch) pairs of the CUDA benchmark: N ≥ 4 and batch ≥ 1, integers.

    Raises
    ------
    ConfigError
        No case, or a case that is not a pair of such integers.
    """
    out = []
    for case in cases:
        try:
            N, batch = case
        except (TypeError, ValueError):
            raise ConfigError(f"bench cases must be (N, batch) pairs, got {case!r}") from None
        for name, v, lo in (("N", N, 4), ("batch", batch, 1)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
                raise ConfigError(f"bench case {name} must be an integer >= {lo}, got {v!r} in {case!r}")
        out.append((int(N), int(batch)))
    if not out:
        raise ConfigError("bench needs at least one (N, batch) case")
    return tuple(out)


# --------------------------------------------------------------------------- CUDA kernels
#: Per-size cases of the issue-11 benchmark: (N, batch).
BENCH_CASES = ((64, 8), (64, 1024), (256, 64), (1024, 8))
#: Cases that measure the kernel-choice crossovers of issue 22 #6 (UNMEASURED so far: no GPU was lent):
#: fused-global against step around ``cuda.kernels.FUSED_GLOBAL_MAX_N`` and the L2 spill (N ≈ 76 float64,
#: ≈ 100 float32), and a small batch (8 samples on a 132-SM GPU) against a full one. Run them with
#: ``bench_cuda(CROSSOVER_CASES, fused=mode)`` for each mode; docs/gpu.md, "Benchmark".
CROSSOVER_CASES = ((39, 8), (39, 1024), (76, 8), (76, 1024), (100, 8), (100, 1024), (128, 8), (128, 256),
                   (160, 8), (160, 256))


def _time_case(N: int, batch: int, steps: int, dtype: str, fused, repeats: int,
               screened: bool = False) -> tuple[float, str]:
    """Site-update rate (millions/s) of one (N, batch, dtype) and the kernel mode that ran.

    ``screened``: the screened model's kernels (λ < ∞, :data:`SCREENING`, ψ and a; mode ``screened-step``).
    """
    from . import kernels
    from .config import as_sample_arrays
    from .cuda import kernels as dk
    from .cuda import run as dr
    from numba import cuda

    if batch > dr.MAX_BATCH:
        raise ConfigError(f"bench case batch must be <= {dr.MAX_BATCH} (the CUDA grid's y limit), got {batch}")
    dr.check_device_memory(batch * dr.bytes_per_sample(N, 0, dtype, screened),
                           f"bench case N={N} batch={batch} {dtype}")
    host = np.stack([initial_state(0, k, N).reshape(-1) for k in range(batch)]).astype(dtype)
    if screened:
        from .plan import prepare_run, solver_options

        cfg = _config(N, steps, dtype, **SCREENING)
        plan = prepare_run(cfg, None, seed=0, sample_indices=None, n_samples=batch, initial=None,
                           options=solver_options(cfg, None, device="cuda"))
        b = dr.ScreenedBatch(plan.initial_states(0, batch).reshape(batch, -1), plan.co, plan.bg)
        mode = "screened-step"
    else:
        cfg = _config(N, steps, dtype)
        mode = dk.select_mode(N, dtype, fused)
        pars = as_sample_arrays(cfg, {}, batch)
        co = kernels.coefficients(cfg.D, cfg.alpha, cfg.beta, cfg.h, pars["eta"], pars["nu"],
                                  scale=cfg.dt, keep=1.0, dtype=np.dtype(dtype))
        ly, lx = kernels.link_tables(N, cfg.L, pars["n_v"], dtype=np.dtype(dtype))
        b = dr._Batch(host, co, ly, lx, mode)
    b.advance(1)  # compile
    cuda.synchronize()
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        b.advance(steps)
        cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return batch * N * N * steps / best / 1e6, mode


def bench_cuda(cases: Sequence[tuple[int, int]] = BENCH_CASES, *, steps: int = 1000,
               dtypes: Sequence[str] = ("float32", "float64"), fused: bool | str | None = None,
               repeats: int = 2, screened: bool = True) -> dict:
    """Device site-update rates (millions per second) of the Euler kernels, fixed field and screened.

    A site-update advances both bands of one site by one step. The time covers
    the kernels only (state already on the device, no snapshots, no NaN checks).

    Parameters
    ----------
    cases
        (N, batch) pairs; the issue-11 cases by default (:data:`CROSSOVER_CASES`
        measure the kernel-choice thresholds).
    steps
        Euler steps per timed run.
    dtypes
        Precisions to time.
    fused
        Kernel choice, see :func:`tdglnre.physics.cuda.select_mode`.
    repeats
        Timed runs per case; the fastest counts.
    screened
        Also time the screened model's kernels (λ < ∞, :data:`SCREENING`) at
        each case and dtype, right after the fixed-field kernel (one run, so
        the cost ratio is meaningful).

    Returns
    -------
    dict
        ``device`` (GPU name), ``cuda_float32_msites`` / ``cuda_float64_msites``
        (first case, for each timed dtype) and ``per_size``: one dict per case
        and dtype with ``N``, ``batch``, ``steps``, ``dtype``, ``kernel`` and
        ``msites``; with ``screened`` also ``screened_msites`` and
        ``screened_cost`` (fixed-field rate / screened rate: the cost per
        site-update of λ < ∞, issue 19's ≤ 2.5×) in each row and
        ``cuda_screened_<dtype>_msites`` / ``cuda_screened_cost_<dtype>`` (first case).

    Raises
    ------
    ConfigError
        CUDA not usable, bad counts, or a batch above the grid's limit.
    ResourceError
        A case larger than the GPU's free memory.
    """
    from .cuda import gpu_name, require_cuda

    require_cuda()
    if steps < 1 or repeats < 1:
        raise ConfigError(f"steps and repeats must be >= 1, got steps={steps}, repeats={repeats}")
    per_size = []
    for N, batch in cases:
        for dt in dtypes:
            log.info("benchmarking CUDA N=%d batch=%d %s", N, batch, dt)
            rate, mode = _time_case(int(N), int(batch), steps, dt, fused, repeats)
            row = {"N": int(N), "batch": int(batch), "steps": int(steps), "dtype": dt, "kernel": mode, "msites": rate}
            if screened:
                srate, _ = _time_case(int(N), int(batch), steps, dt, fused, repeats, screened=True)
                row.update(screened_msites=srate, screened_cost=rate / srate)
            per_size.append(row)
    out: dict[str, Any] = {"device": gpu_name()}
    for dt in dtypes:
        first = next(r for r in per_size if r["dtype"] == dt)
        out[f"cuda_{dt}_msites"] = first["msites"]
        if screened:
            out[f"cuda_screened_{dt}_msites"] = first["screened_msites"]
            out[f"cuda_screened_cost_{dt}"] = first["screened_cost"]
    out["per_size"] = per_size
    return out


def run_cuda_benchmark(cases: Sequence[tuple[int, int]] | None = None, steps: int = 1000,
                       repeats: int = 2) -> dict:
    """Site-updates per second (millions) of the CUDA Euler kernels (issue 11's cases by default).

    Parameters
    ----------
    cases
        (N, batch) pairs; default :data:`BENCH_CASES`
        (N = 64 with batch 8 and 1024, N = 256 × 64, N = 1024 × 8).
    steps
        Euler steps per timed run.
    repeats
        Timed runs per case and dtype; the fastest counts.

    Returns
    -------
    dict
        ``device`` (``"cuda"``), ``gpu_name``, ``steps``, ``cuda_float32_msites``
        and ``cuda_float64_msites`` (the first case) and ``per_size`` (one row
        per case and dtype: ``N``, ``batch``, ``steps``, ``dtype``, ``kernel``,
        ``msites``).

    Raises
    ------
    ConfigError
        Bad cases or counts, or CUDA not usable here.
    """
    cases = BENCH_CASES if cases is None else check_cases(cases)
    for name, v in (("steps", steps), ("repeats", repeats)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ConfigError(f"bench {name} must be an integer >= 1, got {v!r}")
    res = bench_cuda(cases, steps=int(steps), repeats=int(repeats))
    return {"device": "cuda", "gpu_name": res["device"], "steps": int(steps),
            **{k: v for k, v in res.items() if k != "device"}}


def run_benchmark(sizes: tuple[int, ...] = (64, 128), batch: int = 8, steps: int = 1000,
                  numpy_steps: int = 50, threads: int | None = None, repeats: int = 2,
                  device: str = "cpu", cases: Sequence[tuple[int, int]] | None = None) -> dict:
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
    device
        ``"cpu"`` (default: this benchmark), ``"cuda"`` (the GPU kernels:
        :func:`run_cuda_benchmark` with ``cases``, ``steps``, ``repeats``;
        ``sizes``, ``batch``, ``numpy_steps``, ``threads`` are then unused) or
        ``"auto"`` (cuda on a usable GPU, else cpu; the CPU result then
        carries ``fallback``, the one-line reason, so it is never silent).
    cases
        (N, batch) pairs of the CUDA benchmark (default: issue 11's cases).

    Returns
    -------
    dict
        CPU: ``device`` (``"cpu"``), ``numba_float64_msites``,
        ``numba_float32_msites``, ``numpy_msites``, ``speedup_float64``,
        ``speedup_float32``, ``numba_screened_float64_msites`` (λ < ∞,
        :data:`SCREENING`), ``screened_cost_float64`` (the cost per
        site-update of the screened kernel over the fixed-field one, float64),
        ``N``, ``batch``, ``steps``, ``numpy_steps``, ``threads`` and
        ``per_size`` (one such dict per N). CUDA: see
        :func:`run_cuda_benchmark`.

    Raises
    ------
    ConfigError
        A size below 4 or a non-positive count; ``device="cuda"`` where CUDA is not usable.
    ResourceError
        Not enough memory for the largest size (checked before allocating).
    """
    fallback = None
    if device != "cpu":  # the CUDA module is imported only when asked for
        from .cuda import auto_fallback_reason, resolve_device

        if resolve_device(device) == "cuda":
            return run_cuda_benchmark(cases, steps=steps, repeats=repeats)
        fallback = auto_fallback_reason()
        log.info("bench --device auto: no usable GPU, benchmarking the CPU (%s)", fallback)
    sizes = tuple(sizes)
    check_benchmark_request(sizes, batch, steps, numpy_steps, repeats)
    per_size = []
    with numba_threads(threads):
        import numba

        n_thr = numba.get_num_threads()
        for N in sizes:
            log.info("benchmarking N=%d", N)
            f64, s64 = _time_numba(N, batch, steps, "float64", repeats, ({}, SCREENING))
            f32, = _time_numba(N, batch, steps, "float32", repeats)
            ref = _time_numpy(N, batch, numpy_steps)
            per_size.append({
                "N": int(N), "batch": int(batch), "steps": int(steps), "numpy_steps": int(numpy_steps),
                "threads": int(n_thr), "repeats": int(repeats),
                "numba_float64_msites": f64, "numba_float32_msites": f32, "numpy_msites": ref,
                "speedup_float64": f64 / ref, "speedup_float32": f32 / ref,
                "numba_screened_float64_msites": s64, "screened_cost_float64": f64 / s64,
            })
    out = {"device": "cpu", **per_size[0]}
    out["per_size"] = per_size
    if fallback is not None:
        out["fallback"] = fallback
    return out
