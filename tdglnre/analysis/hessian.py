"""Matrix-free Hessian spectra of the two-band GL free energy (issue 6).

Coordinates are the real state z = (Re ψ1, Im ψ1, Re ψ2, Im ψ2) flattened
(4N² unknowns, DESIGN.md §2). The gradient g = ∂F/∂z comes from the numba
kernel that also runs the dynamics (:class:`~tdglnre.physics.solver.EnergyModel`).

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
errors are in docs/hessian.md. ``method="exact"`` evaluates g1 analytically
(linear part from the same kernel with β = 0, plus the explicit Jacobian of the
cubic term) and is the reference for the tests.

Pipeline (:func:`analyze`): relax (L-BFGS, then Newton–MINRES polish) →
lowest eigenpairs (ARPACK Lanczos via ``scipy.sparse.linalg.eigsh``) →
identification of the global-phase zero mode → optional density of states by
stochastic Lanczos quadrature (:mod:`.slq`).
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import scipy.optimize
import scipy.sparse.linalg as spla

from ..errors import ConfigError
from ..physics import kernels
from ..physics.config import SimConfig
from ..physics.solver import EnergyModel, psi_to_state
from ._blas import blas_threads
from .slq import SpectralDensity, lanczos, slq_density

log = logging.getLogger(__name__)

#: ``progress(stage, done, total)``; stage is "relax", "newton", "eigsh" or "dos".
Progress = Callable[[str, int, "int | None"], None]

HVP_METHODS = ("richardson", "central", "exact")
#: Default step δ / max(1, ‖z‖_∞) per method (see the module docstring).
DEFAULT_REL_STEP = {"richardson": 0.5, "central": 1e-5, "exact": 0.0}

FORMAT = "tdglnre-hessian"
FORMAT_VERSION = 1


# --------------------------------------------------------------------------- HVP
def phase_generator(z: np.ndarray) -> np.ndarray:
    """Unit generator of the global phase rotation at ``z``.

    ψ_i → e^{iθ} ψ_i gives δz = (−Im ψ1, Re ψ1, −Im ψ2, Re ψ2); H(z)·δz = J g(z),
    so it is an exact zero mode at a stationary point.
    """
    s = np.asarray(z, dtype=np.float64).reshape(4, -1)
    gen = np.concatenate([-s[1], s[0], -s[3], s[2]])
    nrm = np.linalg.norm(gen)
    if nrm == 0:
        raise ConfigError("the state is identically zero: the phase-rotation generator is undefined")
    return gen / nrm


class Hessian:
    """Matrix-free Hessian ∂²F/∂z² of an :class:`EnergyModel` at a state ``z``.

    Parameters
    ----------
    model
        Energy model (parameters, lattice, links).
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
            raise ConfigError(f"state has {self.z.size} values, expected 4*N^2 = {model.size}")
        self.method = method
        self.n = model.size
        rs = DEFAULT_REL_STEP[method] if rel_step is None else float(rel_step)
        if method != "exact" and not rs > 0:
            raise ConfigError(f"rel_step must be positive, got {rel_step!r}")
        self.step = rs * max(1.0, float(np.abs(self.z).max()))
        self.n_matvec = 0
        self.sparse_products = 0
        self._gp = np.empty(self.n)
        self._gm = np.empty(self.n)
        self._w = np.empty(self.n)
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
        m = self.model
        out = np.empty(m.shape)
        kernels._sweep(np.ascontiguousarray(v.reshape(m.shape)), out, self._lin_co, m._ly, m._lx)
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
        """Dense n×n matrix built column by column (small N only), symmetrised."""
        if self.n > 20000:
            raise ConfigError(f"refusing to build a dense {self.n}x{self.n} Hessian; use the matrix-free path")
        H = np.empty((self.n, self.n))
        e = np.zeros(self.n)
        for k in range(self.n):
            e[k] = 1.0
            H[:, k] = self.matvec(e)
            e[k] = 0.0
        return 0.5 * (H + H.T)


    def sparse(self) -> "scipy.sparse.csr_matrix":
        """Sparse Hessian assembled from 4·c Hessian-vector products (c ≈ 5–7 colours).

        The Hessian couples the four components of a site with those of the
        site and its four neighbours (5-point stencil). Sites are coloured so
        that no two sites of one colour share a stencil row (distance-2
        colouring of the periodic lattice, greedy); one HVP with the indicator
        of (component, colour) then returns every entry of those columns
        without overlap. The result is symmetrised.
        """
        import scipy.sparse as sp

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
    from .slq import gauss_quadrature

    th, _ = gauss_quadrature(a, b)
    return float(th.min()), float(th.max())


