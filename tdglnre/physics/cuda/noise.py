"""The thermal-noise stream on the CUDA device (issue 13, see :mod:`.kernels`).

Same random numbers as the CPU kernel: after Euler step n (state n → n + 1)
every component of site (i, j) gets amp·g (a screened state's a_x, a_y:
amp·KICK·g from :func:`link_normals`) with g the deviate of the
counter-based stream of :mod:`.._thermal` for (key, n, site, component).
:func:`normals` and :func:`normals32` are the stream's own
``_thermal.site_normals`` / ``site_normals32`` (the one definition of the word
layout: integer hash, fdlibm/Cephes arithmetic), ``njit`` functions that numba
also compiles for the CUDA target, at the stream counter of :func:`counter`.

Identical normals on both backends hold under numba's CUDA simulator only: on
a real GPU NVVM contracts the polynomials' multiply-adds into FMAs, so the
device normals differ from the CPU stream by a few ulp (docs/gpu.md).

Pinning disorder needs no device function of its own: the Euler kernels
shift C1, C2 by dco·ξ(r) exactly as ``kernels._sweep`` does.
"""

from __future__ import annotations

import numpy as np
from numba import cuda, njit

from .._thermal import link_normals as _link_normals, link_normals32 as _link_normals32, site_normals, site_normals32

_U2 = np.uint64(2)


@njit(inline="always")
def counter(step, N, site):
    """First stream counter 4·((step·N + i)·N + j) of site = i·N + j at ``step`` (uint64, as ``add_noise``)."""
    n = np.uint64(N)
    return ((np.uint64(step) * n) * n + np.uint64(site)) << _U2


@njit(inline="always")
def normals(key, step, N, site):
    """The four float64 standard normals ``_thermal.add_noise`` adds (times amp) at (step, site) under ``key``."""
    return site_normals(np.uint64(key), counter(step, N, site))


@njit(inline="always")
def normals32(key, step, N, site):
    """float32 :func:`normals` (``_thermal.add_noise32``: the same words, float32 arithmetic)."""
    return site_normals32(np.uint64(key), counter(step, N, site))


@njit(inline="always")
def link_normals(key, step, N, site):
    """The two float64 normals (a_x, a_y) ``_thermal.add_link_noise`` adds at (step, site) under ``key``."""
    return _link_normals(np.uint64(key), counter(step, N, site))


@njit(inline="always")
def link_normals32(key, step, N, site):
    """float32 :func:`link_normals`."""
    return _link_normals32(np.uint64(key), counter(step, N, site))


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
