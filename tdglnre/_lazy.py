"""One lazy-import helper for the package's ``__init__`` modules (PEP 562).

Public names resolve on first use, so ``import tdglnre`` (and ``tdglnre --help``)
loads neither numba nor TensorFlow.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Mapping


def lazy_getattr(package: str, names: Mapping[str, str], namespace: dict[str, Any]) -> Callable[[str], Any]:
    """A module ``__getattr__`` resolving ``names[name]`` (a module path, relative to ``package`` if it starts
    with a dot) on first access and caching the value in ``namespace``."""

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        namespace[name] = value
        return value

    return __getattr__
