"""CUDA backend (issue 11): every device kernel against the CPU kernel.

Without a GPU, tests/conftest.py switches numba's CUDA simulator on before
numba.cuda is imported, so these tests run the device kernels on the CPU
(slowly: lattices of N = 4-8, a few steps). With a GPU they run on it, and
the ``gpu``-marked tests repeat the agreement at N = 64.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse.linalg as spla

from tdglnre.errors import ConfigError, DivergenceError
from tdglnre.physics import bench as tb
from tdglnre.physics import cuda as tc
from tdglnre.physics import kernels
from tdglnre.physics.cuda import device as tcd
from tdglnre.physics.cuda import kernels as tk
from tdglnre.physics.cuda import run as tr
from tdglnre.physics.config import SimConfig, as_sample_arrays
from tdglnre.physics.lattice import landau_links
from tdglnre.physics.observables import winding_numbers
from tdglnre.physics.solver import EnergyModel, SimulationResult, initial_state, state_to_psi

USABLE, WHY = tc.cuda_status()
REAL_GPU = USABLE and not tc.simulator_enabled()
needs_cuda = pytest.mark.skipif(not USABLE, reason=f"CUDA backend not usable: {WHY}")

# N = 6, h = 0.5, D = (1, 1): well inside the explicit-Euler bound at dt = 0.01
CFG = SimConfig(N=6, L=3.0, D=(1.0, 1.0), dt=0.01, eta=0.3, n_v=1, nu=0.2,
                snapshot_times=(0.02, 0.04))
PARAMS = {"n_v": [0, 1, 2], "eta": [0.1, 0.3, -0.2], "nu": [0.0, 0.2, -0.3]}
# float64: FMA contraction on a GPU changes the last bits; the simulator is bitwise equal
TOL64 = dict(rtol=1e-11, atol=1e-12)
TOL32 = dict(rtol=1e-5, atol=1e-5)


def cpu_run(cfg: SimConfig, params: dict, seed: int = 0, indices=None) -> SimulationResult:
    """The CPU kernel (kernels._sweep) stepped sample by sample from solver.initial_state."""
    p = as_sample_arrays(cfg, params, None if indices is None else len(indices))
    S = p["eta"].shape[0]
    idx = np.arange(S) if indices is None else np.asarray(indices)
    dt = np.dtype(cfg.dtype)
    co = kernels.coefficients(cfg.D, cfg.alpha, cfg.beta, cfg.h, p["eta"], p["nu"], scale=cfg.dt, keep=1.0,
                              dtype=dt)
    ly, lx = kernels.link_tables(cfg.N, cfg.L, p["n_v"], dtype=dt)
    out = np.empty((S, len(cfg.snapshot_steps), 4, cfg.N, cfg.N), dt)
    for s in range(S):
        a = initial_state(seed, int(idx[s]), cfg.N).astype(dt)
        b = np.empty_like(a)
        step = 0
        for t, target in enumerate(cfg.snapshot_steps):
            while step < target:
                kernels._sweep(a, b, co[s], ly[s], lx[s])
                a, b = b, a
                step += 1
            out[s, t] = a
    return SimulationResult(cfg, np.asarray(cfg.snapshot_times), state_to_psi(out), p, idx)


@pytest.fixture(scope="module")
def cpu64() -> SimulationResult:
    return cpu_run(CFG, PARAMS)


@pytest.fixture(scope="module")
def dev64() -> dict[str, SimulationResult]:
    """One simulator run per kernel (float64)."""
    if not USABLE:
        pytest.skip(WHY)
    return {m: tc.simulate_cuda(CFG, PARAMS, fused=m, check_every=2) for m in tc.MODES}


# --------------------------------------------------------------------------- device selection
def test_resolve_device_cpu_and_bad_name():
    assert tc.resolve_device("cpu") == "cpu"
    with pytest.raises(ConfigError, match="device must be one of"):
        tc.resolve_device("gpu")


def test_cuda_without_backend_is_one_line_error_and_auto_falls_back(monkeypatch):
    reason = 'numba-cuda is not installed; install the CUDA extra with pip install "tdglnre[cuda]"'
    monkeypatch.setattr(tcd, "cuda_status", lambda: (False, reason))
    with pytest.raises(ConfigError) as err:
        tc.resolve_device("cuda")
    msg = str(err.value)
    assert "\n" not in msg and 'pip install "tdglnre[cuda]"' in msg and "numba-cuda" in msg
    assert tc.resolve_device("auto") == "cpu"
    with pytest.raises(ConfigError, match="not usable"):
        tc.simulate_cuda(CFG, n_samples=1)


def test_status_names_missing_numba_cuda(monkeypatch):
    import importlib.util

    monkeypatch.setattr(tcd, "simulator_enabled", lambda: False)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "numba_cuda" else real(name, *a))
    ok, why = tc.cuda_status()
    assert not ok and "numba-cuda is not installed" in why and 'pip install "tdglnre[cuda]"' in why


@needs_cuda
def test_simulator_is_usable_for_cuda_but_never_chosen_by_auto():
    assert tc.resolve_device("cuda") == "cuda"
    assert tc.resolve_device("auto") == ("cuda" if REAL_GPU else "cpu")


def test_kernel_choice_depends_on_size_and_dtype_only():
    assert tc.select_mode(8, "float32") == "fused-shared"
    assert tc.select_mode(39, "float64") == "fused-shared"  # 4·39²·8 B = 48.7 kB ≤ 48 KiB
    assert tc.select_mode(40, "float64") == "fused-global"
    assert tc.select_mode(64, "float32") == "fused-global"
    assert tc.select_mode(1024, "float32") == "step"
    assert tc.select_mode(1024, "float32", True) == "fused-global"
    assert tc.select_mode(8, "float64", False) == "step"
    with pytest.raises(ConfigError, match="does not fit"):
        tc.select_mode(64, "float64", "fused-shared")
    with pytest.raises(ConfigError, match="fused must be"):
        tc.select_mode(8, "float64", "fast")


# --------------------------------------------------------------------------- Euler steps
@needs_cuda
@pytest.mark.parametrize("mode", tc.MODES)
def test_euler_kernels_agree_with_cpu_kernel(mode, cpu64, dev64):
    """Step, fused-shared and fused-global kernels reproduce the CPU kernel (links, seam, drag, η)."""
    res = dev64[mode]
    assert res.psi.shape == cpu64.psi.shape == (3, 2, 2, 6, 6)
    np.testing.assert_allclose(res.psi, cpu64.psi, **TOL64)
    # the dynamics moved the state: the agreement is not that of two copies of the initial state
    start = np.stack([state_to_psi(initial_state(0, k, 6)) for k in range(3)])
    assert np.abs(cpu64.psi[:, 0] - start).max() > 1e-3
    np.testing.assert_array_equal(res.params["n_v"], [0, 1, 2])
    np.testing.assert_allclose(res.times, CFG.snapshot_times)


@needs_cuda
def test_fused_and_unfused_agree(dev64):
    np.testing.assert_allclose(dev64["fused-shared"].psi, dev64["step"].psi, **TOL64)
    np.testing.assert_allclose(dev64["fused-global"].psi, dev64["step"].psi, **TOL64)


@needs_cuda
def test_float32_kernel_agrees_with_cpu_float32():
    cfg = CFG.replace(dtype="float32", snapshot_times=(0.02,))
    ref = cpu_run(cfg, PARAMS)
    res = tc.simulate_cuda(cfg, PARAMS, check_every=2)
    assert res.psi.dtype == np.complex64
    np.testing.assert_allclose(res.psi, ref.psi, **TOL32)


@needs_cuda
def test_matches_solver_simulate():
    """Same seed and sample indices as solver.simulate: same initial states, same result."""
    from tdglnre.physics.solver import simulate

    cfg = CFG.replace(snapshot_times=(0.02,))
    ref = simulate(cfg, PARAMS, seed=7, sample_indices=[4, 0, 9])
    res = tc.simulate_cuda(cfg, PARAMS, seed=7, sample_indices=[4, 0, 9], check_every=2)
    np.testing.assert_allclose(res.psi, ref.psi, **TOL64)
    np.testing.assert_array_equal(res.sample_indices, [4, 0, 9])
    for key in ("eta", "n_v", "nu"):
        np.testing.assert_array_equal(res.params[key], ref.params[key])


@needs_cuda
def test_results_independent_of_batch_size_and_composition(dev64):
    """Samples 1 and 2 alone, one per batch, are bitwise the rows of the 3-sample batch."""
    sub = {k: v[1:] for k, v in PARAMS.items()}
    done = []
    res = tc.simulate_cuda(CFG, sub, sample_indices=[1, 2], batch_size=1, check_every=2, progress=done.append)
    np.testing.assert_array_equal(res.psi, dev64[tc.select_mode(CFG.N, CFG.dtype)].psi[1:])
    np.testing.assert_array_equal(res.sample_indices, [1, 2])
    assert done == [1, 1]  # progress reports each finished batch


def test_auto_batch_size_bounds_device_memory():
    assert tc.auto_batch_size(10, 6, 2, "float64") == 10
    # N = 1024, 8 snapshots in float32: (3 + 8)·16 MiB + 8·12 MiB = 272 MiB a sample -> 7 in 2 GiB
    b = tc.auto_batch_size(8000, 1024, 8, "float32")
    assert b == 7 and b * (11 * 4 * 1024**2 * 4 + 8 * 3 * 1024**2 * 4) <= tc.BATCH_BYTES
    assert tc.auto_batch_size(5, 4096, 100, "float64") == 1  # never below one sample
    assert tc.auto_batch_size(10**6, 4, 1, "float32") == tc.MAX_BATCH == 65535  # CUDA's grid y limit


@needs_cuda
@pytest.mark.parametrize("kwargs, match", [
    (dict(batch_size=0), "batch_size must be"),
    (dict(check_every=0), "check_every must be"),
    (dict(initial=np.zeros((2, 4, 6, 6))), "initial states must have shape"),
    (dict(params={"kappa": 1.0}), "unknown sample parameter"),
])
def test_bad_arguments_are_config_errors(kwargs, match):
    kw = dict(n_samples=1)
    kw.update(kwargs)
    params = kw.pop("params", None)
    with pytest.raises(ConfigError, match=match):
        tc.simulate_cuda(CFG, params, **kw)


@needs_cuda
def test_total_winding_equals_flux_quanta(dev64):
    res = dev64["fused-shared"]
    for s, n_v in enumerate(res.params["n_v"]):
        links = landau_links(CFG.N, CFG.L, int(n_v))
        for band in range(2):
            k = winding_numbers(res.psi[s, -1, band], links)
            assert k.sum() == n_v


# --------------------------------------------------------------------------- divergence
@needs_cuda
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_nan_raises_divergence_error_naming_sample_and_step():
    init = np.stack([initial_state(0, k, CFG.N) for k in range(2)])
    init[1, 2, 3, 4] = np.nan
    with pytest.raises(DivergenceError) as err:
        tc.simulate_cuda(CFG, n_samples=2, sample_indices=[5, 9], initial=init, check_every=1)
    assert err.value.sample == 9
    assert err.value.step == 1  # the first check, as in the CPU solver
    assert "NaN/Inf" in str(err.value)


@needs_cuda
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_health_sums_match_host_sums(dtype):
    """The device reduction forms the CPU check's sums: Σρ_b, Σρ_b(−1)^(i+j), ||ψ − ψ_prev||²."""
    N = 6
    rng = np.random.default_rng(2)
    cur = rng.normal(size=(2, 4, N, N)).astype(dtype)
    prev = rng.normal(size=(2, 4, N, N)).astype(dtype)
    b = tr._Batch(cur.reshape(2, -1), np.zeros((2, 9), dtype), np.zeros((2, 2, N), dtype),
                  np.zeros((2, 2, N), dtype), "step")
    sums = b.health(tc.cuda.to_device(prev.reshape(2, -1)))
    c64, p64 = cur.astype(np.float64), prev.astype(np.float64)
    rho = c64[:, 0::2] ** 2 + c64[:, 1::2] ** 2  # (2, band, N, N)
    sign = (-1.0) ** np.add.outer(np.arange(N), np.arange(N))
    ref = np.stack([rho[:, 0].sum((1, 2)), rho[:, 1].sum((1, 2)), (rho[:, 0] * sign).sum((1, 2)),
                    (rho[:, 1] * sign).sum((1, 2)), ((c64 - p64) ** 2).sum((1, 2, 3))], axis=1)
    np.testing.assert_allclose(sums, ref, rtol=1e-12, atol=1e-12)


