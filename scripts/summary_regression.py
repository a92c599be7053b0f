"""How much of each parameter is a smooth function of the ABC baseline's summaries (issue 20, diagnostic).

Fits a global ridge regression (degree 1 or 2 in the standardised features)
of each inferred parameter on the 13 summaries of
:func:`tdglnre.analysis.baselines.summaries` — of the last snapshot (what the
ABC reads) or of every snapshot — on a training ensemble, and prints the MAE
(± standard error) of its predictions on a test ensemble. The mean densities,
their standard deviations and mean |curl J| enter as logarithms, as in the
network's summary branch (tdglnre/nre/net/summaries.py). A regression that
matches the ABC says the information is a smooth, nearly quadratic function of
the summaries; a ratio estimator that reads them and stays worse is limited by
its training, not by its inputs (docs/results.md, "Issue 20: a summary branch")::

    python scripts/summary_regression.py --train train.h5 --test test.h5
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from tdglnre.analysis.baselines import summaries_batch
from tdglnre.io.ensemble import open_ensemble

LOGGED = [0, 1, 2, 3, 6]  # mean_rho1, mean_rho2, std_rho1, std_rho2, mean_abs_curlJ


def _summaries(path: str) -> tuple[np.ndarray, np.ndarray, list[str], float]:
    """Summaries (S, T, 13) of every snapshot, the parameters (S, P), their names and L."""
    ens = open_ensemble(path, require_complete=True)
    x = np.asarray(ens.x(0, ens.n_complete))
    s = np.stack([summaries_batch(x[:, t], ens.config.L) for t in range(x.shape[1])], axis=1)
    return s, np.asarray(ens.theta(0, ens.n_complete)), list(ens.parameter_names), ens.config.L


def _design(z: np.ndarray, degree: int) -> np.ndarray:
    cols = [np.ones(len(z)), *z.T]
    if degree == 2:
        cols += [z[:, i] * z[:, j] for i in range(z.shape[1]) for j in range(i, z.shape[1])]
    return np.column_stack(cols)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", required=True)
    ap.add_argument("--test", required=True)
    ap.add_argument("--ridge", type=float, default=1e-3)
    a = ap.parse_args()
    s_tr, th_tr, names, _ = _summaries(a.train)
    s_te, th_te, _, _ = _summaries(a.test)
    for snaps in ("last", "all"):
        pick = [s_tr.shape[1] - 1] if snaps == "last" else list(range(s_tr.shape[1]))
        f_tr, f_te = s_tr[:, pick].copy(), s_te[:, pick].copy()
        for f in (f_tr, f_te):
            f[..., LOGGED] = np.log(np.abs(f[..., LOGGED]) + 1e-30)
        f_tr, f_te = f_tr.reshape(len(f_tr), -1), f_te.reshape(len(f_te), -1)
        mu, sd = f_tr.mean(0), f_tr.std(0) + 1e-12
        for degree in (1, 2):
            A, B = _design((f_tr - mu) / sd, degree), _design((f_te - mu) / sd, degree)
            for p, name in enumerate(names):
                beta = np.linalg.solve(A.T @ A + a.ridge * np.eye(A.shape[1]), A.T @ th_tr[:, p])
                err = np.abs(B @ beta - th_te[:, p])
                print(json.dumps({"snapshots": snaps, "degree": degree, "parameter": name,
                                  "mae": round(float(err.mean()), 5),
                                  "se": round(float(err.std() / np.sqrt(len(err))), 5)}))


if __name__ == "__main__":
    main()
