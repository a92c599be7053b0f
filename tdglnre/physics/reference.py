"""Plain NumPy reference of the two-band TDGL update, energy and gradient.

Readable rather than fast: complex arrays, ``np.roll`` for neighbours and
general link phases (any gauge). The numba kernels in :mod:`.kernels` are
tested against these functions, and ``tdglnre bench`` times them.

Conventions (docs/physics.md, "Lattice"): ψ arrays are [i, j] = [y, x];
D_μψ(r) = (U_μ(r) ψ(r+μ̂) − ψ(r)) / h with U_μ = exp(−i θ_μ).

Nuisance physics (docs/physics.md, "Nuisance physics"): pinning disorder is
``alpha`` given per band as an (N, N) array α_b(1 + δξ(r)) — every function
here broadcasts it; thermal noise is :func:`langevin_step` with the normals of
:func:`thermal_normals`, a NumPy transcription of the kernel's counter-based
stream.
"""

from __future__ import annotations

import numpy as np

from .lattice import Links
from .observables import supercurrent


def forward_difference(psi: np.ndarray, links: Links) -> tuple[np.ndarray, np.ndarray]:
    """Covariant forward differences (D_x ψ, D_y ψ) on the links."""
    h = links.h
    dx = (links.Ux * np.roll(psi, -1, axis=1) - psi) / h
    dy = (links.Uy * np.roll(psi, -1, axis=0) - psi) / h
    return dx, dy


def covariant_laplacian(psi: np.ndarray, links: Links) -> np.ndarray:
    """Δ_Aψ(r) = Σ_μ [U_μ(r) ψ(r+μ̂) + U_μ*(r−μ̂) ψ(r−μ̂) − 2ψ(r)] / h²."""
    Ux, Uy = links.Ux, links.Uy
    out = Ux * np.roll(psi, -1, axis=1) + np.roll(np.conj(Ux) * psi, 1, axis=1)
    out += Uy * np.roll(psi, -1, axis=0) + np.roll(np.conj(Uy) * psi, 1, axis=0)
    out -= 4.0 * psi
    return out / links.h**2


def rhs(psi1, psi2, links: Links, *, alpha, beta, D, eta, nu):
    """Right-hand side ∂_t ψ_i = −(1/h²) ∂F/∂ψ_i* of both bands."""
    lap1 = covariant_laplacian(psi1, links)
    lap2 = covariant_laplacian(psi2, links)
    r1 = D[0] * lap1 + nu * lap2 - alpha[0] * psi1 - beta[0] * np.abs(psi1) ** 2 * psi1 + eta * psi2
    r2 = D[1] * lap2 + nu * lap1 - alpha[1] * psi2 - beta[1] * np.abs(psi2) ** 2 * psi2 + eta * psi1
    return r1, r2


def euler_step(psi1, psi2, links: Links, dt: float, **params):
    """One explicit Euler step of the gradient flow."""
    r1, r2 = rhs(psi1, psi2, links, **params)
    return psi1 + dt * r1, psi2 + dt * r2


def evolve(psi1, psi2, links: Links, dt: float, n_steps: int, **params):
    """``n_steps`` Euler steps."""
    for _ in range(n_steps):
        psi1, psi2 = euler_step(psi1, psi2, links, dt, **params)
    return psi1, psi2


def energy(psi1, psi2, links: Links, *, alpha, beta, D, eta, nu) -> float:
    """Free energy F (docs/physics.md, "Lattice free energy"), including the drag cross term.

    ``alpha`` may hold per-site arrays (pinning disorder).
    """
    h2 = links.h**2
    d1x, d1y = forward_difference(psi1, links)
    d2x, d2y = forward_difference(psi2, links)
    dens = D[0] * (np.abs(d1x) ** 2 + np.abs(d1y) ** 2)
    dens += D[1] * (np.abs(d2x) ** 2 + np.abs(d2y) ** 2)
    for p, a, b in ((psi1, alpha[0], beta[0]), (psi2, alpha[1], beta[1])):
        rho = np.abs(p) ** 2
        dens += a * rho + 0.5 * b * rho**2
    dens += 2.0 * nu * np.real(np.conj(d1x) * d2x + np.conj(d1y) * d2y)
    dens -= 2.0 * eta * np.real(np.conj(psi1) * psi2)
    return float(h2 * dens.sum())


def gradient_wirtinger(psi1, psi2, links: Links, **params):
    """∂F/∂ψ_i* = −h² × rhs (the same expression the dynamics uses)."""
    r1, r2 = rhs(psi1, psi2, links, **params)
    h2 = links.h**2
    return -h2 * r1, -h2 * r2


# ----------------------------------------------------------------- thermal noise
_M64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB
_THERMAL_TAG = 0x544845524D414C31


def _mix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser on uint64 arrays (wrapping arithmetic)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(_MIX1)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(_MIX2)
    return z ^ (z >> np.uint64(31))


