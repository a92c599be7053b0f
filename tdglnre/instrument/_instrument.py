"""The instrument of one measured image as a vector: what ``tdglnre train --instrument-input`` gives the network.

A family's draws for one image (the alternative's index, then each range's
value, in transform and parameter order) are recorded while it measures
(:func:`._params.recording`); :func:`realised` replays them as the fixed
instrument that made the image, and :func:`describe` maps a fixed member of
the family to a vector in [−1, 1] (docs/observations.md, "The instrument as
an input"). Functions of :class:`~.model.MeasurementModel` and
:class:`~.model.MeasurementMixture`, which call them from their methods.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Iterator

import numpy as np

from ..errors import ConfigError
from ._params import Range
from ._transforms import Poisson


def _is_mixture(model: Any) -> bool:
    return hasattr(model, "alternatives")


def realised(model: Any, drawn: Iterator[float]) -> Any:
    """The fixed instrument of one measurement by ``model``, its draws taken in order from ``drawn``."""
    if _is_mixture(model):
        return realised(model.alternatives[int(next(drawn))], drawn)
    out = []
    for t in model.transforms:
        changes = {p: float(next(drawn)) for p in t.params if isinstance(getattr(t, p), Range)}
        out.append(dataclasses.replace(t, **changes) if changes else t)
    return type(model)(tuple(out))


def size(model: Any) -> int:
    """Length of the vector: one entry per range; a mixture adds the one-hot of its alternatives."""
    if _is_mixture(model):
        return len(model.alternatives) + sum(size(a) for a in model.alternatives)
    return sum(isinstance(a, Range) for t in model.transforms for a in t.args())


def describe(family: Any, member: Any) -> np.ndarray:
    """The vector of a fixed ``member`` of ``family``.

    Entry by entry, in transform and parameter order: 2(v − lo)/(hi − lo) − 1,
    on a log scale for a log range and for ``poisson`` counts (drawn
    log-uniformly); a transform the member lacks counts at its neutral value,
    as in ``covers``. A mixture: the one-hot of the first alternative that
    covers the member, then every alternative's entries (zero but the chosen
    one's). Raises :class:`ConfigError` when ``member`` has a range or
    alternatives, or is not a member of ``family``.
    """
    if _is_mixture(member) or member.has_ranges:
        raise ConfigError(f"measurement {member} is a family (a range or alternatives); the network takes the "
                          "instrument of each image: give fixed values")
    out = np.zeros(size(family), dtype=np.float32)
    if not _is_mixture(family):
        if _describe_into(family, member, out, 0):
            return out
    else:
        pos = len(family.alternatives)
        for k, a in enumerate(family.alternatives):
            if a.covers(member):
                out[k] = 1.0
                _describe_into(a, member, out, pos)
                return out
            pos += size(a)
    raise ConfigError(f"measurement {member} is not a member of the family {family} the model was trained on; "
                      "its instrument cannot be given to the network")


def align(family: Any, member: Any) -> list[tuple[Any, Any]] | None:
    """Each transform of a plain family paired with the member's transform it covers, in order; None if not a member.

    A transform the member lacks is paired with None, allowed where the
    family's value or range includes its neutral value (``MeasurementModel.covers``).
    """
    theirs, i, pairs = member.transforms, 0, []
    for a in family.transforms:
        if i < len(theirs) and a.covers(theirs[i]):
            pairs.append((a, theirs[i]))
            i += 1
        elif a.admits_identity:
            pairs.append((a, None))
        else:
            return None
    return pairs if i == len(theirs) else None


def _describe_into(family: Any, member: Any, out: np.ndarray, pos: int) -> bool:
    """Write the entries of one plain family from ``pos``; False when ``member`` is not its member."""
    pairs = align(family, member)
    if pairs is None:
        return False
    for a, t in pairs:
        for p in a.params:
            r = getattr(a, p)
            if isinstance(r, Range):
                out[pos] = _unit(getattr(t, p) if t is not None else a.neutral, r, r.log or isinstance(a, Poisson))
                pos += 1
    return True


def _unit(v: float, r: Range, log: bool) -> float:
    """v in [r.lo, r.hi] mapped to [−1, 1] (log scale when ``log``)."""
    lo, hi, v = (math.log(r.lo), math.log(r.hi), math.log(v)) if log else (r.lo, r.hi, v)
    return float(np.clip(2.0 * (v - lo) / (hi - lo) - 1.0, -1.0, 1.0))
