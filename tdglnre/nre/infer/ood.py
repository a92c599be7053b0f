"""Out-of-distribution score of an observation against a model's training ensemble.

A ratio estimator is only trustworthy on inputs that look like its training
simulations. This module scores how far an observation's summary statistics
lie from those of the training ensemble:

1. *Summaries* of the network input (the model's selected snapshots and
   channels, before standardisation): for every selected snapshot holding
   ``rho1``, ``rho2`` and ``curlJ``, the 13 physical summaries of the ABC
   baseline (:func:`tdglnre.analysis.baselines.summaries`); for every other
   selected channel, its mean, standard deviation and log structure factor
   on the three lowest |k| shells. Every channel also gets its *spectral
   tail* ``logS_tail``: the mean log S(k) over the upper half of its |k|
   shells, which sits at the image's noise floor (additive noise lifts it by
   orders of magnitude, blur lowers it), so an image measured unlike the
   training inputs stands out even where the low-k summaries agree.
   For a model trained with a measurement model, the training images are
   measured first, as the network saw them (noise stream
   ``measurement_rng(seed, MEASUREMENT_EPOCH, k)`` for sample k), so the
   reference describes measured images and a real, noisy image is scored
   against its own kind.
2. A *robust centre and covariance* of the training summaries: summaries are
   centred on their median and scaled by their MAD, then a minimum-covariance-
   determinant estimate (concentration steps on the 75% most central samples,
   Rousseeuw & Van Driessen 1999) gives a centre and covariance insensitive to
   the tails of the ensemble. Summaries with no spread in the ensemble are left
   out of the score (their names are listed in the reference).
3. The *score* is the Mahalanobis distance of a summary vector from that
   centre; the *threshold* is the 99th percentile of the scores of held-out
   training simulations (not used for the fit), so about 1% of in-distribution
   observations exceed it.

The reference lives in ``ood.json`` in the model directory
(``format = "tdglnre-ood"``). :func:`fit_and_save_ood` builds it from the
training ensemble (at the end of training, or lazily by ``tdglnre posterior``
through :func:`ood_for_observation`). A cached reference is used only while
its ``dataset`` record (config, prior, seed) and input selection match the
model's metadata.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ...errors import ConfigError, TDGLError
from ..atomic import write_text_atomic
from .ood_summaries import (_metadata_summaries, input_summaries, measurement_of, network_channels,  # noqa: F401
                            spectral_tail, summary_names)

log = logging.getLogger(__name__)

FORMAT = "tdglnre-ood"
# 2: summaries from the corrected structure factor (shells centred on 2πm/L, /N⁴)
# 3: the spectral tail of every channel; measured training inputs for measurement-aware models
FORMAT_VERSION = 3
FILENAME = "ood.json"
#: Percentile of held-out scores used as the warning threshold.
DEFAULT_QUANTILE = 0.99
#: Fraction of the samples that the MCD covariance is fitted on.
MCD_SUPPORT = 0.75
#: Training samples read at most when building a reference.
DEFAULT_MAX_SAMPLES = 4000
#: Fraction of those held out to calibrate the threshold.
DEFAULT_HELDOUT_FRACTION = 0.25
#: Fewest samples a reference is built from (fit + held out).
MIN_SAMPLES = 40

#: Measurement-noise epoch of the reference (training draws epochs 0, 1, ...; this one it never reaches).
MEASUREMENT_EPOCH = 2**31 - 1

# ----------------------------------------------------------------------------- robust fit
def _robust_standardise(s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median, scale (1.4826 MAD, else std) and mask of columns with spread."""
    med = np.median(s, axis=0)
    scale = 1.4826 * np.median(np.abs(s - med), axis=0)
    std = s.std(axis=0)
    scale = np.where(scale > 0, scale, std)
    tiny = 1e-9 * np.maximum(np.abs(med), 1e-12)
    keep = np.isfinite(scale) & (scale > tiny)
    return med, np.where(keep, scale, 1.0), keep


