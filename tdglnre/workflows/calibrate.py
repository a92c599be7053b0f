"""Calibration of a trained model on a test ensemble: coverage, SBC, Table I, ABC baseline.

>>> rep = tg.calibrate("model/", "test.h5")
>>> rep.summary_lines(); rep.save("cal/"); rep.plot()

Bayesian coverage holds only for test parameters drawn from the model's prior:
when the test ensemble's prior differs, the report carries ``prior_mismatch``
and only the accuracy figures.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._validate import as_bool, as_int, as_optional_path, as_path, as_pos_float
from ..errors import ConfigError
from ..nre.infer.calibration import table_csv, table_markdown
from ..nre.infer.inference import (
    TestSetEvaluation,
    baseline_evaluation,
    calibration_report,
    calibration_summary_lines,
    evaluate_test_set,
    prior_mismatch,
)
from ..nre.infer.model_io import temperature_record_of
from ..nre.infer.posterior import Grid, check_grid_size
from ..nre.infer.regimes import boundary_distance, model_regime_context, verdict_report
from ..progress import ProgressLike, tracker
from ._output import check_output_dir, staged_output
from .observations import _as_model, check_measurement_arg

log = logging.getLogger(__name__)


def _summary_images(model: Any, raw: np.ndarray) -> np.ndarray:
    """[rho1, rho2, curlJ] at the model's (last) snapshot from ensemble samples (S, T, N, N, C)."""
    inp = model.metadata["input"]
    t = list(inp["snapshot_indices"])[-1]
    ch = list(inp["dataset_channels"])
    return raw[:, t][..., [ch.index("rho1"), ch.index("rho2"), ch.index("curlJ")]]


@dataclass
class CalibrationReport:
    """Calibration figures of a model on a test set."""

    report: dict[str, Any]
    """The content of ``calibration.json`` (coverage, SBC, MAE, widths, table, baseline, prior_mismatch)."""
    evaluation: TestSetEvaluation
    """Per-sample posterior summaries, credibilities and SBC ranks."""

    @property
    def coverage_valid(self) -> bool:
        """True when the test set was drawn from the model's prior (coverage and SBC are meaningful)."""
        return not self.report.get("prior_mismatch")

    def summary_lines(self) -> list[str]:
        """Short human-readable summary (coverage, MAE, widths, baseline)."""
        return calibration_summary_lines(self.report)

    def plot(self, out_dir: str | Path | None = None) -> list[Any]:
        """Coverage curves, SBC ranks (when valid) and error-vs-truth per parameter.

        Writes PNGs into ``out_dir`` and returns their paths, or returns open figures.
        """
        from .. import plots

        rep, ev = self.report, self.evaluation

        def to(name: str) -> Path | None:
            return None if out_dir is None else Path(out_dir) / name

        figs = []
        if self.coverage_valid:
            curves = {"NRE (joint HPD)": rep["expected_coverage"]}
            for n, c in rep["marginal_expected_coverage"].items():
                curves[f"NRE marginal {n}"] = c
            if rep.get("baseline"):
                for n, b in rep["baseline"]["per_parameter"].items():
                    curves[f"ABC baseline {n} (central)"] = b["expected_coverage_central"]
            figs.append(plots.plot_coverage(curves, to("coverage.png")))
            figs.append(plots.plot_sbc({n: ev.ranks[:, d] for d, n in enumerate(ev.names)}, ev.n_draws,
                                       to("sbc.png")))
        for d, n in enumerate(ev.names):
            bm = None
            if rep.get("baseline"):
                bm = np.asarray(rep["baseline"]["per_parameter"][n]["posterior_mean"])
            figs.append(plots.plot_error_vs_truth(ev.truth[:, d], ev.mean[:, d], ev.width95[:, d], n,
                                                  to(f"error_{n}.png"), bm))
        return figs

    def save(self, out_dir: str | Path, *, force: bool = False) -> Path:
        """Write calibration.json, table.csv/.md and the figures; ``out_dir`` is replaced only on success."""
        with staged_output(out_dir, force=force) as out:
            (out / "calibration.json").write_text(json.dumps(self.report, indent=1))
            if "table" in self.report:
                t = self.report["table"]
                (out / "table.csv").write_text(table_csv(t["rows"]))
                (out / "table.md").write_text(table_markdown(t["rows"], t["parameter"]) + "\n")
            self.plot(out)
        return Path(out_dir)


