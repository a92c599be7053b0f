"""tdglnre: two-band TDGL simulation and neural ratio estimation of GL couplings.

The physics layer (:mod:`tdglnre.physics`) never imports TensorFlow; Keras is
imported only inside :mod:`tdglnre.nre`. The solver (and numba) is imported
lazily on first use, so ``tdglnre --help`` starts fast.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

from .errors import ConfigError, DivergenceError, TDGLError  # noqa: E402

_LAZY = {
    "SimConfig": ("tdglnre.physics.config", "SimConfig"),
    "SimulationResult": ("tdglnre.physics.solver", "SimulationResult"),
    "simulate": ("tdglnre.physics.solver", "simulate"),
}

__all__ = ["__version__", "ConfigError", "DivergenceError", "TDGLError", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tdglnre' has no attribute {name!r}")
