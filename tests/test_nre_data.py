"""Data pipeline of the ratio estimator: split, statistics, epochs, augmentation."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

pytest.importorskip("tensorflow")

# Keras 3 + NumPy 2 warn inside keras.saving (not our code)
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

from tdglnre.nre.pipeline.data import (  # noqa: E402
    ArraySource,
    BatchStream,
    TrainingDataError,
    make_dataset,
    n_batches,
    random_translate,
    resolve_selection,
    scan_source,
    split_indices,
)


def _source(n: int = 103, t: int = 2, size: int = 6, c: int = 3, seed: int = 0) -> ArraySource:
    rng = np.random.default_rng(seed)
    theta = rng.uniform(0, 1, size=(n, 2))
    x = rng.normal(size=(n, t, size, size, c)).astype(np.float32)
    x[:, :, 0, 0, 0] = np.arange(n)[:, None]  # pixel (0,0) of channel 0 tags the sample
    return ArraySource(theta, x, ["eta", "nu"], [0, 0], [1, 1],
                       channels=["rho1", "rho2", "curlJ"], snapshot_times=[1.0, 2.0][:t])


def _stream(src: ArraySource, idx: np.ndarray, *, in_memory: bool, batch: int = 8,
            shuffle: bool = True, **kw) -> BatchStream:
    sel = resolve_selection(None, None, src.channels, src.snapshot_times)
    scan = scan_source(src, sel, idx, block_size=10, in_memory_limit=1e12 if in_memory else 0)
    assert scan.in_memory is in_memory
    return BatchStream(src, scan, sel, idx, batch, 3, shuffle=shuffle, seed=7, block_size=10,
                       blocks_per_read=2, **kw)


def test_split_is_deterministic_disjoint_and_complete() -> None:
    tr, va = split_indices(1000, 0.1, seed=3)
    tr2, va2 = split_indices(1000, 0.1, seed=3)
    assert np.array_equal(tr, tr2) and np.array_equal(va, va2)
    assert len(va) == 100 and len(tr) == 900
    assert not set(tr) & set(va) and set(tr) | set(va) == set(range(1000))
    _, va3 = split_indices(1000, 0.1, seed=4)
    assert not np.array_equal(va, va3)
    # not a contiguous tail: validation indices spread over the file
    assert va.min() < 100 and va.max() > 900


@pytest.mark.parametrize("n", [0, 1, 2])
def test_split_rejects_too_few_samples(n: int) -> None:
    with pytest.raises(TrainingDataError, match="too few"):
        split_indices(n, 0.1, seed=0)


@pytest.mark.parametrize("in_memory", [True, False])
@pytest.mark.parametrize("batch", [8, 10, 92])
def test_each_epoch_visits_every_training_sample_exactly_once(in_memory: bool, batch: int) -> None:
    src = _source()
    tr, _ = split_indices(src.n, 0.1, seed=1)  # 93 training samples: remainders 5, 3 and 1
    stream = _stream(src, tr, in_memory=in_memory, batch=batch)
    orders = []
    for epoch in range(3):
        stream.epoch = epoch
        seen = []
        n_b = 0
        for (x, theta), y in stream():
            tags = x[:, 0, 0, 0].astype(int)  # channel 0 of the last snapshot holds the tag
            assert np.allclose(theta[:, 0, :], src.theta(0, src.n)[tags].astype(np.float32))
            assert len(tags) >= 2 and y.shape == (len(tags),)
            seen.extend(tags.tolist())
            n_b += 1
        assert n_b == n_batches(len(tr), batch) == len(stream)
        counts = Counter(seen)
        assert sorted(counts) == sorted(tr.tolist()) and set(counts.values()) == {1}
        orders.append(seen)
    assert orders[0] != orders[1] != orders[2]  # reshuffled every epoch
    stream.epoch = 1
    assert [int(v) for (x, _), _ in stream() for v in x[:, 0, 0, 0]] == orders[1]  # seeded


def test_tf_dataset_yields_the_same_epoch() -> None:
    src = _source()
    tr, _ = split_indices(src.n, 0.2, seed=0)
    stream = _stream(src, tr, in_memory=False, batch=16)
    ds = make_dataset(stream)
    assert int(ds.cardinality()) == len(stream)
    stream.epoch = 2
    seen = [int(v) for (x, th), y in ds.as_numpy_iterator() for v in x[:, 0, 0, 0]]
    assert sorted(seen) == sorted(tr.tolist())
    direct = [int(v) for (x, _), _ in stream() for v in x[:, 0, 0, 0]]
    assert seen == direct


def test_validation_stream_keeps_file_order() -> None:
    src = _source()
    _, va = split_indices(src.n, 0.3, seed=0)
    stream = _stream(src, va, in_memory=False, batch=8, shuffle=False)
    seen = [int(v) for (x, _), _ in stream() for v in x[:, 0, 0, 0]]
    assert seen == sorted(va.tolist())


def test_statistics_come_from_the_training_split_only() -> None:
    """Validation samples are shifted by +100 and scaled ×10: the stats must not see them."""
    rng = np.random.default_rng(5)
    n = 400
    x = rng.normal(2.0, 3.0, size=(n, 1, 4, 4, 2)).astype(np.float32)
    tr, va = split_indices(n, 0.25, seed=9)
    x[va] = 100.0 + 10.0 * x[va]
    src = ArraySource(rng.uniform(size=(n, 1)), x, ["eta"], [0], [1], channels=["a", "b"])
    sel = resolve_selection(None, None, src.channels, src.snapshot_times)
    for limit in (1e12, 0):  # in-memory and streamed give the same numbers
        scan = scan_source(src, sel, tr, block_size=32, in_memory_limit=limit)
        xt = x[tr].astype(np.float64)
        np.testing.assert_allclose(scan.mean, xt.mean(axis=(0, 1, 2, 3)), rtol=1e-9)
        np.testing.assert_allclose(scan.variance, xt.var(axis=(0, 1, 2, 3)), rtol=1e-9)
        assert np.all(np.abs(scan.mean - 2.0) < 0.3) and np.all(np.abs(np.sqrt(scan.variance) - 3) < 0.3)


def test_non_finite_values_are_reported_with_the_sample() -> None:
    src = _source(n=30)
    src._x[17, 1, 2, 3, 1] = np.nan
    sel = resolve_selection(None, None, src.channels, src.snapshot_times)
    with pytest.raises(TrainingDataError, match="sample 17 .*'rho2'"):
        scan_source(src, sel, np.arange(25), block_size=8)
    src._theta[4, 1] = np.inf
    with pytest.raises(TrainingDataError, match="theta of sample 4 .*nu"):
        scan_source(src, sel, np.arange(25))


def test_selection_stacks_snapshots_as_channels() -> None:
    src = _source(n=4)
    sel = resolve_selection(["curlJ", "rho1"], [0, -1], src.channels, src.snapshot_times)
    assert sel.snapshot_indices == (0, 1) and sel.n_channels == 4
    raw = src.x(0, 4)
    out = sel.apply(raw)
    assert out.shape == (4, 6, 6, 4)
    expected = [raw[:, 0, ..., 2], raw[:, 0, ..., 0], raw[:, 1, ..., 2], raw[:, 1, ..., 0]]
    for c, e in enumerate(expected):
        assert np.array_equal(out[..., c], e)
    with pytest.raises(TrainingDataError, match="not in the ensemble"):
        resolve_selection(["rho3"], None, src.channels, src.snapshot_times)
    with pytest.raises(TrainingDataError, match="out of range"):
        resolve_selection(None, [2], src.channels, src.snapshot_times)


def test_random_translate_is_a_periodic_roll_per_sample() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 5, 7, 2)).astype(np.float32)
    y = random_translate(x, np.random.default_rng(1))
    shifts = set()
    for a, b in zip(x, y):
        match = [(dy, dx) for dy in range(5) for dx in range(7)
                 if np.array_equal(np.roll(a, (-dy, -dx), axis=(0, 1)), b)]
        assert len(match) == 1
        shifts.add(match[0])
    assert len(shifts) > 1  # independent shifts


def test_training_streams_from_disk_when_data_exceed_the_memory_limit(tmp_path) -> None:
    from tdglnre.nre.pipeline.data import gaussian_toy
    from tdglnre.nre.net.network import NetworkConfig
    from tdglnre.nre.fit.training import train_source

    net = NetworkConfig(filters=(4,), embed_dim=4, theta_units=(8,), head_units=(8,))
    res = train_source(gaussian_toy(150, seed=3), tmp_path / "m", epochs=2, batch_size=16,
                       network=net, quiet=True, in_memory_limit=0, block_size=16)
    assert not res.in_memory and res.epochs_run == 2 and res.n_train == 135
    assert all(np.isfinite(v) for v in res.history["val_loss"])
