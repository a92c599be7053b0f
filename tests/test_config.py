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


# ------------------------------------------------------------------ the one coercion helper (tdglnre._validate)
def test_validate_helpers_return_typed_values():
    from tdglnre._validate import as_bool, as_choice, as_float, as_int, as_pos_float, int_if_integral, parse_number

    assert as_int("n", np.int64(7), 1) == 7 and type(as_int("n", np.int64(7), 1)) is int
    assert as_float("x", 1) == 1.0 and type(as_float("x", 1)) is float
    assert as_pos_float("tol", "0.5") == 0.5
    assert as_bool("relax", np.bool_(True)) is True
    assert as_choice("device", "cpu", ("cpu", "cuda")) == "cpu"
    assert parse_number("N", "32", integer=True) == 32 and parse_number("L", "1e1") == 10.0
    assert int_if_integral(4.0) == 4 and int_if_integral(2.5) == 2.5 and int_if_integral(True) is True


@pytest.mark.parametrize("call, message", [
    (lambda v: v.as_int("n_eig", 0, 1), "n_eig must be an integer >= 1, got 0"),
    (lambda v: v.as_int("n_eig", 2.0, 1), "n_eig must be an integer >= 1, got 2.0"),
    (lambda v: v.as_int("seed", True), "seed must be an integer, got True"),
    (lambda v: v.as_float("eig_tol", -1, positive=False), "eig_tol must be finite and >= 0, got -1"),
    (lambda v: v.as_pos_float("tol", 0.0), "tol must be finite and > 0, got 0.0"),
    (lambda v: v.as_float("x", "abc"), "x must be a number, got 'abc'"),
    (lambda v: v.as_float("x", float("nan")), "x must be finite, got nan"),
    (lambda v: v.as_bool("dos", 1), "dos must be True or False, got 1"),
    (lambda v: v.as_choice("device", "tpu", ("cpu", "cuda")), "unknown device 'tpu'; valid: ['cpu', 'cuda']"),
    (lambda v: v.parse_number("N", "abc"), "N: expected a number, got 'abc'"),
    (lambda v: v.parse_number("N", "4.5", integer=True), "N: expected an integer, got '4.5'"),
])
def test_validate_helpers_raise_config_error_naming_the_field(call, message):
    import tdglnre._validate as v

    with pytest.raises(ConfigError) as err:
        call(v)
    assert str(err.value) == message


def test_settings_objects_raise_config_error():
    from tdglnre.analysis.hessian import HessianOptions
    from tdglnre.nre.settings import NetworkConfig, TrainingError, TrainSettings

    with pytest.raises(ConfigError, match="n_eig must be an integer >= 1, got 0"):
        HessianOptions(n_eig=0)
    with pytest.raises(ConfigError, match="filters must be positive integers"):
        NetworkConfig(filters=(0,))
    with pytest.raises(ConfigError, match="epochs must be >= 1, got 0") as err:
        TrainSettings(epochs=0)
    assert isinstance(err.value, TrainingError)  # what callers caught before


def test_from_dict_turns_integral_floats_into_ints():
    cfg = SimConfig.from_dict({**SimConfig().to_dict(), "N": 16.0, "n_v": 3.0})
    assert (cfg.N, cfg.n_v) == (16, 3) and type(cfg.N) is int and type(cfg.n_v) is int


def test_rng_lives_outside_the_solver_and_is_reexported():
    import tdglnre.physics.rng as rng
    import tdglnre.physics.solver as solver

    assert solver.sample_rng is rng.sample_rng and solver.initial_state is rng.initial_state
    assert (rng.SEED_MAX, rng.STREAM_INITIAL_STATE, rng.STREAM_PRIOR, rng.STREAM_DISORDER) == (2**63 - 1, 0, 1, 2)
    a = rng.initial_state(5, 3, 8)
    assert a.shape == (4, 8, 8) and np.array_equal(a, rng.sample_rng(5, 3).uniform(-0.5, 0.5, size=(4, 8, 8)))
