"""Issue 9, items 2, 6 and 7 (posterior parts): prior-edge flag, OOD score, prior mismatch of a
test set, the observation panel, the recorded --simulate source, refused parameters and outputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from scipy import stats

from tdglnre.io.priors import Prior
from tdglnre.nre.infer.inference import prior_mismatch
from tdglnre.nre.infer.ood import (fit_ood_reference, heldout_exceedance, load_ood_reference, ood_score,
                                   save_ood_reference)
from tdglnre.nre.infer.posterior import Grid, GridPosterior, make_axis

# ----------------------------------------------------------------------------- pure: prior edge


def _post(log_values_of, lo=0.0, hi=1.5, G=300):
    grid = Grid((make_axis("eta", "uniform", lo, hi, G),))
    return GridPosterior.from_log_values(grid, log_values_of(grid.points()[:, 0]))


def test_prior_edge_names_the_bound_a_posterior_piles_against():
    # the case: a likelihood peaked beyond the upper bound (η = 5 on a [0, 1.5] prior)
    assert _post(lambda t: -0.5 * ((t - 5.0) / 0.5) ** 2).prior_edge("eta") == "high"
    assert _post(lambda t: -0.5 * ((t + 0.4) / 0.2) ** 2).prior_edge("eta") == "low"
    # a sharp posterior well inside the box reaches neither bound
    assert _post(lambda t: -0.5 * ((t - 0.75) / 0.05) ** 2).prior_edge("eta") is None
    # 3.5σ from the bound: the 95% HPD region (±1.96σ) stays inside
    assert _post(lambda t: -0.5 * ((t - 1.325) / 0.05) ** 2).prior_edge("eta") is None
    # 1σ from the bound: 16% of the mass would lie beyond it; the posterior is cut off
    assert _post(lambda t: -0.5 * ((t - 1.45) / 0.05) ** 2).prior_edge("eta") == "high"
    # 1.5σ: the 95% HPD region reaches the bound, but only a 7% tail would lie beyond it
    p2 = _post(lambda t: -0.5 * ((t - 1.425) / 0.05) ** 2)
    assert p2.summary("eta")["hpd95"][1] == 1.5 and p2.prior_edge("eta") is None
    # an uninformative (flat) posterior spans the whole box
    assert _post(lambda t: np.zeros_like(t)).prior_edge("eta") == "both"


def test_prior_edge_of_an_integer_axis_and_per_parameter_dict():
    grid = Grid((make_axis("eta", "uniform", 0.0, 1.5, 100), make_axis("n_v", "int_uniform", 1, 8, 0)))
    pts = grid.points()
    # η sharp at 0.7; n_v almost surely 1 (the lowest value of the prior)
    lp = -0.5 * ((pts[:, 0] - 0.7) / 0.05) ** 2 - 5.0 * (pts[:, 1] - 1.0)
    edges = GridPosterior.from_log_values(grid, lp).prior_edges()
    assert edges == {"eta": None, "n_v": "low"}


# ----------------------------------------------------------------------------- pure: OOD reference


def _correlated(n, d, rng):
    a = rng.normal(size=(d, d)) / np.sqrt(d) + np.eye(d)
    return rng.normal(size=(n, d)) @ a.T + 3.0, a


def test_ood_threshold_is_the_heldout_quantile_and_robust_to_contamination():
    rng = np.random.default_rng(0)
    d = 6
    clean, a = _correlated(6000, d, rng)
    fit = clean[:3000].copy()
    fit[:300] += 40.0  # 10% gross outliers in the fit set
    ref = fit_ood_reference(fit, clean[3000:4000])
    # for Gaussian summaries the score is a χ_d distance: the 99th percentile is sqrt(χ²_d(0.99))
    expected = np.sqrt(stats.chi2.ppf(0.99, d))
    assert abs(ref["threshold"] - expected) < 0.15 * expected, (ref["threshold"], expected)
    # new in-distribution samples exceed the threshold about 1% of the time (binomial, n = 2000)
    frac = (ood_score(ref, clean[4000:]) > ref["threshold"]).mean()
    assert 0.002 < frac < 0.03, frac
    # a plain (non-robust) covariance would be inflated by the outliers; the MCD one is not
    far = 3.0 + a @ np.full(d, 2.0)  # 2σ along every latent direction: χ² = 4d
    assert abs(ood_score(ref, far) - np.sqrt(4 * d)) < 0.2 * np.sqrt(4 * d)
    assert ood_score(ref, far + 30.0) > 5 * ref["threshold"]
    assert heldout_exceedance(ref, 0.0) == 1.0 and heldout_exceedance(ref, 1e9) == 0.0


def test_ood_reference_drops_constant_summaries_and_round_trips(tmp_path):
    rng = np.random.default_rng(1)
    s = np.column_stack([rng.normal(size=400), rng.normal(size=400), np.zeros(400)])
    ref = fit_ood_reference(s[:300], s[300:], names=["a", "b", "const"])
    assert ref["dropped"] == ["const"]
    x = np.array([0.5, -0.3, 7.0])
    assert ood_score(ref, x) == pytest.approx(ood_score(ref, x * [1, 1, 0]))
    save_ood_reference(ref, tmp_path)
    assert load_ood_reference(tmp_path)["threshold"] == ref["threshold"]
    # a cached reference of another dataset is stale
    meta = {"input": {"channels": ["c"], "channel_indices": [0], "snapshot_indices": [0], "snapshot_times": [1.0]},
            "dataset": {"fingerprint": "other"}}
    assert load_ood_reference(tmp_path, meta) is None
    with pytest.raises(ValueError, match="NaN"):
        fit_ood_reference(np.full((10, 2), np.nan), s[:5, :2])


def test_prior_mismatch_lists_the_parameters_whose_priors_differ():
    model = Prior({"eta": "uniform(0, 1.5)", "n_v": "int_uniform(1, 3)", "nu": "fixed(0)"})
    assert prior_mismatch(model, Prior({"eta": "uniform(0,1.5)", "n_v": "int_uniform(1,3)", "nu": 0})) is None
    mm = prior_mismatch(model, model.replace(eta="uniform(0.33, 0.37)"))
    assert mm["parameters"] == ["eta"]
    assert mm["model"]["eta"] == {"kind": "uniform", "low": 0.0, "high": 1.5}
    assert mm["test"]["eta"] == {"kind": "uniform", "low": 0.33, "high": 0.37}
    assert prior_mismatch(model, model.replace(nu="fixed(0.1)"))["parameters"] == ["nu"]


# ----------------------------------------------------------------------------- end to end on a tiny model

pytest.importorskip("keras")
from tdglnre.cli.main import cli  # noqa: E402

TINY = ["--set", "N=16", "--set", "L=8", "--set", "snapshot_times=0.2", "--set", "prior.n_v=int_uniform(1,3)"]
_filter = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def _invoke(args):
    return CliRunner().invoke(cli, args, catch_exceptions=False)


def _run(args):
    res = _invoke(args)
    assert res.exit_code == 0, res.output
    return res.output


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("defects")
    _run(["generate", "--preset", "quick", *TINY, "--n-samples", "240", "--seed", "0", "--out", str(d / "train.h5"),
          "--quiet"])
    _run(["generate", "--preset", "quick", *TINY, "--n-samples", "12", "--seed", "1", "--out", str(d / "test.h5"),
          "--quiet"])
    _run(["generate", "--preset", "quick", *TINY, "--set", "prior.eta=uniform(0.33,0.37)", "--n-samples", "12",
          "--seed", "2", "--out", str(d / "narrow.h5"), "--quiet"])
    _run(["train", "--data", str(d / "train.h5"), "--out", str(d / "model"), "--epochs", "2", "--batch-size", "32",
          "--quiet"])
    return d


def _posterior_json(out: Path) -> dict:
    return json.loads((out / "posterior.json").read_text())


@_filter
def test_simulate_records_its_settings_and_shows_the_observation(tiny):
    d = tiny
    out = d / "p_sim"
    _run(["posterior", "--model", str(d / "model"), "--simulate", "eta=0.8,n_v=2,seed=3", "--out", str(out),
          "--grid", "32"])
    res = _posterior_json(out)
    assert res["source"] == {"simulate": {"eta": 0.8, "n_v": 2, "nu": 0.0, "seed": 3}}
    # the image the posterior was conditioned on: written, referenced, and equal to the network input
    assert res["observation_plot"] == "observation.png" and (out / "observation.png").stat().st_size > 0
    assert res["observation_channels"] == ["rho1 (t=0.2)", "rho2 (t=0.2)", "curlJ (t=0.2)"]
    from tdglnre.workflows.observations import _training_config as _sim_config
    from tdglnre.nre.infer.model_io import read_metadata
    from tdglnre.physics.solver import simulate

    meta = read_metadata(d / "model")
    cfg = _sim_config(type("E", (), {"metadata": meta})())
    x = simulate(cfg, {"eta": [0.8], "n_v": [2], "nu": [0.0]}, seed=3).channels()[0]
    obs = np.load(out / res["observation_file"])
    assert obs.shape == (16, 16, 3)
    np.testing.assert_allclose(obs, x[-1], rtol=1e-6)


@_filter
def test_parameters_the_model_was_not_trained_on_are_refused(tiny):
    d = tiny
    for spec, words in (("eta=0.8,n_v=2,nu=0.3", ("nu", "fixed at 0")), ("eta=0.8,n_v=2,foo=1", ("foo",)),
                        ("eta=0.8,n_v=2.5", ("n_v", "integer")), ("eta=0.8,n_v=2,seed=1.5", ("seed",))):
        out = d / "refused" / "deep"
        res = _invoke(["posterior", "--model", str(d / "model"), "--simulate", spec, "--out", str(out)])
        assert res.exit_code == 1, (spec, res.output)
        assert res.output.startswith("Error: ") and res.output.count("\n") == 1, res.output
        assert all(w in res.output for w in words), (spec, res.output)
        assert not (d / "refused").exists()  # a failed run leaves no directory behind
    # the fixed value itself is fine
    _run(["posterior", "--model", str(d / "model"), "--simulate", "eta=0.8,n_v=2,nu=0", "--out", str(d / "p_nu0"),
          "--grid", "16"])


@_filter
def test_an_existing_out_is_kept_unless_force(tiny):
    d = tiny
    out = d / "p_keep"
    out.mkdir()
    (out / "precious.txt").write_text("old")
    args = ["posterior", "--model", str(d / "model"), "--data", str(d / "test.h5"), "--index", "0", "--out", str(out),
            "--grid", "16"]
    res = _invoke(args)
    assert res.exit_code == 1 and "--force" in res.output
    assert (out / "precious.txt").read_text() == "old" and not (out / "posterior.json").exists()
    # a run that fails after validation leaves the old output intact too
    res = _invoke(["posterior", "--model", str(d / "model"), "--data", str(d / "test.h5"), "--index", "999",
                   "--out", str(out), "--force"])
    assert res.exit_code == 1 and (out / "precious.txt").exists()
    _run(args + ["--force"])
    assert (out / "posterior.json").exists() and not (out / "precious.txt").exists()
    # --out may never be the model directory itself, even with --force
    res = _invoke(["posterior", "--model", str(d / "model"), "--simulate", "eta=0.5,n_v=1", "--out",
                   str(d / "model"), "--force"])
    assert res.exit_code == 1 and (d / "model" / "model.keras").exists()
    # nor the test-set calibration's
    res = _invoke(["posterior", "--model", str(d / "model"), "--test-set", str(d / "test.h5"), "--out", str(out),
                   "--quiet"])
    assert res.exit_code == 1 and "--force" in res.output


class _Pinned:
    """The trained model, except that its log-ratio peaks at η = 2.5: a network that puts the observation
    beyond the prior's upper bound 1.5."""

    def __init__(self, est):
        self._est = est

    def __getattr__(self, name):
        return getattr(self._est, name)

    def log_ratio_from_embedding(self, h, theta):
        th = np.asarray(theta)
        return np.broadcast_to(-0.5 * ((th[:, 0] - 2.5) / 0.3) ** 2, (len(h), len(th)))


