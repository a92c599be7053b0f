"""Where the analysed state comes from: an ensemble file, a preset's run, or parameters simulated afresh.

Each source is a small frozen dataclass validated on construction; its
:meth:`resolve` returns a :class:`StateSample` (config, ψ, parameters) and its
:meth:`record` a JSON-ready description that is stored with the result.
The functions :func:`state_from_ensemble`, :func:`state_from_preset` and
:func:`state_from_simulation` do the work.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Sequence, Union

import numpy as np

from ..._validate import as_float, as_path
from ...errors import ConfigError
from ...physics.config import SimConfig
from ...physics.solver import psi_to_state

log = logging.getLogger(__name__)


class _State(NamedTuple):
    config: SimConfig
    psi: np.ndarray
    params: dict[str, float]


class StateSample(_State):
    """A state to analyse: its config, ψ (2, N, N) complex128 and parameters {"eta", "n_v", "nu"}
    (and "delta" when the prior draws or fixes the pinning strength); unpacks as
    ``config, psi, params``.

    Attributes ``seed`` and ``index`` name the sample (run seed, sample index) whose pinning
    landscape ξ(r) the energy needs when δ ≠ 0 (docs/physics.md, "Nuisance physics"); None when
    unknown.
    """

    def __new__(cls, config: SimConfig, psi: np.ndarray, params: dict[str, float], seed: int | None = None,
                index: int | None = None) -> "StateSample":
        self = super().__new__(cls, config, psi, params)
        self.seed, self.index = seed, index
        return self


def as_state(state: np.ndarray, N: int | None = None, *, screened: bool = False) -> np.ndarray:
    """A complex (2, N, N) ψ or a real (4, N, N) / (4N²,) state as a real (4, N, N) float64 array.

    ``screened`` (λ < ∞): the result is (6, N, N), ψ then a_x, a_y; a real
    (6, N, N) / (6N²,) state is taken as is, and a ψ alone gets a = 0 (the
    applied field; the relaxation then finds a).

    Raises
    ------
    ConfigError
        Wrong shape, N different from ``N``, or non-finite values.
    """
    a = np.asarray(state)
    if screened and not np.iscomplexobj(a):
        n6 = int(round(math.sqrt(a.size / 6)))
        if 6 * n6 * n6 == a.size and (a.ndim == 1 or a.shape[0] == 6):
            a6 = np.asarray(a, dtype=np.float64).reshape(6, n6, n6)
            if N is not None and n6 != N:
                raise ConfigError(f"state is {n6}x{n6} but the config has N={N}")
            if not np.all(np.isfinite(a6)):
                raise ConfigError("state contains NaN or Inf")
            return np.ascontiguousarray(a6)
    if screened:
        psi = as_state(state, N)
        return np.concatenate([psi, np.zeros((2,) + psi.shape[1:])])
    if np.iscomplexobj(a):
        if a.ndim != 3 or a.shape[0] != 2 or a.shape[1] != a.shape[2]:
            raise ConfigError(f"complex state must have shape (2, N, N) (band 1, band 2), got {a.shape}")
        a = psi_to_state(a[0], a[1])
    else:
        a = np.asarray(a, dtype=np.float64)
        if a.ndim == 1:
            n = int(round(math.sqrt(a.size / 4)))
            if 4 * n * n != a.size:
                raise ConfigError(f"flat real state must have 4*N^2 values, got {a.size}")
            a = a.reshape(4, n, n)
        if a.ndim != 3 or a.shape[0] != 4 or a.shape[1] != a.shape[2]:
            raise ConfigError(f"real state must have shape (4, N, N), got {a.shape}")
    if N is not None and a.shape[1] != N:
        raise ConfigError(f"state is {a.shape[1]}x{a.shape[2]} but the config has N={N}")
    if not np.all(np.isfinite(a)):
        raise ConfigError("state contains NaN or Inf")
    return np.ascontiguousarray(a, dtype=np.float64)


def _sample_params(prior: Any, theta: np.ndarray) -> dict[str, float]:
    """Solver parameters {eta, n_v, nu} (and delta, if the prior has it) of one θ row (fixed ones from the prior)."""
    arr = prior.params(np.atleast_2d(theta))
    out: dict[str, float] = {"eta": float(arr["eta"][0]), "n_v": int(round(float(arr["n_v"][0]))),
                             "nu": float(arr["nu"][0])}
    if "delta" in arr:
        out["delta"] = float(arr["delta"][0])
    return out


def state_from_ensemble(path: str | Path, index: int, snapshot: int = -1) -> StateSample:
    """Read sample ``index`` of an ensemble file generated with stored fields.

    Uses :func:`tdglnre.io.ensemble.open_ensemble` (which checks the magic
    string, version and completeness). The sample's parameters are the
    config's values (fixed parameters) overridden by its ``theta`` row in
    ``parameter_names`` order.

    Raises
    ------
    ConfigError
        Missing file, not an ensemble, no stored fields, index or snapshot out of range.
    """
    from ...io.ensemble import open_ensemble

    path = Path(path)
    if not path.exists():
        raise ConfigError(f"ensemble file {path} does not exist")
    with open_ensemble(path) as ens:
        if not ens.has_fields:
            raise ConfigError(f"{path} has no 'psi' dataset: generate the ensemble with store_fields=True "
                              "(`tdglnre generate --store-fields`)")
        if not 0 <= index < ens.n_complete:
            raise ConfigError(f"sample index {index} out of range: {path} has {ens.n_complete} complete samples")
        T = len(ens.snapshot_times)
        if not -T <= snapshot < T:
            raise ConfigError(f"snapshot {snapshot} out of range: {path} stores {T} snapshots")
        config = ens.config
        params = _sample_params(ens.prior, ens.theta(index, index + 1))
        psi = np.asarray(ens.psi(index, index + 1)[0, snapshot], dtype=np.complex128)
        seed = getattr(ens, "seed", None)
    log.info("read sample %d, snapshot %d of %s (%s)", index, snapshot, path, params)
    return StateSample(config, psi, params, None if seed is None else int(seed), int(index))


def state_from_preset(name: str | Path, overrides: Any = (), *, seed: int = 0, index: int = 0) -> StateSample:
    """Sample ``index`` of run ``seed`` of a preset, simulated afresh.

    The parameters are drawn from the preset's prior exactly as generating the
    preset's ensemble with that seed draws sample ``index`` (they depend only
    on (seed, index)); ``overrides`` are ``key=value`` strings (``eta=0.5``
    fixes a parameter).
    """
    from ...io.presets import load_preset

    config, prior = load_preset(name, overrides)
    params = _sample_params(prior, prior.sample(seed, [index]))
    psi = state_from_simulation(config, params, seed=seed, index=index)
    log.info("simulated sample %d of preset %s, seed %d (%s)", index, name, seed, params)
    return StateSample(config, psi, params, int(seed), int(index))


def state_from_simulation(config: SimConfig, params: dict[str, float] | None = None, *, seed: int = 0,
                          index: int = 0) -> np.ndarray:
    """Quench state ψ (2, N, N) at the config's last snapshot time (sample ``index`` of run ``seed``)."""
    from ...physics.solver import simulate

    plist = {k: [v] for k, v in (params or {}).items()}
    res = simulate(config, plist, seed=seed, sample_indices=[index])
    return np.asarray(res.psi[0, -1], dtype=np.complex128)


