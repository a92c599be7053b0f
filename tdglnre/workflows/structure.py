"""S(k, t) of an ensemble or of fresh simulations: the drag fingerprint (docs/drag.md).

>>> res = tg.structure(data="train.h5", all=True)
>>> res.to_json()["S"]["rho1"]          # ensemble mean, [t][k]
>>> res.fingerprint("rho1")             # S(k*, t) per ν bin, ± standard errors
>>> res.save("structure/"); res.plot()

S(k) follows :mod:`tdglnre.analysis.structure` (docs/physics.md, "Observables
and sign conventions"): Parseval-normalised, shells centred on 2πm/L. With
several samples the ensemble means carry standard errors and are grouped by
ν bins (a separate ν = 0 group when samples sit exactly at ν = 0) and η bins;
the fingerprint is S(k*, t) against t per ν group, k* the peak of the
time-averaged ensemble-mean S(k).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from ..analysis.structure import StructureSeries, parameter_bins, structure_series
from .._validate import as_bool, as_int, as_optional_path
from ..errors import ConfigError
from ._output import staged_output

log = logging.getLogger(__name__)

#: Most samples read from a file at once (bounds memory: 512 × 5 × 32² × 3 floats is 31 MB).
_CHUNK = 512


def group_label(name: str, lo: float, hi: float) -> str:
    """``"nu = 0"`` for a point group, else ``"nu in [0.125, 0.25)"``."""
    return f"{name} = {lo:g}" if lo == hi else f"{name} in [{lo:g}, {hi:g})"


@dataclass
class StructureResult:
    """S(k, t) of every channel for one or many samples, with grouping by parameter bins."""

    series: StructureSeries
    """Per-sample S(k, t) (:class:`tdglnre.analysis.structure.StructureSeries`)."""
    source: dict[str, Any]
    """Where the samples came from (file and index/all, or preset, overrides and seed)."""
    n_bins: dict[str, int] = field(default_factory=lambda: {"nu": 4, "eta": 3})
    """Number of equal-width bins per grouping parameter."""
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Prior range per parameter, used as the bin range (default: the samples' range)."""

    @property
    def n_samples(self) -> int:
        """Number of samples."""
        return self.series.n_samples

    @property
    def channels(self) -> list[str]:
        """Channel names (rho1, rho2, curlJ and cos_dphi when ψ was stored)."""
        return list(self.series.S)

    def k_star(self, channel: str) -> int:
        """Shell index (0-based, k = k[i]) of the peak of the time-averaged ensemble-mean S(k)."""
        self._check_channel(channel)
        return self.series.peak_shell(channel)

    def _check_channel(self, channel: str) -> None:
        if channel not in self.series.S:
            raise ConfigError(f"unknown channel {channel!r}; available: {', '.join(self.series.S)}")

    def groups(self, name: str) -> list[tuple[float, float, np.ndarray]]:
        """Bins of parameter ``name`` (``[(lo, hi, mask), ...]``; :func:`tdglnre.analysis.structure.parameter_bins`)."""
        if name not in self.series.theta:
            return []
        lo, hi = self.ranges.get(name, (None, None))
        return parameter_bins(self.series.theta[name], self.n_bins.get(name, 3), lo, hi)

    def grouped(self, name: str) -> list[dict[str, Any]]:
        """Per bin of ``name``: range, sample count, mean S and standard error per channel ([t][k])."""
        out = []
        for lo, hi, m in self.groups(name):
            g: dict[str, Any] = {"range": [lo, hi], "label": group_label(name, lo, hi), "n": int(m.sum()),
                                 "S": {}, "S_stderr": {}}
            for ch in self.series.S:
                mean, se = self.series.mean(ch, m)
                g["S"][ch] = mean.tolist()
                g["S_stderr"][ch] = _nan_to_none(se)
            out.append(g)
        return out

    def fingerprint(self, channel: str, name: str = "nu", k_index: int | None = None) -> dict[str, Any]:
        """S(k*, t) against t per bin of ``name``, with standard errors (the Fig. 4 analogue).

        ``k_index`` picks another shell (0-based) than the peak k*.
        Returns ``{"k_star", "t", "groups": [{"label", "range", "n", "mean": [t], "stderr": [t]}]}``.
        """
        if k_index is None:
            i = self.k_star(channel)
        else:
            if isinstance(k_index, bool) or int(k_index) != k_index or not 0 <= int(k_index) < len(self.series.k):
                raise ConfigError(f"k_index must be a shell index in 0..{len(self.series.k) - 1}, got {k_index!r}")
            i = int(k_index)
            self._check_channel(channel)
        groups = []
        for lo, hi, m in self.groups(name):
            mean, se = self.series.mean(channel, m)
            groups.append({"label": group_label(name, lo, hi), "range": [lo, hi], "n": int(m.sum()),
                           "mean": mean[:, i].tolist(), "stderr": _nan_to_none(se[:, i])})
        return {"channel": channel, "k_star": float(self.series.k[i]), "k_star_index": i,
                "t": self.series.t.tolist(), "groups": groups}

    def to_json(self) -> dict[str, Any]:
        """``structure.json``: k, t, n_samples, S (channel → [t][k]) and, with ≥ 2 samples, the groups."""
        d = self.series.to_json()
        d["counts"] = self.series.counts.tolist()
        d["source"] = self.source
        d["theta"] = {n: np.asarray(v).tolist() for n, v in self.series.theta.items()} if self.n_samples <= 16 else None
        if self.n_samples < 2:
            d.pop("S_stderr", None)
            return d
        d["groups"] = {n: self.grouped(n) for n in ("nu", "eta") if n in self.series.theta}
        d["k_star"] = {ch: float(self.series.k[self.k_star(ch)]) for ch in self.series.S}
        if "nu" in self.series.theta:
            d["fingerprint"] = {ch: self.fingerprint(ch) for ch in self.series.S}
        return d

    def plot(self, out_dir: str | Path | None = None) -> list[Any]:
        """S(k) curves per snapshot for each channel; with ≥ 2 samples and ν known, the fingerprint.

        Writes PNGs into ``out_dir`` and returns their paths, or returns open figures.
        """
        from ..plots import structure as P

        def to(name: str) -> Path | None:
            return None if out_dir is None else Path(out_dir) / name

        figs = []
        for ch in self.series.S:
            mean, se = self.series.mean(ch)
            figs.append(P.plot_structure_curves(self.series.k, self.series.t, mean,
                                                se if self.n_samples > 1 else None, ch, to(f"S_{ch}.png")))
        if self.n_samples > 1 and "nu" in self.series.theta and len(self.groups("nu")) > 1:
            figs.append(P.plot_fingerprint([self.fingerprint(ch) for ch in self.series.S], to("fingerprint_nu.png")))
            figs.append(P.plot_grouped_curves(self.series.k, self.series.t, self.grouped("nu"), self.channels,
                                              to("S_by_nu.png")))
        return figs

    def save(self, out_dir: str | Path, *, force: bool = False, plots: bool = True) -> Path:
        """Write structure.json, S_k_t.npz (per-sample S) and (unless ``plots`` is False) the figures.

        ``out_dir`` must not exist or be empty unless ``force``; it is replaced only on success.
        """
        with staged_output(out_dir, force=force) as out:
            (out / "structure.json").write_text(json.dumps(self.to_json(), indent=1))
            np.savez_compressed(out / "S_k_t.npz", k=self.series.k, t=self.series.t, counts=self.series.counts,
                                **{f"S_{c}": v for c, v in self.series.S.items()},
                                **{f"theta_{n}": v for n, v in self.series.theta.items()})
            if plots:
                self.plot(out)
        return Path(out_dir)

    def summary_lines(self) -> list[str]:
        """Short human-readable summary: sizes, k* and the ν fingerprint at k* per channel."""
        s = self.series
        lines = [f"S(k, t) of {self.n_samples} sample(s): {len(s.k)} shells k = {s.k[0]:.3g}..{s.k[-1]:.3g}, "
                 f"t = {', '.join(f'{t:g}' for t in s.t)}; channels {', '.join(s.S)}"]
        if self.n_samples > 1 and "nu" in s.theta:
            for ch in s.S:
                fp = self.fingerprint(ch)
                parts = [f"{g['label']} (n={g['n']}): {g['mean'][0]:.3g} -> {g['mean'][-1]:.3g}"
                         for g in fp["groups"]]
                lines.append(f"{ch}: k* = {fp['k_star']:.3g}; S(k*, t) first -> last snapshot: " + "; ".join(parts))
        return lines


