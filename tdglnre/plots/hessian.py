"""Figures of the Hessian analysis (matplotlib; figures only).

Importing this module leaves the matplotlib backend alone (figures show inline
in Jupyter); ``tdglnre hessian`` selects the non-interactive Agg backend
before it saves figures.

* :func:`plot_dos` — density of states histogram (SLQ, optionally with an exact reference);
* :func:`plot_lowest` — the lowest eigenvalues, phase mode marked;
* :func:`plot_soft_mode` — ρ1 with vortex positions beside the softest mode's |δψ1|, |δψ2|.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import matplotlib.pyplot as plt
import numpy as np

from ._common import save_figure



class SpectralDensity(Protocol):
    """What :func:`plot_dos` reads of a density of states (``analysis.slq.SpectralDensity`` has it).

    The figures take the analysis results by their attributes, so this layer
    imports nothing above it, not even for annotations (docs/architecture.md).
    """

    density: np.ndarray
    edges: np.ndarray
    n_probes: int
    n_steps: int


class HessianResult(Protocol):
    """What the figures read of ``analysis.hessian.HessianResult``."""

    config: Any
    state: np.ndarray
    eigenvalues: np.ndarray
    lambda_max_est: float
    zero_mode_index: int
    softest_index: int
    softest_vector: np.ndarray
    is_saddle: bool
    dos: SpectralDensity | None


def plot_dos(dos: "SpectralDensity", path: str | Path | None, *, reference: "SpectralDensity | None" = None,
             title: str | None = None) -> Any:
    """Histogram of the density of states ρ(λ) (normalised to 1)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.stairs(dos.density, dos.edges, fill=True, alpha=0.6,
              label=f"SLQ ({dos.n_probes} probes × {dos.n_steps} steps)" if dos.n_probes else "exact")
    if reference is not None:
        ax.stairs(reference.density, reference.edges, color="k", lw=1.2, label="dense eigvalsh")
    ax.set_xlabel(r"eigenvalue $\lambda$ of $\partial^2 F/\partial z^2$")
    ax.set_ylabel(r"density of states $\rho(\lambda)$")
    ax.set_yscale("log")
    ax.legend()
    if title:
        ax.set_title(title)
    return save_figure(fig, path)


def plot_lowest(result: "HessianResult", path: str | Path | None) -> Any:
    """The computed lowest eigenvalues versus index; the phase mode in red."""
    lam = result.eigenvalues
    idx = np.arange(lam.shape[0])
    fig, ax = plt.subplots(figsize=(6, 4))
    floor = 1e-16 * max(abs(result.lambda_max_est), 1.0)
    pos = lam >= 0
    ax.semilogy(idx[pos], np.maximum(lam[pos], floor), "o", ms=4, label=r"$\lambda \geq 0$")
    if np.any(~pos):
        ax.semilogy(idx[~pos], -lam[~pos], "v", color="C1", ms=5, label=r"$|\lambda|$, $\lambda < 0$ (saddle)")
    zi = result.zero_mode_index
    ax.semilogy([zi], [max(abs(lam[zi]), floor)], "o", mfc="none", color="C3", ms=9,
                label=f"global phase mode (λ = {lam[zi]:.1e})")
    ax.set_xlabel("index")
    ax.set_ylabel(r"$|\lambda|$")
    c = result.config
    ax.set_title(f"N={c.N}, eta={c.eta:g}, n_v={c.n_v}, nu={c.nu:g}"
                 + ("  (saddle)" if result.is_saddle else ""))
    ax.legend(loc="best", framealpha=0.6)
    return save_figure(fig, path)


def plot_soft_mode(result: "HessianResult", path: str | Path | None) -> Any:
    """ρ1 with vortices (winding ±1 plaquettes) beside the softest mode's |δψ1| and |δψ2|."""
    from ..physics.lattice import landau_links
    from ..physics.observables import winding_numbers

    c = result.config
    z = result.state
    psi1 = z[0] + 1j * z[1]
    links = landau_links(c.N, c.L, int(c.n_v))
    k = winding_numbers(psi1, links)
    v = result.softest_vector
    amp1 = np.hypot(v[0], v[1])
    amp2 = np.hypot(v[2], v[3])
    ext = (0, c.L, 0, c.L)
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2))
    im = axes[0].imshow(np.abs(psi1) ** 2, origin="lower", extent=ext, cmap="viridis")
    fig.colorbar(im, ax=axes[0], shrink=0.8)
    h = c.h
    for sign, marker, col in ((1, "o", "w"), (-1, "x", "r")):
        ii, jj = np.nonzero(k == sign) if sign > 0 else np.nonzero(k < 0)
        if ii.size:
            axes[0].scatter((jj + 0.5) * h, (ii + 0.5) * h, s=14, marker=marker, facecolors="none" if sign > 0
                            else col, edgecolors=col if sign > 0 else None, lw=0.8)
    axes[0].set_title(r"$\rho_1$ and vortices ($\circ$ +1, $\times$ −1)")
    for ax, a, name in ((axes[1], amp1, r"$|\delta\psi_1|$"), (axes[2], amp2, r"$|\delta\psi_2|$")):
        im = ax.imshow(a, origin="lower", extent=ext, cmap="magma")
        fig.colorbar(im, ax=ax, shrink=0.8)
        ax.set_title(f"softest mode {name}, λ = {result.eigenvalues[result.softest_index]:.3e}")
    for ax in axes:
        ax.set_xlabel("x")
        ax.set_ylabel("y")
    return save_figure(fig, path)


def save_figures(result: "HessianResult", out_dir: str | Path | None) -> list[Any]:
    """dos.png (if a DOS was computed), lowest_eigenvalues.png and softest_mode.png.

    With ``out_dir`` the figures are written there and their paths returned;
    with None the open figures are returned.
    """
    def to(name: str) -> Path | None:
        return None if out_dir is None else Path(out_dir) / name

    figs = []
    if result.dos is not None:
        figs.append(plot_dos(result.dos, to("dos.png"), title=f"N={result.config.N}: density of states"))
    figs.append(plot_lowest(result, to("lowest_eigenvalues.png")))
    figs.append(plot_soft_mode(result, to("softest_mode.png")))
    return figs
