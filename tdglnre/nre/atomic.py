"""Atomic file writes with the usual permissions, and the clean-up of what a killed writer left behind.

A file written through a temporary sibling and a rename must end up with the
permissions any other file of its directory gets (``0666 & ~umask``, usually
0644): :func:`tempfile.mkstemp` creates 0600 files, so a model directory
shared with colleagues would hold one file they cannot read.

A process killed between creating its temporary and renaming it leaves the
temporary behind. Temporaries carry the writer's process id, so the next run
can remove those whose writer is gone (:func:`remove_stale`) without touching
those of a run still in progress.

Plain standard library; importing this module loads neither NumPy nor TensorFlow.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterable

__all__ = ["default_file_mode", "pid_alive", "remove_stale", "remove_stale_checkpoint_temporaries",
           "write_text_atomic"]

#: ``temporary_name`` of :mod:`tdglnre.nre.infer.artifacts`: ``last.tmp1234.keras``, ``x.tmp1234.weights.h5``,
#: ``x.tmp1234``.
CHECKPOINT_TEMPORARY = re.compile(r"^.+\.tmp(?P<pid>\d+)(\.keras|\.weights\.h5)?$")


def default_file_mode() -> int:
    """The mode ``open(path, "w")`` gives a new file: ``0o666 & ~umask``."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary sibling and a rename, with the usual permissions.

    A reader never sees a half-written file; the file gets ``0666 & ~umask``
    like any other file written with :func:`open` (not mkstemp's 0600).
    Temporaries of this path left by a writer killed before its rename are
    removed first.
    """
    path = Path(path)
    prefix = f".{path.name}.tmp-"
    remove_stale((p for p in path.parent.iterdir() if p.name.startswith(prefix)),
                 re.compile(rf"^{re.escape(prefix)}(?P<pid>\d+)-"))  # left by a writer killed before its rename
    fd, tmp = tempfile.mkstemp(prefix=f"{prefix}{os.getpid()}-", dir=path.parent)
    try:
        os.fchmod(fd, default_file_mode())
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def pid_alive(pid: int) -> bool:
    """True when a process with this id exists (on this machine); a permission error counts as alive."""
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def remove_stale(paths: Iterable[Path], pattern: re.Pattern[str]) -> list[Path]:
    """Remove the files or directories among ``paths`` whose name matches ``pattern`` and whose writer is dead.

    ``pattern`` must have a group ``pid``: the id of the process that created
    the path. Paths of a live process (another run in progress) are kept.
    Returns the paths removed.
    """
    removed = []
    for p in paths:
        m = pattern.match(p.name)
        if m is None or pid_alive(int(m.group("pid"))):
            continue
        try:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
        except FileNotFoundError:
            continue
        except OSError:
            continue
        removed.append(p)
    return removed


def remove_stale_checkpoint_temporaries(checkpoint_dir: str | os.PathLike[str]) -> list[Path]:
    """Remove ``last.tmpPID.keras`` and the like that a killed training run left in its checkpoint directory.

    For :mod:`tdglnre.nre.fit.training` to call on ``--resume`` (and on a fresh
    start) before writing the first checkpoint; temporaries of a live process
    are kept. Returns the paths removed.
    """
    d = Path(checkpoint_dir)
    if not d.is_dir():
        return []
    return remove_stale(d.iterdir(), CHECKPOINT_TEMPORARY)
