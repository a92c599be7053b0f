"""Issue 18 faults of the generation path: a full disk, --force over a file in use, conflicting
--set values, and wrong-type Python calls."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

import tdglnre as tg
from tdglnre.cli.main import cli
from tdglnre.errors import ConfigError, TDGLError
from tdglnre.io.ensemble import EnsembleError, EnsembleWriter, open_ensemble
from tdglnre.io.generate import generate_ensemble, partial_path
from tdglnre.io.presets import load_preset

SETS = ["N=16", "L=8", "snapshot_times=0.1", "prior.n_v=int_uniform(1,4)"]
N_SAMPLES = 48


def _args(out: Path, *extra: str) -> list[str]:
    sets = [a for s in SETS for a in ("--set", s)]
    return ["generate", "--preset", "quick", *sets, "--seed", "11", "--n-samples", str(N_SAMPLES),
            "--batch-size", "4", "--quiet", "--out", str(out), *extra]


def _run_with_file_limit(args: list[str], limit: int) -> subprocess.CompletedProcess:
    """``tdglnre ARGS`` in a subprocess whose files cannot grow beyond ``limit`` bytes (writes fail with EFBIG)."""
    code = ("import resource, signal, sys\n"
            "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
            f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, resource.RLIM_INFINITY))\n"
            "from tdglnre.cli.main import cli\n"
            f"cli({json.dumps(args)}, prog_name='tdglnre')\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)


def _datasets(path: Path) -> dict[str, bytes]:
    with h5py.File(path, "r") as f:
        return {k: f[k][()].tobytes() for k in ("theta", "x")}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ref") / "ref.h5"
    r = CliRunner().invoke(cli, _args(out))
    assert r.exit_code == 0, r.output
    return out


def _assert_one_error_line(p: subprocess.CompletedProcess) -> None:
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert "Traceback" not in p.stderr
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("Error:")]
    assert len(errors) == 1 and "disk full or file too large" in errors[0], p.stderr
    assert "continue with --resume" in errors[0]


def test_full_disk_keeps_the_complete_samples_and_resume_finishes_the_same_file(tmp_path: Path,
                                                                                 reference: Path) -> None:
    out = tmp_path / "e.h5"
    p = _run_with_file_limit(_args(out), 120_000)
    _assert_one_error_line(p)
    with open_ensemble(out) as ens:  # readable, not truncated
        kept = ens.n_complete
        assert 0 < kept < N_SAMPLES
        np.testing.assert_array_equal(ens.x(0, kept), open_ensemble(reference).x(0, kept))
    r = CliRunner().invoke(cli, _args(out, "--resume"))
    assert r.exit_code == 0, r.output
    assert f"{N_SAMPLES - kept} new samples" in r.output
    assert _datasets(out) == _datasets(reference)


def test_full_disk_during_force_keeps_the_old_file_and_a_resumable_partial(tmp_path: Path, reference: Path) -> None:
    out = tmp_path / "e.h5"
    out.write_bytes(reference.read_bytes())
    old = out.read_bytes()
    p = _run_with_file_limit(_args(out, "--force"), 120_000)  # the old file is only renamed, never written
    _assert_one_error_line(p)
    assert out.read_bytes() == old
    with open_ensemble(partial_path(out)) as ens:
        assert 0 < ens.n_complete < N_SAMPLES
    r = CliRunner().invoke(cli, _args(out, "--resume"))
    assert r.exit_code == 0, r.output
    assert not partial_path(out).exists() and _datasets(out) == _datasets(reference)


def test_no_room_for_the_layout_is_one_error_and_no_file(tmp_path: Path) -> None:
    out = tmp_path / "e.h5"
    p = _run_with_file_limit(_args(out), 2_000)
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr
    assert [ln for ln in p.stderr.splitlines() if ln.startswith("Error:")], p.stderr
    assert "disk full or file too large" in p.stderr
    assert not out.exists()


def test_force_refuses_a_file_another_run_is_writing(tmp_path: Path) -> None:
    config, prior = load_preset("quick", SETS)
    out = tmp_path / "e.h5"
    writer = EnsembleWriter.create(out, config, prior, seed=1, n_samples=4)  # holds HDF5's write lock
    try:
        with pytest.raises(EnsembleError, match="being written by another process"):
            generate_ensemble(config, prior, 4, 2, out, force=True, progress=False)
        r = CliRunner().invoke(cli, _args(out, "--force"))
        assert r.exit_code == 1 and r.output.count("Error:") == 1 and "being written by another" in r.output
        assert not partial_path(out).exists()
    finally:
        writer.close()
    with h5py.File(out, "r") as f:
        assert int(f.attrs["seed"]) == 1  # untouched
    s = generate_ensemble(config, prior, 4, 2, out, force=True, progress=False)
    assert s["n_complete"] == 4


def test_force_and_resume_refuse_a_file_another_process_is_writing(tmp_path: Path) -> None:
    """The issue's case: a second run in another process; both --force and --resume are refused."""
    out = tmp_path / "e.h5"
    code = ("import sys\n"
            "from tdglnre.io.presets import load_preset\n"
            "from tdglnre.io.ensemble import EnsembleWriter\n"
            f"config, prior = load_preset('quick', {SETS!r})\n"
            f"w = EnsembleWriter.create({str(out)!r}, config, prior, seed=11, n_samples={N_SAMPLES})\n"
            "print('open', flush=True)\n"
            "sys.stdin.read()\n"
            "w.close()\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "open"
        r = CliRunner().invoke(cli, _args(out, "--force"))
        assert r.exit_code == 1 and "being written by another process" in r.output, r.output
        r = CliRunner().invoke(cli, _args(out, "--resume"))
        assert r.exit_code == 1 and "locked" in r.output, r.output
    finally:
        proc.communicate("", timeout=60)
    assert not partial_path(out).exists()
    with h5py.File(out, "r") as f:
        assert int(f.attrs["n_complete"]) == 0
    assert CliRunner().invoke(cli, _args(out, "--force")).exit_code == 0


def test_force_does_not_rename_over_a_file_that_became_busy(tmp_path: Path) -> None:
    """A run that starts writing the target while --force computes: the finished ensemble waits in .partial."""
    config, prior = load_preset("quick", SETS)
    out = tmp_path / "e.h5"
    generate_ensemble(config, prior, 4, 1, out, progress=False)
    handles: list[h5py.File] = []

    def open_target(n: int) -> None:
        if not handles:
            handles.append(h5py.File(out, "r+"))  # another writer

    try:
        with pytest.raises(EnsembleError, match=r"kept in .*e\.h5\.partial"):
            generate_ensemble(config, prior, 4, 2, out, force=True, batch_size=2, progress=open_target)
    finally:
        for h in handles:
            h.close()
    with h5py.File(out, "r") as f:
        assert int(f.attrs["seed"]) == 1
    s = generate_ensemble(config, prior, 4, 2, out, resume=True, progress=False)
    assert s["n_new"] == 0 and not partial_path(out).exists()
    with h5py.File(out, "r") as f:
        assert int(f.attrs["seed"]) == 2 and int(f.attrs["n_complete"]) == 4


@pytest.mark.parametrize("sets", [["T=0.01", "prior.T=uniform(0,0.02)"], ["prior.T=uniform(0,0.02)", "T=0.01"],
                                  ["eta=0.5", "prior.eta=uniform(0,1)"], ["prior.nu=fixed(0)", "nu=uniform(0,0.1)"],
                                  ["T=uniform(0,0.02)", "prior.T=0.01"]])
def test_a_value_and_a_prior_for_the_same_parameter_are_refused(sets: list[str]) -> None:
    name = sets[0].split("=")[0].removeprefix("prior.")
    with pytest.raises(ConfigError, match=f"conflicting overrides for '{name}'.*fixes it and .*gives it a prior"):
        load_preset("quick", sets)


def test_conflicting_set_is_one_cli_error(tmp_path: Path) -> None:
    r = CliRunner().invoke(cli, _args(tmp_path / "e.h5", "--set", "T=0.01", "--set", "prior.T=uniform(0,0.02)"))
    assert r.exit_code == 1 and r.output.count("Error:") == 1 and "conflicting overrides for 'T'" in r.output
    assert not (tmp_path / "e.h5").exists()


def test_repeating_a_value_or_a_prior_keeps_the_last() -> None:
    _, prior = load_preset("quick", ["T=0.01", "T=0.02"])
    assert prior.fixed_values()["T"] == 0.02
    _, prior = load_preset("quick", ["prior.eta=uniform(0,1)", "eta=uniform(0,0.5)"])
    assert prior.high("eta") == 0.5
    _, prior = load_preset("quick", ["prior.nu=uniform(0,0.3)", "prior.nu=fixed(0)"])  # the drag demo's nu = 0 sets
    assert prior.fixed_values()["nu"] == 0.0 and "nu" not in prior.inferred


CFG = tg.SimConfig(N=8, L=4.0, snapshot_times=(0.01,))


@pytest.mark.parametrize("args, kwargs, match", [
    (("quick",), {}, r"`config` must be a SimConfig, got str; for a preset use tdglnre.load_preset"),
    ((None,), {}, "`config` must be a SimConfig, got NoneType"),
    (([CFG],), {}, "`config` must be a SimConfig, got list"),
    ((CFG, "eta=1"), {}, "`params` must be a mapping"),
    ((CFG, {"eta": "x"}), {}, "sample parameter eta must be a number or an array of numbers, got .x."),
    ((CFG,), {"n_samples": 16.7}, r"`n_samples` must be an integer >= 1, got 16.7"),
    ((CFG,), {"n_samples": float("nan")}, r"`n_samples` must be an integer >= 1, got nan"),
    ((CFG,), {"seed": 1.5}, "seed must be an integer"),
    ((CFG,), {"seed": None}, "seed must be an integer"),
    ((CFG,), {"n_samples": 2, "batch_size": 2.5}, r"`batch_size` must be an integer >= 1, got 2.5"),
    ((CFG,), {"n_samples": 2, "threads": 1.5}, r"`threads` must be an integer >= 1, got 1.5"),
    ((CFG,), {"n_samples": 2, "check_every": float("nan")}, "`check_every` must be an integer"),
])
def test_simulate_refuses_wrong_types_naming_the_argument(args: tuple, kwargs: dict, match: str) -> None:
    with pytest.raises(TDGLError, match=match):
        tg.simulate(*args, **kwargs)


@pytest.mark.parametrize("change, match", [
    ({"preset": None}, "`preset` must be a preset name"),
    ({"preset": ["quick"]}, "`preset` must be a preset name"),
    ({"n_samples": 16.7}, "n_samples must be a positive integer, got 16.7"),
    ({"n_samples": float("nan")}, "n_samples must be a positive integer, got nan"),
    ({"n_samples": "10"}, "n_samples must be a positive integer, got '10'"),
    ({"n_samples": None}, "n_samples must be a positive integer, got None"),
    ({"seed": 1.5}, "seed must be an integer"),
    ({"seed": "3"}, "seed must be an integer"),
    ({"seed": None}, "seed must be an integer"),
    ({"out": None}, "`out` must be a file path"),
    ({"out": ["a.h5"]}, "`out` must be a file path"),
    ({"overrides": "N=16"}, "`overrides` must be a list"),
    ({"overrides": None}, "`overrides` must be a list"),
    ({"batch_size": 2.5}, "batch_size must be a positive integer"),
    ({"threads": 1.5}, "threads must be a positive integer"),
    ({"workers": 1.5}, "workers must be a positive integer"),
    ({"store_fields": "yes"}, "store_fields must be True or False"),
    ({"resume": "no"}, "`resume` must be True or False"),
    ({"device": None}, "device must be one of"),
    ({"dtype": 32}, "`dtype` must be 'float32', 'float64' or None"),
])
def test_generate_refuses_wrong_types_naming_the_argument(tmp_path: Path, change: dict, match: str) -> None:
    kw = dict(preset="quick", n_samples=2, seed=0, out=tmp_path / "e.h5", overrides=SETS)
    kw.update(change)
    with pytest.raises(TDGLError, match=match):
        tg.generate(kw.pop("preset"), kw.pop("n_samples"), kw.pop("seed"), kw.pop("out"), **kw)
    assert not (tmp_path / "e.h5").exists()


def test_generate_validates_the_config_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 18: the preset loader, generate_ensemble and every batch's solver call used to re-check the config."""
    import tdglnre.physics.config as config_module

    full_checks = []
    as_int = config_module.as_int

    def counting_as_int(name, value, low=None):  # SimConfig.validate() starts with as_int("N", ...)
        if name == "N":
            full_checks.append(value)
        return as_int(name, value, low)

    monkeypatch.setattr(config_module, "as_int", counting_as_int)
    res = tg.generate("quick", 12, 1, tmp_path / "e.h5", overrides=SETS, batch_size=3)
    assert res.n_complete == 12 and len(full_checks) == 1
    config, prior = load_preset("quick", SETS)
    assert len(full_checks) == 2  # a new config object is checked (once) again
    config.validate()
    prior.validate(config)
    assert len(full_checks) == 2
    with pytest.raises(ConfigError, match="dt="):  # replace() makes a new, unchecked config
        config.replace(dt=1.0).validate()
