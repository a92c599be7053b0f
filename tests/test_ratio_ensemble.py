"""Ensembles of ratio estimators (tdglnre train --ensemble; EnsembleEstimator; docs/nre.md, issue 20)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("keras")
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

from tdglnre.cli.main import cli  # noqa: E402
from tdglnre.nre.infer.model_io import EnsembleEstimator, ModelLoadError, load_estimator  # noqa: E402

TINY = ["--set", "N=16", "--set", "L=8", "--set", "snapshot_times=0.2", "--set", "prior.n_v=int_uniform(1,3)"]


def _run(args):
    res = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.output


@pytest.fixture(scope="module")
def ensemble(tmp_path_factory):
    d = tmp_path_factory.mktemp("ens")
    _run(["generate", "--preset", "quick", *TINY, "--n-samples", "160", "--seed", "0", "--out", str(d / "train.h5"),
          "--quiet"])
    _run(["generate", "--preset", "quick", *TINY, "--n-samples", "24", "--seed", "1", "--out", str(d / "test.h5"),
          "--quiet"])
    out = _run(["train", "--data", str(d / "train.h5"), "--out", str(d / "model"), "--epochs", "1",
                "--batch-size", "32", "--filters", "4", "--ensemble", "2", "--seed", "5", "--quiet"])
    return d, out


def test_train_writes_the_members_and_the_listing(ensemble):
    d, out = ensemble
    assert "ensemble:" in out and out.count("best val loss") == 2
    listing = json.loads((d / "model" / "ensemble.json").read_text())
    assert listing["members"] == ["member0", "member1"]
    seeds = [json.loads((d / "model" / m / "metadata.json").read_text())["training"]["seed"] for m in listing["members"]]
    assert seeds == [5, 6]
    meta = json.loads((d / "model" / "metadata.json").read_text())
    assert meta["ensemble"]["members"] == ["member0", "member1"]
    assert (d / "model" / "ood.json").exists() and not (d / "model" / "model.keras").exists()


def test_the_ensemble_ratio_is_the_mean_of_the_members_ratios(ensemble):
    d, _ = ensemble
    est = load_estimator(d / "model")
    assert isinstance(est, EnsembleEstimator) and len(est.members) == 2
    from tdglnre.io.ensemble import open_ensemble

    with open_ensemble(d / "test.h5") as ens:
        x = est.preprocess(ens.x(0, 6))
    grid = np.stack(np.meshgrid(np.linspace(0.1, 1.4, 5), [1.0, 2.0, 3.0], indexing="ij"), -1).reshape(-1, 2)
    s = [m.log_ratio_from_embedding(m.encode(x), grid) for m in est.members]
    want = np.log((np.exp(s[0]) + np.exp(s[1])) / 2)
    np.testing.assert_allclose(est.log_ratio_from_embedding(est.encode(x), grid), want, rtol=1e-10, atol=1e-10)
    assert not np.allclose(s[0], s[1])  # two seeds, two different members
    pairs = np.repeat(grid[None, :3], len(x), axis=0)
    np.testing.assert_allclose(est.log_ratio(x, pairs), want[:, :3], rtol=1e-5, atol=1e-5)


def test_posterior_and_calibration_run_on_an_ensemble(ensemble):
    d, _ = ensemble
    out = json.loads(_run(["posterior", "--model", str(d / "model"), "--data", str(d / "test.h5"), "--index", "2",
                           "--out", str(d / "post"), "--grid", "32", "--json"]))
    assert set(out["parameters"]) == {"eta", "n_v"}
    _run(["posterior", "--model", str(d / "model"), "--test-set", str(d / "test.h5"), "--out", str(d / "cal"),
          "--grid", "32"])
    rep = json.loads((d / "cal" / "calibration.json").read_text())
    assert rep["n_test"] == 24 and rep["model_dir"] == str(d / "model")
    # untempered members: the record says so; the mixture itself has no temperature
    assert rep["temperature"] == 1.0 and rep["member_temperatures"] == [1.0, 1.0]
    assert out["temperature"] == 1.0 and out["member_temperatures"] == [1.0, 1.0]


def test_the_members_temperatures_are_recorded_and_applied(ensemble, tmp_path):
    import shutil

    d, _ = ensemble
    model = tmp_path / "model"
    shutil.copytree(d / "model", model)
    meta_path = model / "member1" / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["tempering"] = {"temperature": 2.0}
    meta_path.write_text(json.dumps(meta))
    plain, tempered = load_estimator(d / "model"), load_estimator(model)
    assert tempered.temperature_record() == {"temperature": 1.0, "member_temperatures": [1.0, 2.0]}
    from tdglnre.io.ensemble import open_ensemble

    with open_ensemble(d / "test.h5") as ens:
        x = plain.preprocess(ens.x(0, 3))
    grid = np.stack(np.meshgrid(np.linspace(0.1, 1.4, 4), [1.0, 2.0], indexing="ij"), -1).reshape(-1, 2)
    s = [m.log_ratio_from_embedding(m.encode(x), grid) for m in plain.members]
    want = np.log((np.exp(s[0]) + np.exp(s[1] / 2.0)) / 2)  # member 1's log ratio divided by its own τ
    np.testing.assert_allclose(tempered.log_ratio_from_embedding(tempered.encode(x), grid), want, rtol=1e-9,
                               atol=1e-9)
    out = json.loads(_run(["posterior", "--model", str(model), "--data", str(d / "test.h5"), "--index", "2",
                           "--out", str(tmp_path / "post"), "--grid", "32", "--json"]))
    assert out["member_temperatures"] == [1.0, 2.0] and out["temperature"] == 1.0


def test_a_broken_listing_or_mismatched_members_are_refused(ensemble, tmp_path):
    d, _ = ensemble
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "metadata.json").write_text((d / "model" / "metadata.json").read_text())
    (bad / "ensemble.json").write_text("{}")
    with pytest.raises(ModelLoadError, match="not an ensemble listing"):
        load_estimator(bad)
    (bad / "ensemble.json").write_text(json.dumps({"members": [str(d / "model" / "member0")]}))
    with pytest.raises(ModelLoadError, match="at least 2 members"):
        load_estimator(bad)
    m0 = load_estimator(d / "model" / "member0")
    other = load_estimator(d / "model" / "member1")
    other.metadata = dict(other.metadata, parameter_names=["eta", "nu"])
    with pytest.raises(ModelLoadError, match="parameter_names"):
        EnsembleEstimator([m0, other], "x")
