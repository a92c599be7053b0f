"""Calibration diagnostics of amortised posteriors (pure NumPy/SciPy).

* Expected coverage of highest-posterior-density regions (Hermans et al.
  2022, "A trust crisis in simulation-based inference?"): for each test pair
  (θ*, x*), the credibility c* = P(p(θ|x*) > p(θ*|x*)) is the smallest HPD
  level whose region contains θ*. The empirical coverage at nominal level q is
  the fraction of test pairs with c* < q; a calibrated posterior gives q.
* Simulation-based calibration (Talts et al. 2018): the rank of θ* among L
  posterior draws is uniform on {0, …, L} when the posterior is calibrated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from scipy import stats

DEFAULT_LEVELS = tuple(np.round(np.arange(0.05, 0.951, 0.05), 2))
PAPER_ETAS = (0.2, 0.5, 0.8, 1.1, 1.4)


@dataclass
class CoverageResult:
    levels: np.ndarray
    empirical: np.ndarray
    lower: np.ndarray
    """95% binomial band of the empirical coverage under exact calibration."""
    upper: np.ndarray
    n: int

    @property
    def signed_max_deviation(self) -> float:
        """The largest |empirical − nominal| with its sign: > 0 conservative (regions cover more than they
        claim), < 0 overconfident."""
        d = self.empirical - self.levels
        return float(d[int(np.argmax(np.abs(d)))])

    def to_dict(self) -> dict[str, Any]:
        return {"levels": self.levels.tolist(), "empirical": self.empirical.tolist(),
                "band_lower": self.lower.tolist(), "band_upper": self.upper.tolist(), "n": self.n,
                "max_abs_deviation": float(np.abs(self.empirical - self.levels).max()),
                "signed_max_deviation": self.signed_max_deviation,
                "mean_abs_deviation": float(np.abs(self.empirical - self.levels).mean())}


def expected_coverage(credibility: Sequence[float], levels: Sequence[float] = DEFAULT_LEVELS,
                      band: float = 0.95) -> CoverageResult:
    """Empirical coverage of HPD regions at each nominal level.

    Parameters
    ----------
    credibility
        c* per test pair (see module docstring), in [0, 1].
    levels
        Nominal levels.
    band
        Probability of the binomial band: if the posterior were exactly
        calibrated, the empirical coverage would fall inside it with this
        probability (pointwise).
    """
    c = np.asarray(credibility, dtype=np.float64)
    lv = np.asarray(levels, dtype=np.float64)
    n = c.size
    emp = np.array([(c < q).mean() for q in lv])
    lo, hi = stats.binom.interval(band, n, lv)
    return CoverageResult(lv, emp, lo / n, hi / n, n)


def sbc_ranks(truth: np.ndarray, draws: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rank of each truth among its posterior draws (ties broken at random).

    Parameters
    ----------
    truth
        (n,) true values.
    draws
        (n, L) posterior draws per test pair.
    """
    truth = np.asarray(truth)[:, None]
    below = (draws < truth).sum(axis=1)
    ties = (draws == truth).sum(axis=1)
    return below + np.array([rng.integers(0, t + 1) for t in ties])


def sbc_uniformity(ranks: np.ndarray, n_draws: int, n_bins: int = 10) -> dict[str, Any]:
    """Histogram of SBC ranks and a chi-square test of uniformity."""
    edges = np.linspace(0, n_draws + 1, n_bins + 1)
    hist, _ = np.histogram(ranks, bins=edges)
    chi2, p = stats.chisquare(hist)
    return {"hist": hist.tolist(), "edges": edges.tolist(), "chi2": float(chi2), "p_value": float(p)}


def table_rows(truth: np.ndarray, mean: np.ndarray, std: np.ndarray, width68: np.ndarray,
               width95: np.ndarray, targets: Sequence[float] = PAPER_ETAS,
               half_window: float = 0.05) -> list[dict[str, Any]]:
    """Table-I-style rows: test pairs whose true value lies within ±half_window of each target.

    Each row: target, n, posterior mean (average), posterior std (average),
    MAE of the posterior mean, average 68% and 95% HPD widths.
    """
    rows = []
    for t in targets:
        sel = np.abs(truth - t) <= half_window
        n = int(sel.sum())
        if n == 0:
            rows.append({"target": float(t), "n": 0})
            continue
        rows.append({
            "target": float(t), "n": n,
            "post_mean": float(mean[sel].mean()),
            "post_std": float(std[sel].mean()),
            "mae": float(np.abs(mean[sel] - truth[sel]).mean()),
            "width68": float(width68[sel].mean()),
            "width95": float(width95[sel].mean()),
        })
    return rows


def table_markdown(rows: list[dict[str, Any]], name: str = "eta") -> str:
    """Markdown rendering of :func:`table_rows`."""
    head = f"| true {name} (±window) | n | post. mean | post. std | MAE | 68% width | 95% width |"
    lines = [head, "|" + "---|" * 7]
    for r in rows:
        if r["n"] == 0:
            lines.append(f"| {r['target']:.2f} | 0 | – | – | – | – | – |")
            continue
        lines.append(f"| {r['target']:.2f} | {r['n']} | {r['post_mean']:.3f} | {r['post_std']:.3f} | "
                     f"{r['mae']:.3f} | {r['width68']:.3f} | {r['width95']:.3f} |")
    return "\n".join(lines)


def table_csv(rows: list[dict[str, Any]]) -> str:
    """CSV rendering of :func:`table_rows`."""
    keys = ["target", "n", "post_mean", "post_std", "mae", "width68", "width95"]
    lines = [",".join(keys)]
    for r in rows:
        lines.append(",".join("" if r.get(k) is None else f"{r.get(k)}" for k in keys))
    return "\n".join(lines) + "\n"
