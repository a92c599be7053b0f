"""The regime verdict's statistics (issue 21, item 4): P(regime | x) of a grid posterior, ROC AUC and
reliability, on inputs whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tdglnre.io.priors import Prior
from tdglnre.io.regimes import regime_fractions
from tdglnre.nre.infer.posterior import Grid, GridPosterior
from tdglnre.nre.infer.regimes import (boundary_distance, per_regime, regime_masses, reliability, roc_auc,
                                      verdict_report)
from tdglnre.physics.config import SimConfig
from tdglnre.physics.screening import lam_boundaries, regime

CFG = SimConfig(N=32, L=12.0, D=(4.0, 1.0), alpha=(-1.0, -1.0), beta=(1.0, 1.0), lam=3.2, sigma=20.0)


def _auc_by_pairs(s, y):
    pos, neg = s[y], s[~y]
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0) + 0.5 * (diff == 0)).mean())


def test_auc_of_perfect_reversed_constant_and_random_scorers():
    rng = np.random.default_rng(0)
    y = rng.random(400) < 0.3
    assert roc_auc(y.astype(float) + 0.1 * rng.random(400), y) == 1.0
    assert roc_auc(-y.astype(float), y) == 0.0
    assert roc_auc(np.zeros(400), y) == 0.5
    n1, n0 = int(y.sum()), int((~y).sum())
    sd = math.sqrt((n1 + n0 + 1) / (12 * n1 * n0))  # the AUC of an uninformative scorer
    assert abs(roc_auc(rng.random(400), y) - 0.5) < 4 * sd
    assert math.isnan(roc_auc(np.ones(5), np.ones(5, bool)))


def test_auc_with_ties_is_the_pairwise_probability():
    rng = np.random.default_rng(1)
    s = rng.integers(0, 5, 300).astype(float)  # many ties
    y = rng.random(300) < 0.2 + 0.1 * s
    assert roc_auc(s, y) == pytest.approx(_auc_by_pairs(s, y), abs=1e-12)


def test_reliability_of_a_calibrated_and_an_overconfident_forecast():
    rng = np.random.default_rng(2)
    p = rng.random(20000)
    y = rng.random(20000) < p  # calibrated by construction
    rows = reliability(p, y)
    assert sum(r["n"] for r in rows) == 20000 and len(rows) == 10
    for r in rows:
        q = r["mean_predicted"]
        assert abs(r["observed"] - q) < 4 * math.sqrt(q * (1 - q) / r["n"]) + 1e-3
    over = reliability(np.where(p > 0.5, 1.0, 0.0), y)  # says 0 or 1; truth is 0.25 / 0.75 on average
    assert [r["observed"] for r in over] == pytest.approx([0.25, 0.75], abs=0.02)


def _grid(n=96):
    prior = Prior({"eta": "uniform(0, 1)", "n_v": "int_uniform(1, 3)", "lam": "uniform(0.4, 3.2)"})
    return prior, Grid.from_prior(prior, n)


def test_flat_grid_posterior_masses_are_the_prior_fractions():
    """A flat posterior over (η, n_v, λ uniform) puts in each regime the prior's fraction (to the grid's
    resolution, one cell in λ: 1/96 at most)."""
    prior, grid = _grid()
    post = GridPosterior.from_log_values(grid, np.zeros(grid.shape))
    got = regime_masses(post, CFG, {"nu": 0.0})
    want = regime_fractions(CFG, prior.replace(nu=0.0))
    assert sum(got.values()) == pytest.approx(1.0, abs=1e-12)
    for r in want:
        assert got[r] == pytest.approx(want[r], abs=1.0 / 96)


@pytest.mark.parametrize("eta, lam", [(0.2, 0.45), (0.5, 0.8), (0.9, 2.5)])
def test_a_concentrated_posterior_gives_the_regime_of_its_cell(eta, lam):
    _, grid = _grid()
    E, _, La = np.meshgrid(*(a.values for a in grid.axes), indexing="ij")
    logv = -((E - eta) ** 2 + (La - lam) ** 2) / (2 * 0.01 ** 2)  # a narrow bump, spread over n_v
    got = regime_masses(GridPosterior.from_log_values(grid, logv), CFG, {"nu": 0.0})
    assert got[regime(CFG, {"eta": eta, "lam": lam})] > 0.99


def test_masses_with_lam_fixed_follow_eta():
    """λ not on the grid (a fixed λ): the regime changes with η only; its mass is that of η's side."""
    prior = Prior({"eta": "uniform(0, 1)"})
    grid = Grid.from_prior(prior, 200)
    lo, _ = lam_boundaries(CFG, np.array([0.0, 1.0]))
    lam = 0.5 * (lo[0] + lo[1])  # Type I at small η (long lengths), 1.5 at large η (η shortens them)
    eta_star = grid.axes[0].values[np.argmin(np.abs(lam_boundaries(CFG, grid.axes[0].values)[0] - lam))]
    got = regime_masses(GridPosterior.from_log_values(grid, np.zeros(200)), CFG, {"nu": 0.0, "lam": lam})
    assert 0.2 < eta_star < 0.8  # the boundary is inside the η box
    assert got["I"] == pytest.approx(eta_star, abs=0.01) and got["II"] == 0.0


