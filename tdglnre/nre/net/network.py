"""Two-tower Keras network of the neural ratio estimator.

Structure (paper §IV.B, Table III, with configurable widths)::

    x (B, N, N, C) ──standardize──► CNN blocks ──► [GAP ‖ GMP] ──► Dense ──► h_x (B, Dx)
    θ (B, K, P) ──scale to [−1, 1]──► MLP ──────────────────────────────► h_θ (B, K, Dθ)
    [h_x broadcast over K ‖ h_θ] ──► head MLP ──► logit s (B, K)

The three parts are nested functional models named ``encoder``, ``theta_net``
and ``head``. The top-level model takes ``[x, theta]`` with ``theta`` of shape
(B, K, P): every x is encoded **once** and scored against its K parameter
vectors in one pass through the head (column 0 is the true θ during
training, columns 1… are contrastive θ's of other samples of the batch).

The per-channel standardisation statistics (from the training split) and the
prior bounds used to scale θ are layer weights/config, so they travel inside
``model.keras``. All custom layers are registered with
:func:`keras.saving.register_keras_serializable`, so
``keras.saving.load_model`` needs no ``custom_objects``.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..settings import NetworkConfig
from ..tf_setup import ensure_tensorflow

ensure_tensorflow()

import keras  # noqa: E402
from keras import layers, ops  # noqa: E402

_PACKAGE = "tdglnre"

#: Hidden widths of the log-spectrum branch (``NetworkConfig.spectrum``).
SPECTRUM_UNITS = (128, 64)
#: Hidden widths of the summary branch (``NetworkConfig.summaries``).
SUMMARY_UNITS = (64, 64)


# --------------------------------------------------------------------- layers
@keras.saving.register_keras_serializable(package=_PACKAGE)
class ThetaScaler(layers.Layer):
    """Affine map of θ from the prior box [low, high] to [−1, 1] (per parameter).

    Parameters
    ----------
    low, high
        Prior bounds, one per inferred parameter (``high > low``).
    """

    def __init__(self, low: Sequence[float], high: Sequence[float], **kwargs: Any):
        super().__init__(**kwargs)
        self.low = [float(v) for v in low]
        self.high = [float(v) for v in high]
        if len(self.low) != len(self.high):
            raise ValueError("low and high need the same length")
        for lo, hi in zip(self.low, self.high):
            if not hi > lo:
                raise ValueError(f"prior bounds need high > low, got [{lo}, {hi}]")
        lo = np.asarray(self.low, dtype="float32")
        hi = np.asarray(self.high, dtype="float32")
        self._scale = 2.0 / (hi - lo)
        self._offset = -(hi + lo) / (hi - lo)

    def call(self, theta: Any) -> Any:
        theta = ops.cast(theta, "float32")
        return theta * ops.convert_to_tensor(self._scale) + ops.convert_to_tensor(self._offset)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(low=self.low, high=self.high)
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class LastChannels(layers.Layer):
    """x (B, H, W, C) → its last ``n`` channels (the last snapshot of a snapshot-major stack)."""

    def __init__(self, n: int, **kwargs: Any):
        super().__init__(**kwargs)
        self.n = int(n)

    def call(self, x: Any) -> Any:
        return x[..., -self.n:]

    def compute_output_shape(self, input_shape: Any) -> Any:
        return (*input_shape[:-1], self.n)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(n=self.n)
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class PairConcat(layers.Layer):
    """Concatenate h_x (B, Dx), broadcast over K, with h_θ (B, K, Dθ) → (B, K, Dx+Dθ)."""

    def call(self, inputs: Sequence[Any]) -> Any:
        h_x, h_t = inputs
        k = ops.shape(h_t)[1]
        h_x = ops.repeat(ops.expand_dims(h_x, 1), k, axis=1)
        return ops.concatenate([h_x, h_t], axis=-1)

    def compute_output_shape(self, input_shapes: Any) -> Any:
        (b, dx), (_, k, dt) = input_shapes
        return (b, k, None if dx is None or dt is None else dx + dt)


# --------------------------------------------------------------------- models
def build_encoder(
    config: NetworkConfig,
    n_channels: int,
    mean: np.ndarray | None = None,
    variance: np.ndarray | None = None,
    size: int | None = None,
    n_snapshots: int = 1,
    channels: Sequence[str] | None = None,
    n_params: int | None = None,
) -> keras.Model:
    """CNN encoder x (B, H, W, C) → h_x (B, embed_dim); H and W are free.

    With ``config.regression`` (which needs ``config.summaries``) it ends in [h_x ‖ θ̂(x)]
    (B, embed_dim + ``n_params``): :func:`tdglnre.nre.net.regression.with_regression`.

    ``mean``/``variance`` (per channel) become a fixed ``Normalization`` layer;
    default: identity (0, 1). With ``config.spectrum`` a log-spectrum branch
    (:mod:`tdglnre.nre.net.spectrum`, layer ``log_spectrum``) on the raw input is
    concatenated to the pooled CNN features; it needs the image ``size``.
    With ``config.cnn_snapshots == "last"`` the CNN sees only the last of the
    ``n_snapshots`` stacked snapshots (the spectrum branch sees all).
    With ``config.summaries`` a branch on the ABC summaries of every snapshot
    (:mod:`tdglnre.nre.net.summaries`, layer ``image_summaries``) joins them; it
    needs ``size`` and the per-snapshot ``channels`` names.
    """
    mean = np.zeros(n_channels) if mean is None else np.asarray(mean, dtype=float)
    variance = np.ones(n_channels) if variance is None else np.asarray(variance, dtype=float)
    if mean.shape != (n_channels,) or variance.shape != (n_channels,):
        raise ValueError(
            f"standardisation statistics need shape ({n_channels},), got mean {mean.shape} "
            f"and variance {variance.shape}"
        )
    x_in = keras.Input(shape=(None, None, n_channels), name="x")
    h = layers.Normalization(
        axis=-1, mean=mean.tolist(), variance=variance.tolist(), name="standardize"
    )(x_in)
    if config.cnn_snapshots == "last" and n_snapshots > 1:
        if n_channels % n_snapshots:
            raise ValueError(f"{n_channels} input channels do not split into {n_snapshots} snapshots")
        h = LastChannels(n_channels // n_snapshots, name="last_snapshot")(h)
    for b, f in enumerate(config.filters):
        for c in range(config.convs_per_block):
            h = layers.Conv2D(f, 3, padding="same", activation="relu", name=f"conv{b}_{c}")(h)
        h = layers.MaxPooling2D(2, padding="same", name=f"pool{b}")(h)
    pooled = [layers.GlobalAveragePooling2D(name="gap")(h), layers.GlobalMaxPooling2D(name="gmp")(h)]
    if config.spectrum:
        if size is None:
            raise ValueError("the log-spectrum branch needs the image size")
        from .spectrum import LogSpectrum

        hs = LogSpectrum(int(size), n_channels, name="log_spectrum")(x_in)
        for i, u in enumerate(SPECTRUM_UNITS):
            hs = layers.Dense(u, activation="relu", name=f"spectrum_dense{i}")(hs)
        pooled.append(hs)
    if config.summaries:
        if size is None or channels is None:
            raise ValueError("the summary branch needs the image size and the channel names")
        from .summaries import ImageSummaries

        summaries = ImageSummaries(int(size), channels, int(n_snapshots), name="image_summaries")(x_in)
        hq = summaries
        for i, u in enumerate(SUMMARY_UNITS):
            hq = layers.Dense(u, activation="relu", name=f"summary_dense{i}")(hq)
        pooled.append(hq)
    h = layers.Concatenate(name="gap_gmp")(pooled)
    h_x = layers.Dense(config.embed_dim, activation="relu", name="h_x")(h)
    if config.regression:
        from .regression import with_regression

        from ...analysis.baselines import summary_names_of

        h_x = with_regression(h_x, summaries, n_params, summary_names_of(channels), int(n_snapshots))
    return keras.Model(x_in, h_x, name="encoder")


def build_theta_net(config: NetworkConfig, low: Sequence[float], high: Sequence[float]) -> keras.Model:
    """θ MLP: θ (B, K, P) → h_θ (B, K, theta_units[-1]), θ scaled to [−1, 1] inside.

    With ``config.regression`` the scaled θ_s is appended: (B, K, theta_units[-1] + P).
    """
    t_in = keras.Input(shape=(None, len(low)), name="theta")
    scaled = ThetaScaler(low, high, name="theta_scale")(t_in)
    h = scaled
    for i, u in enumerate(config.theta_units):
        h = layers.Dense(u, activation="relu", name=f"theta_dense{i}")(h)
    if config.regression:
        h = layers.Concatenate(name="h_theta_scaled")([h, scaled])
    return keras.Model(t_in, h, name="theta_net")


def build_head(config: NetworkConfig, n_params: int | None = None, instrument_size: int = 0) -> keras.Model:
    """Head MLP: [h_x ‖ h_θ] (B, K, Dx+Dθ) → logit (B, K).

    ``instrument_size`` K_i > 0 (``config.instrument_input``): h_x is followed
    by the instrument vector, [h_x ‖ d ‖ h_θ] (B, K, Dx+K_i+Dθ).

    With ``config.regression`` (``n_params`` = P) the MLP also sees the offsets of :class:`RegressionOffsets`, and
    its Student-t term is added to the logit (:mod:`tdglnre.nre.net.regression`).
    """
    extra = int(n_params or 0) if config.regression else 0
    if config.regression and not extra:
        raise ValueError("the regression head needs the number of inferred parameters")
    dx = config.embed_dim + extra
    z_in = keras.Input(shape=(None, dx + int(instrument_size) + config.theta_units[-1] + extra), name="h_joint")
    h = z_in
    if config.regression:
        from .regression import RegressionOffsets

        offsets, tails = RegressionOffsets(extra, dx, name="offsets")(z_in)
        h = layers.Concatenate(name="head_input")([z_in, offsets])
    for i, u in enumerate(config.head_units):
        h = layers.Dense(u, activation="relu", name=f"head_dense{i}")(h)
    h = layers.Dense(1, name="logit")(h)
    if config.regression:
        h = layers.Add(name="logit_plus_tails")([h, tails])
    out = layers.Reshape((-1,), name="squeeze")(h)
    return keras.Model(z_in, out, name="head")


def build_model(
    config: NetworkConfig,
    n_channels: int,
    low: Sequence[float],
    high: Sequence[float],
    mean: np.ndarray | None = None,
    variance: np.ndarray | None = None,
    n_snapshots: int = 1,
    size: int | None = None,
    channels: Sequence[str] | None = None,
    instrument_size: int = 0,
) -> keras.Model:
    """The two-tower ratio estimator ``[x (B,N,N,C), θ (B,K,P)] → logits (B,K)``.

    With ``instrument_size`` K_i > 0 (``config.instrument_input``) the model takes
    ``[x, θ, d (B, K_i)]``: the instrument vector d of each x joins its embedding,
    [h_x ‖ d], which the head sees (docs/nre.md, "The instrument as an input").

    Parameters
    ----------
    config
        Network widths and depth.
    n_channels
        Input channels C (selected channels × selected snapshots).
    low, high
        Prior bounds of the inferred parameters (θ is scaled to [−1, 1]).
    mean, variance
        Per-channel standardisation statistics of the training split.
    n_snapshots
        Snapshots stacked in the C input channels (snapshot-major); used by
        ``config.encoder == "per_snapshot"``, which must split C into them.
    size
        Image size N; needed by ``config.spectrum`` (the log-spectrum branch) and ``config.summaries``.
    channels
        Channel names of one snapshot; needed by ``config.summaries`` (the summary branch).

    Returns
    -------
    keras.Model
        Named ``ratio_estimator`` with nested models ``encoder``,
        ``theta_net`` and ``head``.
    """
    if config.encoder == "per_snapshot":
        from .time_encoder import build_time_encoder

        encoder = build_time_encoder(config, n_channels, int(n_snapshots), mean, variance)
    else:
        encoder = build_encoder(config, n_channels, mean, variance, size=size, n_snapshots=int(n_snapshots),
                                channels=channels, n_params=len(low))
    theta_net = build_theta_net(config, low, high)
    k_i = int(instrument_size)
    if config.instrument_input and k_i < 1:
        raise ValueError("instrument_input needs the instrument vector's size (a measurement family)")
    head = build_head(config, len(low), k_i)
    x_in = keras.Input(shape=(None, None, n_channels), name="x")
    t_in = keras.Input(shape=(None, len(low)), name="theta")
    inputs = [x_in, t_in]
    h_x = encoder(x_in)
    if k_i:
        d_in = keras.Input(shape=(k_i,), name="instrument")
        inputs.append(d_in)
        h_x = layers.Concatenate(name="h_x_instrument")([h_x, d_in])
    z = PairConcat(name="pair")([h_x, theta_net(t_in)])
    if config.regression:
        from .regression import RegressionLoss

        z = RegressionLoss(len(low), config.embed_dim + len(low), name="regression_loss")(z)
    return keras.Model(inputs, head(z), name="ratio_estimator")


def spectrum_layer(model: keras.Model) -> Any:
    """The ``log_spectrum`` layer of a model's encoder, or None without one."""
    encoder = model.get_layer("encoder")
    try:
        return encoder.get_layer("log_spectrum")
    except ValueError:
        return None


