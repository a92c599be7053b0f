"""Data layer: presets (TOML), priors, HDF5 ensembles and their generation.

Names resolve lazily (:mod:`tdglnre._lazy`): ``import tdglnre.io`` loads neither
numba nor the solver; ``generate_ensemble`` imports them on first use, and Dask
only when ``workers``/``scheduler`` are used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_getattr

if TYPE_CHECKING:
    from .ensemble import Ensemble, EnsembleError, open_ensemble
    from .generate import generate_ensemble
    from .presets import list_presets, load_preset
    from .priors import Prior

_NAMES = {
    "Ensemble": ".ensemble",
    "EnsembleError": ".ensemble",
    "open_ensemble": ".ensemble",
    "generate_ensemble": ".generate",
    "list_presets": ".presets",
    "load_preset": ".presets",
    "Prior": ".priors",
}

__all__ = ["Ensemble", "EnsembleError", "Prior", "generate_ensemble", "list_presets", "load_preset",
           "open_ensemble"]

__getattr__ = lazy_getattr(__name__, _NAMES, globals())


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
