"""Issue 13: measurement models in training, posterior and calibration; experimental image input;
nuisance parameters marginalised; the exact Hessian with pinning disorder (docs/observations.md)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import tdglnre.workflows.posterior as P
from tdglnre.errors import ConfigError
from tdglnre.instrument.model import MeasurementModel
from tdglnre.nre.pipeline.data import BatchStream, resolve_selection, scan_source, split_indices
from tdglnre.nre.pipeline.sources import ArraySource

_filter = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
TINY = ["N=16", "L=8", "snapshot_times=[0.2]", "prior.n_v=int_uniform(1,3)"]
NOISY = "blur(1.0)+noise(0.05)"


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg, msg
    return msg


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A 96-sample N = 16 ensemble, a clean rho1-only model and two identical runs with a measurement."""
    import tdglnre as tg

    d = tmp_path_factory.mktemp("observations")
    tg.generate("quick", 96, 0, d / "train.h5", overrides=TINY)
    tg.generate("quick", 8, 1, d / "test.h5", overrides=TINY)
    common = dict(epochs=2, batch_size=32, quiet=True)
    tg.train(d / "train.h5", d / "clean", channels=["rho1"], **common)
    tg.train(d / "train.h5", d / "noisy_a", measurement=NOISY, seed=5, **common)
    tg.train(d / "train.h5", d / "noisy_b", measurement=NOISY, seed=5, **common)
    return d


# ----------------------------------------------------------------------------- training with a measurement
def _toy_stream(measurement, *, fresh_noise=True, seed=3):
    rng = np.random.default_rng(0)
    n, N = 12, 8
    src = ArraySource(rng.uniform(size=(n, 1)), rng.normal(size=(n, 1, N, N, 2)).astype(np.float32),
                      ["a"], [0.0], [1.0], channels=["rho1", "curlJ"])
    sel = resolve_selection(None, None, src.channels, src.snapshot_times)
    tr, _ = split_indices(n, 0.0, 0)
    scan = scan_source(src, sel, tr)
    return BatchStream(src, scan, sel, tr, 4, 2, shuffle=True, seed=seed, augment=False,
                       measurement=measurement, fresh_noise=fresh_noise)


def _epoch(stream, e):
    stream.epoch = e
    return {int(i): x for (xb, th), _ in stream() for i, x in zip(np.round(th[:, 0, 0] * 1e6), xb)}


def test_augmentation_draws_fresh_noise_every_epoch_reproducibly():
    m = MeasurementModel.parse("noise(0.1)+channels(curlJ)")
    s = _toy_stream(m)
    assert s.input_shape == (8, 8, 1)
    e0, e0_again, e1 = _epoch(s, 0), _epoch(_toy_stream(m), 0), _epoch(s, 1)
    assert all(np.array_equal(e0[k], e0_again[k]) for k in e0)  # same (seed, epoch, sample): same noise
    assert all(not np.allclose(e0[k], e1[k]) for k in e0)  # next epoch: fresh noise
    # validation streams keep one noise draw (epoch 0) so that the validation loss is comparable across epochs
    v = _toy_stream(m, fresh_noise=False)
    v0, v1 = _epoch(v, 0), _epoch(v, 4)
    assert all(np.array_equal(v0[k], v1[k]) for k in v0)
    # the noise is relative to the channel's spread over the image: σ = 0.1·std
    clean = _toy_stream(MeasurementModel.parse("channels(curlJ)"))
    c0 = _epoch(clean, 0)
    resid = np.concatenate([(e0[k] - c0[k]).ravel() / c0[k].std() for k in e0])
    assert abs(resid.std() - 0.1) < 0.01 and abs(resid.mean()) < 0.01


@_filter
def test_training_with_a_measurement_is_reproducible_and_recorded(tiny):
    a = json.loads((tiny / "noisy_a" / "metadata.json").read_text())
    b = json.loads((tiny / "noisy_b" / "metadata.json").read_text())
    assert a["measurement"]["text"] == NOISY and a["training"]["measurement"] == NOISY
    assert MeasurementModel.from_dict(a["measurement"]["model"]) == MeasurementModel.parse(NOISY)
    hist_a = json.loads((tiny / "noisy_a" / "history.json").read_text())
    hist_b = json.loads((tiny / "noisy_b" / "history.json").read_text())
    assert hist_a["loss"] == hist_b["loss"] and hist_a["val_loss"] == hist_b["val_loss"]
    assert a["input"]["standardization"] == b["input"]["standardization"]
    clean = json.loads((tiny / "clean" / "metadata.json").read_text())
    assert clean["measurement"] is None and clean["input"]["shape"] == [16, 16, 1]


