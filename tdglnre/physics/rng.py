"""Per-sample random streams: everything random derives from (seed, stream, sample index).

Numba-free, so that the data layer (priors, ensembles) can draw and check seeds
without loading the kernels. Sample k's draws depend only on (seed, k), so results
never depend on batch composition or thread count (docs/physics.md, "Reproducibility").
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError

__all__ = ["SEED_MAX", "STREAM_DISORDER", "STREAM_INITIAL_STATE", "STREAM_PRIOR", "initial_state", "sample_rng"]

#: Independent random streams derived from (seed, k).
STREAM_INITIAL_STATE = 0
STREAM_PRIOR = 1
STREAM_DISORDER = 2

#: Largest run seed (seeds are 0..2**63 − 1; also what HDF5 stores as int64).
SEED_MAX = 2**63 - 1


def sample_rng(seed: int, index: int, stream: int = STREAM_INITIAL_STATE) -> np.random.Generator:
    """Generator that depends only on (seed, stream, sample index).

    Raises
    ------
    ConfigError
        If ``seed`` is not an integer in 0..2**63 − 1 or ``index`` is negative.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) <= SEED_MAX:
        raise ConfigError(f"seed must be an integer in 0..2**63-1 (0..{SEED_MAX}), got {seed!r}")
    if index < 0:
        raise ConfigError(f"sample index must be non-negative, got index={index}")
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(stream), int(index)]))


def initial_state(seed: int, index: int, N: int) -> np.ndarray:
    """Quench initial condition (4, N, N) float64: Re, Im ψ_i ~ U[−0.5, 0.5]."""
    return sample_rng(seed, index).uniform(-0.5, 0.5, size=(4, N, N))
