"""Issue 18: one parse per value for the training measurement, and refused measurement values.

``TrainSettings`` holds a parsed :class:`MeasurementModel` (text accepted on
construction, written back as text by ``to_dict``); a measurement text given
to ``train`` is parsed once; one function (``resolve_on_lattice``) turns
widths in coherence lengths into pixels; values that would make float32
inputs overflow or vanish are refused by ``train`` and ``posterior`` with one
``Error:`` line and no model directory.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tdglnre.errors import ConfigError
from tdglnre.instrument import _transforms
from tdglnre.instrument.model import MeasurementModel, resolve_on_lattice
from tdglnre.nre.settings import TrainSettings


def test_train_settings_hold_the_parsed_model_and_write_its_text():
    s = TrainSettings(measurement="blur(1)+noise(0.05)")
    assert isinstance(s.measurement, MeasurementModel)
    assert s.measurement == MeasurementModel.parse("blur(1.0)+noise(0.05)")
    assert s.to_dict()["measurement"] == "blur(1.0)+noise(0.05)"  # the text form, as metadata always held
    assert TrainSettings.from_dict(s.to_dict()) == s
    model = MeasurementModel.parse("noise(0..0.1) | none")
    assert TrainSettings(measurement=model).measurement is model  # a model is taken as it is, not re-parsed
    assert TrainSettings(measurement="none").measurement is None
    assert TrainSettings(measurement=MeasurementModel()).to_dict()["measurement"] is None
    assert TrainSettings(measurement=[{"noise": 0.05}]).measurement == MeasurementModel.parse("noise(0.05)")
    with pytest.raises(ConfigError, match="noise: sigma must be at most 100"):
        TrainSettings(measurement="noise(1e308)")


def test_resolve_on_lattice_is_the_one_blur_xi_to_pixels_conversion():
    m = MeasurementModel.parse("blur_xi(1.0)+noise(0.05)")
    assert str(resolve_on_lattice(m, 8.0, 16)) == "blur(2.0)+noise(0.05)"  # h = L/N = 0.5 xi
    plain = MeasurementModel.parse("blur(1.0)")
    assert resolve_on_lattice(plain, None, 16) is plain
    with pytest.raises(ConfigError) as exc:
        resolve_on_lattice(m, None, 16, lacking="the model does not record its lattice length L")
    assert "coherence lengths" in str(exc.value) and "does not record its lattice length L" in str(exc.value)


def test_training_and_the_estimator_resolve_through_the_same_function(monkeypatch):
    from tdglnre.instrument import model as meas
    from tdglnre.nre.fit import training
    from tdglnre.nre.infer import model_io

    calls = []

    original = meas.resolve_on_lattice
    monkeypatch.setattr(meas, "resolve_on_lattice", lambda m, L, N, **kw: calls.append((str(m), L, N)) or
                        original(m, L, N, **kw))

    class Source:
        sample_shape = (1, 16, 16, 3)
        info = {"L": 8.0}

    class Selection:
        channel_names = ("rho1", "rho2", "curlJ")
        snapshot_indices = (0,)

    monkeypatch.setattr(training, "measured_shape", lambda *a: None)
    got = training._measurement(TrainSettings(measurement="blur_xi(1)"), Selection(), Source())
    assert str(got) == "blur(2.0)"
    est = model_io.RatioEstimator.__new__(model_io.RatioEstimator)
    est.metadata = {"L": 8.0, "N": 16}
    assert str(est.resolve_measurement("blur_xi(0.5)")) == "blur(1.0)"
    assert calls == [("blur_xi(1.0)", 8.0, 16), ("blur_xi(0.5)", 8.0, 16)]


# ------------------------------------------------------------------ the command line
pytest.importorskip("keras")

from tdglnre.cli.main import cli  # noqa: E402

from test_nre_cli import write_ensemble  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

_TINY = ["--batch-size", "16", "--filters", "4,8", "--quiet", "--epochs", "1"]


@pytest.mark.parametrize("spec, words", [
    ("noise(1e308)", ["noise", "1e308"]),
    ("offset(1e300)", ["offset", "1e300"]),
    ("gain(1e30)", ["gain", "1e30"]),
    ("gain(0)", ["gain", "must not be 0"]),
    ("noise(0...1)", ["noise", "0...1", "lo..hi"]),
    ("none | noise(0)", ["repeat an instrument", "'noise(0.0)'"]),
])
def test_train_refuses_bad_measurement_values_with_one_line_and_no_model_directory(tmp_path: Path, spec, words):
    data = write_ensemble(tmp_path / "ens.h5", 40)
    out = tmp_path / "m"
    res = CliRunner().invoke(cli, ["train", "--data", str(data), "--out", str(out), *_TINY, "--measurement", spec])
    assert res.exit_code == 1, res.output
    errors = [ln for ln in res.output.splitlines() if ln.startswith("Error:")]
    assert len(errors) == 1 and all(w in errors[0] for w in words), res.output
    assert "Traceback" not in res.output and not out.exists()


def test_a_measurement_text_is_parsed_once_per_training_run(tmp_path: Path, monkeypatch):
    data = write_ensemble(tmp_path / "ens.h5", 40)
    terms = []
    from tdglnre.instrument import model as measurement

    original = _transforms._parse_term
    for module in (_transforms, measurement):  # the text parser of one term, wherever it is called from
        monkeypatch.setattr(module, "_parse_term", lambda t: terms.append(t.strip()) or original(t))
    res = CliRunner().invoke(cli, ["train", "--data", str(data), "--out", str(tmp_path / "m"), *_TINY,
                                   "--measurement", "blur_xi(0.5)+noise(0.05)"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    # each term once (train -> settings -> resume state -> resolution -> metadata used to parse it 4 times)
    assert terms == ["blur_xi(0.5)", "noise(0.05)"]
    meta = json.loads((tmp_path / "m" / "metadata.json").read_text())
    assert meta["training"]["measurement"] == "blur_xi(0.5)+noise(0.05)"
    assert meta["measurement"]["text"] == "blur(0.5)+noise(0.05)"  # h = L/N = 1 xi on this lattice

    # the posterior's calibration on a test set refuses an overflowing instrument, one line, no warnings
    res = CliRunner().invoke(cli, ["posterior", "--model", str(tmp_path / "m"), "--test-set", str(data),
                                   "--out", str(tmp_path / "p"), "--quiet", "--measurement", "noise(1e308)"])
    assert res.exit_code == 1, (res.output, res.exception)
    errors = [ln for ln in res.output.splitlines() if ln.startswith("Error:")]
    assert len(errors) == 1 and "noise" in errors[0] and "1e308" in errors[0], (res.output, res.exception)
    assert "RuntimeWarning" not in res.output