def test_verdict_report_and_boundary_distance():
    rng = np.random.default_rng(3)
    eta, lam = rng.random(500), np.exp(rng.uniform(math.log(0.4), math.log(3.2), 500))
    params = {"eta": eta, "lam": lam, "nu": 0.0}
    from tdglnre.physics.screening import regime_codes

    codes = regime_codes(CFG, params)
    perfect = np.eye(3)[codes]
    v = verdict_report(perfect, codes, boundary_distance(CFG, params))
    assert v["auc_type15_all"] == 1.0 and v["accuracy_all"] == 1.0 and v["brier_type15"] == 0.0
    d = boundary_distance(CFG, params)
    lo, hi = lam_boundaries(CFG, eta)
    assert np.all(d <= np.abs(lam / lo - 1) + 1e-15) and np.all(d <= np.abs(lam / hi - 1) + 1e-15)
    assert v["n_far"] == int((d > 0.1).sum())
    assert "lam_by_regime" not in v  # only where λ's posterior summaries are given


def test_lam_figures_per_true_regime_split_the_test_set():
    """λ's MAE, 95% width and 95% coverage per true regime: hand-computed on a 6-sample set; the per-regime
    MAEs weighted by their counts give the overall MAE back."""
    codes = np.array([0, 1, 1, 2, 2, 2])
    truth = np.array([0.5, 1.0, 1.0, 2.0, 2.0, 2.0])
    mean = np.array([0.6, 1.2, 0.9, 2.0, 2.3, 1.9])
    width = np.array([0.2, 0.4, 0.6, 1.0, 1.0, 1.3])
    cred = np.array([0.5, 0.97, 0.2, 0.1, 0.99, 0.94])  # covered where < 0.95
    q = per_regime(codes, truth, mean, width, cred)
    assert [q[r]["n"] for r in ("I", "1.5", "II")] == [1, 2, 3]
    assert q["I"]["mae"] == pytest.approx(0.1) and q["1.5"]["mae"] == pytest.approx(0.15)
    assert q["II"]["mae"] == pytest.approx(0.4 / 3)
    assert q["1.5"]["width95"] == pytest.approx(0.5) and q["II"]["width95"] == pytest.approx(1.1)
    assert (q["I"]["coverage95"], q["1.5"]["coverage95"]) == (1.0, 0.5)
    assert q["II"]["coverage95"] == pytest.approx(2 / 3)
    overall = sum(q[r]["n"] * q[r]["mae"] for r in q) / 6
    assert overall == pytest.approx(np.abs(mean - truth).mean())
    empty = per_regime(np.array([2, 2]), truth[:2], mean[:2], width[:2], cred[:2])
    assert empty["I"]["n"] == 0 and math.isnan(empty["I"]["mae"])
    v = verdict_report(np.eye(3)[codes], codes, np.ones(6),
                       lam={"truth": truth, "mean": mean, "width95": width, "credibility": cred})
    assert v["lam_by_regime"] == q


def test_a_flat_ratio_on_a_log_uniform_axis_gives_the_prior_back():
    """λ ~ log-uniform(0.4, 3.2): the grid axis spans the box evenly and, with log r = 0, the posterior's
    λ marginal is the prior's (mass of [0.4, 0.8] = log 2 / log 8 = 1/3)."""
    prior = Prior({"eta": "uniform(0, 1)", "lam": "log_uniform(0.4, 3.2)"})
    grid = Grid.from_prior(prior, 400)
    ax = grid.axes[1]
    assert ax.low == 0.4 and ax.high == 3.2 and np.allclose(np.diff(ax.values), 2.8 / 400)
    post = GridPosterior.from_log_values(grid, np.zeros(grid.shape), prior.log_prob(grid.points()))
    _, m = post.marginal("lam")
    assert m[ax.values < 0.8].sum() == pytest.approx(1 / 3, abs=5e-3)  # to one cell (0.007 wide) at 0.8


def test_prior_edges_judge_a_log_uniform_parameter_over_its_prior():
    """A posterior equal to the 1/λ prior is flat (\"both\"), not piled against λ's low bound; one whose
    ratio falls steeply from the low bound is piled there."""
    prior = Prior({"eta": "uniform(0, 1)", "lam": "log_uniform(0.4, 3.2)"})
    grid = Grid.from_prior(prior, 200)
    lp = prior.log_prob(grid.points())
    flat = GridPosterior.from_log_values(grid, np.zeros(grid.shape), lp)
    assert flat.prior_edges()["lam"] == "low"  # the density alone piles at the low bound
    assert flat.prior_edges(prior=prior)["lam"] == "both"
    lam = grid.points()[:, 1].reshape(grid.shape)
    piled = GridPosterior.from_log_values(grid, -lam / 0.1, lp)
    assert piled.prior_edges(prior=prior)["lam"] == "low"