def _nan_to_none(a: np.ndarray) -> list:
    """Nested list with NaN as None (the standard error of a single sample), JSON-safe."""
    a = np.asarray(a, dtype=np.float64)
    obj = a.astype(object)
    obj[~np.isfinite(a)] = None
    return obj.tolist()


def _prior_ranges(prior: Any, names: Iterable[str]) -> dict[str, tuple[float, float]]:
    out = {}
    for n in names:
        try:
            out[n] = (float(prior.low(n)), float(prior.high(n)))
        except (KeyError, ConfigError, AttributeError):
            continue
    return out


def _from_file(path: str | Path, index: int | None, all_samples: bool,
               max_samples: int | None) -> tuple[StructureSeries, dict[str, Any], dict[str, tuple[float, float]]]:
    from ..io.ensemble import open_ensemble

    if not Path(path).exists():
        raise ConfigError(f"`data` file {path} does not exist")
    with open_ensemble(path) as ens:
        n = ens.n_complete
        if n < 1:
            raise ConfigError(f"`data` {path} holds no complete samples")
        if all_samples:
            a, b = 0, n if max_samples is None else min(n, int(max_samples))
        else:
            i = 0 if index is None else index
            if isinstance(i, bool) or int(i) != i or not 0 <= int(i) < n:
                raise ConfigError(f"`index` {index} out of range: {path} holds {n} complete samples")
            a, b = int(i), int(i) + 1
        L = float(ens.config.L)
        names = tuple(ens.channels)
        times = np.asarray(ens.snapshot_times)
        parts: list[StructureSeries] = []
        for s in range(a, b, _CHUNK):
            e = min(b, s + _CHUNK)
            psi = ens.psi(s, e) if ens.has_fields else None
            parts.append(structure_series(ens.x(s, e), L, names, times=times, psi=psi))
        theta = ens.theta(a, b)
        fixed = ens.prior.fixed_values()
        th = {p: theta[:, c] for c, p in enumerate(ens.parameter_names)}
        for p, v in fixed.items():
            th.setdefault(p, np.full(b - a, float(v)))
        ranges = _prior_ranges(ens.prior, ens.parameter_names)
    S = {c: np.concatenate([p.S[c] for p in parts]) for c in parts[0].S}
    ser = StructureSeries(k=parts[0].k, t=parts[0].t, S=S, counts=parts[0].counts, theta=th)
    src: dict[str, Any] = {"data": str(path)}
    src.update({"all": True, "samples": [a, b]} if all_samples else {"index": a})
    return ser, src, ranges