def noise_key(seed: int, index: int) -> int:
    """Key of sample ``index``'s noise stream in run ``seed`` (Python integers, as the kernel)."""
    def mix(z: int) -> int:
        z &= _M64
        z = ((z ^ (z >> 30)) * _MIX1) & _M64
        z = ((z ^ (z >> 27)) * _MIX2) & _M64
        return z ^ (z >> 31)

    a = mix(int(seed) + _GOLDEN)
    b = mix((int(index) ^ _THERMAL_TAG) + 2 * _GOLDEN)
    return mix(a + b)


def _stream_words(key: int, step: int, N: int, m: int) -> np.ndarray:
    """The words H(4s + m) (N, N) of every site s = (step·N + i)·N + j: H(c) = mix(mix(c + γ) XOR key)."""
    site = (np.uint64(step) * np.uint64(N * N) + np.arange(N * N, dtype=np.uint64)).reshape(N, N)
    return _mix64(_mix64(site * np.uint64(4) + np.uint64(m) + np.uint64(_GOLDEN)) ^ np.uint64(key))


def thermal_normals(key: int, step: int, N: int) -> np.ndarray:
    """Standard normals (4, N, N) of Euler step ``step``: Box–Muller of the hashed counters.

    Site s = (step·N + i)·N + j takes the words H(4s + m), H(c) = mix(mix(c + γ)
    XOR key): band b's radius is √(−2 ln u) with u = ((H(4s + b − 1) >> 12) + ½)·2⁻⁵²,
    its angle 2π·t/2³² with t the high (band 1) or low (band 2) 32 bits of H(4s + 2);
    (Re ψ_b, Im ψ_b) = radius·(cos, sin)(angle). libm here, the kernel's own
    polynomials there (float64: agreement to ~1e-15).
    """
    h = _stream_words(key, step, N, 2)
    out = np.empty((4, N, N))
    for b, t in enumerate((h >> np.uint64(32), h & np.uint64(0xFFFFFFFF))):
        u = ((_stream_words(key, step, N, b) >> np.uint64(12)).astype(np.float64) + 0.5) * 2.0**-52
        r = np.sqrt(-2.0 * np.log(u))
        theta = 2.0 * np.pi * t.astype(np.float64) / 2.0**32
        out[2 * b] = r * np.cos(theta)
        out[2 * b + 1] = r * np.sin(theta)
    return out


def langevin_step(psi1, psi2, links: Links, dt: float, T: float, normals: np.ndarray, **params):
    """One Euler–Maruyama step ψ ← ψ + dt·∂_tψ + sqrt(T·dt)/h·(g_re + i g_im).

    ``normals`` (4, N, N) are the standard normals of (Re ψ1, Im ψ1, Re ψ2,
    Im ψ2) — :func:`thermal_normals` reproduces the kernel's.
    """
    p1, p2 = euler_step(psi1, psi2, links, dt, **params)
    amp = np.sqrt(T * dt) / links.h
    return p1 + amp * (normals[0] + 1j * normals[1]), p2 + amp * (normals[2] + 1j * normals[3])


# ----------------------------------------------------------------- screening (λ < ∞)
# docs/physics.md, "Screening (λ < ∞)": link phases θ = θ⁰ + a with θ⁰ the
# Landau-gauge background of ``links`` and a a periodic per-link field; the
# plaquette flux is Φ_p = B h² + (curl a)_p and the field energy (c/h²) Σ_p Φ_p².


def screened_links(links: Links, ax: np.ndarray, ay: np.ndarray) -> Links:
    """The links θ⁰ + a that ψ sees (``links`` holds the background θ⁰)."""
    return Links(links.theta_x + ax, links.theta_y + ay, links.h, links.flux)


def plaquette_flux(links: Links, ax: np.ndarray, ay: np.ndarray) -> np.ndarray:
    """Φ_p = B h² + (curl a)_p of every plaquette (lower-left corner [i, j]); B_p = Φ_p / h²."""
    return links.flux + ax + np.roll(ay, -1, axis=1) - np.roll(ax, -1, axis=0) - ay


def field_energy(links: Links, ax: np.ndarray, ay: np.ndarray, c: float) -> float:
    """h² Σ_p c B_p² = (c/h²) Σ_p Φ_p²."""
    phi = plaquette_flux(links, ax, ay)
    return float(c / links.h**2 * np.sum(phi * phi))


def field_force(links: Links, ax: np.ndarray, ay: np.ndarray, c: float) -> tuple[np.ndarray, np.ndarray]:
    """∂/∂a_μ of the field energy: (2c/h²)(Φ_{p⁺} − Φ_{p⁻}) on every link.

    The x-link [i, j] runs counter-clockwise around plaquette [i, j] and
    clockwise around [i−1, j]; the y-link [i, j] counter-clockwise around
    [i, j−1] and clockwise around [i, j].
    """
    phi = plaquette_flux(links, ax, ay)
    k = 2.0 * c / links.h**2
    return k * (phi - np.roll(phi, 1, axis=0)), k * (np.roll(phi, 1, axis=1) - phi)


