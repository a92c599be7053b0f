"""Issue 18: the Python API checks its arguments at the entry and image observations fail with one line.

Every wrong-type or wrong-value call raises a TDGLError subclass naming the argument (no builtin, NumPy,
pathlib or TensorFlow exception from deep in the stack, no silent truncation); image files that are
empty, foreign, complex, too large or mislabelled are refused with one line. No TensorFlow here: the
model is a RatioEstimator shell holding only metadata (inference is never reached).
"""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

import tdglnre as tg
import tdglnre.workflows.posterior as P
from tdglnre.errors import ConfigError, TDGLError


def _fake_model(L: float = 8.0, N: int = 16, channels=("rho1",)):
    """A RatioEstimator with metadata only (no Keras model): enough for every check before inference."""
    from tdglnre.nre.infer.model_io import RatioEstimator

    m = object.__new__(RatioEstimator)
    m.metadata = {"input": {"snapshot_indices": [0], "snapshot_times": [0.2], "channels": list(channels),
                            "shape": [N, N, len(channels)]},
                  "L": L, "parameter_names": ["eta", "n_v"],
                  "bounds": {"eta": {"kind": "uniform", "low": 0.0, "high": 1.5},
                             "n_v": {"kind": "int_uniform", "low": 1, "high": 3}},
                  "dataset": {"config": None, "path": None}}
    m.input_shape = (N, N, len(channels))
    m.model_dir = None
    return m


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert isinstance(exc.value, TDGLError) and "\n" not in msg, msg
    return msg


@pytest.fixture
def model():
    return _fake_model()


# ----------------------------------------------------------------------------- wrong types at the entry
def _calls(model):
    arr = np.ones((16, 16, 1))
    return [
        (lambda: tg.posterior(model, "file.npy"), "`observation`", "observation_from_file"),
        (lambda: tg.posterior(model, arr, grid_points="abc"), "`grid_points`", "'abc'"),
        (lambda: tg.posterior(model, arr, grid_points=float("nan")), "`grid_points`", "nan"),
        (lambda: tg.posterior(model, arr, grid_points=16.7), "`grid_points`", "16.7"),
        (lambda: tg.posterior(model, arr, ood="yes"), "`ood`", "True or False"),
        (lambda: tg.posterior(model, arr, truth=[0.8]), "`truth`", "dict"),
        (lambda: tg.posterior(model, arr, measurement=3), "`measurement`", "int"),
        (lambda: tg.posterior(model, arr, drag_classifier=3), "`drag_classifier`", "path"),
        (lambda: tg.posterior(model, [[1.0]]), "`observation`", "list"),
        (lambda: tg.posterior(model, arr.astype(complex)), "`observation`", "real"),
        (lambda: tg.posterior(42, arr), "`model`", "int"),
        (lambda: tg.calibrate(model, np.ones((3, 16, 16, 1))), "`test_set`", "array"),
        (lambda: tg.calibrate(model, "t.h5", max_samples=2.5), "`max_samples`", "2.5"),
        (lambda: tg.calibrate(model, "t.h5", max_samples=0), "`max_samples`", ">= 1"),
        (lambda: tg.calibrate(model, "t.h5", grid_points=2.0), "`grid_points`", "2.0"),
        (lambda: tg.calibrate(model, "t.h5", seed=-1), "`seed`", ">= 0"),
        (lambda: tg.calibrate(model, "t.h5", n_draws="9"), "`n_draws`", "'9'"),
        (lambda: tg.calibrate(model, "t.h5", half_window=0), "`half_window`", "> 0"),
        (lambda: tg.calibrate(model, "t.h5", reference=7), "`reference`", "path"),
        (lambda: tg.load_model(3), "`model_dir`", "path"),
        (lambda: tg.load_model(np.ones(3)), "`model_dir`", "ndarray"),
        (lambda: tg.observation_from_ensemble("d.h5", 2.5), "`index`", "2.5"),
        (lambda: tg.observation_from_ensemble(3, 0), "`path`", "path"),
        (lambda: tg.observation_from_file(3, model=model), "`path`", "path"),
        (lambda: tg.observation_from_file("x.png", model=model, pixel_size="big"), "`pixel_size`", "'big'"),
        (lambda: tg.observation_from_file("x.png", model=model, channels=3), "`channels`", "3"),
        (lambda: tg.simulate_observation(model, eta="abc", n_v=2), "eta", "'abc'"),
        (lambda: tg.simulate_observation(model, seed="1", eta=0.5, n_v=2), "seed", "'1'"),
        (lambda: tg.structure(data=3), "`data`", "path"),
        (lambda: tg.structure(data="d.h5", max_samples=2.5), "`max_samples`", "2.5"),
        (lambda: tg.structure(data="d.h5", index="0"), "`index`", "'0'"),
        (lambda: tg.structure(preset="quick", seed="abc"), "`seed`", "'abc'"),
        (lambda: tg.structure(preset="quick", seed=1, nu_bins="a"), "`nu_bins`", "'a'"),
        (lambda: tg.structure(preset="quick", seed=1, overrides="N=8"), "`overrides`", "N=8"),
        (lambda: tg.hessian(tg.FromEnsemble(3, 0)), "path", "3"),
        (lambda: tg.hessian(tg.FromPreset(3)), "name", "3"),
        (lambda: tg.hessian(tg.FromParams(L="a")), "L must be a number", "'a'"),
        (lambda: tg.hessian(tg.FromParams(N=6, L=4.0), progress=3), "progress", "function"),
        (lambda: tg.hessian(tg.FromParams(N=6, L=4.0), options={"n_eig": 3}), "options", "HessianOptions"),
        (lambda: tg.posterior(model, arr, ood=np.ones(2)), "`ood`", "True or False"),
        (lambda: tg.structure(data="d.h5", all=np.ones(2)), "`all`", "True or False"),
        (lambda: P.image_to_input(model, "img.png"), "`img`", "load_image"),
        (lambda: tg.run_demo(3), "`out_dir`", "path"),
        (lambda: tg.run_demo("d", n_train=2.5), "`n_train`", "2.5"),
        (lambda: tg.run_demo("d", overrides="N=8"), "`overrides`", "N=8"),
        (lambda: tg.run_demo("d", preset=3), "`preset`", "3"),
    ]