def summary_layer(model: keras.Model) -> Any:
    """The ``image_summaries`` layer of a model's encoder, or None without one."""
    try:
        return model.get_layer("encoder").get_layer("image_summaries")
    except ValueError:
        return None


def standardization_of(model: keras.Model) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (mean, variance) stored in a model's ``standardize`` layer."""
    norm = model.get_layer("encoder").get_layer("standardize")
    mean = np.asarray(keras.ops.convert_to_numpy(norm.mean)).reshape(-1)
    var = np.asarray(keras.ops.convert_to_numpy(norm.variance)).reshape(-1)
    return mean, var


def fit_branch_statistics(model: Any, batches: Any) -> None:
    """Standardise the log-spectrum and summary branches a ratio estimator has (none: nothing happens).

    ``batches()`` yields training inputs (B, N, N, s·C) as the network sees them (after augmentation and
    measurement); each branch is fitted on its first 1024.
    """
    import logging

    from .spectrum import fit_spectrum_statistics
    from .summaries import fit_summary_statistics

    for layer, fit in ((spectrum_layer(model), fit_spectrum_statistics), (summary_layer(model), fit_summary_statistics)):
        if layer is not None:
            n = fit(layer, batches())
            logging.getLogger(__name__).info("%s features standardised on %d training inputs", layer.name, n)
