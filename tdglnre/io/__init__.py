"""Data layer: presets (TOML), priors, HDF5 ensembles and their generation.

``tdglnre.io.generate`` imports the solver lazily enough to start fast; Dask is
imported only when ``workers``/``scheduler`` are used.
"""

from __future__ import annotations

from .ensemble import Ensemble, EnsembleError, open_ensemble
from .generate import generate_ensemble
from .presets import list_presets, load_preset
from .priors import Prior

__all__ = ["Ensemble", "EnsembleError", "Prior", "generate_ensemble", "list_presets", "load_preset",
           "open_ensemble"]
