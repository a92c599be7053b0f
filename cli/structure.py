"""``tdglnre structure``: S(k, t) of stored or freshly simulated samples (docs/drag.md)."""

from __future__ import annotations

import json

import click

from ._flags import run_library_call
from ._types import SEED

#: Library argument name (as in its error messages, in backticks) -> the flag that sets it.
_FLAGS = {"data": "--data", "index": "--index", "all": "--all", "preset": "--preset",
          "overrides": "--set", "seed": "--seed", "n_samples": "--n-samples", "out_dir": "--out",
          "force": "--force", "max_samples": "--max-samples"}


@click.command("structure")
@click.option("--data", type=click.Path(dir_okay=False), default=None, help="Ensemble file (from `tdglnre generate`).")
@click.option("--index", type=click.IntRange(min=0), default=None, help="Sample index in --data [default: 0].")
@click.option("--all", "all_samples", is_flag=True,
              help="Every sample of --data: ensemble means ± standard errors by nu and eta bins, the fingerprint.")
@click.option("--max-samples", type=click.IntRange(min=1), default=None, help="With --all: only the first samples.")
@click.option("--preset", default=None, metavar="NAME|PATH", help="Simulate from this preset instead of --data.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a preset entry (repeatable).")
@click.option("--seed", type=SEED, default=None, help="Run seed (with --preset).")
@click.option("--n-samples", type=click.IntRange(min=1), default=1, show_default=True,
              help="Samples to simulate (with --preset).")
@click.option("--nu-bins", type=click.IntRange(min=1), default=4, show_default=True, help="Equal-width nu bins.")
@click.option("--eta-bins", type=click.IntRange(min=1), default=3, show_default=True, help="Equal-width eta bins.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output directory (must not exist or be empty, unless --force).")
@click.option("--force", is_flag=True, help="Replace an existing non-empty --out.")
@click.option("--no-plots", is_flag=True, help="Write structure.json and S_k_t.npz only.")
@click.option("--json", "as_json", is_flag=True, help="Print structure.json to stdout.")
def command(data, index, all_samples, max_samples, preset, sets, seed, n_samples, nu_bins, eta_bins, out_dir, force,
            no_plots, as_json) -> None:
    """S(k, t) of every channel (rho1, rho2, curlJ; cos(phi1 - phi2) when psi is stored) at every snapshot.

    S(k) = |FFT(f - <f>)|^2 / N^4 (sum over k = variance), averaged over shells
    centred on 2 pi m / L. Writes structure.json, S_k_t.npz and PNGs to --out;
    with --all also S(k*, t) against t per nu bin (the drag fingerprint).
    """
    import matplotlib

    from tdglnre.workflows.structure import run_structure

    matplotlib.use("Agg")  # files only: no GUI backend needed
    if data is None and preset is None:
        raise click.UsageError("give --data FILE.h5 or --preset NAME")
    if data is not None and preset is not None:
        raise click.UsageError("give either --data or --preset, not both")
    if data is not None and (sets or seed is not None):
        raise click.UsageError("--set and --seed go with --preset")
    if preset is not None and (index is not None or all_samples or max_samples is not None):
        raise click.UsageError("--index, --all and --max-samples go with --data")
    if preset is not None and seed is None:
        raise click.UsageError("--preset needs --seed")
    if index is not None and all_samples:
        raise click.UsageError("give --index or --all, not both")
    kw = dict(nu_bins=nu_bins, eta_bins=eta_bins)
    if data is not None:
        kw.update(data=data, index=index, all=all_samples, max_samples=max_samples)
    else:
        kw.update(preset=preset, overrides=list(sets), seed=seed, n_samples=n_samples)
    res = run_library_call(run_structure, out_dir, force=force, plots=not no_plots, flags=_FLAGS, **kw)
    if as_json:
        click.echo(json.dumps(res.to_json(), indent=1))
        return
    click.echo(f"structure -> {out_dir}/structure.json")
    for line in res.summary_lines():
        click.echo("  " + line)
