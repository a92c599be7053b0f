"""Numba kernel of the screened model (λ < ∞): ψ and a per-link vector potential a (private).

docs/physics.md, "Screening (λ < ∞)", "Lattice form and dynamics". The state
of a sample is (6, N, N): the four components of ψ as in :mod:`.kernels`
(Re ψ1, Im ψ1, Re ψ2, Im ψ2) and a_x, a_y (:data:`AX`, :data:`AY`), the
periodic link field on the links (i, j) → (i, j+1) and (i, j) → (i+1, j).
ψ sees the links θ⁰ + a, θ⁰ the Landau-gauge background with the seam twist
(:func:`background_angles`); the plaquette flux is Φ_p = B h² + (curl a)_p.

One explicit Euler step (:func:`_evolve_one`) first evaluates, from the
current a, the link factors cos/sin(θ⁰ + a) of every link and Φ of every
plaquette (:func:`_links`), then updates every site (:func:`_sweep`):

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
Thermal noise kicks ψ only (:func:`.kernels._add_noise` touches the first
four components); pinning disorder shifts C1, C2 as in :func:`.kernels._sweep`.
The λ = ∞ solver never calls this module, so its output is unchanged.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from . import kernels as K
from .kernels import (B1, B2, C1, C2, E, K11, K12, K22, KEEP, NONFINITE, OK, _add_noise, _check_state, _local_c,
                      _site, transport, transport_back)
from .lattice import seam_phases
from .observables import link_current

#: State components of a_x and a_y (after the four of ψ).
AX, AY = 4, 5
#: Components of a screened state.
N_COMP = 6
#: Extra coefficient slots after :data:`.kernels.N_COEF`: the link-current weights
#: (scale_a·D1, scale_a·D2, scale_a·ν), the field-force weight scale_a·2c/h² and the
#: background flux per plaquette B h² (not scaled).
JD1, JD2, JNU, FC, FLUX = range(K.N_COEF, K.N_COEF + 5)
N_COEF = K.N_COEF + 5

_current = njit(inline="always")(link_current)


def coefficients(D, alpha, beta, h: float, L: float, eta: np.ndarray, nu: np.ndarray, n_v: np.ndarray,
                 c: np.ndarray, *, scale: float, keep: float, scale_a: float, dtype=np.float64) -> np.ndarray:
    """Per-sample coefficient vectors (S, :data:`N_COEF`) of :func:`_sweep`.

    The first :data:`.kernels.N_COEF` slots are :func:`.kernels.coefficients`'
    (``scale`` on ∂ₜψ, ``keep`` on ψ and a); ``scale_a`` multiplies
    −∂F/∂a = J − (2c/h²)(Φ⁺ − Φ⁻) (dt/σ for a step, −1 for the gradient);
    ``c`` is the per-sample field coefficient λ²K.
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
    return co.astype(dtype)


def background_angles(N: int, L: float, n_v: np.ndarray) -> np.ndarray:
    """θ⁰ per sample (S, 2, N) float64: [0] the y-link phase of column j, [1] the seam phase of row i."""
    n_v = np.atleast_1d(n_v)
    out = np.empty((n_v.shape[0], 2, N), dtype=np.float64)
    for s in range(n_v.shape[0]):
        out[s, 0], out[s, 1] = seam_phases(N, L, int(n_v[s]))
    return out


@njit(cache=True, nogil=True)
def _links(src, th, flux, lk, phi):
    """Link factors lk = (cos θ_x, sin θ_x, cos θ_y, sin θ_y) of θ⁰ + a and the plaquette fluxes Φ.

    θ_x(i, j) = a_x(i, j) (plus the seam phase th[1, i] at j = N−1),
    θ_y(i, j) = a_y(i, j) + th[0, j]; Φ(i, j) = flux + a_x(i, j) + a_y(i, j+1)
    − a_x(i+1, j) − a_y(i, j) (:func:`.reference.plaquette_flux`).
    """
    N = src.shape[1]
    ax = src[AX]
    ay = src[AY]
    for i in range(N):
        ip = i + 1 if i < N - 1 else 0
        for j in range(N):
            tx = np.float64(ax[i, j])
            if j == N - 1:
                tx += th[1, i]
            ty = np.float64(ay[i, j]) + th[0, j]
            lk[0, i, j] = math.cos(tx)
            lk[1, i, j] = math.sin(tx)
            lk[2, i, j] = math.cos(ty)
            lk[3, i, j] = math.sin(ty)
            jp = j + 1 if j < N - 1 else 0
            phi[i, j] = flux + ax[i, j] + ay[i, jp] - ax[ip, j] - ay[i, j]


