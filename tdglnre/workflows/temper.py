"""Fit a trained model's posterior temperature on its validation split and record it in ``metadata.json``.

>>> rec = tg.temper("model/")            # the training ensemble the metadata names
>>> rec["temperature"], rec["joint_coverage_deviation"]

The maths is :mod:`tdglnre.nre.infer.tempering`; docs/nre.md ("Tempering") says what it fixes and what not.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from .._validate import as_bool, as_int, as_optional_path, as_path
from ..errors import ConfigError
from ..progress import ProgressLike, tracker

log = logging.getLogger(__name__)

#: Below this many validation pairs a warning says the fitted temperature is uncertain (measured: with 50 pairs
#: the fit made a paper-preset model worse on 1000 fresh tests; docs/results.md).
MIN_RELIABLE = 200

#: Grid points per continuous parameter of the fit (coarser than a posterior's 256: τ needs no fine grid).
DEFAULT_GRID_POINTS = 128


def _validation_pairs(meta: dict[str, Any], path: str, max_samples: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Raw inputs and θ of the model's validation split, read from its training ensemble."""
    from ..nre.infer.artifacts import dataset_fingerprint
    from ..nre.pipeline.data import split_indices
    from ..nre.pipeline.sources import EnsembleSource

    ds, tr = meta.get("dataset") or {}, meta.get("training") or {}
    with EnsembleSource(path) as src:
        if ds.get("fingerprint") and dataset_fingerprint(src.info) != ds["fingerprint"]:
            raise ConfigError(f"{path} is not the ensemble the model was trained on (its config, prior or seed "
                              f"differ); pass the training file with `data`")
        n = int(ds.get("n_complete", src.n))
        if src.n < n:
            raise ConfigError(f"{path} holds {src.n} complete samples; the model was trained on {n}")
        _, val = split_indices(n, float(tr.get("val_fraction", 0.1)), int(tr.get("seed", 0)))
        if len(val) == 0:
            raise ConfigError("the model was trained without a validation split (val_fraction 0): no simulations "
                              "were held out to fit a temperature on")
        if max_samples is not None:
            val = val[:max_samples]
        raw = np.stack([src.x(int(i), int(i) + 1)[0] for i in val])
        theta = np.concatenate([src.theta(int(i), int(i) + 1) for i in val])
    return raw, theta


