"""Simulation configuration: a frozen dataclass with explicit validation.

The magnetic field is specified by the integer number of flux quanta ``n_v``
through the torus (B = 2π n_v / L², DESIGN.md §2); :func:`n_v_from_field`
converts a field B and names the nearest valid values when B is not allowed.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from ..errors import ConfigError, reject_unknown_keys

#: Parameters that may vary from sample to sample inside one batch.
SAMPLE_PARAMETERS = ("eta", "n_v", "nu")

_DTYPES = ("float64", "float32")


def field_from_n_v(n_v: int | float, L: float) -> float:
    """Uniform field B carrying ``n_v`` flux quanta through an L×L torus."""
    return 2.0 * math.pi * float(n_v) / (L * L)


def n_v_from_field(B: float, L: float, *, rtol: float = 1e-9) -> int:
    """Number of flux quanta for field ``B`` on an L×L torus.

    Raises
    ------
    ConfigError
        If B·L² is not 2π times an integer; the message names the two nearest
        valid fields.
    """
    x = B * L * L / (2.0 * math.pi)
    n = round(x)
    if abs(x - n) > rtol * max(1.0, abs(x)):
        lo, hi = math.floor(x), math.ceil(x)
        raise ConfigError(
            f"field B={B:g} on a torus of side L={L:g} carries {x:.6g} flux quanta; "
            f"periodic boundaries need B*L^2 = 2*pi*n_v with integer n_v. Nearest valid: "
            f"B={field_from_n_v(lo, L):.12g} (n_v={lo}) or B={field_from_n_v(hi, L):.12g} (n_v={hi})"
        )
    return int(n)


def _pair(name: str, value: Any) -> tuple[float, float]:
    if np.isscalar(value):
        return (float(value), float(value))
    vals = tuple(float(v) for v in value)
    if len(vals) != 2:
        raise ConfigError(f"{name} needs one value per band (2), got {len(vals)}: {value!r}")
    return vals  # type: ignore[return-value]


def stability_limit(D: tuple[float, float], nu: float, h: float) -> float:
    """Largest stable explicit-Euler time step, h² / (4 λ_max).

    λ_max is the largest eigenvalue of the gradient matrix [[D1, ν], [ν, D2]];
    the covariant Laplacian's spectrum lies in [-8/h², 0].
    """
    d1, d2 = D
    lam_max = 0.5 * (d1 + d2) + math.sqrt(0.25 * (d1 - d2) ** 2 + nu * nu)
    return h * h / (4.0 * lam_max)


@dataclass(frozen=True)
class SimConfig:
    """Two-band TDGL quench simulation settings (DESIGN.md §2)."""

    N: int = 64
    """Lattice sites per side (N×N, periodic)."""
    L: float = 32.0
    """Physical side length; the lattice spacing is h = L/N."""
    dt: float = 1e-3
    """Explicit Euler time step."""
    alpha: tuple[float, float] = (-1.0, -1.0)
    """Quadratic GL coefficients α1, α2."""
    beta: tuple[float, float] = (1.0, 1.0)
    """Quartic GL coefficients β1, β2 (> 0)."""
    D: tuple[float, float] = (4.0, 1.0)
    """Diffusion (gradient) coefficients D1, D2 (> 0)."""
    eta: float = 0.0
    """Josephson coupling η (default for samples that do not set it)."""
    n_v: int = 0
    """Flux quanta through the torus (vortices per band); B = 2π n_v / L²."""
    nu: float = 0.0
    """Andreev–Bashkin drag ν; needs ν² < D1·D2."""
    snapshot_times: tuple[float, ...] = (2.0,)
    """Times at which the state is recorded (multiples of dt, ascending)."""
    dtype: str = "float64"
    """Working precision of the solver: "float64" or "float32"."""

    def __post_init__(self) -> None:
        # normalise container types so that equal configs compare equal and hash
        object.__setattr__(self, "alpha", _pair("alpha", self.alpha))
        object.__setattr__(self, "beta", _pair("beta", self.beta))
        object.__setattr__(self, "D", _pair("D", self.D))
        times = self.snapshot_times
        if np.isscalar(times):
            times = (times,)
        object.__setattr__(self, "snapshot_times", tuple(float(t) for t in times))

    # ------------------------------------------------------------------ derived
    @property
    def h(self) -> float:
        """Lattice spacing L/N."""
        return self.L / self.N

    @property
    def B(self) -> float:
        """Magnetic field of the default ``n_v``."""
        return field_from_n_v(self.n_v, self.L)

    @property
    def snapshot_steps(self) -> tuple[int, ...]:
        """Step index of each snapshot time."""
        return tuple(int(round(t / self.dt)) for t in self.snapshot_times)

    @property
    def n_steps(self) -> int:
        """Total number of Euler steps (to the last snapshot)."""
        return max(self.snapshot_steps) if self.snapshot_times else 0

    # --------------------------------------------------------------- validation
    def validate(self) -> "SimConfig":
        """Check every field; raise :class:`ConfigError` naming the problem.

        Returns ``self`` so that calls can be chained.
        """
        if isinstance(self.N, bool) or not isinstance(self.N, (int, np.integer)) or self.N < 4:
            raise ConfigError(f"N must be an integer >= 4, got {self.N!r}")
        if not (math.isfinite(self.L) and self.L > 0):
            raise ConfigError(f"L must be positive and finite, got {self.L!r}")
        for name, (a, b) in (("D", self.D), ("beta", self.beta)):
            if not (a > 0 and b > 0 and math.isfinite(a) and math.isfinite(b)):
                raise ConfigError(f"{name} must be positive in both bands, got {name}=({a:g}, {b:g})")
        if not all(math.isfinite(a) for a in self.alpha):
            raise ConfigError(f"alpha must be finite, got {self.alpha}")
        if self.dtype not in _DTYPES:
            raise ConfigError(f"dtype must be one of {_DTYPES}, got {self.dtype!r}")
        if not math.isfinite(self.eta):
            raise ConfigError(f"eta must be finite, got {self.eta!r}")
        self.validate_sample(self.eta, self.n_v, self.nu)
        if not (self.dt > 0 and math.isfinite(self.dt)):
            raise ConfigError(f"dt must be positive, got {self.dt!r}")
        if not self.snapshot_times:
            raise ConfigError("snapshot_times must list at least one time")
        prev = 0.0
        for t in self.snapshot_times:
            if not (t > 0 and math.isfinite(t)):
                raise ConfigError(f"snapshot time {t:g} must be positive (the run starts at t=0)")
            k = t / self.dt
            if abs(k - round(k)) > 1e-6 * max(1.0, k):
                raise ConfigError(
                    f"snapshot time {t:g} is not a multiple of dt={self.dt:g} "
                    f"(t/dt = {k:.6g}); nearest: {math.floor(k) * self.dt:g} or {math.ceil(k) * self.dt:g}"
                )
            if t <= prev and prev > 0:
                raise ConfigError(f"snapshot_times must be strictly increasing, got {list(self.snapshot_times)}")
            prev = t
        return self

    def validate_sample(self, eta: float, n_v: Any, nu: float) -> None:
        """Validate one sample's (η, n_v, ν) against this config."""
        if not math.isfinite(float(eta)):
            raise ConfigError(f"eta must be finite, got {eta!r}")
        if isinstance(n_v, bool) or float(n_v) != round(float(n_v)):
            raise ConfigError(
                f"n_v must be an integer number of flux quanta, got {n_v!r} "
                "(periodic boundaries need B*L^2 = 2*pi*n_v)"
            )
        d1, d2 = self.D
        if not nu * nu < d1 * d2:
            raise ConfigError(
                f"drag nu={nu:g} makes the equations ill-posed: the gradient matrix "
                f"[[D1, nu], [nu, D2]] must be positive definite, i.e. nu^2 < D1*D2 = {d1 * d2:g} "
                f"(|nu| < {math.sqrt(d1 * d2):.6g})"
            )
        limit = stability_limit(self.D, nu, self.h)
        if not self.dt < limit:
            raise ConfigError(
                f"dt={self.dt:g} exceeds the explicit Euler stability limit h^2/(4*lambda_max) = {limit:.6g} "
                f"(h={self.h:g}, D=({d1:g}, {d2:g}), nu={nu:g})"
            )

    # ---------------------------------------------------------------- (de)serialise
    def replace(self, **changes: Any) -> "SimConfig":
        """A copy with some fields changed (not validated)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON dictionary of all fields."""
        d = dataclasses.asdict(self)
        for k in ("alpha", "beta", "D", "snapshot_times"):
            d[k] = list(d[k])
        return d

    def to_json(self) -> str:
        """JSON text of :meth:`to_dict` (stored in HDF5 attributes)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """Names of the configuration fields."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SimConfig":
        """Inverse of :meth:`to_dict`; unknown keys are an error listing the valid ones."""
        reject_unknown_keys(cls, d, "config key", ConfigError)
        kw = dict(d)
        if "N" in kw:
            kw["N"] = int(kw["N"]) if float(kw["N"]) == int(float(kw["N"])) else kw["N"]
        if "n_v" in kw and not isinstance(kw["n_v"], bool):
            kw["n_v"] = int(kw["n_v"]) if float(kw["n_v"]) == round(float(kw["n_v"])) else kw["n_v"]
        return cls(**kw)

    @classmethod
    def from_json(cls, text: str) -> "SimConfig":
        """Inverse of :meth:`to_json`."""
        return cls.from_dict(json.loads(text))

    @classmethod
    def with_field(cls, B: float, **kw: Any) -> "SimConfig":
        """Config whose field is given as B; B must carry an integer n_v."""
        L = kw.get("L", cls.L)
        return cls(n_v=n_v_from_field(B, L), **kw)


