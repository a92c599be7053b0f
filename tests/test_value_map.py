"""Images in detector units (issue 21): --value-range maps an integer file's full range, --value-scale x -> a*x + b."""


import numpy as np
import pytest
from click.testing import CliRunner

from tdglnre.errors import ConfigError
from tdglnre.instrument.images import load_image, physical_values, value_map


def test_value_range_maps_the_full_integer_range_linearly():
    for dtype, top in ((np.uint8, 255), (np.uint16, 65535)):
        a = np.array([[0, top // 2, top]], dtype=dtype)
        x = physical_values(a, "img", value_map(value_range=(-1.0, 3.0)))
        np.testing.assert_allclose(x, [[-1.0, -1.0 + 4.0 * (top // 2) / top, 3.0]], rtol=0, atol=1e-15)
    a = np.array([[-32768, 32767]], dtype=np.int16)  # a signed file: its own full range
    np.testing.assert_allclose(physical_values(a, "img", value_map(value_range=(0, 1))), [[0.0, 1.0]])


def test_value_scale_is_affine():
    a = np.array([[1.5, -2.0]], dtype=np.float32)
    np.testing.assert_allclose(physical_values(a, "img", value_map(value_scale=(2.0, 0.5))), [[3.5, -3.5]])


@pytest.mark.parametrize("kwargs,match", [
    ({"value_range": (1, 1)}, "lo != hi"),
    ({"value_range": (0, float("nan"))}, "value_range"),
    ({"value_range": (0, 1, 2)}, "two numbers"),
    ({"value_range": "0,1"}, "two numbers"),
    ({"value_scale": (0, 1)}, "a != 0"),
    ({"value_scale": (1, float("inf"))}, "value_scale"),
    ({"value_range": (0, 1), "value_scale": (1, 0)}, "not both"),
])
def test_bad_mappings_are_refused(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        value_map(**kwargs)


def test_integer_images_need_a_mapping_and_float_images_refuse_a_range(tmp_path):
    from PIL import Image

    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).save(tmp_path / "c.png")
    with pytest.raises(ConfigError, match="8-bit integer counts.*`value_range`.*`value_scale`"):
        load_image(tmp_path / "c.png")
    np.testing.assert_allclose(load_image(tmp_path / "c.png", value_map(value_range=(0, 255)))[..., 0],
                               np.arange(64).reshape(8, 8))
    np.save(tmp_path / "f.npy", np.ones((8, 8)))
    with pytest.raises(ConfigError, match="`value_scale`"):
        load_image(tmp_path / "f.npy", value_map(value_range=(0, 1)))


def test_cli_names_the_flags_in_one_line(tmp_path):
    from PIL import Image

    from tdglnre.cli.main import cli

    Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16)).save(tmp_path / "c.png")
    r = CliRunner().invoke(cli, ["posterior", "--model", str(tmp_path / "nomodel"), "--observation",
                                 str(tmp_path / "c.png"), "--value-range", "1,1", "--out", str(tmp_path / "o")])
    assert r.exit_code == 1 and r.output.strip().splitlines()[-1] == "Error: --value-range needs lo != hi, got 1,1"
    r = CliRunner().invoke(cli, ["posterior", "--model", str(tmp_path / "m"), "--observation",
                                 str(tmp_path / "c.png"), "--value-range", "0,x", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "two comma-separated numbers" in r.output