@njit(inline="always")
def _neighbours(pr, pi, i, j, ip, im, jr, jl, cx, sx, cy, sy):
    """Σ over the four links of one band: U_y ψ(up) + U_y* ψ(down) + U_x ψ(right) + U_x* ψ(left)."""
    ur, ui = transport(cy[i, j], sy[i, j], pr[ip, j], pi[ip, j])
    dr, di = transport_back(cy[im, j], sy[im, j], pr[im, j], pi[im, j])
    rr, ri = transport(cx[i, j], sx[i, j], pr[i, jr], pi[i, jr])
    lr, li = transport_back(cx[i, jl], sx[i, jl], pr[i, jl], pi[i, jl])
    return (ur + dr) + (rr + lr), (ui + di) + (ri + li)


@njit(inline="always")
def _update_site(src, dst, lk, phi, i, j, ip, im, jr, jl, keep, k11, k22, k12, f1, f2, b1, b2, e, jd1, jd2, jnu,
                 fc):
    """dst at site (i, j) and on its two links (i, j) → (i, j+1), (i, j) → (i+1, j)."""
    a1r, a1i, a2r, a2i = src[0], src[1], src[2], src[3]
    cx, sx, cy, sy = lk[0], lk[1], lk[2], lk[3]
    n1r, n1i = _neighbours(a1r, a1i, i, j, ip, im, jr, jl, cx, sx, cy, sy)
    n2r, n2i = _neighbours(a2r, a2i, i, j, ip, im, jr, jl, cx, sx, cy, sy)
    p1r, p1i, p2r, p2i = a1r[i, j], a1i[i, j], a2r[i, j], a2i[i, j]
    r1r, r1i, r2r, r2i = _site(keep, k11, k22, k12, f1, f2, b1, b2, e, p1r, p1i, p2r, p2i, n1r, n1i, n2r, n2i)
    dst[0, i, j] = r1r
    dst[1, i, j] = r1i
    dst[2, i, j] = r2r
    dst[3, i, j] = r2i
    jx = _current(p1r, p1i, p2r, p2i, a1r[i, jr], a1i[i, jr], a2r[i, jr], a2i[i, jr], cx[i, j], sx[i, j],
                  jd1, jd2, jnu)
    jy = _current(p1r, p1i, p2r, p2i, a1r[ip, j], a1i[ip, j], a2r[ip, j], a2i[ip, j], cy[i, j], sy[i, j],
                  jd1, jd2, jnu)
    dst[AX, i, j] = keep * src[AX, i, j] + jx - fc * (phi[i, j] - phi[im, j])
    dst[AY, i, j] = keep * src[AY, i, j] + jy - fc * (phi[i, jl] - phi[i, j])


