"""The thermal-noise stream of the numba kernels (private; see :mod:`.kernels`).

docs/physics.md, "Thermal noise". The stream's normals come from SplitMix64
hashes of integer counters through Box–Muller. numba has no vectorised libm
here (no SVML), and a loop that calls scalar ``log``/``cos``/``sin`` does not
vectorise, so this module spells the three out as straight-line arithmetic
(fdlibm's polynomials, error below 1 ulp in float64) on inputs whose range
reduction is exact by construction: ln u for u = (m + ½)·2⁻⁵², m a 52-bit
integer, and cos/sin of 2π·t/2³² for a 32-bit integer t. With only integer
ops, float ops, selects and bit casts inlined, LLVM vectorises the noise loop.

The functions use only what numba also compiles for the CUDA target
(``math.sqrt``, not ``np.sqrt``): the CUDA backend calls :func:`hash64`,
:func:`radius`, :func:`cos_sin` and the float32 variants from its kernels
(:mod:`.cuda.noise`), so both backends draw the same stream.

numba's on-disk cache does not follow imports: the cached ``kernels._evolve_one``
embeds the kick, so after editing this module touch kernels.py (or clear the
cache) before measuring.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_U12 = np.uint64(12)
_U32 = np.uint64(32)
_LOW32 = np.uint64(0xFFFFFFFF)
_LOW52 = np.int64((1 << 52) - 1)
_ONE_BITS = np.int64(1023 << 52)  # bits of 1.0
_TWO_M52 = 2.0 ** -52
_SQRT2 = 1.4142135623730951
_LN2_HI = 6.93147180369123816490e-01  # fdlibm e_log.c
_LN2_LO = 1.90821492927058770002e-10
_LG1, _LG2 = 6.666666666666735130e-01, 3.999999999940941908e-01
_LG3, _LG4 = 2.857142874366239149e-01, 2.222219843214978396e-01
_LG5, _LG6, _LG7 = 1.818357216161805012e-01, 1.531383769920937332e-01, 1.479819860511658591e-01
_S1, _S2, _S3 = -1.66666666666666324348e-01, 8.33333333332248946124e-03, -1.98412698298579493134e-04  # k_sin.c
_S4, _S5, _S6 = 2.75573137070700676789e-06, -2.50507602534068634195e-08, 1.58969099521155010221e-10
_C1, _C2, _C3 = 4.16666666666666019037e-02, -1.38888888888741095749e-03, 2.48015872894767294178e-05  # k_cos.c
_C4, _C5, _C6 = -2.75573143513906633035e-07, 2.08757232129817482790e-09, -1.13596475577881948265e-11
_ANGLE = 2.0 * np.pi / 2.0**32  # radians per unit of the 32-bit angle


def _bitcast(src, dst, llvm_dst):
    """An intrinsic reinterpreting the bits of a ``src`` value as ``dst`` (same width; LLVM ``bitcast``)."""
    @intrinsic
    def cast(typingctx, x):
        if x != src:
            return None
        return dst(src), lambda ctx, b, sig, args: b.bitcast(args[0], llvm_dst)
    return cast


#: The IEEE bits of a float64 as int64, and back.
_bits = _bitcast(types.float64, types.int64, ir.IntType(64))
_from_bits = _bitcast(types.int64, types.float64, ir.DoubleType())


@njit(inline="always")
def mix64(z):
    """SplitMix64's finaliser: a bijection of uint64 with full avalanche."""
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@njit(inline="always")
def hash64(key, counter):
    """H(c) = mix(mix(c + γ) XOR key): the stream's 64-bit word of ``counter`` (uint64) under ``key``."""
    return mix64(mix64(counter + GOLDEN) ^ key)


