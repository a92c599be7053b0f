"""The regime demo: ``tdglnre demo --preset type15-quick`` (issue 21 §5; docs/nre.md, "The type15 demo").

The stages of the quick demo (:mod:`.demo`: simulate, train and temper, calibrate, posteriors) on a preset whose prior
holds λ, so that every sample is Type I, 1.5 or II (docs/physics.md, "Regimes of a sample"). On top of
them it reports what the user came for:

* the calibration's regime verdict (``calibration.json`` ``regime_verdict``): the ROC AUC of
  P(Type 1.5 | x) for "Type 1.5 vs not", on all tests and on those farther than 10 % in λ from a regime
  boundary, and its reliability table;
* for each example observation P(I), P(1.5), P(II) against its true regime, and a figure
  ``posterior_i/regime.png``: its B map beside its λ posterior, with the regime boundaries marked (at the
  posterior-mean η on the λ marginal, as curves λ_I(η), λ_II(η) on the joint (η, λ) panel).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from ._demo_stages import _calibration_stage, _echo_examples, _posterior_stage, _simulate_stage, _train_stage, _write_summary


def run_type15_demo(out_dir: str | Path, *, preset: str, config: Any, prior: Any, n_train: int, n_test: int,
                    epochs: int, seed: int, n_examples: int, force: bool, quiet: bool,
                    echo: Callable[[str], None], measurement: str | None,
                    grid_points: int | None = None) -> dict[str, Any]:
    """The regime pipeline of :func:`tdglnre.workflows.demo.run_demo` (module docstring); same arguments,
    checked there. The summary adds ``regime_verdict`` and, per example, ``p_regime``, ``true_regime`` and
    ``figure``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    times: dict[str, float] = {}
    train_h5, test_h5 = _simulate_stage(out, "[1/5]", preset=preset, config=config, prior=prior, n_train=n_train,
                                        n_test=n_test, seed=seed, force=force, quiet=quiet, echo=echo, times=times)
    model_dir = out / "model"
    _train_stage(train_h5, model_dir, "[2/5] training the ratio estimator on (eta, n_v, lam)", epochs=epochs,
                 seed=seed, force=force, quiet=quiet, measurement=measurement, echo=echo, times=times)
    rep, cal_dir = _calibration_stage(model_dir, test_h5, train_h5, out, f"[3/5] calibration and regime verdict on "
                                      f"{n_test} test simulations", force=force, quiet=quiet, echo=echo, times=times,
                                      grid_points=grid_points)
    model, examples = _posterior_stage(model_dir, test_h5, out, f"[4/5] posteriors and P(regime | x) of "
                                       f"{n_examples} test observations", n_examples=n_examples, force=force,
                                       echo=echo, times=times, extra=_regime_record,
                                       grid_points=grid_points)
    t0 = time.perf_counter()
    echo("[5/5] figures: B map beside the lam posterior with the regime boundaries ...")
    for ex in examples:
        ex["figure"] = str(_regime_figure(model, ex.pop("_result"), ex, Path(ex["dir"]) / "regime.png"))
        echo(f"      -> {ex['figure']}")
    times["figures"] = time.perf_counter() - t0

    echo("")
    echo("Summary")
    _echo_examples(examples, echo)
    _echo_verdicts(examples, echo)
    for line in rep.summary_lines():
        echo("  " + line)
    return _write_summary(out, {"out_dir": str(out), "preset": str(preset), "measurement": str(model.measurement),
                                "train": str(train_h5), "test": str(test_h5), "model": str(model_dir),
                                "calibration": str(cal_dir), "regime_verdict": rep.report.get("regime_verdict"),
                                "examples": examples, "figures": [ex["figure"] for ex in examples]},
                          times, rep.report, echo)


def _regime_record(model: Any, result: Any, example: dict[str, Any]) -> None:
    """Add the true regime of the example (from its truth and the prior's fixed values) and keep its result
    for the figure (``_result``, removed before the summary is written)."""
    from ..nre.infer.regimes import model_regime_context
    from ..physics.screening import regime

    context = model_regime_context(model)
    truth = result.posterior.truth
    example["true_regime"] = None if context is None or not truth else regime(context[0], {**context[1], **truth})
    example["_result"] = result


def _regime_figure(model: Any, result: Any, example: dict[str, Any], path: Path) -> Path:
    """``regime.png``: the B channel of the network input beside the λ posterior with the boundaries λ_I, λ_II."""
    import matplotlib

    matplotlib.use("Agg")
    from ..nre.infer.regimes import model_regime_context
    from ..physics.screening import lam_boundaries
    from ..plots import plot_regime_example

    config, fixed = model_regime_context(model)
    post = result.posterior
    names = list(post.grid.names)
    nu = post.summary("nu")["mean"] if "nu" in names else fixed.get("nu", config.nu)
    eta_mean = post.summary("eta")["mean"] if "eta" in names else fixed.get("eta", config.eta)
    eta = post.grid.axes[names.index("eta")].values if "eta" in names else [eta_mean]
    lam_i, lam_ii = lam_boundaries(config, eta, nu)
    at_mean = tuple(float(b[0]) for b in lam_boundaries(config, [eta_mean], nu))
    labels = list(result.channels)
    k = next((i for i, c in enumerate(labels) if str(c).split(" ")[0] == "B"), 0)
    return plot_regime_example(result.x[..., k], str(labels[k]), post,
                               {"eta": eta, "lam_I": lam_i, "lam_II": lam_ii, "at_mean": at_mean},
                               example.get("p_regime") or {}, example.get("true_regime"), path)


def _echo_verdicts(examples: list[dict[str, Any]], echo: Callable[[str], None]) -> None:
    """One line per example: P(I), P(1.5), P(II) | x, the argmax verdict and the true regime."""
    for ex in examples:
        p = ex.get("p_regime")
        if not p:
            continue
        verdict = max(p, key=p.get)
        right = "" if ex.get("true_regime") is None else (" (right)" if verdict == ex["true_regime"] else " (wrong)")
        echo(f"  test #{ex['index']}: P(I) {p['I']:.3f}, P(1.5) {p['1.5']:.3f}, P(II) {p['II']:.3f} -> verdict "
             f"Type {verdict}; true regime Type {ex.get('true_regime')}{right}")
