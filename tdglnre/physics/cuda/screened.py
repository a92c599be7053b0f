"""CUDA kernels of the screened model (λ < ∞): ψ and the link field a (private; driver: :class:`.run.ScreenedBatch`).

The update is the CPU kernel's (:mod:`tdglnre.physics.screened`, docs/physics.md,
"Screening (λ < ∞)"), built from the same ``@njit(inline="always")`` functions,
which numba compiles a second time for the device:

* link factors e^{−i(θ⁰+a)}: ``screened._poly_tiny`` / ``_poly`` / ``_sincos``
  of a and ``screened._rotate`` by the background ``bg``
  (``screened.background_links``), the seam included; the plaquette fluxes by
  ``screened.plaquette``;
* ψ: ``screened.transported_sum`` (the four links through
  ``kernels.transport`` / ``transport_back``) and ``kernels._site``, with
  ``kernels._local_c`` for pinning disorder and the CPU's thermal stream
  (:mod:`.noise`) for the kicks of ψ and, after the link update, of a;
* a: ``observables.link_current`` (``screened._current``) and
  ``screened.link_update``; the health check of a sums
  ``screened.field_health_term`` in float64 and fails a sample whose sum is not
  finite (NONFINITE), as ``screened._check``.

Only the gathering differs from the CPU sweep. The CPU picks the link-factor
polynomial per row (all |a| of a row below ``_TINY``: ``_poly_tiny``; below
``_SMALL``: ``_poly``; else ``_sincos``); a device thread sees one site, so it
picks per site with the same thresholds. Where a row mixes sizes the two differ
by round-off (~1e-17 relative), not in the model.

One kernel mode, ``step``: per Euler step one launch forms the link factors and
fluxes of every link (``links``), a second updates every site (``sweep``); the
state of a sample is a flat row of 6·N² values (ψ's four components, then a_x,
a_y), viewed as (6, N, N) by the kernels, so the health, snapshot and copy
kernels of the fixed field work on it unchanged.
"""

from __future__ import annotations

import functools

import numba
import numpy as np
from numba import cuda

from ...errors import ConfigError
from .. import kernels as K
from .. import screened as sc
from . import kernels as dk
from . import noise as _cn

#: Kernel modes the screened model runs (one launch pair per Euler step).
SCREENED_MODES = ("step",)


def screened_mode(fused) -> str:
    """The kernel mode of a screened run: ``step``; a fused kernel asked for by name or ``True`` is refused."""
    if fused is None or fused is False or fused == "step":
        return "step"
    raise ConfigError(f"the screened model (lam < inf) runs the 'step' kernel on the GPU; fused={fused!r} "
                      "is for the fixed field (lam = inf) only")


@cuda.jit(device=True)
def _factors(x, y):
    """(cos, sin) of a_x = x and a_y = y (float64) by the CPU's polynomials, chosen by the site's larger |a|."""
    if abs(x) < sc._TINY and abs(y) < sc._TINY:
        cx, sx = sc._poly_tiny(x)
        ca, sa = sc._poly_tiny(y)
    elif abs(x) < sc._SMALL and abs(y) < sc._SMALL:
        cx, sx = sc._poly(x)
        ca, sa = sc._poly(y)
    else:
        cx, sx = sc._sincos(x)
        ca, sa = sc._sincos(y)
    return cx, sx, ca, sa


@cuda.jit
def links_kernel(st, lk, phi, bg, co):
    """lk[s] = (cos θ_x, sin θ_x, cos θ_y, sin θ_y) of θ⁰ + a and phi[s] = Φ, one thread per site (``_links``)."""
    s = cuda.blockIdx.y
    site = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    N = st.shape[2]
    if site < N * N:
        i = site // N
        j = site - i * N
        ip = i + 1 if i < N - 1 else 0
        jp = j + 1 if j < N - 1 else 0
        a = st[s]
        b = bg[s]
        out = lk[s]
        x = a[sc.AX, i, j]
        y = a[sc.AY, i, j]
        cx, sx, ca, sa = _factors(np.float64(x), np.float64(y))
        out[0, i, j] = cx
        out[1, i, j] = sx
        out[2, i, j], out[3, i, j] = sc._rotate(b[0, j], b[1, j], ca, sa)
        if j == N - 1:  # the seam: the stored (dtype) factors turned by row i's seam phase, as on the CPU
            out[0, i, j], out[1, i, j] = sc._rotate(b[2, i], b[3, i], out[0, i, j], out[1, i, j])
        phi[s, i, j] = sc.plaquette(co[s, sc.FLUX], x, a[sc.AY, i, jp], a[sc.AX, ip, j], y)


