"""Train the neural ratio estimator on an ensemble, then fit its out-of-distribution reference.

>>> res = tg.train("train.h5", "model/", epochs=30)
>>> res.best_val_loss

TensorFlow is imported only when this function runs.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..errors import ConfigError, TDGLError
from .._validate import as_bool, as_int

log = logging.getLogger(__name__)


def train(data: str | Path, out: str | Path, *, resume: bool = False, force: bool = False, quiet: bool = False,
          ood: bool = True, ensemble: int = 1, temper: bool = False, **settings: Any) -> Any:
    """Train a ratio estimator (:func:`tdglnre.nre.fit.training.train`) and cache its OOD reference.

    Parameters
    ----------
    data
        Training ensemble (HDF5).
    out
        Model directory to create.
    resume, force, quiet, **settings
        As :func:`tdglnre.nre.fit.training.train` (settings are
        :class:`tdglnre.nre.fit.training.TrainSettings` fields).
    ood
        Fit the out-of-distribution reference (``ood.json``,
        :mod:`tdglnre.nre.infer.ood`) from the training data right away, so later
        posteriors need not read the ensemble again. A failure here only logs
        a warning: the model is complete without it.
    ensemble
        M ≥ 2 trains M members alike with seeds ``seed``, ``seed`` + 1, … into
        ``out/member0`` … and makes ``out`` an ensemble directory
        (:class:`tdglnre.nre.infer.model_io.EnsembleEstimator`: ``ensemble.json``,
        the first member's ``metadata.json``); 1 (default) trains one model.
    temper
        Then fit each model's posterior temperature on its validation split
        (:func:`tdglnre.workflows.temper.temper`, docs/nre.md "Tempering"); the
        record is also in each result's ``tempering``.

    Returns
    -------
    tdglnre.nre.fit.training.TrainResult
        The first member's for an ensemble; ``members`` then holds every member's.
    """
    from ..nre.fit.training import train as _train

    ensemble = as_int("`ensemble`", ensemble, 1)
    temper = as_bool("`temper`", temper)
    if temper and settings.get("val_fraction") == 0:
        raise ConfigError("`temper` fits the temperature on the validation split; `val_fraction` 0 leaves none")
    if ensemble > 1:
        res = _train_ensemble(data, Path(out), ensemble, resume=resume, force=force, quiet=quiet, **settings)
    else:
        from ..nre.infer.model_io import ENSEMBLE_FILE

        if force and (Path(out) / ENSEMBLE_FILE).exists():  # a single model replaces an ensemble
            (Path(out) / ENSEMBLE_FILE).unlink()
        res = _train(data, out, resume=resume, force=force, quiet=quiet, **settings)
    if ood:
        from ..nre.infer.model_io import read_metadata
        from ..nre.infer.ood import fit_and_save_ood

        try:
            fit_and_save_ood(out, data, metadata=read_metadata(out))
        except (TDGLError, ValueError, OSError) as exc:
            log.warning("could not fit the OOD reference of %s: %s", out, exc)
    if temper:
        from .temper import temper as _temper

        for member in getattr(res, "members", None) or [res]:
            member.tempering = _temper(member.out_dir, data, split_head=True, progress=not quiet)
    return res


def _train_ensemble(data: str | Path, out: Path, m: int, *, resume: bool, force: bool, quiet: bool,
                    **settings: Any) -> Any:
    """Train ``m`` members into ``out/member{i}`` and write the ensemble listing (:func:`train`, ``ensemble``)."""
    import json
    import shutil

    from ..nre.fit.training import TrainingError
    from ..nre.fit.training import train as _train
    from ..nre.infer.model_io import ENSEMBLE_FILE

    if (out / "model.keras").exists() and not force:
        raise TrainingError(f"{out} already holds a single model; pass --force to replace it with an ensemble")
    seed = int(settings.pop("seed", 0) or 0)
    names = [f"member{i}" for i in range(m)]
    results = []
    for i, name in enumerate(names):
        log.info("ensemble member %d of %d (seed %d)", i + 1, m, seed + i)
        results.append(_train(data, out / name, resume=resume, force=force, quiet=quiet, seed=seed + i, **settings))
    for stale in ("model.keras", "checkpoints"):
        path = out / stale
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    meta = json.loads((out / names[0] / "metadata.json").read_text())
    meta["ensemble"] = {"members": names, "combine": "mean of the members' ratios"}
    (out / "metadata.json").write_text(json.dumps(meta, indent=2))
    (out / ENSEMBLE_FILE).write_text(json.dumps({"members": names}, indent=2))
    first = results[0]
    first.members = results
    return first
