"""Free-energy gradient and Hessian-vector products of one sample on the device (issue 11).

The gradient ∂F/∂z is the ``step`` Euler kernel with (keep, scale) = (0, −2h²)
(its disorder variant when the sample has δ ≠ 0), so it is the CPU
:class:`tdglnre.physics.solver.EnergyModel`'s own update on the device.
Device buffers are cached per shape (issue 22 #8): a gradient or a product
allocates nothing after its first call.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse.linalg as spla
from numba import cuda

from ...errors import ConfigError
from ..config import SimConfig
from ..options import DEFAULT_REL_STEP
from ..solver import EnergyModel
from . import kernels as dk
from .device import require_cuda


# --------------------------------------------------------------------------- kernels
@cuda.jit
def displace_kernel(z, v, ds, w):
    """w[r] = z + ds[r]·v for every row r (the finite-difference points of an HVP)."""
    k = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    if k < z.shape[0]:
        zk = z[k]
        vk = v[k]
        for r in range(ds.shape[0]):
            w[r, k] = zk + ds[r] * vk


@cuda.jit
def richardson_kernel(g, d, nv, out):
    """out = nv·[4 D(d/2) − D(d)]/3 with D(δ) = (g(z+δv) − g(z−δv))/(2δ), rows g = (+d, −d, +d/2, −d/2)."""
    k = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    if k < out.shape[0]:
        big = (g[0, k] - g[1, k]) / (2.0 * d)
        small = (g[2, k] - g[3, k]) / (2.0 * (0.5 * d))
        x = small * 4.0
        x -= big
        x /= 3.0
        out[k] = x * nv


@cuda.jit
def central_kernel(g, d, nv, out):
    """out = nv·(g(z+dv) − g(z−dv))/(2d)."""
    k = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    if k < out.shape[0]:
        out[k] = (g[0, k] - g[1, k]) / (2.0 * d) * nv



class CudaEnergyModel:
    """F, ∂F/∂z of one sample with the gradient on the device (float64).

    The same coefficients as :class:`tdglnre.physics.solver.EnergyModel`
    (keep = 0, scale = −2h²) run through the ``step`` kernel; with pinning
    disorder (``delta`` ≠ 0) the disorder variant of that kernel with the CPU
    model's landscape ξ and coefficients −2h²·α_b·δ, so the gradient is that
    of the CPU energy with α_b(r) = α_b(1 + δξ(r)). ``delta``, ``seed``,
    ``index`` and ``xi`` are :class:`tdglnre.physics.solver.EnergyModel`'s. F
    itself is evaluated by the CPU model (one O(N²) sweep, needed only by line
    searches).
    """

    def __init__(self, config: SimConfig, *, eta: float | None = None, n_v: int | None = None,
                 nu: float | None = None, delta: float | None = None, seed: int | None = None,
                 index: int | None = None, xi: np.ndarray | None = None):
        require_cuda()
        self.cpu = EnergyModel(config, eta=eta, n_v=n_v, nu=nu, delta=delta, seed=seed, index=index, xi=xi)
        self.config = self.cpu.config
        self.N = self.cpu.N
        self.shape = self.cpu.shape
        self.size = self.cpu.size
        self._co = self.cpu._grad_co[None, :]
        self._ly = self.cpu._ly[None]
        self._lx = self.cpu._lx[None]
        self._dev: dict[int, tuple[Any, ...]] = {}
        self._kern = dk.euler_kernels("float64", self.cpu.xi is not None, False)["step"]
        self._io: tuple[Any, Any] | None = None  # (z, gradient) device rows of gradient()

    def _tables(self, rows: int):
        """Device coefficient, link and disorder tables repeated for ``rows`` gradient evaluations (cached)."""
        if rows not in self._dev:
            tabs = [np.repeat(self._co, rows, axis=0), np.repeat(self._ly, rows, axis=0),
                    np.repeat(self._lx, rows, axis=0)]
            xi, dco, amp, keys = dk.placeholders(np.dtype(np.float64), rows)
            if self.cpu.xi is not None:
                xi = np.repeat(self.cpu.xi.reshape(1, -1), rows, axis=0)
                dco = np.repeat(self.cpu._grad_dco[None, :], rows, axis=0)
            tabs += [xi, dco, amp, keys]
            self._dev[rows] = tuple(cuda.to_device(np.ascontiguousarray(t)) for t in tabs)
        return self._dev[rows]

    def gradient_device(self, d_z, d_out) -> None:
        """∂F/∂z of each row of the device array ``d_z`` (R, 4N²) into ``d_out`` (R, 4N²)."""
        rows = d_z.shape[0]
        tabs = self._tables(rows)
        grid, tpb = dk.grid(self.N * self.N, rows)
        self._kern[grid, tpb](d_z, d_out, *tabs, 0)

    def energy(self, z: np.ndarray) -> float:
        """Free energy F(z) (host)."""
        return self.cpu.energy(z)

    def gradient(self, z: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Real gradient ∂F/∂z with the shape of ``z``, computed on the device (buffers reused across calls)."""
        st = self.cpu._as_state(z).reshape(1, -1)
        if self._io is None:
            self._io = (cuda.device_array_like(st), cuda.device_array_like(st))
        d_z, d_g = self._io
        d_z.copy_to_device(st)
        self.gradient_device(d_z, d_g)
        g = d_g.copy_to_host().reshape(np.shape(z))
        if out is not None:
            out[...] = g.reshape(out.shape)
            return out
        return g


