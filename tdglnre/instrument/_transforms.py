"""Measurement transforms: the steps a :class:`tdglnre.instrument.model.MeasurementModel` composes (private).

Each transform is a frozen dataclass with a text name (``blur``, ``noise``,
``poisson``, ``bin``, ``gain``, ``offset``, ``channels``), its parameters
(fixed values or :class:`~tdglnre.instrument._params.Range`), and
``apply(x, channels, rng)`` on float64 images ``(..., N, N, C)``. The
parser of one term (``blur(1.0)``, ``{kind = "blur", width = 1.0}``) lives here
too; the model, its text form and the alternatives are in
:mod:`tdglnre.instrument.model`. docs/observations.md describes each transform.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np

from ..errors import ConfigError
from ._params import Range, draw, interval, param as _param, text as _text, to_json as _to_json

#: Bounds of the transform parameters (docs/observations.md, "Bounds"): within them float32 images stay
#: finite and keep their signal. |width| of blur / blur_xi (pixels / coherence lengths):
BLUR_MAX = 1e6
#: noise σ in units of the channel's spread (σ = 100: the image is noise)
NOISE_MAX = 100.0
#: poisson expected counts per pixel (fewer: one count is > 1000 times the mean; more: Poisson overflows int64)
POISSON_COUNTS = (1e-3, 1e12)
#: |gain| (0 gives all-zero images; beyond, the input variance over- or underflows float32)
GAIN_MAGNITUDE = (1e-6, 1e6)
#: |offset| (float32 keeps ~7 digits: an offset of 1e3 leaves 1e-4 resolution on unit-scale channels)
OFFSET_MAX = 1e3
#: the largest factor the transforms of one model may scale an image by together (product of |gain|,
#: 1 + noise σ and poisson's 1/counts)
MAX_AMPLIFICATION = 1e8


def psf_kernel(N: int, width: float) -> np.ndarray:
    """The periodic point-spread function (N, N) of ``blur(width)``, centred on pixel (0, 0).

    Its Fourier transform is exp(−k²w²/2) with k = 2π·fftfreq(N) per axis
    (a Gaussian of standard deviation w pixels, made periodic); it sums to 1,
    so blurring conserves the image mean.
    """
    k = 2.0 * np.pi * np.fft.fftfreq(N)
    return np.fft.ifft2(_psf_spectrum(k, k, width)).real


def _psf_spectrum(ky: np.ndarray, kx: np.ndarray, width: float) -> np.ndarray:
    return np.exp(-0.5 * width * width * (ky[:, None] ** 2 + kx[None, :] ** 2))


# ------------------------------------------------------------------ transforms
class Transform:
    """One step of a measurement model (subclasses are frozen dataclasses)."""

    kind: ClassVar[str] = ""
    #: argument names, in text order
    params: ClassVar[tuple[str, ...]] = ()
    #: the value of the (one) parameter at which the transform changes nothing, or None (no such value)
    neutral: ClassVar[float | None] = None

    def args(self) -> tuple[Any, ...]:
        """Argument values in :attr:`params` order."""
        return tuple(getattr(self, p) for p in self.params)

    def __str__(self) -> str:
        return f"{self.kind}({', '.join(_text(a) for a in self.args())})"

    def to_dict(self) -> dict[str, Any]:
        """``{"kind": ..., param: value, ...}`` (plain JSON; a range is ``[lo, hi]``)."""
        return {"kind": self.kind, **{p: _to_json(getattr(self, p)) for p in self.params}}

    @property
    def has_range(self) -> bool:
        """True when a parameter is a :class:`Range`, drawn per sample."""
        return any(isinstance(a, Range) for a in self.args())

    @property
    def admits_identity(self) -> bool:
        """True when the transform's value or range includes its :attr:`neutral` value (e.g. ``noise(0..0.15)``)."""
        if self.neutral is None:
            return False
        lo, hi = interval(self.args()[0])
        return lo <= self.neutral <= hi

    def covers(self, other: "Transform") -> bool:
        """True when ``other`` is the same kind with every parameter (value or range) inside this one's."""
        if type(other) is not type(self):
            return False
        for a, b in zip(self.args(), other.args()):
            (alo, ahi), (blo, bhi) = interval(a), interval(b)
            if isinstance(a, tuple) or isinstance(b, tuple):  # channel names
                if a != b:
                    return False
            elif not (alo <= blo and bhi <= ahi):
                return False
        return True

    @property
    def is_neutral(self) -> bool:
        """True when the transform is fixed at its :attr:`neutral` value (changes nothing, e.g. ``noise(0)``)."""
        return self.neutral is not None and not self.has_range and self.args()[0] == self.neutral

    @property
    def amplification(self) -> float:
        """The largest factor by which the transform can scale an image's values (bounded per model)."""
        return 1.0

    @property
    def attenuation(self) -> float:
        """The smallest factor by which the transform can scale an image's values (bounded per model)."""
        return 1.0

    def out_size(self, N: int) -> int:
        """Side of the output image for an N×N input."""
        return N

    def out_channels(self, channels: tuple[str, ...]) -> tuple[str, ...]:
        """Channel names after the transform."""
        return channels

    def apply(self, x: np.ndarray, channels: tuple[str, ...], rng: np.random.Generator) -> np.ndarray:
        """Transform a float64 array (..., N, N, C)."""
        raise NotImplementedError


