"""Lattice geometry and Peierls link phases (docs/physics.md, "Lattice").

Site (i, j) has y = i·h, x = j·h; arrays are indexed [i, j]. The link phase
θ_μ(i, j) is ∫A·dl from site (i, j) to its neighbour in direction μ (x: j+1,
y: i+1, both periodic); the link variable is U_μ = exp(-i θ_μ).

In the Landau gauge A = (0, B x) with the seam twist:

* y-links: θ_y(i, j) = B h² j for every row, including the wrap in y;
* x-links: θ_x(i, j) = 0 except the seam (i, N-1) → (i, 0), which carries
  θ_x(i, N-1) = -B L h i.

Every plaquette then carries flux B h² exactly when B L² = 2π n_v.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import field_from_n_v


@dataclass(frozen=True)
class Links:
    """General link phases θ_x, θ_y on an N×N torus (arrays [i, j])."""

    theta_x: np.ndarray
    """Phase of the link (i, j) → (i, j+1)."""
    theta_y: np.ndarray
    """Phase of the link (i, j) → (i+1, j)."""
    h: float
    """Lattice spacing."""
    flux: float
    """Flux per plaquette Φ_p = B h² (the uniform field's value)."""

    @property
    def N(self) -> int:
        """Sites per side."""
        return self.theta_x.shape[0]

    @property
    def Ux(self) -> np.ndarray:
        """Link variables exp(-i θ_x)."""
        return np.exp(-1j * self.theta_x)

    @property
    def Uy(self) -> np.ndarray:
        """Link variables exp(-i θ_y)."""
        return np.exp(-1j * self.theta_y)

    def gauge_transformed(self, chi: np.ndarray) -> "Links":
        """Links after ψ → e^{iχ} ψ: θ_μ(r) → θ_μ(r) + χ(r+μ̂) − χ(r)."""
        tx = self.theta_x + np.roll(chi, -1, axis=1) - chi
        ty = self.theta_y + np.roll(chi, -1, axis=0) - chi
        return Links(tx, ty, self.h, self.flux)


def seam_phases(N: int, L: float, n_v: int) -> tuple[np.ndarray, np.ndarray]:
    """The two 1-D phase profiles that define the Landau-gauge links.

    Returns
    -------
    phi_y : (N,) array
        θ_y(·, j) = B h² j, per column j.
    phi_seam : (N,) array
        θ_x(i, N-1) = -B L h i, per row i.
    """
    h = L / N
    B = field_from_n_v(n_v, L)
    idx = np.arange(N, dtype=np.float64)
    return B * h * h * idx, -B * L * h * idx


def landau_links(N: int, L: float, n_v: int) -> Links:
    """Full link-phase arrays of the Landau gauge with the seam twist."""
    h = L / N
    phi_y, phi_seam = seam_phases(N, L, n_v)
    theta_y = np.broadcast_to(phi_y[None, :], (N, N)).copy()
    theta_x = np.zeros((N, N))
    theta_x[:, N - 1] = phi_seam
    return Links(theta_x, theta_y, h, field_from_n_v(n_v, L) * h * h)


def gaussian_filter_field(white: np.ndarray, h: float, length: float) -> np.ndarray:
    """Smooth white noise into a unit-variance Gaussian random field (periodic).

    Each Fourier mode of ``white`` (N, N), i.i.d. N(0, 1), is multiplied by
    exp(−k²ℓ²/4), k = 2π·fftfreq(N, h) per axis, so the power spectrum is
    exp(−k²ℓ²/2) and the correlation ⟨ξ(r)ξ(r′)⟩ ≈ exp(−|r − r′|²/2ℓ²) for
    h ≲ ℓ ≪ L. The result is divided by the *expected* standard deviation
    sqrt(Σ_k exp(−k²ℓ²/2)/N²), so every site has variance exactly 1 over
    realisations (docs/physics.md, "Pinning disorder"). ℓ = 0 returns the
    white noise itself.
    """
    white = np.asarray(white, dtype=np.float64)
    N = white.shape[0]
    if white.shape != (N, N):
        raise ValueError(f"white noise must be square (N, N), got shape {white.shape}")
    if length == 0:
        return white.copy()
    k = 2.0 * np.pi * np.fft.fftfreq(N, d=h)
    k2 = k[:, None] ** 2 + k[None, :] ** 2
    amp = np.exp(-0.25 * k2 * length * length)
    field = np.fft.ifft2(np.fft.fft2(white) * amp).real
    return field / np.sqrt(np.mean(amp * amp))
