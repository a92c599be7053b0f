"""Numba kernels of the two-band TDGL solver (private; see :mod:`.solver`).

State layout: one real array per sample, ``state[c, i, j]`` with components
c = (Re ψ1, Im ψ1, Re ψ2, Im ψ2). This is also the ordering of the real
coordinates z used by the Hessian (docs/physics.md, "Lattice free energy").

The Landau-gauge links reduce to two 1-D tables per sample (see
:func:`tdglnre.physics.lattice.seam_phases`): ``ly[0/1, j]`` = cos/sin θ_y of
column j and ``lx[0/1, i]`` = cos/sin of the seam phase of row i.

One sweep computes, for every site,

    dst = keep·ψ + K11·n1 + K12·n2 − (C1 + B1|ψ1|²)·ψ1 + E·ψ2       (band 1)

where n_b = Σ_μ [U_μ ψ_b(r+μ̂) + U_μ* ψ_b(r−μ̂)] and the coefficients fold in
the time step (or the gradient's scale) — see :func:`coefficients`. With
keep = 1, scale = dt this is one explicit Euler step; with keep = 0,
scale = −2h² it is the real gradient ∂F/∂z. Dynamics and gradient therefore
share one code path.

No fastmath: results are bitwise identical whatever the thread count, the
batch composition or the memory alignment (vector and scalar loop bodies do
the same IEEE operations in the same order).

Nuisance physics (docs/physics.md, "Nuisance physics") enters through
optional arguments that default to None: pinning disorder as a per-site
shift of C1, C2 (:func:`_sweep`'s ``xi``, ``dco``) and thermal noise as a
counter-based Gaussian kick after each step (:func:`_add_noise`). numba
compiles one variant per combination and prunes the ``is None`` branches at
compile time, so the clean variant does the clean kernel's arithmetic and
its results are bitwise unchanged.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange, types
from numba.extending import overload

from ._memory import njit_noalias

# coefficient slots of the per-sample coefficient vector
KEEP, K11, K22, K12, C1, C2, B1, B2, E = range(9)
N_COEF = 9


def coefficients(
    D: tuple[float, float],
    alpha: tuple[float, float],
    beta: tuple[float, float],
    h: float,
    eta: np.ndarray,
    nu: np.ndarray,
    *,
    scale: float,
    keep: float,
    dtype=np.float64,
) -> np.ndarray:
    """Per-sample coefficient vectors (S, 9) of :func:`_sweep`.

    ``scale`` multiplies the right-hand side ∂_t ψ (dt for an Euler step,
    −2h² for the real gradient); ``keep`` multiplies ψ itself (1 or 0).
    """
    eta = np.atleast_1d(np.asarray(eta, dtype=np.float64))
    nu = np.atleast_1d(np.asarray(nu, dtype=np.float64))
    S = eta.shape[0]
    ih2 = 1.0 / (h * h)
    co = np.empty((S, N_COEF), dtype=np.float64)
    co[:, KEEP] = keep
    co[:, K11] = scale * D[0] * ih2
    co[:, K22] = scale * D[1] * ih2
    co[:, K12] = scale * nu * ih2
    co[:, C1] = scale * (4.0 * D[0] * ih2 + alpha[0])
    co[:, C2] = scale * (4.0 * D[1] * ih2 + alpha[1])
    co[:, B1] = scale * beta[0]
    co[:, B2] = scale * beta[1]
    co[:, E] = scale * (eta - 4.0 * nu * ih2)
    return co.astype(dtype)


def link_tables(N: int, L: float, n_v: np.ndarray, dtype=np.float64) -> tuple[np.ndarray, np.ndarray]:
    """cos/sin tables (S, 2, N) of the y-link and seam phases per sample."""
    from .lattice import seam_phases

    n_v = np.atleast_1d(n_v)
    S = n_v.shape[0]
    ly = np.empty((S, 2, N), dtype=np.float64)
    lx = np.empty((S, 2, N), dtype=np.float64)
    for s in range(S):
        phi_y, phi_seam = seam_phases(N, L, int(n_v[s]))
        ly[s, 0], ly[s, 1] = np.cos(phi_y), np.sin(phi_y)
        lx[s, 0], lx[s, 1] = np.cos(phi_seam), np.sin(phi_seam)
    return ly.astype(dtype), lx.astype(dtype)


@njit(inline="always")
def _site(keep, k11, k22, k12, c1, c2, b1, b2, e, p1r, p1i, p2r, p2i, n1r, n1i, n2r, n2i):
    """New values at one site from its values and transported neighbour sums."""
    f1 = c1 + b1 * (p1r * p1r + p1i * p1i)
    f2 = c2 + b2 * (p2r * p2r + p2i * p2i)
    o1r = keep * p1r + k11 * n1r + k12 * n2r - f1 * p1r + e * p2r
    o1i = keep * p1i + k11 * n1i + k12 * n2i - f1 * p1i + e * p2i
    o2r = keep * p2r + k22 * n2r + k12 * n1r - f2 * p2r + e * p1r
    o2i = keep * p2i + k22 * n2i + k12 * n1i - f2 * p2i + e * p1i
    return o1r, o1i, o2r, o2i


@njit(inline="always")
def transport(c, s, vr, vi):
    """U v for the link U = c − i s: a neighbour's value carried along the link to the site."""
    return c * vr + s * vi, c * vi - s * vr


