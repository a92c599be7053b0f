"""Stochastic Lanczos quadrature (SLQ) for the spectral density of a symmetric operator.

For a symmetric n×n operator H with eigenpairs (λ_a, u_a) the normalised
spectral measure is μ(λ) = (1/n) Σ_a δ(λ − λ_a). For a Rademacher probe
v ∈ {±1}^n, E[vᵀ f(H) v] = tr f(H), so

    ∫ f dμ = (1/n) tr f(H) ≈ (1/n_probes) Σ_probes Σ_k τ_k² f(θ_k),

where θ_k are the Ritz values of m Lanczos steps started at v/‖v‖ and τ_k the
first components of the corresponding Ritz vectors (m-point Gauss quadrature of
the probe's spectral measure; exact for polynomials of degree ≤ 2m − 1).

Lanczos here uses full reorthogonalisation (two passes of classical
Gram–Schmidt against all previous Lanczos vectors): memory n·m floats, time
O(n m²) per probe, which is negligible next to the m Hessian-vector products for
m ≲ 200. Without reorthogonalisation the Ritz values acquire spurious copies
("ghosts") and the weights of well-separated extreme eigenvalues get split —
the Gauss rule stays accurate in the weak sense, but the reorthogonalised
version is cleaner and cheap enough.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import numpy as np
import scipy.linalg

log = logging.getLogger(__name__)

MatVec = Callable[[np.ndarray], np.ndarray]


def lanczos(matvec: MatVec, v0: np.ndarray, m: int, *, reorthogonalize: bool = True
            ) -> tuple[np.ndarray, np.ndarray]:
    """m steps of symmetric Lanczos from ``v0``.

    Parameters
    ----------
    matvec
        Function returning H v for a vector v of length n.
    v0
        Starting vector (normalised here).
    m
        Number of steps (the tridiagonal matrix is at most m×m; fewer if an
        invariant subspace is found).
    reorthogonalize
        Full (two-pass) reorthogonalisation against all previous vectors.

    Returns
    -------
    alpha, beta
        Diagonal (k,) and off-diagonal (k−1,) of the tridiagonal matrix T_k.
    """
    n = v0.shape[0]
    m = int(min(m, n))
    if m < 1:
        raise ValueError(f"need at least one Lanczos step, got m={m}")
    V = np.empty((m, n)) if reorthogonalize else None
    alpha = np.zeros(m)
    beta = np.zeros(m)
    q = v0 / np.linalg.norm(v0)
    q_prev = np.zeros(n)
    b_prev = 0.0
    k_used = m
    for k in range(m):
        if V is not None:
            V[k] = q
        w = np.asarray(matvec(q), dtype=np.float64).reshape(-1)
        a = float(q @ w)
        alpha[k] = a
        w = w - a * q - b_prev * q_prev
        if V is not None:
            for _ in range(2):
                w -= V[: k + 1].T @ (V[: k + 1] @ w)
        b = float(np.linalg.norm(w))
        if k == m - 1:
            break
        if b <= 1e-12 * max(1.0, abs(a)):
            k_used = k + 1
            break
        beta[k] = b
        q_prev, q, b_prev = q, w / b, b
    return alpha[:k_used], beta[: k_used - 1]


def gauss_quadrature(alpha: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nodes (Ritz values) and weights (first components squared) of T."""
    if alpha.shape[0] == 1:
        return alpha.copy(), np.ones(1)
    theta, S = scipy.linalg.eigh_tridiagonal(alpha, beta)
    return theta, S[0] ** 2


@dataclass
class SpectralDensity:
    """An SLQ (or exact) estimate of the normalised spectral measure μ(λ)."""

    nodes: np.ndarray
    """Quadrature nodes θ (all probes concatenated)."""
    weights: np.ndarray
    """Quadrature weights; they sum to 1."""
    edges: np.ndarray
    """Histogram bin edges."""
    density: np.ndarray
    """Histogram of the measure on ``edges``, normalised to ∫ρ dλ = 1."""
    n_probes: int
    """Number of random probe vectors (0 for an exact spectrum)."""
    n_steps: int
    """Lanczos steps per probe (0 for an exact spectrum)."""

    def cdf(self, x: np.ndarray) -> np.ndarray:
        """Cumulative spectral distribution μ((−∞, x]) at points ``x``."""
        order = np.argsort(self.nodes)
        cum = np.cumsum(self.weights[order])
        idx = np.searchsorted(self.nodes[order], np.asarray(x), side="right")
        return np.where(idx > 0, cum[np.maximum(idx - 1, 0)], 0.0)


