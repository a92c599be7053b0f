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
import shutil
import uuid
from pathlib import Path
from typing import Iterator, Sequence

from ..errors import ConfigError


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
    out = Path(out_dir)
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
    output behind and an existing ``out_dir`` is untouched.
    """
    out = check_output_dir(out_dir, force=force)
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