# -------------------------------------------------------- uniform-state spectrum
def uniform_amplitudes(config: SimConfig, eta: float | None = None) -> tuple[float, float]:
    """Real amplitudes (u1, u2) of the uniform stationary state at n_v = 0.

    Solves α1 u1 + β1 u1³ = η u2 and α2 u2 + β2 u2³ = η u1 (for α1 = α2 = α,
    β1 = β2 = β: u1 = u2 = √((η − α)/β)).
    """
    eta = config.eta if eta is None else float(eta)
    (a1, a2), (b1, b2) = config.alpha, config.beta

    def f(u: np.ndarray) -> np.ndarray:
        return np.array([a1 * u[0] + b1 * u[0] ** 3 - eta * u[1], a2 * u[1] + b2 * u[1] ** 3 - eta * u[0]])

    guess = np.sqrt(np.maximum([(eta - a1) / b1, (eta - a2) / b2], 1e-3))
    sol = scipy.optimize.root(f, guess, tol=1e-14)
    if np.max(np.abs(f(sol.x))) > 1e-12 or np.any(sol.x <= 0):
        raise ConfigError(f"no uniform stationary state found for alpha={config.alpha}, beta={config.beta}, eta={eta:g}")
    return float(sol.x[0]), float(sol.x[1])


def uniform_spectrum(config: SimConfig, eta: float | None = None, nu: float | None = None) -> np.ndarray:
    """Closed-form Hessian spectrum (4N² values, ascending) of the uniform state at n_v = 0.

    Plane waves with −Δ eigenvalue κ(k) = (4/h²)(sin²(k_x h/2) + sin²(k_y h/2)),
    k = 2π m / L, decouple; per k the Hessian is 2h² times the 2×2 blocks

        amplitude (Re ψ1, Re ψ2): [[D1κ + α1 + 3β1u1², νκ − η], [νκ − η, D2κ + α2 + 3β2u2²]]
        phase     (Im ψ1, Im ψ2): [[D1κ + α1 +  β1u1², νκ − η], [νκ − η, D2κ + α2 +  β2u2²]]

    (derivation in docs/hessian.md).
    """
    eta = config.eta if eta is None else float(eta)
    nu = config.nu if nu is None else float(nu)
    u1, u2 = uniform_amplitudes(config, eta)
    N, h = config.N, config.h
    m = np.arange(N)
    s2 = np.sin(np.pi * m / N) ** 2  # sin²(k h / 2) with k = 2π m / L, h = L / N
    kap = (4.0 / h ** 2) * (s2[:, None] + s2[None, :]).ravel()
    (d1, d2), (a1, a2), (b1, b2) = config.D, config.alpha, config.beta
    out = []
    for c1, c2 in ((3.0 * b1 * u1 ** 2, 3.0 * b2 * u2 ** 2), (b1 * u1 ** 2, b2 * u2 ** 2)):
        p = d1 * kap + a1 + c1
        q = d2 * kap + a2 + c2
        r = nu * kap - eta
        mean, half = 0.5 * (p + q), np.sqrt(0.25 * (p - q) ** 2 + r ** 2)
        out += [mean - half, mean + half]
    return np.sort(2.0 * h ** 2 * np.concatenate(out))


def uniform_state(config: SimConfig, eta: float | None = None) -> np.ndarray:
    """The uniform real stationary state (4, N, N) at n_v = 0."""
    u1, u2 = uniform_amplitudes(config, eta)
    z = np.zeros((4, config.N, config.N))
    z[0], z[2] = u1, u2
    return z


