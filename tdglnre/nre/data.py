"""Training data for the ratio estimator: ensemble access, split, statistics, tf.data.

Pipeline
--------
1. :class:`EnsembleSource` (an HDF5 ensemble through :mod:`tdglnre.io.ensemble`)
   or :class:`ArraySource` (NumPy arrays, for tests and synthetic problems)
   give θ (S, P) and x (S, T, N, N, C) by index ranges.
2. :func:`split_indices` draws a deterministic validation split from a seeded
   permutation of the sample indices.
3. :func:`scan_source` makes one pass over the data in blocks: it checks every
   value is finite, computes the per-channel mean/variance over the **training
   split only**, and keeps the selected inputs in memory when they fit
   (``in_memory_limit`` bytes); otherwise the data stay on disk.
4. :class:`BatchStream` yields batches ``((x, θ_cols), y)`` for one epoch:
   shuffled block order + within-group shuffle (seeded by ``(seed, epoch)``),
   each training sample exactly once per epoch, optional random torus
   translations, and the contrastive θ columns (column 0 = own θ, column k =
   the θ of the sample k places further in the batch).
5. :func:`make_dataset` wraps a stream in ``tf.data`` with prefetching.

Input selection: ``channels`` (names) and ``snapshots`` (indices into the
ensemble's snapshot times) pick the network input; several snapshots are
stacked as channels, snapshot-major: channel index = s · C_sel + c.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np

from ..errors import TDGLError

log = logging.getLogger(__name__)


class TrainingDataError(TDGLError, ValueError):
    """The training data cannot be used; the message says why."""


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
    from ..io.ensemble import open_ensemble

    return open_ensemble(path)


class EnsembleSource:
    """An HDF5 ensemble (schema v1) opened for training.

    Only the ``n_complete`` finished samples are used. The file stays open
    until :meth:`close`.

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
            names = tuple(ens.parameter_names)
            if not names:
                raise TrainingDataError(f"{self.path}: the ensemble has no inferred parameters")
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
        """θ of samples [start, stop), float64 (n, P)."""
        return np.asarray(self._ens.theta(start, stop), dtype=np.float64)

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


# --------------------------------------------------------------------- split
def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic train/validation split of ``range(n)``.

    The validation set is the first ``round(val_fraction · n)`` entries of a
    permutation drawn from ``numpy.random.default_rng([seed, 0x5E1])``; both
    index arrays are returned sorted.

    Raises
    ------
    TrainingDataError
        If ``val_fraction`` is outside [0, 1) or the split leaves fewer than
        2 training samples or no validation sample.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise TrainingDataError(f"val_fraction must lie in [0, 1), got {val_fraction}")
    n_val = int(round(val_fraction * n))
    if val_fraction > 0 and n_val == 0:
        n_val = 1
    n_train = n - n_val
    if n_train < 2 or (val_fraction > 0 and n_val < 1):
        raise TrainingDataError(
            f"{n} sample(s) are too few for a validation fraction of {val_fraction:g} "
            f"({n_train} training, {n_val} validation); need at least 2 training samples "
            "and 1 validation sample"
        )
    perm = np.random.default_rng([int(seed), 0x5E1]).permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


# ---------------------------------------------------------------------- scan
@dataclass
class ScanResult:
    """Outcome of :func:`scan_source`."""

    mean: np.ndarray
    """Per-input-channel mean over the training split."""
    variance: np.ndarray
    """Per-input-channel variance over the training split (floored at 1e-12)."""
    theta: np.ndarray
    """All θ (S, P), float32."""
    x: np.ndarray | None
    """All selected inputs (S, N, N, C') when they fit in memory, else None."""
    nbytes: int
    """Size of the selected inputs of all samples."""
    in_memory: bool = field(default=False)


