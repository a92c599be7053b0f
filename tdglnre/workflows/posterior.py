"""Posterior of one observation: in memory first, files only when asked.

>>> import tdglnre as tg
>>> model = tg.load_model("model/")
>>> obs = tg.simulate_observation(model, eta=0.8, n_v=4, seed=1)
>>> post = tg.posterior(model, obs)
>>> post.summary()["parameters"]["eta"]["hpd95"]
>>> post.save("post/"); post.plot()

The observation may be an :class:`Observation` (from an ensemble, a file or a
simulation) or a plain array in the training ensemble's layout.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._validate import as_bool, as_float, as_int, as_optional_path, as_path
from ..errors import ConfigError
from ..nre.infer.inference import posteriors_on_grid
from ..nre.infer.model_io import temperature_record_of
from ..nre.infer.posterior import Grid, GridPosterior, check_grid_size
from ..nre.infer.regimes import model_regime_context, regime_masses
from ._output import check_output_dir, staged_output
from ..instrument.images import value_map
from .observations import (
    _SIM_EXTRA,
    IMAGE_SUFFIXES,
    channel_names,
    check_measurement_arg,
    Observation,
    _as_model,
    image_to_input,
    load_image,
    load_model,
    load_observation,
    network_input,
    observation_from_ensemble,
    observation_from_file,
    observation_labels,
    parse_simulate_spec,
    simulate_observation,
)

log = logging.getLogger(__name__)

#: The posterior workflow and, re-exported, its inputs (:mod:`.observations`).
__all__ = ["PosteriorResult", "posterior", "run_posterior", "report_lines", "IMAGE_SUFFIXES", "Observation",
           "image_to_input", "load_image", "load_model", "load_observation", "network_input",
           "observation_from_ensemble", "observation_from_file", "observation_labels", "parse_simulate_spec",
           "simulate_observation"]


#: Share of an integer parameter's posterior on a prior bound's value above which it is a confident
#: answer (an allowed value the data single out), not mass piling against the bound.
CONFIDENT_MASS = 0.95


def _edge_remarks(post: GridPosterior, edges: dict[str, str | None]) -> tuple[list[str], list[str]]:
    """(warnings, notes) on the prior bounds the posterior reaches (``edges``, :meth:`GridPosterior.prior_edges`).

    A warning is what the bound check exists for: a posterior piling against
    a bound that is no edge of the physics (a continuous parameter cut off by
    the prior box, an integer one leaning on its end value), or one flat over
    the whole range. A correct answer at the edge is a note, not a warning:
    an integer parameter with at least :data:`CONFIDENT_MASS` on its end value
    (n_v = 1 on int_uniform(1, 8) is an allowed value the data single out; an
    observation from beyond the range shows in the OOD score), or a lower
    bound at a physical limit (:data:`~tdglnre.physics.config.PHYSICAL_LOWER_LIMITS`:
    T = 0, δ = 0), beyond which no value exists.
    """
    from ..physics.config import PHYSICAL_LOWER_LIMITS

    warnings: list[str] = []
    notes: list[str] = []
    for n, edge in edges.items():
        if edge is None:
            continue
        ax = post.grid.axes[post.grid.names.index(n)]
        if edge == "both":
            warnings.append(f"{n}: the posterior is nearly flat over the whole prior range [{ax.low:g}, {ax.high:g}]; "
                            f"the observation barely constrains {n}")
            continue
        bound = ax.low if edge == "low" else ax.high
        word = "lower" if edge == "low" else "upper"
        _, m = post.marginal(n)
        mass = float(m[0 if edge == "low" else -1])
        if ax.discrete and mass >= CONFIDENT_MASS:
            notes.append(f"{n}: the posterior is concentrated on {n} = {bound:g} (P = {mass:.3f}), the prior's "
                         f"{word} value: an answer inside the training range")
        elif edge == "low" and PHYSICAL_LOWER_LIMITS.get(n) == ax.low:
            notes.append(f"{n}: the posterior reaches the prior's lower bound {bound:g}, the physical limit of {n} "
                         f"(no value lies below it)")
        else:
            warnings.append(f"{n}: the posterior piles against the prior's {word} bound {bound:g} (cut off by the "
                            f"prior, not by the data); the true value may lie beyond the training range")
    return warnings, notes


def report_lines(summary: dict[str, Any]) -> list[str]:
    """Human-readable lines of a ``posterior.json`` content: parameters, OOD score, notes, warnings."""
    lines = []
    for n, s in summary["parameters"].items():
        t = f", truth {s['truth']:g}" if "truth" in s else ""
        edge = summary.get("at_prior_edge", {}).get(n)
        e = f" [at prior edge: {edge}]" if edge else ""
        lines.append(f"{n}: mean {s['mean']:.4f} ± {s['std']:.4f}, 95% HPD [{s['hpd95'][0]:.4f}, "
                     f"{s['hpd95'][1]:.4f}], MAP {s['map']:.4f}{t}{e}")
    if summary.get("p_regime") is not None:
        pr = summary["p_regime"]
        lines.append("P(regime | x): " + ", ".join(f"Type {r} {p:.3f}" for r, p in pr.items()))
    if summary.get("p_drag") is not None:
        lines.append(f"P(nu > 0 | x) = {summary['p_drag']:.3f} (drag model comparison, prior P(nu > 0) = 0.5)")
    if summary.get("ood_score") is not None:
        lines.append(f"OOD score {summary['ood_score']:.3g} (threshold {summary['ood_threshold']:.3g}: "
                     f"{100 * summary['ood_quantile']:g}th percentile of held-out training simulations)")
    if summary.get("temperature", 1.0) != 1.0:
        lines.append(f"posterior temperature {summary['temperature']:.3f} (fitted on the validation split; "
                     "docs/nre.md, Tempering)")
    lines.extend(f"note: {n}" for n in summary.get("notes", []))
    lines.extend(f"WARNING: {w}" for w in summary.get("warnings", []))
    return lines


@dataclass
class PosteriorResult:
    """Grid posterior of one observation with its diagnostics."""

    posterior: GridPosterior
    """The normalised grid posterior (marginals, HPD intervals, samples)."""
    x: np.ndarray
    """The network input (N, N, C') the posterior conditions on."""
    channels: list[str]
    """Names of the input channels, e.g. ``rho1 (t=2)``."""
    source: dict[str, Any]
    """Where the observation came from."""
    at_prior_edge: dict[str, str | None]
    """Per parameter: which prior bound the 95% HPD region piles against ("low", "high", "both" or None)."""
    ood: dict[str, Any]
    """Out-of-distribution score, threshold and notes (:mod:`tdglnre.nre.infer.ood`)."""
    warnings: list[str]
    """One line per remark a user should read: something may be wrong (cut off by the prior, OOD, ...)."""
    seconds: float
    """Wall time of the grid evaluation (encoding included)."""
    grid_points: int
    """Grid points per continuous parameter."""
    model_dir: str | None = None
    """The model directory, when known."""
    p_drag: float | None = None
    """P(ν > 0 | x) from a drag model-comparison classifier (docs/drag.md), when one was available."""
    notes: list[str] = field(default_factory=list)
    """Remarks that are no warning: e.g. a posterior concentrated on the end value of an integer prior."""
    p_regime: dict[str, float] | None = None
    """P(Type I / 1.5 / II | x): the posterior mass where each regime holds (screened models only; else None)."""
    temperature: float = 1.0
    """The model's posterior temperature (docs/nre.md, "Tempering"; 1: none)."""
    member_temperatures: list[float] | None = None
    """An ensemble's members' own temperatures (its ``temperature`` is 1); None for one model."""

    def summary(self) -> dict[str, Any]:
        """The content of ``posterior.json`` (``p_regime`` only for a screened model)."""
        return ({"p_regime": self.p_regime} if self.p_regime is not None else {}) | {"source": self.source, "grid_points": self.grid_points, "parameters": self.posterior.summaries(),
                "at_prior_edge": self.at_prior_edge, **self.ood, "p_drag": self.p_drag, "warnings": self.warnings, "notes": self.notes,
                "observation_plot": "observation.png", "observation_file": "observation.npy",
                "observation_channels": self.channels, "posterior_seconds": self.seconds,
                "model_dir": self.model_dir, "temperature": self.temperature} | (
                    {} if self.member_temperatures is None else {"member_temperatures": self.member_temperatures})

    def report(self) -> list[str]:
        """Human-readable lines: one per parameter, the OOD score and the warnings."""
        return report_lines(self.summary())

    def plot(self, out_dir: str | Path | None = None) -> list[Any]:
        """Observation panel, marginals and (for ≥ 2 parameters) the joint.

        With ``out_dir`` the figures are written there as PNGs and their paths
        returned; without, the open matplotlib figures are returned (inline in
        Jupyter).
        """
        from .. import plots

        names = self.posterior.grid.names
        d = None if out_dir is None else Path(out_dir)
        figs = [plots.plot_observation(self.x, self.channels, None if d is None else d / "observation.png"),
                plots.plot_marginals(self.posterior, None if d is None else d / "marginals.png")]
        if len(names) >= 2:
            figs.append(plots.plot_joint(self.posterior, names[0], names[1],
                                         None if d is None else d / f"joint_{names[0]}_{names[1]}.png"))
        return figs

    def save(self, out_dir: str | Path, *, force: bool = False) -> Path:
        """Write posterior.json, the grid (.npz), the observation (.npy) and the figures.

        ``out_dir`` must not exist or be empty unless ``force``; it is replaced
        only when everything is written.
        """
        with staged_output(out_dir, force=force) as out:
            (out / "posterior.json").write_text(json.dumps(self.summary(), indent=1))
            np.savez_compressed(out / "posterior_grid.npz", log_density=self.posterior.log_density,
                                **{f"axis_{a.name}": a.values for a in self.posterior.grid.axes})
            np.save(out / "observation.npy", self.x)
            self.plot(out)
        return Path(out_dir)


def _as_array_observation(observation: Any) -> np.ndarray:
    """A plain-array observation as a real numeric array (T, N, N, C) or (N, N, C); anything else is refused."""
    if isinstance(observation, (str, Path)):
        raise ConfigError(f"`observation` {str(observation)!r} is a path; read it with "
                          "tg.observation_from_file(path, model=model) and pass the Observation")
    if not isinstance(observation, np.ndarray):
        raise ConfigError(f"`observation` must be an Observation or a NumPy array (N, N, C), got "
                          f"{type(observation).__name__}")
    if np.iscomplexobj(observation) or observation.dtype.kind not in "biuf":
        raise ConfigError(f"`observation` must hold real numbers, got dtype {observation.dtype}")
    if observation.ndim not in (3, 4) or 0 in observation.shape:
        raise ConfigError(f"`observation` must be a non-empty array (N, N, C) or (T, N, N, C), got shape "
                          f"{observation.shape}")
    return observation


def _as_truth(truth: Any) -> dict[str, float] | None:
    """``truth`` as a dict of finite floats, or None."""
    if truth is None:
        return None
    if not isinstance(truth, dict):
        raise ConfigError(f"`truth` must be a dict of parameter values like {{'eta': 0.8}}, got {type(truth).__name__}")
    return {str(k): as_float(f"`truth` {k}", v) for k, v in truth.items()}


def posterior(model: Any, observation: Observation | np.ndarray, *, grid_points: int = 512, ood: bool = True,
              truth: dict[str, float] | None = None, measurement: Any = None,
              drag_classifier: str | Path | None = None) -> PosteriorResult:
    """Grid posterior p(θ | x) of one observation, in memory.

    Parameters
    ----------
    model
        A loaded estimator (:func:`load_model`) or its directory.
    observation
        An :class:`Observation`, or an array in the training ensemble's layout
        ((T, N, N, C) or (N, N, C); see ``RatioEstimator.preprocess``).
    grid_points
        Grid points per continuous parameter (integers get one point each).
    ood
        Score the observation against the training ensemble (needs the
        training data or a cached ``ood.json`` in the model directory).
    truth
        Known parameter values to record (defaults to the observation's).
    measurement
        The measurement the observation went through (text form,
        docs/observations.md), overriding ``observation.measurement``; must
        equal the model's or be covered by it (``MeasurementModel.covers``:
        e.g. ``noise(0.05)`` for a model trained with ``noise(0..0.15)``);
        ``source`` records ``measurement_declared`` and ``measurement_match``
        (``"equal"`` or ``"covered"``). A plain array counts as measured with
        the model's measurement when the model has one (as its network input).
    drag_classifier
        Directory of a ν = 0 vs ν > 0 classifier (``model_comparison.keras``,
        :mod:`tdglnre.nre.infer.model_comparison`); by default the model directory
        when it holds one. Gives :attr:`PosteriorResult.p_drag`.

    Returns
    -------
    PosteriorResult
    """
    model_dir = str(model) if isinstance(model, (str, Path)) else getattr(model, "model_dir", None)
    model = _as_model(model)
    grid_points = check_grid_size(model.prior, grid_points, list(model.parameter_names))
    ood = as_bool("`ood`", ood)
    truth = _as_truth(truth)
    check_measurement_arg(measurement)
    drag_classifier = as_optional_path("`drag_classifier`", drag_classifier)
    if not isinstance(observation, Observation):
        observation = Observation(_as_array_observation(observation), {"array": list(np.shape(observation))},
                                  measurement=None if model.measurement.is_identity else model.measurement)
    declared = measurement if measurement is not None else observation.measurement
    measurement, match = _accept_covered_measurement(model, declared, measurement)
    if getattr(model, "instrument_size", 0):
        match = {**match, **_declare_instrument(model, declared)}
    x, measured = network_input(model, observation, measurement)
    source = {**observation.source, **measured, **match}
    grid = Grid.from_prior(model.prior, grid_points, model.parameter_names)
    t0 = time.perf_counter()
    posts, _ = posteriors_on_grid(model, x, grid)
    elapsed = time.perf_counter() - t0
    post = posts[0]
    truth = observation.truth if truth is None else truth
    if truth is not None:
        post.truth = {k: float(v) for k, v in truth.items() if k in grid.names}
    edges = post.prior_edges(prior=model.prior)
    edge_warnings, notes = _edge_remarks(post, edges)
    warnings = list(observation.warnings) + edge_warnings
    ood_res = _ood_result(model, model_dir, x, ood, warnings)
    if drag_classifier is None and model_dir is not None and (Path(model_dir) / "model_comparison.json").exists():
        drag_classifier = model_dir
    p = None if drag_classifier is None else _p_drag(drag_classifier, observation, warnings)
    for w in warnings:
        log.info("%s", w)
    regime = model_regime_context(model)
    p_regime = None if regime is None else regime_masses(post, *regime)
    return PosteriorResult(post, x[0], observation_labels(model.metadata), source, edges, ood_res,
                           warnings, elapsed, int(grid_points), model_dir, p, notes, p_regime,
                           *_temperatures(model))


def _temperatures(model: Any) -> tuple[float, list[float] | None]:
    rec = temperature_record_of(model)
    return rec["temperature"], rec.get("member_temperatures")


def _declare_instrument(model: Any, declared: Any) -> dict[str, Any]:
    """Tell a model that takes the instrument as an input which one the observation went through.

    ``declared`` None: a clean observation, measured with the model's family
    (its draw is the instrument, set by :func:`.observations.network_input`).
    Otherwise it must be a fixed member of the family; a family (the default
    for a plain array) is refused with one line naming the option.
    """
    if declared is None:
        model.set_instrument(None)
        return {}
    try:
        d = model.set_instrument(declared)
    except ConfigError as exc:
        raise ConfigError(f"this model takes each image's instrument as an input (trained with --instrument-input "
                          f"on {str(model.measurement)!r}): declare the observation's instrument with fixed values "
                          f"inside that family (`--measurement`); {exc}") from None
    return {"instrument": [float(v) for v in d]}


def _accept_covered_measurement(model: Any, declared: Any, measurement: Any) -> tuple[Any, dict[str, Any]]:
    """The measurement to hand :func:`network_input` and the ``source`` record of the declared one.

    A declared measurement the model's covers (``noise(0.05)`` inside
    ``noise(0..0.15)``) is a member of the family the model was trained on: it
    is accepted as the model's own (returned as the model's measurement, with
    ``measurement_declared`` and ``measurement_match`` to record); anything
    else is refused with one line. Otherwise ``measurement`` is returned as given.
    """
    if declared is None or model.measurement.is_identity:
        return measurement, {}
    got = model.resolve_measurement(declared)
    equal = str(got) == str(model.measurement)
    if not equal and model.measurement.has_ranges and not model.measurement.covers(got):
        raise ConfigError(f"`measurement` of the observation is {str(got)!r}, not covered by the model's "
                          f"{str(model.measurement)!r} (same transforms, values inside its ranges); "
                          "measure within the model's ranges or train a model for this one")
    if equal or model.measurement.covers(got):
        return model.measurement, {"measurement_declared": str(got),
                                   "measurement_match": "equal" if equal else "covered"}
    return measurement, {}


def _ood_result(model: Any, model_dir: str | None, x: np.ndarray, ood: bool, warnings: list[str]) -> dict[str, Any]:
    """The OOD score of the network input ``x`` (:mod:`tdglnre.nre.infer.ood`); its remarks are added to ``warnings``."""
    if ood and model_dir is not None:
        from ..nre.infer.ood import ood_for_observation

        ood_res = ood_for_observation(model_dir, model.metadata, x)
    else:
        why = "ood=False" if not ood else "the model has no directory to cache the reference in"
        ood_res = {"ood_score": None, "ood_threshold": None, "ood_note": f"OOD score not computed ({why})"}
    if ood_res.get("ood_flag"):
        score = ood_res["ood_score"]
        warnings.append(
            "the observation is out of distribution: "
            + ("its summaries are not finite" if score is None else
               f"OOD score {score:.3g} > threshold {ood_res['ood_threshold']:.3g} "
               f"({100 * ood_res['ood_quantile']:g}th percentile of held-out training simulations)")
            + "; the posterior is an extrapolation")
    elif ood and ood_res.get("ood_note"):
        warnings.append(ood_res["ood_note"])
    return ood_res


def _p_drag(drag_classifier: str | Path, observation: Observation, warnings: list[str]) -> float | None:
    """P(ν > 0 | x) of the drag model-comparison classifier; None (and a warning) when it cannot be computed."""
    from ..nre.infer.model_comparison import p_drag

    try:
        return float(np.ravel(p_drag(drag_classifier, observation.x))[0])
    except ConfigError as exc:
        warnings.append(f"P(nu > 0 | x) not computed: {exc}")
        return None


def run_posterior(model_dir: str | Path, out_dir: str | Path, *, data: str | Path | None = None,
                  index: int | None = None, observation: str | Path | None = None,
                  simulate: str | dict | None = None, grid_points: int = 512, force: bool = False,
                  ood: bool = True, measurement: str | None = None, pixel_size: float | None = None,
                  channels: Any = None, drag_classifier: str | Path | None = None, value_range: Any = None,
                  value_scale: Any = None) -> dict[str, Any]:
    """Resolve one observation, compute its posterior and write it to ``out_dir``.

    Exactly one of ``data`` (with ``index``), ``observation`` or ``simulate``
    (``"eta=0.8,n_v=4,seed=1"`` or a dict) names the observation. Returns the
    content of ``posterior.json``. ``out_dir`` is checked before any work and
    written only at the end.

    ``measurement`` declares what the instrument did to an ``observation``
    file (default ``"none"``, a perfect measurement) and must equal the
    model's measurement model or be covered by it (a member of its ranges,
    ``MeasurementModel.covers``). Ensemble samples and simulations are clean:
    they get the model's measurement applied (noise seeded by the simulation
    seed, or by the sample index); a ``measurement`` given with them must
    also equal the model's. ``pixel_size`` (coherence lengths) and
    ``channels`` (the image's channel names) describe an image
    ``observation``; ``value_range`` (lo, hi: an integer file's full range
    mapped onto physical values) or ``value_scale`` (a, b: x ↦ a·x + b)
    convert its values (see :func:`observation_from_file`; recorded in
    ``posterior.json`` under ``source``).
    """
    as_path("`model_dir`", model_dir)  # checked, not normalised: the paths are recorded as given
    as_optional_path("`data`", data)
    as_optional_path("`observation`", observation)
    index = None if index is None else as_int("`index`", index, 0)
    grid_points = as_int("`grid_points`", grid_points, 2)
    force, ood = as_bool("`force`", force), as_bool("`ood`", ood)
    if simulate is not None and not isinstance(simulate, (str, dict)):
        raise ConfigError(f"`simulate` must be a text like 'eta=0.8,n_v=4,seed=1' or a dict, got "
                          f"{type(simulate).__name__}")
    check_measurement_arg(measurement)
    if pixel_size is not None:
        pixel_size = as_float("`pixel_size`", pixel_size, positive=True)
    if channels is not None:
        channel_names(channels)
    given = [s for s in (data, observation, simulate) if s is not None]
    if len(given) != 1:
        raise ConfigError("give exactly one of `data` (with `index`), `observation`, `simulate`")
    if data is not None and index is None:
        raise ConfigError("`data` needs `index`")
    if observation is None and any(v is not None for v in (pixel_size, channels, value_range, value_scale)):
        raise ConfigError("`pixel_size`, `channels`, `value_range` and `value_scale` describe an `observation` file")
    value_map(value_range, value_scale)  # checked before any work
    check_output_dir(out_dir, force=force, protect=(model_dir, data, observation))
    spec = None
    if simulate is not None:
        spec = parse_simulate_spec(simulate) if isinstance(simulate, str) else dict(simulate)
    if measurement is not None:
        from ..instrument.model import MeasurementModel

        # parsed once, here: a malformed spec fails before any work, and the model is what travels on
        measurement = MeasurementModel.parse(measurement)
    model = load_model(model_dir)
    check_grid_size(model.prior, grid_points, list(model.parameter_names))  # before any simulation
    if measurement is not None and observation is None and str(measurement) != str(model.measurement):
        raise ConfigError(f"`measurement` {str(measurement)!r} differs from the model's "
                          f"{str(model.measurement)!r}; simulations and ensemble samples get the model's measurement")
    if data is not None:
        obs = observation_from_ensemble(data, index, model)
    elif observation is not None:
        obs = observation_from_file(observation, "none" if measurement is None else measurement, model=model,
                                    pixel_size=pixel_size, channels=channels, value_range=value_range,
                                    value_scale=value_scale)
    else:
        nuisance = list(model.nuisance)
        unknown = sorted(set(spec) - set(model.parameter_names) - {"eta", "n_v", "nu"} - set(nuisance)
                         - set(_SIM_EXTRA))
        if unknown:
            raise ConfigError(f"`simulate`: unknown key(s) {unknown}; valid: "
                              f"{', '.join(['eta', 'n_v', 'nu'] + nuisance)}, seed")
        seed = spec.pop("seed", 0.0)
        if seed != int(seed):
            raise ConfigError(f"`simulate`: seed must be an integer in [0, 2^63), got {seed:g}")
        obs = simulate_observation(model, seed=int(seed), **spec)
    res = posterior(model, obs, grid_points=grid_points, ood=ood, drag_classifier=drag_classifier)
    res.save(out_dir, force=force)
    return res.summary()
