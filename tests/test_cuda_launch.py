"""Launch geometry of the CUDA kernels at every N and dtype select_mode allows (issue 22).

The register side is checked against ptxas in tests/test_cuda_registers.py; here
the geometry the driver asks for is checked for every lattice size, and the
largest shared-memory lattices (the N where issue 22 saw
CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES) run under the simulator with thermal
noise and disorder against the CPU.
"""

from __future__ import annotations

import numpy as np
import pytest

from tdglnre.errors import ConfigError
from tdglnre.physics import cuda as tc
from tdglnre.physics.config import SimConfig
from tdglnre.physics.cuda import kernels as tk
from tdglnre.physics.solver import simulate

USABLE, WHY = tc.cuda_status()
REAL_GPU = USABLE and not tc.simulator_enabled()
SIZES = range(4, 2 * tk.FUSED_GLOBAL_MAX_N + 1)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_allowed_launch_fits_block_and_shared_memory_limits(dtype):
    """For every N and every mode select_mode accepts: threads ≤ MAX_BLOCK, a fused-shared block covers the
    sample with ≤ KMAX sites a thread, and its dynamic shared memory (the sample) fits 48 KiB."""
    item = np.dtype(dtype).itemsize
    bad = []
    for N in SIZES:
        for mode in tk.MODES:
            try:
                assert tk.select_mode(N, dtype, mode) == mode
            except ConfigError:
                assert mode == "fused-shared" and not tk.shared_fits(N, dtype)
                continue
            if mode == "step":
                grid, t = tk.grid(N * N, 3)
                ok = t <= tk.TPB and grid[0] * t >= N * N
            elif mode == "fused-global":
                t = tk.block_threads(N, mode)
                ok = 1 <= t <= tk.FUSED_GLOBAL_BLOCK <= tk.MAX_BLOCK
            else:
                t = tk.block_threads(N, mode)
                sites = tk.shared_sites(N)
                ok = (t <= tk.MAX_BLOCK and 1 <= sites <= tk.KMAX and N * N <= sites * t
                      and 4 * N * N * item <= tk.SHARED_BYTES)
            if not ok:
                bad.append((N, mode))
    assert bad == []
    # the default choice is one of them at every N, and the shared kernel is chosen up to its largest N
    assert {tk.select_mode(N, dtype) for N in SIZES} == set(tk.MODES)
    assert max(N for N in SIZES if tk.select_mode(N, dtype) == "fused-shared") == (55 if dtype == "float32" else 39)


@pytest.mark.skipif(not USABLE, reason=f"CUDA backend not usable: {WHY}")
@pytest.mark.parametrize("N, dtype", [(39, "float64"), (55, "float32")])
def test_largest_shared_memory_lattice_runs_with_noise_and_disorder(N, dtype):
    """Issue 22 #1: float64 fused-shared with T and δ failed to launch at N ≈ 28–39; the largest N of each
    dtype runs here (2 and 3 sites a thread) and matches the CPU solver."""
    cfg = SimConfig(N=N, L=N / 2.0, D=(1.0, 1.0), dt=1e-3, eta=0.3, n_v=2, nu=0.2, snapshot_times=(0.002,),
                    dtype=dtype)
    pars = {"T": [0.02], "delta": [0.2]}
    assert tk.select_mode(N, dtype) == "fused-shared" and tk.shared_sites(N) == (2 if N == 39 else 3)
    dev = tc.simulate_cuda(cfg, pars, n_samples=1, seed=2, check_every=2)
    ref = simulate(cfg, pars, n_samples=1, seed=2, check_every=2)
    tol = dict(rtol=1e-11, atol=1e-12) if dtype == "float64" else dict(rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dev.psi, ref.psi, **tol)


@pytest.mark.gpu
@pytest.mark.skipif(not REAL_GPU, reason=f"no real CUDA GPU: {WHY}")
@pytest.mark.parametrize("mode", tk.MODES)
def test_gpu_float64_nuisance_at_n32_every_mode(mode):
    """Issue 22: the float64 thermal-noise + disorder kernels launch on a GPU at N = 32 in every mode."""
    cfg = SimConfig(N=32, L=16.0, D=(4.0, 1.0), dt=1e-3, eta=0.3, n_v=4, nu=0.2, snapshot_times=(0.05, 0.1),
                    dtype="float64")
    pars = {"n_v": [0, 4, 8], "eta": [0.1, 0.3, -0.2], "T": [0.05, 0.0, 0.02], "delta": [0.3, 0.1, 0.0]}
    ref = simulate(cfg, pars, seed=3)
    res = tc.simulate_cuda(cfg, pars, seed=3, fused=mode)
    np.testing.assert_allclose(res.psi, ref.psi, rtol=1e-11, atol=1e-12)


@pytest.mark.skipif(not USABLE, reason=f"CUDA backend not usable: {WHY}")
def test_bench_case_batch_is_capped_like_a_run():
    """Issue 22 #7: a benchmark batch above the grid's y limit is refused before anything is allocated."""
    from tdglnre.physics.bench import bench_cuda

    with pytest.raises(ConfigError, match="batch must be <= 65535"):
        bench_cuda(cases=[(4, tc.MAX_BATCH + 1)], steps=1, dtypes=("float32",), repeats=1)


@pytest.mark.skipif(not USABLE, reason=f"CUDA backend not usable: {WHY}")
def test_gradient_and_hvp_reuse_device_buffers():
    """Issue 22 #8: repeated gradients and products allocate their device buffers once and give the same values."""
    from tdglnre.physics.solver import initial_state

    cfg = SimConfig(N=6, L=3.0, eta=0.2, n_v=1, nu=0.3)
    model = tc.CudaEnergyModel(cfg)
    z = initial_state(0, 0, 6)
    g1 = model.gradient(z)
    bufs = model._io
    g2 = model.gradient(z)
    assert model._io is bufs and bufs is not None
    np.testing.assert_array_equal(g1, g2)
    H = tc.CudaHessian(model, z)
    v = np.random.default_rng(0).normal(size=z.size)
    tables = dict(model._dev)
    h1 = H.matvec(v)
    h2 = H.matvec(v)
    assert model._dev.keys() == tables.keys() | {4} and all(model._dev[k] is tables[k] for k in tables)
    np.testing.assert_array_equal(h1, h2)
    assert h1 is not h2  # callers may keep a product
