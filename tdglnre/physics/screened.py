"""Numba kernel of the screened model (λ < ∞): ψ and a per-link vector potential a (private).

docs/physics.md, "Screening (λ < ∞)", "Lattice form and dynamics". The state
of a sample is (6, N, N): the four components of ψ as in :mod:`.kernels`
(Re ψ1, Im ψ1, Re ψ2, Im ψ2) and a_x, a_y (:data:`AX`, :data:`AY`), the
periodic link field on the links (i, j) → (i, j+1) and (i, j) → (i+1, j).
ψ sees the links θ⁰ + a, θ⁰ the Landau-gauge background with the seam twist
(:func:`background_links`); the plaquette flux is Φ_p = B h² + (curl a)_p.

One explicit Euler step (:func:`_evolve_one`, :func:`_step`) goes row by
row: it evaluates, from the current a, the link factors cos/sin(θ⁰ + a) of
the row's links and Φ of its plaquettes (:func:`_link_row`), then updates
every site of the row (:func:`_update_site`):

* ψ by the λ = ∞ kernel's own site formula :func:`.kernels._site`, with the
  neighbour sum built from :func:`.kernels.transport` /
  :func:`.kernels.transport_back` (the functions of the fixed-field stencil's
  seam) on each of the four links;
* a_μ by σ ∂ₜa_μ = J_μ − (2c/h²)(Φ_{p⁺} − Φ_{p⁻}), J_μ the link current of
  :func:`.observables.link_current` (the function the observables and the
  CUDA channels use; both bands and the drag ν).

Like :mod:`.kernels`, the coefficients fold in the time step: with
``keep`` = 1 and scales (dt, dt/σ) this is one Euler step, with keep = 0 and
scales (−2h², −1) it is the real gradient ∂F/∂(z, a) — the same code path.
Thermal noise kicks ψ (:func:`.kernels._add_noise` touches the first four
components) and a (:func:`._thermal.kick_links`, amplitude h·√(2/σ) times ψ's:
fluctuation–dissipation for σ ∂ₜa = −∂F/∂a); pinning disorder shifts C1, C2 as in :func:`.kernels._sweep`.
The λ = ∞ solver never calls this module, so its output is unchanged.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from . import kernels as K
from ._memory import SHIFT_FLUX, SHIFT_LINKS, njit_noalias, staggered
from ._thermal import kick_links as _kick_links
from .kernels import (B1, B2, C1, C2, E, K11, K12, K22, KEEP, NONFINITE, OK, _add_noise, _check_state, _local_c,
                      _site, transport, transport_back)
from .lattice import seam_phases
from .observables import link_current

#: State components of a_x and a_y (after the four of ψ).
AX, AY = 4, 5
#: Components of a screened state.
N_COMP = 6
#: Extra coefficient slots after :data:`.kernels.N_COEF`: the link-current weights
#: (scale_a·D1, scale_a·D2, scale_a·ν), the field-force weight scale_a·2c/h², the
#: background flux per plaquette B h² (not scaled) and the ratio h·√(2/σ) of a's
#: Langevin kick to ψ's (0 for a gradient).
JD1, JD2, JNU, FC, FLUX, KICK = range(K.N_COEF, K.N_COEF + 6)
N_COEF = K.N_COEF + 6

_current = njit(inline="always")(link_current)


def coefficients(D, alpha, beta, h: float, L: float, eta: np.ndarray, nu: np.ndarray, n_v: np.ndarray,
                 c: np.ndarray, *, scale: float, keep: float, scale_a: float, sigma: float | None = None,
                 dtype=np.float64) -> np.ndarray:
    """Per-sample coefficient vectors (S, :data:`N_COEF`) of :func:`_step`.

    The first :data:`.kernels.N_COEF` slots are :func:`.kernels.coefficients`'
    (``scale`` on ∂ₜψ, ``keep`` on ψ and a); ``scale_a`` multiplies
    −∂F/∂a = J − (2c/h²)(Φ⁺ − Φ⁻) (dt/σ for a step, −1 for the gradient);
    ``c`` is the per-sample field coefficient λ²K; ``sigma`` (a step's σ) sets
    the slot :data:`KICK` = h·√(2/σ), the Langevin kick of a per unit of ψ's
    (docs/physics.md, "Thermal noise"); without it (a gradient) the slot is 0.
    """
    base = K.coefficients(D, alpha, beta, h, eta, nu, scale=scale, keep=keep)
    S = base.shape[0]
    co = np.empty((S, N_COEF), dtype=np.float64)
    co[:, :K.N_COEF] = base
    co[:, JD1] = scale_a * D[0]
    co[:, JD2] = scale_a * D[1]
    co[:, JNU] = scale_a * np.broadcast_to(np.asarray(nu, dtype=np.float64), (S,))
    co[:, FC] = scale_a * 2.0 * np.broadcast_to(np.asarray(c, dtype=np.float64), (S,)) / (h * h)
    n = np.broadcast_to(np.asarray(n_v, dtype=np.float64), (S,))
    co[:, FLUX] = 2.0 * math.pi * n / (L * L) * h * h  # B h², as Links.flux
    co[:, KICK] = 0.0 if sigma is None else h * math.sqrt(2.0 / sigma)
    return co.astype(dtype)


def background_links(N: int, L: float, n_v: np.ndarray) -> np.ndarray:
    """e^{−iθ⁰} per sample (S, 4, N) float64: cos, sin of the y-link phase of column j, cos, sin of row i's seam."""
    n_v = np.atleast_1d(n_v)
    out = np.empty((n_v.shape[0], 4, N), dtype=np.float64)
    for s in range(n_v.shape[0]):
        phi_y, phi_seam = seam_phases(N, L, int(n_v[s]))
        out[s] = np.cos(phi_y), np.sin(phi_y), np.cos(phi_seam), np.sin(phi_seam)
    return out


# Cody–Waite split of π/2 (33 + 33 + 53 bits): k·P1 and k·P2 are exact for |k| < 2^20, so the reduced
# argument of |x| < 10^6 is accurate to round-off.
_PIO2_1 = 1.57079632673412561417e+00
_PIO2_2 = 6.07710050630396597660e-11
_PIO2_3 = 2.02226624871116645580e-21
_TWO_OVER_PI = 0.63661977236758134308


#: Largest |a| of a row whose link factors skip the range reduction (< π/4: the reduction is then the identity).
_SMALL = 0.78
#: Largest |a| of a row whose link factors take the short polynomials :func:`_poly_tiny` (quenches: |a| < 0.05).
_TINY = 0.125


@njit(inline="always")
def _poly_tiny(r):
    """(cos r, sin r) for |r| <= 1/8: sin to r⁹, cos to r¹⁰ (next terms below 10⁻¹⁸ and 10⁻¹⁹, under an ulp)."""
    z = r * r
    s = r + r * z * (-1.0 / 6.0 + z * (1.0 / 120.0 + z * (-1.0 / 5040.0 + z * (1.0 / 362880.0))))
    c = 1.0 - 0.5 * z + z * z * (1.0 / 24.0 + z * (-1.0 / 720.0 + z * (1.0 / 40320.0 + z * (-1.0 / 3628800.0))))
    return c, s


@njit(inline="always")
def _poly(r):
    """(cos r, sin r) for |r| <= π/4: Taylor series of sin to r¹⁷ and cos to r¹⁸ (next terms below 10⁻¹⁹)."""
    z = r * r
    s = r + r * z * (-1.0 / 6.0 + z * (1.0 / 120.0 + z * (-1.0 / 5040.0 + z * (1.0 / 362880.0 + z * (
        -1.0 / 39916800.0 + z * (1.0 / 6227020800.0 + z * (-1.0 / 1307674368000.0 + z * (1.0 / 355687428096000.0))))))))
    c = 1.0 - 0.5 * z + z * z * (1.0 / 24.0 + z * (-1.0 / 720.0 + z * (1.0 / 40320.0 + z * (-1.0 / 3628800.0 + z * (
        1.0 / 479001600.0 + z * (-1.0 / 87178291200.0 + z * (1.0 / 20922789888000.0)))))))
    return c, s


@njit(inline="always")
def _sincos(x):
    """(cos x, sin x) of a float64 to 1–2 ulp, in branch-free arithmetic that vectorises (libm calls do not).

    x = kπ/2 + r with |r| <= π/4 and :func:`_poly`; the quadrant k mod 4 picks
    (±cos r, ±sin r). For |x| < :data:`_SMALL`, k = 0 and r = x exactly, so the
    result is :func:`_poly` (x) bit for bit.
    """
    k = math.floor(x * _TWO_OVER_PI + 0.5)
    c, s = _poly(((x - k * _PIO2_1) - k * _PIO2_2) - k * _PIO2_3)
    q = k - 4.0 * math.floor(0.25 * k)
    cos_x = c if q == 0.0 else (-s if q == 1.0 else (-c if q == 2.0 else s))
    sin_x = s if q == 0.0 else (c if q == 1.0 else (-s if q == 2.0 else -c))
    return cos_x, sin_x


@njit(inline="always")
def _rotate(c0, s0, c, s):
    """(cos, sin) of θ⁰ + a from those of θ⁰ and of a: the links e^{−iθ⁰}·e^{−ia}."""
    return c0 * c - s0 * s, s0 * c + c0 * s


@njit(inline="always")
def _link_row(ax, ay, bg, flux, cx, sx, cy, sy, phi, i):
    """Row i of the link factors (cos θ_x, sin θ_x, cos θ_y, sin θ_y) of θ⁰ + a and of the plaquette fluxes Φ.

    θ_x(i, j) = a_x(i, j) (plus the seam phase at j = N−1), θ_y(i, j) =
    a_y(i, j) + θ⁰_y(j): cos/sin of a (float64 whatever the dtype) turned by
    the background's ``bg`` (:func:`background_links`). A row whose |a| are
    all below :data:`_TINY` (quenches) takes the short :func:`_poly_tiny`; else
    the row is done again with :func:`_poly` if all its |a| are below
    :data:`_SMALL` (the same numbers as :func:`_sincos` there, at half the
    cost), else with :func:`_sincos`.
    Φ(i, j) = flux + a_x(i, j) + a_y(i, j+1) − a_x(i+1, j) − a_y(i, j)
    (:func:`.reference.plaquette_flux`); it reads row i+1 of a_x.
    """
    N = ax.shape[0]
    ip = i + 1 if i < N - 1 else 0
    c0, s0 = bg[0], bg[1]
    over = 0
    for j in range(N):
        xa = np.float64(ax[i, j])
        ya = np.float64(ay[i, j])
        over |= (abs(xa) >= _TINY) | (abs(ya) >= _TINY)
        cx[i, j], sx[i, j] = _poly_tiny(xa)
        ca, sa = _poly_tiny(ya)
        cy[i, j], sy[i, j] = _rotate(c0[j], s0[j], ca, sa)
    if over:  # (rare) some |a| >= _TINY: the row again, with the longer polynomial or the range reduction
        small = True
        for j in range(N):
            small &= (abs(ax[i, j]) < _SMALL) & (abs(ay[i, j]) < _SMALL)
        if small:
            for j in range(N):
                cx[i, j], sx[i, j] = _poly(np.float64(ax[i, j]))
                ca, sa = _poly(np.float64(ay[i, j]))
                cy[i, j], sy[i, j] = _rotate(c0[j], s0[j], ca, sa)
        else:
            for j in range(N):
                cx[i, j], sx[i, j] = _sincos(np.float64(ax[i, j]))
                ca, sa = _sincos(np.float64(ay[i, j]))
                cy[i, j], sy[i, j] = _rotate(c0[j], s0[j], ca, sa)
    cx[i, N - 1], sx[i, N - 1] = _rotate(bg[2, i], bg[3, i], cx[i, N - 1], sx[i, N - 1])  # the seam
    for j in range(N - 1):
        phi[i, j] = plaquette(flux, ax[i, j], ay[i, j + 1], ax[ip, j], ay[i, j])
    phi[i, N - 1] = plaquette(flux, ax[i, N - 1], ay[i, 0], ax[ip, N - 1], ay[i, N - 1])


@njit(inline="always")
def plaquette(flux, ax, ay_right, ax_up, ay):
    """Φ of the plaquette with lower-left site (i, j): flux + a_x(i, j) + a_y(i, j+1) − a_x(i+1, j) − a_y(i, j)."""
    return flux + ax + ay_right - ax_up - ay


@njit(inline="always")
def transported_sum(cu, su, ur, ui, cd, sd, dr, di, cr, sr, rr, ri, cl, sl, lr, li):
    """U_y ψ(up) + U_y* ψ(down) + U_x ψ(right) + U_x* ψ(left) of one band from the four links' (cos, sin).

    (cu, su) is the y-link of the site, (cd, sd) the y-link of the site below,
    (cr, sr) the x-link of the site, (cl, sl) the x-link of the site to the left
    (scalars: the CPU sweep and the CUDA kernel gather them from their own layouts).
    """
    ur, ui = transport(cu, su, ur, ui)
    dr, di = transport_back(cd, sd, dr, di)
    rr, ri = transport(cr, sr, rr, ri)
    lr, li = transport_back(cl, sl, lr, li)
    return (ur + dr) + (rr + lr), (ui + di) + (ri + li)


@njit(inline="always")
def link_update(keep, a, current, fc, phi_plus, phi_minus):
    """keep·a_μ + scale_a·(J_μ − (2c/h²)(Φ⁺ − Φ⁻)) (``current`` and ``fc`` are already scaled)."""
    return keep * a + current - fc * (phi_plus - phi_minus)


@njit(inline="always")
def _update_site(a1r, a1i, a2r, a2i, ax, ay, o1r, o1i, o2r, o2i, oax, oay, cx, sx, cy, sy, phi,
                 i, j, ip, im, jr, jl, f1, f2, cf):
    """ψ and the two links leaving site (i, j): as the CUDA sweep (:mod:`.cuda.screened`), from the same functions.

    ψ from :func:`transported_sum` and :func:`.kernels._site`; a_x, a_y from
    :func:`.observables.link_current` and :func:`link_update`. ``cf`` holds
    the sweep's coefficients: a tuple keeps the call at CPython's 30
    positional arguments, beyond which numba cannot inline it.
    """
    keep, k11, k22, k12, b1, b2, e, jd1, jd2, jnu, fc = cf
    cu, su, cd, sd = cy[i, j], sy[i, j], cy[im, j], sy[im, j]
    cr, sr, cl, sl = cx[i, j], sx[i, j], cx[i, jl], sx[i, jl]
    n1r, n1i = transported_sum(cu, su, a1r[ip, j], a1i[ip, j], cd, sd, a1r[im, j], a1i[im, j],
                               cr, sr, a1r[i, jr], a1i[i, jr], cl, sl, a1r[i, jl], a1i[i, jl])
    n2r, n2i = transported_sum(cu, su, a2r[ip, j], a2i[ip, j], cd, sd, a2r[im, j], a2i[im, j],
                               cr, sr, a2r[i, jr], a2i[i, jr], cl, sl, a2r[i, jl], a2i[i, jl])
    p1r, p1i, p2r, p2i = a1r[i, j], a1i[i, j], a2r[i, j], a2i[i, j]
    r1r, r1i, r2r, r2i = _site(keep, k11, k22, k12, f1, f2, b1, b2, e, p1r, p1i, p2r, p2i, n1r, n1i, n2r, n2i)
    o1r[i, j] = r1r
    o1i[i, j] = r1i
    o2r[i, j] = r2r
    o2i[i, j] = r2i
    jx = _current(p1r, p1i, p2r, p2i, a1r[i, jr], a1i[i, jr], a2r[i, jr], a2i[i, jr], cr, sr, jd1, jd2, jnu)
    jy = _current(p1r, p1i, p2r, p2i, a1r[ip, j], a1i[ip, j], a2r[ip, j], a2i[ip, j], cu, su, jd1, jd2, jnu)
    oax[i, j] = link_update(keep, ax[i, j], jx, fc, phi[i, j], phi[im, j])
    oay[i, j] = link_update(keep, ay[i, j], jy, fc, phi[i, jl], phi[i, j])


@njit_noalias(cache=True, nogil=True)
def _step(src, dst, co, bg, lk, phi, xi=None, dco=None):
    """One full update of one sample: dst = keep·src + (scale·∂ₜψ, scale_a·(J − (2c/h²)(Φ⁺ − Φ⁻))).

    Row by row: the link factors and fluxes of row i (:func:`_link_row`, into
    the scratch ``lk`` (4, N, N) and ``phi`` (N, N); row N−1 first, which row 0
    reads), then ψ and both links of each site of row i
    (:func:`_update_site`), which reads rows i and i−1 of them. ``xi``/``dco``
    as in :func:`.kernels._sweep` (a separate compiled variant without them).
    The site loop vectorises because the arrays are declared non-overlapping
    (:func:`._memory.njit_noalias`: src, dst, lk and phi must be distinct).
    """
    N = src.shape[1]
    a1r, a1i, a2r, a2i, ax, ay = src[0], src[1], src[2], src[3], src[AX], src[AY]
    o1r, o1i, o2r, o2i, oax, oay = dst[0], dst[1], dst[2], dst[3], dst[AX], dst[AY]
    cx, sx, cy, sy = lk[0], lk[1], lk[2], lk[3]
    flux = co[FLUX]
    c1 = co[C1]
    c2 = co[C2]
    cf = (co[KEEP], co[K11], co[K22], co[K12], co[B1], co[B2], co[E], co[JD1], co[JD2], co[JNU], co[FC])
    if xi is None:
        d1 = 0.0
        d2 = 0.0
    else:
        d1 = dco[0]
        d2 = dco[1]
    _link_row(ax, ay, bg, flux, cx, sx, cy, sy, phi, N - 1)
    for i in range(N):
        ip = i + 1 if i < N - 1 else 0
        im = i - 1 if i > 0 else N - 1
        if i < N - 1:
            _link_row(ax, ay, bg, flux, cx, sx, cy, sy, phi, i)
        for j in range(1, N - 1):
            f1, f2 = _local_c(c1, c2, d1, d2, xi, i, j)
            _update_site(a1r, a1i, a2r, a2i, ax, ay, o1r, o1i, o2r, o2i, oax, oay, cx, sx, cy, sy, phi,
                         i, j, ip, im, j + 1, j - 1, f1, f2, cf)
        for j, jr, jl in ((0, 1, N - 1), (N - 1, 0, N - 2)):
            f1, f2 = _local_c(c1, c2, d1, d2, xi, i, j)
            _update_site(a1r, a1i, a2r, a2i, ax, ay, o1r, o1i, o2r, o2i, oax, oay, cx, sx, cy, sy, phi,
                         i, j, ip, im, jr, jl, f1, f2, cf)


@njit(inline="always")
def _scratch(state):
    """Link factors (4, N, N) and fluxes (N, N) for ``state``, placed against 4K aliasing (:mod:`._memory`)."""
    N = state.shape[1]
    lk = staggered(4 * N * N, state, SHIFT_LINKS).reshape((4, N, N))
    phi = staggered(N * N, state, SHIFT_FLUX).reshape((N, N))
    return lk, phi


@njit(cache=True, nogil=True)
def apply(src, dst, co, bg, xi=None, dco=None):
    """dst = keep·src + scales·rhs(src) of one sample (gradients, tests): :func:`_step` with its own scratch."""
    lk, phi = _scratch(src)
    _step(src, dst, co, bg, lk, phi, xi, dco)


@njit(inline="always")
def field_health_term(x, y):
    """A site's term x² + y² of the float64 sum whose finiteness the health check of a requires."""
    return x * x + y * y


@njit(cache=True, nogil=True)
def _check(cur, prev, stag_max, change_max, oscillation_checks, value):
    """:func:`.kernels._check_state` on ψ, and NONFINITE where a holds a NaN/Inf (or its square overflows)."""
    code = _check_state(cur, prev, stag_max, change_max, oscillation_checks, value)
    if code != OK:
        return code
    N = cur.shape[1]
    tot = 0.0
    for i in range(N):
        for j in range(N):
            x = np.float64(cur[AX, i, j])
            y = np.float64(cur[AY, i, j])
            tot += field_health_term(x, y)
    if not (tot - tot == 0):
        return NONFINITE
    return OK


@njit(cache=True, nogil=True)
def _evolve_one(state, work, co, bg, snap_steps, out, check_every, stag_max, change_max, grace, reason, value,
                xi=None, dco=None, amp=0.0, key=np.uint64(0)):
    """Evolve one screened sample (6, N, N), as :func:`.kernels._evolve_one` (same returns and checks)."""
    lk, phi = _scratch(state)
    cur = state
    nxt = work
    step = 0
    for t in range(snap_steps.shape[0]):
        target = snap_steps[t]
        while step < target:
            _step(cur, nxt, co, bg, lk, phi, xi, dco)
            if amp > 0.0:
                _add_noise(nxt, amp, key, step)
                _kick_links(nxt, amp, co[KICK], key, step)
            cur, nxt = nxt, cur
            step += 1
            if step % check_every == 0:
                code = _check(cur, nxt, stag_max, change_max, step >= grace, value)
                if code != OK:
                    reason[0] = code
                    return step
        if step % check_every != 0:
            code = _check(cur, nxt, stag_max, change_max, step >= grace, value)
            if code != OK:
                reason[0] = code
                return step
        out[t, :, :, :] = cur
    return -1


@njit(cache=True, parallel=True)
def _evolve_batch(states, work, co, bg, snap_steps, out, status, check_every, stag_max, change_max, grace,
                  reason, value, xi=None, dco=None, amp=None, keys=None):
    """Evolve a batch of screened samples in parallel, as :func:`.kernels._evolve_batch` (``bg``: :func:`background_links`)."""
    S = states.shape[0]
    for s in prange(S):
        if xi is None:
            if amp is None:
                status[s] = _evolve_one(states[s], work[s], co[s], bg[s], snap_steps, out[s], check_every,
                                        stag_max, change_max, grace, reason[s:s + 1], value[s:s + 1])
            else:
                status[s] = _evolve_one(states[s], work[s], co[s], bg[s], snap_steps, out[s], check_every,
                                        stag_max, change_max, grace, reason[s:s + 1], value[s:s + 1],
                                        None, None, amp[s], keys[s])
        else:
            if amp is None:
                status[s] = _evolve_one(states[s], work[s], co[s], bg[s], snap_steps, out[s], check_every,
                                        stag_max, change_max, grace, reason[s:s + 1], value[s:s + 1],
                                        xi[s], dco[s])
            else:
                status[s] = _evolve_one(states[s], work[s], co[s], bg[s], snap_steps, out[s], check_every,
                                        stag_max, change_max, grace, reason[s:s + 1], value[s:s + 1],
                                        xi[s], dco[s], amp[s], keys[s])