def screened_energy(psi1, psi2, ax, ay, links: Links, *, c: float, alpha, beta, D, eta, nu) -> float:
    """F(ψ, a) = F_ψ(links θ⁰ + a) + (c/h²) Σ_p Φ_p²."""
    full = screened_links(links, ax, ay)
    return energy(psi1, psi2, full, alpha=alpha, beta=beta, D=D, eta=eta, nu=nu) + field_energy(links, ax, ay, c)


def screened_rhs(psi1, psi2, ax, ay, links: Links, *, c: float, sigma: float, alpha, beta, D, eta, nu):
    """(∂ₜψ₁, ∂ₜψ₂, ∂ₜa_x, ∂ₜa_y) of the gradient flow in the temporal gauge.

    ∂ₜψᵢ = −(1/h²) ∂F/∂ψᵢ* as at λ = ∞ (with the links θ⁰ + a) and
    σ ∂ₜa_μ = −∂F/∂a_μ = J_μ − (2c/h²)(Φ_{p⁺} − Φ_{p⁻}).
    """
    full = screened_links(links, ax, ay)
    r1, r2 = rhs(psi1, psi2, full, alpha=alpha, beta=beta, D=D, eta=eta, nu=nu)
    jx, jy = supercurrent(psi1, psi2, full, D, nu)  # J_μ = −∂F/∂θ_μ
    fx, fy = field_force(links, ax, ay, c)
    return r1, r2, (jx - fx) / sigma, (jy - fy) / sigma


def screened_euler_step(psi1, psi2, ax, ay, links: Links, dt: float, **params):
    """One explicit Euler step of (ψ₁, ψ₂, a_x, a_y)."""
    r1, r2, sx, sy = screened_rhs(psi1, psi2, ax, ay, links, **params)
    return psi1 + dt * r1, psi2 + dt * r2, ax + dt * sx, ay + dt * sy


def link_normals(key: int, step: int, N: int) -> np.ndarray:
    """Standard normals (2, N, N) of a_x, a_y at Euler step ``step``: the word H(4s + 3) of every site.

    Its high 32 bits m give the radius √(−2 ln u), u = (m·2²⁰ + ½)·2⁻⁵² (the
    kernel's radius of the word with its low half cleared), its low 32 bits t
    the angle 2π·t/2³²; (g_x, g_y) = radius·(cos, sin)(angle).
    """
    w = _stream_words(key, step, N, 3)
    m = w >> np.uint64(32)
    u = (m.astype(np.float64) * 2.0**20 + 0.5) * 2.0**-52
    r = np.sqrt(-2.0 * np.log(u))
    theta = 2.0 * np.pi * (w & np.uint64(0xFFFFFFFF)).astype(np.float64) / 2.0**32
    return np.stack([r * np.cos(theta), r * np.sin(theta)])


def screened_langevin_step(psi1, psi2, ax, ay, links: Links, dt: float, T: float, normals: np.ndarray,
                           a_normals: np.ndarray, **params):
    """One Euler–Maruyama step of (ψ₁, ψ₂, a_x, a_y): ψ kicked as :func:`langevin_step`, a by √(2T·dt/σ)·g.

    Fluctuation–dissipation for σ ∂ₜa = −∂F/∂a + noise makes exp(−F/T) stationary
    in a as in ψ; ``normals`` (4, N, N) and ``a_normals`` (2, N, N) are the
    kernel's (:func:`thermal_normals`, :func:`link_normals`).
    """
    p1, p2, bx, by = screened_euler_step(psi1, psi2, ax, ay, links, dt, **params)
    amp = np.sqrt(T * dt) / links.h
    amp_a = np.sqrt(2.0 * T * dt / params["sigma"])
    return (p1 + amp * (normals[0] + 1j * normals[1]), p2 + amp * (normals[2] + 1j * normals[3]),
            bx + amp_a * a_normals[0], by + amp_a * a_normals[1])


def screened_gradient(psi1, psi2, ax, ay, links: Links, *, c: float, alpha, beta, D, eta, nu):
    """∂F/∂(Re ψ₁, Im ψ₁, Re ψ₂, Im ψ₂, a_x, a_y), for minimisers (sigma plays no part)."""
    r1, r2, sx, sy = screened_rhs(psi1, psi2, ax, ay, links, c=c, sigma=1.0,
                                  alpha=alpha, beta=beta, D=D, eta=eta, nu=nu)
    h2 = links.h**2
    return (-2.0 * h2 * r1.real, -2.0 * h2 * r1.imag, -2.0 * h2 * r2.real, -2.0 * h2 * r2.imag, -sx, -sy)