@_filter
def test_a_posterior_cut_off_by_the_prior_is_flagged(tiny, monkeypatch):
    d = tiny
    import tdglnre.nre.infer.model_io as model_io

    real = model_io.load_estimator
    monkeypatch.setattr(model_io, "load_estimator", lambda m: _Pinned(real(m)))
    out = d / "p_edge"
    text = _run(["posterior", "--model", str(d / "model"), "--data", str(d / "test.h5"), "--index", "1",
                 "--out", str(out), "--grid", "64"])
    res = _posterior_json(out)
    assert res["at_prior_edge"]["eta"] == "high"
    assert res["parameters"]["eta"]["hpd95"][1] == 1.5
    assert "[at prior edge: high]" in text and "upper bound 1.5" in text


@_filter
def test_ood_score_flags_a_simulation_far_outside_the_training_range(tiny):
    d = tiny
    model = d / "model"
    (model / "ood.json").unlink(missing_ok=True)
    inside = _posterior_json_of(d, ["--data", str(d / "test.h5"), "--index", "2"], "p_in")
    # built from the training ensemble on first use and cached in the model directory
    ref = json.loads((model / "ood.json").read_text())
    assert ref["n_fit"] + ref["n_heldout"] == 240 and ref["threshold"] == inside["ood_threshold"]
    assert inside["ood_score"] is not None and not inside["ood_flag"]
    far = d / "p_far"
    text = _run(["posterior", "--model", str(model), "--simulate", "eta=5,n_v=2,seed=1", "--out", str(far),
                 "--grid", "32"])
    res = _posterior_json(far)
    assert res["ood_score"] > res["ood_threshold"] > 0 and res["ood_flag"]
    assert res["ood_heldout_exceedance"] == 0.0
    assert "out of distribution" in text and "outside the model's prior" in text


