"""Amortised inference: posteriors for one observation and calibration on a test set.

Works with any *estimator* exposing

* ``prior`` (:class:`tdglnre.io.priors.Prior`) and ``parameter_names``;
* ``encode(x) -> h`` for a batch of model inputs;
* ``log_ratio_from_embedding(h, theta) -> (len(h), len(theta))``.

Each observation is encoded once and the head is evaluated on the whole grid
in one call. The trained Keras model (:func:`tdglnre.nre.model_io.load_estimator`)
is one such estimator; tests use analytic ones.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from ..errors import ConfigError
from .calibration import (
    DEFAULT_LEVELS,
    PAPER_ETAS,
    expected_coverage,
    sbc_ranks,
    sbc_uniformity,
    table_csv,
    table_markdown,
    table_rows,
)
from .posterior import Grid, GridPosterior

log = logging.getLogger(__name__)


def posteriors_on_grid(estimator: Any, x: np.ndarray, grid: Grid, *, theta_true: np.ndarray | None = None,
                       batch_size: int = 64) -> tuple[list[GridPosterior], np.ndarray | None]:
    """Grid posteriors of a batch of model inputs.

    Returns
    -------
    posts
        One :class:`GridPosterior` per observation.
    log_density_true
        Normalised log posterior density at each true θ (None without truths).
    """
    pts = grid.points()
    names = list(grid.names)
    log_prior = np.asarray(estimator.prior.log_prob(pts), dtype=np.float64)
    posts: list[GridPosterior] = []
    ld_true = None if theta_true is None else np.empty(len(x))
    for start in range(0, len(x), batch_size):
        xb = x[start:start + batch_size]
        h = estimator.encode(xb)
        lr = np.asarray(estimator.log_ratio_from_embedding(h, pts), dtype=np.float64)
        if theta_true is not None:
            tt = theta_true[start:start + batch_size]
            # every embedding against every truth in one head call; pair i is the diagonal
            lr_true = np.diagonal(np.asarray(estimator.log_ratio_from_embedding(h, tt), dtype=np.float64))
            lp_true = np.asarray(estimator.prior.log_prob(tt), dtype=np.float64)
        for i in range(len(xb)):
            truth = None if theta_true is None else dict(zip(names, map(float, theta_true[start + i])))
            p = GridPosterior.from_log_values(grid, lr[i], log_prior, truth=truth)
            posts.append(p)
            if theta_true is not None:
                ld_true[start + i] = p.normalised(lr_true[i] + lp_true[i])
    return posts, ld_true


# --------------------------------------------------------------------------- test-set calibration
@dataclass
class TestSetEvaluation:
    """Per-sample posterior summaries of a test set."""

    names: list[str]
    truth: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    width68: np.ndarray
    width95: np.ndarray
    credibility: np.ndarray
    """Joint HPD credibility of the truth (Hermans et al. 2022)."""
    marginal_credibility: np.ndarray
    ranks: np.ndarray
    n_draws: int


def evaluate_test_set(estimator: Any, x: np.ndarray, theta: np.ndarray, grid: Grid, *, n_draws: int = 99,
                      seed: int = 0, batch_size: int = 64, progress: Any = None) -> TestSetEvaluation:
    """Posterior of every test pair, with coverage and SBC statistics."""
    rng = np.random.default_rng(seed)
    names = list(grid.names)
    S, P = theta.shape
    ev = TestSetEvaluation(names, theta.copy(), *(np.empty((S, P)) for _ in range(4)), np.empty(S),
                           np.empty((S, P)), np.empty((S, P), dtype=np.int64), n_draws)
    for start in range(0, S, batch_size):
        stop = min(S, start + batch_size)
        posts, ld = posteriors_on_grid(estimator, x[start:stop], grid, theta_true=theta[start:stop],
                                       batch_size=batch_size)
        for i, p in enumerate(posts):
            k = start + i
            ev.credibility[k] = p.credibility_of(ld[i])
            draws = p.sample(n_draws, rng)
            for d, name in enumerate(names):
                s = p.summary(name)
                ev.mean[k, d] = s["mean"]
                ev.std[k, d] = s["std"]
                ev.width68[k, d] = s["hpd68"][1] - s["hpd68"][0]
                ev.width95[k, d] = s["hpd95"][1] - s["hpd95"][0]
                ev.marginal_credibility[k, d] = p.marginal_credibility(name, theta[k, d], rng)
                ev.ranks[k, d] = sbc_ranks(theta[k:k + 1, d], draws[None, :, d], rng)[0]
        if progress is not None:
            progress(stop - start)
    return ev


def baseline_evaluation(ref_summaries: np.ndarray, ref_theta: np.ndarray, test_summaries: np.ndarray,
                        test_theta: np.ndarray, names: Sequence[str], prior: Any,
                        levels: Sequence[float] = DEFAULT_LEVELS) -> dict[str, Any]:
    """ABC baseline on the same test set: MAE, interval widths and central-interval coverage."""
    from ..analysis.baselines import ABCBaseline, weighted_quantile

    abc = ABCBaseline(ref_summaries, ref_theta)
    S, P = test_theta.shape
    mean = np.empty((S, P))
    w95 = np.empty((S, P))
    w68 = np.empty((S, P))
    pit = np.empty((S, P))
    for k in range(S):
        samp, w = abc.posterior_samples(test_summaries[k])
        for d, n in enumerate(names):
            v = np.clip(samp[:, d], prior.low(n), prior.high(n))
            mean[k, d] = float((w * v).sum())
            w95[k, d] = weighted_quantile(v, w, 0.975) - weighted_quantile(v, w, 0.025)
            w68[k, d] = weighted_quantile(v, w, 0.84) - weighted_quantile(v, w, 0.16)
            pit[k, d] = float(w[v < test_theta[k, d]].sum() + 0.5 * w[v == test_theta[k, d]].sum())
    out: dict[str, Any] = {"method": "rejection ABC + local-linear regression on 13 summaries",
                           "accepted": abc.accept, "reference_size": int(ref_theta.shape[0]), "per_parameter": {}}
    for d, n in enumerate(names):
        err = np.abs(mean[:, d] - test_theta[:, d])
        cred = np.abs(2 * pit[:, d] - 1)  # central-interval credibility of the truth
        cov = expected_coverage(cred, levels).to_dict()
        out["per_parameter"][n] = {
            "mae": float(err.mean()), "mae_std": float(err.std()),
            "width68": float(w68[:, d].mean()), "width95": float(w95[:, d].mean()),
            "coverage95": float((cred < 0.95).mean()),
            "expected_coverage_central": cov,
            "posterior_mean": mean[:, d].tolist(),
        }
    return out


#: calibration.json keys that hold coverage/SBC figures, meaningful only for test
#: parameters drawn from the model's prior.
COVERAGE_KEYS = ("expected_coverage", "marginal_expected_coverage", "coverage95", "marginal_coverage95",
                 "sbc_ranks", "sbc_n_draws", "sbc_uniformity")


def calibration_report(ev: TestSetEvaluation, *, levels: Sequence[float] = DEFAULT_LEVELS,
                       table_param: str = "eta", targets: Sequence[float] = PAPER_ETAS,
                       half_window: float = 0.05, coverage: bool = True) -> dict[str, Any]:
    """calibration.json content (without the baseline).

    With ``coverage=False`` (a test set not drawn from the model's prior) the
    coverage and SBC entries (:data:`COVERAGE_KEYS`) are left out and only the
    accuracy figures (MAE, interval widths, table) are reported.
    """
    rep: dict[str, Any] = {"n_test": int(ev.truth.shape[0]), "parameters": ev.names}
    if coverage:
        rep.update({
            "expected_coverage": expected_coverage(ev.credibility, levels).to_dict(),
            "marginal_expected_coverage": {
                n: expected_coverage(ev.marginal_credibility[:, d], levels).to_dict()
                for d, n in enumerate(ev.names)
            },
            "coverage95": float((ev.credibility < 0.95).mean()),
            "sbc_ranks": {n: ev.ranks[:, d].tolist() for d, n in enumerate(ev.names)},
            "sbc_n_draws": ev.n_draws,
            "sbc_uniformity": {n: sbc_uniformity(ev.ranks[:, d], ev.n_draws) for d, n in enumerate(ev.names)},
            "marginal_coverage95": {},
        })
    rep.update({"mae": {}, "width68": {}, "width95": {}})
    for d, n in enumerate(ev.names):
        err = np.abs(ev.mean[:, d] - ev.truth[:, d])
        rep["mae"][n] = {"mean": float(err.mean()), "std": float(err.std())}
        rep["width68"][n] = float(ev.width68[:, d].mean())
        rep["width95"][n] = float(ev.width95[:, d].mean())
        if coverage:
            rep["marginal_coverage95"][n] = float((ev.marginal_credibility[:, d] < 0.95).mean())
    if table_param in ev.names:
        d = ev.names.index(table_param)
        rows = table_rows(ev.truth[:, d], ev.mean[:, d], ev.std[:, d], ev.width68[:, d], ev.width95[:, d],
                          targets, half_window)
        used = [r for r in rows if r["n"] > 0]
        maes = np.array([r["mae"] for r in used]) if used else np.array([np.nan])
        rep["table"] = {"parameter": table_param, "half_window": half_window, "rows": rows,
                        "mae_mean_over_targets": float(np.mean(maes)), "mae_std_over_targets": float(np.std(maes))}
    return rep


def calibration_summary_lines(rep: dict[str, Any]) -> list[str]:
    """Short human-readable summary of a calibration report (CLI and demo)."""
    lines = []
    if rep.get("prior_mismatch"):
        lines.append("WARNING: " + rep["prior_mismatch"]["note"])
    if "expected_coverage" in rep:
        cov = rep["expected_coverage"]
        lines.append(f"expected coverage (joint HPD, {rep['n_test']} tests): max |empirical - nominal| = "
                     f"{cov['max_abs_deviation']:.3f}; 95% region covers {rep['coverage95']:.3f}")
    else:
        lines.append(f"accuracy on {rep['n_test']} tests (no coverage/SBC: the test prior is not the model's)")
    for n, m in rep["mae"].items():
        line = f"{n}: MAE {m['mean']:.4f} ± {m['std']:.4f}, mean 95% HPD width {rep['width95'][n]:.4f}"
        if rep.get("baseline"):
            b = rep["baseline"]["per_parameter"][n]
            line += f" (ABC baseline: MAE {b['mae']:.4f}, 95% width {b['width95']:.4f})"
        lines.append(line)
    return lines


def _summary_images(estimator: Any, raw: np.ndarray) -> np.ndarray:
    """[rho1, rho2, curlJ] at the model's (last) snapshot from ensemble samples (S, T, N, N, C)."""
    inp = estimator.metadata["input"]
    t = list(inp["snapshot_indices"])[-1]
    ch = list(inp["dataset_channels"])
    return raw[:, t][..., [ch.index("rho1"), ch.index("rho2"), ch.index("curlJ")]]


def _sim_config(estimator: Any):
    from ..physics.config import SimConfig

    cfg = estimator.metadata["dataset"]["config"]
    if cfg is None:
        raise ConfigError("the model's metadata does not record its training config; cannot simulate")
    return SimConfig.from_json(cfg) if isinstance(cfg, str) else SimConfig.from_dict(cfg)


# --------------------------------------------------------------------------- output directories
def check_output_dir(out_dir: str | Path, *, force: bool = False,
                     protect: Sequence[str | Path | None] = ()) -> Path:
    """Refuse an ``--out`` that exists and is not empty (unless ``force``), or that holds an input.

    Parameters
    ----------
    out_dir
        The output directory.
    force
        Allow replacing an existing non-empty directory.
    protect
        Input paths (model directory, data files) that must not lie inside
        ``out_dir``: replacing it would destroy them.

    Raises
    ------
    ConfigError
        With a one-line reason.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} exists and is not a directory")
    res = out.resolve()
    for p in protect:
        if p is None:
            continue
        rp = Path(p).resolve()
        if rp == res or res in rp.parents:
            raise ConfigError(f"--out {out} contains the input {p}; choose another output directory")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ConfigError(f"--out {out} already exists and is not empty; pass --force to replace it")
    return out


@contextlib.contextmanager
def staged_output(out_dir: str | Path, *, force: bool = False) -> Iterator[Path]:
    """Write into a temporary sibling directory that replaces ``out_dir`` only on success.

    On any exception the temporary directory, and any parent directories this
    call created, are removed, so a failed run leaves no (empty or partial)
    output behind and an existing ``out_dir`` is untouched.
    """
    out = check_output_dir(out_dir, force=force)
    parent = out.absolute().parent
    created = []
    for p in [parent, *parent.parents]:
        if p.exists():
            break
        created.append(p)
    parent.mkdir(parents=True, exist_ok=True)
    tmp = parent / f".{out.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
        old = None
        if out.exists():
            old = parent / f".{out.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            os.replace(out, old)
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for p in created:  # innermost first
            with contextlib.suppress(OSError):
                p.rmdir()
        raise


# --------------------------------------------------------------------------- priors of model and test set
def prior_mismatch(model_prior: Any, test_prior: Any) -> dict[str, Any] | None:
    """Compare the model's training prior with the prior a test set was drawn from.

    Parameters
    ----------
    model_prior
        The model's prior (a :class:`~tdglnre.io.priors.Prior`, or the box
        prior of a model trained without one, which lists only the inferred
        parameters).
    test_prior
        The test ensemble's :class:`~tdglnre.io.priors.Prior`.

    Returns
    -------
    dict or None
        None if they agree; else ``model``, ``test`` (both priors as dicts),
        ``parameters`` (the names whose priors differ) and ``note``.
    """
    from ..io.priors import Prior

    def entries(p: Any) -> dict[str, Any]:
        d = p.to_dict()
        try:
            return Prior.from_dict(d).to_dict()
        except (ConfigError, ValueError, KeyError, TypeError):
            return dict(d)

    a, b = entries(model_prior), entries(test_prior)
    names = list(a) if not isinstance(model_prior, Prior) else sorted(set(a) | set(b), key=lambda n: (n not in a, n))
    differ = [n for n in names if a.get(n) != b.get(n)]
    if not differ:
        return None
    return {
        "model": a, "test": b, "parameters": differ,
        "note": ("the test set was drawn from a different prior than the model's (" + ", ".join(differ)
                 + "); expected coverage and SBC hold only for test parameters drawn from the model's prior, "
                 "so only accuracy figures are reported"),
    }


# --------------------------------------------------------------------------- test-set calibration (run)
def run_calibration(model_dir: str | Path, test_set: str | Path, out_dir: str | Path, *, grid_points: int = 256,
                    max_samples: int | None = None, reference: str | Path | None = None, seed: int = 0,
                    n_draws: int = 99, half_window: float = 0.05, progress: bool = True,
                    force: bool = False) -> dict[str, Any]:
    """Calibrate a trained model on a test ensemble (``tdglnre posterior --test-set``).

    Writes ``calibration.json``, ``table.csv``, ``table.md`` and plots to ``out_dir``.
    The ABC baseline uses ``reference`` (default: the model's training ensemble,
    if it still exists) as its reference simulations.

    If the test set's prior differs from the model's, expected coverage and SBC
    are meaningless (they hold only for θ drawn from the model's prior): a
    ``prior_mismatch`` note (both priors) is written and only the
    accuracy figures (MAE, interval widths, table) are reported.

    ``out_dir`` must not exist or be empty unless ``force``; it is written only
    when everything has been computed.
    """
    from ..analysis.baselines import summaries_batch
    from ..io.ensemble import open_ensemble
    from .. import plots
    from .model_io import load_estimator

    t0 = time.perf_counter()
    check_output_dir(out_dir, force=force, protect=(model_dir, test_set, reference))
    est = load_estimator(model_dir)
    with open_ensemble(test_set) as ens:
        est.check_compatible(ens)
        S = ens.n_complete if max_samples is None else min(ens.n_complete, max_samples)
        if S < 1:
            raise ConfigError(f"test set {test_set} holds no complete samples")
        raw = ens.x(0, S)
        theta = ens.theta(0, S)
        L = ens.config.L
        mismatch = prior_mismatch(est.prior, ens.prior)
    if mismatch:  # the CLI and the demo print it through calibration_summary_lines
        log.info("%s", mismatch["note"])
    coverage = mismatch is None
    x = est.preprocess(raw)
    grid = Grid.from_prior(est.prior, grid_points, est.parameter_names)
    bar = _progress_bar(S, "posteriors", progress)
    ev = evaluate_test_set(est, x, theta, grid, n_draws=n_draws, seed=seed, progress=bar.update if bar else None)
    if bar:
        bar.close()
    rep = calibration_report(ev, half_window=half_window, coverage=coverage)
    rep["prior_mismatch"] = mismatch
    rep["grid_points"] = grid_points
    rep["model_dir"] = str(model_dir)
    rep["test_set"] = str(test_set)

    ref_path = reference or est.metadata["dataset"].get("path")
    if ref_path and Path(ref_path).exists():
        with open_ensemble(ref_path) as ref:
            n_ref = ref.n_complete
            ref_sum = np.concatenate([
                summaries_batch(_summary_images(est, ref.x(a, min(a + 512, n_ref))), L)
                for a in range(0, n_ref, 512)])
            ref_theta = ref.theta(0, n_ref)
        test_sum = summaries_batch(_summary_images(est, raw), L)
        rep["baseline"] = baseline_evaluation(ref_sum, ref_theta, test_sum, theta, ev.names, est.prior)
        rep["baseline"]["reference"] = str(ref_path)
        if not coverage:
            for b in rep["baseline"]["per_parameter"].values():
                b.pop("coverage95")
                b.pop("expected_coverage_central")
    else:
        rep["baseline"] = None
        log.warning("no reference ensemble for the ABC baseline (pass reference=...)")
    rep["wall_seconds"] = time.perf_counter() - t0

    with staged_output(out_dir, force=force) as out:
        (out / "calibration.json").write_text(json.dumps(rep, indent=1))
        if "table" in rep:
            (out / "table.csv").write_text(table_csv(rep["table"]["rows"]))
            (out / "table.md").write_text(table_markdown(rep["table"]["rows"], rep["table"]["parameter"]) + "\n")
        if coverage:
            curves = {"NRE (joint HPD)": rep["expected_coverage"]}
            for n, c in rep["marginal_expected_coverage"].items():
                curves[f"NRE marginal {n}"] = c
            if rep["baseline"]:
                for n, b in rep["baseline"]["per_parameter"].items():
                    curves[f"ABC baseline {n} (central)"] = b["expected_coverage_central"]
            plots.plot_coverage(curves, out / "coverage.png")
            plots.plot_sbc({n: ev.ranks[:, d] for d, n in enumerate(ev.names)}, n_draws, out / "sbc.png")
        for d, n in enumerate(ev.names):
            bm = None
            if rep["baseline"]:
                bm = np.asarray(rep["baseline"]["per_parameter"][n]["posterior_mean"])
            plots.plot_error_vs_truth(ev.truth[:, d], ev.mean[:, d], ev.width95[:, d], n, out / f"error_{n}.png",
                                      bm)
    return rep


# --------------------------------------------------------------------------- one observation
def parse_simulate_spec(spec: str) -> dict[str, float]:
    """``eta=0.8,n_v=4,seed=1`` → dict."""
    out: dict[str, float] = {}
    for part in spec.split(","):
        if not part.strip():
            continue
        if "=" not in part:
            raise ConfigError(f"--simulate expects key=value pairs separated by commas, got {part!r}")
        k, v = (s.strip() for s in part.split("=", 1))
        if k in out:
            raise ConfigError(f"--simulate: {k} given twice")
        try:
            out[k] = float(v)
        except ValueError:
            raise ConfigError(f"--simulate: value of {k} must be a number, got {v!r}") from None
        if not math.isfinite(out[k]):
            raise ConfigError(f"--simulate: value of {k} must be finite, got {v!r}")
    return out


def load_observation(path: str | Path) -> np.ndarray:
    """An observation from .npy (N, N, C) or an HDF5 file with one such dataset."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"observation file {path} does not exist")
    if path.suffix == ".npy":
        return np.load(path)
    import h5py

    try:
        with h5py.File(path, "r") as f:
            cands = [k for k in f if isinstance(f[k], h5py.Dataset) and f[k].ndim in (3, 4)]
            if "x" in f and f["x"].ndim in (3, 4):
                cands = ["x"]
            if len(cands) != 1:
                raise ConfigError(f"{path}: expected exactly one 3-D dataset (N, N, C), found {cands or 'none'}")
            return f[cands[0]][()]
    except OSError as e:
        raise ConfigError(f"{path} is neither .npy nor a readable HDF5 file: {e}") from None


def _edge_warnings(post: GridPosterior, edges: dict[str, str | None]) -> list[str]:
    lines = []
    for n, edge in edges.items():
        if edge is None:
            continue
        ax = post.grid.axes[post.grid.names.index(n)]
        if edge == "both":
            lines.append(f"{n}: the posterior is nearly flat over the whole prior range [{ax.low:g}, {ax.high:g}]; "
                         f"the observation barely constrains {n}")
        else:
            bound = ax.low if edge == "low" else ax.high
            word = "lower" if edge == "low" else "upper"
            lines.append(f"{n}: the posterior piles against the prior's {word} bound {bound:g} (cut off by the "
                         f"prior, not by the data); the true value may lie beyond the training range")
    return lines


def observation_labels(metadata: dict[str, Any]) -> list[str]:
    """Names of the network input channels, e.g. ``rho1 (t=2)``, snapshot-major."""
    inp = metadata["input"]
    return [f"{c} (t={t:g})" for t in inp["snapshot_times"] for c in inp["channels"]]


def run_posterior(model_dir: str | Path, out_dir: str | Path, *, data: str | Path | None = None,
                  index: int | None = None, observation: str | Path | None = None,
                  simulate: str | dict | None = None, grid_points: int = 512, force: bool = False,
                  ood: bool = True) -> dict[str, Any]:
    """Posterior of one observation (``tdglnre posterior``); writes posterior.json and plots.

    Parameters
    ----------
    model_dir
        Trained model directory.
    out_dir
        Output directory; must not exist or be empty unless ``force``. It is
        written only after everything has been computed (nothing is left
        behind on failure).
    data, index
        Ensemble file and sample index of the observation.
    observation
        .npy or HDF5 file holding the observation.
    simulate
        ``"eta=0.8,n_v=4,seed=1"`` or a dict: simulate the observation with the
        model's training config. Only parameters the model infers may be set
        (fixed ones must equal their training value); values outside the prior
        box are simulated but flagged.
    grid_points
        Grid points per continuous parameter.
    force
        Replace an existing non-empty ``out_dir``.
    ood
        Score the observation against the training ensemble
        (:mod:`tdglnre.nre.ood`).

    Returns
    -------
    dict
        The content of ``posterior.json``: ``source``, ``parameters``
        (summaries), ``at_prior_edge`` (per parameter: ``"low"``, ``"high"``,
        ``"both"`` or None), ``ood_score``, ``ood_threshold`` (and details),
        ``warnings`` (one line each) and the files written.
    """
    from .. import plots
    from .model_io import load_estimator

    given = [s for s in (data, observation, simulate) if s is not None]
    if len(given) != 1:
        raise ConfigError("give exactly one of --data/--index, --observation, --simulate")
    if data is not None and index is None:
        raise ConfigError("--data needs --index")
    check_output_dir(out_dir, force=force, protect=(model_dir, data, observation))
    spec = None
    if simulate is not None:
        spec = parse_simulate_spec(simulate) if isinstance(simulate, str) else dict(simulate)
    est = load_estimator(model_dir)
    truth = None
    source: dict[str, Any] = {}
    warnings: list[str] = []
    if data is not None:
        from ..io.ensemble import open_ensemble

        with open_ensemble(data) as ens:
            est.check_compatible(ens)
            if not 0 <= index < ens.n_complete:
                raise ConfigError(f"--index {index} out of range: {data} holds {ens.n_complete} complete samples")
            x = est.preprocess(ens.x(index, index + 1))
            truth = dict(zip(ens.parameter_names, map(float, ens.theta(index, index + 1)[0])))
        source = {"data": str(data), "index": int(index)}
    elif observation is not None:
        x = est.preprocess(load_observation(observation))
        source = {"observation": str(observation)}
    else:
        raw, truth, settings, outside = _simulate_observation(est, spec)
        x = est.preprocess(raw)
        source = {"simulate": settings}
        warnings.extend(outside)
    grid = Grid.from_prior(est.prior, grid_points, est.parameter_names)
    t0 = time.perf_counter()
    posts, _ = posteriors_on_grid(est, x, grid)
    elapsed = time.perf_counter() - t0
    post = posts[0]
    if truth is not None:
        post.truth = {k: v for k, v in truth.items() if k in grid.names}
    edges = post.prior_edges()
    warnings.extend(_edge_warnings(post, edges))
    if ood:
        from .ood import ood_for_observation

        ood_res = ood_for_observation(model_dir, est.metadata, x)
    else:
        ood_res = {"ood_score": None, "ood_threshold": None, "ood_note": "OOD score not computed (ood=False)"}
    if ood_res.get("ood_flag"):
        score = ood_res["ood_score"]
        warnings.append(
            "the observation is out of distribution: "
            + ("its summaries are not finite" if score is None else
               f"OOD score {score:.3g} > threshold {ood_res['ood_threshold']:.3g} "
               f"({100 * ood_res['ood_quantile']:g}th percentile of held-out training simulations)")
            + "; the posterior is an extrapolation")
    elif ood_res.get("ood_note"):
        warnings.append(ood_res["ood_note"])
    for w in warnings:
        log.info("%s", w)
    res = {"source": source, "grid_points": grid_points, "parameters": post.summaries(),
           "at_prior_edge": edges, **ood_res, "warnings": warnings,
           "observation_plot": "observation.png", "observation_file": "observation.npy",
           "observation_channels": observation_labels(est.metadata),
           "posterior_seconds": elapsed, "model_dir": str(model_dir)}
    with staged_output(out_dir, force=force) as out:
        (out / "posterior.json").write_text(json.dumps(res, indent=1))
        np.savez_compressed(out / "posterior_grid.npz", log_density=post.log_density,
                            **{f"axis_{a.name}": a.values for a in grid.axes})
        np.save(out / "observation.npy", x[0])
        plots.plot_observation(x[0], res["observation_channels"], out / "observation.png")
        plots.plot_marginals(post, out / "marginals.png")
        if len(grid.names) >= 2:
            plots.plot_joint(post, grid.names[0], grid.names[1],
                             out / f"joint_{grid.names[0]}_{grid.names[1]}.png")
    return res


def _simulate_observation(est: Any, spec: dict[str, float]) -> tuple[np.ndarray, dict[str, float],
                                                                      dict[str, Any], list[str]]:
    """Simulate one observation for ``--simulate``.

    Returns
    -------
    raw
        The simulated channels.
    truth
        Parameter values used.
    settings
        The full record for ``posterior.json`` (every parameter and the seed).
    warnings
        One line per inferred parameter set outside the model's prior box.
    """
    from ..physics.config import SAMPLE_PARAMETERS
    from ..physics.solver import simulate

    spec = dict(spec)
    unknown = sorted(set(spec) - set(SAMPLE_PARAMETERS) - {"seed"})
    if unknown:
        raise ConfigError(f"--simulate: unknown key(s) {unknown}; valid: {', '.join(SAMPLE_PARAMETERS)}, seed")
    seed_v = spec.pop("seed", 0.0)
    if seed_v != int(seed_v) or not 0 <= seed_v < 2**63:
        raise ConfigError(f"--simulate: seed must be an integer in [0, 2^63), got {seed_v:g}")
    seed = int(seed_v)
    cfg = _sim_config(est)
    prior = est.prior
    inferred = list(est.parameter_names)
    params: dict[str, list[float]] = {}
    outside: list[str] = []
    for name in SAMPLE_PARAMETERS:
        if name in inferred:
            if name not in spec:
                raise ConfigError(f"--simulate needs a value for inferred parameter {name}")
            v = spec[name]
            lo, hi = prior.low(name), prior.high(name)
            if prior.kind(name) == "int_uniform" and v != round(v):
                raise ConfigError(f"--simulate: {name} must be an integer, got {v:g}")
            if not lo <= v <= hi:
                outside.append(f"simulated {name}={v:g} lies outside the model's prior [{lo:g}, {hi:g}]")
        else:
            trained = prior.low(name) if name in getattr(prior, "names", ()) else float(getattr(cfg, name))
            v = spec.get(name, trained)
            if v != trained:
                raise ConfigError(f"--simulate {name}={v:g}: the model was trained with {name} fixed at "
                                  f"{trained:g} and does not infer it; leave {name} out")
        params[name] = [float(v)]
    res = simulate(cfg, params, seed=seed)
    truth = {k: float(v[0]) for k, v in params.items()}
    settings: dict[str, Any] = {k: (int(v) if k == "n_v" else v) for k, v in truth.items()}
    settings["seed"] = seed
    return res.channels()[0], truth, settings, outside


def _progress_bar(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover
        return None
    return tqdm(total=total, desc=desc, unit="obs", leave=False)
