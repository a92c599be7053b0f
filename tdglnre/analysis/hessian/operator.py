"""Matrix-free Hessian ∂²F/∂z² of the lattice free energy (:class:`Hessian`).

Coordinates are the real state z = (Re ψ1, Im ψ1, Re ψ2, Im ψ2) flattened
(4N² unknowns; docs/physics.md, "Lattice free energy"). The gradient
g = ∂F/∂z comes from the numba kernel that also runs the dynamics
(:class:`~tdglnre.physics.solver.EnergyModel`).

Hessian-vector products
-----------------------
F is a quartic polynomial in z, so g is a cubic polynomial and, for a unit
vector v̂ and step δ,

    g(z + δv̂) = g0 + δ g1 + δ² g2 + δ³ g3,    g1 = H v̂,
    D(δ) = [g(z + δv̂) − g(z − δv̂)] / (2δ) = g1 + δ² g3       (exactly).

``method="central"`` uses D(δ) (two gradient calls, truncation error δ²·g3,
g3 = 2h² β |v̂|² v̂ site by site). ``method="richardson"`` uses
[4 D(δ/2) − D(δ)] / 3 = g1, which is *exact* in exact arithmetic for any δ
(four gradient calls): only rounding remains, and it falls like 1/δ, so a large
step δ = ``rel_step``·max(1, ‖z‖_∞) with rel_step = 1/2 is used. The measured
errors are in docs/hessian.md §1. ``method="exact"`` evaluates g1 analytically
(linear part from the same kernel with β = 0, plus the explicit Jacobian of the
cubic term) and is the reference for the tests.

On the GPU (a :class:`~tdglnre.physics.cuda.CudaEnergyModel`) the Richardson
and central products run on the device through
:class:`~tdglnre.physics.cuda.CudaHessian` (same formulas, the four gradients
in one launch); sparse assembly, ARPACK and MINRES use them unchanged through
:meth:`Hessian.matvec`.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ...errors import ConfigError
from ...physics import kernels
from ...physics.options import DEFAULT_REL_STEP  # the one definition (the device Hessian's too)
from ...physics.solver import EnergyModel
from ..slq import gauss_quadrature, lanczos
from .options import HVP_METHODS


#: Relative finite-difference step of the screened model's products (both methods): measured in docs/hessian.md §8.
SCREENED_REL_STEP = 1e-2


def phase_generator(z: np.ndarray) -> np.ndarray:
    """Unit generator of the global phase rotation at ``z``.

    ψ_i → e^{iθ} ψ_i gives δz = (−Im ψ1, Re ψ1, −Im ψ2, Re ψ2); H(z)·δz = J g(z),
    so it is an exact zero mode at a stationary point. A screened state
    (6N² values) gets δa = 0: the constant gauge transformation leaves a alone.
    """
    z = np.asarray(z, dtype=np.float64).reshape(-1)
    m = int(round(math.sqrt(z.size / 6)))
    screened = 6 * m * m == z.size  # never also 4N²: 4N² = 6m² has no integer solution
    s = z.reshape(6 if screened else 4, -1)
    gen = np.concatenate([-s[1], s[0], -s[3], s[2]] + ([np.zeros(2 * m * m)] if screened else []))
    nrm = np.linalg.norm(gen)
    if nrm == 0:
        raise ConfigError("the state is identically zero: the phase-rotation generator is undefined")
    return gen / nrm


class Hessian:
    """Matrix-free Hessian ∂²F/∂z² of an :class:`EnergyModel` at a state ``z``.

    Parameters
    ----------
    model
        Energy model (parameters, lattice, links): an
        :class:`~tdglnre.physics.solver.EnergyModel`, or a
        :class:`~tdglnre.physics.cuda.CudaEnergyModel` to run the products on the GPU.
    z
        State (4, N, N) or flattened (4N²,), float64.
    method
        ``"richardson"`` (default, exact up to rounding), ``"central"`` or
        ``"exact"`` (analytic; reference).
    rel_step
        Finite-difference step relative to max(1, ‖z‖_∞) (default per method).

    Attributes
    ----------
    n_matvec : int
        Hessian-vector products evaluated so far.
    """

    def __init__(self, model: EnergyModel, z: np.ndarray, *, method: str = "richardson",
                 rel_step: float | None = None):
        if method not in HVP_METHODS:
            raise ConfigError(f"unknown HVP method {method!r}; valid: {list(HVP_METHODS)}")
        self.model = model
        self.z = np.ascontiguousarray(z, dtype=np.float64).reshape(-1).copy()
        if self.z.size != model.size:
            raise ConfigError(f"state has {self.z.size} values, expected {model.size} for this model")
        self.method = method
        self.n = model.size
        self.screened = bool(getattr(model, "screened", False))
        if self.screened and method == "exact":
            raise ConfigError("the 'exact' product covers the fixed field (lam=inf) only; use 'richardson' or "
                              "'central' with lam < inf")
        # F is not a polynomial in a (cos of the link phases): Richardson is then exact to O(δ⁴) only, so the
        # screened model takes a small step (docs/hessian.md §8)
        default = SCREENED_REL_STEP if self.screened else DEFAULT_REL_STEP[method]
        rs = default if rel_step is None else float(rel_step)
        if method != "exact" and not rs > 0:
            raise ConfigError(f"rel_step must be positive, got {rel_step!r}")
        self.step = rs * max(1.0, float(np.abs(self.z).max()))
        self.n_matvec = 0
        self.sparse_products = 0
        self.on_device = hasattr(model, "gradient_device")
        self._device = None
        if self.on_device and method != "exact":
            from ...physics.cuda import CudaHessian

            self._device = CudaHessian(model, self.z, method=method, rel_step=rs)
        self._host_model = getattr(model, "cpu", model)  # the CPU EnergyModel (tables of the exact product)
        self._gp = np.empty(self.n)
        self._gm = np.empty(self.n)
        self._w = np.empty(self.n)
        if self.screened:
            return
        c = model.config
        h = c.h
        # linear part of the gradient: the gradient kernel with β = 0
        self._lin_co = kernels.coefficients(c.D, c.alpha, (0.0, 0.0), h, c.eta, c.nu,
                                            scale=-2.0 * h * h, keep=0.0)[0]
        self._h2 = h * h

    # ------------------------------------------------------------ products
    def _central(self, v: np.ndarray, d: float, out: np.ndarray) -> np.ndarray:
        np.add(self.z, d * v, out=self._w)
        self.model.gradient(self._w, out=self._gp)
        np.subtract(self.z, d * v, out=self._w)
        self.model.gradient(self._w, out=self._gm)
        np.subtract(self._gp, self._gm, out=out)
        out /= 2.0 * d
        return out

    def _exact(self, v: np.ndarray) -> np.ndarray:
        m = self._host_model
        out = np.empty(m.shape)
        u0 = np.ascontiguousarray(v.reshape(m.shape))
        if getattr(m, "xi", None) is not None:  # pinning disorder: α_b(r) = α_b(1 + δξ(r)) in the linear term
            kernels._sweep(u0, out, self._lin_co, m._ly, m._lx, m.xi, m._grad_dco)
        else:
            kernels._sweep(u0, out, self._lin_co, m._ly, m._lx)
        s = self.z.reshape(m.shape)
        u = v.reshape(m.shape)
        c = m.config
        for band, (re, im) in enumerate(((0, 1), (2, 3))):
            f = 2.0 * self._h2 * c.beta[band]
            rho = s[re] ** 2 + s[im] ** 2
            proj = s[re] * u[re] + s[im] * u[im]  # Re(ψ* φ)
            out[re] += f * (rho * u[re] + 2.0 * proj * s[re])
            out[im] += f * (rho * u[im] + 2.0 * proj * s[im])
        return out.reshape(-1)

    def matvec(self, v: np.ndarray) -> np.ndarray:
        """H v for a vector of length 4N² (any shape with that many values)."""
        v = np.asarray(v, dtype=np.float64).reshape(-1)
        self.n_matvec += 1
        if self.method == "exact":
            return self._exact(v)
        if self._device is not None:
            return self._device.matvec(v)
        nv = float(np.linalg.norm(v))
        if nv == 0.0:
            return np.zeros(self.n)
        vh = v / nv
        d = self.step
        if self.method == "central":
            out = self._central(vh, d, np.empty(self.n))
        else:
            big = self._central(vh, d, np.empty(self.n))
            out = self._central(vh, 0.5 * d, np.empty(self.n))
            out *= 4.0
            out -= big
            out /= 3.0
        out *= nv
        return out

    def as_linear_operator(self) -> spla.LinearOperator:
        """A symmetric :class:`scipy.sparse.linalg.LinearOperator` view."""
        return spla.LinearOperator((self.n, self.n), matvec=self.matvec, rmatvec=self.matvec,
                                   dtype=np.float64)

    def dense(self) -> np.ndarray:
        """Dense n×n matrix built column by column (small N only), symmetrised (:func:`dense_of`)."""
        return dense_of(self.matvec, self.n)

    def sparse(self) -> sp.csc_matrix:
        """Sparse Hessian assembled from 4·c Hessian-vector products (c ≈ 5–7 colours).

        The Hessian couples the four components of a site with those of the
        site and its four neighbours (5-point stencil). Sites are coloured so
        that no two sites of one colour share a stencil row (distance-2
        colouring of the periodic lattice, greedy); one HVP with the indicator
        of (component, colour) then returns every entry of those columns
        without overlap. The result is symmetrised.
        """
        if self.screened:
            raise ConfigError("sparse assembly covers the fixed field (lam=inf) only; use eig_method 'lanczos'")
        N = self.model.N
        colors = distance2_coloring(N)
        n_colors = int(colors.max()) + 1
        sites = np.arange(N * N).reshape(N, N)
        offsets = [(0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)]
        rows, cols, vals = [], [], []
        for c in range(n_colors):
            mask = (colors == c).ravel().astype(np.float64)
            for comp in range(4):
                v = np.zeros((4, N * N))
                v[comp] = mask
                w = self.matvec(v.reshape(-1)).reshape(4, N * N)
                for di, dj in offsets:
                    nb = np.roll(sites, (-di, -dj), axis=(0, 1)).ravel()  # neighbour s = s' + d of row site s'
                    hit = colors.ravel()[nb] == c
                    r_sites = np.flatnonzero(hit)
                    for rc in range(4):
                        rows.append(rc * N * N + r_sites)
                        cols.append(comp * N * N + nb[r_sites])
                        vals.append(w[rc, r_sites])
        A = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                          shape=(self.n, self.n))
        A.sum_duplicates()
        self.sparse_products = 4 * n_colors
        return ((A + A.T) * 0.5).tocsc()


def dense_of(matvec, n: int) -> np.ndarray:
    """The symmetrised dense n×n matrix of a symmetric operator, column by column from n products (small n only)."""
    if n > 20000:
        raise ConfigError(f"refusing to build a dense {n}x{n} Hessian; use the matrix-free path")
    H = np.empty((n, n))
    e = np.zeros(n)
    for k in range(n):
        e[k] = 1.0
        H[:, k] = matvec(e)
        e[k] = 0.0
    return 0.5 * (H + H.T)


def distance2_coloring(N: int) -> np.ndarray:
    """Greedy colouring (N, N) of the periodic lattice: sites within Manhattan distance 2 differ.

    Two sites of one colour then have disjoint 5-point stencils. Uses 5 colours
    ((i + 2j) mod 5) when 5 divides N, otherwise a greedy colouring (≤ 13).
    """
    if N % 5 == 0:
        i, j = np.indices((N, N))
        return (i + 2 * j) % 5
    if N < 5:
        return np.arange(N * N).reshape(N, N)
    col = -np.ones((N, N), dtype=np.int64)
    near = [(a, b) for a in range(-2, 3) for b in range(-2, 3) if 0 < abs(a) + abs(b) <= 2]
    for i in range(N):
        for j in range(N):
            used = {col[(i + a) % N, (j + b) % N] for a, b in near}
            c = 0
            while c in used:
                c += 1
            col[i, j] = c
    return col


def dense_hessian(model: EnergyModel, z: np.ndarray, method: str = "exact") -> np.ndarray:
    """Dense Hessian ∂²F/∂z² at ``z`` (reference at small N)."""
    return Hessian(model, z, method=method).dense()


def spectral_scale(hess: Hessian, n_steps: int = 30, seed: int = 0) -> tuple[float, float]:
    """(smallest, largest) Ritz value of a short Lanczos run: an estimate of the spectral range."""
    rng = np.random.default_rng(seed)
    a, b = lanczos(hess.matvec, rng.standard_normal(hess.n), min(n_steps, hess.n))
    th, _ = gauss_quadrature(a, b)
    return float(th.min()), float(th.max())


__all__ = ["DEFAULT_REL_STEP", "Hessian", "SCREENED_REL_STEP", "dense_hessian", "distance2_coloring", "phase_generator", "spectral_scale"]
