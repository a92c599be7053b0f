"""The workflow layer and the top-level Python API (docs/api.md, docs/architecture.md).

* ``import tdglnre`` loads neither numba nor TensorFlow; names resolve on use.
* Workflows return results in memory and write only on ``.save``.
* The docs' example script runs end to end at tiny sizes.
* Library errors name arguments; the CLI shows flags.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tdglnre as tg
from demo_checks import assert_demo_applies_its_temperature
from tdglnre.errors import ConfigError, DivergenceError

ROOT = Path(__file__).resolve().parents[1]
TINY = ["N=8", "L=4", "snapshot_times=[0.1]", "prior.n_v=int_uniform(1,2)"]


def test_import_tdglnre_is_lazy():
    code = ("import sys, tdglnre; names = tdglnre.__all__; "
            "print(int('numba' in sys.modules), int('tensorflow' in sys.modules), len(names))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[:2] == ["0", "0"] and int(out[2]) > 20
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        tg.nonexistent  # noqa: B018


def test_generate_returns_a_result_and_plots(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    res = tg.generate("quick", 4, 3, tmp_path / "e.h5", overrides=TINY)
    assert isinstance(res, tg.GenerateResult)
    assert (res.n_samples, res.n_complete, res.n_new) == (4, 4, 4) and 0 <= res.write_fraction <= 1
    with res.open() as ens:
        x = ens.x(0, 4)
    # the same samples as a direct simulation with the same seed and the prior's draws
    config, prior = tg.load_preset("quick", TINY)
    with res.open() as ens:
        theta = dict(zip(ens.parameter_names, ens.theta(0, 4).T))
    sim = tg.simulate(config, {"eta": theta["eta"], "n_v": theta["n_v"]}, seed=3)
    np.testing.assert_array_equal(sim.channels(), x)
    figs = res.plot(n=2)
    assert len(figs) == 2 and all(hasattr(f, "savefig") for f in figs)
    paths = res.plot(tmp_path, n=2)
    assert [p.name for p in paths] == ["sample_0.png", "sample_1.png"] and all(p.stat().st_size > 0 for p in paths)


def test_generate_from_a_config_needs_the_prior(tmp_path):
    config, prior = tg.load_preset("quick", TINY)
    with pytest.raises(ConfigError, match="`prior` is required"):
        tg.generate(config, 2, 0, tmp_path / "a.h5")
    with pytest.raises(ConfigError, match="`prior` is taken from the preset"):
        tg.generate("quick", 2, 0, tmp_path / "a.h5", prior=prior)
    assert not (tmp_path / "a.h5").exists()


def test_generate_keeps_the_divergence_reason(tmp_path, monkeypatch):
    import tdglnre.io.generate as gen

    def simulate(config, params, *, seed, sample_indices, **kw):
        raise DivergenceError(int(sample_indices[0]), 120, {"eta": 0.5, "n_v": 1.0, "nu": 0.0},
                              "grid-scale checkerboard")

    monkeypatch.setattr(gen, "simulate", simulate)
    with pytest.raises(DivergenceError, match="checkerboard") as info:
        tg.generate("quick", 2, 0, tmp_path / "d.h5", overrides=TINY)
    assert info.value.reason == "grid-scale checkerboard"


def test_cli_maps_argument_names_to_flags():
    from tdglnre.cli._flags import LibraryError, run_library_call, to_flags

    assert to_flags("`out_dir` exists; pass `force`", {"out_dir": "--out"}) == "--out exists; pass --force"
    assert to_flags("`grid_points` must be >= 2") == "--grid-points must be >= 2"

    def lib():
        raise ConfigError("`out_dir` is not empty")

    with pytest.raises(LibraryError, match="^--out is not empty$"):
        run_library_call(lib, verbose=0, flags={"out_dir": "--out"})


# ----------------------------------------------------------------------------- the example script, end to end

pytest.importorskip("keras")


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory):
    import runpy

    out = tmp_path_factory.mktemp("quickstart")
    mod = runpy.run_path(str(ROOT / "docs" / "examples" / "quickstart.py"), run_name="quickstart")
    res = mod["main"](["--tiny", "--out", str(out)])
    return out, res


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_quickstart_example_runs_end_to_end(quickstart):
    out, res = quickstart
    post = res["posterior"]
    assert set(post["parameters"]) == {"eta", "n_v"}
    assert post["source"] == {"simulate": {"eta": 0.8, "n_v": 2, "nu": 0.0, "seed": 7}}
    for name in ("posterior.json", "posterior_grid.npz", "observation.npy", "observation.png", "marginals.png"):
        assert (out / "posterior" / name).stat().st_size > 0
    assert json.loads((out / "posterior" / "posterior.json").read_text()) == json.loads(json.dumps(post))
    cal = res["calibration"]
    assert cal["n_test"] == 24 and 0 <= cal["expected_coverage"]["max_abs_deviation"] <= 1
    assert (out / "calibration" / "calibration.json").exists() and (out / "calibration" / "coverage.png").exists()
    assert (out / "model" / "ood.json").exists()  # fitted by the train workflow
    # the Hessian of the relaxed state has the exact global-phase zero mode
    h = res["hessian"]
    assert abs(h["eigenvalues"][h["zero_mode_index"]]) < 1e-8 * h["lambda_max_est"]


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_posterior_is_in_memory_until_saved(quickstart, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    out, _ = quickstart
    model = tg.load_model(out / "model")
    obs = tg.observation_from_ensemble(out / "test.h5", 0, model)
    before = sorted(p.name for p in out.rglob("*"))
    post = tg.posterior(model, obs, grid_points=32)
    assert sorted(p.name for p in out.rglob("*")) == before  # nothing written
    assert isinstance(post, tg.PosteriorResult)
    m = post.posterior.mass.sum()
    assert m == pytest.approx(1.0, abs=1e-9)
    assert post.summary()["source"] == {"data": str(out / "test.h5"), "index": 0}
    assert post.report()[0].startswith("eta: mean")
    # remarks at the prior's edge go to warnings or to notes, never both (issue 20)
    assert isinstance(post.summary()["notes"], list) and not set(post.notes) & set(post.warnings)
    # a plain array in the ensemble layout gives the same posterior
    same = tg.posterior(model, obs.x, grid_points=32, truth=obs.truth)
    np.testing.assert_allclose(same.posterior.log_density, post.posterior.log_density, rtol=0, atol=1e-12)
    figs = post.plot()
    assert len(figs) == 3  # observation, marginals, joint
    target = tmp_path / "p"
    post.save(target)
    with pytest.raises(ConfigError, match="`out_dir` .* not empty; pass `force`"):
        post.save(target)
    post.save(target, force=True)
    assert json.loads((target / "posterior.json").read_text())["grid_points"] == 32


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_calibration_report_in_memory(quickstart, tmp_path):
    out, _ = quickstart
    rep = tg.calibrate(out / "model", out / "test.h5", grid_points=16, max_samples=8)
    assert isinstance(rep, tg.CalibrationReport) and rep.coverage_valid
    assert rep.report["n_test"] == 8 and rep.evaluation.truth.shape == (8, 2)
    # the reported MAE is the mean absolute error of the per-sample posterior means
    err = np.abs(rep.evaluation.mean[:, 0] - rep.evaluation.truth[:, 0]).mean()
    assert rep.report["mae"]["eta"]["mean"] == pytest.approx(err)
    assert not (tmp_path / "c").exists()
    rep.save(tmp_path / "c")
    assert {"calibration.json", "coverage.png", "sbc.png"} <= {p.name for p in (tmp_path / "c").iterdir()}


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_posterior_reports_p_drag_from_a_classifier(quickstart, tmp_path):
    """A model-comparison classifier found in the model directory (or given) adds P(nu > 0 | x) to the result."""
    from tdglnre.nre.infer.model_comparison import fit_model_classifier, p_drag, structure_features

    out, _ = quickstart
    with tg.open_ensemble(out / "test.h5") as ens:
        x = ens.x(0, 24)
        L = ens.config.L
    # two classes that differ in fluctuation strength, in the test set's own layout
    spec = {"kind": "log_structure", "L": L, "floor": None}
    clf = fit_model_classifier(structure_features(x, L), structure_features(2.0 * x, L), epochs=5, hidden=(8,),
                               seed=0, features=spec)
    clf.save(tmp_path / "mc")
    model = tg.load_model(out / "model")
    obs = tg.observation_from_ensemble(out / "test.h5", 1, model)
    post = tg.posterior(model, obs, grid_points=16, drag_classifier=tmp_path / "mc")
    expected = float(p_drag(tmp_path / "mc", obs.x)[0])
    assert 0.0 <= post.p_drag <= 1.0 and post.p_drag == pytest.approx(expected, rel=1e-6)
    assert post.summary()["p_drag"] == post.p_drag
    assert any(line.startswith("P(nu > 0 | x) =") for line in post.report())
    # without a classifier the field is null, not guessed
    assert tg.posterior(model, obs, grid_points=16).summary()["p_drag"] is None


def _eta_nv_posterior(nv_slope, eta_centre=0.7, eta_width=0.05, *, third=None):
    """η Gaussian, n_v ∝ exp(−slope·(n_v − 1)) on int_uniform(1, 8); optionally a third axis (name, kind, lo, hi, lp)."""
    from tdglnre.nre.infer.posterior import Grid, GridPosterior, make_axis

    axes = [make_axis("eta", "uniform", 0.0, 1.5, 64), make_axis("n_v", "int_uniform", 1, 8, 0)]
    if third is not None:
        axes.append(make_axis(third[0], third[1], third[2], third[3], 32))
    grid = Grid(tuple(axes))
    pts = grid.points()
    lp = -0.5 * ((pts[:, 0] - eta_centre) / eta_width) ** 2 - nv_slope * (pts[:, 1] - 1.0)
    if third is not None:
        lp = lp + third[4](pts[:, 2])
    return GridPosterior.from_log_values(grid, lp)


def test_a_confident_integer_answer_at_the_prior_edge_is_a_note_not_a_warning():
    """Issue 20: P(n_v = 1) = 0.98 with n_v ~ int_uniform(1, 8) is a normal answer."""
    from tdglnre.workflows.posterior import _edge_remarks, report_lines

    sure = _eta_nv_posterior(4.0)
    edges = sure.prior_edges()
    assert edges == {"eta": None, "n_v": "low"}  # the fact is still recorded in at_prior_edge
    warnings, notes = _edge_remarks(sure, edges)
    assert warnings == []
    (note,) = notes
    assert note.startswith("n_v: ") and "concentrated on n_v = 1" in note and "(P = 0.982)" in note
    lines = report_lines({"parameters": {}, "warnings": warnings, "notes": notes})
    assert lines == [f"note: {note}"] and not any("WARNING" in line for line in lines)


def test_what_the_edge_warning_is_for_still_warns():
    """A posterior cut off by the prior box, an integer leaning on its end value, a flat one: warnings."""
    from tdglnre.workflows.posterior import _edge_remarks

    leaning = _eta_nv_posterior(0.4)  # spread over n_v, largest at 1: no value singled out
    cut = _eta_nv_posterior(8.0, eta_centre=1.6, eta_width=0.2)  # η's likelihood peaks beyond the bound 1.5
    flat = _eta_nv_posterior(8.0, eta_centre=0.75, eta_width=1e6)
    for post, name, text in ((leaning, "n_v", "piles against the prior's lower bound 1"),
                             (cut, "eta", "piles against the prior's upper bound 1.5"),
                             (flat, "eta", "nearly flat over the whole prior range")):
        warnings, _ = _edge_remarks(post, post.prior_edges())
        (line,) = [w for w in warnings if w.startswith(f"{name}: ")]
        assert text in line


def test_a_posterior_at_a_physical_limit_is_a_note_and_elsewhere_a_warning():
    """T = 0 is the temperature's limit (PHYSICAL_LOWER_LIMITS): a posterior there is an answer. A prior whose
    lower bound lies above the limit cuts the posterior off: a warning."""
    from tdglnre.workflows.posterior import _edge_remarks

    for low, is_note in ((0.0, True), (0.002, False)):
        post = _eta_nv_posterior(8.0, third=("T", "uniform", low, 0.01, lambda t: -0.5 * (t / 0.002) ** 2))
        edges = post.prior_edges()
        assert edges["T"] == "low"
        warnings, notes = _edge_remarks(post, edges)
        assert any(w.startswith("T: ") for w in warnings) is not is_note
        assert any(n.startswith("T: ") and "physical limit" in n for n in notes) is is_note


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_quick_demo_runs_end_to_end_at_tiny_size(tmp_path):
    """The README's main job (tdglnre demo) on the quick pipeline, shrunk: every stage writes its artifacts."""
    lines: list[str] = []
    summary = tg.run_demo(tmp_path / "demo", n_train=160, n_test=20, epochs=1, n_examples=2, quiet=True,
                          overrides=TINY, echo=lines.append)
    out = tmp_path / "demo"
    assert json.loads((out / "demo_summary.json").read_text()) == json.loads(json.dumps(summary))
    assert set(summary["times"]) == {"generate", "train", "posterior", "calibration"}
    assert [e["index"] for e in summary["examples"]] == [0, 1]
    for i in (0, 1):
        assert (out / f"posterior_{i}" / "posterior.json").exists()
    assert (out / "model" / "ood.json").exists() and (out / "calibration" / "calibration.json").exists()
    assert 0 <= summary["coverage_max_abs_deviation"] <= 1 and set(summary["mae"]) == {"eta", "n_v"}
    # the demo tempers its model on the 16 validation simulations, and the calibration uses that temperature
    tau = assert_demo_applies_its_temperature(out, 2)
    assert json.loads((out / "calibration" / "calibration.json").read_text())["temperature"] == tau
    assert any(line.strip().startswith(f"posterior temperature {tau:.3f} on 16 validation") for line in lines)
    assert lines[0].startswith("[1/4] simulating 160 training + 20 test quenches")
    assert any(line.startswith("  wall time") for line in lines)
