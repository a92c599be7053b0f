"""``tdglnre hessian``: soft-mode spectrum of one state (relax → Lanczos → zero mode → DOS).

The state comes from one of three sources:

* ``--data FILE.h5 --index I [--snapshot T]`` — a sample of an ensemble stored
  with ``tdglnre generate --store-fields``;
* ``--preset NAME [--set key=value ...] --seed S [--index K]`` — sample K of the
  run ``tdglnre generate --preset NAME --seed S`` (parameters drawn from the
  prior exactly as generate draws them), simulated afresh; ``--set eta=0.5``
  etc. fix parameters;
* direct options ``--N --L --eta --n-v --nu --t --seed`` (paper defaults
  α = −1, β = 1, D = (4, 1), dt = 10⁻³).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from .main import run_library_call


def _progress_factory(enabled: bool):
    if not enabled:
        return None, lambda: None
    from tqdm import tqdm

    bars: dict[str, Any] = {}

    def progress(stage: str, done: int, total: int | None) -> None:
        bar = bars.get(stage)
        if bar is None:
            bar = bars[stage] = tqdm(total=total, desc=stage, file=sys.stderr, leave=False)
        bar.update(done - bar.n)

    def close() -> None:
        for bar in bars.values():
            bar.close()

    return progress, close


def run_hessian(data: str | None, index: int | None, snapshot: int, preset: str | None, sets: tuple[str, ...],
                seed: int, N: int, L: float, eta: float, n_v: int, nu: float, t: float, out: str,
                n_eig: int, relax: bool, dos: bool, eig_method: str, residual_tol: float, max_iter: int,
                relax_method: str,
                dos_probes: int, dos_steps: int, progress_on: bool) -> dict[str, Any]:
    """Resolve the state, run :func:`tdglnre.analysis.hessian.analyze`, write outputs; return the summary."""
    from tdglnre.analysis.hessian import analyze, save, state_from_ensemble, state_from_preset, state_from_simulation
    from tdglnre.errors import ConfigError
    from tdglnre.physics.config import SimConfig
    from tdglnre.plots_hessian import save_figures

    if data is not None and preset is not None:
        raise ConfigError("give either --data or --preset, not both")
    if sets and preset is None:
        raise ConfigError("--set needs --preset")
    if data is not None:
        if index is None:
            raise ConfigError("--data needs --index I (the sample to analyse)")
        config, psi, params = state_from_ensemble(data, index, snapshot)
        source = {"data": str(data), "index": index, "snapshot": snapshot}
    elif preset is not None:
        k = 0 if index is None else index
        config, psi, params = state_from_preset(preset, list(sets), seed=seed, index=k)
        source = {"preset": preset, "set": list(sets), "seed": seed, "index": k}
    else:
        config = SimConfig(N=N, L=L, eta=eta, n_v=n_v, nu=nu, snapshot_times=(t,))
        params = {"eta": eta, "n_v": n_v, "nu": nu}
        config.validate()
        psi = state_from_simulation(config, params, seed=seed, index=0 if index is None else index)
        source = {"seed": seed, "t": t}
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    progress, close = _progress_factory(progress_on)
    try:
        result = analyze(config, psi, eta=params["eta"], n_v=int(params["n_v"]), nu=params["nu"], n_eig=n_eig,
                         relax=relax, dos=dos, residual_tol=residual_tol, max_iter=max_iter, relax_method=relax_method,
                         eig_method=eig_method, dos_probes=dos_probes, dos_steps=dos_steps, seed=seed,
                         progress=progress)
    finally:
        close()
    spec = save(result, out_dir / "spectrum.h5")
    figs = save_figures(result, out_dir)
    summary = result.summary()
    summary["source"] = source
    summary["files"] = [str(spec)] + [str(p) for p in figs]
    return summary


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
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def command(data, index, snapshot, preset, sets, seed, N, L, eta, n_v, nu, t, out, n_eig, no_relax, dos,
            eig_method, residual_tol, max_iter, relax_method, dos_probes, dos_steps, as_json, quiet) -> None:
    """Soft-mode Hessian spectrum of one state: relax, lowest eigenvalues, phase zero mode, DOS."""
    summary = run_library_call(
        run_hessian, data, index, snapshot, preset, sets, seed, N, L, eta, n_v, nu, t, out, n_eig,
        not no_relax, dos, eig_method, residual_tol, max_iter, relax_method, dos_probes, dos_steps,
        progress_on=not (quiet or as_json) and sys.stderr.isatty(),
    )
    if as_json:
        click.echo(json.dumps(summary))
        return
    lam = summary["eigenvalues"]
    zi = summary["zero_mode_index"]
    click.echo(f"N={summary['N']} ({summary['n_unknowns']} unknowns), eta={summary['eta']:g}, "
               f"n_v={summary['n_v']}, nu={summary['nu']:g}")
    click.echo(f"F: {summary['F_before']:.10g} -> {summary['F_after']:.10g};  |grad F|: "
               f"{summary['grad_norm_before']:.3e} -> {summary['grad_norm_after']:.3e}"
               + ("" if summary["relax_converged"] else "  (relaxation did NOT reach the tolerance)"))
    click.echo(f"phase zero mode: #{zi}, lambda = {lam[zi]:.3e} (overlap {summary['zero_mode_overlap']:.8f}); "
               f"lambda_max ~ {summary['lambda_max_est']:.4g}")
    click.echo(f"softest mode: lambda = {summary['softest_eigenvalue']:.6g};  "
               + ("SADDLE: " + str(summary["n_negative"]) + " negative eigenvalue(s)" if summary["is_saddle"]
                  else "no negative eigenvalues (local minimum among the computed modes)"))
    click.echo("eigenvalues below threshold x lambda_max: "
               + ", ".join(f"{k}: {v}" for k, v in summary["counts_below"].items()))
    click.echo(f"{len(lam)} lowest: " + " ".join(f"{x:.4g}" for x in lam[:12]) + (" ..." if len(lam) > 12 else ""))
    click.echo(f"wall time {summary['wall_seconds']:.1f} s; wrote " + ", ".join(summary["files"]))