@njit(inline="always")
def transport_back(c, s, vr, vi):
    """U* v for the link U = c − i s: the value of the link's start carried back from its end."""
    return c * vr - s * vi, c * vi + s * vr


@njit(inline="always")
def _vertical(c, s, ur, ui, dr, di):
    """U ψ(up) + U* ψ(down) for U = c − i s."""
    return c * (ur + dr) + s * (ui - di), c * (ui + di) - s * (ur - dr)


#: ``side`` of :func:`neighbour_sums`: an interior column, the seam's left column j = 0, its right column j = N−1.
INTERIOR, SEAM_LEFT, SEAM_RIGHT = 0, -1, 1


@njit(inline="always")
def neighbour_sums(cy, sy, cx, sx, side,
                   u1r, u1i, d1r, d1i, u2r, u2i, d2r, d2i, r1r, l1r, r1i, l1i, r2r, l2r, r2i, l2i):
    """Covariant neighbour sums (n1r, n1i, n2r, n2i) of one site, the seam included.

    The one definition of the stencil for both backends: the CPU sweep calls it
    with a constant ``side`` (the branches fold away after inlining, so the
    interior loop stays branch-free and vectorises) and the CUDA site update
    (:mod:`.cuda.kernels`) with the site's own. ``u``/``d`` are the values of
    the site above (i+1) and below (i−1), ``r``/``l`` those of the right and
    left neighbours; (cy, sy) the column's y link, (cx, sx) the row's seam
    phase. At j = 0 the left neighbour crosses the seam (U* = cx + i sx), at
    j = N−1 the right one (U = cx − i sx).
    """
    v1r, v1i = _vertical(cy, sy, u1r, u1i, d1r, d1i)
    v2r, v2i = _vertical(cy, sy, u2r, u2i, d2r, d2i)
    if side < 0:
        t1r, t1i = transport_back(cx, sx, l1r, l1i)
        t2r, t2i = transport_back(cx, sx, l2r, l2i)
        return v1r + (r1r + t1r), v1i + (r1i + t1i), v2r + (r2r + t2r), v2i + (r2i + t2i)
    if side > 0:
        t1r, t1i = transport(cx, sx, r1r, r1i)
        t2r, t2i = transport(cx, sx, r2r, r2i)
        return v1r + (t1r + l1r), v1i + (t1i + l1i), v2r + (t2r + l2r), v2i + (t2i + l2i)
    return v1r + (r1r + l1r), v1i + (r1i + l1i), v2r + (r2r + l2r), v2i + (r2i + l2i)


def _local_c(c1, c2, d1, d2, xi, i, j):
    """(C1, C2) of site (i, j): shifted by (d1, d2)·ξ(i, j) with pinning disorder, as given without (ξ None)."""
    if xi is None:
        return c1, c2
    x = xi[i, j]
    return c1 + d1 * x, c2 + d2 * x


