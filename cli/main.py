"""The ``tdglnre`` click group, global options and shared error handling.

Adding a subcommand
-------------------
Write ``cli/<name>.py`` defining a click command called ``command`` that
parses strings and calls one library function through :func:`run_library_call`,
then add its module to the import line and the ``_COMMAND_MODULES`` tuple at the
bottom of this file (a two-line change).
"""

from __future__ import annotations

import functools
import logging
import traceback
from typing import Any, Callable, TypeVar

import click

import tdglnre

T = TypeVar("T")

_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class LibraryError(click.ClickException):
    """A library failure shown to the user as a one-line ``Error: message``.

    Exit code 1, like any :class:`click.ClickException`.
    """

    exit_code = 1


def _library_error_types() -> tuple[type[BaseException], ...]:
    """Exception types that are user-facing errors rather than bugs."""
    types: list[type[BaseException]] = [ValueError, OSError]
    try:  # imported lazily: keep this module importable on its own
        from tdglnre.errors import TDGLError
    except ImportError:  # pragma: no cover - errors module always ships
        pass
    else:
        types.append(TDGLError)
    return tuple(types)


def _verbosity_from_context() -> int:
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return 0
    root = ctx.find_root()
    return int(root.params.get("verbose") or 0)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def run_library_call(
    fn: Callable[..., T], *args: Any, verbose: int | None = None, **kwargs: Any
) -> T:
    """Call ``fn(*args, **kwargs)``, turning library errors into CLI errors.

    ``ValueError``, ``OSError`` and :class:`tdglnre.errors.TDGLError` become
    a one-line ``Error: message`` with exit code 1; with ``-v`` the full
    traceback is printed to stderr first. Any other exception is a bug and
    propagates unchanged.

    Parameters
    ----------
    fn
        The library function to call.
    *args, **kwargs
        Passed to ``fn``.
    verbose
        Verbosity level; by default read from the root ``tdglnre -v`` option
        of the current click context.
    """
    if verbose is None:
        verbose = _verbosity_from_context()
    try:
        return fn(*args, **kwargs)
    except _library_error_types() as exc:
        if verbose:
            click.echo(traceback.format_exc().rstrip(), err=True)
        raise LibraryError(_one_line(exc)) from exc


def handle_library_errors(fn: Callable[..., T]) -> Callable[..., T]:
    """Decorator form of :func:`run_library_call` for a command callback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        return run_library_call(fn, *args, **kwargs)

    return wrapper


def _configure_logging(verbose: int) -> None:
    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format=_LOG_FORMAT)
    # basicConfig is a no-op when the root logger already has handlers (e.g.
    # under pytest); the package logger level still follows -v.
    logging.getLogger("tdglnre").setLevel(level)


@click.group(
    context_settings={"help_option_names": ["-h", "--help"]},
    help=(
        "Two-band TDGL simulation and neural ratio estimation of the "
        "Ginzburg-Landau couplings (eta, n_v, nu) of a Type-1.5 superconductor."
    ),
)
@click.version_option(
    tdglnre.__version__, "--version", prog_name="tdglnre", message="%(prog)s %(version)s"
)
@click.option(
    "-v",
    "--verbose",
    count=True,
    help="Log progress: -v for INFO, -vv for DEBUG; also show tracebacks on errors.",
)
def cli(verbose: int) -> None:
    _configure_logging(verbose)
    # TensorFlow's start-up lines (absl, cudart_stub, cuInit) only with -vv; this
    # must be known before TensorFlow is first imported (tdglnre.nre.tf_setup)
    from tdglnre.nre.tf_setup import set_verbosity

    set_verbosity(verbose)


# --- subcommand registration: one module per command ------------------------
from . import bench, demo, generate, hessian, inspect, posterior, train  # noqa: E402

_COMMAND_MODULES = (generate, inspect, train, posterior, hessian, demo, bench)

for _module in _COMMAND_MODULES:
    cli.add_command(_module.command)


if __name__ == "__main__":  # pragma: no cover
    cli()
