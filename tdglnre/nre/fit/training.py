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

import dataclasses
import logging
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..infer.artifacts import (
    CHECKPOINT_DIR,
    METADATA_FILE,
    MODEL_FILE,
    dataset_fingerprint,
    find_checkpoint,
    holds_model,
    package_versions,  # noqa: F401  (re-exported)
    restore_set_aside,
    save_atomic,
    set_aside,
    write_json,
)
from .callbacks import finite_or_none, write_history, make_callbacks, plot_history
from ..pipeline.data import (
    BatchStream,
    EnsembleSource,
    TrainingDataError,
    make_dataset,
    measure_inputs,
    measured_shape,
    resolve_selection,
    scan_source,
    split_indices,
)
from ..settings import RESUMABLE_OVERRIDES, NetworkConfig, TrainingError, TrainSettings
from ..tf_setup import ensure_tensorflow

log = logging.getLogger(__name__)


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
    """Validation loss at ``best_epoch``; NaN when there was no validation split."""
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
    monitor: str = "val_loss"
    """Loss that early stopping watched: ``val_loss``, or ``loss`` (the training
    loss) when ``val_fraction`` is 0."""
    best_loss: float = math.nan
    """Best value of ``monitor`` (at ``best_epoch``)."""
    tempering: dict[str, Any] | None = None
    """The posterior temperature fitted after training (``train(..., temper=True)``), else None."""

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON dictionary (paths as strings; NaN as null)."""
        d = dataclasses.asdict(self)
        for k in ("out_dir", "model_path", "metadata_path"):
            d[k] = str(d[k])
        for k in ("best_val_loss", "best_loss"):
            d[k] = finite_or_none(d[k])
        return d


def _strategy() -> Any:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if len(gpus) > 1:
        log.info("%d GPUs visible: training under MirroredStrategy", len(gpus))
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


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
        No progress output (otherwise a Keras progress bar on a terminal and
        one line per epoch on stdout when it is not a terminal).
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
    settings = _parsed_measurement(settings)  # the text is parsed here, once; bad settings fail before the file opens
    if not resume:
        TrainSettings.from_dict(settings)
    if not path.exists():
        raise TrainingDataError(f"{path}: no such file")
    with EnsembleSource(str(path)) as source:
        return train_source(source, out_dir, resume=resume, force=force, quiet=quiet, **settings)


def train_source(source: Any, out_dir: str | os.PathLike[str], *, resume: bool = False,
                 force: bool = False, quiet: bool = False, **settings: Any) -> TrainResult:
    """:func:`train` on an open source (:class:`~.data.EnsembleSource` or
    :class:`~.data.ArraySource`).

    Everything that can be checked (settings, channels, snapshots, split,
    finite data) is checked before ``out_dir`` is touched. With ``force``,
    an old model is moved to ``out_dir/.replaced-model`` while the new one
    trains, put back if training raises, and deleted on success.
    """
    t_start = time.perf_counter()
    out = Path(out_dir)
    info = dict(source.info)
    fingerprint = dataset_fingerprint(info)

    checkpoint = None
    existing: list[str] = []
    if resume:
        checkpoint = _resumable_checkpoint(out, fingerprint)
        state = checkpoint.state
        cfg = _resumed_settings(out, state, settings)
    else:
        existing = _models_to_replace(out, force)
        cfg = _fresh_settings(info, settings)
        state = None

    selection = resolve_selection(cfg.channels, cfg.snapshots, source.channels,
                                  source.snapshot_times)
    measurement = _measurement(cfg, selection, source)
    train_idx, val_idx = split_indices(source.n, cfg.val_fraction, cfg.seed)
    measure = None
    if measurement is not None:
        def measure(x: np.ndarray, ids: np.ndarray) -> np.ndarray:
            return measure_inputs(measurement, x, selection, cfg.seed, 0, ids)
    scan = scan_source(source, selection, train_idx, block_size=cfg.block_size,
                       in_memory_limit=cfg.in_memory_limit, measure=measure)
    # all checks passed: only now is the old model set aside
    replaced = set_aside(out, existing) if existing else None
    try:
        res = _fit(source, out, cfg, state, checkpoint, selection, scan, train_idx, val_idx,
                   fingerprint, quiet=quiet, measurement=measurement)
    except BaseException:
        if replaced is not None:
            log.warning("training failed: restoring the model that was in %s", out)
            restore_set_aside(out, replaced)
        raise
    if replaced is not None:
        shutil.rmtree(replaced, ignore_errors=True)
    res.wall_time_s = round(time.perf_counter() - t_start, 3)
    return res


def _resumable_checkpoint(out: Path, fingerprint: str) -> Any:
    """The newest intact checkpoint in ``out``, which must have been trained on this dataset."""
    ckpt = out / CHECKPOINT_DIR
    checkpoint = find_checkpoint(ckpt) if ckpt.is_dir() else None
    if checkpoint is None:
        raise TrainingError(f"{out}: nothing to resume (no usable {CHECKPOINT_DIR}/last.keras "
                            "and state.json); train without --resume first")
    state = checkpoint.state
    if state.get("fingerprint") != fingerprint:
        raise TrainingError(
            f"{out}: the checkpoint was trained on a different dataset (fingerprint "
            f"{str(state.get('fingerprint'))[:12]}…, this file {fingerprint[:12]}…); "
            "resume needs the same ensemble"
        )
    return checkpoint


def _resumed_settings(out: Path, state: dict[str, Any], settings: dict[str, Any]) -> TrainSettings:
    """The checkpoint's settings with the resumable overrides (``epochs``, ``patience``) of ``settings``.

    Another measurement is refused; other differing settings are ignored with a warning.
    """
    trained = TrainSettings.from_dict(state["settings"])
    base = trained.to_dict()
    settings = _parsed_measurement(settings)
    if "measurement" in settings:
        asked = TrainSettings(measurement=settings["measurement"]).measurement
        if asked != trained.measurement:
            raise TrainingError(
                f"{out}: resume with `measurement` {str(asked or 'none')!r}, but the checkpoint was "
                f"trained with {base.get('measurement') or 'none'!r}; train a new model instead")
    for k, v in settings.items():
        if k in RESUMABLE_OVERRIDES:
            base[k] = v
        elif k in base and k != "measurement" and _normalise(v) != base[k]:
            log.warning("resume: ignoring %s=%r (the checkpoint used %r)", k, v, base[k])
    base["measurement"] = trained.measurement  # the parsed model, not its text again
    return TrainSettings.from_dict(base)


def _models_to_replace(out: Path, force: bool) -> list[str]:
    """The files of a model already in ``out`` (refused without ``force``)."""
    if out.exists() and not out.is_dir():
        raise TrainingError(f"{out} exists and is not a directory")
    existing = holds_model(out) if out.exists() else []
    if existing and not force:
        raise TrainingError(
            f"{out} already holds a model ({', '.join(existing)}); pass --force to "
            "overwrite it or --resume to continue training"
        )
    return existing


def _fresh_settings(info: dict[str, Any], settings: dict[str, Any]) -> TrainSettings:
    """Settings of a new run; without a ``measurement`` the one the ensemble's preset declares."""
    if settings.get("measurement") is None and info.get("measurement"):
        settings = _parsed_measurement({**settings, "measurement": info["measurement"]})
        log.info("measurement %r: the instrument the ensemble's preset declares (measurement='none' trains on "
                 "perfect images)", info["measurement"])
    return TrainSettings.from_dict(settings)


