"""Files of a model directory: atomic writes, checkpoints, fingerprints, versions, replacement.

A leaf module shared by :mod:`.training` and :mod:`.model_io` (no import of
either, and TensorFlow only inside :func:`package_versions`).

Checkpoints
-----------
Every epoch :func:`commit_checkpoint` writes the model (with optimizer state)
and, on improvement, the best weights to temporary files in ``checkpoints/``,
then moves them into place with :func:`os.replace` after moving the previous
files aside (``last.keras`` → ``prev.keras``, ``best.weights.h5`` →
``prev.best.weights.h5``, ``state.json`` → ``prev.state.json``). ``state.json``
records the sha256 of the model and best-weights files it belongs to, so
:func:`find_checkpoint` can pick, at resume, the newest state whose files are
intact, wherever a kill -9 interrupted the sequence.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..atomic import write_text_atomic

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
LAST = "last.keras"
PREV = "prev.keras"
BEST = "best.weights.h5"
PREV_BEST = "prev.best.weights.h5"
STATE = "state.json"
PREV_STATE = "prev.state.json"
CHECKPOINT_FILES = (LAST, BEST, STATE, PREV, PREV_BEST, PREV_STATE)
MODEL_FILE = "model.keras"
METADATA_FILE = "metadata.json"
#: The files of a trained model directory besides ``checkpoints/``.
MODEL_DIR_FILES = (MODEL_FILE, METADATA_FILE, "history.csv", "history.json", "loss_curve.png")
#: Where a ``force`` run keeps the model it replaces until it has finished.
REPLACED_DIR = ".replaced-model"


def holds_model(out: Path) -> list[str]:
    """The files of a trained model (and its checkpoints) in ``out``, relative to it."""
    found = [n for n in MODEL_DIR_FILES if (out / n).exists()]
    found += [f"{CHECKPOINT_DIR}/{n}" for n in CHECKPOINT_FILES
              if (out / CHECKPOINT_DIR / n).exists()]
    return found


def set_aside(out: Path, names: list[str]) -> Path | None:
    """Move the files of an old model into ``out/.replaced-model`` (restored on failure)."""
    if not names:
        return None
    keep = out / REPLACED_DIR
    if keep.exists():  # left by a run killed before it finished; that run's model is older
        shutil.rmtree(keep)
    for name in names:
        dst = keep / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(out / name, dst)
    return keep


def restore_set_aside(out: Path, keep: Path | None) -> None:
    """Put the files set aside by :func:`set_aside` back, dropping the failed run's."""
    if keep is None or not keep.exists():
        return
    for name in holds_model(out):
        (out / name).unlink()
    for src in sorted(p for p in keep.rglob("*") if p.is_file()):
        dst = out / src.relative_to(keep)
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dst)
    shutil.rmtree(keep)



