"""CUDA backend of the two-band TDGL solver (numba-cuda kernels, issue 11).

Same physics as the CPU kernel (:mod:`.kernels`): the per-sample coefficient
vector comes from :func:`.kernels.coefficients`, the Landau-gauge link tables
from :func:`.kernels.link_tables`, and the site formula and transported
neighbour sum are the CPU kernel's own Python functions (``kernels._site``,
``kernels._vertical``) compiled a second time for the device, so there is one
definition of the update for both backends (docs/physics.md, "Lattice free
energy": ``dst = keep·ψ + scale·∂ₜψ``).

Kernels
-------
* ``step``: one thread per site, ``grid = (⌈N²/tpb⌉, S)``, one launch per
  Euler step, state in global memory (ping-pong buffers).
* ``fused-shared``: one block per sample; the sample lives in shared memory
  and the block advances many steps per launch (two ``syncthreads`` per step,
  new values staged in registers), for lattices whose state fits the 48 KiB of
  static shared memory (N ≤ 55 in float32, N ≤ 39 in float64).
* ``fused-global``: one block per sample, the sample in global memory
  (L2-resident for small N), many steps per launch with ``syncthreads``
  between steps; used when the state does not fit shared memory, up to
  N = :data:`FUSED_GLOBAL_MAX_N`.
* pinning disorder (δ) and thermal noise (T), issue 13: variants of the three
  Euler kernels built by :mod:`._cuda_nuisance` (ξ, dco, amp and the noise key
  of each sample prepared on the host exactly as ``solver.simulate`` does; the
  noise deviates are the CPU stream's own ``_thermal`` functions compiled for
  the device, so a (seed, sample, step, site) gets the same normal on both
  backends). Runs with T = 0 and δ = 0 use the clean kernels below unchanged;
* the gradient ∂F/∂z is the ``step`` kernel with (keep, scale) = (0, −2h²)
  (its disorder variant when the sample has δ ≠ 0);
* the network channels [ρ1, ρ2, curl J] are computed on the device
  (float64 arithmetic, float32 output), so only snapshots cross to the host;
* the CPU solver's health check (NaN/Inf, and after the grace period a
  checkerboard density or a step-to-step oscillation; docs/physics.md,
  "Runtime detection of grid-scale oscillation") runs at the same check points:
  a per-sample block reduction forms the same five float64 sums on the device
  and :func:`judge_health` applies the CPU decision to them on the host.

The kernel used depends only on (N, dtype), never on the batch size, so two
runs on one device are bitwise identical whatever ``batch_size``. CPU and
CUDA results agree to floating-point tolerance only (the device contracts
multiply-adds into FMAs); see docs/gpu.md for the measured tolerances.

Device selection (:func:`resolve_device`): ``"cuda"`` needs numba-cuda (the
``cuda`` extra), a driver and a GPU, or numba's CUDA simulator
(``NUMBA_ENABLE_CUDASIM=1``, used by the tests); ``"auto"`` picks a real GPU
when one is usable and the CPU otherwise (never the slow simulator).
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import math
import time
from typing import Any, Callable, Mapping, Sequence

import numba
import numpy as np
import scipy.sparse.linalg as spla
from numba import cuda

from ..errors import ConfigError, DivergenceError
from . import _cuda_nuisance as _cn
from . import kernels
from .config import SimConfig, as_sample_arrays
from .solver import (EnergyModel, SimulationResult, _reason_text, disorder_batch, initial_state, state_to_psi,
                     thermal_amplitude)

log = logging.getLogger(__name__)

DEVICES = ("cpu", "cuda", "auto")
INSTALL_HINT = 'pip install "tdglnre[cuda]"'

#: Static shared memory per block available without an opt-in (bytes).
SHARED_BYTES = 48 * 1024
#: Largest number of sites a thread of the shared-memory kernel stages in registers.
KMAX = 4
#: Length of that staging array (4 values a site); a module constant, as local arrays need one.
STAGE = 4 * KMAX
#: Largest block (threads).
MAX_BLOCK = 1024
#: Threads per block of the one-thread-per-site kernels.
TPB = 256
#: Largest N run by the one-block-per-sample global-memory fused kernel; above
#: it a sample has enough sites to fill the GPU with one launch per step.
FUSED_GLOBAL_MAX_N = 128

MODES = ("step", "fused-shared", "fused-global")

#: Device memory a default batch may take (bytes), see :func:`auto_batch_size`.
BATCH_BYTES = 2 * 2**30
#: Largest batch: samples run along the grid's y axis, which CUDA limits to 65535 blocks.
MAX_BATCH = 65535

#: Per-size cases of the issue-11 benchmark: (N, batch).
BENCH_CASES = ((64, 8), (64, 1024), (256, 64), (1024, 8))


# --------------------------------------------------------------------------- device selection
def simulator_enabled() -> bool:
    """True when ``numba.cuda`` is numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``)."""
    return "simulator" in getattr(cuda.jit, "__module__", "")


def cuda_status() -> tuple[bool, str]:
    """Whether the CUDA backend can run here, and why (or why not).

    Returns
    -------
    usable, reason
        ``(True, "CUDA simulator ...")`` under numba's simulator, ``(True,
        "CUDA GPU <name>")`` with numba-cuda and a working GPU, otherwise
        ``False`` and one line naming what is missing and how to get it.
    """
    if simulator_enabled():
        return True, "CUDA simulator (NUMBA_ENABLE_CUDASIM=1; slow, for tests)"
    if importlib.util.find_spec("numba_cuda") is None:
        return False, f"numba-cuda is not installed; install the CUDA extra with {INSTALL_HINT}"
    try:
        ok = bool(cuda.is_available())
    except Exception as exc:  # a broken driver or an import-time failure of numba-cuda
        return False, f"numba-cuda cannot initialise CUDA ({exc}); check the NVIDIA driver and {INSTALL_HINT}"
    if not ok:
        return False, ("no usable CUDA GPU: numba-cuda found no NVIDIA driver or GPU "
                       "(needs an NVIDIA GPU with its driver; nvidia-smi must list it)")
    return True, f"CUDA GPU {gpu_name()}"


def gpu_name() -> str:
    """Name of the current CUDA device ("CUDA simulator" under the simulator)."""
    if simulator_enabled():
        return "CUDA simulator"
    name = cuda.get_current_device().name
    return name.decode() if isinstance(name, bytes) else str(name)


def resolve_device(device: str) -> str:
    """Map ``"cpu" | "cuda" | "auto"`` to the backend that will run.

    Raises
    ------
    ConfigError
        Unknown device, or ``"cuda"`` where it cannot run (the message says what
        is missing and how to install it).
    """
    if device not in DEVICES:
        raise ConfigError(f"device must be one of {list(DEVICES)}, got {device!r}")
    if device == "cpu":
        return "cpu"
    ok, why = cuda_status()
    if device == "cuda":
        if not ok:
            raise ConfigError(f"device 'cuda' is not usable: {why}")
        return "cuda"
    if ok and not simulator_enabled():
        return "cuda"
    log.info("device auto: using the CPU (%s)", why if not ok else "the CUDA simulator is not used for auto")
    return "cpu"


#: Per-sample physics of the CPU solver that the device kernels do not implement (name: what it is).
#: Empty since issue 13: thermal noise (T) and pinning disorder (delta) run on the device
#: (:mod:`._cuda_nuisance`); kept so a future CPU-only feature is refused, not silently dropped.
UNSUPPORTED: dict[str, str] = {}


def check_supported(config: SimConfig, params: Mapping[str, Any] | None = None,
                    varied: Sequence[str] = ()) -> None:
    """Refuse physics the device kernels do not implement (:data:`UNSUPPORTED`; none at present).

    Parameters
    ----------
    config
        Its defaults of every :data:`UNSUPPORTED` name must be 0.
    params
        Per-sample values (scalars or arrays); every :data:`UNSUPPORTED` one must be 0.
    varied
        Names a prior draws per sample (refused if :data:`UNSUPPORTED`).

    Raises
    ------
    ConfigError
        One line naming the feature and pointing to ``--device cpu``; without
        this check the device would silently run without it.
    """
    for key, what in UNSUPPORTED.items():
        values = [getattr(config, key, 0.0)]
        if params is not None and key in params:
            values.append(params[key])
        if key in varied or any(np.any(np.asarray(v, dtype=np.float64) != 0) for v in values):
            raise ConfigError(f"device 'cuda' does not implement {what} yet; use --device cpu")


def _require_cuda() -> None:
    ok, why = cuda_status()
    if not ok:
        raise ConfigError(f"device 'cuda' is not usable: {why}")


# --------------------------------------------------------------------------- device functions
# The CPU kernel's own site formula and neighbour transport, compiled for the device.
_site = cuda.jit(device=True)(kernels._site.py_func)
_vertical = cuda.jit(device=True)(kernels._vertical.py_func)


@cuda.jit(device=True)
def _rhs_site(a, N, i, j, co, ly, lx, c1, c2):
    """New values (4) at site (i, j) of a flat sample ``a`` (c·N² + i·N + j).

    Same operations in the same order as :func:`.kernels._sweep`; ``c1``, ``c2``
    are the site's C1, C2 (``co[4]``, ``co[5]``, shifted by the pinning
    disorder in :mod:`._cuda_nuisance`'s kernels).
    """
    NN = N * N
    ip = i + 1 if i < N - 1 else 0
    im = i - 1 if i > 0 else N - 1
    r = i * N
    me = r + j
    up = ip * N + j
    dn = im * N + j
    cy = ly[0, j]
    sy = ly[1, j]
    v1r, v1i = _vertical(cy, sy, a[up], a[NN + up], a[dn], a[NN + dn])
    v2r, v2i = _vertical(cy, sy, a[2 * NN + up], a[3 * NN + up], a[2 * NN + dn], a[3 * NN + dn])
    if j == 0:
        cx = lx[0, i]
        sx = lx[1, i]
        jr = r + 1
        jl = r + N - 1
        n1r = v1r + (a[jr] + (cx * a[jl] - sx * a[NN + jl]))
        n1i = v1i + (a[NN + jr] + (cx * a[NN + jl] + sx * a[jl]))
        n2r = v2r + (a[2 * NN + jr] + (cx * a[2 * NN + jl] - sx * a[3 * NN + jl]))
        n2i = v2i + (a[3 * NN + jr] + (cx * a[3 * NN + jl] + sx * a[2 * NN + jl]))
    elif j == N - 1:
        cx = lx[0, i]
        sx = lx[1, i]
        jr = r
        jl = r + N - 2
        n1r = v1r + ((cx * a[jr] + sx * a[NN + jr]) + a[jl])
        n1i = v1i + ((cx * a[NN + jr] - sx * a[jr]) + a[NN + jl])
        n2r = v2r + ((cx * a[2 * NN + jr] + sx * a[3 * NN + jr]) + a[2 * NN + jl])
        n2i = v2i + ((cx * a[3 * NN + jr] - sx * a[2 * NN + jr]) + a[3 * NN + jl])
    else:
        n1r = v1r + (a[me + 1] + a[me - 1])
        n1i = v1i + (a[NN + me + 1] + a[NN + me - 1])
        n2r = v2r + (a[2 * NN + me + 1] + a[2 * NN + me - 1])
        n2i = v2i + (a[3 * NN + me + 1] + a[3 * NN + me - 1])
    return _site(co[0], co[1], co[2], co[3], c1, c2, co[6], co[7], co[8],
                 a[me], a[NN + me], a[2 * NN + me], a[3 * NN + me], n1r, n1i, n2r, n2i)


@cuda.jit(device=True)
def _im_transport(ar, ai, br, bi, c, s):
    """Im(a* U b) for U = c − i s."""
    qr = c * br + s * bi
    qi = c * bi - s * br
    return ar * qi - ai * qr


@cuda.jit(device=True)
def _link_current(a, p, q, c, s, NN, D1, D2, nu):
    """Supercurrent on the link p → q of flat sample ``a`` (docs/physics.md, Observables)."""
    a1r = np.float64(a[p])
    a1i = np.float64(a[NN + p])
    a2r = np.float64(a[2 * NN + p])
    a2i = np.float64(a[3 * NN + p])
    b1r = np.float64(a[q])
    b1i = np.float64(a[NN + q])
    b2r = np.float64(a[2 * NN + q])
    b2i = np.float64(a[3 * NN + q])
    j11 = _im_transport(a1r, a1i, b1r, b1i, c, s)
    j22 = _im_transport(a2r, a2i, b2r, b2i, c, s)
    j12 = _im_transport(a1r, a1i, b2r, b2i, c, s)
    j21 = _im_transport(a2r, a2i, b1r, b1i, c, s)
    jj = 2.0 * (D1 * j11 + D2 * j22)
    jj += 2.0 * nu * (j12 + j21)
    return jj


# --------------------------------------------------------------------------- kernels
@cuda.jit
def _step_kernel(src, dst, co, ly, lx):
    """dst[s] = keep·src[s] + scale·rhs(src[s]) — one thread per site, samples on grid axis y."""
    s = cuda.blockIdx.y
    site = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    N = ly.shape[2]
    NN = N * N
    if site < NN:
        i = site // N
        j = site - i * N
        r1r, r1i, r2r, r2i = _rhs_site(src[s], N, i, j, co[s], ly[s], lx[s], co[s, 4], co[s, 5])
        d = dst[s]
        d[site] = r1r
        d[NN + site] = r1i
        d[2 * NN + site] = r2r
        d[3 * NN + site] = r2i


@cuda.jit
def _fused_global_kernel(a, b, co, ly, lx, n_steps):
    """``n_steps`` Euler steps of sample ``blockIdx.x`` in global memory; result in ``a``."""
    s = cuda.blockIdx.x
    tid = cuda.threadIdx.x
    T = cuda.blockDim.x
    N = ly.shape[2]
    NN = N * N
    cs = co[s]
    lys = ly[s]
    lxs = lx[s]
    src = a[s]
    dst = b[s]
    for _ in range(n_steps):
        for site in range(tid, NN, T):
            i = site // N
            j = site - i * N
            r1r, r1i, r2r, r2i = _rhs_site(src, N, i, j, cs, lys, lxs, cs[4], cs[5])
            dst[site] = r1r
            dst[NN + site] = r1i
            dst[2 * NN + site] = r2r
            dst[3 * NN + site] = r2i
        cuda.syncthreads()
        src, dst = dst, src
    if n_steps % 2 == 1:
        fin = a[s]
        for k in range(tid, 4 * NN, T):
            fin[k] = src[k]
        cuda.syncthreads()


@functools.lru_cache(maxsize=None)
def _fused_shared_kernel(dtype_name: str):
    """The shared-memory fused kernel for one dtype (shared/local arrays need a constant type)."""
    nbt = numba.from_dtype(np.dtype(dtype_name))

    @cuda.jit
    def kernel(states, co, ly, lx, n_steps):
        s = cuda.blockIdx.x
        tid = cuda.threadIdx.x
        T = cuda.blockDim.x
        N = ly.shape[2]
        NN = N * N
        buf = cuda.shared.array(0, dtype=nbt)
        tmp = cuda.local.array(STAGE, dtype=nbt)
        g = states[s]
        for k in range(tid, 4 * NN, T):
            buf[k] = g[k]
        cs = co[s]
        lys = ly[s]
        lxs = lx[s]
        cuda.syncthreads()
        for _ in range(n_steps):
            q = 0
            for site in range(tid, NN, T):
                i = site // N
                j = site - i * N
                r1r, r1i, r2r, r2i = _rhs_site(buf, N, i, j, cs, lys, lxs, cs[4], cs[5])
                tmp[q] = r1r
                tmp[q + 1] = r1i
                tmp[q + 2] = r2r
                tmp[q + 3] = r2i
                q += 4
            cuda.syncthreads()
            q = 0
            for site in range(tid, NN, T):
                buf[site] = tmp[q]
                buf[NN + site] = tmp[q + 1]
                buf[2 * NN + site] = tmp[q + 2]
                buf[3 * NN + site] = tmp[q + 3]
                q += 4
            cuda.syncthreads()
        for k in range(tid, 4 * NN, T):
            g[k] = buf[k]

    return kernel


#: Largest block of the per-sample health reduction (a power of two).
HEALTH_TPB = 256

@functools.lru_cache(maxsize=None)
def _health_kernel(threads: int):
    """Per-sample float64 sums (Σρ1, Σρ2, Σρ1(−1)^(i+j), Σρ2(−1)^(i+j), ||cur − prev||²).

    One block of ``threads`` (a power of two) per sample; each thread sums its
    sites in order, then a fixed shared-memory tree adds the partial sums, so
    the result does not depend on the batch.
    """

    @cuda.jit
    def kernel(cur, prev, sums, N):
        s = cuda.blockIdx.x
        tid = cuda.threadIdx.x
        NN = N * N
        part = cuda.shared.array((5, threads), dtype=numba.float64)
        t1 = 0.0
        t2 = 0.0
        st1 = 0.0
        st2 = 0.0
        dd = 0.0
        c = cur[s]
        p = prev[s]
        for site in range(tid, NN, threads):
            i = site // N
            j = site - i * N
            x1r = np.float64(c[site])
            x1i = np.float64(c[NN + site])
            x2r = np.float64(c[2 * NN + site])
            x2i = np.float64(c[3 * NN + site])
            r1 = x1r * x1r + x1i * x1i
            r2 = x2r * x2r + x2i * x2i
            t1 += r1
            t2 += r2
            if (i + j) % 2 == 0:
                st1 += r1
                st2 += r2
            else:
                st1 -= r1
                st2 -= r2
            e0 = x1r - np.float64(p[site])
            e1 = x1i - np.float64(p[NN + site])
            e2 = x2r - np.float64(p[2 * NN + site])
            e3 = x2i - np.float64(p[3 * NN + site])
            dd += e0 * e0 + e1 * e1 + e2 * e2 + e3 * e3
        part[0, tid] = t1
        part[1, tid] = t2
        part[2, tid] = st1
        part[3, tid] = st2
        part[4, tid] = dd
        cuda.syncthreads()
        stride = threads // 2
        while stride > 0:
            if tid < stride:
                for q in range(5):
                    part[q, tid] += part[q, tid + stride]
            cuda.syncthreads()
            stride //= 2
        if tid == 0:
            for q in range(5):
                sums[s, q] = part[q, 0]

    return kernel


def _health_threads(N: int) -> int:
    t = 1
    while t * 2 <= min(HEALTH_TPB, N * N):
        t *= 2
    return t


def health_limits() -> tuple[float, float, int]:
    """(staggered-ratio max, relative-change max, grace steps) of the CPU solver's health check.

    Read from :mod:`.kernels` at call time, so both backends use one definition
    (docs/physics.md, "Runtime detection of grid-scale oscillation").
    """
    return float(kernels.STAGGERED_MAX), float(kernels.CHANGE_MAX), int(kernels.GRACE_STEPS)


def judge_health(sums: np.ndarray, oscillation_checks: bool, stag_max: float,
                 change_max: float) -> tuple[int, float]:
    """Outcome code (``kernels.OK`` …) and offending ratio of one sample's health sums.

    ``sums`` = (Σρ1, Σρ2, Σρ1(−1)^(i+j), Σρ2(−1)^(i+j), ||ψ − ψ_prev||²), as
    accumulated by ``kernels._check_state``; the decision is that function's:
    non-finite sums are NaN/Inf; with ``oscillation_checks``, a band whose
    staggered ratio exceeds ``stag_max`` is a checkerboard and a relative
    step-to-step change above ``change_max`` an oscillation.
    """
    t1, t2, st1, st2, dd = (float(x) for x in sums)
    tot = t1 + t2
    if not all(math.isfinite(x) for x in (tot, dd, st1, st2)):
        return kernels.NONFINITE, math.nan
    if not oscillation_checks:
        return kernels.OK, 0.0
    if abs(st1) > stag_max * t1 and t1 > 0.0:
        return kernels.STAGGERED, abs(st1) / t1
    if abs(st2) > stag_max * t2 and t2 > 0.0:
        return kernels.STAGGERED, abs(st2) / t2
    if dd > change_max * change_max * tot and tot > 0.0:
        return kernels.OSCILLATION, math.sqrt(dd / tot)
    return kernels.OK, 0.0


@cuda.jit
def _store_kernel(st, out, t):
    """out[s, t] = st[s] (a snapshot, kept on the device)."""
    s = cuda.blockIdx.y
    k = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    if k < st.shape[1]:
        out[s, t, k] = st[s, k]


@cuda.jit
def _channels_kernel(st, out, t, ly, lx, nu, D1, D2, h):
    """out[s, t, i, j, :] = [ρ1, ρ2, curl J] at site / plaquette (i, j), float64 arithmetic."""
    s = cuda.blockIdx.y
    site = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    N = ly.shape[2]
    NN = N * N
    if site < NN:
        a = st[s]
        i = site // N
        j = site - i * N
        ip = i + 1 if i < N - 1 else 0
        jp = j + 1 if j < N - 1 else 0
        p00 = site
        p01 = i * N + jp
        p10 = ip * N + j
        p11 = ip * N + jp
        n = nu[s]
        # x-links are the identity except the seam column j = N-1
        if j == N - 1:
            cx0 = lx[s, 0, i]
            sx0 = lx[s, 1, i]
            cx1 = lx[s, 0, ip]
            sx1 = lx[s, 1, ip]
        else:
            cx0 = 1.0
            sx0 = 0.0
            cx1 = 1.0
            sx1 = 0.0
        jx00 = _link_current(a, p00, p01, cx0, sx0, NN, D1, D2, n)
        jx10 = _link_current(a, p10, p11, cx1, sx1, NN, D1, D2, n)
        jy00 = _link_current(a, p00, p10, ly[s, 0, j], ly[s, 1, j], NN, D1, D2, n)
        jy01 = _link_current(a, p01, p11, ly[s, 0, jp], ly[s, 1, jp], NN, D1, D2, n)
        curl = (((jx00 + jy01) - jx10) - jy00) / (h * h)
        re1 = np.float64(a[site])
        im1 = np.float64(a[NN + site])
        re2 = np.float64(a[2 * NN + site])
        im2 = np.float64(a[3 * NN + site])
        out[s, t, i, j, 0] = re1 * re1 + im1 * im1
        out[s, t, i, j, 1] = re2 * re2 + im2 * im2
        out[s, t, i, j, 2] = curl


@cuda.jit
def _displace_kernel(z, v, ds, w):
    """w[r] = z + ds[r]·v for every row r (the finite-difference points of an HVP)."""
    k = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    if k < z.shape[0]:
        zk = z[k]
        vk = v[k]
        for r in range(ds.shape[0]):
            w[r, k] = zk + ds[r] * vk


@cuda.jit
def _richardson_kernel(g, d, nv, out):
    """out = nv·[4 D(d/2) − D(d)]/3 with D(δ) = (g(z+δv) − g(z−δv))/(2δ), rows g = (+d, −d, +d/2, −d/2)."""
    k = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    if k < out.shape[0]:
        big = (g[0, k] - g[1, k]) / (2.0 * d)
        small = (g[2, k] - g[3, k]) / (2.0 * (0.5 * d))
        x = small * 4.0
        x -= big
        x /= 3.0
        out[k] = x * nv


@cuda.jit
def _central_kernel(g, d, nv, out):
    """out = nv·(g(z+dv) − g(z−dv))/(2d)."""
    k = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    if k < out.shape[0]:
        out[k] = (g[0, k] - g[1, k]) / (2.0 * d) * nv


# --------------------------------------------------------------------------- launch helpers
def _tpb(n: int) -> int:
    return max(1, min(TPB, n))


def _grid(n: int, S: int) -> tuple[tuple[int, int], int]:
    t = _tpb(n)
    return ((n + t - 1) // t, S), t


def _block_threads(N: int) -> int:
    return min(MAX_BLOCK, N * N)


def shared_fits(N: int, dtype: str | np.dtype) -> bool:
    """Whether one sample fits the shared-memory fused kernel (4·N² values, ≤ 48 KiB, ≤ KMAX sites a thread)."""
    nbytes = 4 * N * N * np.dtype(dtype).itemsize
    k = -(-(N * N) // _block_threads(N))
    return nbytes <= SHARED_BYTES and k <= KMAX


def select_mode(N: int, dtype: str | np.dtype, fused: bool | str | None = None) -> str:
    """Kernel used for an N×N lattice: ``"step"``, ``"fused-shared"`` or ``"fused-global"``.

    Parameters
    ----------
    N, dtype
        Lattice size and precision. The choice never depends on the batch
        size, so results are bitwise independent of it.
    fused
        ``None`` (auto: shared memory when the sample fits, the global-memory
        fused kernel up to N = FUSED_GLOBAL_MAX_N, else one launch per step),
        ``True`` (a fused kernel, shared when it fits), ``False`` (one launch
        per step) or one of :data:`MODES`.
    """
    if isinstance(fused, str):
        if fused not in MODES:
            raise ConfigError(f"fused must be None, True, False or one of {list(MODES)}, got {fused!r}")
        if fused == "fused-shared" and not shared_fits(N, dtype):
            raise ConfigError(f"N={N} in {np.dtype(dtype).name} does not fit the shared-memory kernel "
                              f"({4 * N * N * np.dtype(dtype).itemsize} bytes > {SHARED_BYTES})")
        return fused
    if fused is False:
        return "step"
    if fused is not None and fused is not True:
        raise ConfigError(f"fused must be None, True, False or one of {list(MODES)}, got {fused!r}")
    if shared_fits(N, dtype):
        return "fused-shared"
    if fused is True or N <= FUSED_GLOBAL_MAX_N:
        return "fused-global"
    return "step"


class _Batch:
    """Device buffers of one batch of samples: state, work buffer, coefficients and links.

    ``nuisance`` = (xi (S, N²) or None, dco (S, 2) or None, amp (S,) or None,
    keys (S,) or None) switches on pinning disorder and/or thermal noise
    (:mod:`._cuda_nuisance`); ``None`` (or all four None) runs the clean kernels.
    ``step`` counts the Euler steps done, the thermal stream's step counter.
    """

    def __init__(self, states: np.ndarray, co: np.ndarray, ly: np.ndarray, lx: np.ndarray, mode: str,
                 nuisance: tuple | None = None):
        self.S, M = states.shape
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
        self.kern = None
        if nuisance is not None and any(x is not None for x in nuisance):
            xi, dco, amp, keys = nuisance
            disorder, thermal = xi is not None, amp is not None
            fill = _cn.dummies(self.dtype, self.S)  # placeholders of the features this variant compiles out
            xi, dco = (xi.reshape(self.S, -1), dco) if disorder else fill[:2]
            amp, keys = (amp, keys) if thermal else fill[2:]
            self.extra = tuple(cuda.to_device(np.ascontiguousarray(x, dtype=d)) for x, d in
                               ((xi, self.dtype), (dco, self.dtype), (amp, self.dtype), (keys, np.uint64)))
            self.kern = _cn.nuisance_kernels(_rhs_site, self.dtype.name, disorder, thermal, STAGE)

    def advance(self, n: int) -> None:
        """Advance every sample by ``n`` Euler steps."""
        if n <= 0:
            return
        N = self.N
        if self.kern is not None:
            self._advance_nuisance(n)
        elif self.mode == "step":
            grid, tpb = _grid(N * N, self.S)
            for _ in range(n):
                _step_kernel[grid, tpb](self.a, self.b, self.co, self.ly, self.lx)
                self.a, self.b = self.b, self.a
        elif self.mode == "fused-global":
            _fused_global_kernel[self.S, _block_threads(N)](self.a, self.b, self.co, self.ly, self.lx, n)
        else:
            nbytes = 4 * N * N * self.dtype.itemsize
            kern = _fused_shared_kernel(self.dtype.name)
            kern[self.S, _block_threads(N), 0, nbytes](self.a, self.co, self.ly, self.lx, n)
        self.step += n

    def _advance_nuisance(self, n: int) -> None:
        """:meth:`advance` with disorder and/or noise: the same launches, plus ξ, dco, amp, keys and the step."""
        N = self.N
        kern = self.kern[self.mode]
        if self.mode == "step":
            grid, tpb = _grid(N * N, self.S)
            for k in range(n):
                kern[grid, tpb](self.a, self.b, self.co, self.ly, self.lx, *self.extra, self.step + k)
                self.a, self.b = self.b, self.a
        elif self.mode == "fused-global":
            kern[self.S, _block_threads(N)](self.a, self.b, self.co, self.ly, self.lx, n, *self.extra, self.step)
        else:
            nbytes = 4 * N * N * self.dtype.itemsize
            kern[self.S, _block_threads(N), 0, nbytes](self.a, self.co, self.ly, self.lx, n, *self.extra,
                                                       self.step)

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

    def health(self, prev) -> np.ndarray:
        """Health sums (S, 5) of the current state against ``prev`` (see :func:`judge_health`)."""
        threads = _health_threads(self.N)
        _health_kernel(threads)[self.S, threads](self.a, prev, self.sums, self.N)
        return self.sums.copy_to_host()


def _checkpoints(snap: np.ndarray, check_every: int) -> list[int]:
    """Steps at which the CPU solver checks a sample: multiples of check_every and the snapshots (all > 0)."""
    pts = set(range(check_every, int(snap.max()) + 1, check_every)) | {int(s) for s in snap}
    return sorted(pts)


def _prepare(config: SimConfig, params, seed, sample_indices, n_samples, initial, batch_size, check_every):
    """Validate the arguments exactly as :func:`.solver.simulate` does (same helper)."""
    from .solver import prepare_run

    pars, idx, initial = prepare_run(config, params, sample_indices, n_samples, initial, check_every)
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer))
                                   or batch_size < 1):
        raise ConfigError(f"batch_size must be an integer >= 1 or None, got {batch_size!r}")
    return pars, idx, initial


def auto_batch_size(n_samples: int, N: int, n_snapshots: int, dtype: str | np.dtype) -> int:
    """Samples per device batch so that a batch's buffers take at most :data:`BATCH_BYTES`.

    Per sample: state, work and previous-step buffers, the snapshots and the
    float32 channels. Never changes results (they are bitwise independent of it).
    """
    item = np.dtype(dtype).itemsize
    per_sample = (3 + n_snapshots) * 4 * N * N * item + n_snapshots * 3 * N * N * 4
    return int(max(1, min(n_samples, BATCH_BYTES // per_sample, MAX_BATCH)))


def _run(config: SimConfig, params, *, seed: int, sample_indices, n_samples, initial, batch_size: int | None,
         check_every: int, progress, fused, want_psi: bool, want_channels: bool):
    _require_cuda()
    pars, idx, initial = _prepare(config, params, seed, sample_indices, n_samples, initial, batch_size,
                                  check_every)
    check_supported(config, pars)
    S = pars["eta"].shape[0]
    dtype = np.dtype(config.dtype)
    N = config.N
    M = 4 * N * N
    snap = np.asarray(config.snapshot_steps, dtype=np.int64)
    T = snap.shape[0]
    snap_index = {int(s): t for t, s in enumerate(snap)}
    points = _checkpoints(snap, check_every)
    mode = select_mode(N, dtype, fused)
    limits = health_limits()
    co = kernels.coefficients(config.D, config.alpha, config.beta, config.h, pars["eta"], pars["nu"],
                              scale=config.dt, keep=1.0, dtype=dtype)
    ly, lx = kernels.link_tables(N, config.L, pars["n_v"], dtype=dtype)
    ly64, lx64 = kernels.link_tables(N, config.L, pars["n_v"], dtype=np.float64)
    # nuisance physics exactly as solver.simulate prepares it (same field, coefficients, amplitudes, keys)
    disordered = bool(np.any(pars["delta"] != 0.0))
    thermal = bool(np.any(pars["T"] > 0.0))
    dco = kernels.disorder_coefficients(config.alpha, pars["delta"], scale=config.dt, dtype=dtype) \
        if disordered else None
    amp = thermal_amplitude(pars["T"], config.dt, config.h).astype(dtype) if thermal else None
    keys = np.array([kernels.noise_key(seed, int(k)) for k in idx], dtype=np.uint64) if thermal else None
    log.debug("simulate_cuda: %d samples, N=%d, %s, kernel %s, disorder %s, thermal noise %s",
              S, N, dtype.name, mode, disordered, thermal)

    states_out = np.empty((S, T, M), dtype=dtype) if want_psi else None
    chans_out = np.empty((S, T, N, N, 3), dtype=np.float32) if want_channels else None
    batch_size = auto_batch_size(S, N, T, dtype) if batch_size is None else min(batch_size, MAX_BATCH)
    for start in range(0, S, batch_size):
        stop = min(S, start + batch_size)
        b = stop - start
        host = np.empty((b, M), dtype=dtype)
        for r in range(b):
            st = initial[start + r] if initial is not None else initial_state(seed, int(idx[start + r]), N)
            host[r] = st.reshape(-1)
        xi = disorder_batch(seed, idx[start:stop], pars["delta"][start:stop], config, dtype) if disordered else None
        nuisance = (xi, None if dco is None else dco[start:stop], None if amp is None else amp[start:stop],
                    None if keys is None else keys[start:stop])
        batch = _Batch(host, co[start:stop], ly[start:stop], lx[start:stop], mode, nuisance)
        d_states = cuda.device_array((b, T, M), dtype=dtype) if want_psi else None
        if want_channels:
            d_chans = cuda.device_array((b, T, N, N, 3), dtype=np.float32)
            d_ly64 = cuda.to_device(np.ascontiguousarray(ly64[start:stop]))
            d_lx64 = cuda.to_device(np.ascontiguousarray(lx64[start:stop]))
            d_nu = cuda.to_device(np.ascontiguousarray(pars["nu"][start:stop], dtype=np.float64))
        status = np.full(b, -1, dtype=np.int64)
        codes = np.zeros(b, dtype=np.int64)
        values = np.zeros(b)
        step = 0
        for p in points:
            osc = p >= limits[2]
            prev = batch.advance_to_check(p - step, keep_prev=osc)
            step = p
            sums = batch.health(prev)
            for r in np.flatnonzero(status < 0):
                code, value = judge_health(sums[r], osc, limits[0], limits[1])
                if code != kernels.OK:
                    status[r], codes[r], values[r] = step, code, value
            t = snap_index.get(step)
            if t is None or (status >= 0).any():
                continue  # after a divergence the batch runs on only to date the others' first failure
            grid, tpb = _grid(M, b)
            if want_psi:
                _store_kernel[grid, tpb](batch.a, d_states, t)
            if want_channels:
                grid, tpb = _grid(N * N, b)
                _channels_kernel[grid, tpb](batch.a, d_chans, t, d_ly64, d_lx64, d_nu,
                                            float(config.D[0]), float(config.D[1]), float(config.h))
        failed = np.flatnonzero(status >= 0)
        if failed.size:
            r = int(failed[0])
            k = start + r
            bad_pars = {"eta": pars["eta"][k], "n_v": pars["n_v"][k], "nu": pars["nu"][k]}
            bad_pars.update({n: pars[n][k] for n in ("T", "delta") if pars[n][k] != 0.0})
            raise DivergenceError(int(idx[k]), int(status[r]), bad_pars,
                                  _reason_text(int(codes[r]), float(values[r])))
        if want_psi:
            states_out[start:stop] = d_states.copy_to_host()
        if want_channels:
            chans_out[start:stop] = d_chans.copy_to_host()
        if progress is not None:
            progress(b)
        log.debug("simulated samples %d..%d of %d on the device", start, stop - 1, S)
    return pars, idx, states_out, chans_out


def simulate_cuda(
    config: SimConfig,
    params: Mapping[str, Sequence[float] | float] | None = None,
    *,
    seed: int = 0,
    sample_indices: Sequence[int] | None = None,
    n_samples: int | None = None,
    initial: np.ndarray | None = None,
    batch_size: int | None = None,
    check_every: int = 100,
    progress: Callable[[int], None] | None = None,
    fused: bool | str | None = None,
) -> SimulationResult:
    """Simulate quenches on the GPU; same contract as :func:`.solver.simulate`.

    Parameters
    ----------
    config, params, seed, sample_indices, n_samples, initial, check_every, progress
        As in :func:`.solver.simulate`; sample k starts from
        ``solver.initial_state(seed, k, N)`` (made on the host), so a CUDA run
        and a CPU run start identically.
    batch_size
        Samples resident on the device at once (bounds memory; does not change
        results, which are bitwise identical for any value). Default:
        :func:`auto_batch_size` (at most :data:`BATCH_BYTES` of device buffers).
        Larger values than :data:`MAX_BATCH` (the grid's y limit) are reduced to it.
    fused
        Kernel choice, see :func:`select_mode` (default: by N and dtype).

    Returns
    -------
    SimulationResult

    Raises
    ------
    ConfigError
        Invalid configuration, or CUDA not usable here.
    DivergenceError
        A sample produced NaN/Inf or a grid-scale oscillation (the lowest-index
        one; the first check step at which it was seen, with the CPU solver's
        check points, thresholds and reason text).
    """
    pars, idx, states, _ = _run(config, params, seed=seed, sample_indices=sample_indices, n_samples=n_samples,
                                initial=initial, batch_size=batch_size, check_every=check_every,
                                progress=progress, fused=fused, want_psi=True, want_channels=False)
    N = config.N
    psi = state_to_psi(states.reshape(states.shape[0], states.shape[1], 4, N, N))
    times = np.asarray(config.snapshot_times, dtype=np.float64)
    return SimulationResult(config=config, times=times, psi=psi, params=pars, sample_indices=idx)


def simulate_channels_cuda(
    config: SimConfig,
    params: Mapping[str, Sequence[float] | float] | None = None,
    *,
    seed: int = 0,
    sample_indices: Sequence[int] | None = None,
    n_samples: int | None = None,
    initial: np.ndarray | None = None,
    batch_size: int | None = None,
    check_every: int = 100,
    progress: Callable[[int], None] | None = None,
    fused: bool | str | None = None,
) -> np.ndarray:
    """Network channels [ρ1, ρ2, curl J] of every snapshot, float32 (S, T, N, N, 3).

    Same arguments as :func:`simulate_cuda`; the channels are computed on the
    device (as :meth:`.solver.SimulationResult.channels` does on the host), so
    only they cross to the host.
    """
    _, _, _, chans = _run(config, params, seed=seed, sample_indices=sample_indices, n_samples=n_samples,
                          initial=initial, batch_size=batch_size, check_every=check_every,
                          progress=progress, fused=fused, want_psi=False, want_channels=True)
    return chans


def simulate_outputs_cuda(
    config: SimConfig,
    params: Mapping[str, Sequence[float] | float] | None = None,
    *,
    seed: int = 0,
    sample_indices: Sequence[int] | None = None,
    want_psi: bool = False,
    batch_size: int | None = None,
    check_every: int = 100,
    fused: bool | str | None = None,
) -> tuple[np.ndarray | None, np.ndarray]:
    """Channels and (optionally) ψ of one run, both from the device (used by ensemble generation).

    Parameters
    ----------
    config, params, seed, sample_indices, batch_size, check_every, fused
        As in :func:`simulate_cuda`.
    want_psi
        Also return ψ (S, T, 2, N, N) complex (the channels are computed on the
        device from the same states either way, so ``x`` does not depend on it).

    Returns
    -------
    psi, channels
        ψ or None, and float32 channels (S, T, N, N, 3).
    """
    _, _, states, chans = _run(config, params, seed=seed, sample_indices=sample_indices, n_samples=None,
                               initial=None, batch_size=batch_size, check_every=check_every, progress=None,
                               fused=fused, want_psi=want_psi, want_channels=True)
    psi = None
    if want_psi:
        N = config.N
        psi = state_to_psi(states.reshape(states.shape[0], states.shape[1], 4, N, N))
    return psi, chans


# --------------------------------------------------------------------------- gradient and Hessian
class CudaEnergyModel:
    """F, ∂F/∂z of one sample with the gradient on the device (float64).

    The same coefficients as :class:`.solver.EnergyModel` (keep = 0,
    scale = −2h²) run through the ``step`` kernel; with pinning disorder
    (``delta`` ≠ 0) the disorder variant of that kernel with the CPU model's
    landscape ξ and coefficients −2h²·α_b·δ, so the gradient is that of the
    CPU energy with α_b(r) = α_b(1 + δξ(r)). ``delta``, ``seed``, ``index``
    and ``xi`` are :class:`.solver.EnergyModel`'s. F itself is evaluated by
    the CPU model (one O(N²) sweep, needed only by line searches).
    """

    def __init__(self, config: SimConfig, *, eta: float | None = None, n_v: int | None = None,
                 nu: float | None = None, delta: float | None = None, seed: int | None = None,
                 index: int | None = None, xi: np.ndarray | None = None):
        _require_cuda()
        check_supported(config)
        self.cpu = EnergyModel(config, eta=eta, n_v=n_v, nu=nu, delta=delta, seed=seed, index=index, xi=xi)
        self.config = self.cpu.config
        self.N = self.cpu.N
        self.shape = self.cpu.shape
        self.size = self.cpu.size
        self._co = self.cpu._grad_co[None, :]
        self._ly = self.cpu._ly[None]
        self._lx = self.cpu._lx[None]
        self._dev: dict[int, tuple[Any, ...]] = {}
        self._kern = None
        if self.cpu.xi is not None:
            self._kern = _cn.nuisance_kernels(_rhs_site, "float64", True, False, STAGE)["step"]

    def _tables(self, rows: int):
        """Device coefficient and link tables (and disorder inputs) repeated for ``rows`` gradient evaluations."""
        if rows not in self._dev:
            tabs = [np.repeat(self._co, rows, axis=0), np.repeat(self._ly, rows, axis=0),
                    np.repeat(self._lx, rows, axis=0)]
            if self._kern is not None:
                _, _, amp, keys = _cn.dummies(np.dtype(np.float64), rows)
                tabs += [np.repeat(self.cpu.xi.reshape(1, -1), rows, axis=0),
                         np.repeat(self.cpu._grad_dco[None, :], rows, axis=0), amp, keys]
            self._dev[rows] = tuple(cuda.to_device(np.ascontiguousarray(t)) for t in tabs)
        return self._dev[rows]

    def gradient_device(self, d_z, d_out) -> None:
        """∂F/∂z of each row of the device array ``d_z`` (R, 4N²) into ``d_out`` (R, 4N²)."""
        rows = d_z.shape[0]
        tabs = self._tables(rows)
        grid, tpb = _grid(self.N * self.N, rows)
        if self._kern is None:
            _step_kernel[grid, tpb](d_z, d_out, *tabs)
        else:
            self._kern[grid, tpb](d_z, d_out, *tabs, 0)

    def energy(self, z: np.ndarray) -> float:
        """Free energy F(z) (host)."""
        return self.cpu.energy(z)

    def gradient(self, z: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Real gradient ∂F/∂z with the shape of ``z``, computed on the device."""
        st = self.cpu._as_state(z).reshape(1, -1)
        d_z = cuda.to_device(st)
        d_g = cuda.device_array_like(d_z)
        self.gradient_device(d_z, d_g)
        g = d_g.copy_to_host().reshape(np.shape(z))
        if out is not None:
            out[...] = g.reshape(out.shape)
            return out
        return g


class CudaHessian:
    """Matrix-free Hessian-vector products on the device (Richardson or central differences).

    Mirrors the CPU ``Hessian`` of :mod:`tdglnre.analysis.hessian`: for a unit
    vector v̂, D(δ) = [g(z+δv̂) − g(z−δv̂)]/(2δ) and the Richardson product
    [4 D(δ/2) − D(δ)]/3 is exact for the cubic gradient up to rounding; the
    four gradients run as one launch of four rows. ``v`` crosses to the device
    and ``Hv`` back once per product.
    """

    METHODS = ("richardson", "central")
    DEFAULT_REL_STEP = {"richardson": 0.5, "central": 1e-5}

    def __init__(self, model: CudaEnergyModel, z: np.ndarray, *, method: str = "richardson",
                 rel_step: float | None = None):
        if method not in self.METHODS:
            raise ConfigError(f"unknown device HVP method {method!r}; valid: {list(self.METHODS)}")
        self.model = model
        self.method = method
        self.n = model.size
        z = np.ascontiguousarray(z, dtype=np.float64).reshape(-1)
        if z.size != self.n:
            raise ConfigError(f"state has {z.size} values, expected 4*N^2 = {self.n}")
        rs = self.DEFAULT_REL_STEP[method] if rel_step is None else float(rel_step)
        if not rs > 0:
            raise ConfigError(f"rel_step must be positive, got {rel_step!r}")
        self.step = rs * max(1.0, float(np.abs(z).max()))
        d = self.step
        ds = np.array([d, -d, 0.5 * d, -0.5 * d] if method == "richardson" else [d, -d])
        self._rows = ds.shape[0]
        self._z = cuda.to_device(z.copy())
        self._ds = cuda.to_device(ds)
        self._w = cuda.device_array((self._rows, self.n), dtype=np.float64)
        self._g = cuda.device_array((self._rows, self.n), dtype=np.float64)
        self._out = cuda.device_array(self.n, dtype=np.float64)
        self.n_matvec = 0

    def matvec(self, v: np.ndarray) -> np.ndarray:
        """H v for a vector of length 4N² (any shape with that many values)."""
        v = np.asarray(v, dtype=np.float64).reshape(-1)
        if v.size != self.n:
            raise ConfigError(f"vector has {v.size} values, expected 4*N^2 = {self.n}")
        self.n_matvec += 1
        nv = float(np.linalg.norm(v))
        if nv == 0.0:
            return np.zeros(self.n)
        d_v = cuda.to_device(v / nv)
        grid, tpb = _grid(self.n, 1)
        _displace_kernel[grid[0], tpb](self._z, d_v, self._ds, self._w)
        self.model.gradient_device(self._w, self._g)
        if self.method == "richardson":
            _richardson_kernel[grid[0], tpb](self._g, self.step, nv, self._out)
        else:
            _central_kernel[grid[0], tpb](self._g, self.step, nv, self._out)
        return self._out.copy_to_host()

    def as_linear_operator(self) -> spla.LinearOperator:
        """Symmetric :class:`scipy.sparse.linalg.LinearOperator` for ``eigsh``."""
        return spla.LinearOperator((self.n, self.n), matvec=self.matvec, rmatvec=self.matvec,
                                   dtype=np.float64)


# --------------------------------------------------------------------------- benchmark
def _bench_config(N: int, steps: int, dtype: str) -> SimConfig:
    # paper-like physics as in bench.py: h = 0.5, D = (4, 1), a few vortices and some drag
    return SimConfig(N=N, L=N / 2.0, dt=1e-3, eta=0.5, n_v=4, nu=0.3,
                     snapshot_times=(steps * 1e-3,), dtype=dtype)


def _time_case(N: int, batch: int, steps: int, dtype: str, fused, repeats: int) -> tuple[float, str]:
    cfg = _bench_config(N, steps, dtype)
    mode = select_mode(N, dtype, fused)
    pars = as_sample_arrays(cfg, {}, batch)
    co = kernels.coefficients(cfg.D, cfg.alpha, cfg.beta, cfg.h, pars["eta"], pars["nu"],
                              scale=cfg.dt, keep=1.0, dtype=np.dtype(dtype))
    ly, lx = kernels.link_tables(N, cfg.L, pars["n_v"], dtype=np.dtype(dtype))
    host = np.stack([initial_state(0, k, N).reshape(-1) for k in range(batch)]).astype(dtype)
    b = _Batch(host, co, ly, lx, mode)
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
               repeats: int = 2) -> dict:
    """Device site-update rates (millions per second) of the Euler kernels.

    A site-update advances both bands of one site by one step. The time covers
    the kernels only (state already on the device, no snapshots, no NaN checks).

    Parameters
    ----------
    cases
        (N, batch) pairs; the issue-11 cases by default.
    steps
        Euler steps per timed run.
    dtypes
        Precisions to time.
    fused
        Kernel choice, see :func:`select_mode`.
    repeats
        Timed runs per case; the fastest counts.

    Returns
    -------
    dict
        ``device`` (GPU name), ``cuda_float32_msites`` / ``cuda_float64_msites``
        (first case, for each timed dtype) and ``per_size``: one dict per case
        and dtype with ``N``, ``batch``, ``steps``, ``dtype``, ``kernel`` and
        ``msites``.
    """
    _require_cuda()
    if steps < 1 or repeats < 1:
        raise ConfigError(f"steps and repeats must be >= 1, got steps={steps}, repeats={repeats}")
    per_size = []
    for N, batch in cases:
        for dt in dtypes:
            log.info("benchmarking CUDA N=%d batch=%d %s", N, batch, dt)
            rate, mode = _time_case(int(N), int(batch), steps, dt, fused, repeats)
            per_size.append({"N": int(N), "batch": int(batch), "steps": int(steps), "dtype": dt,
                             "kernel": mode, "msites": rate})
    out: dict[str, Any] = {"device": gpu_name()}
    for dt in dtypes:
        first = next(r for r in per_size if r["dtype"] == dt)
        out[f"cuda_{dt}_msites"] = first["msites"]
    out["per_size"] = per_size
    return out
