"""Per-epoch bookkeeping of a training run: history files, checkpoints, early stopping.

:func:`make_callbacks` returns the Keras callbacks :func:`.training.train`
fits with; their state (``state.json``) is what ``--resume`` continues from.
"""

from __future__ import annotations

import csv
import logging
import math
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..infer.artifacts import CHECKPOINT_DIR, commit_checkpoint, write_json

if TYPE_CHECKING:
    from ..settings import TrainSettings
    from ..pipeline.stream import BatchStream

log = logging.getLogger("tdglnre.nre.training")


def finite_or_none(v: float) -> float | None:
    return float(v) if v is not None and math.isfinite(v) else None


def write_history(out: Path, history: dict[str, list[Any]]) -> None:
    keys = list(history)
    with open(out / "history.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(keys)
        for row in zip(*(history[k] for k in keys)):
            w.writerow(row)
    write_json(out / "history.json", history)


def plot_history(history: dict[str, list[float]], path: Path, best_epoch: int | None = None) -> None:
    """Forward to :func:`tdglnre.plots.posterior.plot_history` (imported on call: matplotlib only when drawn)."""
    from ...plots.posterior import plot_history as _plot_history

    _plot_history(history, path, best_epoch)


# ------------------------------------------------------------- callbacks
def make_callbacks(stream_train: BatchStream, stream_val: BatchStream | None, out: Path,
                    state: dict[str, Any], settings: TrainSettings, quiet: bool,
                    epoch_lines: bool) -> list[Any]:
    """The Keras callbacks of a run: epoch order, bookkeeping (history, checkpoint, early stopping), epoch lines."""
    import keras

    monitor = "val_loss" if stream_val is not None else "loss"
    cbs: list[Any] = [_epoch_order(keras, stream_train, stream_val),
                      _bookkeeper(keras, out, state, settings, monitor, quiet)]
    if epoch_lines:
        cbs.append(_epoch_line(keras, state, settings, stream_val is not None))
    return cbs


def _epoch_order(keras: Any, stream_train: BatchStream, stream_val: BatchStream | None) -> Any:
    class EpochOrder(keras.callbacks.Callback):
        """Tell the streams which epoch comes next (seeds its shuffle)."""

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            stream_train.epoch = epoch
            if stream_val is not None:
                stream_val.epoch = 0

    return EpochOrder()


def _bookkeeper(keras: Any, out: Path, state: dict[str, Any], settings: TrainSettings, monitor: str,
                quiet: bool) -> Any:
    ckpt = out / CHECKPOINT_DIR

    class Bookkeeper(keras.callbacks.Callback):
        """Early stopping on ``monitor`` with best-weight restore, resumable.

        Every epoch: history row and an atomic checkpoint (:func:`.artifacts.commit_checkpoint`:
        ``last.keras`` with optimizer state, ``best.weights.h5`` on improvement,
        ``state.json``). At the end the best weights are restored even when no
        early stop happened.
        """

        def __init__(self) -> None:
            super().__init__()
            self.t0 = time.perf_counter()

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            logs = dict(logs or {})
            lr = _record_epoch(state["history"], epoch, logs, self.model.optimizer.learning_rate, self.t0)
            value = logs.get(monitor, float("nan"))
            improved = math.isfinite(value) and value < state["best"] - settings.min_delta
            if improved:
                state.update(best=float(value), best_epoch=int(epoch), wait=0, lr_wait=0)
            else:
                state["wait"] += 1
                _reduce_on_plateau(self.model.optimizer, state, settings, lr, epoch, monitor)
            state["epoch"] = int(epoch)
            if _should_stop(state, settings, value, epoch, monitor):
                self.model.stop_training = True
                state["stopped_early"] = True
            commit_checkpoint(ckpt, self.model, state, improved=improved)
            write_history(out, state["history"])

        def on_train_end(self, logs: Any = None) -> None:
            best = ckpt / "best.weights.h5"
            if best.exists():
                self.model.load_weights(best)
                if not quiet:
                    log.info("restored the weights of epoch %d (%s=%.5g)",
                             state["best_epoch"] + 1, monitor, state["best"])

    return Bookkeeper()


def _record_epoch(hist: dict[str, list[Any]], epoch: int, logs: dict[str, Any], learning_rate: Any,
                  t0: float) -> float:
    """Append one epoch's row to the history; returns the learning rate it ran at."""
    lr = float(np.asarray(learning_rate.numpy() if hasattr(learning_rate, "numpy") else learning_rate))
    hist["epoch"].append(int(epoch))
    hist["loss"].append(finite_or_none(logs.get("loss", float("nan"))))
    hist["val_loss"].append(finite_or_none(logs.get("val_loss", float("nan"))))
    hist["learning_rate"].append(lr)
    hist["time_s"].append(round(time.perf_counter() - t0, 3))
    return lr


def _reduce_on_plateau(optimizer: Any, state: dict[str, Any], settings: TrainSettings, lr: float, epoch: int,
                       monitor: str) -> None:
    """Reduce-on-plateau, resumable: its counter lives in state.json and the learning rate in last.keras."""
    state["lr_wait"] = state.get("lr_wait", 0) + 1
    if state["lr_wait"] >= settings.lr_patience and lr > settings.min_learning_rate:
        new_lr = max(lr * settings.lr_factor, settings.min_learning_rate)
        optimizer.learning_rate.assign(new_lr)
        state["lr_wait"] = 0
        log.info("epoch %d: no %s improvement for %d epochs, learning rate %.3g -> %.3g",
                 epoch + 1, monitor, settings.lr_patience, lr, new_lr)


def _should_stop(state: dict[str, Any], settings: TrainSettings, value: float, epoch: int, monitor: str) -> bool:
    """Stop on a non-finite loss or when ``patience`` epochs passed without improvement."""
    if not math.isfinite(value):
        log.warning("epoch %d: %s is not finite; stopping", epoch + 1, monitor)
        return True
    if state["wait"] >= settings.patience:
        log.info("no %s improvement for %d epochs: stopping after epoch %d",
                 monitor, settings.patience, epoch + 1)
        return True
    return False


def _epoch_line(keras: Any, state: dict[str, Any], settings: TrainSettings, has_val: bool) -> Any:
    class EpochLine(keras.callbacks.Callback):
        """One line per epoch on stdout (used when stdout is not a terminal)."""

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            h = state["history"]
            val = h["val_loss"][-1]
            text = (f"epoch {epoch + 1}/{settings.epochs}: loss {_fmt(h['loss'][-1])}"
                    + ("" if not has_val else f", val_loss {_fmt(val)}")
                    + f", lr {h['learning_rate'][-1]:.3g}, {h['time_s'][-1]:.1f} s")
            sys.stdout.write(text + "\n")
            sys.stdout.flush()

    return EpochLine()


def _fmt(v: float | None) -> str:
    return "nan" if v is None else f"{v:.5g}"
