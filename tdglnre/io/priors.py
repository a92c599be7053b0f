"""Priors over the per-sample parameters (η, n_v, ν, T, δ, λ).

A :class:`Prior` is a product of named one-dimensional priors, one per sample
parameter of the solver (:data:`tdglnre.physics.config.ALL_SAMPLE_PARAMETERS`):

* ``uniform(low, high)`` — continuous uniform on [low, high);
* ``log_uniform(low, high)`` — log-uniform on [low, high), 0 < low (density ∝ 1/x; the London depth λ);
* ``int_uniform(low, high)`` — integers low..high inclusive, equally likely;
* ``fixed(value)`` — not inferred; every sample uses ``value``.

The non-fixed parameters are the *inferred* ones; ``theta`` arrays have one
column per inferred parameter, in :attr:`Prior.inferred` order.

Sample k's parameters depend only on (seed, k): row r of
``prior.sample(seed, indices)`` is drawn from
``sample_rng(seed, indices[r], STREAM_PRIOR)``, so results never depend on how
samples are batched or distributed.

Text syntax (used by presets and ``--set prior.NAME=...``)::

    uniform(0, 1.5)      int_uniform(1, 16)      fixed(0)      0.25  (= fixed(0.25))

T (temperature of the thermal noise) and delta (pinning-disorder strength) are
sample parameters like the others (docs/physics.md, "Nuisance physics"); T
must be >= 0. They are appended after (η, n_v, ν) in the canonical order, so
adding them to a prior leaves the draws of the other parameters unchanged. The
London depth ``lam`` (docs/physics.md, "Screening") comes last for the same
reason; a prior over it needs the screened solver (the config's λ finite).
"""

from __future__ import annotations

import itertools
import json
import math
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ..errors import ConfigError
from ..physics.config import ALL_SAMPLE_PARAMETERS, LAM, PRIOR_PARAMETERS, SimConfig
from ..physics.rng import STREAM_PRIOR, sample_rng

KINDS = ("uniform", "int_uniform", "fixed", "log_uniform")

#: η values checked across a uniform η prior's interval (besides its end points).
_ETA_GRID = 17

__all__ = ["KINDS", "Prior", "Prior1D", "draw_uniform", "parse_prior_spec"]


@dataclass(frozen=True)
class Prior1D:
    """One named one-dimensional prior."""

    name: str
    """Parameter name (one of eta, n_v, nu, T, delta, lam)."""
    kind: str
    """"uniform", "log_uniform", "int_uniform" or "fixed"."""
    low: float
    """Lower bound (the value, for "fixed")."""
    high: float
    """Upper bound (the value, for "fixed"); inclusive for "int_uniform"."""

    def __post_init__(self) -> None:
        if self.name not in PRIOR_PARAMETERS:
            raise ConfigError(f"unknown prior parameter {self.name!r}; valid: {list(PRIOR_PARAMETERS)}")
        if self.kind not in KINDS:
            raise ConfigError(f"prior for {self.name}: unknown kind {self.kind!r}; valid kinds: {list(KINDS)}")
        try:
            low, high = float(self.low), float(self.high)
        except (TypeError, ValueError):
            raise ConfigError(
                f"prior for {self.name}: bounds must be numbers, got {self.low!r}, {self.high!r}"
            ) from None
        if not (math.isfinite(low) and math.isfinite(high)):
            raise ConfigError(f"prior for {self.name}: bounds must be finite, got {self.describe_raw()}")
        if self.kind == "fixed" and low != high:
            raise ConfigError(f"prior for {self.name}: fixed prior needs one value, got low={low:g}, high={high:g}")
        if self.kind != "fixed" and not low < high:
            raise ConfigError(
                f"prior for {self.name}: {self.kind} needs low < high, got {self.kind}({low:g}, {high:g})"
            )
        if self.kind == "int_uniform" and (low != round(low) or high != round(high)):
            raise ConfigError(
                f"prior for {self.name}: int_uniform bounds must be integers, got int_uniform({low:g}, {high:g})"
            )
        if self.name == "n_v" and self.kind != "int_uniform" and low != round(low):
            raise ConfigError(
                f"prior for n_v: the number of flux quanta must be an integer "
                f"(use int_uniform(low, high) or fixed(integer)), got {self.describe_raw()}"
            )
        if self.kind == "log_uniform" and not low > 0:
            raise ConfigError(f"prior for {self.name}: log_uniform needs 0 < low, got {self.describe_raw()}")
        if self.name == LAM and not low > 0:
            raise ConfigError(f"prior for lam: the penetration depth must be > 0, got {self.describe_raw()}")
        if self.name == "T" and low < 0:
            raise ConfigError(f"prior for T: the temperature must be >= 0, got {self.describe_raw()}")
        if self.name == "n_v" and self.kind == "uniform":
            raise ConfigError(
                f"prior for n_v: the number of flux quanta is an integer; use int_uniform({low:g}, {high:g}) "
                "instead of uniform"
            )
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    def describe_raw(self) -> str:
        if self.kind == "fixed":
            return f"fixed({self.low!r})"
        return f"{self.kind}({self.low!r}, {self.high!r})"

    def describe(self) -> str:
        """Text form, e.g. ``uniform(0, 1.5)``."""
        if self.kind == "fixed":
            return f"fixed({self.low:g})"
        return f"{self.kind}({self.low:g}, {self.high:g})"

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "fixed":
            v = int(self.low) if self.name == "n_v" else self.low
            return {"kind": "fixed", "value": v}
        if self.kind == "int_uniform":
            return {"kind": self.kind, "low": int(self.low), "high": int(self.high)}
        return {"kind": self.kind, "low": self.low, "high": self.high}