def dataset_fingerprint(info: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of the dataset's config, prior and seed."""
    payload = {k: info.get(k) for k in ("config", "prior", "seed")}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def package_versions() -> dict[str, str]:
    """Versions of the packages that determine a trained model."""
    import platform

    import h5py
    import numpy as np

    from ..tf_setup import ensure_tensorflow

    tf = ensure_tensorflow()
    import keras

    from ... import __version__

    return {"tdglnre": __version__, "tensorflow": tf.__version__,
            "keras": keras.__version__, "numpy": np.__version__, "h5py": h5py.__version__,
            "python": platform.python_version()}


def json_default(o: Any) -> Any:
    """``json.dumps`` fallback for NumPy scalars/arrays and paths."""
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON to ``path`` atomically (:func:`..atomic.write_text_atomic`).

    The temporary has a unique name (two writers never share one; one left by
    a killed writer is removed by the next write) and the file gets the mode
    any other file of its directory gets.
    """
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False, default=json_default) + "\n")


def temporary_name(path: Path) -> Path:
    """A sibling of ``path`` that keeps the suffix Keras insists on (``.keras``, ``.weights.h5``)."""
    name = path.name
    for suffix in (".weights.h5", ".keras"):
        if name.endswith(suffix):
            return path.with_name(f"{name[:-len(suffix)]}.tmp{os.getpid()}{suffix}")
    return path.with_name(f"{name}.tmp{os.getpid()}")


def save_atomic(path: Path, save: Callable[[Path], Any]) -> str:
    """Call ``save(tmp)`` on a temporary sibling, fsync it and rename it to ``path``.

    Returns the sha256 of the file written. A process killed during ``save``
    leaves ``path`` as it was.
    """
    tmp = temporary_name(path)
    try:
        save(tmp)
        _fsync(tmp)
        digest = sha256_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return digest


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def commit_checkpoint(ckpt: Path, model: Any, state: dict[str, Any], *, improved: bool) -> None:
    """Write one epoch's checkpoint so that a kill at any point leaves a resumable one.

    Parameters
    ----------
    ckpt
        The ``checkpoints/`` directory.
    model
        The Keras model (saved with its optimizer state).
    state
        The training state; ``state["files"]`` is set to the sha256 of the
        model and best-weights files it belongs to.
    improved
        Whether this epoch is the new best (its weights become ``best.weights.h5``).
    """
    files = dict(state.get("files") or {})
    tmp_last = temporary_name(ckpt / LAST)
    tmp_best = temporary_name(ckpt / BEST)
    try:
        model.save(tmp_last)
        _fsync(tmp_last)
        files[LAST] = sha256_file(tmp_last)
        if improved:
            model.save_weights(tmp_best)
            _fsync(tmp_best)
            files[BEST] = sha256_file(tmp_best)
    except BaseException:
        tmp_last.unlink(missing_ok=True)
        tmp_best.unlink(missing_ok=True)
        raise
    # the previous state stays readable (and its files findable by hash) throughout
    if (ckpt / LAST).exists():
        os.replace(ckpt / LAST, ckpt / PREV)
    os.replace(tmp_last, ckpt / LAST)
    if improved:
        if (ckpt / BEST).exists():
            os.replace(ckpt / BEST, ckpt / PREV_BEST)
        os.replace(tmp_best, ckpt / BEST)
    state["files"] = files
    if (ckpt / STATE).exists():
        os.replace(ckpt / STATE, ckpt / PREV_STATE)
    write_json(ckpt / STATE, state)


@dataclass
class Checkpoint:
    """A consistent checkpoint found by :func:`find_checkpoint`."""

    state: dict[str, Any]
    model_path: Path
    best_path: Path | None
    fallback: bool
    """True when the newest state was unusable and an older one was taken."""


def _match(ckpt: Path, names: tuple[str, ...], digest: str | None) -> Path | None:
    for n in names:
        p = ckpt / n
        if p.exists() and digest is not None and sha256_file(p) == digest:
            return p
    return None


def find_checkpoint(ckpt: Path) -> Checkpoint | None:
    """The newest intact checkpoint in ``ckpt``, or None when there is none.

    A state qualifies when it parses and the model file (and best-weights
    file, if it names one) with its recorded sha256 exists under either
    name. A state of an older format without hashes is taken with
    ``last.keras`` and ``best.weights.h5`` as they are.
    """
    problems = []
    for i, name in enumerate((STATE, PREV_STATE)):
        path = ckpt / name
        if not path.exists():
            continue
        try:
            state = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
            problems.append(f"{name} unreadable ({exc})")
            continue
        files = state.get("files")
        if files is None:  # written before checkpoints were hashed
            if (ckpt / LAST).exists():
                best = ckpt / BEST if (ckpt / BEST).exists() else None
                return Checkpoint(state, ckpt / LAST, best, fallback=i > 0)
            problems.append(f"{name} has no model file")
            continue
        model = _match(ckpt, (LAST, PREV), files.get(LAST))
        best = _match(ckpt, (BEST, PREV_BEST), files.get(BEST)) if files.get(BEST) else None
        if model is None:
            problems.append(f"{name}: its model file is missing or damaged")
            continue
        if files.get(BEST) and best is None:
            problems.append(f"{name}: its best-weights file is missing or damaged")
            continue
        cp = Checkpoint(state, model, best, fallback=bool(problems) or i > 0)
        if cp.fallback:
            log.warning("%s: newest checkpoint unusable (%s); resuming from the previous one, "
                        "after epoch %d", ckpt, "; ".join(problems) or f"no {STATE}",
                        int(state["epoch"]) + 1)
        return cp
    if problems:
        log.warning("%s: no usable checkpoint (%s)", ckpt, "; ".join(problems))
    return None
