"""Gauge modes of the screened Hessian (λ < ∞) and their removal by projection.

docs/physics.md, "Gauge modes of the screened Hessian"; docs/hessian.md §8.
A local gauge transformation ψ_b(r) → e^{iχ(r)} ψ_b(r), a_μ(r) → a_μ(r) +
χ(r+μ̂) − χ(r) leaves F(ψ, a) unchanged, so at a stationary point each of the
N² generators

    g_s = ∂/∂χ(s):  δψ_b(s) = i ψ_b(s),  δa_x(s − x̂) = +1, δa_x(s) = −1,
                    δa_y(s − ŷ) = +1, δa_y(s) = −1

is a zero mode of H. Their span range(G) (G the n × N² matrix of generators)
contains the global phase rotation u = G·1 (χ = const: δψ = iψ, δa = 0). The
removed space is T = range(G) ⊖ span(u), of dimension N² − 1: every local gauge
direction, less the global phase, which stays in the analysed space as the
physical global-phase zero mode (the same mode as at λ = ∞).

The orthogonal projector on range(G) is G M⁻¹ Gᵀ with M = GᵀG = diag(|ψ1|² +
|ψ2|²) + the lattice graph Laplacian (sparse, positive definite unless ψ ≡ 0;
one sparse LU); P_T = G M⁻¹ Gᵀ − u uᵀ/|u|². The analysed operator is

    A = (I − P_T) H (I − P_T) + μ P_T,

which equals H on T^⊥ and puts the N² − 1 gauge directions at the lift μ (the
top of H's spectrum), so the lowest eigenpairs of A are the physical ones.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ...errors import ConfigError
from .operator import dense_of


def gauge_generators(z: np.ndarray, N: int) -> sp.csr_matrix:
    """The n × N² sparse matrix G whose column s is the generator g_s at the screened state ``z`` (6, N, N)."""
    s = np.asarray(z, dtype=np.float64).reshape(6, N * N)
    n2 = N * N
    site = np.arange(n2)
    i, j = np.divmod(site, N)
    left = i * N + (j - 1) % N   # s − x̂ (the x-link (i, j−1) → (i, j) ends at s)
    below = ((i - 1) % N) * N + j  # s − ŷ
    rows = [0 * n2 + site, 1 * n2 + site, 2 * n2 + site, 3 * n2 + site,
            4 * n2 + left, 4 * n2 + site, 5 * n2 + below, 5 * n2 + site]
    vals = [-s[1], s[0], -s[3], s[2], np.ones(n2), -np.ones(n2), np.ones(n2), -np.ones(n2)]
    cols = [site] * 8
    G = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(6 * n2, n2))
    G.sum_duplicates()  # N = 1 or 2 can fold a link onto itself
    return G


class GaugeProjector:
    """Orthogonal projector P_T on the local gauge directions less the global phase (module docstring).

    Attributes
    ----------
    dim : int
        dim T = N² − 1.
    global_phase : ndarray
        The unit global-phase generator u/|u| (kept in the analysed space).
    """

    def __init__(self, z: np.ndarray, N: int):
        self.G = gauge_generators(z, N)
        self.n = self.G.shape[0]
        M = (self.G.T @ self.G).tocsc()
        self._lu = spla.splu(M)
        u = np.asarray(self.G @ np.ones(N * N)).ravel()
        nu = float(np.linalg.norm(u))
        if nu == 0.0:
            raise ConfigError("the state has psi = 0 everywhere: the global phase is undefined")
        self.global_phase = u / nu
        self.dim = N * N - 1

    def apply(self, v: np.ndarray) -> np.ndarray:
        """P_T v."""
        v = np.asarray(v, dtype=np.float64).reshape(-1)
        w = np.asarray(self.G @ self._lu.solve(np.asarray(self.G.T @ v).ravel())).ravel()
        return w - self.global_phase * (self.global_phase @ v)

    def complement(self, v: np.ndarray) -> np.ndarray:
        """(I − P_T) v."""
        v = np.asarray(v, dtype=np.float64).reshape(-1)
        return v - self.apply(v)


class ProjectedHessian:
    """A = (I − P_T) H (I − P_T) + μ P_T of a screened :class:`~.operator.Hessian` (module docstring).

    Exposes ``n``, ``matvec``, ``n_matvec``, ``model``, ``z``, ``step`` like the
    Hessian, so the eigensolvers, SLQ and :func:`~.operator.spectral_scale` take it.
    """

    def __init__(self, hess, lift: float):
        if not lift > 0:
            raise ConfigError(f"the gauge lift must be > 0, got {lift!r}")
        self.hess = hess
        self.model = hess.model
        self.z = hess.z
        self.n = hess.n
        self.step = hess.step
        self.method = hess.method
        self.lift = float(lift)
        self.projector = GaugeProjector(hess.z, hess.model.N)
        self.sparse_products = 0

    @property
    def n_matvec(self) -> int:
        return self.hess.n_matvec

    def matvec(self, v: np.ndarray) -> np.ndarray:
        v = np.asarray(v, dtype=np.float64).reshape(-1)
        pv = self.projector.apply(v)
        w = self.hess.matvec(v - pv)
        return w - self.projector.apply(w) + self.lift * pv

    def as_linear_operator(self) -> spla.LinearOperator:
        return spla.LinearOperator((self.n, self.n), matvec=self.matvec, rmatvec=self.matvec, dtype=np.float64)

    def dense(self) -> np.ndarray:
        """Dense n×n matrix of A (small N only), symmetrised."""
        return dense_of(self.matvec, self.n)

    def sparse(self):
        raise ConfigError("the gauge-projected screened Hessian is not sparse; use eig_method 'lanczos' or 'dense'")


__all__ = ["GaugeProjector", "ProjectedHessian", "gauge_generators"]
