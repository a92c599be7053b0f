"""Network, save/load round trip and the inference API (tdglnre.nre.infer.model_io)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("keras")

# Keras 3 + NumPy 2 warn inside keras.saving (not our code)
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

import keras  # noqa: E402

from tdglnre.nre.pipeline.data import ArraySource, gaussian_toy  # noqa: E402
from tdglnre.nre.infer.model_io import ModelMismatchError, load_estimator  # noqa: E402
from tdglnre.nre.net.network import NetworkConfig, ThetaScaler, build_model, standardization_of  # noqa: E402
from tdglnre.nre.fit.training import TrainingError, train_source  # noqa: E402

TINY = NetworkConfig(filters=(4, 8), embed_dim=8, theta_units=(16,), head_units=(16,))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("nre") / "model"
    src = gaussian_toy(300, seed=2, n_params=2, size=8)
    train_source(src, out, epochs=2, batch_size=32, network=TINY, quiet=True, contrastive=4)
    return out


def test_theta_scaler_maps_the_prior_box_to_unit_interval() -> None:
    layer = ThetaScaler([0.0, 1.0], [1.5, 16.0])
    out = np.asarray(layer(np.array([[[0.0, 1.0], [1.5, 16.0], [0.75, 8.5]]], dtype=np.float32)))
    np.testing.assert_allclose(out[0], [[-1, -1], [1, 1], [0, 0]], atol=1e-6)
    with pytest.raises(ValueError, match="high > low"):
        ThetaScaler([1.0], [1.0])


def test_model_is_resolution_independent_and_encodes_once() -> None:
    model = build_model(TINY, 3, [0.0], [1.0])
    th = np.random.default_rng(0).uniform(size=(2, 5, 1)).astype(np.float32)
    for n in (8, 16):
        x = np.random.default_rng(n).normal(size=(2, n, n, 3)).astype(np.float32)
        assert tuple(model([x, th]).shape) == (2, 5)
    # column k depends on x and theta[:, k] only: permuting theta columns permutes logits
    s = np.asarray(model([x, th]))
    s_perm = np.asarray(model([x, th[:, ::-1]]))
    np.testing.assert_allclose(s_perm, s[:, ::-1], rtol=1e-5, atol=1e-6)


def test_save_load_round_trip_gives_identical_logits(model_dir: Path, tmp_path: Path) -> None:
    raw = keras.saving.load_model(model_dir / "model.keras", compile=False)
    est = load_estimator(model_dir)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(7, 8, 8, 2)).astype(np.float32)
    th = rng.uniform(-1, 1, size=(7, 3, 2)).astype(np.float32)
    s_raw = np.asarray(raw([x, th]))
    np.testing.assert_array_equal(est.log_ratio(x, th), s_raw.astype(np.float64))
    # a second save/load keeps the logits bit-identical
    raw.save(tmp_path / "again.keras")
    again = keras.saving.load_model(tmp_path / "again.keras")
    np.testing.assert_array_equal(np.asarray(again([x, th])), s_raw)
    mean, var = standardization_of(again)
    meta = json.loads((model_dir / "metadata.json").read_text())
    np.testing.assert_allclose(mean, meta["input"]["standardization"]["mean"], rtol=1e-6)
    np.testing.assert_allclose(var, meta["input"]["standardization"]["variance"], rtol=1e-6)


def test_grid_evaluation_matches_pairwise_evaluation(model_dir: Path) -> None:
    est = load_estimator(model_dir)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3, 8, 8, 2)).astype(np.float32)
    grid = rng.uniform(-1, 1, size=(50, 2))
    h = est.encode(x)
    assert h.shape == (3, est.embedding_dim)
    s = est.log_ratio_from_embedding(h, grid)
    assert s.shape == (3, 50)
    pairs = est.log_ratio(x, np.repeat(grid[None].astype(np.float32), 3, axis=0))
    np.testing.assert_allclose(s, pairs, rtol=1e-5, atol=1e-5)
    # chunking over rows does not change the result
    np.testing.assert_allclose(est.log_ratio_from_embedding(h, grid, max_rows=7), s, rtol=1e-6,
                               atol=1e-6)


def test_split_head_gives_the_joint_log_ratios_to_float32_rounding(model_dir: Path) -> None:
    """Issue 20: W·[h_x ‖ h_θ] + b = W_x·h_x + (W_θ·h_θ + b); the grid posteriors agree to rounding."""
    from tdglnre.nre.infer.inference import evaluate_test_set
    from tdglnre.nre.infer.posterior import Grid

    est = load_estimator(model_dir)
    assert est.can_split_head
    rng = np.random.default_rng(3)
    x = rng.normal(size=(5, 8, 8, 2)).astype(np.float32)
    h = est.encode(x)
    grid = rng.uniform(-1, 1, size=(300, 2))
    joint = est.log_ratio_from_embedding(h, grid)
    split = est.log_ratio_from_embedding(h, grid, split_head=True)
    np.testing.assert_allclose(split, joint, rtol=1e-5, atol=1e-5)
    # chunked over rows and grid points alike
    np.testing.assert_allclose(est.log_ratio_from_embedding(h, grid, max_rows=7, split_head=True), split,
                               rtol=1e-6, atol=1e-6)
    # the joint path is the model itself, bit for bit, whatever the chunking of the θ tower
    np.testing.assert_array_equal(est.log_ratio_from_embedding(h, grid, max_rows=1 << 18), joint)
    g = Grid.from_prior(est.prior, 24, est.parameter_names)
    theta = rng.uniform(est.prior.low(est.parameter_names[0]), est.prior.high(est.parameter_names[0]), size=(5, 2))
    a = evaluate_test_set(est, x, theta, g, n_draws=9)
    b = evaluate_test_set(est, x, theta, g, n_draws=9, split_head=True)
    np.testing.assert_allclose(b.mean, a.mean, rtol=0, atol=1e-6)
    np.testing.assert_allclose(b.credibility, a.credibility, rtol=0, atol=1e-5)


def test_grid_evaluation_is_fast(model_dir: Path) -> None:
    """Sanity bound only (≪ 50 ms target); the real figure is in docs/nre.md."""
    est = load_estimator(model_dir)
    x = est.preprocess(np.zeros((1, 8, 8, 2), np.float32))
    grid = np.linspace(-1, 1, 512)[:, None].repeat(2, axis=1)
    est.log_ratio_from_embedding(est.encode(x), grid)
    t0 = time.perf_counter()
    est.log_ratio_from_embedding(est.encode(x), grid)
    assert time.perf_counter() - t0 < 0.5


def test_metadata_and_api(model_dir: Path) -> None:
    est = load_estimator(model_dir)
    meta = est.metadata
    assert est.parameter_names == ["theta0", "theta1"]
    assert meta["input"]["channels"] == ["pix0", "pix1"] and est.N == 8
    assert meta["training"]["epochs"] == 2 and meta["result"]["epochs_run"] == 2
    assert len(meta["dataset"]["fingerprint"]) == 64
    assert {"tensorflow", "keras", "numpy", "tdglnre"} <= set(meta["versions"])
    assert est.prior.log_prob(np.array([[0.0, 0.5]]))[0] == pytest.approx(-np.log(4.0))
    assert np.isinf(est.prior.log_prob(np.array([[0.0, 1.5]]))[0])


def test_preprocess_and_mismatch_messages(model_dir: Path) -> None:
    est = load_estimator(model_dir)
    one = np.zeros((1, 8, 8, 2), np.float32)  # (T, N, N, C) ensemble sample
    assert est.preprocess(one).shape == (1, 8, 8, 2)
    assert est.preprocess(one[0]).shape == (1, 8, 8, 2)  # (N, N, C) single snapshot
    with pytest.raises(ModelMismatchError, match="trained on N=8"):
        est.preprocess(np.zeros((16, 16, 2), np.float32))
    with pytest.raises(ModelMismatchError, match="channel"):
        est.preprocess(np.zeros((8, 8, 5), np.float32))
    other = ArraySource(np.zeros((4, 1)), np.zeros((4, 1, 16, 16, 1)), ["eta"], [0], [1],
                        channels=["pix0"], info={"N": 16})
    with pytest.raises(ModelMismatchError) as err:
        est.check_compatible(other)
    msg = str(err.value)
    assert "N: model 8, data 16" in msg and "missing ['pix1']" in msg
    assert "parameter names: model ['theta0', 'theta1'], data ['eta']" in msg
    est.check_compatible(gaussian_toy(4, n_params=2, size=8))  # matching data pass


def test_existing_model_needs_force_or_resume(model_dir: Path) -> None:
    src = gaussian_toy(50, n_params=2, size=8)
    with pytest.raises(TrainingError, match="already holds a model.*--force"):
        train_source(src, model_dir, epochs=1, network=TINY)
    with pytest.raises(TrainingError, match="different dataset"):
        train_source(src, model_dir, resume=True, epochs=3)


def test_learning_rate_halves_on_plateau_and_survives_resume(tmp_path: Path) -> None:
    """With min_delta huge, only the first epoch counts as an improvement; with
    lr_patience=1 the end of every later epoch halves the rate (the history
    records the rate used during each epoch), down to the floor, and a resumed
    run continues from the reduced rate."""
    out = tmp_path / "m"
    src = gaussian_toy(200, seed=3, n_params=1, size=8)
    common = dict(batch_size=32, network=TINY, quiet=True, contrastive=4, min_delta=1e9, patience=50,
                  lr_patience=1, lr_factor=0.5, min_learning_rate=2e-4, learning_rate=1e-3)
    train_source(src, out, epochs=3, **common)
    lr = json.loads((out / "history.json").read_text())["learning_rate"]
    np.testing.assert_allclose(lr, [1e-3, 1e-3, 5e-4], rtol=1e-6)
    res = train_source(src, out, epochs=5, resume=True, **common)
    lr = res.history["learning_rate"]
    np.testing.assert_allclose(lr, [1e-3, 1e-3, 5e-4, 2.5e-4, 2e-4], rtol=1e-6)


def test_per_snapshot_encoder_trains_saves_and_loads_with_identical_logits(tmp_path: Path) -> None:
    """NetworkConfig(encoder="per_snapshot"): the shared per-snapshot CNN with time pooling is trained,
    recorded in metadata.json and loaded by load_estimator in a fresh process (its layers registered)."""
    import subprocess
    import sys

    from tdglnre.nre.settings import TrainSettings

    rng = np.random.default_rng(5)
    theta = rng.uniform(-1.0, 1.0, size=(64, 1))
    x = (theta[:, None, None, None, :] * np.array([1.0, 0.5, 0.25])[None, :, None, None, None]
         + rng.standard_normal((64, 3, 8, 8, 1))).astype(np.float32)  # 3 snapshots, 1 channel
    src = ArraySource(theta, x, ["theta0"], [-1.0], [1.0], snapshot_times=[0.5, 1.0, 2.0],
                      info={"config": {"toy": "snapshots"}, "prior": {"theta0": {"kind": "uniform", "low": -1.0,
                                                                               "high": 1.0}}, "N": 8, "L": None})
    net = NetworkConfig(filters=(4,), embed_dim=8, theta_units=(8,), head_units=(8,), encoder="per_snapshot")
    out = tmp_path / "model"
    train_source(src, out, epochs=1, batch_size=16, network=net, snapshots=(0, 1, 2), quiet=True, contrastive=2)

    meta = json.loads((out / "metadata.json").read_text())
    assert meta["training"]["network"]["encoder"] == "per_snapshot"
    assert TrainSettings.from_dict(meta["training"]).network == net  # metadata round trip
    raw = keras.saving.load_model(out / "model.keras", compile=False)
    enc = raw.get_layer("encoder")
    assert enc.get_layer("time_pool").n_snapshots == 3
    assert enc.get_layer("split_snapshots").n_snapshots == 3
    mean, var = standardization_of(raw)
    assert mean.shape == var.shape == (3,)

    xs = rng.normal(size=(5, 8, 8, 3)).astype(np.float32)
    th = rng.uniform(-1, 1, size=(5, 4, 1)).astype(np.float32)
    np.save(tmp_path / "x.npy", xs)
    np.save(tmp_path / "th.npy", th)
    s_raw = np.asarray(raw([xs, th])).astype(np.float64)
    np.testing.assert_array_equal(load_estimator(out).log_ratio(xs, th), s_raw)
    # a fresh interpreter that imports only model_io: the time encoder's layers must be registered by it
    code = ("import numpy as np, sys; from tdglnre.nre.infer.model_io import load_estimator; d = sys.argv[1]; "
            "e = load_estimator(d + '/model'); np.save(d + '/s.npy', e.log_ratio(np.load(d + '/x.npy'), "
            "np.load(d + '/th.npy')))")
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, capture_output=True, timeout=300)
    np.testing.assert_array_equal(np.load(tmp_path / "s.npy"), s_raw)


def test_network_config_encoder_is_validated_and_defaults_to_stacked() -> None:
    assert NetworkConfig().encoder == "stacked"
    assert NetworkConfig.from_dict({k: v for k, v in NetworkConfig().to_dict().items() if k != "encoder"}) \
        == NetworkConfig()  # metadata written before the option loads as stacked
    from tdglnre.errors import ConfigError

    with pytest.raises(ConfigError, match="`encoder` must be one of stacked, per_snapshot"):
        NetworkConfig(encoder="lstm")
    model = build_model(NetworkConfig(filters=(4,), embed_dim=8, theta_units=(8,), head_units=(8,),
                                      encoder="per_snapshot"), 6, [0.0], [1.0], n_snapshots=3)
    assert model.get_layer("encoder").get_layer("time_pool").n_snapshots == 3
    with pytest.raises(ValueError, match="do not split"):
        build_model(NetworkConfig(encoder="per_snapshot"), 5, [0.0], [1.0], n_snapshots=3)


def test_train_cli_encoder_flag_reaches_the_network_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    import tdglnre.workflows.train as wtrain
    from tdglnre.cli.train import command

    data = tmp_path / "d.h5"
    data.write_bytes(b"")
    seen = {}

    def fake_train(data, out, **kw):  # noqa: ANN001, ANN003 - stands in for the real training
        seen.update(kw)
        raise wtrain.TDGLError("stop here")

    monkeypatch.setattr(wtrain, "train", fake_train)
    res = CliRunner().invoke(command, ["--data", str(data), "--out", str(tmp_path / "m"), "--encoder", "per_snapshot",
                                       "--filters", "4,8"])
    assert res.exit_code == 1 and "stop here" in res.output
    assert seen["network"] == NetworkConfig(filters=(4, 8), encoder="per_snapshot")
    res = CliRunner().invoke(command, ["--data", str(data), "--out", str(tmp_path / "m"), "--encoder", "lstm"])
    assert res.exit_code == 2 and "--encoder" in res.output
