"""Training of the neural ratio estimator (``tdglnre train``).

:func:`train` is the library function behind the command: it opens an HDF5
ensemble, splits it, computes the input standardisation from the training
split, builds (or, with ``resume``, reloads) the two-tower model, fits it with
a per-epoch checkpoint and early stopping on the validation loss, restores the
best weights and writes the model directory:

=========================  ==================================================
``model.keras``            the trained Keras model (best weights)
``metadata.json``          parameters, prior, input selection, N/L, dataset
                           config + fingerprint, settings, best val loss,
                           package versions (see :mod:`.model_io`)
``history.csv/.json``      per-epoch loss, val_loss, learning rate, time
``loss_curve.png``         the loss curves
``checkpoints/``           ``last.keras`` (every epoch, with optimizer state),
                           ``best.weights.h5`` and ``state.json`` for ``resume``
=========================  ==================================================

With more than one GPU visible, the model is built and trained under
``tf.distribute.MirroredStrategy`` (batches are split across the replicas;
the global batch size stays ``batch_size``).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import TDGLError, reject_unknown_keys
from . import configure_tensorflow
from .data import (
    BatchStream,
    EnsembleSource,
    TrainingDataError,
    make_dataset,
    resolve_selection,
    scan_source,
    split_indices,
)
from .losses import LOSS_NAMES, n_theta_columns
from .network import NetworkConfig

log = logging.getLogger(__name__)

MODEL_FILE = "model.keras"
METADATA_FILE = "metadata.json"
CHECKPOINT_DIR = "checkpoints"
_OWNED = (MODEL_FILE, METADATA_FILE, "history.csv", "history.json", "loss_curve.png")
_CKPT_FILES = ("last.keras", "best.weights.h5", "state.json")

#: Settings that ``resume`` may change; all others come from the checkpoint.
RESUMABLE_OVERRIDES = ("epochs", "patience")


class TrainingError(TDGLError, ValueError):
    """Training cannot start or continue; the message says why."""


@dataclass(frozen=True)
class TrainSettings:
    """All settings of one training run (stored in ``metadata.json``)."""

    loss: str = "nrec"
    """``nre``, ``bnre`` or ``nrec`` (see :mod:`.losses`)."""
    contrastive: int = 8
    """K: θ's scored per x (nre/bnre: 1 joint + K−1 marginal; nrec: K classes)."""
    gamma: float = 1.0
    """Class ratio γ of ``nrec``."""
    lam: float = 100.0
    """Balancing penalty λ of ``bnre``."""
    epochs: int = 50
    """Maximum number of epochs."""
    batch_size: int = 64
    """Observations per batch."""
    learning_rate: float = 1e-3
    """Adam(W) learning rate."""
    weight_decay: float = 1e-4
    """Decoupled weight decay of AdamW (0: plain Adam)."""
    val_fraction: float = 0.1
    """Fraction of samples held out for validation (seeded permutation)."""
    patience: int = 8
    """Epochs without validation improvement before stopping."""
    min_delta: float = 1e-4
    """Smallest validation-loss decrease that counts as an improvement."""
    seed: int = 0
    """Seed of the split, the shuffling, the augmentation and the weights."""
    channels: tuple[str, ...] | None = None
    """Input channel names (default: all channels of the ensemble)."""
    snapshots: tuple[int, ...] | None = None
    """Snapshot indices (default: the last); several stack as channels."""
    augment: bool = True
    """Random periodic lattice translations of the training inputs."""
    network: NetworkConfig = field(default_factory=NetworkConfig)
    """Widths and depth of the network."""
    in_memory_limit: float = 2 * 1024**3
    """Cache the selected inputs in RAM when they take at most this many bytes."""
    block_size: int = 256
    """Samples per HDF5 read when streaming."""
    blocks_per_read: int = 4
    """Blocks read and shuffled together when streaming."""
    threads: int | None = None
    """TensorFlow intra-op threads (default: usable CPU cores)."""
    lr_patience: int = 3
    """Epochs without improvement before the learning rate is multiplied by ``lr_factor``."""
    lr_factor: float = 0.5
    """Learning-rate reduction factor on a plateau (1: constant learning rate)."""
    min_learning_rate: float = 1e-5
    """Floor of the plateau schedule."""

    def __post_init__(self) -> None:
        if isinstance(self.network, dict):
            object.__setattr__(self, "network", NetworkConfig.from_dict(self.network))
        for name in ("channels", "snapshots"):
            v = getattr(self, name)
            if v is not None:
                if isinstance(v, (str, int)):
                    v = (v,)
                object.__setattr__(self, name, tuple(v))
        self.validate()

    def validate(self) -> None:
        """Raise :class:`TrainingError` on an invalid combination."""
        if self.loss not in LOSS_NAMES:
            raise TrainingError(f"unknown loss {self.loss!r}; choose one of {LOSS_NAMES}")
        try:
            cols = n_theta_columns(self.loss, int(self.contrastive))
        except ValueError as exc:
            raise TrainingError(str(exc)) from None
        checks = [
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 2, f"batch_size must be >= 2, got {self.batch_size}"),
            (self.batch_size >= cols,
             f"batch_size {self.batch_size} is smaller than the {cols} theta columns of "
             f"loss {self.loss!r} with K={self.contrastive}; contrastive thetas come from "
             "other samples of the batch"),
            (self.learning_rate > 0, f"learning_rate must be > 0, got {self.learning_rate}"),
            (self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}"),
            (0.0 <= self.val_fraction < 1.0,
             f"val_fraction must lie in [0, 1), got {self.val_fraction}"),
            (self.patience >= 1, f"patience must be >= 1, got {self.patience}"),
            (self.lr_patience >= 1, f"lr_patience must be >= 1, got {self.lr_patience}"),
            (0 < self.lr_factor <= 1, f"lr_factor must lie in (0, 1], got {self.lr_factor}"),
            (self.min_learning_rate > 0, f"min_learning_rate must be > 0, got {self.min_learning_rate}"),
            (self.gamma > 0, f"gamma must be > 0, got {self.gamma}"),
            (self.lam >= 0, f"lam must be >= 0, got {self.lam}"),
            (self.block_size >= 1 and self.blocks_per_read >= 1,
             "block_size and blocks_per_read must be >= 1"),
        ]
        for ok, msg in checks:
            if not ok:
                raise TrainingError(msg)

    @property
    def n_theta_columns(self) -> int:
        """θ columns per x in a batch."""
        return n_theta_columns(self.loss, self.contrastive)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON dictionary."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["network"] = self.network.to_dict()
        for k in ("channels", "snapshots"):
            d[k] = None if d[k] is None else list(d[k])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainSettings":
        """Inverse of :meth:`to_dict`; unknown keys are an error naming the valid ones."""
        reject_unknown_keys(cls, d, "training setting", TrainingError)
        return cls(**d)


