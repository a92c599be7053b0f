"""The instrument model: what a measurement makes of simulated fields, and images read from files.

Neither I/O of the package's own files nor physics: the measurement forward
model (blur, noise, shot noise, binning, gain, offset, channel selection;
:mod:`.model`, its transforms in :mod:`._transforms` and their parameter
ranges in :mod:`._params`) and experimental images (reading PNG/TIFF, NumPy
and HDF5 images, the central crop and the resampling onto a model's lattice;
:mod:`.images`). NumPy only (SciPy for the resampling), never numba or
TensorFlow: ``io`` (presets that declare a measurement) imports it, and
``import tdglnre.io`` must stay light (tests/test_architecture.py).

Layer: above ``physics`` (channel names), below ``io``, ``analysis``, ``nre``
and ``workflows`` (docs/architecture.md). Names resolve lazily
(:mod:`tdglnre._lazy`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_getattr

if TYPE_CHECKING:
    from .images import crop_resample, load_image
    from .model import MeasurementMixture, MeasurementModel, measurement_rng, psf_kernel, resolve_on_lattice

_NAMES = {
    "MeasurementModel": ".model",
    "MeasurementMixture": ".model",
    "measurement_rng": ".model",
    "psf_kernel": ".model",
    "resolve_on_lattice": ".model",
    "load_image": ".images",
    "crop_resample": ".images",
}

__all__ = sorted(_NAMES)

__getattr__ = lazy_getattr(__name__, _NAMES, globals())


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
