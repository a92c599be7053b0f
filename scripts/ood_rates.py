"""How often the OOD score flags test simulations measured in several ways (docs/observations.md).

For each test measurement, the first ``--n`` simulations of a clean test
ensemble are measured (sample k with ``measurement_rng(--seed, 0, k)``, a
stream the reference never drew) and scored against the model's OOD
reference; one line per measurement gives the flagged fraction (the false-alarm
rate for a measurement the model was trained for, the detection rate for one it
was not) and the median score.

    python scripts/ood_rates.py --model M --test test.h5 --measurement none --measurement "noise(0.05)" ...
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="model directory")
    ap.add_argument("--test", required=True, help="clean test ensemble (.h5)")
    ap.add_argument("--measurement", action="append", required=True, help="test measurement; repeat")
    ap.add_argument("--n", type=int, default=300, help="test simulations per measurement")
    ap.add_argument("--seed", type=int, default=5, help="measurement noise seed of the test images")
    ap.add_argument("--json", action="store_true", help="one JSON object per line")
    a = ap.parse_args(argv)

    from tdglnre.io.ensemble import open_ensemble
    from tdglnre.nre.infer.model_io import load_estimator
    from tdglnre.nre.infer.ood import _metadata_summaries, fit_and_save_ood, ood_score
    from tdglnre.nre.pipeline.selection import Selection, measure_inputs

    est = load_estimator(a.model)
    ref = fit_and_save_ood(a.model)  # rebuilt from the training ensemble, as posterior would
    with open_ensemble(a.test) as e:
        n = min(a.n, int(e.n_complete))
        clean = est.preprocess(e.x(0, n))
    sel = Selection.from_dict(est.metadata["input"])
    print(f"{a.model}: model measurement {str(est.measurement)!r}, threshold {ref['threshold']:.3g}, "
          f"{ref['n_fit']} fit + {ref['n_heldout']} held-out training simulations")
    for spec in a.measurement:
        x = measure_inputs(est.resolve_measurement(spec), clean, sel, a.seed, 0, np.arange(n))
        score = ood_score(ref, _metadata_summaries(est.metadata, x))
        row = {"test_measurement": spec, "n": n, "flagged": float(np.mean(score > ref["threshold"])),
               "median_score": float(np.median(score))}
        print(json.dumps(row) if a.json else
              f"  {spec:28s} flagged {row['flagged']:.3f}   median score {row['median_score']:.1f}")


if __name__ == "__main__":
    main()
