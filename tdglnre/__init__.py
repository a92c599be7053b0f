"""tdglnre: two-band TDGL simulation and neural ratio estimation of GL couplings.

The physics layer (:mod:`tdglnre.physics`) never imports TensorFlow; Keras is
imported only inside :mod:`tdglnre.nre`.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import ConfigError, DivergenceError, TDGLError  # noqa: E402
from .physics.config import SimConfig  # noqa: E402
from .physics.solver import SimulationResult, simulate  # noqa: E402

__all__ = [
    "__version__",
    "ConfigError",
    "DivergenceError",
    "TDGLError",
    "SimConfig",
    "SimulationResult",
    "simulate",
]
