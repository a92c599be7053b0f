"""The CUDA kernels of the screened model (λ < ∞, issue 19) against the CPU screened kernel.

Under numba's CUDA simulator (tests/conftest.py switches it on without a GPU) the
device kernels of :mod:`tdglnre.physics.cuda.screened` run as Python, operation by
operation, so they check the gather, the seam, the coefficients and the link field
against :mod:`tdglnre.physics.screened` exactly; on a GPU the same tests hold to the
tolerances of docs/gpu.md (FMA contraction). Small lattices (N = 8) and a few
steps: the simulator is slow. Register counts: tests/test_cuda_registers.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from tdglnre.errors import ConfigError, DivergenceError
from tdglnre.physics import cuda as tc
from tdglnre.physics.backends import simulate
from tdglnre.physics.config import SimConfig
from tdglnre.physics.solver import initial_state

USABLE, WHY = tc.cuda_status()
pytestmark = pytest.mark.skipif(not USABLE, reason=f"CUDA backend not usable: {WHY}")

# h = 0.5, λ = 2, σ = 2: dt = 0.002 is below the screened bound (0.0049 at η = 0.3, ν = 0.2)
CFG = SimConfig(N=8, L=4.0, D=(1.0, 1.0), dt=0.002, eta=0.3, n_v=1, nu=0.2, lam=2.0, sigma=2.0,
                snapshot_times=(0.004, 0.008))
PARAMS = {"n_v": [0, 1, 3], "eta": [0.1, 0.3, -0.2], "nu": [0.0, 0.2, -0.3]}
NUISANCE = {"T": [0.05, 0.0, 0.02], "delta": [0.3, 0.1, 0.0]}
TOL64 = dict(rtol=1e-11, atol=1e-12)
TOL32 = dict(rtol=1e-5, atol=1e-5)


def _initial(a_scale: float, seed: int = 4) -> np.ndarray:
    """(3, 6, N, N): the solver's initial ψ of samples 0..2 and a random link field of size ``a_scale``."""
    rng = np.random.default_rng(seed)
    st = np.zeros((3, 6, CFG.N, CFG.N))
    for k in range(3):
        st[k, :4] = initial_state(seed, k, CFG.N)
    st[:, 4:] = a_scale * rng.standard_normal((3, 2, CFG.N, CFG.N))
    return st


def _both(cfg, params, **kw):
    cpu = simulate(cfg, params, device="cpu", **kw)
    dev = simulate(cfg, params, device="cuda", want_channels=True, **kw)
    return cpu, dev


@pytest.mark.parametrize("case", ["quench-nuisance", "large-a"])
def test_screened_step_follows_the_cpu_kernel(case):
    """ψ, a and the channels (B included) after 2 and 4 steps: seam (n_v = 0, 1, 3), η, ν per sample;
    thermal noise and pinning disorder from a = 0, or a clean run from |a| up to ~2 (all three
    link-factor polynomials and the range reduction)."""
    if case == "quench-nuisance":
        cpu, dev = _both(CFG, {**PARAMS, **NUISANCE}, seed=3, sample_indices=[5, 0, 11])
    else:
        cpu, dev = _both(CFG, PARAMS, seed=3, initial=_initial(0.7))
        assert np.abs(cpu.a[:, 0]).max() > 1.0  # beyond _SMALL: the range-reduced _sincos runs
    np.testing.assert_allclose(dev.psi, cpu.psi, **TOL64)
    np.testing.assert_allclose(dev.a, cpu.a, **TOL64)
    np.testing.assert_allclose(dev.x, cpu.channels(), rtol=1e-5, atol=1e-6)
    assert dev.x.shape[-1] == 4 and np.abs(dev.a).max() > 0  # B is a channel; a moved


@pytest.mark.slow  # ~8 s: numba compiles the shared functions' float32 signatures for the simulator
def test_screened_float32_follows_the_cpu_float32_kernel():
    cfg = CFG.replace(dtype="float32")
    cpu, dev = _both(cfg, {**PARAMS, **NUISANCE}, seed=3, sample_indices=[5, 0, 11])
    np.testing.assert_allclose(dev.psi, cpu.psi, **TOL32)
    np.testing.assert_allclose(dev.a, cpu.a, **TOL32)


def test_nonfinite_link_field_fails_the_sample_as_on_the_cpu():
    """A NaN in a (ψ finite) fails its sample at the first check point with the CPU's error."""
    st = _initial(0.1)
    st[1, 5, 2, 3] = np.nan
    errors = []
    for device in ("cpu", "cuda"):
        with pytest.raises(DivergenceError) as e:
            simulate(CFG, PARAMS, device=device, seed=3, initial=st, check_every=2)
        errors.append(str(e.value))
    assert errors[0] == errors[1] and "sample 1" in errors[1]


def test_screened_runs_the_step_kernel_only():
    with pytest.raises(ConfigError, match="runs the 'step' kernel"):
        tc.simulate_cuda(CFG, PARAMS, fused="fused-global")


def test_generate_on_cuda_writes_the_cpu_file(tmp_path):
    """generate --device cuda accepts λ < ∞: the same format-v2 file (B channel, a) as the CPU, to tolerance."""
    from tdglnre.io import Prior, open_ensemble
    from tdglnre.io.generate import generate_ensemble

    cfg = CFG.replace(N=6, L=3.0, snapshot_times=(0.004,))
    prior = Prior({"eta": "uniform(0.1, 0.4)", "n_v": 1.0, "nu": 0.2})
    out = {}
    for device in ("cpu", "cuda"):
        path = tmp_path / f"{device}.h5"
        generate_ensemble(cfg, prior, 2, 7, path, store_fields=True, progress=False, device=device)
        with open_ensemble(path) as e:
            assert e.attrs["format_version"] == 2 and e.attrs["device"] == device
            out[device] = (e.x(), e.a(), e.psi())
    for c, d in zip(out["cpu"], out["cuda"]):
        np.testing.assert_allclose(d, c, rtol=1e-5, atol=1e-6)


@pytest.mark.gpu
@pytest.mark.skipif(not (USABLE and not tc.simulator_enabled()), reason=f"no real CUDA GPU: {WHY}")
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_gpu_screened_agreement_at_n64(dtype):
    """On a real GPU (N = 64, 100 steps, T and δ): CPU agreement to the FMA tolerance and batch independence."""
    cfg = SimConfig(N=64, L=32.0, D=(4.0, 1.0), dt=1e-3, eta=0.3, n_v=4, nu=0.2, lam=2.0, sigma=2.0,
                    snapshot_times=(0.05, 0.1), dtype=dtype)
    pars = {"n_v": [0, 4, 8], "eta": [0.1, 0.3, -0.2], "T": [0.01, 0.0, 0.0], "delta": [0.0, 0.2, 0.0]}
    cpu, dev = _both(cfg, pars, seed=1)
    tol = TOL64 if dtype == "float64" else TOL32
    np.testing.assert_allclose(dev.psi, cpu.psi, **tol)
    np.testing.assert_allclose(dev.a, cpu.a, **tol)
    one = simulate(cfg, {k: v[2:] for k, v in pars.items()}, device="cuda", seed=1, sample_indices=[2], batch_size=1)
    np.testing.assert_array_equal(one.psi, dev.psi[2:])
    np.testing.assert_array_equal(one.a, dev.a[2:])
