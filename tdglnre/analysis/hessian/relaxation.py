"""Relaxation of a state to a stationary point of F: L-BFGS (or trust-krylov), then a Newton–MINRES polish.

Measured iteration counts and timings: docs/hessian.md §2 and §7.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import scipy.optimize
import scipy.sparse.linalg as spla

from ...errors import ConfigError
from ...physics.solver import EnergyModel
from .gauge import ProjectedHessian
from .operator import Hessian
from .options import RELAX_METHODS, Progress

log = logging.getLogger(__name__)

#: Full-length Newton steps that raise the residual, allowed with λ < ∞ (see :func:`_newton_polish`).
MAX_UPHILL = 3


@dataclass
class RelaxResult:
    """Outcome of :func:`relax`."""

    z: np.ndarray
    """Relaxed state (flattened)."""
    F_before: float
    F_after: float
    grad_norm_before: float
    grad_norm_after: float
    residual_before: float
    """RMS of ∂_tψ = ‖∇F‖ / (2h²√n) before."""
    residual_after: float
    converged: bool
    """Whether residual_after ≤ residual_tol."""
    n_lbfgs: int
    """Iterations of the first stage (L-BFGS or trust-krylov)."""
    n_newton: int
    """Newton–MINRES polishing steps."""
    message: str


def residual(model: EnergyModel, g: np.ndarray) -> float:
    """RMS of ∂_tψ: ‖g‖₂ / (2h²√n), the dimensionless GL-equation residual."""
    return float(np.linalg.norm(g)) / (2.0 * model.config.h ** 2 * math.sqrt(model.size))


def relax(
    model: EnergyModel,
    z0: np.ndarray,
    *,
    residual_tol: float = 1e-8,
    max_iter: int = 20000,
    newton_steps: int = 20,
    method: str = "lbfgs",
    progress: Progress | None = None,
) -> RelaxResult:
    """Relax a state to a stationary point of F.

    ``method="lbfgs"``: L-BFGS (``scipy.optimize.minimize``, method L-BFGS-B
    without bounds) runs until its own stopping rule. ``method="trust-krylov"``:
    scipy's trust-region Newton–Lanczos with the Richardson HVPs (fewer, more
    expensive iterations; measured in docs/hessian.md). Then Newton steps H s = −g solved with MINRES
    (H applied by :class:`Hessian`, Richardson products) polish the state until
    the residual ‖∇F‖/(2h²√n) ≤ ``residual_tol``. Newton needs no energy
    values, so it is not limited by the rounding of F like the line search of
    L-BFGS; MINRES handles indefinite H (saddles) and the phase zero mode
    (g is orthogonal to it, so the system stays consistent). A Newton step is
    accepted only if it lowers ‖∇F‖ (halving up to 6 times).

    Parameters
    ----------
    model
        Energy model.
    z0
        Initial state.
    residual_tol
        Target RMS residual of the GL equation, ‖∇F‖₂ / (2h²√(4N²)).
    max_iter
        L-BFGS iteration limit.
    newton_steps
        Maximum Newton–MINRES steps.
    method
        "lbfgs" (default) or "trust-krylov" for the first stage.
    progress
        Progress callback (stages "relax" and "newton").

    Returns
    -------
    RelaxResult
    """
    if method not in RELAX_METHODS:
        raise ConfigError(f"unknown relaxation method {method!r}; valid: {list(RELAX_METHODS)}")
    z = np.ascontiguousarray(z0, dtype=np.float64).reshape(-1).copy()
    g = model.gradient(z)
    F0 = model.energy(z)
    gn0 = float(np.linalg.norm(g))
    r0 = residual(model, g)
    scale = 2.0 * model.config.h ** 2 * math.sqrt(model.size)
    log.info("relax: F = %.12g, |grad F| = %.3e (residual %.3e), target residual %.1e", F0, gn0, r0,
             residual_tol)
    n_lbfgs = 0
    message = ""
    if r0 > residual_tol:
        gtol = (0.1 * residual_tol * scale / math.sqrt(model.size) if method == "lbfgs"
                else residual_tol * scale)
        z, n_lbfgs, message = _first_stage(model, z, method, gtol, max_iter, progress)
        g = model.gradient(z)
        log.info("relax: %s stopped after %d iterations (%s): F = %.12g, residual %.3e",
                 method, n_lbfgs, message, model.energy(z), residual(model, g))
    z, g, r, n_newton = _newton_polish(model, z, g, residual_tol, newton_steps, progress)
    F1 = model.energy(z)
    conv = r <= residual_tol
    if not conv:
        log.warning("relax: residual %.3e above the target %.1e after %d %s + %d Newton steps",
                    r, residual_tol, n_lbfgs, method, n_newton)
    return RelaxResult(z=z, F_before=F0, F_after=F1, grad_norm_before=gn0,
                       grad_norm_after=float(np.linalg.norm(g)), residual_before=r0, residual_after=r,
                       converged=conv, n_lbfgs=n_lbfgs, n_newton=n_newton,
                       message=message or "already stationary")


def _first_stage(model: EnergyModel, z: np.ndarray, method: str, gtol: float, max_iter: int,
                 progress: Progress | None) -> tuple[np.ndarray, int, str]:
    """L-BFGS or trust-krylov from ``z`` with scipy's ``gtol`` (L-BFGS: a max-norm, trust-krylov: ‖∇F‖₂).

    Returns (z, iterations, message)."""
    count = [0]

    def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
        return model.energy(x), model.gradient(x)

    def cb(xk: np.ndarray) -> None:
        count[0] += 1
        if count[0] % (500 if method == "lbfgs" else 10) == 0:
            gk = model.gradient(xk)
            log.info("relax: %s iteration %d, F = %.12g, residual %.3e", method, count[0], model.energy(xk),
                     residual(model, gk))
        if progress is not None:
            progress("relax", count[0], max_iter)

    if method == "lbfgs":
        res = scipy.optimize.minimize(
            fun, z, jac=True, method="L-BFGS-B", callback=cb,
            options={"maxiter": max_iter, "maxfun": 2 * max_iter, "maxcor": 20, "ftol": 1e-15,
                     "gtol": gtol},
        )
    else:
        def hessp(x: np.ndarray, v: np.ndarray) -> np.ndarray:
            return Hessian(model, x).matvec(v)

        res = scipy.optimize.minimize(fun, z, jac=True, hessp=hessp, method="trust-krylov", callback=cb,
                                      options={"maxiter": max_iter, "gtol": gtol})
    return np.ascontiguousarray(res.x), int(res.nit), str(res.message)


def _newton_polish(model: EnergyModel, z: np.ndarray, g: np.ndarray, residual_tol: float, newton_steps: int,
                   progress: Progress | None) -> tuple[np.ndarray, np.ndarray, float, int]:
    """Newton–MINRES steps with step halving until the residual ≤ ``residual_tol``: (z, g, residual, steps)."""
    n_newton = 0
    uphill = 0
    r = residual(model, g)
    best = (z, g, r)
    while r > residual_tol and n_newton < newton_steps:
        hess = Hessian(model, z)
        # screened (λ < ∞): solve on the gauge-fixed operator (the N² − 1 local gauge directions lifted, gauge.py);
        # g has no component along them, and without the lift MINRES steps wander along the near-null space
        op = (ProjectedHessian(hess, 1.0) if hess.screened else hess).as_linear_operator()
        s, _info = spla.minres(op, -g, rtol=1e-10, maxiter=2000)
        n_newton += 1
        t = 1.0
        for _ in range(7):
            zt = z + t * s
            gt = model.gradient(zt)
            rt = residual(model, gt)
            if rt < r:
                break
            t *= 0.5
        else:
            if not (hess.screened and uphill < MAX_UPHILL):
                log.warning("relax: Newton step %d did not lower the residual (%.3e); stopping", n_newton, r)
                break
            # screened: the vortex translations are nearly free (~1e-9 of λ_max, docs/hessian.md §8), so a full
            # Newton step may overshoot along them once before converging; take it (a few times at most; the
            # best state seen is returned)
            uphill += 1
            zt = z + s
            gt = model.gradient(zt)
            rt = residual(model, gt)
            log.info("relax: Newton step %d taken at full length although the residual rose to %.3e", n_newton, rt)
        z, g, r = zt, gt, rt
        log.info("relax: Newton step %d (%d HVPs, step %.3g): residual %.3e", n_newton, hess.n_matvec, t, r)
        if r < best[2]:
            best = (z, g, r)
        if progress is not None:
            progress("newton", n_newton, newton_steps)
    z, g, r = best  # an uphill step (screened) is kept only if a later one beat the state before it
    return z, g, r, n_newton


def unrelaxed(model: EnergyModel, z: np.ndarray, residual_tol: float) -> RelaxResult:
    """The :class:`RelaxResult` of a state taken as is (no relaxation); warns if it is not stationary."""
    z = np.ascontiguousarray(z, dtype=np.float64).reshape(-1).copy()
    g = model.gradient(z)
    F = model.energy(z)
    gn = float(np.linalg.norm(g))
    r = residual(model, g)
    conv = r <= residual_tol
    if not conv:
        log.warning("analysing a non-stationary state (residual %.3e): the phase mode is not an exact zero mode", r)
    return RelaxResult(z=z, F_before=F, F_after=F, grad_norm_before=gn, grad_norm_after=gn, residual_before=r,
                       residual_after=r, converged=conv, n_lbfgs=0, n_newton=0, message="not relaxed")


__all__ = ["RelaxResult", "relax", "residual", "unrelaxed"]
