"""Structure factors on the periodic lattice (docs/physics.md, "Observables and sign conventions").

For a real field f on an N×N torus with fluctuation δf = f − ⟨f⟩ the per-mode
structure factor is S(k) = |FFT(δf)(k)|² / N⁴, so Σ_k S(k) is the variance
⟨δf²⟩. Radial averages use shells centred on |k| = 2πm/L with edges at
(m ± ½)·2π/L, decided in exact integer arithmetic on q = m_x² + m_y² (shell m
holds m² − m + 1 ≤ q ≤ m² + m), so no axis wave vector falls on an edge by
rounding. The time-series analysis built on these lives in
:mod:`tdglnre.analysis.structure`.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ConfigError


def _fft_integers(N: int) -> np.ndarray:
    """Integer wave numbers m of an N-point FFT, in FFT order (0, 1, …, −1)."""
    return np.rint(np.fft.fftfreq(N) * N).astype(np.int64)


def shell_index(N: int) -> np.ndarray:
    """Shell number m (0 for k = 0) of every FFT mode of an N×N lattice, (N, N) int.

    Shell m holds the modes with (m − ½)² ≤ m_x² + m_y² < (m + ½)²; on integers
    q = m_x² + m_y² that is m² − m + 1 ≤ q ≤ m² + m (m ≥ 1), decided exactly.
    """
    if N < 2:
        raise ConfigError(f"N must be >= 2 for a structure factor, got {N}")
    m = _fft_integers(N)
    q = m[:, None] ** 2 + m[None, :] ** 2
    # first guess from floating point, then exact integer correction
    shell = np.floor(np.sqrt(q.astype(np.float64)) + 0.5).astype(np.int64)
    too_low = shell * shell + shell < q
    shell[too_low] += 1
    too_high = (shell > 0) & ((shell - 1) * (shell - 1) + (shell - 1) >= q)
    shell[too_high] -= 1
    return shell


def mode_structure_factor(f: np.ndarray) -> np.ndarray:
    """Per-mode S(k) = |FFT(f − ⟨f⟩)|² / N⁴ of (..., N, N) fields; Σ_k S = variance."""
    f = np.asarray(f, dtype=np.float64)
    if f.ndim < 2 or f.shape[-1] != f.shape[-2]:
        raise ConfigError(f"structure factor needs square fields (..., N, N), got shape {f.shape}")
    N = f.shape[-1]
    d = f - f.mean(axis=(-2, -1), keepdims=True)
    F = np.fft.fft2(d)
    return (F.real ** 2 + F.imag ** 2) / float(N) ** 4


def radial_structure_factor(f: np.ndarray, L: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shell-averaged S(k) of one field or a stack (..., N, N).

    Parameters
    ----------
    f
        Real field(s), last two axes the lattice.
    L
        Side length of the torus (k = 2πm/L).

    Returns
    -------
    k : (M,) shell centres 2πm/L, m = 1..M (M reaches the zone corner).
    S : (..., M) mean per-mode S(k) in each shell (the stack axes are kept).
    counts : (M,) number of modes in each shell; Σ counts·S = variance.
    """
    if not (math.isfinite(L) and L > 0):
        raise ConfigError(f"L must be positive and finite, got {L!r}")
    P = mode_structure_factor(f)
    N = P.shape[-1]
    shell = shell_index(N).ravel()
    M = int(shell.max())
    counts = np.bincount(shell, minlength=M + 1)[1:]
    lead = P.shape[:-2]
    flat = P.reshape(-1, N * N)
    sums = np.zeros((flat.shape[0], M + 1))
    for r in range(flat.shape[0]):
        sums[r] = np.bincount(shell, weights=flat[r], minlength=M + 1)
    S = (sums[:, 1:] / counts).reshape(*lead, M)
    k = 2.0 * np.pi * np.arange(1, M + 1) / L
    return k, S, counts
