"""The instrument as an input of the network (issues 20/21: a family calibrated at each of its members).

The measurement draws of a family are recorded and replayed as the fixed
instrument each image went through (``MeasurementModel.realised``), turned
into a vector (``describe``) that the network takes beside the image. Tested:
the recording changes no image and names the instrument that made it; the
vectors map each range onto [−1, 1] as documented; and a network trained on
a Gaussian toy whose noise level spans a factor 40 reads the analytic
posterior width at both ends of the family from one model.
"""

from __future__ import annotations

import json

from pathlib import Path

import numpy as np
import pytest

from tdglnre.errors import ConfigError
from tdglnre.instrument.model import MeasurementModel

CH = ("rho1", "rho2", "curlJ", "B")
CORNERS = ("channels(B) | height_px(2)+blur(1.5)+noise(0.15)+channels(B) | "
           "height_px(0..2)+blur(0..1.5)+noise(log:0.001..0.15)+channels(B)")


def _images(n: int = 6, size: int = 16) -> np.ndarray:
    return np.random.default_rng(5).standard_normal((n, 1, size, size, len(CH)))


def test_recording_the_draws_changes_no_image_and_names_the_instrument_that_made_it():
    fam = MeasurementModel.parse("blur(0.5..2)+gain(0.5..2)")  # no noise: the realised instrument replays exactly
    x = _images()
    realised: list = []
    y = fam.apply_samples(x, 7, 3, range(6), channels=CH, realised=realised)
    assert np.array_equal(y, fam.apply_samples(x, 7, 3, range(6), channels=CH))
    assert len(realised) == 6 and len({str(r) for r in realised}) == 6
    for r, xr, yr in zip(realised, x, y):
        assert not r.has_ranges and fam.covers(r)
        assert np.allclose(r.apply(xr, None, CH), yr, rtol=0, atol=1e-12)


def test_a_mixture_records_its_choice_then_the_draws_of_the_alternative():
    fam = MeasurementModel.parse(CORNERS)
    realised: list = []
    fam.apply_samples(_images(40), 1, 0, range(40), channels=CH, realised=realised)
    kinds = {0 if str(r) == "channels(B)" else 1 if not fam.alternatives[2].covers(r) or
             str(r) == str(fam.alternatives[1]) else 2 for r in realised}
    assert kinds == {0, 1, 2}  # every alternative drawn among 40
    d = np.stack([fam.describe(r) for r in realised])
    assert d.shape == (40, 3 + 3)
    assert np.array_equal(d[:, :3].sum(axis=1), np.ones(40))  # one-hot of the alternative
    assert np.all(np.abs(d) <= 1.0)


def test_the_vector_maps_each_range_onto_minus_one_to_one():
    fam = MeasurementModel.parse("height_px(0..2)+blur(0..1.5)+noise(log:0.001..0.1)+channels(B)")
    assert fam.instrument_size == 3
    mid = fam.describe("height_px(1)+blur(0.75)+noise(0.01)+channels(B)")  # linear, linear, geometric midpoints
    assert np.allclose(mid, 0.0, atol=1e-6)
    low = fam.describe("noise(0.001)+channels(B)")  # absent transforms count at their neutral value (0: the low end)
    assert np.allclose(low, [-1.0, -1.0, -1.0])
    high = fam.describe("height_px(2)+blur(1.5)+noise(0.1)+channels(B)")
    assert np.allclose(high, [1.0, 1.0, 1.0])


def test_only_fixed_members_of_the_family_have_a_vector():
    fam = MeasurementModel.parse(CORNERS)
    with pytest.raises(ConfigError, match="is a family"):
        fam.describe("height_px(0..1)+blur(1)+noise(0.01)+channels(B)")
    with pytest.raises(ConfigError, match="not a member"):
        fam.describe("height_px(3)+blur(1)+noise(0.01)+channels(B)")  # height beyond the range
    assert fam.describe("channels(B)")[0] == 1.0
    # the far corner is an alternative of its own: the first alternative that covers it is the one named
    assert np.array_equal(fam.describe("height_px(2)+blur(1.5)+noise(0.15)+channels(B)")[:3], [0, 1, 0])


# ------------------------------------------------------------------ a trained network
pytest.importorskip("tensorflow")

from tdglnre.nre.fit.training import train_source  # noqa: E402
from tdglnre.nre.infer.model_io import InstrumentInputs, ModelMismatchError, load_estimator  # noqa: E402
from tdglnre.nre.pipeline.selection import Selection, measure_inputs  # noqa: E402
from tdglnre.nre.pipeline.sources import gaussian_toy  # noqa: E402
from tdglnre.nre.settings import NetworkConfig, TrainSettingsError  # noqa: E402

GRID = np.linspace(-1.0, 1.0, 401)
FAMILY = "noise(log:0.1..4)"


