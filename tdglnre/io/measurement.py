"""Former home of the measurement model, kept so that ``from tdglnre.io.measurement import …`` still works.

The instrument model is not I/O: it lives in :mod:`tdglnre.instrument.model`
(docs/architecture.md). This module only re-exports its public names.
"""

from __future__ import annotations

from ..instrument.model import (TRANSFORMS, Bin, Blur, BlurXi, Channels, Gain, MeasurementMixture,  # noqa: F401
                                MeasurementModel, Noise, Offset, Poisson, Range, Transform, measurement_rng,
                                psf_kernel, resolve_on_lattice)
from ..instrument.model import __all__  # noqa: F401