_SPEC_RE = re.compile(r"^\s*([A-Za-z_]+)\s*\((.*)\)\s*$")


def parse_prior_spec(name: str, spec: Any) -> Prior1D:
    """Parse one prior from text, a number or a mapping.

    Accepted forms: ``"uniform(0, 1.5)"``, ``"int_uniform(1, 16)"``,
    ``"fixed(0)"``, a bare number (fixed), or a mapping
    ``{"kind": "uniform", "low": 0, "high": 1.5}`` / ``{"kind": "fixed", "value": 0}``.
    """
    if isinstance(spec, Prior1D):
        return spec
    if isinstance(spec, bool):
        raise ConfigError(f"prior for {name}: expected a number or a prior like uniform(0, 1), got {spec!r}")
    if isinstance(spec, (int, float, np.integer, np.floating)):
        return Prior1D(name, "fixed", float(spec), float(spec))
    if isinstance(spec, Mapping):
        d = dict(spec)
        kind = d.pop("kind", None)
        if kind is None:
            raise ConfigError(f"prior for {name}: mapping needs a 'kind' key (one of {list(KINDS)}), got {spec!r}")
        if kind == "fixed":
            if set(d) != {"value"}:
                raise ConfigError(f"prior for {name}: fixed prior takes exactly the key 'value', got {sorted(d)}")
            return Prior1D(name, "fixed", d["value"], d["value"])
        if set(d) != {"low", "high"}:
            raise ConfigError(f"prior for {name}: {kind} prior takes exactly the keys 'low' and 'high', got {sorted(d)}")
        return Prior1D(name, str(kind), d["low"], d["high"])
    if isinstance(spec, str):
        text = spec.strip()
        try:
            v = float(text)
        except ValueError:
            pass
        else:
            return Prior1D(name, "fixed", v, v)
        m = _SPEC_RE.match(text)
        if not m:
            raise ConfigError(
                f"prior for {name}: cannot parse {spec!r}; expected uniform(low, high), "
                "int_uniform(low, high), fixed(value) or a number"
            )
        kind, args = m.group(1), m.group(2)
        if kind not in KINDS:
            raise ConfigError(f"prior for {name}: unknown kind {kind!r} in {spec!r}; valid kinds: {list(KINDS)}")
        try:
            vals = [float(a) for a in args.split(",")] if args.strip() else []
        except ValueError:
            raise ConfigError(f"prior for {name}: arguments of {spec!r} must be numbers") from None
        want = 1 if kind == "fixed" else 2
        if len(vals) != want:
            raise ConfigError(f"prior for {name}: {kind} takes {want} argument(s), got {len(vals)} in {spec!r}")
        if kind == "fixed":
            return Prior1D(name, kind, vals[0], vals[0])
        return Prior1D(name, kind, vals[0], vals[1])
    raise ConfigError(f"prior for {name}: expected text like uniform(0, 1), a number or a mapping, got {spec!r}")


