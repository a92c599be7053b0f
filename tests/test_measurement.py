"""The measurement forward model (tdglnre/instrument/model.py, docs/observations.md).

Each transform against a direct computation, the composition's shapes and
channel names, text/dict round trips, seeded reproducibility and one-line
errors.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tdglnre.errors import ConfigError
from tdglnre.instrument.model import MeasurementModel, measurement_rng, psf_kernel
from tdglnre.physics.observables import CHANNELS


def _images(S: int = 4, N: int = 32, seed: int = 0) -> np.ndarray:
    """Smooth-ish positive densities and a signed third channel, (S, N, N, 3) float64."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:N, 0:N] * (2 * np.pi / N)
    out = np.empty((S, N, N, 3))
    for s in range(S):
        a = rng.uniform(0.5, 1.5, 3)
        out[s, :, :, 0] = 1.0 + 0.5 * a[0] * np.sin(x + a[1]) * np.cos(2 * y)
        out[s, :, :, 1] = 0.3 + 0.2 * np.cos(3 * x) ** 2
        out[s, :, :, 2] = a[2] * np.sin(x) * np.sin(y) + 0.1 * rng.standard_normal((N, N))
    return out


# ------------------------------------------------------------------ each transform
def test_gaussian_noise_has_the_stated_sigma_relative_to_each_channel_spread_and_zero_mean():
    x = _images(S=8, N=64)
    sigma = 0.05
    y = MeasurementModel.parse(f"noise({sigma})").apply(x, np.random.default_rng(3))
    resid = y - x
    spread = x.std(axis=(1, 2))  # (S, C)
    n = 64 * 64
    z = resid / (sigma * spread[:, None, None, :])  # standard normal per pixel if right
    for s in range(8):
        for c in range(3):
            v = z[s, :, :, c]
            assert abs(v.mean()) < 5.0 / math.sqrt(n)
            assert abs(v.var() - 1.0) < 5.0 * math.sqrt(2.0 / n)
    # σ = 0 is the identity
    assert np.array_equal(MeasurementModel.parse("noise(0)").apply(x, np.random.default_rng(0)), x)


def test_poisson_noise_is_unbiased_with_the_shot_noise_variance():
    # constant image c > 0 at n counts per pixel: x' = c·Poisson(n)/n, mean c, variance c²/n
    c, counts, N = 2.5, 40.0, 128
    x = np.full((1, N, N, 3), c)
    y = MeasurementModel.parse(f"poisson({counts})").apply(x, np.random.default_rng(4))
    n = N * N
    for ch in range(3):
        v = y[0, :, :, ch]
        assert abs(v.mean() - c) < 5.0 * c / math.sqrt(counts * n)
        assert abs(v.var() / (c * c / counts) - 1.0) < 5.0 * math.sqrt(2.0 / n)
        # values are multiples of one count
        k = v * counts / c
        assert np.allclose(k, np.round(k))
    # a signed channel is shifted by its minimum, so the output keeps the input mean (unbiased)
    xs = _images(S=1, N=N)
    ys = np.mean([MeasurementModel.parse("poisson(200)").apply(xs, np.random.default_rng(k))[..., 2].mean()
                  for k in range(20)])
    assert ys == pytest.approx(xs[..., 2].mean(), abs=0.01)


def test_blur_of_a_delta_is_the_kernel_a_normalised_periodic_gaussian():
    N, w = 32, 1.5
    delta = np.zeros((N, N, 3))
    delta[0, 0, :] = 1.0
    y = MeasurementModel.parse(f"blur({w})").apply(delta)
    K = psf_kernel(N, w)
    for c in range(3):
        np.testing.assert_allclose(y[:, :, c], K, atol=1e-15)
    # direct computation: the sampled Gaussian of std w, summed over periodic images
    d = np.minimum(np.arange(N), N - np.arange(N))
    g1 = sum(np.exp(-((d + m * N) ** 2) / (2 * w * w)) for m in (-1, 0, 1))
    direct = np.outer(g1, g1) / (2 * np.pi * w * w)
    np.testing.assert_allclose(K, direct, atol=1e-4)
    assert K.sum() == pytest.approx(1.0, abs=1e-12)
    # a delta elsewhere gives the kernel translated (periodic, shift-invariant)
    moved = np.roll(np.roll(delta, 5, axis=0), -3, axis=1)
    np.testing.assert_allclose(MeasurementModel.parse(f"blur({w})").apply(moved)[..., 0],
                               np.roll(np.roll(K, 5, axis=0), -3, axis=1), atol=1e-15)


