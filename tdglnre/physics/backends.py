"""Backend selection for simulations: the numba CPU kernel or the CUDA kernels.

:func:`simulate` is what ``tdglnre.simulate`` exposes and what ensemble
generation calls. It plans the run once (:func:`.plan.plan_run`: arguments,
:class:`~.options.SolverOptions`, per-sample checks, coefficients, links and
nuisance inputs) and hands the plan to the backend the options' device names:
:func:`.solver.run_plan` (CPU) or :func:`.cuda.run.run_plan`. It sits above
both, so neither imports the other's dispatcher, and the CUDA package is
imported only when a run asks for it.
"""

from __future__ import annotations

from typing import Any, Callable

from .options import SolverOptions
from .plan import SimulationResult, plan_run
from .solver import run_plan as run_cpu


def simulate(config: Any, params: Any = None, *, device: str | None = None, options: SolverOptions | None = None,
             progress: Callable[[int], None] | None = None, want_psi: bool = True, want_channels: bool = False,
             **kwargs: Any) -> SimulationResult:
    """Simulate quenches on ``device``: ``"cpu"``, ``"cuda"`` or ``"auto"`` (CUDA when a GPU is usable).

    Other arguments are those of :func:`tdglnre.physics.solver.simulate`
    (``seed``, ``sample_indices``, ``n_samples``, ``initial``, ``batch_size``,
    ``threads``, ``check_every``, ``options``) and ``fused`` (the CUDA kernel
    mode). ``device`` and the solver keywords given replace those of
    ``options`` (default: :meth:`SolverOptions.from_config`, device ``"cpu"``);
    ``threads`` and ``fused`` apply to their backend only. Both backends start
    from the same host-generated initial states, and results agree to the
    tolerance of docs/gpu.md.

    ``want_channels`` also fills the result's ``x`` with the network channels
    (computed on the device for CUDA, from ψ on the CPU); ``want_psi=False``
    lets the CUDA backend leave ψ on the device (``psi`` is then None there).
    """
    plan = plan_run(config, params, options=options, device=device, **kwargs)
    run = run_cpu
    if plan.options.device != "cpu":
        from . import cuda

        if cuda.resolve_device(plan.options.device) == "cuda":
            from .cuda.run import run_plan as run
    return run(plan, progress, want_psi=want_psi, want_channels=want_channels)