class Prior:
    """Product of named one-dimensional priors over (η, n_v, ν, T, δ, λ).

    Parameters
    ----------
    entries
        Mapping name → prior (a :class:`Prior1D`, text such as
        ``"uniform(0, 1.5)"``, a number, or a mapping; see
        :func:`parse_prior_spec`), or an iterable of :class:`Prior1D`.
        Names must be sample parameters (eta, n_v, nu, T, delta, lam); they are
        kept in the canonical order ``("eta", "n_v", "nu", "T", "delta", "lam")``.
    """

    def __init__(self, entries: Mapping[str, Any] | Iterable[Prior1D]):
        if isinstance(entries, Mapping):
            items = [parse_prior_spec(str(k), v) for k, v in entries.items()]
        else:
            items = [parse_prior_spec(e.name, e) for e in entries]
        seen: dict[str, Prior1D] = {}
        for it in items:
            if it.name in seen:
                raise ConfigError(f"prior: parameter {it.name!r} given twice")
            seen[it.name] = it
        if not seen:
            raise ConfigError("prior: needs at least one parameter")
        self._entries = {n: seen[n] for n in PRIOR_PARAMETERS if n in seen}

    # ------------------------------------------------------------------ access
    @property
    def names(self) -> tuple[str, ...]:
        """All parameter names, in canonical order."""
        return tuple(self._entries)

    @property
    def inferred(self) -> tuple[str, ...]:
        """Names of the non-fixed parameters (the columns of ``theta``)."""
        return tuple(n for n, e in self._entries.items() if e.kind != "fixed")

    def __getitem__(self, name: str) -> Prior1D:
        return self._entry(name)

    def _entry(self, name: str) -> Prior1D:
        try:
            return self._entries[name]
        except KeyError:
            raise ConfigError(f"prior has no parameter {name!r}; it has {list(self.names)}") from None

    def kind(self, name: str) -> str:
        """Kind of the prior on ``name``."""
        return self._entry(name).kind

    def low(self, name: str) -> float:
        """Lower bound (the value for a fixed parameter)."""
        return self._entry(name).low

    def high(self, name: str) -> float:
        """Upper bound, inclusive for int_uniform (the value for a fixed parameter)."""
        return self._entry(name).high

    def fixed_values(self) -> dict[str, float]:
        """Values of the fixed parameters."""
        return {n: e.low for n, e in self._entries.items() if e.kind == "fixed"}

    def replace(self, **changes: Any) -> "Prior":
        """A copy with some parameters' priors replaced (same forms as the constructor)."""
        d: dict[str, Any] = dict(self._entries)
        for k, v in changes.items():
            d[k] = parse_prior_spec(k, v)
        return Prior(d)

    # ---------------------------------------------------------------- sampling
    def sample(self, seed: int, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Draw θ for the given global sample indices.

        Returns an array (len(indices), len(inferred)) float64; row r depends
        only on (seed, indices[r]).
        """
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        inferred = [self._entries[n] for n in self.inferred]
        out = np.empty((idx.shape[0], len(inferred)), dtype=np.float64)
        for r, k in enumerate(idx):
            rng = sample_rng(int(seed), int(k), STREAM_PRIOR)
            for c, e in enumerate(inferred):
                if e.kind == "uniform":
                    out[r, c] = rng.uniform(e.low, e.high)
                elif e.kind == "log_uniform":
                    out[r, c] = math.exp(rng.uniform(math.log(e.low), math.log(e.high)))
                else:  # int_uniform
                    out[r, c] = float(rng.integers(int(e.low), int(e.high) + 1))
        return out

    def params(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """Per-sample parameter arrays for the solver from θ (fixed ones broadcast)."""
        theta = np.atleast_2d(np.asarray(theta, dtype=np.float64))
        S = theta.shape[0]
        if theta.shape[1] != len(self.inferred):
            raise ConfigError(f"theta has {theta.shape[1]} columns, the prior infers {len(self.inferred)}")
        out = {n: np.full(S, v) for n, v in self.fixed_values().items()}
        for c, n in enumerate(self.inferred):
            out[n] = theta[:, c].copy()
        return out

    def log_prob(self, theta: np.ndarray) -> np.ndarray:
        """Log prior density (mass, for int_uniform) of θ rows; −inf outside the support.

        ``theta`` is (S, P) or (P,) with columns in :attr:`inferred` order.
        """
        th = np.asarray(theta, dtype=np.float64)
        single = th.ndim == 1
        th = np.atleast_2d(th)
        if th.shape[-1] != len(self.inferred):
            raise ConfigError(f"theta has {th.shape[-1]} columns, the prior infers {len(self.inferred)}")
        lp = np.zeros(th.shape[0], dtype=np.float64)
        for c, n in enumerate(self.inferred):
            e = self._entries[n]
            v = th[:, c]
            if e.kind == "uniform":
                ok = (v >= e.low) & (v <= e.high)
                lp += np.where(ok, -math.log(e.high - e.low), -np.inf)
            elif e.kind == "log_uniform":
                ok = (v >= e.low) & (v <= e.high)
                lp += np.where(ok, -np.log(np.where(ok, v, 1.0)) - math.log(math.log(e.high / e.low)), -np.inf)
            else:
                ok = (v >= e.low) & (v <= e.high) & (v == np.round(v))
                lp += np.where(ok, -math.log(e.high - e.low + 1.0), -np.inf)
        return lp[0:1] if single else lp

    # -------------------------------------------------------------- validation
    def validate(self, config: SimConfig) -> "Prior":
        """Check the whole prior box is physically valid for ``config``.

        Every corner of the box must pass ``config.validate_sample``: |n_v| <=
        N²/4 (the lattice's flux resolution; |n_v| is largest at a corner),
        ν² < D1·D2 and dt below the explicit-Euler bound (docs/physics.md,
        "Well-posedness and stability"). The time-step bound grows with |η|
        through the density bound and depends on ν only through |νκ − η|,
        which is convex in ν, so besides the corners η is also checked on a
        grid of its interval (and at the largest |η|). With pinning disorder
        the bound tightens monotonically with |δ|, so only the δ bound of
        largest magnitude is checked; T does not enter the bound (T >= 0 is
        checked by :class:`Prior1D` and at the box's T bound). n_v bounds must
        be integers. A prior over λ is checked at both ends of its interval:
        the vector potential's rate grows with c = λ²K (the largest λ sets
        dt's bound) and the lattice must resolve the smallest (λ >= h).
        Returns ``self``; a prior is checked once per config it passed for.
        """
        passed = self.__dict__.setdefault("_valid_for", set())
        if config in passed:
            return self
        for n, e in self._entries.items():
            if n == "n_v" and (e.low != round(e.low) or e.high != round(e.high)):
                raise ConfigError(f"prior for n_v: bounds must be integers, got {e.describe()}")
        lows = {n: self._entries[n].low if n in self._entries else float(getattr(config, n))
                for n in ALL_SAMPLE_PARAMETERS}
        highs = {n: self._entries[n].high if n in self._entries else float(getattr(config, n))
                 for n in ALL_SAMPLE_PARAMETERS}
        nu_lo, nu_hi = lows["nu"], highs["nu"]
        eta_lo, eta_hi = lows["eta"], highs["eta"]
        # the corners first (their errors name the corner), then η inside the interval
        etas = sorted({eta_lo, eta_hi})
        if eta_hi > eta_lo:
            etas += [float(v) for v in np.linspace(eta_lo, eta_hi, _ETA_GRID)[1:-1]]
        delta = max((lows["delta"], highs["delta"]), key=abs)
        # λ at both ends of its box (the a update's rate grows with c = λ²K; λ >= h at the low end)
        lams = sorted({self._entries[LAM].low, self._entries[LAM].high}) if LAM in self._entries else [None]
        for eta, n_v, nu, lam in itertools.product(etas, sorted({lows["n_v"], highs["n_v"]}),
                                                   sorted({nu_lo, nu_hi}, key=abs, reverse=True), lams):
            try:
                config.validate_sample(eta, n_v, nu, highs["T"], delta, lam)
            except ConfigError as exc:
                where = "corner" if eta in (eta_lo, eta_hi) else "point"
                extra = (f", delta={delta:g}" if delta != 0 else "") + (f", lam={lam:g}" if lam else "")
                raise ConfigError(f"prior box {where} (eta={eta:g}, n_v={n_v:g}, nu={nu:g}{extra}) is "
                                  f"invalid; narrow the prior: {exc}") from None
        passed.add(config)
        return self

    # --------------------------------------------------------------- serialise
    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Plain-JSON dict name → {"kind", "low", "high"} or {"kind": "fixed", "value"}."""
        return {n: e.to_dict() for n, e in self._entries.items()}

    def to_json(self) -> str:
        """JSON text of :meth:`to_dict` (key order = parameter order)."""
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Prior":
        """Inverse of :meth:`to_dict` (also accepts the text forms)."""
        if not isinstance(d, Mapping):
            raise ConfigError(f"prior must be a mapping name -> prior, got {type(d).__name__}")
        return cls(d)

    @classmethod
    def from_json(cls, text: str) -> "Prior":
        """Inverse of :meth:`to_json`."""
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"prior JSON is malformed: {exc}") from None
        return cls.from_dict(d)

    def describe(self) -> str:
        """One-line text, e.g. ``eta ~ uniform(0, 1.5), n_v ~ int_uniform(1, 16), nu = 0``."""
        parts = []
        for n, e in self._entries.items():
            parts.append(f"{n} = {e.low:g}" if e.kind == "fixed" else f"{n} ~ {e.describe()}")
        return ", ".join(parts)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Prior) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(self.to_json())

    def __repr__(self) -> str:
        return f"Prior({self.describe()})"


def draw_uniform(prior: Any, names: Sequence[str], given: Mapping[str, Any], entropy: Any) -> dict[str, float]:
    """``given[name]`` for each of ``names`` where given, else a uniform draw on ``prior``'s [low, high].

    One generator, ``numpy.random.default_rng(entropy)``, draws in the order of
    ``names`` and only for the names not given (``prior`` needs ``low(name)``
    and ``high(name)``: a :class:`Prior` or a model's training prior).
    """
    rng = np.random.default_rng(entropy)
    return {name: float(given[name]) if name in given else float(rng.uniform(prior.low(name), prior.high(name)))
            for name in names}
