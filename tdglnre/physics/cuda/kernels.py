"""The CUDA kernels of the two-band TDGL solver and their launch geometry (private; see :mod:`.run`).

Same physics as the CPU kernel (:mod:`tdglnre.physics.kernels`): the
per-sample coefficient vector comes from ``kernels.coefficients`` (its slots
used by name, ``kernels.C1`` …), the Landau-gauge link tables from
``kernels.link_tables``, and the covariant neighbour sums (seam included) and
the site formula are the CPU kernel's own ``@njit(inline="always")``
functions, ``kernels.neighbour_sums`` and ``kernels._site``, compiled a second
time for the device. Only the memory access differs: a sample here is one
flat row ``a[c·N² + i·N + j]``.

Euler kernels (:func:`euler_kernels`, one set per dtype and feature flags)
---------------------------------------------------------------------------
* ``step``: one thread per site, ``grid = (⌈N²/tpb⌉, S)``, one launch per
  Euler step, state in global memory (ping-pong buffers).
* ``fused-shared``: one block per sample; the sample lives in shared memory
  and the block advances many steps per launch (two ``syncthreads`` per step,
  each thread's new values held in :data:`KMAX` × 4 scalar registers with
  constant slots, not a local array), for lattices whose state fits the
  48 KiB of static shared memory (N ≤ 55 in float32, N ≤ 39 in float64).
* ``fused-global``: one block per sample, the sample in global memory, many
  steps per launch with ``syncthreads`` between steps, up to
  N = :data:`FUSED_GLOBAL_MAX_N`.

Pinning disorder (δ) and thermal noise (T) are closure flags of the factory:
the clean kernels are the same kernels with both features compiled out (their
inputs are then one-element placeholders, :func:`placeholders`), so there is
one kernel body per launch geometry. Noise deviates come from
:mod:`.noise` (the CPU stream's word layout, ``_thermal.site_normals``).

Launch geometry (issue 22)
--------------------------
The fused kernels are compiled with at most :data:`FUSED_MAX_REGISTERS`
registers a thread, so a block of :data:`MAX_BLOCK` threads always fits the
:data:`REGISTER_FILE`; on a real GPU the block is further capped by the
compiled kernel's own ``max_threads_per_block`` (:func:`fit_threads`), so a
launch never fails for lack of registers. Block sizes never change results:
each site's arithmetic is the same whichever thread does it.
"""

from __future__ import annotations

import functools
import math

import numba
import numpy as np
from numba import cuda

from ...errors import ConfigError, ResourceError
from . import noise as _cn
from .. import kernels as K
from .. import observables
from ..options import KERNEL_MODES
from .device import simulator_enabled

#: Static shared memory per block available without an opt-in (bytes).
SHARED_BYTES = 48 * 1024
#: 32-bit registers of one SM (every NVIDIA GPU since sm_50, sm_90 included); one block must fit it.
REGISTER_FILE = 65536
#: Largest block (threads).
MAX_BLOCK = 1024
#: Register cap of the fused kernels: a block of MAX_BLOCK threads then fits the register file.
FUSED_MAX_REGISTERS = REGISTER_FILE // MAX_BLOCK
#: Largest number of sites a thread of the shared-memory kernel holds in registers between syncs.
KMAX = 4
#: Threads per block of the one-thread-per-site kernels.
TPB = 256
#: Threads per block of the global-memory fused kernel (UNMEASURED choice, issue 22 #4: a
#: 1024-thread block with > 32 registers a thread occupies a whole SM; 512 lets two share one).
FUSED_GLOBAL_BLOCK = 512
#: Largest N run by the one-block-per-sample global-memory fused kernel; above it a sample has
#: enough sites to fill the GPU with one launch per step. UNMEASURED crossover (issue 22 #6: the
#: state spills out of L2 above N ≈ 100 in float32 / 76 in float64, and a small batch leaves
#: SMs idle); the benchmark's crossover cases (``bench.CROSSOVER_CASES``) measure it on a GPU.
FUSED_GLOBAL_MAX_N = 128
#: Largest block of the per-sample health reduction (a power of two).
HEALTH_TPB = 256

