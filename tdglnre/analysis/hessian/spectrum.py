"""Lowest eigenpairs of the Hessian (ARPACK), the global-phase zero mode, and the SLQ density of states.

Methods and their measured cost: docs/hessian.md §3 (eigensolvers) and §4 (SLQ).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ...errors import ConfigError
from ..slq import SpectralDensity, slq_density
from .operator import Hessian, phase_generator, spectral_scale
from .options import EIG_METHODS, Progress

log = logging.getLogger(__name__)

#: Thresholds (relative to λ_max) below which computed eigenvalues are counted.
THRESHOLDS = (1e-8, 1e-6, 1e-4, 1e-2)


def lowest_eigenpairs(hess: Hessian, k: int, *, method: str = "shift-invert", tol: float = 0.0,
                      ncv: int | None = None, maxiter: int | None = None, seed: int = 0,
                      progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` lowest eigenpairs of the Hessian with ARPACK (``eigsh``).

    Methods
    -------
    ``"dense"``
        ``numpy.linalg.eigh`` of the operator built column by column from n
        products (small N; the screened model's default up to 8192 unknowns).
    ``"lanczos"``
        Purely matrix-free: ``eigsh(LinearOperator(H), which="SA")``. The low
        end of a lattice Hessian is a dense cluster (gaps ∝ (2π/N)² of the
        spectral width), so thousands of products and ARPACK restarts are
        needed at N ≥ 64.
    ``"shift-invert"`` (default)
        The sparse Hessian is assembled from ~30 Hessian-vector products
        (:meth:`Hessian.sparse`, colour probing of the 5-point stencil), then
        ``eigsh(..., sigma=σ, which="LM")`` with ``OPinv`` a sparse LU of
        H − σI. σ lies below the spectrum: σ = min(θ_min, 0) − 10⁻³·θ_max from
        a 40-step Lanczos run; the LU is computed without off-diagonal pivoting
        so Sylvester's inertia (negative pivots = eigenvalues below σ) is
        checked, and σ is lowered until it is zero. The k eigenvalues nearest
        σ are then the k lowest.

    Parameters
    ----------
    hess
        The matrix-free Hessian.
    k
        Number of eigenpairs (1 ≤ k < n).
    method
        "shift-invert", "lanczos" or "dense".
    tol
        ARPACK relative accuracy of the Ritz values (0: machine precision).
    ncv
        Lanczos basis size (default max(2k + 1, 64) for "lanczos", 2k + 1 for
        shift-invert; capped at n).
    maxiter
        ARPACK restart limit (scipy's default when None).
    seed, progress
        Seed of the starting vector; ``progress("eigsh", n_products, None)`` is called every 200 products/solves.

    Returns
    -------
    eigenvalues (k,) ascending, eigenvectors (n, k)
    """
    n = hess.n
    if method not in EIG_METHODS:
        raise ConfigError(f"unknown eigensolver method {method!r}; valid: {list(EIG_METHODS)}")
    if not 1 <= k < n:
        raise ConfigError(f"n_eig must be in 1..{n - 1} for {n} unknowns, got {k}")
    if ncv is None:
        ncv = max(2 * k + 1, 64) if method == "lanczos" else max(2 * k + 1, 20)
    ncv = int(min(max(ncv, k + 2), n))
    v0 = np.random.default_rng(seed).standard_normal(n)
    counted = _Counted(progress)
    if method == "dense":
        vals, vecs = np.linalg.eigh(hess.dense())
        log.info("dense: %d x %d operator from %d products, %.2f s", n, n, n, time.perf_counter() - counted.t0)
        return vals[:k], vecs[:, :k]
    if method == "lanczos":
        mv = counted(hess.matvec, "Hessian-vector products")
        op = spla.LinearOperator((n, n), matvec=mv, rmatvec=mv, dtype=np.float64)
        vals, vecs = spla.eigsh(op, k=k, which="SA", tol=tol, ncv=ncv, maxiter=maxiter, v0=v0)
    else:
        A = hess.sparse()
        t_asm = time.perf_counter() - counted.t0
        lu, sigma = _factor_below_spectrum(hess, A, seed)
        log.info("shift-invert: sparse H (%d nnz) from %d products in %.2f s; LU (%d nnz) of H - sigma I, "
                 "sigma = %.6g", A.nnz, hess.sparse_products, t_asm, lu.L.nnz + lu.U.nnz, sigma)
        solve = counted(lu.solve, "solves")
        opinv = spla.LinearOperator((n, n), matvec=solve, dtype=np.float64)
        vals, vecs = spla.eigsh(A, k=k, sigma=sigma, which="LM", OPinv=opinv, tol=tol, ncv=ncv,
                                maxiter=maxiter, v0=v0)
    order = np.argsort(vals)
    log.info("eigsh (%s): %d eigenpairs, %d operator applications, %.2f s (ncv=%d)", method, k, counted.calls,
             time.perf_counter() - counted.t0, ncv)
    return vals[order], vecs[:, order]


