"""Train the neural ratio estimator on an ensemble, then fit its out-of-distribution reference.

>>> res = tg.train("train.h5", "model/", epochs=30)
>>> res.best_val_loss

TensorFlow is imported only when this function runs.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..errors import TDGLError

log = logging.getLogger(__name__)


def train(data: str | Path, out: str | Path, *, resume: bool = False, force: bool = False, quiet: bool = False,
          ood: bool = True, **settings: Any) -> Any:
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

    Returns
    -------
    tdglnre.nre.fit.training.TrainResult
    """
    from ..nre.fit.training import train as _train

    res = _train(data, out, resume=resume, force=force, quiet=quiet, **settings)
    if ood:
        from ..nre.infer.model_io import read_metadata
        from ..nre.infer.ood import fit_and_save_ood

        try:
            fit_and_save_ood(out, data, metadata=read_metadata(out))
        except (TDGLError, ValueError, OSError) as exc:
            log.warning("could not fit the OOD reference of %s: %s", out, exc)
    return res
