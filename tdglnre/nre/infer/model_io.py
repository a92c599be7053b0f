"""Trained-model directories: metadata, loading, compatibility checks, inference.

A model directory written by :func:`tdglnre.nre.fit.training.train` holds
``model.keras`` and ``metadata.json``. :func:`load_estimator` returns a
:class:`RatioEstimator`, the object the posterior code works with::

    est = load_estimator("model_dir")
    x = est.preprocess(x_raw)                 # (T, N, N, C) ensemble sample → (1, N, N, C')
    h = est.encode(x)                         # (n_x, D) embeddings, once per observation
    s = est.log_ratio_from_embedding(h, grid) # (n_x, G) log r(θ_g, x) on a θ grid (G, P)

``metadata.json`` (``format = "tdglnre-nre-model"``, ``format_version = 1``):

- ``parameter_names``, ``prior`` (the ensemble prior's ``to_dict()``),
  ``bounds`` {name: {kind, low, high}} (the box θ is scaled by)
- ``input``: ``channels``, ``channel_indices``, ``snapshot_indices``,
  ``snapshot_times`` (selection), ``dataset_channels``,
  ``dataset_snapshot_times``, ``shape`` [N, N, C'], ``standardization``
  {mean, variance}
- ``N``, ``L``; ``dataset``: ``path``, ``config``, ``fingerprint`` (sha256 of
  config + prior + seed JSON), ``seed``, ``n_complete``, ``n_train``, ``n_val``
- ``training``: all :class:`~.training.TrainSettings`; ``result``:
  ``best_val_loss`` (null without a validation split), ``best_loss`` (of
  ``monitor``), ``best_epoch``, ``epochs_run``, ``stopped_early``, ``monitor``
- ``versions`` (tdglnre, tensorflow, keras, numpy, h5py, python), ``created``
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ...errors import TDGLError
from .artifacts import package_versions
from ..pipeline.data import Selection

log = logging.getLogger(__name__)

FORMAT = "tdglnre-nre-model"
FORMAT_VERSION = 1


class ModelMismatchError(TDGLError, ValueError):
    """A model and a dataset/observation do not fit; the message lists every difference."""


class ModelLoadError(TDGLError, ValueError):
    """A model directory is missing files or has unreadable metadata."""


def build_metadata(*, source: Any, selection: Any, settings: Any, scan: Any,
                   fingerprint: str, n_train: int, n_val: int,
                   state: dict[str, Any], input_shape: Sequence[int] | None = None,
                   measurement: Any = None) -> dict[str, Any]:
    """The ``metadata.json`` dictionary of a finished training run.

    ``input_shape`` is the network input (M, M, C′) after ``measurement`` (a
    :class:`tdglnre.instrument.model.MeasurementModel` or None); the metadata
    records the measurement as ``measurement`` {``text``: ``str(model)``,
    ``model``: ``model.to_dict()``}, or null for a perfect measurement.
    """
    info = dict(source.info)
    _, h, w, _ = source.sample_shape
    shape = [int(h), int(w), int(selection.n_channels)] if input_shape is None else [int(v) for v in input_shape]
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "parameter_names": list(source.parameter_names),
        "prior": info.get("prior"),
        "bounds": source.bounds.to_dict(),
        "input": {
            **selection.to_dict(),
            "dataset_channels": list(source.channels),
            "dataset_snapshot_times": list(source.snapshot_times),
            "shape": shape,
            "standardization": {"mean": [float(v) for v in scan.mean],
                                "variance": [float(v) for v in scan.variance]},
        },
        "N": int(info.get("N", h)),
        "L": info.get("L"),
        "dataset": {
            "path": None if getattr(source, "path", None) is None else os.path.abspath(source.path),
            "config": info.get("config"),
            "fingerprint": fingerprint,
            "seed": info.get("seed"),
            "n_complete": int(source.n),
            "n_train": int(n_train),
            "n_val": int(n_val),
        },
        "training": settings.to_dict(),
        "nuisance": list(info.get("nuisance", [])),
        "measurement": None if measurement is None or measurement.is_identity else
        {"text": str(measurement), "model": measurement.to_dict()},
        "result": {
            "best_val_loss": state["best"] if n_val and np.isfinite(state["best"]) else None,
            "best_loss": state["best"] if np.isfinite(state["best"]) else None,
            "best_epoch": int(state["best_epoch"]),
            "epochs_run": int(state["epoch"]) + 1,
            "stopped_early": bool(state["stopped_early"]),
            "monitor": "val_loss" if n_val else "loss",
        },
        "versions": package_versions(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def read_metadata(model_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check ``metadata.json`` of a model directory."""
    path = Path(model_dir) / "metadata.json"
    if not path.exists():
        raise ModelLoadError(f"{model_dir}: no metadata.json (not a tdglnre model directory)")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelLoadError(f"{path}: invalid JSON ({exc})") from None
    if meta.get("format") != FORMAT:
        raise ModelLoadError(f"{path}: format is {meta.get('format')!r}, expected {FORMAT!r}")
    if int(meta.get("format_version", -1)) > FORMAT_VERSION:
        raise ModelLoadError(
            f"{path}: format_version {meta.get('format_version')} is newer than this "
            f"tdglnre reads ({FORMAT_VERSION}); upgrade tdglnre"
        )
    return meta