# -------------------------------------------------------------------- relaxation
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
    if method not in ("lbfgs", "trust-krylov"):
        raise ConfigError(f"unknown relaxation method {method!r}; valid: ['lbfgs', 'trust-krylov']")
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
                         "gtol": 0.1 * residual_tol * scale / math.sqrt(model.size)},
            )
        else:
            def hessp(x: np.ndarray, v: np.ndarray) -> np.ndarray:
                return Hessian(model, x).matvec(v)

            res = scipy.optimize.minimize(fun, z, jac=True, hessp=hessp, method="trust-krylov", callback=cb,
                                          options={"maxiter": max_iter, "gtol": residual_tol * scale})
        z = np.ascontiguousarray(res.x)
        n_lbfgs = int(res.nit)
        message = str(res.message)
        g = model.gradient(z)
        log.info("relax: %s stopped after %d iterations (%s): F = %.12g, residual %.3e",
                 method, n_lbfgs, message, model.energy(z), residual(model, g))
    n_newton = 0
    r = residual(model, g)
    while r > residual_tol and n_newton < newton_steps:
        hess = Hessian(model, z)
        op = hess.as_linear_operator()
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
            log.warning("relax: Newton step %d did not lower the residual (%.3e); stopping", n_newton, r)
            break
        z, g, r = zt, gt, rt
        log.info("relax: Newton step %d (%d HVPs, step %.3g): residual %.3e", n_newton, hess.n_matvec, t, r)
        if progress is not None:
            progress("newton", n_newton, newton_steps)
    F1 = model.energy(z)
    conv = r <= residual_tol
    if not conv:
        log.warning("relax: residual %.3e above the target %.1e after %d %s + %d Newton steps",
                    r, residual_tol, n_lbfgs, method, n_newton)
    return RelaxResult(z=z, F_before=F0, F_after=F1, grad_norm_before=gn0,
                       grad_norm_after=float(np.linalg.norm(g)), residual_before=r0, residual_after=r,
                       converged=conv, n_lbfgs=n_lbfgs, n_newton=n_newton,
                       message=message or "already stationary")


_relax = relax  # analyze() has a boolean parameter called ``relax``


# ------------------------------------------------------------------- eigenpairs
EIG_METHODS = ("shift-invert", "lanczos")