def test_binning_averages_blocks_and_conserves_the_mean():
    x = _images(S=3, N=32)
    y = MeasurementModel.parse("bin(8)").apply(x)
    assert y.shape == (3, 8, 8, 3)
    np.testing.assert_allclose(y.mean(axis=(1, 2)), x.mean(axis=(1, 2)), rtol=1e-13)
    np.testing.assert_allclose(y[1, 2, 5], x[1, 8:12, 20:24].mean(axis=(0, 1)), rtol=1e-13)
    assert np.array_equal(MeasurementModel.parse("bin(32)").apply(x), x)


def test_gain_offset_and_channel_subset_are_the_direct_maps():
    x = _images(S=2, N=16)
    y = MeasurementModel.parse("gain(1.5)+offset(-0.25)").apply(x)
    np.testing.assert_allclose(y, 1.5 * x - 0.25, rtol=1e-15)
    sub = MeasurementModel.parse("channels(curlJ, rho1)")
    np.testing.assert_array_equal(sub.apply(x), x[..., [2, 0]])
    assert sub.output_channels() == ("curlJ", "rho1")


def test_blur_and_binning_keep_the_mean_and_blur_lowers_the_spread():
    x = _images(S=2, N=32)
    y = MeasurementModel.parse("blur(2.0)+bin(16)").apply(x)
    np.testing.assert_allclose(y.mean(axis=(1, 2)), x.mean(axis=(1, 2)), rtol=1e-12)
    assert (y.std(axis=(1, 2)) < x.std(axis=(1, 2))).all()


# ------------------------------------------------------------------ composition and description
def test_output_shape_and_channels_of_a_composition():
    m = MeasurementModel.parse("blur(1.0)+noise(0.05)+bin(16)+channels(rho1)")
    assert m.output_shape(64) == (16, 16, 1) and m.output_channels() == ("rho1",)
    x = _images(S=2, N=64).astype(np.float32)
    y = m.apply(x, np.random.default_rng(0))
    assert y.shape == (2, 16, 16, 1) and y.dtype == np.float32
    assert MeasurementModel.parse("none").output_shape(64, CHANNELS) == (64, 64, 3)
    assert MeasurementModel.parse("").is_identity and not m.is_identity and m.is_random
    # the order matters: binning first then blurring in the coarse pixels is another instrument
    a = MeasurementModel.parse("blur(2.0)+bin(16)").apply(x)
    b = MeasurementModel.parse("bin(16)+blur(2.0)").apply(x)
    assert not np.allclose(a, b)


@pytest.mark.parametrize("text", ["blur(1.0)+noise(0.05)+bin(16)+channels(rho1)",
                                  "poisson(100.0)+gain(2.0)+offset(0.1)+channels(rho1, curlJ)",
                                  "noise(1e-05)", "none"])
def test_text_and_dict_forms_round_trip(text):
    m = MeasurementModel.parse(text)
    assert str(m) == text
    assert MeasurementModel.parse(str(m)) == m
    assert MeasurementModel.from_dict(m.to_dict()) == m
    assert MeasurementModel.from_json(m.to_json()) == m
    assert MeasurementModel.parse(m.to_dict()["transforms"]) == m


def test_toml_like_tables_and_shorthands_parse():
    import tomllib

    doc = tomllib.loads('measurement = [{kind = "blur", width = 1.0}, {noise = 0.05}, '
                        '{kind = "channels", names = ["rho1"]}]')
    m = MeasurementModel.parse(doc["measurement"])
    assert m == MeasurementModel.parse("blur(1.0)+noise(0.05)+channels(rho1)")
    assert MeasurementModel.parse({"transforms": "bin(8)"}) == MeasurementModel.parse("bin(8)")
    assert MeasurementModel.parse({"kind": "gain", "factor": 2}) == MeasurementModel.parse("gain(2)")