@needs_cuda
@pytest.mark.parametrize("mode", tc.MODES)
def test_oscillation_check_uses_previous_step_like_cpu(mode, monkeypatch):
    """With the grace period at 0 and a tiny change limit, both backends flag step 1 with the same ratio."""
    from tdglnre.physics.solver import simulate

    monkeypatch.setattr(kernels, "GRACE_STEPS", 0)
    monkeypatch.setattr(kernels, "CHANGE_MAX", 1e-3)
    cfg = CFG.replace(snapshot_times=(0.02,))
    with pytest.raises(DivergenceError) as cpu_err:
        simulate(cfg, PARAMS, check_every=1)
    with pytest.raises(DivergenceError) as dev_err:
        tc.simulate_cuda(cfg, PARAMS, check_every=1, fused=mode)
    assert (dev_err.value.sample, dev_err.value.step) == (cpu_err.value.sample, cpu_err.value.step) == (0, 1)
    assert "oscillation" in dev_err.value.reason
    assert dev_err.value.reason == cpu_err.value.reason  # same relative change to 3 digits


@needs_cuda
def test_checkerboard_density_is_flagged_after_grace(monkeypatch):
    """A period-2 density (ρ = 1 on even sites, 0.01 on odd) is a checkerboard once the grace period is over."""
    monkeypatch.setattr(kernels, "GRACE_STEPS", 2)
    even = (np.add.outer(np.arange(6), np.arange(6)) % 2 == 0)
    init = np.zeros((1, 4, 6, 6))
    init[0, 0] = np.where(even, 1.0, 0.1)
    init[0, 2] = np.where(even, 1.0, 0.1)
    with pytest.raises(DivergenceError) as err:
        tc.simulate_cuda(CFG, n_samples=1, initial=init, check_every=1)
    assert err.value.step == 2  # steps 0-1 are inside the grace period
    assert "checkerboard" in err.value.reason


