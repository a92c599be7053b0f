"""The regime verdict: P(Type I / 1.5 / II | x) of a grid posterior and its test-set statistics.

docs/nre.md, "The regime verdict". A sample's regime is a function of (η, ν, λ)
(:func:`tdglnre.physics.screening.regime_codes`: √2λ against the mixed normal-mode coherence lengths,
docs/physics.md "Regimes of a sample"), so P(regime | x) is the posterior mass of the grid cells whose
centre lies in that regime, like ``p_drag`` for ν > 0. On a test set the verdict for "Type 1.5 vs not"
is scored by its ROC AUC (:func:`roc_auc`) and its calibration (:func:`reliability`: mean predicted
P(1.5) against the observed frequency in bins of the prediction), on all samples and on those farther
than 10 % in λ from a regime boundary (:func:`boundary_distance`). Pure NumPy.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from ...physics.lengths import REGIMES
from ...physics.screening import lam_boundaries
from .model_comparison import reliability as _reliability
from .model_comparison import roc_auc as _auc

__all__ = ["REGIME_AXES", "boundary_distance", "model_regime_context", "regime_masses", "reliability", "roc_auc",
           "per_regime", "verdict_lines", "verdict_report"]

#: The parameters a regime depends on.
REGIME_AXES = ("eta", "nu", "lam")
#: Relative distance in λ from the nearest regime boundary beyond which a test sample counts as "far".
FAR = 0.10


def model_regime_context(model: Any) -> tuple[Any, dict[str, float]] | None:
    """(config, fixed values) of a model trained on screened simulations, else None (no verdict).

    The config is the training ensemble's (model metadata ``dataset.config``); the fixed values are the
    prior's fixed parameters (e.g. ν = 0), which the grid does not hold.
    """
    from ...physics.config import SimConfig

    d = (getattr(model, "metadata", None) or {}).get("dataset", {}).get("config")
    if not d:
        return None
    try:
        config = SimConfig.from_dict(dict(d))
    except (TypeError, ValueError):
        return None
    prior = getattr(model, "prior", None)
    fixed = dict(prior.fixed_values()) if hasattr(prior, "fixed_values") else {}
    return (config, fixed) if config.screened else None


def _values(grid_names: tuple[str, ...], axes: Any, config: Any, fixed: Mapping[str, float], name: str) -> np.ndarray:
    if name in grid_names:
        return np.asarray(axes[grid_names.index(name)].values, dtype=np.float64)
    return np.array([float(fixed.get(name, getattr(config, name)))])


def regime_masses(post: Any, config: Any, fixed: Mapping[str, float] | None = None) -> dict[str, float]:
    """{"I", "1.5", "II"} → posterior mass of the grid cells in that regime (sums to 1).

    ``post`` is a :class:`~.posterior.GridPosterior`; parameters the grid does not hold take ``fixed`` or
    the config's value. Other axes (n_v) are summed out first.
    """
    fixed = dict(fixed or {})
    names = tuple(post.grid.names)
    mass = np.asarray(post.mass, dtype=np.float64)
    other = tuple(i for i, n in enumerate(names) if n not in REGIME_AXES)
    m = mass.sum(axis=other) if other else mass
    kept = [n for n in names if n in REGIME_AXES]
    order = [kept.index(n) for n in REGIME_AXES if n in kept]
    m = np.transpose(m, order) if m.ndim else m
    for i, n in enumerate(REGIME_AXES):  # a size-1 axis for each parameter the grid does not hold
        if n not in kept:
            m = np.expand_dims(m, i)
    eta, nu, lam = (_values(names, post.grid.axes, config, fixed, n) for n in REGIME_AXES)
    E, V = np.meshgrid(eta, nu, indexing="ij")
    lo, hi = (b.reshape(E.shape)[..., None] for b in lam_boundaries(config, E.ravel(), V.ravel()))
    codes = np.where(lam >= hi, 2, np.where(lam < lo, 0, 1))
    return {r: float(m[codes == i].sum()) for i, r in enumerate(REGIMES)}


def boundary_distance(config: Any, params: Mapping[str, Any]) -> np.ndarray:
    """min over the regime boundaries λ_b(η, ν) of |λ/λ_b − 1| per sample (S,): 0.1 = 10 % away in λ."""
    eta = np.atleast_1d(np.asarray(params.get("eta", config.eta), dtype=np.float64))
    nu = np.broadcast_to(np.asarray(params.get("nu", config.nu), dtype=np.float64), eta.shape)
    lam = np.broadcast_to(np.asarray(params.get("lam", config.lam), dtype=np.float64), eta.shape)
    lo, hi = lam_boundaries(config, eta, nu)
    return np.minimum(np.abs(lam / lo - 1.0), np.abs(lam / hi - 1.0))


def roc_auc(score: Any, label: Any) -> float:
    """Area under the ROC curve of ``score`` for the binary ``label`` (ties count half); NaN with one class.

    Equal to P(score of a random positive > score of a random negative) + ½ P(equal): the Mann–Whitney U
    over n₊n₋ (:func:`.model_comparison.roc_auc`, which refuses a single class instead).
    """
    y = np.asarray(label, dtype=bool).ravel()
    if y.all() or not y.any():
        return math.nan
    return _auc(score, y)


def reliability(prob: Any, outcome: Any, n_bins: int = 10) -> list[dict[str, float]]:
    """Reliability table: for each non-empty bin of the predicted probability ([0, 0.1), ..., [0.9, 1]),
    ``n``, ``mean_predicted`` and ``observed`` (the frequency of the outcome); a calibrated verdict has
    observed ≈ mean_predicted in every bin (the bins of :func:`.model_comparison.reliability`)."""
    t = _reliability(prob, outcome, n_bins)
    return [{"low": t["edges"][b], "high": t["edges"][b + 1], "n": n, "mean_predicted": t["predicted"][b],
             "observed": t["observed"][b]} for b, n in enumerate(t["count"]) if n]


def per_regime(codes: np.ndarray, truth: Any, mean: Any, width95: Any, credibility: Any) -> dict[str, Any]:
    """A parameter's MAE, mean 95% width and 95% coverage among the test samples of each true regime.

    ``credibility`` is the marginal credibility of the truth (the fraction of posterior mass above its density),
    so the truth lies in the 95% interval where it is below 0.95 (as ``marginal_coverage95``).
    """
    codes = np.asarray(codes)
    err = np.abs(np.asarray(mean, dtype=np.float64) - np.asarray(truth, dtype=np.float64))
    width = np.asarray(width95, dtype=np.float64)
    cred = np.asarray(credibility, dtype=np.float64)
    out: dict[str, Any] = {}
    for i, r in enumerate(REGIMES):
        sel = codes == i
        n = int(sel.sum())
        out[r] = {"n": n, "mae": float(err[sel].mean()) if n else math.nan,
                  "width95": float(width[sel].mean()) if n else math.nan,
                  "coverage95": float((cred[sel] < 0.95).mean()) if n else math.nan}
    return out


def verdict_report(p_regime: np.ndarray, true_codes: np.ndarray, distance: np.ndarray, *, far: float = FAR,
                   n_bins: int = 10, lam: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """calibration.json's ``regime_verdict``: AUC of P(1.5 | x) for "Type 1.5 vs not" (all, far from the
    boundaries), its reliability table and Brier score, and mean predicted vs observed per regime.

    ``lam``: where λ is inferred, its per-sample ``truth``, ``mean``, ``width95`` and ``credibility``; the report
    then holds ``lam_by_regime`` (:func:`per_regime`).
    """
    p = np.asarray(p_regime, dtype=np.float64)
    codes = np.asarray(true_codes)
    is15 = codes == REGIMES.index("1.5")
    p15 = p[:, REGIMES.index("1.5")]
    sel = np.asarray(distance) > far
    verdict = np.argmax(p, axis=1)
    return {
        "n": int(codes.size), "far_threshold": far, "n_far": int(sel.sum()),
        "auc_type15_all": roc_auc(p15, is15), "auc_type15_far": roc_auc(p15[sel], is15[sel]),
        "brier_type15": float(np.mean((p15 - is15) ** 2)),
        "accuracy_all": float(np.mean(verdict == codes)),
        "accuracy_far": float(np.mean(verdict[sel] == codes[sel])) if sel.any() else math.nan,
        "mean_predicted": {r: float(p[:, i].mean()) for i, r in enumerate(REGIMES)},
        "observed": {r: float(np.mean(codes == i)) for i, r in enumerate(REGIMES)},
        "reliability_type15": reliability(p15, is15, n_bins),
        **({"lam_by_regime": per_regime(codes, **lam)} if lam is not None else {}),
    }


def verdict_lines(v: Mapping[str, Any]) -> list[str]:
    """Human-readable lines of :func:`verdict_report` (``tdglnre posterior --test-set``)."""
    lines = [f"regime verdict (Type 1.5 vs not): ROC AUC {v['auc_type15_all']:.3f} on all {v['n']} tests, "
             f"{v['auc_type15_far']:.3f} on the {v['n_far']} farther than {100 * v['far_threshold']:g}% in lam "
             f"from a boundary; Brier {v['brier_type15']:.3f}; argmax verdict right for "
             f"{100 * v['accuracy_all']:.1f}% (far: {100 * v['accuracy_far']:.1f}%)"]
    lines.append("  reliability of P(1.5 | x): " + ", ".join(
        f"[{r['low']:.1f},{r['high']:.1f}) n={r['n']} predicted {r['mean_predicted']:.2f} observed {r['observed']:.2f}"
        for r in v["reliability_type15"]))
    if "lam_by_regime" in v:
        lines.append("  lam per true regime: " + ", ".join(
            f"{r} (n={q['n']}) MAE {q['mae']:.3f}, 95% width {q['width95']:.3f}, 95% coverage {q['coverage95']:.3f}"
            for r, q in v["lam_by_regime"].items()))
    return lines
