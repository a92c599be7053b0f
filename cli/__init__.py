"""Command-line interface of tdglnre (installed as ``tdglnre.cli``).

The click group lives in :mod:`tdglnre.cli.main`; each subcommand lives in its
own small module and is a thin dispatcher over one public library function.
"""

from __future__ import annotations

from .main import cli, run_library_call

__all__ = ["cli", "run_library_call"]