# --------------------------------------------------------------------------- channels
@needs_cuda
def test_device_channels_match_network_channels(cpu64):
    """ρ1, ρ2 and curl J computed on the device equal observables.network_channels on the CPU state."""
    ch = tc.simulate_channels_cuda(CFG, PARAMS, check_every=2)
    ref = cpu64.channels()
    assert ch.dtype == np.float32 and ch.shape == (3, 2, 6, 6, 3)
    scale = np.abs(ref).max(axis=(0, 1, 2, 3))
    assert scale[2] > 0.1  # curl J is not trivially zero
    np.testing.assert_allclose(ch, ref, rtol=1e-6, atol=1e-6 * scale.max())


# --------------------------------------------------------------------------- nuisance physics (issue 13)
# N = 8, 4 Euler steps; per-sample T and delta with zeros in the mix (a clean sample in a noisy batch)
NCFG = SimConfig(N=8, L=4.0, D=(1.0, 1.0), dt=0.01, eta=0.3, n_v=1, nu=0.2, snapshot_times=(0.02, 0.04))
NPARAMS = {"n_v": [0, 1, 2], "eta": [0.1, 0.3, -0.2], "nu": [0.0, 0.2, -0.3]}
NUISANCE = {"delta": {"delta": [0.3, 0.0, -0.2]}, "T": {"T": [0.05, 0.02, 0.0]},
            "both": {"delta": [0.3, 0.0, 0.1], "T": [0.05, 0.0, 0.02]}}