@_filter
def test_resume_refuses_a_different_measurement(tiny):
    import tdglnre as tg
    from tdglnre.nre.settings import TrainingError

    with pytest.raises(TrainingError) as exc:
        tg.train(tiny / "train.h5", tiny / "noisy_a", resume=True, measurement="noise(0.15)", epochs=3, quiet=True)
    assert "noise(0.15)" in _one_line(exc) and NOISY in str(exc.value)


def test_binning_and_channel_subsets_set_the_network_input_shape():
    s = _toy_stream(MeasurementModel.parse("bin(4)+channels(rho1)"))
    (xb, _), _ = next(iter(s()))
    assert s.input_shape == (4, 4, 1) and xb.shape[1:] == (4, 4, 1)


# ----------------------------------------------------------------------------- posterior with a measurement
@_filter
def test_posterior_applies_and_checks_the_models_measurement(tiny):
    model = P.load_model(tiny / "noisy_a")
    obs = P.simulate_observation(model, eta=0.8, n_v=2, seed=3)
    res = P.posterior(model, obs, grid_points=32, ood=False)
    assert res.source["measurement"] == NOISY and res.source["noise_seed"] == 3
    # the simulate seed fixes the measurement noise: the same observation twice gives the same network input
    again = P.posterior(model, P.simulate_observation(model, eta=0.8, n_v=2, seed=3), grid_points=32, ood=False)
    assert np.array_equal(res.x, again.x)
    # a measured observation declaring another measurement is refused with one line naming both
    with pytest.raises(ConfigError) as exc:
        P.posterior(model, P.Observation(res.x, {}, measurement="noise(0.15)"), grid_points=32, ood=False)
    assert "noise(0.15)" in _one_line(exc) and NOISY in str(exc.value)
    # declaring the model's measurement: the posterior of the measured image is the one computed above
    same = P.posterior(model, P.Observation(res.x, {}, measurement=NOISY), grid_points=32, ood=False)
    assert np.array_equal(same.posterior.log_density, res.posterior.log_density)


RANGED = "blur(0.5..1.5)+noise(0.0..0.15)"


@pytest.fixture(scope="module")
def ranged(tiny):
    """A model trained on the tiny ensemble with random measurement parameters (a family of instruments)."""
    import tdglnre as tg

    tg.train(tiny / "train.h5", tiny / "ranged", measurement="blur(0.5..1.5)+noise(0..0.15)", seed=5, epochs=2,
             batch_size=32, quiet=True)
    return tiny / "ranged"


@_filter
def test_posterior_accepts_a_declared_measurement_the_models_ranges_cover(ranged):
    model = P.load_model(ranged)
    assert str(model.measurement) == RANGED and model.measurement.is_random
    obs = P.simulate_observation(model, eta=0.8, n_v=2, seed=3)
    res = P.posterior(model, obs, grid_points=32, ood=False)
    assert res.source["measurement"] == RANGED and res.source["noise_seed"] == 3
    x = res.x[None]
    # a member of the family: accepted, recorded as covered, same network input as declaring the family itself
    inside = P.posterior(model, P.Observation(x, {}, measurement="blur(1.0)+noise(0.05)", as_input=True),
                         grid_points=32, ood=False)
    assert inside.source["measurement_declared"] == "blur(1.0)+noise(0.05)"
    assert inside.source["measurement_match"] == "covered" and inside.source["measurement"] == RANGED
    same = P.posterior(model, P.Observation(x, {}, measurement=RANGED, as_input=True), grid_points=32, ood=False)
    assert same.source["measurement_match"] == "equal"
    assert np.array_equal(same.posterior.log_density, inside.posterior.log_density)
    # outside the ranges, or another composition: refused with one line naming both
    for bad in ("blur(1.0)+noise(0.2)", "noise(0.05)", "none"):
        with pytest.raises(ConfigError) as exc:
            P.posterior(model, P.Observation(x, {}, measurement=bad, as_input=True), grid_points=32, ood=False)
        msg = _one_line(exc)
        assert str(MeasurementModel.parse(bad)) in msg and RANGED in msg and "not covered" in msg