def _posterior_json_of(d, extra, name):
    out = d / name
    _run(["posterior", "--model", str(d / "model"), *extra, "--out", str(out), "--grid", "16"])
    return _posterior_json(out)


@_filter
def test_ood_is_null_with_a_note_when_the_training_data_is_gone(tiny, tmp_path):
    d = tiny
    model = tmp_path / "model_copy"
    shutil.copytree(d / "model", model)
    (model / "ood.json").unlink(missing_ok=True)
    meta = json.loads((model / "metadata.json").read_text())
    meta["dataset"]["path"] = str(tmp_path / "gone.h5")
    (model / "metadata.json").write_text(json.dumps(meta))
    out = tmp_path / "p"
    text = _run(["posterior", "--model", str(model), "--data", str(d / "test.h5"), "--index", "0", "--out", str(out),
                 "--grid", "16"])
    res = _posterior_json(out)
    assert res["ood_score"] is None and res["ood_threshold"] is None
    assert "gone.h5" in res["ood_note"] and "does not exist" in res["ood_note"] and "no OOD score" in text
    # an unreadable file in its place gives the same null score, not a failed posterior
    from tdglnre.nre.infer.ood import fit_and_save_ood, ood_for_observation

    (tmp_path / "gone.h5").write_bytes(b"not an ensemble")
    res = ood_for_observation(model, meta, np.load(out / "observation.npy")[None], cache=False)
    assert res["ood_score"] is None and "gone.h5" in res["ood_note"]
    # fit_and_save_ood (what training will call) builds it from an explicit path

    ref = fit_and_save_ood(model, d / "train.h5")
    assert json.loads((model / "ood.json").read_text())["threshold"] == ref["threshold"]