def as_sample_arrays(
    config: SimConfig, params: dict[str, Iterable[float]] | None, n_samples: int | None
) -> dict[str, np.ndarray]:
    """Broadcast per-sample parameters (η, n_v, ν) to arrays of equal length.

    Missing parameters take the config's default. Unknown keys are an error.
    """
    params = dict(params or {})
    unknown = sorted(set(params) - set(SAMPLE_PARAMETERS))
    if unknown:
        raise ConfigError(f"unknown sample parameter(s) {unknown}; valid: {list(SAMPLE_PARAMETERS)}")
    arrays = {k: np.atleast_1d(np.asarray(v, dtype=np.float64)) for k, v in params.items()}
    lengths = {k: a.shape[0] for k, a in arrays.items() if a.shape[0] != 1}
    if len(set(lengths.values())) > 1:
        raise ConfigError(f"per-sample parameters have different lengths: {lengths}")
    S = next(iter(lengths.values()), None)
    if n_samples is not None:
        if S is not None and S != n_samples:
            raise ConfigError(f"n_samples={n_samples} but parameters have length {S}")
        S = n_samples
    if S is None:
        S = 1
    out = {}
    for k in SAMPLE_PARAMETERS:
        a = arrays.get(k, np.array([float(getattr(config, k))]))
        if a.ndim != 1:
            raise ConfigError(f"parameter {k} must be one-dimensional, got shape {a.shape}")
        out[k] = np.broadcast_to(a, (S,)).copy()
    for s in range(S):
        config.validate_sample(out["eta"][s], out["n_v"][s], out["nu"][s])
    out["n_v"] = np.rint(out["n_v"]).astype(np.int64)
    return out