MODES = KERNEL_MODES


def _jit(max_registers: int | None = None):
    """``cuda.jit`` with a register cap on real GPUs (the simulator takes no such option)."""
    if max_registers is None or simulator_enabled():
        return cuda.jit
    return cuda.jit(max_registers=max_registers)


# --------------------------------------------------------------------------- device functions
_site = cuda.jit(device=True)(K._site.py_func)
_link_current = cuda.jit(device=True)(observables.link_current)


@cuda.jit(device=True)
def _rhs_site(a, N, i, j, co, ly, lx, c1, c2):
    """New values (4) at site (i, j) of a flat sample ``a`` (c·N² + i·N + j).

    The neighbour gather of :func:`tdglnre.physics.kernels._sweep`, through the
    same ``neighbour_sums`` (``side`` from the column: the seam at j = 0 and
    j = N−1); ``c1``, ``c2`` are the site's C1, C2 (shifted by pinning disorder).
    """
    NN = N * N
    ip = i + 1 if i < N - 1 else 0
    im = i - 1 if i > 0 else N - 1
    r = i * N
    me = r + j
    up = ip * N + j
    dn = im * N + j
    jr = r + (j + 1 if j < N - 1 else 0)
    jl = r + (j - 1 if j > 0 else N - 1)
    side = K.SEAM_LEFT if j == 0 else (K.SEAM_RIGHT if j == N - 1 else K.INTERIOR)
    n1r, n1i, n2r, n2i = K.neighbour_sums(
        ly[0, j], ly[1, j], lx[0, i], lx[1, i], side,
        a[up], a[NN + up], a[dn], a[NN + dn], a[2 * NN + up], a[3 * NN + up], a[2 * NN + dn], a[3 * NN + dn],
        a[jr], a[jl], a[NN + jr], a[NN + jl], a[2 * NN + jr], a[2 * NN + jl], a[3 * NN + jr], a[3 * NN + jl])
    return _site(co[K.KEEP], co[K.K11], co[K.K22], co[K.K12], c1, c2, co[K.B1], co[K.B2], co[K.E],
                 a[me], a[NN + me], a[2 * NN + me], a[3 * NN + me], n1r, n1i, n2r, n2i)


def placeholders(dtype: np.dtype, S: int) -> tuple:
    """Host placeholders (xi, dco, amp, keys) of S samples for the features a kernel variant compiles out.

    The kernels index every argument by sample before the compiled-out branch
    (a tiny row per sample: xi has one site).
    """
    return (np.zeros((S, 1), dtype=dtype), np.zeros((S, 2), dtype=dtype), np.zeros(S, dtype=dtype),
            np.zeros(S, dtype=np.uint64))


