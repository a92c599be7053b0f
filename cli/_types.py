"""Click parameter types every command shares: seeds, comma-separated lists, lattice sizes.

One definition per kind of flag value, so ``--seed`` or ``--channels`` is
parsed and refused the same way by every command. Like :mod:`._flags`, this
module imports no command module.

>>> @click.option("--seed", type=SEED)
>>> @click.option("--channels", type=STR_LIST)          # "rho1,curlJ" -> ("rho1", "curlJ")
>>> @click.option("--snapshots", type=INT_LIST)         # "0,2" -> (0, 2)
"""

from __future__ import annotations

from typing import Any

import click

__all__ = ["FLOAT_PAIR", "INT_LIST", "LATTICE_SIZES", "SEED", "SEED_MAX", "STR_LIST", "UNIQUE_STR_LIST", "FloatPair",
           "IntList", "StrList"]

#: Largest seed: seeds are stored as signed 64-bit integers (``tdglnre.io.ensemble.SEED_MAX``).
SEED_MAX = 2**63 - 1

#: A run seed, 0 ≤ seed ≤ :data:`SEED_MAX`.
SEED = click.IntRange(min=0, max=SEED_MAX)


class IntList(click.ParamType):
    """Comma-separated integers (``"0,2,5"`` → ``(0, 2, 5)``), each ≥ ``min`` when given; empty items skipped."""

    name = "integers"

    def __init__(self, min: int | None = None, what: str = "integers") -> None:  # noqa: A002
        self.min = min
        self.what = what

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[int, ...]:
        if isinstance(value, tuple):
            return value
        try:
            out = tuple(int(v) for v in str(value).split(",") if v.strip())
        except ValueError:
            self.fail(f"expected comma-separated integers, got {value!r}", param, ctx)
        if not out:
            self.fail("expected at least one integer", param, ctx)
        if self.min is not None and any(n < self.min for n in out):
            self.fail(f"expected one or more {self.what} >= {self.min}, got {value!r}", param, ctx)
        return out


class StrList(click.ParamType):
    """Comma-separated names (``"rho1, curlJ"`` → ``("rho1", "curlJ")``); empty items skipped.

    ``unique=True`` refuses a name given twice.
    """

    name = "names"

    def __init__(self, unique: bool = False) -> None:
        self.unique = unique

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[str, ...]:
        if isinstance(value, tuple):
            return value
        out = tuple(v.strip() for v in str(value).split(",") if v.strip())
        if not out:
            self.fail("expected at least one name", param, ctx)
        if self.unique:
            dup = sorted({v for v in out if out.count(v) > 1})
            if dup:
                self.fail(f"{', '.join(dup)} given more than once in {value!r}", param, ctx)
        return out


class FloatPair(click.ParamType):
    """Two comma-separated numbers (``"0,1.5"`` → ``(0.0, 1.5)``); what they must satisfy is the library's check."""

    name = "lo,hi"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[float, float]:
        if isinstance(value, tuple):
            return value
        parts = [v.strip() for v in str(value).split(",")]
        try:
            out = tuple(float(v) for v in parts)
        except ValueError:
            out = ()
        if len(out) != 2:
            self.fail(f"expected two comma-separated numbers, got {value!r}", param, ctx)
        return out  # type: ignore[return-value]


#: Two numbers (``posterior --value-range lo,hi``, ``--value-scale a,b``).
FLOAT_PAIR = FloatPair()
#: Comma-separated integers (``--snapshots``, ``--filters``).
INT_LIST = IntList()
#: Comma-separated names (``--channels``).
STR_LIST = StrList()
#: Comma-separated names, each once (an image's ``--channels``: one name per channel of the file).
UNIQUE_STR_LIST = StrList(unique=True)
#: Comma-separated lattice sizes ≥ 4, the solver's smallest N (``bench --sizes``).
LATTICE_SIZES = IntList(min=4, what="lattice sizes")
