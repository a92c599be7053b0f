"""Observations for the posterior: from an ensemble, a file or image, or a fresh simulation.

An :class:`Observation` holds the channels in the training ensemble's layout
and a record of where they came from; :func:`network_input` turns it into the
network input, applying or checking the model's measurement model
(docs/observations.md). Images (PNG/TIFF/.npz) are cropped to the model's
field of view and resampled to its lattice (:func:`image_to_input`).
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._validate import as_float, as_int, as_path, as_pos_float
from ..errors import ConfigError
from ..instrument.images import (IMAGE_SUFFIXES, as_image, channel_names, crop_resample, load_hdf5_array,
                                 load_image, load_numpy, real_array)

__all__ = ["IMAGE_SUFFIXES", "Observation", "channel_names", "check_measurement_arg", "image_to_input", "load_image",
           "load_model", "load_observation", "network_input", "observation_from_ensemble", "observation_from_file",
           "observation_labels", "parse_simulate_spec", "simulate_observation"]

log = logging.getLogger(__name__)

#: Valid keys of a simulation spec besides the sample parameters.
_SIM_EXTRA = ("seed",)


def load_model(model_dir: str | Path) -> Any:
    """Load a trained ratio estimator (:class:`tdglnre.nre.infer.model_io.RatioEstimator`) from its directory."""
    from ..nre.infer.model_io import load_estimator

    as_path("`model_dir`", model_dir)  # checked, passed as given: the model records the text of its directory
    return load_estimator(model_dir)


def _as_model(model: Any) -> Any:
    """A loaded estimator: ``model`` itself, or loaded from its directory; anything else is refused."""
    if isinstance(model, (str, os.PathLike)):
        return load_model(model)
    # duck-typed, so a wrapper of a RatioEstimator serves as well
    if not all(hasattr(model, a) for a in ("metadata", "prior", "parameter_names", "measurement")):
        raise ConfigError(f"`model` must be a loaded model (tg.load_model) or its directory, got "
                          f"{type(model).__name__}")
    return model


@dataclass
class Observation:
    """One observation in the training ensemble's layout, with where it came from."""

    x: np.ndarray
    """Channels (T, N, N, C) or (N, N, C) as stored in an ensemble."""
    source: dict[str, Any]
    """Record of its origin (file, index, or simulation settings)."""
    truth: dict[str, float] | None = None
    """Known parameters (simulations), else None."""
    warnings: list[str] = field(default_factory=list)
    """Remarks made while producing it (e.g. parameters outside the prior box)."""
    measurement: Any = None
    """What the instrument did to ``x``: None for clean simulator output (the
    posterior applies the model's measurement model to it, seeded by
    :attr:`noise_seed`), else the measurement the data went through (a
    :class:`~tdglnre.io.measurement.MeasurementModel` or its text form;
    ``"none"``: a perfect measurement), which must match the model's
    (docs/observations.md)."""
    noise_seed: int = 0
    """Seed of the measurement noise added to a clean observation."""
    noise_index: int = 0
    """Sample index of that noise stream (``measurement_rng(noise_seed, 0, noise_index)``)."""
    as_input: bool = False
    """True when ``x`` is already laid out as the network input (M, M, C′), e.g. a resampled image."""


def observation_from_ensemble(path: str | Path, index: int, model: Any = None) -> Observation:
    """Sample ``index`` of an ensemble file (checked against ``model`` when given)."""
    from ..io.ensemble import open_ensemble

    as_path("`path`", path)  # checked; recorded as given
    index = as_int("`index`", index, 0)
    model = None if model is None else _as_model(model)
    with open_ensemble(path) as ens:
        if model is not None:
            model.check_compatible(ens)
        if not 0 <= index < ens.n_complete:
            raise ConfigError(f"`index` {index} out of range: {path} holds {ens.n_complete} complete samples")
        index = int(index)
        x = ens.x(index, index + 1)[0]
        truth = dict(zip(ens.parameter_names, map(float, ens.theta(index, index + 1)[0])))
    return Observation(x, {"data": str(path), "index": index}, truth, noise_index=index)


