"""Length scales of the uniform two-band state: coherence lengths, London depth, regime.

docs/physics.md, "Screening (λ < ∞)", derives everything here; this module
evaluates it. Pure NumPy (no numba), so configs and presets can print the
lengths without compiling anything.

* :func:`uniform_state` — the amplitudes (f₁, f₂) ≥ 0 of the phase-locked
  uniform ground state, minimising V = Σᵢ(αᵢfᵢ² + βᵢfᵢ⁴/2) − 2|η|f₁f₂.
* :func:`stiffness` — K = D₁f₁² + D₂f₂² + 2ν f₁f₂ s (s = sign η, the relative
  phase of the locked bands), so that the field coefficient is c = λ²K.
* :func:`coherence_lengths` — the normal-mode lengths ξ_a = √2/μ_a from
  det(M − μ²𝒟) = 0, which mix the bands when η ≠ 0 or ν ≠ 0 (Carlström,
  Babaev & Speight, Phys. Rev. B 83, 174509 (2011)).
* :func:`regime` — "I", "1.5" or "II" from √2λ against those lengths
  (Babaev & Speight, Phys. Rev. B 72, 180502 (2005)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError

#: The regimes :func:`regime` returns.
REGIMES = ("I", "1.5", "II")


def _potential_gradient(f: np.ndarray, alpha, beta, eta: float) -> np.ndarray:
    """∂V/∂fᵢ / 2 = αᵢfᵢ + βᵢfᵢ³ − |η| fⱼ."""
    e = abs(eta)
    return np.array([alpha[0] * f[0] + beta[0] * f[0] ** 3 - e * f[1],
                     alpha[1] * f[1] + beta[1] * f[1] ** 3 - e * f[0]])


def _potential(f: np.ndarray, alpha, beta, eta: float) -> float:
    return float(sum(alpha[i] * f[i] ** 2 + 0.5 * beta[i] * f[i] ** 4 for i in range(2))
                 - 2.0 * abs(eta) * f[0] * f[1])


def _newton(f: np.ndarray, alpha, beta, eta: float) -> np.ndarray:
    """Polish a stationary point of V with Newton's method on ∂V/∂f = 0 (2×2)."""
    e = abs(eta)
    for _ in range(100):
        g = _potential_gradient(f, alpha, beta, eta)
        jac = np.array([[alpha[0] + 3.0 * beta[0] * f[0] ** 2, -e],
                        [-e, alpha[1] + 3.0 * beta[1] * f[1] ** 2]])
        try:
            step = np.linalg.solve(jac, g)
        except np.linalg.LinAlgError:
            break
        f = f - step
        if np.abs(step).max() <= 1e-15 * max(1.0, np.abs(f).max()):
            break
    return f


def uniform_state(alpha, beta, eta: float) -> tuple[float, float]:
    """Amplitudes (f₁, f₂) of the uniform ground state (phase-locked; 0 in a normal band).

    With η ≠ 0 the relative phase locks to 0 (η > 0) or π (η < 0) and only
    |η| enters. The minimum of V over f ≥ 0 is found by damped fixed-point
    descent from the larger of the bare amplitudes and polished with Newton's
    method; β > 0 makes V bounded below.
    """
    a = (float(alpha[0]), float(alpha[1]))
    b = (float(beta[0]), float(beta[1]))
    if min(b) <= 0:
        raise ConfigError(f"`beta` must be positive in both bands, got {b}")
    e = abs(float(eta))
    # start above the minimum (the invariant-box argument of config.density_bound)
    r2 = max((e - a[0]) / b[0], (e - a[1]) / b[1], 0.0)
    best = np.zeros(2)
    if r2 > 0:
        f = _newton(np.full(2, math.sqrt(r2)), a, b, e)
        if not _is_minimum(f, a, b, e):
            f = _descend(np.full(2, math.sqrt(r2) + 1e-3), a, b, e)
        if _potential(f, a, b, e) < _potential(best, a, b, e):
            best = np.abs(f)
    return float(best[0]), float(best[1])


def _is_minimum(f: np.ndarray, alpha, beta, eta: float) -> bool:
    """f > 0, ∂V/∂f = 0 to round-off and the 2×2 Hessian positive definite."""
    if not (np.all(np.isfinite(f)) and f.min() > 0):
        return False
    g = _potential_gradient(f, alpha, beta, eta)
    jac = np.array([[alpha[0] + 3.0 * beta[0] * f[0] ** 2, -abs(eta)],
                    [-abs(eta), alpha[1] + 3.0 * beta[1] * f[1] ** 2]])
    return bool(np.abs(g).max() <= 1e-10 * max(1.0, float(f.max()) ** 3) and np.linalg.eigvalsh(jac).min() > 0)


def _descend(f: np.ndarray, alpha, beta, eta: float) -> np.ndarray:
    """Projected gradient descent on V over f ≥ 0 (the fallback when Newton from above fails)."""
    a, b, e = alpha, beta, eta
    for _ in range(20000):
        g = _potential_gradient(f, a, b, e)
        rate = 1.0 / (abs(a[0]) + abs(a[1]) + 3.0 * max(b) * float(f.max()) ** 2 + 2.0 * e + 1e-300)
        f_new = np.maximum(f - rate * g, 0.0)
        if np.abs(f_new - f).max() <= 1e-13 * max(1.0, f.max()):
            f = f_new
            break
        f = f_new
    if f.min() > 0:
        f = _newton(f, a, b, e)
    return f


