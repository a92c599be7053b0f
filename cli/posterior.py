"""``tdglnre posterior``: posterior of one observation, or calibration on a test set."""

from __future__ import annotations

import json

import click

from ._flags import run_library_call
from ._types import FLOAT_PAIR, SEED, UNIQUE_STR_LIST

#: library argument -> flag, where the names differ
_FLAGS = {"out_dir": "--out", "model_dir": "--model", "grid_points": "--grid"}


@click.command("posterior")
@click.option("--model", "model_dir", required=True, type=click.Path(file_okay=False),
              help="Model directory written by `tdglnre train`.")
@click.option("--data", type=click.Path(dir_okay=False), default=None,
              help="Ensemble file holding the observation (with --index).")
@click.option("--index", type=click.IntRange(min=0), default=None, help="Sample index in --data.")
@click.option("--observation", type=click.Path(dir_okay=False), default=None,
              help="Observation: .npy/.h5 in the training ensemble's layout (N, N, C), or an image "
                   "(.png, .tif/.tiff, .npz; or .npy/.h5 with --pixel-size/--channels) resampled to the "
                   "model's lattice and field of view.")
@click.option("--pixel-size", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Pixel pitch of an image --observation in coherence lengths (the simulation's length unit) "
                   "[default: the image spans the model's field of view L].")
@click.option("--channels", type=UNIQUE_STR_LIST, default=None, metavar="rho1,curlJ",
              help="Names of an image --observation's channels, in file order [default: the model's input "
                   "channels] (docs/observations.md).")
@click.option("--value-range", type=FLOAT_PAIR, default=None, metavar="LO,HI",
              help="An integer --observation (8/16-bit PNG or TIFF, integer arrays) holds detector counts: map the "
                   "file's full integer range (0..65535 for 16 bits) linearly onto LO..HI, in the simulation's units.")
@click.option("--value-scale", type=FLOAT_PAIR, default=None, metavar="A,B",
              help="Values of --observation in instrument units: convert by x -> A*x + B to the simulation's units.")
@click.option("--simulate", default=None, metavar="eta=0.8,n_v=4,seed=1",
              help="Simulate the observation with the model's training config.")
@click.option("--test-set", type=click.Path(dir_okay=False), default=None,
              help="Calibrate on every sample of this ensemble instead (coverage, SBC, Table I, baseline).")
@click.option("--reference", type=click.Path(dir_okay=False), default=None,
              help="Reference simulations for the ABC baseline (default: the model's training data); "
                   "measured like the test set.")
@click.option("--max-samples", type=click.IntRange(min=1), default=None,
              help="Use only the first samples of --test-set.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output directory (must not exist or be empty, unless --force).")
@click.option("--force", is_flag=True, help="Replace an existing non-empty --out.")
@click.option("--grid", "grid_points", type=click.IntRange(min=2), default=None,
              help="Grid points per continuous parameter [512 for one observation, 256 for --test-set].")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of the SBC posterior draws.")
@click.option("--measurement", default=None, metavar="SPEC",
              help="What the instrument did to --observation (e.g. 'blur(1.0)+noise(0.05)'; must equal the "
                   "model's or lie within its ranges (or one of its alternatives), e.g. 'noise(0.05)' for a model trained with "
                   "'noise(0..0.15)'; default none; a model trained with --instrument-input needs it, with fixed values); "
                   "with --test-set, the measurement applied to the clean test simulations [default: the model's] "
                   "(docs/observations.md).")
@click.option("--drag-classifier", type=click.Path(file_okay=False), default=None,
              help="Directory of a nu = 0 vs nu > 0 classifier (docs/drag.md): report P(nu > 0 | x) as p_drag "
                   "[default: --model, when it holds one].")
@click.option("--split-head", is_flag=True,
              help="With --test-set: evaluate the head's first layer as an x part and a theta part (the theta part "
                   "once per grid): about 2x cheaper on a 3-parameter grid, the same posteriors to float32 "
                   "rounding, not bit for bit (docs/nre.md).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def command(model_dir, data, index, observation, pixel_size, channels, value_range, value_scale, simulate, test_set, reference, max_samples, out_dir, force,
            grid_points, seed, measurement, drag_classifier, split_head, as_json, quiet) -> None:
    """Posterior p(theta | x) on a grid, with credible intervals and plots.

    With --test-set: expected coverage of HPD regions, SBC ranks, a
    Table-I-style table at eta = 0.2 ... 1.4 and the ABC summary-statistic
    baseline, written to --out as calibration.json, table.csv/.md and PNGs.
    A test set drawn from another prior than the model's gets accuracy
    figures only (coverage and SBC need the model's prior). A screened
    model (lam < inf, e.g. the type15 presets) adds the regime verdict: the
    ROC AUC of P(Type 1.5 | x) on all samples and on those farther than 10%
    in lam from a regime boundary, and its reliability table.

    For one observation, posterior.json also says which prior bounds the
    posterior reaches (at_prior_edge) and how far the observation lies from
    the training ensemble (ood_score vs ood_threshold); observation.png
    shows the network input. A screened model adds p_regime: P(Type I, 1.5,
    II | x), the posterior mass where each regime holds (docs/nre.md).
    """
    from tdglnre.workflows.calibrate import run_calibration
    from tdglnre.workflows.posterior import run_posterior

    if test_set is not None:
        if any(v is not None for v in (data, index, observation, simulate, pixel_size, channels, value_range,
                                       value_scale)):
            raise click.UsageError("--test-set cannot be combined with --data/--index/--observation/--simulate"
                                   "/--pixel-size/--channels/--value-range/--value-scale")
        res = run_library_call(run_calibration, model_dir, test_set, out_dir, grid_points=grid_points or 256,
                               max_samples=max_samples, reference=reference, seed=seed, progress=not quiet, measurement=measurement,
                               split_head=split_head, force=force, flags=_FLAGS)
        if as_json:
            slim = {k: v for k, v in res.items() if k != "sbc_ranks"}
            click.echo(json.dumps(slim, indent=1))
            return
        from tdglnre.workflows.calibrate import report_lines as calibration_lines

        click.echo(f"calibration on {res['n_test']} test samples -> {out_dir}/calibration.json")
        for line in calibration_lines(res):
            click.echo(line)
        return

    from tdglnre.workflows.posterior import report_lines

    if split_head:
        raise click.UsageError("--split-head applies to --test-set (one observation's grid is cheap)")
    if data is not None and index is None:
        raise click.UsageError("--data needs --index")
    res = run_library_call(run_posterior, model_dir, out_dir, data=data, index=index, observation=observation,
                           simulate=simulate, grid_points=grid_points or 512, force=force, measurement=measurement,
                           pixel_size=pixel_size, channels=channels, drag_classifier=drag_classifier,
                           value_range=value_range, value_scale=value_scale, flags=_FLAGS)
    if as_json:
        click.echo(json.dumps(res, indent=1))
        return
    click.echo(f"posterior -> {out_dir}/posterior.json ({res['posterior_seconds'] * 1e3:.1f} ms)")
    for line in report_lines(res):
        click.echo("  " + line)