NIDX = [5, 0, 11]


@pytest.fixture(scope="module")
def cpu_nuisance() -> dict[str, SimulationResult]:
    """solver.simulate (the CPU kernel with disorder and the thermal stream) per nuisance case, seed 3."""
    from tdglnre.physics.solver import simulate

    return {k: simulate(NCFG, {**NPARAMS, **v}, seed=3, sample_indices=NIDX) for k, v in NUISANCE.items()}


# "both" (T and δ together, with a clean row) stays in the default tier; the single-feature cases are
# the slow tier's (they cost ~40 s under the simulator and a fault in one feature shows in "both" too).
NUISANCE_CASES = [c if c == "both" else pytest.param(c, marks=pytest.mark.slow) for c in NUISANCE]


@needs_cuda
@pytest.mark.parametrize("case", NUISANCE_CASES)
@pytest.mark.parametrize("mode", tc.MODES)
def test_nuisance_physics_agrees_with_cpu_kernel(mode, case, cpu_nuisance):
    """Disorder, thermal noise and both, in each kernel: the CPU result for the same seed and samples."""
    ref = cpu_nuisance[case]
    res = tc.simulate_cuda(NCFG, {**NPARAMS, **NUISANCE[case]}, seed=3, sample_indices=NIDX, fused=mode,
                           check_every=2)
    np.testing.assert_allclose(res.psi, ref.psi, **TOL64)
    np.testing.assert_array_equal(res.sample_indices, NIDX)
    for key in ("T", "delta"):
        np.testing.assert_array_equal(res.params[key], ref.params[key])
    # the nuisance moved the result: it is not the clean dynamics
    clean = tc.simulate_cuda(NCFG, NPARAMS, seed=3, sample_indices=NIDX, fused=mode, check_every=2)
    on = [r for r in range(3) if any(NUISANCE[case].get(k, [0.0] * 3)[r] != 0.0 for k in ("T", "delta"))]
    off = [r for r in range(3) if r not in on]
    assert (np.abs(res.psi[on] - clean.psi[on]).max(axis=(1, 2, 3, 4)) > 1e-4).all()
    # a clean sample in a noisy/disordered batch runs the clean dynamics
    np.testing.assert_allclose(res.psi[off], clean.psi[off], **TOL64)


