"""Golden outputs of the whole pipeline, to prove that a refactor changes no result.

Runs, through the command line as a user would, a tiny but complete pipeline:

1. ``generate`` a clean float32 training ensemble and test set (quick preset at
   N = 16, L = 8) with the order parameters stored, and a float64 ensemble
   with thermal noise, pinning disorder and drag (drag-quick preset at N = 16);
2. ``train`` the ratio estimator for 2 epochs (seed 0, one thread);
3. ``posterior`` of one test observation and ``posterior --test-set``
   (calibration: coverage, SBC, Table I, ABC baseline).

It reduces the outputs to digests: SHA-256 of the bytes of every ensemble
dataset (θ, x, ψ) and the numbers of posterior.json and calibration.json
(every float, as its exact repr). tests/test_golden.py compares them with
tests/data/golden.json, written by ``python scripts/golden.py --write`` from
the commit before a refactor.

The network part depends on TensorFlow's version and the CPU (oneDNN kernels),
so golden.json records both; where they differ from the recording, the test
checks the simulation digests only and says why.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

GOLDEN = Path(__file__).resolve().parents[1] / "tests" / "data" / "golden.json"

ENSEMBLES = {
    # name: (preset, extra --set, n_samples, seed)
    "train": ("quick", ["N=16", "L=8"], 96, 3),
    "test": ("quick", ["N=16", "L=8"], 24, 4),
    "nuisance": ("drag-quick", ["N=16", "L=8", "dtype=float64", "T=0.01", "delta=0.1"], 6, 5),
}


def _run(args: list[str], env: dict[str, str]) -> None:
    cmd = [sys.executable, "-m", "tdglnre.cli.main", *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")


def _digest_h5(path: Path) -> dict[str, str]:
    import h5py

    out: dict[str, str] = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            arr = obj[()]
            out[name] = hashlib.sha256(arr.tobytes()).hexdigest() + f":{arr.dtype}:{arr.shape}"

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return out


def _numbers(obj, prefix: str = "") -> dict[str, str]:
    """Every number (and string) of a JSON tree, flattened to path → exact repr."""
    flat: dict[str, str] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            flat.update(_numbers(v, f"{prefix}/{k}"))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            flat.update(_numbers(v, f"{prefix}[{i}]"))
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        flat[prefix] = repr(obj)
    return flat


# keys of the JSON outputs that hold run-specific things, not results
_VOLATILE = ("time", "seconds", "path", "dir", "version", "created", "host", "elapsed", "threads")


def _keep(key: str) -> bool:
    return not any(v in key.lower() for v in _VOLATILE)


def environment() -> dict[str, str]:
    import numpy
    import tensorflow as tf

    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor()
    return {"tensorflow": tf.__version__, "numpy": numpy.__version__, "cpu": cpu, "machine": platform.machine()}


def compute(work: Path) -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="", PYTHONHASHSEED="0")
    sims: dict[str, dict[str, str]] = {}
    for name, (preset, sets, n, seed) in ENSEMBLES.items():
        out = work / f"{name}.h5"
        args = ["generate", "--preset", preset, "--n-samples", str(n), "--seed", str(seed), "--out", str(out),
                "--store-fields", "-q"]
        for s in sets:
            args += ["--set", s]
        _run(args, env)
        sims[name] = _digest_h5(out)
    _run(["train", "--data", str(work / "train.h5"), "--out", str(work / "model"), "--epochs", "2",
          "--seed", "0", "--threads", "1", "--batch-size", "32"], env)
    _run(["posterior", "--model", str(work / "model"), "--data", str(work / "test.h5"), "--index", "0",
          "--out", str(work / "post"), "--quiet"], env)
    _run(["posterior", "--model", str(work / "model"), "--test-set", str(work / "test.h5"),
          "--out", str(work / "cal"), "--quiet", "--seed", "1"], env)
    nets: dict[str, dict[str, str]] = {}
    for name, path in (("posterior", work / "post" / "posterior.json"),
                       ("calibration", work / "cal" / "calibration.json")):
        nums = _numbers(json.loads(path.read_text()))
        nets[name] = {k: v for k, v in nums.items() if _keep(k)}
    import numpy as np

    with np.load(work / "post" / "posterior_grid.npz") as z:
        nets["posterior_grid"] = {k: hashlib.sha256(np.ascontiguousarray(z[k]).tobytes()).hexdigest()
                                  for k in sorted(z.files)}
    return {"environment": environment(), "simulations": sims, "network": nets}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--write", action="store_true", help=f"write {GOLDEN}")
    ap.add_argument("--work", type=Path, default=None, help="keep the run's files here")
    a = ap.parse_args()
    if a.work is not None:
        a.work.mkdir(parents=True, exist_ok=True)
        res = compute(a.work)
    else:
        with tempfile.TemporaryDirectory() as d:
            res = compute(Path(d))
    text = json.dumps(res, indent=1, sort_keys=True) + "\n"
    if a.write:
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(text)
        print(f"wrote {GOLDEN}")
    else:
        print(text)


if __name__ == "__main__":
    main()
