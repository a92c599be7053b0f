"""Checks shared by the demo tests (test_workflows, test_drag_demo, test_type15_demo); not a test module."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest


def assert_demo_applies_its_temperature(out: Path, n_posteriors: int) -> float:
    """The demo in ``out`` fitted a posterior temperature τ (model/metadata.json ``tempering``), and
    calibration.json and each of its ``n_posteriors`` posterior_i/posterior.json apply it; returns τ."""
    tau = json.loads((out / "model" / "metadata.json").read_text())["tempering"]["temperature"]
    assert np.isfinite(tau) and tau > 0
    assert json.loads((out / "calibration" / "calibration.json").read_text())["temperature"] == pytest.approx(tau)
    dirs = sorted(out.glob("posterior_*"))
    assert len(dirs) == n_posteriors
    for d in dirs:
        assert json.loads((d / "posterior.json").read_text())["temperature"] == pytest.approx(tau)
    return tau
