"""Physics tests of the solver core (issue 2): every assertion is a physical fact."""

from __future__ import annotations

import numpy as np
import pytest

from tdglnre import SimConfig, simulate
from tdglnre.physics import reference as ref
from tdglnre.physics.lattice import landau_links
from tdglnre.physics.observables import (
    current_curl,
    densities,
    network_channels,
    supercurrent,
    vortex_counts,
    winding_numbers,
)
from tdglnre.physics.solver import EnergyModel, initial_state, psi_to_state, state_to_psi


def _pars(cfg: SimConfig, eta: float, nu: float) -> dict:
    return dict(alpha=cfg.alpha, beta=cfg.beta, D=cfg.D, eta=eta, nu=nu)


def _random_psi(rng, N):
    """Random state with |ψ| bounded away from zero (so windings are defined)."""
    amp = rng.uniform(0.3, 1.2, size=(2, N, N))
    ph = rng.uniform(-np.pi, np.pi, size=(2, N, N))
    psi = amp * np.exp(1j * ph)
    return psi[0], psi[1]


# ---------------------------------------------------------------- 1. kernel vs reference
@pytest.mark.parametrize("dtype,tol", [("float64", 1e-12), ("float32", 1e-4)])
def test_kernel_matches_numpy_reference(dtype, tol):
    rng = np.random.default_rng(11)
    N, L, steps = 16, 9.0, 200
    eta = rng.uniform(0, 1.5, 3)
    n_v = np.array([3, -5, 7])
    nu = rng.uniform(-0.8, 0.8, 3)
    cfg = SimConfig(N=N, L=L, dt=2e-3, alpha=(-1.0, -0.7), beta=(1.0, 1.3), D=(1.5, 1.0),
                    snapshot_times=(steps * 2e-3,), dtype=dtype)
    res = simulate(cfg, {"eta": eta, "n_v": n_v, "nu": nu}, seed=3)
    for s in range(3):
        p = state_to_psi(initial_state(3, s, N))
        a, b = ref.evolve(p[0], p[1], landau_links(N, L, int(n_v[s])), cfg.dt, steps,
                          **_pars(cfg, eta[s], nu[s]))
        err = max(np.abs(a - res.psi[s, 0, 0]).max(), np.abs(b - res.psi[s, 0, 1]).max())
        scale = 1.0 if dtype == "float64" else max(np.abs(a).max(), np.abs(b).max())
        assert err <= tol * scale, (s, err)
        # the state evolved: the comparison is not between two copies of the initial condition
        assert np.abs(a - p[0]).max() > 0.05


# ---------------------------------------------------------------- 2. flux quantization
@pytest.mark.parametrize("n_v", [0, 1, 7, -3])
def test_total_winding_equals_flux_quanta(n_v):
    rng = np.random.default_rng(100 + n_v)
    N, L = 12, 7.0
    links = landau_links(N, L, n_v)
    for _ in range(5):
        psi1, psi2 = _random_psi(rng, N)
        for psi in (psi1, psi2):
            k = winding_numbers(psi, links)
            assert k.sum() == n_v
            # random phases put many vortex/antivortex pairs on the lattice: a non-trivial sum
            assert np.abs(k).sum() > abs(n_v)


def test_winding_of_wrong_flux_is_not_integer():
    """Without the seam twist (or with non-quantized B) windings are not integers: the seam matters."""
    rng = np.random.default_rng(5)
    N, L, n_v = 10, 6.0, 3
    links = landau_links(N, L, n_v)
    no_seam = type(links)(np.zeros_like(links.theta_x), links.theta_y, links.h, links.flux)
    psi, _ = _random_psi(rng, N)
    from tdglnre.physics.observables import circulation, link_phases

    px, py = link_phases(psi, no_seam)
    k = (circulation(px, py) + no_seam.flux) / (2 * np.pi)
    assert np.abs(k - np.rint(k)).max() > 0.1