@needs_cuda
def test_nuisance_float32_agrees_with_cpu_float32():
    from tdglnre.physics.solver import simulate

    cfg = NCFG.replace(dtype="float32")
    pars = {**NPARAMS, **NUISANCE["both"]}
    ref = simulate(cfg, pars, seed=3, sample_indices=NIDX)
    for mode in tc.MODES:
        res = tc.simulate_cuda(cfg, pars, seed=3, sample_indices=NIDX, fused=mode, check_every=2)
        assert res.psi.dtype == np.complex64
        np.testing.assert_allclose(res.psi, ref.psi, **TOL32)


@needs_cuda
def test_nuisance_from_config_values_and_batch_independence():
    """T and delta as config values (not per-sample params) are accepted and run; batches do not matter."""
    from tdglnre.physics.solver import simulate

    cfg = NCFG.replace(T=0.03, delta=0.2, snapshot_times=(0.02,))
    ref = simulate(cfg, seed=1, n_samples=2)
    res = tc.simulate_cuda(cfg, seed=1, n_samples=2, check_every=2)
    np.testing.assert_allclose(res.psi, ref.psi, **TOL64)
    one = tc.simulate_cuda(cfg, seed=1, sample_indices=[1], batch_size=1, check_every=2)
    np.testing.assert_array_equal(one.psi, res.psi[1:])


@needs_cuda
def test_clean_runs_are_bitwise_unchanged_by_zero_nuisance(dev64):
    """T = 0 and delta = 0 given explicitly run the clean kernels: bitwise the clean output."""
    for mode in tc.MODES:
        res = tc.simulate_cuda(CFG, {**PARAMS, "T": [0.0] * 3, "delta": 0.0}, fused=mode, check_every=2)
        np.testing.assert_array_equal(res.psi, dev64[mode].psi)


@needs_cuda
def test_device_noise_deviates_equal_cpu_stream():
    """The device's normals for (key, step, site, component) are thermal_normals' (the CPU stream)."""
    from tdglnre.physics.cuda import noise as cn
    from numba import cuda

    N = 5
    keys = np.array([kernels.noise_key(3, 0), kernels.noise_key(0, 7), np.uint64(2**64 - 1)], dtype=np.uint64)
    for step in (0, 13, 10**9):
        out = cuda.device_array((3, 4, N * N), dtype=np.float64)
        grid, tpb = tk.grid(N * N, 3)
        cn.normals_kernel[grid, tpb](cuda.to_device(keys), step, N, out)
        got = out.copy_to_host().reshape(3, 4, N, N)
        for r, key in enumerate(keys):
            np.testing.assert_allclose(got[r], kernels.thermal_normals(key, step, N), rtol=1e-15, atol=1e-15)


