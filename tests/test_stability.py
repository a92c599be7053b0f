"""Time-step bound, runtime oscillation detection, flux aliasing and seed range (issue 9, items 1 and 7).

Every assertion is a physical or numerical fact: the accepted dt gives a smooth
state, the rejected one a grid-scale checkerboard; the detector turns that
checkerboard into a DivergenceError; fluxes beyond the lattice's resolution
alias onto smaller ones.
"""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

from tdglnre import ConfigError, DivergenceError, SimConfig, simulate
from tdglnre.io.priors import Prior
from tdglnre.physics import kernels
from tdglnre.physics.config import density_bound, rate_bound, stability_limit, time_step_limit
from tdglnre.physics.lattice import seam_phases
from tdglnre.physics.solver import SEED_MAX, initial_state, sample_rng

# the "quick" preset's physics on a small lattice: h = 0.5, D = (4, 1), alpha = -1, beta = 1
H = 0.5
PHYS = dict(alpha=(-1.0, -1.0), beta=(1.0, 1.0), D=(4.0, 1.0))


def _staggered_ratio(rho: np.ndarray) -> float:
    """|Σ ρ (−1)^(i+j)| / Σ ρ: 1 for a pure checkerboard, ~0 for a smooth density."""
    N = rho.shape[-1]
    sign = (-1.0) ** np.add.outer(np.arange(N), np.arange(N))
    return float(abs((rho * sign).sum()) / rho.sum())


def _cfg(N: int, dt: float, t_end: float, **kw) -> SimConfig:
    steps = int(round(t_end / dt))
    return SimConfig(N=N, L=N * H, dt=dt, snapshot_times=(steps * dt,), **PHYS, **kw)


