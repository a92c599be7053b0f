"""``tdglnre train`` end to end on tiny ensembles written in schema v1."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("keras")

from tdglnre import SimConfig  # noqa: E402
from tdglnre.cli.main import cli  # noqa: E402
from tdglnre.io.ensemble import EnsembleWriter, open_ensemble  # noqa: E402
from tdglnre.io.priors import Prior  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def write_ensemble(path: Path, n: int, *, N: int = 8, nan_at: int | None = None,
                   seed: int = 0) -> Path:
    """A schema-v1 ensemble whose channels depend on η (rho1 ≈ η, rho2 ≈ 1 − η, noise)."""
    cfg = SimConfig(N=N, L=float(N), snapshot_times=(0.5, 1.0))
    prior = Prior({"eta": "uniform(0, 1.5)"})
    theta = prior.sample(seed, np.arange(n))
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 0.3, size=(n, 2, N, N, 3)).astype(np.float32)
    x[..., 0] += theta[:, 0, None, None, None]
    x[..., 1] += 1.0 - theta[:, 0, None, None, None]
    if nan_at is not None:
        x[nan_at, 1, 3, 4, 2] = np.nan
    with EnsembleWriter.create(path, cfg, prior, seed=seed, n_samples=n) as w:
        w.write_batch(0, theta, x)
    return path


def _run(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(cli, ["train", *args], catch_exceptions=False)
    return res.exit_code, res.output


def test_train_writes_a_complete_model_directory_and_resumes(tmp_path: Path) -> None:
    data = write_ensemble(tmp_path / "ens.h5", 80)
    out = tmp_path / "model"
    common = ["--data", str(data), "--out", str(out), "--batch-size", "16", "--filters", "4,8",
              "--quiet"]
    code, text = _run(*common, "--epochs", "2", "--patience", "5")
    assert code == 0, text
    for name in ("model.keras", "metadata.json", "history.csv", "history.json",
                 "loss_curve.png", "checkpoints/last.keras", "checkpoints/state.json"):
        assert (out / name).exists(), name
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["parameter_names"] == ["eta"] and meta["N"] == 8 and meta["L"] == 8.0
    assert meta["prior"] == {"eta": {"kind": "uniform", "low": 0.0, "high": 1.5}}
    assert meta["input"]["channels"] == ["rho1", "rho2", "curlJ"]
    assert meta["input"]["snapshot_indices"] == [1] and meta["input"]["snapshot_times"] == [1.0]
    assert meta["dataset"]["n_train"] == 72 and meta["dataset"]["n_val"] == 8
    assert meta["dataset"]["config"]["N"] == 8 and meta["training"]["network"]["filters"] == [4, 8]
    assert meta["result"]["epochs_run"] == 2
    assert (out / "history.csv").read_text().splitlines()[0].startswith("epoch,loss,val_loss")

    code, text = _run(*common, "--epochs", "2")
    assert code == 1 and "already holds a model" in text and "--force" in text

    code, text = _run(*common, "--epochs", "4", "--resume", "--json")
    assert code == 0, text
    result = json.loads(text[text.index("{"):])
    assert result["resumed"] and result["epochs_run"] == 4
    hist = json.loads((out / "history.json").read_text())
    assert hist["epoch"] == [0, 1, 2, 3]  # the epoch counter continued

    from tdglnre.nre.infer.model_io import load_estimator

    est = load_estimator(out)
    with open_ensemble(data) as ens:
        est.check_compatible(ens)
        x = est.preprocess(ens.x(0, 1)[0])
    assert x.shape == (1, 8, 8, 3)
    assert np.isfinite(est.log_ratio_from_embedding(est.encode(x), np.linspace(0, 1.5, 16))).all()

    code, text = _run(*common, "--epochs", "1", "--force")
    assert code == 0, text
    assert json.loads((out / "history.json").read_text())["epoch"] == [0]


def test_train_errors_are_one_line_messages(tmp_path: Path) -> None:
    out = str(tmp_path / "m")
    junk = tmp_path / "junk.h5"
    junk.write_text("not hdf5")
    code, text = _run("--data", str(junk), "--out", out)
    assert code == 1 and "not an HDF5 file" in text

    small = write_ensemble(tmp_path / "small.h5", 2)
    code, text = _run("--data", str(small), "--out", out)
    assert code == 1 and "too few" in text

    bad = write_ensemble(tmp_path / "nan.h5", 20, nan_at=13)
    code, text = _run("--data", str(bad), "--out", out, "--snapshots", "0,1")
    assert code == 1 and "sample 13 has NaN/Inf" in text and "'curlJ'" in text

    code, text = _run("--data", str(bad), "--out", out, "--resume")
    assert code == 1 and "nothing to resume" in text

    code, text = _run("--data", str(small), "--out", out, "--channels", "rho1,psi")
    assert code == 1 and "not in the ensemble" in text