@needs_cuda
def test_gradient_with_disorder_matches_cpu_and_energy_difference():
    cfg = NCFG.replace(n_v=2, eta=0.2, nu=0.3, delta=0.3)
    z = initial_state(3, 0, cfg.N)
    dev = tc.CudaEnergyModel(cfg, seed=3, index=5)
    cpu = EnergyModel(cfg, seed=3, index=5)
    g_dev = dev.gradient(z)
    g_cpu = cpu.gradient(z)
    np.testing.assert_allclose(g_dev, g_cpu, rtol=1e-12, atol=1e-13 * np.abs(g_cpu).max())
    # the disorder term is in it: differs from the clean gradient and matches dF of the disordered energy
    g_clean = tc.CudaEnergyModel(cfg.replace(delta=0.0)).gradient(z)
    assert np.abs(g_dev - g_clean).max() > 1e-3 * np.abs(g_dev).max()
    eps = 1e-6
    for k in (0, 77, 130, 255):
        e = np.zeros(z.size)
        e[k] = eps
        fd = (cpu.energy(z.reshape(-1) + e) - cpu.energy(z.reshape(-1) - e)) / (2 * eps)
        assert abs(fd - g_dev.reshape(-1)[k]) < 1e-6 * max(1.0, abs(fd))
    with pytest.raises(ConfigError, match="landscape"):
        tc.CudaEnergyModel(cfg)  # delta without seed/index or xi: the landscape is unknown


# --------------------------------------------------------------------------- gradient and HVP
@needs_cuda
def test_gradient_matches_energy_model():
    cfg = CFG.replace(n_v=2, eta=0.2, nu=0.3)
    z = initial_state(3, 0, cfg.N)
    g_dev = tc.CudaEnergyModel(cfg).gradient(z)
    g_cpu = EnergyModel(cfg).gradient(z)
    assert g_dev.shape == z.shape
    np.testing.assert_allclose(g_dev, g_cpu, rtol=1e-12, atol=1e-13 * np.abs(g_cpu).max())


def _uniform(cfg: SimConfig) -> np.ndarray:
    u = np.sqrt((cfg.eta - cfg.alpha[0]) / cfg.beta[0])  # equal bands: u1 = u2
    z = np.zeros((4, cfg.N, cfg.N))
    z[0] = z[2] = u
    return z


@needs_cuda
def test_hvp_matches_cpu_richardson_and_uniform_state_modes():
    cfg = SimConfig(N=4, L=4.0, D=(1.0, 1.0), eta=0.1, n_v=0, nu=0.0)
    model = tc.CudaEnergyModel(cfg)
    z = _uniform(cfg)
    assert np.abs(model.gradient(z)).max() < 1e-12  # stationary
    H = tc.CudaHessian(model, z)
    rng = np.random.default_rng(1)
    zr = z + 0.3 * rng.normal(size=z.shape)
    v = rng.normal(size=model.size)
    # the CPU Richardson product from EnergyModel.gradient, term by term
    cpu = EnergyModel(cfg)
    vh = v / np.linalg.norm(v)
    d = 0.5 * max(1.0, np.abs(zr).max())

    def D(delta):
        return (cpu.gradient(zr.reshape(-1) + delta * vh) - cpu.gradient(zr.reshape(-1) - delta * vh)) / (2 * delta)

    ref = (4.0 * D(0.5 * d) - D(d)) / 3.0 * np.linalg.norm(v)
    np.testing.assert_allclose(tc.CudaHessian(model, zr).matvec(v), ref, rtol=1e-10,
                               atol=1e-10 * np.abs(ref).max())
    # global phase rotation: zero mode; relative phase (Leggett): 2h²η(u1/u2 + u2/u1) = 4h²η
    phase = np.concatenate([np.zeros(16), np.ones(16), np.zeros(16), np.ones(16)])
    leggett = np.concatenate([np.zeros(16), np.ones(16), np.zeros(16), -np.ones(16)])
    assert np.abs(H.matvec(phase)).max() < 1e-9
    np.testing.assert_allclose(H.matvec(leggett), 4 * cfg.h ** 2 * cfg.eta * leggett, atol=1e-9)
    # scipy's eigsh drives the device products: the top of the spectrum is the amplitude
    # mode at κ = 8/h², 2h²(κ + α + 3βu² + η)
    top = spla.eigsh(H.as_linear_operator(), k=1, which="LA", return_eigenvectors=False, tol=1e-8)[0]
    u2 = cfg.eta - cfg.alpha[0]
    assert top == pytest.approx(2 * cfg.h ** 2 * (8 / cfg.h ** 2 + cfg.alpha[0] + 3 * u2 + cfg.eta), rel=1e-8)


