"""Issue 20, "fair baseline": under a measurement the ABC baseline sees the very images the network sees.

A tiny clean model (N = 8, one training epoch) calibrated with and without ``noise(0.2)``: the ABC figures
change under the measurement, equal the clean ones without it, and the summaries ABC compares are those of
the measured network inputs; the reference set is measured too, with its own documented noise stream.
"""

from __future__ import annotations

import numpy as np
import pytest

import tdglnre as tg

pytest.importorskip("keras")
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

TINY = ["N=8", "L=4", "snapshot_times=[0.1]", "prior.n_v=int_uniform(1,2)"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("abc")
    tg.generate("quick", 120, 0, d / "train.h5", overrides=TINY, force=True)
    tg.generate("quick", 16, 1, d / "test.h5", overrides=TINY, force=True)
    tg.train(d / "train.h5", d / "model", epochs=1, batch_size=32, force=True, quiet=True)
    return d


def _abc(rep):
    return {n: (b["mae"], b["posterior_mean"]) for n, b in rep.report["baseline"]["per_parameter"].items()}


def _spy(monkeypatch):
    """Record the network inputs of evaluate_test_set and the summaries of baseline_evaluation."""
    from tdglnre.workflows import calibrate as cal

    seen = {}
    evaluate, baseline = cal.evaluate_test_set, cal.baseline_evaluation

    def evaluate_spy(model, x, *a, **k):
        seen["x"] = np.array(x)
        return evaluate(model, x, *a, **k)

    def baseline_spy(ref_sum, ref_theta, test_sum, *a, **k):
        seen["ref"], seen["test"] = np.array(ref_sum), np.array(test_sum)
        return baseline(ref_sum, ref_theta, test_sum, *a, **k)

    monkeypatch.setattr(cal, "evaluate_test_set", evaluate_spy)
    monkeypatch.setattr(cal, "baseline_evaluation", baseline_spy)
    return seen


def test_abc_sees_the_measured_test_images(tiny, monkeypatch):
    from tdglnre.analysis.baselines import image_summaries, summaries_batch
    from tdglnre.io.ensemble import open_ensemble

    d = tiny
    seen = _spy(monkeypatch)
    kw = dict(grid_points=16, reference=d / "train.h5")
    clean = tg.calibrate(d / "model", d / "test.h5", **kw)
    clean_test, clean_ref = seen["test"], seen["ref"]
    with open_ensemble(d / "test.h5") as ens:
        raw = ens.x(0, ens.n_complete)
    np.testing.assert_array_equal(clean_test, summaries_batch(raw[:, -1], 4.0))  # unchanged without a measurement
    assert "measurement" not in clean.report["baseline"]

    noisy = tg.calibrate(d / "model", d / "test.h5", measurement="noise(0.2)", **kw)
    # the summaries ABC compares are those of the images the network was given (same noise draws)
    x = seen["x"]
    assert not np.array_equal(x, tg.load_model(d / "model").preprocess(raw))
    np.testing.assert_array_equal(seen["test"], image_summaries(x, ["rho1", "rho2", "curlJ"], 4.0))
    # the reference set went through the measurement too
    assert seen["ref"].shape == clean_ref.shape and not np.array_equal(seen["ref"], clean_ref)
    rec = noisy.report["baseline"]["measurement"]
    assert rec["text"] == "noise(0.2)" and rec["reference_noise"] == "measurement_rng(0, 2147483646, reference " \
                                                                      "sample index)"
    # the ABC figures change under the measurement ...
    a, b = _abc(clean), _abc(noisy)
    assert all(a[n][0] != b[n][0] for n in a)
    # ... and are reproducible: equal to the clean ones without it, equal to themselves with it
    assert _abc(tg.calibrate(d / "model", d / "test.h5", **kw)) == a
    assert _abc(tg.calibrate(d / "model", d / "test.h5", measurement="noise(0.2)", **kw)) == b


def test_abc_summaries_follow_the_channels_a_measurement_keeps():
    from tdglnre.analysis.baselines import SUMMARY_NAMES, image_summaries, summaries_batch, summary_names_of

    rng = np.random.default_rng(0)
    img = rng.uniform(0.1, 1.0, size=(3, 8, 8, 3))
    full = image_summaries(img, ["rho1", "rho2", "curlJ"], 4.0)
    np.testing.assert_array_equal(full, summaries_batch(img, 4.0))
    # channel order of the images does not matter
    np.testing.assert_array_equal(image_summaries(img[..., [2, 0, 1]], ["curlJ", "rho1", "rho2"], 4.0), full)
    # channels(rho1): only the summaries of rho1 remain, with the same values
    names = summary_names_of(["rho1"])
    assert names == ("mean_rho1", "std_rho1", "core_frac1", "logS1_k1", "logS1_k2", "logS1_k3")
    np.testing.assert_array_equal(image_summaries(img[..., :1], ["rho1"], 4.0),
                                  full[:, [SUMMARY_NAMES.index(n) for n in names]])
    with pytest.raises(tg.ConfigError, match="at least one of"):
        image_summaries(img[..., :1], ["phase"], 4.0)


def test_a_field_map_measurement_skips_the_abc_baseline_and_says_why():
    """ABC's summaries need ρ or curl J: under channels(B) (a SQUID-like family) calibration keeps its
    posteriors and coverage and reports why there is no baseline, instead of failing after them."""
    from tdglnre.instrument import MeasurementModel
    from tdglnre.nre.infer.inference import calibration_summary_lines
    from tdglnre.workflows.calibrate import _abc_unavailable

    class Screened:
        metadata = {"input": {"channels": ["rho1", "rho2", "curlJ", "B"]}}

    why = _abc_unavailable(Screened, MeasurementModel.parse("height(1)+blur(1)+noise(0.05)+channels(B)"))
    assert why is not None and "['B']" in why and "height(1.0)" in why
    assert _abc_unavailable(Screened, MeasurementModel.parse("noise(0.05)+channels(rho1,B)")) is None
    assert _abc_unavailable(Screened, None) is None
    rep = {"n_test": 2, "mae": {"eta": {"mean": 0.1, "std": 0.0}}, "width95": {"eta": 0.3}, "baseline": None,
           "baseline_note": why}
    lines = calibration_summary_lines(rep)
    assert lines[-1] == f"no ABC baseline: {why}"
