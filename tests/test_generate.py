"""``tdglnre generate`` / ``inspect``: determinism, crash safety, Dask, CLI errors."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from tdglnre.cli.main import cli
from tdglnre.errors import ConfigError, DivergenceError
from tdglnre.io.ensemble import EnsembleError, open_ensemble
from tdglnre.io.generate import generate_ensemble
from tdglnre.io.presets import load_preset
from tdglnre.physics.config import SimConfig
from tdglnre.physics.observables import network_channels

# tiny, fast setting: 16x16 sites, two snapshots
TINY = ["N=16", "L=8", "snapshot_times=0.1,0.2", "prior.n_v=int_uniform(1,4)"]


def _read_all(path: Path) -> dict[str, np.ndarray]:
    with open_ensemble(path) as ens:
        out = {"theta": ens.theta(), "x": ens.x()}
        if ens.has_fields:
            out["psi"] = ens.psi()
    return out


def _assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.fixture(scope="module")
def tiny() -> tuple:
    return load_preset("quick", TINY)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, tiny: tuple) -> tuple[Path, dict]:
    path = tmp_path_factory.mktemp("ref") / "ref.h5"
    config, prior = tiny
    s = generate_ensemble(config, prior, 10, 42, path, batch_size=10, store_fields=True, progress=False)
    assert s["n_complete"] == 10 and s["n_new"] == 10
    return path, _read_all(path)


def test_identical_for_any_batch_size(tmp_path: Path, tiny: tuple, reference: tuple) -> None:
    config, prior = tiny
    for bs in (1, 3):
        out = tmp_path / f"b{bs}.h5"
        generate_ensemble(config, prior, 10, 42, out, batch_size=bs, store_fields=True, progress=False)
        _assert_same(_read_all(out), reference[1])


def test_content_follows_the_physics_conventions(reference: tuple, tiny: tuple) -> None:
    path, data = reference
    config, prior = tiny
    S, T = 10, 2
    assert data["theta"].shape == (S, 2) and data["x"].shape == (S, T, 16, 16, 3)
    assert data["psi"].shape == (S, T, 2, 16, 16)
    np.testing.assert_array_equal(data["theta"], prior.sample(42, np.arange(S)))
    # the stored channels are the observables of the stored fields (psi is complex64 -> float32 rounding)
    for s in (0, 7):
        n_v = int(data["theta"][s, 1])
        ch = network_channels(data["psi"][s, 1, 0], data["psi"][s, 1, 1], config, n_v=n_v, nu=0.0)
        np.testing.assert_allclose(ch, data["x"][s, 1], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(data["x"][..., 0], np.abs(data["psi"][:, :, 0]) ** 2, rtol=1e-5, atol=1e-6)
    assert np.all(np.isfinite(data["x"]))


def test_interrupted_then_resumed_is_identical(tmp_path: Path, tiny: tuple, reference: tuple) -> None:
    """An exception mid-run (like Ctrl-C) leaves a consistent prefix; --resume completes it."""
    config, prior = tiny
    out = tmp_path / "int.h5"
    seen = []

    def stop_after_two(n: int) -> None:
        seen.append(n)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate_ensemble(config, prior, 10, 42, out, batch_size=3, store_fields=True, progress=stop_after_two)
    with open_ensemble(out) as ens:
        assert ens.n_complete == 6
        np.testing.assert_array_equal(ens.x(), reference[1]["x"][:6])
    s = generate_ensemble(config, prior, 10, 42, out, resume=True, batch_size=4, store_fields=True, progress=False)
    assert s["resumed"] and s["n_new"] == 4 and s["n_complete"] == 10
    _assert_same(_read_all(out), reference[1])
    # resuming a complete file is a no-op
    s = generate_ensemble(config, prior, 10, 42, out, resume=True, store_fields=True, progress=False)
    assert s["n_new"] == 0


def test_resume_refuses_different_settings(tmp_path: Path, tiny: tuple, reference: tuple) -> None:
    config, prior = tiny
    path = reference[0]
    with pytest.raises(EnsembleError, match="seed"):
        generate_ensemble(config, prior, 10, 43, path, resume=True, store_fields=True, progress=False)
    with pytest.raises(EnsembleError, match="dtype"):
        generate_ensemble(config.replace(dtype="float64"), prior, 10, 42, path, resume=True,
                          store_fields=True, progress=False)
    with pytest.raises(EnsembleError, match="already exists; use --force"):
        generate_ensemble(config, prior, 10, 42, path, store_fields=True, progress=False)
    with pytest.raises(ConfigError, match="mutually exclusive"):
        generate_ensemble(config, prior, 10, 42, path, resume=True, force=True, progress=False)


def test_dask_two_workers_identical(tmp_path: Path, tiny: tuple, reference: tuple) -> None:
    pytest.importorskip("dask.distributed")
    config, prior = tiny
    out = tmp_path / "dask.h5"
    s = generate_ensemble(config, prior, 10, 42, out, workers=2, batch_size=2, store_fields=True, progress=False)
    assert s["n_complete"] == 10 and s["mode"] == "dask-local(2)"
    _assert_same(_read_all(out), reference[1])


def _diverge_at(monkeypatch: pytest.MonkeyPatch, bad_sample: int) -> None:
    """Make generate's solver raise DivergenceError for global sample ``bad_sample``.

    The config validation now rejects every step the explicit scheme cannot
    take (docs/physics.md, "Well-posedness and stability"), so no valid config
    diverges on purpose; this checks how generate handles the solver's error.
    """
    import tdglnre.io.generate as gen
    from tdglnre.physics.solver import simulate as real

    def simulate(config, params, *, seed, sample_indices, **kw):
        idx = list(np.asarray(sample_indices))
        if bad_sample in idx:
            r = idx.index(bad_sample)
            raise DivergenceError(bad_sample, 17, {k: float(np.asarray(v)[r]) for k, v in params.items()})
        return real(config, params, seed=seed, sample_indices=sample_indices, **kw)

    monkeypatch.setattr(gen, "simulate", simulate)


def test_divergence_names_sample_and_parameters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config, prior = load_preset("quick", ["N=8", "L=4", "snapshot_times=0.2"])
    _diverge_at(monkeypatch, 0)
    out = tmp_path / "div.h5"
    with pytest.raises(DivergenceError) as info:
        generate_ensemble(config, prior, 4, 1, out, progress=False)
    assert info.value.sample == 0 and set(info.value.params) == {"eta", "n_v", "nu"}
    assert info.value.params["eta"] == prior.sample(1, np.arange(1))[0, 0]
    # nothing was simulated: the new file is removed instead of being left as 0/4 (issue 9, item 7)
    assert not out.exists()
    # a later divergence keeps the complete samples before it
    _diverge_at(monkeypatch, 5)
    with pytest.raises(DivergenceError, match="for sample 5"):
        generate_ensemble(config, prior, 8, 1, out, batch_size=2, progress=False)
    with open_ensemble(out) as ens:
        assert ens.n_complete == 4


def test_float32_channels_match_float64(tmp_path: Path) -> None:
    """The presets' float32 default agrees with float64 far below the signal."""
    cfg32, prior = load_preset("quick", ["N=16", "L=8", "snapshot_times=0.5"])
    a = tmp_path / "f32.h5"
    b = tmp_path / "f64.h5"
    generate_ensemble(cfg32, prior, 4, 3, a, progress=False)
    generate_ensemble(cfg32.replace(dtype="float64"), prior, 4, 3, b, progress=False)
    xa, xb = _read_all(a)["x"], _read_all(b)["x"]
    scale = np.abs(xb).max(axis=(0, 1, 2, 3))
    assert np.all(np.abs(xa - xb).max(axis=(0, 1, 2, 3)) <= 1e-4 * scale)


