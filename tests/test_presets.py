"""Presets (TOML), overrides and priors."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from tdglnre.errors import ConfigError
from tdglnre.io.presets import list_presets, load_preset, override_keys
from tdglnre.io.priors import Prior
from tdglnre.physics.config import SimConfig, field_from_n_v


def test_shipped_presets_match_the_issue() -> None:
    assert {"paper", "drag", "quick"} <= set(list_presets())
    cfg, pr = load_preset("paper")
    assert (cfg.N, cfg.L, cfg.dt) == (64, 32.0, 0.001)
    assert cfg.alpha == (-1.0, -1.0) and cfg.beta == (1.0, 1.0) and cfg.D == (4.0, 1.0)
    assert cfg.snapshot_times == (2.0,)
    assert pr.names == ("eta", "n_v", "nu") and pr.inferred == ("eta", "n_v")
    assert (pr.kind("eta"), pr.low("eta"), pr.high("eta")) == ("uniform", 0.0, 1.5)
    assert (pr.kind("n_v"), pr.low("n_v"), pr.high("n_v")) == ("int_uniform", 1.0, 16.0)
    assert pr.fixed_values() == {"nu": 0.0}

    cfg, pr = load_preset("drag")
    assert cfg.snapshot_times == (0.5, 1.0, 2.0, 3.0, 5.0)
    assert pr.inferred == ("eta", "n_v", "nu")
    assert (pr.kind("nu"), pr.low("nu"), pr.high("nu")) == ("uniform", 0.0, 0.5)

    cfg, pr = load_preset("quick")
    assert cfg.h == 0.5 and cfg.N <= 32 and pr.inferred == ("eta", "n_v")


def test_overrides_config_prior_and_field() -> None:
    cfg, pr = load_preset("paper", ["N=32", "L=16", "D=3,1", "alpha=-2", "snapshot_times=0.5,1",
                                    "dtype=float64", "prior.eta=uniform(0.2, 1)", "nu=0.1"])
    assert (cfg.N, cfg.L, cfg.D, cfg.alpha, cfg.snapshot_times, cfg.dtype) == (
        32, 16.0, (3.0, 1.0), (-2.0, -2.0), (0.5, 1.0), "float64")
    assert (pr.low("eta"), pr.high("eta")) == (0.2, 1.0)
    assert pr.fixed_values() == {"nu": 0.1} and cfg.nu == 0.1
    # a field B carrying 3 flux quanta fixes n_v
    B = field_from_n_v(3, 16.0)
    cfg, pr = load_preset("paper", ["L=16", f"B={B!r}"])
    assert pr.fixed_values()["n_v"] == 3 and cfg.n_v == 3 and "n_v" not in pr.inferred
    # mapping form
    cfg, pr = load_preset("quick", {"N": 16, "prior.n_v": "int_uniform(2, 4)"})
    assert cfg.N == 16 and (pr.low("n_v"), pr.high("n_v")) == (2.0, 4.0)


@pytest.mark.parametrize("override, needle", [
    ("foo=1", "unknown override key 'foo'; valid keys: N, L"),
    ("prior.bar=fixed(1)", "unknown override key 'prior.bar'"),
    ("N=abc", "N: expected a number"),
    ("N=3.5", "N: expected an integer"),
    ("dtype=float16", "dtype: expected 'float32' or 'float64'"),
    ("D=1,2,3", "one value per band"),
    ("B=0.1", "Nearest valid: B=0.0981747704247 (n_v=16) or B=0.104310693576 (n_v=17)"),
    ("prior.eta=uniform(1, 0)", "needs low < high"),
    ("prior.eta=normal(0, 1)", "unknown kind 'normal'"),
    ("prior.n_v=uniform(1, 4)", "use int_uniform(1, 4)"),
    ("prior.n_v=int_uniform(1.5, 4)", "bounds must be integers"),
    ("n_v=2.5", "must be an integer"),
    ("prior.nu=uniform(0, 2.5)", "corner (eta=0, n_v=1, nu=2.5) is invalid; narrow the prior: drag nu=2.5 makes the equations ill-posed"),
    ("nu=-3", "ill-posed"),
    ("dt=0.02", "stability limit"),
    ("noequals", "must have the form key=value"),
])
def test_bad_overrides_are_clear_errors(override: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_preset("paper", [override])
    assert needle in str(info.value)


def test_stability_checked_at_the_edge_of_the_nu_box() -> None:
    # dt is stable at nu = 0 but not at nu = 1 (lambda_max grows with |nu|)
    cfg = SimConfig(N=64, L=32, dt=0.015, snapshot_times=(1.5,))
    cfg.validate()
    with pytest.raises(ConfigError, match=r"corner \(eta=0, n_v=1, nu=1\).*stability limit"):
        Prior({"eta": "uniform(0, 1)", "n_v": "int_uniform(1, 4)", "nu": "uniform(0, 1)"}).validate(cfg)


def test_unknown_preset_and_preset_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown preset 'nope'; available presets: .*paper"):
        load_preset("nope")
    good = tmp_path / "mine.toml"
    good.write_text('[config]\nN = 16\nL = 8.0\n[prior]\neta = "uniform(0, 1)"\nn_v = 2\n')
    cfg, pr = load_preset(str(good))
    assert cfg.N == 16 and pr.inferred == ("eta",) and pr.fixed_values() == {"n_v": 2.0, "nu": 0.0}
    assert cfg.n_v == 2
    bad = tmp_path / "bad.toml"
    bad.write_text("[config\nN = 16\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_preset(str(bad))
    bad.write_text("[config]\nNN = 16\n")
    with pytest.raises(ConfigError, match=r"unknown \[config\] key\(s\) \['NN'\]; valid"):
        load_preset(str(bad))
    bad.write_text("[prior]\nmu = 1\n")
    with pytest.raises(ConfigError, match=r"unknown \[prior\] key"):
        load_preset(str(bad))
    with pytest.raises(ConfigError, match="does not exist"):
        load_preset(str(tmp_path / "missing.toml"))


def test_override_keys_cover_config_fields() -> None:
    keys = override_keys()
    for k in ("N", "L", "dt", "alpha", "beta", "D", "snapshot_times", "dtype", "eta", "n_v", "nu", "B",
              "prior.eta", "prior.n_v", "prior.nu"):
        assert k in keys


# ------------------------------------------------------------------ priors
def _prior() -> Prior:
    return Prior({"eta": "uniform(0, 1.5)", "n_v": "int_uniform(1, 16)", "nu": "fixed(0)"})


def test_prior_sample_depends_only_on_seed_and_index() -> None:
    pr = _prior()
    full = pr.sample(11, np.arange(200))
    assert full.shape == (200, 2) and full.dtype == np.float64
    np.testing.assert_array_equal(pr.sample(11, [17, 3]), full[[17, 3]])
    assert not np.array_equal(pr.sample(12, np.arange(200)), full)
    eta, n_v = full[:, 0], full[:, 1]
    assert eta.min() >= 0 and eta.max() < 1.5
    assert set(np.unique(n_v)) <= set(range(1, 17)) and np.all(n_v == np.round(n_v))
    # both ends of the integer range are reached (P(miss) = 2 (15/16)^200 ~ 5e-6)
    assert n_v.min() == 1 and n_v.max() == 16


def test_prior_log_prob_and_round_trip() -> None:
    pr = _prior()
    lp = pr.log_prob(np.array([[0.5, 3.0], [1.6, 3.0], [0.5, 3.5], [0.5, 17.0]]))
    np.testing.assert_allclose(lp[0], -math.log(1.5) - math.log(16))
    assert np.all(np.isneginf(lp[1:]))
    again = Prior.from_json(pr.to_json())
    assert again == pr and again.inferred == pr.inferred
    assert Prior.from_dict(pr.to_dict()).to_dict() == pr.to_dict()
    params = pr.params(np.array([[0.5, 3.0]]))
    assert params["nu"][0] == 0.0 and params["n_v"][0] == 3.0


@pytest.mark.parametrize("entry, text", [
    ('measurement = "blur(0..1.5) + noise(0.05)"', "blur(0.0..1.5)+noise(0.05)"),
    ('measurement = [{kind = "blur", width = 1.0}, {noise = [0, 0.1]}]', "blur(1.0)+noise(0.0..0.1)"),
    ('measurement = {alternatives = [[{noise = 0.05}], [{blur = 1.0}, {noise = 0.05}]]}',
     "noise(0.05) | blur(1.0)+noise(0.05)"),
    ('measurement = "none"', None),
])
def test_a_preset_declares_its_instrument(tmp_path: Path, entry: str, text: str | None) -> None:
    from tdglnre.io.presets import preset_measurement

    p = tmp_path / "inst.toml"
    p.write_text(entry + '\n[config]\nN = 16\nL = 8.0\n[prior]\neta = "uniform(0, 1)"\nn_v = 2\n')
    assert preset_measurement(str(p)) == text
    assert load_preset(str(p))[0].N == 16  # the key is part of a valid preset
    assert all(preset_measurement(name) is None for name in list_presets())  # shipped presets: perfect images


def test_a_bad_preset_measurement_is_one_line_naming_the_preset(tmp_path: Path) -> None:
    from tdglnre.io.presets import preset_measurement

    p = tmp_path / "badinst.toml"
    p.write_text('measurement = "blur(-1)"\n[config]\nN = 16\n')
    for load in (load_preset, preset_measurement):
        with pytest.raises(ConfigError) as exc:
            load(str(p))
        msg = str(exc.value)
        assert "\n" not in msg and "badinst.toml" in msg and "width" in msg
