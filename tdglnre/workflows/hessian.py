"""Soft-mode Hessian spectra of one state (see docs/hessian.md).

>>> res = tg.hessian(tg.FromParams(N=32, L=16, eta=0.5, n_v=4), tg.HessianOptions(n_eig=20))
>>> res.report(); res.save("hess/"); res.plot()

The computation lives in :mod:`tdglnre.analysis.hessian`; this module is the
workflow entry point the API and the CLI share: :func:`hessian` in memory,
:func:`run_hessian` from plain arguments (the ``tdglnre hessian`` command)
to files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .._validate import as_path
from ..analysis.hessian import FromEnsemble, FromParams, FromPreset, HessianOptions, HessianResult, hessian
from ..errors import ConfigError
from ..progress import stage_bars

__all__ = ["hessian", "HessianOptions", "HessianResult", "FromEnsemble", "FromParams", "FromPreset",
           "HessianRun", "run_hessian"]

#: run_hessian arguments whose errors (from the sources and HessianOptions, which name their fields
#: without backticks) are re-raised naming the argument in backticks, so the CLI shows its flag.
_ARGUMENTS = ("n_eig", "residual_tol", "max_iter", "dos_probes", "dos_steps", "seed", "index", "snapshot",
              "relax_method", "eig_method", "device")
_LEADING_NAME = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<rest> must be .*)$", re.S)


@dataclass
class HessianRun:
    """What :func:`run_hessian` computed and wrote."""

    result: HessianResult
    """The in-memory result (:func:`hessian`)."""
    files: list[str]
    """The files written: the spectrum, then the figures."""
    notes: list[str] = field(default_factory=list)
    """Lines the user should read, e.g. that ``device="auto"`` found no usable GPU and ran on the CPU."""


def _named(exc: ConfigError) -> ConfigError:
    """``exc`` with a leading field name that is an argument of :func:`run_hessian` put in backticks."""
    m = _LEADING_NAME.match(str(exc))
    if m is None or m.group("name") not in _ARGUMENTS:
        return exc
    return ConfigError(f"`{m.group('name')}`{m.group('rest')}")


def device_note(requested: str, used: str) -> str | None:
    """One line when ``requested == "auto"`` ran on the CPU, saying why (as ``generate``'s summary names its device)."""
    if requested != "auto" or used != "cpu":
        return None
    from ..physics.cuda import cuda_status

    ok, why = cuda_status()
    reason = why if not ok else "the CUDA simulator is not used for auto"
    return f"device auto: ran on the CPU ({reason})"


def run_hessian(out: str | Path, *, data: str | Path | None = None, index: int | None = None, snapshot: int = -1,
                preset: str | Path | None = None, sets: Sequence[str] = (), seed: int = 0, N: int = 32,
                L: float = 16.0, eta: float = 0.5, n_v: int = 4, nu: float = 0.0, t: float = 2.0,
                lam: float = float("inf"), relax: bool = True, progress: bool = False, **options: Any) -> HessianRun:
    """Analyse one state and write the spectrum and figures into ``out`` (only on success).

    The state comes from ``data`` (an ensemble stored with fields; ``index``,
    ``snapshot``), ``preset`` (with ``sets`` overrides, run ``seed``, sample
    ``index``, simulated afresh), or else the direct parameters ``N, L, eta,
    n_v, nu, t, seed`` and ``lam`` (finite: the screened model). ``options`` are :class:`HessianOptions` fields
    (``n_eig``, ``residual_tol``, ``dos``, ``device`` …); ``seed`` also seeds
    the Lanczos and probe vectors.

    Returns
    -------
    HessianRun
        The result, the files written and notes (``device="auto"`` that fell
        back to the CPU says so).
    """
    as_path("`out`", out)
    if data is not None and preset is not None:
        raise ConfigError("give either `data` or `preset`, not both")
    if sets and preset is None:
        raise ConfigError("`sets` needs `preset`")
    if data is not None and index is None:
        raise ConfigError("`data` needs `index` (the sample to analyse)")
    if isinstance(sets, str):
        raise ConfigError(f"`sets` must be a list of 'key=value' texts, got the string {sets!r}")
    k = 0 if index is None else index
    try:
        if data is not None:
            as_path("`data`", data)
            source: Any = FromEnsemble(data, k, snapshot)
        elif preset is not None:
            source = FromPreset(preset, list(sets), seed, k)
        else:
            source = FromParams(N, L, eta, n_v, nu, t, seed, k, lam)
        opts = HessianOptions(seed=seed, relax=relax, **options)
        with stage_bars(progress) as bar:
            result = hessian(source, opts, progress=bar)
    except ConfigError as exc:
        named = _named(exc)
        if named is exc:
            raise
        raise named from exc
    import matplotlib

    matplotlib.use("Agg")  # files only: no GUI backend needed
    files = [str(p) for p in (result.save(out), *result.plot(out))]
    note = device_note(opts.device, result.device)
    return HessianRun(result, files, [] if note is None else [note])
