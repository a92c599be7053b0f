"""Print how far a quench's mean density has grown towards its bulk value 1 + η.

Usage: python scripts/growth_table.py [--seeds 16] [--threads T] [--preset quick] [--json]

For each η in 0.2, 0.5, 0.8, 1.1, 1.4 this simulates the preset's physics
(default ``quick``: N = 32, L = 16, α = −1, β = 1, D = (4, 1), dt = 0.001,
ν = 0) with snapshots at t = 1, 2 and 5, for every n_v in the preset prior's
range (1..8 for ``quick``) and ``--seeds`` run seeds (sample k of seed s uses
the package's own initial state, :func:`tdglnre.physics.solver.initial_state`),
and prints the lattice mean ⟨ρ1⟩ = ⟨|ψ1|²⟩ (and ⟨ρ2⟩) divided by the uniform
equilibrium value 1 + η at t = 2 and t = 5 (docs/physics.md, "Model":
∂ₜψ = −αψ − β|ψ|²ψ + ηψ with ψ1 = ψ2 gives |ψ|² = (−α + η)/β = 1 + η for
α = −1, β = 1), and the effective growth rate d ln⟨ρ1⟩/dt between t = 1 and
t = 2 next to 2(1 + η), the linear growth rate of |ψ|² of the uniform
in-phase mode (ψ1 = ψ2 grows as e^{(1+η)t} while |ψ|² ≪ 1; field and
gradients slow the actual lattice modes down).

A ratio well below 1 means the quench is still in its growth stage at that
time: the density is set by the growth rate of the in-phase mode, not by its
saturated bulk value. The numbers quoted in docs/results.md come from
``python scripts/growth_table.py`` with the defaults.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import numpy as np

ETAS = (0.2, 0.5, 0.8, 1.1, 1.4)
TIMES = (1.0, 2.0, 5.0)
#: Times of the density table; the growth rate is measured between TIMES[0] and TIMES[1].
TABLE_TIMES = (2.0, 5.0)


def measure(preset: str = "quick", seeds: int = 16, threads: int | None = None) -> dict[str, Any]:
    """Simulate the grid of (η, n_v, seed) and return ⟨ρ⟩/(1 + η) statistics per η and time.

    Parameters
    ----------
    preset
        Preset whose config (lattice, α, β, D, dt, dtype) is used; the prior's
        n_v range sets the n_v values.
    seeds
        Number of run seeds 0..seeds−1 per (η, n_v).
    threads
        numba threads (default: numba's setting).

    Returns
    -------
    dict
        ``config`` (the SimConfig as a dict), ``n_v`` (values used),
        ``seeds``, and ``rows``: one dict per η with, per time t,
        ``rho1_ratio_mean``, ``rho1_ratio_std``, ``rho1_ratio_min``,
        ``rho1_ratio_max`` and ``rho2_ratio_mean`` over all samples, plus
        ``rate_mean`` / ``rate_std`` of ln(⟨ρ1⟩(t₁)/⟨ρ1⟩(t₀))/(t₁ − t₀)
        for (t₀, t₁) = (1, 2) and ``rate_linear`` = 2(1 + η).
    """
    from tdglnre.io.presets import load_preset
    from tdglnre.physics.solver import simulate

    config, prior = load_preset(preset, ["snapshot_times=" + ",".join(f"{t:g}" for t in TIMES)])
    nv_prior = prior["n_v"].to_dict()
    if nv_prior.get("kind") == "int_uniform":
        n_vs = np.arange(int(nv_prior["low"]), int(nv_prior["high"]) + 1)
    else:
        n_vs = np.array([int(config.n_v)])
    rows = []
    for eta in ETAS:
        r1: list[np.ndarray] = []
        r2: list[np.ndarray] = []
        for seed in range(seeds):
            res = simulate(config, {"eta": eta, "n_v": n_vs, "nu": 0.0}, seed=seed,
                           sample_indices=np.arange(n_vs.size), threads=threads)
            rho = np.abs(res.psi) ** 2  # (S, T, 2, N, N)
            mean = rho.mean(axis=(3, 4)) / (1.0 + eta)  # (S, T, 2)
            r1.append(mean[:, :, 0])
            r2.append(mean[:, :, 1])
        a1 = np.concatenate(r1)  # (samples, T)
        a2 = np.concatenate(r2)
        rate = np.log(a1[:, 1] / a1[:, 0]) / (TIMES[1] - TIMES[0])
        row: dict[str, Any] = {"eta": eta, "n": int(a1.shape[0]), "rate_mean": float(rate.mean()),
                               "rate_std": float(rate.std(ddof=1)) if rate.size > 1 else 0.0,
                               "rate_linear": 2.0 * (1.0 + eta)}
        for ti, t in enumerate(TIMES):
            row[f"t={t:g}"] = {
                "rho1_ratio_mean": float(a1[:, ti].mean()),
                "rho1_ratio_std": float(a1[:, ti].std(ddof=1)) if a1.shape[0] > 1 else 0.0,
                "rho1_ratio_min": float(a1[:, ti].min()),
                "rho1_ratio_max": float(a1[:, ti].max()),
                "rho2_ratio_mean": float(a2[:, ti].mean()),
            }
        rows.append(row)
    return {"config": config.to_dict(), "n_v": [int(v) for v in n_vs], "seeds": seeds, "rows": rows}


def format_table(result: dict[str, Any]) -> str:
    """Markdown table of :func:`measure`'s result."""
    c = result["config"]
    lines = [
        f"N={c['N']} L={c['L']:g} dt={c['dt']:g} dtype={c['dtype']}; n_v in {result['n_v'][0]}..{result['n_v'][-1]}, "
        f"{result['seeds']} seeds each; ⟨ρ1⟩/(1+η) as mean ± std (min–max) over the samples",
        "",
        "| η | n | ⟨ρ1⟩/(1+η), t = 2 | ⟨ρ1⟩/(1+η), t = 5 | ⟨ρ2⟩/(1+η), t = 2 | ⟨ρ2⟩/(1+η), t = 5 "
        "| d ln⟨ρ1⟩/dt, t = 1..2 | 2(1+η) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        cells = []
        for t in TABLE_TIMES:
            s = r[f"t={t:g}"]
            cells.append(f"{s['rho1_ratio_mean']:.3f} ± {s['rho1_ratio_std']:.3f} "
                         f"({s['rho1_ratio_min']:.3f}–{s['rho1_ratio_max']:.3f})")
        for t in TABLE_TIMES:
            cells.append(f"{r[f't={t:g}']['rho2_ratio_mean']:.3f}")
        cells.append(f"{r['rate_mean']:.2f} ± {r['rate_std']:.2f}")
        cells.append(f"{r['rate_linear']:.1f}")
        lines.append(f"| {r['eta']:.1f} | {r['n']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="quick")
    ap.add_argument("--seeds", type=int, default=16)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", action="store_true", help="print the raw numbers as JSON")
    args = ap.parse_args(argv)
    if args.seeds < 1:
        ap.error("--seeds must be >= 1")
    result = measure(args.preset, args.seeds, args.threads)
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
