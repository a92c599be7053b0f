"""Figures of S(k, t): curves per snapshot, curves per ν bin, the drag fingerprint S(k*, t) (docs/drag.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import matplotlib.pyplot as plt
import numpy as np

from ._common import label, save_figure

_CHANNEL_LABELS = {"rho1": r"$\rho_1$", "rho2": r"$\rho_2$", "curlJ": r"curl $J$",
                   "cos_dphi": r"$\cos(\varphi_1-\varphi_2)$"}


def channel_label(name: str) -> str:
    """LaTeX label of a channel name (the name itself if unknown)."""
    return _CHANNEL_LABELS.get(name, name)


def _group_label(text: str) -> str:
    for n in ("nu", "eta"):
        if text.startswith(n + " "):
            return label(n) + text[len(n):]
    return text


def plot_structure_curves(k: np.ndarray, t: np.ndarray, S: np.ndarray, stderr: np.ndarray | None, channel: str,
                          path: str | Path | None = None) -> Any:
    """S(k) of one channel, one curve per snapshot time (log scale), with ± standard-error bands.

    Parameters
    ----------
    k
        Shell centres (M,).
    t
        Snapshot times (T,).
    S, stderr
        Mean S and its standard error (T, M); ``stderr`` None for one sample.
    channel
        Channel name for the title.
    path
        PNG path, or None to return the figure.
    """
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(t)))
    for i, ti in enumerate(t):
        ax.plot(k, S[i], color=colors[i], label=f"t = {ti:g}")
        if stderr is not None:
            ax.fill_between(k, S[i] - stderr[i], S[i] + stderr[i], color=colors[i], alpha=0.25, lw=0)
    ax.set_yscale("log")
    ax.set_xlabel(r"$k$")
    ax.set_ylabel(r"$S(k)$")
    ax.set_title(f"{channel_label(channel)}: S(k) per snapshot")
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def plot_grouped_curves(k: np.ndarray, t: np.ndarray, groups: Sequence[dict[str, Any]], channels: Sequence[str],
                        path: str | Path | None = None) -> Any:
    """S(k) per parameter bin: one row per channel, one column per snapshot, one curve per bin.

    ``groups`` is :meth:`StructureResult.grouped` output (each with ``label``, ``S`` and ``S_stderr``).
    """
    nc, nt = len(channels), len(t)
    fig, axes = plt.subplots(nc, nt, figsize=(2.6 * nt, 2.3 * nc), squeeze=False, sharex=True)
    colors = plt.cm.plasma(np.linspace(0, 0.85, max(1, len(groups))))
    for r, ch in enumerate(channels):
        for c in range(nt):
            ax = axes[r, c]
            for g, col in zip(groups, colors):
                m = np.asarray(g["S"][ch][c], dtype=float)
                se = np.asarray([np.nan if v is None else v for v in g["S_stderr"][ch][c]], dtype=float)
                ax.plot(k, m, color=col, lw=1, label=_group_label(g["label"]))
                ax.fill_between(k, m - se, m + se, color=col, alpha=0.3, lw=0)
            ax.set_yscale("log")
            if r == 0:
                ax.set_title(f"t = {t[c]:g}", fontsize=9)
            if c == 0:
                ax.set_ylabel(f"S(k) {channel_label(ch)}", fontsize=8)
            if r == nc - 1:
                ax.set_xlabel(r"$k$", fontsize=8)
            ax.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=6)
    return save_figure(fig, path)


def plot_fingerprint(fingerprints: Sequence[dict[str, Any]], path: str | Path | None = None) -> Any:
    """The Fig. 4 analogue: S(k*, t) against t per ν bin with ± standard-error bands, one panel per channel.

    ``fingerprints`` are :meth:`StructureResult.fingerprint` outputs.
    """
    n = len(fingerprints)
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.4), squeeze=False)
    for ax, fp in zip(axes[0], fingerprints):
        t = np.asarray(fp["t"], dtype=float)
        colors = plt.cm.plasma(np.linspace(0, 0.85, max(1, len(fp["groups"]))))
        for g, col in zip(fp["groups"], colors):
            m = np.asarray(g["mean"], dtype=float)
            se = np.asarray([np.nan if v is None else v for v in g["stderr"]], dtype=float)
            ax.plot(t, m, "o-", color=col, ms=3, label=f"{_group_label(g['label'])} (n={g['n']})")
            ax.fill_between(t, m - se, m + se, color=col, alpha=0.3, lw=0)
        ax.set_yscale("log")
        ax.set_xlabel(r"$t$")
        ax.set_ylabel(rf"$S(k, t)$ at $k$ = {fp['k_star']:.3g}")
        ax.set_title(channel_label(fp["channel"]))
        ax.legend(fontsize=7)
    return save_figure(fig, path)


def plot_snr(t: np.ndarray, snr: dict[str, np.ndarray], path: str | Path | None = None,
             title: str = r"$\nu$ signal-to-noise of $S(k, t)$") -> Any:
    """Signal-to-noise of the ν dependence per snapshot time, one curve per channel.

    ``snr`` maps channel → (T,) values (e.g. the best shell's |ΔS| / spread).
    """
    fig, ax = plt.subplots(figsize=(5.0, 3.6))
    for ch, v in snr.items():
        ax.plot(t, v, "o-", label=channel_label(ch))
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_xlabel(r"$t$")
    ax.set_ylabel("signal / sample spread")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def plot_reliability(rel: dict[str, Any], path: str | Path | None = None,
                     title: str = r"P($\nu > 0$ | x): reliability") -> Any:
    """Reliability diagram: observed frequency of ν > 0 against the predicted P(ν > 0 | x) per bin.

    ``rel`` is :func:`tdglnre.nre.infer.model_comparison.reliability` output.
    """
    fig, ax = plt.subplots(figsize=(4.2, 4.0))
    pred = [p for p, n in zip(rel["predicted"], rel["count"]) if n]
    obs = [o for o, n in zip(rel["observed"], rel["count"]) if n]
    cnt = [n for n in rel["count"] if n]
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    ax.plot(pred, obs, "o-")
    for p, o, n in zip(pred, obs, cnt):
        ax.annotate(str(n), (p, o), fontsize=6, xytext=(3, -8), textcoords="offset points")
    ax.set_xlabel(r"predicted P($\nu > 0$ | x)")
    ax.set_ylabel(r"observed frequency of $\nu > 0$")
    ax.set_title(f"{title} (ECE {rel['ece']:.3f})", fontsize=9)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    return save_figure(fig, path)


def plot_auc_by_nu(rows: Sequence[dict[str, Any]], path: str | Path | None = None) -> Any:
    """ROC AUC of ν = 0 against ν > 0 per true-ν bin (and for all ν at or above the bin's lower edge).

    ``rows`` is :func:`tdglnre.nre.infer.model_comparison.auc_by_nu` output.
    """
    fig, ax = plt.subplots(figsize=(4.6, 3.6))
    mid = [0.5 * (r["nu_low"] + r["nu_high"]) for r in rows if r["auc"] is not None]
    auc = [r["auc"] for r in rows if r["auc"] is not None]
    lo = [r["nu_low"] for r in rows if r["auc_nu_ge_low"] is not None]
    ge = [r["auc_nu_ge_low"] for r in rows if r["auc_nu_ge_low"] is not None]
    ax.plot(mid, auc, "o-", label=r"true $\nu$ in bin")
    ax.plot(lo, ge, "s--", label=r"true $\nu \geq$ value")
    ax.axhline(0.9, color="grey", lw=0.8, ls=":")
    ax.set_xlabel(r"true $\nu$")
    ax.set_ylabel(r"ROC AUC ($\nu = 0$ vs $\nu > 0$)")
    ax.set_ylim(0.4, 1.01)
    ax.legend(fontsize=8)
    return save_figure(fig, path)