def histogram(nodes: np.ndarray, weights: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Weighted histogram normalised as a density on ``edges``."""
    counts, _ = np.histogram(nodes, bins=edges, weights=weights)
    total = counts.sum()
    return counts / (total * np.diff(edges)) if total > 0 else counts


def broadened(nodes: np.ndarray, weights: np.ndarray, edges: np.ndarray, sigma: float) -> np.ndarray:
    """Density on ``edges`` of Σ w_k N(θ_k, σ²), i.e. Gaussian-broadened quadrature nodes."""
    from scipy.special import ndtr

    if sigma <= 0:
        return histogram(nodes, weights, edges)
    cdf = ndtr((edges[:, None] - nodes[None, :]) / sigma) @ weights
    mass = np.diff(cdf)
    return mass / (mass.sum() * np.diff(edges))


def exact_density(eigenvalues: np.ndarray, edges: np.ndarray | int = 60) -> SpectralDensity:
    """The exact spectral measure of a known spectrum (reference for SLQ)."""
    lam = np.sort(np.asarray(eigenvalues, dtype=np.float64))
    if np.isscalar(edges):
        edges = np.linspace(lam[0], lam[-1], int(edges) + 1)
    w = np.full(lam.shape, 1.0 / lam.shape[0])
    return SpectralDensity(lam, w, np.asarray(edges), histogram(lam, w, np.asarray(edges)), 0, 0)


def slq_density(
    matvec: MatVec,
    n: int,
    *,
    n_probes: int = 20,
    n_steps: int = 80,
    bins: int | np.ndarray = 60,
    broadening: float | None = None,
    seed: int = 0,
    reorthogonalize: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> SpectralDensity:
    """Spectral density of a symmetric operator by stochastic Lanczos quadrature.

    Parameters
    ----------
    matvec
        H v for vectors of length ``n``.
    n
        Dimension.
    n_probes
        Rademacher probe vectors (the estimator's standard error falls like
        1/√(n·n_probes) for the cumulative distribution).
    n_steps
        Lanczos steps per probe (resolution ≈ spectral width / n_steps).
    bins
        Number of histogram bins over [min node, max node], or explicit edges.
    broadening
        Gaussian width σ applied to the quadrature nodes before binning
        (default: spectral width / n_steps, the resolution of an m-point Gauss
        rule; 0 bins the raw nodes, which gives a comb of spikes). The nodes and
        weights themselves are returned unbroadened.
    seed
        Seed of the probe vectors.
    reorthogonalize
        Full reorthogonalisation in Lanczos (see the module docstring).
    progress
        Called as ``progress(probes_done, n_probes)``.

    Returns
    -------
    SpectralDensity
    """
    if n_probes < 1 or n_steps < 1:
        raise ValueError(f"n_probes and n_steps must be >= 1, got {n_probes}, {n_steps}")
    rng = np.random.default_rng(seed)
    nodes, weights = [], []
    for p in range(n_probes):
        v = rng.integers(0, 2, size=n).astype(np.float64) * 2.0 - 1.0
        a, b = lanczos(matvec, v, n_steps, reorthogonalize=reorthogonalize)
        th, w = gauss_quadrature(a, b)
        nodes.append(th)
        weights.append(w / n_probes)
        log.debug("SLQ probe %d/%d: %d steps, Ritz range [%.4g, %.4g]", p + 1, n_probes, a.shape[0],
                  th.min(), th.max())
        if progress is not None:
            progress(p + 1, n_probes)
    nodes_a = np.concatenate(nodes)
    w_a = np.concatenate(weights)
    w_a /= w_a.sum()
    if np.isscalar(bins):
        lo, hi = nodes_a.min(), nodes_a.max()
        pad = 1e-9 * max(1.0, hi - lo)
        edges = np.linspace(lo - pad, hi + pad, int(bins) + 1)
    else:
        edges = np.asarray(bins, dtype=np.float64)
    if broadening is None:
        broadening = (nodes_a.max() - nodes_a.min()) / max(n_steps, 1)
    density = broadened(nodes_a, w_a, edges, broadening)
    return SpectralDensity(nodes_a, w_a, edges, density, n_probes, n_steps)


def wasserstein1(a: SpectralDensity, b: SpectralDensity) -> float:
    """Wasserstein-1 distance ∫ |F_a(λ) − F_b(λ)| dλ between two spectral measures.

    :func:`scipy.stats.wasserstein_distance` of the quadrature nodes with their weights.
    """
    from scipy.stats import wasserstein_distance  # scipy.stats costs ~0.3 s to import; only needed here

    return float(wasserstein_distance(a.nodes, b.nodes, a.weights, b.weights))
