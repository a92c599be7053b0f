"""The ``tdglnre-hessian`` file format: arrays plus JSON attributes in HDF5 (``.h5``/``.hdf5``) or NPZ.

This module knows only the container (:func:`write`, :func:`load`);
:class:`~.result.HessianResult` decides what goes in it. Layout (docs/hessian.md §6):
attributes ``format``, ``format_version``, ``config`` (JSON of the
:class:`~tdglnre.physics.config.SimConfig`), ``summary`` (JSON) and, since
this package was split, ``options`` (JSON of the
:class:`~.options.HessianOptions`); datasets ``eigenvalues``,
``softest_mode`` (4, N, N), ``state`` (4, N, N) and, with a DOS,
``dos_edges``, ``dos_density``, ``dos_nodes``, ``dos_weights``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ...errors import ConfigError
from ...physics.config import SimConfig

log = logging.getLogger(__name__)

FORMAT = "tdglnre-hessian"
FORMAT_VERSION = 1
#: Attributes every file has (``options`` is optional: files written before it existed lack it).
_REQUIRED_ATTRS = ("format", "format_version", "config", "summary")
_SUFFIXES = (".h5", ".hdf5", ".npz")


def check_suffix(path: str | Path) -> Path:
    """``path`` as a :class:`Path` if it ends in .h5, .hdf5 or .npz; otherwise a :class:`ConfigError`."""
    path = Path(path)
    if path.suffix not in _SUFFIXES:
        raise ConfigError(f"output file must end in .h5, .hdf5 or .npz, got {path.name!r}")
    return path


def write(path: str | Path, arrays: Mapping[str, np.ndarray], attrs: Mapping[str, Any]) -> Path:
    """Write ``arrays`` and the string/int ``attrs`` (plus ``format``/``format_version``) to ``path``."""
    path = check_suffix(path)
    attrs = {"format": FORMAT, "format_version": FORMAT_VERSION, **attrs}
    if path.suffix == ".npz":
        np.savez_compressed(path, **arrays, **{k: np.asarray(v) for k, v in attrs.items()})
    else:
        import h5py

        with h5py.File(path, "w") as f:
            for k, v in attrs.items():
                f.attrs[k] = v
            for k, v in arrays.items():
                f.create_dataset(k, data=v)
    log.info("wrote %s", path)
    return path


def load(path: str | Path) -> dict[str, Any]:
    """Read a ``tdglnre-hessian`` file into a dict: its arrays, ``config`` (SimConfig), ``summary`` (dict)
    and ``options`` (dict, empty for files written without it).

    Raises
    ------
    ConfigError
        Missing file, unknown suffix, or not a ``tdglnre-hessian`` file.
    """
    path = check_suffix(path)
    if not path.exists():
        raise ConfigError(f"Hessian result file {path} does not exist")
    out: dict[str, Any] = {}
    if path.suffix == ".npz":
        with np.load(path) as f:
            for k in f.files:
                out[k] = f[k]
        meta = {k: str(out.pop(k)) for k in (*_REQUIRED_ATTRS, "options") if k in out}
    else:
        import h5py

        with h5py.File(path, "r") as f:
            meta = {k: f.attrs[k] for k in (*_REQUIRED_ATTRS, "options") if k in f.attrs}
            for k in f:
                out[k] = f[k][()]
    if str(meta.get("format")) != FORMAT or any(k not in meta for k in _REQUIRED_ATTRS):
        raise ConfigError(f"{path} is not a {FORMAT} file (format={meta.get('format')!r})")
    out["config"] = SimConfig.from_json(str(meta["config"]))
    out["summary"] = json.loads(str(meta["summary"]))
    out["options"] = json.loads(str(meta["options"])) if "options" in meta else {}
    return out


__all__ = ["FORMAT", "FORMAT_VERSION", "check_suffix", "load", "write"]
