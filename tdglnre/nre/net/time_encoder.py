"""Shared per-snapshot encoder with pooling over time, for time-series inputs (docs/drag.md §4).

Structure::

    x (B, H, W, T·C) ──standardize──► split into T snapshots (B·T, H, W, C)
        ──shared CNN (the encoder's blocks) ──► [GAP ‖ GMP] ──► Dense ──► (B, T, D)
        ──+ learned time embedding e_t──► [mean_t ‖ max_t] ──► Dense ──► h_x (B, embed_dim)

The input is the stacked-snapshot layout of ``tdglnre train --snapshots``
(snapshot-major channels: t0c0, t0c1, …, t1c0, …), so the encoder is a drop-in
replacement for :func:`tdglnre.nre.net.network.build_encoder`: same input, same
output, a ``standardize`` layer with the per-channel statistics. The CNN's
weights are shared by all snapshots (its size does not grow with T); the time
embedding tells the pooled representation which snapshot a feature came from.

Selected by ``NetworkConfig(encoder="per_snapshot")`` (``tdglnre train
--encoder per_snapshot``): :func:`tdglnre.nre.net.network.build_model` then builds
this encoder; :func:`tdglnre.nre.infer.model_io.load_estimator` imports this module
so its layers are registered before a model is loaded.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..settings import NetworkConfig
from ..tf_setup import ensure_tensorflow

ensure_tensorflow()

import keras  # noqa: E402
from keras import layers, ops  # noqa: E402

_PACKAGE = "tdglnre"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SplitSnapshots(layers.Layer):
    """(B, H, W, T·C) snapshot-major channels → (B·T, H, W, C)."""

    def __init__(self, n_snapshots: int, **kwargs: Any):
        super().__init__(**kwargs)
        self.n_snapshots = int(n_snapshots)

    def call(self, x: Any) -> Any:
        s = ops.shape(x)
        T = self.n_snapshots
        C = s[3] // T
        x = ops.reshape(x, (s[0], s[1], s[2], T, C))
        x = ops.transpose(x, (0, 3, 1, 2, 4))
        return ops.reshape(x, (s[0] * T, s[1], s[2], C))

    def compute_output_shape(self, input_shape: Any) -> Any:
        b, h, w, tc = input_shape
        return (None, h, w, None if tc is None else tc // self.n_snapshots)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(n_snapshots=self.n_snapshots)
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class TimePool(layers.Layer):
    """(B·T, D) per-snapshot features + a learned embedding per snapshot → [mean_t ‖ max_t] (B, 2D)."""

    def __init__(self, n_snapshots: int, **kwargs: Any):
        super().__init__(**kwargs)
        self.n_snapshots = int(n_snapshots)

    def build(self, input_shape: Any) -> None:
        self.time_embedding = self.add_weight(shape=(self.n_snapshots, int(input_shape[-1])), initializer="zeros",
                                              name="time_embedding")

    def call(self, h: Any) -> Any:
        d = ops.shape(h)[-1]
        h = ops.reshape(h, (-1, self.n_snapshots, d)) + self.time_embedding
        return ops.concatenate([ops.mean(h, axis=1), ops.max(h, axis=1)], axis=-1)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return (None, 2 * int(input_shape[-1]))

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(n_snapshots=self.n_snapshots)
        return config


def build_time_encoder(config: NetworkConfig, n_channels: int, n_snapshots: int, mean: np.ndarray | None = None,
                       variance: np.ndarray | None = None) -> keras.Model:
    """Shared per-snapshot CNN with pooling over time: x (B, H, W, T·C) → h_x (B, embed_dim).

    Parameters
    ----------
    config
        Filters, convolutions per block and the embedding size (as the stacked encoder).
    n_channels
        Input channels T·C (snapshot-major).
    n_snapshots
        T; must divide ``n_channels``.
    mean, variance
        Per input channel (T·C,) standardisation statistics of the training split.
    """
    if n_snapshots < 1 or n_channels % n_snapshots:
        raise ValueError(f"{n_channels} input channels do not split into `n_snapshots` = {n_snapshots} snapshots")
    C = n_channels // n_snapshots
    mean = np.zeros(n_channels) if mean is None else np.asarray(mean, dtype=float)
    variance = np.ones(n_channels) if variance is None else np.asarray(variance, dtype=float)
    if mean.shape != (n_channels,) or variance.shape != (n_channels,):
        raise ValueError(f"standardisation statistics need shape ({n_channels},), got mean {mean.shape} "
                         f"and variance {variance.shape}")
    s_in = keras.Input(shape=(None, None, C), name="snapshot")
    h = s_in
    for b, f in enumerate(config.filters):
        for c in range(config.convs_per_block):
            h = layers.Conv2D(f, 3, padding="same", activation="relu", name=f"conv{b}_{c}")(h)
        h = layers.MaxPooling2D(2, padding="same", name=f"pool{b}")(h)
    h = layers.Concatenate(name="gap_gmp")([layers.GlobalAveragePooling2D(name="gap")(h),
                                            layers.GlobalMaxPooling2D(name="gmp")(h)])
    h = layers.Dense(config.embed_dim, activation="relu", name="h_snapshot")(h)
    snapshot_encoder = keras.Model(s_in, h, name="snapshot_encoder")

    x_in = keras.Input(shape=(None, None, n_channels), name="x")
    z = layers.Normalization(axis=-1, mean=mean.tolist(), variance=variance.tolist(), name="standardize")(x_in)
    z = SplitSnapshots(n_snapshots, name="split_snapshots")(z)
    z = snapshot_encoder(z)
    z = TimePool(n_snapshots, name="time_pool")(z)
    h_x = layers.Dense(config.embed_dim, activation="relu", name="h_x")(z)
    return keras.Model(x_in, h_x, name="encoder")
