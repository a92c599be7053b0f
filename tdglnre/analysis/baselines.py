"""Summary-statistic baseline: rejection ABC with regression adjustment.

The network's value is measured against this: the same test set, posteriors
from a handful of physically motivated summaries of the image instead of the
image itself.

Under a measurement the summaries are those of the measured images, the
very ones the network sees, and the reference simulations are measured the
same way (``tdglnre.workflows.calibrate``; :func:`image_summaries` takes
named, possibly binned or reduced, channels).

Summaries of one image x (N, N, C) with channels [ρ1, ρ2, curl J]:
mean and standard deviation of ρ1 and ρ2, the fraction of sites inside
vortex cores (ρ below half its mean) per band, mean |curl J|, and the
log structure factor log S(k) of ρ1 and ρ2 on the three lowest |k| shells.

ABC: summaries are standardised by the reference set's median absolute
deviation; the nearest ``accept`` reference simulations are kept and adjusted
by local-linear regression (Beaumont, Zhang & Balding 2002), with
Epanechnikov weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import ConfigError
from ..physics.observables import structure_factor

SUMMARY_NAMES = (
    "mean_rho1", "mean_rho2", "std_rho1", "std_rho2", "core_frac1", "core_frac2", "mean_abs_curlJ",
    "logS1_k1", "logS1_k2", "logS1_k3", "logS2_k1", "logS2_k2", "logS2_k3",
)


def summaries(x: np.ndarray, L: float) -> np.ndarray:
    """Summary vector (len(SUMMARY_NAMES),) of one image (N, N, 3)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 3 or x.shape[-1] < 3:
        raise ConfigError(f"summaries need an image (N, N, 3) [rho1, rho2, curlJ], got shape {x.shape}")
    r1, r2, cj = x[..., 0], x[..., 1], x[..., 2]
    out = [r1.mean(), r2.mean(), r1.std(), r2.std(),
           (r1 < 0.5 * r1.mean()).mean(), (r2 < 0.5 * r2.mean()).mean(), np.abs(cj).mean()]
    for r in (r1, r2):
        _, s = structure_factor(r, L)
        out.extend(np.log(s[:3] + 1e-12))
    return np.asarray(out)


def summaries_batch(x: np.ndarray, L: float) -> np.ndarray:
    """Summaries of a batch (S, N, N, 3) → (S, n_summaries)."""
    return np.stack([summaries(xi, L) for xi in x])


#: The channels the summaries read, in their order.
SUMMARY_CHANNELS = ("rho1", "rho2", "curlJ")
#: The channel each summary of :data:`SUMMARY_NAMES` is computed from.
_SUMMARY_CHANNEL = {"mean_rho1": "rho1", "mean_rho2": "rho2", "std_rho1": "rho1", "std_rho2": "rho2",
                    "core_frac1": "rho1", "core_frac2": "rho2", "mean_abs_curlJ": "curlJ",
                    **{f"logS{b}_k{k}": f"rho{b}" for b in (1, 2) for k in (1, 2, 3)}}


def summary_names_of(channels: Sequence[str]) -> tuple[str, ...]:
    """The entries of :data:`SUMMARY_NAMES` that images with these channels give (a measurement may drop some)."""
    return tuple(n for n in SUMMARY_NAMES if _SUMMARY_CHANNEL[n] in channels)


def image_summaries(x: np.ndarray, channels: Sequence[str], L: float) -> np.ndarray:
    """Summaries (S, D) of images (S, M, M, C) whose channels are named ``channels``, e.g. measured ones.

    With ``rho1``, ``rho2`` and ``curlJ`` all present these are
    :func:`summaries_batch` of those three, bit for bit; a channel the images
    lack (dropped by a ``channels(...)`` measurement) drops its summaries
    (:func:`summary_names_of` names the rest). Binned images (M < N) keep
    the side length ``L``.
    """
    channels = [str(c) for c in channels]
    x = np.asarray(x)
    if x.ndim != 4 or x.shape[-1] != len(channels):
        raise ConfigError(f"summaries need images (S, M, M, {len(channels)}) for channels {channels}, "
                          f"got shape {x.shape}")
    names = summary_names_of(channels)
    if not names:
        raise ConfigError(f"the summaries need at least one of {list(SUMMARY_CHANNELS)}; the images hold {channels}")
    if len(names) == len(SUMMARY_NAMES):
        return summaries_batch(x[..., [channels.index(c) for c in SUMMARY_CHANNELS]], L)
    rows = []
    for img in np.asarray(x, dtype=np.float64):
        # the images lack a channel: pad it with zeros, compute all, keep those of the present ones
        full = np.zeros(img.shape[:2] + (len(SUMMARY_CHANNELS),))
        for i, c in enumerate(SUMMARY_CHANNELS):
            if c in channels:
                full[..., i] = img[..., channels.index(c)]
        rows.append(summaries(full, L))
    keep = [SUMMARY_NAMES.index(n) for n in names]
    return np.stack(rows)[:, keep]


@dataclass
class ABCBaseline:
    """Rejection ABC with local-linear regression adjustment."""

    ref_summaries: np.ndarray
    ref_theta: np.ndarray
    accept: int = 200

    def __post_init__(self) -> None:
        if self.ref_summaries.shape[0] != self.ref_theta.shape[0]:
            raise ConfigError("reference summaries and parameters have different lengths")
        if self.ref_summaries.shape[0] < 2 * self.accept:
            self.accept = max(10, self.ref_summaries.shape[0] // 5)
        med = np.median(self.ref_summaries, axis=0)
        mad = np.median(np.abs(self.ref_summaries - med), axis=0)
        self._scale = np.where(mad > 0, mad, 1.0)

    def posterior_samples(self, s_obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Adjusted accepted parameters (accept, P) and their weights (accept,)."""
        z = (self.ref_summaries - s_obs) / self._scale
        d = np.sqrt((z**2).sum(axis=1))
        idx = np.argpartition(d, self.accept)[: self.accept]
        dk = d[idx]
        h = dk.max() * 1.0001
        w = 1.0 - (dk / h) ** 2
        X = np.column_stack([np.ones(self.accept), z[idx]])
        W = w[:, None]
        th = self.ref_theta[idx]
        # weighted least squares with a small ridge for stability
        A = X.T @ (W * X) + 1e-6 * np.eye(X.shape[1])
        beta = np.linalg.solve(A, X.T @ (W * th))
        adj = th - z[idx] @ beta[1:]
        return adj, w / w.sum()


def weighted_quantile(v: np.ndarray, w: np.ndarray, q: float) -> float:
    """Quantile of weighted samples."""
    o = np.argsort(v)
    c = np.cumsum(w[o])
    return float(v[o][min(int(np.searchsorted(c, q * c[-1])), v.size - 1)])
