"""``tdglnre train``'s flags are grouped (issue 18): the command takes the training settings and the network
options as two dicts, every flag keeps its name, and each given flag reaches the library call unchanged."""

from __future__ import annotations

import inspect
import json

from click.testing import CliRunner

from tdglnre.cli.main import cli
from tdglnre.cli.train import command
from tdglnre.nre.settings import NetworkConfig, TrainSettings


class _Result:
    def to_dict(self):
        return {"fake": True}


def _invoke(monkeypatch, tmp_path, *flags):
    import tdglnre.workflows.train as wt

    seen = {}

    def fake_train(data, out, **kwargs):
        seen.update(kwargs, data=data, out=out)
        TrainSettings.from_dict({k: v for k, v in kwargs.items() if k not in ("resume", "force", "quiet", "ensemble")})
        return _Result()

    monkeypatch.setattr(wt, "train", fake_train)
    data = tmp_path / "d.h5"
    data.write_bytes(b"")
    res = CliRunner().invoke(cli, ["train", "--data", str(data), "--out", str(tmp_path / "m"), "--json", *flags])
    assert res.exit_code == 0, (res.output, res.exception)
    assert json.loads(res.output) == {"fake": True}
    return seen


def test_the_command_takes_option_groups_not_one_parameter_per_flag():
    params = list(inspect.signature(command.callback).parameters)
    assert params == ["data", "out", "settings", "network", "ensemble", "temper", "resume", "force", "quiet", "as_json"]
    # every flag of the command line is still there, in the documented order
    flags = [p.opts[0] for p in command.params]
    assert flags == ["--data", "--out", "--loss", "--contrastive", "--gamma", "--lam", "--epochs", "--batch-size",
                     "--learning-rate", "--weight-decay", "--val-fraction", "--patience", "--lr-patience", "--seed",
                     "--channels", "--snapshots", "--filters", "--encoder", "--spectrum", "--summaries",
                     "--regression", "--cnn-snapshots", "--instrument-input", "--augment", "--measurement", "--threads", "--ensemble", "--temper",
                     "--resume", "--force", "--quiet", "--json"]


def test_given_flags_reach_train_settings_and_the_network_config(monkeypatch, tmp_path):
    seen = _invoke(monkeypatch, tmp_path, "--loss", "bnre", "-K", "3", "--lam", "5", "--epochs", "2",
                   "--batch-size", "16", "--learning-rate", "0.01", "--weight-decay", "0", "--val-fraction", "0.2",
                   "--patience", "4", "--lr-patience", "2", "--seed", "7", "--channels", "rho1,curlJ",
                   "--snapshots", "0,1", "--filters", "4,8", "--encoder", "per_snapshot", "--no-augment",
                   "--measurement", "noise(0.05)", "--threads", "1", "--ensemble", "3", "--force", "--quiet")
    assert seen.pop("network") == NetworkConfig(filters=(4, 8), encoder="per_snapshot")
    assert seen == dict(
        data=str(tmp_path / "d.h5"), out=str(tmp_path / "m"), resume=False, force=True, quiet=True,
        loss="bnre", contrastive=3, lam=5.0, epochs=2, batch_size=16, learning_rate=0.01, weight_decay=0.0,
        val_fraction=0.2, patience=4, lr_patience=2, seed=7, channels=("rho1", "curlJ"), snapshots=(0, 1),
        augment=False, measurement="noise(0.05)", threads=1, ensemble=3)


def test_flags_not_given_are_left_to_the_defaults(monkeypatch, tmp_path):
    seen = _invoke(monkeypatch, tmp_path)
    assert seen == dict(data=str(tmp_path / "d.h5"), out=str(tmp_path / "m"), resume=False, force=False,
                        quiet=False)
    seen = _invoke(monkeypatch, tmp_path, "--spectrum", "--cnn-snapshots", "last")
    assert seen["network"] == NetworkConfig(spectrum=True, cnn_snapshots="last")
    seen = _invoke(monkeypatch, tmp_path, "--spectrum", "--summaries")
    assert seen["network"] == NetworkConfig(spectrum=True, summaries=True)
    seen = _invoke(monkeypatch, tmp_path, "--instrument-input")
    assert seen["network"] == NetworkConfig(instrument_input=True)
