"""Model comparison ν = 0 against ν > 0: P(ν > 0 | x) from a classifier over the model index (docs/drag.md).

The two models are M0 (no drag, ν = 0) and M1 (ν ~ its prior, e.g. U(0, 0.5)),
with the other parameters drawn from the same prior under both. A classifier
d(x) ≈ P(M1 | x) trained by binary cross-entropy on n1 simulations of M1 and
n0 of M0 converges to the Bayes-optimal posterior of that mixture, so

    log B10(x) = logit d(x) − log(n1 / n0)

is the Bayes factor (the evidence ratio p(x | M1) / p(x | M0)), and under prior
odds π1/π0

    P(ν > 0 | x) = σ(log B10(x) + log(π1/π0)).

This is the spike-and-slab posterior mass P(ν > 0 | x) for a prior with mass
π0 at ν = 0 — the choice between this classifier and a ratio estimator under a
spike-and-slab prior is argued in docs/drag.md.

Inputs are either S(k, t) features (:func:`structure_features`, an MLP) or the
images themselves (snapshots stacked as channels, a CNN with global pooling,
which respects the lattice's translation invariance).
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ...errors import ConfigError

log = logging.getLogger(__name__)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


# ----------------------------------------------------------------------------- features
def structure_features(x: np.ndarray, L: float, *, channels: Sequence[int] | None = None,
                       max_shells: int | None = None, floor: float | None = None) -> np.ndarray:
    """log S(k, t) of images (S, T, N, N, C) flattened per sample → (S, T·C·M).

    Parameters
    ----------
    x
        Images as stored in an ensemble.
    L
        Side length.
    channels
        Channel indices to use (default all).
    max_shells
        Keep the first shells only (default: all shells up to k = π/h·√2).
    floor
        Dynamic range: S below ``floor`` times the largest shell value of the
        same sample, snapshot and channel is raised to that level (a detector
        that resolves only ``1/floor`` of the peak; None keeps everything).
    """
    from ...analysis.structure import radial_structure_factor

    x = np.asarray(x)
    if x.ndim != 5:
        raise ConfigError(f"images must have shape (samples, T, N, N, C), got {x.shape}")
    ch = list(range(x.shape[-1])) if channels is None else list(channels)
    feats = []
    for c in ch:
        _, S, _ = radial_structure_factor(x[..., c], L)
        if max_shells is not None:
            S = S[..., :max_shells]
        if floor is not None:
            if not 0.0 < float(floor) < 1.0:
                raise ConfigError(f"floor must lie in (0, 1), got {floor!r}")
            S = np.maximum(S, float(floor) * S.max(axis=-1, keepdims=True))
        feats.append(np.log(S + 1e-12))
    f = np.stack(feats, axis=2)  # (S, T, C, M)
    return f.reshape(f.shape[0], -1).astype(np.float32)


def stack_snapshots(x: np.ndarray) -> np.ndarray:
    """(S, T, N, N, C) → (S, N, N, T·C), snapshot-major channels (as ``tdglnre train --snapshots``)."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 5:
        raise ConfigError(f"images must have shape (samples, T, N, N, C), got {x.shape}")
    S, T, N, M, C = x.shape
    return np.moveaxis(x, 1, 3).reshape(S, N, M, T * C)


# ----------------------------------------------------------------------------- metrics
def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (Mann–Whitney U / (n1·n0), ties counted ½).

    Parameters
    ----------
    scores
        Classifier scores (higher means class 1).
    labels
        0/1 labels.
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).astype(bool).ravel()
    if s.shape != y.shape:
        raise ConfigError(f"scores {s.shape} and labels {y.shape} differ in shape")
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        raise ConfigError("ROC AUC needs samples of both classes")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(s.size)
    ss = s[order]
    i = 0
    while i < s.size:  # average ranks over ties
        j = i
        while j + 1 < s.size and ss[j + 1] == ss[i]:
            j += 1
        ranks[order[i:j + 1]] = 0.5 * (i + j) + 1.0
        i = j + 1
    u = ranks[y].sum() - n1 * (n1 + 1) / 2.0
    return float(u / (n1 * n0))


