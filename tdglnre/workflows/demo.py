"""End-to-end demo: generate → train → posterior → calibration on the ``quick`` preset.

``tdglnre demo`` calls :func:`run_demo`. Every stage is the same workflow
function the individual commands and the Python API use; the demo only
chooses small sizes.

With a preset whose prior infers the drag ν (``drag-quick``) the demo runs the
ν pipeline of docs/drag.md instead: a ν = 0 ensemble is simulated too, S(k, t)
of the training set is computed (``tdglnre structure``), the ratio estimator
is trained with its CNN on the last snapshot and a log S(k, t) branch over all
snapshots (``--spectrum --cnn-snapshots last``, the measured choice of docs/drag.md §4), the
ν = 0 / ν > 0 classifier is fitted on log S(k, t) and saved into the model
directory (so posteriors report ``p_drag``), and its ROC AUC by true ν is
measured on independent test sets.

With a preset whose prior infers λ (``type15-quick``) the demo runs the regime pipeline
(:mod:`.demo_type15`): the quick stages, the calibration's regime verdict (ROC AUC and reliability of
P(Type 1.5 | x)), P(I, 1.5, II | x) of each example against its true regime and a figure of its B map
beside its λ posterior with the regime boundaries.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from .._validate import as_bool, as_int, as_path
from ..errors import ConfigError
from ._demo_stages import _calibration_stage, _echo_examples, _posterior_stage, _simulate_stage, _train_stage
from ._demo_stages import _write_summary

log = logging.getLogger(__name__)


#: Default sizes (n_train, n_test, epochs) per pipeline: the drag pipeline simulates a ν = 0 set of the
#: same sizes as well and must finish in about 15 min on 2 cores (docs/drag.md, "The drag demo"); the type15
#: pipeline too (N = 32 screened quenches, a 3-parameter grid per test posterior; docs/nre.md, "The type15 demo").
DEFAULT_SIZES = {"quick": (8000, 500, 60), "drag": (3000, 400, 40), "type15": (5000, 300, 60)}


def is_drag_preset(preset: str | Path, overrides: Iterable[str] | Mapping[str, Any] = ()) -> bool:
    """Whether the preset's prior infers the drag ν (then :func:`run_demo` runs the ν pipeline).

    Parameters
    ----------
    preset
        Preset name or path.
    overrides
        Preset overrides (``["N=16", ...]``), as for :func:`tdglnre.workflows.generate.generate`.
    """
    from ..io.presets import load_preset

    _, prior = load_preset(preset, overrides)
    return "nu" in prior.inferred


def run_demo(out_dir: str | Path = "tdglnre-demo", *, preset: str = "quick", n_train: int | None = None,
             n_test: int | None = None, epochs: int | None = None, seed: int = 0, n_examples: int = 3,
             force: bool = False, quiet: bool = False, echo: Callable[[str], None] = print,
             measurement: str | None = None, overrides: Iterable[str] | Mapping[str, Any] = (),
             classifier_epochs: int = 60, grid_points: int | None = None) -> dict[str, Any]:
    """Run the whole pipeline on a small preset and summarise it.

    Parameters
    ----------
    out_dir
        Where every artifact goes (created).
    preset
        Preset name (default ``quick``: N = 32). A preset that infers ν
        (``drag-quick``) runs the drag pipeline, one that infers λ
        (``type15-quick``) the regime pipeline (module docstring).
    n_train, n_test
        Training and test simulations (the test set uses seed + 1, so it is
        independent of the training set); default 8000 and 500 (drag: 3000
        and 400, and as many ν = 0 simulations with seeds + 2 and + 3; type15:
        5000 and 300).
    epochs
        Maximum training epochs (early stopping usually ends sooner); default
        60 (drag: 40).
    n_examples
        Test observations whose single posteriors are written and printed.
    force
        Overwrite an earlier demo in ``out_dir``.
    quiet
        No progress bars.
    echo
        Where progress lines go (the CLI passes click.echo).
    measurement
        Measurement model (text form, docs/observations.md) the estimator is
        trained with; the example posteriors and the calibration apply it to
        the clean test simulations (None: the preset's ``measurement`` if it
        declares one, else the perfect measurement; ``"none"``: perfect).
    overrides
        Preset overrides applied to every simulated set (``["N=16", "L=8"]``;
        tests use them for tiny sizes).
    classifier_epochs
        Maximum epochs of the drag model-comparison classifier (drag pipeline only).
    grid_points
        Grid points per continuous parameter of the example posteriors and the calibration, regime
        pipeline only (None: their defaults, 512 and 256; tests use a coarse grid).

    Returns
    -------
    dict
        Paths of the artifacts, the example posteriors, the calibration figures
        and the wall time of each stage.
    """
    from ..io.presets import load_preset, preset_measurement

    _check_demo_arguments(out_dir, preset, overrides)
    n_train, n_test, epochs = (None if v is None else as_int(f"`{n}`", v, 1)
                               for n, v in (("n_train", n_train), ("n_test", n_test), ("epochs", epochs)))
    seed, n_examples = as_int("`seed`", seed, 0), as_int("`n_examples`", n_examples, 0)
    classifier_epochs = as_int("`classifier_epochs`", classifier_epochs, 1)
    grid_points = None if grid_points is None else as_int("`grid_points`", grid_points, 2)
    force, quiet = as_bool("`force`", force), as_bool("`quiet`", quiet)
    _check_demo_callbacks(echo, measurement)
    config, prior = load_preset(preset, overrides)
    measurement = preset_measurement(preset) if measurement is None else measurement
    drag = "nu" in prior.inferred
    pipeline = "type15" if "lam" in prior.inferred else "drag" if drag else "quick"
    n_train, n_test, epochs = (d if v is None else v
                               for d, v in zip(DEFAULT_SIZES[pipeline], (n_train, n_test, epochs)))
    if pipeline == "type15":
        from .demo_type15 import run_type15_demo

        return run_type15_demo(out_dir, preset=preset, config=config, prior=prior, n_train=n_train, n_test=n_test,
                               epochs=epochs, seed=seed, n_examples=n_examples, force=force, quiet=quiet, echo=echo,
                               measurement=measurement, grid_points=grid_points)
    if drag:
        return _run_drag_demo(out_dir, preset=preset, overrides=overrides, n_train=n_train, n_test=n_test,
                              epochs=epochs, seed=seed, n_examples=n_examples, force=force, quiet=quiet, echo=echo,
                              measurement=measurement, classifier_epochs=classifier_epochs)
    return _run_quick_demo(out_dir, preset=preset, config=config, prior=prior, n_train=n_train, n_test=n_test,
                           epochs=epochs, seed=seed, n_examples=n_examples, force=force, quiet=quiet, echo=echo,
                           measurement=measurement)


def _run_quick_demo(out_dir: str | Path, *, preset: str, config: Any, prior: Any, n_train: int, n_test: int,
                    epochs: int, seed: int, n_examples: int, force: bool, quiet: bool, echo: Callable[[str], None],
                    measurement: str | None) -> dict[str, Any]:
    """The pipeline of :func:`run_demo` without drag: generate, train, posteriors, calibration."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    times: dict[str, float] = {}

    train_h5, test_h5 = _simulate_stage(out, "[1/4]", preset=preset, config=config, prior=prior, n_train=n_train,
                                        n_test=n_test, seed=seed, force=force, quiet=quiet, echo=echo, times=times)

    model_dir = out / "model"
    # the regression head of docs/nre.md (issue 20): on quick it reads eta better than the ABC baseline, which the
    # network without it did not (docs/results.md, "Issue 20: the regression head")
    from ..nre.settings import NetworkConfig

    _train_stage(train_h5, model_dir, "[2/4] training the ratio estimator (with the regression head)", epochs=epochs,
                 seed=seed, force=force, quiet=quiet, measurement=measurement, echo=echo, times=times,
                 network=NetworkConfig(summaries=True, regression=True))
    model, examples = _posterior_stage(model_dir, test_h5, out, f"[3/4] posteriors of {n_examples} test "
                                       "observations", n_examples=n_examples, force=force, echo=echo, times=times)
    rep, cal_dir = _calibration_stage(model_dir, test_h5, train_h5, out, f"[4/4] calibration on {n_test} test "
                                      "simulations", force=force, quiet=quiet, echo=echo, times=times)

    echo("")
    echo("Summary")
    _echo_examples(examples, echo)
    for line in rep.summary_lines():
        echo("  " + line)
    return _write_summary(out, {"out_dir": str(out), "measurement": str(model.measurement), "train": str(train_h5),
                                "test": str(test_h5), "model": str(model_dir), "calibration": str(cal_dir),
                                "examples": examples}, times, rep.report, echo)


