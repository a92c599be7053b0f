"""``tdglnre hessian``: parse the options, call :func:`tdglnre.workflows.hessian.run_hessian`, report.

The state comes from ``--data FILE --index I [--snapshot T]`` (an ensemble
stored with ``--store-fields``), ``--preset NAME [--set k=v ...] --seed S
[--index K]`` (sample K of that generate run, simulated afresh), or the direct
options ``--N --L --eta --n-v --nu --t --lam --seed``. Details: docs/hessian.md §6.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from ._flags import run_library_call

#: run_hessian argument -> the flag that sets it, where the names differ (library errors name the argument).
_FLAGS = {"residual_tol": "--tol", "sets": "--set", "relax": "--no-relax"}


@click.command("hessian")
@click.option("--data", type=click.Path(dir_okay=False), help="Ensemble HDF5 file written with --store-fields.")
@click.option("--index", type=click.IntRange(min=0),
              help="Sample index: in --data, or of the --preset/direct run (default 0).")
@click.option("--snapshot", type=int, default=-1, show_default=True, help="Snapshot index in --data.")
@click.option("--preset", help="Preset name or path (simulate a quench).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Override a preset key (repeatable); eta=/n_v=/nu= fix the sample's parameters.")
@click.option("--seed", type=int, default=0, show_default=True, help="Quench seed (and Lanczos/probe seed).")
@click.option("--N", "N", type=int, default=32, show_default=True, help="Lattice size (direct mode).")
@click.option("--L", "L", type=float, default=16.0, show_default=True, help="Side length (direct mode).")
@click.option("--eta", type=float, default=0.5, show_default=True, help="Josephson coupling (direct mode).")
@click.option("--n-v", "n_v", type=int, default=4, show_default=True, help="Flux quanta (direct mode).")
@click.option("--nu", type=float, default=0.0, show_default=True, help="Drag coefficient (direct mode).")
@click.option("--t", "t", type=float, default=2.0, show_default=True, help="Quench time before analysis (direct mode).")
@click.option("--lam", type=float, default=float("inf"), show_default=True,
              help="London depth (direct mode; finite: screened model, CPU only, gauge modes removed).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output directory.")
@click.option("--n-eig", type=click.IntRange(min=1), default=50, show_default=True, help="Lowest eigenvalues.")
@click.option("--no-relax", is_flag=True, help="Analyse the state as is (no relaxation).")
@click.option("--dos", is_flag=True, help="Also compute the density of states (SLQ).")
@click.option("--eig-method", type=click.Choice(["shift-invert", "lanczos", "dense"]),
              default="shift-invert", show_default=True,
              help="Eigensolver (see docs/hessian.md; with --lam: dense up to N=36, else lanczos).")
@click.option("--tol", "residual_tol", type=float, default=1e-8, show_default=True,
              help="Relaxation target: RMS residual |grad F| / (2 h^2 sqrt(4N^2)).")
@click.option("--max-iter", type=int, default=20000, show_default=True, help="Relaxation iteration limit.")
@click.option("--relax-method", type=click.Choice(["lbfgs", "trust-krylov"]), default="lbfgs", show_default=True,
              help="First relaxation stage (a Newton-MINRES polish follows).")
@click.option("--dos-probes", type=click.IntRange(min=1), default=20, show_default=True, help="SLQ probe vectors.")
@click.option("--dos-steps", type=click.IntRange(min=2), default=80, show_default=True, help="Lanczos steps per probe.")
@click.option("--device", type=click.Choice(["cpu", "cuda", "auto"]), default="cpu", show_default=True,
              help="Where relaxation gradients and Hessian-vector products run: cpu, cuda (GPU via numba-cuda; "
                   "eigsh/MINRES drive from the host) or auto (cuda on a usable GPU, else cpu).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def command(out: str, as_json: bool, quiet: bool, no_relax: bool, **kw: Any) -> None:
    """Soft-mode Hessian spectrum of one state: relax, lowest eigenvalues, phase zero mode, DOS."""
    from tdglnre.workflows.hessian import run_hessian

    progress = not (quiet or as_json) and sys.stderr.isatty()
    run = run_library_call(run_hessian, out, relax=not no_relax, progress=progress, flags=_FLAGS, **kw)
    result, files = run.result, run.files
    if as_json:
        click.echo(json.dumps({**result.summary(), "files": files, **({"notes": run.notes} if run.notes else {})}))
        return
    click.echo(result.report())
    for note in run.notes:
        click.echo(note)
    click.echo(f"wall time {result.wall_seconds:.1f} s; wrote " + ", ".join(files))