@pytest.fixture(scope="module")
def conditioned(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("instrument") / "toy"
    net = NetworkConfig(filters=(8, 16), embed_dim=16, theta_units=(32, 32), head_units=(32, 32),
                        instrument_input=True)
    train_source(gaussian_toy(4000, seed=2), out, epochs=12, batch_size=64, network=net, quiet=True, seed=0,
                 measurement=FAMILY, augment=False)
    return out


def _moments(log_r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.exp(log_r - log_r.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    mu = p @ GRID
    return mu, np.sqrt(np.maximum(p @ GRID**2 - mu**2, 0.0))


@pytest.mark.parametrize("level", [0.1, 4.0])
def test_one_conditioned_network_reads_the_exact_posterior_width_at_both_ends_of_the_family(conditioned, level):
    est = load_estimator(conditioned)
    assert est.instrument_size == 1
    test = gaussian_toy(60, seed=321)
    member = est.resolve_measurement(f"noise({level})")
    x, d = measure_inputs(member, est.preprocess(test.x(0, 60)), Selection.from_dict(est.metadata["input"]),
                          99, 0, np.arange(60), describe=est.measurement)
    assert np.allclose(d, est.measurement.describe(member))
    mu, sd = _moments(est.log_ratio_from_embedding(est.encode(InstrumentInputs(x, d)), GRID))
    # exact: pixels N(θ, s²) with s² = 1 + (level·std of the clean image)², 64 of them; flat prior on [−1, 1]
    pix = x.reshape(60, -1)
    mu_x, sd_x = _moments(-0.5 * (GRID[None] - pix.mean(axis=1)[:, None]) ** 2 / (pix.var(axis=1)[:, None] / 64))
    ratio = float(np.median(sd / sd_x))
    assert 0.7 < ratio < 1.45, f"posterior width / exact at noise({level}): {ratio:.2f}"
    assert np.mean(np.abs(mu - mu_x)) < 0.5 * np.median(sd_x)


def test_an_observation_without_its_instrument_is_refused_and_a_declared_one_is_used(conditioned):
    est = load_estimator(conditioned)
    x = est.preprocess(gaussian_toy(3, seed=4).x(0, 3))
    with pytest.raises(ModelMismatchError, match="declare the observation's instrument"):
        est.encode(x)
    with pytest.raises(ConfigError, match="is a family"):
        est.set_instrument(FAMILY)
    d = est.set_instrument("noise(0.2)")
    h = est.encode(x)
    assert np.array_equal(h[:, -1], np.full(3, d[0]))
    assert np.array_equal(h, est.encode(InstrumentInputs(x, np.repeat(d[None], 3, axis=0))))


def test_the_posterior_of_an_array_needs_its_declared_instrument_and_records_it(conditioned):
    from tdglnre.workflows.posterior import posterior

    x = gaussian_toy(1, seed=4).x(0, 1)[0, -1]
    with pytest.raises(ConfigError, match="declare the observation's instrument with fixed values"):
        posterior(conditioned, x, grid_points=64)
    res = posterior(conditioned, x, grid_points=64, measurement="noise(0.2)")
    fam = MeasurementModel.parse(FAMILY)
    assert res.source["instrument"] == pytest.approx(list(fam.describe("noise(0.2)")))
    assert res.source["measurement_match"] == "covered"


def test_an_ensemble_passes_the_instrument_to_every_member(conditioned):
    from tdglnre.nre.infer.model_io import EnsembleEstimator

    ens = EnsembleEstimator([load_estimator(conditioned), load_estimator(conditioned)])
    x = ens.members[0].preprocess(gaussian_toy(2, seed=6).x(0, 2))
    with pytest.raises(ModelMismatchError, match="declare the observation's instrument"):
        ens.encode(x)
    d = ens.set_instrument("noise(1.0)")
    assert all(np.array_equal(m.instrument, d) for m in ens.members)
    ens.instrument = None
    assert all(m.instrument is None for m in ens.members)
    ens.instrument = d  # as the clean-observation path sets it
    h = ens.encode(x)
    assert h.shape == (2, 2 * ens.members[0].embedding_dim)
    assert np.array_equal(h[:, :h.shape[1] // 2], h[:, h.shape[1] // 2:])


def test_a_temperature_by_instrument_divides_each_row_by_its_own_tau(conditioned, tmp_path):
    import shutil

    from tdglnre.nre.infer.model_io import ModelLoadError

    plain = load_estimator(conditioned)
    model = tmp_path / "tempered"
    shutil.copytree(conditioned, model)
    meta = json.loads((model / "metadata.json").read_text())
    meta["tempering"] = {"temperature": 0.8, "instrument_weights": [0.5]}
    (model / "metadata.json").write_text(json.dumps(meta))
    est = load_estimator(model)
    x = est.preprocess(gaussian_toy(3, seed=7).x(0, 3))
    d = np.array([[-1.0], [0.0], [1.0]], dtype=np.float32)
    h = est.encode(InstrumentInputs(x, d))
    tau = 0.8 * np.exp(0.5 * d[:, 0])
    np.testing.assert_allclose(est.log_ratio_from_embedding(h, GRID) * tau[:, None],
                               plain.log_ratio_from_embedding(h, GRID), rtol=1e-6)
    th = np.array([[0.1], [0.2], [0.3]])
    np.testing.assert_allclose(est.log_ratio(InstrumentInputs(x, d), th) * tau,
                               plain.log_ratio(InstrumentInputs(x, d), th), rtol=1e-6)
    assert est.temperature_record() == {"temperature": 0.8, "instrument_weights": [0.5]}
    meta["tempering"]["instrument_weights"] = [0.5, 0.1]  # not the model's instrument vector
    (model / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ModelLoadError, match="instrument_weights must be 1 finite"):
        load_estimator(model)


def test_the_instrument_input_needs_a_family(tmp_path):
    net = NetworkConfig(filters=(4,), embed_dim=4, theta_units=(8,), head_units=(8,), instrument_input=True)
    for measurement in (None, "noise(0.1)"):
        with pytest.raises(TrainSettingsError, match="needs a measurement family"):
            train_source(gaussian_toy(64, seed=0), tmp_path / "m", epochs=1, network=net, quiet=True,
                         measurement=measurement)
    assert not (tmp_path / "m").exists()
