"""Issue 20, "calibration cost": the split-head grid evaluation through calibrate and the CLI.

The split head gives the same calibration figures to float32 rounding (the exact comparison of the log ratios
is in tests/test_nre_model.py); the default stays the joint head, bit for bit (tests/test_golden.py).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

import tdglnre as tg

pytest.importorskip("keras")
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

TINY = ["N=8", "L=4", "snapshot_times=[0.1]", "prior.n_v=int_uniform(1,2)"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("cost")
    tg.generate("quick", 100, 0, d / "train.h5", overrides=TINY, force=True)
    tg.generate("quick", 12, 1, d / "test.h5", overrides=TINY, force=True)
    tg.train(d / "train.h5", d / "model", epochs=1, batch_size=32, force=True, quiet=True)
    return d


def test_split_head_calibration_matches_the_joint_one(tiny):
    d = tiny
    joint = tg.calibrate(d / "model", d / "test.h5", grid_points=32)
    split = tg.calibrate(d / "model", d / "test.h5", grid_points=32, split_head=True)
    assert split.report["split_head"] is True and "split_head" not in joint.report
    np.testing.assert_allclose(split.evaluation.mean, joint.evaluation.mean, rtol=0, atol=1e-6)
    np.testing.assert_allclose(split.evaluation.std, joint.evaluation.std, rtol=0, atol=1e-6)
    np.testing.assert_allclose(split.evaluation.credibility, joint.evaluation.credibility, rtol=0, atol=1e-5)
    for n in joint.report["mae"]:
        assert split.report["mae"][n]["mean"] == pytest.approx(joint.report["mae"][n]["mean"], abs=1e-6)
    with pytest.raises(tg.ConfigError, match="split_head"):
        tg.calibrate(d / "model", d / "test.h5", grid_points=32, split_head="yes")


def test_cli_split_head_flag(tiny):
    from tdglnre.cli.main import cli

    d = tiny
    res = CliRunner().invoke(cli, ["posterior", "--model", str(d / "model"), "--test-set", str(d / "test.h5"),
                                   "--out", str(d / "cal"), "--grid", "16", "--quiet", "--split-head"])
    assert res.exit_code == 0, res.output
    assert json.loads((d / "cal" / "calibration.json").read_text())["split_head"] is True
    res = CliRunner().invoke(cli, ["posterior", "--model", str(d / "model"), "--data", str(d / "test.h5"),
                                   "--index", "0", "--out", str(d / "p"), "--split-head"])
    assert res.exit_code != 0 and "--split-head applies to --test-set" in res.output