@functools.lru_cache(maxsize=None)
def euler_kernels(dtype_name: str, disorder: bool = False, thermal: bool = False, sites: int = KMAX) -> dict:
    """The ``step``, ``fused-global`` and ``fused-shared`` kernels of one dtype and feature set.

    ``disorder``/``thermal`` are closure constants: without them the branches
    are compiled out and the kernels do the clean update's arithmetic. Every
    variant takes the same arguments: the state(s), ``co`` (S, 9), ``ly``,
    ``lx`` (S, 2, N) (and ``n_steps`` for the fused ones), then ``xi`` (S, N²)
    and ``dco`` (S, 2) in the state's dtype, ``amp`` (S,) in the state's dtype
    (``add_noise32`` rounds amp to float32), ``keys`` (S,) uint64, and the step
    of the launch's first Euler step (placeholders for compiled-out features).
    ``sites`` (1..KMAX) is the most sites a thread of ``fused-shared`` updates
    per step (:func:`shared_sites`); fewer staged values use fewer registers.
    """
    # Kept as one factory over 80 lines on purpose (issue 18): the three kernels are closures over the
    # compile-time constants (dtype, disorder, thermal, sites) that prune the nuisance branches, and the
    # per-sample row views they share (co, ly, lx, xi, dco, amp, keys of block s) are taken inside each
    # kernel so that they stay registers; moving them into a device function returning eight arrays changes
    # the register allocation tests/test_cuda_registers.py pins, which only a GPU run could show to be free.
    if not 1 <= sites <= KMAX:
        raise ConfigError(f"sites must be in 1..{KMAX}, got {sites!r}")
    nbt = numba.from_dtype(np.dtype(dtype_name))
    draw = _cn.normals32 if dtype_name == "float32" else _cn.normals
    fused = _jit(FUSED_MAX_REGISTERS)

    @cuda.jit(device=True)
    def c12(cs, xs, ds, site):
        if disorder:
            x = xs[site]
            return cs[K.C1] + ds[0] * x, cs[K.C2] + ds[1] * x
        return cs[K.C1], cs[K.C2]

    @cuda.jit(device=True)
    def update(src, N, site, cs, lys, lxs, xs, ds, am, key, n):
        """New values of ``site`` after Euler step n (plus its thermal kick a·g when compiled in and a > 0)."""
        i = site // N
        j = site - i * N
        c1, c2 = c12(cs, xs, ds, site)
        r1r, r1i, r2r, r2i = _rhs_site(src, N, i, j, cs, lys, lxs, c1, c2)
        if thermal:
            if am > 0:
                g0, g1, g2, g3 = draw(key, n, N, site)
                return r1r + am * g0, r1i + am * g1, r2r + am * g2, r2i + am * g3
        return r1r, r1i, r2r, r2i

    @cuda.jit(device=True)
    def put(d, NN, site, r1r, r1i, r2r, r2i):
        d[site] = r1r
        d[NN + site] = r1i
        d[2 * NN + site] = r2r
        d[3 * NN + site] = r2i

    @cuda.jit
    def step(src, dst, co, ly, lx, xi, dco, amp, keys, n):
        s = cuda.blockIdx.y
        site = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
        N = ly.shape[2]
        NN = N * N
        if site < NN:
            r1r, r1i, r2r, r2i = update(src[s], N, site, co[s], ly[s], lx[s], xi[s], dco[s], amp[s], keys[s], n)
            put(dst[s], NN, site, r1r, r1i, r2r, r2i)

    @fused
    def fused_global(a, b, co, ly, lx, n_steps, xi, dco, amp, keys, step0):
        s = cuda.blockIdx.x
        tid = cuda.threadIdx.x
        T = cuda.blockDim.x
        N = ly.shape[2]
        NN = N * N
        cs = co[s]
        lys = ly[s]
        lxs = lx[s]
        xs = xi[s]
        ds = dco[s]
        am = amp[s]
        key = keys[s]
        src = a[s]
        dst = b[s]
        for k in range(n_steps):
            for site in range(tid, NN, T):
                r1r, r1i, r2r, r2i = update(src, N, site, cs, lys, lxs, xs, ds, am, key, step0 + k)
                put(dst, NN, site, r1r, r1i, r2r, r2i)
            cuda.syncthreads()
            src, dst = dst, src
        if n_steps % 2 == 1:
            fin = a[s]
            for k in range(tid, 4 * NN, T):
                fin[k] = src[k]
            cuda.syncthreads()

    @fused
    def fused_shared(states, co, ly, lx, n_steps, xi, dco, amp, keys, step0):
        # a thread owns sites tid + q·T for q < sites (<= KMAX = 4), unrolled with constant slots:
        # the staged values are scalars (registers), never a local array indexed at run time
        s = cuda.blockIdx.x
        tid = cuda.threadIdx.x
        T = cuda.blockDim.x
        N = ly.shape[2]
        NN = N * N
        buf = cuda.shared.array(0, dtype=nbt)
        g = states[s]
        for k in range(tid, 4 * NN, T):
            buf[k] = g[k]
        cs = co[s]
        lys = ly[s]
        lxs = lx[s]
        xs = xi[s]
        ds = dco[s]
        am = amp[s]
        key = keys[s]
        s0 = tid
        s1 = tid + T
        s2 = tid + 2 * T
        s3 = tid + 3 * T
        z = nbt(0)
        a0 = a1 = a2 = a3 = b0 = b1 = b2 = b3 = c0 = c1 = c2 = c3 = d0 = d1 = d2 = d3 = z
        cuda.syncthreads()
        for k in range(n_steps):
            n = step0 + k
            if s0 < NN:
                a0, a1, a2, a3 = update(buf, N, s0, cs, lys, lxs, xs, ds, am, key, n)
            if sites > 1 and s1 < NN:
                b0, b1, b2, b3 = update(buf, N, s1, cs, lys, lxs, xs, ds, am, key, n)
            if sites > 2 and s2 < NN:
                c0, c1, c2, c3 = update(buf, N, s2, cs, lys, lxs, xs, ds, am, key, n)
            if sites > 3 and s3 < NN:
                d0, d1, d2, d3 = update(buf, N, s3, cs, lys, lxs, xs, ds, am, key, n)
            cuda.syncthreads()
            if s0 < NN:
                put(buf, NN, s0, a0, a1, a2, a3)
            if sites > 1 and s1 < NN:
                put(buf, NN, s1, b0, b1, b2, b3)
            if sites > 2 and s2 < NN:
                put(buf, NN, s2, c0, c1, c2, c3)
            if sites > 3 and s3 < NN:
                put(buf, NN, s3, d0, d1, d2, d3)
            cuda.syncthreads()
        for k in range(tid, 4 * NN, T):
            g[k] = buf[k]

    return {"step": step, "fused-global": fused_global, "fused-shared": fused_shared}