class _BoxPrior:
    """Uniform box prior from the model's bounds (for models trained without a Prior, e.g. on in-memory arrays)."""

    def __init__(self, bounds: dict[str, Any]):
        self.names = list(bounds)
        self.inferred = list(bounds)
        self._b = bounds

    def kind(self, name: str) -> str:
        return self._b[name]["kind"]

    def low(self, name: str) -> float:
        return float(self._b[name]["low"])

    def high(self, name: str) -> float:
        return float(self._b[name]["high"])

    def to_dict(self) -> dict[str, Any]:
        return dict(self._b)

    def log_prob(self, theta: np.ndarray) -> np.ndarray:
        """Uniform log density on the box (−inf outside), rows of ``theta`` (S, P)."""
        th = np.atleast_2d(np.asarray(theta, dtype=np.float64))
        lp = np.zeros(len(th))
        for c, n in enumerate(self.inferred):
            lo, hi = self.low(n), self.high(n)
            lp += np.where((th[:, c] >= lo) & (th[:, c] <= hi), -np.log(hi - lo), -np.inf)
        return lp


#: (x, θ) pairs per call of the head in :meth:`RatioEstimator.log_ratio_from_embedding`: 2^14 rows of
#: 64 float32 features are 4 MB per layer, which stay in cache (scripts/bench_grid_posterior.py).
GRID_ROWS = 1 << 14


def _split_head_functions(tf: Any, theta_net: Any, head: Any, dx: int, n_par: int) -> tuple[Any, Any] | None:
    """(θ part, x part) of a head whose first layer is split (:meth:`RatioEstimator.log_ratio_from_embedding`).

    The θ function maps a grid chunk (G, P) to the first layer's θ
    pre-activation W_θ·h_θ + b (1, G, U); the x function takes embeddings
    (n, Dx) and that, adds W_x·h_x, applies the layer's activation and the
    rest of the head: logits (n, G). None when the head does not start with a
    Dense layer on Dx + Dθ inputs.
    """
    import keras

    layers = [layer for layer in head.layers if not isinstance(layer, keras.layers.InputLayer)]
    first = layers[0] if layers else None
    if not isinstance(first, keras.layers.Dense) or not first.use_bias or first.kernel.shape[0] <= dx:
        return None
    rest = layers[1:]
    w_x, w_t = first.kernel[:dx], first.kernel[dx:]

    @tf.function(input_signature=[tf.TensorSpec([None, n_par], tf.float32)])
    def theta_part(theta: Any) -> Any:
        h_t = theta_net(theta[None], training=False)[0]  # (G, Dθ)
        return (tf.matmul(h_t, w_t) + first.bias)[None]

    @tf.function(input_signature=[tf.TensorSpec([None, dx], tf.float32), tf.TensorSpec([1, None, None], tf.float32)])
    def x_part(h_x: Any, a_t: Any) -> Any:
        z = first.activation(tf.matmul(h_x, w_x)[:, None, :] + a_t)  # (n, G, U)
        for layer in rest:
            z = layer(z, training=False)
        return z

    return theta_part, x_part


def temperature_record_of(model: Any) -> dict[str, Any]:
    """:meth:`RatioEstimator.temperature_record` of any loaded model (``{"temperature": 1.0}`` for one without)."""
    record = getattr(model, "temperature_record", None)
    return record() if callable(record) else {"temperature": float(getattr(model, "temperature", 1.0))}


def temperature_of(metadata: dict[str, Any]) -> float:
    """The posterior temperature τ a model's metadata records (``tempering``; 1 when it has none).

    The estimator divides every log ratio by τ (:mod:`tdglnre.nre.infer.tempering`, docs/nre.md "Tempering").
    """
    rec = metadata.get("tempering")
    if rec is None:
        return 1.0
    try:
        tau = float(rec["temperature"])
    except (KeyError, TypeError, ValueError):
        raise ModelLoadError(f"metadata `tempering` has no valid temperature: {rec!r}") from None
    if not (math.isfinite(tau) and tau > 0):
        raise ModelLoadError(f"metadata `tempering` temperature must be finite and > 0, got {tau}")
    return tau


