"""Soft modes of relaxed vortex states in Type I, Type 1.5 and Type II at equal n_v (issue 21 §4).

Two bands with D = ρ₀ = 1 (α = −1/ξ², β = 1/ξ²), ξ = (0.5, 2), a weak Josephson
coupling η = 0.05 (so the bands share one phase), ν = 0, on an L×L torus with
n_v flux quanta; λ is chosen per regime (``tdglnre.physics.lengths.regime`` of
the normal-mode coherence lengths): 0.3 (I), 0.8 (1.5), 3.0 (II). Each state
is relaxed from quench-like random starts (Re, Im ψ ~ U[−½, ½], a = 0) by
``tdglnre.analysis.hessian.analyze`` (L-BFGS + Newton–MINRES on the
gauge-fixed operator); the whole spectrum of the gauge-projected Hessian is
then computed densely (docs/hessian.md §8, §9). Eigenvalues are given in units
of 2h² (the ψ block's metric: λ/2h² is a relaxation rate of ψ).

    python scripts/hessian_regimes.py [--N 24 --L 6 --n-v 3 --seeds 0 1] \
        [--out docs/figures/hessian/regimes.json --fig docs/figures/hessian/regimes.png]
    python scripts/hessian_regimes.py --plot-only      # redraw the figure from the JSON
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

REGIMES = {"I": 0.3, "1.5": 0.8, "II": 3.0}
XI = (0.5, 2.0)
ETA = 0.05
THRESHOLDS = (1e-3, 1e-2, 3e-2, 1e-1)


def config(N: int, L: float, n_v: int, lam: float):
    from tdglnre.physics.config import SimConfig

    return SimConfig(N=N, L=L, n_v=n_v, eta=ETA, nu=0.0, D=(1.0, 1.0), alpha=tuple(-1.0 / x ** 2 for x in XI),
                     beta=tuple(1.0 / x ** 2 for x in XI), lam=lam, dt=1e-6, snapshot_times=(1e-6,))


def one(N: int, L: float, n_v: int, name: str, seed: int) -> dict:
    from tdglnre.analysis.hessian import analyze
    from tdglnre.physics.lengths import coherence_lengths, regime
    from tdglnre.physics.relax import quench_start

    cfg = config(N, L, n_v, REGIMES[name])
    xi = coherence_lengths(cfg.D, cfg.alpha, cfg.beta, ETA, 0.0)
    assert regime(cfg.lam, xi) == name, (regime(cfg.lam, xi), name)
    t = time.perf_counter()
    res = analyze(cfg, quench_start(N, seed), n_eig=6 * N * N - 1, eig_method="dense", residual_tol=1e-8,
                  newton_steps=10)
    wall = time.perf_counter() - t
    unit = 2.0 * cfg.h ** 2
    # the gauge-projected spectrum holds the N² − 1 lifted gauge directions at the top: drop them
    vals = np.sort(res.eigenvalues)[: res.relaxation.z.size - res.gauge_removed] / unit
    zi = res.zero_mode_index
    phys = np.delete(np.sort(res.eigenvalues), zi)[: vals.size - 1] / unit  # without the global phase
    psi = res.relaxation.z.reshape(6, N, N)
    rho = [float(np.mean(psi[0] ** 2 + psi[1] ** 2)), float(np.mean(psi[2] ** 2 + psi[3] ** 2))]
    return {"regime": name, "lam": cfg.lam, "seed": seed, "xi_modes": list(xi.xi), "F": res.F_after,
            "residual": res.relaxation.residual_after, "phase_eig": float(res.eigenvalues[zi] / unit),
            "phase_overlap": res.zero_mode_overlap, "n_negative": int(np.sum(phys < -1e-6)),
            "counts": {f"{th:g}": int(np.sum(phys < th)) for th in THRESHOLDS},
            "lowest": phys[:12].tolist(), "n_modes": int(phys.size), "rho_mean": rho, "wall_s": wall,
            "eigenvalues": phys[:300].tolist()}  # the lowest 300 (the figure's range; keeps the JSON small)


def plot(data: dict, fig_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    colours = {"I": "tab:blue", "1.5": "tab:red", "II": "tab:green"}
    for run in data["runs"]:
        ev = np.abs(np.asarray(run["eigenvalues"]))  # a translation can sit at −1e-6 (a saddle of the pinning)
        ls = "-" if run["seed"] == data["seeds"][0] else "--"
        x = np.sort(ev)
        ax[0].step(x, np.arange(1, x.size + 1), where="post", ls=ls, color=colours[run["regime"]],
                   label=f"{run['regime']} (lam={run['lam']:g}, seed {run['seed']})")
        bins = np.linspace(0, 0.3, 31)
        ax[1].hist(ev, bins=bins, histtype="step", ls=ls, color=colours[run["regime"]])
    ax[0].set_xscale("log")
    ax[0].set_xlim(1e-4, 1.0)
    ax[0].set_ylim(0, 30)
    ax[0].set_xlabel("eigenvalue / 2h^2")
    ax[0].set_ylabel("modes below (cumulative)")
    ax[0].legend(fontsize=7)
    ax[1].set_xlabel("eigenvalue / 2h^2")
    ax[1].set_ylabel("modes per bin (0.01)")
    ax[1].set_title("density of states near 0")
    fig.suptitle(f"gauge-projected Hessian, N={data['N']}, L={data['L']:g}, n_v={data['n_v']}, xi=(0.5, 2), "
                 f"eta={ETA}")
    fig.tight_layout()
    fig.savefig(fig_path, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--N", type=int, default=24)
    p.add_argument("--L", type=float, default=6.0)
    p.add_argument("--n-v", type=int, default=3)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--out", default="docs/figures/hessian/regimes.json")
    p.add_argument("--fig", default="docs/figures/hessian/regimes.png")
    p.add_argument("--plot-only", action="store_true")
    a = p.parse_args()
    out = Path(a.out)
    if not a.plot_only:
        runs = []
        for name in REGIMES:
            for s in a.seeds:
                r = one(a.N, a.L, a.n_v, name, s)
                print(json.dumps({k: v for k, v in r.items() if k != "eigenvalues"}), flush=True)
                runs.append(r)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"N": a.N, "L": a.L, "n_v": a.n_v, "seeds": a.seeds, "runs": runs}))
    plot(json.loads(out.read_text()), Path(a.fig))


if __name__ == "__main__":
    main()
