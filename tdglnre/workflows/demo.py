"""End-to-end demo: generate → train → posterior → calibration on the ``quick`` preset.

``tdglnre demo`` calls :func:`run_demo`. Every stage is the same workflow
function the individual commands and the Python API use; the demo only
chooses small sizes.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger(__name__)


def run_demo(out_dir: str | Path = "tdglnre-demo", *, preset: str = "quick", n_train: int = 8000,
             n_test: int = 500, epochs: int = 60, seed: int = 0, n_examples: int = 3, force: bool = False,
             quiet: bool = False, echo: Callable[[str], None] = print,
             measurement: str | None = None) -> dict[str, Any]:
    """Run the whole pipeline on a small preset and summarise it.

    Parameters
    ----------
    out_dir
        Where every artifact goes (created).
    preset
        Preset name (default ``quick``: N = 32).
    n_train, n_test
        Training and test simulations (the test set uses seed + 1, so it is
        independent of the training set).
    epochs
        Maximum training epochs (early stopping usually ends sooner).
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
        the clean test simulations (None: perfect measurement).

    Returns
    -------
    dict
        Paths of the artifacts, the example posteriors, the calibration figures
        and the wall time of each stage.
    """
    from ..io.presets import load_preset
    from .calibrate import calibrate
    from .generate import generate
    from .posterior import load_model, observation_from_ensemble, posterior
    from .train import train

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    times: dict[str, float] = {}
    config, prior = load_preset(preset)

    t0 = time.perf_counter()
    train_h5, test_h5 = out / "train.h5", out / "test.h5"
    echo(f"[1/4] simulating {n_train} training + {n_test} test quenches ({preset} preset, N={config.N}) ...")
    generate(config, n_train, seed, train_h5, prior=prior, force=force, progress=not quiet)
    generate(config, n_test, seed + 1, test_h5, prior=prior, force=force, progress=not quiet)
    times["generate"] = time.perf_counter() - t0
    echo(f"      -> {train_h5}, {test_h5} ({times['generate']:.0f} s)")

    t0 = time.perf_counter()
    model_dir = out / "model"
    echo(f"[2/4] training the ratio estimator (≤ {epochs} epochs) ...")
    extra = {} if measurement is None else {"measurement": measurement}
    res = train(train_h5, model_dir, epochs=epochs, patience=12, lr_patience=5, seed=seed, force=force, quiet=quiet,
                **extra)
    times["train"] = time.perf_counter() - t0
    echo(f"      -> {model_dir} (best val loss {res.best_val_loss:.4f} at epoch {res.best_epoch + 1}, "
         f"{times['train']:.0f} s)")

    t0 = time.perf_counter()
    echo(f"[3/4] posteriors of {n_examples} test observations ...")
    examples = []
    model = load_model(model_dir)  # loaded once for all examples
    for i in range(n_examples):
        d = out / f"posterior_{i}"
        post = posterior(model, observation_from_ensemble(test_h5, i, None))
        post.save(d, force=force)
        r = post.summary()
        examples.append({"index": i, "dir": str(d), "parameters": r["parameters"],
                         "at_prior_edge": r["at_prior_edge"], "ood_score": r["ood_score"],
                         "ood_threshold": r["ood_threshold"], "warnings": r["warnings"]})
    times["posterior"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    echo(f"[4/4] calibration on {n_test} test simulations (coverage, SBC, table, ABC baseline) ...")
    cal_dir = out / "calibration"
    rep = calibrate(model_dir, test_h5, reference=train_h5, progress=not quiet)
    rep.save(cal_dir, force=force)
    cal = rep.report
    times["calibration"] = time.perf_counter() - t0
    echo(f"      -> {cal_dir}/calibration.json, coverage.png, sbc.png, table.md")

    echo("")
    echo("Summary")
    for ex in examples:
        for name, s in ex["parameters"].items():
            echo(f"  test #{ex['index']}: {name} truth {s.get('truth', float('nan')):g}, posterior "
                 f"{s['mean']:.3f} ± {s['std']:.3f}, 95% HPD [{s['hpd95'][0]:.3f}, {s['hpd95'][1]:.3f}]")
        for w in ex["warnings"]:
            echo(f"  test #{ex['index']}: WARNING: {w}")
    for line in rep.summary_lines():
        echo("  " + line)
    total = sum(times.values())
    echo(f"  wall time {total:.0f} s: " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items()))
    summary = {"out_dir": str(out), "measurement": str(model.measurement), "train": str(train_h5), "test": str(test_h5), "model": str(model_dir),
               "calibration": str(cal_dir), "examples": examples, "times": times, "wall_seconds": total,
               "coverage_max_abs_deviation": (cal.get("expected_coverage") or {}).get("max_abs_deviation"),
               "coverage95": cal.get("coverage95"),
               "mae": cal["mae"], "width95": cal["width95"]}
    (out / "demo_summary.json").write_text(json.dumps(summary, indent=1))
    return summary
