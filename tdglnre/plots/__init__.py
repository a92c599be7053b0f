"""Matplotlib figures of every workflow, in one place.

* :mod:`.posterior` — posterior marginals and joints, the observation, expected
  coverage, SBC, error against truth, training loss curves, a map beside its
  λ posterior with the regime boundaries;
* :mod:`.hessian` — density of states, lowest eigenvalues, softest mode;
* :mod:`.structure` — S(k, t) curves and the drag fingerprint.

Importing leaves the matplotlib backend alone (inline figures in Jupyter work);
the command line selects the non-interactive Agg backend before it saves.
Every function writes to a path and returns it, or returns the open figure when
the path is None.
"""

from __future__ import annotations

from ._common import label, save_figure
from .posterior import (
    plot_coverage,
    plot_error_vs_truth,
    plot_joint,
    plot_history,
    plot_marginals,
    plot_observation,
    plot_regime_example,
    plot_sbc,
)

__all__ = ["label", "save_figure", "plot_coverage", "plot_error_vs_truth", "plot_history", "plot_joint",
           "plot_marginals", "plot_observation", "plot_regime_example", "plot_sbc"]
