"""Validation figures of the screened model (issue 19) with the NumPy reference.

Every energy here is a relaxed F(ψ, a) of ``tdglnre.physics.reference`` on an
N×N torus of side L with n_v flux quanta, minimised by L-BFGS
(``tdglnre.physics.relax``) from several quench-like random starts; the
relaxed energy is the lowest over the starts (a start can end in a metastable
arrangement). docs/physics.md, "Screening (λ < ∞)", gives the model and the
tables these commands print.

Subcommands
-----------
``type15``
    Energy per vortex (F − F_uniform)/n_v against n_v on one torus for
    (a) two bands with ξ₁ < √2λ < ξ₂ and no Josephson coupling (Type 1.5 by
    ``lengths.regime``), (b) band 1 alone (Type II at the same λ), (c) band 2
    alone (Type I). A finer lattice (``--fine-N``) repeats the Type-1.5 curve
    to show that its minimum is not a lattice artefact.

        python scripts/screening_validation.py type15 [--N 24 --L 6 --lam 0.8 --nv-max 10 --seeds 3 --fine-N 32]

    A larger torus for the Type-1.5 case only, then the figure with it overlaid (plotted against n_v/L²):

        python scripts/screening_validation.py type15 --cases 1.5 --L 12 --N 48 --nv-max 14 --fine-N 0 \
            --out docs/figures/screening/type15_L12_N48.json --fig /tmp/type15_L12.png
        python scripts/screening_validation.py type15 --plot-only --overlay docs/figures/screening/type15_L12_N48.json

``bogomolny``
    One band at κ = 1/√2, 0.5 and 1.2 (ξ = ρ₀ = 1): energy per vortex against
    n_v, and at κ = 1/√2 the spread of the relaxed energy over ``--seeds``
    starts and its excess over the Bogomolny bound 2πDρ₀n_v − βρ₀²L²/2.

        python scripts/screening_validation.py bogomolny [--N 24 --L 10 --nv-max 8 --seeds 10]

Each writes a JSON file of the numbers and a PNG figure (default under
docs/figures/screening/); ``--plot-only`` redraws the figure from the JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

from tdglnre.physics import reference as ref
from tdglnre.physics.lattice import landau_links
from tdglnre.physics.lengths import coherence_lengths, field_coefficient, regime
from tdglnre.physics.relax import relax_screened, uniform_energy

FIGDIR = Path("docs/figures/screening")


def band_pars(alpha, beta, D=(1.0, 1.0)) -> dict:
    """The reference's parameter dict with η = ν = 0."""
    return dict(alpha=tuple(alpha), beta=tuple(beta), D=tuple(D), eta=0.0, nu=0.0)


#: Short names of the three type15 cases (``--cases``).
CASE_KEYS = {"1.5": "type-1.5 (two bands)", "II": "type-II control (band 1 alone)",
             "I": "type-I control (band 2 alone)"}


def type15_cases(xi1: float, xi2: float) -> dict[str, dict]:
    """Two bands with ρ₀ = D = 1 and coherence lengths ξ₁, ξ₂ (α = −1/ξ², β = 1/ξ²), and each band alone.

    A band is switched off by α = +1 (it stays normal: η = ν = 0 couples nothing to it).
    """
    a1, a2 = -1.0 / xi1**2, -1.0 / xi2**2
    return {
        CASE_KEYS["1.5"]: band_pars((a1, a2), (-a1, -a2)),
        CASE_KEYS["II"]: band_pars((a1, 1.0), (-a1, 1.0)),
        CASE_KEYS["I"]: band_pars((1.0, a2), (1.0, -a2)),
    }


def normal_state_per_vortex(n_v: int, L: float, c: float, pars: dict) -> float:
    """(F − F_uniform)/n_v of the normal state (ψ = 0, uniform B = 2πn_v/L²): the condensation energy lost plus c B² L²."""
    B = 2.0 * math.pi * n_v / L**2
    return (-uniform_energy(L, pars) + c * B * B * L * L) / n_v


