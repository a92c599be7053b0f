"""``--device cpu|cuda|auto`` on generate, bench and hessian (issue 11), under numba's CUDA simulator.

The simulator (switched on by tests/conftest.py where no GPU is present) runs
the device kernels as Python, bitwise equal to the CPU; the comparisons still
use the tolerance documented for real GPUs (docs/file-format.md, "Devices").
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from tdglnre.cli.main import cli
from tdglnre.errors import ConfigError
from tdglnre.io.ensemble import EnsembleError, file_device, open_ensemble
from tdglnre.io.generate import generate_ensemble
from tdglnre.io.presets import load_preset
from tdglnre.physics import bench as tb
from tdglnre.physics import cuda as tc
from tdglnre.physics.cuda import device as tcd

USABLE, WHY = tc.cuda_status()
needs_cuda = pytest.mark.skipif(not USABLE, reason=WHY)

#: N = 8, 20 Euler steps, float64, drag drawn from the prior too.
SETS = ["N=8", "L=4", "snapshot_times=0.01,0.02", "dtype=float64", "prior.n_v=int_uniform(1,3)",
        "prior.nu=uniform(0,0.3)"]
#: CPU vs CUDA tolerance of an ensemble (docs/file-format.md, "Devices").
RTOL, ATOL = 1e-5, 1e-6
REASON = 'numba-cuda is not installed; install the CUDA extra with pip install "tdglnre[cuda]"'


def _gen_args(out: Path, *extra: str) -> list[str]:
    return ["generate", "--preset", "quick", "--n-samples", "3", "--seed", "4", "--out", str(out), "--quiet",
            *sum((["--set", s] for s in SETS), []), *extra]


def _read(path: Path) -> dict[str, np.ndarray]:
    with open_ensemble(path) as ens:
        out = {"theta": ens.theta(), "x": ens.x()}
        if ens.has_fields:
            out["psi"] = ens.psi()
    return out


@pytest.fixture(scope="module")
def small() -> tuple:
    return load_preset("quick", SETS)


@pytest.fixture(scope="module")
def cpu_file(tmp_path_factory: pytest.TempPathFactory, small: tuple) -> Path:
    out = tmp_path_factory.mktemp("cpu") / "cpu.h5"
    generate_ensemble(*small, 3, 4, out, store_fields=True, progress=False, device="cpu")
    return out


@pytest.fixture(scope="module")
def cuda_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """``tdglnre generate --device cuda`` end to end (3 samples in batches of 2, fields stored)."""
    if not USABLE:
        pytest.skip(WHY)
    out = tmp_path_factory.mktemp("cuda") / "cuda.h5"
    r = CliRunner().invoke(cli, _gen_args(out, "--device", "cuda", "--batch-size", "2", "--store-fields"))
    assert r.exit_code == 0, r.output
    return out, r.output


# ------------------------------------------------------------------ generate
@needs_cuda
def test_cli_generate_cuda_equals_cpu_within_tolerance(cuda_run: tuple, cpu_file: Path) -> None:
    out, _ = cuda_run
    dev, ref = _read(out), _read(cpu_file)
    assert dev.keys() == ref.keys() == {"theta", "x", "psi"}
    np.testing.assert_array_equal(dev["theta"], ref["theta"])  # drawn on the host from (seed, k)
    for k in ("x", "psi"):
        assert dev[k].dtype == ref[k].dtype and dev[k].shape == ref[k].shape
        np.testing.assert_allclose(dev[k], ref[k], rtol=RTOL, atol=ATOL, err_msg=k)
    assert np.all(np.isfinite(dev["x"])) and dev["x"].shape == (3, 2, 8, 8, 3)
    with open_ensemble(out, require_complete=True) as ens:
        assert ens.n_complete == 3


@needs_cuda
def test_provenance_records_device_and_gpu_name(cuda_run: tuple, cpu_file: Path) -> None:
    out, output = cuda_run
    with h5py.File(out, "r") as f:
        assert f.attrs["device"] == "cuda" and f.attrs["gpu_name"] == tc.gpu_name() == "CUDA simulator"
    with h5py.File(cpu_file, "r") as f:
        assert f.attrs["device"] == "cpu" and f.attrs["gpu_name"] == ""
    assert "cuda CUDA simulator" in output and "3/3 complete" in output and "waited for" in output
    r = CliRunner().invoke(cli, ["inspect", str(out), "--json"])
    assert r.exit_code == 0, r.output
    info = json.loads(r.output)
    assert (info["device"], info["gpu_name"]) == ("cuda", "CUDA simulator")


@needs_cuda
def test_cuda_summary_and_batch_independence(tmp_path: Path, small: tuple, cuda_run: tuple) -> None:
    """Library call with the default (GPU) batch size gives the CLI's file bit for bit; summary names the device."""
    out = tmp_path / "lib.h5"
    s = generate_ensemble(*small, 3, 4, out, store_fields=True, progress=False, device="cuda")
    assert (s["device"], s["gpu_name"], s["batch_size"]) == ("cuda", "CUDA simulator", 3)
    a, b = _read(out), _read(cuda_run[0])
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_cuda_unusable_fails_with_one_line_and_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tcd, "cuda_status", lambda: (False, REASON))
    out = tmp_path / "x.h5"
    r = CliRunner().invoke(cli, _gen_args(out, "--device", "cuda"))
    assert r.exit_code == 1
    assert r.output.strip() == f"Error: device 'cuda' is not usable: {REASON}"
    assert not out.exists()
    for args in (["bench", "--device", "cuda", "--sizes", "4", "--batch", "1", "--steps", "1"],
                 ["hessian", "--device", "cuda", "--N", "6", "--L", "3", "--t", "0.01", "--n-eig", "2",
                  "--no-relax", "--quiet", "--out", str(tmp_path / "h")]):
        r = CliRunner().invoke(cli, args)
        assert r.exit_code == 1 and r.output.strip() == f"Error: device 'cuda' is not usable: {REASON}", args
    assert not (tmp_path / "h" / "spectrum.h5").exists()


