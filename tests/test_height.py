"""height(z): the stray field a scanning probe sees at height z (issue 21, "The field as instruments see it").

A field harmonic above the surface continues upward as B̂(k) e^{−|k|z}: a single periodic Fourier
mode decays by exactly that factor, the mean is kept, and only the channel B changes.
"""

import numpy as np
import pytest

from tdglnre.errors import ConfigError
from tdglnre.instrument.model import MeasurementModel, resolve_on_lattice

CH = ("rho1", "rho2", "curlJ", "B")


def _mode_image(N, mx, my, mean=0.7):
    y, x = np.meshgrid(np.arange(N), np.arange(N), indexing="ij")
    mode = np.cos(2 * np.pi * (mx * x + my * y) / N + 0.3)
    img = np.zeros((N, N, len(CH)))
    for c in range(len(CH)):
        img[..., c] = mean + (c + 1) * mode
    return img, mode


@pytest.mark.parametrize("mx,my", [(1, 0), (3, 2), (0, 5), (8, 8)])
@pytest.mark.parametrize("z", [0.25, 1.0, 3.5])
def test_single_fourier_mode_decays_by_exp_minus_k_z(mx, my, z):
    N, mean = 16, 0.7
    img, mode = _mode_image(N, mx, my, mean)
    out = MeasurementModel.parse(f"height_px({z})").apply(img, np.random.default_rng(0), CH)
    k = 2 * np.pi * np.hypot(mx, my) / N
    b = CH.index("B")
    np.testing.assert_allclose(out[..., b], mean + (b + 1) * np.exp(-k * z) * mode, atol=1e-12)
    assert out[..., b].mean() == pytest.approx(mean, abs=1e-13)
    others = [c for c in range(len(CH)) if c != b]
    np.testing.assert_array_equal(out[..., others], img[..., others])


def test_height_in_coherence_lengths_resolves_to_pixels():
    # L = 8 ξ on N = 16: h = 0.5 ξ per pixel, so height(1.0) is height_px(2.0)
    model = resolve_on_lattice(MeasurementModel.parse("height(1.0)+noise(0.01)"), 8.0, 16)
    assert str(model).startswith("height_px(2")
    img, mode = _mode_image(16, 2, 1)
    direct = MeasurementModel.parse("height_px(2.0)").apply(img, np.random.default_rng(1), CH)
    via = resolve_on_lattice(MeasurementModel.parse("height(1.0)"), 8.0, 16).apply(img, np.random.default_rng(1), CH)
    np.testing.assert_array_equal(direct, via)


def test_height_range_is_drawn_per_sample_within_bounds():
    N = 16
    img, mode = _mode_image(N, 1, 0, mean=0.0)
    model = MeasurementModel.parse("height_px(0.5..2)")
    k = 2 * np.pi / N
    b = CH.index("B")
    zs = []
    for s in range(20):
        out = model.apply(img, np.random.default_rng(s), CH)
        ratio = np.sum(out[..., b] * mode) / np.sum((b + 1) * mode * mode)
        zs.append(-np.log(ratio) / k)
    assert min(zs) >= 0.5 - 1e-9 and max(zs) <= 2.0 + 1e-9
    assert max(zs) - min(zs) > 0.5  # really drawn, not fixed


def test_float32_images_stay_float32():
    img, _ = _mode_image(16, 1, 1)
    out = MeasurementModel.parse("height_px(1.0)").apply(img.astype(np.float32), np.random.default_rng(0), CH)
    assert out.dtype == np.float32


def test_refusals():
    img, _ = _mode_image(16, 1, 1)
    with pytest.raises(ConfigError, match="field channel 'B'"):
        MeasurementModel.parse("height_px(1)").apply(img[..., :3], np.random.default_rng(0), CH[:3])
    with pytest.raises(ConfigError, match="pixel size"):
        MeasurementModel.parse("height(1)").apply(img, np.random.default_rng(0), CH)
    with pytest.raises(ConfigError, match="height"):
        MeasurementModel.parse("height(-1)")
    with pytest.raises(ConfigError, match="height"):
        MeasurementModel.parse("height(nan)")


def test_text_round_trip():
    for text in ("height(1.5)", "height(0.5..2)+blur_xi(0..1.5)+noise(0.01..0.15)+channels(B)", "height_px(3)"):
        m = MeasurementModel.parse(text)
        assert MeasurementModel.parse(str(m)) == m
        assert MeasurementModel.parse(m.to_dict()) == m
