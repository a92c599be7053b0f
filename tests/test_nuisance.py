"""Nuisance physics in the simulator: Langevin thermal noise and pinning disorder.

docs/physics.md, "Nuisance physics": the thermal kick's fluctuation–dissipation
normalisation (checked against the exact stationary variance of the lattice
Euler–Maruyama scheme), the counter-based noise stream's reproducibility, the
disorder field's statistics, energy/gradient consistency with disorder, the
time-step bound's disorder term, and bitwise equality of clean runs.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tdglnre.errors import ConfigError
from tdglnre.io.priors import Prior
from tdglnre.physics import kernels, reference
from tdglnre.physics._thermal import kick
from tdglnre.physics.config import SimConfig, disorder_clip, rate_bound, time_step_limit
from tdglnre.physics.lattice import gaussian_filter_field, landau_links
from tdglnre.physics.solver import (EnergyModel, disorder_field, initial_state, simulate, state_to_psi,
                                    thermal_amplitude)

SMALL = SimConfig(N=12, L=6.0, dt=0.01, snapshot_times=(0.3, 0.6), eta=0.4, n_v=2, nu=0.3)


# ------------------------------------------------------------------ the noise stream
def test_noise_stream_is_the_reference_transcription_and_standard_normal():
    key = kernels.noise_key(11, 5)
    assert int(key) == reference.noise_key(11, 5)
    assert kernels.noise_key(11, 5) != kernels.noise_key(11, 6) != kernels.noise_key(12, 5)
    g = kernels.thermal_normals(key, 9, 32)
    np.testing.assert_allclose(g, reference.thermal_normals(int(key), 9, 32), rtol=1e-13, atol=1e-13)
    # 4·32² = 4096 deviates: mean 0 ± 1/64, variance 1 ± sqrt(2/4096), 5σ bounds
    n = g.size
    assert abs(g.mean()) < 5.0 / math.sqrt(n)
    assert abs(g.var() - 1.0) < 5.0 * math.sqrt(2.0 / n)
    # fourth moment of a normal is 3 (Box–Muller shape, not just scale)
    assert abs(np.mean(g**4) - 3.0) < 5.0 * math.sqrt(96.0 / n)
    # other steps, samples and seeds are uncorrelated with it
    for other in (kernels.thermal_normals(key, 10, 32), kernels.thermal_normals(kernels.noise_key(11, 6), 9, 32),
                  kernels.thermal_normals(kernels.noise_key(12, 5), 9, 32)):
        assert abs(np.corrcoef(g.ravel(), other.ravel())[0, 1]) < 5.0 / math.sqrt(n)


def _kick(state: np.ndarray, key, step: int) -> np.ndarray:
    """Normals of the dtype-dispatched kernel kick (float64 or float32 state) at ``step``."""
    kick(state, 1.0, key, step)
    return state


def test_noise_stream_statistics_over_a_million_deviates():
    """Mean, variance, kurtosis, KS vs N(0, 1) and lag-1 correlations of the stream, float64 and float32."""
    from scipy import stats

    key = kernels.noise_key(3, 1)
    N = 512  # 4·512² ≈ 1e6 deviates per step
    g = kernels.thermal_normals(key, 40, N)
    g32 = _kick(np.zeros((4, N, N), np.float32), key, 40).astype(np.float64)
    # the float32 kernel turns the same words into float32 normals
    assert np.max(np.abs(g32 - g)) < 1e-4
    nxt = kernels.thermal_normals(key, 41, N)
    for x in (g, g32):
        v = x.ravel()
        n = v.size
        assert abs(v.mean()) < 5.0 / math.sqrt(n)
        assert abs(v.var() - 1.0) < 5.0 * math.sqrt(2.0 / n)
        assert abs(np.mean(v**4) - 3.0) < 5.0 * math.sqrt(96.0 / n)
        assert stats.kstest(v, "norm").pvalue > 1e-4
        # tails: P(|g| > 4) = 6.3e-5 (about 66 of 1e6)
        tail = np.count_nonzero(np.abs(v) > 4.0)
        expect = n * 2.0 * stats.norm.sf(4.0)
        assert abs(tail - expect) < 5.0 * math.sqrt(expect)
        bound = 5.0 / math.sqrt(x[0].size)
        pairs = [(x[:, :, :-1], x[:, :, 1:]),        # adjacent sites along j (adjacent counters)
                 (x[:, :-1, :], x[:, 1:, :]),        # adjacent rows
                 (x[0], x[1]), (x[2], x[3]),         # Re/Im of one band: radius shared, angle from one word
                 (x[0], x[2]), (x[1], x[3]),         # the two bands of a site: angles from one word's halves
                 (x, nxt)]                           # the same site at adjacent steps
        for a, b in pairs:
            assert abs(np.corrcoef(a.ravel(), b.ravel())[0, 1]) < bound
        # |g|² of the two components of a band is exponential: independence of radius and angle
        assert abs(np.corrcoef(x[0].ravel() ** 2, x[1].ravel() ** 2)[0, 1]) < bound


def test_float32_kick_is_the_float64_stream_rounded():
    key = kernels.noise_key(8, 2)
    g = kernels.thermal_normals(key, 3, 16)
    st = np.full((4, 16, 16), 0.25, np.float32)
    kick(st, 0.01, key, 3)
    np.testing.assert_allclose(st, 0.25 + 0.01 * g, rtol=0, atol=5e-7)
    # the float64 kick adds exactly amp·g
    st64 = np.full((4, 16, 16), 0.25)
    kick(st64, 0.01, key, 3)
    assert np.array_equal(st64, 0.25 + 0.01 * g)


def test_thermal_amplitude_is_the_fluctuation_dissipation_value():
    # ⟨|Δψ|²⟩ = 2·amp² = 2 T dt / h² per site and step (docs/physics.md, "Thermal noise")
    amp = thermal_amplitude(0.3, 0.01, 0.5)
    assert 2.0 * amp**2 == pytest.approx(2.0 * 0.3 * 0.01 / 0.25, rel=1e-14)


# ------------------------------------------------------------------ OU variance of the linear field
def _linear_config(dt: float) -> SimConfig:
    # β is tiny relative to α and T small, so the quartic term is negligible (β·2⟨|ψ|²⟩/α ~ 1e-4)
    return SimConfig(N=16, L=16.0, dt=dt, alpha=(1.0, 1.0), beta=(1e-3, 1e-3), D=(1.5, 1.0), eta=0.0, n_v=0,
                     nu=0.0, snapshot_times=tuple(10.0 + 5.0 * k for k in range(6)))


def test_thermal_noise_gives_the_exact_stationary_mode_variance_of_the_euler_scheme():
    """E|ψ̂_k|² = T / (h² λ_k (1 − dt λ_k / 2)) for the free field, λ_k = D κ_k + α (unitary FFT)."""
    # dt = 0.02 keeps the step-to-step change of this noise-dominated state (≈ 0.43) below the
    # oscillation check's 0.5 while dt·λ_max/2 = 0.13 makes the scheme's correction visible
    dt, T, S = 0.02, 1e-3, 32
    cfg = _linear_config(dt)
    N, h = cfg.N, cfg.h
    res = simulate(cfg, {"T": T}, n_samples=S, seed=5, initial=np.zeros((S, 4, N, N)))
    m = np.arange(N)
    kappa = (4.0 / h**2) * (np.sin(np.pi * m / N)[:, None] ** 2 + np.sin(np.pi * m / N)[None, :] ** 2)
    for b in range(2):
        lam = cfg.D[b] * kappa + cfg.alpha[b]
        exact = T / (h**2 * lam * (1.0 - 0.5 * dt * lam))
        continuum = T / (h**2 * lam)
        power = np.abs(np.fft.fft2(res.psi[:, :, b], axes=(-2, -1)) / N) ** 2  # (S, T, N, N)
        ratio = (power / exact).reshape(-1, N, N)  # exponential(1) per mode and sample if exact
        for name, sel in (("low", lam < 3.0), ("high", lam > 0.75 * lam.max())):
            vals = ratio[:, sel]
            sigma = 1.0 / math.sqrt(vals.size)  # the snapshots are 5 ≥ 5/λ apart: independent
            assert abs(vals.mean() - 1.0) < 4.0 * sigma, (b, name, vals.mean(), sigma)
        # the continuum value is excluded at the top of the spectrum: the scheme's own variance is tested
        top = lam > 0.75 * lam.max()
        vals_c = (power / continuum).reshape(-1, N, N)[:, top]
        assert abs(vals_c.mean() - 1.0) > 5.0 / math.sqrt(vals_c.size)
        # and each single mode (k = 0, one middle and the top mode) within 4.5σ
        for mx, my in ((0, 0), (3, 5), (N // 2, N // 2)):
            v = ratio[:, mx, my]
            assert abs(v.mean() - 1.0) < 4.5 / math.sqrt(v.size), (b, mx, my, v.mean())


# ------------------------------------------------------------------ reproducibility
def test_nuisance_runs_are_bitwise_independent_of_batching_threads_and_subsets():
    params = {"T": [0.0, 0.02, 0.05, 0.0, 0.01], "delta": [0.0, 0.0, 0.3, -0.2, 0.1],
              "eta": [0.1, 0.4, 0.2, 0.3, 0.0]}
    a = simulate(SMALL, params, seed=21, batch_size=5)
    b = simulate(SMALL, params, seed=21, batch_size=2, threads=1)
    c = simulate(SMALL, params, seed=21, batch_size=1, threads=2)
    assert np.array_equal(a.psi, b.psi) and np.array_equal(a.psi, c.psi)
    # sample 2 alone (as a Dask worker or a resumed run computes it) is the same sample
    one = simulate(SMALL, {k: [v[2]] for k, v in params.items()}, seed=21, sample_indices=[2])
    assert np.array_equal(one.psi[0], a.psi[2])
    # another seed gives another noise and another landscape
    d = simulate(SMALL, params, seed=22, initial=np.stack([initial_state(21, k, SMALL.N) for k in range(5)]))
    assert not np.array_equal(d.psi[2], a.psi[2])
    assert np.array_equal(d.psi[0], a.psi[0])  # the clean sample only depends on its initial state


def _clean_kernel_run(cfg: SimConfig, eta: float, seed: int, index: int) -> np.ndarray:
    """The clean kernel (kernels._sweep, no nuisance arguments) stepped from solver.initial_state."""
    co = kernels.coefficients(cfg.D, cfg.alpha, cfg.beta, cfg.h, np.array([eta]), np.array([cfg.nu]),
                              scale=cfg.dt, keep=1.0)[0]
    ly, lx = kernels.link_tables(cfg.N, cfg.L, np.array([cfg.n_v]))
    a = initial_state(seed, index, cfg.N)
    b = np.empty_like(a)
    out = []
    step = 0
    for target in cfg.snapshot_steps:
        while step < target:
            kernels._sweep(a, b, co, ly[0], lx[0])
            a, b = b, a
            step += 1
        out.append(a.copy())
    return state_to_psi(np.stack(out))


def test_clean_samples_are_bitwise_the_clean_kernel_even_beside_nuisance_samples():
    params = {"T": [0.05, 0.0, 0.0], "delta": [0.0, 0.0, 0.4], "eta": [0.2, 0.5, 0.3]}
    mixed = simulate(SMALL, params, seed=3)
    clean = simulate(SMALL, {"eta": params["eta"]}, seed=3)
    assert np.array_equal(mixed.psi[1], _clean_kernel_run(SMALL, 0.5, 3, 1))
    assert np.array_equal(clean.psi[1], mixed.psi[1])
    # T = 0 and δ = 0 given explicitly is the clean run
    explicit = simulate(SMALL, {"eta": params["eta"], "T": 0.0, "delta": 0.0}, seed=3)
    assert np.array_equal(explicit.psi, clean.psi)
    # the nuisance samples differ from their clean counterparts
    assert not np.array_equal(mixed.psi[0], clean.psi[0]) and not np.array_equal(mixed.psi[2], clean.psi[2])


def test_kernel_langevin_step_with_disorder_matches_the_numpy_reference():
    cfg = SMALL.replace(snapshot_times=(0.05,))
    T, delta, seed, k = 0.03, 0.35, 4, 7
    res = simulate(cfg, {"T": T, "delta": delta}, seed=seed, sample_indices=[k])
    xi = disorder_field(seed, k, cfg)
    alpha = tuple(a * (1.0 + delta * xi) for a in cfg.alpha)
    links = landau_links(cfg.N, cfg.L, cfg.n_v)
    st = initial_state(seed, k, cfg.N)
    p1, p2 = st[0] + 1j * st[1], st[2] + 1j * st[3]
    key = reference.noise_key(seed, k)
    for n in range(cfg.n_steps):
        p1, p2 = reference.langevin_step(p1, p2, links, cfg.dt, T, reference.thermal_normals(key, n, cfg.N),
                                         alpha=alpha, beta=cfg.beta, D=cfg.D, eta=cfg.eta, nu=cfg.nu)
    np.testing.assert_allclose(res.psi[0, -1, 0], p1, atol=1e-12)
    np.testing.assert_allclose(res.psi[0, -1, 1], p2, atol=1e-12)


# ------------------------------------------------------------------ disorder field
def test_disorder_field_has_unit_variance_the_stated_correlation_and_is_seeded():
    cfg = SimConfig(N=32, L=32.0, disorder_length=2.0)
    S = 200
    xs = np.stack([disorder_field(9, k, cfg) for k in range(S)])
    # unit variance over realisations (expected-variance normalisation), 5σ on S·N² correlated values
    var = xs.var()
    assert abs(var - 1.0) < 0.05
    # correlation exp(−r²/2ℓ²) at r = ℓ (2 sites) and r = 2ℓ
    for r, want in ((2, math.exp(-0.5)), (4, math.exp(-2.0))):
        c = np.mean(xs * np.roll(xs, r, axis=2)) / var
        assert abs(c - want) < 0.03, (r, c, want)
    assert np.array_equal(disorder_field(9, 3, cfg), xs[3])
    assert not np.array_equal(disorder_field(10, 3, cfg), xs[3])
    assert np.abs(xs).max() <= disorder_clip(cfg.N)
    # ℓ = 0: white noise, uncorrelated neighbours
    w = gaussian_filter_field(np.random.default_rng(1).standard_normal((64, 64)), 1.0, 0.0)
    assert abs(np.mean(w * np.roll(w, 1, axis=0))) < 5.0 / 64


def test_disorder_clip_is_the_union_bound_quantile():
    for N in (16, 64):
        x = disorder_clip(N)
        assert N * N * math.erfc(x / math.sqrt(2.0)) <= 1e-9
        assert N * N * math.erfc((x - 1e-6) / math.sqrt(2.0)) > 1e-9


# ------------------------------------------------------------------ energy and gradient with disorder
def test_gradient_is_the_finite_difference_of_the_energy_with_disorder():
    m = EnergyModel(SMALL, delta=0.5, seed=2, index=4)
    assert m.xi is not None and np.array_equal(m.xi, disorder_field(2, 4, m.config))
    z = initial_state(8, 0, SMALL.N) * 2.0
    g = m.gradient(z)
    eps = 1e-5
    rng = np.random.default_rng(0)
    for _ in range(12):
        idx = tuple(int(rng.integers(0, s)) for s in z.shape)
        zp, zm = z.copy(), z.copy()
        zp[idx] += eps
        zm[idx] -= eps
        fd = (m.energy(zp) - m.energy(zm)) / (2 * eps)
        assert fd == pytest.approx(g[idx], rel=1e-6, abs=1e-8)
    # the energy is the reference energy with α(r) = α(1 + δξ)
    alpha = tuple(a * (1.0 + 0.5 * m.xi) for a in SMALL.alpha)
    F = reference.energy(z[0] + 1j * z[1], z[2] + 1j * z[3], landau_links(SMALL.N, SMALL.L, SMALL.n_v),
                         alpha=alpha, beta=SMALL.beta, D=SMALL.D, eta=SMALL.eta, nu=SMALL.nu)
    assert m.energy(z) == pytest.approx(F, rel=1e-12)
    # and the disorder term is really there: a clean model differs
    assert EnergyModel(SMALL).energy(z) != pytest.approx(F, rel=1e-6)
    # an explicit landscape is the same model; none at all is refused (F depends on it)
    assert EnergyModel(SMALL, delta=0.5, xi=m.xi).energy(z) == m.energy(z)
    with pytest.raises(ConfigError, match="give its run seed and sample index"):
        EnergyModel(SMALL.replace(delta=0.5))


# ------------------------------------------------------------------ the time-step bound
def test_dt_bound_tightens_with_disorder_and_equals_the_clean_bound_at_zero():
    D, alpha, beta, h = (4.0, 1.0), (-1.0, -1.0), (1.0, 1.0), 0.5
    clean = time_step_limit(D, alpha, beta, 1.0, 0.0, h)
    assert time_step_limit(D, alpha, beta, 1.0, 0.0, h, alpha_spread=0.0) == clean
    prev = clean
    for s in (0.5, 1.0, 2.0):
        now = time_step_limit(D, alpha, beta, 1.0, 0.0, h, alpha_spread=s)
        assert now < prev
        prev = now
    # the density bound uses the deepest site: α_min = α(1 + s) for α < 0
    rb = rate_bound(D, alpha, beta, 1.0, 0.0, h, alpha_spread=1.0)
    assert rb.density[0] > rate_bound(D, alpha, beta, 1.0, 0.0, h).density[0]
    # a config between the two bounds is accepted clean and rejected with disorder, naming the disorder
    cfg = SimConfig(N=16, L=8.0, eta=1.0)
    spread = 0.5 * disorder_clip(16)
    dt = 0.5 * (time_step_limit(cfg.D, cfg.alpha, cfg.beta, 1.0, 0.0, cfg.h)
                + time_step_limit(cfg.D, cfg.alpha, cfg.beta, 1.0, 0.0, cfg.h, alpha_spread=spread))
    cfg = cfg.replace(dt=dt, snapshot_times=(100 * dt,))
    cfg.validate()
    with pytest.raises(ConfigError, match="disorder delta=0.5"):
        cfg.replace(delta=0.5).validate()


def test_run_at_the_disordered_dt_bound_stays_bounded_by_the_deepest_site_density():
    # strong disorder, dt just below its bound: the run is stable and |ψ|² stays below R of the deepest site
    cfg = SimConfig(N=16, L=8.0, eta=0.5, delta=0.3, disorder_length=0.5, snapshot_times=(1.0,), dt=0.01)
    spread = cfg.alpha_spread(cfg.delta)
    dt = 0.99 * time_step_limit(cfg.D, cfg.alpha, cfg.beta, cfg.eta, cfg.nu, cfg.h, alpha_spread=spread)
    steps = 300
    cfg = cfg.replace(dt=dt, snapshot_times=(steps * dt,))
    res = simulate(cfg, n_samples=4, seed=1)
    rho = np.abs(res.psi) ** 2
    R = rate_bound(cfg.D, cfg.alpha, cfg.beta, cfg.eta, cfg.nu, cfg.h, alpha_spread=spread).density
    assert np.isfinite(rho).all() and rho.max() <= max(R)


# ------------------------------------------------------------------ config and prior
def test_bad_nuisance_values_are_one_line_config_errors():
    for kw, pat in (({"T": -0.1}, "temperature T must be"), ({"delta": float("nan")}, "delta must be finite"),
                    ({"disorder_length": -1.0}, "disorder_length must be")):
        with pytest.raises(ConfigError, match=pat) as exc:
            SMALL.replace(**kw).validate()
        assert "\n" not in str(exc.value)
    with pytest.raises(ConfigError, match="temperature T must be"):
        simulate(SMALL, {"T": [0.1, -0.1]})
    with pytest.raises(ConfigError, match="prior for T"):
        Prior({"eta": "uniform(0, 1)", "T": "uniform(-0.1, 0.1)"})


def test_prior_draws_T_and_delta_without_changing_the_other_draws():
    base = Prior({"eta": "uniform(0, 1)", "n_v": "int_uniform(1, 4)"})
    full = Prior({"eta": "uniform(0, 1)", "n_v": "int_uniform(1, 4)", "T": "uniform(0, 0.01)",
                  "delta": "uniform(-0.2, 0.2)"})
    assert full.inferred == ("eta", "n_v", "T", "delta")
    th0, th = base.sample(3, range(50)), full.sample(3, range(50))
    assert np.array_equal(th[:, :2], th0)
    assert (th[:, 2] >= 0).all() and (th[:, 2] < 0.01).all() and (np.abs(th[:, 3]) < 0.2).all()
    full.validate(SMALL)
    # a box whose largest |delta| breaks the dt bound is refused and names delta
    cfg = SMALL.replace(dt=0.98 * time_step_limit(SMALL.D, SMALL.alpha, SMALL.beta, SMALL.eta, SMALL.nu, SMALL.h))
    Prior({"eta": f"fixed({SMALL.eta})", "nu": f"fixed({SMALL.nu})", "n_v": "fixed(2)"}).validate(cfg)
    with pytest.raises(ConfigError, match="delta=-3"):
        Prior({"eta": f"fixed({SMALL.eta})", "nu": f"fixed({SMALL.nu})", "n_v": "fixed(2)",
               "delta": "uniform(-3, 1)"}).validate(cfg)


def test_float32_nuisance_run_follows_the_float64_run():
    # same noise and landscape (both keyed by seed and sample), so the runs differ only by rounding
    params = {"T": [0.01, 0.0], "delta": [0.2, -0.3]}
    a = simulate(SMALL, params, seed=6)
    b = simulate(SMALL.replace(dtype="float32"), params, seed=6)
    assert b.psi.dtype == np.complex64
    np.testing.assert_allclose(b.psi, a.psi, atol=2e-4)


def test_presets_take_T_delta_and_disorder_length_overrides():
    from tdglnre.io.presets import load_preset, override_keys

    assert {"T", "delta", "prior.T", "prior.delta", "disorder_length"} <= set(override_keys())
    cfg, prior = load_preset("quick", ["T=0.01", "prior.delta=uniform(0, 0.1)", "disorder_length=2"])
    assert cfg.T == 0.01 and cfg.disorder_length == 2.0
    assert prior["T"].kind == "fixed" and prior["delta"].kind == "uniform" and "delta" in prior.inferred
    clean_cfg, clean_prior = load_preset("quick")
    assert "T" not in clean_prior.names and "delta" not in clean_prior.names and clean_cfg.T == 0.0
    with pytest.raises(ConfigError, match="temperature"):
        load_preset("quick", ["T=-1"])


def _cores_and_density_correlation(delta: float) -> tuple[np.ndarray, list[float]]:
    """Landscape ξ at every vortex plaquette (both bands) and corr(ρ_b, ξ) per sample and band."""
    from tdglnre.physics.observables import winding_numbers

    cfg = SimConfig(N=32, L=16.0, dt=0.002, eta=0.5, n_v=6, snapshot_times=(8.0,), disorder_length=1.5)
    S = 6
    res = simulate(cfg, {"delta": delta}, n_samples=S, seed=2)
    links = landau_links(cfg.N, cfg.L, cfg.n_v)
    cores, corr = [], []
    for s in range(S):
        xi = disorder_field(2, s, cfg)
        # plaquette value: mean of its four corners (the plaquette is stored at its lower-left site)
        xp = 0.25 * (xi + np.roll(xi, -1, 0) + np.roll(xi, -1, 1) + np.roll(np.roll(xi, -1, 0), -1, 1))
        for b in range(2):
            w = winding_numbers(res.psi[s, -1, b], links)
            assert w.sum() == cfg.n_v
            cores.extend(xp[w > 0])
            rho = np.abs(res.psi[s, -1, b]) ** 2
            corr.append(float(np.corrcoef(rho.ravel(), xi.ravel())[0, 1]))
    return np.asarray(cores), corr


@pytest.mark.slow
def test_disorder_pins_vortices_in_the_weak_regions_and_modulates_the_density():
    # α(r) = α(1 + δξ) with α < 0, δ > 0: ξ < 0 weakens superconductivity, so vortex cores settle there
    # and the density follows the local equilibrium |ψ|² ≈ −α(r)/β (positively correlated with ξ)
    cores, corr = _cores_and_density_correlation(0.3)
    se = cores.std() / math.sqrt(cores.size)
    assert cores.mean() < -4.0 * se
    assert min(corr) > 0.3
    # without disorder the same landscape is irrelevant: no pinning, no correlation
    cores0, corr0 = _cores_and_density_correlation(0.0)
    assert abs(cores0.mean()) < 3.0 * cores0.std() / math.sqrt(cores0.size)
    assert max(abs(c) for c in corr0) < 0.3
