"""Calling the library from a command: one-line errors, arguments mapped to flags.

Library errors name Python arguments in backticks (`out_dir`, `force`); a
command calls the library through :func:`run_library_call` with its ``flags``
mapping so the user reads the flag instead (``--out``, ``--force``). Unmapped
names become ``--name`` with underscores turned into hyphens.

This module imports no command module, so commands import it without an
import cycle through :mod:`.main` (tests/test_architecture.py).
"""

from __future__ import annotations

import re
import traceback
from typing import Any, Callable, Mapping, TypeVar

import click

T = TypeVar("T")

_ARG = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*)`")


class LibraryError(click.ClickException):
    """A library failure shown to the user as a one-line ``Error: message``.

    Exit code 1, like any :class:`click.ClickException`.
    """

    exit_code = 1


def to_flags(message: str, flags: Mapping[str, str] | None = None) -> str:
    """Replace every `` `name` `` in ``message`` by its flag."""
    flags = flags or {}
    return _ARG.sub(lambda m: flags.get(m.group(1), "--" + m.group(1).replace("_", "-")), message)


def _library_error_types() -> tuple[type[BaseException], ...]:
    """Exception types that are user-facing errors rather than bugs."""
    from tdglnre.errors import TDGLError

    return (ValueError, OSError, TDGLError)


def _verbosity_from_context() -> int:
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return 0
    root = ctx.find_root()
    return int(root.params.get("verbose") or 0)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def run_library_call(fn: Callable[..., T], *args: Any, verbose: int | None = None,
                     flags: Mapping[str, str] | None = None, **kwargs: Any) -> T:
    """Call ``fn(*args, **kwargs)``, turning library errors into CLI errors.

    ``ValueError``, ``OSError`` and :class:`tdglnre.errors.TDGLError` become
    a one-line ``Error: message`` with exit code 1, every `` `argument` `` in
    the message replaced by its flag; with ``-v`` the full traceback is printed
    to stderr first. Any other exception is a bug and propagates unchanged.

    Parameters
    ----------
    fn
        The library function to call.
    *args, **kwargs
        Passed to ``fn``.
    verbose
        Verbosity level; by default read from the root ``tdglnre -v`` option
        of the current click context.
    flags
        Library argument name -> flag (``{"out_dir": "--out"}``); names not
        listed become ``--name`` with underscores turned into hyphens.
    """
    if verbose is None:
        verbose = _verbosity_from_context()
    try:
        return fn(*args, **kwargs)
    except _library_error_types() as exc:
        if verbose:
            click.echo(traceback.format_exc().rstrip(), err=True)
        text = _one_line(exc)
        raise LibraryError(to_flags(text, flags) if "`" in text else text) from exc
