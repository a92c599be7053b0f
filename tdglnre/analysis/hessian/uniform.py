"""Closed-form Hessian spectrum of the uniform state at n_v = 0 (the reference for the tests).

Derivation: docs/physics.md, "Hessian of the uniform state (n_v = 0)".
"""

from __future__ import annotations

import numpy as np
import scipy.optimize

from ...errors import ConfigError
from ...physics.config import SimConfig


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
        raise ConfigError(f"no uniform stationary state found for alpha={config.alpha}, beta={config.beta}, "
                          f"eta={eta:g}")
    return float(sol.x[0]), float(sol.x[1])


def uniform_spectrum(config: SimConfig, eta: float | None = None, nu: float | None = None) -> np.ndarray:
    """Closed-form Hessian spectrum (4N² values, ascending) of the uniform state at n_v = 0.

    Plane waves with −Δ eigenvalue κ(k) = (4/h²)(sin²(k_x h/2) + sin²(k_y h/2)),
    k = 2π m / L, decouple; per k the Hessian is 2h² times the 2×2 blocks

        amplitude (Re ψ1, Re ψ2): [[D1κ + α1 + 3β1u1², νκ − η], [νκ − η, D2κ + α2 + 3β2u2²]]
        phase     (Im ψ1, Im ψ2): [[D1κ + α1 +  β1u1², νκ − η], [νκ − η, D2κ + α2 +  β2u2²]]

    (derivation in docs/physics.md, "Hessian of the uniform state (n_v = 0)").
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


__all__ = ["uniform_amplitudes", "uniform_spectrum", "uniform_state"]