def _fit(source: Any, out: Path, cfg: TrainSettings, state: dict[str, Any] | None,
         checkpoint: Any, selection: Any, scan: Any, train_idx: np.ndarray,
         val_idx: np.ndarray, fingerprint: str, *, quiet: bool,
         measurement: Any = None) -> TrainResult:
    """Build or reload the model, fit it and write the model directory."""
    ensure_tensorflow(cfg.threads)
    import keras

    # registers their layers and losses (a checkpoint loads on resume); the helpers below import what they use
    from ..infer import model_io  # noqa: F401
    from ..net import losses, network, regression, spectrum, summaries, time_encoder  # noqa: F401

    stream_train, stream_val = _streams(source, scan, selection, cfg, train_idx, val_idx, measurement)
    ckpt = _open_checkpoint_dir(out)
    keras.utils.set_random_seed(cfg.seed)
    with _strategy().scope():
        if checkpoint is not None:
            model, initial_epoch = _load_checkpoint(checkpoint, state)
        else:
            model = _new_model(source, cfg, selection, scan, stream_train)
            initial_epoch = 0
            state = _initial_state(cfg, fingerprint)
    if checkpoint is not None and checkpoint.best_path is not None \
            and checkpoint.best_path.name != "best.weights.h5":
        # resumed from the previous checkpoint: its best weights become the current ones
        os.replace(checkpoint.best_path, ckpt / "best.weights.h5")
    state["stopped_early"] = False if initial_epoch < cfg.epochs else state["stopped_early"]
    state["settings"] = cfg.to_dict()
    train_ds = make_dataset(stream_train)
    val_ds = make_dataset(stream_val) if stream_val is not None else None
    on_tty = _isatty(sys.stdout)
    callbacks = make_callbacks(stream_train, stream_val, out, state, cfg, quiet,
                                epoch_lines=not quiet and not on_tty)
    if initial_epoch < cfg.epochs:
        model.fit(train_ds, validation_data=val_ds, epochs=cfg.epochs,
                  initial_epoch=initial_epoch, callbacks=callbacks, shuffle=False,
                  verbose=1 if (on_tty and not quiet) else 0)
    else:
        log.info("checkpoint already at epoch %d >= epochs=%d: nothing to train",
                 initial_epoch, cfg.epochs)
        if (ckpt / "best.weights.h5").exists():
            model.load_weights(ckpt / "best.weights.h5")

    _write_model_dir(out, model, state, source=source, selection=selection, settings=cfg, scan=scan,
                     fingerprint=fingerprint, n_train=len(train_idx), n_val=len(val_idx),
                     input_shape=stream_train.input_shape, measurement=measurement)
    monitor = "val_loss" if len(val_idx) else "loss"
    best = float(state["best"])
    res = TrainResult(
        out_dir=out, model_path=out / MODEL_FILE, metadata_path=out / METADATA_FILE,
        history=state["history"], best_epoch=int(state["best_epoch"]),
        best_val_loss=best if monitor == "val_loss" else math.nan,
        epochs_run=int(state["epoch"]) + 1,
        stopped_early=bool(state["stopped_early"]), resumed=checkpoint is not None,
        n_train=len(train_idx), n_val=len(val_idx), in_memory=bool(scan.in_memory),
        wall_time_s=0.0, monitor=monitor, best_loss=best,
    )
    log.info("best %s %.5g at epoch %d; model in %s", monitor, best, res.best_epoch + 1, out)
    return res


