"""``tdglnre demo``: the whole pipeline on the small ``quick`` preset."""

from __future__ import annotations

import click

from ._flags import run_library_call


@click.command("demo")
@click.option("--out", "out_dir", default="tdglnre-demo", show_default=True, type=click.Path(file_okay=False),
              help="Directory for every artifact.")
@click.option("--n-train", type=click.IntRange(min=100), default=8000, show_default=True,
              help="Training simulations.")
@click.option("--n-test", type=click.IntRange(min=20), default=500, show_default=True, help="Test simulations.")
@click.option("--epochs", type=click.IntRange(min=1), default=60, show_default=True, help="Maximum epochs.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Run seed.")
@click.option("--force", is_flag=True, help="Overwrite an earlier demo in --out.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option("--measurement", default=None, metavar="SPEC",
              help="Measurement model to train with and apply to the test simulations, e.g. "
                   "'blur(1.0)+noise(0.05)' (docs/observations.md) [default: none].")
def command(out_dir, n_train, n_test, epochs, seed, force, quiet, measurement) -> None:
    """Generate -> train -> posterior -> calibration on the quick preset (about 4 minutes on 2 cores)."""
    from tdglnre.workflows.demo import run_demo

    run_library_call(run_demo, out_dir, n_train=n_train, n_test=n_test, epochs=epochs, seed=seed, force=force,
                     quiet=quiet, echo=click.echo, measurement=measurement)