def _check_demo_arguments(out_dir: Any, preset: Any, overrides: Any) -> None:
    """``out_dir`` a path, ``preset`` a name or path, ``overrides`` a list of 'key=value' texts or a dict."""
    as_path("`out_dir`", out_dir)
    if not isinstance(preset, (str, os.PathLike)):
        raise ConfigError(f"`preset` must be a preset name or the path of a preset file, got {preset!r}")
    if isinstance(overrides, (str, bytes)) or not isinstance(overrides, (Mapping, list, tuple)):
        raise ConfigError(f"`overrides` must be a list of 'key=value' texts or a dict, got {overrides!r}")


def _check_demo_callbacks(echo: Any, measurement: Any) -> None:
    """``echo`` a function taking a line, ``measurement`` None or a text."""
    if not callable(echo):
        raise ConfigError(f"`echo` must be a function taking a line, got {echo!r}")
    if measurement is not None and not isinstance(measurement, str):
        raise ConfigError(f"`measurement` must be a text like 'blur(1.0)+noise(0.05)', got {measurement!r}")


def _ensemble_features(path: Path) -> tuple[Any, Any, dict[str, Any]]:
    """log S(k, t) classifier features of every sample of an ensemble, its ν and the feature spec."""
    import numpy as np

    from ..io.ensemble import open_ensemble
    from ..nre.infer.model_comparison import structure_features

    with open_ensemble(path) as ens:
        n = ens.n_complete
        L = float(ens.config.L)
        f = np.concatenate([structure_features(ens.x(a, min(n, a + 512)), L) for a in range(0, n, 512)])
        names = list(ens.parameter_names)
        nu = ens.theta(0, n)[:, names.index("nu")] if "nu" in names else np.full(n, ens.prior.fixed_values()["nu"])
        spec = {"kind": "log_structure", "L": L, "floor": None, "snapshot_times": list(ens.snapshot_times),
                "channels": list(ens.channels)}
    return f, np.asarray(nu, dtype=np.float64), spec