@dataclass(frozen=True)
class Blur(Transform):
    """Periodic Gaussian point-spread blur of standard deviation ``width`` pixels (:func:`psf_kernel`)."""

    width: float
    kind: ClassVar[str] = "blur"
    neutral: ClassVar[float | None] = 0.0
    params: ClassVar[tuple[str, ...]] = ("width",)

    def __post_init__(self) -> None:
        object.__setattr__(self, "width", _param(self.kind, "width", self.width, low=0.0,
                                                 magnitude=(0.0, BLUR_MAX)))

    def apply(self, x, channels, rng):
        width = draw(self.width, rng)
        if width == 0:
            return x
        import scipy.fft

        N = x.shape[-2]
        k = 2.0 * np.pi * np.fft.fftfreq(N)
        # real FFT in the input's precision (float32 images stay float32): 3x faster than a complex
        # float64 fft2, which made the per-epoch augmentation the bottleneck of training
        x = np.asarray(x)
        dt = np.float32 if x.dtype == np.float32 else np.float64
        spec = _psf_spectrum(k, k[: N // 2 + 1], width).astype(dt)
        xt = np.ascontiguousarray(np.moveaxis(x.astype(dt, copy=False), -1, -3))  # (..., C, N, N)
        return np.moveaxis(scipy.fft.irfft2(scipy.fft.rfft2(xt) * spec, s=(N, N)), -3, -1)


@dataclass(frozen=True)
class BlurXi(Transform):
    """Gaussian point-spread blur of standard deviation ``width`` coherence lengths ξ.

    The width in pixels depends on the image's pixel size, which a transform
    does not know: :meth:`tdglnre.instrument.model.MeasurementModel.in_pixels`
    turns it into ``blur(width / h)`` (h: pixel size in ξ at this step, i.e.
    L/N times the preceding binning factors), as training, calibration and
    the posterior do with the model's L and N. Applying it unresolved is refused.
    """

    width: float
    kind: ClassVar[str] = "blur_xi"
    neutral: ClassVar[float | None] = 0.0
    params: ClassVar[tuple[str, ...]] = ("width",)

    def __post_init__(self) -> None:
        object.__setattr__(self, "width", _param(self.kind, "width", self.width, low=0.0,
                                                 magnitude=(0.0, BLUR_MAX)))

    def in_pixels(self, h: float) -> Blur:
        """The same blur in pixels of size ``h`` coherence lengths."""
        w = self.width
        return Blur(w.scaled(1.0 / h) if isinstance(w, Range) else w / h)

    def apply(self, x, channels, rng):
        raise ConfigError(f"measurement {self}: a width in coherence lengths needs the pixel size; resolve the "
                          "model with in_pixels(L/N, N) (training, calibration and posterior do)")


#: The channel a probe above the surface sees: the field B (docs/physics.md, "Screening").
FIELD_CHANNEL = "B"


def _field_index(t: Transform, channels: tuple[str, ...]) -> int:
    if FIELD_CHANNEL not in channels:
        raise ConfigError(f"measurement {t}: the probe height acts on the field channel {FIELD_CHANNEL!r}, which "
                          f"this image lacks (channels {', '.join(channels)}); simulate with screening "
                          "(λ < ∞) and keep the channel B")
    return channels.index(FIELD_CHANNEL)


@dataclass(frozen=True)
class HeightPx(Transform):
    """Stray field at height ``z`` pixels above the surface: B's 2-D Fourier modes times exp(−|k| z).

    Upward continuation of a field that is harmonic above the sample (a
    scanning SQUID's or Hall probe's reading at lift-off z), periodic like the
    image: k = 2π·fftfreq(N) per axis, |k| = (k_x² + k_y²)^½; the mean (k = 0)
    is kept. Only the channel ``B`` changes.
    """

    z: float
    kind: ClassVar[str] = "height_px"
    neutral: ClassVar[float | None] = 0.0
    params: ClassVar[tuple[str, ...]] = ("z",)

    def __post_init__(self) -> None:
        object.__setattr__(self, "z", _param(self.kind, "z", self.z, low=0.0, magnitude=(0.0, BLUR_MAX)))

    def apply(self, x, channels, rng):
        z = draw(self.z, rng)
        c = _field_index(self, tuple(channels))
        if z == 0:
            return x
        import scipy.fft

        N = x.shape[-2]
        k = 2.0 * np.pi * np.fft.fftfreq(N)
        kr = k[: N // 2 + 1]
        x = np.array(x, dtype=np.float32 if x.dtype == np.float32 else np.float64)
        decay = np.exp(-z * np.sqrt(k[:, None] ** 2 + kr[None, :] ** 2)).astype(x.dtype)
        x[..., c] = scipy.fft.irfft2(scipy.fft.rfft2(x[..., c]) * decay, s=(N, N))
        return x


@dataclass(frozen=True)
class Height(Transform):
    """:class:`HeightPx` with the height ``z`` in coherence lengths ξ.

    Like :class:`BlurXi`, it needs the pixel size:
    :meth:`tdglnre.instrument.model.MeasurementModel.in_pixels` turns it into
    ``height_px(z / h)``. Applying it unresolved is refused.
    """

    z: float
    kind: ClassVar[str] = "height"
    neutral: ClassVar[float | None] = 0.0
    params: ClassVar[tuple[str, ...]] = ("z",)

    def __post_init__(self) -> None:
        object.__setattr__(self, "z", _param(self.kind, "z", self.z, low=0.0, magnitude=(0.0, BLUR_MAX)))

    def in_pixels(self, h: float) -> HeightPx:
        """The same height in pixels of size ``h`` coherence lengths."""
        z = self.z
        return HeightPx(z.scaled(1.0 / h) if isinstance(z, Range) else z / h)

    def apply(self, x, channels, rng):
        raise ConfigError(f"measurement {self}: a height in coherence lengths needs the pixel size; resolve the "
                          "model with in_pixels(L/N, N) (training, calibration and posterior do)")


@dataclass(frozen=True)
class Noise(Transform):
    """Additive Gaussian noise of σ = ``sigma`` × each channel's standard deviation over the image."""

    sigma: float
    kind: ClassVar[str] = "noise"
    neutral: ClassVar[float | None] = 0.0
    params: ClassVar[tuple[str, ...]] = ("sigma",)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sigma", _param(self.kind, "sigma", self.sigma, low=0.0,
                                                 magnitude=(0.0, NOISE_MAX)))

    @property
    def amplification(self) -> float:
        return 1.0 + interval(self.sigma)[1]

    def apply(self, x, channels, rng):
        sigma = draw(self.sigma, rng)  # before the noise, from the same generator
        spread = x.std(axis=(-3, -2), keepdims=True)
        return x + (sigma * spread) * rng.standard_normal(x.shape)


@dataclass(frozen=True)
class Poisson(Transform):
    """Shot noise with ``counts`` expected counts per pixel on average.

    Each channel of each image is read as an intensity I = x − min(0, min x)
    (non-negative; only a channel with negative values, such as curl J, is
    shifted), converted to counts with mean ``counts`` per pixel, drawn from a
    Poisson law and converted back: E[x'] = x and Var[x'] = I·mean(I)/counts.
    A range of counts is drawn log-uniformly (counts span decades; the
    relative shot noise goes as 1/sqrt(counts)).
    """

    counts: float
    kind: ClassVar[str] = "poisson"
    params: ClassVar[tuple[str, ...]] = ("counts",)

    def __post_init__(self) -> None:
        object.__setattr__(self, "counts", _param(self.kind, "counts", self.counts, low=0.0, low_open=True,
                                                  magnitude=POISSON_COUNTS))

    @property
    def amplification(self) -> float:
        return max(1.0, 1.0 / interval(self.counts)[0])  # one count back in units of the mean

    def apply(self, x, channels, rng):
        counts = draw(self.counts, rng, log=True)
        shift = np.minimum(0.0, x.min(axis=(-3, -2), keepdims=True))
        inten = x - shift
        mean = inten.mean(axis=(-3, -2), keepdims=True)
        scale = np.where(mean > 0, counts / np.where(mean > 0, mean, 1.0), 0.0)
        lam = inten * scale
        drawn = rng.poisson(lam).astype(np.float64)
        back = np.divide(drawn, scale, out=np.zeros_like(drawn), where=scale > 0)
        return back + shift


@dataclass(frozen=True)
class Bin(Transform):
    """Average f×f blocks of pixels into an ``size`` × ``size`` image (f = N / size, an integer)."""

    size: int
    kind: ClassVar[str] = "bin"
    params: ClassVar[tuple[str, ...]] = ("size",)

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", _param(self.kind, "size", self.size, ranged=False, low=1.0, integer=True))

    def out_size(self, N: int) -> int:
        if N % self.size:
            raise ConfigError(f"measurement bin({self.size}): the {N}x{N} image cannot be binned to "
                              f"{self.size}x{self.size}; the size must divide {N}")
        return self.size

    def apply(self, x, channels, rng):
        N = x.shape[-2]
        M = self.out_size(N)
        f = N // M
        y = x.reshape(x.shape[:-3] + (M, f, M, f, x.shape[-1]))
        return y.mean(axis=(-4, -2))


@dataclass(frozen=True)
class Gain(Transform):
    """Multiply every channel by ``factor`` (detector gain)."""

    factor: float
    kind: ClassVar[str] = "gain"
    neutral: ClassVar[float | None] = 1.0
    params: ClassVar[tuple[str, ...]] = ("factor",)

    def __post_init__(self) -> None:
        object.__setattr__(self, "factor", _param(self.kind, "factor", self.factor, magnitude=GAIN_MAGNITUDE))

    @property
    def amplification(self) -> float:
        return max(abs(v) for v in interval(self.factor))

    @property
    def attenuation(self) -> float:
        return min(abs(v) for v in interval(self.factor))  # a range never spans 0 (refused)

    def apply(self, x, channels, rng):
        return x * draw(self.factor, rng)


@dataclass(frozen=True)
class Offset(Transform):
    """Add ``value`` to every channel (detector offset / background)."""

    value: float
    kind: ClassVar[str] = "offset"
    neutral: ClassVar[float | None] = 0.0
    params: ClassVar[tuple[str, ...]] = ("value",)

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", _param(self.kind, "value", self.value, magnitude=(0.0, OFFSET_MAX)))

    def apply(self, x, channels, rng):
        return x + draw(self.value, rng)


_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Channels(Transform):
    """Keep the named channels, in the order given (e.g. only ``rho1`` for STM-like data)."""

    names: tuple[str, ...]
    kind: ClassVar[str] = "channels"
    params: ClassVar[tuple[str, ...]] = ("names",)

    def __post_init__(self) -> None:
        names = (self.names,) if isinstance(self.names, str) else tuple(self.names)
        if not names:
            raise ConfigError("measurement channels(): name at least one channel")
        for n in names:
            if isinstance(n, (str, Range)) and ".." in str(n):
                raise ConfigError(f"measurement channels: the channel list is fixed, a range ({n}) is not supported")
            if not isinstance(n, str) or not _NAME_RE.match(n):
                raise ConfigError(f"measurement channels: {n!r} is not a channel name")
        if len(set(names)) != len(names):
            raise ConfigError(f"measurement channels: names repeat in {list(names)}")
        object.__setattr__(self, "names", names)

    def __str__(self) -> str:
        return f"channels({', '.join(self.names)})"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "names": list(self.names)}

    def out_channels(self, channels):
        missing = [n for n in self.names if n not in channels]
        if missing:
            raise ConfigError(f"measurement {self}: no channel(s) {missing} in the image; it has {list(channels)}")
        return self.names

    def apply(self, x, channels, rng):
        self.out_channels(channels)
        return x[..., [channels.index(n) for n in self.names]]


