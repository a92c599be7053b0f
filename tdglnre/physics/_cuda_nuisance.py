"""Thermal noise and pinning disorder of the CUDA backend (private; issue 13, see :mod:`.cuda`).

Same physics and the same random numbers as the CPU kernel:

* pinning disorder: site r of sample s uses (C1 + d1·ξ(r), C2 + d2·ξ(r)) in
  place of (C1, C2), with ξ the sample's field (``solver.disorder_field``,
  cast to the state's dtype) and (d1, d2) = ``kernels.disorder_coefficients``,
  the same operations as ``kernels._sweep``;
* thermal noise: after Euler step n (state n → n + 1) every component gets
  amp·g with g the deviate of the counter-based stream of :mod:`._thermal` for
  (key, n, site, component). :func:`normals` and :func:`normals32` are the
  stream's own integer hash and fdlibm/Cephes arithmetic (``_thermal.hash64``,
  ``radius``, ``cos_sin``, and the float32 variants), ``njit`` functions
  that numba also compiles for the CUDA target, so both backends run one
  definition of the stream. The fused kernels get the step of their first
  Euler step (``step0``) and count from it.

Kernels (:func:`nuisance_kernels`) are built per (dtype, disorder, thermal):
the flags are closure constants, so a variant without disorder or noise
compiles without those branches. The clean kernels of :mod:`.cuda` are not
touched by any of this: T = 0, δ = 0 runs them unchanged.
"""

from __future__ import annotations

import functools
from typing import Callable

import numba
import numpy as np
from numba import cuda, njit

from ._thermal import cos_sin, cos_sin32, hash64, radius, radius32

_U1 = np.uint64(1)
_U2 = np.uint64(2)
_U32 = np.uint64(32)
_LOW32 = np.uint64(0xFFFFFFFF)


@njit(inline="always")
def counter(step, N, site):
    """First stream counter 4·((step·N + i)·N + j) of site = i·N + j at ``step`` (uint64, as ``add_noise``)."""
    n = np.uint64(N)
    return ((np.uint64(step) * n) * n + np.uint64(site)) << _U2


@njit(inline="always")
def normals(key, step, N, site):
    """The four float64 standard normals ``_thermal.add_noise`` adds (times amp) at (step, site) under ``key``."""
    c = counter(step, N, site)
    k = np.uint64(key)
    r1 = radius(hash64(k, c))
    r2 = radius(hash64(k, c + _U1))
    h = hash64(k, c + _U2)
    c1, s1 = cos_sin(np.int64(h >> _U32))
    c2, s2 = cos_sin(np.int64(h & _LOW32))
    return r1 * c1, r1 * s1, r2 * c2, r2 * s2


@njit(inline="always")
def normals32(key, step, N, site):
    """float32 :func:`normals` (``_thermal.add_noise32``: the same words, float32 arithmetic)."""
    c = counter(step, N, site)
    k = np.uint64(key)
    r1 = radius32(hash64(k, c))
    r2 = radius32(hash64(k, c + _U1))
    h = hash64(k, c + _U2)
    c1, s1 = cos_sin32(np.int64(h >> _U32))
    c2, s2 = cos_sin32(np.int64(h & _LOW32))
    return r1 * c1, r1 * s1, r2 * c2, r2 * s2


@cuda.jit
def normals_kernel(keys, step, N, out):
    """out[s, c, site] = the float64 normal of (keys[s], step, site, c), for tests against ``thermal_normals``."""
    s = cuda.blockIdx.y
    site = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    if site < N * N:
        g0, g1, g2, g3 = normals(keys[s], step, N, site)
        out[s, 0, site] = g0
        out[s, 1, site] = g1
        out[s, 2, site] = g2
        out[s, 3, site] = g3


def dummies(dtype: np.dtype, S: int) -> tuple:
    """Host placeholders (xi, dco, amp, keys) of S samples for the features a kernel variant does not use.

    The kernels index every argument by sample before the compiled-out branch
    (a tiny row per sample: xi has one site).
    """
    return (np.zeros((S, 1), dtype=dtype), np.zeros((S, 2), dtype=dtype), np.zeros(S, dtype=dtype),
            np.zeros(S, dtype=np.uint64))


