"""Measurement forward model: what an instrument makes of the simulated channels.

A :class:`MeasurementModel` is a left-to-right composition of seeded
transforms applied to channel images ``(..., N, N, C)`` whose last axis holds
named channels (by default :data:`tdglnre.physics.observables.CHANNELS`,
``rho1, rho2, curlJ``). Pure NumPy; docs/observations.md describes each
transform and its physical reading.

=================  ==========================================================
text               effect
=================  ==========================================================
``blur(w)``        periodic Gaussian point-spread function, standard
                   deviation ``w`` pixels of the image it acts on
``blur_xi(w)``     the same with ``w`` in coherence lengths, turned into
                   pixels by :meth:`MeasurementModel.in_pixels`
``height(z)``      the field channel ``B`` seen at height ``z`` coherence
                   lengths above the surface (Fourier modes × exp(−|k|z),
                   the mean kept); ``height_px(z)`` the same in pixels
``noise(s)``       additive Gaussian noise, σ = ``s`` × the channel's
                   standard deviation over the image (the paper's 0.01,
                   0.05, 0.15)
``poisson(n)``     shot noise: the channel is read as an intensity with
                   ``n`` expected counts per pixel on average
``bin(M)``         average f×f pixel blocks down to an M×M image (f = N/M)
``gain(g)``        multiply by ``g``
``offset(o)``      add ``o``
``channels(a,…)``  keep the named channels, in the order given
=================  ==========================================================

Text form ``"blur(1.0)+noise(0.05)+bin(16)+channels(rho1)"``; the TOML /
JSON form is a list of tables ``[{kind = "blur", width = 1.0}, …]`` (or
``{"transforms": [...]}``, or shorthand ``{blur = 1.0}``). ``str(model)``
and :meth:`MeasurementModel.to_dict` round-trip through :meth:`MeasurementModel.parse`.

Every parameter is bounded so that float32 images stay finite and keep their
signal (``noise`` σ ≤ 100, 10⁻⁶ ≤ |gain| ≤ 10⁶ and never 0, |offset| ≤ 10³,
10⁻³ ≤ ``poisson`` counts ≤ 10¹², widths ≤ 10⁶, and the transforms of one
model together scaling by 10⁻⁶ … 10⁸; docs/observations.md, "Bounds"): a
value outside is a one-line :class:`~tdglnre.errors.ConfigError` naming it,
raised by :meth:`MeasurementModel.parse`.

An instrument known only within bounds: any parameter but ``bin``'s and
``channels``' may be a range, ``noise(0..0.15)`` / ``{kind = "noise", sigma =
[0, 0.15]}``, drawn per sample from that sample's generator just before the
transform's own noise (uniform; log-uniform for ``poisson``);
:meth:`MeasurementModel.covers` tells whether a model is a member of such a
family (:mod:`tdglnre.instrument._params`). Alternative instruments
``"noise(0..0.25) | blur(0..1.5)+noise(0..0.25)"`` make a
:class:`MeasurementMixture` (one alternative per sample).

Randomness comes only from the explicit ``numpy.random.Generator`` given to
:meth:`MeasurementModel.apply`; :func:`measurement_rng` derives one per
(seed, epoch, sample) so that augmentation is reproducible whatever the
batching (:meth:`MeasurementModel.apply_samples`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from ..errors import ConfigError
from ..physics.observables import CHANNELS
from . import _instrument
from ._params import Range, record, recording
from ._transforms import (GAIN_MAGNITUDE, MAX_AMPLIFICATION, TRANSFORMS, Bin, Blur, BlurXi, Channels, Gain, Height,
                          HeightPx, Noise, Offset, Poisson, Transform, _from_entry, _parse_term, psf_kernel)

#: Transforms with a length in coherence lengths, resolved to pixels by :meth:`MeasurementModel.in_pixels`.
_IN_XI = (BlurXi, Height)

log = logging.getLogger(__name__)

__all__ = ["MeasurementModel", "MeasurementMixture", "Transform", "Range", "Blur", "BlurXi", "Height", "HeightPx", "Noise", "Poisson", "Bin", "Gain", "Offset", "Channels",
           "TRANSFORMS", "measurement_rng", "psf_kernel", "resolve_on_lattice"]

#: Entropy word that separates measurement streams from the solver's (seed, stream, k) streams.
MEASUREMENT_STREAM = 0x4D454153  # "MEAS"


def measurement_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """Generator for sample ``index`` in ``epoch`` of a run with ``seed`` (all integers >= 0).

    Built from ``SeedSequence([seed, MEASUREMENT_STREAM, epoch, index])``, so it
    depends on nothing else (batch, order, worker) and never coincides with the
    solver's streams ``SeedSequence([seed, stream, k])``.
    """
    vals = {"seed": seed, "epoch": epoch, "index": index}
    for name, v in vals.items():
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or int(v) < 0:
            raise ConfigError(f"measurement_rng: {name} must be an integer >= 0, got {v!r}")
    return np.random.default_rng(np.random.SeedSequence([int(seed), MEASUREMENT_STREAM, int(epoch), int(index)]))


# ------------------------------------------------------------------ the model
@dataclass(frozen=True)
class MeasurementModel:
    """A composition of measurement transforms, applied left to right."""

    transforms: tuple[Transform, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "transforms", tuple(_from_entry(t) for t in self.transforms))
        up = down = 1.0
        for t in self.transforms:
            up, down = up * t.amplification, down * t.attenuation
        bad = (f"by up to {up:g} (at most {MAX_AMPLIFICATION:g})" if up > MAX_AMPLIFICATION else
               f"by as little as {down:g} (at least {GAIN_MAGNITUDE[0]:g})" if down < GAIN_MAGNITUDE[0] else None)
        if bad:
            raise ConfigError(f"measurement {self}: together its transforms scale the images {bad}; beyond, "
                              "float32 images overflow or lose their signal (docs/observations.md)")

    # ------------------------------------------------------------ construction
    @classmethod
    def parse(cls, spec: Any) -> "MeasurementModel":
        """Model from text, a list of entries, a ``{"transforms": [...]}`` mapping, None or a model.

        Text: terms joined by ``+`` (``"blur(1.0)+noise(0.05)"``); ``""`` and
        ``"none"`` are the identity (perfect measurement). Models joined by
        ``|`` (``"none | blur(0..1.5)"``), or a mapping ``{"alternatives":
        [...]}``, give a :class:`MeasurementMixture`: one alternative per sample.
        """
        if spec is None:
            return cls()
        if isinstance(spec, MeasurementModel):
            return spec
        if isinstance(spec, str):
            text = spec.strip()
            alternatives = split_alternatives(text)
            if len(alternatives) > 1:
                return MeasurementMixture(alternatives=tuple(alternatives))
            if text.lower() in ("", "none"):
                return cls()
            terms = _split_terms(text)
            return cls(tuple(_parse_term(t) for t in terms))
        if isinstance(spec, Mapping):
            d = dict(spec)
            if set(d) == {"alternatives"}:
                alts = d["alternatives"]
                if not isinstance(alts, (list, tuple)):
                    raise ConfigError(f"measurement 'alternatives' must be a list of models, got {alts!r}")
                return MeasurementMixture(alternatives=tuple(alts))
            if set(d) == {"transforms"}:
                return cls.parse(d["transforms"])
            return cls((_from_entry(d),)) if "kind" in d or len(d) == 1 else cls.parse([d])
        if isinstance(spec, (list, tuple)):
            return cls(tuple(_from_entry(e) for e in spec))
        raise ConfigError(f"measurement must be text like 'blur(1.0)+noise(0.05)', a list of tables or a "
                          f"mapping with 'transforms', got {type(spec).__name__}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "MeasurementModel":
        """Inverse of :meth:`to_dict`."""
        if isinstance(d, Mapping) and set(d) == {"alternatives"}:
            return cls.parse(d)
        if not isinstance(d, Mapping) or "transforms" not in d:
            raise ConfigError(f"measurement dict needs the key 'transforms' (or 'alternatives'), got {d!r}")
        return cls.parse({"transforms": d["transforms"]})

    @classmethod
    def from_json(cls, text: str) -> "MeasurementModel":
        """Inverse of :meth:`to_json`."""
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"measurement JSON is malformed: {exc}") from None

    # ------------------------------------------------------------ description
    def __str__(self) -> str:
        return "+".join(str(t) for t in self.transforms) if self.transforms else "none"

    def to_dict(self) -> dict[str, Any]:
        """``{"transforms": [{"kind": ..., ...}, ...]}`` (plain JSON; for model metadata)."""
        return {"transforms": [t.to_dict() for t in self.transforms]}

    def to_json(self) -> str:
        """JSON text of :meth:`to_dict`."""
        return json.dumps(self.to_dict())

    @property
    def is_identity(self) -> bool:
        """True when the model changes nothing (no transforms)."""
        return not self.transforms

    @property
    def instrument(self) -> str:
        """Text of the model without transforms fixed at their neutral value (``noise(0)``, ``gain(1)``, …):
        two models with the same instrument measure alike (``none`` and ``noise(0)`` are one instrument)."""
        return str(MeasurementModel(tuple(t for t in self.transforms if not t.is_neutral)))

    @property
    def is_random(self) -> bool:
        """True when :meth:`apply` draws random numbers (noise, shot noise or a parameter range)."""
        return any(isinstance(t, (Noise, Poisson)) or t.has_range for t in self.transforms)

    @property
    def has_ranges(self) -> bool:
        """True when a transform parameter is a range ``lo..hi``, drawn per sample."""
        return any(t.has_range for t in self.transforms)

    def covers(self, other: Any) -> bool:
        """True when ``other`` (a model or anything :meth:`parse` takes) is a member of this model's family.

        Same transform kinds in the same order; each of ``other``'s values or
        ranges inside this model's range (or equal to its fixed value); fixed
        parameters (``bin`` size, ``channels``) equal. A transform of this
        model that ``other`` lacks counts as present at its neutral value
        (blur 0, noise 0, gain 1, offset 0) when its range includes that
        value: ``blur(0..1.5)+noise(0..0.15)`` covers ``blur(1.0)``. A mixture
        is covered when each of its alternatives is. A model covers itself.
        """
        other = MeasurementModel.parse(other)
        if isinstance(other, MeasurementMixture):
            return all(self.covers(m) for m in other.alternatives)
        return _instrument.align(self, other) is not None

    @property
    def needs_pixel_size(self) -> bool:
        """True when a transform is given in coherence lengths (``blur_xi``, ``height``): resolve with :meth:`in_pixels`."""
        return any(isinstance(t, _IN_XI) for t in self.transforms)

    def in_pixels(self, h: float, N: int) -> "MeasurementModel":
        """This model with widths in coherence lengths turned into pixels of an N×N image of pixel size ``h`` ξ.

        ``blur_xi(w)`` becomes ``blur(w / h′)`` and ``height(z)`` ``height_px(z / h′)``, h′ being the pixel size at that
        step (h times the binning factors before it). A model without such
        transforms is returned unchanged.
        """
        if not self.needs_pixel_size:
            return self
        if not (isinstance(h, (int, float)) and h > 0 and np.isfinite(h)):
            raise ConfigError(f"pixel size must be a positive number of coherence lengths, got {h!r}")
        out, n = [], int(N)
        for t in self.transforms:
            out.append(t.in_pixels(h) if isinstance(t, _IN_XI) else t)
            m = t.out_size(n)
            h, n = h * n / m, m
        return MeasurementModel(tuple(out))

    def output_channels(self, channels: Sequence[str] = CHANNELS) -> tuple[str, ...]:
        """Channel names of the measured image, given the input's."""
        ch = tuple(channels)
        for t in self.transforms:
            ch = t.out_channels(ch)
        return ch

    def output_size(self, N: int) -> int:
        """Side M of the measured M×M image for an N×N input."""
        for t in self.transforms:
            N = t.out_size(N)
        return N

    def output_shape(self, N: int, channels: Sequence[str] = CHANNELS) -> tuple[int, int, int]:
        """Shape (M, M, C′) of one measured image from an N×N image with ``channels``."""
        M = self.output_size(N)
        return (M, M, len(self.output_channels(channels)))

    # ------------------------------------------------------------ application
    def apply(self, x: np.ndarray, rng: np.random.Generator | None = None,
              channels: Sequence[str] = CHANNELS) -> np.ndarray:
        """Measure images ``x`` (..., N, N, C); returns (..., M, M, C′) in ``x``'s float dtype.

        ``rng`` is required when the model is random (:attr:`is_random`); all
        images in ``x`` share its stream and one draw of each parameter range,
        so use :meth:`apply_samples` for per-sample draws that do not depend on
        how samples are batched.
        """
        ch = tuple(channels)
        x = np.asarray(x)
        if x.ndim < 3 or x.shape[-3] != x.shape[-2]:
            raise ConfigError(f"measurement needs square images (..., N, N, C), got shape {x.shape}")
        if x.shape[-1] != len(ch):
            raise ConfigError(f"images have {x.shape[-1]} channels but {len(ch)} names were given: {list(ch)}")
        if self.is_random and not isinstance(rng, np.random.Generator):
            raise ConfigError(f"measurement {self} draws noise and needs a numpy Generator (see measurement_rng)")
        self.output_shape(x.shape[-2], ch)  # validates bin sizes and channel names before any work
        out_dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.dtype(np.float64)
        y = x.astype(np.float64)
        for t in self.transforms:
            y = t.apply(y, ch, rng)
            ch = t.out_channels(ch)
        return y.astype(out_dtype, copy=False)

    def apply_samples(self, x: np.ndarray, seed: int, epoch: int, indices: Iterable[int],
                      channels: Sequence[str] = CHANNELS, realised: list | None = None) -> np.ndarray:
        """Measure each sample ``x[r]`` with its own generator ``measurement_rng(seed, epoch, indices[r])``.

        Sample k's measured image depends only on (seed, epoch, k): fresh noise
        every epoch, reproducible from the seed, whatever the batch.
        ``realised``: a list that receives, per sample, the fixed instrument
        the measurement drew (:meth:`realised`); the images are the same.
        """
        x = np.asarray(x)
        idx = np.asarray(list(indices), dtype=np.int64).reshape(-1)
        if idx.shape[0] != x.shape[0]:
            raise ConfigError(f"{x.shape[0]} images but {idx.shape[0]} sample indices")
        if not self.is_random:
            if realised is not None:
                realised.extend([self] * x.shape[0])
            return self.apply(x, None, channels)
        out = np.empty((x.shape[0],) + x.shape[1:-3] + self.output_shape(x.shape[-2], channels),
                       dtype=x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64)
        for r in range(x.shape[0]):
            rng = measurement_rng(seed, epoch, int(idx[r]))
            if realised is None:
                out[r] = self.apply(x[r], rng, channels)
                continue
            with recording() as drawn:
                out[r] = self.apply(x[r], rng, channels)
            realised.append(self.realised(iter(drawn)))
        return out

    # ------------------------------------------------- the instrument as a network input
    def realised(self, drawn: Iterator[float]) -> "MeasurementModel":
        """The fixed instrument of one measurement: each range replaced by its draw, in order from ``drawn``."""
        return _instrument.realised(self, drawn)

    @property
    def instrument_size(self) -> int:
        """Length of :meth:`describe`'s vector: one entry per parameter range."""
        return _instrument.size(self)

    def describe(self, member: Any) -> np.ndarray:
        """The instrument vector of a fixed member of this family (:func:`._instrument.describe`)."""
        return _instrument.describe(self, MeasurementModel.parse(member))


