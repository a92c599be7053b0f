"""Cost of Langevin thermal noise in the numba kernel: T > 0 vs T = 0.

Times :func:`tdglnre.physics.solver.simulate` on a batch of ``--samples``
samples (default 8) at N = ``--N`` (default 64) for ``--steps`` Euler steps
(default 1000, one snapshot at the end), once clean (T = 0) and once with
thermal noise (T = ``--T``, default 0.01), for float64 and float32. The two
variants are compiled first (untimed), then timed in ``--repeats``
interleaved A/B pairs (clean, noisy, clean, noisy, ...) so that load from
other jobs on a shared machine hits both alike; the report is the median of
the per-pair ratios t(T > 0) / t(T = 0), with the median times. Only the
ratio is meant to be compared across runs and machines. ``--lam`` times the
screened model (λ < ∞, σ = ``--sigma``), whose noise kicks ψ and a.

    python scripts/bench_thermal.py [--N 64] [--samples 8] [--steps 1000] [--repeats 7] [--threads 1] [--lam 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from tdglnre.physics.config import SimConfig
from tdglnre.physics.solver import simulate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--N", type=int, default=64)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--T", type=float, default=0.01)
    ap.add_argument("--lam", type=float, default=None, help="penetration depth (default: none, the fixed field)")
    ap.add_argument("--sigma", type=float, default=1.0)
    args = ap.parse_args()
    dt = 0.001
    for dtype in ("float64", "float32"):
        screening = {} if args.lam is None else {"lam": args.lam, "sigma": args.sigma}
        cfg = SimConfig(N=args.N, L=args.N / 2.0, dt=dt, snapshot_times=(args.steps * dt,), eta=0.5, n_v=2,
                        dtype=dtype, **screening)
        runs = {name: (lambda T=T: simulate(cfg, {"T": T}, n_samples=args.samples, seed=1, threads=args.threads))
                for name, T in (("clean", 0.0), ("noisy", args.T))}
        for f in runs.values():  # compile
            f()
        times: dict[str, list[float]] = {"clean": [], "noisy": []}
        for _ in range(args.repeats):
            for name, f in runs.items():
                t0 = time.perf_counter()
                f()
                times[name].append(time.perf_counter() - t0)
        ratios = [n / c for n, c in zip(times["noisy"], times["clean"])]
        print(f"{dtype}{'' if args.lam is None else f' lam={args.lam:g}'}: N={args.N} samples={args.samples} steps={args.steps} threads={args.threads}  "
              f"clean {statistics.median(times['clean']):.3f} s  noisy {statistics.median(times['noisy']):.3f} s  "
              f"ratio T>0/T=0 = {statistics.median(ratios):.2f} (min {min(ratios):.2f}, max {max(ratios):.2f})")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