@pytest.mark.parametrize("spec, message", [
    ("foo(1)", "unknown measurement transform 'foo'"),
    ("blur(-1)", "blur: width must be >= 0"),
    ("noise(abc)", "noise: sigma must be a number"),
    ("poisson(0)", "poisson: counts must be > 0"),
    ("bin(2.5)", "bin: size must be an integer"),
    ("noise(0.1, 2)", "noise takes 1 argument"),
    ("blur(1)++noise(1)", "empty term"),
    ("blur(1", "unbalanced parentheses"),
    ("blur", "not of the form name(arguments)"),
    ("channels()", "name at least one channel"),
    ("channels(rho1, rho1)", "names repeat"),
    ([{"kind": "blur", "sigma": 1}], "blur: unknown argument"),
    (3.0, "measurement must be text"),
])
def test_bad_specs_are_one_line_config_errors(spec, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")) as exc:
        MeasurementModel.parse(spec)
    assert "\n" not in str(exc.value)


def test_impossible_application_is_refused():
    x = _images(S=1, N=32)
    with pytest.raises(ConfigError, match="size must divide 32"):
        MeasurementModel.parse("bin(7)").apply(x)
    with pytest.raises(ConfigError, match=r"no channel\(s\) \['rho3'\]"):
        MeasurementModel.parse("channels(rho3)").output_channels()
    with pytest.raises(ConfigError, match="needs a numpy Generator"):
        MeasurementModel.parse("noise(0.1)").apply(x)
    with pytest.raises(ConfigError, match="3 channels but 2 names"):
        MeasurementModel.parse("blur(1)").apply(x, channels=("rho1", "rho2"))


# ------------------------------------------------------------------ reproducibility
def test_seeded_measurement_is_reproducible_and_independent_of_batching():
    m = MeasurementModel.parse("blur(0.8)+noise(0.1)+poisson(50)")
    x = _images(S=6, N=16)
    a = m.apply_samples(x, seed=5, epoch=2, indices=range(10, 16))
    b = np.concatenate([m.apply_samples(x[:2], 5, 2, [10, 11]), m.apply_samples(x[2:], 5, 2, range(12, 16))])
    assert np.array_equal(a, b)
    # one sample alone, with the generator derived from (seed, epoch, index)
    assert np.array_equal(m.apply(x[3], measurement_rng(5, 2, 13)), a[3])
    # a new epoch draws fresh noise; the same epoch again repeats it
    c = m.apply_samples(x, 5, 3, range(10, 16))
    assert not np.allclose(a, c)
    assert np.array_equal(m.apply_samples(x, 5, 2, range(10, 16)), a)
    # the noise of different samples or seeds is uncorrelated
    g1 = measurement_rng(5, 2, 13).standard_normal(4096)
    g2 = measurement_rng(5, 2, 14).standard_normal(4096)
    g3 = measurement_rng(6, 2, 13).standard_normal(4096)
    assert abs(np.corrcoef(g1, g2)[0, 1]) < 5 / 64 and abs(np.corrcoef(g1, g3)[0, 1]) < 5 / 64
    with pytest.raises(ConfigError, match="epoch must be an integer >= 0"):
        measurement_rng(1, -1, 0)


# ------------------------------------------------------------------ random transform parameters (ranges)
RANGED = "blur(0.0..1.5)+noise(0.0..0.15)+poisson(50.0..500.0)+gain(0.8..1.2)+offset(-0.1..0.1)+bin(8)+channels(rho1)"


def test_ranges_round_trip_through_text_dict_json_and_toml_tables():
    import tomllib

    m = MeasurementModel.parse("blur(0..1.5) + noise(0..0.15) + poisson(50..500) + gain(0.8..1.2) + "
                               "offset(-0.1..0.1) + bin(8) + channels(rho1)")
    assert str(m) == RANGED and m.is_random and m.has_ranges
    assert MeasurementModel.parse(str(m)) == m
    assert MeasurementModel.from_dict(m.to_dict()) == m and MeasurementModel.from_json(m.to_json()) == m
    assert m.to_dict()["transforms"][1] == {"kind": "noise", "sigma": [0.0, 0.15]}
    toml = tomllib.loads('measurement = [{kind = "blur", width = [0, 1.5]}, {noise = [0, 0.15]}, '
                         '{kind = "poisson", counts = "50..500"}, {gain = [0.8, 1.2]}, '
                         '{kind = "offset", value = [-0.1, 0.1]}, {bin = 8}, {kind = "channels", names = ["rho1"]}]')
    assert MeasurementModel.parse(toml["measurement"]) == m
    # lo == hi is the fixed value; a model with fixed values only has no ranges
    assert MeasurementModel.parse("noise(0.05..0.05)") == MeasurementModel.parse("noise(0.05)")
    assert not MeasurementModel.parse("blur(1.0)+gain(2)").is_random
    assert MeasurementModel.parse("blur(0.5..1)+gain(2)").is_random


@pytest.mark.parametrize("spec, words", [
    ("bin(4..8)", ["bin", "size is fixed", "4..8"]),
    ("channels(rho1..rho2)", ["channels", "fixed", "rho1..rho2"]),
    ("noise(0.2..0.1)", ["noise", "0.2..0.1", "lo <= hi"]),
    ("noise(-0.1..0.1)", ["noise", ">= 0"]),
    ("poisson(0..10)", ["poisson", "> 0"]),
    ("blur(0..inf)", ["blur", "finite"]),
    ("gain(a..1)", ["gain", "number"]),
    ("noise(log:0..0.25)", ["noise", "log-uniform", "lo > 0"]),
    ("gain(log:-2..-1)", ["gain", "log-uniform", "lo > 0"]),
    ("noise(log:0.2..0.1)", ["noise", "lo <= hi"]),
    ("noise(lg:0.1..0.2)", ["noise", "number"]),
])
def test_bad_ranges_are_refused_with_one_line(spec, words):
    with pytest.raises(ConfigError) as exc:
        MeasurementModel.parse(spec)
    msg = str(exc.value)
    assert "\n" not in msg and all(w in msg for w in words), msg
    with pytest.raises(ConfigError):
        MeasurementModel.parse([{"bin": [4, 8]}])


def _fixed_equivalent(kind, lo, hi, rng):
    """The value a range draws first from ``rng`` (uniform, log-uniform for poisson), as a fixed spec."""
    v = math.exp(rng.uniform(math.log(lo), math.log(hi))) if kind == "poisson" else rng.uniform(lo, hi)
    return f"{kind}({v!r})"


@pytest.mark.parametrize("kind, lo, hi", [("noise", 0.0, 0.15), ("blur", 0.0, 1.5), ("poisson", 50.0, 500.0),
                                          ("gain", 0.8, 1.2), ("offset", -0.1, 0.1)])
def test_a_range_draws_its_value_first_from_the_samples_generator_then_the_noise(kind, lo, hi):
    x = _images(S=1, N=16)[0]
    m = MeasurementModel.parse(f"{kind}({lo}..{hi})")
    for k in range(5):
        got = m.apply_samples(x[None], seed=7, epoch=2, indices=[k])[0]
        rng = measurement_rng(7, 2, k)
        fixed = MeasurementModel.parse(_fixed_equivalent(kind, lo, hi, rng))
        assert np.array_equal(got, fixed.apply(x, rng))  # the same generator goes on to draw the noise


def test_drawn_noise_levels_are_uniform_over_the_range():
    from scipy import stats

    S, lo, hi = 400, 0.0, 0.15
    x = np.repeat(_images(S=1, N=32), S, axis=0)
    y = MeasurementModel.parse(f"noise({lo}..{hi})").apply_samples(x, seed=11, epoch=0, indices=range(S))
    level = ((y - x) / x.std(axis=(1, 2), keepdims=True)).std(axis=(1, 2, 3))  # per-sample σ estimate
    assert level.min() < lo + 0.02 * (hi - lo) and level.max() > hi - 0.02 * (hi - lo)
    assert stats.kstest(level, stats.uniform(lo, hi - lo).cdf).pvalue > 1e-3
    # counts: log-uniform over [50, 500]
    rngs = [measurement_rng(11, 0, k) for k in range(S)]
    n = np.array([math.exp(r.uniform(math.log(50), math.log(500))) for r in rngs])
    assert stats.kstest(np.log(n), stats.uniform(math.log(50), math.log(10)).cdf).pvalue > 1e-3


def test_a_log_range_draws_its_levels_log_uniformly_and_round_trips():
    """``noise(log:lo..hi)``: the per-sample σ is uniform in log σ; low noise is not a few per cent of the draws."""
    import tomllib

    from scipy import stats

    m = MeasurementModel.parse("noise(log:0.001..0.25)")
    assert str(m) == "noise(log:0.001..0.25)" and m.is_random
    assert m.to_dict()["transforms"][0] == {"kind": "noise", "sigma": [0.001, 0.25, "log"]}
    assert MeasurementModel.parse(str(m)) == m and MeasurementModel.from_json(m.to_json()) == m
    toml = tomllib.loads('measurement = [{noise = [0.001, 0.25, "log"]}]')
    assert MeasurementModel.parse(toml["measurement"]) == m
    assert m != MeasurementModel.parse("noise(0.001..0.25)")  # the law is part of the model
    assert MeasurementModel.parse("noise(log:0.1..0.1)") == MeasurementModel.parse("noise(0.1)")
    # the blur and height widths in coherence lengths keep the law when converted to pixels
    px = MeasurementModel.parse("blur_xi(log:0.2..1.5)").in_pixels(0.5, 32).transforms[0]
    assert (px.width.lo, px.width.hi, px.width.log) == (0.4, 3.0, True)

    S, lo, hi = 400, 0.001, 0.25
    x = np.repeat(_images(S=1, N=32), S, axis=0)
    y = m.apply_samples(x, seed=11, epoch=0, indices=range(S))
    level = ((y - x) / x.std(axis=(1, 2), keepdims=True)).std(axis=(1, 2, 3))  # per-sample σ estimate
    # the estimate's own spread (~σ/√(N²C)) is 2 % of σ: compare in log σ
    assert stats.kstest(np.log(level), stats.uniform(math.log(lo), math.log(hi / lo)).cdf).pvalue > 1e-3
    assert stats.kstest(level, stats.uniform(lo, hi - lo).cdf).pvalue < 1e-6  # and not uniform in σ
    assert 0.3 < np.mean(level < 0.01) < 0.55  # log(10)/log(250) = 0.42 of the draws below 0.01; uniform: 0.04
    with pytest.raises(ConfigError, match="lo, hi"):  # a third element other than "log" is refused
        MeasurementModel.parse([{"noise": [0.1, 0.2, "linear"]}])


def test_ranges_are_reproducible_and_independent_of_batching():
    x = _images(S=10, N=16)
    m = MeasurementModel.parse(RANGED)
    batch = m.apply_samples(x, seed=3, epoch=1, indices=range(10))
    one = np.concatenate([m.apply_samples(x[k:k + 1], seed=3, epoch=1, indices=[k]) for k in range(10)])
    assert np.array_equal(batch, one)
    assert np.array_equal(batch, m.apply_samples(x, seed=3, epoch=1, indices=range(10)))
    assert not np.array_equal(batch, m.apply_samples(x, seed=3, epoch=2, indices=range(10)))
    rev = m.apply_samples(x[::-1], seed=3, epoch=1, indices=range(9, -1, -1))
    assert np.array_equal(rev[::-1], batch)
    with pytest.raises(ConfigError):  # a range is random: apply needs a generator
        MeasurementModel.parse("gain(0.8..1.2)").apply(x)


def test_fixed_parameters_draw_exactly_what_they_drew_before_ranges():
    x = _images(S=2, N=16)
    # noise(s): x + s·std·N(0, 1) from the generator, nothing drawn before
    got = MeasurementModel.parse("noise(0.05)").apply(x, measurement_rng(1, 0, 4))
    rng = measurement_rng(1, 0, 4)
    assert np.array_equal(got, x + (0.05 * x.std(axis=(-3, -2), keepdims=True)) * rng.standard_normal(x.shape))
    # poisson(n): the first draw of the generator is the Poisson one
    c = 2.0
    flat = np.full((1, 8, 8, 3), c)
    got = MeasurementModel.parse("poisson(40)").apply(flat, measurement_rng(1, 0, 5))
    assert np.array_equal(got, measurement_rng(1, 0, 5).poisson(np.full(flat.shape, 40.0)) / (40.0 / c))
    # deterministic transforms with fixed values draw nothing: the noise after them is unshifted
    a = MeasurementModel.parse("blur(1.0)+gain(2)+offset(0.5)+noise(0.05)").apply(x, measurement_rng(1, 0, 6))
    pre = MeasurementModel.parse("blur(1.0)+gain(2)+offset(0.5)").apply(x)
    assert np.array_equal(a, MeasurementModel.parse("noise(0.05)").apply(pre, measurement_rng(1, 0, 6)))


@pytest.mark.parametrize("other, covered", [
    ("noise(0.05)", True), ("noise(0)", True), ("noise(0.15)", True), ("noise(0.02..0.1)", True),
    ("noise(0..0.15)", True), ("noise(0.2)", False), ("noise(0.1..0.2)", False), ("blur(0.5)", False),
    ("noise(0.05)+bin(8)", False),
    ("none", True),  # noise(0), the perfect measurement, is a member
])
def test_covers_single_transform(other, covered):
    assert MeasurementModel.parse("noise(0..0.15)").covers(other) is covered


def test_covers_compositions():
    fam = MeasurementModel.parse("blur(0.5..1.5)+noise(0.05)+bin(8)+channels(rho1)")
    assert fam.covers(fam) and fam.covers("blur(1)+noise(0.05)+bin(8)+channels(rho1)")
    assert not fam.covers("blur(1)+noise(0.06)+bin(8)+channels(rho1)")      # fixed value differs
    assert not fam.covers("blur(1)+noise(0.05)+bin(16)+channels(rho1)")     # bin size differs
    assert not fam.covers("blur(1)+noise(0.05)+bin(8)+channels(rho2)")      # channels differ
    assert not fam.covers("noise(0.05)+blur(1)+bin(8)+channels(rho1)")      # order differs
    assert not fam.covers("blur(2)+noise(0.05)+bin(8)+channels(rho1)")      # outside the range
    assert not MeasurementModel.parse("blur(1)").covers("blur(0.5..1.5)")   # a fixed model covers no range
    assert MeasurementModel.parse("none").covers("none") and MeasurementModel.parse("blur(1)").covers("blur(1.0)")


@pytest.mark.parametrize("family, other, covered", [
    # a transform the other model lacks counts as present at its neutral value when the range includes it
    ("blur(0..1.5)+noise(0..0.15)", "blur(1.0)", True),
    ("blur(0..1.5)+noise(0..0.15)", "noise(0.05)", True),
    ("blur(0..1.5)+noise(0..0.15)", "none", True),
    ("blur(0.5..1.5)+noise(0..0.15)", "noise(0.05)", False),       # blur 0 is outside 0.5..1.5
    ("blur(1.0)+noise(0..0.15)", "blur(1.0)", True),
    ("gain(0.8..1.2)+offset(-0.1..0.1)+noise(0.05)", "noise(0.05)", True),
    ("gain(1.1..1.2)+noise(0.05)", "noise(0.05)", False),          # gain 1 is outside the range
    ("poisson(50..500)+noise(0..0.1)", "noise(0.05)", False),      # shot noise has no neutral value
    ("bin(8)+noise(0..0.1)", "noise(0.05)", False),                # nor binning
    ("blur(0..1.5)+noise(0..0.15)", "noise(0.05)+blur(1.0)", False),  # order still matters
    ("blur(0..1.5)+noise(0..0.15)", "blur(1.0)+noise(0.05)+gain(2)", False),  # an extra transform
    ("noise(0..0.25)", "noise(0.1) | noise(0.2)", True),           # every alternative is a member
    ("noise(0..0.25)", "noise(0.1) | blur(1)", False),
])
def test_covers_with_neutral_transforms_and_mixtures(family, other, covered):
    assert MeasurementModel.parse(family).covers(other) is covered


# ------------------------------------------------------------------ widths in coherence lengths
def test_blur_in_coherence_lengths_resolves_to_pixels_of_the_lattice_and_after_binning():
    m = MeasurementModel.parse("blur_xi(1.0)+bin(16)+blur_xi(0..2)+noise(0.05)")
    assert m.needs_pixel_size and str(m) == "blur_xi(1.0)+bin(16)+blur_xi(0.0..2.0)+noise(0.05)"
    # h = 0.5 xi on the 64-lattice; after bin(16) one pixel is 4 lattice sites = 2 xi
    px = m.in_pixels(0.5, 64)
    assert str(px) == "blur(2.0)+bin(16)+blur(0.0..1.0)+noise(0.05)" and not px.needs_pixel_size
    x = _images(S=2, N=64)
    rng_a, rng_b = measurement_rng(0, 0, 1), measurement_rng(0, 0, 1)
    assert np.array_equal(px.apply(x, rng_a), MeasurementModel.parse(str(px)).apply(x, rng_b))
    assert MeasurementModel.parse("noise(0.05)").in_pixels(0.5, 64) == MeasurementModel.parse("noise(0.05)")
    mix = MeasurementModel.parse("none | blur_xi(1)").in_pixels(0.25, 64)
    assert str(mix) == "none | blur(4.0)"
    with pytest.raises(ConfigError) as exc:  # unresolved: the pixel size is unknown
        MeasurementModel.parse("blur_xi(1.0)").apply(x)
    assert "coherence lengths" in str(exc.value) and "\n" not in str(exc.value)
    with pytest.raises(ConfigError):
        m.in_pixels(0.0, 64)
    # a blur_xi(0..w) family admits the unblurred image like blur(0..w)
    assert MeasurementModel.parse("blur_xi(0..1)+noise(0..0.1)").covers("noise(0.05)")


# ------------------------------------------------------------------ bounds: float32 images stay finite (issue 18)
@pytest.mark.parametrize("spec, words", [
    ("noise(1e308)", ["noise", "sigma", "1e308", "at most 100"]),
    ("noise(0..1e3)", ["noise", "sigma", "1e3"]),
    ("offset(1e300)", ["offset", "value", "1e300", "at most 1000"]),
    ("offset(-5e3)", ["offset", "-5e3"]),
    ("gain(1e30)", ["gain", "factor", "1e30", "between 1e-06 and 1e+06"]),
    ("gain(1e-30)", ["gain", "factor", "1e-30"]),
    ("gain(0)", ["gain", "factor", "must not be 0", "all zero"]),
    ("gain(0..2)", ["gain", "factor", "must not be 0"]),
    ("gain(-1..1)", ["gain", "-1..1", "includes 0"]),
    ("blur(1e300)", ["blur", "width", "1e300"]),
    ("blur_xi(1e7)", ["blur_xi", "width", "1e7"]),
    ("poisson(1e-300)", ["poisson", "counts", "1e-300"]),
    ("poisson(1e300)", ["poisson", "counts", "1e300"]),
    ("gain(1e5)+gain(1e5)", ["gain(100000.0)+gain(100000.0)", "1e+10"]),
    ("gain(1e-4)+gain(1e-4)", ["1e-08"]),
])
def test_values_beyond_the_float32_bounds_are_refused_naming_the_value(spec, words):
    with pytest.raises(ConfigError) as exc:
        MeasurementModel.parse(spec)
    msg = str(exc.value)
    assert "\n" not in msg and all(w in msg for w in words), msg


@pytest.mark.parametrize("spec", ["noise(100)", "offset(-1000)", "gain(1e6)", "gain(-1e-6)", "gain(-2..-1)",
                                  "poisson(1e-3)", "poisson(1e12)", "blur(1e6)", "gain(1e6)+noise(99)"])
def test_values_at_the_bounds_give_finite_float32_images(spec):
    m = MeasurementModel.parse(spec)
    x = _images(S=2, N=16).astype(np.float32)
    y = m.apply_samples(x, seed=1, epoch=0, indices=[0, 1])
    assert y.dtype == np.float32 and np.isfinite(y).all()
    # the standardisation statistics the network is built with stay finite too
    assert np.isfinite(y.var(axis=(0, 1, 2), dtype=np.float32)).all()
    assert np.isfinite(np.sum(np.square(y, dtype=np.float32), dtype=np.float32))


@pytest.mark.parametrize("spec", ["noise(0...1)", "noise(0..0.1..0.2)", "noise(0.1...)", "noise(0...)",
                                  "blur(1...2)", "noise(0. ..1)"])
def test_a_range_needs_exactly_two_dots_between_two_numbers(spec):
    with pytest.raises(ConfigError) as exc:
        MeasurementModel.parse(spec)
    msg = str(exc.value)
    assert "\n" not in msg and "lo..hi" in msg and spec[spec.index("(") + 1:-1] in msg, msg
    # the two-dot forms still parse, including numbers with a decimal point inside
    assert str(MeasurementModel.parse("noise(0.0..0.1)")) == "noise(0.0..0.1)"
    assert str(MeasurementModel.parse("offset(-1.5..1e-1)")) == "offset(-1.5..0.1)"