@dataclass
class TrainResult:
    """What :func:`train` produced."""

    out_dir: Path
    model_path: Path
    metadata_path: Path
    history: dict[str, list[float]]
    """Per-epoch ``epoch``, ``loss``, ``val_loss``, ``learning_rate``, ``time_s``."""
    best_epoch: int
    """0-based epoch whose weights were kept."""
    best_val_loss: float
    """Monitored loss at ``best_epoch`` (training loss when val_fraction is 0)."""
    epochs_run: int
    """Epochs completed in total (including those before a resume)."""
    stopped_early: bool
    resumed: bool
    n_train: int
    n_val: int
    in_memory: bool
    """Whether the inputs were cached in RAM (else streamed from the file)."""
    wall_time_s: float
    """Wall time of this call."""

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON dictionary (paths as strings)."""
        d = dataclasses.asdict(self)
        for k in ("out_dir", "model_path", "metadata_path"):
            d[k] = str(d[k])
        return d


# ---------------------------------------------------------------- helpers
def dataset_fingerprint(info: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of the dataset's config, prior and seed."""
    payload = {k: info.get(k) for k in ("config", "prior", "seed")}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def package_versions() -> dict[str, str]:
    """Versions of the packages that determine a trained model."""
    import platform

    import h5py
    import keras
    import tensorflow as tf

    import tdglnre

    return {"tdglnre": tdglnre.__version__, "tensorflow": tf.__version__,
            "keras": keras.__version__, "numpy": np.__version__, "h5py": h5py.__version__,
            "python": platform.python_version()}


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")
    os.replace(tmp, path)


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _finite_or_none(v: float) -> float | None:
    return float(v) if v is not None and math.isfinite(v) else None


