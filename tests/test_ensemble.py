"""HDF5 ensemble schema v1: writer, reader and the reader's error messages."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from tdglnre.io.ensemble import FORMAT, EnsembleError, EnsembleWriter, open_ensemble
from tdglnre.io.presets import load_preset


@pytest.fixture
def small() -> tuple:
    return load_preset("quick", ["N=8", "L=4", "snapshot_times=0.01,0.02"])


def _write(path: Path, config, prior, S: int = 6, complete: int | None = None, fields: bool = False) -> dict:
    rng = np.random.default_rng(1)
    T, N = len(config.snapshot_times), config.N
    theta = prior.sample(5, np.arange(S))
    x = rng.normal(size=(S, T, N, N, 3)).astype(np.float32)
    psi = (rng.normal(size=(S, T, 2, N, N)) + 1j * rng.normal(size=(S, T, 2, N, N))).astype(np.complex64)
    w = EnsembleWriter.create(path, config, prior, seed=5, n_samples=S, store_fields=fields)
    with w:
        n = S if complete is None else complete
        for a in range(0, n, 2):
            b = min(n, a + 2)
            w.write_batch(a, theta[a:b], x[a:b], psi[a:b] if fields else None)
    return dict(theta=theta, x=x, psi=psi)


def test_round_trip_and_root_attributes(tmp_path: Path, small: tuple) -> None:
    config, prior = small
    path = tmp_path / "e.h5"
    ref = _write(path, config, prior, fields=True)
    with open_ensemble(path) as ens:
        assert ens.config == config and ens.prior == prior
        assert ens.parameter_names == ["eta", "n_v"] and ens.channels == ["rho1", "rho2", "curlJ"]
        assert ens.snapshot_times == [0.01, 0.02] and ens.seed == 5
        assert ens.n_samples == ens.n_complete == 6 and ens.has_fields
        np.testing.assert_array_equal(ens.theta(), ref["theta"])
        np.testing.assert_array_equal(ens.x(2, 5), ref["x"][2:5])
        np.testing.assert_array_equal(ens.psi(), ref["psi"])
        assert ens.x().dtype == np.float32 and ens.theta().dtype == np.float64
        assert ens.psi().dtype == np.complex64
    with h5py.File(path, "r") as f:
        a = f.attrs
        assert a["format"] == FORMAT and a["format_version"] == 1
        assert str(a["generated_by"]).startswith("tdglnre ")
        assert "T" in str(a["creation_date"])
        assert json.loads(a["config"])["N"] == 8
        assert json.loads(a["prior"])["nu"] == {"kind": "fixed", "value": 0.0}
        assert json.loads(a["parameter_names"]) == ["eta", "n_v"]
        assert json.loads(a["channels"]) == ["rho1", "rho2", "curlJ"]
        assert json.loads(a["snapshot_times"]) == [0.01, 0.02]
        assert int(a["n_complete"]) == 6 and int(a["seed"]) == 5
        assert f["x"].chunks == (1, 2, 8, 8, 3) and f["x"].compression is not None
        assert f["theta"].shape == (6, 2) and f["psi"].shape == (6, 2, 2, 8, 8)


def test_reader_error_not_found_and_not_hdf5(tmp_path: Path) -> None:
    with pytest.raises(EnsembleError, match="no such file"):
        open_ensemble(tmp_path / "missing.h5")
    txt = tmp_path / "notes.h5"
    txt.write_text("hello, I am not HDF5\n")
    with pytest.raises(EnsembleError, match="not an HDF5 file"):
        open_ensemble(txt)
    empty = tmp_path / "empty.h5"
    empty.write_bytes(b"")
    with pytest.raises(EnsembleError, match="file is empty"):
        open_ensemble(empty)


def test_reader_error_not_tdglnre(tmp_path: Path) -> None:
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["data"] = np.arange(3)
    with pytest.raises(EnsembleError, match="HDF5 file but not a tdglnre ensemble .no 'format' attribute"):
        open_ensemble(other)
    with h5py.File(other, "a") as f:
        f.attrs["format"] = "cooler"
    with pytest.raises(EnsembleError, match="format='cooler'"):
        open_ensemble(other)


def test_reader_error_newer_version(tmp_path: Path, small: tuple) -> None:
    path = tmp_path / "e.h5"
    _write(path, *small)
    with h5py.File(path, "a") as f:
        f.attrs["format_version"] = 3
    with pytest.raises(EnsembleError, match="format_version=3 .* reads up to version 2 — upgrade tdglnre"):
        open_ensemble(path)


def test_reader_error_truncated(tmp_path: Path, small: tuple) -> None:
    path = tmp_path / "e.h5"
    _write(path, *small)
    data = path.read_bytes()
    cut = tmp_path / "cut.h5"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(EnsembleError, match="truncated HDF5 file"):
        open_ensemble(cut)


def test_reader_samples_missing(tmp_path: Path, small: tuple) -> None:
    path = tmp_path / "e.h5"
    ref = _write(path, *small, S=6, complete=4)
    with open_ensemble(path) as ens:
        assert (ens.n_complete, ens.n_samples) == (4, 6)
        np.testing.assert_array_equal(ens.x(), ref["x"][:4])  # default: the complete prefix
        with pytest.raises(EnsembleError, match=r"samples missing: requested samples \[0, 6\) but only the first "
                                                r"4 of 6 are complete .*--resume"):
            ens.theta(0, 6)
        with pytest.raises(EnsembleError, match="no stored fields"):
            ens.psi()
    with pytest.raises(EnsembleError, match="samples missing: only 4 of 6"):
        open_ensemble(path, require_complete=True)
    with h5py.File(path, "a") as f:
        del f["x"]
    with pytest.raises(EnsembleError, match="dataset 'x' is missing"):
        open_ensemble(path)


def test_writer_refuses_out_of_order_and_mismatched_resume(tmp_path: Path, small: tuple) -> None:
    config, prior = small
    path = tmp_path / "e.h5"
    _write(path, config, prior, S=6, complete=2)
    w = EnsembleWriter.resume(path, config, prior, seed=5, n_samples=6)
    with w:
        assert w.n_complete == 2
        with pytest.raises(EnsembleError, match="in order"):
            w.write_batch(4, np.zeros((2, 2)), np.zeros((2, 2, 8, 8, 3), np.float32))
    with pytest.raises(EnsembleError, match=r"differs from the file in seed \(file 5 vs 6\)"):
        EnsembleWriter.resume(path, config, prior, seed=6, n_samples=6)
    with pytest.raises(EnsembleError, match=r"config \(N: file 8 vs 16"):
        EnsembleWriter.resume(path, config.replace(N=16), prior, seed=5, n_samples=6)
    with pytest.raises(EnsembleError, match="prior"):
        EnsembleWriter.resume(path, config, prior.replace(eta="uniform(0, 1)"), seed=5, n_samples=6)
    with pytest.raises(EnsembleError, match="n_samples"):
        EnsembleWriter.resume(path, config, prior, seed=5, n_samples=7)


@pytest.mark.parametrize("thermal", [True, False])
def test_a_screened_file_without_the_kick_of_a_is_not_resumed_with_noise(tmp_path: Path, thermal: bool) -> None:
    """Screened files record `a_noise`: a noisy run started before the Langevin kick of a (no attribute) is
    refused on --resume, since its samples and new ones would follow different physics; a clean one is not."""
    config, prior = load_preset("type15-quick", ["N=8", "L=3", "snapshot_times=0.01"])
    if thermal:
        prior = prior.replace(T="uniform(0, 0.01)")
    path = tmp_path / "s.h5"
    with EnsembleWriter.create(path, config, prior, seed=5, n_samples=4):
        pass
    with h5py.File(path, "r+") as f:
        assert f.attrs["a_noise"] == "langevin"
    EnsembleWriter.resume(path, config, prior, seed=5, n_samples=4).close()
    with h5py.File(path, "r+") as f:
        del f.attrs["a_noise"]  # as a file of the earlier code
    if thermal:
        with pytest.raises(EnsembleError, match="thermal noise .* vector potential a"):
            EnsembleWriter.resume(path, config, prior, seed=5, n_samples=4)
    else:
        EnsembleWriter.resume(path, config, prior, seed=5, n_samples=4).close()