@overload(_local_c, inline="always")
def _local_c_typed(c1, c2, d1, d2, xi, i, j):
    # dispatched on ξ's type at compile time: the clean variant has no branch and no extra arithmetic
    if isinstance(xi, (types.NoneType, types.Omitted)) or xi is None:
        return lambda c1, c2, d1, d2, xi, i, j: (c1, c2)

    def shifted(c1, c2, d1, d2, xi, i, j):
        x = xi[i, j]
        return c1 + d1 * x, c2 + d2 * x
    return shifted


@njit(inline="always")
def _update_site(a1r, a1i, a2r, a2i, o1r, o1i, o2r, o2i, i, j, ip, im, jr, jl, cy, sy, cx, sx, side,
                 keep, k11, k22, k12, f1, f2, b1, b2, e):
    """dst at site (i, j) from src: the stencil (:func:`neighbour_sums`, ``side``) and :func:`_site`."""
    n1r, n1i, n2r, n2i = neighbour_sums(
        cy[j], sy[j], cx, sx, side,
        a1r[ip, j], a1i[ip, j], a1r[im, j], a1i[im, j], a2r[ip, j], a2i[ip, j], a2r[im, j], a2i[im, j],
        a1r[i, jr], a1r[i, jl], a1i[i, jr], a1i[i, jl], a2r[i, jr], a2r[i, jl], a2i[i, jr], a2i[i, jl])
    r1r, r1i, r2r, r2i = _site(keep, k11, k22, k12, f1, f2, b1, b2, e, a1r[i, j], a1i[i, j], a2r[i, j],
                               a2i[i, j], n1r, n1i, n2r, n2i)
    o1r[i, j] = r1r
    o1i[i, j] = r1i
    o2r[i, j] = r2r
    o2i[i, j] = r2i


@njit_noalias(cache=True, nogil=True)
def _sweep(src, dst, co, ly, lx, xi=None, dco=None):
    """One full-lattice update of one sample: dst = keep·src + scale·rhs(src).

    With pinning disorder, ``xi`` is the sample's field ξ(r) (N, N) and
    ``dco`` = (scale·α1·δ, scale·α2·δ) (:func:`disorder_coefficients`): site r
    uses C_b + dco[b]·ξ(r) in place of C_b, i.e. α_b(r) = α_b(1 + δξ(r))
    (:func:`_local_c`). Without them (the default) numba compiles a separate
    variant with no disorder arithmetic, so the clean update is unchanged.
    """
    N = src.shape[1]
    a1r, a1i, a2r, a2i = src[0], src[1], src[2], src[3]
    o1r, o1i, o2r, o2i = dst[0], dst[1], dst[2], dst[3]
    cy = ly[0]
    sy = ly[1]
    # coefficients as scalars: loads from `co` could not be hoisted past the stores
    keep = co[KEEP]
    k11 = co[K11]
    k22 = co[K22]
    k12 = co[K12]
    c1 = co[C1]
    c2 = co[C2]
    b1 = co[B1]
    b2 = co[B2]
    e = co[E]
    if xi is None:
        d1 = 0.0
        d2 = 0.0
    else:
        d1 = dco[0]
        d2 = dco[1]
    for i in range(N):
        ip = i + 1 if i < N - 1 else 0
        im = i - 1 if i > 0 else N - 1
        cx = lx[0, i]
        sx = lx[1, i]
        # ---- interior columns: no seam, vectorisable
        for j in range(1, N - 1):
            f1, f2 = _local_c(c1, c2, d1, d2, xi, i, j)
            _update_site(a1r, a1i, a2r, a2i, o1r, o1i, o2r, o2i, i, j, ip, im, j + 1, j - 1, cy, sy, cx, sx,
                         INTERIOR, keep, k11, k22, k12, f1, f2, b1, b2, e)
        # ---- j = 0: left neighbour across the seam, U* = cx + i sx
        f1, f2 = _local_c(c1, c2, d1, d2, xi, i, 0)
        _update_site(a1r, a1i, a2r, a2i, o1r, o1i, o2r, o2i, i, 0, ip, im, 1, N - 1, cy, sy, cx, sx,
                     SEAM_LEFT, keep, k11, k22, k12, f1, f2, b1, b2, e)
        # ---- j = N-1: right neighbour across the seam, U = cx − i sx
        f1, f2 = _local_c(c1, c2, d1, d2, xi, i, N - 1)
        _update_site(a1r, a1i, a2r, a2i, o1r, o1i, o2r, o2i, i, N - 1, ip, im, 0, N - 2, cy, sy, cx, sx,
                     SEAM_RIGHT, keep, k11, k22, k12, f1, f2, b1, b2, e)