def stiffness(D, nu: float, f: tuple[float, float], eta: float = 0.0) -> float:
    """Superfluid stiffness K = D₁f₁² + D₂f₂² + 2ν f₁f₂·sign(η) of the locked uniform state.

    The drag term couples the two phase gradients; with ψ₂ = −f₂e^{iφ}
    (η < 0) its sign flips. With η = 0 the bands' phases are independent and
    the field couples to both through K as for η > 0 (a common winding).
    """
    s = -1.0 if eta < 0 else 1.0
    return float(D[0] * f[0] ** 2 + D[1] * f[1] ** 2 + 2.0 * nu * s * f[0] * f[1])


def field_coefficient(lam: float, D, alpha, beta, eta: float, nu: float) -> float:
    """c = λ²K: the coefficient of ∫B² that gives London depth ``lam`` (docs/physics.md)."""
    if not (math.isfinite(lam) and lam > 0):
        raise ConfigError(f"`lam` (the penetration depth) must be positive and finite here, got {lam!r}")
    f = uniform_state(alpha, beta, eta)
    K = stiffness(D, nu, f, eta)
    if K <= 0:
        raise ConfigError("the uniform state is normal (no condensate): the penetration depth is undefined")
    return lam * lam * K


@dataclass(frozen=True)
class CoherenceLengths:
    """Normal-mode coherence lengths of the uniform state, longest first."""

    xi: tuple[float, ...]
    """ξ_a = √2/μ_a of the condensate modes, descending (one entry when a band is normal and decoupled)."""
    modes: np.ndarray
    """Columns: the amplitude mixture (u₁, u₂) of each mode (unit vectors), in the order of ``xi``."""

    @property
    def longest(self) -> float:
        return self.xi[0]

    @property
    def shortest(self) -> float:
        return self.xi[-1]


def coherence_lengths(D, alpha, beta, eta: float, nu: float = 0.0) -> CoherenceLengths:
    """Coherence lengths from det(M − μ²𝒟) = 0 (docs/physics.md, "Coherence lengths").

    M = [[α₁+3β₁f₁², −|η|], [−|η|, α₂+3β₂f₂²]] is the amplitude block of the
    uniform state's Hessian and 𝒟 = [[D₁, ν s], [ν s, D₂]] its gradient
    matrix (s = sign η); ξ_a = √2/μ_a, so one band gives ξ² = D/|α|. A band
    with no condensate that nothing couples to (f = 0, η = ν = 0) has no
    condensate mode and is left out.
    """
    from scipy.linalg import eigh

    f = uniform_state(alpha, beta, eta)
    if max(f) == 0.0:
        raise ConfigError("the uniform state is normal (no condensate): no coherence length")
    s = -1.0 if eta < 0 else 1.0
    e = abs(float(eta))
    M = np.array([[alpha[0] + 3.0 * beta[0] * f[0] ** 2, -e],
                  [-e, alpha[1] + 3.0 * beta[1] * f[1] ** 2]], dtype=float)
    G = np.array([[D[0], nu * s], [nu * s, D[1]]], dtype=float)
    if np.linalg.eigvalsh(G).min() <= 0:
        raise ConfigError(f"the gradient matrix [[D1, nu], [nu, D2]] must be positive definite (D={tuple(D)}, nu={nu})")
    decoupled = e == 0.0 and nu == 0.0
    if decoupled:
        keep = [i for i in range(2) if f[i] > 0]
        mu2 = np.array([M[i, i] / G[i, i] for i in keep])
        vecs = np.eye(2)[:, keep]
    else:
        mu2, vecs = eigh(M, G)
        vecs = vecs / np.linalg.norm(vecs, axis=0)
    if mu2.min() <= 0:
        raise ConfigError("the uniform state is not a minimum (a mode with μ² ≤ 0): no coherence length")
    xi = np.sqrt(2.0 / mu2)
    order = np.argsort(-xi)
    return CoherenceLengths(tuple(float(x) for x in xi[order]), np.asarray(vecs)[:, order])


def regime(lam: float, xi: CoherenceLengths | tuple[float, ...]) -> str:
    """"I", "1.5" or "II" from the field mass 1/λ against the condensate modes' masses √2/ξ_a.

    Type II: √2λ ≥ every ξ (the field outlasts the densities: repulsion);
    Type I: √2λ < every ξ (attraction); Type 1.5: in between (long-range
    attraction, short-range repulsion). The Bogomolny point √2λ = ξ of one
    band is counted on the Type II side (its vortices do not interact).
    """
    lengths = xi.xi if isinstance(xi, CoherenceLengths) else tuple(float(x) for x in xi)
    if not lengths:
        raise ConfigError("no coherence length given")
    if not (lam > 0):
        raise ConfigError(f"`lam` must be positive, got {lam!r}")
    if math.isinf(lam):
        return "II"
    s = math.sqrt(2.0) * lam
    if s >= max(lengths):
        return "II"
    if s < min(lengths):
        return "I"
    return "1.5"