def _run_drag_demo(out_dir: str | Path, *, preset: str, overrides: Iterable[str] | Mapping[str, Any], n_train: int,
                   n_test: int, epochs: int, seed: int, n_examples: int, force: bool, quiet: bool,
                   echo: Callable[[str], None], measurement: str | None, classifier_epochs: int) -> dict[str, Any]:
    """The drag pipeline of :func:`run_demo` (module docstring); same arguments."""
    from ..io.presets import load_preset
    from ..nre.settings import NetworkConfig

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    times: dict[str, float] = {}
    sets: Any
    if isinstance(overrides, Mapping):
        sets = dict(overrides)
        nu0_sets: Any = {**sets, "prior.nu": "fixed(0)"}
    else:
        sets = list(overrides)
        nu0_sets = [*sets, "prior.nu=fixed(0)"]
    config, _ = load_preset(preset, sets)
    h5 = {name: out / f"{name}.h5" for name in ("train", "test", "nu0", "nu0_test")}
    _simulate_drag_sets(h5, preset, config, sets, nu0_sets, n_train=n_train, n_test=n_test, seed=seed,
                        force=force, quiet=quiet, echo=echo, times=times)
    st, st_dir = _structure_stage(h5["train"], out, force=force, echo=echo, times=times)

    model_dir = out / "model"
    # the measured default of docs/drag.md §4: log S(k, t) of every snapshot in a spectrum branch, the CNN
    # on the last snapshot only; with the regression head (docs/nre.md), which read eta 0.89x ABC where the
    # network without it read 2.2x, on the demo's own test set (docs/results.md, "Issue 20: the drag-quick demo
    # with the regression head")
    _train_stage(h5["train"], model_dir, "[3/6] training the ratio estimator (CNN on the last snapshot, log S(k, t) "
                 "of all snapshots, regression head)", epochs=epochs, seed=seed, force=force, quiet=quiet,
                 measurement=measurement, echo=echo, times=times, snapshots=tuple(range(len(config.snapshot_times))),
                 network=NetworkConfig(spectrum=True, cnn_snapshots="last", summaries=True, regression=True))
    comparison = _model_comparison_stage(h5, model_dir, out, classifier_epochs=classifier_epochs, seed=seed,
                                         echo=echo, times=times)
    model, examples = _posterior_stage(model_dir, h5["test"], out, f"[5/6] posteriors and P(nu > 0 | x) of "
                                       f"{n_examples} test observations", n_examples=n_examples, force=force,
                                       echo=echo, times=times)
    rep, cal_dir = _calibration_stage(model_dir, h5["test"], h5["train"], out, f"[6/6] calibration on {n_test} test "
                                      "simulations", force=force, quiet=quiet, echo=echo, times=times)

    echo("")
    echo("Summary")
    for line in st.summary_lines():
        echo("  structure: " + line)
    _echo_examples(examples, echo)
    for line in rep.summary_lines():
        echo("  " + line)
    _echo_comparison(comparison, echo)
    return _write_summary(out, {"out_dir": str(out), "preset": str(preset), "measurement": str(model.measurement),
                                "train": str(h5["train"]), "test": str(h5["test"]), "nu0": str(h5["nu0"]),
                                "nu0_test": str(h5["nu0_test"]), "structure": str(st_dir), "model": str(model_dir),
                                "model_comparison": comparison, "calibration": str(cal_dir), "examples": examples},
                          times, rep.report, echo)