def _streams(source: Any, scan: Any, selection: Any, cfg: TrainSettings, train_idx: np.ndarray,
             val_idx: np.ndarray, measurement: Any) -> tuple[BatchStream, BatchStream | None]:
    """The training stream (shuffled, augmented, fresh noise) and the validation stream (None without a split)."""
    n_cols, conditioned = cfg.n_theta_columns, cfg.network.instrument_input
    stream_train = BatchStream(source, scan, selection, train_idx, cfg.batch_size, n_cols,
                               shuffle=True, seed=cfg.seed, augment=cfg.augment,
                               block_size=cfg.block_size, blocks_per_read=cfg.blocks_per_read,
                               measurement=measurement, fresh_noise=True, instrument_input=conditioned)
    stream_val = None
    if len(val_idx):
        stream_val = BatchStream(source, scan, selection, val_idx, cfg.batch_size, n_cols,
                                 shuffle=False, seed=cfg.seed + 1, augment=False,
                                 block_size=cfg.block_size, blocks_per_read=cfg.blocks_per_read,
                                 measurement=measurement, fresh_noise=False, instrument_input=conditioned)
    log.info("training on %d samples, validating on %d (%s); input %s, %d theta per x (true + contrastive)",
             len(train_idx), len(val_idx), "in memory" if scan.in_memory else "streamed",
             stream_train.input_shape, n_cols)
    return stream_train, stream_val


def _open_checkpoint_dir(out: Path) -> Path:
    """Create ``out/checkpoints``, removing the temporaries (``last.tmpPID.keras``) a killed run left there.

    Called on a fresh start and on ``resume`` before the first checkpoint is
    written; temporaries of a run still in progress are kept.
    """
    from ..atomic import remove_stale_checkpoint_temporaries

    ckpt = out / CHECKPOINT_DIR
    out.mkdir(parents=True, exist_ok=True)
    ckpt.mkdir(exist_ok=True)
    for path in remove_stale_checkpoint_temporaries(ckpt):
        log.info("removed %s, left by a training run that was killed", path)
    return ckpt


def _load_checkpoint(checkpoint: Any, state: dict[str, Any]) -> tuple[Any, int]:
    """The checkpoint's model (with optimizer state) and the first epoch still to train."""
    import keras

    try:
        model = keras.saving.load_model(checkpoint.model_path)
    except (ValueError, OSError) as exc:
        raise TrainingError(f"{checkpoint.model_path}: cannot load the checkpoint "
                            f"({exc})") from None
    initial_epoch = int(state["epoch"]) + 1
    log.info("resuming after epoch %d (best %s at epoch %d)", initial_epoch,
             state["best"], state["best_epoch"] + 1)
    return model, initial_epoch


