"""Settings of the Hessian analysis: :class:`HessianOptions`, validated on construction.

This module is the leaf of the :mod:`tdglnre.analysis.hessian` package: it
names the valid methods and the progress-callback signature that the other
modules share, and imports nothing from them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from ..._validate import as_bool, as_choice, as_float, as_int
from ...errors import ConfigError, reject_unknown_keys

#: ``progress(stage, done, total)``; stage is "relax", "newton", "eigsh" or "dos".
Progress = Callable[[str, int, "int | None"], None]

#: Hessian-vector products (see :mod:`.operator`).
HVP_METHODS = ("richardson", "central", "exact")
#: First relaxation stage (see :func:`.relaxation.relax`).
RELAX_METHODS = ("lbfgs", "trust-krylov")
#: Eigensolvers (see :func:`.spectrum.lowest_eigenpairs`).
EIG_METHODS = ("shift-invert", "lanczos", "dense")
#: Where gradients and Hessian-vector products run (see :mod:`tdglnre.physics.cuda`).
DEVICES = ("cpu", "cuda", "auto")


@dataclass(frozen=True)
class HessianOptions:
    """How :func:`~tdglnre.analysis.hessian.analyze` relaxes a state and computes its spectrum.

    Every field is checked when the object is built; a bad value raises
    :class:`~tdglnre.errors.ConfigError` naming the field.

    Parameters
    ----------
    n_eig
        Number of lowest eigenvalues (≥ 1; must also be below 4N² of the state).
    relax
        Relax to a stationary point first (:func:`~.relaxation.relax`).
    dos
        Also estimate the whole-spectrum density of states by SLQ (:mod:`tdglnre.analysis.slq`).
    residual_tol
        Relaxation target: RMS residual ‖∇F‖₂ / (2h²√(4N²)) (finite, > 0).
    max_iter
        Iteration limit of the first relaxation stage (≥ 0).
    newton_steps
        Maximum Newton–MINRES polishing steps (≥ 0).
    relax_method
        First relaxation stage: "lbfgs" or "trust-krylov".
    hvp_method
        Hessian-vector product: "richardson", "central" or "exact".
    eig_method
        Eigensolver: "shift-invert", "lanczos" or "dense" (LAPACK on the operator built from n products;
        small N). With λ < ∞ "shift-invert" becomes "dense" up to 8192 unknowns, else "lanczos".
    eig_tol
        ARPACK relative accuracy of the Ritz values (0: machine precision).
    ncv
        Lanczos basis size (None: the eigensolver's default).
    dos_probes, dos_steps, dos_bins
        SLQ probe vectors, Lanczos steps per probe and histogram bins (each ≥ 1).
    zero_tol
        |λ| ≤ zero_tol·λ_max counts as zero; λ < −zero_tol·λ_max as negative (≥ 0).
    seed
        Seed of the Lanczos starting and probe vectors (≥ 0).
    blas_thread_limit
        BLAS threads during the analysis (default 1: vector-sized work gains
        nothing from threads, and spinning OpenBLAS threads slow it down up to
        50× on a busy machine; docs/hessian.md §7). None leaves BLAS alone.
    device
        Where the relaxation gradients and the Hessian-vector products run:
        "cpu" (default), "cuda" (:class:`~tdglnre.physics.cuda.CudaEnergyModel`
        and :class:`~tdglnre.physics.cuda.CudaHessian`; ARPACK, MINRES and
        L-BFGS still drive from the host) or "auto" (cuda on a usable GPU, else
        cpu). The check that CUDA is usable happens when the analysis starts.
    """

    n_eig: int = 50
    relax: bool = True
    dos: bool = False
    residual_tol: float = 1e-8
    max_iter: int = 20000
    newton_steps: int = 20
    relax_method: str = "lbfgs"
    hvp_method: str = "richardson"
    eig_method: str = "shift-invert"
    eig_tol: float = 0.0
    ncv: int | None = None
    dos_probes: int = 20
    dos_steps: int = 80
    dos_bins: int = 80
    zero_tol: float = 1e-7
    seed: int = 0
    blas_thread_limit: int | None = 1
    device: str = "cpu"

    def __post_init__(self) -> None:
        checked: dict[str, Any] = {
            "n_eig": as_int("n_eig", self.n_eig, 1),
            "max_iter": as_int("max_iter", self.max_iter, 0),
            "newton_steps": as_int("newton_steps", self.newton_steps, 0),
            "dos_probes": as_int("dos_probes", self.dos_probes, 1),
            "dos_steps": as_int("dos_steps", self.dos_steps, 1),
            "dos_bins": as_int("dos_bins", self.dos_bins, 1),
            "seed": as_int("seed", self.seed, 0),
            "residual_tol": as_float("residual_tol", self.residual_tol, positive=True),
            "eig_tol": as_float("eig_tol", self.eig_tol, positive=False),
            "zero_tol": as_float("zero_tol", self.zero_tol, positive=False),
            "relax_method": as_choice("relaxation method", self.relax_method, RELAX_METHODS),
            "hvp_method": as_choice("HVP method", self.hvp_method, HVP_METHODS),
            "eig_method": as_choice("eigensolver method", self.eig_method, EIG_METHODS),
            "device": as_choice("device", self.device, DEVICES),
        }
        for name in ("relax", "dos"):
            checked[name] = as_bool(name, getattr(self, name))
        if self.ncv is not None:
            checked["ncv"] = as_int("ncv", self.ncv, 1)
        if self.blas_thread_limit is not None:
            checked["blas_thread_limit"] = as_int("blas_thread_limit", self.blas_thread_limit, 1)
        for name, value in checked.items():  # store the coerced floats (e.g. residual_tol=1 -> 1.0)
            object.__setattr__(self, name, value)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "HessianOptions":
        """Build from a mapping of field names (unknown keys are a :class:`ConfigError`)."""
        reject_unknown_keys(cls, d, "Hessian option", ConfigError)
        return cls(**dict(d))

    def replace(self, **changes: Any) -> "HessianOptions":
        """A copy with some fields changed (validated again; unknown names are a :class:`ConfigError`)."""
        reject_unknown_keys(type(self), changes, "Hessian option", ConfigError)
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON dict of the fields."""
        return dataclasses.asdict(self)


__all__ = ["DEVICES", "EIG_METHODS", "HVP_METHODS", "HessianOptions", "Progress", "RELAX_METHODS"]
