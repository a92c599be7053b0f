"""Relaxed vortex states of the screened model (λ < ∞), with the NumPy reference.

The validation of docs/physics.md, "Screening (λ < ∞)", compares relaxed
energies: the Bogomolny point, the field of an isolated vortex and the
Type-1.5 energy per vortex against density. All of them minimise
F(ψ₁, ψ₂, a_x, a_y) of :func:`.reference.screened_energy` on an N×N torus
with n_v flux quanta, by L-BFGS on the real vector
(Re ψ₁, Im ψ₁, Re ψ₂, Im ψ₂, a_x, a_y) with the analytic gradient
:func:`.reference.screened_gradient`, from a quench-like random state
(Re, Im ψᵢ ~ U[−½, ½], a = 0). A minimiser can stop in a local minimum (a
metastable vortex arrangement), so a relaxed energy is taken as the minimum
over several starts (:func:`relaxed_energy`).

Pure NumPy/SciPy (no numba); readable rather than fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from . import reference as ref
from .lattice import landau_links
from .lengths import uniform_state

__all__ = ["Relaxed", "quench_start", "relax_screened", "relaxed_energy", "uniform_energy"]


@dataclass(frozen=True)
class Relaxed:
    """One relaxation: the final energy, state and what the minimiser reported."""

    energy: float
    state: np.ndarray
    """(6, N, N): Re ψ₁, Im ψ₁, Re ψ₂, Im ψ₂, a_x, a_y."""
    n_iter: int
    converged: bool


def quench_start(N: int, seed: int, amplitude: float = 0.5) -> np.ndarray:
    """Flat start vector: Re, Im ψᵢ ~ U[−amplitude, amplitude] from ``default_rng(seed)``, a = 0."""
    rng = np.random.default_rng(seed)
    n = N * N
    return np.concatenate([rng.uniform(-amplitude, amplitude, 4 * n), np.zeros(2 * n)])


def uniform_energy(L: float, pars: Mapping) -> float:
    """F of the uniform ground state on an L×L torus with no flux: L² V(f₁, f₂) (exact on the lattice)."""
    a, b, eta = pars["alpha"], pars["beta"], float(pars["eta"])
    f = uniform_state(a, b, eta)
    v = sum(a[i] * f[i] ** 2 + 0.5 * b[i] * f[i] ** 4 for i in range(2)) - 2.0 * abs(eta) * f[0] * f[1]
    return float(L * L * v)


def relax_screened(N: int, L: float, n_v: int, c: float, pars: Mapping, *, seed: int = 0,
                   x0: np.ndarray | None = None, gtol: float = 1e-9, maxiter: int = 20000,
                   maxcor: int = 30) -> Relaxed:
    """Minimise F(ψ, a) at field coefficient ``c`` with L-BFGS from ``x0`` (default :func:`quench_start`).

    ``pars`` holds alpha, beta, D, eta, nu as for :func:`.reference.screened_energy`.
    """
    from scipy.optimize import minimize

    links = landau_links(N, L, n_v)
    start = quench_start(N, seed) if x0 is None else np.asarray(x0, dtype=float).ravel()

    def fg(x):
        v = x.reshape(6, N, N)
        s = (v[0] + 1j * v[1], v[2] + 1j * v[3], v[4], v[5])
        F = ref.screened_energy(*s, links, c=c, **pars)
        return F, np.concatenate([g.ravel() for g in ref.screened_gradient(*s, links, c=c, **pars)])

    res = minimize(fg, start, jac=True, method="L-BFGS-B",
                   options=dict(maxiter=maxiter, maxcor=maxcor, gtol=gtol, ftol=1e-15))
    return Relaxed(float(res.fun), res.x.reshape(6, N, N), int(res.nit), bool(res.success))


def relaxed_energy(N: int, L: float, n_v: int, c: float, pars: Mapping,
                   seeds: Sequence[int] = (0, 1, 2), **kw) -> tuple[float, list[float]]:
    """The lowest relaxed energy over the quench starts ``seeds``, and every start's energy."""
    energies = [relax_screened(N, L, n_v, c, pars, seed=s, **kw).energy for s in seeds]
    return min(energies), energies