@_filter
def test_run_posterior_records_a_covered_file_declaration(ranged, tmp_path):
    model = P.load_model(ranged)
    x = P.posterior(model, P.simulate_observation(model, eta=0.8, n_v=2, seed=3), grid_points=16, ood=False).x
    np.save(tmp_path / "obs.npy", x[None])
    # an .npy without pixel size or channels is read in the training layout: (T, N, N, C) clean-layout input
    rec = P.run_posterior(ranged, tmp_path / "out", observation=tmp_path / "obs.npy", grid_points=16, ood=False,
                          measurement="blur(1.2)+noise(0.1)")
    src = json.loads((tmp_path / "out" / "posterior.json").read_text())["source"]
    assert src["measurement_match"] == "covered" and src["measurement_declared"] == "blur(1.2)+noise(0.1)"
    assert rec["source"] == src
    with pytest.raises(ConfigError) as exc:
        P.run_posterior(ranged, tmp_path / "out2", observation=tmp_path / "obs.npy", grid_points=16, ood=False,
                        measurement="blur(2.0)+noise(0.1)")
    assert "not covered" in _one_line(exc)


@_filter
def test_calibration_measures_the_test_set_with_a_fixed_seed(tiny):
    from tdglnre.workflows.calibrate import calibrate

    r1 = calibrate(tiny / "noisy_a", tiny / "test.h5", grid_points=32, n_draws=9).report
    r2 = calibrate(tiny / "noisy_a", tiny / "test.h5", grid_points=32, n_draws=9).report
    assert r1["measurement"]["text"] == NOISY and r1["measurement"]["seed"] == 0
    assert r1["measurement"]["matches_model"] and r1["mae"] == r2["mae"]
    r3 = calibrate(tiny / "noisy_a", tiny / "test.h5", grid_points=32, n_draws=9, measurement_seed=1).report
    assert r3["mae"] != r1["mae"]  # another noise draw on the same test simulations
    # a test measurement that changes the input shape does not fit the network: one line
    with pytest.raises(ConfigError) as exc:
        calibrate(tiny / "noisy_a", tiny / "test.h5", grid_points=32, measurement="bin(8)")
    assert "bin(8)" in _one_line(exc)


# ----------------------------------------------------------------------------- experimental images
def _rho1(model, seed=3):
    obs = P.simulate_observation(model, eta=0.8, n_v=2, seed=seed)
    x = obs.x if obs.x.ndim == 3 else obs.x[-1]
    return obs, np.ascontiguousarray(x[..., 0], dtype=np.float32)


@_filter
def test_tiff_npz_and_png_images_give_the_posterior_of_the_simulated_channel(tiny, tmp_path):
    from PIL import Image

    model = P.load_model(tiny / "clean")
    obs, rho1 = _rho1(model)
    ref = P.posterior(model, obs, grid_points=64, ood=False).posterior.log_density
    Image.fromarray(rho1, mode="F").save(tmp_path / "rho1.tif")
    np.savez(tmp_path / "rho1.npz", x=rho1)
    for name in ("rho1.tif", "rho1.npz"):  # float32 round trips are exact
        o = P.observation_from_file(tmp_path / name, model=model, channels="rho1")
        got = P.posterior(model, o, grid_points=64, ood=False).posterior.log_density
        assert np.array_equal(got, ref), name
        assert o.source["resampling"] == "none" and o.source["field_of_view"] == 8.0
    # 16-bit PNG written with the observation's min and max: detector counts, read back with
    # value_range=(min, max) (issue 21), the array's posterior within quantisation error
    lo, hi = float(rho1.min()), float(rho1.max())
    counts = np.round((rho1.astype(np.float64) - lo) / (hi - lo) * 65535).astype(np.uint16)
    Image.fromarray(counts).save(tmp_path / "rho1.png")
    img = P.load_image(tmp_path / "rho1.png", {"value_range": [lo, hi]})
    assert img.shape == (16, 16, 1) and np.abs(img[..., 0] - rho1).max() <= 0.5 * (hi - lo) / 65535 + 1e-6
    o = P.observation_from_file(tmp_path / "rho1.png", model=model, channels="rho1", value_range=(lo, hi))
    assert o.source["value_range"] == [lo, hi]
    got = P.posterior(model, o, grid_points=64, ood=False)
    assert np.abs(np.exp(got.posterior.log_density) - np.exp(ref)).sum() / np.exp(ref).sum() < 1e-3
    # without a mapping the counts are refused with one line naming both options
    with pytest.raises(ConfigError, match="16-bit integer counts.*`value_range`.*`value_scale`"):
        P.observation_from_file(tmp_path / "rho1.png", model=model, channels="rho1")
    # float values in instrument units: x -> a*x + b
    np.save(tmp_path / "rho1_nT.npy", (rho1.astype(np.float64) - 0.25) / 2.0)
    o = P.observation_from_file(tmp_path / "rho1_nT.npy", model=model, channels="rho1", value_scale=(2.0, 0.25))
    got = P.posterior(model, o, grid_points=64, ood=False).posterior.log_density
    assert np.allclose(np.exp(got), np.exp(ref), rtol=0, atol=1e-6 * np.exp(ref).max())