#: Transform classes by text name.
TRANSFORMS: dict[str, type[Transform]] = {c.kind: c for c in (Blur, BlurXi, Height, HeightPx, Noise, Poisson, Bin, Gain,
                                                                Offset, Channels)}


def _make(kind: str, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None) -> Transform:
    """Build a transform from its name and arguments (ConfigError on anything wrong)."""
    cls = TRANSFORMS.get(kind)
    if cls is None:
        raise ConfigError(f"unknown measurement transform {kind!r}; valid: {', '.join(TRANSFORMS)}")
    kwargs = dict(kwargs or {})
    if cls is Channels:
        names = list(args) + ([] if "names" not in kwargs else
                              ([kwargs.pop("names")] if isinstance(kwargs.get("names"), str) else
                               list(kwargs.pop("names"))))
        if kwargs:
            raise ConfigError(f"measurement channels: unknown argument(s) {sorted(kwargs)}; it takes names")
        return Channels(tuple(names))
    unknown = sorted(set(kwargs) - set(cls.params))
    if unknown:
        raise ConfigError(f"measurement {kind}: unknown argument(s) {unknown}; it takes {list(cls.params)}")
    vals = list(args) + [kwargs[p] for p in cls.params[len(args):] if p in kwargs]
    if len(vals) != len(cls.params) or len(args) > len(cls.params):
        raise ConfigError(f"measurement {kind} takes {len(cls.params)} argument(s) ({', '.join(cls.params)}), "
                          f"got {len(args) + len(kwargs)}")
    return cls(*vals)