def test_device_hvp_default_steps_are_the_cpu_hessians():
    """Issue 18: CudaHessian.DEFAULT_REL_STEP (physics may not import analysis) equals the CPU Hessian's."""
    from tdglnre.analysis.hessian import DEFAULT_REL_STEP

    assert tc.CudaHessian.DEFAULT_REL_STEP == {m: DEFAULT_REL_STEP[m] for m in tc.CudaHessian.METHODS}


# --------------------------------------------------------------------------- benchmark
@needs_cuda
def test_bench_cuda_reports_rates_per_case():
    out = tb.bench_cuda(cases=[(4, 2)], steps=2, dtypes=("float32",), repeats=1)
    assert out["device"] == tc.gpu_name()
    assert out["cuda_float32_msites"] > 0
    (row,) = out["per_size"]
    assert row["N"] == 4 and row["batch"] == 2 and row["dtype"] == "float32" and row["kernel"] == "fused-shared"
    assert row["msites"] == out["cuda_float32_msites"]
    assert row["screened_msites"] == out["cuda_screened_float32_msites"] > 0  # λ < ∞ in the same run (issue 19)
    assert row["screened_cost"] == out["cuda_screened_cost_float32"] == row["msites"] / row["screened_msites"]
    assert [c[0] for c in tb.BENCH_CASES] == [64, 64, 256, 1024]


# --------------------------------------------------------------------------- PTX compilation
_PTX_SCRIPT = r'''
import sys, types as _t
from numba import cuda, types
import numba.cuda.dispatcher as disp
if not cuda.is_available():  # device functions ask the driver for the compute capability
    disp.get_current_device = lambda: _t.SimpleNamespace(compute_capability=(9, 0))
from tdglnre.physics.cuda import kernels as tk
from tdglnre.physics.cuda import noise as cn
A = lambda t, nd: types.Array(t, nd, "C")
f32, f64, i64, u64 = types.float32, types.float64, types.int64, types.uint64
ext = lambda t: (A(t, 2), A(t, 2), A(t, 1), A(u64, 1), i64)  # xi, dco, amp, keys, first step
kern = []
for t in (f32, f64):  # the clean kernels: both nuisance features compiled out
    ks = tk.euler_kernels(str(t), False, False)
    kern += [(ks["step"], (A(t, 2), A(t, 2), A(t, 2), A(t, 3), A(t, 3)) + ext(t)),
             (ks["fused-global"], (A(t, 2), A(t, 2), A(t, 2), A(t, 3), A(t, 3), i64) + ext(t)),
             (ks["fused-shared"], (A(t, 2), A(t, 2), A(t, 3), A(t, 3), i64) + ext(t)),
             (tk.health_kernel(256), (A(t, 2), A(t, 2), A(f64, 2), i64, i64, i64, f64, f64, A(i64, 1), A(i64, 1),
                                      A(f64, 1))),
             (tk.store_kernel, (A(t, 2), A(t, 3), i64)),
             (tk.channels_kernel, (A(t, 2), A(f32, 5), i64, A(f64, 3), A(f64, 3), A(f64, 1), f64, f64, f64))]
from tdglnre.physics.cuda import hessian as th
kern += [(th.displace_kernel, (A(f64, 1), A(f64, 1), A(f64, 1), A(f64, 2))),
         (th.richardson_kernel, (A(f64, 2), f64, f64, A(f64, 1))),
         (th.central_kernel, (A(f64, 2), f64, f64, A(f64, 1)))]
for t in (f32, f64):  # disorder and thermal noise (issue 13): the variant with both
    ks = tk.euler_kernels(str(t), True, True)
    kern += [(ks["step"], (A(t, 2), A(t, 2), A(t, 2), A(t, 3), A(t, 3)) + ext(t)),
             (ks["fused-global"], (A(t, 2), A(t, 2), A(t, 2), A(t, 3), A(t, 3), i64) + ext(t)),
             (ks["fused-shared"], (A(t, 2), A(t, 2), A(t, 3), A(t, 3), i64) + ext(t))]
kern += [(cn.normals_kernel, (A(u64, 1), i64, i64, A(f64, 3)))]
for n, (k, sig) in enumerate(kern):
    ptx, _ = cuda.compile_ptx(k.py_func, sig, cc=(9, 0))
    print(n, "fma.rn" in ptx)
'''