def _simulate_drag_sets(h5: dict[str, Path], preset: str, config: Any, sets: Any, nu0_sets: Any, *, n_train: int,
                        n_test: int, seed: int, force: bool, quiet: bool, echo: Callable[[str], None],
                        times: dict[str, float]) -> None:
    """Training and test sets with ν from the prior (seeds + 0, + 1) and with ν = 0 (seeds + 2, + 3)."""
    from .generate import generate

    t0 = time.perf_counter()
    echo(f"[1/6] simulating {n_train} training + {n_test} test quenches with nu ~ prior and as many with nu = 0 "
         f"({preset} preset, N={config.N}, {len(config.snapshot_times)} snapshots) ...")
    generate(preset, n_train, seed, h5["train"], overrides=sets, force=force, progress=not quiet)
    generate(preset, n_test, seed + 1, h5["test"], overrides=sets, force=force, progress=not quiet)
    generate(preset, n_train, seed + 2, h5["nu0"], overrides=nu0_sets, force=force, progress=not quiet)
    generate(preset, n_test, seed + 3, h5["nu0_test"], overrides=nu0_sets, force=force, progress=not quiet)
    times["generate"] = time.perf_counter() - t0
    echo(f"      -> {h5['train']}, {h5['test']}, {h5['nu0']}, {h5['nu0_test']} ({times['generate']:.0f} s)")