# ----------------------------------------------------------------- thermal noise
# Counter-based Gaussian stream (docs/physics.md, "Thermal noise"), in ._thermal:
# the normal deviate of (seed, sample, step, site, component) is a pure function
# of those integers, computed where it is used, so a run's noise never depends
# on the batch, the thread or the worker that evolves the sample.
from ._thermal import kick as _add_noise, noise_key, thermal_normals  # noqa: E402,F401


def disorder_coefficients(alpha: tuple[float, float], delta: np.ndarray, *, scale: float,
                          dtype=np.float64) -> np.ndarray:
    """Per-sample disorder coefficients (S, 2) = scale·α_b·δ of :func:`_sweep`'s ``dco``."""
    delta = np.atleast_1d(np.asarray(delta, dtype=np.float64))
    out = np.empty((delta.shape[0], 2), dtype=np.float64)
    out[:, 0] = scale * alpha[0] * delta
    out[:, 1] = scale * alpha[1] * delta
    return out.astype(dtype)


#: Failure codes of :func:`_evolve_one` (``reason`` output).
OK, NONFINITE, STAGGERED, OSCILLATION = 0, 1, 2, 3

#: Largest staggered ratio |Σ ρ (−1)^(i+j)| / Σ ρ of a band's density accepted
#: after the grace period. Physical states show ~1e-4 or less; a saturated
#: period-2 (checkerboard) instability shows ~0.9 (docs/physics.md).
STAGGERED_MAX = 0.5
#: Largest step-to-step relative change ||ψ(n) − ψ(n−1)|| / ||ψ(n)|| accepted
#: after the grace period. Physical states change by ~dt·rate (< 0.05 for any
#: accepted dt after the transient); a grid-scale oscillation by O(1).
CHANGE_MAX = 0.5
#: Steps before the oscillation checks start: at a dt just below the bound
#: the quench's white-noise start leaves grid-scale content that decays by
#: |1 − dt·μ| per step; it fell below both thresholds for good within 65 steps
#: in every case measured (N = 4..16, η in {0, 1.5}, ν in {0, 1}, 100 seeds).
GRACE_STEPS = 100


@njit(inline="always")
def health_terms(x1r, x1i, x2r, x2i, p1r, p1i, p2r, p2i, even):
    """One site's terms of the health sums (float64), the one definition of both backends.

    (ρ1, ρ2, ±ρ1, ±ρ2, |ψ − ψ_prev|²) for the current values x and the previous
    step's p; the sign is + on the even sublattice (i + j even). Adding −ρ is
    subtracting ρ exactly, so the sums are bitwise those of a branch.
    """
    r1 = x1r * x1r + x1i * x1i
    r2 = x2r * x2r + x2i * x2i
    e0 = x1r - p1r
    e1 = x1i - p1i
    e2 = x2r - p2r
    e3 = x2i - p2i
    if even:
        return r1, r2, r1, r2, e0 * e0 + e1 * e1 + e2 * e2 + e3 * e3
    return r1, r2, -r1, -r2, e0 * e0 + e1 * e1 + e2 * e2 + e3 * e3


@njit(cache=True, nogil=True)
def _check_state(cur, prev, stag_max, change_max, oscillation_checks, value):
    """Health check of a state right after a step; ``prev`` is the state one step earlier.

    In one pass (float64 accumulation) it computes, per band b, the staggered
    ratio |Σ ρ_b (−1)^(i+j)| / Σ ρ_b and the step-to-step relative change
    ||ψ − ψ_prev|| / ||ψ|| over both bands. Returns NONFINITE if any value
    is NaN/Inf (or its square overflows), STAGGERED if a band's staggered
    ratio exceeds ``stag_max``, OSCILLATION if the relative change exceeds
    ``change_max``, else OK; the last two only if ``oscillation_checks``.
    ``value[0]`` receives the offending ratio.
    """
    N = cur.shape[1]
    st1 = 0.0
    st2 = 0.0
    t1 = 0.0
    t2 = 0.0
    dd = 0.0
    for i in range(N):
        for j in range(N):
            r1, r2, s1, s2, d = health_terms(
                np.float64(cur[0, i, j]), np.float64(cur[1, i, j]), np.float64(cur[2, i, j]),
                np.float64(cur[3, i, j]), np.float64(prev[0, i, j]), np.float64(prev[1, i, j]),
                np.float64(prev[2, i, j]), np.float64(prev[3, i, j]), (i + j) % 2 == 0)
            t1 += r1
            t2 += r2
            st1 += s1
            st2 += s2
            dd += d
    code, ratio = health_verdict(t1, t2, st1, st2, dd, oscillation_checks, stag_max, change_max)
    if code == STAGGERED or code == OSCILLATION:
        value[0] = ratio
    return code


