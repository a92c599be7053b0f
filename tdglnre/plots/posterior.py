"""Figures of posteriors, observations, calibration and training.

Figures only: no computation beyond what a plot needs. Each function takes an
output path and returns it after writing the figure, or, with ``path=None``,
returns the open figure (inline display in Jupyter). No backend is chosen here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import matplotlib.pyplot as plt
import numpy as np

from ._common import label as _label
from ._common import save_figure


def plot_marginals(post, path: str | Path | None) -> Any:
    """1-D marginals with the 95% HPD interval shaded and the truth marked."""
    names = post.grid.names
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.2), squeeze=False)
    for ax, name in zip(axes[0], names):
        axis, m = post.marginal(name)
        s = post.summary(name)
        if axis.discrete:
            ax.bar(axis.values, m, width=0.8, color="C0", alpha=0.8)
            ax.set_ylabel("probability")
        else:
            dens = m / axis.widths
            ax.plot(axis.values, dens, color="C0")
            lo, hi = s["hpd95"]
            sel = (axis.values >= lo) & (axis.values <= hi)
            ax.fill_between(axis.values[sel], dens[sel], color="C0", alpha=0.25, label="95% HPD")
            ax.set_ylabel("density")
        if "truth" in s:
            ax.axvline(s["truth"], color="C3", ls="--", label="truth")
        ax.axvline(s["mean"], color="k", lw=0.8, label="mean")
        ax.set_xlabel(_label(name))
        ax.legend(fontsize=8)
    return save_figure(fig, path)


def plot_observation(x: np.ndarray, labels: Sequence[str], path: str | Path | None, ncols: int = 3) -> Any:
    """The network input an observation was conditioned on: one panel per input channel.

    Parameters
    ----------
    x
        One preprocessed input (N, N, C') (selected snapshots and channels,
        before the network's standardisation).
    labels
        C' panel titles, e.g. ``rho1 (t=2)``.
    path
        Output image.
    ncols
        Panels per row.
    """
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[-1] != len(labels):
        raise ValueError(f"plot_observation needs (N, N, {len(labels)}) for {len(labels)} labels, got {x.shape}")
    c = x.shape[-1]
    ncols = max(1, min(ncols, c))
    nrows = int(np.ceil(c / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.4 * ncols, 3.0 * nrows), squeeze=False)
    for k, ax in enumerate(axes.ravel()):
        if k >= c:
            ax.set_axis_off()
            continue
        img = x[..., k]
        name = str(labels[k])
        if name.startswith("curlJ"):  # signed: symmetric colour scale
            vmax = float(np.abs(img).max()) or 1.0
            im = ax.imshow(img.T, origin="lower", cmap="RdBu_r", vmin=-vmax, vmax=vmax)
        else:
            im = ax.imshow(img.T, origin="lower", cmap="magma")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("observation (network input)", fontsize=10)
    return save_figure(fig, path)


def plot_joint(post, a: str, b: str, path: str | Path | None) -> Any:
    """2-D marginal heatmap of (a, b) with the truth marked."""
    m = post.marginal2d(a, b)
    ax_a = post.grid.axes[post.grid.names.index(a)]
    ax_b = post.grid.axes[post.grid.names.index(b)]
    fig, ax = plt.subplots(figsize=(5, 4))
    ea, eb = ax_a.edges, ax_b.edges
    im = ax.pcolormesh(ea, eb, m.T, cmap="viridis", shading="flat")
    fig.colorbar(im, ax=ax, label="posterior mass")
    if post.truth and a in post.truth and b in post.truth:
        ax.plot(post.truth[a], post.truth[b], "r*", ms=14, mec="w", label="truth")
        ax.legend(fontsize=8)
    ax.set_xlabel(_label(a))
    ax.set_ylabel(_label(b))
    return save_figure(fig, path)


def plot_coverage(curves: dict[str, Any], path: str | Path | None) -> Any:
    """Expected coverage: empirical vs nominal, with the binomial band of the first curve."""
    fig, ax = plt.subplots(figsize=(4.5, 4.2))
    first = True
    for label, cov in curves.items():
        lv = np.asarray(cov["levels"])
        if first and "band_lower" in cov:
            ax.fill_between(lv, cov["band_lower"], cov["band_upper"], color="0.85", label="95% binomial band")
            first = False
        ax.plot(lv, cov["empirical"], "o-", ms=3, label=label)
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set_xlabel("nominal credibility")
    ax.set_ylabel("empirical coverage")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def plot_sbc(ranks: dict[str, np.ndarray], n_draws: int, path: str | Path | None, n_bins: int = 10) -> Any:
    """SBC rank histograms and ECDF-difference curves with a 95% pointwise band."""
    names = list(ranks)
    fig, axes = plt.subplots(2, len(names), figsize=(4.2 * len(names), 6), squeeze=False)
    for k, name in enumerate(names):
        r = np.asarray(ranks[name])
        n = r.size
        edges = np.linspace(0, n_draws + 1, n_bins + 1)
        axes[0, k].hist(r, bins=edges, color="C0", alpha=0.8)
        expect = n / n_bins
        sd = np.sqrt(n * (1 / n_bins) * (1 - 1 / n_bins))
        axes[0, k].axhspan(expect - 2 * sd, expect + 2 * sd, color="0.85", zorder=0)
        axes[0, k].set_title(f"SBC ranks: {_label(name)}")
        u = np.linspace(0, 1, 201)
        ecdf = np.array([(r / (n_draws + 1) <= x).mean() for x in u])
        band = 1.96 * np.sqrt(u * (1 - u) / n)
        axes[1, k].fill_between(u, -band, band, color="0.85")
        axes[1, k].plot(u, ecdf - u, color="C0")
        axes[1, k].axhline(0, color="k", lw=0.8)
        axes[1, k].set_xlabel("fractional rank")
        axes[1, k].set_ylabel("ECDF − uniform")
    return save_figure(fig, path)


def plot_error_vs_truth(truth: np.ndarray, mean: np.ndarray, width95: np.ndarray, name: str,
                        path: str | Path | None, baseline_mean: np.ndarray | None = None) -> Any:
    """Posterior-mean error and 95% region size against the true value."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    axes[0].scatter(truth, mean - truth, s=6, label="NRE")
    if baseline_mean is not None:
        axes[0].scatter(truth, baseline_mean - truth, s=6, alpha=0.5, label="ABC baseline")
    axes[0].axhline(0, color="k", lw=0.8)
    axes[0].set_xlabel(f"true {_label(name)}")
    axes[0].set_ylabel("posterior mean − truth")
    axes[0].legend(fontsize=8)
    axes[1].scatter(truth, width95, s=6)
    axes[1].set_xlabel(f"true {_label(name)}")
    axes[1].set_ylabel("95% HPD width")
    return save_figure(fig, path)


def plot_history(history: dict[str, Sequence[float]], path: str | Path | None,
                 best_epoch: int | None = None) -> Any:
    """Training (and validation) loss per epoch, the best epoch marked.

    Drawn on a :class:`matplotlib.figure.Figure` outside pyplot's state, so a
    training run can save it from any thread. ``history`` holds ``epoch``,
    ``loss`` and optionally ``val_loss`` (None for a missing value). Returns the
    path after writing a PNG (110 dpi), or the figure when ``path`` is None.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 3.8), layout="constrained")
    ax = fig.subplots()
    ep = np.asarray(history.get("epoch", []), dtype=float) + 1
    ax.plot(ep, history.get("loss", []), "o-", ms=3, label="training")
    vl = [np.nan if v is None else v for v in history.get("val_loss", [])]
    if vl and np.isfinite(vl).any():
        ax.plot(ep, vl, "s-", ms=3, label="validation")
    if best_epoch is not None:
        ax.axvline(best_epoch + 1, color="0.5", ls="--", lw=1, label=f"best (epoch {best_epoch + 1})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.legend()
    ax.grid(alpha=0.3)
    if path is None:
        return fig
    fig.savefig(path, dpi=110)
    return Path(path)


def plot_regime_example(image: np.ndarray, image_label: str, post, boundaries: dict[str, Any],
                        p_regime: dict[str, float], true_regime: str | None, path: str | Path | None) -> Any:
    """One observation's field map beside its λ posterior, with the regime boundaries marked.

    Parameters
    ----------
    image
        The map shown on the left (N, N), e.g. the B channel of the network input.
    image_label
        Its title, e.g. ``B (t=6)``.
    post
        The grid posterior (must hold ``lam``; with ``eta`` the joint (η, λ) panel is drawn too).
    boundaries
        ``eta`` (the η values of the curves), ``lam_I`` and ``lam_II`` (the boundaries λ_I(η), λ_II(η) there)
        and ``at_mean`` ((λ_I, λ_II) at the posterior-mean η, marked on the λ marginal).
    p_regime
        P(regime | x) for "I", "1.5", "II".
    true_regime
        The observation's true regime, or None.
    """
    joint = "eta" in post.grid.names
    fig, axes = plt.subplots(1, 3 if joint else 2, figsize=(13.5 if joint else 9, 3.8))
    im = axes[0].imshow(np.asarray(image).T, origin="lower", cmap="magma")
    fig.colorbar(im, ax=axes[0], fraction=0.046, pad=0.04)
    axes[0].set_title(image_label, fontsize=9)
    axes[0].set_xticks([])
    axes[0].set_yticks([])

    ax = axes[1]
    axis, m = post.marginal("lam")
    ax.plot(axis.values, m / axis.widths, color="C0")
    lo, hi = boundaries["at_mean"]
    for b in (lo, hi):
        ax.axvline(b, color="0.3", ls=":", lw=1.2)
    x0, x1 = float(axis.edges[0]), float(axis.edges[-1])
    ymax = ax.get_ylim()[1]
    for (a, b), r in zip(((x0, lo), (lo, hi), (hi, x1)), ("I", "1.5", "II")):
        if b > a:
            ax.text((a * b) ** 0.5, 0.97 * ymax, f"{r}\n{p_regime.get(r, float('nan')):.2f}", ha="center", va="top",
                    fontsize=8)
    s = post.summary("lam")
    if "truth" in s:
        ax.axvline(s["truth"], color="C3", ls="--", label="truth")
        ax.legend(fontsize=8, loc="center right")
    ax.set_xscale("log")
    ax.set_xlim(x0, x1)
    ax.set_xlabel(r"$\lambda$ (boundaries at the posterior-mean $\eta$)")
    ax.set_ylabel("density")
    truth = "" if true_regime is None else f"; true: Type {true_regime}"
    ax.set_title("P(I, 1.5, II | x) = " + ", ".join(f"{p_regime.get(r, float('nan')):.2f}" for r in ("I", "1.5", "II"))
                 + truth, fontsize=9)

    if joint:
        ax = axes[2]
        ea = post.grid.axes[post.grid.names.index("eta")].edges
        im = ax.pcolormesh(ea, axis.edges, post.marginal2d("eta", "lam").T, cmap="viridis", shading="flat")
        fig.colorbar(im, ax=ax, label="posterior mass")
        ax.plot(boundaries["eta"], boundaries["lam_I"], "w-", lw=1.2, label="I | 1.5")
        ax.plot(boundaries["eta"], boundaries["lam_II"], "w--", lw=1.2, label="1.5 | II")
        if post.truth and "eta" in post.truth and "lam" in post.truth:
            ax.plot(post.truth["eta"], post.truth["lam"], "r*", ms=12, mec="w", label="truth")
        ax.set_yscale("log")
        ax.set_xlabel(_label("eta"))
        ax.set_ylabel(r"$\lambda$")
        ax.legend(fontsize=7, loc="lower right")
    return save_figure(fig, path)
