"""Training defects of issue 9: logs, atomic checkpoints, --force, input checks.

Several tests run ``tdglnre train`` in a subprocess: the behaviour under test
(stdout not a terminal, TensorFlow not imported yet, a kill -9) only exists
in a fresh process.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("keras")

from tdglnre.cli.main import cli  # noqa: E402

from test_nre_cli import write_ensemble  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

_TINY = ["--batch-size", "16", "--filters", "4,8"]
_TF_NOISE = ("cuInit", "cudart_stub", "absl::InitializeLog", "oneDNN custom operations")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the package's own default must do the silencing
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _cli_subprocess(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    code = "import sys; from tdglnre.cli.main import cli; sys.exit(cli(prog_name='tdglnre'))"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=timeout, env=_env())


def test_non_tty_training_log_is_one_line_per_epoch_and_tensorflow_is_silent(tmp_path: Path) -> None:
    data = write_ensemble(tmp_path / "ens.h5", 80)
    res = _cli_subprocess("train", "--data", str(data), "--out", str(tmp_path / "m"),
                          "--epochs", "3", *_TINY)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    epoch_lines = [ln for ln in lines if re.match(r"^epoch \d+/3: loss [0-9.]+, val_loss ", ln)]
    assert [ln.split(":")[0] for ln in epoch_lines] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    # nothing else but the 4-line summary: no per-batch progress bar updates
    assert len(lines) == 3 + 4, res.stdout
    assert "\r" not in res.stdout and "\b" not in res.stdout and "step" not in res.stdout
    noise = [ln for ln in res.stderr.splitlines() if any(n in ln for n in _TF_NOISE)]
    assert noise == [], noise


def test_train_checks_its_input_before_importing_tensorflow(tmp_path: Path) -> None:
    code = textwrap.dedent(f"""
        import sys
        from click.testing import CliRunner
        from tdglnre.cli.main import cli
        r = CliRunner().invoke(cli, ["train", "--data", {str(tmp_path / 'missing.h5')!r},
                                     "--out", {str(tmp_path / 'm')!r}])
        print(r.exit_code, "tensorflow" in sys.modules)
        print(r.output)
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, env=_env())
    first, rest = res.stdout.split("\n", 1)
    assert first == "1 False", res.stdout + res.stderr
    assert "Error: " in rest and "missing.h5: no such file" in rest
    assert not (tmp_path / "m").exists()


_KILL_DURING_SAVE = """
import os, signal, sys
import keras
from tdglnre.nre.pipeline.data import gaussian_toy
from tdglnre.nre.settings import NetworkConfig
from tdglnre.nre.fit.training import train_source

original = keras.Model.save
calls = [0]

def save(self, filepath, *args, **kwargs):
    if "checkpoints" in str(filepath):
        calls[0] += 1
        if calls[0] == 3:  # third epoch's checkpoint: die half way through writing it
            original(self, filepath, *args, **kwargs)
            size = os.path.getsize(filepath)
            with open(filepath, "r+b") as fh:
                fh.truncate(size // 2)
            os.kill(os.getpid(), signal.SIGKILL)
    return original(self, filepath, *args, **kwargs)

keras.Model.save = save
net = NetworkConfig(filters=(4,), embed_dim=4, theta_units=(8,), head_units=(8,))
train_source(gaussian_toy(120, seed=1), sys.argv[1], epochs=6, batch_size=16, network=net,
             quiet=True, patience=50)
"""


def _tiny_kwargs() -> dict:
    from tdglnre.nre.settings import NetworkConfig

    return dict(batch_size=16, quiet=True, patience=50,
                network=NetworkConfig(filters=(4,), embed_dim=4, theta_units=(8,), head_units=(8,)))


def test_checkpoint_save_killed_by_sigkill_still_resumes(tmp_path: Path) -> None:
    from tdglnre.nre.pipeline.data import gaussian_toy
    from tdglnre.nre.fit.training import train_source

    out = tmp_path / "m"
    res = subprocess.run([sys.executable, "-c", _KILL_DURING_SAVE, str(out)],
                         capture_output=True, text=True, timeout=240, env=_env())
    assert res.returncode == -9, res.stderr  # killed inside the third checkpoint save
    result = train_source(gaussian_toy(120, seed=1), out, resume=True, epochs=5, **_tiny_kwargs())
    # epochs 1 and 2 were checkpointed before the kill: training continued from there
    assert result.resumed and result.history["epoch"] == [0, 1, 2, 3, 4]
    assert result.epochs_run == 5 and np.isfinite(result.history["val_loss"]).all()
    leftovers = [p.name for p in (out / "checkpoints").iterdir() if ".tmp" in p.name]
    assert len(leftovers) <= 1  # at most the killed run's half-written temporary file


