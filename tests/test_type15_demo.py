"""The regime demo (issue 21 §5): `tdglnre demo --preset type15-quick` end to end at a tiny size.

N = 16, L = 6 (the preset's h = 0.375), one snapshot at t = 0.3, 80 + 20 simulations, one epoch and a
coarse grid: the test checks that every stage ran and wrote what the user reads (the regime verdict
of the calibration, P(I, 1.5, II | x) of each example against its true regime, the B-map/λ-posterior
figure of each example), not the quality of the verdict (docs/results.md has the measured full-size run).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from demo_checks import assert_demo_applies_its_temperature

pytest.importorskip("keras")

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

TINY = ["N=16", "L=6", "snapshot_times=[0.3]"]


@pytest.fixture(scope="module")
def type15_demo(tmp_path_factory):
    import tdglnre as tg

    out = tmp_path_factory.mktemp("type15demo") / "demo"
    lines: list[str] = []
    summary = tg.run_demo(out, preset="type15-quick", n_train=80, n_test=20, epochs=1, quiet=True,
                          overrides=TINY, grid_points=12, echo=lines.append)
    return out, summary, lines


def test_type15_demo_reports_the_regime_verdict_of_the_test_set(type15_demo):
    out, summary, lines = type15_demo
    cal = json.loads((out / "calibration/calibration.json").read_text())
    assert set(cal["mae"]) == {"eta", "n_v", "lam"}
    v = cal["regime_verdict"]
    assert summary["regime_verdict"] == v
    assert v["n"] == 20
    assert sum(r["n"] for r in v["reliability_type15"]) == 20
    assert sum(v["mean_predicted"].values()) == pytest.approx(1.0)
    by = v["lam_by_regime"]  # λ's MAE per true regime, consistent with the overall λ MAE
    assert sum(q["n"] for q in by.values()) == 20
    assert sum(q["n"] * q["mae"] for q in by.values() if q["n"]) / 20 == pytest.approx(cal["mae"]["lam"]["mean"])
    assert any(line.strip().startswith("regime verdict (Type 1.5 vs not): ROC AUC") for line in lines)
    assert set(summary["times"]) == {"generate", "train", "calibration", "posterior", "figures"}
    assert json.loads((out / "demo_summary.json").read_text()) == json.loads(json.dumps(summary))


def test_type15_demo_examples_carry_p_regime_and_their_true_regime(type15_demo):
    from tdglnre.io.ensemble import open_ensemble
    from tdglnre.physics.lengths import REGIMES
    from tdglnre.physics.screening import regime_codes

    out, summary, lines = type15_demo
    assert [ex["index"] for ex in summary["examples"]] == [0, 1, 2]
    with open_ensemble(out / "test.h5") as ens:
        names = list(ens.parameter_names)
        theta = ens.theta(0, 3)
        config = ens.config
        fixed = ens.prior.fixed_values()
    assert "lam" in names
    params = {n: theta[:, names.index(n)] for n in ("eta", "lam")} | {"nu": np.full(3, fixed["nu"])}
    truth = [REGIMES[c] for c in regime_codes(config, params)]
    for ex, true_regime in zip(summary["examples"], truth):
        assert ex["true_regime"] == true_regime
        post = json.loads((out / f"posterior_{ex['index']}/posterior.json").read_text())
        assert post["p_regime"] == ex["p_regime"]
        assert set(ex["p_regime"]) == {"I", "1.5", "II"}
        assert sum(ex["p_regime"].values()) == pytest.approx(1.0)
        assert post["parameters"]["lam"]["truth"] == pytest.approx(theta[ex["index"], names.index("lam")])
        assert any(line.startswith(f"  test #{ex['index']}: P(I) ") and f"true regime Type {true_regime}" in line
                   for line in lines)


def test_type15_demo_writes_a_b_map_beside_the_posterior_per_example(type15_demo):
    import matplotlib.image as mpimg

    out, summary, _ = type15_demo
    assert summary["figures"] == [str(out / f"posterior_{i}/regime.png") for i in range(3)]
    for f in summary["figures"]:
        img = mpimg.imread(f)
        assert img.shape[1] > 2 * img.shape[0]  # the panels side by side: B map, λ marginal, joint (η, λ)
        assert img[..., :3].std() > 0.05  # not a blank canvas


def test_run_demo_picks_the_regime_pipeline_for_a_prior_over_lam():
    from tdglnre.io.presets import load_preset

    assert "lam" in load_preset("type15-quick")[1].inferred
    assert "lam" not in load_preset("quick")[1].inferred
    assert "lam" not in load_preset("drag-quick")[1].inferred


@pytest.mark.parametrize("bad", [1, 2.5, "64"])
def test_run_demo_refuses_a_bad_grid_size_before_any_work(tmp_path, bad):
    import tdglnre as tg

    with pytest.raises(tg.ConfigError, match="`grid_points`"):
        tg.run_demo(tmp_path / "d", preset="type15-quick", grid_points=bad)
    assert not (tmp_path / "d").exists()


def test_type15_demo_tempers_its_model_and_calibrates_with_that_temperature(type15_demo):
    # the demo fits a posterior temperature on the validation split (docs/nre.md, "Tempering") and every later
    # stage applies it: the calibration and each example's posterior record the same τ as the model's metadata
    out, summary, lines = type15_demo
    assert_demo_applies_its_temperature(out, len(summary["examples"]))
    assert json.loads((out / "model/metadata.json").read_text())["tempering"]["n"] == 8  # 10 % of the 80 simulations
    assert any(line.strip().startswith("posterior temperature") for line in lines)