def test_auto_falls_back_to_cpu(tmp_path: Path, small: tuple, cpu_file: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    # under the simulator auto never picks CUDA; without CUDA at all it must not either
    s = generate_ensemble(*small, 3, 4, tmp_path / "a.h5", store_fields=True, progress=False, device="auto")
    assert s["device"] == "cpu" and s["gpu_name"] == ""
    monkeypatch.setattr(tcd, "cuda_status", lambda: (False, REASON))
    out = tmp_path / "b.h5"
    r = CliRunner().invoke(cli, _gen_args(out, "--device", "auto", "--store-fields"))
    assert r.exit_code == 0, r.output
    with h5py.File(out, "r") as f:
        assert f.attrs["device"] == "cpu"
    a, ref = _read(out), _read(cpu_file)
    for k in ref:
        np.testing.assert_array_equal(a[k], ref[k], err_msg=k)


def test_bad_device_name_and_dask_with_cuda_are_refused(tmp_path: Path, small: tuple) -> None:
    out = tmp_path / "d.h5"
    with pytest.raises(ConfigError, match=r"device must be one of \['cpu', 'cuda', 'auto'\], got 'gpu'"):
        generate_ensemble(*small, 2, 0, out, progress=False, device="gpu")
    if USABLE:
        with pytest.raises(ConfigError, match="--device cuda runs in this process only; drop --workers"):
            generate_ensemble(*small, 2, 0, out, progress=False, device="cuda", workers=2)
    assert not out.exists()
    r = CliRunner().invoke(cli, _gen_args(out, "--device", "gpu"))
    assert r.exit_code == 2 and "'gpu' is not one of 'cpu', 'cuda', 'auto'" in r.output


def _interrupted_cpu_file(out: Path, small: tuple) -> None:
    def stop(n: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate_ensemble(*small, 3, 4, out, batch_size=1, store_fields=True, progress=stop, device="cpu")
    with open_ensemble(out) as ens:
        assert ens.n_complete == 1


@needs_cuda
def test_resume_refuses_another_device(tmp_path: Path, small: tuple, cpu_file: Path) -> None:
    out = tmp_path / "r.h5"
    _interrupted_cpu_file(out, small)
    with pytest.raises(EnsembleError, match=r"differs from the file in device \(file 'cpu' vs 'cuda'.*"
                                            r"resume with --device cpu\)"):
        generate_ensemble(*small, 3, 4, out, resume=True, store_fields=True, progress=False, device="cuda")
    with open_ensemble(out) as ens:
        assert ens.n_complete == 1  # untouched by the refusal
    s = generate_ensemble(*small, 3, 4, out, resume=True, store_fields=True, progress=False, device="cpu")
    assert s["n_new"] == 2
    a, ref = _read(out), _read(cpu_file)
    for k in ref:
        np.testing.assert_array_equal(a[k], ref[k], err_msg=k)


def test_file_without_device_attributes_reads_and_resumes_as_cpu(tmp_path: Path, small: tuple,
                                                                 cpu_file: Path) -> None:
    """Files from before issue 11 carry no device/gpu_name: they read, count as CPU files and resume on the CPU."""
    out = tmp_path / "old.h5"
    _interrupted_cpu_file(out, small)
    with h5py.File(out, "r+") as f:
        del f.attrs["device"], f.attrs["gpu_name"]
        assert file_device(f.attrs) == ("cpu", "")
    with open_ensemble(out) as ens:
        assert ens.summary()["device"] == "cpu" and ens.summary()["gpu_name"] == ""
    if USABLE:
        with pytest.raises(EnsembleError, match="device"):
            generate_ensemble(*small, 3, 4, out, resume=True, store_fields=True, progress=False, device="cuda")
    generate_ensemble(*small, 3, 4, out, resume=True, store_fields=True, progress=False)
    a, ref = _read(out), _read(cpu_file)
    for k in ref:
        np.testing.assert_array_equal(a[k], ref[k], err_msg=k)


def test_workflow_generate_passes_device(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tdglnre.io.generate as gen
    from tdglnre.workflows.generate import generate

    seen = {}
    real = gen.generate_ensemble

    def spy(*a, **kw):
        seen.update(kw)
        return real(*a, **kw)

    monkeypatch.setattr(gen, "generate_ensemble", spy)
    res = generate("quick", 2, 0, tmp_path / "w.h5", overrides=SETS, device="auto")
    assert seen["device"] == "auto" and res.summary["device"] == "cpu"


# --------------------------------------------------------------------- bench
@needs_cuda
def test_bench_cuda_json_structure() -> None:
    r = CliRunner().invoke(cli, ["bench", "--device", "cuda", "--json", "--sizes", "4", "--batch", "2",
                                 "--steps", "2"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["device"] == "cuda" and data["gpu_name"] == "CUDA simulator" and data["steps"] == 2
    assert data["cuda_float32_msites"] > 0 and data["cuda_float64_msites"] > 0
    rows = data["per_size"]
    assert [(x["N"], x["batch"], x["dtype"]) for x in rows] == [(4, 2, "float32"), (4, 2, "float64")]
    assert all(x["kernel"] in tc.MODES and x["msites"] > 0 for x in rows)
    assert data["cuda_float32_msites"] == rows[0]["msites"] and data["cuda_float64_msites"] == rows[1]["msites"]
    r = CliRunner().invoke(cli, ["bench", "--device", "cuda", "--sizes", "4", "--batch", "1", "--steps", "1"])
    assert r.exit_code == 0 and "CUDA kernels on CUDA simulator" in r.output and "fused-shared" in r.output


@needs_cuda
def test_bench_cuda_default_cases_are_the_issue_cases(monkeypatch: pytest.MonkeyPatch) -> None:
    from tdglnre.physics.bench import run_benchmark

    calls = []

    def fake(cases, *, steps, repeats):
        calls.append((tuple(cases), steps, repeats))
        return {"device": "GPU X", "cuda_float32_msites": 1.0, "cuda_float64_msites": 0.5, "per_size": []}

    monkeypatch.setattr(tb, "bench_cuda", fake)
    out = run_benchmark(device="cuda", steps=7)
    assert calls == [(((64, 8), (64, 1024), (256, 64), (1024, 8)), 7, 2)]
    assert out["device"] == "cuda" and out["gpu_name"] == "GPU X" and out["per_size"] == []
    r = CliRunner().invoke(cli, ["bench", "--device", "cuda", "--json", "--steps", "3"])
    assert r.exit_code == 0 and calls[-1][0] == tb.BENCH_CASES  # no --sizes/--batch: the issue's cases
    r = CliRunner().invoke(cli, ["bench", "--device", "cuda", "--json", "--batch", "5"])
    assert r.exit_code == 0 and calls[-1][0] == ((64, 5), (128, 5))
    with pytest.raises(ConfigError, match=r"bench case N must be an integer >= 4, got 2"):
        run_benchmark(device="cuda", cases=[(2, 8)])


def test_bench_cpu_result_names_its_device() -> None:
    from tdglnre.physics.bench import run_benchmark

    out = run_benchmark(sizes=(4,), batch=1, steps=1, numpy_steps=1, threads=1, repeats=1)
    assert out["device"] == "cpu" and "numba_float64_msites" in out


# ------------------------------------------------------------------- hessian
@needs_cuda
def test_hessian_cli_cuda_agrees_with_cpu_eigenvalues(tmp_path: Path) -> None:
    from tdglnre.analysis.hessian import FromParams, HessianOptions, hessian, load_result

    src = dict(N=6, L=3.0, eta=0.5, n_v=1, nu=0.1, t=0.05)
    ref = hessian(FromParams(**src), HessianOptions(n_eig=4, relax=False))
    r = CliRunner().invoke(cli, ["hessian", "--device", "cuda", "--N", "6", "--L", "3", "--eta", "0.5", "--n-v", "1",
                                 "--nu", "0.1", "--t", "0.05", "--n-eig", "4", "--no-relax", "--json", "--out",
                                 str(tmp_path / "h")])
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["device"] == "cuda" and data["gpu_name"] == "CUDA simulator"
    scale = abs(ref.lambda_max_est)
    np.testing.assert_allclose(data["eigenvalues"], ref.eigenvalues, rtol=1e-8, atol=1e-10 * scale)
    assert data["zero_mode_index"] == ref.zero_mode_index
    back = load_result(tmp_path / "h" / "spectrum.h5")
    assert back.device == "cuda" and back.options.device == "cuda"


@needs_cuda
def test_relaxation_on_the_device_follows_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """A few L-BFGS iterations with device gradients track the CPU; device products equal the CPU's."""
    from tdglnre.analysis.hessian import FromParams, Hessian, relax
    from tdglnre.physics.solver import EnergyModel

    cfg, psi, p = FromParams(N=6, L=3.0, eta=0.5, n_v=1, nu=0.1, t=0.05).resolve()
    kw = dict(eta=p["eta"], n_v=p["n_v"], nu=p["nu"])
    cpu, dev = EnergyModel(cfg, **kw), tc.CudaEnergyModel(cfg, **kw)
    z0 = np.concatenate([psi[0].real, psi[0].imag, psi[1].real, psi[1].imag]).reshape(-1)
    a = relax(cpu, z0, residual_tol=1e-30, max_iter=4, newton_steps=0)
    b = relax(dev, z0, residual_tol=1e-30, max_iter=4, newton_steps=0)
    assert (a.n_lbfgs, a.n_newton) == (b.n_lbfgs, b.n_newton) == (4, 0)
    np.testing.assert_allclose(b.z, a.z, rtol=0, atol=1e-9)
    assert b.residual_after == pytest.approx(a.residual_after, rel=1e-6)
    h = Hessian(dev, a.z)
    assert h.on_device and h._device is not None
    v = np.random.default_rng(0).standard_normal(h.n)
    np.testing.assert_allclose(h.matvec(v), Hessian(cpu, a.z).matvec(v), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(Hessian(dev, a.z, method="exact").matvec(v),
                               Hessian(cpu, a.z, method="exact").matvec(v), rtol=0, atol=0)


def test_hessian_options_device_is_validated() -> None:
    from tdglnre.analysis.hessian import HessianOptions

    assert HessianOptions().device == "cpu"
    assert HessianOptions(device="auto").to_dict()["device"] == "auto"
    with pytest.raises(ConfigError, match=r"unknown device 'gpu'; valid: \['cpu', 'cuda', 'auto'\]"):
        HessianOptions(device="gpu")


@needs_cuda
@pytest.mark.parametrize("extra", ["T=0.05", "prior.T=uniform(0,0.05)", "prior.delta=uniform(0,0.1)"])
def test_cuda_generates_thermal_noise_and_disorder_like_the_cpu(tmp_path: Path, extra: str) -> None:
    """Thermal noise and pinning disorder run on the device with the CPU's random numbers (same noise
    stream, same disorder field): same θ, images within the CPU-vs-CUDA tolerance."""
    runs = {}
    for dev in ("cpu", "cuda"):
        out = tmp_path / f"{dev}.h5"
        r = CliRunner().invoke(cli, _gen_args(out, "--device", dev, "--set", extra))
        assert r.exit_code == 0, r.output
        runs[dev] = _read(out)
    np.testing.assert_array_equal(runs["cuda"]["theta"], runs["cpu"]["theta"])
    np.testing.assert_allclose(runs["cuda"]["x"], runs["cpu"]["x"], rtol=RTOL, atol=ATOL)
    clean = tmp_path / "clean.h5"
    assert CliRunner().invoke(cli, _gen_args(clean, "--device", "cpu")).exit_code == 0
    assert not np.allclose(_read(clean)["x"], runs["cpu"]["x"], rtol=RTOL, atol=ATOL)  # the nuisance acts


def test_simulate_dispatches_on_device():
    """tg.simulate(device=...) runs the CUDA backend (the simulator here) from the same initial states."""
    import tdglnre as tg
    from tdglnre.physics import cuda

    cfg = tg.SimConfig(N=8, L=4.0, dt=0.005, snapshot_times=(0.05,), eta=0.5, n_v=1, dtype="float64")
    cpu = tg.simulate(cfg, n_samples=2, seed=4)
    if cuda.cuda_status()[0]:
        dev = tg.simulate(cfg, n_samples=2, seed=4, device="cuda")
        np.testing.assert_allclose(dev.psi, cpu.psi, rtol=1e-10, atol=1e-12)
    auto = tg.simulate(cfg, n_samples=2, seed=4, device="auto")  # never the simulator: the CPU here
    np.testing.assert_array_equal(auto.psi, cpu.psi)
    with pytest.raises(tg.ConfigError):
        tg.simulate(cfg, n_samples=1, device="tpu")


def test_bench_auto_without_gpu_says_it_ran_on_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 18: ``bench --device auto`` falling back to the CPU says so (result key and table line)."""
    from tdglnre.physics.bench import run_benchmark

    monkeypatch.setattr(tcd, "cuda_status", lambda: (False, REASON))
    out = run_benchmark(sizes=(4,), batch=1, steps=1, numpy_steps=1, threads=1, repeats=1, device="auto")
    assert out["device"] == "cpu" and out["fallback"] == REASON
    assert "fallback" not in run_benchmark(sizes=(4,), batch=1, steps=1, numpy_steps=1, threads=1, repeats=1)
    r = CliRunner().invoke(cli, ["bench", "--device", "auto", "--sizes", "4", "--batch", "1", "--steps", "1",
                                 "--numpy-steps", "1"])
    assert r.exit_code == 0, r.output
    assert r.output.splitlines()[0] == f"device auto: no usable GPU, ran on the CPU ({REASON})"
