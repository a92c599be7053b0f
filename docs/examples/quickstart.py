"""The Python API end to end: simulate, generate, train, posterior, calibrate, Hessian.

Run from anywhere (writes into --out, default ./tdglnre-quickstart):

    python docs/examples/quickstart.py            # the quick preset: a few minutes on 2 cores
    python docs/examples/quickstart.py --tiny     # N = 16, seconds of simulation (the test tier runs this)

Every step returns an object in memory; files are written only by ``.save``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # a script that saves figures; in Jupyter leave the backend alone

import tdglnre as tg  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="tdglnre-quickstart", help="output directory")
    ap.add_argument("--tiny", action="store_true", help="tiny sizes (seconds)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    # 1. sizes: the quick preset, or a tiny variant of it
    sets = ["N=16", "L=8", "snapshot_times=[0.2]", "prior.n_v=int_uniform(1,3)"] if args.tiny else []
    n_train, n_test, epochs = (240, 24, 2) if args.tiny else (4000, 300, 30)

    # 2. one simulation in memory: SimConfig -> simulate -> channels [rho1, rho2, curl J]
    config, prior = tg.load_preset("quick", sets)
    sim = tg.simulate(config, {"eta": [0.5], "n_v": [2]}, seed=0)
    print("simulated channels", sim.channels().shape)

    # 3. ensembles on disk (resumable HDF5), then training
    ens = tg.generate("quick", n_train, 0, out / "train.h5", overrides=sets, force=True)
    tg.generate("quick", n_test, 1, out / "test.h5", overrides=sets, force=True)
    print(f"generated {ens.n_complete} samples at {ens.samples_per_s:.1f} samples/s")
    tg.train(out / "train.h5", out / "model", epochs=epochs, batch_size=32, force=True, quiet=True)

    # 4. a posterior in memory, then saved with its figures
    model = tg.load_model(out / "model")
    obs = tg.simulate_observation(model, eta=0.8, n_v=2, seed=7)
    post = tg.posterior(model, obs, grid_points=64)
    for line in post.report():
        print(line)
    post.save(out / "posterior", force=True)

    # 5. calibration on the independent test set
    rep = tg.calibrate(model, out / "test.h5", grid_points=64)
    for line in rep.summary_lines():
        print(line)
    rep.save(out / "calibration", force=True)

    # 6. soft modes of one relaxed state
    hess = tg.hessian(tg.FromParams(N=8 if args.tiny else 32, L=4.0 if args.tiny else 16.0, eta=0.5, n_v=1,
                                    t=0.5), tg.HessianOptions(n_eig=6))
    print(hess.report())
    return {"posterior": post.summary(), "calibration": rep.report, "hessian": hess.summary()}


if __name__ == "__main__":
    main()