# ------------------------------------------------------------- kill -9 + resume
_RUNNER = (
    "import logging, sys; logging.basicConfig(level=logging.WARNING, stream=sys.stderr); "
    "logging.getLogger('tdglnre.io.ensemble').setLevel(logging.DEBUG); "
    "from tdglnre.cli.main import cli; cli(sys.argv[1:])"
)


def test_kill9_mid_run_then_resume_is_identical(tmp_path: Path) -> None:
    """A real subprocess killed with SIGKILL mid-run, then --resume, equals an uninterrupted run."""
    sets = ["N=32", "L=16", "snapshot_times=0.5,1", "prior.n_v=int_uniform(1,8)"]
    S = 100  # 50 batches: plenty left to do when the kill lands after batch 5
    out = tmp_path / "killed.h5"
    args = ["generate", "--preset", "quick", "--n-samples", str(S), "--seed", "9", "--out", str(out),
            "--batch-size", "2", "--store-fields", "--quiet"]
    for s in sets:
        args += ["--set", s]
    proc = subprocess.Popen([sys.executable, "-c", _RUNNER, *args], stderr=subprocess.PIPE, text=True)
    written = []
    done = threading.Event()

    def watch() -> None:
        for line in proc.stderr:  # type: ignore[union-attr]
            m = re.search(r"n_complete=(\d+)", line)
            if m:
                written.append(int(m.group(1)))
                if int(m.group(1)) >= 10:
                    done.set()
        done.set()

    threading.Thread(target=watch, daemon=True).start()
    assert done.wait(90), "the generate subprocess made no progress"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL, f"process ended before the kill (rc={proc.returncode})"
    assert written, "the subprocess wrote nothing before it was killed"

    with open_ensemble(out) as ens:
        n_killed = ens.n_complete
        partial = {"theta": ens.theta(), "x": ens.x(), "psi": ens.psi()}
    assert 10 <= n_killed < S

    config, prior = load_preset("quick", sets)
    ref_path = tmp_path / "ref.h5"
    generate_ensemble(config, prior, S, 9, ref_path, batch_size=7, store_fields=True, progress=False)
    ref = _read_all(ref_path)
    for k in partial:  # the complete prefix of the killed file is exactly right
        np.testing.assert_array_equal(partial[k], ref[k][:n_killed], err_msg=k)

    result = CliRunner().invoke(cli, args + ["--resume"])
    assert result.exit_code == 0, result.output
    assert "resumed" in result.output and f"{S}/{S} complete" in result.output
    _assert_same(_read_all(out), ref)


