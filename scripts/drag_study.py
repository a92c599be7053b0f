"""Where does the drag ν live? Signal-to-noise of S(k, t) between ν bins, per snapshot and channel (docs/drag.md).

Usage: python scripts/drag_study.py DATA.h5 [--max-samples S] [--low 0,0.1] [--high 0.4,0.5]
       [--floor 1e-4] [--conditional] [--figures DIR] [--json OUT.json]
       python scripts/drag_study.py compare --nu0 NU0.h5 --drag DRAG.h5 --test-nu0 T0.h5 --test-drag T1.h5
       [--out DIR] [--epochs 60] [--seed 0] [--floor F]
       python scripts/drag_study.py abc --reference TRAIN.h5 --test TEST.h5 [--max-test 500] [--floor F]

DATA.h5 is an ensemble of a drag preset (``tdglnre generate --preset drag-quick
... [--store-fields]``; with ψ stored the interband phase cos(φ1 − φ2) is a
channel too). For every snapshot time t and channel c this prints

* SNR(t, c) = max_k |⟨log S⟩_high − ⟨log S⟩_low| / s_pooled(k): the difference
  of the mean log S(k, t) between the ν bins ``--high`` and ``--low`` in units
  of the sample-to-sample standard deviation (pooled over the two bins), at the
  shell k where it is largest. η and n_v vary within each bin (they are drawn
  from the prior), so the spread is the one an observation faces. The standard
  error of the difference of means is s·√(1/n_lo + 1/n_hi), so the table also
  says whether the difference is resolved (Δ/SE).
  With ``--conditional`` log S is first replaced by its residual after a
  least-squares fit on (η, n_v) (a cubic in η per n_v), so the spread is the
  one at fixed η and n_v — the ν information when η and n_v are known.
* R²(t, c) and MAE(t, c): cross-validated (5-fold) ridge regression of ν on the
  standardised log S(k, t) of that channel and snapshot — how much of ν a
  linear read-out of the structure factor recovers, against the prior MAE of
  predicting the prior mean (0.125 for U(0, 0.5)). Also per snapshot with all
  channels, and for all snapshots together (the time series).

``compare`` trains the model-comparison classifier
(:mod:`tdglnre.nre.infer.model_comparison`) on log S(k, t) of every channel and
snapshot of a ν = 0 ensemble and a ν ~ prior ensemble (half the prior mass at
ν = 0 when they are the same size), then prints on independent test sets the
ROC AUC per true-ν bin and the reliability of P(ν > 0 | x) under equal prior
odds; the classifier is saved in ``--out``.

``abc`` is the summary-statistic baseline on S(k, t): semi-automatic ABC
whose summaries are ridge projections of log S(k, t) onto θ (fitted on the
reference set), for the whole time series and for each snapshot alone.

The numbers in docs/drag.md come from this script on the drag-quick study set.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np


def _bin(values: str) -> tuple[float, float]:
    a, b = (float(v) for v in values.split(","))
    if not b > a:
        raise argparse.ArgumentTypeError(f"a bin needs low < high, got {values!r}")
    return a, b


def snr_table(logS: np.ndarray, nu: np.ndarray, low: tuple[float, float],
              high: tuple[float, float]) -> dict[str, np.ndarray]:
    """Per (t, k): mean difference of log S between the ν bins, pooled spread and n per bin.

    Parameters
    ----------
    logS
        (S, T, M) log S(k, t) of one channel.
    nu
        (S,) drag of each sample.
    low, high
        The two ν bins [a, b].
    """
    lo = (nu >= low[0]) & (nu <= low[1])
    hi = (nu >= high[0]) & (nu <= high[1])
    n0, n1 = int(lo.sum()), int(hi.sum())
    if min(n0, n1) < 2:
        raise SystemExit(f"error: too few samples in the nu bins (low {n0}, high {n1})")
    d = logS[hi].mean(axis=0) - logS[lo].mean(axis=0)
    s = np.sqrt(((n0 - 1) * logS[lo].var(axis=0, ddof=1) + (n1 - 1) * logS[hi].var(axis=0, ddof=1)) / (n0 + n1 - 2))
    return {"diff": d, "spread": s, "snr": np.abs(d) / s, "n_low": n0, "n_high": n1,
            "se": s * np.sqrt(1.0 / n0 + 1.0 / n1)}


def ridge_cv(X: np.ndarray, y: np.ndarray, folds: int = 5, alphas=(1e-2, 1e-1, 1.0, 10.0, 100.0),
             seed: int = 0) -> dict[str, float]:
    """5-fold cross-validated ridge regression of y on standardised X (best α by CV MSE): R², MAE."""
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(y))
    parts = np.array_split(idx, folds)
    best = None
    for a in alphas:
        pred = np.empty_like(y)
        for f in range(folds):
            te = parts[f]
            tr = np.concatenate([parts[g] for g in range(folds) if g != f])
            mu, sd = X[tr].mean(axis=0), X[tr].std(axis=0) + 1e-12
            Z = (X[tr] - mu) / sd
            ym = y[tr].mean()
            w = np.linalg.solve(Z.T @ Z + a * np.eye(Z.shape[1]), Z.T @ (y[tr] - ym))
            pred[te] = ((X[te] - mu) / sd) @ w + ym
        mse = float(np.mean((pred - y) ** 2))
        if best is None or mse < best[0]:
            best = (mse, a, pred.copy())
    mse, a, pred = best
    return {"r2": 1.0 - mse / float(np.var(y)), "mae": float(np.mean(np.abs(pred - y))), "alpha": a}


def nuisance_design(eta: np.ndarray, n_v: np.ndarray) -> np.ndarray:
    """Regressors of the nuisance parameters: per n_v a cubic in η (one-hot n_v times 1, η, η², η³)."""
    cols = []
    for v in np.unique(n_v):
        m = (n_v == v).astype(np.float64)
        cols += [m, m * eta, m * eta ** 2, m * eta ** 3]
    return np.column_stack(cols)


def residualize(logS: np.ndarray, eta: np.ndarray, n_v: np.ndarray) -> np.ndarray:
    """log S(k, t) minus its least-squares fit on (η, n_v) (:func:`nuisance_design`), per (t, k).

    What remains is the sample-to-sample spread at fixed η and n_v plus the ν dependence.
    """
    X = nuisance_design(eta, n_v)
    Y = logS.reshape(logS.shape[0], -1)
    beta, *_ = np.linalg.lstsq(X, Y, rcond=None)
    return (Y - X @ beta).reshape(logS.shape)


def study(path: str, max_samples: int | None, low: tuple[float, float], high: tuple[float, float],
          floor: float | None = None, conditional: bool = False) -> dict[str, Any]:
    """All tables of the study as a dict (also the figures' data).

    ``floor``: a detector's dynamic range — S(k, t) below ``floor`` times the
    sample's largest shell value at that time is replaced by that level, so only
    the part of the spectrum within the range carries information.
    ``conditional``: remove the (η, n_v) dependence of log S first (:func:`residualize`), so the
    spread is the one at fixed η and n_v (the information about ν when η and n_v are known).
    """
    from tdglnre.workflows.structure import structure

    res = structure(data=path, all=True, max_samples=max_samples)
    ser = res.series
    nu = np.asarray(ser.theta["nu"], dtype=np.float64)
    eta = np.asarray(ser.theta["eta"], dtype=np.float64)
    out: dict[str, Any] = {"data": path, "n_samples": ser.n_samples, "t": ser.t.tolist(), "k": ser.k.tolist(),
                           "low": list(low), "high": list(high), "prior_mae_nu": float(np.mean(np.abs(nu - nu.mean()))),
                           "prior_mae_eta": float(np.mean(np.abs(eta - eta.mean()))),
                           "snr": {}, "ridge": {}, "ridge_eta": {}}
    if floor is not None:
        logs = {c: np.log(np.maximum(S, floor * S.max(axis=-1, keepdims=True))) for c, S in ser.S.items()}
    else:
        logs = {c: np.log(np.maximum(S, 1e-30)) for c, S in ser.S.items()}
    out["floor"] = floor
    out["conditional"] = conditional
    if conditional:
        n_v = np.asarray(ser.theta["n_v"], dtype=np.float64)
        logs = {c: residualize(v, eta, n_v) for c, v in logs.items()}
    for c, L in logs.items():
        tab = snr_table(L, nu, low, high)
        i = np.argmax(tab["snr"], axis=1)
        T = np.arange(len(ser.t))
        out["snr"][c] = {"snr_max": tab["snr"][T, i].tolist(), "k_at_max": ser.k[i].tolist(),
                         "diff_at_max": tab["diff"][T, i].tolist(), "resolved_at_max":
                         (np.abs(tab["diff"][T, i]) / tab["se"][T, i]).tolist(),
                         "n_low": tab["n_low"], "n_high": tab["n_high"], "snr_k": tab["snr"].tolist()}
        out["ridge"][c] = [ridge_cv(L[:, t], nu) for t in range(len(ser.t))]
    allc = np.concatenate([logs[c] for c in logs], axis=-1)  # (S, T, C·M)
    out["ridge"]["all_channels"] = [ridge_cv(allc[:, t], nu) for t in range(len(ser.t))]
    out["ridge_eta"]["all_channels"] = [ridge_cv(allc[:, t], eta) for t in range(len(ser.t))]
    out["ridge_time_series"] = ridge_cv(allc.reshape(allc.shape[0], -1), nu)
    out["ridge_time_series_eta"] = ridge_cv(allc.reshape(allc.shape[0], -1), eta)
    out["_result"] = res
    return out


def print_tables(d: dict[str, Any], file: Any = sys.stdout) -> None:
    """Markdown tables of the study."""
    t = d["t"]
    chans = list(d["snr"])
    head = "| channel | " + " | ".join(f"t = {x:g}" for x in t) + " |"
    sep = "|---" * (len(t) + 1) + "|"
    fl = "" if d.get("floor") is None else f", S clipped at {d['floor']:g} x its peak (dynamic range)"
    if d.get("conditional"):
        fl += ", log S residuals after a fit on (eta, n_v): spread at fixed eta, n_v"
    print(f"S(k, t) study of {d['data']} ({d['n_samples']} samples{fl}); nu bins low {d['low']} "
          f"(n={d['snr'][chans[0]]['n_low']}) vs high {d['high']} (n={d['snr'][chans[0]]['n_high']})\n", file=file)
    print("SNR: max over k of |mean log S(high nu) - mean log S(low nu)| / pooled sample spread "
          "[k at the max; difference / its standard error]\n", file=file)
    print(head, file=file)
    print(sep, file=file)
    for c in chans:
        s = d["snr"][c]
        cells = [f"{v:.2f} [k={k:.2f}; {r:.0f}σ]"
                 for v, k, r in zip(s["snr_max"], s["k_at_max"], s["resolved_at_max"])]
        print(f"| {c} | " + " | ".join(cells) + " |", file=file)
    print(f"\nRidge regression of nu on log S(k, t) (5-fold CV): R² / MAE (prior MAE {d['prior_mae_nu']:.3f})\n",
          file=file)
    print(head, file=file)
    print(sep, file=file)
    for c in list(d["ridge"]):
        cells = [f"{r['r2']:.2f} / {r['mae']:.3f}" for r in d["ridge"][c]]
        print(f"| {c} | " + " | ".join(cells) + " |", file=file)
    ts = d["ridge_time_series"]
    print(f"\nAll snapshots and channels together (the time series): R² {ts['r2']:.2f}, nu MAE {ts['mae']:.3f}",
          file=file)
    if d.get("conditional"):
        return  # eta was regressed out
    cells = [f"{r['r2']:.2f} / {r['mae']:.3f}" for r in d["ridge_eta"]["all_channels"]]
    print(f"eta from log S, all channels (prior MAE {d['prior_mae_eta']:.3f}): " + " | ".join(cells)
          + f"; time series: R² {d['ridge_time_series_eta']['r2']:.2f}, MAE {d['ridge_time_series_eta']['mae']:.3f}",
          file=file)


def _features(path: str, floor: float | None = None, images: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """log S(k, t) features (or the images, snapshots stacked as channels) of an ensemble, and its ν."""
    from tdglnre.io.ensemble import open_ensemble
    from tdglnre.nre.infer.model_comparison import stack_snapshots, structure_features

    with open_ensemble(path) as ens:
        n = ens.n_complete
        L = float(ens.config.L)
        if images:
            f = stack_snapshots(ens.x(0, n))
        else:
            f = np.concatenate([structure_features(ens.x(a, min(n, a + 512)), L, floor=floor)
                                for a in range(0, n, 512)])
        names = list(ens.parameter_names)
        nu = ens.theta(0, n)[:, names.index("nu")] if "nu" in names else np.full(n, ens.prior.fixed_values()["nu"])
    return f, np.asarray(nu, dtype=np.float64)


def compare_main(argv: list[str]) -> int:
    """Train and evaluate the ν = 0 / ν > 0 classifier on S(k, t) features (see the module docstring)."""
    from tdglnre.nre.infer.model_comparison import auc_by_nu, fit_model_classifier, reliability, roc_auc

    p = argparse.ArgumentParser(description="model comparison nu = 0 vs nu > 0 on log S(k, t)")
    for a in ("--nu0", "--drag", "--test-nu0", "--test-drag"):
        p.add_argument(a, required=True)
    p.add_argument("--out", default=None, help="save the classifier, reliability.png and auc_nu.png here")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--floor", type=float, default=None, help="dynamic range of S (see the snr mode)")
    p.add_argument("--calibrate", action="store_true", help="temperature-scale the logits on the validation split")
    p.add_argument("--images", action="store_true",
                   help="classify the images (snapshots stacked as channels, a CNN) instead of log S(k, t)")
    a = p.parse_args(argv)
    x0, _ = _features(a.nu0, a.floor, a.images)
    x1, _ = _features(a.drag, a.floor, a.images)
    from tdglnre.io.ensemble import open_ensemble

    with open_ensemble(a.drag) as ens:
        spec = {"kind": "stacked_images" if a.images else "log_structure", "L": float(ens.config.L),
                "floor": a.floor, "snapshot_times": list(ens.snapshot_times), "channels": list(ens.channels)}
    clf = fit_model_classifier(x0, x1, epochs=a.epochs, hidden=(128, 64), batch_size=128, patience=8, seed=a.seed,
                               features=spec, calibrate=a.calibrate)
    t0, _ = _features(a.test_nu0, a.floor, a.images)
    t1, nu1 = _features(a.test_drag, a.floor, a.images)
    p0, p1 = clf.p_drag(t0), clf.p_drag(t1)
    y = np.r_[np.zeros(p0.size), np.ones(p1.size)]
    pp = np.r_[p0, p1]
    rel = reliability(pp, y, 10)
    rows = auc_by_nu(p0, p1, nu1)
    auc = roc_auc(pp, y)
    if a.floor is not None:
        print(f"S(k, t) clipped at {a.floor:g} x its peak")
    print(f"classifier: n0={x0.shape[0]} n1={x1.shape[0]} input shape {tuple(x0.shape[1:])}, "
          f"{clf.info['epochs_run']} epochs, best val BCE {clf.info['best_val_loss']:.4f} (chance {np.log(2):.4f}), "
          f"temperature {clf.temperature:.3f}")
    print(f"test: {p0.size} nu=0, {p1.size} nu~prior; ROC AUC (all) {auc:.3f}; ECE {rel['ece']:.3f}; "
          f"mean P(nu>0) at nu=0: {p0.mean():.3f}")
    print("\n| true nu bin | n | AUC vs nu = 0 | AUC, all nu >= low edge |\n|---|---|---|---|")
    for r in rows:
        auc_bin = "-" if r["auc"] is None else f"{r['auc']:.3f}"
        auc_ge = "-" if r["auc_nu_ge_low"] is None else f"{r['auc_nu_ge_low']:.3f}"
        print(f"| [{r['nu_low']:g}, {r['nu_high']:g}) | {r['n']} | {auc_bin} | {auc_ge} |")
    print("\n| predicted P(nu>0) | n | mean predicted | observed frequency |\n|---|---|---|---|")
    for i, n in enumerate(rel["count"]):
        if n:
            print(f"| [{rel['edges'][i]:.1f}, {rel['edges'][i + 1]:.1f}) | {n} | {rel['predicted'][i]:.3f} | "
                  f"{rel['observed'][i]:.3f} |")
    if a.out:
        import matplotlib

        matplotlib.use("Agg")
        from tdglnre.plots.structure import plot_auc_by_nu, plot_reliability

        out = Path(a.out)
        clf.save(out)
        plot_reliability(rel, out / "reliability.png")
        plot_auc_by_nu(rows, out / "auc_nu.png")
        (out / "comparison.json").write_text(json.dumps({"auc": auc, "reliability": rel, "auc_by_nu": rows,
                                                         "info": clf.info}, indent=1))
    return 0


def ridge_fit(X: np.ndarray, Y: np.ndarray, alpha: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ridge regression of every column of Y on standardised X: (mean, std, weights incl. intercept)."""
    mu, sd = X.mean(axis=0), X.std(axis=0) + 1e-12
    Z = np.column_stack([np.ones(len(X)), (X - mu) / sd])
    reg = alpha * np.eye(Z.shape[1])
    reg[0, 0] = 0.0
    W = np.linalg.solve(Z.T @ Z + reg, Z.T @ Y)
    return mu, sd, W


def abc_main(argv: list[str]) -> int:
    """Semi-automatic ABC (Fearnhead & Prangle 2012) on log S(k, t): ridge projections of the features onto θ
    are the summaries, then rejection ABC with local-linear adjustment (:mod:`tdglnre.analysis.baselines`)."""
    from tdglnre.io.ensemble import open_ensemble
    from tdglnre.nre.infer.inference import baseline_evaluation

    p = argparse.ArgumentParser(description="ABC on S(k, t) features: time series vs single snapshots")
    p.add_argument("--reference", required=True)
    p.add_argument("--test", required=True)
    p.add_argument("--max-test", type=int, default=500)
    p.add_argument("--floor", type=float, default=None)
    a = p.parse_args(argv)
    from tdglnre.nre.infer.model_comparison import structure_features

    def load(path: str, n: int | None) -> tuple[np.ndarray, np.ndarray, Any, list[str], int]:
        with open_ensemble(path) as ens:
            m = ens.n_complete if n is None else min(n, ens.n_complete)
            L = float(ens.config.L)
            T = len(ens.snapshot_times)
            f = np.concatenate([structure_features(ens.x(i, min(m, i + 512)), L, floor=a.floor)
                                for i in range(0, m, 512)])
            return f, ens.theta(0, m), ens.prior, list(ens.parameter_names), T

    fr, thr, prior, names, T = load(a.reference, None)
    ft, tht, _, _, _ = load(a.test, a.max_test)
    per_t = fr.shape[1] // T
    print(f"ABC on ridge projections of log S(k, t) ({fr.shape[0]} reference, {ft.shape[0]} test"
          + ("" if a.floor is None else f", S clipped at {a.floor:g} x peak") + ")\n")
    print("| input | " + " | ".join(f"{n} MAE / 95% width / 95% coverage" for n in names) + " |")
    print("|---" * (len(names) + 1) + "|")
    sets = [("time series (all t)", slice(None))] + [(f"t index {t}", slice(t * per_t, (t + 1) * per_t))
                                                     for t in range(T)]
    for label_, sl in sets:
        mu, sd, W = ridge_fit(fr[:, sl], thr)
        proj = lambda f: np.column_stack([np.ones(len(f)), (f[:, sl] - mu) / sd]) @ W  # noqa: E731
        ev = baseline_evaluation(proj(fr), thr, proj(ft), tht, names, prior)
        cells = [f"{ev['per_parameter'][n]['mae']:.3f} / {ev['per_parameter'][n]['width95']:.3f} / "
                 f"{ev['per_parameter'][n]['coverage95']:.2f}" for n in names]
        print(f"| {label_} | " + " | ".join(cells) + " |")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "compare":
        return compare_main(argv[1:])
    if argv and argv[0] == "abc":
        return abc_main(argv[1:])
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("data")
    p.add_argument("--max-samples", type=int, default=None)
    p.add_argument("--low", type=_bin, default=(0.0, 0.1), help="low nu bin a,b [0,0.1]")
    p.add_argument("--high", type=_bin, default=(0.4, 0.5), help="high nu bin a,b [0.4,0.5]")
    p.add_argument("--floor", type=float, default=None,
                   help="dynamic range: clip S below FLOOR x the peak shell value of each sample and time")
    p.add_argument("--conditional", action="store_true",
                   help="measure against the spread at fixed eta and n_v (log S residuals of a fit on them)")
    p.add_argument("--figures", default=None, help="write snr.png, fingerprint_nu.png and S curves here")
    p.add_argument("--json", dest="json_out", default=None, help="write the tables as JSON here")
    a = p.parse_args(argv)
    d = study(a.data, a.max_samples, a.low, a.high, a.floor, a.conditional)
    res = d.pop("_result")
    print_tables(d)
    if a.figures:
        import matplotlib

        matplotlib.use("Agg")
        from tdglnre.plots.structure import plot_snr

        out = Path(a.figures)
        out.mkdir(parents=True, exist_ok=True)
        plot_snr(np.asarray(d["t"]), {c: np.asarray(v["snr_max"]) for c, v in d["snr"].items()}, out / "snr.png",
                 title=rf"$\nu$ in {list(a.high)} vs {list(a.low)}: max$_k$ |Δ log S| / spread")
        res.plot(out)
        from tdglnre.plots.structure import plot_fingerprint

        # the fingerprint at the shell where the nu difference is largest at the first snapshot
        fps = [res.fingerprint(c, k_index=int(np.argmax(np.asarray(v["snr_k"])[0]))) for c, v in d["snr"].items()]
        plot_fingerprint(fps, out / "fingerprint_nu_maxsnr.png")
    if a.json_out:
        Path(a.json_out).write_text(json.dumps(d, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
