"""Issue 18: what a killed run leaves behind is cleaned up by the next one; atomic writes keep the usual mode."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tdglnre.nre.atomic import pid_alive, remove_stale_checkpoint_temporaries, write_text_atomic
from tdglnre.workflows._output import remove_stale_staging, staged_output

REPO = Path(__file__).resolve().parents[1]


def _dead_pid() -> int:
    """The id of a process that has exited (and been reaped)."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    assert not pid_alive(p.pid)
    return p.pid


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask022():
    old = os.umask(0o022)
    yield
    os.umask(old)


# ----------------------------------------------------------------------------- atomic writes keep the usual mode
def test_ood_json_gets_the_mode_of_every_other_file_of_the_model_directory(tmp_path, umask022):
    from tdglnre.nre.infer.ood import save_ood_reference

    (tmp_path / "metadata.json").write_text("{}")
    ref = {"version": 1, "threshold": 2.5}
    path = save_ood_reference(ref, tmp_path)
    assert _mode(path) == _mode(tmp_path / "metadata.json") == 0o644
    assert json.loads(path.read_text()) == ref and path.read_text() == json.dumps(ref, indent=1)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left


def test_a_temporary_left_by_a_killed_atomic_writer_is_removed_by_the_next_write(tmp_path):
    dead = _dead_pid()
    stale = tmp_path / f".ood.json.tmp-{dead}-x1y2z3"
    live = tmp_path / f".ood.json.tmp-{os.getpid()}-a1b2c3"
    other = tmp_path / f".meta.json.tmp-{dead}-x1y2z3"
    for p in (stale, live, other):
        p.write_text("partial")
    write_text_atomic(tmp_path / "ood.json", "{}")
    assert not stale.exists() and live.exists() and other.exists()
    assert (tmp_path / "ood.json").read_text() == "{}"


def test_atomic_text_writes_follow_the_umask(tmp_path):
    old = os.umask(0o077)
    try:
        assert _mode(write_text_atomic(tmp_path / "private.txt", "a")) == 0o600
        os.umask(0o002)
        assert _mode(write_text_atomic(tmp_path / "group.txt", "b")) == 0o664
    finally:
        os.umask(old)
    assert (tmp_path / "group.txt").read_text() == "b"


# ----------------------------------------------------------------------------- staged output directories
_KILLED = """
import os, signal, sys
from tdglnre.workflows._output import staged_output
with staged_output(sys.argv[1]) as tmp:
    (tmp / "calibration.json").write_text("{}")
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_staging_directory_left_by_kill_9_is_removed_by_the_next_run(tmp_path):
    out = tmp_path / "cal"
    r = subprocess.run([sys.executable, "-c", _KILLED, str(out)], cwd=REPO, capture_output=True)
    assert r.returncode == -9
    left = [p for p in tmp_path.iterdir() if p.name.startswith(".cal.tmp-")]
    assert len(left) == 1 and (left[0] / "calibration.json").exists() and not out.exists()
    with staged_output(out) as tmp:
        (tmp / "calibration.json").write_text('{"ok": 1}')
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cal"]
    assert json.loads((out / "calibration.json").read_text()) == {"ok": 1}


def test_only_staging_directories_of_dead_processes_and_this_output_are_removed(tmp_path):
    dead = _dead_pid()
    stale = [tmp_path / f".out.tmp-{dead}-0123abcd", tmp_path / f".out.old-{dead}-89abcdef"]
    live = tmp_path / f".out.tmp-{os.getpid()}-0123abcd"  # a run in progress (this process)
    other = tmp_path / f".other.tmp-{dead}-0123abcd"  # another output's
    odd = tmp_path / f".out.tmp-{dead}-notahexx"  # not a name staged_output makes
    for d in (*stale, live, other, odd):
        d.mkdir()
        (d / "f").write_text("x")
    removed = remove_stale_staging(tmp_path / "out")
    assert sorted(removed) == sorted(stale)
    assert all(not d.exists() for d in stale) and live.exists() and other.exists() and odd.exists()


# ----------------------------------------------------------------------------- training checkpoints
def test_checkpoint_temporaries_of_a_killed_training_run_are_removed(tmp_path):
    ck = tmp_path / "checkpoints"
    ck.mkdir()
    dead = _dead_pid()
    stale = [ck / f"last.tmp{dead}.keras", ck / f"best.tmp{dead}.weights.h5", ck / f"state.json.tmp{dead}"]
    keep = [ck / f"last.tmp{os.getpid()}.keras", ck / "last.keras", ck / "state.json"]
    for p in (*stale, *keep):
        p.write_bytes(b"x")
    assert sorted(remove_stale_checkpoint_temporaries(ck)) == sorted(stale)
    assert all(not p.exists() for p in stale) and all(p.exists() for p in keep)
    assert remove_stale_checkpoint_temporaries(tmp_path / "missing") == []


def test_resume_removes_the_checkpoint_temporary_of_a_killed_run_and_keeps_the_checkpoint(tmp_path):
    pytest.importorskip("keras")
    from tdglnre.nre.pipeline.data import gaussian_toy
    from tdglnre.nre.settings import NetworkConfig
    from tdglnre.nre.fit.training import train_source

    tiny = dict(batch_size=16, quiet=True, patience=50,
                network=NetworkConfig(filters=(4,), embed_dim=4, theta_units=(8,), head_units=(8,)))
    out = tmp_path / "m"
    train_source(gaussian_toy(64, seed=1), out, epochs=1, **tiny)
    ck = out / "checkpoints"
    dead = _dead_pid()
    stale = ck / f"last.tmp{dead}.keras"  # a `train` killed while writing its checkpoint
    live = ck / f"last.tmp{os.getpid()}.keras"  # this process: a run still in progress is left alone
    stale.write_bytes(b"partial")
    live.write_bytes(b"partial")
    checkpoint = (ck / "last.keras").read_bytes()
    res = train_source(gaussian_toy(64, seed=1), out, resume=True, epochs=1, **tiny)  # nothing left to train
    assert res.resumed and res.epochs_run == 1
    assert not stale.exists() and live.exists()
    assert (ck / "last.keras").read_bytes() == checkpoint and (ck / "state.json").exists()
