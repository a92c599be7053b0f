"""OOD score of measurement-aware models (docs/observations.md, "Out-of-distribution score").

The reference of a model trained with a measurement is built from measured
training images, and every channel carries its spectral tail (noise floor), so
that an image measured unlike the training inputs is flagged: a noisy image for
a clean model, an exactly noiseless one for a model trained with noise.
"""

from __future__ import annotations

import numpy as np
import pytest

from tdglnre.io.ensemble import open_ensemble
from tdglnre.instrument.model import MeasurementModel
from tdglnre.nre.infer.ood import (_metadata_summaries, build_ood_reference, load_ood_reference, network_channels,
                             ood_score, save_ood_reference, spectral_tail, summary_names)
from tdglnre.nre.pipeline.selection import Selection, measure_inputs

TINY = ["N=16", "L=8", "prior.n_v=int_uniform(1,3)"]  # the quick preset's t = 2: vortices formed
FAMILY = "noise(0.02..0.2)"


@pytest.fixture(scope="module")
def ens(tmp_path_factory):
    import tdglnre as tg

    d = tmp_path_factory.mktemp("ood_measured")
    tg.generate("quick", 320, 0, d / "train.h5", overrides=TINY)
    tg.generate("quick", 120, 1, d / "test.h5", overrides=TINY)
    return d


def _metadata(measurement: str | None, channels=("rho1", "rho2", "curlJ")) -> dict:
    sel = Selection(tuple(channels), tuple(("rho1", "rho2", "curlJ").index(c) for c in channels), (0,), (2.0,))
    m = None if measurement is None else MeasurementModel.parse(measurement)
    return {"input": sel.to_dict(), "L": 8.0, "dataset": {},
            "measurement": None if m is None else {"text": str(m), "model": m.to_dict()}}


def _test_inputs(d, meta: dict, measurement: str | None, seed: int = 7) -> np.ndarray:
    sel = Selection.from_dict(meta["input"])
    with open_ensemble(d / "test.h5") as e:
        x = sel.apply(e.x(0, e.n_complete))
    m = None if measurement is None else MeasurementModel.parse(measurement)
    return measure_inputs(m, x, sel, seed, 0, np.arange(len(x)))


def _flagged(ref: dict, meta: dict, x: np.ndarray) -> float:
    return float((ood_score(ref, _metadata_summaries(meta, x)) > ref["threshold"]).mean())


def test_spectral_tail_is_the_noise_floor():
    rng = np.random.default_rng(0)
    for sigma in (0.01, 0.1):
        # white noise of variance sigma^2 has S(k) = sigma^2 / N^2 per mode (S summed over modes = variance)
        img = sigma * rng.normal(size=(64, 64))
        assert spectral_tail(img, 32.0) == pytest.approx(np.log(sigma**2 / 64**2), abs=0.1)
    smooth = np.cos(2 * np.pi * np.arange(64) / 64)[None, :] * np.ones((64, 1))
    assert spectral_tail(smooth, 32.0) < np.log(1e-20)  # one low-k mode: nothing in the tail


def test_a_clean_models_reference_flags_noisy_images(ens):
    meta = _metadata(None)
    ref = build_ood_reference(meta, ens / "train.h5")
    assert ref["selection"]["measurement"] is None
    assert len(ref["summary_names"]) == len(summary_names(["rho1", "rho2", "curlJ"], [2.0]))
    assert sum(n.startswith("logS_tail_") for n in ref["summary_names"]) == 3
    assert _flagged(ref, meta, _test_inputs(ens, meta, None)) <= 0.05
    assert _flagged(ref, meta, _test_inputs(ens, meta, "noise(0.05)")) >= 0.95


def test_a_noise_trained_models_reference_accepts_its_family_and_flags_noiseless_images(ens):
    meta = _metadata(FAMILY)
    ref = build_ood_reference(meta, ens / "train.h5")
    assert ref["selection"]["measurement"] == str(MeasurementModel.parse(FAMILY))
    # members of the family, with a noise stream the reference never drew: about the held-out false-alarm rate
    for member in ("noise(0.05)", "noise(0.15)", FAMILY):
        assert _flagged(ref, meta, _test_inputs(ens, meta, member)) <= 0.08, member
    # perfect simulator output is what the clean reference accepts and this one refuses
    assert _flagged(ref, meta, _test_inputs(ens, meta, None)) >= 0.95


def test_a_channel_subset_is_scored_on_the_measured_channels(ens, tmp_path):
    meta = _metadata("noise(0.05)+channels(curlJ)")
    assert network_channels(meta) == ["curlJ"]
    ref = build_ood_reference(meta, ens / "train.h5")
    assert ref["summary_names"] == ["mean_curlJ@t=2", "std_curlJ@t=2", "logS_k1_curlJ@t=2", "logS_k2_curlJ@t=2",
                            "logS_k3_curlJ@t=2", "logS_tail_curlJ@t=2"]
    x = _test_inputs(ens, meta, "noise(0.05)+channels(curlJ)")
    assert x.shape[-1] == 1 and _flagged(ref, meta, x) <= 0.08
    # a cached reference of another measurement is stale for this model
    save_ood_reference(ref, tmp_path)
    assert load_ood_reference(tmp_path, meta) is not None
    assert load_ood_reference(tmp_path, _metadata("noise(0.1)+channels(curlJ)")) is None
