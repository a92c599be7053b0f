"""The log-spectrum branch of the encoder (tdglnre/nre/net/spectrum.py, docs/drag.md §4)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

import keras  # noqa: E402

from tdglnre.errors import ConfigError  # noqa: E402
from tdglnre.nre.pipeline.data import ArraySource  # noqa: E402
from tdglnre.nre.infer.model_io import load_estimator  # noqa: E402
from tdglnre.nre.net.network import build_model, spectrum_layer  # noqa: E402
from tdglnre.nre.settings import NetworkConfig, TrainSettings  # noqa: E402
from tdglnre.nre.net.spectrum import LogSpectrum, shell_matrix  # noqa: E402
from tdglnre.nre.fit.training import train_source  # noqa: E402
from tdglnre.physics.fourier import radial_structure_factor  # noqa: E402

SMALL = dict(filters=(4,), embed_dim=8, theta_units=(8,), head_units=(8,))


def test_features_equal_the_packages_radial_structure_factor_in_float64() -> None:
    """log S(k) per channel and shell, computed in TF, equals physics.fourier's S(k) computed in NumPy,
    also 12 decades below the peak (the range where the drag signal lives, docs/drag.md §3)."""
    rng = np.random.default_rng(0)
    N, C = 16, 3
    x = rng.standard_normal((4, N, N, C))
    # a steep spectrum: smooth large-scale mode plus a component 1e-6 smaller in amplitude
    yy, xx = np.meshgrid(np.arange(N), np.arange(N), indexing="ij")
    x[..., 0] = np.cos(2 * np.pi * xx / N)[None] + 1e-6 * x[..., 0]
    x[..., 1] += 3.0  # a channel mean (shell m = 0 is <x>^2)
    x = x.astype(np.float32)
    layer = LogSpectrum(N, C)
    got = np.asarray(layer.log_spectrum(x)).reshape(4, C, -1)
    for c in range(C):
        xc = x[..., c].astype(np.float64)
        _, S, counts = radial_structure_factor(xc, 1.0)
        np.testing.assert_allclose(got[:, c, 1:], np.log(S), rtol=0, atol=1e-8)
        np.testing.assert_allclose(got[:, c, 0], np.log(xc.mean(axis=(1, 2)) ** 2), rtol=0, atol=1e-8)
    assert got.shape[-1] == layer.n_shells == shell_matrix(N).shape[1] == len(counts) + 1
    assert np.ptp(got[:, 0, 1:]) > np.log(1e11)  # the tail is kept, not flushed by float32 rounding
    # standardisation with the default statistics (0, 1) is the identity, output float32
    out = np.asarray(layer(x))
    assert out.dtype == np.float32 and out.shape == (4, C * layer.n_shells)


def test_features_are_invariant_under_lattice_translations_and_refuse_other_sizes() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 12, 12, 2)).astype(np.float32)
    layer = LogSpectrum(12, 2)
    np.testing.assert_allclose(np.asarray(layer.log_spectrum(np.roll(x, (3, -5), axis=(1, 2)))),
                               np.asarray(layer.log_spectrum(x)), rtol=0, atol=1e-9)
    with pytest.raises(Exception, match="built for 12x12x2"):
        layer.log_spectrum(rng.standard_normal((2, 16, 16, 2)).astype(np.float32))


def test_spectrum_option_is_validated() -> None:
    assert NetworkConfig().spectrum is False
    assert NetworkConfig.from_dict({k: v for k, v in NetworkConfig().to_dict().items() if k != "spectrum"}) \
        == NetworkConfig()  # metadata written before the option loads without the branch
    with pytest.raises(ConfigError, match="only available with the stacked encoder"):
        NetworkConfig(spectrum=True, encoder="per_snapshot")
    with pytest.raises(ConfigError, match="true or false"):
        NetworkConfig(spectrum="yes")
    with pytest.raises(ValueError, match="needs the image size"):
        build_model(NetworkConfig(spectrum=True, **SMALL), 1, [0.0], [1.0])
    model = build_model(NetworkConfig(spectrum=True, **SMALL), 2, [0.0], [1.0], size=8)
    assert spectrum_layer(model).n_features == 2 * shell_matrix(8).shape[1]
    assert spectrum_layer(build_model(NetworkConfig(**SMALL), 2, [0.0], [1.0])) is None


def _tail_toy(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """θ ~ U(−1, 1) sets the amplitude 10^(θ−4) of white noise under a unit plane wave of random phase:
    the parameter lives 3–5 decades below the peak of the spectrum."""
    rng = np.random.default_rng(seed)
    N = 8
    theta = rng.uniform(-1.0, 1.0, size=(n, 1))
    xx = np.arange(N)[None, None, :]
    phase = rng.uniform(0, 2 * np.pi, size=(n, 1, 1))
    wave = np.cos(2 * np.pi * xx / N + phase) * np.ones((1, N, 1))
    x = wave + 10.0 ** (theta[:, :, None] - 4.0) * rng.standard_normal((n, N, N))
    return theta, x[:, None, :, :, None].astype(np.float32)  # (n, T=1, N, N, C=1)


def test_spectrum_branch_recovers_a_parameter_that_lives_in_the_spectral_tail(tmp_path: Path) -> None:
    """Statistical fact: with the branch, the posterior mean of θ recovers a parameter that only sets the
    spectral tail (MAE well under the prior's 0.5); the statistics are fitted on training inputs; the model
    saves and loads with identical logits."""
    theta, x = _tail_toy(768, 0)
    prior = {"theta0": {"kind": "uniform", "low": -1.0, "high": 1.0}}
    src = ArraySource(theta, x, ["theta0"], [-1.0], [1.0], info={"config": {"toy": "tail"}, "prior": prior,
                                                                  "N": 8, "L": None})
    net = NetworkConfig(spectrum=True, **SMALL)
    out = tmp_path / "model"
    keras.utils.set_random_seed(0)
    train_source(src, out, epochs=25, batch_size=64, network=net, quiet=True, contrastive=4, seed=0,
                 learning_rate=3e-3, augment=False)
    meta = json.loads((out / "metadata.json").read_text())
    assert TrainSettings.from_dict(meta["training"]).network == net
    est = load_estimator(out)
    layer = spectrum_layer(est.model)
    fitted = np.asarray(layer.feature_std)
    assert np.all(fitted > 0) and not np.allclose(fitted, 1.0)  # fitted, not the defaults

    t_test, x_test = _tail_toy(200, 1)
    grid = np.linspace(-1, 1, 201)
    xs = x_test[:, 0]
    logr = est.log_ratio(xs, np.broadcast_to(grid[None, :, None], (len(xs), len(grid), 1)).astype(np.float32))
    p = np.exp(logr - logr.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    mean = p @ grid
    mae = np.mean(np.abs(mean - t_test[:, 0]))
    assert mae < 0.15, mae

    raw = keras.saving.load_model(out / "model.keras", compile=False)
    th = np.zeros((3, 2, 1), dtype=np.float32)
    np.testing.assert_array_equal(est.log_ratio(xs[:3], th), np.asarray(raw([xs[:3], th])).astype(np.float64))


def test_cnn_snapshots_last_hides_the_earlier_snapshots_from_the_cnn_only() -> None:
    """cnn_snapshots="last": without the spectrum branch the encoder ignores the earlier snapshots; with it,
    they reach h_x through the log-spectrum branch only."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 8, 8, 6)).astype(np.float32)  # 3 snapshots x 2 channels, snapshot-major
    y = x.copy()
    y[..., :4] = rng.standard_normal((2, 8, 8, 4))  # change snapshots 0 and 1 only
    last = build_model(NetworkConfig(cnn_snapshots="last", **SMALL), 6, [0.0], [1.0], n_snapshots=3)
    enc = last.get_layer("encoder")
    np.testing.assert_array_equal(np.asarray(enc(x)), np.asarray(enc(y)))
    full = build_model(NetworkConfig(**SMALL), 6, [0.0], [1.0], n_snapshots=3).get_layer("encoder")
    assert not np.allclose(np.asarray(full(x)), np.asarray(full(y)))
    spec = build_model(NetworkConfig(cnn_snapshots="last", spectrum=True, **SMALL), 6, [0.0], [1.0], size=8,
                       n_snapshots=3).get_layer("encoder")
    assert not np.allclose(np.asarray(spec(x)), np.asarray(spec(y)))
    with pytest.raises(ConfigError, match="cnn_snapshots"):
        NetworkConfig(cnn_snapshots="first")
    with pytest.raises(ValueError, match="do not split"):
        build_model(NetworkConfig(cnn_snapshots="last", **SMALL), 5, [0.0], [1.0], n_snapshots=3)
