"""Matrix-free Hessian spectra of the two-band GL free energy (issue 6).

Coordinates are the real state z = (Re ψ1, Im ψ1, Re ψ2, Im ψ2) flattened
(4N² unknowns; docs/physics.md, "Lattice free energy"); the Hessian is
H = ∂²F/∂z². Pipeline (:func:`hessian` from a state source, :func:`analyze`
from a state in memory): relax (L-BFGS, then Newton–MINRES polish) → lowest
eigenpairs (ARPACK) → identification of the global-phase zero mode → optional
density of states by stochastic Lanczos quadrature. Both return a
:class:`HessianResult` in memory, with ``.save(dir)`` and ``.plot(dir)``.

Modules
-------
:mod:`.options`
    :class:`HessianOptions`, the settings, validated on construction.
:mod:`.operator`
    :class:`Hessian`: Hessian-vector products, dense and sparse assembly.
:mod:`.gauge`
    Gauge modes of the screened model (λ < ∞): :class:`ProjectedHessian`.
:mod:`.relaxation`
    :func:`relax` to a stationary point, :class:`RelaxResult`.
:mod:`.spectrum`
    :func:`lowest_eigenpairs`, :func:`identify_zero_mode`, the SLQ hook.
:mod:`.uniform`
    Closed-form spectrum of the uniform state (reference for the tests).
:mod:`.states`
    State sources :class:`FromEnsemble`, :class:`FromPreset`, :class:`FromParams`.
:mod:`.result`, :mod:`.io`
    :class:`HessianResult` and its file format.
:mod:`.pipeline`
    :func:`analyze` and :func:`hessian`.

Details and measurements: docs/hessian.md.
"""

from __future__ import annotations

from .gauge import GaugeProjector, ProjectedHessian, gauge_generators
from .io import FORMAT, FORMAT_VERSION
from .operator import DEFAULT_REL_STEP, Hessian, dense_hessian, distance2_coloring, phase_generator, spectral_scale
from .options import EIG_METHODS, HVP_METHODS, RELAX_METHODS, HessianOptions, Progress
from .pipeline import analyze, hessian
from .relaxation import RelaxResult, relax, residual
from .result import HessianResult, load, load_result, save
from .spectrum import THRESHOLDS, density_of_states, identify_zero_mode, lowest_eigenpairs
from .states import (
    FromEnsemble,
    FromParams,
    FromPreset,
    StateSample,
    StateSource,
    state_from_ensemble,
    state_from_preset,
    state_from_simulation,
)
from .uniform import uniform_amplitudes, uniform_spectrum, uniform_state

__all__ = [
    "DEFAULT_REL_STEP", "EIG_METHODS", "FORMAT", "FORMAT_VERSION", "FromEnsemble", "FromParams", "FromPreset",
    "GaugeProjector", "HVP_METHODS", "ProjectedHessian", "gauge_generators", "Hessian", "HessianOptions", "HessianResult", "Progress", "RELAX_METHODS", "RelaxResult",
    "StateSample", "StateSource", "THRESHOLDS", "analyze", "dense_hessian", "density_of_states",
    "distance2_coloring", "hessian", "identify_zero_mode", "load", "load_result", "lowest_eigenpairs",
    "phase_generator", "relax", "residual", "save", "spectral_scale", "state_from_ensemble", "state_from_preset",
    "state_from_simulation", "uniform_amplitudes", "uniform_spectrum", "uniform_state",
]