def resolve_on_lattice(model: MeasurementModel, L: float | None, N: int, *,
                       lacking: str = "the data do not say their lattice length L") -> MeasurementModel:
    """``model`` with widths in coherence lengths (``blur_xi``) in pixels of an N×N lattice of length ``L`` ξ.

    The one place where a measurement is resolved against a lattice (training
    on an ensemble, a trained model's declared measurements): the pixel size is
    h = L/N (:meth:`MeasurementModel.in_pixels`). A model without such widths
    is returned unchanged whatever ``L``; one with them and ``L`` None is a
    :class:`ConfigError` ending in ``lacking``.
    """
    if not model.needs_pixel_size:
        return model
    if L is None:
        raise ConfigError(f"measurement {str(model)!r} gives a width in coherence lengths, but {lacking}; give the "
                          "width in pixels (blur)")
    return model.in_pixels(float(L) / int(N), int(N))


def _split_terms(text: str) -> list[str]:
    """Split ``a(..)+b(..)`` at top-level ``+`` signs (a ``+`` inside parentheses, as in 1e+3, stays)."""
    terms, depth, cur = [], 0, []
    for c in text:
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth < 0:
                raise ConfigError(f"measurement {text!r}: unbalanced parentheses")
        if c == "+" and depth == 0:
            terms.append("".join(cur))
            cur = []
        else:
            cur.append(c)
    if depth:
        raise ConfigError(f"measurement {text!r}: unbalanced parentheses")
    terms.append("".join(cur))
    if any(not t.strip() for t in terms):
        raise ConfigError(f"measurement {text!r} has an empty term (two '+' in a row or a '+' at an end)")
    return terms