@pytest.mark.parametrize("k", range(len(_calls(_fake_model()))))
def test_wrong_arguments_raise_one_tdgl_error_naming_the_argument(model, k):
    call, name, detail = _calls(model)[k]
    with pytest.raises(TDGLError) as exc:
        call()
    msg = _one_line(exc)
    assert name in msg and detail in msg, msg


def test_an_absurd_grid_is_refused_at_once_with_the_largest_allowed(model):
    from tdglnre.nre.infer.posterior import MAX_GRID_SIZE

    with pytest.raises(ConfigError) as exc:
        tg.posterior(model, np.ones((16, 16, 1)), grid_points=1_000_000_000)
    msg = _one_line(exc)
    most = MAX_GRID_SIZE // 3  # eta continuous, n_v in 1..3
    assert "`grid_points` 1000000000" in msg and f"`grid_points` <= {most}" in msg
    with pytest.raises(ConfigError):  # the suggested bound is the largest allowed
        tg.posterior(model, np.ones((16, 16, 1)), grid_points=most + 1, ood=False)


def test_the_cli_names_the_grid_flag(tmp_path, monkeypatch):
    from tdglnre.cli.main import cli

    monkeypatch.setattr(P, "load_model", lambda _: _fake_model())
    np.save(tmp_path / "x.npy", np.ones((16, 16, 1)))
    r = CliRunner().invoke(cli, ["posterior", "--model", str(tmp_path / "m"), "--observation",
                                 str(tmp_path / "x.npy"), "--grid", "1000000000", "--out", str(tmp_path / "o")])
    assert r.exit_code == 1 and r.output.startswith("Error: --grid 1000000000 gives a grid"), r.output
    assert len(r.output.strip().splitlines()) == 1 and not (tmp_path / "o").exists()


# ----------------------------------------------------------------------------- image observations
def test_empty_complex_and_duplicate_channel_images_are_refused(model):
    with pytest.raises(ConfigError) as exc:
        P.image_to_input(model, np.zeros((0, 0)))
    assert "`img`" in _one_line(exc) and "(0, 0, 1)" in str(exc.value)
    with pytest.raises(ConfigError) as exc:
        P.image_to_input(model, np.ones((16, 16, 1)) * (1 + 1j))
    assert "complex" in _one_line(exc)
    with pytest.raises(ConfigError) as exc:
        P.image_to_input(model, np.ones((16, 16, 2)), channels="rho1,rho1")
    assert "`channels` names rho1 more than once" in _one_line(exc)
    with pytest.raises(ConfigError):
        P.image_to_input(model, np.ones((16, 16, 2)), channels=["rho1", "rho1"])


def test_a_pixel_larger_than_the_field_of_view_is_named_as_such(model):
    with pytest.raises(ConfigError) as exc:
        P.image_to_input(model, np.ones((16, 16, 1)), pixel_size=1000)
    msg = _one_line(exc)
    assert "`pixel_size` 1000" in msg and "larger than the model's whole field of view 8 x 8" in msg
    assert "less than" not in msg and "16000" not in msg
    # an image too small for the field of view keeps its message (docs/observations.md)
    with pytest.raises(ConfigError) as exc:
        P.image_to_input(model, np.ones((16, 16, 1)), pixel_size=0.4)
    assert _one_line(exc).endswith("(`pixel_size` 0.4), less than the model's field of view 8 x 8")


