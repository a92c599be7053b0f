"""The summary branch of the encoder (tdglnre/nre/net/summaries.py, docs/nre.md; issue 20)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

import keras  # noqa: E402

from tdglnre.analysis.baselines import image_summaries, summary_names_of  # noqa: E402
from tdglnre.errors import ConfigError  # noqa: E402
from tdglnre.nre.fit.training import train_source  # noqa: E402
from tdglnre.nre.infer.model_io import load_estimator  # noqa: E402
from tdglnre.nre.net.network import build_model, summary_layer  # noqa: E402
from tdglnre.nre.net.summaries import ImageSummaries  # noqa: E402
from tdglnre.nre.pipeline.data import ArraySource  # noqa: E402
from tdglnre.nre.settings import NetworkConfig, TrainSettings  # noqa: E402

SMALL = dict(filters=(4,), embed_dim=8, theta_units=(8,), head_units=(8,))


def _images(n: int, N: int, snapshots: int, rng: np.random.Generator) -> np.ndarray:
    """Positive densities spanning decades, with cores, and a signed curl J; (n, N, N, 3·snapshots)."""
    scale = 10.0 ** rng.uniform(-3, 0, size=(n, 1, 1, 1))
    rho = scale * rng.gamma(2.0, 1.0, size=(n, N, N, 2 * snapshots))
    cj = rng.standard_normal((n, N, N, snapshots))
    parts = [np.concatenate([rho[..., 2 * s:2 * s + 2], cj[..., s:s + 1]], axis=-1) for s in range(snapshots)]
    return np.concatenate(parts, axis=-1).astype(np.float32)


@pytest.mark.parametrize("channels", [("rho1", "rho2", "curlJ"), ("curlJ", "rho2")])
def test_the_branch_computes_the_abc_baselines_summaries_of_every_snapshot(channels) -> None:
    """The layer's summaries are tdglnre.analysis.baselines.image_summaries (the function ABC reads) of each
    snapshot, in float64, also for a channel subset in another order (a measurement that drops channels)."""
    rng = np.random.default_rng(0)
    N, S = 16, 2
    full = _images(5, N, S, rng)
    pick = [["rho1", "rho2", "curlJ"].index(c) for c in channels]
    x = np.concatenate([full[..., 3 * s:3 * s + 3][..., pick] for s in range(S)], axis=-1)
    layer = ImageSummaries(N, channels, S)
    got = np.asarray(layer.summaries(x))
    D = len(summary_names_of(channels))
    assert got.shape == (5, S * D) and layer.names == summary_names_of(channels)
    for s in range(S):
        want = image_summaries(x[..., s * len(channels):(s + 1) * len(channels)], channels, L=8.0)
        np.testing.assert_allclose(got[:, s * D:(s + 1) * D], want, rtol=1e-9, atol=1e-12)
    # features: logs of the decade-spanning ones; the default standardisation (0, 1) is the identity
    f = np.asarray(layer.features(x))
    for j, name in enumerate(layer.names):
        expect = np.log(got[:, j]) if name.startswith(("mean_", "std_")) else got[:, j]
        np.testing.assert_allclose(f[:, j], expect, rtol=1e-12, atol=1e-12)
    assert np.asarray(layer(x)).dtype == np.float32


def test_summaries_option_is_validated_and_off_by_default() -> None:
    assert NetworkConfig().summaries is False
    assert NetworkConfig.from_dict({k: v for k, v in NetworkConfig().to_dict().items() if k != "summaries"}) \
        == NetworkConfig()  # metadata written before the option loads without the branch
    with pytest.raises(ConfigError, match="only available with the stacked encoder"):
        NetworkConfig(summaries=True, encoder="per_snapshot")
    with pytest.raises(ConfigError, match="true or false"):
        NetworkConfig(summaries=1)
    with pytest.raises(ValueError, match="needs the image size and the channel names"):
        build_model(NetworkConfig(summaries=True, **SMALL), 3, [0.0], [1.0], size=8)
    with pytest.raises(ValueError, match="one of"):
        ImageSummaries(8, ["B"], 1)
    assert summary_layer(build_model(NetworkConfig(**SMALL), 3, [0.0], [1.0])) is None


def _density_toy(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """θ ~ U(−1, 1) sets the mean density 10^(2θ) of both bands (two decades each way), as η sets the
    quench's growth; rho has multiplicative noise, curl J is pure noise. (n, T=1, N, N, 3)."""
    rng = np.random.default_rng(seed)
    theta = rng.uniform(-1.0, 1.0, size=(n, 1))
    rho = 10.0 ** (2 * theta[:, :, None, None]) * rng.lognormal(0.0, 0.5, size=(n, 2, 8, 8))
    cj = rng.standard_normal((n, 1, 8, 8))
    x = np.concatenate([rho, cj], axis=1).transpose(0, 2, 3, 1)
    return theta, x[:, None].astype(np.float32)


