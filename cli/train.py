"""``tdglnre train``: fit the neural ratio estimator on an HDF5 ensemble."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ._flags import LibraryError, run_library_call


def _int_list(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, ...] | None:
    if value is None:
        return None
    try:
        out = tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}") from None
    if not out:
        raise click.BadParameter("expected at least one integer")
    return out


def _str_list(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    out = tuple(v.strip() for v in value.split(",") if v.strip())
    if not out:
        raise click.BadParameter("expected at least one name")
    return out


@click.command("train")
@click.option("--data", "data", required=True, type=click.Path(dir_okay=False),
              help="Training ensemble (HDF5, from `tdglnre generate`).")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False),
              help="Model directory to write (model.keras, metadata.json, history, plot).")
@click.option("--loss", type=click.Choice(["nre", "bnre", "nrec"]), default=None,
              help="Training loss [default: nrec]; see docs/nre.md for the comparison.")
@click.option("--contrastive", "-K", "contrastive", type=click.IntRange(min=1), default=None,
              help="K: thetas scored per observation (nre/bnre: 1 joint + K-1 marginal; "
                   "nrec: K classes) [default: 8].")
@click.option("--gamma", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Class ratio gamma of nrec [default: 1].")
@click.option("--lam", type=click.FloatRange(min=0), default=None,
              help="Balancing penalty lambda of bnre [default: 100].")
@click.option("--epochs", type=click.IntRange(min=1), default=None,
              help="Maximum epochs [default: 50].")
@click.option("--batch-size", type=click.IntRange(min=2), default=None,
              help="Observations per batch [default: 64].")
@click.option("--learning-rate", type=click.FloatRange(min=0, min_open=True), default=None,
              help="AdamW learning rate [default: 1e-3].")
@click.option("--weight-decay", type=click.FloatRange(min=0), default=None,
              help="AdamW weight decay [default: 1e-4].")
@click.option("--val-fraction", type=click.FloatRange(0, 1, max_open=True), default=None,
              help="Validation fraction (seeded split); 0: none, early stopping then watches "
                   "the training loss [default: 0.1].")
@click.option("--patience", type=click.IntRange(min=1), default=None,
              help="Early-stopping patience in epochs [default: 8].")
@click.option("--lr-patience", type=click.IntRange(min=1), default=None,
              help="Epochs without improvement before the learning rate is halved [default: 3].")
@click.option("--seed", type=int, default=None, help="Seed [default: 0].")
@click.option("--channels", callback=_str_list, default=None,
              help="Comma-separated input channels [default: all, rho1,rho2,curlJ].")
@click.option("--snapshots", callback=_int_list, default=None,
              help="Comma-separated snapshot indices, stacked as channels [default: -1, the last].")
@click.option("--filters", callback=_int_list, default=None,
              help="Conv filters per block [default: 16,32,32,64; the paper: 64,128,128,256].")
@click.option("--encoder", type=click.Choice(["stacked", "per_snapshot"]), default=None,
              help="Observation encoder: stacked (one CNN on the snapshots stacked as channels) or per_snapshot "
                   "(a CNN shared by all snapshots, pooled over time; docs/drag.md) [default: stacked].")
@click.option("--spectrum/--no-spectrum", default=None,
              help="Add a branch on the log structure factor log S(k) of every input channel (float64 FFT) to the "
                   "encoder; it carries the drag nu (docs/drag.md) [default: off].")
@click.option("--cnn-snapshots", type=click.Choice(["all", "last"]), default=None,
              help="Snapshots the CNN sees with the stacked encoder: all selected ones, or the last only (the "
                   "--spectrum branch still sees all; docs/drag.md) [default: all].")
@click.option("--augment/--no-augment", default=None,
              help="Random periodic lattice translations of training inputs [default: on].")
@click.option("--measurement", default=None, metavar="SPEC",
              help="Measurement model applied to the training inputs as augmentation, fresh noise every "
                   "epoch from --seed, e.g. 'blur(1.0)+noise(0.05)'; a range 'noise(0..0.15)' draws the level per "
                   "sample, alternatives 'noise(0..0.25) | blur(0..1.5)+noise(0..0.25)' one instrument per sample "
                   "(docs/observations.md); 'none': perfect images [default: the ensemble's preset's measurement, "
                   "else none].")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="TensorFlow intra-op threads [default: usable CPU cores].")
@click.option("--resume", is_flag=True, help="Continue from the last checkpoint in --out.")
@click.option("--force", is_flag=True, help="Overwrite a model already in --out.")
@click.option("--quiet", "-q", is_flag=True,
              help="No progress output (else a progress bar on a terminal, one line per epoch otherwise).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def command(data: str, out: str, loss: str | None, contrastive: int | None,
            gamma: float | None, lam: float | None, epochs: int | None,
            batch_size: int | None, learning_rate: float | None, weight_decay: float | None,
            val_fraction: float | None, patience: int | None, lr_patience: int | None, seed: int | None,
            channels: tuple[str, ...] | None, snapshots: tuple[int, ...] | None,
            filters: tuple[int, ...] | None, encoder: str | None, spectrum: bool | None, cnn_snapshots: str | None, augment: bool | None, measurement: str | None,
            threads: int | None, resume: bool, force: bool, quiet: bool, as_json: bool) -> None:
    """Train the two-tower neural ratio estimator on an ensemble.

    Early stopping on the validation loss restores the best weights; a
    checkpoint is written every epoch (continue with --resume).
    """
    if not Path(data).is_file():  # before anything heavy is imported
        raise LibraryError(f"{data}: no such file")
    from tdglnre.workflows.train import train  # TensorFlow loads only once training starts; also fits ood.json

    settings: dict[str, Any] = {
        k: v for k, v in dict(
            loss=loss, contrastive=contrastive, gamma=gamma, lam=lam, epochs=epochs,
            batch_size=batch_size, learning_rate=learning_rate, weight_decay=weight_decay,
            val_fraction=val_fraction, patience=patience, lr_patience=lr_patience, seed=seed, channels=channels,
            snapshots=snapshots, augment=augment, threads=threads, measurement=measurement,
        ).items() if v is not None
    }
    if filters is not None or encoder is not None or spectrum is not None or cnn_snapshots is not None:
        from tdglnre.nre.settings import NetworkConfig

        net: dict[str, Any] = {}
        if filters is not None:
            net["filters"] = filters
        if encoder is not None:
            net["encoder"] = encoder
        if spectrum is not None:
            net["spectrum"] = spectrum
        if cnn_snapshots is not None:
            net["cnn_snapshots"] = cnn_snapshots
        settings["network"] = NetworkConfig(**net)
    result = run_library_call(train, data, out, resume=resume, force=force, quiet=quiet,
                              **settings)
    if as_json:
        d = result.to_dict()
        click.echo(json.dumps(d, indent=2))
        return
    if result.n_val:
        best = f"best val loss {result.best_val_loss:.5g}"
    else:
        best = (f"no validation split (val-fraction 0): best training loss "
                f"{result.best_loss:.5g}")
    click.echo(
        f"{best} at epoch {result.best_epoch + 1} of "
        f"{result.epochs_run}{' (stopped early)' if result.stopped_early else ''}; "
        f"{result.n_train} training / {result.n_val} validation samples; "
        f"{result.wall_time_s:.1f} s"
    )
    click.echo(f"model:    {result.model_path}")
    click.echo(f"metadata: {result.metadata_path}")
    click.echo(f"history:  {result.out_dir / 'history.csv'}, {result.out_dir / 'loss_curve.png'}")