@njit(inline="always")
def radius(h):
    """√(−2 ln u) for u = ((h >> 12) + ½)·2⁻⁵² ∈ (0, 1) (exact, never 0 or 1): Box–Muller's radius."""
    u = (np.float64(np.int64(h >> _U12)) + 0.5) * _TWO_M52
    b = _bits(u)
    k = np.float64((b >> 52) - 1023)
    x = _from_bits((b & _LOW52) | _ONE_BITS)  # u = x·2^k, x in [1, 2)
    big = x > _SQRT2
    x = x * 0.5 if big else x
    k = k + 1.0 if big else k
    f = x - 1.0  # ln u = k ln 2 + ln(1 + f), f in [√½ − 1, √2 − 1]: fdlibm's log
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    r = z * (_LG1 + w * (_LG3 + w * (_LG5 + w * _LG7))) + w * (_LG2 + w * (_LG4 + w * _LG6))
    hfsq = 0.5 * f * f
    ln = k * _LN2_HI - ((hfsq - (s * (hfsq + r) + k * _LN2_LO)) - f)
    return math.sqrt(-2.0 * ln)


@njit(inline="always")
def cos_sin(t):
    """(cos θ, sin θ) of θ = 2π·t/2³² for an integer 0 <= t < 2³² (int64)."""
    q4 = (t + (1 << 29)) >> 30  # nearest quarter turn, 0..4
    x = np.float64(t - (q4 << 30)) * _ANGLE  # |x| <= π/4, exact reduction
    q = q4 & 3
    z = x * x
    w = z * z
    sn = x + x * z * (_S1 + z * (_S2 + z * _S3) + z * w * (_S4 + z * (_S5 + z * _S6)))
    r = z * (_C1 + z * (_C2 + z * _C3)) + w * w * (_C4 + z * (_C5 + z * _C6))
    hz = 0.5 * z
    v = 1.0 - hz
    cs = v + (((1.0 - v) - hz) + z * r)
    c = sn if q & 1 else cs  # rotate by q quarter turns
    s = cs if q & 1 else sn
    c = -c if (q + 1) & 2 else c
    s = -s if q & 2 else s
    return c, s


# float32 variants (Cephes' logf, sinf and cosf polynomials, error ~1e-7): the float32
# kernel draws the same words and turns them into float32 normals with 16 lanes
_F = np.float32
_LOW23 = np.int32((1 << 23) - 1)
_ONE_BITS32 = np.int32(127 << 23)
_HALF32, _ONE32, _M2_32 = _F(0.5), _F(1.0), _F(-2.0)
_TWO_M52_32 = _F(2.0 ** -52)
_SQRT2_32 = _F(_SQRT2)
_LN2_HI32, _LN2_LO32 = _F(0.693359375), _F(-2.12194440e-4)
_P = tuple(_F(v) for v in (7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1, 1.4249322787e-1,
                           -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1))
_SF = tuple(_F(v) for v in (-1.9515295891e-4, 8.3321608736e-3, -1.6666654611e-1))
_CF = tuple(_F(v) for v in (2.443315711809948e-5, -1.388731625493765e-3, 4.166664568298827e-2))
_ANGLE32 = _F(_ANGLE)


#: The IEEE bits of a float32 as int32, and back.
_bits32 = _bitcast(types.float32, types.int32, ir.IntType(32))
_from_bits32 = _bitcast(types.int32, types.float32, ir.FloatType())


@njit(inline="always")
def radius32(h):
    """float32 :func:`radius` of the same word (u rounded to 24 bits, never 0)."""
    u = (_F(np.int64(h >> _U12)) + _HALF32) * _TWO_M52_32
    b = _bits32(u)
    k = _F((b >> 23) - 127)
    x = _from_bits32(np.int32((b & _LOW23) | _ONE_BITS32))
    big = x > _SQRT2_32
    x = x * _HALF32 if big else x
    k = k + _ONE32 if big else k
    f = x - _ONE32
    z = f * f
    p = _P[0]
    for c in _P[1:]:
        p = p * f + c
    ln = f + (f * z * p + k * _LN2_LO32 - _HALF32 * z) + k * _LN2_HI32
    return math.sqrt(_M2_32 * ln)


@njit(inline="always")
def cos_sin32(t):
    """float32 :func:`cos_sin`."""
    q4 = (t + (1 << 29)) >> 30
    x = _F(t - (q4 << 30)) * _ANGLE32
    q = q4 & 3
    z = x * x
    sn = x + x * z * ((_SF[0] * z + _SF[1]) * z + _SF[2])
    cs = _ONE32 - _HALF32 * z + z * z * ((_CF[0] * z + _CF[1]) * z + _CF[2])
    c = sn if q & 1 else cs
    s = cs if q & 1 else sn
    c = -c if (q + 1) & 2 else c
    s = -s if q & 2 else s
    return c, s