def _nuisance_only(mismatch: dict[str, Any] | None, inferred: Any) -> dict[str, Any] | None:
    """The mismatch when only nuisance priors (T, δ) differ and the model infers neither, else None.

    The inferred parameters are then drawn from the model's prior, so coverage
    and SBC are computed: they measure calibration under a nuisance the model
    was not trained for (or trained for but absent from the test set), the
    robustness figure of docs/observations.md.
    """
    from ..physics.config import NUISANCE_PARAMETERS

    if not mismatch or not all(n in NUISANCE_PARAMETERS and n not in inferred for n in mismatch["parameters"]):
        return None
    return {"parameters": mismatch["parameters"], "model": mismatch["model"], "test": mismatch["test"],
            "note": ("the test set's nuisance prior (" + ", ".join(mismatch["parameters"]) + ") differs from the "
                     "model's training prior; the inferred parameters follow the model's prior, so coverage and "
                     "SBC measure calibration under that misspecification")}


def _check_test_set(test_set: Any) -> None:
    """``test_set`` is the path of an ensemble file (not its array)."""
    if isinstance(test_set, np.ndarray):
        raise ConfigError("`test_set` must be the path of an ensemble file (tdglnre generate), got an array; "
                          "write the simulations with tg.generate first")
    as_path("`test_set`", test_set)


def calibrate(model: Any, test_set: str | Path, *, grid_points: int = 256, max_samples: int | None = None,
              reference: str | Path | None = None, seed: int = 0, n_draws: int = 99, half_window: float = 0.05,
              progress: ProgressLike = False, measurement: Any = None,
              measurement_seed: int = 0, split_head: bool = False) -> CalibrationReport:
    """Calibrate a trained model on a test ensemble, in memory.

    Parameters
    ----------
    model
        A loaded estimator or its directory.
    test_set
        Ensemble file of test simulations.
    grid_points
        Grid points per continuous parameter.
    max_samples
        Use only the first samples of the test set.
    reference
        Reference simulations for the ABC baseline (default: the model's
        training ensemble, if it still exists; no baseline otherwise).
        Under a measurement, the ABC compares the summaries of the measured
        test images (the network's inputs) with those of the reference
        measured the same way, sample k with
        ``measurement_rng(measurement_seed, ABC_REFERENCE_EPOCH, k)``.
    seed
        Seed of the SBC posterior draws.
    n_draws
        Posterior draws per test sample for SBC ranks.
    half_window
        Half width of the η bins of the Table-I-style table.
    progress
        True for a bar, or a callable ``f(n)`` (:mod:`tdglnre.progress`).
    measurement
        Measurement model applied to the clean test simulations before they
        are evaluated (text form, docs/observations.md). Default: the model's
        own, so that the test inputs look like the training inputs; another
        one tests robustness to a measurement the model was not trained for
        (it must give the network's input shape).
    measurement_seed
        Seed of the test set's measurement noise: sample k uses
        ``measurement_rng(measurement_seed, 0, k)``, fixed so a calibration
        can be repeated exactly. Both are recorded in ``calibration.json``
        under ``measurement``.
    split_head
        Evaluate the network's head with its first layer split into an x
        part and a θ part (the θ part once per grid chunk,
        ``RatioEstimator.log_ratio_from_embedding``): about half the cost
        per observation on a 3-parameter grid; the same figures to float32
        rounding, not bit for bit. Recorded as ``split_head``.
    """
    t0 = time.perf_counter()
    model = _as_model(model)
    _check_test_set(test_set)
    grid_points = check_grid_size(model.prior, grid_points, list(model.parameter_names))
    if max_samples is not None:
        max_samples = as_int("`max_samples`", max_samples, 1)
    as_optional_path("`reference`", reference)
    seed = as_int("`seed`", seed, 0)
    n_draws = as_int("`n_draws`", n_draws, 1)
    half_window = as_pos_float("`half_window`", half_window)
    check_measurement_arg(measurement)
    measurement_seed = as_int("`measurement_seed`", measurement_seed, 0)
    split_head = as_bool("`split_head`", split_head)
    raw, theta, L, mismatch = _read_test_set(model, test_set, max_samples)
    S = len(raw)
    nuisance = _nuisance_only(mismatch, model.parameter_names)
    if nuisance is not None:
        log.info("%s", nuisance["note"])
        mismatch = None
    if mismatch:
        log.info("%s", mismatch["note"])
    coverage = mismatch is None
    x, measured, test_measurement = _measure_test_set(model, model.preprocess(raw), measurement, measurement_seed)
    grid = Grid.from_prior(model.prior, grid_points, model.parameter_names)
    regime = model_regime_context(model)
    with tracker(progress, S, "posteriors", unit="obs") as bar:
        ev = evaluate_test_set(model, x, theta, grid, n_draws=n_draws, seed=seed, progress=bar.update,
                               split_head=split_head, regime=regime)
    rep = calibration_report(ev, half_window=half_window, coverage=coverage)
    if regime is not None:  # screened models only: the file of an unscreened model keeps its keys
        rep["regime_verdict"] = _regime_verdict(ev, regime)
    rep["prior_mismatch"] = mismatch
    rep["nuisance_mismatch"] = nuisance
    rep["grid_points"] = grid_points
    if split_head:
        rep["split_head"] = True
    rep["model_dir"] = None if getattr(model, "model_dir", None) is None else str(model.model_dir)
    rep.update(temperature_record_of(model))  # docs/nre.md, "Tempering"
    rep["test_set"] = str(test_set)
    rep["measurement"] = measured
    images = getattr(x, "x", x)  # the images alone, without the instrument vectors of InstrumentInputs
    rep.update(_baseline_entries(model, reference, _AbcImages(raw, images, test_measurement, measurement_seed), theta, L,
                                 ev.names, coverage))
    rep["wall_seconds"] = time.perf_counter() - t0
    return CalibrationReport(rep, ev)


