"""Screening (λ < ∞) settings: checks of λ and σ and the time-step bound of the a update.

docs/physics.md, "Screening (λ < ∞)". The config's ``lam`` is the London depth
of the uniform ground state; the field coefficient c = λ²K (K the stiffness of
:mod:`.lengths`) depends on the sample's (η, ν), so it is computed per sample
(:func:`field_coefficients`). ``sigma`` is the relaxation rate of a
(σ ∂ₜa_μ = J_μ − (2c/h²)(Φ_{p⁺} − Φ_{p⁻})).

Pure Python (no numba), imported by :mod:`.config`; it may not import it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import ConfigError
from .lengths import field_coefficient

#: Default relaxation rate σ of the vector potential (a normal-state conductivity, package units).
DEFAULT_SIGMA = 1.0


def _number(value: Any) -> float | None:
    """``value`` as a float, or None when it is not a real number (bools refused)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    return float(value)


def check_screening(lam: Any, sigma: Any, h: float) -> None:
    """Raise one :class:`ConfigError` naming the value for a bad λ or σ.

    λ must be a number > 0 (``inf``: the fixed field, no screening) that the
    lattice resolves (λ >= h when finite); σ a finite number > 0.
    """
    x = _number(lam)
    if x is None or math.isnan(x) or x <= 0:
        raise ConfigError(f"penetration depth lam must be a number > 0 (inf: no screening), got {lam!r}")
    if math.isfinite(x) and x < h:
        raise ConfigError(f"penetration depth lam={x:g} is below the lattice spacing h={h:g}: the lattice cannot "
                          f"resolve it (need lam >= h; refine the lattice or use lam=inf for no screening)")
    s = _number(sigma)
    if s is None or not (math.isfinite(s) and s > 0):
        raise ConfigError(f"relaxation rate sigma of the vector potential must be a finite number > 0, got {sigma!r}")


def field_coefficients(lam: Any, D, alpha, beta, eta: np.ndarray, nu: np.ndarray) -> np.ndarray:
    """c = λ²K(η, ν) of every sample (S,) float64; ``lam`` one λ or one per sample; each distinct (λ, η, ν) is
    solved once."""
    eta = np.atleast_1d(np.asarray(eta, dtype=np.float64))
    nu = np.broadcast_to(np.asarray(nu, dtype=np.float64), eta.shape)
    lam = np.broadcast_to(np.asarray(lam, dtype=np.float64), eta.shape)
    cache: dict[tuple[float, float, float], float] = {}
    out = np.empty(eta.shape[0], dtype=np.float64)
    for s, (x, e, n) in enumerate(zip(lam, eta, nu)):
        key = (float(x), float(e), float(n))
        if key not in cache:
            cache[key] = field_coefficient(key[0], D, alpha, beta, key[1], key[2])
        out[s] = cache[key]
    return out


def check_sample_lam(config: Any, lam: Any) -> None:
    """Raise :class:`ConfigError` unless a sample's London depth ``lam`` can run with ``config``.

    A per-sample λ (a prior over λ, docs/physics.md "Screening") needs the screened kernel, so the config
    must be screened (finite ``lam``); the sample's λ must be finite and resolved by the lattice (λ >= h).
    """
    x = _number(lam)
    if not config.screened:
        raise ConfigError(f"a per-sample penetration depth (lam={lam!r}) needs a screened config (finite lam, "
                          f"the screened kernel); the config has lam={config.lam!r}")
    if x is None or not math.isfinite(x):
        raise ConfigError(f"a per-sample penetration depth must be a finite number > 0 (the fixed field, "
                          f"lam=inf, is a config, not a sample), got {lam!r}")
    check_screening(x, config.sigma, config.h)


def screened_rate(psi_rate: float, density: tuple[float, float], D, nu: float, c: float, sigma: float,
                  h: float) -> tuple[float, float, float]:
    """(μ_max, μ_a, γ): the fastest rate of the linearised (ψ, a) Euler update and its parts.

    The flow is ∂ₜz = −M⁻¹∂F/∂z with M = 2h² on ψ's real components and σ on
    a, so its rates are the eigenvalues of M^{-1/2} H M^{-1/2} (H the Hessian
    of F). With |ψ|² <= R_b (``density``, margin included) and r² = R1 + R2,
    λ_G the largest eigenvalue of [[D1, ν], [ν, D2]]:

    * the ψ block is bounded by ``psi_rate`` (:func:`.config.rate_bound`: the
      covariant Laplacian's spectrum lies in [0, 8/h²] for any links);
    * the a block by μ_a = (16c/h² + 2λ_G r²)/σ: the lattice curl-curl has
      eigenvalues in [0, 8], and ∂²F/∂a_μ² from the link term is
      2 Re(ψ*𝒟Uψ') <= 2λ_G r² per link;
    * the ψ–a block by γ = 4√10 λ_G r / √(2h²σ): per link the mixed second
      derivative is at most 2√10 λ_G r against the two end sites, and every
      site touches four links.

    The largest eigenvalue is then at most that of [[ψ bound, γ], [γ, μ_a]].
    """
    d1, d2 = float(D[0]), float(D[1])
    lam_g = 0.5 * (d1 + d2) + math.sqrt(0.25 * (d1 - d2) ** 2 + float(nu) ** 2)
    r2 = float(density[0]) + float(density[1])
    mu_a = (16.0 * c / (h * h) + 2.0 * lam_g * r2) / sigma
    gamma = 4.0 * math.sqrt(10.0) * lam_g * math.sqrt(r2) / math.sqrt(2.0 * h * h * sigma)
    mid = 0.5 * (psi_rate + mu_a)
    return mid + math.sqrt((0.5 * (psi_rate - mu_a)) ** 2 + gamma * gamma), mu_a, gamma