@functools.lru_cache(maxsize=None)
def nuisance_kernels(rhs_site: Callable, dtype_name: str, disorder: bool, thermal: bool, stage: int) -> dict:
    """The ``step``, ``fused-global`` and ``fused-shared`` kernels with disorder and/or thermal noise.

    ``rhs_site(a, N, i, j, co, ly, lx, c1, c2)`` is the backend's site update
    (:func:`.cuda._rhs_site`), ``stage`` the length of the shared-memory
    kernel's register staging array. Arguments added to the clean kernels':
    ``xi`` (S, N²) and ``dco`` (S, 2) in the state's dtype, ``amp`` (S,) in the
    state's dtype (``add_noise32`` rounds amp to float32), ``keys`` (S,)
    uint64, and the step of the first Euler step of the launch.
    """
    nbt = numba.from_dtype(np.dtype(dtype_name))
    draw = normals32 if dtype_name == "float32" else normals

    @cuda.jit(device=True)
    def c12(cs, xs, ds, site):
        if disorder:
            x = xs[site]
            return cs[4] + ds[0] * x, cs[5] + ds[1] * x
        return cs[4], cs[5]

    @cuda.jit(device=True)
    def kick(r1r, r1i, r2r, r2i, a, key, n, N, site):
        """The site's new values plus the thermal kick a·g of step n (unchanged without noise or at a = 0)."""
        if thermal:
            if a > 0:
                g0, g1, g2, g3 = draw(key, n, N, site)
                return r1r + a * g0, r1i + a * g1, r2r + a * g2, r2i + a * g3
        return r1r, r1i, r2r, r2i

    @cuda.jit
    def step(src, dst, co, ly, lx, xi, dco, amp, keys, n):
        s = cuda.blockIdx.y
        site = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
        N = ly.shape[2]
        NN = N * N
        if site < NN:
            i = site // N
            j = site - i * N
            cs = co[s]
            c1, c2 = c12(cs, xi[s], dco[s], site)
            r1r, r1i, r2r, r2i = rhs_site(src[s], N, i, j, cs, ly[s], lx[s], c1, c2)
            r1r, r1i, r2r, r2i = kick(r1r, r1i, r2r, r2i, amp[s], keys[s], n, N, site)
            d = dst[s]
            d[site] = r1r
            d[NN + site] = r1i
            d[2 * NN + site] = r2r
            d[3 * NN + site] = r2i

    @cuda.jit
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
                i = site // N
                j = site - i * N
                c1, c2 = c12(cs, xs, ds, site)
                r1r, r1i, r2r, r2i = rhs_site(src, N, i, j, cs, lys, lxs, c1, c2)
                r1r, r1i, r2r, r2i = kick(r1r, r1i, r2r, r2i, am, key, step0 + k, N, site)
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

    @cuda.jit
    def fused_shared(states, co, ly, lx, n_steps, xi, dco, amp, keys, step0):
        s = cuda.blockIdx.x
        tid = cuda.threadIdx.x
        T = cuda.blockDim.x
        N = ly.shape[2]
        NN = N * N
        buf = cuda.shared.array(0, dtype=nbt)
        tmp = cuda.local.array(stage, dtype=nbt)
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
        cuda.syncthreads()
        for k in range(n_steps):
            q = 0
            for site in range(tid, NN, T):
                i = site // N
                j = site - i * N
                c1, c2 = c12(cs, xs, ds, site)
                r1r, r1i, r2r, r2i = rhs_site(buf, N, i, j, cs, lys, lxs, c1, c2)
                r1r, r1i, r2r, r2i = kick(r1r, r1i, r2r, r2i, am, key, step0 + k, N, site)
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

    return {"step": step, "fused-global": fused_global, "fused-shared": fused_shared}
