"""Generate an HDF5 ensemble of quenches with θ drawn from a prior.

>>> res = tg.generate("quick", n_samples=200, seed=0, out="train.h5")
>>> res.samples_per_s, res.write_fraction
>>> res.plot()            # a few samples' channels

Sample k depends only on (seed, k): the file is the same for any batch size,
thread count, Dask worker count and after ``resume``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from ..errors import ConfigError
from ..progress import ProgressLike


@dataclass
class GenerateResult:
    """What a :func:`generate` run wrote."""

    path: Path
    """The ensemble file."""
    n_samples: int
    """Samples the file is meant to hold."""
    n_complete: int
    """Samples complete now."""
    n_new: int
    """Samples simulated by this call."""
    wall_s: float
    """Wall time of this call."""
    samples_per_s: float
    """Throughput of this call (new samples per wall second)."""
    write_fraction: float
    """Share of the wall time spent writing HDF5."""
    summary: dict[str, Any] = field(default_factory=dict)
    """Every figure :func:`tdglnre.io.generate.generate_ensemble` reports."""

    def open(self) -> Any:
        """The ensemble for reading (:class:`tdglnre.io.ensemble.Ensemble`; use as a context manager)."""
        from ..io.ensemble import open_ensemble

        return open_ensemble(self.path)

    def plot(self, out_dir: str | Path | None = None, n: int = 3) -> list[Any]:
        """The channels of the first ``n`` samples at the last snapshot (one figure each)."""
        from .. import plots

        with self.open() as ens:
            k = min(n, ens.n_complete)
            x = ens.x(0, k)[:, -1]
            theta = ens.theta(0, k)
            names = list(ens.parameter_names)
            channels = list(ens.channels)
        figs = []
        for i in range(k):
            title = ", ".join(f"{a}={v:g}" for a, v in zip(names, theta[i]))
            path = None if out_dir is None else Path(out_dir) / f"sample_{i}.png"
            figs.append(plots.plot_observation(np.asarray(x[i]), [f"{c} ({title})" for c in channels], path))
        return figs


def generate(preset: str | Path | Any, n_samples: int, seed: int, out: str | Path, *, prior: Any = None,
             overrides: Iterable[str] | Mapping[str, Any] = (), dtype: str | None = None, resume: bool = False,
             force: bool = False, workers: int | None = None, scheduler: str | None = None,
             store_fields: bool = False, batch_size: int | None = None, threads: int | None = None,
             progress: ProgressLike = False, device: str = "cpu") -> GenerateResult:
    """Simulate ``n_samples`` quenches with θ ~ prior into the ensemble file ``out``.

    Parameters
    ----------
    preset
        A preset name (``paper``, ``drag``, ``quick``), a preset TOML path, or a
        :class:`~tdglnre.physics.config.SimConfig` (then ``prior`` is required).
    n_samples, seed, out
        Number of samples, run seed, output ``.h5`` path.
    prior
        The :class:`~tdglnre.io.priors.Prior` when ``preset`` is a config.
    overrides
        Preset overrides (``["N=32", "prior.eta=uniform(0,1)"]`` or a mapping).
    dtype
        Solver precision override (``float32``/``float64``).
    resume, force, workers, scheduler, store_fields, batch_size, threads
        As :func:`tdglnre.io.generate.generate_ensemble`.
    progress
        True for a bar on stderr, or a callable ``f(n)`` per finished batch.
    device
        ``"cpu"`` (default), ``"cuda"`` or ``"auto"``, as :func:`tdglnre.io.generate.generate_ensemble`.
    """
    from ..io.generate import generate_ensemble
    from ..io.presets import load_preset, preset_measurement
    from ..physics.config import SimConfig

    _check_generate_arguments(preset, overrides, dtype)
    measurement = None
    if isinstance(preset, SimConfig):
        if prior is None:
            raise ConfigError("`prior` is required when `preset` is a SimConfig")
        config = preset if dtype is None else preset.replace(dtype=dtype)
        if overrides:
            raise ConfigError("`overrides` apply to presets; change the SimConfig directly instead")
    else:
        if prior is not None:
            raise ConfigError("`prior` is taken from the preset; override it with `overrides` (prior.NAME=...)")
        sets: Any = overrides
        if dtype is not None:
            sets = ({**dict(overrides), "dtype": dtype} if isinstance(overrides, Mapping)
                    else [*overrides, f"dtype={dtype}"])
        config, prior = load_preset(preset, sets)
        measurement = preset_measurement(preset)
    s = generate_ensemble(config, prior, n_samples, seed, out, resume=resume, force=force, workers=workers,
                          scheduler=scheduler, store_fields=store_fields, batch_size=batch_size, threads=threads,
                          progress=progress, device=device, measurement=measurement)
    return GenerateResult(Path(s["path"]), s["n_samples"], s["n_complete"], s["n_new"], s["wall_s"],
                          s["samples_per_s"], s["write_fraction"], s)


def _check_generate_arguments(preset: Any, overrides: Any, dtype: Any) -> None:
    """Types of the arguments :func:`generate` uses itself; the rest are checked by ``generate_ensemble``."""
    from ..physics.config import SimConfig

    if not isinstance(preset, (str, os.PathLike, SimConfig)) or (isinstance(preset, str) and not preset.strip()):
        raise ConfigError(f"`preset` must be a preset name, a preset TOML path or a SimConfig, got {preset!r}")
    if isinstance(overrides, (str, bytes)) or not isinstance(overrides, (Mapping, Iterable)):
        raise ConfigError("`overrides` must be a list of 'key=value' strings or a mapping key -> value, got "
                          f"{overrides!r}")
    if dtype is not None and dtype not in ("float32", "float64"):
        raise ConfigError(f"`dtype` must be 'float32', 'float64' or None, got {dtype!r}")
