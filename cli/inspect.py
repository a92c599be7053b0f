"""``tdglnre inspect``: schema, config, prior, counts and ranges of an ensemble file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ._flags import run_library_call


#: Suffix of an interrupted ``generate --force`` run beside its target (tdglnre.io.generate.PARTIAL_SUFFIX).
PARTIAL_SUFFIX = ".partial"



def _screening_line(c: dict[str, Any]) -> str:
    """λ, ξ, κ and the regime of a screened file's config (at its default η, ν)."""
    from tdglnre.errors import ConfigError
    from tdglnre.physics.config import SimConfig
    from tdglnre.physics.screening import lengths

    try:
        d = lengths(SimConfig.from_dict(c))
    except ConfigError as exc:  # e.g. a normal uniform state: a summary line, never a failure of inspect
        return f"screening     lam={c['lam']:g} sigma={c['sigma']:g} (lengths unavailable: {exc})"
    xi = ", ".join(f"{x:.4g}" for x in d["xi"])
    kappa = ", ".join(f"{k:.4g}" for k in d["kappa"])
    return (f"screening     lam={d['lam']:g} sigma={d['sigma']:g} xi=({xi}) kappa=({kappa}) type {d['regime']} "
            f"(uniform state at eta={c['eta']:g}, nu={c['nu']:g})")

def _summary(path: str) -> dict[str, Any]:
    from tdglnre.io.ensemble import open_ensemble

    with open_ensemble(path) as ens:
        s = ens.summary()
    partial = Path(path).with_name(Path(path).name + PARTIAL_SUFFIX)
    s["partial"] = str(partial) if partial.is_file() else None
    return s


def format_summary(s: dict[str, Any]) -> str:
    """Human-readable text of :meth:`tdglnre.io.ensemble.Ensemble.summary`."""
    c = s["config"]
    status = "complete" if s["complete"] else "INCOMPLETE (resume with tdglnre generate ... --resume)"
    lines = [
        f"file          {s['path']} ({s['file_size_bytes'] / 1e6:.2f} MB)",
        f"format        {s['format']} v{s['format_version']}, {s['generated_by']}, created {s['creation_date']}",
        f"samples       {s['n_complete']} / {s['n_samples']} {status}",
        f"seed          {s['seed']}",
        f"x             shape {tuple(s['x_shape'])}, chunks {tuple(s['x_chunks'] or ())}, "
        f"compression {s['compression']}; channels {', '.join(s['channels'])}",
        f"fields (psi)  {'stored' if s['has_fields'] else 'not stored'}"
        + (" (with the link field a)" if s['has_fields'] and c.get("lam") is not None else ""),
        f"snapshots     t = {', '.join(f'{t:g}' for t in s['snapshot_times'])}",
        f"config        N={c['N']} L={c['L']:g} dt={c['dt']:g} alpha={c['alpha']} beta={c['beta']} D={c['D']} "
        f"dtype={c['dtype']}" + (f" lam={c['lam']:g} sigma={c['sigma']:g}" if c.get("lam") is not None else ""),
        "parameters:",
    ]
    if c.get("lam") is not None:
        lines.insert(-1, _screening_line(c))
    if s.get("measurement"):
        lines.insert(-1, f"measurement   {s['measurement']} (the preset's instrument; train applies it by default)")
    for name, r in s["parameter_ranges"].items():
        rng = "no samples" if r["min"] is None else f"min {r['min']:.4g}  max {r['max']:.4g}  mean {r['mean']:.4g}"
        lines.append(f"  {name:<6} ~ {r['prior']:<22} {rng}")
    for name, v in s["fixed"].items():
        lines.append(f"  {name:<6} = {v:g} (fixed)")
    if s.get("partial"):
        lines.append(f"note          {s['partial']} holds an interrupted `generate --force` run for this file; "
                     "finish it with --resume (it then replaces this file)")
    return "\n".join(lines)


@click.command("inspect")
@click.argument("file", metavar="FILE")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def command(file: str, as_json: bool) -> None:
    """Show the schema, config, prior, sample counts, parameter ranges and size of FILE."""
    s = run_library_call(_summary, file)
    if as_json:
        click.echo(json.dumps(s, indent=2))
    else:
        click.echo(format_summary(s))
