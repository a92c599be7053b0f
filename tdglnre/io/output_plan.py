"""The output file of ``generate``: which file a run creates or resumes, and how it replaces the old one.

A new file is written in place; ``force`` over an existing file writes
``FILE.h5.partial`` (:func:`partial_path`) and renames it over the old file
only when complete; ``resume`` continues that partial file first. A run that
fails before its first sample removes the file it created (docs/file-format.md,
"Reproducibility and crash safety"). Nothing here simulates: see
:mod:`tdglnre.io.generate`.
"""

from __future__ import annotations

import errno
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from .ensemble import EnsembleError

log = logging.getLogger("tdglnre.io.generate")

__all__ = ["PARTIAL_SUFFIX", "check_exclusive", "partial_path", "refuse_if_locked"]

#: Suffix of the file a ``force`` run writes before it replaces the old output.
PARTIAL_SUFFIX = ".partial"


def partial_path(out: str | os.PathLike) -> Path:
    """The temporary file beside ``out`` (``FILE.h5`` → ``FILE.h5.partial``).

    A ``force=True`` run over an existing file writes here and replaces
    ``out`` only when every sample is complete, so a failure or crash never
    destroys the old output; ``resume=True`` continues this file first if it
    exists.
    """
    p = Path(out)
    return p.with_name(p.name + PARTIAL_SUFFIX)


@dataclass(frozen=True)
class _OutputPlan:
    """What a run does with its output: create or resume ``write``; replace ``target`` by it at the end."""

    action: str  # "create" | "resume"
    target: Path
    write: Path

    @property
    def replaces(self) -> bool:
        return self.write != self.target


def _plan_output(out: Path, resume: bool, force: bool) -> _OutputPlan:
    """Decide which file to create or resume; touches nothing on disk.

    * ``resume``: continue ``out.partial`` if it exists (an interrupted forced
      run), else ``out``; create ``out`` if neither exists.
    * new file: written in place at ``out`` (a crash leaves it resumable).
    * ``force`` over an existing ``out`` (or a stale ``out.partial``): written
      to ``out.partial``, which replaces ``out`` only on success.
    """
    for name, flag in (("resume", resume), ("force", force)):
        if not isinstance(flag, (bool, np.bool_)):
            raise ConfigError(f"`{name}` must be True or False, got {flag!r}")
    check_exclusive(resume=resume, force=force)
    if out.is_dir():
        raise EnsembleError(f"output {out} is a directory; give a file name such as {out / 'ensemble.h5'}")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise EnsembleError(f"cannot create output file {out}: directory {parent} does not exist")
    part = partial_path(out)
    if part.is_dir():
        raise EnsembleError(f"{part} is a directory; remove it (tdglnre uses this name for unfinished output)")
    if resume:
        if part.exists():
            log.info("--resume: continuing the interrupted forced run in %s (it replaces %s when complete)", part, out)
            return _OutputPlan("resume", out, part)
        if out.exists():
            return _OutputPlan("resume", out, out)
        log.info("--resume: %s does not exist yet; starting a new file", out)
    elif out.exists():
        if not force:
            hint = f" (the interrupted forced run in {part})" if part.exists() else ""
            raise EnsembleError(f"output file {out} already exists; use --force to overwrite it or --resume to "
                                f"continue an interrupted run{hint}")
        if not os.access(out, os.W_OK):
            raise EnsembleError(f"cannot overwrite output file {out}: permission denied")
    elif part.exists() and not force:
        raise EnsembleError(f"{part} holds an interrupted forced run for {out}; continue it with --resume or "
                            "start over with --force")
    if not os.access(parent, os.W_OK):
        raise EnsembleError(f"cannot create output file {out}: directory {parent} is not writable")
    if force and (out.exists() or part.exists()):
        refuse_if_locked(out, "--force cannot replace it")
        refuse_if_locked(part, "--force cannot start over")
        return _OutputPlan("create", out, part)
    return _OutputPlan("create", out, out)


def refuse_if_locked(path: Path, what: str) -> None:
    """Raise :class:`EnsembleError` if another process holds ``path`` open for writing (HDF5's file lock).

    HDF5 locks a file it writes with ``flock(LOCK_EX)``; a shared lock that
    cannot be taken means a writer (a ``generate`` run) has it open. Readers
    hold shared locks and do not count. Where ``flock`` does not exist
    nothing is checked.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not Unix
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return  # missing or unreadable: the caller's other checks speak
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise EnsembleError(f"{path} is being written by another process (is a generate run still writing "
                                f"it?); {what}") from None
    finally:
        os.close(fd)  # releases this shared lock only


def _fsync(path: Path, directory: bool = False) -> None:
    """Best-effort fsync of a file (or a directory entry) before/after a rename."""
    try:
        fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0))
    except OSError:  # pragma: no cover - platform dependent
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - platform dependent
        pass
    finally:
        os.close(fd)


def _finish_output(plan: _OutputPlan) -> None:
    """After a complete run: move ``plan.write`` over ``plan.target`` (atomic rename)."""
    if not plan.replaces:
        return
    refuse_if_locked(plan.target, f"the completed ensemble is kept in {plan.write}: rerun with --resume to "
                                  "move it into place once that run has finished")
    _fsync(plan.write)
    os.replace(plan.write, plan.target)
    _fsync(plan.target.parent if str(plan.target.parent) else Path("."), directory=True)
    log.info("replaced %s with the completed %s", plan.target, plan.write)


def _clean_up_failed(plan: _OutputPlan, n_complete: int, n_samples: int) -> None:
    """After a failed run: remove a file this run created without any sample; say where partial data is."""
    if plan.action == "create" and n_complete == 0:
        try:
            plan.write.unlink()
            log.info("removed %s: the run failed before any sample was written", plan.write)
        except OSError as exc:  # pragma: no cover - e.g. removed meanwhile
            log.debug("could not remove %s: %s", plan.write, exc)
        return
    if plan.replaces and n_complete < n_samples:
        log.warning("run stopped: %d of %d samples are kept in %s; %s is unchanged; continue with --resume "
                    "(or start over with --force)", n_complete, n_samples, plan.write, plan.target)


def check_exclusive(*, resume: bool = False, force: bool = False, workers: Any = None, scheduler: Any = None) -> None:
    """The one check of the option pairs that exclude each other: resume/force and workers/scheduler."""
    if resume and force:
        raise ConfigError("--resume and --force are mutually exclusive (resume continues a file, force starts over)")
    if workers is not None and scheduler is not None:
        raise ConfigError("--workers and --scheduler are mutually exclusive: give either --workers (local Dask "
                          "cluster) or --scheduler (existing cluster), not both")
