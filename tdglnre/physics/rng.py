"""Per-sample random streams: everything random derives from (seed, stream, sample index).

Numba-free, so that the data layer (priors, ensembles) can draw and check seeds
without loading the kernels. Sample k's draws depend only on (seed, k), so results
never depend on batch composition or thread count (docs/physics.md, "Reproducibility").
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError

__all__ = ["SEED_MAX", "STREAM_DISORDER", "STREAM_INITIAL_STATE", "STREAM_PRIOR", "check_seed", "initial_state",
           "is_seed", "sample_rng", "seed_error"]

#: Independent random streams derived from (seed, k).
STREAM_INITIAL_STATE = 0
STREAM_PRIOR = 1
STREAM_DISORDER = 2

#: Largest run seed (seeds are 0..2**63 − 1; also what HDF5 stores as int64).
SEED_MAX = 2**63 - 1


def is_seed(seed: object) -> bool:
    """Whether ``seed`` is a run seed: a Python or NumPy integer (not a bool, not a float) in 0..:data:`SEED_MAX`.

    The one rule every seed check applies (:func:`check_seed`, :func:`sample_rng`).
    """
    return (isinstance(seed, (int, np.integer)) and not isinstance(seed, (bool, np.bool_))
            and 0 <= int(seed) <= SEED_MAX)


def seed_error(seed: object) -> ConfigError:
    """The error of an invalid seed given to the simulation (:func:`sample_rng`, ``tdglnre.simulate``)."""
    return ConfigError(f"seed must be an integer in 0..2**63-1 (0..{SEED_MAX}), got {seed!r}")


def check_seed(seed: object) -> int:
    """``seed`` as an int, or :class:`ConfigError` unless it is an integer in 0..2**63−1 (:func:`is_seed`).

    The seed is stored as a signed 64-bit HDF5 attribute, so larger values cannot be recorded.
    """
    if not is_seed(seed):
        raise ConfigError(f"seed must be an integer in 0..{SEED_MAX} (2**63 - 1), got {seed!r}")
    return int(seed)  # type: ignore[arg-type]


def sample_rng(seed: int, index: int, stream: int = STREAM_INITIAL_STATE) -> np.random.Generator:
    """Generator that depends only on (seed, stream, sample index).

    Raises
    ------
    ConfigError
        If ``seed`` is not an integer in 0..2**63 − 1 or ``index`` is negative.
    """
    if not is_seed(seed):
        raise seed_error(seed)
    if index < 0:
        raise ConfigError(f"sample index must be non-negative, got index={index}")
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(stream), int(index)]))


def initial_state(seed: int, index: int, N: int) -> np.ndarray:
    """Quench initial condition (4, N, N) float64: Re, Im ψ_i ~ U[−0.5, 0.5]."""
    return sample_rng(seed, index).uniform(-0.5, 0.5, size=(4, N, N))
