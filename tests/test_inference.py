"""The inference pipeline (grid posteriors → coverage, SBC, table, baseline) on an
analytic estimator whose log-ratio is the exact log-likelihood: it must come out
calibrated, and a deliberately overconfident one must not."""

from __future__ import annotations

import numpy as np
import pytest

from tdglnre.io.priors import Prior
from tdglnre.nre.infer.inference import baseline_evaluation, calibration_report, evaluate_test_set, posteriors_on_grid
from tdglnre.nre.infer.posterior import Grid

SIG_ETA, SIG_NV, M = 0.3, 1.5, 16


class GaussianEstimator:
    """x = (16 draws of N(η, 0.3²), 16 draws of N(n_v, 1.5²)); log r = sharpness × exact log-likelihood."""

    def __init__(self, prior: Prior, sharpness: float = 1.0):
        self.prior = prior
        self.parameter_names = list(prior.inferred)
        self.sharpness = sharpness

    def encode(self, x):
        return np.asarray(x)

    def log_ratio_from_embedding(self, h, theta):
        h = np.asarray(h)[:, None, :]
        th = np.asarray(theta)[None]
        ll = -((h[..., :M] - th[..., :1]) ** 2).sum(-1) / (2 * SIG_ETA**2)
        ll -= ((h[..., M:] - th[..., 1:2]) ** 2).sum(-1) / (2 * SIG_NV**2)
        return self.sharpness * ll


def _test_set(prior, n, seed):
    rng = np.random.default_rng(seed)
    theta = prior.sample(seed, np.arange(n))
    x = np.concatenate([theta[:, :1] + SIG_ETA * rng.normal(size=(n, M)),
                        theta[:, 1:2] + SIG_NV * rng.normal(size=(n, M))], axis=1)
    return x, theta


@pytest.fixture(scope="module")
def prior():
    return Prior({"eta": "uniform(0, 1.5)", "n_v": "int_uniform(1, 4)", "nu": "fixed(0)"})


def test_exact_likelihood_estimator_is_calibrated(prior):
    x, theta = _test_set(prior, 800, 1)
    grid = Grid.from_prior(prior, 150)
    ev = evaluate_test_set(GaussianEstimator(prior), x, theta, grid, seed=2)
    rep = calibration_report(ev)
    cov = rep["expected_coverage"]
    # binomial sd ≤ 0.018 at n = 800: ±0.07 is ~4 sd at the worst of 19 levels
    assert cov["max_abs_deviation"] < 0.07, cov
    for name in ("eta", "n_v"):
        mc = rep["marginal_expected_coverage"][name]
        assert mc["max_abs_deviation"] < 0.07, (name, mc)
        assert rep["sbc_uniformity"][name]["p_value"] > 1e-3
    # posterior-mean error of η ≈ σ/√16 = 0.075 (less near the prior's edges)
    assert 0.03 < rep["mae"]["eta"]["mean"] < 0.08
    assert abs(rep["coverage95"] - 0.95) < 0.03
    assert rep["table"]["parameter"] == "eta" and len(rep["table"]["rows"]) == 5


def test_overconfident_estimator_is_flagged(prior):
    x, theta = _test_set(prior, 400, 3)
    grid = Grid.from_prior(prior, 150)
    rep = calibration_report(evaluate_test_set(GaussianEstimator(prior, sharpness=4.0), x, theta, grid, seed=4))
    assert rep["expected_coverage"]["max_abs_deviation"] > 0.2
    assert rep["coverage95"] < 0.8
    assert rep["sbc_uniformity"]["eta"]["p_value"] < 1e-6


def test_grid_posterior_matches_analytic_gaussian(prior):
    x, theta = _test_set(prior, 5, 5)
    grid = Grid.from_prior(prior, 1500)
    posts, ld = posteriors_on_grid(GaussianEstimator(prior), x, grid, theta_true=theta)
    for k, p in enumerate(posts):
        s = p.summary("eta")
        m, sd = x[k, :M].mean(), SIG_ETA / np.sqrt(M)
        if 4 * sd < m < 1.5 - 4 * sd:  # away from the prior's edges the posterior is N(mean, σ²/16)
            assert abs(s["mean"] - m) < 1e-3 and abs(s["std"] - sd) < 1e-3
        assert np.isfinite(ld[k])


def test_abc_baseline_learns_from_summaries(prior):
    # summaries = (mean of the η block, mean of the n_v block): sufficient statistics
    x_ref, th_ref = _test_set(prior, 4000, 6)
    x_te, th_te = _test_set(prior, 200, 7)
    s = lambda x: np.stack([x[:, :M].mean(1), x[:, M:].mean(1)], axis=1)  # noqa: E731
    out = baseline_evaluation(s(x_ref), th_ref, s(x_te), th_te, ["eta", "n_v"], prior)
    eta = out["per_parameter"]["eta"]
    assert eta["mae"] < 0.1  # close to the optimal ≈ 0.06
    assert 0.85 < eta["coverage95"] <= 1.0