def _train(tmp_path: Path, n: int, epochs: int) -> tuple[Path, NetworkConfig]:
    theta, x = _density_toy(n, 0)
    prior = {"theta0": {"kind": "uniform", "low": -1.0, "high": 1.0}}
    src = ArraySource(theta, x, ["theta0"], [-1.0], [1.0], channels=["rho1", "rho2", "curlJ"],
                      info={"config": {"toy": "density"}, "prior": prior, "N": 8, "L": 4.0})
    net = NetworkConfig(summaries=True, **SMALL)
    out = tmp_path / "model"
    keras.utils.set_random_seed(0)
    train_source(src, out, epochs=epochs, batch_size=64, network=net, quiet=True, contrastive=4, seed=0,
                 learning_rate=3e-3)
    return out, net


def test_the_option_and_the_fitted_statistics_travel_with_the_saved_model(tmp_path: Path) -> None:
    """metadata.json records summaries=True; the loaded model has the branch with statistics fitted on the
    training inputs (the mean of log ⟨ρ⟩ over the toy's prior is near 0, its spread 2·ln 10/√3) and gives
    the saved model's logits."""
    out, net = _train(tmp_path, 128, 1)
    meta = json.loads((out / "metadata.json").read_text())
    assert TrainSettings.from_dict(meta["training"]).network == net
    est = load_estimator(out)
    layer = summary_layer(est.model)
    assert layer.channels == ["rho1", "rho2", "curlJ"] and layer.n_snapshots == 1
    j = layer.names.index("mean_rho1")
    std = np.asarray(layer.feature_std)[j]
    assert abs(std - 2 * np.log(10) / np.sqrt(3)) < 0.4, std
    _, x_test = _density_toy(4, 1)
    th = np.zeros((4, 2, 1), dtype=np.float32)
    raw = keras.saving.load_model(out / "model.keras", compile=False)
    np.testing.assert_array_equal(est.log_ratio(x_test[:, 0], th),
                                  np.asarray(raw([x_test[:, 0], th])).astype(np.float64))


@pytest.mark.slow
def test_a_model_trained_with_summaries_reads_them(tmp_path: Path) -> None:
    """Statistical fact: with the branch the posterior mean recovers θ from the mean density; the posterior
    moves when the summaries of x move (x scaled by 10 → a density 10× higher → θ̂ up by ½)."""
    out, _ = _train(tmp_path, 512, 15)
    est = load_estimator(out)
    t_test, x_test = _density_toy(200, 1)
    grid = np.linspace(-1, 1, 201)

    def post_mean(xs: np.ndarray) -> np.ndarray:
        logr = est.log_ratio(xs, np.broadcast_to(grid[None, :, None], (len(xs), len(grid), 1)).astype(np.float32))
        p = np.exp(logr - logr.max(axis=1, keepdims=True))
        return (p / p.sum(axis=1, keepdims=True)) @ grid

    xs = x_test[:, 0]
    mean = post_mean(xs)
    assert np.mean(np.abs(mean - t_test[:, 0])) < 0.15
    inner = np.abs(t_test[:, 0]) < 0.4  # θ + ½ stays inside the prior
    xs10 = xs.copy()
    xs10[..., :2] *= 10.0
    shift = post_mean(xs10[inner]) - mean[inner]
    assert 0.3 < np.median(shift) < 0.7, np.median(shift)