def reliability(p: np.ndarray, labels: np.ndarray, n_bins: int = 10) -> dict[str, list]:
    """Reliability diagram: per predicted-probability bin, mean prediction, observed frequency, count.

    Also returns the expected calibration error ``ece`` = Σ_b (n_b/n)·|freq_b − pred_b|.
    """
    p = np.asarray(p, dtype=np.float64).ravel()
    y = np.asarray(labels, dtype=np.float64).ravel()
    if p.shape != y.shape:
        raise ConfigError(f"predictions {p.shape} and labels {y.shape} differ in shape")
    if isinstance(n_bins, bool) or int(n_bins) != n_bins or n_bins < 1:
        raise ConfigError(f"n_bins must be a positive integer, got {n_bins!r}")
    edges = np.linspace(0.0, 1.0, int(n_bins) + 1)
    b = np.clip(np.digitize(p, edges) - 1, 0, int(n_bins) - 1)
    pred, freq, count = [], [], []
    ece = 0.0
    for i in range(int(n_bins)):
        m = b == i
        n = int(m.sum())
        count.append(n)
        pred.append(float(p[m].mean()) if n else None)
        freq.append(float(y[m].mean()) if n else None)
        if n:
            ece += n / p.size * abs(freq[-1] - pred[-1])
    return {"edges": edges.tolist(), "predicted": pred, "observed": freq, "count": count, "ece": float(ece)}


def auc_by_nu(p_drag0: np.ndarray, p_drag1: np.ndarray, nu1: np.ndarray,
              edges: Sequence[float] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)) -> list[dict[str, float]]:
    """ROC AUC of ν = 0 samples against ν > 0 samples in each true-ν bin, and against all ν ≥ edge."""
    p0 = np.asarray(p_drag0, dtype=np.float64)
    p1 = np.asarray(p_drag1, dtype=np.float64)
    nu1 = np.asarray(nu1, dtype=np.float64)
    out = []
    e = list(edges)
    for a, b in zip(e[:-1], e[1:]):
        m = (nu1 >= a) & (nu1 < b if b != e[-1] else nu1 <= b)
        ge = nu1 >= a
        row = {"nu_low": float(a), "nu_high": float(b), "n": int(m.sum()), "auc": None, "auc_nu_ge_low": None}
        if m.any():
            row["auc"] = roc_auc(np.concatenate([p0, p1[m]]), np.r_[np.zeros(p0.size), np.ones(int(m.sum()))])
        if ge.any():
            row["auc_nu_ge_low"] = roc_auc(np.concatenate([p0, p1[ge]]),
                                           np.r_[np.zeros(p0.size), np.ones(int(ge.sum()))])
        out.append(row)
    return out


# ----------------------------------------------------------------------------- classifier
def _build_network(input_shape: tuple[int, ...], hidden: Sequence[int], filters: Sequence[int], seed: int) -> Any:
    import keras

    keras.utils.set_random_seed(int(seed))
    inp = keras.Input(shape=input_shape)
    h = inp
    if len(input_shape) == 3:  # images (N, N, C): CNN with global pooling (translation invariant)
        for f in filters:
            h = keras.layers.Conv2D(int(f), 3, padding="same", activation="gelu")(h)
            h = keras.layers.Conv2D(int(f), 3, padding="same", activation="gelu")(h)
            h = keras.layers.AveragePooling2D(2)(h)
        h = keras.layers.GlobalAveragePooling2D()(h)
    elif len(input_shape) != 1:
        raise ConfigError(f"inputs must be feature vectors (n,) or images (N, N, C), got shape {input_shape}")
    for w in hidden:
        h = keras.layers.Dense(int(w), activation="gelu")(h)
    out = keras.layers.Dense(1)(h)  # logit
    return keras.Model(inp, out)


