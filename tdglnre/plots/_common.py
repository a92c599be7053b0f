"""Shared helpers of the figure modules: axis labels and saving."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

_LABELS = {"eta": r"$\eta$", "n_v": r"$n_v$", "nu": r"$\nu$"}


def label(name: str) -> str:
    """LaTeX label of a parameter name (the name itself if unknown)."""
    return _LABELS.get(name, name)


def save_figure(fig: Any, path: str | Path | None) -> Any:
    """Lay out a figure; with a path, write it (120 dpi), close it and return the path, else return the figure."""
    fig.tight_layout()
    if path is None:
        return fig
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