@_filter
def test_calibration_on_a_test_set_from_another_prior_reports_accuracy_only(tiny):
    d = tiny
    out = d / "cal_narrow"
    text = _run(["posterior", "--model", str(d / "model"), "--test-set", str(d / "narrow.h5"), "--out", str(out),
                 "--grid", "16", "--quiet"])
    rep = json.loads((out / "calibration.json").read_text())
    mm = rep["prior_mismatch"]
    assert mm["parameters"] == ["eta"]
    assert mm["model"]["eta"]["high"] == 1.5 and mm["test"]["eta"] == {"kind": "uniform", "low": 0.33, "high": 0.37}
    for key in ("expected_coverage", "marginal_expected_coverage", "coverage95", "sbc_ranks", "sbc_uniformity"):
        assert key not in rep
    assert rep["mae"]["eta"]["mean"] >= 0 and "coverage95" not in rep["baseline"]["per_parameter"]["eta"]
    assert not (out / "coverage.png").exists() and not (out / "sbc.png").exists()
    assert "WARNING" in text and "different prior" in text
    # the same model on a test set from its own prior keeps coverage and SBC
    same = d / "cal_same"
    _run(["posterior", "--model", str(d / "model"), "--test-set", str(d / "test.h5"), "--out", str(same),
          "--grid", "16", "--quiet"])
    rep = json.loads((same / "calibration.json").read_text())
    assert rep["prior_mismatch"] is None and "expected_coverage" in rep and len(rep["sbc_ranks"]["eta"]) == 12