def _from_preset(preset: str | Path, overrides: Iterable[str] | Mapping[str, Any], seed: int,
                 n_samples: int) -> tuple[StructureSeries, dict[str, Any], dict[str, tuple[float, float]]]:
    from ..io.presets import load_preset
    from ..physics.solver import simulate

    if isinstance(seed, bool) or seed is None or int(seed) != seed or not 0 <= int(seed) < 2 ** 63:
        raise ConfigError(f"`seed` must be an integer in [0, 2^63), got {seed!r}")
    if isinstance(n_samples, bool) or int(n_samples) != n_samples or n_samples < 1:
        raise ConfigError(f"`n_samples` must be a positive integer, got {n_samples!r}")
    config, prior = load_preset(preset, overrides)
    idx = np.arange(int(n_samples))
    theta = prior.sample(int(seed), idx)
    params = prior.params(theta)
    res = simulate(config, params, seed=int(seed), sample_indices=idx)
    ser = structure_series(res.channels(), float(config.L), ("rho1", "rho2", "curlJ"),
                           times=np.asarray(res.times), psi=res.psi,
                           theta={p: np.asarray(v, dtype=np.float64) for p, v in params.items()})
    ov = list(overrides.items()) if isinstance(overrides, Mapping) else list(overrides)
    src = {"preset": str(preset), "overrides": [str(o) if isinstance(o, str) else f"{o[0]}={o[1]}" for o in ov],
           "seed": int(seed), "n_samples": int(n_samples)}
    return ser, src, _prior_ranges(prior, prior.names)