class _Counted:
    """Wraps operator applications to count them, log and report progress every 200 calls."""

    def __init__(self, progress: Progress | None):
        self.progress = progress
        self.calls = 0
        self.t0 = time.perf_counter()

    def __call__(self, f: Callable[[np.ndarray], np.ndarray], what: str) -> Callable[[np.ndarray], np.ndarray]:
        def g(v: np.ndarray) -> np.ndarray:
            self.calls += 1
            if self.calls % 200 == 0:
                log.info("eigsh: %d %s, %.1f s", self.calls, what, time.perf_counter() - self.t0)
                if self.progress is not None:
                    self.progress("eigsh", self.calls, None)
            return f(v)
        return g


def _factor_below_spectrum(hess: Hessian, A: sp.spmatrix, seed: int) -> tuple[Any, float]:
    """A shift σ below the whole spectrum of ``A`` and the sparse LU of A − σI (Sylvester's inertia checked)."""
    n = A.shape[0]
    lo, hi = spectral_scale(hess, n_steps=40, seed=seed)
    sigma = min(lo, 0.0) - 1e-3 * max(abs(hi), 1e-300)
    eye = sp.identity(n, format="csc")
    for attempt in range(30):
        lu = spla.splu((A - sigma * eye).tocsc(), permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                       options={"SymmetricMode": True})
        below = int(np.sum(lu.U.diagonal() < 0))
        if below == 0:
            return lu, sigma
        log.info("shift-invert: %d eigenvalue(s) below sigma = %.6g; lowering sigma", below, sigma)
        sigma -= max(1e-3 * abs(hi), 2.0 * abs(sigma))
    raise ConfigError("could not place the shift below the spectrum (30 attempts)")


def identify_zero_mode(eigenvectors: np.ndarray, z: np.ndarray) -> tuple[int, float]:
    """Index of the eigenvector with the largest overlap with the phase generator, and that overlap."""
    gen = phase_generator(z)
    ov = np.abs(gen @ eigenvectors)
    i = int(np.argmax(ov))
    return i, float(ov[i])


def density_of_states(hess: Hessian, *, n_probes: int = 20, n_steps: int = 80, bins: int = 80, seed: int = 0,
                      progress: Progress | None = None) -> SpectralDensity:
    """Whole-spectrum density of states of ``hess`` by stochastic Lanczos quadrature (:func:`~..slq.slq_density`).

    ``progress`` is called as ``progress("dos", probes_done, n_probes)``.
    """
    def dos_progress(done: int, total: int) -> None:
        if progress is not None:
            progress("dos", done, total)

    return slq_density(hess.matvec, hess.n, n_probes=n_probes, n_steps=n_steps, bins=bins, seed=seed,
                       progress=dos_progress)


__all__ = ["THRESHOLDS", "density_of_states", "identify_zero_mode", "lowest_eigenpairs"]
