"""Stages shared by the demo pipelines (:mod:`.demo`, :mod:`.demo_type15`): each runs one workflow, times it
and echoes a progress line; the pipelines only choose sizes and the order."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable


def _simulate_stage(out: Path, step: str, *, preset: str, config: Any, prior: Any, n_train: int, n_test: int,
                    seed: int, force: bool, quiet: bool, echo: Callable[[str], None],
                    times: dict[str, float]) -> tuple[Path, Path]:
    """Training (seed) and test (seed + 1) sets of ``config`` and ``prior``: ``out/train.h5``, ``out/test.h5``."""
    from .generate import generate

    t0 = time.perf_counter()
    train_h5, test_h5 = out / "train.h5", out / "test.h5"
    echo(f"{step} simulating {n_train} training + {n_test} test quenches ({preset} preset, N={config.N}) ...")
    generate(config, n_train, seed, train_h5, prior=prior, force=force, progress=not quiet)
    generate(config, n_test, seed + 1, test_h5, prior=prior, force=force, progress=not quiet)
    times["generate"] = time.perf_counter() - t0
    echo(f"      -> {train_h5}, {test_h5} ({times['generate']:.0f} s)")
    return train_h5, test_h5


def _train_stage(train_h5: Path, model_dir: Path, label: str, *, epochs: int, seed: int, force: bool, quiet: bool,
                 measurement: str | None, echo: Callable[[str], None], times: dict[str, float],
                 **settings: Any) -> Any:
    """Train the ratio estimator (the train workflow, which also fits ood.json), fit its posterior temperature
    on the validation split, and report both.

    Every demo tempers (docs/nre.md, "Tempering"); the measurements behind that, with and without τ, are in
    docs/results.md ("Issue 20: posterior tempering", "Issue 20: the drag-quick demo with the regression head",
    "Issue 21: the type15 demo, tempered"). ``settings``: further training settings (e.g. ``snapshots``,
    ``network``); an ensemble's members are tempered each, and its own ``tempering`` stays None.
    """
    from .train import train

    t0 = time.perf_counter()
    echo(f"{label} (≤ {epochs} epochs) ...")
    extra = {} if measurement is None else {"measurement": measurement}
    res = train(train_h5, model_dir, epochs=epochs, patience=12, lr_patience=5, seed=seed, force=force, quiet=quiet,
                temper=True, **extra, **settings)
    times["train"] = time.perf_counter() - t0
    echo(f"      -> {model_dir} (best val loss {res.best_val_loss:.4f} at epoch {res.best_epoch + 1}, "
         f"{times['train']:.0f} s)")
    if res.tempering is not None:
        t = res.tempering
        echo(f"      posterior temperature {t['temperature']:.3f} on {t['n']} validation simulations (joint coverage "
             f"deviation there {t['joint_coverage_deviation']['before']:+.3f} -> "
             f"{t['joint_coverage_deviation']['after']:+.3f})")
    return res


def _posterior_stage(model_dir: Path, test_h5: Path, out: Path, label: str, *, n_examples: int, force: bool,
                     echo: Callable[[str], None], times: dict[str, float],
                     extra: Callable[[Any, Any, dict[str, Any]], None] | None = None,
                     grid_points: int | None = None) -> tuple[Any, list[dict[str, Any]]]:
    """Posteriors of the first test observations, each saved to ``out/posterior_i``; the model is loaded once.

    ``extra(model, result, example)``, when given, adds to each example's record (e.g. a figure);
    ``grid_points`` None: the posterior's default grid.
    """
    from .posterior import load_model, observation_from_ensemble, posterior

    t0 = time.perf_counter()
    echo(f"{label} ...")
    examples = []
    model = load_model(model_dir)
    for i in range(n_examples):
        d = out / f"posterior_{i}"
        post = posterior(model, observation_from_ensemble(test_h5, i, None),
                         **({} if grid_points is None else {"grid_points": grid_points}))
        post.save(d, force=force)
        r = post.summary()
        examples.append({"index": i, "dir": str(d), "parameters": r["parameters"], "p_drag": r.get("p_drag"),
                         "at_prior_edge": r["at_prior_edge"], "ood_score": r["ood_score"],
                         "ood_threshold": r["ood_threshold"], "warnings": r["warnings"],
                         "notes": r["notes"]} | ({"p_regime": r["p_regime"]} if "p_regime" in r else {}))
        if extra is not None:
            extra(model, post, examples[-1])
    times["posterior"] = time.perf_counter() - t0
    return model, examples


def _calibration_stage(model_dir: Path, test_h5: Path, train_h5: Path, out: Path, label: str, *, force: bool,
                       quiet: bool, echo: Callable[[str], None], times: dict[str, float],
                       grid_points: int | None = None) -> tuple[Any, Path]:
    """Calibration on the test set (coverage, SBC, table, ABC baseline against the training set), saved;
    ``grid_points`` None: calibrate's default grid."""
    from .calibrate import calibrate

    t0 = time.perf_counter()
    echo(f"{label} (coverage, SBC, table, ABC baseline) ...")
    cal_dir = out / "calibration"
    # the split head: half the cost of a 3-parameter grid, the same figures to float32 rounding (issue 20)
    rep = calibrate(model_dir, test_h5, reference=train_h5, progress=not quiet, split_head=True,
                    **({} if grid_points is None else {"grid_points": grid_points}))
    rep.save(cal_dir, force=force)
    times["calibration"] = time.perf_counter() - t0
    echo(f"      -> {cal_dir}/calibration.json, coverage.png, sbc.png, table.md")
    return rep, cal_dir


def _echo_examples(examples: list[dict[str, Any]], echo: Callable[[str], None]) -> None:
    """Summary lines of the example posteriors (with P(nu > 0 | x) when reported)."""
    for ex in examples:
        for name, s in ex["parameters"].items():
            echo(f"  test #{ex['index']}: {name} truth {s.get('truth', float('nan')):g}, posterior "
                 f"{s['mean']:.3f} ± {s['std']:.3f}, 95% HPD [{s['hpd95'][0]:.3f}, {s['hpd95'][1]:.3f}]")
        if ex.get("p_drag") is not None:
            echo(f"  test #{ex['index']}: P(nu > 0 | x) = {ex['p_drag']:.3f}")
        for w in ex["warnings"]:
            echo(f"  test #{ex['index']}: WARNING: {w}")


def _write_summary(out: Path, fields: dict[str, Any], times: dict[str, float], cal: dict[str, Any],
                   echo: Callable[[str], None]) -> dict[str, Any]:
    """Echo the wall time, write ``demo_summary.json`` (``fields``, times, calibration figures) and return it."""
    total = sum(times.values())
    echo(f"  wall time {total:.0f} s: " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items()))
    summary = {**fields, "times": times, "wall_seconds": total,
               "coverage_max_abs_deviation": (cal.get("expected_coverage") or {}).get("max_abs_deviation"),
               "coverage95": cal.get("coverage95"), "mae": cal["mae"], "width95": cal["width95"]}
    (out / "demo_summary.json").write_text(json.dumps(summary, indent=1))
    return summary
