"""Alternative instruments ``a | b`` (MeasurementMixture in tdglnre/instrument/model.py, docs/observations.md).

Each sample is measured by exactly one alternative, chosen uniformly by the
first draw of its own generator; round trips, coverage of members and
one-line errors.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tdglnre.errors import ConfigError
from tdglnre.instrument.model import MeasurementMixture, MeasurementModel, measurement_rng

MIX = "noise(0.0..0.25) | blur(0.0..1.5)+noise(0.0..0.25)"


def _images(S: int, N: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:N, 0:N] * (2 * np.pi / N)
    base = np.stack([1.0 + 0.5 * np.sin(x) * np.cos(2 * y), 0.3 + 0.2 * np.cos(3 * x) ** 2, np.sin(x) * np.sin(y)], -1)
    return base[None] + 0.05 * rng.standard_normal((S, N, N, 3))


def test_text_dict_json_and_table_forms_round_trip():
    m = MeasurementModel.parse(MIX)
    assert isinstance(m, MeasurementMixture) and isinstance(m, MeasurementModel) and str(m) == MIX
    assert MeasurementModel.parse(str(m)) == m
    assert MeasurementModel.from_dict(m.to_dict()) == m and MeasurementModel.from_json(m.to_json()) == m
    assert m.to_dict() == {"alternatives": [
        {"transforms": [{"kind": "noise", "sigma": [0.0, 0.25]}]},
        {"transforms": [{"kind": "blur", "width": [0.0, 1.5]}, {"kind": "noise", "sigma": [0.0, 0.25]}]}]}
    table = {"alternatives": [[{"noise": [0, 0.25]}], [{"kind": "blur", "width": [0, 1.5]}, {"noise": [0, 0.25]}]]}
    assert MeasurementModel.parse(table) == m
    # 'none' is an alternative (the perfect measurement); a | (b | c) flattens to a | b | c
    three = MeasurementMixture(alternatives=("none", MeasurementModel.parse("blur(1) | noise(0.1)")))
    assert str(three) == "none | blur(1.0) | noise(0.1)" and len(three.alternatives) == 3
    assert m.is_random and m.has_ranges and not m.is_identity


def test_each_sample_is_measured_by_one_alternative_chosen_by_its_generators_first_draw():
    x = _images(S=1)[0]
    m = MeasurementModel.parse("noise(0.05) | blur(1.0)+noise(0.05) | gain(2)")
    for k in range(12):
        got = m.apply_samples(x[None], seed=4, epoch=1, indices=[k])[0]
        rng = measurement_rng(4, 1, k)
        choice = int(rng.integers(3))
        assert np.array_equal(got, m.alternatives[choice].apply(x, rng))  # the same generator draws the noise


def test_alternatives_are_chosen_with_equal_probability():
    from scipy import stats

    S = 600
    x = np.repeat(_images(S=1), S, axis=0)
    y = MeasurementModel.parse("none | gain(2) | gain(3)").apply_samples(x, seed=9, epoch=0, indices=range(S))
    ratio = np.round(y[:, 0, 0, 0] / x[:, 0, 0, 0]).astype(int)
    assert set(ratio) == {1, 2, 3}
    counts = np.bincount(ratio, minlength=4)[1:]
    assert stats.chisquare(counts).pvalue > 1e-3


def test_mixture_is_reproducible_and_independent_of_batching():
    x = _images(S=10)
    m = MeasurementModel.parse(MIX)
    batch = m.apply_samples(x, seed=3, epoch=1, indices=range(10))
    one = np.concatenate([m.apply_samples(x[k:k + 1], seed=3, epoch=1, indices=[k]) for k in range(10)])
    assert np.array_equal(batch, one)
    assert not np.array_equal(batch, m.apply_samples(x, seed=3, epoch=2, indices=range(10)))


@pytest.mark.parametrize("other, covered", [
    ("noise(0.05)", True), ("noise(0.15)", True), ("noise(0..0.2)", True), ("blur(1.0)+noise(0.05)", True),
    ("blur(0.5..1)+noise(0.1)", True), ("noise(0.05) | blur(1)+noise(0)", True),
    ("blur(1.0)", True), ("none", True), ("noise(0.05) | blur(1)", True),  # missing noise = noise(0), a member
    ("noise(0.3)", False), ("blur(2)+noise(0.1)", False), ("blur(1)+gain(2)", False), ("bin(8)", False),
])
def test_covers_members_of_any_alternative(other, covered):
    assert MeasurementModel.parse(MIX).covers(other) is covered


def test_a_plain_family_covers_a_mixture_of_its_members_only():
    assert MeasurementModel.parse("noise(0..0.25)").covers("noise(0.1) | noise(0.2)")
    assert not MeasurementModel.parse("noise(0..0.25)").covers("noise(0.1) | noise(0.3)")
    assert MeasurementModel.parse("none | blur(1)").covers("none")
    assert not MeasurementModel.parse("none | blur(1)").covers("blur(0.5)")


@pytest.mark.parametrize("spec, words", [
    ("noise(0.1) || blur(1)", "empty alternative"),
    ("| noise(0.1)", "empty alternative"),
    ("noise(0.1) | noise(0.10)", "repeat"),
    ({"alternatives": "noise(0.1)"}, "list of models"),
    ("noise(0.1) | blur(-1)", "width"),
])
def test_bad_mixtures_are_one_line_errors(spec, words):
    with pytest.raises(ConfigError) as exc:
        MeasurementModel.parse(spec)
    assert "\n" not in str(exc.value) and words in str(exc.value)


def test_alternatives_with_different_outputs_are_refused_before_any_draw():
    m = MeasurementModel.parse("bin(8) | none")
    with pytest.raises(ConfigError) as exc:
        m.output_shape(16)
    assert "image sizes" in str(exc.value) and "\n" not in str(exc.value)
    with pytest.raises(ConfigError) as exc:
        MeasurementModel.parse("channels(rho1) | channels(rho2)").apply(_images(1), measurement_rng(0, 0, 0))
    assert "channels" in str(exc.value)
    with pytest.raises(ConfigError) as exc:  # the choice is random: apply needs a generator
        MeasurementModel.parse(MIX).apply(_images(1))
    assert "Generator" in str(exc.value)
    assert json.loads(MeasurementModel.parse(MIX).to_json())["alternatives"]


@pytest.mark.parametrize("spec, names", [
    ("none | noise(0)", ["'none'", "'noise(0.0)'"]),
    ("blur(1) | blur(1.0)+gain(1)", ["'blur(1.0)'", "'blur(1.0)+gain(1.0)'"]),
    ("noise(0.1) | offset(0)+noise(0.1)+blur(0) | blur(2)", ["'noise(0.1)'", "'offset(0.0)+noise(0.1)+blur(0.0)'"]),
    ("blur_xi(0) | none", ["'blur_xi(0.0)'", "'none'"]),
])
def test_one_instrument_written_twice_is_refused_counting_neutral_transforms_as_none(spec, names):
    with pytest.raises(ConfigError) as exc:
        MeasurementModel.parse(spec)
    msg = str(exc.value)
    assert "\n" not in msg and "repeat an instrument" in msg and all(n in msg for n in names), msg
    # ranges through the neutral value are other instruments: a family is not its neutral member
    assert len(MeasurementModel.parse("none | noise(0..0.1)").alternatives) == 2