def load_observation(path: str | Path) -> np.ndarray:
    """An observation array from .npy (N, N, C) or an HDF5 file with one such dataset."""
    path = as_path("`observation`", path)
    if not path.is_file():
        raise ConfigError(f"observation file {path} does not exist")
    if path.suffix == ".npy":
        return real_array(load_numpy(path, "`observation`"), path, "`observation`")
    return real_array(load_hdf5_array(path, "`observation`", (3, 4)), path, "`observation`")


def check_measurement_arg(measurement: Any) -> None:
    """A measurement argument is None, its text form or a MeasurementModel (the posterior and calibration check)."""
    from ..instrument.model import MeasurementModel

    if measurement is not None and not isinstance(measurement, (str, MeasurementModel)):
        raise ConfigError(f"`measurement` must be a text like 'blur(1.0)+noise(0.05)', got "
                          f"{type(measurement).__name__}")


def observation_from_file(path: str | Path, measurement: Any = "none", *, model: Any = None,
                          pixel_size: float | None = None, channels: Any = None, value_range: Any = None,
                          value_scale: Any = None) -> Observation:
    """An observation stored in a file.

    ``.npy`` and ``.h5`` files without ``pixel_size`` and ``channels`` hold
    an array in the training ensemble's layout (:func:`load_observation`).
    Images (``.png``, ``.tif``/``.tiff``, ``.npz``, or any of these formats
    with ``pixel_size`` or ``channels``) are read by :func:`load_image` and
    mapped onto the network's input by :func:`image_to_input` (needs
    ``model``): resampled to its lattice and field of view, channels matched
    by name (docs/observations.md, "Experimental images").

    ``measurement`` declares what the instrument did to the data (text form,
    docs/observations.md; ``"none"``: perfect measurement); a declaration
    that differs from the model's measurement is refused here, so
    :func:`tdglnre.workflows.posterior.posterior` first replaces a declaration
    the model's ranges cover (``MeasurementModel.covers``) by the model's own.

    ``value_range`` (lo, hi) maps an integer file's full range (0…65535 for
    16 bits) linearly onto physical values; ``value_scale`` (a, b) maps values
    in instrument units by x ↦ a·x + b (:func:`tdglnre.instrument.images.value_map`).
    An integer image without one is refused. The mapping is recorded in the
    observation's ``source`` (and so in ``posterior.json``'s ``source``).
    """
    from ..instrument.images import physical_values, value_map
    from ..instrument.model import MeasurementModel

    declared = MeasurementModel.parse(measurement)  # a model given (run_posterior's) passes through unparsed
    path = as_path("`path`", path)
    if pixel_size is not None:
        pixel_size = as_pos_float("`pixel_size`", pixel_size)
    if channels is not None:
        channel_names(channels)
    mapping = value_map(value_range, value_scale)
    if path.suffix.lower() not in IMAGE_SUFFIXES and pixel_size is None and channels is None:
        x = load_observation(path)
        if mapping or x.dtype.kind in "biu":
            x = physical_values(x, f"`observation` {path}", mapping)
        return Observation(x, {"observation": str(path), **mapping}, measurement=declared)
    if model is None:
        raise ConfigError("reading an image observation needs the model (its lattice, field of view and channels)")
    img = load_image(path, mapping)
    x, record = image_to_input(_as_model(model), img, pixel_size=pixel_size, channels=channels)
    return Observation(x, {"observation": str(path), **mapping, **record}, measurement=declared, as_input=True)


