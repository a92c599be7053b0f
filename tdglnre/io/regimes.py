"""The fraction of a prior in each regime (Type I, 1.5, II): docs/physics.md, "Regimes of a sample".

With λ log-uniform (or uniform) and independent of (η, ν), the fraction of the prior in Type I is the
mean over (η, ν) of the prior mass of λ below λ_I(η, ν), Type II that above λ_II(η, ν), and Type 1.5 the
rest (:func:`tdglnre.physics.screening.lam_boundaries`). The mean over (η, ν) is a midpoint rule on their
prior intervals (``n_points`` per continuous parameter; fixed ones enter at their value). Pure NumPy.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..physics.lengths import REGIMES
from ..physics.screening import lam_boundaries

__all__ = ["regime_fractions"]


def _nodes(prior: Any, config: Any, name: str, n_points: int) -> np.ndarray:
    if name not in prior.names or prior.kind(name) == "fixed":
        return np.array([float(prior.low(name)) if name in prior.names else float(getattr(config, name))])
    if prior.kind(name) != "uniform":
        raise ConfigError(f"regime fractions need a uniform prior on {name}, got {prior.kind(name)}")
    lo, hi = prior.low(name), prior.high(name)
    return lo + (hi - lo) * (np.arange(n_points) + 0.5) / n_points


def _lam_cdf(prior: Any, lam: np.ndarray) -> np.ndarray:
    """Prior mass of λ below ``lam`` (clipped to [0, 1])."""
    lo, hi, kind = prior.low("lam"), prior.high("lam"), prior.kind("lam")
    if kind == "log_uniform":
        u = np.log(np.maximum(lam, 1e-300) / lo) / math.log(hi / lo)
    elif kind == "uniform":
        u = (lam - lo) / (hi - lo)
    else:
        raise ConfigError(f"regime fractions need a uniform or log-uniform prior on lam, got {kind}")
    return np.clip(u, 0.0, 1.0)


def regime_fractions(config: Any, prior: Any, n_points: int = 401) -> dict[str, float]:
    """{"I": p_I, "1.5": p_15, "II": p_II}: the prior's mass in each regime (sums to 1)."""
    if "lam" not in prior.inferred:
        lam = float(prior.low("lam")) if "lam" in prior.names else float(config.lam)
        from ..physics.screening import regime_codes

        eta = _nodes(prior, config, "eta", n_points)
        codes = regime_codes(config, {"eta": eta, "nu": _nodes(prior, config, "nu", 1)[0], "lam": lam})
        return {r: float(np.mean(codes == i)) for i, r in enumerate(REGIMES)}
    eta, nu = np.meshgrid(_nodes(prior, config, "eta", n_points), _nodes(prior, config, "nu", n_points))
    lo, hi = lam_boundaries(config, eta.ravel(), nu.ravel())
    p_one = float(np.mean(_lam_cdf(prior, lo)))
    p_two = float(np.mean(1.0 - _lam_cdf(prior, hi)))
    return {"I": p_one, "1.5": 1.0 - p_one - p_two, "II": p_two}