# --------------------------------------------------------------------------- health check
@functools.lru_cache(maxsize=None)
def health_kernel(threads: int):
    """Per-sample health sums and verdict, one block of ``threads`` (a power of two) per sample.

    Forms the float64 sums of ``kernels._check_state`` (Σρ1, Σρ2, Σρ1(−1)^(i+j),
    Σρ2(−1)^(i+j), ||cur − prev||²) into ``sums[s]`` (each thread sums its
    sites in order, then a fixed shared-memory tree adds the partial sums, so
    the result does not depend on the batch) and applies the CPU's
    ``kernels.health_verdict`` on the device: a sample that fails for the
    first time gets ``status[s] = step``, its code and ratio. Nothing crosses
    to the host; the driver reads ``status`` once per batch.
    """

    @cuda.jit
    def kernel(cur, prev, sums, N, step, osc, stag_max, change_max, status, codes, values):
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
            r1, r2, s1, s2, d = K.health_terms(
                np.float64(c[site]), np.float64(c[NN + site]), np.float64(c[2 * NN + site]),
                np.float64(c[3 * NN + site]), np.float64(p[site]), np.float64(p[NN + site]),
                np.float64(p[2 * NN + site]), np.float64(p[3 * NN + site]), (i + j) % 2 == 0)
            t1 += r1
            t2 += r2
            st1 += s1
            st2 += s2
            dd += d
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
            if status[s] < 0:
                code, value = K.health_verdict(part[0, 0], part[1, 0], part[2, 0], part[3, 0], part[4, 0],
                                               osc != 0, stag_max, change_max)
                if code != K.OK:
                    status[s] = step
                    codes[s] = code
                    values[s] = value

    return kernel


def health_threads(N: int) -> int:
    """Threads of the health reduction for an N×N lattice (a power of two ≤ min(HEALTH_TPB, N²))."""
    t = 1
    while t * 2 <= min(HEALTH_TPB, N * N):
        t *= 2
    return t


# --------------------------------------------------------------------------- snapshots and channels
@cuda.jit
def store_kernel(st, out, t):
    """out[s, t] = st[s] (a snapshot, kept on the device)."""
    s = cuda.blockIdx.y
    k = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    if k < st.shape[1]:
        out[s, t, k] = st[s, k]


@cuda.jit(device=True)
def _link(a, p, q, c, s, NN, D1, D2, nu):
    """Supercurrent on the link p → q of flat sample ``a``: ``observables.link_current`` in float64."""
    return _link_current(np.float64(a[p]), np.float64(a[NN + p]), np.float64(a[2 * NN + p]),
                        np.float64(a[3 * NN + p]), np.float64(a[q]), np.float64(a[NN + q]),
                        np.float64(a[2 * NN + q]), np.float64(a[3 * NN + q]), c, s, D1, D2, nu)


