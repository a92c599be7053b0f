"""Transform parameters of the measurement model: fixed numbers, or ranges ``lo..hi`` drawn per sample.

A range is written ``lo..hi`` in the text form (``noise(0..0.15)``) and
``[lo, hi]`` in the table / JSON form (``{kind = "noise", sigma = [0, 0.15]}``).
Each end obeys the parameter's bounds, ``lo <= hi``, and ``lo == hi`` is
normalised to the fixed value. :func:`draw` takes one value from the
generator it is given (uniform in [lo, hi], or log-uniform for ``poisson``'s
counts) and leaves the generator untouched for a fixed value, so a model
without ranges draws exactly what it drew before ranges existed.
docs/observations.md, "Random transform parameters".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError


@dataclass(frozen=True)
class Range:
    """A transform parameter drawn per sample in [lo, hi] (lo < hi; both validated)."""

    lo: float
    hi: float

    def __str__(self) -> str:
        return f"{self.lo!r}..{self.hi!r}"

    def to_json(self) -> list[float]:
        return [self.lo, self.hi]


def number(kind: str, name: str, value: Any, *, low: float | None = None, low_open: bool = False,
           integer: bool = False, magnitude: tuple[float, float] | None = None) -> float | int:
    """Validate one fixed numeric transform argument; ConfigError names the transform and the value.

    ``magnitude=(a, b)``: besides ``low``, |v| must lie in [a, b] (0 allowed
    when a is 0): the range in which float32 images stay finite and keep their
    signal (docs/observations.md, "Bounds").
    """
    if isinstance(value, bool):
        raise ConfigError(f"measurement {kind}: {name} must be a number, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"measurement {kind}: {name} must be a number, got {value!r}") from None
    if not math.isfinite(v):
        raise ConfigError(f"measurement {kind}: {name} must be finite, got {value!r}")
    if low is not None and (v < low or (low_open and v == low)):
        rel = ">" if low_open else ">="
        raise ConfigError(f"measurement {kind}: {name} must be {rel} {low:g}, got {value!r}")
    if magnitude is not None:
        a, b = magnitude
        if a > 0 and v == 0:
            raise ConfigError(f"measurement {kind}: {name} must not be 0 (the images would be all zero), "
                              f"got {value!r}")
        if not a <= abs(v) <= b:
            where = f"at most {b:g}" if a == 0 else f"between {a:g} and {b:g}"
            signed = "" if low is not None and low >= 0 else " in magnitude"
            raise ConfigError(f"measurement {kind}: {name} must be {where}{signed} (beyond, float32 images "
                              f"overflow or lose their signal; docs/observations.md), got {value!r}")
    if integer:
        if v != round(v):
            raise ConfigError(f"measurement {kind}: {name} must be an integer, got {value!r}")
        return int(round(v))
    return v


def _ends(value: Any, where: str = "a measurement range") -> tuple[Any, Any] | None:
    """(lo, hi) when ``value`` is written as a range (``Range``, ``"lo..hi"``, ``[lo, hi]``), else None."""
    if isinstance(value, Range):
        return value.lo, value.hi
    if isinstance(value, str) and ".." in value:
        parts = value.split("..")
        if len(parts) != 2 or "..." in value or any(p.strip().startswith(".") or p.strip().endswith(".")
                                                    for p in parts):
            raise ConfigError(f"{where} is written lo..hi, two dots between two numbers, got {value.strip()!r}")
        return parts[0].strip(), parts[1].strip()
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ConfigError(f"a measurement range is [lo, hi] (two numbers), got {list(value)!r}")
        return value[0], value[1]
    return None


def param(kind: str, name: str, value: Any, *, ranged: bool = True, **bounds: Any) -> float | int | Range:
    """A fixed number or a :class:`Range` (``ranged=False``: ranges refused); ends obey ``bounds`` (:func:`number`)."""
    ends = _ends(value, f"measurement {kind}: a range of {name}")
    if ends is None:
        return number(kind, name, value, **bounds)
    text = f"{ends[0]}..{ends[1]}"
    if not ranged:
        raise ConfigError(f"measurement {kind}: {name} is fixed, a range ({text}) is not supported")
    lo, hi = (number(kind, f"{name} range end", e, **bounds) for e in ends)
    if lo > hi:
        raise ConfigError(f"measurement {kind}: the range {text} of {name} needs lo <= hi")
    mag = bounds.get("magnitude")
    if mag is not None and mag[0] > 0 and lo < 0 < hi:
        raise ConfigError(f"measurement {kind}: the range {text} of {name} includes 0 (all-zero images); "
                          "keep both ends on one side of 0")
    return lo if lo == hi else Range(lo, hi)


def draw(value: float | Range, rng: np.random.Generator, *, log: bool = False) -> float:
    """The value for one sample: ``value`` itself when fixed (``rng`` untouched), else one draw from ``rng``.

    Uniform in [lo, hi]; ``log=True``: log-uniform (uniform in [log lo, log hi]; needs lo > 0).
    """
    if not isinstance(value, Range):
        return value
    if log:
        return float(math.exp(rng.uniform(math.log(value.lo), math.log(value.hi))))
    return float(rng.uniform(value.lo, value.hi))


def interval(value: Any) -> tuple[Any, Any]:
    """(lo, hi) of a range, (v, v) of a fixed value."""
    return (value.lo, value.hi) if isinstance(value, Range) else (value, value)


def text(value: Any) -> str:
    """Text form of one argument: ``lo..hi`` for a range, ``repr`` otherwise (as before ranges)."""
    return str(value) if isinstance(value, Range) else repr(value)


def to_json(value: Any) -> Any:
    """JSON form of one argument: ``[lo, hi]`` for a range, the value otherwise."""
    return value.to_json() if isinstance(value, Range) else value