def scan_source(
    source: Any,
    selection: Selection,
    train_idx: np.ndarray,
    *,
    block_size: int = 256,
    in_memory_limit: float = 2 * 1024**3,
) -> ScanResult:
    """One pass over the data: finiteness check, training-split statistics, cache.

    Parameters
    ----------
    source
        :class:`EnsembleSource` or :class:`ArraySource`.
    selection
        The input selection.
    train_idx
        Training indices; only these enter the channel statistics.
    block_size
        Samples read per HDF5 access.
    in_memory_limit
        Keep the selected inputs in RAM when they take at most this many bytes.

    Raises
    ------
    TrainingDataError
        On the first non-finite θ or x value (naming the sample and channel).
    """
    n = source.n
    t, h, w, _ = source.sample_shape
    c_in = selection.n_channels
    nbytes = n * h * w * c_in * 4
    keep = nbytes <= in_memory_limit
    x_all = np.empty((n, h, w, c_in), dtype=np.float32) if keep else None
    theta_all = np.asarray(source.theta(0, n), dtype=np.float64)
    bad = ~np.isfinite(theta_all)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise TrainingDataError(
            f"{_where(source)}: theta of sample {i} is not finite "
            f"({source.parameter_names[j]}={theta_all[i, j]})"
        )
    is_train = np.zeros(n, dtype=bool)
    is_train[train_idx] = True
    count = 0
    mean = np.zeros(c_in)
    m2 = np.zeros(c_in)
    for a in range(0, n, block_size):
        b = min(n, a + block_size)
        xb = selection.apply(source.x(a, b))
        if not np.isfinite(xb).all():
            i, _, _, c = np.argwhere(~np.isfinite(xb))[0]
            s_i, c_i = divmod(int(c), len(selection.channel_indices))
            raise TrainingDataError(
                f"{_where(source)}: sample {a + i} has NaN/Inf values in channel "
                f"{selection.channel_names[c_i]!r} at snapshot t={selection.snapshot_times[s_i]:g}"
            )
        if x_all is not None:
            x_all[a:b] = xb
        xt = xb[is_train[a:b]].astype(np.float64)
        if len(xt):
            m = xt.shape[0] * h * w
            bmean = xt.mean(axis=(0, 1, 2))
            bm2 = ((xt - bmean) ** 2).sum(axis=(0, 1, 2))
            delta = bmean - mean
            tot = count + m
            mean = mean + delta * (m / tot)
            m2 = m2 + bm2 + delta**2 * (count * m / tot)
            count = tot
    var = np.maximum(m2 / max(count, 1), 1e-12)
    log.info("scanned %d samples (%s); channel means %s, stds %s", n,
             "cached in memory" if keep else "streamed from disk", np.round(mean, 4),
             np.round(np.sqrt(var), 4))
    return ScanResult(mean=mean, variance=var, theta=theta_all.astype(np.float32), x=x_all,
                      nbytes=nbytes, in_memory=keep)


def _where(source: Any) -> str:
    return getattr(source, "path", None) or "training data"


# -------------------------------------------------------------------- stream
def n_batches(n: int, batch_size: int) -> int:
    """Batches per epoch for ``n`` samples (a final single sample joins the last batch)."""
    full, rem = divmod(n, batch_size)
    if rem == 0:
        return full
    if rem == 1 and full >= 1:
        return full
    return full + 1


def contrastive_theta(theta: np.ndarray, n_cols: int) -> np.ndarray:
    """(B, P) → (B, n_cols, P): column 0 own θ, column k the θ of sample (i + s_k) mod B.

    The shift s_k = 1 + (k − 1) mod (B − 1) is never 0 mod B, so a column
    k ≥ 1 never holds the sample's own θ, even in a batch smaller than n_cols.
    """
    b = len(theta)
    cols = [theta]
    for k in range(1, n_cols):
        s = 1 + (k - 1) % max(b - 1, 1)
        cols.append(np.roll(theta, -s, axis=0))
    return np.stack(cols, axis=1)