def check_screened_step(config: Any, rb: Any, eta: float, nu: float, lam: float | None = None) -> None:
    """Raise :class:`ConfigError` unless ``config.dt`` is below 2/μ_max of :func:`screened_rate`.

    ``rb`` is the ψ update's :class:`~.config.RateBound` for (η, ν, δ); ``lam`` the sample's London depth
    (None: the config's). The message gives the largest safe step and the parts of the bound.
    """
    lam = float(config.lam if lam is None else lam)
    c = field_coefficient(lam, config.D, config.alpha, config.beta, eta, nu)
    h, sigma = config.h, config.sigma
    mu, mu_a, gamma = screened_rate(rb.rate, rb.density, config.D, nu, c, sigma, h)
    if not config.dt < 2.0 / mu:
        raise ConfigError(
            f"dt={config.dt:g} is not below the largest stable explicit Euler step {2.0 / mu:.6g} of the screened "
            f"model (lam={lam:g}, sigma={sigma:g}, h={h:g}, eta={eta:g}, nu={nu:g}): mu_max = {mu:.6g} from "
            f"the psi update's {rb.rate:.6g}, the vector potential's (16c/h^2 + 2*lambda_G*(R1+R2))/sigma = "
            f"{mu_a:.6g} with c = lam^2*K = {c:.6g}, and their coupling {gamma:.6g}; the field term alone needs "
            f"dt < sigma*h^2/(8c) = {sigma * h * h / (8.0 * c):.6g} (a larger sigma or a smaller lam allows more)")


def lengths(config: Any, eta: float | None = None, nu: float | None = None) -> dict[str, Any]:
    """The uniform state's length scales at (η, ν) (default: the config's): docs/physics.md, "Screening".

    Returns ``lam``, ``sigma``, ``c`` (= λ²K, None at λ = ∞), ``xi`` (the
    normal-mode coherence lengths, longest first), ``kappa`` (λ/ξ each) and
    ``regime`` ("I", "1.5" or "II"; λ = ∞ is "II").
    """
    from .lengths import coherence_lengths, regime

    eta = float(config.eta if eta is None else eta)
    nu = float(config.nu if nu is None else nu)
    lam = float(config.lam)
    xi = coherence_lengths(config.D, config.alpha, config.beta, eta, nu).xi
    c = field_coefficient(lam, config.D, config.alpha, config.beta, eta, nu) if math.isfinite(lam) else None
    return {"lam": lam, "sigma": float(config.sigma), "c": c, "xi": xi, "kappa": tuple(lam / x for x in xi),
            "regime": regime(lam, xi)}


def lam_boundaries(config: Any, eta: Any, nu: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """The regime boundaries in λ at each (η, ν): (λ_I, λ_II) = (ξ_min/√2, ξ_max/√2), arrays (S,).

    ξ are the normal-mode coherence lengths of :func:`.lengths.coherence_lengths` (mixed by η and ν,
    Carlström, Babaev & Speight 2011); λ < λ_I is Type I, λ_I <= λ < λ_II Type 1.5, λ >= λ_II Type II
    (:func:`.lengths.regime`; λ_I = λ_II where one band has no condensate and nothing couples to it).
    ``nu`` None: the config's. Each distinct (η, ν) is solved once.
    """
    from .lengths import coherence_lengths

    eta = np.atleast_1d(np.asarray(eta, dtype=np.float64))
    nu = np.broadcast_to(np.asarray(config.nu if nu is None else nu, dtype=np.float64), eta.shape)
    cache: dict[tuple[float, float], tuple[float, float]] = {}
    lo, hi = np.empty(eta.shape), np.empty(eta.shape)
    for s, key in enumerate(zip(eta.tolist(), nu.tolist())):
        if key not in cache:
            xi = coherence_lengths(config.D, config.alpha, config.beta, key[0], key[1])
            cache[key] = (xi.shortest / math.sqrt(2.0), xi.longest / math.sqrt(2.0))
        lo[s], hi[s] = cache[key]
    return lo, hi


def regime_codes(config: Any, params: Any) -> np.ndarray:
    """Regime of each sample as an index into :data:`.lengths.REGIMES` (0: I, 1: 1.5, 2: II), (S,) int.

    ``params`` maps ``eta``, ``nu``, ``lam`` to values or arrays (missing ones: the config's; λ = ∞ is Type II).
    """
    eta = np.atleast_1d(np.asarray(params.get("eta", config.eta), dtype=np.float64))
    lam = np.asarray(params.get("lam", config.lam), dtype=np.float64)
    nu = params.get("nu", config.nu)
    shape = np.broadcast_shapes(eta.shape, lam.shape, np.shape(nu))
    lo, hi = lam_boundaries(config, np.broadcast_to(eta, shape), np.broadcast_to(nu, shape))
    lam = np.broadcast_to(lam, shape)
    return np.where(lam >= hi, 2, np.where(lam < lo, 0, 1)).astype(np.int64)


def regime(config: Any, theta: Any) -> str:
    """"I", "1.5" or "II": the regime of the sample ``theta`` (a mapping with ``eta``, ``nu``, ``lam``; missing
    ones are the config's) from √2λ against the normal-mode coherence lengths (docs/physics.md, "Regimes")."""
    from .lengths import REGIMES

    return REGIMES[int(regime_codes(config, {k: theta[k] for k in ("eta", "nu", "lam") if k in theta})[0])]