@pytest.mark.parametrize("name,content,expect", [
    ("empty.npy", b"", "is empty (0 bytes)"),
    ("empty.npz", b"", "is empty (0 bytes)"),
    ("text.npy", b"0.1 0.2\n0.3 0.4\n", "is not a NumPy .npy file"),
    ("text.npz", b"hello", "is not a NumPy .npz archive"),
])
def test_empty_and_foreign_numpy_files_are_refused_without_pickle_advice(tmp_path, model, name, content, expect):
    path = tmp_path / name
    path.write_bytes(content)
    for call in (lambda: P.load_image(path), lambda: P.observation_from_file(path, model=model, channels="rho1")):
        with pytest.raises(ConfigError) as exc:
            call()
        msg = _one_line(exc)
        assert expect in msg and "pickle" not in msg.lower(), msg
    if name.endswith(".npy"):
        with pytest.raises(ConfigError) as exc:
            P.load_observation(path)
        assert expect in _one_line(exc)


def test_empty_npy_gives_one_error_line_on_the_command_line_not_aborted(tmp_path, monkeypatch):
    from tdglnre.cli.main import cli

    monkeypatch.setattr(P, "load_model", lambda _: _fake_model())
    (tmp_path / "e.npy").write_bytes(b"")
    for extra in ([], ["--channels", "rho1"]):
        r = CliRunner().invoke(cli, ["posterior", "--model", str(tmp_path / "m"), "--observation",
                                     str(tmp_path / "e.npy"), *extra, "--out", str(tmp_path / "o")])
        assert r.exit_code == 1 and "Aborted" not in r.output, r.output
        assert r.output.startswith("Error: --observation") and "is empty (0 bytes)" in r.output


def test_duplicate_channel_flags_are_refused_by_the_cli(tmp_path):
    from tdglnre.cli.main import cli

    r = CliRunner().invoke(cli, ["posterior", "--model", str(tmp_path), "--observation", "x.png",
                                 "--channels", "rho1,rho1", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "rho1 given more than once" in r.output


def test_complex_and_object_arrays_are_refused(tmp_path, model):
    np.save(tmp_path / "c.npy", np.ones((16, 16)) * (1 + 2j))
    np.savez(tmp_path / "c.npz", x=np.ones((16, 16), np.complex64))
    for name in ("c.npy", "c.npz"):
        with pytest.raises(ConfigError) as exc:
            P.observation_from_file(tmp_path / name, model=model, channels="rho1")
        assert "complex" in _one_line(exc)
    with pytest.raises(ConfigError) as exc:
        P.load_observation(tmp_path / "c.npy")
    assert "complex" in _one_line(exc)
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ConfigError) as exc:
        P.load_image(tmp_path / "o.npy")
    assert "Python objects" in _one_line(exc) and "allow_pickle" not in str(exc.value)


def test_an_empty_array_file_is_refused(tmp_path, model):
    np.save(tmp_path / "z.npy", np.ones((0, 0)))
    with pytest.raises(ConfigError) as exc:
        P.observation_from_file(tmp_path / "z.npy", model=model, channels="rho1")
    assert "is empty: shape (0, 0, 1)" in _one_line(exc)


def test_an_image_over_pillows_decompression_bomb_limit_is_refused(tmp_path, monkeypatch):
    from PIL import Image

    Image.fromarray(np.zeros((40, 40), np.uint8)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 1600 pixels > 2 x the limit: Pillow raises
    with pytest.raises(ConfigError) as exc:
        P.load_image(tmp_path / "big.png")
    assert "too large to read safely" in _one_line(exc)


def test_a_2d_hdf5_image_with_channels_is_read_as_documented(tmp_path, model):
    import h5py

    img = np.arange(256, dtype=np.float64).reshape(16, 16)
    with h5py.File(tmp_path / "img.h5", "w") as f:
        f["scan"] = img
    obs = P.observation_from_file(tmp_path / "img.h5", model=model, channels="rho1")
    assert obs.as_input and obs.x.shape == (16, 16, 1) and np.array_equal(obs.x[..., 0], img.astype(np.float32))
    assert obs.source["channels"] == ["rho1"] and obs.source["resampling"] == "none"
    # a 3-D dataset is still (H, W, C); two candidate datasets are refused
    with h5py.File(tmp_path / "two.h5", "w") as f:
        f["a"], f["b"] = img, img
    with pytest.raises(ConfigError) as exc:
        P.observation_from_file(tmp_path / "two.h5", model=model, channels="rho1")
    assert "expected exactly one 2-D or 3-D dataset" in _one_line(exc)