# ---------------------------------------------------------------- 3. gauge covariance
def test_gauge_covariance_of_energy_and_observables():
    rng = np.random.default_rng(7)
    N, L, n_v = 12, 8.0, 5
    cfg = SimConfig(N=N, L=L, n_v=n_v)
    pars = _pars(cfg, 0.6, 0.4)
    links = landau_links(N, L, n_v)
    chi = rng.uniform(-np.pi, np.pi, size=(N, N)) * 3.0
    glinks = links.gauge_transformed(chi)
    psi1, psi2 = _random_psi(rng, N)
    g1, g2 = np.exp(1j * chi) * psi1, np.exp(1j * chi) * psi2

    F0 = ref.energy(psi1, psi2, links, **pars)
    F1 = ref.energy(g1, g2, glinks, **pars)
    assert abs(F0 - F1) <= 1e-12 * abs(F0)
    for a, b in zip(densities(psi1, psi2), densities(g1, g2)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    J0 = supercurrent(psi1, psi2, links, cfg.D, 0.4)
    J1 = supercurrent(g1, g2, glinks, cfg.D, 0.4)
    for a, b in zip(J0, J1):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    np.testing.assert_allclose(current_curl(*J0, links.h), current_curl(*J1, links.h), rtol=0, atol=1e-11)
    for p, g in ((psi1, g1), (psi2, g2)):
        np.testing.assert_array_equal(winding_numbers(p, links), winding_numbers(g, glinks))
    # the gauge transformation did change the raw fields
    assert np.abs(psi1 - g1).max() > 0.1
    # and the dynamics is covariant: evolve in both gauges, compare after transforming back
    a, b = ref.evolve(psi1, psi2, links, 2e-3, 20, **pars)
    ga, gb = ref.evolve(g1, g2, glinks, 2e-3, 20, **pars)
    np.testing.assert_allclose(np.exp(1j * chi) * a, ga, rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.exp(1j * chi) * b, gb, rtol=0, atol=1e-12)


# ---------------------------------------------------------------- 4. gradient = FD of F; rhs = -(1/h²) dF/dψ*
def test_gradient_matches_finite_differences_of_energy():
    rng = np.random.default_rng(8)
    N = 8
    cfg = SimConfig(N=N, L=5.0, D=(2.0, 1.0), alpha=(-1.0, -0.5), beta=(1.0, 2.0))
    model = EnergyModel(cfg, eta=0.7, n_v=3, nu=0.6)
    z = rng.uniform(-0.8, 0.8, size=model.size)
    g = model.gradient(z)
    eps = 1e-5
    idx = rng.choice(model.size, size=40, replace=False)
    for k in idx:
        zp, zm = z.copy(), z.copy()
        zp[k] += eps
        zm[k] -= eps
        fd = (model.energy(zp) - model.energy(zm)) / (2 * eps)
        assert abs(fd - g[k]) <= 1e-6 * max(1.0, np.abs(g).max()), (k, fd, g[k])


def test_energy_kernel_matches_reference_and_rhs_is_wirtinger_gradient():
    rng = np.random.default_rng(9)
    N, L = 10, 6.0
    cfg = SimConfig(N=N, L=L, D=(4.0, 1.0))
    model = EnergyModel(cfg, eta=0.9, n_v=-2, nu=0.5)
    psi1, psi2 = _random_psi(rng, N)
    links = landau_links(N, L, -2)
    pars = _pars(cfg, 0.9, 0.5)
    z = psi_to_state(psi1, psi2)
    assert abs(model.energy(z) - ref.energy(psi1, psi2, links, **pars)) <= 1e-11 * abs(model.energy(z))
    # dynamics' right-hand side equals -(1/h²) ∂F/∂ψ* (reference Wirtinger gradient)
    w1, w2 = ref.gradient_wirtinger(psi1, psi2, links, **pars)
    r = state_to_psi(model.rhs(z))
    h2 = cfg.h**2
    np.testing.assert_allclose(r[0], -w1 / h2, rtol=0, atol=1e-10)
    np.testing.assert_allclose(r[1], -w2 / h2, rtol=0, atol=1e-10)
    # and ∂F/∂ψ* is the Wirtinger derivative of F: check on one site by finite differences
    eps = 1e-6
    e = np.zeros((N, N))
    e[2, 3] = eps
    dFdx = (ref.energy(psi1 + e, psi2, links, **pars) - ref.energy(psi1 - e, psi2, links, **pars)) / (2 * eps)
    dFdy = (ref.energy(psi1 + 1j * e, psi2, links, **pars) - ref.energy(psi1 - 1j * e, psi2, links, **pars)) / (2 * eps)
    assert abs(0.5 * (dFdx + 1j * dFdy) - w1[2, 3]) <= 1e-6 * max(1.0, abs(w1[2, 3]))


def test_supercurrent_is_minus_derivative_of_energy_by_link_phase():
    rng = np.random.default_rng(10)
    N, L = 8, 5.0
    cfg = SimConfig(N=N, L=L, D=(4.0, 1.0))
    pars = _pars(cfg, 0.3, 0.7)
    links = landau_links(N, L, 2)
    psi1, psi2 = _random_psi(rng, N)
    jx, jy = supercurrent(psi1, psi2, links, cfg.D, 0.7)
    eps = 1e-6
    for axis, J in (("x", jx), ("y", jy)):
        for (i, j) in ((0, 0), (3, N - 1), (N - 1, 4)):
            tp = {"x": links.theta_x.copy(), "y": links.theta_y.copy()}
            tm = {"x": links.theta_x.copy(), "y": links.theta_y.copy()}
            tp[axis][i, j] += eps
            tm[axis][i, j] -= eps
            Lp = type(links)(tp["x"], tp["y"], links.h, links.flux)
            Lm = type(links)(tm["x"], tm["y"], links.h, links.flux)
            dF = (ref.energy(psi1, psi2, Lp, **pars) - ref.energy(psi1, psi2, Lm, **pars)) / (2 * eps)
            assert abs(-dF - J[i, j]) <= 1e-6 * max(1.0, abs(J[i, j])), (axis, i, j)


# ---------------------------------------------------------------- 5. energy decreases
@pytest.mark.parametrize("nu", [0.0, 0.5])
def test_energy_never_increases_along_euler_steps(nu):
    N, L = 16, 8.0
    cfg = SimConfig(N=N, L=L, dt=5e-3, D=(4.0, 1.0), n_v=3, nu=nu, eta=0.5,
                    snapshot_times=tuple(np.round(np.arange(1, 61) * 5e-3 * 5, 6)))
    assert nu * nu < cfg.D[0] * cfg.D[1]
    res = simulate(cfg, seed=2)
    model = EnergyModel(cfg)
    F = [model.energy(initial_state(2, 0, N))]
    F += [model.energy(psi_to_state(res.psi[0, t, 0], res.psi[0, t, 1])) for t in range(res.psi.shape[1])]
    F = np.array(F)
    assert np.all(np.diff(F) <= 1e-12 * np.abs(F[:-1]))
    assert F[-1] < F[0] - 1.0  # it really relaxed


# ---------------------------------------------------------------- 6. uniform state is stationary
def test_uniform_state_is_stationary():
    eta = 0.4
    N = 16
    cfg = SimConfig(N=N, L=8.0, dt=1e-2, alpha=(-1.0, -1.0), beta=(1.0, 1.0), D=(1.0, 1.0), eta=eta,
                    n_v=0, snapshot_times=(1.0,))
    amp = np.sqrt(1.0 + eta)
    phase = np.exp(0.3j)
    st = psi_to_state(amp * phase * np.ones((N, N)), amp * phase * np.ones((N, N)))
    res = simulate(cfg, initial=st[None])
    np.testing.assert_allclose(np.abs(res.psi[0, 0]) ** 2, 1.0 + eta, rtol=0, atol=1e-13)
    assert np.abs(EnergyModel(cfg).rhs(st)).max() <= 1e-13
    # and a different amplitude is not stationary (the test can fail)
    assert np.abs(EnergyModel(cfg).rhs(1.1 * st)).max() > 1e-2


# ---------------------------------------------------------------- 7. relaxed quench: exactly n_v vortices
@pytest.mark.parametrize("nu", [0.0, 0.5])
def test_relaxed_quench_has_exactly_n_v_vortices_per_band(nu):
    N, L, n_v = 32, 16.0, 4
    cfg = SimConfig(N=N, L=L, dt=5e-3, D=(4.0, 1.0), eta=0.5, n_v=n_v, nu=nu, snapshot_times=(40.0,))
    res = simulate(cfg, n_samples=4, seed=1)
    links = landau_links(N, L, n_v)
    for s in range(4):
        for band in (0, 1):
            assert vortex_counts(res.psi[s, 0, band], links) == (n_v, 0)


# ---------------------------------------------------------------- 8. determinism
def test_bitwise_deterministic_across_threads_and_batches():
    import numba

    N = 16
    cfg = SimConfig(N=N, L=8.0, dt=2e-3, snapshot_times=(0.1, 0.2))
    params = {"eta": [0.1, 0.5, 0.9, 1.3], "n_v": [1, 2, 3, 4], "nu": [0.0, 0.2, 0.4, 0.1]}
    threads = [1, min(2, numba.config.NUMBA_NUM_THREADS)]
    r1 = simulate(cfg, params, seed=4, threads=threads[0])
    r2 = simulate(cfg, params, seed=4, threads=threads[1], batch_size=3)
    assert np.array_equal(r1.psi, r2.psi)
    for dtype in ("float64", "float32"):
        c = cfg.replace(dtype=dtype)
        batch = simulate(c, params, seed=4)
        alone = simulate(c, {k: [v[2]] for k, v in params.items()}, seed=4, sample_indices=[2])
        assert np.array_equal(batch.psi[2], alone.psi[0])
    # different seeds give different states
    r3 = simulate(cfg, params, seed=5)
    assert not np.array_equal(r1.psi, r3.psi)


def test_network_channels_shape_and_content():
    N = 16
    cfg = SimConfig(N=N, L=8.0, dt=2e-3, n_v=3, snapshot_times=(0.5,))
    res = simulate(cfg, n_samples=2, seed=0)
    ch = res.channels()
    assert ch.shape == (2, 1, N, N, 3) and ch.dtype == np.float32
    r1, r2 = densities(res.psi[1, 0, 0], res.psi[1, 0, 1])
    np.testing.assert_allclose(ch[1, 0, ..., 0], r1, rtol=1e-6)
    np.testing.assert_allclose(ch[1, 0, ..., 1], r2, rtol=1e-6)
    # the curl of a gradient-free current integrates to zero over the torus (Stokes on a closed surface)
    assert abs(ch[1, 0, ..., 2].sum()) <= 1e-3 * np.abs(ch[1, 0, ..., 2]).sum()
    direct = network_channels(res.psi[1, 0, 0], res.psi[1, 0, 1], cfg)
    np.testing.assert_array_equal(direct, ch[1, 0])


def test_structure_factor_of_a_density_wave_peaks_at_its_wavevector():
    from tdglnre.physics.observables import structure_factor

    N, L, m = 32, 16.0, 3
    k0 = 2 * np.pi * m / L
    x = np.arange(N) * L / N
    rho = 1.0 + 0.2 * np.cos(k0 * x)[None, :] * np.ones((N, 1))
    k, S = structure_factor(rho, L)
    peak = int(np.argmax(S))
    assert abs(k[peak] - k0) <= (np.pi * N / L) / (N // 2)  # within one shell width
    # |δρ(k)|² / N² at ±k0 is (0.1 N²)²/N² = 0.01 N²; the shell averages it over its modes
    assert S[peak] > 100 * np.delete(S, peak).max()
    # a uniform density has no fluctuations at any k > 0
    k2, S2 = structure_factor(np.ones((N, N)), L)
    assert np.allclose(S2, 0.0)


# ---------------------------------------------------------------- 9. bench refuses what it cannot run
def test_bench_refuses_a_lattice_larger_than_memory_before_allocating(monkeypatch):
    from tdglnre.errors import ConfigError, ResourceError
    from tdglnre.physics import bench

    # issue 9: N = 100000 died with numpy's _ArrayMemoryError; ~2.7 TB are needed for one sample
    assert bench.memory_needed(100000, 1) > 2e12
    with pytest.raises(ResourceError, match=r"bench at N=100000 with batch=1 needs about .* GiB of memory"):
        bench.run_benchmark(sizes=(100000,), batch=1, steps=1, numpy_steps=1)
    # the estimate covers the arrays the numba run holds: states, work, snapshots (float64) and psi (complex128)
    N, b = 64, 8
    held = 3 * b * 4 * N * N * 8 + b * 2 * N * N * 16
    assert bench.memory_needed(N, b) >= held
    monkeypatch.setattr(bench, "available_memory", lambda: held // 2)
    with pytest.raises(ResourceError, match="use smaller --sizes or --batch"):
        bench.run_benchmark(sizes=(N,), batch=b, steps=1, numpy_steps=1)
    with pytest.raises(ConfigError, match=r"sizes must be integers >= 4"):
        bench.run_benchmark(sizes=(3,), batch=1, steps=1, numpy_steps=1)
    with pytest.raises(ConfigError, match=r"repeats must be an integer >= 1"):
        bench.run_benchmark(sizes=(8,), batch=1, steps=1, numpy_steps=1, repeats=0)


def test_bench_cli_sizes_must_be_at_least_4():
    from click.testing import CliRunner

    from tdglnre.cli.main import cli

    r = CliRunner().invoke(cli, ["bench", "--sizes", "8,3"])
    assert r.exit_code == 2 and "lattice sizes >= 4" in r.output
    r = CliRunner().invoke(cli, ["bench", "--sizes", "100000", "--batch", "1", "--steps", "1", "--numpy-steps", "1"])
    assert r.exit_code == 1 and r.output.startswith("Error: bench at N=100000") and "Traceback" not in r.output
