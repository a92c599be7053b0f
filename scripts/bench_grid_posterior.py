"""Cost of grid posteriors per observation, as a calibration pays it (issue 20, "calibration cost").

Times :func:`tdglnre.nre.infer.inference.evaluate_test_set` (encoding, the
log ratio on every grid point, normalisation, summaries, credibilities and SBC
draws) on the first ``--n`` samples of an ensemble, after one warm-up
observation, and prints one JSON line: milliseconds per observation, the grid,
the path and the package it ran. With ``--compare`` it also checks the
split-head posteriors against the joint ones (largest differences of the log
ratio, the posterior means and the credibilities).

Before and after on the same machine in one run: the old package from git, the
new one from the working tree, alternated so that load changes hit both::

    git archive 2c1fcff tdglnre | tar -x -C /tmp/old     # the commit before the change
    for i in 1 2; do
      PYTHONPATH=/tmp/old python scripts/bench_grid_posterior.py --model M --data D --n 16
      python scripts/bench_grid_posterior.py --model M --data D --n 16
      python scripts/bench_grid_posterior.py --model M --data D --n 16 --split-head
    done

(the old package has no ``--split-head``; its line says ``"path": "joint"``).
docs/results.md, "Cost of the posterior grid", records the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True, help="model directory (tdglnre train)")
    ap.add_argument("--data", type=Path, required=True, help="ensemble holding the observations")
    ap.add_argument("--n", type=int, default=16, help="observations timed (after one warm-up)")
    ap.add_argument("--grid", type=int, default=256, help="grid points per continuous parameter (calibration: 256)")
    ap.add_argument("--split-head", action="store_true", help="split the head's first layer (new path)")
    ap.add_argument("--compare", action="store_true", help="also compare split-head and joint posteriors")
    a = ap.parse_args()

    import numpy as np

    import tdglnre as tg
    from tdglnre.io.ensemble import open_ensemble
    from tdglnre.nre.infer.inference import evaluate_test_set
    from tdglnre.nre.infer.posterior import Grid

    model = tg.load_model(a.model)
    with open_ensemble(a.data) as ens:
        n = min(a.n + 1, ens.n_complete)
        raw = ens.x(0, n)
        stored = list(ens.parameter_names)
        theta = ens.theta(0, n)[:, [stored.index(p) for p in model.parameter_names]]
    x = model.preprocess(raw)
    grid = Grid.from_prior(model.prior, a.grid, model.parameter_names)
    kw = {"split_head": True} if a.split_head else {}
    evaluate_test_set(model, x[:1], theta[:1], grid, **kw)  # warm-up (tracing, first allocation)
    t0 = time.perf_counter()
    ev = evaluate_test_set(model, x[1:], theta[1:], grid, **kw)
    dt = time.perf_counter() - t0
    out = {"ms_per_observation": round(1e3 * dt / (n - 1), 1), "n": n - 1, "grid_shape": list(grid.shape),
           "grid_points": grid.size, "path": "split" if a.split_head else "joint",
           "package": str(Path(tg.__file__).parent), "threads": os.cpu_count(),
           "eta_mae": float(np.abs(ev.mean[:, 0] - ev.truth[:, 0]).mean())}
    if a.compare:
        h = model.encode(x[1:])
        pts = grid.points()
        joint = model.log_ratio_from_embedding(h, pts)
        split = model.log_ratio_from_embedding(h, pts, split_head=True)
        other = evaluate_test_set(model, x[1:], theta[1:], grid, split_head=not a.split_head)
        out["compare"] = {"max_abs_log_ratio": float(np.abs(joint - split).max()),
                          "max_abs_mean": float(np.abs(ev.mean - other.mean).max()),
                          "max_abs_std": float(np.abs(ev.std - other.std).max()),
                          "max_abs_credibility": float(np.abs(ev.credibility - other.credibility).max())}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