@_filter
def test_field_of_view_is_cropped_and_resampled_to_the_lattice(tiny):
    model = P.load_model(tiny / "clean")
    _, rho1 = _rho1(model)
    img = rho1[..., None].astype(np.float64)
    # twice the resolution (pixel 0.25 ξ): 2×2 block means give the lattice image back
    fine = np.repeat(np.repeat(img, 2, 0), 2, 1)
    x, rec = P.image_to_input(model, fine, pixel_size=0.25)
    assert np.allclose(x[..., 0], rho1, atol=1e-6) and rec["resampling"] == "block mean 2x2"
    # a larger field of view at the lattice's pixel size: the central L×L region is taken
    wide = np.pad(img, ((5, 5), (4, 4), (0, 0)), constant_values=-1.0)
    x, rec = P.image_to_input(model, wide, pixel_size=0.5)
    assert np.array_equal(x[..., 0], rho1) and rec["crop"] == [5, 4, 16]
    # a non-integer factor (24 pixels of L/24): linear interpolation with aligned pixel areas keeps a smooth
    # field's values at the pixel centres ((k + 1/2)/24 in, (j + 1/2)/16 out, in units of L)
    xx = (np.mgrid[0:24, 0:24][1] + 0.5) / 24.0
    smooth = (1.0 + 0.1 * np.sin(2 * np.pi * xx))[..., None]
    x, rec = P.image_to_input(model, smooth, pixel_size=8.0 / 24)
    target = 1.0 + 0.1 * np.sin(2 * np.pi * (np.arange(16) + 0.5) / 16)
    assert rec["resampling"].startswith("linear") and np.abs(x[0, :, 0] - target).max() < 5e-3
    # an image that cannot cover L×L is refused with one line naming `pixel_size`
    with pytest.raises(ConfigError) as exc:
        P.image_to_input(model, img, pixel_size=0.4)
    assert "`pixel_size`" in _one_line(exc) and "8 x 8" in str(exc.value)


@_filter
def test_missing_channels_are_refused_with_one_line(tiny, tmp_path):
    model = P.load_model(tiny / "noisy_a")  # all three channels
    img = np.ones((16, 16, 2))
    with pytest.raises(ConfigError) as exc:
        P.image_to_input(model, img, channels="rho1,rho2")
    assert "missing curlJ" in _one_line(exc)
    with pytest.raises(ConfigError) as exc:
        P.image_to_input(model, img)
    assert "`channels`" in _one_line(exc)
    # extra channels are dropped, the others reordered to the model's input order
    img3 = np.stack([np.full((16, 16), v) for v in (3.0, 1.0, 2.0, 9.0)], axis=-1)
    x, _ = P.image_to_input(model, img3, channels="curlJ,rho1,rho2,other")
    assert x[0, 0].tolist() == [1.0, 2.0, 3.0]
    # an image declared without the model's measurement is refused by the posterior
    with pytest.raises(ConfigError) as exc:
        P.posterior(model, P.Observation(x, {}, measurement="none", as_input=True), grid_points=16, ood=False)
    assert NOISY in _one_line(exc)


# ----------------------------------------------------------------------------- nuisance parameters
@_filter
def test_nuisance_parameters_are_marginalised_not_inferred(tmp_path):
    import tdglnre as tg
    from tdglnre.nre.infer.posterior import Grid

    over = TINY + ["prior.T=uniform(0,0.02)", "prior.delta=uniform(0,0.3)"]
    tg.generate("quick", 40, 0, tmp_path / "n.h5", overrides=over)
    tg.train(tmp_path / "n.h5", tmp_path / "m", epochs=1, batch_size=16, quiet=True)
    model = P.load_model(tmp_path / "m")
    assert model.parameter_names == ["eta", "n_v"] and model.nuisance == ["T", "delta"]
    assert model.training_prior.inferred == ("eta", "n_v", "T", "delta")
    assert Grid.from_prior(model.prior, 8, model.parameter_names).names == ("eta", "n_v")
    obs = P.simulate_observation(model, eta=0.8, n_v=2, seed=4)
    # the nuisance values are drawn from the training prior (seeded) and recorded, not inferred
    sim = obs.source["simulate"]
    assert 0 <= sim["T"] <= 0.02 and 0 <= sim["delta"] <= 0.3
    assert P.simulate_observation(model, eta=0.8, n_v=2, seed=4).source == obs.source
    res = P.posterior(model, obs, grid_points=16, ood=False)
    assert set(res.posterior.summaries()) == {"eta", "n_v"}