def _regime_verdict(ev: Any, regime: tuple[Any, dict[str, float]]) -> dict[str, Any]:
    """The verdict's AUC and calibration on the test set (:func:`tdglnre.nre.infer.regimes.verdict_report`)."""
    from ..physics.screening import regime_codes

    config, fixed = regime
    params = {**fixed, **{n: ev.truth[:, d] for d, n in enumerate(ev.names)}}
    lam = None
    if "lam" in ev.names:
        d = ev.names.index("lam")
        lam = {"truth": ev.truth[:, d], "mean": ev.mean[:, d], "width95": ev.width95[:, d],
               "credibility": ev.marginal_credibility[:, d]}
    return verdict_report(ev.p_regime, regime_codes(config, params), boundary_distance(config, params), lam=lam)


def _read_test_set(model: Any, test_set: Any, max_samples: int | None
                   ) -> tuple[np.ndarray, np.ndarray, float, dict[str, Any] | None]:
    """Raw inputs, inferred θ and L of the test set's first samples, and its prior mismatch with the model."""
    from ..io.ensemble import open_ensemble

    with open_ensemble(test_set) as ens:
        model.check_compatible(ens)
        S = ens.n_complete if max_samples is None else min(ens.n_complete, max_samples)
        if S < 1:
            raise ConfigError(f"test set {test_set} holds no complete samples")
        raw = ens.x(0, S)
        theta = _inferred_theta(model, ens, S)
        mismatch = prior_mismatch(getattr(model, "training_prior", model.prior), ens.prior)
        return raw, theta, ens.config.L, mismatch


def _inferred_theta(model: Any, ens: Any, n: int) -> np.ndarray:
    """θ of the first ``n`` samples of an open ensemble, the model's inferred columns in its order.

    Nuisance columns (T, δ) are marginalised by the model, not inferred: only the inferred ones are kept.
    """
    stored = list(ens.parameter_names)
    return ens.theta(0, n)[:, [stored.index(p) for p in model.parameter_names]]


#: Epoch of the measurement noise drawn for the ABC reference set: reference sample k is measured with
#: ``measurement_rng(measurement_seed, ABC_REFERENCE_EPOCH, k)``, a stream apart from the test set's
#: (epoch 0), the OOD reference's (``MEASUREMENT_EPOCH`` = 2^31 − 1) and any training epoch.
ABC_REFERENCE_EPOCH = 2**31 - 2