@njit(inline="always")
def health_verdict(t1, t2, st1, st2, dd, oscillation_checks, stag_max, change_max):
    """(code, offending ratio) of one sample's health sums; the one decision of both backends.

    The sums are (Σρ1, Σρ2, Σρ1(−1)^(i+j), Σρ2(−1)^(i+j), ||ψ − ψ_prev||²) in
    float64. Non-finite sums are NONFINITE; with ``oscillation_checks`` a band
    whose staggered ratio exceeds ``stag_max`` is STAGGERED and a relative
    step-to-step change above ``change_max`` an OSCILLATION; else OK (ratio 0).
    Compiled into :func:`_check_state` and into the CUDA health kernel
    (:mod:`.cuda.kernels`), so the devices judge a sample alike.
    """
    tot = t1 + t2
    if not (tot - tot == 0) or not (dd - dd == 0) or not (st1 - st1 == 0) or not (st2 - st2 == 0):
        return NONFINITE, 0.0
    if not oscillation_checks:
        return OK, 0.0
    if abs(st1) > stag_max * t1 and t1 > 0.0:
        return STAGGERED, abs(st1) / t1
    if abs(st2) > stag_max * t2 and t2 > 0.0:
        return STAGGERED, abs(st2) / t2
    if dd > change_max * change_max * tot and tot > 0.0:
        return OSCILLATION, math.sqrt(dd / tot)
    return OK, 0.0


@njit(cache=True, nogil=True)
def _evolve_one(state, work, co, ly, lx, snap_steps, out, check_every, stag_max, change_max, grace, reason,
                value, xi=None, dco=None, amp=0.0, key=np.uint64(0)):
    """Evolve one sample, writing snapshots into ``out[t]``.

    Returns -1 on success or the step at which :func:`_check_state` failed
    (every ``check_every`` steps and at each snapshot; the oscillation checks
    from step ``grace`` on, once a stable run's initial grid-scale noise has
    decayed); the failure code goes to ``reason[0]`` and the offending ratio
    to ``value[0]``. ``state`` holds the initial condition and is overwritten.

    ``xi``/``dco``: pinning disorder (see :func:`_sweep`). ``amp`` > 0 adds
    thermal noise amp·g after each Euler step n = 0, 1, … (step n turns the
    state at step n into step n + 1), g from the stream ``key``
    (:func:`_add_noise`); with amp = 0 the state is never touched.
    """
    cur = state
    nxt = work
    step = 0
    for t in range(snap_steps.shape[0]):
        target = snap_steps[t]
        while step < target:
            _sweep(cur, nxt, co, ly, lx, xi, dco)
            if amp > 0.0:
                _add_noise(nxt, amp, key, step)
            cur, nxt = nxt, cur
            step += 1
            if step % check_every == 0:
                code = _check_state(cur, nxt, stag_max, change_max, step >= grace, value)
                if code != OK:
                    reason[0] = code
                    return step
        if step % check_every != 0:  # not checked yet at this step
            code = _check_state(cur, nxt, stag_max, change_max, step >= grace, value)
            if code != OK:
                reason[0] = code
                return step
        out[t, :, :, :] = cur
    return -1