def test_calibration_under_an_unmodelled_nuisance_still_measures_coverage(tmp_path):
    """A clean-trained model on a test set with thermal noise and pinning: the inferred parameters follow
    the model's prior, so coverage and SBC are computed (a misspecification test) and the report names
    the nuisance; a test set whose *inferred* prior differs still gets accuracy figures only."""
    import tdglnre as tg

    tg.generate("quick", 40, 0, tmp_path / "clean.h5", overrides=TINY)
    tg.generate("quick", 12, 1, tmp_path / "nuis.h5", overrides=TINY + ["prior.T=uniform(0,0.02)",
                                                                      "prior.delta=uniform(0,0.3)"])
    tg.generate("quick", 12, 2, tmp_path / "narrow.h5", overrides=TINY + ["prior.eta=uniform(0.5,0.6)"])
    tg.train(tmp_path / "clean.h5", tmp_path / "m", epochs=1, batch_size=16, quiet=True)
    rep = tg.calibrate(tmp_path / "m", tmp_path / "nuis.h5", grid_points=16, n_draws=9).report
    assert rep["prior_mismatch"] is None and rep["nuisance_mismatch"]["parameters"] == ["T", "delta"]
    assert len(rep["expected_coverage"]["levels"]) == 19 and len(rep["sbc_ranks"]["eta"]) == 12
    rep = tg.calibrate(tmp_path / "m", tmp_path / "narrow.h5", grid_points=16, n_draws=9).report
    assert rep["nuisance_mismatch"] is None and rep["prior_mismatch"]["parameters"] == ["eta"]
    assert "expected_coverage" not in rep


# ----------------------------------------------------------------------------- exact Hessian with disorder
def test_exact_hessian_vector_product_includes_pinning_disorder():
    from tdglnre.analysis.hessian.operator import Hessian
    from tdglnre.physics.config import SimConfig
    from tdglnre.physics.solver import EnergyModel

    cfg = SimConfig(N=8, L=5.0, snapshot_times=(0.2,))
    rng = np.random.default_rng(0)
    z = 0.5 * rng.normal(size=(4, 8, 8))
    v = rng.normal(size=4 * 64)
    model = EnergyModel(cfg, eta=0.5, n_v=1, nu=0.0, delta=0.4, seed=3, index=2)
    exact = Hessian(model, z, method="exact").matvec(v)
    fd = Hessian(model, z, method="richardson").matvec(v)  # finite difference of the gradient
    scale = np.abs(fd).max()
    assert np.abs(exact - fd).max() < 1e-9 * scale
    clean = Hessian(EnergyModel(cfg, eta=0.5, n_v=1, nu=0.0), z, method="exact").matvec(v)
    assert np.abs(clean - fd).max() > 1e-3 * scale  # the disorder term is not negligible here


def test_hessian_pipeline_passes_the_samples_disorder_landscape():
    from tdglnre.analysis.hessian import FromPreset, HessianOptions, hessian

    src = FromPreset("quick", ["N=8", "L=4", "snapshot_times=[0.1]", "delta=0.3"], seed=2, index=1)
    sample = src.resolve()
    assert (sample.seed, sample.index) == (2, 1) and sample.params["delta"] == 0.3
    res = hessian(src, HessianOptions(n_eig=4, hvp_method="exact"))
    # disorder breaks translations but not the global phase: the exact zero mode survives
    assert abs(res.eigenvalues[res.zero_mode_index]) < 1e-8 * res.lambda_max_est
    assert res.zero_mode_overlap > 1 - 1e-9


MIXED = "noise(0.0..0.1) | blur(0.5..1.5)+noise(0.0..0.1)"


