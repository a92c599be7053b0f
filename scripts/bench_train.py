#!/usr/bin/env python
"""Benchmarks of the neural ratio estimator (results go to docs/nre.md).

Three measurements, each printed as JSON (and written to ``--out`` if given):

``throughput``
    Training throughput (training samples per second) on random N×N×3 inputs,
    all variants measured in the same run:

    * ``ours``: the default network (16-32-32-64 filters), each x encoded once
      and scored against K θ's (nrec, K = 8).
    * ``ours_paper_widths``: the paper's widths (64-128-128-256), encoded once,
      K = 2 (nre).
    * ``paper_two_pass``: the paper's widths trained the paper's way: the joint
      batch and the marginal batch both run through the CNN (2 CNN passes per x).
    * ``ours_two_pass``: the default widths with two CNN passes (separates the
      effect of the width from that of encoding once).

``losses``
    Calibration and sharpness of nre / bnre / nrec on the Gaussian toy problem
    with a known posterior (``tdglnre.nre.pipeline.data.gaussian_toy``).

``eval``
    Time for one observation's 1-D posterior on a 512-point grid after
    loading (encode once + head on the grid).

The machine's load average is recorded before and after each part.

Usage::

    PYTHONPATH=. python scripts/bench_train.py throughput [--N 64] [--steps 20]
    PYTHONPATH=. python scripts/bench_train.py losses [--seeds 0,1]
    PYTHONPATH=. python scripts/bench_train.py eval
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tdglnre.nre import configure_tensorflow  # noqa: E402


def _load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


# ---------------------------------------------------------------- throughput
def _throughput_one(name: str, net: Any, loss: str, k: int, two_pass: bool, n: int,
                    batch: int, steps: int, repeats: int) -> dict[str, Any]:
    import keras
    import tensorflow as tf

    from tdglnre.nre.pipeline.data import contrastive_theta
    from tdglnre.nre.net.losses import make_loss, n_theta_columns
    from tdglnre.nre.net.network import build_model

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch * steps, n, n, 3)).astype(np.float32)
    th = rng.uniform(size=(batch * steps, 1)).astype(np.float32)
    model = build_model(net, 3, [0.0], [1.0])
    if two_pass:
        # the paper's scheme: (x, θ) joint and (x, θ') marginal batches, both through the CNN
        xs, ts, ys = [], [], []
        for s in range(steps):
            xb, tb = x[s * batch:(s + 1) * batch], th[s * batch:(s + 1) * batch]
            xs.append(np.concatenate([xb, xb]))
            ts.append(np.concatenate([tb, np.roll(tb, 1, axis=0)])[:, None, :])
            ys.append(np.concatenate([np.ones((batch, 1)), np.zeros((batch, 1))]).astype("f4"))
        ds = tf.data.Dataset.from_tensor_slices(((np.stack(xs), np.stack(ts)), np.stack(ys)))
        model.compile(optimizer=keras.optimizers.AdamW(1e-3, weight_decay=1e-4),
                      loss=keras.losses.BinaryCrossentropy(from_logits=True))
    else:
        cols = n_theta_columns(loss, k)
        ts = np.stack([contrastive_theta(th[s * batch:(s + 1) * batch], cols)
                       for s in range(steps)])
        ds = tf.data.Dataset.from_tensor_slices(
            ((x.reshape(steps, batch, n, n, 3), ts), np.zeros((steps, batch), "f4")))
        model.compile(optimizer=keras.optimizers.AdamW(1e-3, weight_decay=1e-4),
                      loss=make_loss(loss))
    ds = ds.prefetch(2)
    model.fit(ds, epochs=1, verbose=0)  # warm-up: tracing
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model.fit(ds, epochs=1, verbose=0)
        rates.append(batch * steps / (time.perf_counter() - t0))
    return {"variant": name, "filters": list(net.filters), "loss": loss if not two_pass else "nre",
            "theta_per_x": (k if not two_pass else 2), "cnn_passes_per_x": 2 if two_pass else 1,
            "params": int(model.count_params()), "samples_per_s": round(float(np.median(rates)), 1),
            "samples_per_s_all": [round(r, 1) for r in rates]}


def bench_throughput(n: int, batch: int, steps: int, repeats: int) -> dict[str, Any]:
    from tdglnre.nre.net.network import NetworkConfig

    ours, paper = NetworkConfig(), NetworkConfig.paper()
    load0 = _load()
    rows = [
        _throughput_one("ours", ours, "nrec", 8, False, n, batch, steps, repeats),
        _throughput_one("ours_two_pass", ours, "nre", 2, True, n, batch, steps, repeats),
        _throughput_one("ours_paper_widths", paper, "nre", 2, False, n, batch, steps, repeats),
        _throughput_one("paper_two_pass", paper, "nre", 2, True, n, batch, steps, repeats),
    ]
    return {"N": n, "batch": batch, "steps": steps, "repeats": repeats,
            "threads": len(os.sched_getaffinity(0)), "load_before": load0,
            "load_after": _load(), "rows": rows}


# -------------------------------------------------------------------- losses
def _toy_metrics(model_dir: Path, n_test: int) -> dict[str, Any]:
    from tdglnre.nre.pipeline.data import gaussian_toy
    from tdglnre.nre.infer.model_io import load_estimator

    grid = np.linspace(-1, 1, 401)
    est = load_estimator(model_dir)
    test = gaussian_toy(n_test, seed=12345)
    x = est.preprocess(test.x(0, n_test))
    truth = test.theta(0, n_test)[:, 0]

    def moments(logp: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        p = np.exp(logp - logp.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        mu = p @ grid
        return p, mu, np.sqrt(np.maximum(p @ grid**2 - mu**2, 0))

    p, mu, sd = moments(est.log_ratio_from_embedding(est.encode(x), grid))
    xbar = x.reshape(n_test, -1).mean(1)
    _, mu_e, sd_e = moments(-0.5 * ((grid[None] - xbar[:, None]) * 8.0) ** 2)
    levels = np.array([pi[pi > pi[np.argmin(np.abs(grid - t))]].sum() for pi, t in zip(p, truth)])
    nominal = np.round(np.arange(0.05, 0.951, 0.05), 2)
    empirical = np.array([np.mean(levels <= a) for a in nominal])
    return {
        "mean_abs_err_over_sigma": round(float(np.mean(np.abs(mu - mu_e)) / 0.125), 3),
        "median_width_ratio": round(float(np.median(sd / sd_e)), 3),
        "mean_posterior_std": round(float(np.mean(sd)), 4),
        "exact_mean_posterior_std": round(float(np.mean(sd_e)), 4),
        "coverage_max_abs_dev": round(float(np.max(np.abs(empirical - nominal))), 3),
        "coverage_signed_mean_dev": round(float(np.mean(empirical - nominal)), 3),
        "coverage_68": round(float(np.mean(levels <= 0.68)), 3),
        "coverage_95": round(float(np.mean(levels <= 0.95)), 3),
    }


def bench_losses(seeds: list[int], n_train: int, epochs: int, n_test: int) -> dict[str, Any]:
    from tdglnre.nre.pipeline.data import gaussian_toy
    from tdglnre.nre.net.network import NetworkConfig
    from tdglnre.nre.fit.training import train_source

    net = NetworkConfig(filters=(8, 16), embed_dim=16, theta_units=(32, 32), head_units=(32, 32))
    variants = [("nre", 2, {}), ("nre", 8, {}), ("bnre", 2, {}), ("bnre", 8, {}),
                ("nrec", 4, {}), ("nrec", 8, {}), ("nrec", 8, {"gamma": 5.0})]
    load0 = _load()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for loss, k, extra in variants:
            for seed in seeds:
                src = gaussian_toy(n_train, seed=100 + seed)
                out = Path(tmp) / f"{loss}{k}{seed}{extra.get('gamma', '')}"
                t0 = time.perf_counter()
                res = train_source(src, out, loss=loss, contrastive=k, epochs=epochs,
                                   batch_size=64, network=net, quiet=True, seed=seed, **extra)
                row = {"loss": loss, "K": k, **extra, "seed": seed,
                       "train_s": round(time.perf_counter() - t0, 1),
                       "best_epoch": res.best_epoch, **_toy_metrics(out, n_test)}
                print(json.dumps(row), file=sys.stderr, flush=True)
                rows.append(row)
    return {"n_train": n_train, "epochs": epochs, "n_test": n_test, "seeds": seeds,
            "load_before": load0, "load_after": _load(), "rows": rows}


# ---------------------------------------------------------------------- eval
def bench_eval(n: int) -> dict[str, Any]:
    from tdglnre.nre.pipeline.data import ArraySource
    from tdglnre.nre.infer.model_io import load_estimator
    from tdglnre.nre.net.network import NetworkConfig
    from tdglnre.nre.fit.training import train_source

    out: dict[str, Any] = {"N": n, "load_before": _load()}
    rng = np.random.default_rng(0)
    for name, net in (("ours", NetworkConfig()), ("paper_widths", NetworkConfig.paper())):
        src = ArraySource(rng.uniform(0, 1.5, size=(64, 1)),
                          rng.normal(size=(64, 1, n, n, 3)).astype("f4"), ["eta"], [0], [1.5])
        with tempfile.TemporaryDirectory() as tmp:
            train_source(src, Path(tmp) / "m", epochs=1, network=net, quiet=True, batch_size=16)
            t0 = time.perf_counter()
            est = load_estimator(Path(tmp) / "m")
            t_load = time.perf_counter() - t0
            x_raw = rng.normal(size=(1, n, n, 3)).astype("f4")
            grid = np.linspace(0, 1.5, 512)
            times = []
            for _ in range(20):
                t0 = time.perf_counter()
                s = est.log_ratio_from_embedding(est.encode(est.preprocess(x_raw)), grid)
                times.append(time.perf_counter() - t0)
            assert s.shape == (1, 512)
            h = est.encode(est.preprocess(x_raw))
            g3 = np.stack(np.meshgrid(np.linspace(0, 1.5, 64), np.linspace(0, 1, 64),
                                      np.linspace(0, 1, 64), indexing="ij"), -1).reshape(-1, 3)
            out[name] = {"load_s": round(t_load, 2),
                         "one_obs_512_grid_ms_median": round(1e3 * float(np.median(times)), 2),
                         "one_obs_512_grid_ms_max": round(1e3 * float(np.max(times)), 2)}
            del h, g3
    out["load_after"] = _load()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    t = sub.add_parser("throughput")
    t.add_argument("--N", type=int, default=64)
    t.add_argument("--batch", type=int, default=32)
    t.add_argument("--steps", type=int, default=20)
    t.add_argument("--repeats", type=int, default=3)
    lo = sub.add_parser("losses")
    lo.add_argument("--seeds", default="0,1")
    lo.add_argument("--n-train", type=int, default=4000)
    lo.add_argument("--epochs", type=int, default=10)
    lo.add_argument("--n-test", type=int, default=500)
    e = sub.add_parser("eval")
    e.add_argument("--N", type=int, default=64)
    for p in (t, lo, e):
        p.add_argument("--out", default=None, help="also write the JSON here")
        p.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    configure_tensorflow(args.threads)
    if args.what == "throughput":
        res = bench_throughput(args.N, args.batch, args.steps, args.repeats)
    elif args.what == "losses":
        res = bench_losses([int(s) for s in args.seeds.split(",")], args.n_train, args.epochs,
                           args.n_test)
    else:
        res = bench_eval(args.N)
    text = json.dumps(res, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
