"""How the Hessian's soft modes move with the drag ν (issue 12, section 5).

Relaxes the same quench (same seed, η, n_v) at several ν and computes the
lowest eigenvalues of ∂²F/∂z² with the Hessian workflow, then plots them
against ν and prints a table.

    python scripts/hessian_vs_nu.py [--N 32] [--nus 0,0.1,0.2,0.3,0.4,0.5] [--out docs/figures/drag/hessian_vs_nu.png]
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import tdglnre as tg  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--N", type=int, default=32)
    ap.add_argument("--eta", type=float, default=0.5)
    ap.add_argument("--n-v", type=int, default=4)
    ap.add_argument("--t", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-eig", type=int, default=12)
    ap.add_argument("--nus", default="0,0.1,0.2,0.3,0.4,0.5")
    ap.add_argument("--out", default="docs/figures/drag/hessian_vs_nu.png")
    a = ap.parse_args(argv)
    nus = [float(v) for v in a.nus.split(",")]
    rows = []
    for nu in nus:
        res = tg.hessian(tg.FromParams(N=a.N, L=a.N / 2, eta=a.eta, n_v=a.n_v, nu=nu, t=a.t, seed=a.seed),
                         tg.HessianOptions(n_eig=a.n_eig))
        lam = np.delete(res.eigenvalues, res.zero_mode_index)  # drop the exact phase mode
        rows.append(lam[: a.n_eig - 1])
        print(f"nu={nu:4.2f}  F={res.relaxation.F_after:.4f}  lowest non-zero: "
              + " ".join(f"{v:.4g}" for v in lam[:6]))
    rows = np.array(rows)
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for j in range(rows.shape[1]):
        ax.plot(nus, rows[:, j], "o-", ms=3, lw=0.8, color=plt.cm.viridis(j / max(1, rows.shape[1] - 1)))
    ax.set_xlabel(r"drag $\nu$")
    ax.set_ylabel(r"lowest non-zero eigenvalues of $\partial^2F/\partial z^2$")
    ax.set_yscale("log")
    ax.set_title(f"N={a.N}, eta={a.eta:g}, n_v={a.n_v}, t={a.t:g}, seed {a.seed}")
    fig.tight_layout()
    fig.savefig(a.out, dpi=120)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
