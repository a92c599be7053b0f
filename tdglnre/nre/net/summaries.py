"""The ABC baseline's physical summaries of every snapshot, a third branch of the encoder (issue 20).

With ``NetworkConfig(summaries=True)`` (``tdglnre train --summaries``) the
stacked encoder gets, beside the CNN (and the log-spectrum branch), the
summaries that the rejection-ABC baseline reads
(:mod:`tdglnre.analysis.baselines`, :data:`~tdglnre.analysis.baselines.SUMMARY_NAMES`)
— of **every** selected snapshot, where ABC reads the last one only::

    x (B, N, N, s·C) ──float64, per snapshot──► [⟨ρ_b⟩, std ρ_b, core fraction_b, ⟨|curl J|⟩, log S_b(k_1..3)]
        ──log of ⟨ρ⟩, std ρ, ⟨|curl J|⟩ (they span decades across the prior)──► (B, s·D)
        ──standardise (training-split mean, std)──► Dense ──► Dense ──► concatenated to [GAP ‖ GMP]

The layer computes them inside the model from the raw input, so training,
``tdglnre posterior`` and the calibration see the same function of the very
images the network is given (measured ones included); :meth:`ImageSummaries.summaries`
equals :func:`tdglnre.analysis.baselines.image_summaries` per snapshot
(tests/test_summary_branch.py). The statistics are non-trainable weights
fitted once on training inputs (:func:`fit_summary_statistics`) and travel in
``model.keras``.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ...analysis.baselines import SUMMARY_CHANNELS, summary_names_of
from ..tf_setup import ensure_tensorflow
from .spectrum import StandardisedFeatures, fit_feature_statistics, shell_matrix

ensure_tensorflow()

import keras  # noqa: E402

_PACKAGE = "tdglnre"

#: Summaries that enter the network as logarithms (they span decades across the prior).
LOG_SUMMARIES = ("mean_rho1", "mean_rho2", "std_rho1", "std_rho2", "mean_abs_curlJ")
#: Guard of those logarithms (a uniform or empty channel gives 0).
LOG_GUARD = 1e-30


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ImageSummaries(StandardisedFeatures):
    """x (B, N, N, s·C) → standardised ABC summaries of each of the s snapshots, (B, s·D) float32.

    Parameters
    ----------
    size
        Image size N (the structure factor's shells need it).
    channels
        Channel names of one snapshot, in input order (snapshot-major stacking);
        the summaries of those of rho1, rho2, curlJ present are computed.
    n_snapshots
        Snapshots stacked in the input channels.
    """

    what = "summary"

    def __init__(self, size: int, channels: Sequence[str], n_snapshots: int = 1, **kwargs: Any):
        super().__init__(**kwargs)
        self.size, self.channels, self.n_snapshots = int(size), [str(c) for c in channels], int(n_snapshots)
        self.names = summary_names_of(self.channels)
        if self.size < 4 or self.n_snapshots < 1 or not self.names:
            raise ValueError(f"the summary branch needs N >= 4, >= 1 snapshot and one of {list(SUMMARY_CHANNELS)} "
                             f"among the channels, got N={size}, {n_snapshots} snapshot(s), channels {self.channels}")
        self._W = shell_matrix(self.size)[:, 1:4]
        self.n_features = len(self.names) * self.n_snapshots
        self._log = np.array([n in LOG_SUMMARIES for n in self.names] * self.n_snapshots)
        self._add_statistics()

    def _one(self, r: Any, kind: str) -> list[Any]:
        """Summaries of one channel (B, N, N) float64, in SUMMARY_NAMES order for its kind."""
        import tensorflow as tf

        m = tf.reduce_mean(r, axis=(1, 2))
        if kind == "curlJ":
            return [tf.reduce_mean(tf.abs(r), axis=(1, 2))]
        d = r - m[:, None, None]
        std = tf.sqrt(tf.reduce_mean(d * d, axis=(1, 2)))
        core = tf.reduce_mean(tf.cast(r < 0.5 * m[:, None, None], tf.float64), axis=(1, 2))
        F = tf.signal.fft2d(tf.cast(d, tf.complex128))
        P = tf.reshape((tf.math.real(F) ** 2 + tf.math.imag(F) ** 2) / float(self.size) ** 4, (-1, self.size ** 2))
        logS = tf.math.log(P @ tf.constant(self._W) + 1e-12)
        return [m, std, core, logS]

    def summaries(self, x: Any) -> Any:
        """The ABC summaries (B, s·D) float64, snapshot-major, each snapshot's in ``names`` order (no logs)."""
        import tensorflow as tf

        x = tf.cast(tf.convert_to_tensor(x), tf.float64)
        c = len(self.channels)
        out = []
        for s in range(self.n_snapshots):
            got = {k: self._one(x[..., s * c + self.channels.index(k)], k)
                   for k in SUMMARY_CHANNELS if k in self.channels}
            by_name: dict[str, Any] = {}
            for b in ("1", "2"):
                if f"rho{b}" in got:
                    m, std, core, logS = got[f"rho{b}"]
                    by_name.update({f"mean_rho{b}": m, f"std_rho{b}": std, f"core_frac{b}": core,
                                    **{f"logS{b}_k{k}": logS[:, k - 1] for k in (1, 2, 3)}})
            if "curlJ" in got:
                by_name["mean_abs_curlJ"] = got["curlJ"][0]
            out.extend(by_name[n] for n in self.names)
        return tf.stack(out, axis=1)

    def features(self, x: Any) -> Any:
        """Unstandardised features (B, s·D) float64: the summaries, logs of those in :data:`LOG_SUMMARIES`."""
        import tensorflow as tf

        s = self.summaries(x)
        return tf.where(tf.constant(self._log)[None, :], tf.math.log(tf.abs(s) + LOG_GUARD), s)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(size=self.size, channels=list(self.channels), n_snapshots=self.n_snapshots)
        return config


def fit_summary_statistics(layer: ImageSummaries, batches: Any, max_samples: int = 1024) -> int:
    """Fit ``layer``'s feature mean/std on training inputs (B, N, N, s·C) (:func:`.spectrum.fit_feature_statistics`)."""
    return fit_feature_statistics(layer, batches, max_samples)