def structure(data: str | Path | None = None, index: int | None = None, all: bool = False, *,  # noqa: A002
              preset: str | Path | None = None, overrides: Iterable[str] | Mapping[str, Any] = (),
              seed: int | None = None, n_samples: int = 1, max_samples: int | None = None,
              nu_bins: int = 4, eta_bins: int = 3) -> StructureResult:
    """S(k, t) of every channel: one sample, a whole ensemble, or fresh simulations from a preset.

    Parameters
    ----------
    data
        Ensemble file (with ``index`` or ``all``).
    index
        Sample index in ``data`` (default 0 when ``all`` is False).
    all
        Use every complete sample of ``data`` (ensemble means ± standard errors, ν and η bins).
    preset, overrides, seed
        Instead of ``data``: simulate ``n_samples`` samples with θ drawn from the
        preset's prior (the same samples ``tdglnre generate`` would write for that seed).
    n_samples
        Samples to simulate with ``preset``.
    max_samples
        With ``all``: use only the first samples.
    nu_bins, eta_bins
        Equal-width bins over the prior range (a ν = 0 point mass gets its own group).

    Returns
    -------
    StructureResult
    """
    as_optional_path("`data`", data)
    if index is not None:
        index = as_int("`index`", index, 0)
    all = as_bool("`all`", all)  # noqa: A001
    if preset is not None and not isinstance(preset, (str, os.PathLike)):
        raise ConfigError(f"`preset` must be a preset name or the path of a preset file, got {type(preset).__name__}")
    if isinstance(overrides, (str, bytes)) or not isinstance(overrides, (Mapping, list, tuple)):
        raise ConfigError(f"`overrides` must be a list of 'key=value' texts or a dict, got {overrides!r}")
    if seed is not None and (isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer))
                             or not 0 <= seed < 2 ** 63):
        raise ConfigError(f"`seed` must be an integer in [0, 2^63), got {seed!r}")
    n_samples = as_int("`n_samples`", n_samples, 1)
    if max_samples is not None:
        max_samples = as_int("`max_samples`", max_samples, 1)
    nu_bins, eta_bins = as_int("`nu_bins`", nu_bins, 1), as_int("`eta_bins`", eta_bins, 1)
    if (data is None) == (preset is None):
        raise ConfigError("give exactly one of `data` and `preset`")
    if data is not None:
        if seed is not None or overrides:
            raise ConfigError("`seed` and `overrides` go with `preset`, not with `data`")
        if all and index is not None:
            raise ConfigError("give `index` or `all`, not both")
        ser, src, ranges = _from_file(data, index, bool(all), max_samples)
    else:
        if index is not None or all:
            raise ConfigError("`index` and `all` go with `data`, not with `preset`")
        if seed is None:
            raise ConfigError("`preset` needs `seed`")
        ser, src, ranges = _from_preset(preset, overrides, seed, n_samples)
    res = StructureResult(ser, src, {"nu": int(nu_bins), "eta": int(eta_bins)}, ranges)
    for n in ("nu", "eta"):
        res.groups(n)  # validates the bin counts
    log.info("structure: %d samples, %d shells, %d snapshots", ser.n_samples, len(ser.k), len(ser.t))
    return res


def run_structure(out_dir: str | Path, *, force: bool = False, plots: bool = True, **kwargs: Any) -> StructureResult:
    """:func:`structure` and save into ``out_dir`` (checked first, written at the end)."""
    from ._output import check_output_dir

    check_output_dir(out_dir, force=force, protect=(kwargs.get("data"),))
    res = structure(**kwargs)
    res.save(out_dir, force=force, plots=plots)
    return res
