"""Validation errors of the simulation config: one test per error, with its message."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tdglnre import ConfigError, DivergenceError, SimConfig, simulate
from tdglnre.physics.config import field_from_n_v, n_v_from_field, stability_limit


def test_valid_default_config_passes():
    assert SimConfig().validate() is not None


def test_N_too_small():
    with pytest.raises(ConfigError, match=r"N must be an integer >= 4"):
        SimConfig(N=3).validate()


def test_L_not_positive():
    with pytest.raises(ConfigError, match=r"L must be positive"):
        SimConfig(L=0.0).validate()


def test_D_not_positive():
    with pytest.raises(ConfigError, match=r"D must be positive in both bands"):
        SimConfig(D=(1.0, -1.0)).validate()


def test_beta_not_positive():
    with pytest.raises(ConfigError, match=r"beta must be positive in both bands"):
        SimConfig(beta=(0.0, 1.0)).validate()


def test_drag_ill_posed():
    with pytest.raises(ConfigError, match=r"ill-posed.*nu\^2 < D1\*D2 = 4"):
        SimConfig(D=(4.0, 1.0), nu=2.0).validate()


def test_dt_above_stability_limit_reports_limit():
    cfg = SimConfig(N=64, L=32.0, D=(4.0, 1.0), dt=0.02)
    limit = stability_limit(cfg.D, 0.0, cfg.h)
    assert math.isclose(limit, 0.25 / 16.0)
    with pytest.raises(ConfigError, match=r"stability limit h\^2/\(4\*lambda_max\) = 0\.015625"):
        cfg.validate()


def test_stability_limit_includes_drag():
    # drag raises λ_max: dt fine at ν = 0 fails at ν = 1.9
    cfg = SimConfig(N=64, L=32.0, D=(4.0, 1.0), dt=0.015, snapshot_times=(0.15,))
    cfg.validate()
    with pytest.raises(ConfigError, match="stability limit"):
        cfg.replace(nu=1.9).validate()


def test_n_v_must_be_integer():
    with pytest.raises(ConfigError, match=r"n_v must be an integer number of flux quanta"):
        SimConfig(n_v=2.5).validate()


def test_field_not_quantized_names_nearest_valid_fields():
    L = 32.0
    B = field_from_n_v(3.4, L)
    with pytest.raises(ConfigError) as err:
        n_v_from_field(B, L)
    msg = str(err.value)
    assert f"B={field_from_n_v(3, L):.12g} (n_v=3)" in msg
    assert f"B={field_from_n_v(4, L):.12g} (n_v=4)" in msg
    assert n_v_from_field(field_from_n_v(5, L), L) == 5
    assert SimConfig.with_field(field_from_n_v(-2, 16.0), L=16.0).n_v == -2


def test_snapshot_not_multiple_of_dt():
    with pytest.raises(ConfigError, match=r"snapshot time 0\.0015 is not a multiple of dt=0\.001"):
        SimConfig(dt=1e-3, snapshot_times=(0.0015,)).validate()


def test_snapshot_not_within_run():
    with pytest.raises(ConfigError, match=r"snapshot time -1 must be positive"):
        SimConfig(snapshot_times=(-1.0,)).validate()
    with pytest.raises(ConfigError, match=r"strictly increasing"):
        SimConfig(snapshot_times=(1.0, 0.5)).validate()


def test_bad_dtype():
    with pytest.raises(ConfigError, match=r"dtype must be one of"):
        SimConfig(dtype="float16").validate()


def test_per_sample_drag_is_validated():
    cfg = SimConfig(N=8, L=4.0, snapshot_times=(0.01,))
    with pytest.raises(ConfigError, match=r"ill-posed"):
        simulate(cfg, {"nu": [0.1, 2.5]})


def test_unknown_sample_parameter():
    cfg = SimConfig(N=8, L=4.0, snapshot_times=(0.01,))
    with pytest.raises(ConfigError, match=r"unknown sample parameter.*'kappa'"):
        simulate(cfg, {"kappa": [1.0]})


def test_config_json_round_trip_and_unknown_keys():
    cfg = SimConfig(N=32, L=16.0, nu=0.2, n_v=5, snapshot_times=(0.5, 1.0), dtype="float32")
    assert SimConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(ConfigError, match=r"unknown config key.*'gamma'.*valid keys"):
        SimConfig.from_dict({"gamma": 1.0})


def test_divergence_is_reported_with_sample_parameters_and_step():
    # an initial state huge enough that the cubic term overflows within a few steps
    N = 8
    cfg = SimConfig(N=N, L=4.0, dt=1e-3, snapshot_times=(0.05,))
    init = np.zeros((2, 4, N, N))
    init[0] = 0.1
    init[1] = 1e60
    with pytest.raises(DivergenceError) as err:
        simulate(cfg, {"eta": [0.1, 0.7]}, initial=init, sample_indices=[10, 11], check_every=5)
    e = err.value
    assert e.sample == 11 and e.params["eta"] == 0.7 and 0 < e.step <= 50
    assert "sample 11" in str(e) and "eta=0.7" in str(e)


def test_divergence_error_survives_pickling():
    """It must cross process boundaries (Dask workers) intact."""
    import pickle

    e = pickle.loads(pickle.dumps(DivergenceError(4, 12, {"eta": 0.3, "n_v": 2, "nu": 0.0})))
    assert (e.sample, e.step, e.params["eta"]) == (4, 12, 0.3)
    assert "sample 4" in str(e)