@pytest.fixture
def no_dt_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bypass the time-step validation (the private path to an unstable run)."""
    monkeypatch.setattr(SimConfig, "_check_time_step", lambda self, eta, nu, delta=0.0, lam=None: None)


# ---------------------------------------------------------------- 1. the bound
def test_density_bound_is_the_uniform_fixed_point_and_invariant():
    # equal bands: the uniform equilibrium |psi|^2 = (eta - alpha)/beta
    r1, r2 = density_bound((-1.0, -1.0), (1.0, 1.0), 1.4)
    assert r1 == pytest.approx(2.4, rel=1e-12) and r2 == pytest.approx(2.4, rel=1e-12)
    # never below the quench's initial |psi|^2 <= 0.5 (alpha > 0: psi decays from there)
    assert density_bound((1.0, 1.0), (1.0, 1.0), 0.0) == pytest.approx((0.5, 0.5))
    # unequal bands: the box's faces are stationary or inward: beta r^3 + alpha r >= |eta| r_other
    alpha, beta, eta = (-1.0, -0.7), (1.0, 1.3), -0.9
    R = density_bound(alpha, beta, eta)
    r = [math.sqrt(x) for x in R]
    for i, j in ((0, 1), (1, 0)):
        assert beta[i] * r[i] ** 3 + alpha[i] * r[i] >= abs(eta) * r[j] * (1 - 1e-12)
    # and it is tight: the uniform state at the box's corner is stationary
    for i, j in ((0, 1), (1, 0)):
        assert beta[i] * r[i] ** 3 + alpha[i] * r[i] == pytest.approx(abs(eta) * r[j], rel=1e-9)


def test_strong_drag_exceeds_the_invariant_box_but_not_the_margin():
    """With drag the invariant-box argument fails (cross diffusion); the 1.25 margin covers what it does."""
    from tdglnre.physics.config import DENSITY_MARGIN

    eta, nu = 1.5, -0.95 * math.sqrt(PHYS["D"][0] * PHYS["D"][1])
    dt = 0.999 * time_step_limit(PHYS["D"], PHYS["alpha"], PHYS["beta"], eta, nu, H)
    times = tuple(k * 50 * dt for k in range(1, 8))
    cfg = SimConfig(N=16, L=8.0, dt=dt, eta=eta, nu=nu, n_v=3, snapshot_times=times, **PHYS)
    res = simulate(cfg, seed=0, n_samples=1)
    r = density_bound(cfg.alpha, cfg.beta, eta)
    worst = max((np.abs(res.psi[0, :, b]) ** 2).max() / r[b] for b in (0, 1))
    assert 1.0 < worst <= DENSITY_MARGIN
    # without drag the box holds exactly
    res0 = simulate(cfg.replace(nu=0.0), seed=0, n_samples=1)
    assert max((np.abs(res0.psi[0, :, b]) ** 2).max() / r[b] for b in (0, 1)) <= 1.0


def test_issue_reproduction_dt_is_rejected_with_the_safe_step():
    # issue 9: dt = 1/65 passed the gradient-only check and produced a checkerboard at eta = 1.4
    dt = 0.015384615384615385
    assert dt < stability_limit(PHYS["D"], 0.0, H)  # the old check accepted it
    cfg = _cfg(32, dt, 10.0, eta=1.4, n_v=4)
    with pytest.raises(ConfigError, match=r"largest stable explicit Euler step 0\.0147037 = 2/mu_max") as err:
        cfg.validate()
    msg = str(err.value)
    assert "local alpha + 3*beta*R" in msg and "eta=1.4" in msg and "diffusion" in msg
    # the stiff case: eta = 19.9 at dt = 0.0125 (rho1 in 0.13..30.5 instead of 3.6..20.1)
    stiff = SimConfig(N=8, L=4.0, dt=0.0125, eta=19.91234351208603, n_v=3, snapshot_times=(2.0,), **PHYS)
    assert stiff.dt < stability_limit(PHYS["D"], 0.0, H)
    with pytest.raises(ConfigError, match="largest stable explicit Euler step"):
        stiff.validate()


def test_rejected_dt_is_unstable_and_accepted_dt_at_largest_prior_eta_is_smooth(monkeypatch):
    prior = Prior({"eta": "uniform(0, 1.5)", "n_v": "int_uniform(1, 8)", "nu": "fixed(0)"})
    dt_max = time_step_limit(PHYS["D"], PHYS["alpha"], PHYS["beta"], prior.high("eta"), 0.0, H)
    inside = _cfg(32, 0.99 * dt_max, 10.0, eta=1.5, n_v=4)
    outside = _cfg(32, 1.05 * dt_max, 10.0, eta=1.5, n_v=4)
    # validation: the whole prior box passes just inside the bound and fails just outside, at its largest eta
    prior.validate(inside)
    with pytest.raises(ConfigError, match=r"prior box corner \(eta=1\.5, n_v=1, nu=0\).*largest stable explicit"):
        prior.validate(_cfg(32, 1.01 * dt_max, 10.0))
    with pytest.raises(ConfigError, match=r"largest stable explicit Euler step"):
        prior.validate(outside)
    # physics: just inside, the relaxed density is smooth (no grid-scale component)
    res = simulate(inside, {"eta": [1.5], "n_v": [4]}, seed=11)
    for band in (0, 1):
        assert _staggered_ratio(np.abs(res.psi[0, 0, band]) ** 2) < 1e-4
    # 5 % outside (validation bypassed) the explicit step is unstable: the detector stops it
    monkeypatch.setattr(SimConfig, "_check_time_step", lambda self, eta, nu, delta=0.0, lam=None: None)
    with pytest.raises(DivergenceError) as err:
        simulate(outside, {"eta": [1.5], "n_v": [4]}, seed=11)
    assert "unstable" in err.value.reason


def test_bound_covers_every_eta_of_the_prior_box():
    # the safe step shrinks with |eta|: a dt valid at eta = 0 can be invalid at the box's largest eta
    cfg = _cfg(16, 0.0148, 1.0)
    cfg.validate()
    with pytest.raises(ConfigError, match=r"eta=1\.5"):
        Prior({"eta": "uniform(0, 1.5)", "n_v": "fixed(1)"}).validate(cfg)
    with pytest.raises(ConfigError, match=r"eta=-1\.5"):
        Prior({"eta": "uniform(-1.5, 0.2)", "n_v": "fixed(1)"}).validate(cfg)
    Prior({"eta": "uniform(-0.2, 0.2)", "n_v": "fixed(1)"}).validate(cfg)


def test_rate_bound_dominates_the_linearised_update_of_random_bounded_states():
    """The largest rate of the kernel's Jacobian over states with |psi_i|^2 <= R_i never exceeds mu_max."""
    from tdglnre.physics.solver import EnergyModel

    N, eta, nu = 4, 0.8, 0.6
    cfg = SimConfig(N=N, L=N * H, eta=eta, n_v=1, nu=nu, snapshot_times=(0.01,), **PHYS)
    rb = rate_bound(cfg.D, cfg.alpha, cfg.beta, eta, nu, cfg.h)
    model = EnergyModel(cfg)
    rng = np.random.default_rng(5)
    worst = 0.0
    for _ in range(3):
        amp = np.sqrt(rng.uniform(0, 1, (2, N, N)) * np.array(rb.density)[:, None, None])
        ph = rng.uniform(-np.pi, np.pi, (2, N, N))
        z = np.stack([amp[0] * np.cos(ph[0]), amp[0] * np.sin(ph[0]),
                      amp[1] * np.cos(ph[1]), amp[1] * np.sin(ph[1])]).reshape(-1)
        # Jacobian of -d_t psi by central differences of the rhs
        eps = 1e-6
        J = np.empty((z.size, z.size))
        for k in range(z.size):
            e = np.zeros(z.size)
            e[k] = eps
            J[:, k] = -(model.rhs(z + e) - model.rhs(z - e)).reshape(-1) / (2 * eps)
        worst = max(worst, np.linalg.eigvalsh(0.5 * (J + J.T)).max())
    assert worst <= rb.rate
    assert worst > 0.5 * rb.rate  # the bound is not vacuous