def _cuda_toolkit() -> str | None:
    import glob
    import os

    for root in [os.environ.get("CUDA_HOME", "")] + sorted(glob.glob("/usr/local/cuda*"), reverse=True):
        if root and glob.glob(os.path.join(root, "nvvm", "libdevice", "libdevice*.bc")):
            return root
    return None


@pytest.mark.skipif(_cuda_toolkit() is None, reason="no CUDA toolkit (NVVM, libdevice) to compile PTX with")
def test_every_kernel_compiles_to_ptx_for_a_real_gpu():
    """The simulator runs kernels as Python; this compiles each one for sm_90 with NVVM (no GPU needed).

    It also shows why CUDA and CPU are not bitwise equal on a GPU: the Euler kernels contain FMAs.
    """
    import os
    import subprocess
    import sys

    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="0", CUDA_HOME=_cuda_toolkit())
    out = subprocess.run([sys.executable, "-c", _PTX_SCRIPT], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    fma = [line.split()[1] == "True" for line in out.stdout.splitlines()]
    assert len(fma) == 22  # 6 kernels in two precisions, the 3 HVP kernels, 3 nuisance kernels in two, normals
    assert all(fma[0:3]) and all(fma[6:9])  # step, fused-global, fused-shared, float32 and float64
    assert all(fma[15:21])  # their disorder + thermal-noise variants


# --------------------------------------------------------------------------- real GPU
@pytest.mark.gpu
@pytest.mark.skipif(not REAL_GPU, reason=f"no real CUDA GPU: {WHY}")
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("mode, N", [("step", 64), ("fused-global", 64), ("fused-shared", 32)])
def test_gpu_agreement_at_n64(mode, N, dtype):
    """The three kernels on a real GPU (N = 64; the shared-memory one at N = 32, the largest
    power of two that fits 48 KiB in float64): CPU agreement, batch independence, channels."""
    cfg = SimConfig(N=N, L=N / 2.0, D=(4.0, 1.0), dt=1e-3, eta=0.3, n_v=4, nu=0.2,
                    snapshot_times=(0.05, 0.1), dtype=dtype)
    pars = {"n_v": [0, 4, 8], "eta": [0.1, 0.3, -0.2]}
    ref = cpu_run(cfg, pars)
    res = tc.simulate_cuda(cfg, pars, fused=mode)
    np.testing.assert_allclose(res.psi, ref.psi, **(TOL64 if dtype == "float64" else TOL32))
    one = tc.simulate_cuda(cfg, {k: v[2:] for k, v in pars.items()}, sample_indices=[2], batch_size=1, fused=mode)
    np.testing.assert_array_equal(one.psi, res.psi[2:])
    ch = tc.simulate_channels_cuda(cfg, pars, fused=mode)
    np.testing.assert_allclose(ch, ref.channels(), rtol=1e-5, atol=1e-5 * np.abs(ch).max())


@pytest.mark.gpu
@pytest.mark.skipif(not REAL_GPU, reason=f"no real CUDA GPU: {WHY}")
def test_gpu_gradient_and_bench_at_n64():
    cfg = SimConfig(N=64, L=32.0, eta=0.2, n_v=4, nu=0.3)
    z = initial_state(0, 0, 64)
    g = EnergyModel(cfg).gradient(z)
    np.testing.assert_allclose(tc.CudaEnergyModel(cfg).gradient(z), g, rtol=1e-11, atol=1e-12 * np.abs(g).max())
    out = tb.bench_cuda(cases=[(64, 8)], steps=200, dtypes=("float32",))
    assert out["per_size"][0]["kernel"] == "fused-global" and out["cuda_float32_msites"] > 0
