"""Training data for the ratio estimator: split and statistics; the pipeline's one import.

This module holds the split and the scan; the other stages live in
:mod:`.selection`, :mod:`.sources` and :mod:`.stream` and are re-exported here.

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
from typing import Any, Callable

import numpy as np

from .selection import Selection, measure_inputs, measured_shape, resolve_selection
from ..settings import TrainingDataError
from .sources import ArraySource, EnsembleSource, ParameterBounds, gaussian_toy
from .stream import BatchStream, ScanResult, contrastive_theta, make_dataset, n_batches, random_translate

log = logging.getLogger(__name__)


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
def scan_source(
    source: Any,
    selection: Selection,
    train_idx: np.ndarray,
    *,
    block_size: int = 256,
    in_memory_limit: float = 2 * 1024**3,
    measure: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
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
    measure
        ``measure(x, indices)``: the training-time measurement of selected
        inputs (see :func:`.selection.measure_inputs`); the statistics are then
        those of the measured training inputs (what the network sees), while
        the cache keeps the clean inputs. None: statistics of the clean inputs.

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
    theta_all = _finite_theta(source, n)
    is_train = np.zeros(n, dtype=bool)
    is_train[train_idx] = True
    count = 0
    mean = np.zeros(c_in)
    m2 = np.zeros(c_in)
    for a in range(0, n, block_size):
        b = min(n, a + block_size)
        xb = selection.apply(source.x(a, b))
        _check_finite_block(source, selection, xb, a)
        if x_all is not None:
            x_all[a:b] = xb
        xt = xb[is_train[a:b]]
        if measure is not None and len(xt):
            xt = measure(xt, np.arange(a, b)[is_train[a:b]])
        mean, m2, count = _add_block(mean, m2, count, xt.astype(np.float64))
    var = np.maximum(m2 / max(count, 1), 1e-12)
    log.info("scanned %d samples (%s); channel means %s, stds %s", n,
             "cached in memory" if keep else "streamed from disk", np.round(mean, 4),
             np.round(np.sqrt(var), 4))
    return ScanResult(mean=mean, variance=var, theta=theta_all.astype(np.float32), x=x_all,
                      nbytes=nbytes, in_memory=keep)


def _finite_theta(source: Any, n: int) -> np.ndarray:
    """θ of all ``n`` samples as float64; the first non-finite value raises :class:`TrainingDataError`."""
    theta_all = np.asarray(source.theta(0, n), dtype=np.float64)
    bad = ~np.isfinite(theta_all)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise TrainingDataError(
            f"{_where(source)}: theta of sample {i} is not finite "
            f"({source.parameter_names[j]}={theta_all[i, j]})"
        )
    return theta_all


def _check_finite_block(source: Any, selection: Selection, xb: np.ndarray, a: int) -> None:
    """Refuse selected inputs ``xb`` of samples ``a, a + 1, …`` holding NaN/Inf, naming sample, channel, snapshot."""
    if not np.isfinite(xb).all():
        i, _, _, c = np.argwhere(~np.isfinite(xb))[0]
        s_i, c_i = divmod(int(c), len(selection.channel_indices))
        raise TrainingDataError(
            f"{_where(source)}: sample {a + i} has NaN/Inf values in channel "
            f"{selection.channel_names[c_i]!r} at snapshot t={selection.snapshot_times[s_i]:g}"
        )


def _add_block(mean: np.ndarray, m2: np.ndarray, count: int, xt: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Per-channel mean and sum of squared deviations with a block ``xt`` (S, N, N, C) added (Chan et al.)."""
    if count == 0 and len(xt):  # a measurement may change the channel count
        mean, m2 = np.zeros(xt.shape[-1]), np.zeros(xt.shape[-1])
    if len(xt):
        m = xt.shape[0] * xt.shape[1] * xt.shape[2]
        bmean = xt.mean(axis=(0, 1, 2))
        bm2 = ((xt - bmean) ** 2).sum(axis=(0, 1, 2))
        delta = bmean - mean
        tot = count + m
        mean = mean + delta * (m / tot)
        m2 = m2 + bm2 + delta**2 * (count * m / tot)
        count = tot
    return mean, m2, count


def _where(source: Any) -> str:
    return getattr(source, "path", None) or "training data"


__all__ = [
    "ArraySource", "BatchStream", "EnsembleSource", "ParameterBounds", "ScanResult", "Selection",
    "TrainingDataError", "contrastive_theta", "gaussian_toy", "make_dataset", "measure_inputs",
    "measured_shape", "n_batches", "random_translate", "resolve_selection", "scan_source", "split_indices",
]
