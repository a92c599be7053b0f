"""Amortised inference maths: grid posteriors of a batch, test-set evaluation, calibration figures.

No files and no plots here: :mod:`tdglnre.workflows` loads models and data,
calls these functions and writes the results.

Works with any *estimator* exposing

* ``prior`` (:class:`tdglnre.io.priors.Prior`) and ``parameter_names``;
* ``encode(x) -> h`` for a batch of model inputs;
* ``log_ratio_from_embedding(h, theta) -> (len(h), len(theta))``.

Each observation is encoded once and the head is evaluated on the whole grid
in one call. The trained Keras model (:func:`tdglnre.nre.infer.model_io.load_estimator`)
is one such estimator; tests use analytic ones.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ...errors import ConfigError
from .calibration import (
    DEFAULT_LEVELS,
    PAPER_ETAS,
    expected_coverage,
    sbc_ranks,
    sbc_uniformity,
    table_rows,
)
from .posterior import Grid, GridPosterior

log = logging.getLogger(__name__)


def posteriors_on_grid(estimator: Any, x: np.ndarray, grid: Grid, *, theta_true: np.ndarray | None = None,
                       batch_size: int = 64, split_head: bool = False) -> tuple[list[GridPosterior], np.ndarray | None]:
    """Grid posteriors of a batch of model inputs.

    ``split_head`` evaluates the head with its first layer split into an x
    and a θ part (``RatioEstimator.log_ratio_from_embedding``): about four
    times cheaper on a large grid, equal to float32 rounding, not bit for bit.

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
    kw = {"split_head": True} if split_head else {}  # analytic estimators need not know the option
    for start in range(0, len(x), batch_size):
        xb = x[start:start + batch_size]
        h = estimator.encode(xb)
        lr = np.asarray(estimator.log_ratio_from_embedding(h, pts, **kw), dtype=np.float64)
        if theta_true is not None:
            tt = theta_true[start:start + batch_size]
            # every embedding against every truth in one head call; pair i is the diagonal
            lr_true = np.diagonal(np.asarray(estimator.log_ratio_from_embedding(h, tt, **kw), dtype=np.float64))
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
    p_regime: np.ndarray | None = None
    """P(I, 1.5, II | x) per sample (S, 3) where the model is screened (:mod:`.regimes`), else None."""


def evaluate_test_set(estimator: Any, x: np.ndarray, theta: np.ndarray, grid: Grid, *, n_draws: int = 99,
                      seed: int = 0, batch_size: int = 64, progress: Any = None,
                      split_head: bool = False, regime: Any = None) -> TestSetEvaluation:
    """Posterior of every test pair, with coverage and SBC statistics (``split_head``: :func:`posteriors_on_grid`).

    ``regime``: (config, fixed values) of a screened model (:func:`.regimes.model_regime_context`); then
    ``p_regime`` holds each posterior's mass per regime (:func:`.regimes.regime_masses`).
    """
    rng = np.random.default_rng(seed)
    names = list(grid.names)
    S, P = theta.shape
    ev = TestSetEvaluation(names, theta.copy(), *(np.empty((S, P)) for _ in range(4)), np.empty(S),
                           np.empty((S, P)), np.empty((S, P), dtype=np.int64), n_draws)
    for start in range(0, S, batch_size):
        stop = min(S, start + batch_size)
        posts, ld = posteriors_on_grid(estimator, x[start:stop], grid, theta_true=theta[start:stop],
                                       batch_size=batch_size, split_head=split_head)
        for i, p in enumerate(posts):
            k = start + i
            if regime is not None:
                from .regimes import REGIMES, regime_masses

                if ev.p_regime is None:
                    ev.p_regime = np.empty((S, len(REGIMES)))
                ev.p_regime[k] = list(regime_masses(p, *regime).values())
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
    from ...analysis.baselines import ABCBaseline, weighted_quantile

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
    out: dict[str, Any] = {"method": f"rejection ABC + local-linear regression on {ref_summaries.shape[1]} summaries",
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
        signed = cov.get("signed_max_deviation", 0.0)
        lean = "" if cov["max_abs_deviation"] < 0.005 else (" (conservative)" if signed > 0 else " (overconfident)")
        lines.append(f"expected coverage (joint HPD, {rep['n_test']} tests): max |empirical - nominal| = "
                     f"{cov['max_abs_deviation']:.3f}{lean}; 95% region covers {rep['coverage95']:.3f}")
    else:
        lines.append(f"accuracy on {rep['n_test']} tests (no coverage/SBC: the test prior is not the model's)")
    if rep.get("temperature", 1.0) != 1.0:
        lines.append(f"posterior temperature {rep['temperature']:.3f} (docs/nre.md, Tempering)")
    for n, m in rep["mae"].items():
        line = f"{n}: MAE {m['mean']:.4f} ± {m['std']:.4f}, mean 95% HPD width {rep['width95'][n]:.4f}"
        if rep.get("baseline"):
            b = rep["baseline"]["per_parameter"][n]
            line += f" (ABC baseline: MAE {b['mae']:.4f}, 95% width {b['width95']:.4f})"
        lines.append(line)
    if rep.get("baseline_note"):
        lines.append(f"no ABC baseline: {rep['baseline_note']}")
    if rep.get("regime_verdict"):
        from .regimes import verdict_lines

        lines.extend(verdict_lines(rep["regime_verdict"]))
    return lines


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
    from ...io.priors import Prior

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
