"""Packaging, console script and CLI-skeleton tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import tdglnre
from tdglnre.cli.main import LibraryError, cli, run_library_call

REPO = Path(__file__).resolve().parents[1]


def _clean_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    return env


def _readme_test_command() -> str:
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    start = lines.index("## Run the tests")
    fence = next(i for i in range(start, len(lines)) if lines[i].startswith("```"))
    command = lines[fence + 1].strip()
    assert lines[fence + 2].startswith("```"), "the test command must be a single line"
    return command


def test_help_lists_commands() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0, result.output
    assert "--version" in result.output
    assert "--verbose" in result.output
    assert "bench" in result.output


def test_version_matches_package() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"tdglnre {tdglnre.__version__}"


def test_console_script_installed() -> None:
    script = Path(sys.executable).parent / "tdglnre"
    assert script.exists(), f"console script missing next to {sys.executable}"
    out = subprocess.run(
        [str(script), "--version"], capture_output=True, text=True, env=_clean_env(),
        check=True,
    )
    assert out.stdout.strip() == f"tdglnre {tdglnre.__version__}"


def test_no_top_level_cli_module(tmp_path: Path) -> None:
    """cli/ is installed as tdglnre.cli only, never as a top-level ``cli``."""
    code = (
        "import importlib.util, json; "
        "print(json.dumps([importlib.util.find_spec('cli') is None, "
        "importlib.util.find_spec('tdglnre.cli') is not None]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
        env=_clean_env(), check=True,
    )
    no_top_level, has_sub = json.loads(out.stdout)
    assert no_top_level, "a top-level module 'cli' is importable outside the repo"
    assert has_sub


def test_setup_cfg_lists_every_package() -> None:
    """A non-editable install ships only the packages setup.cfg names: every folder with an
    ``__init__.py`` under tdglnre/ and cli/ must be listed (tdglnre.physics.cuda once was not)."""
    import configparser

    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    listed = {line.strip() for line in cfg["options"]["packages"].splitlines() if line.strip()}
    found = {"tdglnre.cli", "tdglnre.data"}
    for init in (REPO / "tdglnre").rglob("__init__.py"):
        found.add(".".join(init.parent.relative_to(REPO).parts))
    for init in (REPO / "cli").rglob("__init__.py"):
        found.add(".".join(("tdglnre", *init.parent.relative_to(REPO).parts)))
    assert found == listed, f"missing from setup.cfg: {sorted(found - listed)}; stale: {sorted(listed - found)}"


def test_presets_shipped_as_package_data() -> None:
    from importlib.resources import files

    presets = sorted(p.name for p in (REPO / "data" / "presets").glob("*.toml"))
    installed = files("tdglnre.data") / "presets"
    for name in presets:
        assert (installed / name).is_file(), f"preset {name} not installed"


def test_readme_test_command_is_what_ci_runs() -> None:
    command = _readme_test_command()
    assert "pytest" in command
    ci_script = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert command in ci_script
    assert os.access(REPO / ".ci" / "run", os.X_OK)


# --- error handling ---------------------------------------------------------

def _make_group(exc: BaseException) -> click.Group:
    @click.group()
    @click.option("-v", "--verbose", count=True)
    def group(verbose: int) -> None:
        pass

    def failing() -> None:
        raise exc

    @group.command("boom")
    def boom() -> None:
        run_library_call(failing)

    return group


@pytest.mark.parametrize(
    "exc",
    [ValueError("bad value\n  on two lines"), FileNotFoundError("no such file"),
     tdglnre.TDGLError("solver diverged")],
)
def test_library_errors_are_one_line(exc: BaseException) -> None:
    result = CliRunner().invoke(_make_group(exc), ["boom"])
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ")
    assert "Traceback" not in result.output


def test_verbose_shows_traceback() -> None:
    result = CliRunner().invoke(_make_group(ValueError("bad value")), ["-v", "boom"])
    assert result.exit_code == 1
    assert "Traceback" in result.output
    assert result.output.strip().splitlines()[-1] == "Error: bad value"


def test_other_exceptions_propagate() -> None:
    def buggy() -> None:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        run_library_call(buggy, verbose=0)
    with pytest.raises(LibraryError):
        run_library_call(int, "x", verbose=0)


def test_library_call_names_flags_instead_of_arguments() -> None:
    def failing(**kwargs: object) -> None:
        raise tdglnre.ConfigError("`out_dir` exists; pass `force` or pick `n_samples` >= 1")

    with pytest.raises(LibraryError) as err:
        run_library_call(failing, verbose=0, flags={"out_dir": "--out"})
    assert err.value.message == "--out exists; pass --force or pick --n-samples >= 1"
    with pytest.raises(LibraryError) as err:  # a message without backticks is left alone
        run_library_call(int, "x", verbose=0, flags={"x": "--x"})
    assert err.value.message == "invalid literal for int() with base 10: 'x'"


def test_commands_import_the_call_path_not_the_group() -> None:
    """cli/main.py imports every command; a command importing main back would be an import cycle."""
    import tdglnre.cli._flags as flags
    import tdglnre.cli.main as main

    assert main.run_library_call is flags.run_library_call and main.LibraryError is flags.LibraryError
    assert not hasattr(main, "handle_library_errors")
    for path in sorted(set((REPO / "cli").glob("*.py")) - {REPO / "cli" / "__init__.py"}):
        assert "from .main import" not in path.read_text(encoding="utf-8"), path.name


# --- bench ------------------------------------------------------------------

def _fake_result(sizes: tuple[int, ...], batch: int, steps: int, threads: int | None) -> dict:
    per_size = [
        {
            "N": n, "batch": batch, "steps": steps, "threads": threads or 1,
            "numba_float64_msites": 100.0, "numba_float32_msites": 150.0,
            "numpy_msites": 2.0, "speedup_float64": 50.0,
        }
        for n in sizes
    ]
    return {**per_size[0], "per_size": per_size}


@pytest.fixture
def fake_bench(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    calls: list[dict] = []

    def run_benchmark(sizes, batch, steps, numpy_steps, threads, repeats):
        calls.append(dict(sizes=sizes, batch=batch, steps=steps,
                          numpy_steps=numpy_steps, threads=threads, repeats=repeats))
        return _fake_result(sizes, batch, steps, threads)

    module = types.ModuleType("tdglnre.physics.bench")
    module.run_benchmark = run_benchmark  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tdglnre.physics.bench", module)
    return calls


def test_bench_json_dispatches_parsed_options(fake_bench: list[dict]) -> None:
    result = CliRunner().invoke(
        cli, ["bench", "--json", "--sizes", "16,32", "--batch", "2", "--steps", "5",
              "--numpy-steps", "3", "--threads", "2", "--repeats", "4"],
    )
    assert result.exit_code == 0, result.output
    assert fake_bench == [dict(sizes=(16, 32), batch=2, steps=5, numpy_steps=3, threads=2, repeats=4)]
    data = json.loads(result.output)
    assert data["N"] == 16 and [r["N"] for r in data["per_size"]] == [16, 32]


def test_bench_table(fake_bench: list[dict]) -> None:
    result = CliRunner().invoke(cli, ["bench", "--sizes", "16"])
    assert result.exit_code == 0, result.output
    assert fake_bench[0]["sizes"] == (16,) and fake_bench[0]["threads"] is None and fake_bench[0]["repeats"] == 2
    assert "Msites/s" in result.output and "50.0" in result.output


@pytest.mark.parametrize("sizes", ["", "a,b", "1", "16,-4"])
def test_bench_rejects_bad_sizes(fake_bench: list[dict], sizes: str) -> None:
    result = CliRunner().invoke(cli, ["bench", "--sizes", sizes])
    assert result.exit_code == 2
    assert fake_bench == []


@pytest.mark.parametrize("repeats", ["0", "-1", "x"])
def test_bench_rejects_bad_repeats(fake_bench: list[dict], repeats: str) -> None:
    result = CliRunner().invoke(cli, ["bench", "--sizes", "16", "--repeats", repeats])
    assert result.exit_code == 2 and "--repeats" in result.output
    assert fake_bench == []


def test_bench_real_smoke() -> None:
    """The real benchmark runs end to end on a tiny lattice and reports sane keys."""
    pytest.importorskip("tdglnre.physics.bench")
    result = CliRunner().invoke(
        cli, ["bench", "--json", "--sizes", "8", "--batch", "2", "--steps", "3",
              "--numpy-steps", "2", "--threads", "1", "--repeats", "3"],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    for key in ("numba_float64_msites", "numba_float32_msites", "numpy_msites",
                "speedup_float64", "N", "batch", "steps", "threads", "repeats", "per_size"):
        assert key in data
    assert data["N"] == 8 and data["batch"] == 2 and data["steps"] == 3 and data["repeats"] == 3
    assert data["numba_float64_msites"] > 0 and data["numpy_msites"] > 0


def test_cli_reference_in_docs_matches_the_code() -> None:
    """docs/cli.md's generated section is rebuilt from the click commands; stale docs fail."""
    out = subprocess.run([sys.executable, str(REPO / "scripts" / "gen_cli_docs.py"), "--check"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    text = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    for name in cli.commands:
        assert f"### `tdglnre {name}`" in text


def _gen_cli_docs_module() -> types.ModuleType:
    import importlib.util

    spec = importlib.util.spec_from_file_location("gen_cli_docs", REPO / "scripts" / "gen_cli_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_shows_real_defaults_not_click_sentinels() -> None:
    """click >= 8.2's ``Sentinel.UNSET`` must not leak into docs/cli.md; real defaults must show."""
    gen = _gen_cli_docs_module()
    rendered = gen.render()
    doc = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    for text in (rendered, doc):
        assert "Sentinel" not in text and "UNSET" not in text
    rows = {line.split(" | ")[0] for line in rendered.splitlines() if line.startswith("| `")}
    assert rows, "no option rows rendered"
    root = click.Context(cli, info_name="tdglnre")
    checked = 0
    for name, cmd in cli.commands.items():
        ctx = click.Context(cmd, info_name=name, parent=root)
        for p in cmd.params:
            if not isinstance(p, click.Option):
                continue
            shown = gen.default_text(p, ctx)
            if p.required:
                assert shown == "*required*", (name, p.name, shown)
                checked += 1
            elif not p.is_flag and isinstance(p.default, (int, float, str)) and not isinstance(p.default, bool):
                assert shown == f"`{p.default}`", (name, p.name, shown)  # e.g. a default of 0 is shown
                checked += 1
    assert checked >= 10


def test_cli_doc_states_the_enforced_minimum_bench_size(fake_bench: list[dict]) -> None:
    """docs/cli.md's hand-written bench table names the smallest size the command accepts."""
    import re

    doc = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    m = re.search(r"\| `--sizes` \| `64,128` \| comma-separated lattice sizes N \(N × N sites\), each ≥ (\d+)", doc)
    assert m, "bench --sizes row not found in docs/cli.md"
    smallest = int(m.group(1))
    assert CliRunner().invoke(cli, ["bench", "--sizes", str(smallest - 1)]).exit_code == 2
    r = CliRunner().invoke(cli, ["bench", "--sizes", str(smallest)])
    assert r.exit_code == 0, r.output
    assert fake_bench[-1]["sizes"] == (smallest,)
