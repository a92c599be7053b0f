"""The run driver of the CUDA backend: batches, check points, snapshots (issue 11; see :mod:`.kernels`).

A run executes the :class:`~tdglnre.physics.plan.RunPlan` the CPU solver
executes (one validation; the same coefficients, links, disorder field ξ,
thermal amplitudes, noise keys and check points), and runs each batch
through the Euler kernel that :func:`.kernels.select_mode` picks from (N,
dtype) alone, so two runs on one device are bitwise identical whatever
``batch_size``. CPU and CUDA results agree to floating-point tolerance only
on a real GPU (the device contracts multiply-adds into FMAs; docs/gpu.md).

The CPU solver's health check (NaN/Inf, and after the grace period a
checkerboard density or a step-to-step oscillation; docs/physics.md,
"Runtime detection of grid-scale oscillation") runs at the same check points:
the health kernel forms the same float64 sums and applies the CPU's own
verdict on the device, recording each sample's first failure there, so the
host reads the outcome once per batch, not at every check point.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from numba import cuda

from ...errors import ResourceError
from .. import kernels as K
from ..config import SimConfig
from ..options import SolverOptions
from ..screened import N_COMP
from ..plan import RunPlan, SimulationResult, prepare_run, solver_options, state_to_psi
from . import kernels as dk
from . import screened as dsc
from .device import require_cuda, simulator_enabled

log = logging.getLogger(__name__)

#: Device memory a default batch may take (bytes), see :func:`auto_batch_size`.
BATCH_BYTES = 2 * 2**30
#: Largest batch: samples run along the grid's y axis, which CUDA limits to 65535 blocks.
MAX_BATCH = 65535


class _Batch:
    """Device buffers of one batch of samples: state, work buffer, coefficients, links and nuisance inputs.

    ``nuisance`` = (xi (S, N²) or None, dco (S, 2) or None, amp (S,) or None,
    keys (S,) or None) switches on pinning disorder and/or thermal noise;
    ``None`` (or all four None) runs the clean variant of the same kernels.
    ``step`` counts the Euler steps done, the thermal stream's step counter.
    """

    def __init__(self, states: np.ndarray, co: np.ndarray, ly: np.ndarray, lx: np.ndarray, mode: str,
                 nuisance: tuple | None = None):
        self.S = states.shape[0]
        self.N = ly.shape[2]
        self.mode = mode
        self.dtype = states.dtype
        self.a = cuda.to_device(np.ascontiguousarray(states))
        self.b = cuda.device_array_like(self.a) if mode != "fused-shared" else None
        self.co = cuda.to_device(np.ascontiguousarray(co))
        self.ly = cuda.to_device(np.ascontiguousarray(ly))
        self.lx = cuda.to_device(np.ascontiguousarray(lx))
        self.sums = cuda.device_array((self.S, 5), dtype=np.float64)
        self.prev = None
        self.step = 0
        xi, dco, amp, keys = nuisance if nuisance is not None else (None, None, None, None)
        disorder, thermal = xi is not None, amp is not None
        fill = dk.placeholders(self.dtype, self.S)  # inputs of the features this variant compiles out
        xi, dco = (xi.reshape(self.S, -1), dco) if disorder else fill[:2]
        amp, keys = (amp, keys) if thermal else fill[2:]
        self.extra = tuple(cuda.to_device(np.ascontiguousarray(x, dtype=d)) for x, d in
                           ((xi, self.dtype), (dco, self.dtype), (amp, self.dtype), (keys, np.uint64)))
        sites = dk.shared_sites(self.N) if mode == "fused-shared" else dk.KMAX
        self.kern = dk.euler_kernels(self.dtype.name, disorder, thermal, sites)[mode]
        self.threads = None
        if mode != "step":
            args = (self.a, self.co, self.ly, self.lx, 1, *self.extra, 0)
            if mode == "fused-global":
                args = (self.a, self.b) + args[1:]
                self.threads = dk.fit_threads(self.kern, args, dk.block_threads(self.N, mode))
            else:
                self.threads = dk.fused_shared_threads(self.kern, args, self.N, sites)

    def advance(self, n: int) -> None:
        """Advance every sample by ``n`` Euler steps."""
        if n <= 0:
            return
        N = self.N
        if self.mode == "step":
            grid, tpb = dk.grid(N * N, self.S)
            for k in range(n):
                self.kern[grid, tpb](self.a, self.b, self.co, self.ly, self.lx, *self.extra, self.step + k)
                self.a, self.b = self.b, self.a
        elif self.mode == "fused-global":
            self.kern[self.S, self.threads](self.a, self.b, self.co, self.ly, self.lx, n, *self.extra, self.step)
        else:
            nbytes = 4 * N * N * self.dtype.itemsize
            self.kern[self.S, self.threads, 0, nbytes](self.a, self.co, self.ly, self.lx, n, *self.extra,
                                                       self.step)
        self.step += n

    def advance_to_check(self, n: int, keep_prev: bool):
        """Advance ``n`` >= 1 steps; return the device state one step earlier (or the current one if not kept)."""
        if not keep_prev:
            self.advance(n)
            return self.a
        if self.mode == "step":
            self.advance(n)
            return self.b  # the ping-pong partner holds the previous step
        self.advance(n - 1)
        if self.prev is None:
            self.prev = cuda.device_array_like(self.a)
        self.prev.copy_to_device(self.a)
        self.advance(1)
        return self.prev

    def check(self, prev, step: int, osc: bool, verdict) -> None:
        """Health sums of the current state against ``prev``, judged on the device.

        ``verdict`` = (status, codes, values) device arrays (S,): a sample's
        first failure is written there (see :func:`.kernels.health_kernel`).
        """
        stag_max, change_max, _ = health_limits()
        threads = dk.health_threads(self.N)
        dk.health_kernel(threads)[self.S, threads](self.a, prev, self.sums, self.N, int(step), int(osc),
                                                   stag_max, change_max, *verdict)

    def health(self, prev) -> np.ndarray:
        """Health sums (S, 5) of the current state against ``prev`` on the host (for tests and inspection)."""
        verdict = (cuda.to_device(np.full(self.S, -1, dtype=np.int64)), cuda.device_array(self.S, dtype=np.int64),
                   cuda.device_array(self.S, dtype=np.float64))
        self.check(prev, 0, False, verdict)
        return self.sums.copy_to_host()


class ScreenedBatch(_Batch):
    """Device buffers of a batch of screened samples: state rows of 6·N², link factors, fluxes, coefficients.

    The interface of :class:`.run._Batch` (``a``, ``advance``,
    ``advance_to_check``, ``check``), mode ``step`` only; ``bg`` (b, 4, N) are
    the background links of ``screened.background_links``; the kernels are :mod:`.screened`'s.
    """

    def __init__(self, states: np.ndarray, co: np.ndarray, bg: np.ndarray, nuisance: tuple | None = None):
        self.S = states.shape[0]
        self.N = bg.shape[2]
        self.mode = "step"
        self.dtype = states.dtype
        N, S = self.N, self.S
        self.a = cuda.to_device(np.ascontiguousarray(states.reshape(S, N_COMP * N * N)))
        self.b = cuda.device_array_like(self.a)
        self.co = cuda.to_device(np.ascontiguousarray(co))
        self.bg = cuda.to_device(np.ascontiguousarray(bg, dtype=np.float64))
        self.lk = cuda.device_array((S, 4, N, N), dtype=self.dtype)
        self.phi = cuda.device_array((S, N, N), dtype=self.dtype)
        self.sums = cuda.device_array((S, 5), dtype=np.float64)
        self.prev = None
        self.step = 0
        xi, dco, amp, keys = nuisance if nuisance is not None else (None, None, None, None)
        disorder, thermal = xi is not None, amp is not None
        fill = dk.placeholders(self.dtype, S)
        xi, dco = (xi.reshape(S, N, N), dco) if disorder else (fill[0].reshape(S, 1, 1), fill[1])
        amp, keys = (amp, keys) if thermal else fill[2:]
        self.extra = tuple(cuda.to_device(np.ascontiguousarray(x, dtype=d)) for x, d in
                           ((xi, self.dtype), (dco, self.dtype), (amp, self.dtype), (keys, np.uint64)))
        self.kern = dsc.sweep_kernel(self.dtype.name, disorder, thermal)
        self.threads = None

    def _grid(self, d):
        return d.reshape(self.S, N_COMP, self.N, self.N)

    def advance(self, n: int) -> None:
        """Advance every sample by ``n`` Euler steps (two launches a step: link factors, then the sites)."""
        grid, tpb = dk.grid(self.N * self.N, self.S)
        for k in range(max(n, 0)):
            src = self._grid(self.a)
            dsc.links_kernel[grid, tpb](src, self.lk, self.phi, self.bg, self.co)
            self.kern[grid, tpb](src, self._grid(self.b), self.co, self.lk, self.phi, *self.extra, self.step + k)
            self.a, self.b = self.b, self.a
        self.step += max(n, 0)

    def check(self, prev, step: int, osc: bool, verdict) -> None:
        """ψ's health check (:meth:`.run._Batch.check`, on the first 4·N² values of a row), then a's."""
        super().check(prev, step, osc, verdict)
        threads = dk.health_threads(self.N)
        dsc.field_health_kernel(threads)[self.S, threads](self.a, self.N, int(step), *verdict)


def health_limits() -> tuple[float, float, int]:
    """(staggered-ratio max, relative-change max, grace steps) of the CPU solver's health check.

    Read from :mod:`tdglnre.physics.kernels` at call time, so both backends use one definition
    (docs/physics.md, "Runtime detection of grid-scale oscillation").
    """
    return float(K.STAGGERED_MAX), float(K.CHANGE_MAX), int(K.GRACE_STEPS)


def judge_health(sums: np.ndarray, oscillation_checks: bool, stag_max: float,
                 change_max: float) -> tuple[int, float]:
    """Outcome code (``kernels.OK`` …) and offending ratio of one sample's health sums, on the host.

    The CPU's and the device's own decision (``kernels.health_verdict``), for
    sums read back from the device.
    """
    t1, t2, st1, st2, dd = (float(x) for x in sums)
    code, value = K.health_verdict(t1, t2, st1, st2, dd, bool(oscillation_checks), float(stag_max),
                                   float(change_max))
    return int(code), float(value)


def bytes_per_sample(N: int, n_snapshots: int, dtype: str | np.dtype, screened: bool = False) -> int:
    """Device bytes one sample of a batch takes: state, work and previous-step buffers, snapshots, channels.

    ``screened``: 6 components a site (ψ and a) and the link factors and fluxes (5 values a site), no channels.
    """
    item = np.dtype(dtype).itemsize
    if screened:
        return (3 + n_snapshots) * 6 * N * N * item + 5 * N * N * item
    return (3 + n_snapshots) * 4 * N * N * item + n_snapshots * 3 * N * N * 4


def auto_batch_size(n_samples: int, N: int, n_snapshots: int, dtype: str | np.dtype, screened: bool = False) -> int:
    """Samples per device batch so that a batch's buffers take at most :data:`BATCH_BYTES`.

    Never changes results (they are bitwise independent of it).
    """
    per_sample = bytes_per_sample(N, n_snapshots, dtype, screened)
    return int(max(1, min(n_samples, BATCH_BYTES // per_sample, MAX_BATCH)))


def check_device_memory(nbytes: int, what: str) -> None:
    """Refuse (ResourceError) a device allocation of ``nbytes`` larger than the GPU's free memory.

    Skipped under the simulator (host memory) or where the driver cannot say.
    """
    if simulator_enabled():
        return
    try:
        free, _ = cuda.current_context().get_memory_info()
    except Exception:  # no context query on this driver: let the allocation report it
        return
    if nbytes > free:
        raise ResourceError(f"{what} needs {nbytes / 2**30:.3g} GiB of GPU memory but {free / 2**30:.3g} GiB "
                            "is free; use a smaller batch_size or fewer samples")


def run_plan(plan: RunPlan, progress: Callable[[int], None] | None = None, *, want_psi: bool = True,
             want_channels: bool = False) -> SimulationResult:
    """Run a :class:`~tdglnre.physics.plan.RunPlan` on the device; ψ and/or the channels come back.

    The result's ``psi`` is None unless ``want_psi``; its ``x`` holds the
    channels computed on the device when ``want_channels``.
    """
    require_cuda()
    S, N, dtype, scr = plan.S, plan.config.N, plan.dtype, plan.screened
    T = plan.snap.shape[0]
    if scr:  # ψ and a come back; the channels (B included) are formed on the host from them
        mode, keep_states, want_channels_dev = dsc.screened_mode(plan.options.fused), True, False
    else:
        mode, keep_states, want_channels_dev = dk.select_mode(N, dtype, plan.options.fused), want_psi, want_channels
    log.debug("simulate_cuda: %d samples, N=%d, %s, kernel %s%s, disorder %s, thermal noise %s",
              S, N, dtype.name, mode, " (screened)" if scr else "", *plan.nuisance_on)
    links64 = K.link_tables(N, plan.config.L, plan.pars["n_v"], dtype=np.float64) if want_channels_dev else None
    comps = 6 if scr else 4
    states_out = np.empty((S, T, comps * N * N), dtype=dtype) if keep_states else None
    chans_out = np.empty((S, T, N, N, 3), dtype=np.float32) if want_channels_dev else None
    batch_size = plan.options.batch_size
    batch_size = auto_batch_size(S, N, T, dtype, scr) if batch_size is None else min(batch_size, MAX_BATCH)
    check_device_memory(min(S, batch_size) * bytes_per_sample(N, T, dtype, scr), f"a batch of {min(S, batch_size)}")
    for start, stop in plan.batches(batch_size):
        states, chans = _run_batch(plan, start, stop, mode, keep_states, links64)
        if keep_states:
            states_out[start:stop] = states
        if want_channels_dev:
            chans_out[start:stop] = chans
        if progress is not None:
            progress(stop - start)
        log.debug("simulated samples %d..%d of %d on the device", start, stop - 1, S)
    if not scr:
        psi = state_to_psi(states_out.reshape(S, T, 4, N, N)) if want_psi else None
        return plan.result(psi, chans_out)
    states_out = states_out.reshape(S, T, comps, N, N)
    res = plan.result(state_to_psi(states_out[:, :, :4]), None, states_out[:, :, 4:])
    if want_channels:  # the CPU's network_channels of the device's ψ and a (ρ1, ρ2, curl J, B)
        res.x = res.channels()
    if not want_psi:
        res.psi = None
    return res


def _run_batch(plan: RunPlan, start: int, stop: int, mode: str, want_psi: bool, links64):
    """Snapshot states (b, T, 4N²) and/or channels (b, T, N, N, 3) of rows start..stop-1 on the device."""
    b, N, dtype, cfg = stop - start, plan.config.N, plan.dtype, plan.config
    T, M = plan.snap.shape[0], (6 if plan.screened else 4) * N * N
    snap_index = {int(s): t for t, s in enumerate(plan.snap)}
    grace = health_limits()[2]
    host = plan.initial_states(start, stop).reshape(b, M)
    sl = slice(start, stop)
    if plan.screened:
        batch = ScreenedBatch(host, plan.co[sl], plan.bg[sl], plan.nuisance(start, stop))
    else:
        batch = _Batch(host, plan.co[sl], plan.ly[sl], plan.lx[sl], mode, plan.nuisance(start, stop))
    d_states = cuda.device_array((b, T, M), dtype=dtype) if want_psi else None
    if links64 is not None:
        d_chans = cuda.device_array((b, T, N, N, 3), dtype=np.float32)
        d_ly64, d_lx64, d_nu = (cuda.to_device(np.ascontiguousarray(a[sl], dtype=np.float64))
                                for a in (links64[0], links64[1], plan.pars["nu"]))
    verdict = (cuda.to_device(np.full(b, -1, dtype=np.int64)), cuda.to_device(np.zeros(b, dtype=np.int64)),
               cuda.to_device(np.zeros(b, dtype=np.float64)))
    step = 0
    for p in plan.checkpoints():
        osc = p >= grace
        prev = batch.advance_to_check(p - step, keep_prev=osc)
        step = p
        batch.check(prev, step, osc, verdict)
        t = snap_index.get(step)
        if t is None:
            continue  # snapshots after a divergence are stored and dropped: the run raises below
        if want_psi:
            grid, tpb = dk.grid(M, b)
            dk.store_kernel[grid, tpb](batch.a, d_states, t)
        if links64 is not None:
            grid, tpb = dk.grid(N * N, b)
            dk.channels_kernel[grid, tpb](batch.a, d_chans, t, d_ly64, d_lx64, d_nu,
                                          float(cfg.D[0]), float(cfg.D[1]), float(cfg.h))
    status = verdict[0].copy_to_host()
    failed = np.flatnonzero(status >= 0)
    if failed.size:
        r = int(failed[0])
        raise plan.divergence(start + r, int(status[r]), int(verdict[1].copy_to_host()[r]),
                              float(verdict[2].copy_to_host()[r]))
    return (d_states.copy_to_host() if want_psi else None,
            d_chans.copy_to_host() if links64 is not None else None)


def _plan(config: SimConfig, params: Mapping[str, Sequence[float] | float] | None = None, *, seed: int = 0,
          sample_indices: Sequence[int] | None = None, n_samples: int | None = None,
          initial: np.ndarray | None = None, batch_size: int | None = None, check_every: int | None = None,
          fused: bool | str | None = None, options: SolverOptions | None = None) -> RunPlan:
    """The run plan of a CUDA call: the keywords of :func:`simulate_cuda` (judged by ``SolverOptions``)."""
    options = solver_options(config, options, device="cuda", batch_size=batch_size, check_every=check_every,
                             fused=fused)
    return prepare_run(config, params, seed=seed, sample_indices=sample_indices, n_samples=n_samples,
                       initial=initial, options=options)


def simulate_cuda(config: SimConfig, params: Mapping[str, Sequence[float] | float] | None = None, *,
                  progress: Callable[[int], None] | None = None, **keywords: Any) -> SimulationResult:
    """Simulate quenches on the GPU; same contract as :func:`tdglnre.physics.solver.simulate`.

    Parameters
    ----------
    config, params, seed, sample_indices, n_samples, initial, check_every, progress
        As in :func:`tdglnre.physics.solver.simulate` (keywords); sample k
        starts from ``solver.initial_state(seed, k, N)`` (made on the host), so
        a CUDA run and a CPU run start identically.
    batch_size
        Samples resident on the device at once (bounds memory; does not change
        results, which are bitwise identical for any value). Default:
        :func:`auto_batch_size` (at most :data:`BATCH_BYTES` of device buffers).
        Larger values than :data:`MAX_BATCH` (the grid's y limit) are reduced to it.
    fused
        Kernel choice, see :func:`.kernels.select_mode` (default: by N and dtype).
    options
        The run's :class:`~tdglnre.physics.options.SolverOptions` (its device is
        CUDA here); keywords given replace its values, as on the CPU.

    Returns
    -------
    SimulationResult

    Raises
    ------
    ConfigError
        Invalid configuration, or CUDA not usable here.
    ResourceError
        A batch larger than the GPU's free memory.
    DivergenceError
        A sample produced NaN/Inf or a grid-scale oscillation (the lowest-index
        one; the first check step at which it was seen, with the CPU solver's
        check points, thresholds and reason text).
    """
    return run_plan(_plan(config, params, **keywords), progress)


def simulate_channels_cuda(config: SimConfig, params: Mapping[str, Sequence[float] | float] | None = None, *,
                           progress: Callable[[int], None] | None = None, **keywords: Any) -> np.ndarray:
    """Network channels [ρ1, ρ2, curl J] of every snapshot, float32 (S, T, N, N, 3).

    Same arguments as :func:`simulate_cuda`; the channels are computed on the
    device (as :meth:`tdglnre.physics.solver.SimulationResult.channels` does on
    the host), so only they cross to the host.
    """
    return run_plan(_plan(config, params, **keywords), progress, want_psi=False, want_channels=True).x


def simulate_outputs_cuda(config: SimConfig, params: Mapping[str, Sequence[float] | float] | None = None, *,
                          want_psi: bool = False, **keywords: Any) -> tuple[np.ndarray | None, np.ndarray]:
    """Channels and (optionally) ψ of one run, both from the device.

    Parameters
    ----------
    config, params, seed, sample_indices, batch_size, check_every, fused, options
        As in :func:`simulate_cuda`.
    want_psi
        Also return ψ (S, T, 2, N, N) complex (the channels are computed on the
        device from the same states either way, so ``x`` does not depend on it).

    Returns
    -------
    psi, channels
        ψ or None, and float32 channels (S, T, N, N, 3).
    """
    res = run_plan(_plan(config, params, **keywords), want_psi=want_psi, want_channels=True)
    return res.psi, res.x
