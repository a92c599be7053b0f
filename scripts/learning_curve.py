"""Learning curve of the estimator and of the ABC baseline against the training budget (issue 20).

Trains one model per training-set size on nested prefixes of one ensemble
(sample k depends only on (seed, k), so the first n samples of a 16000-sample
file are exactly what ``tdglnre generate --n-samples n`` with the same seed
writes), calibrates each on one independent test set with ``tdglnre
posterior --test-set`` (whose ABC column uses the same n samples as its
reference bank) and writes ``learning_curve.json`` and ``learning_curve.png``
into ``--out``. A size whose calibration exists is not redone, so an
interrupted run continues where it stopped::

    tdglnre generate --preset paper --n-samples 16000 --seed 2026120601 --out train16000.h5
    tdglnre generate --preset paper --n-samples 1000 --seed 2026120602 --out test.h5
    python scripts/learning_curve.py --train train16000.h5 --test test.h5 --out lc \\
        --sizes 500,1000,2000,4000,8000,16000

The estimator is the regression-head network (``--summaries --regression``,
docs/nre.md); pass ``--plain`` for the network without it, ``--temper`` to
fit each model's posterior temperature on its validation split before it is
calibrated, and ``--reuse-models`` to calibrate models already in ``--out``
instead of training them again. Figures:
docs/results.md, "Issue 20: learning curve on the paper preset".
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from tdglnre.io.ensemble import EnsembleWriter, open_ensemble

CHUNK = 500


def write_prefix(src: str, dst: Path, n: int) -> None:
    """Copy the first ``n`` samples of ``src`` to ``dst`` (written to a temporary name, then renamed)."""
    with open_ensemble(src, require_complete=True) as ens:
        if n > ens.n_complete:
            sys.exit(f"Error: {src} holds {ens.n_complete} samples, fewer than the size {n} asked for")
        tmp = dst.with_suffix(".part.h5")
        with EnsembleWriter.create(tmp, ens.config, ens.prior, seed=ens.seed, n_samples=n) as w:
            for start in range(0, n, CHUNK):
                stop = min(n, start + CHUNK)
                w.write_batch(start, np.asarray(ens.theta(start, stop)), np.asarray(ens.x(start, stop)))
        tmp.rename(dst)


def _signed_max_dev(curve: dict) -> float:
    if "signed_max_deviation" in curve:
        return float(curve["signed_max_deviation"])
    d = np.asarray(curve["empirical"]) - np.asarray(curve["levels"])  # a calibration.json written before it
    return float(d[np.argmax(np.abs(d))])


def _row(n: int, cal: dict, train_s: float, cal_s: float) -> dict:
    base = cal["baseline"]["per_parameter"] if cal.get("baseline") else {}
    row: dict = {"n_train": n, "n_test": cal["n_test"], "train_seconds": train_s, "calibration_seconds": cal_s,
                 "coverage_dev_joint": _signed_max_dev(cal["expected_coverage"]),
                 "temperature": cal.get("temperature", 1.0)}
    for k in cal["parameters"]:
        w = cal["width95"][k]
        row[k] = {"mae": cal["mae"][k]["mean"], "mae_se": cal["mae"][k]["std"] / np.sqrt(cal["n_test"]),
                  "width95": w["mean"] if isinstance(w, dict) else w,
                  "coverage_dev": _signed_max_dev(cal["marginal_expected_coverage"][k])}
        if k in base:
            b = base[k]
            row[k]["abc_mae"] = b["mae"]
            row[k]["abc_mae_se"] = b["mae_std"] / np.sqrt(cal["n_test"])
            row[k]["abc_width95"] = b["width95"]
            row[k]["abc_coverage_dev"] = _signed_max_dev(b["expected_coverage_central"])  # its central intervals
    return row


def _run(cmd: list[str], log: Path) -> float:
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        rc = subprocess.call(cmd, stdout=fh, stderr=subprocess.STDOUT)
    if rc != 0:
        sys.exit(f"Error: `{' '.join(cmd)}` failed (exit {rc}); see {log}")
    return time.perf_counter() - t0


def plot(rows: list[dict], path: Path, targets: dict[int, float], net_label: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = np.array([r["n_train"] for r in rows])
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 4))
    for key, lab, st in (("mae", net_label, "o-"), ("abc_mae", "ABC baseline", "s--")):
        y = np.array([r["eta"][key] for r in rows])
        e = np.array([r["eta"][key + "_se"] for r in rows])
        ax.errorbar(n, y, yerr=e, fmt=st, capsize=3, label=lab)
    for nt, v in targets.items():
        ax.plot([nt], [v], "rv", ms=9, label="target" if nt == min(targets) else None)
    ax.set_xscale("log")
    ax.set_xlabel("training simulations")
    ax.set_ylabel("η MAE (1000 test simulations)")
    ax.legend()
    ax.set_title("η accuracy against the training budget")
    bx.axhspan(-0.05, 0.05, color="0.9")
    bx.plot(n, [r["coverage_dev_joint"] for r in rows], "o-", label="joint")
    for k in rows[0]:
        if isinstance(rows[0][k], dict):
            bx.plot(n, [r[k]["coverage_dev"] for r in rows], ".--", label=k)
    bx.axhline(0, color="k", lw=0.5)
    bx.set_xscale("log")
    bx.set_xlabel("training simulations")
    bx.set_ylabel("expected-coverage deviation (signed max)")
    bx.legend()
    bx.set_title("calibration of the network")
    for axis in (ax, bx):
        axis.set_xticks(n, [str(v) for v in n])
        axis.minorticks_off()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", required=True, help="the largest training ensemble; sizes are its prefixes")
    ap.add_argument("--test", required=True, help="independent test ensemble")
    ap.add_argument("--out", required=True, help="output directory (subsets, models, calibrations, table, figure)")
    ap.add_argument("--sizes", default="500,1000,2000,4000,8000,16000")
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--patience", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--plain", action="store_true", help="train without the regression head")
    ap.add_argument("--keep-subsets", action="store_true", help="keep the prefix files (default: removed)")
    ap.add_argument("--temper", action="store_true",
                    help="fit each model's posterior temperature on its validation split before calibrating it "
                         "(`tdglnre train --temper`; docs/nre.md, Tempering)")
    ap.add_argument("--reuse-models", action="store_true",
                    help="a size whose model_N already holds a trained model is not trained again (its training "
                         "time is the sum of its epochs' times); with --temper it is tempered if it is not yet")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    sizes = sorted(int(s) for s in a.sizes.split(","))
    table = out / "learning_curve.json"
    rows = json.loads(table.read_text())["rows"] if table.exists() else []
    done = {r["n_train"] for r in rows}
    head = [] if a.plain else ["--summaries", "--regression"]
    for n in sizes:
        if n in done:
            continue
        sub = out / f"train_{n}.h5"
        if not sub.exists():
            write_prefix(a.train, sub, n)
        model, cal = out / f"model_{n}", out / f"cal_{n}"
        if a.reuse_models and (model / "metadata.json").exists() and (model / "history.json").exists():
            t_train = float(sum(json.loads((model / "history.json").read_text())["time_s"]))
            if a.temper and "tempering" not in json.loads((model / "metadata.json").read_text()):
                _run(["tdglnre", "temper", "--model", str(model), "--data", str(sub), "--split-head", "--quiet"],
                     out / f"temper_{n}.log")
        else:
            t_train = _run(["tdglnre", "train", "--data", str(sub), "--out", str(model), "--epochs", str(a.epochs),
                            "--patience", str(a.patience), "--seed", str(a.seed), "--force", "--quiet", *head,
                            *(["--temper"] if a.temper else [])], out / f"train_{n}.log")
        t_cal = _run(["tdglnre", "posterior", "--model", str(model), "--test-set", a.test, "--out", str(cal),
                      "--reference", str(sub), "--force", "--quiet"], out / f"cal_{n}.log")
        rows.append(_row(n, json.loads((cal / "calibration.json").read_text()), t_train, t_cal))
        rows.sort(key=lambda r: r["n_train"])
        table.write_text(json.dumps({"train": a.train, "test": a.test, "epochs": a.epochs, "patience": a.patience,
                                     "seed": a.seed, "regression_head": not a.plain, "tempered": a.temper,
                                     "rows": rows}, indent=1))
        if not a.keep_subsets:
            sub.unlink()
        r = rows[[x["n_train"] for x in rows].index(n)]
        print(f"n={n}: eta MAE {r['eta']['mae']:.4f} (ABC {r['eta'].get('abc_mae', float('nan')):.4f}), "
              f"coverage dev joint {r['coverage_dev_joint']:+.3f}, train {t_train:.0f} s", flush=True)
    plot(rows, out / "learning_curve.png", {2000: 0.035, 8000: 0.025},
         ("network" if a.plain else "network (regression head)") + (", tempered" if a.temper else ""))
    print(f"wrote {table} and {out / 'learning_curve.png'}")


if __name__ == "__main__":
    main()
