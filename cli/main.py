"""The ``tdglnre`` click group, global options and shared error handling.

Adding a subcommand
-------------------
Write ``cli/<name>.py`` defining a click command called ``command`` that
parses strings (with the shared parameter types of :mod:`._types`: seeds,
comma-separated lists) and calls one workflow function through
:func:`._flags.run_library_call` (``flags=`` maps argument names to flags),
then prints its result; checks and orchestration belong in the workflow.
Add its module to the import line and the ``_COMMAND_MODULES`` tuple at the
bottom of this file (a two-line change).
"""

from __future__ import annotations

import logging

import click

import tdglnre

from ._flags import LibraryError, run_library_call  # noqa: F401  (re-exported: the commands' shared call path)

__all__ = ["LibraryError", "cli", "run_library_call"]

_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


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
from . import bench, demo, generate, hessian, inspect, posterior, structure, temper, train  # noqa: E402

_COMMAND_MODULES = (generate, inspect, train, temper, posterior, structure, hessian, demo, bench)

for _module in _COMMAND_MODULES:
    cli.add_command(_module.command)


if __name__ == "__main__":  # pragma: no cover
    cli()
