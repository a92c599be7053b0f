"""F and ∂F/∂(ψ, a) of one screened sample (λ < ∞): :class:`ScreenedEnergyModel`.

docs/physics.md, "Screening (λ < ∞)" and "Gauge modes of the screened
Hessian". Coordinates are the real state (6, N, N) = (Re ψ1, Im ψ1, Re ψ2,
Im ψ2, a_x, a_y) or its flattening (6N²,), float64. The gradient is the
screened step's own numba sweep (:func:`.screened.apply`) with keep = 0 and
scales (−2h², −1), the code path of the dynamics; F is the NumPy reference
:func:`.reference.screened_energy` (only line searches need it). Pinning
disorder is not covered (a ConfigError says so).
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from . import reference as ref
from . import screened
from ._memory import check_distinct
from .config import SimConfig
from .lattice import landau_links
from .screening import field_coefficients


class ScreenedEnergyModel:
    """F(ψ, a) and its real gradient for the screened model, same interface as :class:`.solver.EnergyModel`.

    Attributes ``config``, ``N``, ``shape`` = (6, N, N), ``size`` = 6N² and
    ``c`` (the field coefficient λ²K of the sample's (η, ν)).
    """

    screened = True

    def __init__(self, config: SimConfig, *, eta: float | None = None, n_v: int | None = None,
                 nu: float | None = None, delta: float | None = None, **_ignored):
        cfg = config.replace(eta=config.eta if eta is None else float(eta),
                             n_v=config.n_v if n_v is None else n_v,
                             nu=config.nu if nu is None else float(nu),
                             delta=config.delta if delta is None else float(delta), dtype="float64")
        cfg.validate()
        if not cfg.screened:
            raise ConfigError("ScreenedEnergyModel needs lam < inf; use EnergyModel for the fixed field")
        if cfg.delta != 0.0:
            raise ConfigError(f"the screened energy model has no pinning disorder yet (delta={cfg.delta:g}); "
                              "use delta=0 or lam=inf")
        self.config = cfg
        self.N = cfg.N
        self.shape = (screened.N_COMP, cfg.N, cfg.N)
        self.size = screened.N_COMP * cfg.N * cfg.N
        h = cfg.h
        self.c = float(field_coefficients(cfg.lam, cfg.D, cfg.alpha, cfg.beta, np.array([cfg.eta]),
                                          np.array([cfg.nu]))[0])
        self._co = screened.coefficients(cfg.D, cfg.alpha, cfg.beta, h, cfg.L, np.array([cfg.eta]),
                                         np.array([cfg.nu]), np.array([cfg.n_v]), np.array([self.c]),
                                         scale=-2.0 * h * h, keep=0.0, scale_a=-1.0)[0]
        self._bg = screened.background_links(cfg.N, cfg.L, np.array([cfg.n_v]))[0]
        self._links = landau_links(cfg.N, cfg.L, int(cfg.n_v))
        self._pars = dict(alpha=cfg.alpha, beta=cfg.beta, D=cfg.D, eta=cfg.eta, nu=cfg.nu)

    def _as_state(self, z: np.ndarray) -> np.ndarray:
        z = np.ascontiguousarray(z, dtype=np.float64)
        if z.size != self.size:
            raise ConfigError(f"state has {z.size} values, expected 6*N^2 = {self.size} (psi and a)")
        return z.reshape(self.shape)

    def energy(self, z: np.ndarray) -> float:
        """Free energy F(ψ, a) (docs/physics.md, "Screening (λ < ∞)")."""
        s = self._as_state(z)
        return float(ref.screened_energy(s[0] + 1j * s[1], s[2] + 1j * s[3], s[4], s[5], self._links, c=self.c,
                                         **self._pars))

    def gradient(self, z: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Real gradient ∂F/∂(z, a) with the shape of ``z``, from the screened step's sweep."""
        st = self._as_state(z)
        res = np.empty(self.shape) if out is None else out.reshape(self.shape)
        check_distinct(res, st)
        screened.apply(st, res, self._co, self._bg)
        return res.reshape(np.shape(z))


def energy_model(config: SimConfig, **kw):
    """The energy model of ``config``: :class:`.solver.EnergyModel` at λ = ∞, else :class:`ScreenedEnergyModel`."""
    if config.screened:
        return ScreenedEnergyModel(config, **kw)
    from .solver import EnergyModel

    return EnergyModel(config, **kw)


__all__ = ["ScreenedEnergyModel", "energy_model"]
