"""End to end through the CLI on tiny data: generate → train → posterior (every input mode) → calibration."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("keras")
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

from tdglnre.cli.main import cli  # noqa: E402

TINY = ["--set", "N=16", "--set", "L=8", "--set", "snapshot_times=0.2", "--set", "prior.n_v=int_uniform(1,3)"]


def _run(args):
    res = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.output


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("e2e")
    _run(["generate", "--preset", "quick", *TINY, "--n-samples", "240", "--seed", "0", "--out", str(d / "train.h5"),
          "--quiet"])
    _run(["generate", "--preset", "quick", *TINY, "--n-samples", "40", "--seed", "1", "--out", str(d / "test.h5"),
          "--quiet"])
    _run(["train", "--data", str(d / "train.h5"), "--out", str(d / "model"), "--epochs", "2", "--batch-size", "32",
          "--quiet"])
    return d


KEYS = {"mean", "std", "median", "map", "hpd68", "hpd95", "eti95"}


def test_posterior_of_an_ensemble_sample(trained):
    d = trained
    out = json.loads(_run(["posterior", "--model", str(d / "model"), "--data", str(d / "test.h5"), "--index", "3",
                           "--out", str(d / "p_data"), "--grid", "64", "--json"]))
    pars = out["parameters"]
    assert set(pars) == {"eta", "n_v"}
    for name, s in pars.items():
        assert KEYS <= set(s) and "truth" in s
        assert s["hpd95"][0] <= s["hpd68"][0] <= s["hpd68"][1] <= s["hpd95"][1]
        assert s["eti95"][0] <= s["median"] <= s["eti95"][1]
    assert 0.0 <= pars["eta"]["hpd95"][0] and pars["eta"]["hpd95"][1] <= 1.5
    assert pars["n_v"]["map"] in (1.0, 2.0, 3.0)
    for f in ("posterior.json", "marginals.png", "joint_eta_n_v.png", "posterior_grid.npz"):
        assert (d / "p_data" / f).exists()
    grid = np.load(d / "p_data" / "posterior_grid.npz")
    assert grid["log_density"].shape == (64, 3)


def test_posterior_of_an_npy_observation_and_a_simulation(trained):
    d = trained
    import h5py

    with h5py.File(d / "test.h5") as f:
        x = f["x"][5, 0]  # (N, N, C) single snapshot
    np.save(d / "obs.npy", x)
    a = json.loads(_run(["posterior", "--model", str(d / "model"), "--observation", str(d / "obs.npy"),
                         "--out", str(d / "p_obs"), "--grid", "32", "--json"]))
    b = json.loads(_run(["posterior", "--model", str(d / "model"), "--data", str(d / "test.h5"), "--index", "5",
                         "--out", str(d / "p_same"), "--grid", "32", "--json"]))
    # the same image through two input paths gives the same posterior
    assert abs(a["parameters"]["eta"]["mean"] - b["parameters"]["eta"]["mean"]) < 1e-6
    c = json.loads(_run(["posterior", "--model", str(d / "model"), "--simulate", "eta=0.8,n_v=2,seed=3",
                         "--out", str(d / "p_sim"), "--grid", "32", "--json"]))
    assert c["parameters"]["eta"]["truth"] == 0.8 and c["parameters"]["n_v"]["truth"] == 2


def test_calibration_on_a_test_set(trained):
    d = trained
    _run(["posterior", "--model", str(d / "model"), "--test-set", str(d / "test.h5"), "--out", str(d / "cal"),
          "--grid", "32", "--quiet"])
    rep = json.loads((d / "cal" / "calibration.json").read_text())
    for key in ("expected_coverage", "sbc_ranks", "table", "mae", "coverage95", "baseline"):
        assert key in rep
    cov = rep["expected_coverage"]
    assert len(cov["levels"]) == 19 and len(cov["empirical"]) == 19
    assert all(0.0 <= e <= 1.0 for e in cov["empirical"])
    # coverage is monotone in the level by construction
    assert all(a <= b for a, b in zip(cov["empirical"], cov["empirical"][1:]))
    assert len(rep["sbc_ranks"]["eta"]) == 40
    assert rep["baseline"]["per_parameter"]["eta"]["mae"] > 0
    for f in ("table.csv", "table.md", "coverage.png", "sbc.png", "error_eta.png"):
        assert (d / "cal" / f).exists()


def test_posterior_errors_are_one_line(trained):
    d = trained
    res = CliRunner().invoke(cli, ["posterior", "--model", str(d / "model"), "--data", str(d / "test.h5"),
                                   "--index", "999", "--out", str(d / "bad")])
    assert res.exit_code == 1 and "out of range" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(cli, ["posterior", "--model", str(d / "model"), "--simulate", "eta=0.8",
                                   "--out", str(d / "bad")])
    assert res.exit_code == 1 and "n_v" in res.output
    res = CliRunner().invoke(cli, ["posterior", "--model", str(d / "nope"), "--simulate", "eta=0.8,n_v=1",
                                   "--out", str(d / "bad")])
    assert res.exit_code == 1 and "metadata.json" in res.output