@dataclass
class _AbcImages:
    """What the ABC baseline reads: the test set's clean samples, the network's (measured) inputs and the measurement."""

    raw: np.ndarray
    """Clean ensemble samples (S, T, N, N, C)."""
    x: np.ndarray
    """The network inputs (S, M, M, S'·C'), measured when ``measurement`` is not None."""
    measurement: Any
    """The test measurement (None: the images are clean)."""
    seed: int
    """``measurement_seed`` of the calibration."""


def _abc_test_summaries(model: Any, images: _AbcImages, L: float) -> np.ndarray:
    """ABC summaries of the test set: of the clean last snapshot, or of the very images the network sees."""
    from ..analysis.baselines import image_summaries, summaries_batch

    if images.measurement is None:
        return summaries_batch(_summary_images(model, images.raw), L)
    chans = _measured_channels(model, images.measurement)
    return image_summaries(images.x[..., -len(chans):], chans, L)  # snapshot-major: the last snapshot


def _measured_channels(model: Any, measurement: Any) -> list[str]:
    """Channel names of the network input after ``measurement``."""
    return list(measurement.output_channels(list(model.metadata["input"]["channels"])))


def _baseline_entries(model: Any, reference: Any, images: _AbcImages, theta: np.ndarray, L: float, names: Any,
                      coverage: bool) -> dict[str, Any]:
    """``baseline`` (:func:`_abc_baseline`), or None and ``baseline_note`` saying why ABC cannot run: the
    posteriors and coverage stand, only the comparison is missing."""
    skip = _abc_unavailable(model, images.measurement)
    if skip:
        log.warning("no ABC baseline: %s", skip)
        return {"baseline": None, "baseline_note": skip}
    ref = reference or model.metadata["dataset"].get("path")
    return {"baseline": _abc_baseline(model, ref, images, theta, L, names, coverage)}


def _abc_unavailable(model: Any, measurement: Any) -> str | None:
    """Why the ABC baseline cannot run on these test images, or None: its summaries need a density or current
    channel, and a ``channels(B)`` measurement (a field map) leaves none."""
    from ..analysis.baselines import SUMMARY_CHANNELS, summary_names_of

    if measurement is None:
        return None
    channels = _measured_channels(model, measurement)
    if summary_names_of(channels):
        return None
    return (f"its summaries need one of {list(SUMMARY_CHANNELS)}, and the measured images hold only {channels} "
            f"(measurement {measurement})")


def _abc_reference_summaries(model: Any, ref: Any, images: _AbcImages, L: float) -> np.ndarray:
    """ABC summaries of an open reference ensemble, measured like the test set when it is (ABC_REFERENCE_EPOCH)."""
    from ..analysis.baselines import image_summaries, summaries_batch
    from ..nre.pipeline.selection import Selection, measure_inputs

    n_ref, parts = ref.n_complete, []
    if images.measurement is None:
        for a in range(0, n_ref, 512):
            parts.append(summaries_batch(_summary_images(model, ref.x(a, min(a + 512, n_ref))), L))
        return np.concatenate(parts)
    sel = Selection.from_dict(model.metadata["input"])
    chans = _measured_channels(model, images.measurement)
    for a in range(0, n_ref, 512):
        b = min(a + 512, n_ref)
        xm = measure_inputs(images.measurement, sel.apply(ref.x(a, b)), sel, images.seed, ABC_REFERENCE_EPOCH,
                            np.arange(a, b))
        parts.append(image_summaries(xm[..., -len(chans):], chans, L))
    return np.concatenate(parts)