# ------------------------------------------------------------------ alternative instruments ``a | b``
def split_alternatives(text: str) -> list[str]:
    """Split ``a | b`` at top-level ``|`` signs; one element when there is none."""
    parts, depth, cur = [], 0, []
    for c in text:
        depth += (c == "(") - (c == ")")
        if c == "|" and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
    parts.append("".join(cur))
    if len(parts) > 1 and any(not p.strip() for p in parts):
        raise ConfigError(f"measurement {text!r} has an empty alternative (two '|' in a row or a '|' at an end)")
    return parts


@dataclass(frozen=True)
class MeasurementMixture(MeasurementModel):
    """Measure each sample with one of ``alternatives`` (uniform choice from its generator).

    A :class:`MeasurementModel` everywhere one is expected (training,
    calibration, posterior, model metadata); :meth:`covers` accepts any model
    one of the alternatives covers. Build with :meth:`MeasurementModel.parse`
    (``"none | blur(0..1.5)"``) or directly from two or more models.
    """

    alternatives: tuple[MeasurementModel, ...] = ()

    def __post_init__(self) -> None:
        if self.transforms:
            raise ConfigError("a measurement mixture holds alternatives, not transforms of its own")
        alts = []
        for a in self.alternatives:
            m = MeasurementModel.parse(a)
            alts.extend(m.alternatives if isinstance(m, MeasurementMixture) else [m])  # a | (b | c) = a | b | c
        if len(alts) < 2:
            raise ConfigError(f"a measurement mixture needs at least two alternatives, got {len(alts)}")
        keys = [a.instrument for a in alts]
        dup = sorted({k for k in keys if keys.count(k) > 1})
        if dup:
            same = "; ".join(" = ".join(repr(str(a)) for a, k in zip(alts, keys) if k == d) for d in dup)
            raise ConfigError(f"measurement alternatives repeat an instrument ({same}); each alternative is drawn "
                              "with equal probability, so list each instrument once")
        object.__setattr__(self, "alternatives", tuple(alts))

    # ------------------------------------------------------------ description
    def __str__(self) -> str:
        return " | ".join(str(a) for a in self.alternatives)

    def to_dict(self) -> dict[str, Any]:
        """``{"alternatives": [{"transforms": [...]}, ...]}``."""
        return {"alternatives": [a.to_dict() for a in self.alternatives]}

    @property
    def is_identity(self) -> bool:
        return False  # two different alternatives: at most one of them is the identity

    @property
    def instrument(self) -> str:
        """The alternatives' instruments (:attr:`MeasurementModel.instrument`), joined by ``|``."""
        return " | ".join(a.instrument for a in self.alternatives)

    @property
    def is_random(self) -> bool:
        return True  # the choice of the alternative is a draw

    @property
    def has_ranges(self) -> bool:
        """True: a mixture is a family of instruments, like a model with ranges."""
        return True

    def covers(self, other: Any) -> bool:
        """True when every member of ``other`` is covered by one of the alternatives (see the base class)."""
        other = MeasurementModel.parse(other)
        members = other.alternatives if isinstance(other, MeasurementMixture) else (other,)
        return all(any(a.covers(m) for a in self.alternatives) for m in members)

    @property
    def needs_pixel_size(self) -> bool:
        return any(a.needs_pixel_size for a in self.alternatives)

    def in_pixels(self, h: float, N: int) -> "MeasurementModel":
        """Each alternative resolved (:meth:`MeasurementModel.in_pixels`)."""
        if not self.needs_pixel_size:
            return self
        return MeasurementMixture(alternatives=tuple(a.in_pixels(h, N) for a in self.alternatives))

    def _agree(self, what: str, values: list[Any]) -> Any:
        if any(v != values[0] for v in values[1:]):
            detail = "; ".join(f"{a} -> {v}" for a, v in zip(self.alternatives, values))
            raise ConfigError(f"measurement alternatives give different {what} ({detail}); a network takes one "
                              "input shape, so every alternative must give the same")
        return values[0]

    def output_channels(self, channels: Sequence[str] = CHANNELS) -> tuple[str, ...]:
        return self._agree("channels", [a.output_channels(channels) for a in self.alternatives])

    def output_size(self, N: int) -> int:
        return self._agree("image sizes", [a.output_size(N) for a in self.alternatives])

    # ------------------------------------------------------------ application
    def apply(self, x: np.ndarray, rng: np.random.Generator | None = None,
              channels: Sequence[str] = CHANNELS) -> np.ndarray:
        """Measure ``x`` with one alternative, chosen by ``rng``'s first draw (shared by all images in ``x``)."""
        if not isinstance(rng, np.random.Generator):
            raise ConfigError(f"measurement {self} chooses an alternative at random and needs a numpy Generator "
                              "(see measurement_rng)")
        x = np.asarray(x)
        if x.ndim >= 3:
            self.output_shape(x.shape[-2], tuple(channels))  # every alternative valid and alike, before any draw
        choice = int(rng.integers(len(self.alternatives)))
        record(choice)
        return self.alternatives[choice].apply(x, rng, channels)