@_filter
def test_a_model_trained_on_alternative_instruments_accepts_members_of_each(tiny):
    """A mixture survives training metadata; posterior accepts a member of either alternative, refuses others."""
    import tdglnre as tg

    tg.train(tiny / "train.h5", tiny / "mixed", measurement=MIXED, seed=5, epochs=1, batch_size=32, quiet=True)
    model = P.load_model(tiny / "mixed")
    assert str(model.measurement) == MIXED and model.measurement.is_random
    x = P.posterior(model, P.simulate_observation(model, eta=0.8, n_v=2, seed=3), grid_points=16, ood=False).x[None]
    dens = {}
    for member in ("noise(0.05)", "blur(1.0)+noise(0.05)", "blur(1.0)"):
        res = P.posterior(model, P.Observation(x, {}, measurement=member, as_input=True), grid_points=16, ood=False)
        assert res.source["measurement_match"] == "covered" and res.source["measurement"] == MIXED
        dens[member] = res.posterior.log_density
    # the declaration only checks membership: the network input, hence the posterior, is the same
    assert np.array_equal(dens["noise(0.05)"], dens["blur(1.0)+noise(0.05)"])
    for bad in ("blur(1.0)+gain(2)", "noise(0.2)", "blur(2.0)+noise(0.05)"):
        with pytest.raises(ConfigError) as exc:
            P.posterior(model, P.Observation(x, {}, measurement=bad, as_input=True), grid_points=16, ood=False)
        assert "not covered" in _one_line(exc) and MIXED in _one_line(exc)


@_filter
def test_a_presets_instrument_is_recorded_by_generate_and_applied_by_train(tmp_path):
    import tdglnre as tg
    from tdglnre.io.ensemble import Ensemble

    p = tmp_path / "instrument.toml"
    p.write_text('measurement = "blur(1.0)+noise(0..0.1)"\n[config]\nN = 16\nL = 8.0\nsnapshot_times = [0.2]\n'
                 'dtype = "float32"\n[prior]\neta = "uniform(0, 1.5)"\nn_v = "int_uniform(1, 3)"\n')
    tg.generate(str(p), 48, 0, tmp_path / "train.h5")
    with Ensemble(tmp_path / "train.h5") as ens:
        assert ens.summary()["measurement"] == "blur(1.0)+noise(0.0..0.1)"
    common = dict(epochs=1, batch_size=16, quiet=True)
    tg.train(tmp_path / "train.h5", tmp_path / "declared", **common)
    assert str(P.load_model(tmp_path / "declared").measurement) == "blur(1.0)+noise(0.0..0.1)"
    tg.train(tmp_path / "train.h5", tmp_path / "perfect", measurement="none", **common)
    assert P.load_model(tmp_path / "perfect").measurement.is_identity
    # the simulations themselves stay clean: same data as the preset without the instrument
    p2 = tmp_path / "plain.toml"
    p2.write_text("\n".join(p.read_text().splitlines()[1:]) + "\n")
    tg.generate(str(p2), 48, 0, tmp_path / "plain.h5")
    with Ensemble(tmp_path / "train.h5") as a, Ensemble(tmp_path / "plain.h5") as b:
        assert np.array_equal(a.x(0, 48), b.x(0, 48)) and b.summary()["measurement"] is None


@_filter
def test_a_blur_in_coherence_lengths_is_resolved_on_the_models_lattice(tiny):
    """TINY: L = 8, N = 16, h = 0.5 xi: blur_xi(0.5) is blur(1.0) for training, posterior and calibration."""
    import tdglnre as tg
    from tdglnre.workflows.calibrate import calibrate

    tg.train(tiny / "train.h5", tiny / "xi", measurement="blur_xi(0.5)+noise(0.05)", seed=5, epochs=1,
             batch_size=32, quiet=True)
    model = P.load_model(tiny / "xi")
    assert str(model.measurement) == NOISY  # "blur(1.0)+noise(0.05)", what the network saw
    x = P.posterior(model, P.simulate_observation(model, eta=0.8, n_v=2, seed=3), grid_points=16, ood=False).x[None]
    res = P.posterior(model, P.Observation(x, {}, measurement="blur_xi(0.5)+noise(0.05)", as_input=True),
                      grid_points=16, ood=False)
    assert res.source["measurement_match"] == "equal"
    a = calibrate(model, tiny / "test.h5", grid_points=16, measurement="blur_xi(0.5)")
    b = calibrate(model, tiny / "test.h5", grid_points=16, measurement="blur(1.0)")
    assert a.report["mae"] == b.report["mae"]