def test_shipped_presets_and_default_config_pass_the_new_bound():
    from tdglnre.io.presets import list_presets, load_preset

    SimConfig().validate()
    for name in list_presets():
        cfg, prior = load_preset(name)
        prior.validate(cfg)
        worst = min(time_step_limit(cfg.D, cfg.alpha, cfg.beta, eta, nu, cfg.h)
                    for eta in (prior.low("eta"), prior.high("eta"))
                    for nu in (prior.low("nu"), prior.high("nu")))
        assert cfg.dt < worst


# ---------------------------------------------------------------- 2. runtime detection
def test_detector_flags_checkerboard_oscillation_and_nan_but_not_smooth_states():
    N = 8
    sign = (-1.0) ** np.add.outer(np.arange(N), np.arange(N))
    smooth = np.ones((4, N, N))
    value = np.zeros(1)
    assert kernels._check_state(smooth, 0.999 * smooth, 0.5, 0.5, True, value) == kernels.OK
    checker = smooth.copy()
    checker[0] = 1.0 + 0.9 * sign  # band 1 density (1 ± 0.9)^2 + 1: staggered ratio 0.64
    assert kernels._check_state(checker, checker, 0.5, 0.5, True, value) == kernels.STAGGERED
    assert value[0] == pytest.approx(_staggered_ratio(checker[0] ** 2 + checker[1] ** 2))
    flip = smooth * sign  # psi flipped on every other site since the last step: relative change sqrt(2)
    assert kernels._check_state(smooth, flip, 0.5, 0.5, True, value) == kernels.OSCILLATION
    assert value[0] == pytest.approx(np.linalg.norm(smooth - flip) / np.linalg.norm(smooth))
    bad = smooth.copy()
    bad[2, 3, 4] = np.nan
    assert kernels._check_state(bad, smooth, 0.5, 0.5, True, value) == kernels.NONFINITE
    # during the grace period only non-finite values count
    assert kernels._check_state(checker, flip, 0.5, 0.5, False, value) == kernels.OK


def test_detector_raises_divergence_error_for_the_issue_reproduction(no_dt_check):
    # the quick preset's lattice (N = 32, L = 16); the state saturates in a checkerboard after ~400 steps
    cfg = _cfg(32, 0.015384615384615385, 10.0, eta=1.4, n_v=4)
    with pytest.raises(DivergenceError) as err:
        simulate(cfg, {"eta": [1.4, 1.4]}, seed=11)
    e = err.value
    assert e.sample == 0 and e.params["eta"] == 1.4 and e.step % 100 == 0
    assert ("checkerboard" in e.reason or "oscillation" in e.reason) and e.reason in str(e)


def test_detector_raises_for_the_stiff_josephson_case(no_dt_check):
    cfg = SimConfig(N=8, L=4.0, dt=0.0125, eta=19.91234351208603, n_v=3, snapshot_times=(2.0,), **PHYS)
    with pytest.raises(DivergenceError, match="unstable"):
        simulate(cfg, seed=1, n_samples=1)
    # the same physics at a safe step runs and stays within the density bound
    safe = cfg.replace(dt=0.005)
    res = simulate(safe, seed=1, n_samples=1)
    rho = np.abs(res.psi[0, 0]) ** 2
    assert rho.max() <= max(density_bound(cfg.alpha, cfg.beta, cfg.eta))


@pytest.mark.parametrize("N", [4, 8])
def test_no_false_alarm_at_the_edge_of_the_bound_on_small_lattices(N):
    """White-noise starts at dt just below the bound leave grid-scale content that dies in the grace period."""
    for eta, nu in ((0.0, 0.0), (1.5, 1.0)):
        dt = 0.9999 * time_step_limit(PHYS["D"], PHYS["alpha"], PHYS["beta"], eta, nu, H)
        times = tuple(k * dt for k in (1, 5, 20, 100, 101, 150, 300))
        cfg = SimConfig(N=N, L=N * H, dt=dt, eta=eta, nu=nu, snapshot_times=times, **PHYS)
        simulate(cfg, n_samples=20, seed=3, check_every=1)  # raises on a false alarm


