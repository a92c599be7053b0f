"""``tdglnre generate``: simulate an HDF5 ensemble from a preset and its prior."""

from __future__ import annotations

import json

import click

from ._flags import run_library_call
from ._types import SEED, SEED_MAX  # noqa: F401  (SEED_MAX re-exported: the largest --seed)


def _human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000.0
    return f"{n:.1f} TB"  # pragma: no cover


def format_summary(s: dict) -> str:
    """One-line summary of a :func:`tdglnre.io.generate.generate_ensemble` result."""
    verb = "resumed" if s["resumed"] else "wrote"
    device = s.get("device", "cpu")
    if s.get("gpu_name"):
        device += f" {s['gpu_name']}"
    wait = s.get("write_wait_fraction", s["write_fraction"])
    return (
        f"{verb} {s['path']}: {s['n_new']} new samples, {s['n_complete']}/{s['n_samples']} complete, "
        f"in {s['wall_s']:.1f} s ({s['samples_per_s']:.1f} samples/s, {s['mode']}, {device}, {s['dtype']}; "
        f"HDF5 writing {100 * s['write_fraction']:.1f}% of the time, waited for {100 * wait:.1f}%); "
        f"file {_human_bytes(s['file_size_bytes'])}"
    )


@click.command("generate")
@click.option("--preset", required=True, metavar="NAME|PATH",
              help="Preset name (paper, drag, quick, type15, ...) or path to a preset TOML file.")
@click.option("--n-samples", "n_samples", required=True, type=click.IntRange(min=1), metavar="S",
              help="Number of samples to simulate.")
@click.option("--seed", required=True, type=SEED, metavar="SEED",
              help="Run seed in 0..2**63-1; sample k depends only on (SEED, k).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), metavar="FILE.h5",
              help="Output HDF5 file.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a preset entry (repeatable), e.g. --set N=32 --set prior.eta=uniform(0,1) "
                   "--set nu=0.1 --set n_v=4 (or a flux-quantized field B=...); see docs/file-format.md.")
@click.option("--resume", is_flag=True,
              help="Continue an interrupted run (settings must match): FILE.h5.partial if it exists (an "
                   "interrupted --force run), else FILE.h5; starts FILE.h5 if neither exists.")
@click.option("--force", is_flag=True,
              help="Replace an existing output file: the new one is written to FILE.h5.partial and renamed "
                   "over FILE.h5 only when complete, so a failure or crash keeps the old file.")
@click.option("--workers", type=click.IntRange(min=1), default=None, metavar="K",
              help="Run on a local Dask cluster of K single-threaded worker processes.")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Run on an existing Dask cluster at [PROTOCOL://]HOST:PORT, e.g. tcp://host:8786.")
@click.option("--store-fields", is_flag=True, help="Also store the order parameters psi (complex64).")
@click.option("--dtype", type=click.Choice(["float32", "float64"]), default=None,
              help="Solver precision (default: the preset's).")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, metavar="B",
              help="Samples per batch / Dask task (does not change the results).")
@click.option("--threads", type=click.IntRange(min=1), default=None, metavar="T",
              help="numba threads, at most numba's NUMBA_NUM_THREADS on this machine (per worker with "
                   "--workers; default: all cores / workers).")
@click.option("--device", type=click.Choice(["cpu", "cuda", "auto"]), default="cpu", show_default=True,
              help="Backend: cpu (the reference), cuda (GPU via numba-cuda; local mode only) or auto (cuda on a "
                   "usable GPU, else cpu). Recorded in the file; --resume needs the file's device.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON instead of one line.")
def command(preset: str, n_samples: int, seed: int, out: str, overrides: tuple[str, ...], resume: bool,
            force: bool, workers: int | None, scheduler: str | None, store_fields: bool, dtype: str | None,
            batch_size: int | None, threads: int | None, device: str, quiet: bool, as_json: bool) -> None:
    """Simulate S quenches with parameters drawn from the preset's prior into FILE.h5.

    Sample k's parameters and initial state depend only on (SEED, k): the file is
    identical for any --batch-size, --workers and after --resume. All options are
    checked before any file is written; a new file that fails before its first
    sample is removed, and a killed run is continued with --resume.
    """
    from tdglnre.errors import ConfigError
    from tdglnre.io.generate import check_exclusive
    from tdglnre.workflows.generate import generate

    try:
        check_exclusive(resume=resume, force=force, workers=workers, scheduler=scheduler)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    summary = run_library_call(
        generate, preset, n_samples, seed, out, overrides=list(overrides), dtype=dtype or None, resume=resume,
        force=force, workers=workers, scheduler=scheduler, store_fields=store_fields, batch_size=batch_size,
        threads=threads, progress=not quiet, device=device, flags={"overrides": "--set"},
    ).summary
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        click.echo(format_summary(summary))