@njit(cache=True, parallel=True)
def _evolve_batch(states, work, co, ly, lx, snap_steps, out, status, check_every, stag_max, change_max, grace,
                  reason, value, xi=None, dco=None, amp=None, keys=None):
    """Evolve a batch, parallel over samples (each thread owns whole samples).

    Optional per-sample nuisance inputs: ``xi`` (S, N, N) and ``dco`` (S, 2)
    for pinning disorder, ``amp`` (S,) float64 and ``keys`` (S,) uint64 for
    thermal noise. Left out, numba compiles the clean variant.
    """
    S = states.shape[0]
    for s in prange(S):
        if xi is None:
            if amp is None:
                status[s] = _evolve_one(states[s], work[s], co[s], ly[s], lx[s], snap_steps, out[s], check_every,
                                        stag_max, change_max, grace, reason[s:s + 1], value[s:s + 1])
            else:
                status[s] = _evolve_one(states[s], work[s], co[s], ly[s], lx[s], snap_steps, out[s], check_every,
                                        stag_max, change_max, grace, reason[s:s + 1], value[s:s + 1],
                                        None, None, amp[s], keys[s])
        else:
            if amp is None:
                status[s] = _evolve_one(states[s], work[s], co[s], ly[s], lx[s], snap_steps, out[s], check_every,
                                        stag_max, change_max, grace, reason[s:s + 1], value[s:s + 1],
                                        xi[s], dco[s])
            else:
                status[s] = _evolve_one(states[s], work[s], co[s], ly[s], lx[s], snap_steps, out[s], check_every,
                                        stag_max, change_max, grace, reason[s:s + 1], value[s:s + 1],
                                        xi[s], dco[s], amp[s], keys[s])


@njit(inline="always")
def _forward(state, i, j, c, s, p1r, p1i, p2r, p2i, ih):
    """(U ψ(i, j) − ψ_site)/h of both bands, U = c − i s the link from the site to (i, j)."""
    u1r, u1i = transport(c, s, state[0, i, j], state[1, i, j])
    u2r, u2i = transport(c, s, state[2, i, j], state[3, i, j])
    return (u1r - p1r) * ih, (u1i - p1i) * ih, (u2r - p2r) * ih, (u2i - p2i) * ih


@njit(cache=True, nogil=True)
def _energy(state, D1, D2, a1, a2, b1, b2, eta, nu, h, ly, lx, xi=None, delta=0.0):
    """Free energy F of one sample (float64 accumulation), docs/physics.md "Lattice free energy".

    With ``xi`` (N, N), α_b is α_b·(1 + δ·ξ(r)) at site r (pinning disorder).
    """
    N = state.shape[1]
    ih = 1.0 / h
    tot = 0.0
    for i in range(N):
        ip = i + 1 if i < N - 1 else 0
        for j in range(N):
            jp = j + 1 if j < N - 1 else 0
            p1r = state[0, i, j]
            p1i = state[1, i, j]
            p2r = state[2, i, j]
            p2i = state[3, i, j]
            # x-link U = cx − i sx (identity except at the seam)
            if j == N - 1:
                cx = lx[0, i]
                sx = lx[1, i]
            else:
                cx = 1.0
                sx = 0.0
            cy = ly[0, j]
            sy = ly[1, j]
            # D_μ ψ = (U ψ(r+μ) − ψ)/h for both bands
            dx1r, dx1i, dx2r, dx2i = _forward(state, i, jp, cx, sx, p1r, p1i, p2r, p2i, ih)
            dy1r, dy1i, dy2r, dy2i = _forward(state, ip, j, cy, sy, p1r, p1i, p2r, p2i, ih)
            rho1 = p1r * p1r + p1i * p1i
            rho2 = p2r * p2r + p2i * p2i
            dens = D1 * (dx1r * dx1r + dx1i * dx1i + dy1r * dy1r + dy1i * dy1i)
            dens += D2 * (dx2r * dx2r + dx2i * dx2i + dy2r * dy2r + dy2i * dy2i)
            dens += a1 * rho1 + 0.5 * b1 * rho1 * rho1 + a2 * rho2 + 0.5 * b2 * rho2 * rho2
            if xi is not None:
                dx = delta * xi[i, j]
                dens += dx * (a1 * rho1 + a2 * rho2)
            dens += 2.0 * nu * (dx1r * dx2r + dx1i * dx2i + dy1r * dy2r + dy1i * dy2i)
            dens -= 2.0 * eta * (p1r * p2r + p1i * p2i)
            tot += dens
    return tot * h * h

