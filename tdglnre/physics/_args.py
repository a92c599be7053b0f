"""Type checks of a simulation call's arguments (``tdglnre.simulate``), before any work.

Kept apart from :mod:`.config` (which judges the values) so that both backends can share it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validate import as_int
from ..errors import ConfigError
from .config import ALL_SAMPLE_PARAMETERS, SimConfig
from .rng import is_seed, seed_error

__all__ = ["check_run_arguments"]


def check_run_arguments(config: Any, params: Any = None, *, seed: Any = 0, n_samples: Any = None,
                        batch_size: Any = None, threads: Any = None, check_every: Any = None,
                        **solver_keywords: Any) -> None:
    """Check the types of a simulation call's arguments (``tdglnre.simulate``) before any work.

    Raises :class:`ConfigError` naming the argument: ``config`` that is not a
    :class:`SimConfig` (a preset name is pointed to ``load_preset``), ``params``
    that is not a mapping, a seed outside 0..2**63−1, and counts that are not
    integers (16.7 or NaN are refused, never truncated), with the keyword's
    name. The values themselves are judged by ``config.validate()``, the
    per-sample checks and :class:`~.options.SolverOptions` (``solver_keywords``: its
    other keywords, judged there).
    """
    if not isinstance(config, SimConfig):
        hint = (f"; for a preset use tdglnre.load_preset({config!r}) -> (config, prior)"
                if isinstance(config, str) else "")
        raise ConfigError(f"`config` must be a SimConfig, got {type(config).__name__}{hint}")
    if params is not None and not isinstance(params, dict) and not hasattr(params, "keys"):
        raise ConfigError(f"`params` must be a mapping of sample parameters {list(ALL_SAMPLE_PARAMETERS)} "
                          f"to values or arrays, got {type(params).__name__}")
    for name, value in dict(params or {}).items():
        try:
            np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise ConfigError(f"sample parameter {name} must be a number or an array of numbers, "
                              f"got {value!r}") from None
    if not is_seed(seed):
        raise seed_error(seed)
    for name, value, low in (("n_samples", n_samples, 1), ("batch_size", batch_size, 1),
                             ("threads", threads, 1), ("check_every", check_every, 1)):
        if value is not None:
            as_int(f"`{name}`", value, low)
