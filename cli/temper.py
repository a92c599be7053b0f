"""``tdglnre temper``: fit a trained model's posterior temperature on its validation split (docs/nre.md)."""

from __future__ import annotations

import json

import click

from ._flags import run_library_call

#: Library argument name (as in its error messages, in backticks) -> the flag that sets it.
_FLAGS = {"model_dir": "--model", "data": "--data", "grid_points": "--grid", "max_samples": "--max-samples",
          "measurement_seed": "--measurement-seed", "objective": "--objective", "split_head": "--split-head",
          "by_instrument": "--by-instrument", "reset": "--reset"}


@click.command("temper")
@click.option("--model", "model_dir", required=True, type=click.Path(file_okay=False),
              help="Trained model directory (for an ensemble: each member).")
@click.option("--data", type=click.Path(dir_okay=False), default=None,
              help="Its training ensemble [default: the path its metadata.json records].")
@click.option("--grid", "grid_points", type=click.IntRange(min=2), default=128, show_default=True,
              help="Grid points per continuous parameter.")
@click.option("--max-samples", type=click.IntRange(min=1), default=None,
              help="Use only the first validation samples [default: all].")
@click.option("--objective", type=click.Choice(["coverage", "nll"]), default="coverage", show_default=True,
              help="What tau minimises on the validation split: the expected-coverage curve's distance from the "
                   "diagonal, or the mean -log p(theta*|x).")
@click.option("--measurement-seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the measurement noise on the validation images (models trained under a measurement).")
@click.option("--split-head", is_flag=True, help="Evaluate the head split, as `posterior --split-head`.")
@click.option("--by-instrument", is_flag=True,
              help="For a model trained with --instrument-input: let tau depend on the instrument, "
                   "tau(d) = tau * exp(w.d): w by the mean -log p(theta*|x), then tau by --objective "
                   "(docs/nre.md, Tempering).")
@click.option("--reset", is_flag=True, help="Remove the recorded temperature (tau = 1) instead of fitting one.")
@click.option("--json", "as_json", is_flag=True, help="Print the record written as JSON.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def command(model_dir, data, grid_points, max_samples, objective, measurement_seed, split_head, by_instrument, reset,
            as_json, quiet) -> None:
    """Fit one temperature tau on the model's log ratio, p(theta|x) ~ p(theta) r(x, theta)^(1/tau).

    tau makes the validation simulations' expected coverage as close to the
    diagonal as it can (--objective coverage), or minimises their mean
    -log p(theta*|x) (nll); the validation split is held out from training
    and drawn again from the model's seed. tau is written
    into metadata.json: every later posterior and calibration uses it. tau > 1
    widens overconfident posteriors, tau < 1 sharpens conservative ones.
    """
    from tdglnre.workflows.temper import summary_line, temper

    rec = run_library_call(temper, model_dir, data, grid_points=grid_points, max_samples=max_samples, objective=objective,
                           measurement_seed=measurement_seed, split_head=split_head, by_instrument=by_instrument, reset=reset,
                           progress=not quiet, flags=_FLAGS)
    click.echo(json.dumps(rec, indent=2) if as_json else summary_line(rec))
