"""Backend selection for simulations: the numba CPU kernel or the CUDA kernels.

:func:`simulate` is what ``tdglnre.simulate`` exposes. It sits above both
:mod:`.solver` (CPU) and :mod:`.cuda`, which imports the solver for the shared
argument checks and initial states, so neither imports the other's dispatcher.
"""

from __future__ import annotations

from typing import Any

from .solver import SimulationResult
from .solver import simulate as simulate_cpu


def simulate(config: Any, params: Any = None, *, device: str = "cpu", **kwargs: Any) -> SimulationResult:
    """Simulate quenches on ``device``: ``"cpu"``, ``"cuda"`` or ``"auto"`` (CUDA when a GPU is usable).

    Other arguments are those of :func:`tdglnre.physics.solver.simulate`; on
    CUDA ``batch_size`` and ``threads`` do not apply
    (:func:`tdglnre.physics.cuda.simulate_cuda`). Both backends start from the
    same host-generated initial states, and results agree to the tolerance of
    docs/gpu.md.
    """
    if device != "cpu":
        from . import cuda

        if cuda.resolve_device(device) == "cuda":
            kwargs.pop("batch_size", None)
            kwargs.pop("threads", None)
            return cuda.simulate_cuda(config, params, **kwargs)
    return simulate_cpu(config, params, **kwargs)