_CALL_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*\((.*)\)\s*$")


def _parse_term(term: str) -> Transform:
    m = _CALL_RE.match(term)
    if not m:
        raise ConfigError(f"measurement term {term.strip()!r} is not of the form name(arguments), "
                          f"e.g. blur(1.0); valid names: {', '.join(TRANSFORMS)}")
    kind, body = m.group(1), m.group(2).strip()
    raw = [a.strip() for a in body.split(",")] if body else []
    if any(a == "" for a in raw):
        raise ConfigError(f"measurement term {term.strip()!r} has an empty argument")
    return _make(kind, raw)


def _from_entry(entry: Any) -> Transform:
    """One transform from a string, a mapping with ``kind`` or a one-key shorthand mapping."""
    if isinstance(entry, Transform):
        return entry
    if isinstance(entry, str):
        return _parse_term(entry)
    if isinstance(entry, Mapping):
        d = dict(entry)
        if "kind" in d:
            kind = d.pop("kind")
            return _make(str(kind), (), d)
        if len(d) == 1:
            (kind, val), = d.items()
            if isinstance(val, (list, tuple)) and TRANSFORMS.get(str(kind)) not in (None, Channels):
                return _make(str(kind), [val])  # {noise = [0, 0.15]}: the one parameter is a range
            if isinstance(val, (list, tuple)):
                return _make(str(kind), list(val))
            return _make(str(kind), [val])
        raise ConfigError(f"measurement entry {entry!r} needs a 'kind' key (or exactly one key name = value)")
    raise ConfigError(f"measurement entry must be text or a table, got {type(entry).__name__}: {entry!r}")
