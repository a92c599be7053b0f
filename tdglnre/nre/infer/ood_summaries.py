"""Summary statistics of network inputs for the OOD score (:mod:`tdglnre.nre.infer.ood`).

For every selected snapshot holding ``rho1``, ``rho2`` and ``curlJ``: the 13
physical summaries of the ABC baseline (:func:`tdglnre.analysis.baselines.summaries`);
for every other channel: its mean, standard deviation and log structure factor
on the three lowest |k| shells. Every channel also carries its spectral tail
(:func:`spectral_tail`, its noise floor). Inputs are what the network sees:
for a model trained with a measurement, the measured channels
(:func:`network_channels`).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ...errors import ConfigError

_PHYS = ("rho1", "rho2", "curlJ")
_GENERIC = ("mean", "std", "logS_k1", "logS_k2", "logS_k3", "logS_tail")
#: Floor of S(k) inside the logarithm of the spectral tail (an exactly flat channel).
_TAIL_FLOOR = 1e-30


# ----------------------------------------------------------------------------- summaries
def _tail(s: np.ndarray) -> float:
    """Mean log of the upper half of a shell-averaged S(k)."""
    return float(np.log(np.maximum(s[s.size // 2:], _TAIL_FLOOR)).mean())


def _generic_summaries(img: np.ndarray) -> np.ndarray:
    """mean, std, log S(k) on the three lowest shells and the spectral tail of one channel (N, N)."""
    from ...physics.observables import structure_factor

    _, s = structure_factor(img, float(img.shape[-1]))  # the shell means do not depend on L, only their k do
    s3 = np.full(3, 1e-12)
    s3[: min(3, s.size)] = s[:3]
    return np.concatenate([[img.mean(), img.std()], np.log(s3 + 1e-12), [_tail(s)]])


def spectral_tail(img: np.ndarray, L: float) -> float:
    """Mean log S(k) of one channel (M, M) over the upper half of its |k| shells: its noise floor."""
    from ...physics.observables import structure_factor

    return _tail(structure_factor(img, float(L))[1])


def _layout(channels: Sequence[str], n_snapshots: int) -> list[tuple[int, str, list[int]]]:
    """Per snapshot: (snapshot, "phys" or channel name, input-channel indices)."""
    ch = list(channels)
    per = len(ch)
    out = []
    for s in range(n_snapshots):
        base = s * per
        rest = list(ch)
        if all(c in ch for c in _PHYS):
            out.append((s, "phys", [base + ch.index(c) for c in _PHYS]))
            rest = [c for c in ch if c not in _PHYS]
        for c in rest:
            out.append((s, c, [base + ch.index(c)]))
    return out


def summary_names(channels: Sequence[str], snapshot_times: Sequence[float]) -> list[str]:
    """Names of the entries of :func:`input_summaries`, e.g. ``mean_rho1@t=2``."""
    from ...analysis.baselines import SUMMARY_NAMES

    names = []
    times = list(snapshot_times)
    for s, kind, _ in _layout(channels, len(times)):
        tag = f"@t={times[s]:g}"
        if kind == "phys":
            names.extend(n + tag for n in SUMMARY_NAMES)
            names.extend(f"logS_tail_{c}{tag}" for c in _PHYS)
        else:
            names.extend(f"{g}_{kind}{tag}" for g in _GENERIC)
    return names


def input_summaries(x: np.ndarray, channels: Sequence[str], n_snapshots: int, L: float | None) -> np.ndarray:
    """Summary statistics of network inputs.

    Parameters
    ----------
    x
        Preprocessed inputs (n, N, N, S·C) (snapshot-major, as
        :meth:`tdglnre.nre.infer.model_io.RatioEstimator.preprocess` returns), or one
        input (N, N, S·C).
    channels
        The C selected channel names.
    n_snapshots
        S, the number of selected snapshots.
    L
        Side length of the system (None: the lattice size, which only shifts
        the log structure factors by a constant).

    Returns
    -------
    numpy.ndarray
        (n, D) float64 summaries, in :func:`summary_names` order.
    """
    from ...analysis.baselines import summaries

    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[-1] != len(channels) * n_snapshots:
        raise ConfigError(f"summaries need inputs (n, N, N, {len(channels) * n_snapshots}), got shape {x.shape}")
    length = float(L) if L else float(x.shape[1])
    layout = _layout(channels, n_snapshots)
    rows = []
    for img in x:
        parts = []
        for _, kind, idx in layout:
            if kind == "phys":
                parts.append(summaries(img[..., idx], length))
                parts.append([spectral_tail(img[..., i], length) for i in idx])
            else:
                parts.append(_generic_summaries(img[..., idx[0]]))
        rows.append(np.concatenate(parts))
    return np.asarray(rows)


def measurement_of(metadata: dict[str, Any]) -> Any:
    """The model's measurement (None for perfect images)."""
    from ...instrument.model import MeasurementModel

    m = metadata.get("measurement")
    return MeasurementModel.from_dict(m["model"]) if m else None


def network_channels(metadata: dict[str, Any]) -> list[str]:
    """Channel names of the network input: the selection's, after the model's measurement (e.g. a subset)."""
    chans = list(metadata["input"]["channels"])
    m = measurement_of(metadata)
    return chans if m is None else list(m.output_channels(chans))


def _metadata_summaries(metadata: dict[str, Any], x: np.ndarray) -> np.ndarray:
    inp = metadata["input"]
    return input_summaries(x, network_channels(metadata), len(inp["snapshot_indices"]), metadata.get("L"))


__all__ = ["input_summaries", "summary_names", "spectral_tail", "network_channels", "measurement_of"]
