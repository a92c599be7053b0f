"""Vortex point patterns of screened states: positions, nearest neighbours, S(k), vortex-free area.

docs/physics.md, "Clusters in quenches", uses these to tell vortex clusters
beside vortex-free (Meissner) domains from a spread-out vortex arrangement.
Pure NumPy.

* :func:`winding_field` — the vortex number of every plaquette of one band
  with the links θ⁰ + a of a screened state (the flux of a plaquette is
  then B h² + (curl a)_p, not the uniform B h²).
* :func:`vortex_positions` — plaquette centres (x, y) of the vortices, one
  row per flux quantum.
* :func:`nearest_neighbour_distances` — minimum-image distance from each
  vortex to its nearest other vortex.
* :func:`point_structure_factor` — S(k) = |Σⱼ e^{−ik·rⱼ}|²/n of the vortex
  positions, shell-averaged (the shells of :mod:`tdglnre.physics.fourier`);
  a Poisson pattern gives 1, a lattice ≪ 1 at small k, clusters ≫ 1.
* :func:`vortex_free_fraction` — the fraction of the area farther than d
  from every vortex.
* :func:`pattern_statistics` — the numbers reported per state.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from ..physics.fourier import radial_structure_factor
from ..physics.lattice import Links, landau_links
from ..physics.observables import circulation, link_phases


def winding_field(psi: np.ndarray, ax: np.ndarray, ay: np.ndarray, L: float, n_v: int) -> np.ndarray:
    """Vortex number k_p of every plaquette of band ``psi`` (N, N) in a screened state (int, [i, j] = lower-left site).

    k_p = (Σ_ccw φ + Φ_p)/2π with φ the gauge-invariant link phases on the
    links θ⁰ + a and Φ_p = B h² + (curl a)_p; Σ_p k_p = n_v when ψ ≠ 0
    everywhere. Gauge invariant.
    """
    N = psi.shape[-1]
    bg = landau_links(N, L, n_v)
    full = Links(bg.theta_x + ax, bg.theta_y + ay, bg.h, bg.flux)
    px, py = link_phases(np.asarray(psi, dtype=np.complex128), full)
    k = (circulation(px, py) + bg.flux + circulation(ax, ay)) / (2.0 * np.pi)
    return np.rint(k).astype(np.int64)


def vortex_positions(k: np.ndarray, L: float, sign: int = 1) -> np.ndarray:
    """(n, 2) positions (x, y) of the plaquette centres with sign(k) = ``sign``, repeated |k| times."""
    N = k.shape[-1]
    h = L / N
    sel = k * sign > 0
    i, j = np.nonzero(sel)
    reps = np.abs(k[sel])
    return np.repeat(np.stack([(j + 0.5) * h, (i + 0.5) * h], axis=1), reps, axis=0)


def _separations(a: np.ndarray, b: np.ndarray, L: float) -> np.ndarray:
    """Minimum-image distances |a_i − b_j| on the L×L torus, (len(a), len(b))."""
    d = a[:, None, :] - b[None, :, :]
    d -= L * np.rint(d / L)
    return np.sqrt((d * d).sum(axis=-1))


def nearest_neighbour_distances(pos: np.ndarray, L: float) -> np.ndarray:
    """Distance from each vortex to its nearest other vortex (minimum image); needs ≥ 2 vortices."""
    pos = np.asarray(pos, dtype=np.float64)
    if pos.shape[0] < 2:
        raise ConfigError(f"nearest-neighbour distances need at least 2 vortices, got {pos.shape[0]}")
    d = _separations(pos, pos, L)
    np.fill_diagonal(d, np.inf)
    return d.min(axis=1)


def point_structure_factor(k: np.ndarray, L: float) -> tuple[np.ndarray, np.ndarray]:
    """Shell-averaged S(q) = |Σⱼ e^{−iq·rⱼ}|²/n of the vortices of a winding field ``k`` (N, N) (k > 0 counted).

    The vortices sit on plaquette centres, a grid, so S(q) is the lattice
    structure factor of the count field (:func:`.fourier.radial_structure_factor`,
    per mode |FFT(δf)|²/N⁴) times N⁴/n. Returns (q, S) for the shells q = 2πm/L.
    """
    counts = np.where(k > 0, k, 0).astype(np.float64)
    n = counts.sum()
    if n < 1:
        raise ConfigError("no vortex in the state: S(k) of its vortices is undefined")
    q, S, _ = radial_structure_factor(counts, L)
    N = k.shape[-1]
    return q, S * float(N) ** 4 / n


def vortex_free_fraction(pos: np.ndarray, L: float, d: float, grid: int = 128) -> float:
    """Fraction of the torus farther than ``d`` from every vortex (sampled on a grid×grid mesh of cell centres)."""
    x = (np.arange(grid) + 0.5) * L / grid
    pts = np.stack(np.meshgrid(x, x, indexing="xy"), axis=-1).reshape(-1, 2)
    near = np.zeros(pts.shape[0], dtype=bool)
    for p in np.asarray(pos, dtype=np.float64):
        near |= _separations(pts, p[None, :], L)[:, 0] <= d
    return float(1.0 - near.mean())


#: Poisson reference values (density n): ⟨d_NN⟩ = ½ n^{−1/2}; the vortex-free fraction at d is exp(−nπd²).
def poisson_free_fraction(n_density: float, d: float) -> float:
    """exp(−nπd²): the vortex-free fraction of a Poisson pattern of density n at distance d."""
    return float(np.exp(-n_density * np.pi * d * d))


def pattern_statistics(k: np.ndarray, L: float, *, free_distance: float, q_small: int = 2) -> dict:
    """The clustering numbers of one winding field ``k`` (N, N).

    ``clark_evans`` = ⟨d_NN⟩ / (½ n^{−1/2}) (1: Poisson, > 1: spread out,
    < 1: clustered); ``cv_nn`` = std/mean of d_NN; ``free_fraction`` =
    :func:`vortex_free_fraction` at ``free_distance``; ``s_small`` = mean
    point S(q) over the first ``q_small`` shells (q = 2πm/L, m ≤ q_small).
    """
    pos = vortex_positions(k, L)
    n = pos.shape[0]
    dens = n / (L * L)
    nn = nearest_neighbour_distances(pos, L)
    _, S = point_structure_factor(k, L)
    return dict(n_vortices=int(n), n_antivortices=int(-k[k < 0].sum()), nn_mean=float(nn.mean()),
                clark_evans=float(nn.mean() / (0.5 / np.sqrt(dens))), cv_nn=float(nn.std() / nn.mean()),
                free_fraction=vortex_free_fraction(pos, L, free_distance),
                s_small=float(S[:q_small].mean()))
