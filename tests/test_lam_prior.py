"""The London depth λ as a per-sample parameter (issue 21, item 1).

A prior over λ (log-uniform: a length whose Type I / 1.5 / II boundaries are ratios) draws λ per sample,
the screened kernel runs each sample at its own c = λ²K, the time-step bound is checked at both ends of
the λ box, θ stores λ, and a λ drawn per sample gives bit for bit the run of a config with that λ.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import tdglnre
from tdglnre.errors import ConfigError
from tdglnre.io.ensemble import open_ensemble
from tdglnre.io.generate import generate_ensemble
from tdglnre.io.presets import load_preset
from tdglnre.io.priors import Prior
from tdglnre.physics.config import SimConfig, as_sample_arrays

# 16×16 sites, h = 0.5; σ large enough for the explicit step at λ = 4
TINY = ["N=16", "L=8", "snapshot_times=0.05,0.1", "prior.n_v=int_uniform(1,4)", "sigma=16",
        "prior.lam=log_uniform(1,4)"]


def test_log_uniform_draws_are_uniform_in_log_and_the_density_integrates_to_one():
    pr = Prior({"eta": "uniform(0, 1)", "lam": "log_uniform(0.5, 8)"})
    lam = pr.sample(3, np.arange(4000))[:, 1]
    assert lam.min() >= 0.5 and lam.max() < 8
    u = np.log(lam / 0.5) / math.log(16.0)  # uniform on [0, 1) for a log-uniform λ
    assert abs(u.mean() - 0.5) < 4 * math.sqrt(1 / 12 / 4000)
    assert abs(np.mean(u < 0.25) - 0.25) < 4 * math.sqrt(0.25 * 0.75 / 4000)
    x = np.linspace(0.5, 8, 200001)
    dens = np.exp(pr.log_prob(np.stack([np.full_like(x, 0.5), x], axis=1)))
    assert np.trapezoid(dens, x) == pytest.approx(1.0, rel=1e-6)
    assert np.isneginf(pr.log_prob(np.array([[0.5, 9.0]]))).all()


@pytest.mark.parametrize("spec, match", [("log_uniform(0, 2)", "0 < low"), ("log_uniform(-1, 2)", "0 < low"),
                                         ("fixed(-1)", "must be > 0")])
def test_bad_lam_priors_are_refused(spec, match):
    with pytest.raises(ConfigError, match=match):
        Prior({"lam": spec})


def test_a_prior_over_lam_leaves_the_other_draws_unchanged():
    base = Prior({"eta": "uniform(0, 1.5)", "n_v": "int_uniform(1, 8)", "T": "uniform(0, 0.01)"})
    with_lam = base.replace(lam="log_uniform(1, 4)")
    assert with_lam.inferred == ("eta", "n_v", "T", "lam")
    np.testing.assert_array_equal(with_lam.sample(7, range(20))[:, :3], base.sample(7, range(20)))
    assert Prior.from_json(with_lam.to_json()) == with_lam


def test_prior_box_is_checked_at_both_ends_of_lam():
    cfg, pr = load_preset("quick", TINY)
    assert cfg.screened and cfg.lam == 4.0  # a config without screening takes the box's largest λ
    # the upper end: c = λ²K grows until the vector potential's explicit step is unstable
    with pytest.raises(ConfigError, match=r"prior box corner .*lam=40\).*not below the largest stable"):
        load_preset("quick", TINY + ["prior.lam=log_uniform(1,40)", "lam=2"])
    # the lower end: the lattice (h = 0.5) must resolve λ
    with pytest.raises(ConfigError, match=r"prior box corner .*lam=0.3\).*below the lattice spacing"):
        load_preset("quick", TINY + ["prior.lam=log_uniform(0.3,2)", "lam=2"])


def test_per_sample_lam_needs_a_screened_config_and_finite_values():
    cfg = SimConfig(N=16, L=8.0, sigma=16.0)
    with pytest.raises(ConfigError, match="needs a screened config"):
        as_sample_arrays(cfg, {"lam": [2.0]}, None)
    with pytest.raises(ConfigError, match="finite number"):
        as_sample_arrays(cfg.replace(lam=2.0), {"lam": [math.inf]}, None)
    assert "lam" not in as_sample_arrays(cfg.replace(lam=2.0), {"eta": [0.1]}, None)


def test_a_per_sample_lam_on_the_device_follows_the_cpu():
    """The CUDA screened kernel takes c = λ²K per sample from the same run plan (simulator without a GPU)."""
    from tdglnre.physics import cuda as tc

    usable, why = tc.cuda_status()
    if not usable:
        pytest.skip(f"CUDA backend not usable: {why}")
    cfg = SimConfig(N=8, L=4.0, D=(1.0, 1.0), dt=0.002, eta=0.3, n_v=1, lam=2.0, sigma=2.0, snapshot_times=(0.004,))
    params = {"eta": [0.1, 0.3], "n_v": [1, 2], "nu": [0.0, 0.0], "lam": [1.0, 3.0]}
    cpu = tdglnre.simulate(cfg, params, seed=2, device="cpu")
    dev = tdglnre.simulate(cfg, params, seed=2, device="cuda")
    np.testing.assert_allclose(dev.psi, cpu.psi, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(dev.a, cpu.a, rtol=1e-11, atol=1e-12)
    # sample 0 carries λ = 1, not the config's 2: the device run equals a λ = 1 config's sample 0
    one = tdglnre.simulate(cfg.replace(lam=1.0), {k: v[:1] for k, v in params.items() if k != "lam"}, seed=2)
    np.testing.assert_allclose(dev.a[0], one.a[0], rtol=1e-11, atol=1e-12)
    two = tdglnre.simulate(cfg, {k: v[:1] for k, v in params.items() if k != "lam"}, seed=2)
    assert np.abs(two.a[0] - one.a[0]).max() > 1e-6  # and λ matters at these steps


def test_per_sample_lam_runs_as_the_config_with_that_lam_and_theta_stores_it(tmp_path):
    cfg, pr = load_preset("quick", TINY)
    path = tmp_path / "lam.h5"
    generate_ensemble(cfg, pr, 3, 5, path, batch_size=3, store_fields=True, progress=False)
    with open_ensemble(path) as ens:
        assert ens.parameter_names == ["eta", "n_v", "lam"]
        theta, psi = ens.theta(), ens.psi()
    np.testing.assert_array_equal(theta, pr.sample(5, range(3)))
    assert len(set(theta[:, 2])) == 3  # three different λ in one batch
    for k in (0, 2):
        one = cfg.replace(lam=float(theta[k, 2]))
        res = tdglnre.simulate(one, {"eta": theta[k, 0], "n_v": theta[k, 1]}, seed=5, sample_indices=[k])
        np.testing.assert_array_equal(res.psi[0], psi[k])
