"""The type15 presets (issue 21, item 3): a prior over (η, n_v, λ) spanning Type I, 1.5 and II.

Each description states the fraction of its prior in each regime; the numbers must be the computed ones
(:func:`tdglnre.io.regimes.regime_fractions`), and those must agree with the frequencies of prior draws.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from tdglnre.io.presets import _read_preset, load_preset, preset_path
from tdglnre.io.regimes import regime_fractions
from tdglnre.physics.lengths import REGIMES
from tdglnre.physics.observables import channel_names
from tdglnre.physics.screening import regime_codes

PRESETS = {"type15": 64, "type15-quick": 32}
_STATED = re.compile(r"Type I ([\d.]+)%, Type 1\.5 ([\d.]+)%, Type II ([\d.]+)%")


@pytest.mark.parametrize("name", PRESETS)
def test_preset_shape_channels_and_prior(name):
    cfg, prior = load_preset(name)
    assert cfg.N == PRESETS[name] and cfg.screened
    assert list(channel_names(cfg)) == ["rho1", "rho2", "curlJ", "B"]
    assert prior.inferred == ("eta", "n_v", "lam") and prior.kind("lam") == "log_uniform"
    assert prior.low("lam") >= cfg.h  # the lattice resolves every λ of the prior
    _, with_nu = load_preset(name, ["prior.nu=uniform(0,0.5)"])  # ν optional, the whole box stable
    assert with_nu.inferred == ("eta", "n_v", "nu", "lam")


@pytest.mark.parametrize("name", PRESETS)
def test_description_states_the_computed_regime_fractions(name):
    cfg, prior = load_preset(name)
    stated = _STATED.search(_read_preset(preset_path(name))["description"])
    assert stated, "the description must state the fraction in each regime"
    got = regime_fractions(cfg, prior)
    assert sum(got.values()) == pytest.approx(1.0, abs=1e-12)
    for regime, text in zip(REGIMES, stated.groups()):
        assert float(text) == pytest.approx(100 * got[regime], abs=0.051)
        assert got[regime] > 0.1  # the prior spans all three regimes


def test_the_fractions_are_the_frequencies_of_prior_draws():
    cfg, prior = load_preset("type15-quick", ["prior.nu=uniform(0,0.5)"])
    frac = regime_fractions(cfg, prior, n_points=101)
    theta = prior.sample(11, np.arange(3000))
    codes = regime_codes(cfg, prior.params(theta))
    for i, regime in enumerate(REGIMES):
        p = frac[regime]
        assert abs(np.mean(codes == i) - p) < 4 * math.sqrt(p * (1 - p) / 3000)