def _abc_baseline(model: Any, ref_path: Any, images: _AbcImages, theta: np.ndarray, L: float, names: Any,
                  coverage: bool) -> dict[str, Any] | None:
    """The ABC baseline of the test samples against the reference ensemble, or None when there is none.

    Under a measurement both sides are measured: the test summaries are those
    of the network's inputs (the same noise draws), and the reference
    simulations go through the same measurement with noise from
    ``measurement_rng(measurement_seed, ABC_REFERENCE_EPOCH, k)``, as a
    rejection ABC simulates the instrument it compares with.
    """
    from ..analysis.baselines import summary_names_of
    from ..io.ensemble import open_ensemble

    if not (ref_path and Path(ref_path).exists()):
        log.warning("no reference ensemble for the ABC baseline (pass `reference`)")
        return None
    with open_ensemble(ref_path) as ref:
        ref_sum = _abc_reference_summaries(model, ref, images, L)
        ref_theta = _inferred_theta(model, ref, ref.n_complete)
    test_sum = _abc_test_summaries(model, images, L)
    baseline = baseline_evaluation(ref_sum, ref_theta, test_sum, theta, names, model.prior)
    baseline["reference"] = str(ref_path)
    if images.measurement is not None:
        baseline["measurement"] = {
            "text": str(images.measurement), "summaries": list(summary_names_of(_measured_channels(model,
                                                                                               images.measurement))),
            "test_images": "the network's measured inputs (last snapshot)",
            "reference_noise": f"measurement_rng({images.seed}, {ABC_REFERENCE_EPOCH}, reference sample index)"}
    if not coverage:
        for b in baseline["per_parameter"].values():
            b.pop("coverage95")
            b.pop("expected_coverage_central")
    return baseline


def _measure_test_set(model: Any, x: np.ndarray, measurement: Any, seed: int
                      ) -> tuple[np.ndarray, dict[str, Any] | None, Any]:
    """Apply the test measurement to clean selected inputs ``x`` (S, N, N, C).

    Returns the inputs, the record and the measurement applied (None when the images stay clean).
    """
    from ..nre.pipeline.data import measure_inputs
    from ..nre.pipeline.selection import Selection

    own = model.measurement
    test = own if measurement is None else model.resolve_measurement(measurement)
    if test.is_identity and own.is_identity:
        return x, None, None
    if isinstance(seed, bool) or int(seed) != seed or seed < 0:
        raise ConfigError(f"`measurement_seed` must be an integer >= 0, got {seed!r}")
    sel = Selection.from_dict(model.metadata["input"])
    conditioned = bool(getattr(model, "instrument_size", 0))
    d = None
    if conditioned:  # the network also takes each image's instrument, as it was drawn (docs/nre.md)
        xm, d = measure_inputs(test, x, sel, int(seed), 0, np.arange(len(x)), describe=own)
    else:
        xm = measure_inputs(test, x, sel, int(seed), 0, np.arange(len(x)))
    if tuple(xm.shape[1:]) != tuple(model.input_shape):
        raise ConfigError(f"`measurement` {str(test)!r} gives inputs of shape {tuple(xm.shape[1:])}; the model "
                          f"(trained with {str(own)!r}) takes {tuple(model.input_shape)}")
    record = {"text": str(test), "model": test.to_dict(), "seed": int(seed),
              "noise_stream": "measurement_rng(seed, 0, test sample index)", "model_measurement": str(own),
              "matches_model": str(test) == str(own)}
    if conditioned:
        from ..nre.infer.model_io import InstrumentInputs

        record["instrument_input"] = "each image's drawn instrument, as the network takes it"
        xm = InstrumentInputs(xm, d)
    return xm, record, None if test.is_identity else test


def report_lines(report: dict[str, Any]) -> list[str]:
    """What ``tdglnre posterior --test-set`` prints under its first line: the summary (indented), then the table."""
    lines = ["  " + line for line in calibration_summary_lines(report)]
    if "table" in report:
        lines.append(table_markdown(report["table"]["rows"], report["table"]["parameter"]))
    return lines


def run_calibration(model_dir: str | Path, test_set: str | Path, out_dir: str | Path, *, force: bool = False,
                    **kwargs: Any) -> dict[str, Any]:
    """:func:`calibrate` and save into ``out_dir`` (checked first, written at the end); returns the report dict."""
    as_path("`model_dir`", model_dir)
    _check_test_set(test_set)
    as_optional_path("`reference`", kwargs.get("reference"))
    check_output_dir(out_dir, force=force, protect=(model_dir, test_set, kwargs.get("reference")))
    rep = calibrate(model_dir, test_set, **kwargs)
    rep.save(out_dir, force=force)
    return rep.report