def random_translate(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Roll each (N, N, C) image by an independent uniform lattice shift (periodic)."""
    b, h, w, _ = x.shape
    dy = rng.integers(0, h, size=b)
    dx = rng.integers(0, w, size=b)
    rows = (np.arange(h)[None, :] + dy[:, None]) % h
    cols = (np.arange(w)[None, :] + dx[:, None]) % w
    return x[np.arange(b)[:, None, None], rows[:, :, None], cols[:, None, :]]


class BatchStream:
    """Callable producing one epoch of batches ``((x, θ_cols), y)``.

    Parameters
    ----------
    source
        The data source (read in blocks when ``scan.x`` is None).
    scan
        Result of :func:`scan_source` (θ and, if cached, the inputs).
    selection
        Input selection (applied to blocks read from the source).
    indices
        Sample indices of this split.
    batch_size
        Samples per batch (the last batch may be smaller; a single leftover
        sample joins the previous batch).
    n_cols
        θ columns per x (1 joint + contrastive ones).
    shuffle
        Shuffle block order and samples (training) or keep file order.
    seed
        Base seed; epoch ``e`` uses ``default_rng([seed, e])``.
    augment
        Apply random torus translations.
    block_size, blocks_per_read
        Streaming only: samples per block and blocks read and shuffled together.

    Attributes
    ----------
    epoch : int
        Epoch whose order the next call produces (set by the training loop).
    """

    def __init__(self, source: Any, scan: ScanResult, selection: Selection,
                 indices: np.ndarray, batch_size: int, n_cols: int, *, shuffle: bool,
                 seed: int, augment: bool = False, block_size: int = 256,
                 blocks_per_read: int = 4):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.source, self.scan, self.selection = source, scan, selection
        self.indices = np.sort(np.asarray(indices, dtype=np.int64))
        self.batch_size, self.n_cols = int(batch_size), int(n_cols)
        self.shuffle, self.seed, self.augment = bool(shuffle), int(seed), bool(augment)
        self.block_size, self.blocks_per_read = int(block_size), int(blocks_per_read)
        self.epoch = 0
        self.n_batches = n_batches(len(self.indices), self.batch_size)
        _, h, w, _ = source.sample_shape
        self.input_shape = (h, w, selection.n_channels)

    def __len__(self) -> int:
        return self.n_batches

    # groups of (indices, x or None) in visiting order
    def _groups(self, rng: np.random.Generator) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        idx = self.indices
        if self.scan.x is not None:
            order = rng.permutation(idx) if self.shuffle else idx
            step = max(self.block_size * self.blocks_per_read, self.batch_size)
            for a in range(0, len(order), step):
                sel = order[a:a + step]
                yield sel, self.scan.x[sel]
            return
        blocks = np.unique(idx // self.block_size)
        if self.shuffle:
            blocks = rng.permutation(blocks)
        member = np.zeros(self.source.n, dtype=bool)
        member[idx] = True
        for g in range(0, len(blocks), self.blocks_per_read):
            ids, xs = [], []
            for blk in blocks[g:g + self.blocks_per_read]:
                a = int(blk) * self.block_size
                b = min(self.source.n, a + self.block_size)
                keep = member[a:b]
                if not keep.any():
                    continue
                ids.append(np.arange(a, b)[keep])
                xs.append(self.selection.apply(self.source.x(a, b))[keep])
            if not ids:
                continue
            gi, gx = np.concatenate(ids), np.concatenate(xs)
            if self.shuffle:
                p = rng.permutation(len(gi))
                gi, gx = gi[p], gx[p]
            yield gi, gx

    def _batches(self, with_x: bool = True
                 ) -> Iterator[tuple[np.ndarray, np.ndarray, np.random.Generator]]:
        rng = np.random.default_rng([self.seed, int(self.epoch)])
        bs = self.batch_size
        if not with_x:  # in memory: batches are consecutive runs of one permutation
            order = rng.permutation(self.indices) if self.shuffle else self.indices
            n_b = n_batches(len(order), bs)
            for i in range(n_b):
                stop = len(order) if i == n_b - 1 else (i + 1) * bs
                yield order[i * bs:stop], np.empty(0, np.float32), rng
            return
        buf_i = np.empty(0, dtype=np.int64)
        buf_x = np.empty((0,) + self.input_shape, dtype=np.float32)
        pending: tuple[np.ndarray, np.ndarray] | None = None
        for gi, gx in self._groups(rng):
            buf_i = np.concatenate([buf_i, gi])
            buf_x = np.concatenate([buf_x, gx])
            while len(buf_i) >= bs:
                if pending is not None:
                    yield pending[0], pending[1], rng
                pending = (buf_i[:bs], buf_x[:bs])
                buf_i, buf_x = buf_i[bs:], buf_x[bs:]
        if len(buf_i) == 1 and pending is not None:
            pending = (np.concatenate([pending[0], buf_i]), np.concatenate([pending[1], buf_x]))
            buf_i = buf_i[:0]
        if pending is not None:
            yield pending[0], pending[1], rng
        if len(buf_i):
            yield buf_i, buf_x, rng

    def __call__(self) -> Iterator[tuple[tuple[np.ndarray, np.ndarray], np.ndarray]]:
        """Generator over the batches of epoch :attr:`epoch`."""
        for ids, xb, rng in self._batches():
            if self.augment:
                xb = random_translate(xb, rng)
            th = contrastive_theta(self.scan.theta[ids], self.n_cols)
            yield (xb, th), np.zeros(len(ids), dtype=np.float32)


    def index_plan(self) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """The batches of epoch :attr:`epoch` as indices only (in-memory data).

        Yields ``(ids, theta_ids, rows, cols)``: the batch's sample indices (B,),
        the sample index of every θ column (B, n_cols), and the row/column
        index maps (B, N) of each sample's random translation (identity
        without augmentation). Gathering ``x[ids]`` with these maps and
        ``θ[theta_ids]`` gives exactly what :meth:`__call__` yields, from
        the same random numbers.
        """
        if self.scan.x is None:
            raise ValueError("index_plan needs the inputs cached in memory")
        h, w, _ = self.input_shape
        for ids, _, rng in self._batches(with_x=False):
            b = len(ids)
            if self.augment:
                dy = rng.integers(0, h, size=b)
                dx = rng.integers(0, w, size=b)
            else:
                dy = dx = np.zeros(b, dtype=np.int64)
            rows = (np.arange(h)[None, :] + dy[:, None]) % h
            cols = (np.arange(w)[None, :] + dx[:, None]) % w
            yield ids, contrastive_theta(ids, self.n_cols), rows, cols


def make_dataset(stream: BatchStream) -> Any:
    """``tf.data.Dataset`` over one epoch of ``stream`` (re-iterable, prefetched).

    Each new iterator calls the stream again, so the order follows
    ``stream.epoch`` at the time the iterator is created.

    With the inputs cached in memory, only the batch's indices pass through
    Python (:meth:`BatchStream.index_plan`); the images are gathered,
    translated and paired with their θ columns inside TensorFlow from one
    resident copy. Converting a fresh NumPy batch every step instead cost
    about three times the page faults and system time per epoch (measured
    with ``/usr/bin/time -v``; see docs/nre.md).
    """
    from .tf_setup import ensure_tensorflow

    tf = ensure_tensorflow()
    h, w, c = stream.input_shape
    p = stream.scan.theta.shape[1]
    if stream.scan.x is not None:
        x_all, theta_all = _resident(stream.scan, tf)
        sig = (tf.TensorSpec((None,), tf.int64), tf.TensorSpec((None, stream.n_cols), tf.int64),
               tf.TensorSpec((None, h), tf.int64), tf.TensorSpec((None, w), tf.int64))
        translate = stream.augment

        def gather(ids: Any, theta_ids: Any, rows: Any, cols: Any) -> Any:
            x = tf.gather(x_all, ids)
            if translate:
                x = tf.gather(x, rows, axis=1, batch_dims=1)
                x = tf.gather(x, cols, axis=2, batch_dims=1)
            th = tf.gather(theta_all, theta_ids)
            return (x, th), tf.zeros(tf.shape(ids), tf.float32)

        ds = tf.data.Dataset.from_generator(stream.index_plan, output_signature=sig)
        ds = ds.map(gather, num_parallel_calls=1, deterministic=True)
    else:
        sig = (
            (tf.TensorSpec((None, h, w, c), tf.float32),
             tf.TensorSpec((None, stream.n_cols, p), tf.float32)),
            tf.TensorSpec((None,), tf.float32),
        )
        ds = tf.data.Dataset.from_generator(stream, output_signature=sig)
    ds = ds.apply(tf.data.experimental.assert_cardinality(stream.n_batches))
    return ds.prefetch(2)


def _resident(scan: ScanResult, tf: Any) -> tuple[Any, Any]:
    """The cached inputs and θ as TensorFlow variables (shared by the splits, made once).

    Variables, not constants: a function that captures a variable refers to
    it, while a captured constant would be copied into the dataset's graph.
    """
    cached = getattr(scan, "_resident", None)
    if cached is None:
        with tf.device("/CPU:0"):
            cached = (tf.Variable(scan.x, trainable=False, name="x_cache"),
                      tf.Variable(scan.theta, trainable=False, name="theta_cache"))
        scan._resident = cached
    return cached


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
