"""Structure factors S(k, t) of stored channels (docs/physics.md, "Observables and sign conventions"; docs/drag.md).

Conventions
-----------
For a real field f on an N×N periodic lattice with fluctuation δf = f − ⟨f⟩,
the per-mode structure factor is

    S(k) = |FFT(δf)(k)|² / N⁴,

normalised so that Σ_k S(k) equals the spatial variance ⟨δf²⟩ (Parseval).
Wave vectors are k = 2π(m_x, m_y)/L with integer m in FFT order. The radial
average groups modes into shells **centred** on |k| = 2πm/L, m = 1, 2, …,
with edges at (m ± ½)·2π/L. Shell membership is decided in exact integer
arithmetic on q = m_x² + m_y² (shell m holds m² − m + 1 ≤ q ≤ m² + m), so no
axis wave vector can fall on an edge by floating-point rounding. Shells run to
the Brillouin-zone corner, so Σ_m n_m S̄_m = ⟨δf²⟩ exactly, with n_m the number
of modes in shell m and S̄_m their mean.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError
from ..physics.fourier import mode_structure_factor, radial_structure_factor, shell_index

__all__ = ["StructureSeries", "interband_phase", "mode_structure_factor", "parameter_bins", "radial_structure_factor",
           "shell_index", "structure_series"]


def interband_phase(psi: np.ndarray) -> np.ndarray:
    """cos(φ1 − φ2) from ψ (..., 2, N, N) complex (band axis third from last)."""
    psi = np.asarray(psi)
    p1, p2 = psi[..., 0, :, :], psi[..., 1, :, :]
    z = p1 * np.conj(p2)
    a = np.abs(z)
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.where(a > 0, z.real / np.where(a > 0, a, 1.0), 0.0)
    return c


@dataclass
class StructureSeries:
    """S(k, t) of each channel for a set of samples.

    ``S[name]`` has shape (n_samples, T, M): sample, snapshot time, shell.
    """

    k: np.ndarray
    """Shell centres 2πm/L (M,)."""
    t: np.ndarray
    """Snapshot times (T,)."""
    S: dict[str, np.ndarray]
    """Channel name → (n_samples, T, M)."""
    counts: np.ndarray
    """Modes per shell (M,)."""
    theta: dict[str, np.ndarray] = field(default_factory=dict)
    """Per-sample parameters (name → (n_samples,)) when known."""

    @property
    def n_samples(self) -> int:
        """Number of samples."""
        return next(iter(self.S.values())).shape[0] if self.S else 0

    def mean(self, name: str, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Ensemble mean and standard error (T, M) of channel ``name`` over ``mask``'s samples."""
        a = self.S[name] if mask is None else self.S[name][np.asarray(mask, dtype=bool)]
        n = a.shape[0]
        if n == 0:
            raise ConfigError(f"no samples selected for channel {name!r}")
        se = a.std(axis=0, ddof=1) / math.sqrt(n) if n > 1 else np.full(a.shape[1:], np.nan)
        return a.mean(axis=0), se

    def peak_shell(self, name: str) -> int:
        """Shell index (0-based) of the peak of the time-averaged ensemble-mean S(k) of channel ``name``."""
        mean, _ = self.mean(name)
        return int(np.argmax(mean.mean(axis=0)))

    def to_json(self) -> dict:
        """Plain-JSON summary: k, t, n_samples and the ensemble-mean S per channel ([t][k])."""
        return {
            "k": self.k.tolist(),
            "t": self.t.tolist(),
            "n_samples": self.n_samples,
            "S": {name: self.mean(name)[0].tolist() for name in self.S},
            "S_stderr": {name: np.nan_to_num(self.mean(name)[1]).tolist() for name in self.S},
        }


def parameter_bins(values: np.ndarray, n_bins: int, low: float | None = None,
                   high: float | None = None) -> list[tuple[float, float, np.ndarray]]:
    """Group samples by one parameter: ``[(lo, hi, mask), ...]``, empty groups dropped.

    Samples exactly at ``low`` form their own group ``(low, low)`` when there
    are any and not all samples are there (the point mass ν = 0 of a
    spike-and-slab ensemble); the rest is cut into ``n_bins`` equal-width
    bins over [low, high] (the last bin closed).

    Parameters
    ----------
    values
        The parameter per sample (S,).
    n_bins
        Number of equal-width bins.
    low, high
        Range to bin (default: the values' min and max).
    """
    if isinstance(n_bins, bool) or int(n_bins) != n_bins or n_bins < 1:
        raise ConfigError(f"number of bins must be a positive integer, got {n_bins!r}")
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return []
    lo = float(v.min()) if low is None else float(low)
    hi = float(v.max()) if high is None else float(high)
    out: list[tuple[float, float, np.ndarray]] = []
    at_low = v == lo
    rest = ~at_low if 0 < at_low.sum() < v.size else np.ones(v.size, dtype=bool)
    if not rest.all():
        out.append((lo, lo, at_low))
    if hi <= lo:
        out.append((lo, hi, rest))
        return [g for g in out if g[2].any()]
    edges = np.linspace(lo, hi, int(n_bins) + 1)
    for b in range(int(n_bins)):
        last = b == int(n_bins) - 1
        m = rest & (v >= edges[b]) & ((v <= edges[b + 1]) if last else (v < edges[b + 1]))
        if m.any():
            out.append((float(edges[b]), float(edges[b + 1]), m))
    return out



def structure_series(x: np.ndarray, L: float, channel_names: tuple[str, ...], *, times: np.ndarray,
                     psi: np.ndarray | None = None, theta: dict[str, np.ndarray] | None = None) -> StructureSeries:
    """S(k, t) of every channel of images x (S, T, N, N, C), plus cos(φ1 − φ2) when ψ is given.

    Parameters
    ----------
    x
        Channel images (n_samples, T, N, N, C) as stored in an ensemble.
    L
        Side length.
    channel_names
        Names of the C channels (e.g. ("rho1", "rho2", "curlJ")).
    times
        Snapshot times (T,).
    psi
        Optional order parameters (n_samples, T, 2, N, N) complex; adds "cos_dphi".
    theta
        Optional per-sample parameters kept for grouping.
    """
    x = np.asarray(x)
    if x.ndim != 5:
        raise ConfigError(f"images must have shape (samples, T, N, N, C), got {x.shape}")
    if x.shape[-1] != len(channel_names):
        raise ConfigError(f"{x.shape[-1]} channels but {len(channel_names)} names {channel_names}")
    times = np.asarray(times, dtype=np.float64)
    if times.shape != (x.shape[1],):
        raise ConfigError(f"{x.shape[1]} snapshots but {times.shape[0]} times")
    out: dict[str, np.ndarray] = {}
    k = counts = None
    for c, name in enumerate(channel_names):
        k, S, counts = radial_structure_factor(x[..., c], L)
        out[name] = S
    if psi is not None:
        k, S, counts = radial_structure_factor(interband_phase(psi), L)
        out["cos_dphi"] = S
    return StructureSeries(k=k, t=times, S=out, counts=counts,
                           theta={n: np.asarray(v) for n, v in (theta or {}).items()})
