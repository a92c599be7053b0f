"""Shared pytest fixtures for the tdglnre test suite."""

from __future__ import annotations

import random

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _seed_global_rngs() -> None:
    """Seed numpy's and Python's global RNGs so every test is reproducible."""
    np.random.seed(0)
    random.seed(0)