# ------------------------------------------------------------------ experimental images
def image_to_input(model: Any, img: np.ndarray, *, pixel_size: float | None = None,
                   channels: Any = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Map an image (H, W, C) onto the network input (M, M, C′) of ``model``.

    Parameters
    ----------
    model
        The estimator: its field of view L (coherence lengths), its input
        lattice M×M (N, or the measurement's bin size) and input channel names.
    img
        The image, row i ↔ y, column j ↔ x, channels last, in the simulation's
        units (docs/observations.md, "Experimental images").
    pixel_size
        Pixel pitch in coherence lengths ξ (the simulation's length unit).
        Default: the image spans exactly the field of view, L / H.
    channels
        Names of the image's channels (a list or ``"rho1,curlJ"``); default:
        the model's input channels, when the counts agree.

    Returns
    -------
    (numpy.ndarray, dict)
        The input (M, M, C′) float32 and a record (crop, resampling, channels).

    Raises
    ------
    ConfigError
        One line: the image cannot cover the field of view, a channel the
        model needs is missing, or the model stacks several snapshots.
    """
    model = _as_model(model)
    img = as_image(img)
    meta = model.metadata
    inp = meta["input"]
    if len(inp["snapshot_indices"]) != 1:
        raise ConfigError(f"the model stacks {len(inp['snapshot_indices'])} snapshots as channels; an image gives "
                          "one snapshot")
    need = list(model.measurement.output_channels(inp["channels"]))
    C = img.shape[2]
    if channels is None:
        if C != len(need):
            raise ConfigError(f"`channels`: name the image's {C} channel(s); the model needs {', '.join(need)}")
        names = list(need)
    else:
        names = channel_names(channels)
        if len(names) != C:
            raise ConfigError(f"`channels` names {len(names)} channel(s) ({', '.join(names)}) but the image has {C}")
    missing = [c for c in need if c not in names]
    if missing:
        raise ConfigError(f"`channels`: the model needs {', '.join(need)}; the image has {', '.join(names)} "
                          f"(missing {', '.join(missing)})")
    L = meta.get("L")
    if L is None:
        raise ConfigError("the model's metadata does not record its field of view L; cannot resample an image")
    M = int(model.input_shape[0])
    H, W = img.shape[:2]
    if pixel_size is None:
        if H != W:
            raise ConfigError(f"`pixel_size`: a {H}x{W} image is not square; give its pixel size in coherence "
                              "lengths")
        pixel_size = float(L) / H
    pixel_size = as_pos_float("`pixel_size`", pixel_size)
    out, rec = crop_resample(img[..., [names.index(c) for c in need]], pixel_size, M, float(L))
    rec["channels"] = names
    rec["input_channels"] = need
    return np.ascontiguousarray(out, dtype=np.float32), rec


def parse_simulate_spec(spec: str) -> dict[str, float]:
    """``"eta=0.8,n_v=4,seed=1"`` → ``{"eta": 0.8, "n_v": 4.0, "seed": 1.0}``."""
    out: dict[str, float] = {}
    for part in spec.split(","):
        if not part.strip():
            continue
        if "=" not in part:
            raise ConfigError(f"`simulate` expects key=value pairs separated by commas, got {part!r}")
        k, v = (s.strip() for s in part.split("=", 1))
        if k in out:
            raise ConfigError(f"`simulate`: {k} given twice")
        try:
            out[k] = float(v)
        except ValueError:
            raise ConfigError(f"`simulate`: value of {k} must be a number, got {v!r}") from None
        if not math.isfinite(out[k]):
            raise ConfigError(f"`simulate`: value of {k} must be finite, got {v!r}")
    return out


def _training_config(model: Any):
    from ..physics.config import SimConfig

    cfg = model.metadata["dataset"]["config"]
    if cfg is None:
        raise ConfigError("the model's metadata does not record its training config; cannot simulate")
    return SimConfig.from_json(cfg) if isinstance(cfg, str) else SimConfig.from_dict(cfg)


def simulate_observation(model: Any, *, seed: int = 0, **params: float) -> Observation:
    """Simulate one observation with the model's training config.

    Only parameters the model infers may be set (each must be given); a
    parameter fixed during training must be left out or equal its training
    value. Values outside the prior box are simulated but noted in
    :attr:`Observation.warnings`. Nuisance parameters the model marginalises
    (``model.nuisance``: T, delta) may be given; otherwise they are drawn from
    the training prior with a generator seeded by ``seed``.
    """
    from ..physics.config import SAMPLE_PARAMETERS
    from ..physics.solver import simulate

    model = _as_model(model)
    nuisance = list(getattr(model, "nuisance", []))
    valid = list(SAMPLE_PARAMETERS) + nuisance
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ConfigError(f"`simulate`: unknown key(s) {unknown}; valid: {', '.join(valid)}, seed")
    if (isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer, float, np.floating))
            or not math.isfinite(seed) or float(seed) != int(seed) or not 0 <= int(seed) < 2**63):
        raise ConfigError(f"`simulate`: seed must be an integer in [0, 2^63), got {seed!r}")
    seed = int(seed)
    params = {k: as_float(f"`simulate`: {k}", v) for k, v in params.items()}
    cfg = _training_config(model)
    prior = model.prior
    inferred = list(model.parameter_names)
    values: dict[str, list[float]] = {}
    outside: list[str] = []
    for name in SAMPLE_PARAMETERS:
        if name in inferred:
            if name not in params:
                raise ConfigError(f"`simulate` needs a value for inferred parameter {name}")
            v = float(params[name])
            lo, hi = prior.low(name), prior.high(name)
            if prior.kind(name) == "int_uniform" and v != round(v):
                raise ConfigError(f"`simulate`: {name} must be an integer, got {v:g}")
            if not lo <= v <= hi:
                outside.append(f"simulated {name}={v:g} lies outside the model's prior [{lo:g}, {hi:g}]")
        else:
            trained = prior.low(name) if name in getattr(prior, "names", ()) else float(getattr(cfg, name))
            v = float(params.get(name, trained))
            if v != trained:
                raise ConfigError(f"`simulate` {name}={v:g}: the model was trained with {name} fixed at "
                                  f"{trained:g} and does not infer it; leave {name} out")
        values[name] = [v]
    if nuisance:  # marginalised by the model: given, or drawn from the training prior
        from ..io.priors import draw_uniform

        # entropy "NU": apart from the solver's and the measurement's streams
        drawn = draw_uniform(model.training_prior, nuisance, params, [seed, 0x4E55])
        for name in nuisance:
            values[name] = [drawn[name]]
    res = simulate(cfg, values, seed=seed)
    truth = {k: float(v[0]) for k, v in values.items()}
    settings: dict[str, Any] = {k: (int(v) if k == "n_v" else v) for k, v in truth.items()}
    settings["seed"] = seed
    return Observation(res.channels()[0], {"simulate": settings}, truth, outside, noise_seed=seed)


def observation_labels(metadata: dict[str, Any]) -> list[str]:
    """Names of the network input channels, e.g. ``rho1 (t=2)``, snapshot-major."""
    inp = metadata["input"]
    channels = inp["channels"]
    if metadata.get("measurement"):
        from ..instrument.model import MeasurementModel

        channels = MeasurementModel.from_dict(metadata["measurement"]["model"]).output_channels(channels)
    return [f"{c} (t={t:g})" for t in inp["snapshot_times"] for c in channels]


def network_input(model: Any, observation: Observation, measurement: Any = None) -> tuple[np.ndarray, dict[str, Any]]:
    """The network input (1, M, M, C′) of an observation and a record of the measurement it went through.

    A clean observation (``observation.measurement is None``) is selected as
    the training data were and measured with the model's measurement model
    (noise from ``measurement_rng(noise_seed, 0, noise_index)``), so that it
    looks like the training inputs. A measured one must declare the model's
    measurement (``measurement``, else ``observation.measurement``).

    Raises
    ------
    ConfigError
        One line when the declared measurement differs from the model's.
    """
    from ..instrument.model import MeasurementModel

    want = model.measurement
    declared = measurement if measurement is not None else observation.measurement
    if declared is None:  # clean simulator output: measure it as the training inputs were
        x = model.preprocess(observation.x)
        if want.is_identity:
            return x, {}
        extra = {}
        if getattr(model, "instrument_size", 0):  # the network also takes the instrument the measurement drew
            x, d = model.measure(x, observation.noise_seed, [observation.noise_index], with_instrument=True)
            model.instrument = d[0]
            extra = {"instrument": [float(v) for v in d[0]]}
        else:
            x = model.measure(x, observation.noise_seed, [observation.noise_index])
        return x, {"measurement": str(want), "measurement_applied": True,
                   "noise_seed": int(observation.noise_seed), "noise_index": int(observation.noise_index), **extra}
    got = MeasurementModel.parse(declared)
    if str(got) != str(want):
        raise ConfigError(f"`measurement` of the observation is {str(got)!r} but the model was trained with "
                          f"{str(want)!r}; measure with the model's settings or train a model for this one")
    if observation.as_input:
        x = model.preprocess_measured(observation.x)
    else:
        x = model.preprocess(observation.x) if want.is_identity else model.preprocess_measured(observation.x)
    return x, ({} if want.is_identity else {"measurement": str(want), "measurement_applied": False})
