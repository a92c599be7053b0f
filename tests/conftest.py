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


# --------------------------------------------------------------------------- CUDA backend (issue 11)
# numba picks the CUDA simulator or the real driver when numba.cuda is first
# imported, so the choice is made here, before any test module imports it.
# Without numba-cuda or an NVIDIA driver the simulator is switched on, so the
# default tier runs every CUDA kernel (slowly) on the CPU; with a GPU the same
# tests run on it and the `gpu`-marked ones are not skipped. A value already in
# the environment (NUMBA_ENABLE_CUDASIM=0 or 1) is left alone.
def _real_cuda_possible() -> bool:
    import ctypes.util
    import importlib.util
    import os

    if importlib.util.find_spec("numba_cuda") is None:
        return False
    return ctypes.util.find_library("cuda") is not None or os.path.exists("/dev/nvidiactl")


def _enable_cuda_simulator_without_gpu() -> None:
    import os
    import sys

    if "NUMBA_ENABLE_CUDASIM" in os.environ or _real_cuda_possible():
        return
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
    if "numba.core.config" in sys.modules and "numba.cuda" not in sys.modules:
        sys.modules["numba.core.config"].ENABLE_CUDASIM = 1


_enable_cuda_simulator_without_gpu()
