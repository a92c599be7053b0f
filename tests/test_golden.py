"""Golden test: a refactor must not change a single output bit (issue 18).

scripts/golden.py runs generate → train (2 epochs) → posterior → calibration
through the command line and digests the outputs; tests/data/golden.json
holds the digests written from the commit before the restructure. θ, x and ψ
must be byte-identical (numba's kernels are IEEE-exact without fastmath, so
this holds on any x86-64 CPU), and so must every number of posterior.json,
calibration.json and the posterior grid where TensorFlow's version and the CPU
match the recording (oneDNN picks kernels by CPU).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _golden_module():
    spec = importlib.util.spec_from_file_location("tdglnre_golden", ROOT / "scripts" / "golden.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    mod = _golden_module()
    expected = json.loads(mod.GOLDEN.read_text())
    return mod.compute(tmp_path_factory.mktemp("golden")), expected


def test_simulations_are_byte_identical(outputs):
    got, expected = outputs
    assert set(got["simulations"]) == set(expected["simulations"])
    for name, digests in expected["simulations"].items():
        assert set(digests) >= {"theta", "x", "psi"}, name
        assert got["simulations"][name] == digests, f"ensemble {name!r} changed"


def test_network_outputs_are_identical(outputs):
    got, expected = outputs
    env, rec = got["environment"], expected["environment"]
    if (env["tensorflow"], env["cpu"], env["machine"]) != (rec["tensorflow"], rec["cpu"], rec["machine"]):
        pytest.skip(f"golden network digests were recorded with TensorFlow {rec['tensorflow']} on {rec['cpu']!r}; "
                    f"this is {env['tensorflow']} on {env['cpu']!r} (regenerate from a known-good commit)")
    for part, numbers in expected["network"].items():
        assert len(numbers) > 0
        mismatched = {k: (v, got["network"][part].get(k)) for k, v in numbers.items()
                      if got["network"][part].get(k) != v}
        assert not mismatched, f"{part}: {len(mismatched)} numbers changed, e.g. {list(mismatched.items())[:3]}"