# ----------------------------------------------------------------- the stream
_THERMAL_TAG = np.uint64(0x544845524D414C31)  # b"THERMAL1": separates the key from other uses of the hash
_U1 = np.uint64(1)
_U2 = np.uint64(2)


@njit(cache=True)
def _noise_key(seed, index):
    a = mix64(np.uint64(seed) + GOLDEN)
    b = mix64((np.uint64(index) ^ _THERMAL_TAG) + GOLDEN + GOLDEN)
    return mix64(a + b)


def noise_key(seed: int, index: int) -> np.uint64:
    """64-bit key of sample ``index``'s thermal-noise stream in run ``seed`` (both >= 0)."""
    return np.uint64(_noise_key(np.uint64(seed), np.uint64(index)))


@njit(inline="always")
def site_normals(key, c):
    """The four float64 normals of the site whose first stream counter is ``c`` (the word layout, once).

    Words H(c), H(c + 1) are the radii of band 1 and band 2, H(c + 2) holds the
    two angles (high and low 32 bits); (Re ψ_b, Im ψ_b) get r_b·(cos θ_b, sin θ_b).
    Both backends draw through this function (:func:`add_noise` here, the CUDA
    kernels through ``cuda.noise.normals``).
    """
    r1 = radius(hash64(key, c))
    r2 = radius(hash64(key, c + _U1))
    h = hash64(key, c + _U2)
    c1, s1 = cos_sin(np.int64(h >> _U32))
    c2, s2 = cos_sin(np.int64(h & _LOW32))
    return r1 * c1, r1 * s1, r2 * c2, r2 * s2


@njit(inline="always")
def site_normals32(key, c):
    """float32 :func:`site_normals`: the same words, Cephes float32 arithmetic."""
    r1 = radius32(hash64(key, c))
    r2 = radius32(hash64(key, c + _U1))
    h = hash64(key, c + _U2)
    c1, s1 = cos_sin32(np.int64(h >> _U32))
    c2, s2 = cos_sin32(np.int64(h & _LOW32))
    return r1 * c1, r1 * s1, r2 * c2, r2 * s2


_U3 = np.uint64(3)
_HIGH32 = np.uint64(0xFFFFFFFF00000000)


@njit(inline="always")
def link_normals(key, c):
    """The two float64 normals of the links a_x, a_y of the site whose first stream counter is ``c``.

    Word H(c + 3), the one the site's ψ normals leave unused: its high 32 bits
    give the radius (:func:`radius` of the word with its low 32 bits cleared,
    u = (m·2²⁰ + ½)·2⁻⁵² for the 32-bit m), its low 32 bits the angle;
    (g_x, g_y) = r·(cos θ, sin θ). Screened runs only (docs/physics.md,
    "Thermal noise"); both backends draw through it.
    """
    h = hash64(key, c + _U3)
    r = radius(h & _HIGH32)
    cs, sn = cos_sin(np.int64(h & _LOW32))
    return r * cs, r * sn


@njit(inline="always")
def link_normals32(key, c):
    """float32 :func:`link_normals`: the same word, Cephes float32 arithmetic."""
    h = hash64(key, c + _U3)
    r = radius32(h & _HIGH32)
    cs, sn = cos_sin32(np.int64(h & _LOW32))
    return r * cs, r * sn


@njit(inline="always")
def _kick_links(state, amp, key, step, normals):
    """state[4 (a_x), 5 (a_y), i, j] += amp·g, g the stream's link normals (``normals``: :func:`link_normals` or
    its float32 twin)."""
    N = state.shape[1]
    for i in range(N):
        base = (np.uint64(step) * np.uint64(N) + np.uint64(i)) * np.uint64(N)
        ax = state[4, i]
        ay = state[5, i]
        for j in range(N):
            gx, gy = normals(key, (base + np.uint64(j)) << _U2)
            ax[j] += amp * gx
            ay[j] += amp * gy