def diagnostics(state: np.ndarray, links, pars: dict) -> dict:
    """Mean and minimum density of each superconducting band (relative to ρ₀) and the range of B."""
    from tdglnre.physics.lengths import uniform_state

    f = uniform_state(pars["alpha"], pars["beta"], pars["eta"])
    out = {}
    for b in range(2):
        if f[b] > 0:
            rho = (state[2 * b] ** 2 + state[2 * b + 1] ** 2) / f[b] ** 2
            out[f"rho{b + 1}_mean"] = float(rho.mean())
            out[f"rho{b + 1}_max"] = float(rho.max())
    B = ref.plaquette_flux(links, state[4], state[5]) / links.h**2
    out["B_min"], out["B_max"] = float(B.min()), float(B.max())
    return out


def energy_curve(N: int, L: float, c: float, pars: dict, n_vs, seeds, label: str) -> list[dict]:
    """Relax every n_v from every seed; one row per n_v with the best and all energies per vortex."""
    E0 = uniform_energy(L, pars)
    rows = []
    for n_v in n_vs:
        t0 = time.time()
        runs = [relax_screened(N, L, n_v, c, pars, seed=s) for s in seeds]
        best = min(runs, key=lambda r: r.energy)
        row = dict(n_v=n_v, density=n_v / L**2, e_per_vortex=(best.energy - E0) / n_v,
                   all_starts=[(r.energy - E0) / n_v for r in runs],
                   converged=[r.converged for r in runs], n_iter=[r.n_iter for r in runs],
                   seconds=time.time() - t0)
        row.update(diagnostics(best.state, landau_links(N, L, n_v), pars))
        rows.append(row)
        spread = max(row["all_starts"]) - min(row["all_starts"])
        print(f"  {label:32s} N={N:3d} n_v={n_v:2d}  E/n_v={row['e_per_vortex']:9.4f}  "
              f"spread over starts {spread:.1e}  {row['seconds']:5.1f} s", flush=True)
    return rows


def interior_minimum(e: list[float]) -> bool:
    """Whether the smallest value is neither the first nor the last."""
    k = int(np.argmin(e))
    return 0 < k < len(e) - 1


# ------------------------------------------------------------------ type 1.5
def run_type15(a) -> dict:
    keep = [CASE_KEYS[k] for k in a.cases.split(",")]
    cases = {k: v for k, v in type15_cases(a.xi1, a.xi2).items() if k in keep}
    seeds = list(range(a.seeds))
    out = dict(command="type15", N=a.N, L=a.L, h=a.L / a.N, lam=a.lam, xi=[a.xi1, a.xi2], seeds=seeds,
               fine_N=a.fine_N, cases={})
    for label, pars in cases.items():
        c = field_coefficient(a.lam, pars["D"], pars["alpha"], pars["beta"], 0.0, 0.0)
        xi = coherence_lengths(pars["D"], pars["alpha"], pars["beta"], 0.0)
        kind = regime(a.lam, xi)
        print(f"{label}: xi={xi.xi} lam={a.lam} regime {kind} c={c:g}", flush=True)
        rows = energy_curve(a.N, a.L, c, pars, range(1, a.nv_max + 1), seeds, label)
        case = dict(pars=pars, c=c, xi=list(xi.xi), regime=kind, rows=rows,
                    normal_state=[normal_state_per_vortex(r["n_v"], a.L, c, pars) for r in rows])
        if a.fine_N and label.startswith("type-1.5"):
            case["fine_rows"] = energy_curve(a.fine_N, a.L, c, pars, range(1, a.fine_nv_max + 1), seeds,
                                             label + " (fine)")
        out["cases"][label] = case
    return out


