"""Output directories of the workflows: refuse to clobber, write atomically.

A workflow that writes a directory computes everything first, then writes
into a temporary sibling that replaces the target only on success, so a
failed run leaves neither an empty directory nor a half-written one, and an
existing result is kept until the new one is complete.

Error messages name the Python argument in backticks (`out_dir`, `force`);
the command line rewrites those to its flags (:mod:`tdglnre.cli.main`).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Iterator, Sequence

from .._validate import as_bool, as_path
from ..errors import ConfigError
from ..nre.atomic import remove_stale, remove_stale_checkpoint_temporaries

__all__ = ["check_output_dir", "remove_stale_checkpoint_temporaries", "remove_stale_staging", "staged_output"]


def _staging_pattern(name: str) -> re.Pattern[str]:
    """Names of the temporary and the displaced directories :func:`staged_output` creates beside ``name``."""
    return re.compile(rf"^\.{re.escape(name)}\.(tmp|old)-(?P<pid>\d+)-[0-9a-f]{{8}}$")


def remove_stale_staging(out_dir: str | Path) -> list[Path]:
    """Remove the ``.OUT.tmp-PID-…``/``.OUT.old-PID-…`` siblings a killed run left beside ``out_dir``.

    Only those whose process is gone: a run still writing keeps its own.
    Returns the paths removed.
    """
    out = Path(out_dir).absolute()
    if not out.parent.is_dir():
        return []
    pattern = _staging_pattern(out.name)
    return remove_stale((p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")), pattern)


def check_output_dir(out_dir: str | Path, *, force: bool = False,
                     protect: Sequence[str | Path | None] = ()) -> Path:
    """Refuse an output directory that exists and is not empty (unless ``force``), or that holds an input.

    Parameters
    ----------
    out_dir
        The output directory.
    force
        Allow replacing an existing non-empty directory.
    protect
        Input paths (model directory, data files) that must not lie inside
        ``out_dir``: replacing it would destroy them.

    Raises
    ------
    ConfigError
        With a one-line reason.
    """
    out = as_path("`out_dir`", out_dir)
    as_bool("`force`", force)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"`out_dir` {out} exists and is not a directory")
    res = out.resolve()
    for p in protect:
        if p is None:
            continue
        rp = Path(p).resolve()
        if rp == res or res in rp.parents:
            raise ConfigError(f"`out_dir` {out} contains the input {p}; choose another output directory")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ConfigError(f"`out_dir` {out} already exists and is not empty; pass `force` to replace it")
    return out


@contextlib.contextmanager
def staged_output(out_dir: str | Path, *, force: bool = False) -> Iterator[Path]:
    """Write into a temporary sibling directory that replaces ``out_dir`` only on success.

    On any exception the temporary directory, and any parent directories this
    call created, are removed, so a failed run leaves no (empty or partial)
    output behind and an existing ``out_dir`` is untouched. Staging
    directories of an earlier run killed before it could clean up (kill -9)
    are removed first (:func:`remove_stale_staging`).
    """
    out = check_output_dir(out_dir, force=force)
    remove_stale_staging(out)
    parent = out.absolute().parent
    created = []
    for p in [parent, *parent.parents]:
        if p.exists():
            break
        created.append(p)
    parent.mkdir(parents=True, exist_ok=True)
    tmp = parent / f".{out.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
        old = None
        if out.exists():
            old = parent / f".{out.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            os.replace(out, old)
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for p in created:  # innermost first
            with contextlib.suppress(OSError):
                p.rmdir()
        raise