# ------------------------------------------------------------------------ CLI
def _gen_args(out: Path, *extra: str) -> list[str]:
    return ["generate", "--preset", "quick", "--n-samples", "3", "--seed", "1", "--out", str(out), "--quiet",
            *sum((["--set", s] for s in TINY), []), *extra]


def test_cli_generate_and_inspect_json(tmp_path: Path) -> None:
    out = tmp_path / "cli.h5"
    r = CliRunner().invoke(cli, _gen_args(out, "--dtype", "float64"))
    assert r.exit_code == 0, r.output
    line = r.output.strip()
    assert len(line.splitlines()) == 1 and "3/3 complete" in line and "samples/s" in line
    r = CliRunner().invoke(cli, ["inspect", str(out), "--json"])
    assert r.exit_code == 0, r.output
    info = json.loads(r.output)
    assert info["format"] == "tdglnre-ensemble" and info["format_version"] == 1
    assert info["n_complete"] == info["n_samples"] == 3 and info["complete"]
    assert info["config"]["dtype"] == "float64" and info["config"]["N"] == 16
    assert info["parameter_names"] == ["eta", "n_v"] and info["fixed"] == {"nu": 0.0}
    assert info["prior"]["n_v"] == {"kind": "int_uniform", "low": 1, "high": 4}
    eta = info["parameter_ranges"]["eta"]
    assert 0.0 <= eta["min"] <= eta["max"] <= 1.5
    assert info["file_size_bytes"] == out.stat().st_size
    assert SimConfig.from_dict(info["config"]).validate()
    r = CliRunner().invoke(cli, ["inspect", str(out)])
    assert r.exit_code == 0 and "3 / 3 complete" in r.output and "eta" in r.output


@pytest.mark.parametrize("extra, needle", [
    (["--preset", "nope"], "unknown preset 'nope'; available presets"),
    (["--set", "colour=red"], "unknown override key 'colour'; valid keys"),
    (["--set", "N=big"], "bad override N='big'"),
    (["--set", "prior.eta=uniform(2,1)"], "needs low < high"),
    (["--set", "prior.nu=uniform(0,3)"], "nu^2 < D1*D2"),
    (["--set", "B=0.5"], "Nearest valid"),
    (["--set", "alpha=-3000", "--set", "snapshot_times=0.2"], "stable"),
    (["--set", "snapshot_times=0.2", "DIVERGE"], "solver diverged (NaN/Inf) for sample 0"),
])
def test_cli_errors_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: list[str],
                                 needle: str) -> None:
    if "DIVERGE" in extra:
        extra = [e for e in extra if e != "DIVERGE"]
        _diverge_at(monkeypatch, 0)
    r = CliRunner().invoke(cli, _gen_args(tmp_path / "e.h5", *extra))
    assert r.exit_code == 1, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and needle in lines[0], r.output
    assert "Traceback" not in r.output


def test_cli_output_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    r = runner.invoke(cli, _gen_args(tmp_path / "missing_dir" / "e.h5"))
    assert r.exit_code == 1 and "directory" in r.output and "does not exist" in r.output
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if not os.access(ro, os.W_OK):  # root ignores permissions
            r = runner.invoke(cli, _gen_args(ro / "e.h5"))
            assert r.exit_code == 1 and "not writable" in r.output
    finally:
        ro.chmod(0o700)
    out = tmp_path / "e.h5"
    assert runner.invoke(cli, _gen_args(out)).exit_code == 0
    r = runner.invoke(cli, _gen_args(out))
    assert r.exit_code == 1 and "already exists; use --force" in r.output
    assert runner.invoke(cli, _gen_args(out, "--force")).exit_code == 0
    r = runner.invoke(cli, _gen_args(out, "--resume", "--set", "dt=0.002"))
    assert r.exit_code == 1 and "cannot --resume" in r.output and "dt" in r.output
    r = runner.invoke(cli, _gen_args(out, "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"))
    assert r.exit_code == 2 and "mutually exclusive" in r.output
    r = runner.invoke(cli, _gen_args(out, "--n-samples", "0"))
    assert r.exit_code == 2


