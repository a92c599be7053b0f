"""CUDA backend of the two-band TDGL solver (numba-cuda kernels, issues 11, 13, 18 and 22).

Split by concern:

* :mod:`.device`: is CUDA usable here, and which backend ``"cpu" | "cuda" | "auto"`` runs;
* :mod:`.kernels`: the Euler kernels (one body per launch geometry, with pinning
  disorder and thermal noise compiled in or out), the health check, the
  snapshot/channel and Hessian-vector kernels, and the launch geometry;
* :mod:`.run`: the run driver (:func:`simulate_cuda` and friends);
* :mod:`.hessian`: the device gradient and Hessian-vector products;
* :mod:`.noise`: the thermal-noise stream on the device (the CPU stream's normals).
* :mod:`.screened`: the kernels of the screened model (λ < ∞: ψ and the link field a),
  built from the CPU screened kernel's per-site functions.

The benchmark is :func:`tdglnre.physics.bench.bench_cuda`. The site update is
the CPU kernel's: ``kernels.neighbour_sums`` (the covariant neighbour sums,
seam included) and ``kernels._site`` are ``@njit(inline="always")`` functions
of :mod:`tdglnre.physics.kernels` that numba compiles for both targets; only
the memory layout of the state differs (docs/physics.md, "Lattice free
energy": ``dst = keep·ψ + scale·∂ₜψ``). Under numba's simulator the device
results are bitwise the CPU's; on a GPU they agree to the tolerance of
docs/gpu.md (NVVM contracts multiply-adds into FMAs).
"""

from __future__ import annotations

from numba import cuda

from .device import (DEVICES, INSTALL_HINT, auto_fallback_reason, cuda_status, gpu_name, require_cuda,
                     resolve_device, simulator_enabled)
from .hessian import CudaEnergyModel, CudaHessian
from .kernels import (FUSED_GLOBAL_BLOCK, FUSED_GLOBAL_MAX_N, FUSED_MAX_REGISTERS, KMAX, MAX_BLOCK, MODES,
                      REGISTER_FILE, SHARED_BYTES, TPB, euler_kernels, select_mode, shared_fits)
from .run import (BATCH_BYTES, MAX_BATCH, auto_batch_size, health_limits, judge_health, simulate_channels_cuda,
                  simulate_cuda, simulate_outputs_cuda)

__all__ = [
    "BATCH_BYTES", "DEVICES", "FUSED_GLOBAL_BLOCK", "FUSED_GLOBAL_MAX_N", "FUSED_MAX_REGISTERS", "INSTALL_HINT",
    "KMAX", "MAX_BATCH", "MAX_BLOCK", "MODES", "REGISTER_FILE", "SHARED_BYTES", "TPB", "CudaEnergyModel",
    "CudaHessian", "auto_batch_size", "auto_fallback_reason", "cuda", "cuda_status",
    "euler_kernels", "gpu_name", "health_limits", "judge_health", "require_cuda", "resolve_device",
    "select_mode", "shared_fits", "simulate_channels_cuda", "simulate_cuda", "simulate_outputs_cuda",
    "simulator_enabled",
]