def lowest_eigenpairs(
    hess: Hessian,
    k: int,
    *,
    method: str = "shift-invert",
    tol: float = 0.0,
    ncv: int | None = None,
    maxiter: int | None = None,
    seed: int = 0,
    progress: Progress | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` lowest eigenpairs of the Hessian with ARPACK (``eigsh``).

    Methods
    -------
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
        "shift-invert" or "lanczos".
    tol
        ARPACK relative accuracy of the Ritz values (0: machine precision).
    ncv
        Lanczos basis size (default max(2k + 1, 64) for "lanczos", 2k + 1 for
        shift-invert; capped at n).
    maxiter
        ARPACK restart limit (scipy's default when None).
    seed
        Seed of the deterministic starting vector.
    progress
        Called as ``progress("eigsh", n_products, None)`` every 200 products/solves.

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
    t0 = time.perf_counter()
    calls = [0]

    def counted(f: Callable[[np.ndarray], np.ndarray], what: str) -> Callable[[np.ndarray], np.ndarray]:
        def g(v: np.ndarray) -> np.ndarray:
            calls[0] += 1
            if calls[0] % 200 == 0:
                log.info("eigsh: %d %s, %.1f s", calls[0], what, time.perf_counter() - t0)
                if progress is not None:
                    progress("eigsh", calls[0], None)
            return f(v)
        return g

    if method == "lanczos":
        mv = counted(hess.matvec, "Hessian-vector products")
        op = spla.LinearOperator((n, n), matvec=mv, rmatvec=mv, dtype=np.float64)
        vals, vecs = spla.eigsh(op, k=k, which="SA", tol=tol, ncv=ncv, maxiter=maxiter, v0=v0)
    else:
        A = hess.sparse()
        t_asm = time.perf_counter() - t0
        lo, hi = spectral_scale(hess, n_steps=40, seed=seed)
        sigma = min(lo, 0.0) - 1e-3 * max(abs(hi), 1e-300)
        import scipy.sparse as sp

        eye = sp.identity(n, format="csc")
        for attempt in range(30):
            lu = spla.splu((A - sigma * eye).tocsc(), permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                           options={"SymmetricMode": True})
            below = int(np.sum(lu.U.diagonal() < 0))
            if below == 0:
                break
            log.info("shift-invert: %d eigenvalue(s) below sigma = %.6g; lowering sigma", below, sigma)
            sigma -= max(1e-3 * abs(hi), 2.0 * abs(sigma))
        else:
            raise ConfigError("could not place the shift below the spectrum (30 attempts)")
        log.info("shift-invert: sparse H (%d nnz) from %d products in %.2f s; LU (%d nnz) of H - sigma I, "
                 "sigma = %.6g", A.nnz, hess.sparse_products, t_asm,
                 lu.L.nnz + lu.U.nnz, sigma)
        solve = counted(lu.solve, "solves")
        opinv = spla.LinearOperator((n, n), matvec=solve, dtype=np.float64)
        vals, vecs = spla.eigsh(A, k=k, sigma=sigma, which="LM", OPinv=opinv, tol=tol, ncv=ncv,
                                maxiter=maxiter, v0=v0)
    order = np.argsort(vals)
    log.info("eigsh (%s): %d eigenpairs, %d operator applications, %.2f s (ncv=%d)", method, k, calls[0],
             time.perf_counter() - t0, ncv)
    return vals[order], vecs[:, order]


def identify_zero_mode(eigenvectors: np.ndarray, z: np.ndarray) -> tuple[int, float]:
    """Index of the eigenvector with the largest overlap with the phase generator, and that overlap."""
    gen = phase_generator(z)
    ov = np.abs(gen @ eigenvectors)
    i = int(np.argmax(ov))
    return i, float(ov[i])


# ---------------------------------------------------------------------- pipeline
@dataclass
class HessianResult:
    """Soft-mode spectrum of one state (output of :func:`analyze`)."""

    config: SimConfig
    """Configuration with the sample's η, n_v, ν filled in."""
    eigenvalues: np.ndarray
    """The ``n_eig`` lowest eigenvalues of ∂²F/∂z², ascending."""
    zero_mode_index: int
    """Index in ``eigenvalues`` of the global-phase mode (largest overlap with the generator)."""
    zero_mode_overlap: float
    """|⟨generator, eigenvector⟩| of that mode (1 = pure phase rotation)."""
    softest_index: int
    """Index of the softest mode other than the phase mode."""
    softest_vector: np.ndarray
    """Eigenvector of the softest mode, (4, N, N)."""
    F_before: float
    F_after: float
    grad_norm_before: float
    grad_norm_after: float
    residual_before: float
    residual_after: float
    relaxed: bool
    """Whether relaxation was run."""
    relax_converged: bool
    """Whether the relaxation reached its residual target (True if not relaxed and already below it)."""
    n_unknowns: int
    lambda_min_est: float
    """Smallest Ritz value of a 30-step Lanczos run (spectral range estimate)."""
    lambda_max_est: float
    """Largest Ritz value of the same run: the spectrum's scale."""
    n_negative: int
    """Eigenvalues below −zero_tol·λ_max (saddle directions), among those computed."""
    counts_below: dict[str, int]
    """Number of computed eigenvalues below thresholds (relative to λ_max), e.g. {"1e-06": 3}."""
    state: np.ndarray
    """The analysed (relaxed) state, (4, N, N)."""
    wall_seconds: float
    timings: dict[str, float] = field(default_factory=dict)
    n_matvec: int = 0
    hvp_method: str = "richardson"
    hvp_step: float = 0.0
    eig_method: str = "shift-invert"
    dos: SpectralDensity | None = None
    zero_tol: float = 1e-7

    @property
    def is_saddle(self) -> bool:
        """Whether any computed eigenvalue is negative (the state is a saddle point)."""
        return self.n_negative > 0

    @property
    def zero_mode_eigenvalue(self) -> float:
        """Eigenvalue of the phase mode."""
        return float(self.eigenvalues[self.zero_mode_index])

    @property
    def soft_eigenvalues(self) -> np.ndarray:
        """The computed eigenvalues without the phase mode."""
        return np.delete(self.eigenvalues, self.zero_mode_index)

    def summary(self) -> dict[str, Any]:
        """Plain-JSON summary (what ``tdglnre hessian --json`` prints)."""
        c = self.config
        d = {
            "eigenvalues": [float(x) for x in self.eigenvalues],
            "zero_mode_index": self.zero_mode_index,
            "zero_mode_eigenvalue": self.zero_mode_eigenvalue,
            "zero_mode_overlap": self.zero_mode_overlap,
            "softest_index": self.softest_index,
            "softest_eigenvalue": float(self.eigenvalues[self.softest_index]),
            "F_before": self.F_before,
            "F_after": self.F_after,
            "grad_norm_before": self.grad_norm_before,
            "grad_norm_after": self.grad_norm_after,
            "residual_before": self.residual_before,
            "residual_after": self.residual_after,
            "relaxed": self.relaxed,
            "relax_converged": self.relax_converged,
            "n_unknowns": self.n_unknowns,
            "N": c.N,
            "eta": c.eta,
            "n_v": c.n_v,
            "nu": c.nu,
            "lambda_max_est": self.lambda_max_est,
            "n_negative": self.n_negative,
            "is_saddle": self.is_saddle,
            "counts_below": dict(self.counts_below),
            "n_matvec": self.n_matvec,
            "hvp_method": self.hvp_method,
            "eig_method": self.eig_method,
            "wall_seconds": self.wall_seconds,
            "timings": dict(self.timings),
        }
        if self.dos is not None:
            d["dos"] = {"n_probes": self.dos.n_probes, "n_steps": self.dos.n_steps,
                        "edges": self.dos.edges.tolist(), "density": self.dos.density.tolist()}
        return d


def _as_state(state: np.ndarray, N: int | None = None) -> np.ndarray:
    a = np.asarray(state)
    if np.iscomplexobj(a):
        if a.ndim != 3 or a.shape[0] != 2 or a.shape[1] != a.shape[2]:
            raise ConfigError(f"complex state must have shape (2, N, N) (band 1, band 2), got {a.shape}")
        a = psi_to_state(a[0], a[1])
    else:
        a = np.asarray(a, dtype=np.float64)
        if a.ndim == 1:
            n = int(round(math.sqrt(a.size / 4)))
            if 4 * n * n != a.size:
                raise ConfigError(f"flat real state must have 4*N^2 values, got {a.size}")
            a = a.reshape(4, n, n)
        if a.ndim != 3 or a.shape[0] != 4 or a.shape[1] != a.shape[2]:
            raise ConfigError(f"real state must have shape (4, N, N), got {a.shape}")
    if N is not None and a.shape[1] != N:
        raise ConfigError(f"state is {a.shape[1]}x{a.shape[2]} but the config has N={N}")
    if not np.all(np.isfinite(a)):
        raise ConfigError("state contains NaN or Inf")
    return np.ascontiguousarray(a, dtype=np.float64)


THRESHOLDS = (1e-8, 1e-6, 1e-4, 1e-2)


def analyze(
    config: SimConfig,
    state: np.ndarray,
    *,
    eta: float | None = None,
    n_v: int | None = None,
    nu: float | None = None,
    n_eig: int = 50,
    relax: bool = True,
    dos: bool = False,
    residual_tol: float = 1e-8,
    max_iter: int = 20000,
    newton_steps: int = 20,
    relax_method: str = "lbfgs",
    hvp_method: str = "richardson",
    eig_method: str = "shift-invert",
    eig_tol: float = 0.0,
    ncv: int | None = None,
    dos_probes: int = 20,
    dos_steps: int = 80,
    dos_bins: int = 80,
    zero_tol: float = 1e-7,
    seed: int = 0,
    blas_thread_limit: int | None = 1,
    progress: Progress | None = None,
) -> HessianResult:
    """Soft-mode spectrum of the GL free-energy Hessian at (a relaxed) ``state``.

    Parameters
    ----------
    config
        Lattice and GL parameters; ``eta``, ``n_v``, ``nu`` override its defaults.
    state
        Complex (2, N, N) ψ or real (4, N, N) / (4N²,) state.
    eta, n_v, nu
        The sample's parameters (default: the config's).
    n_eig
        Number of lowest eigenvalues.
    relax
        Relax to a stationary point first (:func:`relax`).
    dos
        Also estimate the whole-spectrum density of states by SLQ.
    residual_tol, max_iter, newton_steps, relax_method
        Relaxation settings (see :func:`relax`; ``relax_method`` is its ``method``).
    hvp_method
        Hessian-vector product: "richardson" (default), "central" or "exact".
    eig_method, eig_tol, ncv
        ``eigsh`` settings (see :func:`lowest_eigenpairs`).
    dos_probes, dos_steps, dos_bins
        SLQ probes, Lanczos steps per probe and histogram bins.
    zero_tol
        |λ| ≤ zero_tol·λ_max counts as zero; λ < −zero_tol·λ_max as negative.
    seed
        Seed of the Lanczos starting and probe vectors.
    blas_thread_limit
        BLAS threads during the analysis (default 1: the vector work gains
        nothing from threads and spinning OpenBLAS threads slow it down up to
        50× on a busy machine; see :mod:`._blas`). None leaves BLAS alone.
    progress
        ``progress(stage, done, total)`` callback.

    Returns
    -------
    HessianResult

    Raises
    ------
    ConfigError
        Invalid configuration, parameters or state.
    """
    import contextlib

    ctx = blas_threads(blas_thread_limit) if blas_thread_limit else contextlib.nullcontext()
    with ctx:
        return _analyze(config, state, eta=eta, n_v=n_v, nu=nu, n_eig=n_eig, relax=relax, dos=dos,
                        residual_tol=residual_tol, max_iter=max_iter, newton_steps=newton_steps,
                        relax_method=relax_method, hvp_method=hvp_method, eig_method=eig_method, eig_tol=eig_tol,
                        ncv=ncv, dos_probes=dos_probes, dos_steps=dos_steps, dos_bins=dos_bins, zero_tol=zero_tol,
                        seed=seed, progress=progress)


def _analyze(config: SimConfig, state: np.ndarray, *, eta, n_v, nu, n_eig, relax, dos, residual_tol, max_iter,
             newton_steps, relax_method, hvp_method, eig_method, eig_tol, ncv, dos_probes, dos_steps, dos_bins,
             zero_tol, seed, progress) -> HessianResult:
    t_start = time.perf_counter()
    model = EnergyModel(config, eta=eta, n_v=n_v, nu=nu)
    z0 = _as_state(state, model.N).reshape(-1)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    if relax:
        rr = _relax(model, z0, residual_tol=residual_tol, max_iter=max_iter,
                                newton_steps=newton_steps, method=relax_method, progress=progress)
        z = rr.z
        F0, F1, gn0, gn1, r0, r1, conv = (rr.F_before, rr.F_after, rr.grad_norm_before, rr.grad_norm_after,
                                          rr.residual_before, rr.residual_after, rr.converged)
    else:
        z = z0
        g = model.gradient(z)
        F0 = F1 = model.energy(z)
        gn0 = gn1 = float(np.linalg.norm(g))
        r0 = r1 = residual(model, g)
        conv = r1 <= residual_tol
        if not conv:
            log.warning("analysing a non-stationary state (residual %.3e): the phase mode is not an exact zero mode",
                        r1)
    timings["relax"] = time.perf_counter() - t
    hess = Hessian(model, z, method=hvp_method)
    t = time.perf_counter()
    lo_est, hi_est = spectral_scale(hess, seed=seed)
    timings["scale"] = time.perf_counter() - t
    t = time.perf_counter()
    vals, vecs = lowest_eigenpairs(hess, n_eig, method=eig_method, tol=eig_tol, ncv=ncv, seed=seed, progress=progress)
    timings["eigsh"] = time.perf_counter() - t
    zi, zov = identify_zero_mode(vecs, z)
    others = [i for i in range(vals.shape[0]) if i != zi]
    si = int(others[int(np.argmin(vals[others]))]) if others else zi
    scale = max(abs(hi_est), abs(lo_est), 1e-300)
    n_neg = int(np.sum(vals < -zero_tol * scale))
    counts = {f"{th:g}": int(np.sum(vals < th * scale)) for th in THRESHOLDS}
    log.info("spectrum: lambda_max ~ %.4g; phase mode #%d lambda = %.3e (overlap %.6f); softest #%d lambda = %.6g; "
             "%d negative", hi_est, zi, vals[zi], zov, si, vals[si], n_neg)
    if n_neg:
        log.info("the state is a saddle point: %d negative eigenvalue(s) among the %d lowest", n_neg, n_eig)
    density = None
    if dos:
        t = time.perf_counter()

        def dos_progress(done: int, total: int) -> None:
            if progress is not None:
                progress("dos", done, total)

        density = slq_density(hess.matvec, hess.n, n_probes=dos_probes, n_steps=dos_steps, bins=dos_bins,
                              seed=seed + 1, progress=dos_progress)
        timings["dos"] = time.perf_counter() - t
    wall = time.perf_counter() - t_start
    return HessianResult(
        config=model.config, eigenvalues=vals, zero_mode_index=zi, zero_mode_overlap=zov, softest_index=si,
        softest_vector=vecs[:, si].reshape(model.shape).copy(), F_before=F0, F_after=F1,
        grad_norm_before=gn0, grad_norm_after=gn1, residual_before=r0, residual_after=r1, relaxed=relax,
        relax_converged=bool(conv), n_unknowns=model.size, lambda_min_est=lo_est, lambda_max_est=hi_est,
        n_negative=n_neg, counts_below=counts, state=z.reshape(model.shape).copy(),
        wall_seconds=wall, timings=timings, n_matvec=hess.n_matvec, hvp_method=hvp_method,
        hvp_step=hess.step, eig_method=eig_method, dos=density, zero_tol=zero_tol,
    )


# ---------------------------------------------------------------- state sources
def _sample_params(prior: Any, theta: np.ndarray) -> dict[str, float]:
    """Solver parameters {eta, n_v, nu} of one θ row (fixed ones from the prior)."""
    arr = prior.params(np.atleast_2d(theta))
    return {"eta": float(arr["eta"][0]), "n_v": int(round(float(arr["n_v"][0]))), "nu": float(arr["nu"][0])}


def state_from_ensemble(path: str | Path, index: int, snapshot: int = -1
                        ) -> tuple[SimConfig, np.ndarray, dict[str, float]]:
    """Read sample ``index`` of an ensemble file written with ``--store-fields``.

    Uses :func:`tdglnre.io.ensemble.open_ensemble` (which checks the magic
    string, version and completeness). The sample's parameters are the
    config's values (fixed parameters) overridden by its ``theta`` row in
    ``parameter_names`` order.

    Returns
    -------
    config, psi (2, N, N) complex128, params {"eta", "n_v", "nu"}

    Raises
    ------
    ConfigError
        Missing file, not an ensemble, no stored fields, index or snapshot out of range.
    """
    from ..io.ensemble import open_ensemble

    path = Path(path)
    if not path.exists():
        raise ConfigError(f"ensemble file {path} does not exist")
    with open_ensemble(path) as ens:
        if not ens.has_fields:
            raise ConfigError(f"{path} has no 'psi' dataset: regenerate it with `tdglnre generate --store-fields`")
        if not 0 <= index < ens.n_complete:
            raise ConfigError(f"sample index {index} out of range: {path} has {ens.n_complete} complete samples")
        T = len(ens.snapshot_times)
        if not -T <= snapshot < T:
            raise ConfigError(f"snapshot {snapshot} out of range: {path} stores {T} snapshots")
        config = ens.config
        params = _sample_params(ens.prior, ens.theta(index, index + 1))
        psi = np.asarray(ens.psi(index, index + 1)[0, snapshot], dtype=np.complex128)
    log.info("read sample %d, snapshot %d of %s (%s)", index, snapshot, path, params)
    return config, psi, params


def state_from_preset(name: str | Path, overrides: Any = (), *, seed: int = 0, index: int = 0
                      ) -> tuple[SimConfig, np.ndarray, dict[str, float]]:
    """Sample ``index`` of run ``seed`` of a preset, simulated afresh.

    The parameters are drawn from the preset's prior exactly as ``tdglnre
    generate --preset NAME --seed SEED`` draws sample ``index`` (they depend
    only on (seed, index)); ``overrides`` are ``--set`` strings (``eta=0.5``
    fixes a parameter).

    Returns
    -------
    config, psi (2, N, N) complex128, params {"eta", "n_v", "nu"}
    """
    from ..io.presets import load_preset

    config, prior = load_preset(name, overrides)
    params = _sample_params(prior, prior.sample(seed, [index]))
    psi = state_from_simulation(config, params, seed=seed, index=index)
    log.info("simulated sample %d of preset %s, seed %d (%s)", index, name, seed, params)
    return config, psi, params


def state_from_simulation(config: SimConfig, params: dict[str, float] | None = None, *, seed: int = 0,
                          index: int = 0) -> np.ndarray:
    """Quench state ψ (2, N, N) at the config's last snapshot time (sample ``index`` of run ``seed``)."""
    from ..physics.solver import simulate

    params = {k: [v] for k, v in (params or {}).items()}
    res = simulate(config, params, seed=seed, sample_indices=[index])
    return np.asarray(res.psi[0, -1], dtype=np.complex128)


# ----------------------------------------------------------------------- output
def save(result: HessianResult, path: str | Path) -> Path:
    """Write a result to HDF5 (``.h5``/``.hdf5``) or NPZ (``.npz``).

    Contents: eigenvalues, softest_mode (4, N, N), state (4, N, N), the DOS
    (edges, density, nodes, weights) if computed, and attributes ``format``,
    ``format_version``, ``config`` (JSON) and ``summary`` (JSON of
    :meth:`HessianResult.summary`).
    """
    path = Path(path)
    summ = result.summary()
    summ.pop("dos", None)
    if result.dos is not None:
        summ["dos_probes"], summ["dos_steps"] = result.dos.n_probes, result.dos.n_steps
    arrays = {"eigenvalues": result.eigenvalues, "softest_mode": result.softest_vector, "state": result.state}
    if result.dos is not None:
        arrays.update(dos_edges=result.dos.edges, dos_density=result.dos.density, dos_nodes=result.dos.nodes,
                      dos_weights=result.dos.weights)
    attrs = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": result.config.to_json(),
             "summary": json.dumps(summ)}
    if path.suffix == ".npz":
        np.savez_compressed(path, **arrays, **{k: np.asarray(v) for k, v in attrs.items()})
    elif path.suffix in (".h5", ".hdf5"):
        import h5py

        with h5py.File(path, "w") as f:
            for k, v in attrs.items():
                f.attrs[k] = v
            for k, v in arrays.items():
                f.create_dataset(k, data=v)
    else:
        raise ConfigError(f"output file must end in .h5, .hdf5 or .npz, got {path.name!r}")
    log.info("wrote %s", path)
    return path


def load(path: str | Path) -> dict[str, Any]:
    """Read a file written by :func:`save` into a dict (arrays, ``config``, ``summary``)."""
    path = Path(path)
    out: dict[str, Any] = {}
    if path.suffix == ".npz":
        with np.load(path) as f:
            for k in f.files:
                out[k] = f[k]
        meta = {k: str(out.pop(k)) for k in ("format", "format_version", "config", "summary")}
    else:
        import h5py

        with h5py.File(path, "r") as f:
            meta = {k: f.attrs[k] for k in ("format", "format_version", "config", "summary")}
            for k in f:
                out[k] = f[k][()]
    if str(meta["format"]) != FORMAT:
        raise ConfigError(f"{path} is not a {FORMAT} file (format={meta['format']!r})")
    out["config"] = SimConfig.from_json(str(meta["config"]))
    out["summary"] = json.loads(str(meta["summary"]))
    return out


def load_result(path: str | Path) -> HessianResult:
    """Rebuild a :class:`HessianResult` from a file written by :func:`save` (e.g. to redraw figures)."""
    d = load(path)
    sm = d["summary"]
    dos = None
    if "dos_nodes" in d:
        dos = SpectralDensity(d["dos_nodes"], d["dos_weights"], d["dos_edges"], d["dos_density"],
                              int(sm.get("dos_probes", 0)), int(sm.get("dos_steps", 0)))
    return HessianResult(
        config=d["config"], eigenvalues=d["eigenvalues"], zero_mode_index=int(sm["zero_mode_index"]),
        zero_mode_overlap=float(sm["zero_mode_overlap"]), softest_index=int(sm["softest_index"]),
        softest_vector=d["softest_mode"], F_before=sm["F_before"], F_after=sm["F_after"],
        grad_norm_before=sm["grad_norm_before"], grad_norm_after=sm["grad_norm_after"],
        residual_before=sm["residual_before"], residual_after=sm["residual_after"], relaxed=sm["relaxed"],
        relax_converged=sm["relax_converged"], n_unknowns=sm["n_unknowns"], lambda_min_est=float("nan"),
        lambda_max_est=sm["lambda_max_est"], n_negative=sm["n_negative"],
        counts_below=sm["counts_below"], state=d["state"], wall_seconds=sm["wall_seconds"],
        timings=sm.get("timings", {}), n_matvec=sm.get("n_matvec", 0), hvp_method=sm.get("hvp_method", ""),
        eig_method=sm.get("eig_method", ""), dos=dos,
    )


__all__ = [
    "Hessian", "HessianResult", "RelaxResult", "analyze", "dense_hessian", "identify_zero_mode", "load",
    "load_result",
    "lowest_eigenpairs", "phase_generator", "relax", "residual", "save", "spectral_scale",
    "uniform_amplitudes", "uniform_spectrum", "uniform_state", "state_from_ensemble", "state_from_preset",
    "state_from_simulation",
]
