"""Grid posteriors, intervals and calibration diagnostics against analytic cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from tdglnre.nre.infer.calibration import expected_coverage, sbc_ranks, sbc_uniformity, table_rows
from tdglnre.nre.infer.posterior import Grid, GridPosterior, hpd_mask, make_axis


def _gauss_post(mu, sigma, lo=-5.0, hi=5.0, G=1000, truth=None):
    grid = Grid((make_axis("t", "uniform", lo, hi, G),))
    th = grid.points()[:, 0]
    return GridPosterior.from_log_values(grid, -0.5 * ((th - mu) / sigma) ** 2, truth=truth), grid


def test_gaussian_log_ratio_gives_known_moments_and_intervals():
    mu, sigma = 0.7, 0.4
    post, grid = _gauss_post(mu, sigma)
    cell = 10.0 / 1000
    assert abs(post.mass.sum() - 1.0) < 1e-12
    # density integrates to one: Σ density × width
    assert abs((post.density * grid.cell_volume()).sum() - 1.0) < 1e-12
    s = post.summary("t")
    assert abs(s["mean"] - mu) < 1e-6
    assert abs(s["std"] - sigma) < 1e-4
    assert abs(s["median"] - mu) < 1e-3
    assert abs(s["map"] - mu) <= cell / 2 + 1e-12
    z68, z95 = stats.norm.ppf(0.84), stats.norm.ppf(0.975)
    # HPD intervals are unions of whole cells: exact to within one cell at each end
    for key, z in (("hpd68", z68), ("hpd95", z95)):
        lo, hi = s[key]
        assert abs(lo - (mu - z * sigma)) <= 1.01 * cell, (key, lo)
        assert abs(hi - (mu + z * sigma)) <= 1.01 * cell, (key, hi)
    lo, hi = s["eti95"]
    assert abs(lo - (mu - z95 * sigma)) < 2e-3 and abs(hi - (mu + z95 * sigma)) < 2e-3


def test_truncated_posterior_is_normalised_on_the_prior_box():
    # a Gaussian centred at the prior's edge: half the mass is cut off; the result stays normalised
    post, _ = _gauss_post(0.0, 0.3, lo=0.0, hi=1.5, G=600)
    s = post.summary("t")
    # mean of a half-normal: σ·sqrt(2/π)
    assert abs(s["mean"] - 0.3 * np.sqrt(2 / np.pi)) < 2e-3
    assert s["hpd95"][0] == 0.0


def test_two_dimensional_grid_with_integer_axis_marginals():
    grid = Grid((make_axis("eta", "uniform", 0.0, 1.5, 300), make_axis("n_v", "int_uniform", 1, 16, 0)))
    pts = grid.points()
    assert grid.shape == (300, 16) and pts.shape == (4800, 2)
    # separable posterior: Gaussian in eta, Poisson(4) in n_v (truncated to 1..16)
    lp = -0.5 * ((pts[:, 0] - 0.8) / 0.1) ** 2 + stats.poisson.logpmf(pts[:, 1], 4.0)
    post = GridPosterior.from_log_values(grid, lp)
    ax, m = post.marginal("n_v")
    pm = stats.poisson.pmf(ax.values, 4.0)
    np.testing.assert_allclose(m, pm / pm.sum(), rtol=1e-10)
    s = post.summary("n_v")
    assert s["map"] in (3.0, 4.0)  # Poisson(4) has equal mass at 3 and 4
    assert abs(post.summary("eta")["mean"] - 0.8) < 1e-4
    assert post.marginal2d("eta", "n_v").shape == (300, 16)
    np.testing.assert_allclose(post.marginal2d("n_v", "eta"), post.marginal2d("eta", "n_v").T)


def test_hpd_region_of_bimodal_density_has_two_parts():
    grid = Grid((make_axis("t", "uniform", -4.0, 4.0, 800),))
    th = grid.points()[:, 0]
    lp = np.logaddexp(-0.5 * ((th + 2) / 0.2) ** 2, -0.5 * ((th - 2) / 0.2) ** 2)
    post = GridPosterior.from_log_values(grid, lp)
    ax, m = post.marginal("t")
    mask = hpd_mask(m, m / ax.widths, 0.9)
    # the region excludes the valley between the modes
    assert mask[np.argmin(np.abs(ax.values + 2))] and mask[np.argmin(np.abs(ax.values - 2))]
    assert not mask[np.argmin(np.abs(ax.values))]
    assert abs(m[mask].sum() - 0.9) < 0.01


def _coverage_experiment(scale: float, n: int = 1500, seed: int = 0):
    """θ* ~ U(-3, 3), x ~ N(θ*, 1); the posterior (flat prior) is N(x, 1) up to truncation.

    ``scale`` < 1 makes the reported posterior overconfident.
    """
    rng = np.random.default_rng(seed)
    grid = Grid((make_axis("t", "uniform", -8.0, 8.0, 800),))
    th = grid.points()[:, 0]
    creds, ranks = [], []
    truth = rng.uniform(-3, 3, n)
    for t in truth:
        x = t + rng.normal()
        post = GridPosterior.from_log_values(grid, -0.5 * ((th - x) / scale) ** 2)
        ld = float(np.interp(t, th, post.log_density))
        creds.append(post.credibility_of(ld))
        ranks.append(sbc_ranks(np.array([t]), post.sample(99, rng)[:, 0][None], rng)[0])
    return np.array(creds), np.array(ranks)


def test_coverage_tells_calibrated_from_overconfident():
    c_ok, r_ok = _coverage_experiment(1.0)
    c_bad, r_bad = _coverage_experiment(0.5)
    ok = expected_coverage(c_ok)
    bad = expected_coverage(c_bad)
    assert ok.levels.size == 19 and abs(ok.levels[0] - 0.05) < 1e-12 and abs(ok.levels[-1] - 0.95) < 1e-12
    # calibrated: within ±0.05 of nominal at every level (binomial sd ≤ 0.013 at n = 1500)
    assert np.abs(ok.empirical - ok.levels).max() < 0.05
    # overconfident (σ halved): the nominal 68% region covers P(|Z| < 0.47) ≈ 0.36
    i68 = int(np.argmin(np.abs(ok.levels - 0.7)))
    assert bad.empirical[i68] < 0.5
    assert np.abs(bad.empirical - bad.levels).max() > 0.2
    # the signed largest miss: negative when overconfident, positive when too wide (σ doubled)
    wide = expected_coverage(_coverage_experiment(2.0, n=600)[0])
    assert bad.signed_max_deviation < -0.2 and wide.signed_max_deviation > 0.2
    assert abs(ok.signed_max_deviation) == pytest.approx(ok.to_dict()["max_abs_deviation"])
    # bands contain the nominal value
    assert np.all(ok.lower <= ok.levels) and np.all(ok.levels <= ok.upper)
    # SBC: uniform ranks for the calibrated posterior, U-shaped for the overconfident one
    assert sbc_uniformity(r_ok, 99)["p_value"] > 1e-3
    u_bad = sbc_uniformity(r_bad, 99)
    assert u_bad["p_value"] < 1e-6
    assert u_bad["hist"][0] + u_bad["hist"][-1] > 3 * (u_bad["hist"][4] + u_bad["hist"][5])


def test_table_rows_select_windows_and_compute_mae():
    truth = np.array([0.19, 0.21, 0.52, 0.9, 1.4])
    mean = truth + np.array([0.1, -0.1, 0.05, 0.0, -0.2])
    rows = table_rows(truth, mean, np.full(5, 0.1), np.full(5, 0.2), np.full(5, 0.4))
    assert [r["n"] for r in rows] == [2, 1, 0, 0, 1]
    assert abs(rows[0]["mae"] - 0.1) < 1e-12 and abs(rows[4]["mae"] - 0.2) < 1e-12


def test_marginal_coverage_is_nominal_even_when_cells_are_coarse():
    """σ = 0.3 on 0.1-wide cells (as for η on the paper preset: σ ≈ 0.035, cells
    0.012): one cell holds ~13% of the mass, yet the low HPD levels must still be
    reachable (the marginal is refined for this)."""
    rng = np.random.default_rng(11)
    grid = Grid((make_axis("t", "uniform", -8.0, 8.0, 160),))
    th = grid.points()[:, 0]
    sig = 0.3
    creds = []
    for t in rng.uniform(-3, 3, 2000):
        x = t + sig * rng.normal()
        post = GridPosterior.from_log_values(grid, -0.5 * ((th - x) / sig) ** 2)
        creds.append(post.marginal_credibility("t", t))
    cov = expected_coverage(creds)
    # binomial sd ≤ 0.011 at n = 2000
    assert np.abs(cov.empirical - cov.levels).max() < 0.045, cov.empirical
    assert cov.empirical[0] > 0.02  # level 0.05 is reachable


def test_mass_and_cell_volume_are_computed_once_and_read_only():
    """Issue 20: the summaries of one posterior share one mass array (the cost of a 3-parameter grid)."""
    grid = Grid((make_axis("a", "uniform", 0.0, 1.0, 40), make_axis("n", "int_uniform", 1, 4, 0)))
    pts = grid.points()
    post = GridPosterior.from_log_values(grid, -0.5 * ((pts[:, 0] - 0.3) / 0.1) ** 2 - pts[:, 1])
    assert grid.cell_volume() is grid.cell_volume() and post.mass is post.mass
    for arr in (grid.cell_volume(), grid.log_cell_volume(), post.mass):
        with pytest.raises(ValueError, match="read-only"):
            arr[0] = 1.0
    p = post.density * grid.cell_volume()
    np.testing.assert_array_equal(post.mass, p / p.sum())  # the same numbers as computed afresh
    np.testing.assert_array_equal(grid.log_cell_volume(), np.log(grid.cell_volume()))
    # a new log density gets a new mass
    post.log_density = 2.0 * post.log_density
    q = post.density * grid.cell_volume()
    np.testing.assert_array_equal(post.mass, q / q.sum())