class CudaHessian:
    """Matrix-free Hessian-vector products on the device (Richardson or central differences).

    Mirrors the CPU ``Hessian`` of :mod:`tdglnre.analysis.hessian`: for a unit
    vector v̂, D(δ) = [g(z+δv̂) − g(z−δv̂)]/(2δ) and the Richardson product
    [4 D(δ/2) − D(δ)]/3 is exact for the cubic gradient up to rounding; the
    four gradients run as one launch of four rows. ``v`` crosses to the device
    and ``Hv`` back once per product, through buffers allocated once.
    """

    METHODS = ("richardson", "central")
    #: Default relative step per method: :data:`tdglnre.physics.options.DEFAULT_REL_STEP`, the CPU Hessian's.
    DEFAULT_REL_STEP = {m: DEFAULT_REL_STEP[m] for m in METHODS}

    def __init__(self, model: CudaEnergyModel, z: np.ndarray, *, method: str = "richardson",
                 rel_step: float | None = None):
        if method not in self.METHODS:
            raise ConfigError(f"unknown device HVP method {method!r}; valid: {list(self.METHODS)}")
        self.model = model
        self.method = method
        self.n = model.size
        z = np.ascontiguousarray(z, dtype=np.float64).reshape(-1)
        if z.size != self.n:
            raise ConfigError(f"state has {z.size} values, expected 4*N^2 = {self.n}")
        rs = self.DEFAULT_REL_STEP[method] if rel_step is None else float(rel_step)
        if not rs > 0:
            raise ConfigError(f"rel_step must be positive, got {rel_step!r}")
        self.step = rs * max(1.0, float(np.abs(z).max()))
        d = self.step
        ds = np.array([d, -d, 0.5 * d, -0.5 * d] if method == "richardson" else [d, -d])
        self._rows = ds.shape[0]
        self._z = cuda.to_device(z.copy())
        self._ds = cuda.to_device(ds)
        self._v = cuda.device_array(self.n, dtype=np.float64)
        self._w = cuda.device_array((self._rows, self.n), dtype=np.float64)
        self._g = cuda.device_array((self._rows, self.n), dtype=np.float64)
        self._out = cuda.device_array(self.n, dtype=np.float64)
        self._host = np.empty(self.n, dtype=np.float64)
        self.n_matvec = 0

    def matvec(self, v: np.ndarray) -> np.ndarray:
        """H v for a vector of length 4N² (any shape with that many values)."""
        v = np.asarray(v, dtype=np.float64).reshape(-1)
        if v.size != self.n:
            raise ConfigError(f"vector has {v.size} values, expected 4*N^2 = {self.n}")
        self.n_matvec += 1
        nv = float(np.linalg.norm(v))
        if nv == 0.0:
            return np.zeros(self.n)
        self._v.copy_to_device(np.ascontiguousarray(v / nv))
        grid, tpb = dk.grid(self.n, 1)
        displace_kernel[grid[0], tpb](self._z, self._v, self._ds, self._w)
        self.model.gradient_device(self._w, self._g)
        if self.method == "richardson":
            richardson_kernel[grid[0], tpb](self._g, self.step, nv, self._out)
        else:
            central_kernel[grid[0], tpb](self._g, self.step, nv, self._out)
        self._out.copy_to_host(self._host)
        return self._host.copy()

    def as_linear_operator(self) -> spla.LinearOperator:
        """Symmetric :class:`scipy.sparse.linalg.LinearOperator` for ``eigsh``."""
        return spla.LinearOperator((self.n, self.n), matvec=self.matvec, rmatvec=self.matvec,
                                   dtype=np.float64)
