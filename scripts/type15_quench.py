"""Vortex clusters in screened quenches: Type 1.5 against a Type-II control (issue 19, validation 4).

Two bands with ξ₁ = 0.5, ξ₂ = 2 (D = ρ₀ = 1: α = −1/ξ², β = 1/ξ²), η = ν = 0, on an N×N torus
of side L with n_v flux quanta, quenched from the solver's random initial state with the screened
numba solver (``tdglnre.physics.solver.simulate`` with ``lam``, ``sigma``). The two cases differ
only in the London depth λ: λ = 0.8 (ξ₁ < √2λ = 1.13 < ξ₂: Type 1.5) and λ = 2 (√2λ = 2.83 > ξ₂:
Type II); σ and dt are the same. The vortices are the windings of band 1 (the short-ξ band, which
keeps discrete vortices in both cases). At every snapshot, per sample: the energy per vortex
(F − F_uniform)/n_v (``reference.screened_energy``), the vortex count, and the clustering numbers of
``tdglnre.analysis.clusters.pattern_statistics``: the Clark–Evans ratio ⟨d_NN⟩/(½n^{−1/2}), the
coefficient of variation of d_NN, the vortex-free fraction (area farther than 0.75 ℓ from every
vortex, ℓ = L/√n_v), the vortex S(q) over the two smallest shells, and the Meissner fraction (plaquettes
with B below a tenth of the mean field 2πn_v/L²). The table gives the mean and
its standard error over the samples at the last snapshot. docs/physics.md, "Clusters in quenches".

    python scripts/type15_quench.py                     # N=64, L=32, n_v=16, 8 samples, t=6400: 9–11 min at 1 thread
    python scripts/type15_quench.py --plot-only         # redraw the figure from the JSON

Writes ``--out`` (JSON) and ``--fig`` (PNG, default docs/figures/screening/type15_quench.png).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import numpy as np

FIGDIR = Path("docs/figures/screening")
XI = (0.5, 2.0)
CASES = {"type-1.5": 0.8, "type-II": 2.0}  # λ of each case; everything else is shared
STATS = ("clark_evans", "cv_nn", "free_fraction", "s_small", "meissner_fraction")


def config_for(a, lam: float):
    from tdglnre.physics.config import SimConfig

    al = tuple(-1.0 / x**2 for x in XI)
    return SimConfig(N=a.N, L=a.L, alpha=al, beta=tuple(-x for x in al), D=(1.0, 1.0), eta=0.0, nu=0.0,
                     n_v=a.n_v, lam=lam, sigma=a.sigma, dt=a.dt, snapshot_times=tuple(a.times))


def energies(res, cfg) -> np.ndarray:
    """(F − F_uniform)/n_v of every sample and snapshot, (S, T)."""
    from tdglnre.physics import reference as ref
    from tdglnre.physics.lattice import landau_links
    from tdglnre.physics.lengths import field_coefficient
    from tdglnre.physics.relax import uniform_energy

    pars = dict(alpha=cfg.alpha, beta=cfg.beta, D=cfg.D, eta=0.0, nu=0.0)
    c = field_coefficient(cfg.lam, cfg.D, cfg.alpha, cfg.beta, 0.0, 0.0)
    links = landau_links(cfg.N, cfg.L, cfg.n_v)
    E0 = uniform_energy(cfg.L, pars)
    S, T = res.psi.shape[:2]
    out = np.empty((S, T))
    for s in range(S):
        for t in range(T):
            p, av = res.psi[s, t], res.a[s, t]
            out[s, t] = (ref.screened_energy(p[0], p[1], av[0], av[1], links, c=c, **pars) - E0) / cfg.n_v
    return out


def run_case(a, label: str, lam: float) -> dict:
    from tdglnre.analysis.clusters import nearest_neighbour_distances, pattern_statistics, point_structure_factor
    from tdglnre.analysis.clusters import vortex_positions, winding_field
    from tdglnre.physics.lattice import landau_links
    from tdglnre.physics.observables import magnetic_field
    from tdglnre.physics.screening import lengths
    from tdglnre.physics.solver import simulate

    cfg = config_for(a, lam)
    info = lengths(cfg)
    print(f"{label}: lam={lam} xi={info['xi']} regime {info['regime']} c={info['c']:.4g}", flush=True)
    t0 = time.time()
    res = simulate(cfg, n_samples=a.samples, seed=a.seed, threads=1)
    sim_s = time.time() - t0
    ell = a.L / math.sqrt(a.n_v)
    bg = landau_links(a.N, a.L, a.n_v)
    b_mean = 2.0 * math.pi * a.n_v / a.L**2
    stats = [[dict(pattern_statistics(winding_field(res.psi[s, t, 0], *res.a[s, t], a.L, a.n_v), a.L,
                                      free_distance=a.free * ell),
                   meissner_fraction=float(np.mean(magnetic_field(bg, *res.a[s, t]) < 0.1 * b_mean)))
              for t in range(len(a.times))] for s in range(a.samples)]
    E = energies(res, cfg)
    last = [winding_field(res.psi[s, -1, 0], *res.a[s, -1], a.L, a.n_v) for s in range(a.samples)]
    q, Sq = zip(*(point_structure_factor(k, a.L) for k in last))
    images = dict(B=np.round(magnetic_field(bg, *res.a[0, -1]), 4).tolist(),  # 4 decimals: the figure's, not the stats'
                  rho2=np.round(np.abs(res.psi[0, -1, 1]) ** 2, 4).tolist(),
                  vortices=vortex_positions(last[0], a.L).tolist())
    case = dict(lam=lam, regime=info["regime"], xi=list(info["xi"]), c=info["c"], simulate_s=sim_s,
                energy_per_vortex=E.tolist(), stats=stats,
                nn=[nearest_neighbour_distances(vortex_positions(k, a.L), a.L).tolist() for k in last],
                q=q[0].tolist(), S_q=np.mean(Sq, axis=0).tolist(), S_q_sem=sem(np.array(Sq)).tolist(),
                summary=summary(stats), images=images,
                rho2_mean=[float(np.mean(np.abs(res.psi[:, t, 1]) ** 2)) for t in range(len(a.times))])
    print(f"  simulate {sim_s:.0f} s; last snapshot: " + ", ".join(
        f"{k} {v['mean']:.3f} ± {v['sem']:.3f}" for k, v in case["summary"].items()), flush=True)
    return case


def sem(x: np.ndarray) -> np.ndarray:
    """Standard error of the mean over axis 0."""
    return x.std(axis=0, ddof=1) / math.sqrt(x.shape[0])


def summary(stats: list[list[dict]]) -> dict:
    """Mean ± standard error over samples of each statistic at the last snapshot."""
    out = {}
    for k in STATS + ("n_vortices", "n_antivortices"):
        v = np.array([s[-1][k] for s in stats], dtype=float)
        out[k] = dict(mean=float(v.mean()), sem=float(sem(v[:, None])[0]))
    return out


def plot(d: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = d["cases"]
    L = d["L"]
    fig, ax = plt.subplots(2, 4, figsize=(17, 8))
    for col, (label, c) in enumerate(cases.items()):
        for j, name in enumerate(("B", "rho2")):
            a = ax[0, 2 * col + j]
            im = a.imshow(np.array(c["images"][name]), origin="lower", extent=(0, L, 0, L), cmap="viridis")
            v = np.array(c["images"]["vortices"])
            a.plot(v[:, 0], v[:, 1], "r+", ms=6)
            a.set_title(f"{label} (lam={c['lam']:g}): {name}, t={d['times'][-1]:g}, sample 0", fontsize=9)
            fig.colorbar(im, ax=a, fraction=0.046)
    colors = {"type-1.5": "C3", "type-II": "C0"}
    ell = L / math.sqrt(d["n_v"])
    a = ax[1, 0]
    bins = np.linspace(0, 1.6 * ell, 33)
    for label, c in cases.items():
        a.hist(np.concatenate(c["nn"]), bins=bins, alpha=0.5, color=colors[label], label=label, density=True)
    a.axvline(0.5 * ell, color="grey", ls=":", label="Poisson mean")
    a.set_xlabel("nearest-neighbour distance")
    a.set_title(f"d_NN, {d['samples']} samples x {d['n_v']} vortices", fontsize=9)
    a.legend(fontsize=8)
    a = ax[1, 1]
    for label, c in cases.items():
        a.errorbar(c["q"], c["S_q"], yerr=c["S_q_sem"], fmt="o-", ms=3, color=colors[label], label=label)
    a.axhline(1.0, color="grey", ls=":", label="Poisson")
    a.set_yscale("log")
    a.set_xlim(0, 3.0)
    a.set_xlabel("q")
    a.set_title("S(q) of the vortex positions (mean over samples)", fontsize=9)
    a.legend(fontsize=8)
    for a, key, title in ((ax[1, 2], "free_fraction", f"vortex-free fraction (d > {d['free']:g} l)"),
                          (ax[1, 3], "clark_evans", "Clark-Evans <d_NN>/(n^-1/2 / 2)")):
        for label, c in cases.items():
            v = np.array([[st[key] for st in s] for s in c["stats"]])
            a.errorbar(d["times"], v.mean(axis=0), yerr=sem(v), fmt="o-", ms=3, color=colors[label], label=label)
        a.set_xscale("log")
        a.set_xlabel("t")
        a.set_title(title, fontsize=9)
        a.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def show(d: dict) -> None:
    print(f"N={d['N']} L={d['L']:g} n_v={d['n_v']} sigma={d['sigma']:g} dt={d['dt']:g} samples={d['samples']} "
          f"seed={d['seed']}; wall {d.get('wall_s', float('nan')):.0f} s")
    print("case       lam  regime  " + "  ".join(f"{k:>15s}" for k in STATS) + "  n_v(band 1)  antivortices")
    for label, c in d["cases"].items():
        s = c["summary"]
        print(f"{label:9s} {c['lam']:4g}  {c['regime']:6s}  " + "  ".join(
            f"{s[k]['mean']:7.3f} ± {s[k]['sem']:5.3f}" for k in STATS)
              + f"  {s['n_vortices']['mean']:6.2f}  {s['n_antivortices']['mean']:6.2f}")
    print("settling (mean over samples at each snapshot):")
    for label, c in d["cases"].items():
        E = np.array(c["energy_per_vortex"]).mean(axis=0)
        ff = np.array([[st["free_fraction"] for st in s] for s in c["stats"]]).mean(axis=0)
        print(f"  {label}: t = " + " ".join(f"{t:g}" for t in d["times"]))
        print("    E/n_v        " + " ".join(f"{e:.4f}" for e in E))
        mf = np.array([[st["meissner_fraction"] for st in s] for s in c["stats"]]).mean(axis=0)
        print("    free frac.   " + " ".join(f"{f:.3f}" for f in ff))
        print("    Meissner fr. " + " ".join(f"{f:.3f}" for f in mf))
        print("    <rho2>       " + " ".join(f"{r:.3f}" for r in c["rho2_mean"]))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--N", type=int, default=64)
    ap.add_argument("--L", type=float, default=32.0)
    ap.add_argument("--n-v", dest="n_v", type=int, default=16)
    ap.add_argument("--sigma", type=float, default=4.0)
    ap.add_argument("--dt", type=float, default=0.01)
    ap.add_argument("--times", type=float, nargs="+", default=[25, 50, 100, 200, 400, 800, 1600, 3200, 6400])
    ap.add_argument("--samples", type=int, default=8, help="quenches per case (sample indices 0..samples-1)")
    ap.add_argument("--seed", type=int, default=0, help="run seed of the quenches' initial states")
    ap.add_argument("--free", type=float, default=0.75, help="vortex-free distance in units of l = L/sqrt(n_v)")
    ap.add_argument("--out", type=Path, default=FIGDIR / "type15_quench.json")
    ap.add_argument("--fig", type=Path, default=FIGDIR / "type15_quench.png")
    ap.add_argument("--plot-only", action="store_true", help="redraw the figure from --out")
    a = ap.parse_args(argv)
    if a.plot_only:
        d = json.loads(a.out.read_text())
    else:
        t0 = time.time()
        d = dict(N=a.N, L=a.L, n_v=a.n_v, sigma=a.sigma, dt=a.dt, times=a.times, samples=a.samples, seed=a.seed,
                 free=a.free, xi=list(XI), numba_threads=os.environ.get("NUMBA_NUM_THREADS"),
                 cases={label: run_case(a, label, lam) for label, lam in CASES.items()})
        d["wall_s"] = time.time() - t0
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(d))
        print(f"wrote {a.out} ({d['wall_s']:.0f} s)")
    show(d)
    a.fig.parent.mkdir(parents=True, exist_ok=True)
    plot(d, a.fig)
    print(f"wrote {a.fig}")


if __name__ == "__main__":
    main()