def _write_history(out: Path, history: dict[str, list[Any]]) -> None:
    keys = list(history)
    with open(out / "history.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(keys)
        for row in zip(*(history[k] for k in keys)):
            w.writerow(row)
    _write_json(out / "history.json", history)


def plot_history(history: dict[str, list[float]], path: Path, best_epoch: int | None = None) -> None:
    """Loss (and validation loss) vs epoch, saved as PNG (no pyplot state)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 3.8), layout="constrained")
    ax = fig.subplots()
    ep = np.asarray(history.get("epoch", []), dtype=float) + 1
    ax.plot(ep, history.get("loss", []), "o-", ms=3, label="training")
    vl = [np.nan if v is None else v for v in history.get("val_loss", [])]
    if vl and np.isfinite(vl).any():
        ax.plot(ep, vl, "s-", ms=3, label="validation")
    if best_epoch is not None:
        ax.axvline(best_epoch + 1, color="0.5", ls="--", lw=1, label=f"best (epoch {best_epoch + 1})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.savefig(path, dpi=110)


def _holds_model(out: Path) -> list[str]:
    found = [n for n in _OWNED if (out / n).exists()]
    found += [f"{CHECKPOINT_DIR}/{n}" for n in _CKPT_FILES if (out / CHECKPOINT_DIR / n).exists()]
    return found


def _strategy() -> Any:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if len(gpus) > 1:
        log.info("%d GPUs visible: training under MirroredStrategy", len(gpus))
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


# ------------------------------------------------------------- callbacks
def _make_callbacks(stream_train: BatchStream, stream_val: BatchStream | None, out: Path,
                    state: dict[str, Any], settings: TrainSettings, quiet: bool) -> list[Any]:
    import keras

    ckpt = out / CHECKPOINT_DIR
    monitor = "val_loss" if stream_val is not None else "loss"

    class EpochOrder(keras.callbacks.Callback):
        """Tell the streams which epoch comes next (seeds its shuffle)."""

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            stream_train.epoch = epoch
            if stream_val is not None:
                stream_val.epoch = 0

    class Bookkeeper(keras.callbacks.Callback):
        """Early stopping on ``monitor`` with best-weight restore, resumable.

        Every epoch: history row, ``last.keras`` (model + optimizer state),
        ``best.weights.h5`` on improvement, ``state.json``. At the end the
        best weights are restored even when no early stop happened.
        """

        def __init__(self) -> None:
            super().__init__()
            self.t0 = time.perf_counter()

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            logs = dict(logs or {})
            hist = state["history"]
            lr = self.model.optimizer.learning_rate
            lr = float(np.asarray(lr.numpy() if hasattr(lr, "numpy") else lr))
            hist["epoch"].append(int(epoch))
            hist["loss"].append(_finite_or_none(logs.get("loss", float("nan"))))
            hist["val_loss"].append(_finite_or_none(logs.get("val_loss", float("nan"))))
            hist["learning_rate"].append(lr)
            hist["time_s"].append(round(time.perf_counter() - self.t0, 3))
            value = logs.get(monitor, float("nan"))
            if math.isfinite(value) and value < state["best"] - settings.min_delta:
                state.update(best=float(value), best_epoch=int(epoch), wait=0, lr_wait=0)
                self.model.save_weights(ckpt / "best.weights.h5")
            else:
                state["wait"] += 1
                # reduce-on-plateau, resumable: its counter lives in state.json and the
                # learning rate itself in the optimizer state of last.keras
                state["lr_wait"] = state.get("lr_wait", 0) + 1
                if state["lr_wait"] >= settings.lr_patience and lr > settings.min_learning_rate:
                    new_lr = max(lr * settings.lr_factor, settings.min_learning_rate)
                    self.model.optimizer.learning_rate.assign(new_lr)
                    state["lr_wait"] = 0
                    log.info("epoch %d: no %s improvement for %d epochs, learning rate %.3g -> %.3g",
                             epoch + 1, monitor, settings.lr_patience, lr, new_lr)
            state["epoch"] = int(epoch)
            if not math.isfinite(value):
                log.warning("epoch %d: %s is not finite; stopping", epoch + 1, monitor)
                self.model.stop_training = True
                state["stopped_early"] = True
            elif state["wait"] >= settings.patience:
                log.info("no %s improvement for %d epochs: stopping after epoch %d",
                         monitor, settings.patience, epoch + 1)
                self.model.stop_training = True
                state["stopped_early"] = True
            self.model.save(ckpt / "last.keras")
            _write_json(ckpt / "state.json", state)
            _write_history(out, hist)

        def on_train_end(self, logs: Any = None) -> None:
            best = ckpt / "best.weights.h5"
            if best.exists():
                self.model.load_weights(best)
                if not quiet:
                    log.info("restored the weights of epoch %d (%s=%.5g)",
                             state["best_epoch"] + 1, monitor, state["best"])

    return [EpochOrder(), Bookkeeper()]


# ------------------------------------------------------------------ train
def train(data_path: str | os.PathLike[str], out_dir: str | os.PathLike[str], *,
          resume: bool = False, force: bool = False, quiet: bool = False,
          **settings: Any) -> TrainResult:
    """Train a neural ratio estimator on an HDF5 ensemble.

    Parameters
    ----------
    data_path
        Ensemble file (schema v1, :mod:`tdglnre.io.ensemble`).
    out_dir
        Model directory to create (see the module docstring for its content).
    resume
        Continue from ``out_dir/checkpoints/last.keras``: weights, optimizer
        state, epoch counter, early-stopping state and history. Only
        ``epochs`` and ``patience`` may be changed; other settings come from
        the checkpoint. The dataset must have the same fingerprint.
    force
        Overwrite a model already in ``out_dir`` (ignored with ``resume``).
    quiet
        No Keras progress bar.
    **settings
        Fields of :class:`TrainSettings` (``loss``, ``epochs``,
        ``batch_size``, ``learning_rate``, ``val_fraction``, ``patience``,
        ``seed``, ``channels``, ``snapshots``, ``augment``, ``network``, …).

    Returns
    -------
    TrainResult

    Raises
    ------
    TrainingError, TrainingDataError
        Not an ensemble, too few samples for the split, NaN/Inf values,
        ``out_dir`` already holds a model, nothing to resume, a resumed
        dataset that differs.
    """
    path = Path(data_path)
    if not path.exists():
        raise TrainingDataError(f"{path}: no such file")
    with EnsembleSource(str(path)) as source:
        return train_source(source, out_dir, resume=resume, force=force, quiet=quiet, **settings)


def train_source(source: Any, out_dir: str | os.PathLike[str], *, resume: bool = False,
                 force: bool = False, quiet: bool = False, **settings: Any) -> TrainResult:
    """:func:`train` on an open source (:class:`~.data.EnsembleSource` or
    :class:`~.data.ArraySource`)."""
    t_start = time.perf_counter()
    out = Path(out_dir)
    ckpt = out / CHECKPOINT_DIR
    info = dict(source.info)
    fingerprint = dataset_fingerprint(info)

    if resume:
        state_path = ckpt / "state.json"
        if not state_path.exists() or not (ckpt / "last.keras").exists():
            raise TrainingError(f"{out}: nothing to resume (no {CHECKPOINT_DIR}/last.keras "
                                "and state.json); train without --resume first")
        state = json.loads(state_path.read_text())
        if state.get("fingerprint") != fingerprint:
            raise TrainingError(
                f"{out}: the checkpoint was trained on a different dataset (fingerprint "
                f"{str(state.get('fingerprint'))[:12]}…, this file {fingerprint[:12]}…); "
                "resume needs the same ensemble"
            )
        base = TrainSettings.from_dict(state["settings"]).to_dict()
        for k, v in settings.items():
            if k in RESUMABLE_OVERRIDES:
                base[k] = v
            elif k in base and _normalise(v) != base[k]:
                log.warning("resume: ignoring %s=%r (the checkpoint used %r)", k, v, base[k])
        cfg = TrainSettings.from_dict(base)
    else:
        existing = _holds_model(out) if out.exists() else []
        if existing and not force:
            raise TrainingError(
                f"{out} already holds a model ({', '.join(existing)}); pass --force to "
                "overwrite it or --resume to continue training"
            )
        if out.exists() and not out.is_dir():
            raise TrainingError(f"{out} exists and is not a directory")
        cfg = TrainSettings.from_dict(settings)
        for name in existing:
            (out / name).unlink()
        state = None

    configure_tensorflow(cfg.threads)
    import keras

    from .losses import make_loss
    from .network import build_model

    selection = resolve_selection(cfg.channels, cfg.snapshots, source.channels,
                                  source.snapshot_times)
    train_idx, val_idx = split_indices(source.n, cfg.val_fraction, cfg.seed)
    scan = scan_source(source, selection, train_idx, block_size=cfg.block_size,
                       in_memory_limit=cfg.in_memory_limit)
    n_cols = cfg.n_theta_columns
    stream_train = BatchStream(source, scan, selection, train_idx, cfg.batch_size, n_cols,
                               shuffle=True, seed=cfg.seed, augment=cfg.augment,
                               block_size=cfg.block_size, blocks_per_read=cfg.blocks_per_read)
    stream_val = None
    if len(val_idx):
        stream_val = BatchStream(source, scan, selection, val_idx, cfg.batch_size, n_cols,
                                 shuffle=False, seed=cfg.seed + 1, augment=False,
                                 block_size=cfg.block_size, blocks_per_read=cfg.blocks_per_read)
    log.info("training on %d samples, validating on %d (%s); input %s, %d theta per x (true + contrastive)",
             len(train_idx), len(val_idx), "in memory" if scan.in_memory else "streamed",
             stream_train.input_shape, n_cols)

    out.mkdir(parents=True, exist_ok=True)
    ckpt.mkdir(exist_ok=True)
    keras.utils.set_random_seed(cfg.seed)
    strategy = _strategy()
    with strategy.scope():
        if resume:
            model = keras.saving.load_model(ckpt / "last.keras")
            initial_epoch = int(state["epoch"]) + 1
            log.info("resuming after epoch %d (best %s at epoch %d)", initial_epoch,
                     state["best"], state["best_epoch"] + 1)
        else:
            b = source.bounds
            model = build_model(cfg.network, selection.n_channels, b.low, b.high,
                                mean=scan.mean, variance=scan.variance)
            opt = (keras.optimizers.AdamW(cfg.learning_rate, weight_decay=cfg.weight_decay)
                   if cfg.weight_decay > 0 else keras.optimizers.Adam(cfg.learning_rate))
            model.compile(optimizer=opt, loss=make_loss(cfg.loss, lam=cfg.lam, gamma=cfg.gamma))
            initial_epoch = 0
            state = {
                "epoch": -1, "best": math.inf, "best_epoch": -1, "wait": 0, "lr_wait": 0,
                "stopped_early": False, "fingerprint": fingerprint,
                "settings": cfg.to_dict(),
                "history": {k: [] for k in ("epoch", "loss", "val_loss", "learning_rate",
                                            "time_s")},
            }
    state["stopped_early"] = False if initial_epoch < cfg.epochs else state["stopped_early"]
    state["settings"] = cfg.to_dict()
    train_ds = make_dataset(stream_train)
    val_ds = make_dataset(stream_val) if stream_val is not None else None
    callbacks = _make_callbacks(stream_train, stream_val, out, state, cfg, quiet)
    if initial_epoch < cfg.epochs:
        model.fit(train_ds, validation_data=val_ds, epochs=cfg.epochs,
                  initial_epoch=initial_epoch, callbacks=callbacks, shuffle=False,
                  verbose=0 if quiet else 1)
    else:
        log.info("checkpoint already at epoch %d >= epochs=%d: nothing to train",
                 initial_epoch, cfg.epochs)
        if (ckpt / "best.weights.h5").exists():
            model.load_weights(ckpt / "best.weights.h5")

    from .model_io import build_metadata

    model.save(out / MODEL_FILE)
    history = state["history"]
    meta = build_metadata(
        source=source, selection=selection, settings=cfg, scan=scan, fingerprint=fingerprint,
        n_train=len(train_idx), n_val=len(val_idx), state=state,
    )
    _write_json(out / METADATA_FILE, meta)
    _write_history(out, history)
    try:
        plot_history(history, out / "loss_curve.png", state["best_epoch"] if
                     state["best_epoch"] >= 0 else None)
    except Exception as exc:  # pragma: no cover - plotting must not lose a model
        log.warning("could not draw the loss curve: %s", exc)
    wall = time.perf_counter() - t_start
    res = TrainResult(
        out_dir=out, model_path=out / MODEL_FILE, metadata_path=out / METADATA_FILE,
        history=history, best_epoch=int(state["best_epoch"]),
        best_val_loss=float(state["best"]), epochs_run=int(state["epoch"]) + 1,
        stopped_early=bool(state["stopped_early"]), resumed=bool(resume),
        n_train=len(train_idx), n_val=len(val_idx), in_memory=bool(scan.in_memory),
        wall_time_s=round(wall, 3),
    )
    log.info("best %s %.5g at epoch %d; model in %s", "val_loss" if len(val_idx) else "loss",
             res.best_val_loss, res.best_epoch + 1, out)
    return res


def _normalise(v: Any) -> Any:
    if isinstance(v, tuple):
        return list(v)
    if isinstance(v, NetworkConfig):
        return v.to_dict()
    return v


__all__: Sequence[str] = ("TrainSettings", "TrainResult", "TrainingError", "train",
                          "train_source", "dataset_fingerprint", "plot_history")