@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_resume_falls_back_to_the_previous_checkpoint(tmp_path: Path, damage: str,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    from tdglnre.nre.pipeline.data import gaussian_toy
    from tdglnre.nre.fit.training import train_source

    out = tmp_path / "m"
    src = gaussian_toy(120, seed=2)
    train_source(src, out, epochs=3, **_tiny_kwargs())
    last = out / "checkpoints" / "last.keras"
    size = last.stat().st_size
    with open(last, "r+b") as fh:
        fh.truncate(0 if damage == "empty" else size // 3)
    with caplog.at_level(logging.WARNING, logger="tdglnre"):
        result = train_source(src, out, resume=True, epochs=4, **_tiny_kwargs())
    assert "resuming from the previous one, after epoch 2" in caplog.text
    # the previous checkpoint holds epochs 0 and 1: epochs 2 and 3 were (re)trained
    assert result.history["epoch"] == [0, 1, 2, 3] and result.epochs_run == 4
    state = json.loads((out / "checkpoints" / "state.json").read_text())
    assert state["epoch"] == 3


def test_force_keeps_the_old_model_when_validation_fails(tmp_path: Path) -> None:
    data = write_ensemble(tmp_path / "ens.h5", 60)
    out = tmp_path / "m"
    common = ["train", "--data", str(data), "--out", str(out), *_TINY, "--quiet"]
    res = CliRunner().invoke(cli, [*common, "--epochs", "1"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    for bad in (["--channels", "foo"], ["--snapshots", "7"], ["--loss", "nre", "-K", "1"]):
        res = CliRunner().invoke(cli, [*common, "--epochs", "1", "--force", *bad],
                                 catch_exceptions=False)
        assert res.exit_code != 0 and "Error" in res.output, bad
        after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
        assert after == before, bad


def test_force_restores_the_old_model_when_training_raises(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from tdglnre.nre.fit import training
    from tdglnre.nre.pipeline.data import gaussian_toy

    out = tmp_path / "m"
    src = gaussian_toy(60, seed=3)
    training.train_source(src, out, epochs=1, **_tiny_kwargs())
    meta = (out / "metadata.json").read_bytes()

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(training, "_fit", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        training.train_source(src, out, epochs=2, force=True, **_tiny_kwargs())
    assert (out / "metadata.json").read_bytes() == meta
    assert (out / "model.keras").exists() and (out / "checkpoints" / "last.keras").exists()
    assert not (out / ".replaced-model").exists()


def test_val_fraction_zero_does_not_report_a_validation_loss(tmp_path: Path) -> None:
    data = write_ensemble(tmp_path / "ens.h5", 40)
    out = tmp_path / "m"
    args = ["train", "--data", str(data), "--out", str(out), *_TINY, "--quiet", "--epochs", "2",
            "--val-fraction", "0"]
    res = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "best val loss" not in res.output
    assert "no validation split (val-fraction 0): best training loss" in res.output
    res = CliRunner().invoke(cli, [*args, "--force", "--json"], catch_exceptions=False)
    d = json.loads(res.output[res.output.index("{"):])
    assert d["best_val_loss"] is None and d["monitor"] == "loss" and d["n_val"] == 0
    assert d["best_loss"] == pytest.approx(min(d["history"]["loss"]))
    meta = json.loads((out / "metadata.json").read_text())["result"]
    assert meta["best_val_loss"] is None and meta["monitor"] == "loss"


def test_x_shape_that_contradicts_the_config_is_refused(tmp_path: Path) -> None:
    data = write_ensemble(tmp_path / "ens.h5", 20, N=8)
    with h5py.File(data, "r+") as f:  # an x of 6x6 images under a config that says N=8
        x = f["x"][:, :, :6, :6, :]
        del f["x"]
        f.create_dataset("x", data=x)
    res = CliRunner().invoke(cli, ["train", "--data", str(data), "--out", str(tmp_path / "m")],
                             catch_exceptions=False)
    assert res.exit_code == 1
    assert "Error: " in res.output and "N=8" in res.output and "6, 6" in res.output
    assert not (tmp_path / "m").exists()
