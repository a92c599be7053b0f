"""Input selection: which channels and snapshots of an ensemble sample the network sees.

Several snapshots are stacked as channels, snapshot-major: channel index =
s · C_sel + c.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..settings import TrainingDataError, TrainSettingsError


# ----------------------------------------------------------------- selection
@dataclass(frozen=True)
class Selection:
    """Which channels and snapshots of an ensemble sample form the network input."""

    channel_names: tuple[str, ...]
    """Selected channel names, in input order."""
    channel_indices: tuple[int, ...]
    """Their indices in the ensemble's channel axis."""
    snapshot_indices: tuple[int, ...]
    """Selected snapshot indices (non-negative) in the ensemble's time axis."""
    snapshot_times: tuple[float, ...]
    """The corresponding times."""

    @property
    def n_channels(self) -> int:
        """Input channels of the network (snapshots × channels)."""
        return len(self.channel_indices) * len(self.snapshot_indices)

    def apply(self, x: np.ndarray) -> np.ndarray:
        """(n, T, N, N, C) → (n, N, N, S·C_sel) float32, snapshot-major."""
        x = np.asarray(x)
        if x.ndim != 5:
            raise ValueError(f"expected x of shape (n, T, N, N, C), got {x.shape}")
        sel = x[:, list(self.snapshot_indices)][..., list(self.channel_indices)]
        n, s, h, w, c = sel.shape
        return np.ascontiguousarray(sel.transpose(0, 2, 3, 1, 4).reshape(n, h, w, s * c),
                                    dtype=np.float32)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Selection":
        """Inverse of :meth:`to_dict` (extra keys, e.g. of the model metadata, are ignored)."""
        return cls(tuple(d["channels"]), tuple(int(i) for i in d["channel_indices"]),
                   tuple(int(i) for i in d["snapshot_indices"]), tuple(float(t) for t in d["snapshot_times"]))

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON dictionary (stored in the model's metadata)."""
        return {
            "channels": list(self.channel_names),
            "channel_indices": list(self.channel_indices),
            "snapshot_indices": list(self.snapshot_indices),
            "snapshot_times": list(self.snapshot_times),
        }


def measure_inputs(measurement: Any, x: np.ndarray, selection: Selection, seed: int, epoch: int,
                   indices: Sequence[int], describe: Any = None) -> Any:
    """Apply a measurement model to network inputs, each snapshot's channels as one image.

    Parameters
    ----------
    measurement
        A :class:`tdglnre.instrument.model.MeasurementModel` (None or the
        identity: ``x`` is returned unchanged).
    x
        Selected inputs (n, N, N, S·C), snapshot-major as :meth:`Selection.apply` makes them.
    selection
        The selection that made ``x`` (its channel names are the measurement's channel names).
    seed, epoch, indices
        Sample ``indices[r]`` is measured with ``measurement_rng(seed, epoch, indices[r])``
        (all its snapshots from that one stream), so the result does not depend on batching.

    describe
        A measurement family (the model's) that ``measurement`` is a member of:
        also return each sample's instrument vector ``describe.describe(·)``
        of the instrument its measurement drew (the network's instrument input).

    Returns
    -------
    numpy.ndarray
        (n, M, M, S·C′) float32, snapshot-major (M, C′ from ``measurement.output_shape``);
        with ``describe``, the pair (inputs, instrument vectors (n, K) float32).
    """
    if measurement is None or measurement.is_identity:
        if describe is None:
            return x
        from ...instrument.model import MeasurementModel

        d = describe.describe(MeasurementModel())
        return x, np.repeat(d[None], len(x), axis=0)
    n, h, w, _ = x.shape
    s, c = len(selection.snapshot_indices), len(selection.channel_names)
    xs = np.asarray(x).reshape(n, h, w, s, c).transpose(0, 3, 1, 2, 4)
    realised = None if describe is None else []
    y = measurement.apply_samples(xs, seed, epoch, indices, channels=selection.channel_names, realised=realised)
    _, _, m, m2, c2 = y.shape
    y = np.ascontiguousarray(y.transpose(0, 2, 3, 1, 4).reshape(n, m, m2, s * c2), dtype=np.float32)
    if describe is None:
        return y
    return y, np.stack([describe.describe(r) for r in realised]).astype(np.float32).reshape(n, -1)


def check_instrument_input(instrument_input: bool, measurement: Any) -> None:
    """The network's instrument input (``NetworkConfig.instrument_input``) needs a family: something drawn per image."""
    if instrument_input and (measurement is None or not measurement.instrument_size):
        raise TrainSettingsError(
            "the instrument input (`instrument_input`) needs a measurement family with a range or alternatives, "
            f"e.g. 'noise(log:0.001..0.25)'; got {str(measurement) if measurement is not None else 'none'!r}")


def measured_shape(measurement: Any, selection: Selection, n: int) -> tuple[int, int, int]:
    """Network input shape (M, M, S·C′) of N×N inputs after ``measurement`` (None: no change).

    Raises :class:`~tdglnre.errors.ConfigError` when the measurement names a
    channel the selection lacks or bins to a size that does not divide N.
    """
    if measurement is None or measurement.is_identity:
        return (n, n, selection.n_channels)
    m, _, c2 = measurement.output_shape(n, selection.channel_names)
    return (m, m, len(selection.snapshot_indices) * c2)


def resolve_selection(
    channels: Sequence[str] | None,
    snapshots: Sequence[int] | None,
    available_channels: Sequence[str],
    snapshot_times: Sequence[float],
) -> Selection:
    """Validate a channel/snapshot choice against an ensemble.

    Parameters
    ----------
    channels
        Channel names; default all of ``available_channels``.
    snapshots
        Snapshot indices (negative counts from the end); default ``[-1]``, the
        last snapshot.
    available_channels, snapshot_times
        The ensemble's channel names and snapshot times.
    """
    avail = [str(c) for c in available_channels]
    names = avail if channels is None else [str(c) for c in channels]
    missing = [c for c in names if c not in avail]
    if missing or not names:
        raise TrainingDataError(
            f"channel(s) {missing or names} not in the ensemble; available: {avail}"
        )
    if len(set(names)) != len(names):
        raise TrainingDataError(f"duplicate channel names in {names}")
    times = [float(t) for t in snapshot_times]
    t_count = len(times)
    snaps = [-1] if snapshots is None else [int(s) for s in snapshots]
    resolved = []
    for s in snaps:
        if not -t_count <= s < t_count:
            raise TrainingDataError(
                f"snapshot index {s} out of range for {t_count} snapshot(s) at times {times}"
            )
        resolved.append(s % t_count)
    if not resolved or len(set(resolved)) != len(resolved):
        raise TrainingDataError(f"snapshot indices must be distinct and non-empty, got {snaps}")
    return Selection(
        channel_names=tuple(names),
        channel_indices=tuple(avail.index(c) for c in names),
        snapshot_indices=tuple(resolved),
        snapshot_times=tuple(times[i] for i in resolved),
    )
