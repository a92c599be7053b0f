"""Gauge-invariant observables of a two-band state (docs/physics.md, "Observables and sign conventions").

All functions accept general link phases (:class:`~.lattice.Links`), so gauge
invariance can be tested directly. Plaquette arrays are indexed by their
lower-left site (i, j): the plaquette spanned by (i, j), (i, j+1), (i+1, j+1),
(i+1, j), periodic.
"""

from __future__ import annotations

import numpy as np

from .config import SimConfig
from .lattice import Links, landau_links

CHANNELS = ("rho1", "rho2", "curlJ")
#: The channels of a screened run (λ < ∞): the local field B joins (docs/file-format.md).
SCREENED_CHANNELS = CHANNELS + ("B",)


def channel_names(config: SimConfig) -> tuple[str, ...]:
    """The network channels of runs of ``config``: :data:`SCREENED_CHANNELS` when λ < ∞, else :data:`CHANNELS`.

    At λ = ∞ the field is the applied uniform B (the same on every plaquette),
    so it is no channel there and the fixed-field files keep their schema.
    """
    return SCREENED_CHANNELS if config.screened else CHANNELS


def densities(psi1: np.ndarray, psi2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Condensate densities ρ_i = |ψ_i|²."""
    return np.abs(psi1) ** 2, np.abs(psi2) ** 2


def link_phases(psi: np.ndarray, links: Links) -> tuple[np.ndarray, np.ndarray]:
    """Gauge-invariant link phases φ_μ(r) = arg(ψ*(r) U_μ(r) ψ(r+μ̂)) ∈ (−π, π]."""
    px = np.angle(np.conj(psi) * links.Ux * np.roll(psi, -1, axis=1))
    py = np.angle(np.conj(psi) * links.Uy * np.roll(psi, -1, axis=0))
    return px, py


def circulation(fx: np.ndarray, fy: np.ndarray) -> np.ndarray:
    """Counter-clockwise sum of a link field around each plaquette."""
    return fx + np.roll(fy, -1, axis=1) - np.roll(fx, -1, axis=0) - fy


def winding_numbers(psi: np.ndarray, links: Links) -> np.ndarray:
    """Vortex number k_p = (Σ_ccw φ + Φ_p) / 2π of every plaquette (int array).

    Σ_p k_p = n_v exactly for any state with ψ ≠ 0 on all sites.
    """
    px, py = link_phases(psi, links)
    k = (circulation(px, py) + links.flux) / (2.0 * np.pi)
    return np.rint(k).astype(np.int64)


def vortex_counts(psi: np.ndarray, links: Links) -> tuple[int, int]:
    """(number of vortices k > 0, number of antivortices k < 0), counted with multiplicity."""
    k = winding_numbers(psi, links)
    return int(k[k > 0].sum()), int(-k[k < 0].sum())


def supercurrent(psi1: np.ndarray, psi2: np.ndarray, links: Links, D: tuple[float, float],
                 nu: float) -> tuple[np.ndarray, np.ndarray]:
    """Link supercurrent J_μ = −∂F/∂θ_μ (both bands and the drag cross term).

    J_μ = 2 Σ_i D_i Im(ψ_i* U_μ ψ_i') + 2ν [Im(ψ1* U_μ ψ2') + Im(ψ2* U_μ ψ1')],
    with ψ' = ψ(r+μ̂).
    """
    out = []
    for U, axis in ((links.Ux, 1), (links.Uy, 0)):
        q1 = U * np.roll(psi1, -1, axis=axis)
        q2 = U * np.roll(psi2, -1, axis=axis)
        j = 2.0 * (D[0] * np.imag(np.conj(psi1) * q1) + D[1] * np.imag(np.conj(psi2) * q2))
        j += 2.0 * nu * (np.imag(np.conj(psi1) * q2) + np.imag(np.conj(psi2) * q1))
        out.append(j)
    return out[0], out[1]


def link_current(a1r, a1i, a2r, a2i, b1r, b1i, b2r, b2i, c, s, D1, D2, nu):
    """Supercurrent on the link a → b with U = c − i s (float64 values), see :func:`supercurrent`.

    The formula of :func:`supercurrent` for one link, a plain function (this
    module imports no numba) that the CUDA channels kernel compiles as a
    device function (:mod:`.cuda.kernels`); with q = U b, Im(a* q) = a_r q_i − a_i q_r
    for each band pair. :func:`supercurrent` keeps NumPy's complex products:
    evaluating this function on arrays instead changes the last bit of some
    currents (NumPy's SIMD complex multiply rounds differently), and the
    network channels x must stay bitwise unchanged.
    """
    q1r = c * b1r + s * b1i
    q1i = c * b1i - s * b1r
    q2r = c * b2r + s * b2i
    q2i = c * b2i - s * b2r
    jj = 2.0 * (D1 * (a1r * q1i - a1i * q1r) + D2 * (a2r * q2i - a2i * q2r))
    jj += 2.0 * nu * ((a1r * q2i - a1i * q2r) + (a2r * q1i - a2i * q1r))
    return jj


def magnetic_field(links: Links, ax: np.ndarray, ay: np.ndarray) -> np.ndarray:
    """Local field B_p = Φ_p / h² on every plaquette (lower-left site [i, j]), Φ_p = B h² + (curl a)_p.

    ``links`` holds the background θ⁰ (its ``flux`` = B h²) and (ax, ay) the
    periodic link field a; the convention of ``reference.plaquette_flux``
    (docs/physics.md, "Lattice form and dynamics"). Σ_p Φ_p = 2π n_v for any
    periodic a. Gauge invariant: a → a + χ(r+μ̂) − χ(r) leaves it unchanged.
    """
    return (links.flux + circulation(ax, ay)) / (links.h * links.h)


def current_curl(jx: np.ndarray, jy: np.ndarray, h: float) -> np.ndarray:
    """Discrete curl of the link current on plaquettes: circulation / h²."""
    return circulation(jx, jy) / (h * h)


def network_channels(psi1: np.ndarray, psi2: np.ndarray, config: SimConfig, *, n_v: int | None = None,
                     nu: float | None = None, a: np.ndarray | None = None) -> np.ndarray:
    """The network's input channels (N, N, C) float32 of :func:`channel_names`: [ρ1, ρ2, curl J] (and B).

    With λ < ∞, ``a`` (2, N, N) is the state's link field (a_x, a_y): the
    current is taken on the links θ⁰ + a and the fourth channel is
    :func:`magnetic_field`.
    """
    n_v = config.n_v if n_v is None else n_v
    nu = config.nu if nu is None else nu
    links = landau_links(config.N, config.L, int(n_v))
    if config.screened and a is None:
        from ..errors import ConfigError

        raise ConfigError(f"the channels of a screened run (lam={config.lam:g}) need its vector potential a")
    psi1 = np.asarray(psi1, dtype=np.complex128)
    psi2 = np.asarray(psi2, dtype=np.complex128)
    r1, r2 = densities(psi1, psi2)
    full = links if not config.screened else Links(
        links.theta_x + a[0], links.theta_y + a[1], links.h, links.flux)
    jx, jy = supercurrent(psi1, psi2, full, config.D, nu)
    out = np.empty((config.N, config.N, len(channel_names(config))), dtype=np.float32)
    out[..., 0] = r1
    out[..., 1] = r2
    out[..., 2] = current_curl(jx, jy, config.h)
    if config.screened:
        out[..., 3] = magnetic_field(links, np.asarray(a[0], dtype=np.float64), np.asarray(a[1], dtype=np.float64))
    return out


def structure_factor(rho: np.ndarray, L: float, n_bins: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged static structure factor S(k) of a field, stacks averaged.

    Uses :func:`tdglnre.physics.fourier.radial_structure_factor`
    (docs/physics.md, "Observables and sign conventions"; docs/drag.md):
    per-mode S(k) = |FFT(ρ − ⟨ρ⟩)|² / N⁴, so that Σ_k S(k) is the variance,
    averaged over shells centred on |k| = 2πm/L with edges at (m ± ½)·2π/L,
    decided in exact integer arithmetic.

    Parameters
    ----------
    rho
        Field (N, N) or a stack (..., N, N); the stack's S(k) are averaged.
    L
        Side length (k = 2π m / L).
    n_bins
        Keep only the first ``n_bins`` shells m = 1..n_bins (default: all,
        up to the Brillouin-zone corner).

    Returns
    -------
    k, S : shell centres 2πm/L and the shell-mean S(k).
    """
    from ..errors import ConfigError
    from .fourier import radial_structure_factor

    rho = np.asarray(rho, dtype=np.float64)
    k, S, _ = radial_structure_factor(rho, L)
    if S.ndim > 1:
        S = S.reshape(-1, S.shape[-1]).mean(axis=0)
    if n_bins is not None:
        if isinstance(n_bins, bool) or int(n_bins) != n_bins or n_bins < 1:
            raise ConfigError(f"n_bins must be a positive integer, got {n_bins!r}")
        k, S = k[: int(n_bins)], S[: int(n_bins)]
    return k, S