@functools.lru_cache(maxsize=None)
def sweep_kernel(dtype_name: str, disorder: bool = False, thermal: bool = False):
    """The site update of the screened model (ψ and a), one thread per site; nuisance features as closure flags.

    Arguments: ``src``, ``dst`` (S, 6, N, N), ``co`` (S, ``screened.N_COEF``),
    ``lk`` (S, 4, N, N), ``phi`` (S, N, N) of ``src`` (:func:`links_kernel`),
    ``xi`` (S, N, N), ``dco`` (S, 2), ``amp`` (S,), ``keys`` (S,) uint64 and the
    Euler step n (placeholders for compiled-out features, :func:`.kernels.placeholders`).
    """
    draw = _cn.normals32 if dtype_name == "float32" else _cn.normals
    draw_links = _cn.link_normals32 if dtype_name == "float32" else _cn.link_normals

    @cuda.jit
    def sweep(src, dst, co, lk, phi, xi, dco, amp, keys, n):
        s = cuda.blockIdx.y
        site = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
        N = src.shape[2]
        if site >= N * N:
            return
        i = site // N
        j = site - i * N
        ip = i + 1 if i < N - 1 else 0
        im = i - 1 if i > 0 else N - 1
        jr = j + 1 if j < N - 1 else 0
        jl = j - 1 if j > 0 else N - 1
        a = src[s]
        o = dst[s]
        cs = co[s]
        lks = lk[s]
        ph = phi[s]
        if disorder:
            ds = dco[s]
            f1, f2 = K._local_c(cs[K.C1], cs[K.C2], ds[0], ds[1], xi[s], i, j)
        else:
            f1, f2 = cs[K.C1], cs[K.C2]
        cu, su, cd, sd = lks[2, i, j], lks[3, i, j], lks[2, im, j], lks[3, im, j]
        cr, sr, cl, sl = lks[0, i, j], lks[1, i, j], lks[0, i, jl], lks[1, i, jl]
        n1r, n1i = sc.transported_sum(cu, su, a[0, ip, j], a[1, ip, j], cd, sd, a[0, im, j], a[1, im, j],
                                      cr, sr, a[0, i, jr], a[1, i, jr], cl, sl, a[0, i, jl], a[1, i, jl])
        n2r, n2i = sc.transported_sum(cu, su, a[2, ip, j], a[3, ip, j], cd, sd, a[2, im, j], a[3, im, j],
                                      cr, sr, a[2, i, jr], a[3, i, jr], cl, sl, a[2, i, jl], a[3, i, jl])
        p1r, p1i, p2r, p2i = a[0, i, j], a[1, i, j], a[2, i, j], a[3, i, j]
        r1r, r1i, r2r, r2i = K._site(cs[K.KEEP], cs[K.K11], cs[K.K22], cs[K.K12], f1, f2, cs[K.B1], cs[K.B2],
                                     cs[K.E], p1r, p1i, p2r, p2i, n1r, n1i, n2r, n2i)
        o[0, i, j] = r1r
        o[1, i, j] = r1i
        o[2, i, j] = r2r
        o[3, i, j] = r2i
        if thermal:  # the CPU kicks the stored new values: dst += amp·g
            am = amp[s]
            if am > 0:
                g0, g1, g2, g3 = draw(keys[s], n, N, site)
                o[0, i, j] += am * g0
                o[1, i, j] += am * g1
                o[2, i, j] += am * g2
                o[3, i, j] += am * g3
        jd1, jd2, jnu, fc, keep = cs[sc.JD1], cs[sc.JD2], cs[sc.JNU], cs[sc.FC], cs[K.KEEP]
        jx = sc._current(p1r, p1i, p2r, p2i, a[0, i, jr], a[1, i, jr], a[2, i, jr], a[3, i, jr], cr, sr,
                         jd1, jd2, jnu)
        jy = sc._current(p1r, p1i, p2r, p2i, a[0, ip, j], a[1, ip, j], a[2, ip, j], a[3, ip, j], cu, su,
                         jd1, jd2, jnu)
        o[sc.AX, i, j] = sc.link_update(keep, a[sc.AX, i, j], jx, fc, ph[i, j], ph[im, j])
        o[sc.AY, i, j] = sc.link_update(keep, a[sc.AY, i, j], jy, fc, ph[i, jl], ph[i, j])
        if thermal:  # a's Langevin kick, as screened._evolve_one: amp·KICK·g
            am = amp[s]
            if am > 0:
                gx, gy = draw_links(keys[s], n, N, site)
                ka = am * cs[sc.KICK]
                o[sc.AX, i, j] += ka * gx
                o[sc.AY, i, j] += ka * gy

    return sweep


@functools.lru_cache(maxsize=None)
def field_health_kernel(threads: int):
    """NaN/Inf in a: a block per sample forms Σ (a_x² + a_y²) in float64 (fixed tree) and fails a non-finite one.

    Runs after :func:`.kernels.health_kernel` at every check point: a sample
    that passed ψ's check and has a non-finite sum gets ``status[s] = step``
    and code NONFINITE, the outcome of ``screened._check`` on the CPU.
    """

    @cuda.jit
    def kernel(cur, N, step, status, codes, values):
        s = cuda.blockIdx.x
        tid = cuda.threadIdx.x
        NN = N * N
        part = cuda.shared.array(threads, dtype=numba.float64)
        c = cur[s]
        tot = 0.0
        for site in range(tid, NN, threads):
            tot += sc.field_health_term(np.float64(c[sc.AX * NN + site]), np.float64(c[sc.AY * NN + site]))
        part[tid] = tot
        cuda.syncthreads()
        stride = threads // 2
        while stride > 0:
            if tid < stride:
                part[tid] += part[tid + stride]
            cuda.syncthreads()
            stride //= 2
        if tid == 0 and status[s] < 0:
            t = part[0]
            if not (t - t == 0):
                status[s] = step
                codes[s] = K.NONFINITE
                values[s] = 0.0

    return kernel
