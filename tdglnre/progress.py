"""Progress reporting: the package's one mechanism (tqdm bars on stderr or a callback).

Long-running library functions take ``progress``, which is one of

* ``False`` / ``None`` — report nothing;
* ``True`` — draw a tqdm bar on stderr (tqdm itself hides it where stderr is
  not a terminal only if asked, so callers pass ``True`` only for interactive
  use; the CLI passes ``not --quiet``);
* a callable ``f(n)`` — called with the number of items finished since the
  last call (samples, observations, probes).

Multi-stage work (the Hessian pipeline) reports ``(stage, done, total)``;
:func:`stage_bars` turns that into one bar per stage.

This is a leaf module: it imports tqdm only when a bar is drawn.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any, Callable, Iterator, Union

#: What a ``progress`` argument may be.
ProgressLike = Union[bool, None, Callable[[int], None]]


class Tracker:
    """Counts finished items and forwards them to a bar and/or a callback."""

    def __init__(self, progress: ProgressLike, total: int | None, desc: str, *, unit: str = "it",
                 initial: int = 0):
        self._callback = progress if callable(progress) else None
        self._bar = None
        if progress is True:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, file=sys.stderr,
                             dynamic_ncols=True, smoothing=0.1, leave=False)

    def update(self, n: int = 1) -> None:
        """Report ``n`` more finished items."""
        if self._bar is not None:
            self._bar.update(n)
        if self._callback is not None:
            self._callback(n)

    def close(self) -> None:
        """Close the bar (idempotent)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


@contextlib.contextmanager
def tracker(progress: ProgressLike, total: int | None, desc: str, *, unit: str = "it",
            initial: int = 0) -> Iterator[Tracker]:
    """Context manager yielding a :class:`Tracker` that is closed on exit."""
    t = Tracker(progress, total, desc, unit=unit, initial=initial)
    try:
        yield t
    finally:
        t.close()


@contextlib.contextmanager
def stage_bars(enabled: bool) -> Iterator[Callable[[str, int, Any], None] | None]:
    """A ``progress(stage, done, total)`` callback drawing one bar per stage (or None when disabled)."""
    if not enabled:
        yield None
        return
    bars: dict[str, Tracker] = {}
    done_so_far: dict[str, int] = {}

    def progress(stage: str, done: int, total: Any) -> None:
        if stage not in bars:
            bars[stage] = Tracker(True, total, stage)
            done_so_far[stage] = 0
        bars[stage].update(done - done_so_far[stage])
        done_so_far[stage] = done

    try:
        yield progress
    finally:
        for bar in bars.values():
            bar.close()
