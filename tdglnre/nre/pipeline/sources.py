"""Training data sources: an HDF5 ensemble or NumPy arrays, read by index ranges.

:class:`EnsembleSource` (an HDF5 ensemble through :mod:`tdglnre.io.ensemble`)
and :class:`ArraySource` (NumPy arrays, for tests and synthetic problems) give
θ (S, P) and x (S, T, N, N, C); :func:`gaussian_toy` is a simulator with a
known posterior.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ...physics.config import NUISANCE_PARAMETERS
from ..settings import TrainingDataError


# ------------------------------------------------------------------- sources
@dataclass(frozen=True)
class ParameterBounds:
    """Prior box of the inferred parameters (used to scale θ to [−1, 1])."""

    names: tuple[str, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]
    kinds: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """``{name: {"kind", "low", "high"}}`` in parameter order."""
        return {n: {"kind": k, "low": lo, "high": hi}
                for n, k, lo, hi in zip(self.names, self.kinds, self.low, self.high)}


class ArraySource:
    """In-memory ensemble-like source (tests, synthetic problems).

    Parameters
    ----------
    theta
        (S, P) parameters.
    x
        (S, T, N, N, C) observations (or (S, N, N, C): one snapshot).
    parameter_names, low, high
        Inferred parameters and their prior box.
    channels
        Channel names (default ``c0, c1, …``).
    snapshot_times
        Times of the T snapshots (default ``0, 1, …``).
    info
        Extra dataset description stored in the metadata (config, prior, seed).
    """

    def __init__(
        self,
        theta: np.ndarray,
        x: np.ndarray,
        parameter_names: Sequence[str],
        low: Sequence[float],
        high: Sequence[float],
        *,
        channels: Sequence[str] | None = None,
        snapshot_times: Sequence[float] | None = None,
        kinds: Sequence[str] | None = None,
        info: dict[str, Any] | None = None,
    ):
        theta = np.asarray(theta, dtype=np.float64)
        x = np.asarray(x, dtype=np.float32)
        if x.ndim == 4:
            x = x[:, None]
        if theta.ndim == 1:
            theta = theta[:, None]
        if x.ndim != 5 or theta.ndim != 2 or len(theta) != len(x):
            raise TrainingDataError(
                f"need theta (S, P) and x (S, T, N, N, C) with equal S, got {theta.shape}, {x.shape}"
            )
        self._theta, self._x = theta, x
        self.n = len(x)
        names = tuple(str(n) for n in parameter_names)
        if len(names) != theta.shape[1]:
            raise TrainingDataError(f"{len(names)} parameter names for {theta.shape[1]} columns")
        self.bounds = ParameterBounds(
            names, tuple(float(v) for v in low), tuple(float(v) for v in high),
            tuple(kinds) if kinds is not None else ("uniform",) * len(names),
        )
        self.parameter_names = names
        self.channels = tuple(channels) if channels is not None else tuple(
            f"c{i}" for i in range(x.shape[-1]))
        self.snapshot_times = tuple(float(t) for t in (
            snapshot_times if snapshot_times is not None else range(x.shape[1])))
        self.sample_shape = tuple(x.shape[1:])
        self.info = dict(info or {})
        self.path: str | None = None

    def theta(self, start: int, stop: int) -> np.ndarray:
        """θ of samples [start, stop), float64 (n, P)."""
        return self._theta[start:stop]

    def x(self, start: int, stop: int) -> np.ndarray:
        """x of samples [start, stop), float32 (n, T, N, N, C)."""
        return self._x[start:stop]

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> "ArraySource":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _open_ensemble(path: str) -> Any:
    from ...io.ensemble import open_ensemble

    return open_ensemble(path)


#: Parameters the prior may draw per sample that the ratio estimator never infers: thermal noise T and
#: pinning disorder delta (docs/physics.md, "Nuisance physics"). Their θ columns are dropped, so the
#: network learns the ratio of the remaining parameters with T and delta marginalised over their prior.
NUISANCE = NUISANCE_PARAMETERS


class EnsembleSource:
    """An HDF5 ensemble (schema v1) opened for training.

    Only the ``n_complete`` finished samples are used. The file stays open
    until :meth:`close`. Prior-drawn nuisance parameters (:data:`NUISANCE`)
    are not among :attr:`parameter_names`: :meth:`theta` leaves their columns
    out, and ``info["nuisance"]`` lists them (absent when there are none).

    Raises
    ------
    TrainingDataError
        If the ensemble has no complete samples or a parameter has no finite
        prior box.
    """

    def __init__(self, path: str):
        self.path = str(path)
        self._cm = _open_ensemble(self.path)
        ens = self._cm.__enter__()
        self._ens = ens
        try:
            self.n = int(ens.n_complete)
            if self.n <= 0:
                raise TrainingDataError(f"{self.path}: the ensemble holds no complete samples")
            prior = ens.prior
            stored = tuple(ens.parameter_names)
            names = tuple(n for n in stored if n not in NUISANCE)
            self.nuisance = tuple(n for n in stored if n in NUISANCE)
            self._columns = [stored.index(n) for n in names]
            if not names:
                raise TrainingDataError(f"{self.path}: the ensemble has no inferred parameters"
                                        + (f" besides the nuisance {list(self.nuisance)}" if self.nuisance else ""))
            low, high, kinds = [], [], []
            for n in names:
                lo, hi, kd = float(prior.low(n)), float(prior.high(n)), str(prior.kind(n))
                if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
                    raise TrainingDataError(
                        f"{self.path}: parameter {n!r} has prior bounds [{lo}, {hi}]; "
                        "the ratio estimator needs a finite box with high > low"
                    )
                low.append(lo)
                high.append(hi)
                kinds.append(kd)
            self.bounds = ParameterBounds(names, tuple(low), tuple(high), tuple(kinds))
            self.parameter_names = names
            self.channels = tuple(str(c) for c in ens.channels)
            self.snapshot_times = tuple(float(t) for t in ens.snapshot_times)
            config = ens.config
            config_dict = config.to_dict() if hasattr(config, "to_dict") else dict(config)
            self.info = {
                "config": config_dict,
                "prior": prior.to_dict(),
                "seed": _jsonable(getattr(ens, "seed", None)),
                "n_complete": self.n,
                "n_samples": _jsonable(getattr(ens, "n_samples", self.n)),
                "N": int(config_dict["N"]),
                "L": float(config_dict["L"]),
            }
            if self.nuisance:
                self.info["nuisance"] = list(self.nuisance)
            declared = getattr(ens, "attrs", {}).get("measurement")
            if declared:  # the instrument the ensemble's preset declares (train's default measurement)
                self.info["measurement"] = str(declared)
            probe = np.asarray(ens.x(0, 1))
            self.sample_shape = tuple(probe.shape[1:])
            expect = (len(self.snapshot_times), self.info["N"], self.info["N"], len(self.channels))
            if self.sample_shape != expect:
                raise TrainingDataError(
                    f"{self.path}: x has sample shape {self.sample_shape} but the file's config "
                    f"says (T, N, N, C) = {expect} (N={self.info['N']}, "
                    f"{len(self.snapshot_times)} snapshot(s), channels {list(self.channels)}); "
                    "the file is inconsistent"
                )
        except BaseException:
            self.close()
            raise
        self.prior = prior

    def theta(self, start: int, stop: int) -> np.ndarray:
        """θ of samples [start, stop), float64 (n, P), without the nuisance columns."""
        th = np.asarray(self._ens.theta(start, stop), dtype=np.float64)
        return th if not self.nuisance else th[:, self._columns]

    def x(self, start: int, stop: int) -> np.ndarray:
        """x of samples [start, stop), float32 (n, T, N, N, C)."""
        return np.asarray(self._ens.x(start, stop), dtype=np.float32)

    def close(self) -> None:
        """Close the HDF5 file."""
        cm, self._cm = getattr(self, "_cm", None), None
        if cm is not None:
            cm.__exit__(None, None, None)

    def __enter__(self) -> "EnsembleSource":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _jsonable(v: Any) -> Any:
    if hasattr(v, "item"):
        return v.item()
    if hasattr(v, "tolist"):
        return v.tolist()
    return v


# ------------------------------------------------------------ toy problem
def gaussian_toy(n: int, *, seed: int = 0, n_params: int = 1, size: int = 8,
                 sigma: float = 1.0) -> ArraySource:
    """A simulator with a known posterior, for tests and benchmarks.

    θ ~ U(−1, 1)^P; x is a (size, size, P) image whose channel p has i.i.d.
    pixels N(θ_p, σ²). The posterior of θ_p is N(mean of channel p, σ²/size²)
    truncated to [−1, 1] (independent across parameters).
    """
    rng = np.random.default_rng([int(seed), 0x70E])
    theta = rng.uniform(-1.0, 1.0, size=(n, n_params))
    x = theta[:, None, None, :] + sigma * rng.standard_normal((n, size, size, n_params))
    names = [f"theta{i}" for i in range(n_params)]
    return ArraySource(theta, x[:, None].astype(np.float32), names, [-1.0] * n_params,
                       [1.0] * n_params, channels=[f"pix{i}" for i in range(n_params)],
                       info={"config": {"toy": "gaussian", "N": size, "sigma": sigma},
                             "prior": {nm: {"kind": "uniform", "low": -1.0, "high": 1.0}
                                       for nm in names},
                             "seed": int(seed), "N": size, "L": None})