def temper(model_dir: str | Path, data: str | Path | None = None, *, grid_points: int = DEFAULT_GRID_POINTS,
           max_samples: int | None = None, objective: str = "coverage", measurement_seed: int = 0,
           split_head: bool = False, by_instrument: bool = False, reset: bool = False,
           progress: ProgressLike = False) -> dict[str, Any]:
    """Fit the posterior temperature of a trained model and write it into its ``metadata.json``.

    Parameters
    ----------
    model_dir
        A single model's directory (for an ensemble, temper each member).
    data
        Its training ensemble (default: the path its metadata records). The
        validation split is drawn again from the model's seed and validation
        fraction, exactly as training drew it.
    grid_points
        Grid points per continuous parameter.
    max_samples
        Use only the first validation samples.
    objective
        What τ minimises over the validation pairs: ``coverage`` (the
        distance of the expected-coverage curve from the diagonal) or ``nll``
        (the mean −log p(θ*|x)); :mod:`tdglnre.nre.infer.tempering`.
    measurement_seed
        Seed of the measurement noise applied to the validation images when
        the model was trained under a measurement.
    split_head
        As ``tdglnre posterior --split-head``.
    by_instrument
        Fit a temperature that depends on the instrument, τ(d) = τ·exp(w·d),
        for a model that takes the instrument vector d as an input
        (:func:`tdglnre.nre.infer.tempering.fit_instrument_temperature`).
    reset
        Remove a recorded temperature (τ = 1) instead of fitting one.
    progress
        True for a bar, or a callable ``f(n)``.

    Returns
    -------
    dict
        The ``tempering`` record written (``temperature``, mean negative log
        density and joint coverage deviation before and after, …), or
        ``{"temperature": 1.0, "reset": True}``.
    """
    from ..nre.atomic import write_text_atomic
    from ..nre.infer.model_io import ENSEMBLE_FILE, load_estimator, read_metadata
    from ..nre.infer.posterior import Grid, check_grid_size
    from ..nre.infer.tempering import OBJECTIVES, tempering_record, tempering_scores
    from .calibrate import _measure_test_set

    model_dir = as_path("`model_dir`", model_dir)
    as_optional_path("`data`", data)
    if max_samples is not None:
        max_samples = as_int("`max_samples`", max_samples, 1)
    measurement_seed = as_int("`measurement_seed`", measurement_seed, 0)
    split_head = as_bool("`split_head`", split_head)
    reset = as_bool("`reset`", reset)
    by_instrument = as_bool("`by_instrument`", by_instrument)
    if objective not in OBJECTIVES:
        raise ConfigError(f"`objective` must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    if (model_dir / ENSEMBLE_FILE).exists():
        members = json.loads((model_dir / ENSEMBLE_FILE).read_text()).get("members", [])
        raise ConfigError(f"{model_dir} is an ensemble; temper each member ({', '.join(map(str, members))}) "
                          "on its own")
    meta = read_metadata(model_dir)
    meta_path = model_dir / "metadata.json"
    if reset:
        meta.pop("tempering", None)
        write_text_atomic(meta_path, json.dumps(meta, indent=2))
        return {"temperature": 1.0, "reset": True}
    est = load_estimator(model_dir)
    if by_instrument and not est.instrument_size:
        raise ConfigError(f"{model_dir} does not take the instrument as an input (train it with --instrument-input "
                          "on a measurement family): a temperature by instrument needs the instrument vectors")
    grid_points = check_grid_size(est.prior, grid_points, list(est.parameter_names))
    path = data if data is not None else (meta.get("dataset") or {}).get("path")
    if not path or not Path(path).exists():
        raise ConfigError(f"the training ensemble {path!r} is not there; pass it with `data`")
    raw, theta = _validation_pairs(meta, str(path), max_samples)
    x, measured, _ = _measure_test_set(est, est.preprocess(raw), None, measurement_seed)
    grid = Grid.from_prior(est.prior, grid_points, est.parameter_names)
    with tracker(progress, len(x), "tempering", unit="obs") as bar:
        scores = tempering_scores(est, x, theta, grid, split_head=split_head, progress=bar.update)
    rec = tempering_record(scores, objective=objective, base_temperature=est.temperature,
                           instrument=np.asarray(x.d) if by_instrument else None,
                           base_weights=est.instrument_weights)
    rec["fitted_on"] = {"path": str(path), "split": "validation", "n": int(len(x)), "grid_points": grid_points,
                        "measurement": measured, "split_head": split_head,
                        "objective": objective, "by_instrument": by_instrument}
    rec["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    if len(x) < MIN_RELIABLE:
        log.warning("only %d validation samples: the temperature is uncertain (the expected coverage of %d pairs "
                    "scatters by about ±%.2f); train on more simulations or a larger --val-fraction", len(x), len(x),
                    len(x) ** -0.5)
    if rec["at_edge"]:
        log.warning("the best temperature (%.3g× the current) is at the edge of the candidates; the model is "
                    "far from calibrated and tempering alone will not fix it", rec["relative"])
    meta["tempering"] = rec
    write_text_atomic(meta_path, json.dumps(meta, indent=2))
    log.info("temperature %.3f on %d validation samples: mean NLL %.4f -> %.4f, joint coverage deviation "
             "%+.3f -> %+.3f", rec["temperature"], rec["n"], rec["mean_nll"]["before"], rec["mean_nll"]["after"],
             rec["joint_coverage_deviation"]["before"], rec["joint_coverage_deviation"]["after"])
    return rec


def summary_line(rec: dict[str, Any]) -> str:
    """One line for the command line."""
    if rec.get("reset"):
        return "temperature removed (tau = 1)"
    by = ""
    if "instrument_factor_range" in rec:
        lo, hi = rec["instrument_factor_range"]
        by = f", times {lo:.3f}..{hi:.3f} by instrument"
    return (f"temperature {rec['temperature']:.3f}{by} ({rec['relative']:.3f}x the previous; objective "
            f"{rec['objective']}) on {rec['n']} validation samples: mean -log p(theta*|x) {rec['mean_nll']['before']:.4f} -> {rec['mean_nll']['after']:.4f}; "
            f"joint coverage deviation {rec['joint_coverage_deviation']['before']:+.3f} -> "
            f"{rec['joint_coverage_deviation']['after']:+.3f}")


__all__ = ["temper", "summary_line", "DEFAULT_GRID_POINTS"]
