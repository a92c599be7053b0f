"""Posterior tempering (docs/nre.md, "Tempering").

The statistical facts: a ratio estimator whose log ratio is k × the exact
log-likelihood of a Gaussian model is too sharp by k; the temperature that
minimises the held-out log score is then k (variance σ²τ/k = σ²), and the
tempered posteriors are calibrated where the untempered ones were not. An
exact estimator keeps τ ≈ 1. Then the plumbing: ``tdglnre train --temper`` and
``tdglnre temper`` record τ, and every posterior divides the log ratio by it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tdglnre.io.priors import Prior
from tdglnre.nre.infer.inference import calibration_report, evaluate_test_set
from tdglnre.nre.infer.posterior import Grid
from tdglnre.nre.infer.tempering import tempering_record, tempering_scores

sys.path.insert(0, str(Path(__file__).parent))
from test_inference import GaussianEstimator, _test_set  # noqa: E402


class Tempered(GaussianEstimator):
    """The Gaussian estimator with a temperature divided out, as ``RatioEstimator`` applies one."""

    def __init__(self, prior, sharpness, temperature):
        super().__init__(prior, sharpness)
        self.temperature = temperature

    def log_ratio_from_embedding(self, h, theta):
        return super().log_ratio_from_embedding(h, theta) / self.temperature


@pytest.fixture(scope="module")
def prior():
    return Prior({"eta": "uniform(0, 1.5)", "n_v": "int_uniform(1, 4)", "nu": "fixed(0)"})


@pytest.mark.parametrize("objective", ["coverage", "nll"])
@pytest.mark.parametrize("sharpness", [0.4, 1.0, 3.0])
def test_fitted_temperature_undoes_a_known_miscalibration(prior, sharpness, objective):
    grid = Grid.from_prior(prior, 120)
    x, theta = _test_set(prior, 600, 11)  # the "validation split"
    rec = tempering_record(tempering_scores(GaussianEstimator(prior, sharpness), x, theta, grid), objective=objective)
    # a Gaussian log-likelihood scaled by k is calibrated (and has the best expected log score) at τ = k;
    # 600 pairs and the 4.4 % candidate spacing leave the fit within ±12 % (measured: 1–7 %)
    assert rec["temperature"] == pytest.approx(sharpness, rel=0.12), rec["temperature"]
    assert rec["objective"] == objective
    if objective == "nll":
        assert rec["mean_nll"]["after"] <= rec["mean_nll"]["before"]
    assert not rec["at_edge"]
    # fresh pairs, never used for the fit: calibrated after, miscalibrated before (unless exact)
    xt, tt = _test_set(prior, 800, 12)
    after = calibration_report(evaluate_test_set(Tempered(prior, sharpness, rec["temperature"]), xt, tt, grid, seed=1))
    assert after["expected_coverage"]["max_abs_deviation"] < 0.07, after["expected_coverage"]
    if sharpness != 1.0:
        before = calibration_report(evaluate_test_set(GaussianEstimator(prior, sharpness), xt, tt, grid, seed=1))
        assert before["expected_coverage"]["max_abs_deviation"] > 0.12
        dev = np.asarray(before["expected_coverage"]["empirical"]) - np.asarray(before["expected_coverage"]["levels"])
        # too sharp covers too little; too flat too much
        assert (dev.mean() < 0) == (sharpness > 1.0)


def test_scores_agree_with_the_grid_posterior(prior):
    """At τ = 1 the per-sample score and credibility are those of GridPosterior (the calibration's code path)."""
    from tdglnre.nre.infer.inference import posteriors_on_grid

    grid = Grid.from_prior(prior, 60)
    x, theta = _test_set(prior, 20, 13)
    est = GaussianEstimator(prior, 2.0)
    sc = tempering_scores(est, x, theta, grid, temperatures=[0.5, 1.0])
    posts, ld = posteriors_on_grid(est, x, grid, theta_true=theta)
    np.testing.assert_allclose(sc.nll[:, 1], -ld, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(sc.credibility[:, 1], [p.credibility_of(v) for p, v in zip(posts, ld)], atol=1e-12)
    # τ = 0.5 is the estimator with twice the sharpness
    _, ld2 = posteriors_on_grid(GaussianEstimator(prior, 4.0), x, grid, theta_true=theta)
    np.testing.assert_allclose(sc.nll[:, 0], -ld2, rtol=1e-10, atol=1e-10)


class InstrumentSharp(GaussianEstimator):
    """Inputs end in an instrument value d ∈ [−1, 1]; log r = k(d) × exact log-likelihood, k(d) = exp(A·d).

    A network conditioned on its instrument that is too sharp at one end of its family and too flat at the other
    (the case docs/results.md measured on the SQUID family, with both signs at once).
    """

    A = float(np.log(2.5))

    def __init__(self, prior, weights=None, temperature=1.0):
        super().__init__(prior, 1.0)
        self.weights, self.temperature = weights, temperature

    def log_ratio_from_embedding(self, h, theta):
        h = np.asarray(h)
        d = h[:, -1]
        s = super().log_ratio_from_embedding(h[:, :-1], theta) * np.exp(self.A * d)[:, None]
        tau = self.temperature * (np.exp(h[:, -1:] @ np.asarray(self.weights)) if self.weights is not None else 1.0)
        return s / np.reshape(tau, (-1, 1))


def _with_instrument(prior, n, seed, d=None):
    x, theta = _test_set(prior, n, seed)
    dd = np.random.default_rng(seed + 1000).uniform(-1.0, 1.0, n) if d is None else np.full(n, float(d))
    return np.concatenate([x, dd[:, None]], axis=1), theta


@pytest.mark.parametrize("objective", ["coverage", "nll"])
def test_a_temperature_by_instrument_calibrates_both_ends_where_one_temperature_cannot(prior, objective):
    from tdglnre.nre.infer.tempering import fit_instrument_temperature

    grid = Grid.from_prior(prior, 100)
    x, theta = _with_instrument(prior, 600, 21)  # the "validation split", instruments drawn across the family
    scores = tempering_scores(InstrumentSharp(prior), x, theta, grid)
    c, w = fit_instrument_temperature(scores, x[:, -1:], objective=objective)
    # the exact answer is τ(d) = k(d): c = 0 and w = A (measured: c 0 / 0.027, w 0.89 for A = 0.92)
    assert abs(c) < 0.12 and w[0] == pytest.approx(InstrumentSharp.A, rel=0.15), (c, w)
    rec = tempering_record(scores, objective=objective, instrument=x[:, -1:], base_weights=np.zeros(1))
    assert rec["instrument_weights"] == [pytest.approx(float(w[0]))]
    assert rec["temperature"] == pytest.approx(np.exp(c))
    assert rec["mean_nll"]["after"] < rec["mean_nll"]["before"]
    one = tempering_record(scores, objective=objective)  # one τ for the whole family
    # one τ refitted on scores computed under recorded weights keeps those weights
    assert tempering_record(scores, objective=objective, base_weights=np.array([0.3]))["instrument_weights"] == [0.3]
    assert "instrument_weights" not in one
    for end, sign in ((-1.0, +1), (1.0, -1)):  # k = 0.4 (too flat: covers too much), k = 2.5 (too sharp)
        xt, tt = _with_instrument(prior, 800, 22 + int(end), d=end)  # fresh pairs at one end of the family

        def deviation(est):
            cov = calibration_report(evaluate_test_set(est, xt, tt, grid, seed=1))["expected_coverage"]
            return np.asarray(cov["empirical"]) - np.asarray(cov["levels"])

        by = deviation(InstrumentSharp(prior, rec["instrument_weights"], rec["temperature"]))
        assert np.abs(by).max() < 0.07, (end, by)
        single = deviation(InstrumentSharp(prior, None, one["temperature"]))
        assert np.abs(single).max() > 0.1 and np.sign(single.mean()) == sign, (end, one["temperature"], single)


def test_bad_inputs_are_refused(prior):
    from tdglnre.errors import ConfigError

    grid = Grid.from_prior(prior, 20)
    x, theta = _test_set(prior, 4, 14)
    with pytest.raises(ConfigError, match="temperatures"):
        tempering_scores(GaussianEstimator(prior), x, theta, grid, temperatures=[1.0, 0.0])
    with pytest.raises(ConfigError, match="one θ row per input"):
        tempering_scores(GaussianEstimator(prior), x, theta[:3], grid)
    bad = theta.copy()
    bad[0, 0] = 9.0
    with pytest.raises(ConfigError, match="outside the model's prior"):
        tempering_scores(GaussianEstimator(prior), x, bad, grid)


# ----------------------------------------------------------------------------- the commands on a tiny model
from test_nre_cli import write_ensemble  # noqa: E402


def _cli(*args):
    from cli.main import cli

    res = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return res.exit_code, res.output


def test_train_temper_records_a_temperature_that_posteriors_apply(tmp_path):
    from tdglnre.nre.infer.model_io import load_estimator

    data = write_ensemble(tmp_path / "ens.h5", 120)
    out = tmp_path / "model"
    code, text = _cli("train", "--data", str(data), "--out", str(out), "--batch-size", "16", "--filters", "4,8",
                      "--epochs", "2", "--quiet", "--temper")
    assert code == 0, text
    assert "temperature" in text and "validation samples" in text
    meta = json.loads((out / "metadata.json").read_text())
    rec = meta["tempering"]
    assert rec["n"] == 12 and rec["fitted_on"]["split"] == "validation" and rec["temperature"] > 0
    tempered = load_estimator(out)
    assert tempered.temperature == rec["temperature"]
    # the posterior and the calibration say which temperature they used
    code, text = _cli("posterior", "--model", str(out), "--data", str(data), "--index", "0", "--out",
                      str(tmp_path / "post"))
    assert code == 0 and f"posterior temperature {rec['temperature']:.3f}" in text, text
    assert json.loads((tmp_path / "post" / "posterior.json").read_text())["temperature"] == rec["temperature"]
    # the same network without the temperature: every log ratio is τ times the tempered one
    code, text = _cli("temper", "--model", str(out), "--reset")
    assert code == 0 and "removed" in text, text
    plain = load_estimator(out)
    assert plain.temperature == 1.0 and "tempering" not in json.loads((out / "metadata.json").read_text())
    from tdglnre.io.ensemble import open_ensemble

    with open_ensemble(data) as ens:
        x = plain.preprocess(np.asarray(ens.x(0, 3)))
    th = np.array([[0.2], [0.7], [1.3]])
    np.testing.assert_allclose(tempered.log_ratio(x, th) * rec["temperature"], plain.log_ratio(x, th), rtol=1e-6)
    h = plain.encode(x)
    np.testing.assert_allclose(tempered.log_ratio_from_embedding(h, th) * rec["temperature"],
                               plain.log_ratio_from_embedding(h, th), rtol=1e-6)
    # refitting from τ = 1 on the same split gives the same τ
    code, text = _cli("temper", "--model", str(out), "--quiet", "--json")
    assert code == 0, text
    assert json.loads(text)["temperature"] == pytest.approx(rec["temperature"], rel=1e-6)
    code, text = _cli("temper", "--model", str(out), "--by-instrument")
    assert code == 1 and "does not take the instrument as an input" in text, text
    # errors name the flag: another ensemble, no validation split, an ensemble directory
    other = write_ensemble(tmp_path / "other.h5", 120, seed=5)
    code, text = _cli("temper", "--model", str(out), "--data", str(other))
    assert code == 1 and "not the ensemble the model was trained on" in text and "--data" in text, text
    meta = json.loads((out / "metadata.json").read_text())
    meta["training"]["val_fraction"] = 0.0
    (out / "metadata.json").write_text(json.dumps(meta))
    code, text = _cli("temper", "--model", str(out))
    assert code == 1 and "without a validation split" in text, text
    (tmp_path / "ens_dir").mkdir()
    (tmp_path / "ens_dir" / "ensemble.json").write_text(json.dumps({"members": ["member0", "member1"]}))
    code, text = _cli("temper", "--model", str(tmp_path / "ens_dir"))
    assert code == 1 and "temper each member" in text, text


def test_train_temper_without_a_validation_split_is_refused_before_training(tmp_path):
    data = write_ensemble(tmp_path / "ens.h5", 40)
    code, text = _cli("train", "--data", str(data), "--out", str(tmp_path / "m"), "--val-fraction", "0", "--temper",
                      "--quiet")
    assert code == 1 and "--temper" in text and "--val-fraction" in text, text
    assert not (tmp_path / "m").exists()


def test_a_corrupt_temperature_is_refused(tmp_path):
    from tdglnre.nre.infer.model_io import ModelLoadError, temperature_of

    assert temperature_of({}) == 1.0
    assert temperature_of({"tempering": {"temperature": 1.5}}) == 1.5
    for bad in ({"temperature": -1.0}, {"temperature": "x"}, {}, {"temperature": float("inf")}):
        with pytest.raises(ModelLoadError, match="tempering"):
            temperature_of({"tempering": bad})