@dataclass
class ModelClassifier:
    """A trained classifier d(x) ≈ P(M1 | x) of the ν = 0 / ν > 0 mixture, with its standardisation."""

    model: Any
    """Keras model returning the logit."""
    mean: np.ndarray
    """Per-feature (or per-channel) mean of the training inputs."""
    std: np.ndarray
    """Per-feature (or per-channel) standard deviation."""
    train_log_odds: float
    """log(n1 / n0) of the training mixture (subtracted to get the Bayes factor)."""
    info: dict[str, Any] = field(default_factory=dict)
    """Training settings and history (losses per epoch)."""
    temperature: float = 1.0
    """Logits are divided by this (temperature scaling fitted on the validation split; 1 = none)."""

    def _standardise(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        want = tuple(self.model.input_shape[1:])
        if x.shape[1:] != want:
            raise ConfigError(f"inputs of shape {x.shape[1:]} do not match the classifier's {want}")
        return ((x - self.mean) / self.std).astype(np.float32)

    def logit(self, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """Classifier logit (S,) (log odds under the training mixture), divided by :attr:`temperature`."""
        z = self.model.predict(self._standardise(x), batch_size=batch_size, verbose=0)
        return np.asarray(z, dtype=np.float64).ravel() / self.temperature

    def log_bayes_factor(self, x: np.ndarray) -> np.ndarray:
        """log B10(x) = log p(x | ν > 0) − log p(x | ν = 0), per sample."""
        return self.logit(x) - self.train_log_odds

    def p_drag(self, x: np.ndarray, prior_p: float = 0.5) -> np.ndarray:
        """P(ν > 0 | x) under prior probability ``prior_p`` of ν > 0 (half the mass at ν = 0 by default)."""
        if not (0.0 < float(prior_p) < 1.0):
            raise ConfigError(f"prior_p must lie in (0, 1), got {prior_p!r}")
        z = self.log_bayes_factor(x) + math.log(prior_p / (1.0 - prior_p))
        return 1.0 / (1.0 + np.exp(-z))

    def save(self, out_dir: str | Path) -> Path:
        """Write model_comparison.keras and model_comparison.json into ``out_dir`` (created if needed)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        self.model.save(out / "model_comparison.keras")
        meta = {"mean": np.asarray(self.mean).tolist(), "std": np.asarray(self.std).tolist(),
                "train_log_odds": self.train_log_odds, "temperature": self.temperature, "info": self.info}
        (out / "model_comparison.json").write_text(json.dumps(meta, indent=1))
        return out


def load_model_classifier(model_dir: str | Path) -> ModelClassifier:
    """Load a classifier written by :meth:`ModelClassifier.save`."""
    import keras

    d = Path(model_dir)
    if not (d / "model_comparison.json").exists() or not (d / "model_comparison.keras").exists():
        raise ConfigError(f"{d} holds no model-comparison classifier (model_comparison.keras/.json)")
    meta = json.loads((d / "model_comparison.json").read_text())
    model = keras.models.load_model(d / "model_comparison.keras")
    return ModelClassifier(model, np.asarray(meta["mean"], dtype=np.float32), np.asarray(meta["std"], dtype=np.float32),
                           float(meta["train_log_odds"]), meta.get("info", {}), float(meta.get("temperature", 1.0)))


def classifier_inputs(clf: ModelClassifier, x: np.ndarray) -> np.ndarray:
    """Observations in the ensemble layout → the classifier's inputs, as recorded in ``info["features"]``.

    ``x`` is one observation (T, N, N, C) or a batch (S, T, N, N, C). With
    ``info["features"] = {"kind": "log_structure", "L": ..., "floor": ...}`` the
    log S(k, t) features are computed; with ``"stacked_images"`` the snapshots
    are stacked as channels; without a record ``x`` must already be in the
    classifier's layout.
    """
    spec = clf.info.get("features")
    if spec is None:
        return np.asarray(x, dtype=np.float32)
    x = np.asarray(x)
    if x.ndim == 4:
        x = x[None]
    if spec.get("kind") == "log_structure":
        return structure_features(x, float(spec["L"]), floor=spec.get("floor"))
    if spec.get("kind") == "stacked_images":
        return stack_snapshots(x)
    raise ConfigError(f"unknown classifier input kind {spec.get('kind')!r}")


def p_drag(model_dir: str | Path, x: np.ndarray, prior_p: float = 0.5) -> np.ndarray:
    """P(ν > 0 | x) from a saved classifier, for observations (T, N, N, C) or (S, T, N, N, C).

    ``prior_p`` is the prior probability of ν > 0 (0.5: half the mass at ν = 0).
    Returns one probability per observation.
    """
    clf = load_model_classifier(model_dir)
    return clf.p_drag(classifier_inputs(clf, x), prior_p)


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """Temperature T > 0 minimising the binary cross-entropy of σ(logit / T) (golden-section search on log T)."""
    z = np.asarray(logits, dtype=np.float64).ravel()
    y = np.asarray(labels, dtype=np.float64).ravel()

    def bce(log_t: float) -> float:
        u = z / math.exp(log_t)
        return float(np.mean(np.logaddexp(0.0, u) - y * u))

    a, b = math.log(0.05), math.log(20.0)
    g = (math.sqrt(5.0) - 1.0) / 2.0
    c, d = b - g * (b - a), a + g * (b - a)
    for _ in range(60):
        if bce(c) < bce(d):
            b = d
        else:
            a = c
        c, d = b - g * (b - a), a + g * (b - a)
    return math.exp(0.5 * (a + b))


def fit_model_classifier(x0: np.ndarray, x1: np.ndarray, *, epochs: int = 30, batch_size: int = 128,
                         learning_rate: float = 1e-3, val_fraction: float = 0.15, patience: int = 5,
                         hidden: Sequence[int] = (64, 64), filters: Sequence[int] = (16, 32),
                         seed: int = 0, features: dict[str, Any] | None = None,
                         calibrate: bool = False) -> ModelClassifier:
    """Train d(x) ≈ P(M1 | x) on simulations of M0 (ν = 0) and M1 (ν > 0) by binary cross-entropy.

    Parameters
    ----------
    x0, x1
        Inputs simulated under M0 and M1: feature vectors (S, n) or images (S, N, N, C).
    epochs, batch_size, learning_rate, patience
        Adam training with early stopping on the validation loss (best weights restored).
    val_fraction
        Seeded validation split of the mixture.
    hidden, filters
        Dense widths of the head; conv filters per block (images only).
    seed
        Seed of the split, the initial weights and the batch order.
    features
        How inputs were made from ensemble images, recorded for
        :func:`classifier_inputs` (e.g. ``{"kind": "log_structure", "L": 16.0, "floor": None}``).
    calibrate
        Fit a temperature on the validation split (:func:`fit_temperature`) so
        that P(ν > 0 | x) is better calibrated; the validation split then also
        serves early stopping, a mild reuse.

    Returns
    -------
    ModelClassifier
        With ``train_log_odds = log(n1/n0)``, so :meth:`~ModelClassifier.log_bayes_factor`
        is the Bayes factor whatever the class balance.
    """
    import keras

    from .. import configure_tensorflow

    x0 = np.asarray(x0, dtype=np.float32)
    x1 = np.asarray(x1, dtype=np.float32)
    if x0.ndim < 2 or x0.shape[1:] != x1.shape[1:]:
        raise ConfigError(f"x0 {x0.shape} and x1 {x1.shape} must be batches of inputs of the same shape")
    n0, n1 = x0.shape[0], x1.shape[0]
    if min(n0, n1) < 2:
        raise ConfigError(f"need at least 2 simulations of each model, got n0={n0}, n1={n1}")
    if not 0.0 < val_fraction < 1.0:
        raise ConfigError(f"val_fraction must lie in (0, 1), got {val_fraction!r}")
    configure_tensorflow()
    x = np.concatenate([x0, x1])
    y = np.r_[np.zeros(n0), np.ones(n1)].astype(np.float32)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(x.shape[0])
    n_val = max(1, int(round(val_fraction * x.shape[0])))
    iv, it = perm[:n_val], perm[n_val:]
    axes = tuple(range(x.ndim - 1)) if x.ndim == 4 else (0,)
    mean = x[it].mean(axis=axes).astype(np.float32)
    std = (x[it].std(axis=axes) + 1e-6).astype(np.float32)
    xs = ((x - mean) / std).astype(np.float32)
    model = _build_network(x.shape[1:], hidden, filters, seed)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=keras.losses.BinaryCrossentropy(from_logits=True))
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=int(patience), restore_best_weights=True)
    hist = model.fit(xs[it], y[it], validation_data=(xs[iv], y[iv]), epochs=int(epochs),
                     batch_size=int(batch_size), callbacks=[stop], verbose=0, shuffle=True)
    h = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
    info = {"n0": n0, "n1": n1, "epochs_run": len(h.get("loss", [])), "history": h,
            "best_val_loss": float(min(h["val_loss"])) if h.get("val_loss") else None,
            "input_shape": list(x.shape[1:]), "hidden": list(hidden), "filters": list(filters), "seed": seed,
            "features": features}
    temperature = 1.0
    if calibrate:
        z = np.asarray(model.predict(xs[iv], batch_size=512, verbose=0), dtype=np.float64).ravel()
        temperature = fit_temperature(z, y[iv])
    info["temperature"] = temperature
    log.info("model comparison: n0=%d n1=%d, best val loss %.4f after %d epochs, temperature %.3f", n0, n1,
             info["best_val_loss"] or float("nan"), info["epochs_run"], temperature)
    return ModelClassifier(model, mean, std, math.log(n1 / n0), info, temperature)
