"""Map library argument names to command-line flags in error messages.

Library errors name Python arguments in backticks (`out_dir`, `force`); a
command wraps its library call with :func:`with_flags` so the user reads the
flag instead (``--out``, ``--force``). Unmapped names become ``--name`` with
underscores turned into hyphens.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Callable, Mapping, TypeVar

T = TypeVar("T")

_ARG = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*)`")


def to_flags(message: str, flags: Mapping[str, str] | None = None) -> str:
    """Replace every `` `name` `` in ``message`` by its flag."""
    flags = flags or {}
    return _ARG.sub(lambda m: flags.get(m.group(1), "--" + m.group(1).replace("_", "-")), message)


def with_flags(fn: Callable[..., T], flags: Mapping[str, str] | None = None) -> Callable[..., T]:
    """``fn`` whose library errors (ValueError, OSError, TDGLError) speak of flags instead of arguments."""
    from tdglnre.errors import ConfigError, TDGLError

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except (TDGLError, ValueError, OSError) as exc:
            text = str(exc)
            if "`" not in text:
                raise
            raise ConfigError(to_flags(text, flags)) from exc

    return call
