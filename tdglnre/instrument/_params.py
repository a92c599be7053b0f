"""Transform parameters of the measurement model: fixed numbers, or ranges ``lo..hi`` drawn per sample.

A range is written ``lo..hi`` in the text form (``noise(0..0.15)``) and
``[lo, hi]`` in the table / JSON form (``{kind = "noise", sigma = [0, 0.15]}``);
a log-uniform range is ``log:lo..hi`` / ``[lo, hi, "log"]`` (needs lo > 0), for
a parameter that spans decades, so that its low end is not a few per cent of
the draws. Each end obeys the parameter's bounds, ``lo <= hi``, and ``lo == hi``
is normalised to the fixed value. :func:`draw` takes one value from the
generator it is given (uniform in [lo, hi], log-uniform for a log range and
for ``poisson``'s counts) and leaves the generator untouched for a fixed value,
so a model without ranges draws exactly what it drew before ranges existed.
docs/observations.md, "Random transform parameters".
"""

from __future__ import annotations

import math
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from ..errors import ConfigError


@dataclass(frozen=True)
class Range:
    """A transform parameter drawn per sample in [lo, hi] (lo < hi; both validated); ``log``: log-uniformly."""

    lo: float
    hi: float
    log: bool = False

    def __str__(self) -> str:
        return f"{LOG_PREFIX if self.log else ''}{self.lo!r}..{self.hi!r}"

    def to_json(self) -> list[Any]:
        return [self.lo, self.hi, "log"] if self.log else [self.lo, self.hi]

    def scaled(self, factor: float) -> "Range":
        """The range with both ends multiplied by ``factor`` > 0 (same law)."""
        return Range(self.lo * factor, self.hi * factor, self.log)


#: Text prefix of a log-uniform range (``noise(log:0.001..0.25)``).
LOG_PREFIX = "log:"


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


def _ends(value: Any, where: str = "a measurement range") -> tuple[Any, Any, bool] | None:
    """(lo, hi, log) of a range (``Range``, ``"[log:]lo..hi"``, ``[lo, hi(, "log")]``); None for a fixed value."""
    if isinstance(value, Range):
        return value.lo, value.hi, value.log
    if isinstance(value, str) and ".." in value:
        body = value.strip()
        log = body.lower().startswith(LOG_PREFIX)
        if log:
            body = body[len(LOG_PREFIX):]
        parts = body.split("..")
        if len(parts) != 2 or "..." in body or any(p.strip().startswith(".") or p.strip().endswith(".")
                                                   for p in parts):
            raise ConfigError(f"{where} is written lo..hi (or log:lo..hi), two dots between two numbers, "
                              f"got {value.strip()!r}")
        return parts[0].strip(), parts[1].strip(), log
    if isinstance(value, (list, tuple)):
        items = list(value)
        log = len(items) == 3 and isinstance(items[2], str) and items[2].strip().lower() == "log"
        if not (len(items) == 2 or log):
            raise ConfigError(f"a measurement range is [lo, hi] or [lo, hi, \"log\"], got {items!r}")
        return items[0], items[1], log
    return None


def param(kind: str, name: str, value: Any, *, ranged: bool = True, **bounds: Any) -> float | int | Range:
    """A fixed number or a :class:`Range` (``ranged=False``: ranges refused); ends obey ``bounds`` (:func:`number`)."""
    ends = _ends(value, f"measurement {kind}: a range of {name}")
    if ends is None:
        return number(kind, name, value, **bounds)
    log = ends[2]
    text = f"{LOG_PREFIX if log else ''}{ends[0]}..{ends[1]}"
    if not ranged:
        raise ConfigError(f"measurement {kind}: {name} is fixed, a range ({text}) is not supported")
    lo, hi = (number(kind, f"{name} range end", e, **bounds) for e in ends[:2])
    if lo > hi:
        raise ConfigError(f"measurement {kind}: the range {text} of {name} needs lo <= hi")
    mag = bounds.get("magnitude")
    if mag is not None and mag[0] > 0 and lo < 0 < hi:
        raise ConfigError(f"measurement {kind}: the range {text} of {name} includes 0 (all-zero images); "
                          "keep both ends on one side of 0")
    if log and lo <= 0:
        raise ConfigError(f"measurement {kind}: the log-uniform range {text} of {name} needs lo > 0")
    return lo if lo == hi else Range(lo, hi, log)


def draw(value: float | Range, rng: np.random.Generator, *, log: bool = False) -> float:
    """The value for one sample: ``value`` itself when fixed (``rng`` untouched), else one draw from ``rng``.

    Uniform in [lo, hi]; a log range, or ``log=True``: log-uniform (uniform in [log lo, log hi]; needs lo > 0).
    """
    if not isinstance(value, Range):
        return value
    if log or value.log:
        v = float(math.exp(rng.uniform(math.log(value.lo), math.log(value.hi))))
    else:
        v = float(rng.uniform(value.lo, value.hi))
    record(v)
    return v


class _Recorder(threading.local):
    values: list[float] | None = None


_RECORDER = _Recorder()


def record(value: float) -> None:
    """Note one drawn value (a range's draw, a mixture's choice) while :func:`recording` is active (this thread)."""
    if _RECORDER.values is not None:
        _RECORDER.values.append(value)


@contextmanager
def recording() -> Iterator[list[float]]:
    """Collect, in draw order, the values this thread draws for ranges and alternatives inside the block.

    The list replays the realised instrument of one measurement
    (``MeasurementModel.realised``); nothing else changes: the generator's
    stream is the same with and without recording.
    """
    prev = _RECORDER.values
    _RECORDER.values = values = []
    try:
        yield values
    finally:
        _RECORDER.values = prev


def interval(value: Any) -> tuple[Any, Any]:
    """(lo, hi) of a range, (v, v) of a fixed value."""
    return (value.lo, value.hi) if isinstance(value, Range) else (value, value)


def text(value: Any) -> str:
    """Text form of one argument: ``lo..hi`` (``log:lo..hi``) for a range, ``repr`` otherwise (as before ranges)."""
    return str(value) if isinstance(value, Range) else repr(value)


def to_json(value: Any) -> Any:
    """JSON form of one argument: ``[lo, hi]`` (``[lo, hi, "log"]``) for a range, the value otherwise."""
    return value.to_json() if isinstance(value, Range) else value
