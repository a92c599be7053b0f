"""Data-loss and silent-acceptance defects of generate / the ensemble reader (issue 9, item 7).

* ``--force`` must keep a complete old file when validation fails or the run
  itself fails, and a forced run that is interrupted must be resumable.
* Seeds outside 0..2**63-1 are refused before anything is written.
* A failed run that simulated nothing leaves no file behind.
* The reader refuses datasets whose shapes contradict the stored config and
  names the file in every format-version error.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import h5py
import numba
import numpy as np
import pytest
from click.testing import CliRunner

from tdglnre.cli.main import cli
from tdglnre.errors import ConfigError, DivergenceError
from tdglnre.io import ensemble as ensemble_module
from tdglnre.io.ensemble import SEED_MAX, EnsembleError, EnsembleWriter, open_ensemble
from tdglnre.io.generate import (check_scheduler_address, check_seed, check_threads, generate_ensemble,
                                 partial_path)
from tdglnre.io.presets import load_preset

REPO = Path(__file__).resolve().parents[1]
# 8x8 sites, two short snapshots: each sample takes milliseconds
SETS = ["N=8", "L=4", "snapshot_times=0.05,0.1"]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _args(out: Path, *extra: str, seed: str = "0", n: str = "4") -> list[str]:
    return ["generate", "--preset", "quick", "--n-samples", n, "--seed", seed, "--out", str(out), "--quiet",
            *sum((["--set", s] for s in SETS), []), *extra]


@pytest.fixture(scope="module")
def small() -> tuple:
    return load_preset("quick", SETS)


@pytest.fixture
def good(tmp_path: Path, small: tuple) -> Path:
    """A complete 4-sample file (seed 0) to be protected from --force."""
    out = tmp_path / "f.h5"
    generate_ensemble(*small, 4, 0, out, progress=False)
    return out


def _read(path: Path) -> dict[str, np.ndarray]:
    with open_ensemble(path, require_complete=True) as ens:
        return {"theta": ens.theta(), "x": ens.x(), "seed": np.array(ens.seed)}


# ------------------------------------------------------------- --force safety
@pytest.mark.parametrize("extra, needle, code", [
    (["--threads", "99"], f"threads must be in 1..{numba.config.NUMBA_NUM_THREADS}, got 99", 1),
    (["--scheduler", "notaurl"], "invalid Dask scheduler address 'notaurl'", 1),
    (["--set", "dt=1.0"], "dt", 1),
])
def test_force_keeps_old_output_when_validation_fails(good: Path, extra: list[str], needle: str,
                                                      code: int) -> None:
    before = _digest(good)
    r = CliRunner().invoke(cli, _args(good, "--force", *extra))
    assert r.exit_code == code, r.output
    assert needle in r.output and "Traceback" not in r.output
    assert _digest(good) == before, "the complete old file was modified"
    assert not partial_path(good).exists()
    with open_ensemble(good) as ens:
        assert ens.n_complete == ens.n_samples == 4


def test_force_with_seed_beyond_64_bits_keeps_old_output(good: Path) -> None:
    before = _digest(good)
    r = CliRunner().invoke(cli, _args(good, "--force", seed=str(2**64)))
    assert r.exit_code == 2 and "18446744073709551616" in r.output and "Traceback" not in r.output
    assert _digest(good) == before
    # the library refuses it too (ConfigError before the file is touched), not a TypeError from HDF5
    with pytest.raises(ConfigError, match=r"seed must be an integer in 0\.\.9223372036854775807"):
        generate_ensemble(*load_preset("quick", SETS), 4, 2**64, good, force=True, progress=False)
    assert _digest(good) == before


def _diverge_at(monkeypatch: pytest.MonkeyPatch, bad_sample: int) -> None:
    """Make generate's solver fail with DivergenceError at global sample ``bad_sample``.

    Valid configs no longer diverge (the dt bound of docs/physics.md, "Well-posedness
    and stability", rejects unstable steps), so the run's failure is injected here.
    """
    import tdglnre.io.generate as gen
    from tdglnre.physics.solver import simulate as real

    def simulate(config, params, *, seed, sample_indices, **kw):
        if bad_sample in list(np.asarray(sample_indices)):
            raise DivergenceError(bad_sample, 3, {"eta": 0.5, "n_v": 1.0, "nu": 0.0})
        return real(config, params, seed=seed, sample_indices=sample_indices, **kw)

    monkeypatch.setattr(gen, "simulate", simulate)


@pytest.mark.parametrize("bad_sample", [0, 2])
def test_force_keeps_old_output_when_the_run_diverges(good: Path, small: tuple, monkeypatch: pytest.MonkeyPatch,
                                                      bad_sample: int) -> None:
    """The simulation itself fails: the old file stays; a partial file is kept only if it holds samples."""
    before = _digest(good)
    _diverge_at(monkeypatch, bad_sample)
    with pytest.raises(DivergenceError, match=f"for sample {bad_sample}"):
        generate_ensemble(*small, 4, 0, good, force=True, batch_size=1, progress=False)
    assert _digest(good) == before
    if bad_sample == 0:
        assert not partial_path(good).exists()
    else:
        with open_ensemble(partial_path(good)) as ens:
            assert (ens.n_complete, ens.n_samples) == (2, 4)


def test_interrupted_force_run_keeps_old_output_and_resumes(tmp_path: Path, good: Path, small: tuple) -> None:
    """Ctrl-C mid-way through a --force run: old file intact, partial resumable, result identical."""
    config, prior = small
    before = _digest(good)
    calls = []

    def interrupt_after_two(n: int) -> None:
        calls.append(n)
        if len(calls) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate_ensemble(config, prior, 6, 7, good, force=True, batch_size=2, progress=interrupt_after_two)
    assert _digest(good) == before
    part = partial_path(good)
    with open_ensemble(part) as ens:
        assert (ens.n_complete, ens.n_samples, ens.seed) == (4, 6, 7)
    # a plain rerun does not silently ignore the interrupted run
    with pytest.raises(EnsembleError, match=r"already exists; .*--resume to continue an interrupted run "
                                            r"\(the interrupted forced run in .*f\.h5\.partial\)"):
        generate_ensemble(config, prior, 6, 7, good, progress=False)
    s = generate_ensemble(config, prior, 6, 7, good, resume=True, batch_size=4, progress=False)
    assert s["resumed"] and s["n_new"] == 2 and s["n_complete"] == 6
    assert not part.exists(), "the completed partial file must replace the target"
    ref = tmp_path / "ref.h5"
    generate_ensemble(config, prior, 6, 7, ref, batch_size=3, progress=False)
    got, want = _read(good), _read(ref)
    for k in want:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)


def test_successful_force_replaces_the_file(good: Path, small: tuple) -> None:
    s = generate_ensemble(*small, 3, 5, good, force=True, progress=False)
    assert s["n_complete"] == 3 and s["path"] == str(good)
    assert not partial_path(good).exists()
    with open_ensemble(good) as ens:
        assert (ens.seed, ens.n_samples, ens.n_complete) == (5, 3, 3)


def test_stale_partial_is_not_ignored_by_a_new_run(tmp_path: Path, small: tuple) -> None:
    out = tmp_path / "g.h5"
    EnsembleWriter.create(partial_path(out), *small, seed=1, n_samples=4).close()
    with pytest.raises(EnsembleError, match=r"g\.h5\.partial holds an interrupted forced run.*--resume.*--force"):
        generate_ensemble(*small, 4, 1, out, progress=False)
    s = generate_ensemble(*small, 4, 1, out, force=True, progress=False)  # start over
    assert s["n_complete"] == 4 and out.exists() and not partial_path(out).exists()


# ------------------------------------------------------- failed fresh runs
def test_failed_fresh_run_leaves_no_empty_file(tmp_path: Path, small: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "div.h5"
    _diverge_at(monkeypatch, 0)
    with pytest.raises(DivergenceError):
        generate_ensemble(*small, 4, 1, out, progress=False)
    assert not out.exists()
    # and a validation failure never creates one
    r = CliRunner().invoke(cli, _args(out, "--threads", "99"))
    assert r.exit_code == 1 and not out.exists()


def test_seed_2_64_via_cli_leaves_nothing_and_a_rerun_works(tmp_path: Path) -> None:
    out = tmp_path / "s.h5"
    r = CliRunner().invoke(cli, _args(out, seed="18446744073709551616"))
    assert r.exit_code == 2 and "Traceback" not in r.output and "0<=x<=9223372036854775807" in r.output
    assert not out.exists()
    r = CliRunner().invoke(cli, _args(out, seed=str(SEED_MAX), n="1"))
    assert r.exit_code == 0, r.output
    with open_ensemble(out) as ens:
        assert ens.seed == SEED_MAX and ens.n_complete == 1


def test_seed_range_matches_the_cli_and_the_file_format() -> None:
    from tdglnre.cli import generate as cli_generate

    from tdglnre.physics import solver

    assert SEED_MAX == cli_generate.SEED_MAX == solver.SEED_MAX == 2**63 - 1 == np.iinfo(np.int64).max
    assert check_seed(0) == 0 and check_seed(SEED_MAX) == SEED_MAX and check_seed(np.int64(3)) == 3
    for bad in (-1, SEED_MAX + 1, 2**64, 1.5, True, "7", float("nan")):
        with pytest.raises(ConfigError, match="seed must be an integer in 0..9223372036854775807"):
            check_seed(bad)


def test_writer_refuses_bad_seed_before_creating_the_file(tmp_path: Path, small: tuple) -> None:
    out = tmp_path / "w.h5"
    with pytest.raises(ConfigError, match="seed must be an integer"):
        EnsembleWriter.create(out, *small, seed=2**64, n_samples=2)
    assert not out.exists()


def test_threads_and_scheduler_validation() -> None:
    hi = numba.config.NUMBA_NUM_THREADS
    assert check_threads(None) is None and check_threads(hi) == hi
    with pytest.raises(ConfigError, match=f"threads must be in 1..{hi}, got {hi + 1}"):
        check_threads(hi + 1)
    assert check_threads(hi + 1, this_machine=False) == hi + 1  # remote workers may have more cores
    with pytest.raises(ConfigError, match="threads must be a positive integer"):
        check_threads(0, this_machine=False)
    for ok in ("tcp://10.0.0.5:8786", "host:8786", "tls://[::1]:1", "ws://a-b.example.org:65535"):
        assert check_scheduler_address(ok) == ok
    for bad in ("notaurl", "tcp://host", "foo://host:1", "host:0", "host:99999", "tcp://:8786", "", 8786):
        with pytest.raises(ConfigError, match="Dask scheduler address"):
            check_scheduler_address(bad)


# ------------------------------------------------------------------ reader
def test_reader_rejects_x_shape_that_contradicts_config_n(tmp_path: Path, small: tuple) -> None:
    out = tmp_path / "shape.h5"
    generate_ensemble(*small, 2, 0, out, progress=False)
    with h5py.File(out, "a") as f:
        del f["x"]
        f.create_dataset("x", data=np.zeros((2, 2, 16, 16, 3), np.float32))  # config says N = 8
    with pytest.raises(EnsembleError, match=r"shape\.h5: dataset 'x' has shape \(2, 2, 16, 16, 3\) but the stored "
                                            r"config \(N=8, .*implies \(2, 2, 8, 8, 3\)"):
        open_ensemble(out)
    r = CliRunner().invoke(cli, ["inspect", str(out)])
    assert r.exit_code == 1 and r.output.startswith("Error: ") and "dataset 'x' has shape" in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_reader_rejects_theta_and_psi_shape_mismatch(tmp_path: Path, small: tuple) -> None:
    out = tmp_path / "th.h5"
    generate_ensemble(*small, 2, 0, out, store_fields=True, progress=False)
    with h5py.File(out, "a") as f:
        del f["psi"]
        f.create_dataset("psi", data=np.zeros((2, 1, 2, 8, 8), np.complex64))  # two snapshots stored
    with pytest.raises(EnsembleError, match=r"dataset 'psi' has shape \(2, 1, 2, 8, 8\).*implies \(2, 2, 2, 8, 8\)"):
        open_ensemble(out)
    with h5py.File(out, "a") as f:
        del f["psi"]
        del f["theta"]
        f.create_dataset("theta", data=np.zeros((2, 3)))
    with pytest.raises(EnsembleError, match=r"dataset 'theta' has shape \(2, 3\).*P=2 inferred.*implies \(2, 2\)"):
        open_ensemble(out)


def test_format_version_messages(tmp_path: Path, small: tuple) -> None:
    out = tmp_path / "ver.h5"
    generate_ensemble(*small, 1, 0, out, progress=False)
    with h5py.File(out, "a") as f:
        f.attrs["format_version"] = 3
    with pytest.raises(EnsembleError) as info:
        open_ensemble(out)
    msg = str(info.value)
    assert "tdglnre tdglnre" not in msg
    assert re.search(r"ver\.h5: written with format_version=3 \(by tdglnre [0-9.]+\); this tdglnre", msg), msg
    with h5py.File(out, "a") as f:
        f.attrs["format_version"] = "one"
    with pytest.raises(EnsembleError, match=r"ver\.h5: format_version='one' is not an integer"):
        open_ensemble(out)
    r = CliRunner().invoke(cli, ["inspect", str(out)])
    assert r.exit_code == 1 and str(out) in r.output and "format_version='one'" in r.output


# -------------------------------------------------------------------- docs
#: Root attributes the writer adds only on request (a preset's declared instrument).
OPTIONAL_ROOT_ATTRS = {"measurement": "noise(0.05)"}


def _written_root_attrs(tmp_path: Path, small: tuple, extra: dict | None = None) -> set[str]:
    out = tmp_path / ("attrs-extra.h5" if extra else "attrs.h5")
    EnsembleWriter.create(out, *small, seed=0, n_samples=1, extra_attrs=extra).close()
    with h5py.File(out, "r") as f:
        return set(f.attrs)


def test_documented_root_attributes_are_the_written_ones(tmp_path: Path, small: tuple) -> None:
    """ensemble.py's docstring and docs/file-format.md list exactly the root attributes the writer writes:
    the ones every file has, plus the optional ones, which the table marks as optional."""
    always = _written_root_attrs(tmp_path, small)
    written = _written_root_attrs(tmp_path, small, OPTIONAL_ROOT_ATTRS)
    assert written - always == set(OPTIONAL_ROOT_ATTRS)
    screened = load_preset("type15-quick", ["N=8", "L=3", "snapshot_times=0.01"])
    (tmp_path / "screened").mkdir()
    screened_only = _written_root_attrs(tmp_path / "screened", screened) - always
    assert screened_only == {"a_noise"}  # the Langevin kick of a (docs/physics.md)
    written |= screened_only
    doc = ensemble_module.__doc__
    block = doc[doc.index("attrs:"):doc.index("/theta")]
    block = re.sub(r"\(.*?\)", "", block, flags=re.S)  # drop remarks in parentheses
    listed = set(re.findall(r"\b([a-z_]+)\b(?==|,|\s*$)", block, flags=re.M)) - {"attrs"}
    assert listed == written, f"docstring lists {sorted(listed)}, writer writes {sorted(written)}"
    text = (REPO / "docs" / "file-format.md").read_text(encoding="utf-8")
    table = text[text.index("Root attributes"):text.index("Datasets:")]
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", table, flags=re.M))
    assert documented == written
    optional = set(re.findall(r"^\| `([a-z_]+)` \| [^|]+ \| optional", table, flags=re.M))
    assert optional == written - always


def test_file_format_doc_describes_force_and_resume_of_partial_files() -> None:
    text = (REPO / "docs" / "file-format.md").read_text(encoding="utf-8")
    assert ".partial" in text and "DESIGN.md" not in text
    help_text = CliRunner().invoke(cli, ["generate", "--help"]).output
    assert "FILE.h5.partial" in " ".join(help_text.split())


def test_inspect_points_to_an_interrupted_forced_run(good: Path, small: tuple) -> None:
    EnsembleWriter.create(partial_path(good), *small, seed=1, n_samples=4).close()
    r = CliRunner().invoke(cli, ["inspect", str(good)])
    assert r.exit_code == 0, r.output
    assert "4 / 4 complete" in r.output and f"{good}.partial holds an interrupted" in r.output
    r = CliRunner().invoke(cli, ["inspect", str(good), "--json"])
    assert r.exit_code == 0 and f'"partial": "{good}.partial"' in r.output
    from tdglnre.cli import inspect as cli_inspect
    from tdglnre.io import generate as gen

    assert cli_inspect.PARTIAL_SUFFIX == gen.PARTIAL_SUFFIX


def test_results_doc_explains_eta_by_growth_not_bulk_density() -> None:
    """At t = 2 the quench is still growing: ⟨ρ1⟩ is far below 1 + η and rises steeply with η (issue 9, item 5)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("growth_table", REPO / "scripts" / "growth_table.py")
    assert spec is not None and spec.loader is not None
    growth = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(growth)
    rows = growth.measure("quick", seeds=1)["rows"]
    at2 = [r["t=2"]["rho1_ratio_mean"] for r in rows]
    at5 = [r["t=5"]["rho1_ratio_mean"] for r in rows]
    rates = [r["rate_mean"] for r in rows]
    assert max(at2) < 0.5, at2  # nowhere near the bulk value 1 + η at t = 2
    assert all(a < b for a, b in zip(at2, at2[1:])) and at2[-1] > 10 * at2[0]
    assert all(a < b for a, b in zip(rates, rates[1:]))  # η is read off the growth rate
    assert all(a < b for a, b in zip(at2, at5))
    text = (REPO / "docs" / "results.md").read_text(encoding="utf-8")
    assert "|ψ|² → 1 + η in the bulk" not in text and "scripts/growth_table.py" in text