def _check_index(name: str, value: Any, minimum: int | None = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or (
            minimum is not None and value < minimum):
        need = "an integer" if minimum is None else f"an integer >= {minimum}"
        raise ConfigError(f"{name} must be {need}, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class FromEnsemble:
    """Sample ``index`` (snapshot ``snapshot``) of an ensemble file with stored fields."""

    path: str | Path
    index: int
    snapshot: int = -1

    def __post_init__(self) -> None:
        as_path("path", self.path)
        _check_index("index", self.index)
        _check_index("snapshot", self.snapshot, None)

    def resolve(self) -> StateSample:
        return state_from_ensemble(self.path, self.index, self.snapshot)

    def record(self) -> dict[str, Any]:
        return {"data": str(self.path), "index": int(self.index), "snapshot": int(self.snapshot)}


@dataclass(frozen=True)
class FromPreset:
    """Sample ``index`` of the run ``seed`` of a preset (with ``key=value`` overrides), simulated afresh."""

    name: str | Path
    overrides: Sequence[str] = field(default_factory=tuple)
    seed: int = 0
    index: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.name, (str, os.PathLike)):
            raise ConfigError(f"name must be a preset name or the path of a preset file, got {self.name!r}")
        if isinstance(self.overrides, str):
            raise ConfigError(f"overrides must be a list of 'key=value' strings, got the string {self.overrides!r}")
        object.__setattr__(self, "overrides", tuple(self.overrides))
        _check_index("seed", self.seed)
        _check_index("index", self.index)

    def resolve(self) -> StateSample:
        return state_from_preset(self.name, list(self.overrides), seed=self.seed, index=self.index)

    def record(self) -> dict[str, Any]:
        return {"preset": str(self.name), "set": list(self.overrides), "seed": int(self.seed),
                "index": int(self.index)}


@dataclass(frozen=True)
class FromParams:
    """A quench of the paper's physics (α = −1, β = 1, D = (4, 1), dt = 10⁻³) to time ``t``, simulated afresh."""

    N: int = 32
    L: float = 16.0
    eta: float = 0.5
    n_v: int = 4
    nu: float = 0.0
    t: float = 2.0
    seed: int = 0
    index: int = 0
    lam: float = math.inf
    """London depth λ (inf: the fixed field; finite: the screened model, docs/physics.md)."""

    def __post_init__(self) -> None:
        for name in ("L", "eta", "n_v", "nu", "t"):  # checked, not converted: record() keeps the values given
            as_float(name, getattr(self, name))
        _check_index("seed", self.seed)
        _check_index("index", self.index)

    def config(self) -> SimConfig:
        """The validated :class:`SimConfig` of this quench."""
        config = SimConfig(N=self.N, L=self.L, eta=self.eta, n_v=self.n_v, nu=self.nu, snapshot_times=(self.t,),
                           lam=self.lam)
        config.validate()
        return config

    def resolve(self) -> StateSample:
        config = self.config()
        params = {"eta": self.eta, "n_v": self.n_v, "nu": self.nu}
        return StateSample(config, state_from_simulation(config, params, seed=self.seed, index=self.index), params,
                           int(self.seed), int(self.index))

    def record(self) -> dict[str, Any]:
        rec = {"N": self.N, "L": self.L, "eta": self.eta, "n_v": self.n_v, "nu": self.nu, "t": self.t,
               "seed": int(self.seed), "index": int(self.index)}
        if self.lam != math.inf:
            rec["lam"] = self.lam
        return rec


#: Any of the three state sources.
StateSource = Union[FromEnsemble, FromPreset, FromParams]

__all__ = ["FromEnsemble", "FromParams", "FromPreset", "StateSample", "StateSource", "as_state",
           "state_from_ensemble", "state_from_preset", "state_from_simulation"]