def test_cli_inspect_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    txt = tmp_path / "x.h5"
    txt.write_text("not hdf5")
    other = tmp_path / "o.h5"
    with h5py.File(other, "w") as f:
        f["a"] = 1
    for path, needle in ((tmp_path / "none.h5", "no such file"), (txt, "not an HDF5 file"),
                         (other, "not a tdglnre ensemble")):
        r = runner.invoke(cli, ["inspect", str(path)])
        assert r.exit_code == 1 and r.output.startswith("Error: ") and needle in r.output, r.output
        assert len(r.output.strip().splitlines()) == 1


# ------------------------------------------------------------ writer thread
def _chunks(path: Path) -> dict[str, list[bytes]]:
    """The stored (compressed) bytes of every chunk of every dataset."""
    out = {}
    with h5py.File(path, "r") as f:
        for name in ("theta", "x", "psi"):
            ds = f[name]
            out[name] = [ds.id.read_direct_chunk(ds.id.get_chunk_info(i).chunk_offset)[1]
                         for i in range(ds.id.get_num_chunks())]
    return out


def test_writer_thread_writes_the_same_bytes_as_the_synchronous_path(tmp_path: Path, tiny: tuple) -> None:
    config, prior = tiny
    sync, threaded = tmp_path / "sync.h5", tmp_path / "thr.h5"
    s0 = generate_ensemble(config, prior, 7, 42, sync, batch_size=2, store_fields=True, progress=False,
                           writer_queue=0)
    s1 = generate_ensemble(config, prior, 7, 42, threaded, batch_size=2, store_fields=True, progress=False,
                           writer_queue=1)
    a, b = _chunks(sync), _chunks(threaded)
    assert a.keys() == b.keys() and len(a["x"]) == 7
    for k in a:
        assert a[k] == b[k], k
    # both report the writer's own time and the main thread's wait; inline, the wait is the writing
    assert s0["write_wait_s"] == s0["write_s"] > 0
    assert s1["write_s"] > 0 and 0 <= s1["write_wait_s"] <= s1["loop_s"]
    assert 0 < s1["write_fraction"] < 1 and s1["write_wait_fraction"] == pytest.approx(
        s1["write_wait_s"] / s1["loop_s"])


def test_writer_thread_failure_propagates_and_the_file_resumes(tmp_path: Path, tiny: tuple, reference: tuple,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """An HDF5 error in the writer thread stops the run with that error; the partial file resumes to the reference."""
    from tdglnre.io.ensemble import EnsembleWriter

    config, prior = tiny
    out = tmp_path / "w.h5"
    real = EnsembleWriter.write_batch
    calls = []

    def failing(self, start, theta, x, psi=None):
        calls.append((start, threading.current_thread().name))
        if len(calls) == 3:
            raise OSError("disk full (injected)")
        return real(self, start, theta, x, psi)

    monkeypatch.setattr(EnsembleWriter, "write_batch", failing)
    with pytest.raises(OSError, match="disk full"):
        generate_ensemble(config, prior, 10, 42, out, batch_size=2, store_fields=True, progress=False)
    assert {name for _, name in calls} == {"tdglnre-hdf5-writer"}
    monkeypatch.setattr(EnsembleWriter, "write_batch", real)
    with open_ensemble(out) as ens:
        assert ens.n_complete == 4
        np.testing.assert_array_equal(ens.x(), reference[1]["x"][:4])
    s = generate_ensemble(config, prior, 10, 42, out, resume=True, batch_size=3, store_fields=True, progress=False)
    assert s["n_new"] == 6
    _assert_same(_read_all(out), reference[1])


def test_divergence_with_writer_thread_keeps_queued_batches(tmp_path: Path, tiny: tuple,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A failing computation lets the writer finish every batch already handed to it."""
    config, prior = tiny
    out = tmp_path / "div.h5"
    _diverge_at(monkeypatch, 6)
    with pytest.raises(DivergenceError, match="sample 6"):
        generate_ensemble(config, prior, 10, 42, out, batch_size=2, progress=False, writer_queue=4)
    with open_ensemble(out) as ens:
        assert ens.n_complete == 6


def test_writer_queue_must_be_a_non_negative_integer(tmp_path: Path, tiny: tuple) -> None:
    for bad in (-1, 1.5, True):
        with pytest.raises(ConfigError, match="writer_queue must be an integer >= 0"):
            generate_ensemble(*tiny, 2, 0, tmp_path / "q.h5", writer_queue=bad, progress=False)
    assert not (tmp_path / "q.h5").exists()