def _new_model(source: Any, cfg: TrainSettings, selection: Any, scan: Any, stream_train: BatchStream) -> Any:
    """A new compiled model, standardised on the training statistics (and the spectrum/summary branches)."""
    import keras

    from ..net.losses import make_loss
    from ..net.network import build_model, fit_branch_statistics
    from ..net.regression import fit_regression_head

    b = source.bounds
    names = selection.channel_names  # of one snapshot, as the network sees it (measured)
    names = list(names if cfg.measurement is None else cfg.measurement.output_channels(names))
    model = build_model(cfg.network, stream_train.input_shape[-1], b.low, b.high, mean=scan.mean,
                        variance=scan.variance, n_snapshots=len(selection.snapshot_indices),
                        size=stream_train.input_shape[0], channels=names, instrument_size=stream_train.instrument_size)
    fit_branch_statistics(model, lambda: (inp[0] for inp, _ in stream_train()))
    fitted = fit_regression_head(model, ((inp[0], inp[1][:, 0]) for inp, _ in stream_train()))
    if fitted is not None:
        log.info("regression head fitted on %d training inputs; residual std (scaled theta) %s; Student-t term on "
                 "%s", fitted["samples"], ", ".join(f"{v:.4f}" for v in fitted["residual_std"]),
                 [n for n, used in zip(source.bounds.names, fitted["tails"]) if used] or "none")
    opt = (keras.optimizers.AdamW(cfg.learning_rate, weight_decay=cfg.weight_decay)
           if cfg.weight_decay > 0 else keras.optimizers.Adam(cfg.learning_rate))
    model.compile(optimizer=opt, loss=make_loss(cfg.loss, lam=cfg.lam, gamma=cfg.gamma))
    return model


def _initial_state(cfg: TrainSettings, fingerprint: str) -> dict[str, Any]:
    """The training state (``state.json``) before the first epoch."""
    return {
        "epoch": -1, "best": math.inf, "best_epoch": -1, "wait": 0, "lr_wait": 0,
        "stopped_early": False, "fingerprint": fingerprint,
        "settings": cfg.to_dict(),
        "history": {k: [] for k in ("epoch", "loss", "val_loss", "learning_rate",
                                    "time_s")},
    }


def _write_model_dir(out: Path, model: Any, state: dict[str, Any], **metadata: Any) -> None:
    """``model.keras``, ``metadata.json`` (:func:`.model_io.build_metadata` of ``metadata``), history, loss curve."""
    from ..infer.model_io import build_metadata

    save_atomic(out / MODEL_FILE, model.save)
    history = state["history"]
    write_json(out / METADATA_FILE, build_metadata(state=state, **metadata))
    write_history(out, history)
    try:
        plot_history(history, out / "loss_curve.png", state["best_epoch"] if
                     state["best_epoch"] >= 0 else None)
    except Exception as exc:  # pragma: no cover - plotting must not lose a model
        log.warning("could not draw the loss curve: %s", exc)


def _parsed_measurement(settings: dict[str, Any]) -> dict[str, Any]:
    """``settings`` with a ``measurement`` given as text (or tables) replaced by its parsed model.

    ``none`` stays an explicit identity model (it overrides the ensemble's
    declared measurement); a model passes through, so a text is parsed once
    however many settings objects are built from it.
    """
    spec = settings.get("measurement")
    if spec is None:
        return settings
    from ...instrument.model import MeasurementModel

    return {**settings, "measurement": MeasurementModel.parse(spec)}


def _measurement(cfg: TrainSettings, selection: Any, source: Any) -> Any:
    """The run's measurement model in pixels of the training lattice (None for a perfect measurement).

    Raises :class:`~tdglnre.errors.ConfigError` before any file is written when
    it names a channel the selection lacks or bins to a size that does not divide N.
    """
    if cfg.measurement is None:
        return None
    from ...instrument.model import resolve_on_lattice

    N = int(source.sample_shape[1])
    model = resolve_on_lattice(cfg.measurement, source.info.get("L"), N,
                               lacking="the training data do not say their lattice length L")
    if model is not cfg.measurement:  # blur_xi: widths in coherence lengths -> pixels of this lattice (h = L/N)
        log.info("measurement %r in pixels of this lattice (h = %g xi): %s", str(cfg.measurement),
                 float(source.info["L"]) / N, model)
    measured_shape(model, selection, N)
    return model


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _normalise(v: Any) -> Any:
    if isinstance(v, tuple):
        return list(v)
    if isinstance(v, NetworkConfig):
        return v.to_dict()
    return v


__all__: Sequence[str] = ("TrainSettings", "TrainResult", "TrainingError", "train",
                          "train_source", "dataset_fingerprint", "plot_history")
