"""Simulation presets: TOML files holding a :class:`SimConfig` and a :class:`Prior`.

A preset is selected by name (a file ``<name>.toml`` shipped in
``tdglnre.data/presets``: ``paper``, ``drag``, ``quick``) or by a path to a
TOML file. Its layout::

    description = "one line"          # optional

    [config]                          # SimConfig fields (all optional)
    N = 64
    L = 32.0
    dt = 0.001
    alpha = [-1.0, -1.0]              # per band, or one number for both
    beta = [1.0, 1.0]
    D = [4.0, 1.0]
    snapshot_times = [2.0]
    dtype = "float32"
    disorder_length = 1.0             # correlation length of the pinning disorder
    lam = 2.0                         # London depth λ (screening; omit or inf: fixed field)
    sigma = 1.0                       # relaxation rate of the vector potential (λ < ∞)

    [prior]                           # one entry per sample parameter
    eta = "uniform(0, 1.5)"
    n_v = "int_uniform(1, 16)"
    nu = "fixed(0)"                   # or a number; omitted ones are fixed at the config value
    lam = "log_uniform(0.5, 8)"       # optional: λ per sample (screened; log-uniform suits a length)
    T = "uniform(0, 0.01)"            # temperature of the thermal noise (nuisance physics)
    delta = "fixed(0)"                # pinning-disorder strength

    measurement = "blur(0..1.5)+noise(0..0.15)"   # optional, top level: the instrument

The optional top-level ``measurement`` (text, a list of tables or
``{alternatives = [...]}``, as :meth:`tdglnre.instrument.model.MeasurementModel.parse`
takes; docs/observations.md) names the instrument the preset's images go
through. It is validated with the preset; ``generate`` records it in the
ensemble (root attribute ``measurement``), ``train`` on such an ensemble uses
it unless given another (``measurement="none"``: perfect images), and
``demo --preset`` uses it unless ``--measurement`` is given.
:func:`preset_measurement` returns its text form.

Overrides (``--set key=value``, repeatable, applied in order):

* a config field — ``N``, ``L``, ``dt``, ``alpha``, ``beta``, ``D``,
  ``snapshot_times``, ``dtype``, ``disorder_length``, ``lam``, ``sigma``:
  ``N=32``, ``alpha=-1`` (both bands), ``D=4,1`` or ``D=[4,1]``,
  ``snapshot_times=0.5,1,2``, ``dtype=float64``, ``disorder_length=2``,
  ``lam=2`` (screening with London depth 2; ``lam=inf``: the fixed field),
  ``sigma=4``;
* a sample parameter ``eta``, ``n_v``, ``nu``, ``T``, ``delta`` or
  ``prior.eta`` etc. (docs/physics.md, "Nuisance physics"): a number
  fixes it (``nu=0.1``), a prior re-draws it (``prior.eta=uniform(0,1)``,
  ``n_v=int_uniform(1,8)``, ``prior.nu=fixed(0)``); ``prior.lam=log_uniform(0.5,8)``
  gives λ a prior (``lam=...`` alone sets the config's λ);
* ``B=<field>``: fixes the field; it must carry an integer number of flux
  quanta through the torus (B·L² = 2π n_v), otherwise the error names the
  nearest valid values.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping

from .._validate import parse_number
from ..errors import ConfigError
from ..physics.config import (ALL_SAMPLE_PARAMETERS, LAM, NUISANCE_PARAMETERS, PRIOR_PARAMETERS, SAMPLE_PARAMETERS,
                              SimConfig, n_v_from_field)
from .priors import Prior, Prior1D, parse_prior_spec

__all__ = ["list_presets", "load_preset", "preset_path", "preset_measurement", "apply_overrides", "override_keys",
           "parse_overrides"]

_TOP_KEYS = ("description", "config", "prior", "measurement")
_CONFIG_KEYS = tuple(k for k in SimConfig.field_names() if k not in ALL_SAMPLE_PARAMETERS)


def override_keys() -> list[str]:
    """Every key accepted by ``--set``."""
    return (list(_CONFIG_KEYS) + list(ALL_SAMPLE_PARAMETERS) + ["B"]
            + [f"prior.{n}" for n in PRIOR_PARAMETERS])


def _preset_dirs() -> list[Path]:
    """Directories holding the shipped presets (installed package first, then the repo)."""
    dirs: list[Path] = []
    try:
        root = resources.files("tdglnre.data") / "presets"
        if root.is_dir():
            dirs.append(Path(str(root)))
    except (ModuleNotFoundError, TypeError, NotADirectoryError):  # pragma: no cover - depends on install
        pass
    repo = Path(__file__).resolve().parents[2] / "data" / "presets"
    if repo.is_dir() and repo not in dirs:
        dirs.append(repo)
    return dirs


def list_presets() -> list[str]:
    """Names of the shipped presets."""
    names: set[str] = set()
    for d in _preset_dirs():
        names.update(p.stem for p in d.glob("*.toml"))
    return sorted(names)


def preset_path(name_or_path: str | Path) -> Path:
    """Path of a preset given by name or as a path to a TOML file."""
    text = str(name_or_path)
    p = Path(text).expanduser()
    looks_like_path = p.suffix == ".toml" or "/" in text or "\\" in text
    if looks_like_path:
        if not p.is_file():
            raise ConfigError(f"preset file {text!r} does not exist")
        return p
    for d in _preset_dirs():
        cand = d / f"{text}.toml"
        if cand.is_file():
            return cand
    if p.is_file():
        return p
    raise ConfigError(f"unknown preset {text!r}; available presets: {', '.join(list_presets()) or '(none)'} "
                      "(or give a path to a .toml file)")


def _read_preset(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            doc = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"preset {str(path)!r} is not valid TOML: {exc}") from None
    unknown = sorted(set(doc) - set(_TOP_KEYS))
    if unknown:
        raise ConfigError(f"preset {str(path)!r}: unknown top-level key(s) {unknown}; valid: {list(_TOP_KEYS)}")
    for sect in ("config", "prior"):
        if sect in doc and not isinstance(doc[sect], dict):
            raise ConfigError(f"preset {str(path)!r}: [{sect}] must be a table")
    if "measurement" in doc:
        from ..instrument.model import MeasurementModel

        try:
            model = MeasurementModel.parse(doc["measurement"])
        except ConfigError as exc:
            raise ConfigError(f"preset {str(path)!r}: {exc}") from None
        doc["measurement"] = None if model.is_identity else str(model)
    return doc


def preset_measurement(name_or_path: str | Path) -> str | None:
    """The text form of the preset's ``measurement`` (the instrument), or None when it declares none.

    Raises :class:`~tdglnre.errors.ConfigError` (naming the preset) for an invalid one.
    """
    return _read_preset(preset_path(name_or_path)).get("measurement")


# ------------------------------------------------------------------ overrides
def _parse_value(text: str) -> Any:
    """Parse an override value: TOML literal, comma list of numbers, or bare string."""
    s = text.strip()
    try:
        return tomllib.loads(f"v = {s}")["v"]
    except tomllib.TOMLDecodeError:
        pass
    if "," in s:
        try:
            return [float(p) for p in s.split(",")]
        except ValueError:
            pass
    return s


def parse_overrides(overrides: Iterable[str] | Mapping[str, Any]) -> list[tuple[str, Any]]:
    """``["k=v", ...]`` or a mapping → list of (key, value) pairs (values parsed)."""
    if isinstance(overrides, Mapping):
        return [(str(k), v) for k, v in overrides.items()]
    out = []
    for item in overrides:
        if not isinstance(item, str) or "=" not in item:
            raise ConfigError(f"override {item!r} must have the form key=value; valid keys: {override_keys()}")
        k, v = item.split("=", 1)
        k = k.strip()
        if not k:
            raise ConfigError(f"override {item!r} has an empty key; valid keys: {override_keys()}")
        out.append((k, _parse_value(v)))
    return out


def _coerce_config_value(key: str, value: Any) -> Any:
    if key == "N":
        return parse_number("N", value, integer=True)
    if key in ("L", "dt", "disorder_length", "sigma"):
        return parse_number(key, value)
    if key == "lam":  # inf (no screening) is a value here; SimConfig.validate judges the rest
        if value == float("inf") or (isinstance(value, str) and value.strip().lower() in ("inf", "+inf", "infinity")):
            return float("inf")
        return parse_number(key, value)
    if key in ("alpha", "beta", "D"):
        if isinstance(value, (list, tuple)):
            if len(value) != 2:
                raise ConfigError(f"{key}: needs one value per band (2) or one value for both, got {value!r}")
            return tuple(parse_number(key, v) for v in value)
        return parse_number(key, value)
    if key == "snapshot_times":
        if isinstance(value, (list, tuple)):
            return tuple(parse_number(key, v) for v in value)
        return (parse_number(key, value),)
    if key == "dtype":
        if value not in ("float32", "float64"):
            raise ConfigError(f"dtype: expected 'float32' or 'float64', got {value!r}")
        return str(value)
    raise ConfigError(f"unknown config key {key!r}")  # pragma: no cover


def apply_overrides(config: SimConfig, prior: Prior,
                    overrides: Iterable[str] | Mapping[str, Any]) -> tuple[SimConfig, Prior]:
    """Apply ``key=value`` overrides to a (config, prior) pair; see the module docstring."""
    pairs = parse_overrides(overrides)
    cfg_changes: dict[str, Any] = {}
    prior_changes: dict[str, Prior1D] = {}
    set_by: dict[str, tuple[str, Any]] = {}  # parameter -> the override that set it
    field_B: Any = None
    for key, value in pairs:
        try:
            if key in _CONFIG_KEYS:
                cfg_changes[key] = _coerce_config_value(key, value)
            elif key in ALL_SAMPLE_PARAMETERS or (key.startswith("prior.") and key[6:] in PRIOR_PARAMETERS):
                name = key[6:] if key.startswith("prior.") else key
                prior_changes[name] = parse_prior_spec(name, value)
                _refuse_value_and_prior(name, key, value, prior_changes[name], set_by)
                if name == "n_v":
                    field_B = None  # a later n_v override wins over an earlier B
            elif key == "B":
                field_B = parse_number("B", value)
                prior_changes.pop("n_v", None)
            else:
                raise ConfigError(f"unknown override key {key!r}; valid keys: {', '.join(override_keys())}")
        except ConfigError as exc:
            msg = str(exc)
            if msg.startswith(("unknown override key", "conflicting overrides")):
                raise
            raise ConfigError(f"bad override {key}={value!r}: {msg}") from None
    try:
        cfg = config.replace(**cfg_changes)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bad override: {exc}") from None
    if field_B is not None:
        try:
            n = n_v_from_field(field_B, cfg.L)
        except ConfigError as exc:
            raise ConfigError(f"bad override B={field_B!r}: {exc}") from None
        prior_changes["n_v"] = Prior1D("n_v", "fixed", n, n)
    pr = prior.replace(**prior_changes) if prior_changes else prior
    return _sync_fixed(cfg, pr)


def _refuse_value_and_prior(name: str, key: str, value: Any, spec: Prior1D,
                            set_by: dict[str, tuple[str, Any]]) -> None:
    """Refuse a fixed value and a prior for the same parameter (``T=0.01`` and ``prior.T=uniform(0,0.02)``).

    Which one should win is not clear, so neither does: one :class:`ConfigError` names the parameter and
    both overrides. Two values, or two priors, keep the later one (overrides apply in order), and so does
    the same key given twice (``prior.nu=uniform(0,0.3)`` then ``prior.nu=fixed(0)``: how a script such
    as the drag demo layers its own setting over the user's).
    """
    if name in set_by:
        k0, (v0, fixed0) = set_by[name][0], set_by[name][1]
        if fixed0 != (spec.kind == "fixed") and k0 != key:
            (kf, vf), (kp, vp) = ((k0, v0), (key, value)) if fixed0 else ((key, value), (k0, v0))
            raise ConfigError(f"conflicting overrides for {name!r}: {kf}={vf!r} fixes it and {kp}={vp!r} "
                              f"gives it a prior; give only one of them")
    set_by[name] = (key, (value, spec.kind == "fixed"))


def _sync_fixed(config: SimConfig, prior: Prior) -> tuple[SimConfig, Prior]:
    """Complete the prior (missing parameters fixed at the config value) and copy fixed values into the config.

    The nuisance parameters T and delta join the prior only when the config
    sets them (≠ 0), so clean presets keep the prior (η, n_v, ν) that earlier
    files and models recorded. λ joins only where a prior over it is given
    (``[prior] lam`` or ``prior.lam=...``); then a config without screening
    (λ = ∞) takes the prior's largest λ (where dt is tightest), so the screened
    kernel runs (each sample uses its own λ).
    """
    missing = {n: float(getattr(config, n)) for n in ALL_SAMPLE_PARAMETERS
               if n not in prior.names and (n not in NUISANCE_PARAMETERS or float(getattr(config, n)) != 0.0)}
    if missing:
        prior = prior.replace(**missing)
    fixed = prior.fixed_values()
    changes: dict[str, Any] = {}
    for n, v in fixed.items():
        changes[n] = int(round(v)) if n == "n_v" else float(v)
    if LAM in prior.inferred and not config.screened:
        changes[LAM] = prior.high(LAM)
    return config.replace(**changes), prior


def load_preset(name_or_path: str | Path,
                overrides: Iterable[str] | Mapping[str, Any] = ()) -> tuple[SimConfig, Prior]:
    """Load a preset and apply overrides; returns the validated ``(config, prior)``.

    Parameters
    ----------
    name_or_path
        A shipped preset name (see :func:`list_presets`) or a path to a TOML file.
    overrides
        ``["key=value", ...]`` strings (as given to ``--set``) or a mapping
        key → value; see the module docstring for the keys.

    Raises
    ------
    ConfigError
        Unknown preset, malformed file, unknown or bad override, or an invalid
        configuration or prior (the message says which).
    """
    path = preset_path(name_or_path)
    doc = _read_preset(path)
    cfg_table = dict(doc.get("config", {}))
    unknown = sorted(set(cfg_table) - set(SimConfig.field_names()))
    if unknown:
        raise ConfigError(f"preset {str(path)!r}: unknown [config] key(s) {unknown}; "
                          f"valid: {list(SimConfig.field_names())}")
    try:
        coerced = {k: (_coerce_config_value(k, v) if k in _CONFIG_KEYS else v) for k, v in cfg_table.items()}
        config = SimConfig.from_dict(coerced)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"preset {str(path)!r}: {exc}") from None
    prior_table = doc.get("prior", {})
    bad = sorted(set(prior_table) - set(PRIOR_PARAMETERS))
    if bad:
        raise ConfigError(f"preset {str(path)!r}: unknown [prior] key(s) {bad}; valid: {list(PRIOR_PARAMETERS)}")
    prior = Prior(prior_table) if prior_table else Prior({n: float(getattr(config, n)) for n in SAMPLE_PARAMETERS})
    config, prior = _sync_fixed(config, prior)
    config, prior = apply_overrides(config, prior, overrides)
    config.validate()
    prior.validate(config)
    return config, prior

