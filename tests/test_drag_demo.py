"""The drag demo (issue 12 §5): `tdglnre demo --preset drag-quick` end to end at tiny sizes.

N = 16, L = 8, three short snapshots, 100 + 20 simulations per set, one training epoch: the
test checks that every stage ran and wrote its artifacts (structure.json, the model-comparison
classifier in the model directory, p_drag in each posterior.json, calibration.json, the ROC AUC
by true ν), not the quality of the results (docs/drag.md has the measured full-size run).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from demo_checks import assert_demo_applies_its_temperature

pytest.importorskip("keras")

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

TINY = ["N=16", "L=8", "snapshot_times=[0.1,0.2,0.4]"]


@pytest.fixture(scope="module")
def drag_demo(tmp_path_factory):
    from tdglnre.cli.main import cli

    out = tmp_path_factory.mktemp("dragdemo") / "demo"
    args = ["demo", "--preset", "drag-quick", "--out", str(out), "--n-train", "100", "--n-test", "20",
            "--epochs", "1", "--quiet"]
    for s in TINY:
        args += ["--set", s]
    res = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return out, res.output


def test_drag_demo_writes_every_artifact(drag_demo):
    out, output = drag_demo
    for name in ("train.h5", "test.h5", "nu0.h5", "nu0_test.h5", "structure/structure.json",
                 "model/model.keras", "model/metadata.json", "model/model_comparison.keras",
                 "model/model_comparison.json", "model_comparison/comparison.json", "calibration/calibration.json",
                 "demo_summary.json"):
        assert (out / name).is_file(), name
    st = json.loads((out / "structure/structure.json").read_text())
    assert st["n_samples"] == 100
    assert st["t"] == pytest.approx([0.1, 0.2, 0.4])
    assert set(st["S"]) == {"rho1", "rho2", "curlJ"}
    assert "fingerprint" in st
    clf = json.loads((out / "model/model_comparison.json").read_text())
    assert clf["info"]["n0"] == 100 and clf["info"]["n1"] == 100
    assert clf["info"]["features"]["kind"] == "log_structure"
    assert clf["info"]["features"]["L"] == 8.0
    # the ratio estimator: CNN on the last snapshot, log-spectrum branch on all (docs/drag.md §4)
    meta = json.loads((out / "model/metadata.json").read_text())
    assert meta["input"]["snapshot_indices"] == [0, 1, 2]  # the time series, CNN on the last (docs/drag.md §4)
    assert meta["training"]["network"]["spectrum"] is True
    assert meta["training"]["network"]["cnn_snapshots"] == "last"
    assert meta["parameter_names"] == ["eta", "n_v", "nu"]
    for i in range(3):
        post = json.loads((out / f"posterior_{i}/posterior.json").read_text())
        assert 0.0 <= post["p_drag"] <= 1.0
    cal = json.loads((out / "calibration/calibration.json").read_text())
    assert set(cal["mae"]) == {"eta", "n_v", "nu"}
    summary = json.loads((out / "demo_summary.json").read_text())
    cmp = summary["model_comparison"]
    assert cmp["n_test_nu0"] == 20 and cmp["n_test_drag"] == 20
    assert 0.0 <= cmp["auc"] <= 1.0
    rows = cmp["auc_by_nu"]
    assert [r["nu_low"] for r in rows] == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    assert sum(r["n"] for r in rows) == 20
    assert set(summary["times"]) == {"generate", "structure", "train", "model_comparison", "posterior",
                                     "calibration"}
    assert "P(nu > 0 | x) = " in output
    assert "ROC AUC" in output and "by true nu" in output


def test_drag_demo_trains_the_regression_head_and_tempers_it(drag_demo):
    # the drag demo's network: spectrum branch, CNN on the last snapshot, the summary branch with the
    # regression head, and a posterior temperature that calibration and every posterior apply
    out, output = drag_demo
    net = json.loads((out / "model/metadata.json").read_text())["training"]["network"]
    assert (net["spectrum"], net["cnn_snapshots"], net["summaries"], net["regression"]) == (True, "last", True, True)
    assert_demo_applies_its_temperature(out, 3)


def test_drag_demo_nu0_sets_have_nu_fixed_at_zero(drag_demo):
    from tdglnre.io.ensemble import open_ensemble

    out, _ = drag_demo
    with open_ensemble(out / "nu0.h5") as ens:
        assert "nu" not in ens.parameter_names
        assert ens.prior.fixed_values()["nu"] == 0.0
        assert ens.config.N == 16
    with open_ensemble(out / "train.h5") as ens:
        nu = ens.theta(0, ens.n_complete)[:, list(ens.parameter_names).index("nu")]
        assert np.all((nu >= 0.0) & (nu <= 0.5)) and nu.std() > 0.05


def test_run_demo_picks_the_drag_pipeline_and_its_sizes_by_preset():
    from tdglnre.workflows.demo import DEFAULT_SIZES, is_drag_preset

    assert is_drag_preset("drag-quick") and not is_drag_preset("quick")
    assert not is_drag_preset("drag-quick", ["prior.nu=fixed(0)"])
    assert DEFAULT_SIZES["quick"] == (8000, 500, 60)  # the quick demo keeps its sizes
