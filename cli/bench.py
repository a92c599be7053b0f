"""``tdglnre bench``: throughput of the numba TDGL kernels vs plain NumPy, or of the CUDA kernels (``--device cuda``)."""

from __future__ import annotations

import json
import math
from typing import Any

import click

from ._flags import run_library_call
from ._types import LATTICE_SIZES


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "item"):  # numpy scalar
        return obj.item()
    if hasattr(obj, "tolist"):  # numpy array
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _fmt(value: Any, spec: str) -> str:
    if value is None:
        return "-"
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(v):
        return "nan"
    if spec == "d":
        return str(int(v)) if v.is_integer() else format(v, "g")
    return format(v, spec)


def format_table(result: dict[str, Any]) -> str:
    """Human-readable table of a :func:`run_benchmark` result."""
    rows = result.get("per_size") or [result]
    header = (
        f"{'N':>6} {'batch':>6} {'steps':>7} {'threads':>7} "
        f"{'numba f64':>11} {'numba f32':>11} {'numpy':>9} {'speedup':>8} {'screened f64':>13} {'cost':>6}"
    )
    lines = [f"device auto: no usable GPU, ran on the CPU ({result['fallback']})", ""] \
        if result.get("fallback") else []
    lines += [
        "Throughput in million site-updates per second (Msites/s);",
        "speedup = numba float64 / NumPy reference; screened f64: the lam < inf kernel (psi and the link",
        "field a); cost = its time per site-update over the fixed-field kernel's (float64).",
        "",
        header,
        "-" * len(header),
    ]
    for r in rows:
        lines.append(
            f"{_fmt(r.get('N'), 'd'):>6} {_fmt(r.get('batch'), 'd'):>6} "
            f"{_fmt(r.get('steps'), 'd'):>7} {_fmt(r.get('threads'), 'd'):>7} "
            f"{_fmt(r.get('numba_float64_msites'), '.2f'):>11} "
            f"{_fmt(r.get('numba_float32_msites'), '.2f'):>11} "
            f"{_fmt(r.get('numpy_msites'), '.3f'):>9} "
            f"{_fmt(r.get('speedup_float64'), '.1f'):>8} "
            f"{_fmt(r.get('numba_screened_float64_msites'), '.2f'):>13} "
            f"{_fmt(r.get('screened_cost_float64'), '.2f'):>6}"
        )
    return "\n".join(lines)


def format_cuda_table(result: dict[str, Any]) -> str:
    """Human-readable table of a CUDA :func:`run_benchmark` result (one row per case and dtype)."""
    header = (f"{'N':>6} {'batch':>6} {'steps':>7} {'dtype':>8} {'kernel':>13} {'Msites/s':>11} "
              f"{'screened':>11} {'cost':>6}")
    lines = [f"CUDA kernels on {result.get('gpu_name', '?')}: million site-updates per second (Msites/s); "
             "screened: lam < inf (psi and a), cost = fixed-field rate / screened rate.",
             "", header, "-" * len(header)]
    for r in result.get("per_size", []):
        lines.append(f"{_fmt(r.get('N'), 'd'):>6} {_fmt(r.get('batch'), 'd'):>6} {_fmt(r.get('steps'), 'd'):>7} "
                     f"{r.get('dtype', '-'):>8} {r.get('kernel', '-'):>13} {_fmt(r.get('msites'), '.4g'):>11} "
                     f"{_fmt(r.get('screened_msites'), '.4g'):>11} {_fmt(r.get('screened_cost'), '.2f'):>6}")
    return "\n".join(lines)


@click.command("bench")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option(
    "--sizes",
    default="64,128",
    show_default=True,
    type=LATTICE_SIZES,
    help="Comma-separated lattice sizes N (N x N sites).",
)
@click.option(
    "--batch", type=click.IntRange(min=1), default=8, show_default=True,
    help="Ensemble members evolved together.",
)
@click.option(
    "--steps", type=click.IntRange(min=1), default=1000, show_default=True,
    help="Euler steps timed for the numba kernels.",
)
@click.option(
    "--numpy-steps", type=click.IntRange(min=1), default=50, show_default=True,
    help="Euler steps timed for the plain-NumPy reference.",
)
@click.option(
    "--threads", type=click.IntRange(min=1), default=None,
    help="numba threads (default: numba's default).",
)
@click.option(
    "--repeats", type=click.IntRange(min=1), default=2, show_default=True,
    help="Timed runs per kernel, alternating between kernels; the fastest counts (a disturbance only slows a "
         "run, so more repeats give a steadier figure and cost ratio).",
)
@click.option(
    "--device", type=click.Choice(["cpu", "cuda", "auto"]), default="cpu", show_default=True,
    help="cpu: numba vs NumPy. cuda: the GPU kernels, float32 and float64, at issue 11's cases (N=64 x 8 and "
         "x 1024, N=256 x 64, N=1024 x 8) unless --sizes/--batch are given (then each size at --batch). "
         "auto: cuda on a usable GPU, else cpu.",
)
@click.pass_context
def command(
    ctx: click.Context,
    as_json: bool,
    sizes: tuple[int, ...],
    batch: int,
    steps: int,
    numpy_steps: int,
    threads: int | None,
    repeats: int,
    device: str,
) -> None:
    """Benchmark the numba TDGL step against the NumPy reference, or the CUDA kernels."""
    from tdglnre.physics.bench import run_benchmark

    kwargs: dict[str, Any] = dict(sizes=sizes, batch=batch, steps=steps, numpy_steps=numpy_steps, threads=threads,
                                  repeats=repeats)
    if device != "cpu":
        default = click.core.ParameterSource.DEFAULT
        explicit = any(ctx.get_parameter_source(p) != default for p in ("sizes", "batch"))
        kwargs.update(device=device, cases=[(n, batch) for n in sizes] if explicit else None)
    result = run_library_call(run_benchmark, **kwargs)
    if as_json:
        click.echo(json.dumps(result, indent=2, sort_keys=True, default=_jsonable))
    elif result.get("device") == "cuda":
        click.echo(format_cuda_table(result))
    else:
        click.echo(format_table(result))
