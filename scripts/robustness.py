"""Robustness table (issue 13 §3, docs/observations.md): trained models × test measurements.

Every model is calibrated on the same clean test ensemble, measured with each
test measurement (sample k's noise from ``measurement_rng(seed, 0, k)``), and
one table row is printed per (model, test measurement): η/n_v (every inferred
parameter) MAE and mean 95% HPD width, the joint and marginal expected-coverage
deviations (max |empirical − nominal| over the 19 levels) and the coverage of
the 95% region. With ``--out DIR`` every calibration.json is kept under
``DIR/<model>__<measurement>/`` and the rows go to ``DIR/robustness.json``.

    python scripts/robustness.py --model clean=M1 --model aware=M2 --test test.h5 \\
        --measurement none --measurement "noise(0.05)" ... [--max-samples 1000] [--grid 256] [--out DIR]

A test set whose prior differs from the model's (e.g. thermal noise drawn
per sample for a model trained without) is evaluated as well: the nuisance
columns are ignored, so coverage there means "marginalised over the nuisance
the model never saw".
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path


def _row(name: str, meas: str, rep: dict) -> dict:
    row = {"model": name, "test_measurement": meas,
           "joint_cov_dev": rep["expected_coverage"]["max_abs_deviation"],
           "coverage95": rep.get("coverage95")}
    for p in rep["parameters"]:
        row[f"{p}_mae"] = rep["mae"][p]["mean"]
        row[f"{p}_w95"] = rep["width95"][p]
        row[f"{p}_cov_dev"] = rep["marginal_expected_coverage"][p]["max_abs_deviation"]
    return row


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", required=True, metavar="NAME=DIR")
    ap.add_argument("--test", required=True, help="clean test ensemble (.h5)")
    ap.add_argument("--measurement", action="append", default=None,
                    help="test measurement ('none', 'noise(0.05)', ...); repeat; default: each model's own")
    ap.add_argument("--max-samples", type=int, default=None)
    ap.add_argument("--grid", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0, help="measurement noise seed of the test set")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args(argv)

    from tdglnre.nre.infer.model_io import load_estimator
    from tdglnre.workflows.calibrate import calibrate

    rows = []
    for spec in a.model:
        name, _, path = spec.partition("=")
        est = load_estimator(path)
        for meas in a.measurement or [None]:
            t0 = time.perf_counter()
            cal = calibrate(est, a.test, grid_points=a.grid, max_samples=a.max_samples, measurement=meas,
                            measurement_seed=a.seed)
            rep = cal.report
            row = _row(name, meas or "(model's own)", rep)
            row["wall_s"] = round(time.perf_counter() - t0, 1)
            rows.append(row)
            print(json.dumps(row), flush=True)
            if a.out is not None:
                d = a.out / f"{name}__{re.sub(r'[^A-Za-z0-9.]+', '_', meas or 'own')}"
                d.mkdir(parents=True, exist_ok=True)
                (d / "calibration.json").write_text(json.dumps(rep, indent=1, default=str))
    params = [k[:-4] for k in rows[0] if k.endswith("_mae")]
    head = (["trained", "tested with"] + [f"{p} MAE" for p in params] + [f"{p} 95% width" for p in params]
            + ["joint cov. dev."] + [f"{p} cov. dev." for p in params] + ["95% region covers"])
    print("\n| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for r in rows:
        cells = ([r["model"], r["test_measurement"]] + [f"{r[p + '_mae']:.4f}" for p in params]
                 + [f"{r[p + '_w95']:.3f}" for p in params] + [f"{r['joint_cov_dev']:.3f}"]
                 + [f"{r[p + '_cov_dev']:.3f}" for p in params] + [f"{r['coverage95']:.3f}"])
        print("| " + " | ".join(cells) + " |")
    if a.out is not None:
        (a.out / "robustness.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
