"""Log structure-factor features of the observation, a second branch of the encoder (docs/drag.md §4).

The drag ν leaves its fingerprint in the radially averaged structure factor
S(k, t) far below its peak (docs/drag.md §3): 10⁻⁶–10⁻⁷ of the peak in
amplitude, which a CNN on standardised linear pixel values does not resolve.
With ``NetworkConfig(spectrum=True)`` (``tdglnre train --spectrum``) the
encoder gets a second branch::

    x (B, N, N, C) ──float64──► |FFT(x_c)|² / N⁴ per channel
        ──shell means (m − ½ ≤ |m| < m + ½, m = 0..M)──► log(· + 1e-300) (B, C·(M+1))
        ──standardise (training-split mean, std)──► Dense ──► Dense ──► concatenated to [GAP ‖ GMP]

For m ≥ 1 the shell means are the package's S(k) (docs/physics.md,
"Observables"; :mod:`tdglnre.physics.fourier`, whose integer shell
assignment is reused, so they equal ``log radial_structure_factor`` up to the
1e-300 guard); the m = 0 entry is ⟨x_c⟩², the squared channel mean, which
carries the growth of the condensate (and so η, docs/physics.md).
The branch takes the **raw** input (before the per-channel standardisation,
which would only shift log S), computes in float64 — the information lives
up to 15 decades below the peak in power, under float32's rounding floor —
and is invariant under the lattice translations used as augmentation. The
feature statistics are non-trainable weights fitted once on training inputs
(:func:`fit_spectrum_statistics`), so they travel inside ``model.keras``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...physics.fourier import shell_index
from ..tf_setup import ensure_tensorflow

ensure_tensorflow()

import keras  # noqa: E402
from keras import layers  # noqa: E402

_PACKAGE = "tdglnre"

#: Guard added to S before the logarithm (a uniform channel has S = 0).
LOG_GUARD = 1e-300
#: Smallest standard deviation used to standardise a feature (a feature constant
#: over the training inputs, e.g. of a uniform channel, becomes 0).
MIN_STD = 1e-3


def shell_matrix(N: int) -> np.ndarray:
    """(N², M + 1) float64 matrix averaging per-mode values over the shells m = 0..M (m = 0: k = 0 alone)."""
    shell = shell_index(N).ravel()
    M = int(shell.max())
    counts = np.bincount(shell, minlength=M + 1).astype(np.float64)
    W = np.zeros((N * N, M + 1))
    W[np.arange(N * N), shell] = 1.0 / counts[shell]
    return W


class StandardisedFeatures(layers.Layer):
    """A layer of fixed features of its input, standardised by a non-trainable mean/std fitted on training
    inputs (:func:`fit_feature_statistics`). Subclasses set ``n_features`` and define ``features(x)`` (the
    unstandardised float64 features) and ``what`` (named in errors)."""

    what = "feature"
    n_features: int

    def _add_statistics(self) -> None:
        self.feature_mean = self.add_weight(shape=(self.n_features,), initializer="zeros",
                                            trainable=False, name="feature_mean")
        self.feature_std = self.add_weight(shape=(self.n_features,), initializer="ones",
                                           trainable=False, name="feature_std")

    def features(self, x: Any) -> Any:
        raise NotImplementedError

    def call(self, x: Any) -> Any:
        import tensorflow as tf

        f = self.features(x)
        mean = tf.cast(self.feature_mean.value, tf.float64)
        std = tf.cast(self.feature_std.value, tf.float64)
        return tf.cast((f - mean) / std, tf.float32)

    def set_statistics(self, mean: np.ndarray, std: np.ndarray) -> None:
        """Set the feature standardisation (std floored at :data:`MIN_STD`)."""
        mean = np.asarray(mean, dtype=np.float64).reshape(-1)
        std = np.maximum(np.asarray(std, dtype=np.float64).reshape(-1), MIN_STD)
        if mean.shape != (self.n_features,) or std.shape != (self.n_features,):
            raise ValueError(f"need {self.n_features} feature statistics, got {mean.shape}, {std.shape}")
        if not (np.isfinite(mean).all() and np.isfinite(std).all()):
            raise ValueError(f"{self.what} statistics are not finite")
        self.feature_mean.assign(mean.astype(np.float32))
        self.feature_std.assign(std.astype(np.float32))

    def compute_output_shape(self, input_shape: Any) -> Any:
        return (input_shape[0], self.n_features)


def fit_feature_statistics(layer: StandardisedFeatures, batches: Any, max_samples: int = 1024) -> int:
    """Fit ``layer``'s feature mean/std on training inputs; returns the number of samples used.

    ``batches`` yields input arrays as the network sees them (after augmentation and measurement).
    """
    chunks, n = [], 0
    for xb in batches:
        take = np.asarray(xb)[: max_samples - n]
        chunks.append(np.asarray(layer.features(take)))
        n += len(take)
        if n >= max_samples:
            break
    if n < 2:
        raise ValueError(f"need at least 2 training inputs to standardise the {layer.what} features")
    f = np.concatenate(chunks)
    layer.set_statistics(f.mean(axis=0), f.std(axis=0))
    return n


@keras.saving.register_keras_serializable(package=_PACKAGE)
class LogSpectrum(StandardisedFeatures):
    """x (B, N, N, C) → standardised log power per channel and shell m = 0..M, (B, C·(M+1)) float32.

    Parameters
    ----------
    size
        Lattice (image) size N the layer is built for; other sizes are refused.
    n_channels
        Input channels C.
    """

    def __init__(self, size: int, n_channels: int, **kwargs: Any):
        super().__init__(**kwargs)
        self.size = int(size)
        self.n_channels = int(n_channels)
        if self.size < 2 or self.n_channels < 1:
            raise ValueError(f"LogSpectrum needs size >= 2 and n_channels >= 1, got {size}, {n_channels}")
        self._W = shell_matrix(self.size)
        self.n_shells = int(self._W.shape[1])
        self.n_features = self.n_channels * self.n_shells
        self._add_statistics()

    def log_spectrum(self, x: Any) -> Any:
        """Unstandardised log(shell-mean power + 1e-300), (B, C·(M+1)) float64, channel-major; entry m = 0
        of each channel is log ⟨x_c⟩², entries m ≥ 1 are log S(k_m)."""
        import tensorflow as tf

        N = self.size
        x = tf.convert_to_tensor(x)
        tf.debugging.assert_equal(tf.shape(x)[1:], tf.constant([N, N, self.n_channels]),
                                  message=f"LogSpectrum was built for {N}x{N}x{self.n_channels} inputs")
        x = tf.cast(x, tf.float64)
        x = tf.transpose(x, (0, 3, 1, 2))  # (B, C, N, N); the mean is kept: it is shell m = 0
        F = tf.signal.fft2d(tf.cast(x, tf.complex128))
        P = (tf.math.real(F) ** 2 + tf.math.imag(F) ** 2) / float(N) ** 4
        P = tf.reshape(P, (-1, self.n_channels, N * N))
        S = tf.einsum("bcq,qm->bcm", P, tf.constant(self._W))
        return tf.reshape(tf.math.log(S + LOG_GUARD), (-1, self.n_features))

    what = "log-spectrum"

    def features(self, x: Any) -> Any:
        """:meth:`log_spectrum`."""
        return self.log_spectrum(x)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(size=self.size, n_channels=self.n_channels)
        return config


def fit_spectrum_statistics(layer: LogSpectrum, batches: Any, max_samples: int = 1024) -> int:
    """Fit ``layer``'s feature mean/std on training inputs (B, N, N, C) (:func:`fit_feature_statistics`)."""
    return fit_feature_statistics(layer, batches, max_samples)
