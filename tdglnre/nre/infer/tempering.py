"""Posterior tempering: one temperature on the log ratio, fitted on held-out simulations (pure NumPy).

A ratio estimator that is sharper or flatter than its training data allow
gives overconfident or conservative posteriors (Hermans et al., "A Trust
Crisis in Simulation-Based Inference?", TMLR 2022). Tempering rescales the
learnt log ratio by one number τ > 0:

    p_τ(θ | x) ∝ p(θ) · r̂(x, θ)^(1/τ),

τ > 1 widens every posterior, τ < 1 sharpens it; τ = 1 is the network as
trained. τ is chosen on simulations the network was not fitted on (the
validation split of its training ensemble), by one of two objectives:

* ``coverage`` (default): the Cramér–von Mises distance of the truths' HPD
  credibilities from Uniform(0, 1), i.e. the squared gap between the
  expected-coverage curve and the diagonal, integrated over the levels;
* ``nll``: the mean negative log posterior density of the true θ, a proper
  scoring rule that rewards sharpness and calibration together.

They differ when the posterior's shape, not only its width, is off: then the
log score may prefer a τ whose coverage is worse. Tempering cannot repair a
miscalibration whose sign differs between parameters or across the prior;
docs/nre.md ("Tempering") says what it does and does not fix.

Works with any estimator of :mod:`.inference` (``prior``, ``encode``,
``log_ratio_from_embedding``); the candidate temperatures are applied on top
of whatever temperature the estimator already carries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ...errors import ConfigError
from .calibration import CoverageResult, expected_coverage
from .posterior import Grid

#: Candidate temperatures: geometric from 1/4 to 4, neighbours 4.4 % apart (τ = 1 is among them).
DEFAULT_TEMPERATURES = tuple(float(t) for t in np.geomspace(0.25, 4.0, 65))

#: What the temperature minimises over the held-out pairs (:meth:`TemperingScores.objective`).
OBJECTIVES = ("coverage", "nll")

#: Candidate temperatures evaluated together (bounds the (T, G) work array to a few tens of MB).
_CHUNK = 8


@dataclass
class TemperingScores:
    """Per held-out sample, per candidate temperature: the log score and the HPD credibility of the truth."""

    temperatures: np.ndarray
    """(T,) candidate temperatures."""
    nll: np.ndarray
    """(S, T) −log p_τ(θ* | x) (normalised density on the grid's cells)."""
    credibility: np.ndarray
    """(S, T) mass of the smallest HPD region of p_τ holding θ* (:meth:`.posterior.GridPosterior.credibility_of`)."""

    def mean_nll(self) -> np.ndarray:
        """(T,) mean negative log density of the truths."""
        return self.nll.mean(axis=0)

    def coverage_distance(self) -> np.ndarray:
        """(T,) Cramér–von Mises distance of the truths' credibilities from Uniform(0, 1).

        ∫ (F̂(q) − q)² dq over the nominal level q, with F̂ the empirical
        expected-coverage curve: 0 for exact calibration, the same weight for
        over- and underconfidence.
        """
        return _cvm(self.credibility)

    def objective(self, name: str) -> np.ndarray:
        """(T,) the values :meth:`best_index` minimises: ``nll`` (:meth:`mean_nll`) or ``coverage``."""
        if name == "nll":
            return self.mean_nll()
        if name == "coverage":
            return self.coverage_distance()
        raise ConfigError(f"`objective` must be one of {OBJECTIVES}, got {name!r}")

    def best_index(self, objective: str = "coverage") -> int:
        """Index of the temperature that minimises ``objective`` (ties: the one nearest τ = 1)."""
        v = self.objective(objective)
        best = np.flatnonzero(v <= v.min() + 1e-12 * abs(v.min()) + 1e-300)
        return int(best[np.argmin(np.abs(np.log(self.temperatures[best])))])

    def coverage(self, index: int) -> CoverageResult:
        """Expected coverage of the joint HPD regions at candidate ``index``."""
        return expected_coverage(self.credibility[:, index])


def _cvm(credibility: np.ndarray) -> np.ndarray:
    """Cramér–von Mises distance of each column's credibilities (S, T) from Uniform(0, 1): (T,)."""
    c = np.sort(credibility, axis=0)
    n = c.shape[0]
    u = (2.0 * np.arange(1, n + 1) - 1.0) / (2.0 * n)
    return (1.0 / (12.0 * n) + ((c - u[:, None]) ** 2).sum(axis=0)) / n


def at_temperatures(values: np.ndarray, temperatures: np.ndarray, log_tau: np.ndarray) -> np.ndarray:
    """Each sample's score at its own temperature: ``values`` (S, T) at the candidates, linear in log τ between them.

    ``log_tau`` (S,) is clipped to the candidates' range.
    """
    lt = np.log(np.asarray(temperatures, dtype=np.float64))
    pos = np.interp(np.asarray(log_tau, dtype=np.float64), lt, np.arange(lt.size, dtype=np.float64))
    lo = np.minimum(pos.astype(np.int64), lt.size - 2)
    f = pos - lo
    rows = np.arange(values.shape[0])
    return (1.0 - f) * values[rows, lo] + f * values[rows, lo + 1]


#: Penalty on |w|² of the instrument temperature (nats per pair): negligible against the log score's gains, it
#: makes w unique where the instrument vector's entries are collinear (a one-hot beside the offset).
INSTRUMENT_RIDGE = 1e-3

#: Offsets tried for c of log τ(d) = c + w·d once w is fitted (the candidates' log range, 1/8 of their spacing).
_OFFSETS = 513


def fit_instrument_temperature(scores: TemperingScores, instrument: np.ndarray, *,
                               objective: str = "coverage") -> tuple[float, np.ndarray]:
    """A temperature that depends on the instrument: log τ(d) = c + w·d, fitted on the held-out pairs.

    For a model that takes the instrument vector d as an input (docs/observations.md, "The instrument as an
    input"), one τ cannot correct a network that is conservative for some instruments of its family and
    overconfident for others. ``w`` minimises the mean log score −log p_τ(θ*|x), a proper score that pools every
    pair, so it follows how the width error changes across the family (the pooled coverage curve cannot: its
    errors of both signs cancel; coverage measured within groups of similar instruments was tried and overfitted
    the groups' noise, docs/results.md). Then ``c`` minimises ``objective`` with ``w`` held, as the single
    temperature does. Each pair's scores are interpolated in log τ between the candidates
    (:func:`at_temperatures`).

    Returns ``(c, w)``: log τ relative to the scores' base temperature, and the weights (K,).
    """
    from scipy.optimize import minimize

    d = np.asarray(instrument, dtype=np.float64)
    taus = scores.temperatures
    if d.ndim != 2 or d.shape[0] != scores.nll.shape[0] or d.shape[1] == 0:
        raise ConfigError(f"need one instrument vector per held-out pair, got {d.shape} for {scores.nll.shape[0]}")
    if objective not in OBJECTIVES:
        raise ConfigError(f"`objective` must be one of {OBJECTIVES}, got {objective!r}")

    def log_score(p: np.ndarray) -> float:
        w = p[1:]
        return float(at_temperatures(scores.nll, taus, p[0] + d @ w).mean() + INSTRUMENT_RIDGE * (w @ w))

    start = np.zeros(d.shape[1] + 1)
    start[0] = np.log(taus[scores.best_index("nll")])
    w = minimize(log_score, start, method="Powell", options={"xtol": 1e-3, "ftol": 1e-7}).x[1:]
    shift = d @ w
    offsets = np.linspace(np.log(taus[0]), np.log(taus[-1]), _OFFSETS)
    table = scores.nll if objective == "nll" else scores.credibility
    cols = np.stack([at_temperatures(table, taus, c + shift) for c in offsets], axis=1)
    v = cols.mean(axis=0) if objective == "nll" else _cvm(cols)
    best = np.flatnonzero(v <= v.min() + 1e-12 * abs(v.min()) + 1e-300)
    return float(offsets[best[np.argmin(np.abs(offsets[best]))]]), w


def _scores_one(lr: np.ndarray, lr_true: float, lp: np.ndarray, lp_true: float, lcv: np.ndarray,
                taus: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """NLL and credibility of one sample at every temperature (log ratios on the grid ``lr``, at the truth ``lr_true``)."""
    nll = np.empty(len(taus))
    cred = np.empty(len(taus))
    for s in range(0, len(taus), _CHUNK):
        inv = 1.0 / taus[s:s + _CHUNK, None]
        z = lr[None, :] * inv + lp[None, :]  # unnormalised log density per cell, (t, G)
        z_true = lr_true * inv[:, 0] + lp_true
        top = z.max(axis=1, keepdims=True)
        w = np.exp(z - top + lcv[None, :])  # unnormalised cell masses
        total = w.sum(axis=1)
        nll[s:s + _CHUNK] = -(z_true - top[:, 0] - np.log(total))
        cred[s:s + _CHUNK] = np.where(z > z_true[:, None], w, 0.0).sum(axis=1) / total
    return nll, cred


def tempering_scores(estimator: Any, x: np.ndarray, theta: np.ndarray, grid: Grid, *,
                     temperatures: Any = DEFAULT_TEMPERATURES, batch_size: int = 64, split_head: bool = False,
                     progress: Any = None) -> TemperingScores:
    """Score every candidate temperature on held-out pairs (θ*, x).

    Parameters
    ----------
    estimator
        A ratio estimator (:mod:`.inference`).
    x
        (S, ...) preprocessed (and measured) inputs.
    theta
        (S, P) their true parameters, inside the prior.
    grid
        The posterior grid.
    temperatures
        Candidate temperatures (> 0), relative to the estimator's own.
    split_head
        As :func:`.inference.posteriors_on_grid`.
    progress
        Callable ``f(n)`` told how many samples are done.
    """
    taus = np.asarray(temperatures, dtype=np.float64).ravel()
    if taus.size == 0 or not np.all(np.isfinite(taus)) or np.any(taus <= 0):
        raise ConfigError(f"temperatures must be finite and > 0, got {temperatures!r}")
    theta = np.asarray(theta, dtype=np.float64)
    if theta.ndim != 2 or len(theta) != len(x) or len(x) == 0:
        raise ConfigError(f"need one θ row per input and at least one pair, got x {np.shape(x)} and θ {theta.shape}")
    pts = grid.points()
    lp = np.asarray(estimator.prior.log_prob(pts), dtype=np.float64)
    lp_true = np.asarray(estimator.prior.log_prob(theta), dtype=np.float64)
    if not np.all(np.isfinite(lp_true)):
        raise ConfigError("some held-out θ lie outside the model's prior")
    lcv = np.broadcast_to(grid.log_cell_volume(), grid.shape).ravel().astype(np.float64)
    kw = {"split_head": True} if split_head else {}
    S = len(x)
    nll = np.empty((S, taus.size))
    cred = np.empty((S, taus.size))
    for start in range(0, S, batch_size):
        stop = min(S, start + batch_size)
        h = estimator.encode(x[start:stop])
        lr = np.asarray(estimator.log_ratio_from_embedding(h, pts, **kw), dtype=np.float64)
        lr_true = np.diagonal(np.asarray(estimator.log_ratio_from_embedding(h, theta[start:stop], **kw),
                                         dtype=np.float64))
        for i in range(stop - start):
            nll[start + i], cred[start + i] = _scores_one(lr[i], lr_true[i], lp, lp_true[start + i], lcv, taus)
        if progress is not None:
            progress(stop - start)
    return TemperingScores(taus, nll, cred)


def tempering_record(scores: TemperingScores, *, objective: str = "coverage", base_temperature: float = 1.0,
                     instrument: np.ndarray | None = None,
                     base_weights: np.ndarray | None = None) -> dict[str, Any]:
    """The fitted temperature and what it changed on the held-out pairs, for ``metadata.json``.

    ``temperature`` is the product of ``base_temperature`` (the one the
    scores were computed under) and the candidate that minimises
    ``objective`` (:data:`OBJECTIVES`). With ``instrument`` (S, K), the
    pairs' instrument vectors, the temperature depends on the instrument
    (:func:`fit_instrument_temperature`): τ(d) = temperature · exp(w·d), and
    the record adds ``instrument_weights`` (w, added to ``base_weights``, the
    weights the scores were computed under) and the range of τ(d)/τ over
    the pairs. Without ``instrument``, ``base_weights`` are recorded as they are.
    """
    taus = scores.temperatures
    one = int(np.argmin(np.abs(np.log(taus))))
    mean = scores.mean_nll()
    before = scores.coverage(one)
    n = scores.nll.shape[0]
    extra: dict[str, Any] = {}
    if instrument is None:
        best = scores.best_index(objective)
        relative, nll_after = float(taus[best]), scores.nll[:, best]
        after = scores.coverage(best)
        at_edge = best in (0, len(taus) - 1)
        if base_weights is not None:  # the scores were computed under them: one τ on top keeps them
            extra = {"instrument_weights": [float(v) for v in np.asarray(base_weights, dtype=np.float64)]}
    else:
        c, w = fit_instrument_temperature(scores, instrument, objective=objective)
        log_tau = c + np.asarray(instrument, dtype=np.float64) @ w
        relative, nll_after = float(np.exp(c)), at_temperatures(scores.nll, taus, log_tau)
        after = expected_coverage(at_temperatures(scores.credibility, taus, log_tau))
        lt = np.log(taus)
        at_edge = bool(np.any(log_tau <= lt[0]) or np.any(log_tau >= lt[-1]))
        weights = w if base_weights is None else np.asarray(base_weights, dtype=np.float64) + w
        extra = {"instrument_weights": [float(v) for v in weights],
                 "instrument_factor_range": [float(np.exp(log_tau.min() - c)), float(np.exp(log_tau.max() - c))]}
    return {
        "temperature": float(base_temperature * relative),
        "relative": relative,
        "objective": objective,
        "at_edge": bool(at_edge),
        "n": int(n),
        **extra,
        "mean_nll": {"before": float(mean[one]), "after": float(nll_after.mean())},
        "nll_standard_error": float(nll_after.std(ddof=1) / np.sqrt(n)) if n > 1 else None,
        "joint_coverage_deviation": {"before": before.signed_max_deviation, "after": after.signed_max_deviation},
        "candidates": [float(t) for t in taus],
        "candidate_mean_nll": [float(v) for v in mean],
        "candidate_coverage_distance": [float(v) for v in scores.coverage_distance()],
    }


__all__ = ["DEFAULT_TEMPERATURES", "OBJECTIVES", "TemperingScores", "at_temperatures", "fit_instrument_temperature",
           "tempering_scores", "tempering_record"]