def test_detector_leaves_good_runs_bitwise_unchanged():
    """Kernel output equals an independent step-by-step replay of the same sweeps."""
    N = 8
    cfg = SimConfig(N=N, L=4.0, dt=2e-3, eta=0.7, n_v=2, nu=0.3, snapshot_times=(0.2, 0.4))
    res = simulate(cfg, seed=9, n_samples=1, check_every=7)
    co = kernels.coefficients(cfg.D, cfg.alpha, cfg.beta, cfg.h, np.array([0.7]), np.array([0.3]),
                              scale=cfg.dt, keep=1.0)[0]
    ly, lx = kernels.link_tables(N, cfg.L, np.array([2]))
    cur = initial_state(9, 0, N)
    nxt = np.empty_like(cur)
    for step in range(1, cfg.n_steps + 1):
        kernels._sweep(cur, nxt, co, ly[0], lx[0])
        cur, nxt = nxt, cur
        if step in cfg.snapshot_steps:
            t = cfg.snapshot_steps.index(step)
            assert np.array_equal(res.psi[0, t, 0], cur[0] + 1j * cur[1])
            assert np.array_equal(res.psi[0, t, 1], cur[2] + 1j * cur[3])


def test_divergence_error_with_reason_survives_pickling():
    e = DivergenceError(4, 300, {"eta": 0.3, "n_v": 2, "nu": 0.0}, reason="grid-scale checkerboard")
    f = pickle.loads(pickle.dumps(e))
    assert (f.sample, f.step, f.params, f.reason) == (4, 300, e.params, "grid-scale checkerboard")
    assert str(f) == str(e) and "grid-scale checkerboard" in str(f)
    # the default reason keeps the NaN/Inf wording
    assert "solver diverged (NaN/Inf) for sample 1" in str(DivergenceError(1, 2, {}))
    assert pickle.loads(pickle.dumps(DivergenceError(1, 2, {}))).reason == DivergenceError.NONFINITE


# ---------------------------------------------------------------- 3. flux aliasing
def test_flux_beyond_the_lattice_resolution_aliases_and_is_refused():
    N, L = 8, 4.0
    # the physics: n_v and n_v + N^2 have the same links mod 2*pi, so the same dynamics
    a = np.array(seam_phases(N, L, 0))
    b = np.array(seam_phases(N, L, N * N))
    assert np.allclose(np.exp(1j * a), np.exp(1j * b), atol=1e-12)
    cfg = SimConfig(N=N, L=L, snapshot_times=(0.01,))
    cfg.replace(n_v=16).validate()  # flux pi/2 per plaquette: the limit itself is allowed
    cfg.replace(n_v=-16).validate()
    for n_v in (17, -17, 64):
        with pytest.raises(ConfigError, match=r"\|n_v\| <= N\^2/4 = 16"):
            cfg.replace(n_v=n_v).validate()
    with pytest.raises(ConfigError, match=r"\|n_v\| <= N\^2/4 = 16"):
        simulate(cfg, {"n_v": [3, 64]})
    with pytest.raises(ConfigError, match=r"prior box corner .*n_v=64.*\|n_v\| <= N\^2/4 = 16"):
        Prior({"eta": "uniform(0, 1)", "n_v": "int_uniform(1, 64)"}).validate(cfg)
    Prior({"eta": "uniform(0, 1)", "n_v": "int_uniform(-16, 16)"}).validate(cfg)


# ---------------------------------------------------------------- 4. seed range
def test_seed_range_is_0_to_2_pow_63_minus_1():
    assert SEED_MAX == 2**63 - 1
    a = sample_rng(SEED_MAX, 0).uniform()
    assert a != sample_rng(SEED_MAX - 1, 0).uniform()
    for bad in (-1, 2**63, 18446744073709551616, True, 1.5):
        with pytest.raises(ConfigError, match=r"seed must be an integer in 0\.\.2\*\*63-1"):
            sample_rng(bad, 0)
    with pytest.raises(ConfigError, match=r"seed must be an integer in 0\.\.2\*\*63-1"):
        simulate(SimConfig(N=4, L=2.0, snapshot_times=(0.01,)), seed=2**64, n_samples=1)
    with pytest.raises(ConfigError, match=r"seed must be an integer"):
        Prior({"eta": "uniform(0, 1)"}).sample(2**63, [0])
