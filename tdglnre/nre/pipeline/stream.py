"""Batches of one epoch: shuffling, contrastive θ columns, translations, tf.data.

:class:`BatchStream` yields batches ``((x, θ_cols), y)`` for one epoch:
shuffled block order + within-group shuffle (seeded by ``(seed, epoch)``),
each training sample exactly once per epoch, optional random torus
translations, and the contrastive θ columns (column 0 = own θ, column k = the
θ of the sample k places further in the batch). :func:`make_dataset` wraps a
stream in ``tf.data`` with prefetching.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from .selection import Selection, check_instrument_input, measure_inputs, measured_shape


@dataclass
class ScanResult:
    """Outcome of :func:`tdglnre.nre.pipeline.data.scan_source` (here, below both modules, so the stream can
    annotate with it without an import circle)."""

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
    measurement
        A :class:`tdglnre.instrument.model.MeasurementModel` applied to every
        batch after the translation (:func:`.selection.measure_inputs`),
        sample k with ``measurement_rng(seed, e, k)`` in epoch e when
        ``fresh_noise`` (training: new noise every epoch), else with epoch 0
        (validation: the same noisy inputs every epoch). None: inputs as
        selected, and the stream draws exactly the random numbers it drew
        before measurements existed.
    fresh_noise
        See ``measurement``.
    instrument_input
        Also give the network each sample's instrument: batches are
        ``((x, θ_cols, d), y)`` with d (B, K) the vector of the instrument
        ``measurement`` drew for the sample (``measurement.describe``; docs/nre.md,
        "The instrument as an input").

    Attributes
    ----------
    epoch : int
        Epoch whose order the next call produces (set by the training loop).
    """

    def __init__(self, source: Any, scan: ScanResult, selection: Selection,
                 indices: np.ndarray, batch_size: int, n_cols: int, *, shuffle: bool,
                 seed: int, augment: bool = False, block_size: int = 256,
                 blocks_per_read: int = 4, measurement: Any = None, fresh_noise: bool = True,
                 instrument_input: bool = False):
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
        self.measurement = None if measurement is None or measurement.is_identity else measurement
        self.fresh_noise = bool(fresh_noise)
        self.instrument_input = bool(instrument_input)
        check_instrument_input(self.instrument_input, self.measurement)  # before training writes anything
        self.instrument_size = self.measurement.instrument_size if self.instrument_input else 0
        """Length K of the instrument vectors (0 without them)."""
        self.clean_shape = (h, w, selection.n_channels)
        """Shape of one selected input before the measurement."""
        self.input_shape = measured_shape(self.measurement, selection, h)
        """Shape of one network input (after the measurement)."""

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
        buf_x = np.empty((0,) + self.clean_shape, dtype=np.float32)
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
            epoch = int(self.epoch) if self.fresh_noise else 0
            th = contrastive_theta(self.scan.theta[ids], self.n_cols)
            if self.instrument_input:
                xb, d = measure_inputs(self.measurement, xb, self.selection, self.seed, epoch, ids,
                                       describe=self.measurement)
                yield (xb, th, d), np.zeros(len(ids), dtype=np.float32)
                continue
            if self.measurement is not None:
                xb = measure_inputs(self.measurement, xb, self.selection, self.seed, epoch, ids)
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
        h, w, _ = self.clean_shape
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
    resident copy (without a measurement model; with one, batches are
    measured in NumPy and pass through :meth:`BatchStream.__call__`). Converting a fresh NumPy batch every step instead cost
    several times the page faults and about twice the system time per epoch
    (measured with ``getrusage`` around each epoch on the quick preset).
    """
    from ..tf_setup import ensure_tensorflow

    tf = ensure_tensorflow()
    h, w, c = stream.input_shape
    p = stream.scan.theta.shape[1]
    if stream.scan.x is not None and stream.measurement is None:
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
        inputs = (tf.TensorSpec((None, h, w, c), tf.float32), tf.TensorSpec((None, stream.n_cols, p), tf.float32))
        if stream.instrument_input:
            inputs += (tf.TensorSpec((None, stream.instrument_size), tf.float32),)
        sig = (inputs, tf.TensorSpec((None,), tf.float32))
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