def _mcd(z: np.ndarray, support: float = MCD_SUPPORT, max_steps: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Centre and covariance of the ``support`` fraction of rows with the smallest covariance determinant.

    Concentration steps from the rows nearest the (median) origin; the result
    is rescaled so that the median squared distance of all rows matches the
    χ² median (consistency at the normal model).
    """
    from scipy import stats

    n, d = z.shape
    h = min(n, max(d + 1, int(math.ceil(support * n))))
    subset = np.argsort((z**2).sum(axis=1), kind="stable")[:h]
    for _ in range(max_steps):
        mu = z[subset].mean(axis=0)
        cov = np.cov(z[subset], rowvar=False).reshape(d, d)
        cov += 1e-9 * max(np.trace(cov) / d, 1e-12) * np.eye(d)
        d2 = _mahalanobis2(z, mu, cov)
        new = np.argsort(d2, kind="stable")[:h]
        if np.array_equal(np.sort(new), np.sort(subset)):
            break
        subset = new
    d2 = _mahalanobis2(z, mu, cov)
    cov = cov * (np.median(d2) / stats.chi2.ppf(0.5, d))
    return mu, cov


def _mahalanobis2(z: np.ndarray, mu: np.ndarray, cov: np.ndarray) -> np.ndarray:
    chol = np.linalg.cholesky(cov)
    y = np.linalg.solve(chol, (z - mu).T)
    return (y**2).sum(axis=0)


def fit_ood_reference(train_summaries: np.ndarray, heldout_summaries: np.ndarray, *,
                      quantile: float = DEFAULT_QUANTILE, names: Sequence[str] | None = None) -> dict[str, Any]:
    """Fit the robust reference on training summaries and calibrate its threshold on held-out ones.

    Parameters
    ----------
    train_summaries
        (n_fit, D) summaries the centre and covariance are estimated from.
    heldout_summaries
        (n_heldout, D) summaries of other simulations from the same
        distribution; the threshold is their score's ``quantile``.
    quantile
        Percentile (as a fraction) of held-out scores that sets the threshold.
    names
        Names of the D summaries (default ``s0, s1, …``).

    Returns
    -------
    dict
        Plain-JSON reference (centre, scales, covariance, threshold, held-out
        scores) for :func:`ood_score`.

    Raises
    ------
    ConfigError
        On non-finite summaries, mismatched widths, too few samples or a
        quantile outside (0, 1).
    """
    a = np.asarray(train_summaries, dtype=np.float64)
    b = np.asarray(heldout_summaries, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ConfigError(f"OOD reference needs 2-D summaries of equal width, got {a.shape} and {b.shape}")
    if not 0.0 < quantile < 1.0:
        raise ConfigError(f"OOD threshold quantile must lie in (0, 1), got {quantile}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ConfigError("OOD reference summaries contain NaN/Inf values")
    if len(b) < 1:
        raise ConfigError("OOD reference needs at least one held-out sample for its threshold")
    names = list(names) if names is not None else [f"s{i}" for i in range(a.shape[1])]
    if len(names) != a.shape[1]:
        raise ConfigError(f"{len(names)} summary names for {a.shape[1]} summaries")
    med, scale, keep = _robust_standardise(a)
    d = int(keep.sum())
    if d == 0:
        raise ConfigError("OOD reference: no summary varies across the training samples")
    if len(a) < 2 * d:
        raise ConfigError(f"OOD reference needs at least {2 * d} fit samples for {d} summaries, got {len(a)}")
    z = (a[:, keep] - med[keep]) / scale[keep]
    mu, cov = _mcd(z)
    ref: dict[str, Any] = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "method": "Mahalanobis distance of summary statistics; MCD covariance (75% support) "
                  "after median/MAD standardisation",
        "summary_names": names,
        "used": [bool(k) for k in keep],
        "dropped": [n for n, k in zip(names, keep) if not k],
        "median": med.tolist(), "scale": scale.tolist(),
        "center": mu.tolist(), "covariance": cov.tolist(),
        "n_fit": int(len(a)), "n_heldout": int(len(b)), "quantile": float(quantile),
    }
    held = ood_score(ref, b)
    ref["threshold"] = float(np.quantile(held, quantile))
    ref["heldout_scores"] = np.sort(held).tolist()
    return ref


def ood_score(reference: dict[str, Any], summaries: np.ndarray) -> np.ndarray | float:
    """Mahalanobis distance of summaries from a reference of :func:`fit_ood_reference`.

    Parameters
    ----------
    reference
        The reference dictionary.
    summaries
        (D,) for one observation (returns a float) or (n, D) (returns (n,)).
    """
    s = np.asarray(summaries, dtype=np.float64)
    single = s.ndim == 1
    s = np.atleast_2d(s)
    keep = np.asarray(reference["used"], dtype=bool)
    if s.shape[1] != keep.size:
        raise ConfigError(f"OOD score: reference has {keep.size} summaries, got {s.shape[1]}")
    med = np.asarray(reference["median"])[keep]
    scale = np.asarray(reference["scale"])[keep]
    z = (s[:, keep] - med) / scale
    d2 = _mahalanobis2(z, np.asarray(reference["center"]), np.asarray(reference["covariance"]))
    d = np.sqrt(np.where(np.isfinite(d2), d2, np.inf))
    return float(d[0]) if single else d


def heldout_exceedance(reference: dict[str, Any], score: float) -> float:
    """Fraction of the held-out simulations whose score is at least ``score`` (an empirical p-value)."""
    held = np.asarray(reference.get("heldout_scores") or [], dtype=np.float64)
    if held.size == 0:
        return float("nan")
    return float((held >= score).mean())


# ----------------------------------------------------------------------------- files
def _selection_record(metadata: dict[str, Any]) -> dict[str, Any]:
    inp = metadata["input"]
    rec = {k: inp.get(k) for k in ("channels", "channel_indices", "snapshot_indices", "snapshot_times")}
    m = measurement_of(metadata)
    rec["measurement"] = None if m is None else str(m)
    return rec


def _dataset_record(metadata: dict[str, Any]) -> dict[str, Any]:
    ds = metadata.get("dataset") or {}
    return {"fingerprint": ds.get("fingerprint"), "path": ds.get("path"), "seed": ds.get("seed")}


def save_ood_reference(reference: dict[str, Any], model_dir: str | os.PathLike[str]) -> Path:
    """Write ``ood.json`` into a model directory (atomically: temporary file, then rename)."""
    return write_text_atomic(Path(model_dir) / FILENAME, json.dumps(reference, indent=1))


def load_ood_reference(model_dir: str | os.PathLike[str],
                       metadata: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The cached reference of a model directory, or None if absent, unreadable or stale.

    With ``metadata``, a reference built for another dataset or input selection
    (e.g. left over from an earlier model in the same directory) counts as stale.
    """
    path = Path(model_dir) / FILENAME
    if not path.exists():
        return None
    try:
        ref = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        log.warning("ignoring unreadable %s (%s)", path, exc)
        return None
    if not isinstance(ref, dict) or ref.get("format") != FORMAT or int(ref.get("format_version", -1)) != FORMAT_VERSION:
        log.warning("ignoring %s: not a tdglnre OOD reference of format version %d", path, FORMAT_VERSION)
        return None
    if metadata is not None:
        if (ref.get("selection") != _selection_record(metadata)
                or (ref.get("dataset") or {}).get("fingerprint") != _dataset_record(metadata)["fingerprint"]):
            log.info("%s was built for another dataset or input selection; rebuilding", path)
            return None
    return ref


def _check_same_dataset(ens: Any, metadata: dict[str, Any], path: str) -> None:
    ds = metadata.get("dataset") or {}
    diffs = []
    if metadata.get("prior") is not None and ens.prior.to_dict() != metadata["prior"]:
        diffs.append("prior")
    if ds.get("seed") is not None and int(ens.seed) != int(ds["seed"]):
        diffs.append("seed")
    cfg = ds.get("config")
    if isinstance(cfg, dict) and ens.config.to_dict() != cfg:
        diffs.append("config")
    if diffs:
        raise ConfigError(f"{path} is no longer the model's training ensemble (its {', '.join(diffs)} differ)")


def reference_summaries(metadata: dict[str, Any], data_path: str | os.PathLike[str], *,
                        max_samples: int = DEFAULT_MAX_SAMPLES, seed: int = 0) -> np.ndarray:
    """Summaries (n, D) of the first ``max_samples`` complete samples of the training ensemble.

    For a model trained with a measurement, sample k is measured first with
    ``measurement_rng(seed, MEASUREMENT_EPOCH, k)``, as the network saw it.

    Raises
    ------
    ConfigError
        If the file is missing or is not the ensemble the metadata describes.
    """
    from ...io.ensemble import open_ensemble
    from ..pipeline.data import Selection

    if not Path(data_path).exists():
        raise ConfigError(f"training ensemble {data_path} does not exist")
    from ..pipeline.selection import measure_inputs

    sel = Selection.from_dict(metadata["input"])
    meas = measurement_of(metadata)
    with open_ensemble(data_path) as ens:
        _check_same_dataset(ens, metadata, str(data_path))
        n = min(int(ens.n_complete), int(max_samples))
        parts = []
        for a in range(0, n, 256):
            b = min(a + 256, n)
            x = measure_inputs(meas, sel.apply(ens.x(a, b)), sel, int(seed), MEASUREMENT_EPOCH, np.arange(a, b))
            parts.append(_metadata_summaries(metadata, x))
    if not parts:
        raise ConfigError(f"training ensemble {data_path} holds no complete samples")
    return np.concatenate(parts)


def build_ood_reference(metadata: dict[str, Any], data_path: str | os.PathLike[str] | None = None, *,
                        max_samples: int = DEFAULT_MAX_SAMPLES, heldout_fraction: float = DEFAULT_HELDOUT_FRACTION,
                        quantile: float = DEFAULT_QUANTILE, seed: int = 0) -> dict[str, Any]:
    """OOD reference of a model from its training ensemble (default: the path its metadata records).

    The samples read are split at random (seeded) into a fit part and a
    held-out part of ``heldout_fraction``.
    """
    path = data_path or (metadata.get("dataset") or {}).get("path")
    if not path:
        raise ConfigError("the model's metadata records no training ensemble path")
    if not 0.0 < heldout_fraction < 1.0:
        raise ConfigError(f"heldout_fraction must lie in (0, 1), got {heldout_fraction}")
    s = reference_summaries(metadata, path, max_samples=max_samples, seed=seed)
    if len(s) < MIN_SAMPLES:
        raise ConfigError(f"training ensemble {path} has {len(s)} samples; the OOD reference needs {MIN_SAMPLES}")
    perm = np.random.default_rng([int(seed), 0x00D]).permutation(len(s))
    n_held = max(1, int(round(heldout_fraction * len(s))))
    inp = metadata["input"]
    names = summary_names(network_channels(metadata), inp["snapshot_times"])
    ref = fit_ood_reference(s[perm[n_held:]], s[perm[:n_held]], quantile=quantile, names=names)
    ref["selection"] = _selection_record(metadata)
    ref["dataset"] = {**_dataset_record(metadata), "path": str(path)}
    ref["seed"] = int(seed)
    return ref


def fit_and_save_ood(model_dir: str | os.PathLike[str], data_path: str | os.PathLike[str] | None = None, *,
                     metadata: dict[str, Any] | None = None, max_samples: int = DEFAULT_MAX_SAMPLES,
                     heldout_fraction: float = DEFAULT_HELDOUT_FRACTION, quantile: float = DEFAULT_QUANTILE,
                     seed: int = 0) -> dict[str, Any]:
    """Build the OOD reference of a trained model and write it to ``model_dir/ood.json``.

    Parameters
    ----------
    model_dir
        The model directory (its ``metadata.json`` is read unless ``metadata``
        is given, e.g. by training before it writes the file).
    data_path
        The training ensemble (default: the path in the metadata).
    metadata, max_samples, heldout_fraction, quantile, seed
        See :func:`build_ood_reference`.

    Returns
    -------
    dict
        The reference written.
    """
    if metadata is None:
        from .model_io import read_metadata

        metadata = read_metadata(model_dir)
    ref = build_ood_reference(metadata, data_path, max_samples=max_samples, heldout_fraction=heldout_fraction,
                              quantile=quantile, seed=seed)
    path = save_ood_reference(ref, model_dir)
    log.info("OOD reference: %d fit + %d held-out samples, threshold %.3g -> %s",
             ref["n_fit"], ref["n_heldout"], ref["threshold"], path)
    return ref


def ood_for_observation(model_dir: str | os.PathLike[str], metadata: dict[str, Any], x: np.ndarray, *,
                        cache: bool = True) -> dict[str, Any]:
    """OOD score of one preprocessed observation (1, N, N, S·C) for ``posterior.json``.

    Uses ``model_dir/ood.json``; if it is missing or stale, builds the
    reference from the training ensemble and (with ``cache``) writes it. When
    that ensemble is missing, changed or unreadable the score is None and
    ``ood_note`` says why; the posterior itself never fails on this account.

    Returns
    -------
    dict
        ``ood_score``, ``ood_threshold``, ``ood_quantile``,
        ``ood_heldout_exceedance`` (fraction of held-out simulations scoring at
        least as high), ``ood_flag`` (score above the threshold) and
        ``ood_note``.
    """
    out: dict[str, Any] = {"ood_score": None, "ood_threshold": None, "ood_quantile": None,
                           "ood_heldout_exceedance": None, "ood_flag": None, "ood_note": None}
    ref = load_ood_reference(model_dir, metadata)
    if ref is None:
        try:
            ref = build_ood_reference(metadata)
        except (TDGLError, ValueError, OSError) as exc:  # missing, changed or unreadable training data
            out["ood_note"] = f"no OOD score: {exc}"
            log.warning("%s", out["ood_note"])
            return out
        if cache:
            try:
                save_ood_reference(ref, model_dir)
            except OSError as exc:
                log.warning("could not cache the OOD reference in %s (%s)", model_dir, exc)
    score = ood_score(ref, _metadata_summaries(metadata, x)[0])
    out.update(ood_score=score, ood_threshold=ref["threshold"], ood_quantile=ref["quantile"],
               ood_heldout_exceedance=heldout_exceedance(ref, score), ood_flag=bool(score > ref["threshold"]))
    if not math.isfinite(score):
        out["ood_score"] = None
        out["ood_flag"] = True
        out["ood_note"] = "the observation's summaries are not finite"
    return out


__all__ = ["fit_ood_reference", "ood_score", "fit_and_save_ood", "build_ood_reference", "load_ood_reference",
           "save_ood_reference", "ood_for_observation", "input_summaries", "summary_names", "heldout_exceedance",
           "network_channels", "spectral_tail", "MEASUREMENT_EPOCH"]