def _structure_stage(train_h5: Path, out: Path, *, force: bool, echo: Callable[[str], None],
                     times: dict[str, float]) -> tuple[Any, Path]:
    """S(k, t) of the training set (``tdglnre structure --all``), saved to ``out/structure``."""
    from .structure import structure

    t0 = time.perf_counter()
    st_dir = out / "structure"
    echo("[2/6] S(k, t) of the training set (tdglnre structure --all) ...")
    st = structure(data=train_h5, all=True)
    st.save(st_dir, force=force)
    times["structure"] = time.perf_counter() - t0
    echo(f"      -> {st_dir}/structure.json, S_*.png, fingerprint_nu.png ({times['structure']:.0f} s)")
    return st, st_dir


def _model_comparison_stage(h5: dict[str, Path], model_dir: Path, out: Path, *, classifier_epochs: int, seed: int,
                            echo: Callable[[str], None], times: dict[str, float]) -> dict[str, Any]:
    """Fit the ν = 0 / ν > 0 classifier into ``model_dir``, measure it on the test sets; the comparison record."""
    import numpy as np

    from ..nre.infer.model_comparison import auc_by_nu, fit_model_classifier, reliability, roc_auc

    t0 = time.perf_counter()
    echo(f"[4/6] model comparison nu = 0 vs nu > 0 on log S(k, t) (≤ {classifier_epochs} epochs) ...")
    x1, _, spec = _ensemble_features(h5["train"])
    x0, _, _ = _ensemble_features(h5["nu0"])
    clf = fit_model_classifier(x0, x1, epochs=classifier_epochs, hidden=(128, 64), batch_size=128, patience=8,
                               seed=seed, features=spec)
    clf.save(model_dir)
    f0, _, _ = _ensemble_features(h5["nu0_test"])
    f1, nu1, _ = _ensemble_features(h5["test"])
    p0, p1 = clf.p_drag(f0), clf.p_drag(f1)
    labels = np.r_[np.zeros(p0.size), np.ones(p1.size)]
    rows = auc_by_nu(p0, p1, nu1)
    rel = reliability(np.r_[p0, p1], labels, 10)
    comparison = {"auc": roc_auc(np.r_[p0, p1], labels), "auc_by_nu": rows, "reliability": rel,
                  "n_test_nu0": int(p0.size), "n_test_drag": int(p1.size),
                  "best_val_loss": clf.info.get("best_val_loss"), "epochs_run": clf.info.get("epochs_run"),
                  "features": spec}
    cmp_dir = out / "model_comparison"
    cmp_dir.mkdir(exist_ok=True)
    (cmp_dir / "comparison.json").write_text(json.dumps(comparison, indent=1))
    try:
        import matplotlib

        matplotlib.use("Agg")
        from ..plots.structure import plot_auc_by_nu, plot_reliability

        plot_reliability(rel, cmp_dir / "reliability.png")
        plot_auc_by_nu(rows, cmp_dir / "auc_nu.png")
    except ImportError as exc:  # pragma: no cover - matplotlib is a dependency
        log.warning("model-comparison figures not written: %s", exc)
    times["model_comparison"] = time.perf_counter() - t0
    echo(f"      -> {model_dir}/model_comparison.keras/.json, {cmp_dir}/comparison.json, reliability.png, auc_nu.png "
         f"({times['model_comparison']:.0f} s)")
    return comparison


def _echo_comparison(comparison: dict[str, Any], echo: Callable[[str], None]) -> None:
    """Summary lines of the model comparison: ROC AUC, ECE and the AUC by true ν."""
    echo(f"  model comparison: {comparison['n_test_nu0']} nu = 0 and {comparison['n_test_drag']} nu ~ prior test "
         f"simulations, ROC AUC {comparison['auc']:.3f}, ECE {comparison['reliability']['ece']:.3f}; by true nu:")
    for r in comparison["auc_by_nu"]:
        a = "-" if r["auc"] is None else f"{r['auc']:.3f}"
        g = "-" if r["auc_nu_ge_low"] is None else f"{r['auc_nu_ge_low']:.3f}"
        echo(f"    nu in [{r['nu_low']:g}, {r['nu_high']:g}] (n={r['n']}): AUC {a}; all nu >= {r['nu_low']:g}: {g}")
