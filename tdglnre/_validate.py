"""One coercion helper per kind of value: check it, return it typed, or raise ConfigError naming it.

Messages have the form ``<name> must be …, got …``; a workflow passes the
argument's name in backticks (`` "`grid_points`" ``) so the command line can
show the flag instead (:func:`tdglnre.cli._flags.to_flags`).

Who validates where (docs/architecture.md, "Settings objects and their validation"):

* on construction (``__post_init__``), with these helpers:
  :class:`~tdglnre.analysis.hessian.HessianOptions` (also after
  ``.replace``) and the Hessian state sources (``FromParams``,
  ``FromPreset``, ``FromEnsemble``);
* on construction, with their own checks and :class:`ConfigError`:
  ``TrainSettings`` and ``NetworkConfig`` (:mod:`tdglnre.nre.settings`),
  ``Prior`` and ``Prior1D`` (:mod:`tdglnre.io.priors`), ``MeasurementModel``
  and its transforms (:mod:`tdglnre.instrument.model`);
* on request: :class:`~tdglnre.physics.config.SimConfig` in
  ``SimConfig.validate()`` (called by the solver, ``generate``, ``EnergyModel``
  and the preset loader; construction only normalises containers), with
  :func:`as_int` and :func:`int_if_integral`; the preset loader parses
  ``--set`` values with :func:`parse_number`;
* the public workflow functions (``posterior``, ``calibrate``,
  ``load_model``, ``simulate_observation``, ``observation_from_*``,
  ``image_to_input``, ``structure``, ``run_hessian``, ``run_demo``) at
  their entry, once, with these helpers, before any work; ``generate``
  checks its own arguments (``_check_generate_arguments``) and leaves the
  configuration to ``SimConfig.validate()``.

A leaf module: imports only :mod:`tdglnre.errors`.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Iterable, TypeVar

import numpy as np

from .errors import ConfigError

T = TypeVar("T")

__all__ = ["as_bool", "as_choice", "as_float", "as_int", "as_optional_path", "as_path", "as_pos_float",
           "int_if_integral", "parse_number"]


def as_int(name: str, value: Any, low: int | None = None) -> int:
    """``value`` as an int (Python or NumPy integers; bools and floats refused).

    Raises
    ------
    ConfigError
        ``<name> must be an integer >= <low>, got <value>`` (or ``must be an integer``).
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or (
            low is not None and value < low):
        raise ConfigError(f"{name} must be an integer{'' if low is None else f' >= {low}'}, got {value!r}")
    return int(value)


def as_path(name: str, value: Any) -> Path:
    """``value`` as a :class:`~pathlib.Path` (a ``str`` or an ``os.PathLike``; not an array, a number or ``""``).

    Raises
    ------
    ConfigError
        ``<name> must be a file or directory path, got <type>``.
    """
    if isinstance(value, bytes) or not isinstance(value, (str, os.PathLike)) or value == "":
        what = repr(value) if isinstance(value, (str, bytes, int, float)) else f"a {type(value).__name__}"
        raise ConfigError(f"{name} must be a file or directory path, got {what}")
    return Path(value)


def as_optional_path(name: str, value: Any) -> Path | None:
    """:func:`as_path`, or None for None."""
    return None if value is None else as_path(name, value)


def as_float(name: str, value: Any, *, positive: bool | None = None) -> float:
    """``value`` as a finite float; ``positive=True``: > 0, ``False``: >= 0, None: any sign.

    Raises
    ------
    ConfigError
        ``<name> must be a number, got …`` or ``<name> must be finite and > 0, got …``.
    """
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if positive is None:
        bad, bound = False, ""
    else:
        bad, bound = (x <= 0, " and > 0") if positive else (x < 0, " and >= 0")
    if isinstance(value, (bool, np.bool_)) or not math.isfinite(x) or bad:
        raise ConfigError(f"{name} must be finite{bound}, got {value!r}")
    return x


def as_pos_float(name: str, value: Any) -> float:
    """``value`` as a finite float > 0 (see :func:`as_float`)."""
    return as_float(name, value, positive=True)


def as_bool(name: str, value: Any) -> bool:
    """``value`` as a bool (True/False or NumPy bools only, not 0/1 or strings)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ConfigError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def as_choice(name: str, value: Any, choices: Iterable[T]) -> T:
    """``value`` if it is one of ``choices``: ``unknown <name> <value>; valid: [...]`` otherwise."""
    options = list(choices)
    if value not in options:
        raise ConfigError(f"unknown {name} {value!r}; valid: {options}")
    return value


def parse_number(name: str, value: Any, *, integer: bool = False) -> float | int:
    """A finite number from a number or its text (``--set key=value``, TOML); ``integer``: an int.

    Raises
    ------
    ConfigError
        ``<name>: expected a number / a finite number / an integer, got …``.
    """
    if isinstance(value, bool):
        raise ConfigError(f"{name}: expected a number, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: expected a number, got {value!r}") from None
    if not math.isfinite(v):
        raise ConfigError(f"{name}: expected a finite number, got {value!r}")
    if integer:
        if v != round(v):
            raise ConfigError(f"{name}: expected an integer, got {value!r}")
        return int(round(v))
    return v


def int_if_integral(value: Any) -> Any:
    """``value`` as an int when it is an integral number (JSON's 4.0 -> 4), else unchanged for validation to judge."""
    if isinstance(value, (bool, np.bool_)):
        return value
    try:
        f = float(value)
    except (TypeError, ValueError):
        return value
    return int(f) if math.isfinite(f) and f == int(f) else value