@cuda.jit
def channels_kernel(st, out, t, ly, lx, nu, D1, D2, h):
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
        jx00 = _link(a, p00, p01, cx0, sx0, NN, D1, D2, n)
        jx10 = _link(a, p10, p11, cx1, sx1, NN, D1, D2, n)
        jy00 = _link(a, p00, p10, ly[s, 0, j], ly[s, 1, j], NN, D1, D2, n)
        jy01 = _link(a, p01, p11, ly[s, 0, jp], ly[s, 1, jp], NN, D1, D2, n)
        curl = (((jx00 + jy01) - jx10) - jy00) / (h * h)
        re1 = np.float64(a[site])
        im1 = np.float64(a[NN + site])
        re2 = np.float64(a[2 * NN + site])
        im2 = np.float64(a[3 * NN + site])
        out[s, t, i, j, 0] = re1 * re1 + im1 * im1
        out[s, t, i, j, 1] = re2 * re2 + im2 * im2
        out[s, t, i, j, 2] = curl


# --------------------------------------------------------------------------- launch geometry
def grid(n: int, S: int) -> tuple[tuple[int, int], int]:
    """(blocks along x, S samples along y) and threads per block of a one-thread-per-item kernel."""
    t = max(1, min(TPB, n))
    return ((n + t - 1) // t, S), t


def block_threads(N: int, mode: str) -> int:
    """Threads per block a fused kernel asks for at N×N (before :func:`fit_threads`)."""
    want = FUSED_GLOBAL_BLOCK if mode == "fused-global" else MAX_BLOCK
    return min(want, N * N)


_FIT: dict = {}


def fit_threads(kern, args: tuple, want: int) -> int:
    """``want`` threads, reduced to what the compiled kernel can launch with (real GPUs only).

    The driver's ``max_threads_per_block`` of the compiled kernel accounts for
    its registers a thread, so a block of at most that many always fits the
    register file. Under the simulator there is no compiled kernel: ``want``.
    """
    if simulator_enabled():
        return want
    key = (id(kern), tuple(getattr(a, "dtype", type(a)) for a in args))
    if key not in _FIT:
        _FIT[key] = int(kern.specialize(*args).get_max_threads_per_block())
    limit = _FIT[key]
    return want if want <= limit else max(32, limit // 32 * 32)


def shared_fits(N: int, dtype: str | np.dtype) -> bool:
    """Whether one sample fits the shared-memory fused kernel (4·N² values ≤ 48 KiB, ≤ KMAX sites a thread)."""
    nbytes = 4 * N * N * np.dtype(dtype).itemsize
    return nbytes <= SHARED_BYTES and N * N <= KMAX * block_threads(N, "fused-shared")


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

    Raises
    ------
    ConfigError
        ``fused`` is none of these, or asks for the shared-memory kernel where the sample does not fit.
    """
    if isinstance(fused, str):
        if fused not in MODES:
            raise ConfigError(f"fused must be None, True, False or one of {list(MODES)}, got {fused!r}")
        if fused == "fused-shared" and not shared_fits(N, dtype):
            raise ConfigError(f"fused: N={N} in {np.dtype(dtype).name} does not fit the shared-memory kernel "
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


def shared_sites(N: int) -> int:
    """Sites a thread of the fused-shared kernel updates per step at N×N (its ``sites`` variant)."""
    return -(-(N * N) // block_threads(N, "fused-shared"))


def fused_shared_threads(kern, args: tuple, N: int, sites: int) -> int:
    """Threads of a fused-shared launch; refuses (ResourceError) a block too small for ``sites`` a thread."""
    t = fit_threads(kern, args, block_threads(N, "fused-shared"))
    if N * N > sites * t:
        raise ResourceError(f"N={N}: the compiled shared-memory kernel launches at most {t} threads, fewer "
                            f"than the {math.ceil(N * N / sites)} it needs; use fused='fused-global'")
    return t