def instrument_weights_of(metadata: dict[str, Any], size: int) -> np.ndarray | None:
    """The weights w of an instrument-dependent temperature τ(d) = τ·exp(w·d) (None: one τ for all; docs/nre.md)."""
    w = (metadata.get("tempering") or {}).get("instrument_weights")
    if w is None:
        return None
    w = np.asarray(w, dtype=np.float64)
    if w.shape != (size,) or not np.all(np.isfinite(w)):
        raise ModelLoadError(f"metadata `tempering` instrument_weights must be {size} finite numbers (the model's "
                             f"instrument vector), got {w.tolist()}")
    return w


class RatioEstimator:
    """A trained ratio estimator with its metadata, ready for inference.

    Construct with :func:`load_estimator`. The logit s(θ, x) estimates
    log r(θ, x) = log p(x|θ) − log p(x); a grid posterior is
    ``prior(θ) · exp(s)`` normalised over the grid.

    Attributes
    ----------
    model
        The Keras model ``[x (B,N,N,C'), θ (B,K,P)] → (B,K)``.
    metadata
        The parsed ``metadata.json``.
    """

    def __init__(self, model: Any, metadata: dict[str, Any], model_dir: str | None = None):
        from ..tf_setup import ensure_tensorflow

        tf = ensure_tensorflow()

        self.model = model
        self.metadata = metadata
        self.model_dir = model_dir
        self.temperature = temperature_of(metadata)
        self.encoder = model.get_layer("encoder")
        self.theta_net = model.get_layer("theta_net")
        self.head = model.get_layer("head")
        self.instrument_size = int(model.inputs[2].shape[-1]) if len(model.inputs) > 2 else 0
        """Length of the instrument vector the network takes beside each image (0: none; docs/nre.md)."""
        self.embedding_dim = int(self.encoder.output.shape[-1]) + self.instrument_size
        """Length of :meth:`encode`'s rows: the encoder's output, then the instrument vector."""
        self.instrument: np.ndarray | None = None
        """The instrument vector of plain (not :class:`InstrumentInputs`) observations, set by :meth:`set_instrument`."""
        self.instrument_weights = instrument_weights_of(metadata, self.instrument_size)
        """w of the temperature τ(d) = temperature·exp(w·d), or None (one τ; docs/nre.md, "Tempering")."""
        inp = metadata["input"]
        self.input_shape = tuple(int(v) for v in inp["shape"])
        n_par = len(self.parameter_names)
        encoder, theta_net, head = self.encoder, self.theta_net, self.head

        @tf.function(input_signature=[tf.TensorSpec([None, None, None, self.input_shape[-1]],
                                                    tf.float32)])
        def _encode(x: Any) -> Any:
            return encoder(x, training=False)

        @tf.function(input_signature=[tf.TensorSpec([None, n_par], tf.float32)])
        def _theta(theta: Any) -> Any:
            return theta_net(theta[None], training=False)  # (1, G, Dθ)

        @tf.function(input_signature=[tf.TensorSpec([None, self.embedding_dim], tf.float32),
                                      tf.TensorSpec([1, None, None], tf.float32)])
        def _grid(h_x: Any, h_t: Any) -> Any:
            n, g = tf.shape(h_x)[0], tf.shape(h_t)[1]
            z = tf.concat([tf.broadcast_to(h_x[:, None, :], [n, g, tf.shape(h_x)[1]]),
                           tf.broadcast_to(h_t, [n, g, tf.shape(h_t)[2]])], axis=-1)
            return head(z, training=False)

        @tf.function(input_signature=[tf.TensorSpec([None, self.embedding_dim], tf.float32),
                                      tf.TensorSpec([None, None, n_par], tf.float32)])
        def _pairs(h_x: Any, theta: Any) -> Any:
            h_t = theta_net(theta, training=False)
            k = tf.shape(theta)[1]
            z = tf.concat([tf.repeat(h_x[:, None, :], k, axis=1), h_t], axis=-1)
            return head(z, training=False)

        self._encode_fn, self._theta_fn, self._grid_fn, self._pairs_fn = _encode, _theta, _grid, _pairs
        self._split_fns = _split_head_functions(tf, theta_net, head, self.embedding_dim, n_par)
        # trace once now, so the first real call is fast
        h = self._encode_fn(tf.zeros((1,) + self.input_shape, tf.float32))
        if self.instrument_size:
            h = tf.concat([h, tf.zeros((1, self.instrument_size), tf.float32)], axis=-1)
        self._grid_fn(h, self._theta_fn(tf.zeros((2, n_par), tf.float32)))
        self._pairs_fn(h, tf.zeros((1, 2, n_par), tf.float32))
        if self._split_fns is not None:
            self._split_fns[1](h, self._split_fns[0](tf.zeros((2, n_par), tf.float32)))

    # ---------------------------------------------------------------- metadata
    @property
    def parameter_names(self) -> list[str]:
        """Inferred parameters, in θ-column order."""
        return list(self.metadata["parameter_names"])

    @property
    def bounds(self) -> dict[str, dict[str, Any]]:
        """Prior box {name: {kind, low, high}}."""
        return dict(self.metadata["bounds"])

    @property
    def nuisance(self) -> list[str]:
        """Parameters the training prior drew per sample but the model does not infer (marginalised: T, delta)."""
        return list(self.metadata.get("nuisance") or [])

    @property
    def training_prior(self) -> Any:
        """The prior the training ensemble was drawn from, nuisance parameters included.

        :attr:`prior` is this prior without the nuisance parameters.
        """
        if not self.nuisance:
            return self.prior
        from ...io.priors import Prior

        return Prior.from_dict(self.metadata["prior"])

    @property
    def prior(self) -> Any:
        """The prior of the inferred parameters (:class:`tdglnre.io.priors.Prior`; a uniform box if the metadata
        has none). Nuisance parameters (:attr:`nuisance`) are left out: the posterior is over
        :attr:`parameter_names` only, with the nuisance marginalised by training."""
        if not hasattr(self, "_prior"):
            d = self.metadata.get("prior")
            prior = None
            if d is not None:
                from ...io.priors import Prior

                try:
                    prior = Prior.from_dict(d)
                except (ValueError, KeyError, TypeError) as exc:
                    log.debug("prior in metadata is not a tdglnre Prior (%s); using the box", exc)
            if prior is not None and self.nuisance:
                prior = type(prior)({n: prior[n] for n in prior.names if n not in self.nuisance})
            self._prior = prior if prior is not None else _BoxPrior(self.bounds)
        return self._prior

    @property
    def channels(self) -> list[str]:
        """Selected input channel names."""
        return list(self.metadata["input"]["channels"])

    @property
    def snapshot_indices(self) -> list[int]:
        """Selected snapshot indices (into the training ensemble's times)."""
        return list(self.metadata["input"]["snapshot_indices"])

    @property
    def N(self) -> int:  # noqa: N802 - physics notation
        """Lattice size of the training data."""
        return int(self.metadata["N"])

    @property
    def measurement(self) -> Any:
        """The measurement model the training inputs went through
        (:class:`tdglnre.instrument.model.MeasurementModel`; the identity for a model trained on
        perfect simulator output or before measurements were recorded)."""
        from ...instrument.model import MeasurementModel

        m = self.metadata.get("measurement")
        return MeasurementModel.from_dict(m["model"]) if m else MeasurementModel()

    def resolve_measurement(self, spec: Any) -> Any:
        """``spec`` (text or model) as a :class:`~tdglnre.instrument.model.MeasurementModel` in this model's pixels.

        Widths in coherence lengths (``blur_xi``) become pixel widths of the
        training lattice (pixel size L/N), as the model's own measurement was
        resolved when it was trained.
        """
        from ...instrument.model import MeasurementModel, resolve_on_lattice

        return resolve_on_lattice(MeasurementModel.parse(spec), self.metadata.get("L"), self.N,
                                  lacking="the model does not record its lattice length L")

    def measure(self, x: np.ndarray, seed: int, indices: Sequence[int] | None = None,
                with_instrument: bool = False) -> Any:
        """Apply the model's measurement to clean inputs from :meth:`preprocess`.

        Parameters
        ----------
        x
            (n, N, N, C) selected clean inputs.
        seed
            Seed of the measurement noise; row r uses
            ``measurement_rng(seed, 0, indices[r])`` (default indices 0 … n−1).

        with_instrument
            Also return each row's instrument vector (the instrument the
            measurement drew, :meth:`MeasurementModel.describe`).

        Returns
        -------
        numpy.ndarray
            (n, M, M, C′) network inputs (``x`` itself for the identity); with
            ``with_instrument`` the pair (inputs, vectors (n, K)).
        """
        from ..pipeline.selection import measure_inputs

        x = np.asarray(x, dtype=np.float32)
        idx = np.arange(len(x)) if indices is None else np.asarray(indices, dtype=np.int64)
        m = self.measurement
        return measure_inputs(m, x, Selection.from_dict(self.metadata["input"]), int(seed), 0, idx,
                              describe=m if with_instrument else None)

    # ----------------------------------------------------------- preprocessing
    def preprocess_measured(self, x: np.ndarray) -> np.ndarray:
        """Check an already measured observation (M, M, C′) or (n, M, M, C′) against the network input.

        Unlike :meth:`preprocess`, nothing is selected or measured: ``x`` must
        already be what the network sees (``metadata["input"]["shape"]``).
        """
        x = np.asarray(x, dtype=np.float32)
        xb = x[None] if x.ndim == 3 else x
        if xb.ndim != 4 or tuple(xb.shape[1:]) != self.input_shape:
            raise ModelMismatchError(f"measured observation has shape {tuple(x.shape)}; the network input is "
                                     f"{self.input_shape}")
        if not np.isfinite(xb).all():
            raise ModelMismatchError("observation contains NaN/Inf values")
        return np.ascontiguousarray(xb, dtype=np.float32)

    def preprocess(self, x_raw: np.ndarray) -> np.ndarray:
        """Select the model's snapshots and channels from raw ensemble-shaped data.

        Parameters
        ----------
        x_raw
            One ensemble sample (T, N, N, C) or a batch (n, T, N, N, C), with the
            training ensemble's snapshot and channel layout; or a single
            snapshot (N, N, C) with C = the ensemble's channels (only for a
            model using one snapshot) or C = the model's input channels.

        Returns
        -------
        numpy.ndarray
            (n, N, N, C') float32 network input.
        """
        x = np.asarray(x_raw, dtype=np.float32)
        inp = self.metadata["input"]
        ds_ch = inp["dataset_channels"]
        if x.ndim == 3:
            if x.shape[-1] == len(ds_ch) and len(inp["snapshot_indices"]) == 1:
                out = x[..., list(inp["channel_indices"])][None]
            elif x.shape[-1] == self.input_shape[-1]:
                out = x[None]
            else:
                raise ModelMismatchError(
                    f"observation has {x.shape[-1]} channel(s); the model needs the ensemble's "
                    f"{len(ds_ch)} channels {ds_ch} (one snapshot) or its {self.input_shape[-1]} "
                    f"input channels"
                )
        elif x.ndim in (4, 5):
            xb = x[None] if x.ndim == 4 else x
            t_count = len(inp["dataset_snapshot_times"])
            if xb.shape[1] != t_count or xb.shape[-1] != len(ds_ch):
                raise ModelMismatchError(
                    f"sample shape {xb.shape[1:]} does not match the training ensemble's "
                    f"(T={t_count}, N, N, C={len(ds_ch)}) layout"
                )
            out = Selection.from_dict(inp).apply(xb)
        else:
            raise ModelMismatchError(f"cannot interpret an observation of shape {x.shape}")
        if out.shape[1] != self.N or out.shape[2] != self.N:
            raise ModelMismatchError(
                f"observation is {out.shape[1]}x{out.shape[2]}; the model was trained on "
                f"N={self.N}"
            )
        if not np.isfinite(out).all():
            raise ModelMismatchError("observation contains NaN/Inf values")
        return np.ascontiguousarray(out, dtype=np.float32)

    # --------------------------------------------------------------- inference
    def set_instrument(self, measurement: Any) -> np.ndarray | None:
        """Declare the instrument of the observations :meth:`encode` gets as plain arrays (None: undeclared).

        ``measurement``: a fixed member of the model's measurement family (text or
        model; widths in coherence lengths are resolved on the model's lattice).
        Returns its instrument vector. Only for a model trained with the
        instrument as an input; others ignore it (and return None).
        """
        if not self.instrument_size:
            return None
        self.instrument = None if measurement is None else self.measurement.describe(
            self.resolve_measurement(measurement))
        return self.instrument

    def _instrument_rows(self, d: np.ndarray | None, n: int) -> np.ndarray | None:
        """Instrument vectors (n, K) of :meth:`encode`'s n images (None for a model without them)."""
        if not self.instrument_size:
            return None
        if d is None:
            d = self.instrument
        if d is None:
            raise ModelMismatchError(
                "this model takes the instrument of each image as an input (trained with --instrument-input on the "
                f"family {self.measurement}); declare the observation's instrument (`--measurement` with fixed "
                "values, set_instrument in Python)")
        d = np.asarray(d, dtype=np.float32)
        if d.shape[-1] != self.instrument_size:
            raise ModelMismatchError(f"instrument vectors have {d.shape[-1]} entries; the model takes "
                                     f"{self.instrument_size}")
        return np.broadcast_to(d, (n, self.instrument_size)) if d.ndim == 1 else d

    def encode(self, x: Any, batch_size: int = 256) -> np.ndarray:
        """Embeddings h_x (n, D) of preprocessed inputs x (n, N, N, C').

        For a model that takes the instrument (:attr:`instrument_size` > 0),
        each row ends in the image's instrument vector: ``x`` is then an
        :class:`InstrumentInputs`, or plain images of the instrument
        :meth:`set_instrument` declared.
        """
        d = None
        if isinstance(x, InstrumentInputs):
            x, d = x.x, x.d
        x = np.asarray(x, dtype=np.float32)
        if x.ndim == 3:
            x = x[None]
        if x.ndim != 4 or x.shape[-1] != self.input_shape[-1]:
            raise ModelMismatchError(
                f"encode expects preprocessed inputs (n, N, N, {self.input_shape[-1]}), got "
                f"{x.shape}; use preprocess() on raw samples"
            )
        d = self._instrument_rows(d, len(x))
        parts = [self._encode_fn(x[a:a + batch_size]).numpy()
                 for a in range(0, len(x), batch_size)]
        if not parts:
            return np.zeros((0, self.embedding_dim), np.float32)
        h = np.concatenate(parts)
        if d is not None:
            if len(d) != len(h):
                raise ModelMismatchError(f"{len(h)} images but {len(d)} instrument vectors")
            h = np.concatenate([h, d], axis=-1)
        return h

    def _theta_array(self, theta: Any) -> np.ndarray:
        t = np.asarray(theta, dtype=np.float32)
        p = len(self.parameter_names)
        if t.ndim == 1 and p == 1:
            t = t[:, None]
        if t.shape[-1] != p:
            raise ModelMismatchError(
                f"theta has {t.shape[-1]} column(s); the model infers {p}: {self.parameter_names}"
            )
        return t

    def temperature_record(self) -> dict[str, Any]:
        """What posterior.json and calibration.json record of the tempering (docs/nre.md, "Tempering").

        ``{"temperature": τ}``; an ensemble adds ``member_temperatures``, the τ each member divides its own log
        ratio by before the ratios are averaged (its ``temperature`` is 1: the mixture has none of its own). A
        temperature that depends on the instrument adds ``instrument_weights``.
        """
        if self.instrument_weights is None:
            return {"temperature": float(self.temperature)}
        return {"temperature": float(self.temperature), "instrument_weights": self.instrument_weights.tolist()}

    def _tempered(self, s: np.ndarray, h: np.ndarray) -> np.ndarray:
        """Log ratios ``s`` (n, ...) of the embeddings ``h`` (n, D) divided by their temperature."""
        if self.instrument_weights is None:
            return s if self.temperature == 1.0 else s / self.temperature
        d = np.asarray(h[:, -self.instrument_size:], dtype=np.float64)
        tau = self.temperature * np.exp(d @ self.instrument_weights)
        return s / tau.reshape((-1,) + (1,) * (s.ndim - 1))

    @property
    def can_split_head(self) -> bool:
        """True when the head's first layer is a Dense on [h_x ‖ h_θ] (``split_head`` is available)."""
        return self._split_fns is not None

    def log_ratio_from_embedding(self, h_x: np.ndarray, theta_grid: np.ndarray,
                                 max_rows: int = GRID_ROWS, *, split_head: bool = False) -> np.ndarray:
        """log r(θ_g, x_i) for every embedding and every grid point.

        The θ tower runs once per grid chunk, whatever the number of
        embeddings. With ``split_head`` the head's first layer is split as
        well: its pre-activation W·[h_x ‖ h_θ] + b = W_x·h_x + (W_θ·h_θ + b)
        takes the θ part once per grid chunk and the x part once per
        embedding, so per (x, θ) pair only the later head layers run (a quarter
        of the multiply-adds with the default widths). The same function to
        float32 rounding, not bit for bit: the sums run in another order
        (docs/nre.md, "Cost of a grid posterior").

        Parameters
        ----------
        h_x
            (n_x, D) embeddings from :meth:`encode` (or (D,) for one).
        theta_grid
            (G, P) parameter points (or (G,) for one parameter).
        max_rows
            Evaluate at most this many (x, θ) pairs per call of the head
            (:data:`GRID_ROWS`: intermediate arrays of a few MB, which stay in
            cache; 2^18 rows, the earlier default, cost 1.3–1.7× as much).
        split_head
            Split the head's first layer as above (ignored when
            :attr:`can_split_head` is False).

        Returns
        -------
        numpy.ndarray
            (n_x, G) float64 log ratios.
        """
        h = np.asarray(h_x, dtype=np.float32)
        if h.ndim == 1:
            h = h[None]
        grid = self._theta_array(theta_grid)
        n, g = len(h), len(grid)
        out = np.empty((n, g), dtype=np.float64)
        g_step = min(g, max_rows) if g else 1
        x_step = max(1, max_rows // max(g_step, 1))
        theta_fn, head_fn = self._split_fns if split_head and self._split_fns is not None else (self._theta_fn,
                                                                                               self._grid_fn)
        for gs in range(0, g, g_step):
            h_t = theta_fn(grid[gs:gs + g_step])  # once per grid chunk, shared by every embedding
            for xs in range(0, n, x_step):
                out[xs:xs + x_step, gs:gs + g_step] = head_fn(h[xs:xs + x_step], h_t).numpy()
        return self._tempered(out, h)

    def log_ratio(self, x: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """log r for paired inputs.

        Parameters
        ----------
        x
            (n, N, N, C') preprocessed inputs.
        theta
            (n, P): one θ per x → returns (n,); or (n, K, P): K θ's per x →
            returns (n, K).
        """
        h = self.encode(x)
        t = self._theta_array(theta)
        squeeze = t.ndim == 2
        if squeeze:
            t = t[:, None, :]
        if len(t) != len(h):
            raise ValueError(f"{len(h)} observations but {len(t)} theta rows")
        s = self._tempered(self._pairs_fn(h, t).numpy().astype(np.float64), np.asarray(h))
        return s[:, 0] if squeeze else s

    # ------------------------------------------------------------ compatibility
    def check_compatible(self, dataset: Any) -> None:
        """Raise :class:`ModelMismatchError` unless ``dataset`` fits this model.

        ``dataset`` is an open ensemble (``tdglnre.io.ensemble.Ensemble``), an
        :class:`~.data.EnsembleSource`, or another model's metadata dict.
        Compared: N, channels (the model's selected channels must exist),
        snapshot times used by the model, parameter names (same order).
        Differences in L or other config fields are logged as warnings.
        """
        if isinstance(dataset, dict):
            names = dataset["parameter_names"]
            channels = dataset["input"]["dataset_channels"]
            times = dataset["input"]["dataset_snapshot_times"]
            n = dataset["N"]
            config = (dataset.get("dataset") or {}).get("config") or {}
        else:
            names = list(dataset.parameter_names)
            channels = list(dataset.channels)
            times = [float(t) for t in dataset.snapshot_times]
            cfg = getattr(dataset, "config", None)
            if cfg is None and hasattr(dataset, "info"):
                cfg = dataset.info.get("config")
            config = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg or {})
            n = config.get("N") if config else getattr(dataset, "sample_shape", [None, None])[1]
        from ...physics.config import NUISANCE_PARAMETERS

        names = [p for p in names if p not in NUISANCE_PARAMETERS]  # never inferred (marginalised in training)
        diffs = []
        if n is not None and int(n) != self.N:
            diffs.append(f"lattice size N: model {self.N}, data {int(n)}")
        missing = [c for c in self.channels if c not in channels]
        if missing:
            diffs.append(f"channels: model uses {self.channels}, data has {list(channels)} "
                         f"(missing {missing})")
        elif list(channels) != list(self.metadata["input"]["dataset_channels"]):
            diffs.append(f"channel order: model trained on {self.metadata['input']['dataset_channels']}, "
                         f"data has {list(channels)}")
        want_t = self.metadata["input"]["snapshot_times"]
        if list(times) != list(self.metadata["input"]["dataset_snapshot_times"]):
            diffs.append(
                f"snapshot times: model trained on {self.metadata['input']['dataset_snapshot_times']} "
                f"(uses {want_t}), data has {list(times)}"
            )
        if list(names) != self.parameter_names:
            diffs.append(f"parameter names: model {self.parameter_names}, data {list(names)}")
        if diffs:
            raise ModelMismatchError("model and data do not match: " + "; ".join(diffs))
        mcfg = (self.metadata.get("dataset") or {}).get("config") or {}
        for k in sorted(set(mcfg) & set(config)):
            if mcfg[k] != config[k]:
                log.warning("config field %s differs: model trained with %r, data has %r",
                            k, mcfg[k], config[k])


class InstrumentInputs:
    """Preprocessed images with each one's instrument vector, for a model that takes the instrument.

    Slices like an array (``xs[a:b]``, ``len``), so batched inference passes
    the vectors along with their images (:meth:`RatioEstimator.encode`).
    """

    def __init__(self, x: np.ndarray, d: np.ndarray):
        self.x = np.asarray(x)
        self.d = np.asarray(d, dtype=np.float32).reshape(len(self.x), -1)

    def __len__(self) -> int:
        return len(self.x)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.x.shape

    def __getitem__(self, key: Any) -> "InstrumentInputs":
        if not isinstance(key, slice):
            key = np.atleast_1d(np.asarray(key))
        return InstrumentInputs(self.x[key], self.d[key])


class EnsembleEstimator(RatioEstimator):
    """Several ratio estimators trained alike (other seeds) as one: their ratios averaged.

    log r(θ, x) = log( (1/M) Σ_m exp s_m(θ, x) ). Each member's s_m estimates the same log ratio (``nrec``
    learns it without a free constant), so the mean of the ratios is a mean of the members' posteriors, each
    under the prior: an ensemble of ratio estimators (Hermans et al., "A Trust Crisis in Simulation-Based
    Inference?", TMLR 2022), which widens where the members disagree. Everything but the ratio (metadata,
    prior, preprocessing, measurement) is the first member's; the members must agree on it.

    Parameters
    ----------
    members
        Loaded :class:`RatioEstimator` s with the same parameters, bounds and input.
    model_dir
        The ensemble directory (``ensemble.json`` lists the members).
    """

    def __init__(self, members: Sequence[RatioEstimator], model_dir: str | None = None):
        members = list(members)
        if len(members) < 2:
            raise ModelLoadError(f"{model_dir}: an ensemble needs at least 2 members, got {len(members)}")
        first = members[0]
        for m in members[1:]:
            for what in ("parameter_names", "bounds", "input_shape", "N", "channels", "snapshot_indices"):
                if getattr(m, what) != getattr(first, what):
                    raise ModelLoadError(f"{model_dir}: member {m.model_dir} differs from {first.model_dir} in "
                                         f"{what} ({getattr(m, what)} vs {getattr(first, what)})")
        self.members = members
        self.model, self.model_dir = first.model, model_dir
        self.metadata = dict(first.metadata)
        self.metadata.pop("tempering", None)  # each member applies its own temperature; the mixture has none
        self.temperature, self.instrument_weights = 1.0, None
        self.metadata["ensemble"] = {"members": [str(m.model_dir) for m in members],
                                     "combine": "mean of the members' ratios"}
        self.encoder, self.theta_net, self.head = first.encoder, first.theta_net, first.head
        self.input_shape = first.input_shape
        self.instrument_size = first.instrument_size
        self.instrument = None  # the members' (the property below)
        self._dims = [m.embedding_dim for m in members]
        self.embedding_dim = int(sum(self._dims))
        self._split_fns = first._split_fns if all(m.can_split_head for m in members) else None

    def temperature_record(self) -> dict[str, Any]:
        rec: dict[str, Any] = {"temperature": 1.0, "member_temperatures": [float(m.temperature) for m in self.members]}
        if any(m.instrument_weights is not None for m in self.members):
            rec["member_instrument_weights"] = [None if m.instrument_weights is None else m.instrument_weights.tolist()
                                                for m in self.members]
        return rec

    def _combine(self, parts: Sequence[np.ndarray]) -> np.ndarray:
        s = np.stack(parts)
        top = s.max(axis=0)
        top = np.where(np.isfinite(top), top, 0.0)
        return top + np.log(np.mean(np.exp(s - top), axis=0))

    def _split(self, h_x: np.ndarray) -> list[np.ndarray]:
        h = np.asarray(h_x, dtype=np.float32)
        h = h[None] if h.ndim == 1 else h
        if h.shape[-1] != self.embedding_dim:
            raise ModelMismatchError(f"ensemble embeddings have {self.embedding_dim} entries, got {h.shape[-1]}")
        return np.split(h, np.cumsum(self._dims)[:-1], axis=-1)

    @property
    def instrument(self) -> np.ndarray | None:
        """The instrument vector the members use for plain images (setting it sets every member's)."""
        return self.members[0].instrument

    @instrument.setter
    def instrument(self, d: np.ndarray | None) -> None:
        for m in self.members:
            m.instrument = d

    def set_instrument(self, measurement: Any) -> np.ndarray | None:
        """Declare the observations' instrument to every member (:meth:`RatioEstimator.set_instrument`)."""
        out = [m.set_instrument(measurement) for m in self.members]
        return out[0]

    def encode(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """The members' embeddings side by side, (n, Σ D_m)."""
        return np.concatenate([m.encode(x, batch_size) for m in self.members], axis=-1)

    def log_ratio_from_embedding(self, h_x: np.ndarray, theta_grid: np.ndarray, max_rows: int = GRID_ROWS, *,
                                 split_head: bool = False) -> np.ndarray:
        return self._combine([m.log_ratio_from_embedding(h, theta_grid, max_rows, split_head=split_head)
                              for m, h in zip(self.members, self._split(h_x))])

    def log_ratio(self, x: np.ndarray, theta: np.ndarray) -> np.ndarray:
        return self._combine([m.log_ratio(x, theta) for m in self.members])


#: The file that makes a model directory an ensemble (:class:`EnsembleEstimator`).
ENSEMBLE_FILE = "ensemble.json"


def load_estimator(model_dir: str | os.PathLike[str]) -> RatioEstimator:
    """Load ``model.keras`` and ``metadata.json`` from a model directory.

    Raises
    ------
    ModelLoadError
        If a file is missing or unreadable.
    """
    from ..tf_setup import ensure_tensorflow

    meta = read_metadata(model_dir)
    listing = Path(model_dir) / ENSEMBLE_FILE
    if listing.exists():
        try:
            names = list(json.loads(listing.read_text())["members"])
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ModelLoadError(f"{listing}: not an ensemble listing ({exc})") from None
        return EnsembleEstimator([load_estimator(Path(model_dir) / n) for n in names], str(model_dir))
    path = Path(model_dir) / "model.keras"
    if not path.exists():
        raise ModelLoadError(f"{model_dir}: no model.keras")
    ensure_tensorflow()
    import keras

    from ..net import losses, network, regression, spectrum, summaries, time_encoder  # noqa: F401  (registers the custom objects)

    try:
        model = keras.saving.load_model(path, compile=False)
    except (ValueError, OSError) as exc:
        raise ModelLoadError(f"{path}: cannot load the Keras model ({exc})") from None
    return RatioEstimator(model, meta, str(model_dir))


__all__: Sequence[str] = ("RatioEstimator", "EnsembleEstimator", "ModelMismatchError", "ModelLoadError",
                          "load_estimator", "read_metadata", "build_metadata", "temperature_of", "instrument_weights_of",
                          "temperature_record_of")