def plot_type15(d: dict, path: Path, overlays: list[dict] = ()) -> None:
    """One panel per case: E/n_v against the vortex density n_v/L² (so tori of other sizes overlay)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(d["cases"]), figsize=(4 * len(d["cases"]), 3.8), squeeze=False)
    for ax, (label, case) in zip(axes[0], d["cases"].items()):
        dens = [r["density"] for r in case["rows"]]
        e = np.array([r["e_per_vortex"] for r in case["rows"]])
        ax.plot(dens, e, "o-", label=f"L={d['L']:g}, N={d['N']} (h={d['h']:.3g})")
        if "fine_rows" in case:
            ax.plot([r["density"] for r in case["fine_rows"]], [r["e_per_vortex"] for r in case["fine_rows"]],
                    "s--", ms=4, label=f"L={d['L']:g}, N={d['fine_N']} (h={d['L'] / d['fine_N']:.3g})")
        for o in overlays:
            if label in o["cases"]:
                rows = o["cases"][label]["rows"]
                ax.plot([r["density"] for r in rows], [r["e_per_vortex"] for r in rows], "^:", ms=4,
                        label=f"L={o['L']:g}, N={o['N']} (h={o['h']:.3g})")
        ns = np.array(case["normal_state"])
        if ns.min() < 1.5 * e.max():
            ax.plot(dens, ns, ":", color="grey", label="normal state (psi = 0)")
        ax.set_title(f"{label}\nxi={', '.join(f'{x:g}' for x in case['xi'])}, lam={d['lam']:g}: "
                     f"regime {case['regime']}", fontsize=9)
        ax.set_xlabel("vortex density n_v / L^2")
        ax.set_ylabel("(F - F_uniform) / n_v")
        ax.set_ylim(min(e.min(), ns.min()) - 0.05 * np.ptp(e) - 0.1, e.max() + 0.1 * np.ptp(e) + 0.1)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def print_type15(d: dict) -> None:
    for label, case in d["cases"].items():
        e = [r["e_per_vortex"] for r in case["rows"]]
        k = int(np.argmin(e))
        print(f"{label}: regime {case['regime']}; min E/n_v {e[k]:.4f} at n_v={case['rows'][k]['n_v']} "
              f"(interior: {interior_minimum(e)})")
        print("  n_v  E/n_v     spread    <rho1>  <rho2>  B_max   normal-state E/n_v")
        for r, ns in zip(case["rows"], case["normal_state"]):
            print(f"  {r['n_v']:3d} {r['e_per_vortex']:8.4f}  {np.ptp(r['all_starts']):.1e}  "
                  f"{r.get('rho1_mean', float('nan')):6.3f}  {r.get('rho2_mean', float('nan')):6.3f}  "
                  f"{r['B_max']:6.3f}  {ns:8.4f}")
        for r in case.get("fine_rows", []):
            print(f"  fine N={d['fine_N']} n_v={r['n_v']:2d}  E/n_v={r['e_per_vortex']:.4f}")


# ------------------------------------------------------------------ Bogomolny
def run_bogomolny(a) -> dict:
    pars = band_pars((-1.0, 1.0), (1.0, 1.0))  # ξ = ρ₀ = D = β = 1
    seeds = list(range(a.seeds))
    out = dict(command="bogomolny", N=a.N, L=a.L, h=a.L / a.N, seeds=seeds, curves={})
    for kappa in (1 / math.sqrt(2), 0.5, 1.2):
        c = kappa**2  # λ² = c/(Dρ₀), ξ = 1
        bogo = abs(kappa - 1 / math.sqrt(2)) < 1e-12
        use = seeds if bogo else seeds[: a.off_seeds]
        rows = energy_curve(a.N, a.L, c, pars, range(1, a.nv_max + 1), use, f"kappa={kappa:.4g}")
        for r in rows:
            r["excess_over_bound"] = r["e_per_vortex"] - 2.0 * math.pi  # bound per vortex: 2πDρ₀
        out["curves"][f"{kappa:.6g}"] = dict(kappa=kappa, c=c, rows=rows)
    return out


def plot_bogomolny(d: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for key, cur in d["curves"].items():
        n = [r["n_v"] for r in cur["rows"]]
        name = "1/sqrt(2) (Bogomolny)" if abs(cur["kappa"] - 2**-0.5) < 1e-9 else f"{cur['kappa']:g}"
        ax.plot(n, [r["e_per_vortex"] for r in cur["rows"]], "o-", label=f"kappa = {name}")
    ax.axhline(2 * math.pi, color="grey", ls=":", label="bound 2 pi D rho0")
    ax.set_xlabel(f"n_v on the {d['L']:g} x {d['L']:g} torus (N={d['N']}, h={d['h']:.3g})")
    ax.set_ylabel("(F - F_uniform) / n_v")
    ax.set_title("one band, xi = rho0 = 1: energy per vortex", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def print_bogomolny(d: dict) -> None:
    for cur in d["curves"].values():
        print(f"kappa={cur['kappa']:.4g}: " + ", ".join(f"{r['e_per_vortex']:.4f}" for r in cur["rows"]))
        spreads = [float(np.ptp(r["all_starts"])) for r in cur["rows"]]
        print(f"  excess over the bound per vortex: " + ", ".join(f"{r['excess_over_bound']:.4f}" for r in cur["rows"])
              + f"; largest spread over {len(cur['rows'][0]['all_starts'])} starts: {max(spreads):.1e}")


# ------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("type15", help="energy per vortex vs n_v: two bands (Type 1.5) and the one-band controls")
    t.add_argument("--N", type=int, default=24)
    t.add_argument("--L", type=float, default=6.0)
    t.add_argument("--lam", type=float, default=0.8, help="London depth λ")
    t.add_argument("--xi1", type=float, default=0.5)
    t.add_argument("--xi2", type=float, default=2.0)
    t.add_argument("--nv-max", type=int, default=10)
    t.add_argument("--seeds", type=int, default=3, help="quench starts per n_v")
    t.add_argument("--fine-N", type=int, default=32, help="finer lattice for the Type-1.5 curve (0: none)")
    t.add_argument("--fine-nv-max", type=int, default=6)
    t.add_argument("--out", type=Path, default=FIGDIR / "type15.json")
    t.add_argument("--fig", type=Path, default=FIGDIR / "type15.png")
    t.add_argument("--cases", default="1.5,II,I", help="which of 1.5, II, I to run")
    t.add_argument("--overlay", type=Path, action="append", default=[],
                   help="another type15 JSON (e.g. a larger torus) drawn into the same panels")
    t.add_argument("--plot-only", action="store_true", help="redraw the figure from --out")
    b = sub.add_parser("bogomolny", help="one band at kappa = 1/sqrt(2), 0.5, 1.2")
    b.add_argument("--N", type=int, default=24)
    b.add_argument("--L", type=float, default=10.0)
    b.add_argument("--nv-max", type=int, default=8)
    b.add_argument("--seeds", type=int, default=10, help="quench starts per n_v at the Bogomolny point")
    b.add_argument("--off-seeds", type=int, default=3, help="quench starts per n_v at kappa = 0.5, 1.2")
    b.add_argument("--out", type=Path, default=FIGDIR / "bogomolny.json")
    b.add_argument("--fig", type=Path, default=FIGDIR / "bogomolny.png")
    b.add_argument("--plot-only", action="store_true", help="redraw the figure from --out")
    a = ap.parse_args(argv)
    run, plot, show = {"type15": (run_type15, plot_type15, print_type15),
                       "bogomolny": (run_bogomolny, plot_bogomolny, print_bogomolny)}[a.cmd]
    if a.plot_only:
        d = json.loads(a.out.read_text())
    else:
        t0 = time.time()
        d = run(a)
        d["wall_s"] = time.time() - t0
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(d, indent=1))
        print(f"wrote {a.out} ({d['wall_s']:.0f} s)")
    show(d)
    a.fig.parent.mkdir(parents=True, exist_ok=True)
    if a.cmd == "type15":
        plot(d, a.fig, [json.loads(p.read_text()) for p in a.overlay])
    else:
        plot(d, a.fig)
    print(f"wrote {a.fig}")


if __name__ == "__main__":
    main()
