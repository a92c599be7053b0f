"""``tdglnre train``: fit the neural ratio estimator on an HDF5 ensemble."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, Callable, Sequence

import click

from tdglnre.nre.settings import LOSS_NAMES, NetworkConfig  # TensorFlow-free: the loss registry feeds --loss

from ._flags import LibraryError, run_library_call
from ._types import INT_LIST, STR_LIST


#: Where each training-setting flag goes: ``settings`` (a :class:`tdglnre.nre.settings.TrainSettings` field of the
#: option's name) or ``network`` (a :class:`tdglnre.nre.settings.NetworkConfig` field). Listed in help order.
_SETTING_OPTIONS: tuple[tuple[str, Callable[[Any], Any]], ...] = (
    ("settings", click.option("--loss", type=click.Choice(list(LOSS_NAMES)), default=None,
                              help="Training loss [default: nrec]; see docs/nre.md for the comparison.")),
    ("settings", click.option("--contrastive", "-K", "contrastive", type=click.IntRange(min=1), default=None,
                              help="K: thetas scored per observation (nre/bnre: 1 joint + K-1 marginal; "
                                   "nrec: K classes) [default: 8].")),
    ("settings", click.option("--gamma", type=click.FloatRange(min=0, min_open=True), default=None,
                              help="Class ratio gamma of nrec [default: 1].")),
    ("settings", click.option("--lam", type=click.FloatRange(min=0), default=None,
                              help="Balancing penalty lambda of bnre [default: 100].")),
    ("settings", click.option("--epochs", type=click.IntRange(min=1), default=None,
                              help="Maximum epochs [default: 50].")),
    ("settings", click.option("--batch-size", type=click.IntRange(min=2), default=None,
                              help="Observations per batch [default: 64].")),
    ("settings", click.option("--learning-rate", type=click.FloatRange(min=0, min_open=True), default=None,
                              help="AdamW learning rate [default: 1e-3].")),
    ("settings", click.option("--weight-decay", type=click.FloatRange(min=0), default=None,
                              help="AdamW weight decay [default: 1e-4].")),
    ("settings", click.option("--val-fraction", type=click.FloatRange(0, 1, max_open=True), default=None,
                              help="Validation fraction (seeded split); 0: none, early stopping then watches "
                                   "the training loss [default: 0.1].")),
    ("settings", click.option("--patience", type=click.IntRange(min=1), default=None,
                              help="Early-stopping patience in epochs [default: 8].")),
    ("settings", click.option("--lr-patience", type=click.IntRange(min=1), default=None,
                              help="Epochs without improvement before the learning rate is halved [default: 3].")),
    ("settings", click.option("--seed", type=int, default=None, help="Seed [default: 0].")),
    ("settings", click.option("--channels", type=STR_LIST, default=None,
                              help="Comma-separated input channels [default: all, rho1,rho2,curlJ].")),
    ("settings", click.option("--snapshots", type=INT_LIST, default=None,
                              help="Comma-separated snapshot indices, stacked as channels [default: -1, the last].")),
    ("network", click.option("--filters", type=INT_LIST, default=None,
                             help="Conv filters per block [default: 16,32,32,64; the paper: 64,128,128,256].")),
    ("network", click.option("--encoder", type=click.Choice(["stacked", "per_snapshot"]), default=None,
                             help="Observation encoder: stacked (one CNN on the snapshots stacked as channels) or "
                                  "per_snapshot (a CNN shared by all snapshots, pooled over time; docs/drag.md) "
                                  "[default: stacked].")),
    ("network", click.option("--spectrum/--no-spectrum", default=None,
                             help="Add a branch on the log structure factor log S(k) of every input channel (float64 "
                                  "FFT) to the encoder; it carries the drag nu (docs/drag.md) [default: off].")),
    ("network", click.option("--summaries/--no-summaries", default=None,
                             help="Add a branch on the ABC baseline's physical summaries (mean, std, core fraction, "
                                  "log S at 3 shells; mean |curl J|) of every snapshot to the encoder (docs/nre.md) "
                                  "[default: off].")),
    ("network", click.option("--regression/--no-regression", default=None,
                             help="Add a regression head (needs --summaries): the encoder also estimates theta, by a "
                                  "least-squares fit quadratic in the summaries plus a trained correction, and the "
                                  "ratio head adds a Student-t term in each scored theta's offset from it "
                                  "(docs/nre.md) [default: off].")),
    ("network", click.option("--cnn-snapshots", type=click.Choice(["all", "last"]), default=None,
                             help="Snapshots the CNN sees with the stacked encoder: all selected ones, or the last only "
                                  "(the --spectrum branch still sees all; docs/drag.md) [default: all].")),
    ("network", click.option("--instrument-input/--no-instrument-input", default=None,
                             help="Give the network each image's instrument (the values its --measurement family "
                                  "drew) beside the image, so that the posterior is conditional on the instrument and "
                                  "calibrated at each member; observations must then declare their instrument "
                                  "(docs/nre.md) [default: off].")),
    ("settings", click.option("--augment/--no-augment", default=None,
                              help="Random periodic lattice translations of training inputs [default: on].")),
    ("settings", click.option("--measurement", default=None, metavar="SPEC",
                              help="Measurement model applied to the training inputs as augmentation, fresh noise "
                                   "every epoch from --seed, e.g. 'blur(1.0)+noise(0.05)'; a range 'noise(0..0.15)' "
                                   "draws the level per sample ('noise(log:0.001..0.25)': log-uniformly), "
                                   "alternatives 'noise(0..0.25) | blur(0..1.5)+noise(0..0.25)' one instrument per "
                                   "sample (docs/observations.md); 'none': perfect images [default: the ensemble's "
                                   "preset's measurement, else none].")),
    ("settings", click.option("--threads", type=click.IntRange(min=1), default=None,
                              help="TensorFlow intra-op threads [default: usable CPU cores].")),
)


def _grouped_options(options: Sequence[tuple[str, Callable[[Any], Any]]]) -> Callable[[Any], Any]:
    """Add ``options`` to a command and hand it their given values as one dict per group.

    The command receives ``settings`` and ``network`` (dicts of the options
    that were given, None meaning "not given", keyed by parameter name)
    instead of one parameter per flag.
    """
    def names(option: Callable[[Any], Any]) -> str:
        def probe() -> None: ...
        option(probe)
        return probe.__click_params__[0].name  # type: ignore[attr-defined]

    groups = [(group, names(option)) for group, option in options]

    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(f)
        def command(*args: Any, **kwargs: Any) -> Any:
            given: dict[str, dict[str, Any]] = {group: {} for group, _ in groups}
            for group, name in groups:
                value = kwargs.pop(name)
                if value is not None:
                    given[group][name] = value
            return f(*args, **kwargs, **given)

        for _, option in reversed(options):
            command = option(command)
        return command

    return decorate


@click.command("train")
@click.option("--data", "data", required=True, type=click.Path(dir_okay=False),
              help="Training ensemble (HDF5, from `tdglnre generate`).")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False),
              help="Model directory to write (model.keras, metadata.json, history, plot).")
@_grouped_options(_SETTING_OPTIONS)
@click.option("--ensemble", type=click.IntRange(min=1), default=None,
              help="Train M members alike (seeds seed, seed+1, ...) into --out/member0 ...; posteriors then use the "
                   "mean of their ratios (docs/nre.md, Ensembles) [default: 1, one model].")
@click.option("--temper", is_flag=True,
              help="After training, fit the posterior temperature on the validation split, as `tdglnre temper` "
                   "(docs/nre.md, Tempering) [default: off].")
@click.option("--resume", is_flag=True, help="Continue from the last checkpoint in --out.")
@click.option("--force", is_flag=True, help="Overwrite a model already in --out.")
@click.option("--quiet", "-q", is_flag=True,
              help="No progress output (else a progress bar on a terminal, one line per epoch otherwise).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def command(data: str, out: str, settings: dict[str, Any], network: dict[str, Any], ensemble: int | None, temper: bool,
            resume: bool, force: bool, quiet: bool, as_json: bool) -> None:
    """Train the two-tower neural ratio estimator on an ensemble.

    Early stopping on the validation loss restores the best weights; a
    checkpoint is written every epoch (continue with --resume).
    """
    if not Path(data).is_file():  # before anything heavy is imported
        raise LibraryError(f"{data}: no such file")
    from tdglnre.workflows.train import train  # TensorFlow loads only once training starts; also fits ood.json

    if network:  # only the network flags that were given; NetworkConfig fills in the rest
        settings["network"] = NetworkConfig(**network)
    if ensemble is not None:
        settings["ensemble"] = ensemble
    if temper:
        settings["temper"] = True
    result = run_library_call(train, data, out, resume=resume, force=force, quiet=quiet, **settings)
    members = getattr(result, "members", None) or [result]
    if as_json:
        d = result.to_dict() if len(members) == 1 else {"ensemble": str(out), "members": [m.to_dict() for m in members]}
        click.echo(json.dumps(d, indent=2))
        return
    for member in members:
        _echo_result(member)
    if len(members) > 1:
        click.echo(f"ensemble: {out} ({len(members)} members; posteriors average their ratios)")


def _echo_result(result: Any) -> None:
    """The lines ``tdglnre train`` prints for one trained model."""
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
    if getattr(result, "tempering", None) is not None:
        from tdglnre.workflows.temper import summary_line

        click.echo(summary_line(result.tempering))
