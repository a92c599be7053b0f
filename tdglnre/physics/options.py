"""Solver options: the numerics of a run, apart from its physics (py-tdgl's SolverOptions/Device split).

:class:`SolverOptions` holds how a run is integrated and executed — time step,
snapshot times, working precision, health-check interval, batch size, numba
threads, device and CUDA kernel mode — and is validated when constructed
(:class:`ConfigError` naming the field). The physics (coefficients, lattice,
per-sample parameters) stays in :class:`~tdglnre.physics.config.SimConfig`,
which keeps ``dt``, ``snapshot_times`` and ``dtype`` as fields of the file
schema (presets and HDF5 files written before keep loading, byte for byte);
:meth:`SolverOptions.from_config` builds the options of a run from a config
and the run's keywords. The stability check of ``dt`` needs the physics (D,
α, β, η, ν, δ) and stays with it (``SimConfig.validate_sample``).

A leaf of :mod:`tdglnre.physics`: imports only the validation helpers, so the
config, both backends and the analysis layer may import it.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._validate import as_int
from ..errors import ConfigError, reject_unknown_keys

#: Working precisions of the solver.
DTYPES = ("float64", "float32")
#: Backends a run may ask for (``"auto"``: CUDA where a GPU is usable, else the CPU).
DEVICES = ("cpu", "cuda", "auto")
#: CUDA Euler-kernel modes (:func:`tdglnre.physics.cuda.kernels.select_mode`).
KERNEL_MODES = ("step", "fused-shared", "fused-global")
#: Samples per kernel call of the CPU solver when the options leave ``batch_size`` to the backend.
CPU_BATCH = 64
#: Default Hessian finite-difference step δ / max(1, ‖z‖_∞) per method, shared by the CPU
#: Hessian (:mod:`tdglnre.analysis.hessian`) and the device one (:class:`~.cuda.CudaHessian`).
DEFAULT_REL_STEP = {"richardson": 0.5, "central": 1e-5, "exact": 0.0}


def check_dt(dt: Any) -> None:
    """Raise :class:`ConfigError` unless the time step is positive and finite."""
    if not (dt > 0 and math.isfinite(dt)):
        raise ConfigError(f"dt must be positive, got {dt!r}")


def check_snapshot_times(times: tuple[float, ...], dt: float) -> None:
    """Raise :class:`ConfigError` unless ``times`` are positive, strictly increasing multiples of ``dt``."""
    if not times:
        raise ConfigError("snapshot_times must list at least one time")
    prev = 0.0
    for t in times:
        if not (t > 0 and math.isfinite(t)):
            raise ConfigError(f"snapshot time {t:g} must be positive (the run starts at t=0)")
        k = t / dt
        if abs(k - round(k)) > 1e-6 * max(1.0, k):
            raise ConfigError(
                f"snapshot time {t:g} is not a multiple of dt={dt:g} "
                f"(t/dt = {k:.6g}); nearest: {math.floor(k) * dt:g} or {math.ceil(k) * dt:g}"
            )
        if t <= prev and prev > 0:
            raise ConfigError(f"snapshot_times must be strictly increasing, got {list(times)}")
        prev = t


def snapshot_steps(times: tuple[float, ...], dt: float) -> tuple[int, ...]:
    """Euler step index of each snapshot time (the one rounding rule of both backends and the config)."""
    return tuple(int(round(t / dt)) for t in times)


def as_times(times: Any) -> tuple[float, ...]:
    """Snapshot times as a tuple of floats (a scalar is one time)."""
    if np.isscalar(times):
        times = (times,)
    return tuple(float(t) for t in times)


def check_kernel_mode(fused: Any) -> None:
    """``fused``: None (by N and dtype), True/False, or one of :data:`KERNEL_MODES`."""
    if fused is None or isinstance(fused, bool) or (isinstance(fused, str) and fused in KERNEL_MODES):
        return
    raise ConfigError(f"fused must be None, True, False or one of {list(KERNEL_MODES)}, got {fused!r}")


@dataclass(frozen=True)
class SolverOptions:
    """How a run is integrated and executed (never what it simulates); checked on construction."""

    dt: float = 1e-3
    """Explicit Euler time step (its stability bound is the physics' check, ``SimConfig.validate_sample``)."""
    snapshot_times: tuple[float, ...] = (2.0,)
    """Times at which the state is recorded (positive multiples of dt, ascending)."""
    dtype: str = "float64"
    """Working precision: "float64" or "float32"."""
    check_every: int = 100
    """Steps between health checks (every snapshot is checked too)."""
    batch_size: int | None = None
    """Samples per kernel call (CPU) or resident on the device (CUDA); None: the backend's default
    (:data:`CPU_BATCH`, ``cuda.auto_batch_size``). Never changes results."""
    threads: int | None = None
    """numba threads of the CPU solver (None: numba's setting). Never changes results."""
    device: str = "cpu"
    """Backend: "cpu", "cuda" or "auto"."""
    fused: bool | str | None = None
    """CUDA kernel mode (:func:`tdglnre.physics.cuda.kernels.select_mode`); ignored on the CPU."""

    def __post_init__(self) -> None:
        # run control first (the order of the checks of tdglnre.simulate's keywords), then the time grid
        as_int("check_every", self.check_every, 1)
        for name in ("batch_size", "threads"):
            if getattr(self, name) is not None:
                as_int(name, getattr(self, name), 1)
        if self.device not in DEVICES:
            raise ConfigError(f"device must be one of {list(DEVICES)}, got {self.device!r}")
        check_kernel_mode(self.fused)
        if self.dtype not in DTYPES:
            raise ConfigError(f"dtype must be one of {DTYPES}, got {self.dtype!r}")
        check_dt(self.dt)
        object.__setattr__(self, "snapshot_times", as_times(self.snapshot_times))
        check_snapshot_times(self.snapshot_times, self.dt)

    @classmethod
    def from_config(cls, config: Any, **run: Any) -> "SolverOptions":
        """The options of a run of ``config`` (its dt, snapshot times and dtype) with the run keywords ``run``.

        ``run`` takes the other fields (``check_every``, ``batch_size``,
        ``threads``, ``device``, ``fused``); a keyword of None leaves the
        field's default.
        """
        kw = {k: v for k, v in run.items() if v is not None}
        reject_unknown_keys(cls, kw, "solver option", ConfigError)
        kw.setdefault("dt", config.dt)
        kw.setdefault("snapshot_times", config.snapshot_times)
        kw.setdefault("dtype", config.dtype)
        return cls(**kw)

    def replace(self, **changes: Any) -> "SolverOptions":
        """A copy with some fields changed (checked again)."""
        return dataclasses.replace(self, **changes)

    def physics_fields(self) -> dict[str, Any]:
        """The fields ``SimConfig`` also holds (file schema): dt, snapshot_times, dtype."""
        return {"dt": self.dt, "snapshot_times": self.snapshot_times, "dtype": self.dtype}

    @property
    def snapshot_steps(self) -> tuple[int, ...]:
        """Step index of each snapshot time."""
        return snapshot_steps(self.snapshot_times, self.dt)

    def to_json(self) -> str:
        """JSON text (what crosses the Dask boundary)."""
        d = dataclasses.asdict(self)
        d["snapshot_times"] = list(self.snapshot_times)
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "SolverOptions":
        """Inverse of :meth:`to_json`."""
        d = json.loads(text)
        reject_unknown_keys(cls, d, "solver option", ConfigError)
        return cls(**d)