@njit(cache=True, nogil=True)
def _sweep(src, dst, co, lk, phi, xi=None, dco=None):
    """One full update of one sample from the link factors and fluxes :func:`_links` made of src's a.

    dst = keep·src + (scale·∂ₜψ, scale_a·(J − (2c/h²)(Φ⁺ − Φ⁻))); ``xi``/``dco``
    as in :func:`.kernels._sweep` (a separate compiled variant without them).
    """
    N = src.shape[1]
    keep = co[KEEP]
    k11 = co[K11]
    k22 = co[K22]
    k12 = co[K12]
    c1 = co[C1]
    c2 = co[C2]
    b1 = co[B1]
    b2 = co[B2]
    e = co[E]
    jd1 = co[JD1]
    jd2 = co[JD2]
    jnu = co[JNU]
    fc = co[FC]
    if xi is None:
        d1 = 0.0
        d2 = 0.0
    else:
        d1 = dco[0]
        d2 = dco[1]
    for i in range(N):
        ip = i + 1 if i < N - 1 else 0
        im = i - 1 if i > 0 else N - 1
        for j in range(1, N - 1):
            f1, f2 = _local_c(c1, c2, d1, d2, xi, i, j)
            _update_site(src, dst, lk, phi, i, j, ip, im, j + 1, j - 1, keep, k11, k22, k12, f1, f2, b1, b2, e,
                         jd1, jd2, jnu, fc)
        f1, f2 = _local_c(c1, c2, d1, d2, xi, i, 0)
        _update_site(src, dst, lk, phi, i, 0, ip, im, 1, N - 1, keep, k11, k22, k12, f1, f2, b1, b2, e,
                     jd1, jd2, jnu, fc)
        f1, f2 = _local_c(c1, c2, d1, d2, xi, i, N - 1)
        _update_site(src, dst, lk, phi, i, N - 1, ip, im, 0, N - 2, keep, k11, k22, k12, f1, f2, b1, b2, e,
                     jd1, jd2, jnu, fc)


@njit(cache=True, nogil=True)
def apply(src, dst, co, th, xi=None, dco=None):
    """dst = keep·src + scales·rhs(src) of one sample: :func:`_links` then :func:`_sweep` (tests, gradients)."""
    N = src.shape[1]
    lk = np.empty((4, N, N), dtype=src.dtype)
    phi = np.empty((N, N), dtype=src.dtype)
    _links(src, th, co[FLUX], lk, phi)
    _sweep(src, dst, co, lk, phi, xi, dco)


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
            tot += x * x + y * y
    if not (tot - tot == 0):
        return NONFINITE
    return OK


@njit(cache=True, nogil=True)
def _evolve_one(state, work, co, th, snap_steps, out, check_every, stag_max, change_max, grace, reason, value,
                xi=None, dco=None, amp=0.0, key=np.uint64(0)):
    """Evolve one screened sample (6, N, N), as :func:`.kernels._evolve_one` (same returns and checks)."""
    N = state.shape[1]
    lk = np.empty((4, N, N), dtype=state.dtype)
    phi = np.empty((N, N), dtype=state.dtype)
    flux = co[FLUX]
    cur = state
    nxt = work
    step = 0
    for t in range(snap_steps.shape[0]):
        target = snap_steps[t]
        while step < target:
            _links(cur, th, flux, lk, phi)
            _sweep(cur, nxt, co, lk, phi, xi, dco)
            if amp > 0.0:
                _add_noise(nxt, amp, key, step)
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
def _evolve_batch(states, work, co, th, snap_steps, out, status, check_every, stag_max, change_max, grace,
                  reason, value, xi=None, dco=None, amp=None, keys=None):
    """Evolve a batch of screened samples in parallel, as :func:`.kernels._evolve_batch` (``th``: θ⁰ tables)."""
    S = states.shape[0]
    for s in prange(S):
        if xi is None:
            if amp is None:
                status[s] = _evolve_one(states[s], work[s], co[s], th[s], snap_steps, out[s], check_every,
                                        stag_max, change_max, grace, reason[s:s + 1], value[s:s + 1])
            else:
                status[s] = _evolve_one(states[s], work[s], co[s], th[s], snap_steps, out[s], check_every,
                                        stag_max, change_max, grace, reason[s:s + 1], value[s:s + 1],
                                        None, None, amp[s], keys[s])
        else:
            if amp is None:
                status[s] = _evolve_one(states[s], work[s], co[s], th[s], snap_steps, out[s], check_every,
                                        stag_max, change_max, grace, reason[s:s + 1], value[s:s + 1],
                                        xi[s], dco[s])
            else:
                status[s] = _evolve_one(states[s], work[s], co[s], th[s], snap_steps, out[s], check_every,
                                        stag_max, change_max, grace, reason[s:s + 1], value[s:s + 1],
                                        xi[s], dco[s], amp[s], keys[s])