@njit(cache=True, nogil=True, error_model="numpy")
def add_link_noise(state, amp, ratio, key, step):
    """state[a_x / a_y, i, j] += amp·ratio·g of a screened state (6, N, N): the links' Langevin kick at ``step``
    (``amp`` ψ's kick, ``ratio`` the coefficient ``screened.KICK``)."""
    _kick_links(state, amp * ratio, np.uint64(key), step, link_normals)


@njit(cache=True, nogil=True, error_model="numpy")
def add_link_noise32(state, amp, ratio, key, step):
    """:func:`add_link_noise` of a float32 state (amp and ratio rounded to float32, then multiplied)."""
    _kick_links(state, np.float32(amp) * np.float32(ratio), np.uint64(key), step, link_normals32)


def kick_links(state, amp, ratio, key, step):
    """Add step ``step``'s Langevin kick of a (amp·ratio·g) to a screened ``state`` in place, by dtype."""
    (add_link_noise32 if state.dtype == np.float32 else add_link_noise)(state, amp, ratio, key, step)


@overload(kick_links, jit_options={"nogil": True})
def _kick_links_overload(state, amp, ratio, key, step):
    if state.dtype == types.float32:
        return lambda state, amp, ratio, key, step: add_link_noise32(state, amp, ratio, key, step)
    return lambda state, amp, ratio, key, step: add_link_noise(state, amp, ratio, key, step)


@njit(cache=True)
def link_thermal_normals(key, step, N):
    """The (2, N, N) standard normals (a_x, a_y) :func:`add_link_noise` uses at ``step`` (tests, references)."""
    out = np.zeros((6, N, N))
    add_link_noise(out, 1.0, 1.0, key, step)
    return out[4:].copy()


@njit(inline="always")
def _kick_rows(state, amp, key, step, normals):
    """state[c, i, j] += amp·g, g the stream's normals (``normals``: :func:`site_normals` or its float32 twin)."""
    N = state.shape[1]
    for i in range(N):
        base = (np.uint64(step) * np.uint64(N) + np.uint64(i)) * np.uint64(N)
        a0 = state[0, i]
        a1 = state[1, i]
        a2 = state[2, i]
        a3 = state[3, i]
        for j in range(N):
            g0, g1, g2, g3 = normals(key, (base + np.uint64(j)) << _U2)
            a0[j] += amp * g0
            a1[j] += amp * g1
            a2[j] += amp * g2
            a3[j] += amp * g3


@njit(cache=True, nogil=True, error_model="numpy")  # error_model: no ZeroDivisionError branch (2 + f > 0)
def add_noise(state, amp, key, step):
    """state[c, i, j] += amp·g with g ~ N(0, 1) keyed by (key, step, i, j, c) (float64 state).

    Site s = (step·N + i)·N + j takes the words H(4s), H(4s + 1) (radii of
    band 1, band 2) and H(4s + 2) (its high and low 32 bits: the two angles);
    (Re ψ_b, Im ψ_b) = r_b·(cos θ_b, sin θ_b). One loop over j without calls
    (:func:`_kick_rows` and the normals are inlined): it vectorises.
    """
    _kick_rows(state, amp, np.uint64(key), step, site_normals)


@njit(cache=True, nogil=True, error_model="numpy")
def add_noise32(state, amp, key, step):
    """:func:`add_noise` of a float32 state: the same words, float32 normals and kick (amp rounded to float32)."""
    _kick_rows(state, np.float32(amp), np.uint64(key), step, site_normals32)


def kick(state, amp, key, step):
    """Add step ``step``'s thermal kick to ``state`` in place: :func:`add_noise` or :func:`add_noise32` by dtype."""
    (add_noise32 if state.dtype == np.float32 else add_noise)(state, amp, key, step)


@overload(kick, jit_options={"nogil": True})
def _kick(state, amp, key, step):
    if state.dtype == types.float32:
        return lambda state, amp, key, step: add_noise32(state, amp, key, step)
    return lambda state, amp, key, step: add_noise(state, amp, key, step)


@njit(cache=True)
def thermal_normals(key, step, N):
    """The (4, N, N) standard normals :func:`add_noise` uses at ``step`` (for tests and references)."""
    out = np.zeros((4, N, N))
    add_noise(out, 1.0, key, step)
    return out
