"""``tdglnre hessian``: parse the options, call :func:`tdglnre.analysis.hessian.hessian`, save and report.

The state comes from ``--data FILE --index I [--snapshot T]`` (an ensemble
stored with ``--store-fields``), ``--preset NAME [--set k=v ...] --seed S
[--index K]`` (sample K of that generate run, simulated afresh), or the direct
options ``--N --L --eta --n-v --nu --t --seed``. Details: docs/hessian.md §6.
"""

from __future__ import annotations

import contextlib
import json
import sys
from typing import Any, Iterator

import click

from ._flags import run_library_call

#: HessianOptions field -> the flag that sets it (library errors name the field).
_FLAGS = {"n_eig": "--n-eig", "residual_tol": "--tol", "max_iter": "--max-iter", "dos_probes": "--dos-probes",
          "dos_steps": "--dos-steps", "seed": "--seed", "index": "--index", "snapshot": "--snapshot"}


@contextlib.contextmanager
def _flag_names() -> Iterator[None]:
    """Re-raise a library error that starts with an argument's name with the flag's name instead."""
    from tdglnre.errors import ConfigError

    try:
        yield
    except ConfigError as exc:
        name = str(exc).split(" ", 1)[0]
        if name not in _FLAGS:
            raise
        raise ConfigError(str(exc).replace(name, _FLAGS[name], 1)) from exc


_SOURCE_KEYS = ("data", "index", "snapshot", "preset", "sets", "seed", "N", "L", "eta", "n_v", "nu", "t")


def run(kw: dict[str, Any], out: str, progress_on: bool) -> tuple[Any, list[str]]:
    """Build the source and options from the parsed flags, analyse, then (only on success) write into ``out``."""
    from tdglnre.analysis.hessian import FromEnsemble, FromParams, FromPreset, HessianOptions, hessian
    from tdglnre.errors import ConfigError
    from tdglnre.progress import stage_bars

    s = {k: kw.pop(k) for k in _SOURCE_KEYS}
    if s["data"] is not None and s["preset"] is not None:
        raise ConfigError("give either --data or --preset, not both")
    if s["sets"] and s["preset"] is None:
        raise ConfigError("--set needs --preset")
    if s["data"] is not None and s["index"] is None:
        raise ConfigError("--data needs --index I (the sample to analyse)")
    k = 0 if s["index"] is None else s["index"]
    with _flag_names():
        source = (FromEnsemble(s["data"], k, s["snapshot"]) if s["data"] is not None else
                  FromPreset(s["preset"], s["sets"], s["seed"], k) if s["preset"] is not None else
                  FromParams(s["N"], s["L"], s["eta"], s["n_v"], s["nu"], s["t"], s["seed"], k))
        options = HessianOptions(seed=s["seed"], relax=not kw.pop("no_relax"), **kw)
        with stage_bars(progress_on) as progress:
            result = hessian(source, options, progress=progress)
    import matplotlib

    matplotlib.use("Agg")  # files only: no GUI backend needed
    return result, [str(p) for p in (result.save(out), *result.plot(out))]


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
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output directory.")
@click.option("--n-eig", type=click.IntRange(min=1), default=50, show_default=True, help="Lowest eigenvalues.")
@click.option("--no-relax", is_flag=True, help="Analyse the state as is (no relaxation).")
@click.option("--dos", is_flag=True, help="Also compute the density of states (SLQ).")
@click.option("--eig-method", type=click.Choice(["shift-invert", "lanczos"]), default="shift-invert",
              show_default=True, help="Eigensolver (see docs/hessian.md).")
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
def command(out: str, as_json: bool, quiet: bool, **kw: Any) -> None:
    """Soft-mode Hessian spectrum of one state: relax, lowest eigenvalues, phase zero mode, DOS."""
    result, files = run_library_call(run, kw, out, progress_on=not (quiet or as_json) and sys.stderr.isatty())
    if as_json:
        click.echo(json.dumps({**result.summary(), "files": files}))
        return
    click.echo(result.report())
    click.echo(f"wall time {result.wall_seconds:.1f} s; wrote " + ", ".join(files))
