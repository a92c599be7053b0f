"""Registers, spills and shared memory of every CUDA kernel for a real GPU (issue 22), without a GPU.

Each kernel variant is compiled to PTX for sm_90 with numba's NVVM
(``cuda.compile_ptx``) and assembled by ``ptxas -arch=sm_90 -v`` with the
register cap the backend launches it with (``--maxrregcount`` =
``cuda.kernels.FUSED_MAX_REGISTERS`` for the fused kernels: numba passes
``max_registers`` to the same assembler when it loads a kernel). The test fails
where registers (rounded up to the allocation unit of 8 a thread) × the
largest block the backend launches exceed the register file (65,536) or static + dynamic shared memory exceed 48 KiB, i.e. where a
launch would fail with CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES.

Tier: it needs the CUDA toolkit (NVVM, libdevice, ptxas) but no GPU and no
extra Python package; it is skipped, with the reason, where the toolkit is
missing. Run it alone with ``pytest tests/test_cuda_registers.py -v`` (about
two minutes: 53 kernels through NVVM and ptxas); ``-s`` prints the table that
docs/gpu.md quotes.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from tdglnre.physics.cuda import kernels as tk

#: Compiles every Euler variant (mode × dtype × disorder × thermal) and the other kernels to PTX; prints JSON.
_SCRIPT = r'''
import json, sys, types as _t
from numba import cuda, types
import numba.cuda.dispatcher as disp
if not cuda.is_available():  # device functions ask the driver for the compute capability
    disp.get_current_device = lambda: _t.SimpleNamespace(compute_capability=(9, 0))
from tdglnre.physics.cuda import kernels as tk
from tdglnre.physics.cuda import hessian as th
A = lambda t, nd: types.Array(t, nd, "C")
f32, f64, i64, u64 = types.float32, types.float64, types.int64, types.uint64
out = []
for t in (f32, f64):
    ext = (A(t, 2), A(t, 2), A(t, 1), A(u64, 1), i64)
    for dis in (False, True):
        for th_ in (False, True):
            ks = tk.euler_kernels(str(t), dis, th_)
            for mode, sig in (("step", (A(t, 2),) * 3 + (A(t, 3),) * 2 + ext),
                              ("fused-global", (A(t, 2),) * 3 + (A(t, 3),) * 2 + (i64,) + ext)):
                ptx, _ = cuda.compile_ptx(ks[mode].py_func, sig, cc=(9, 0))
                out.append({"kernel": mode, "dtype": str(t), "disorder": dis, "thermal": th_, "ptx": ptx})
            sites_used = sorted({tk.shared_sites(n) for n in range(4, 200) if tk.shared_fits(n, str(t))})
            for sites in sites_used:  # the fused-shared variants select_mode can launch
                k = tk.euler_kernels(str(t), dis, th_, sites)["fused-shared"]
                ptx, _ = cuda.compile_ptx(k.py_func, (A(t, 2),) * 2 + (A(t, 3),) * 2 + (i64,) + ext, cc=(9, 0))
                out.append({"kernel": "fused-shared", "sites": sites, "dtype": str(t), "disorder": dis,
                            "thermal": th_, "ptx": ptx})
    out.append({"kernel": "health", "dtype": str(t), "disorder": False, "thermal": False,
                "ptx": cuda.compile_ptx(tk.health_kernel(tk.HEALTH_TPB).py_func,
                                        (A(t, 2), A(t, 2), A(f64, 2), i64, i64, i64, f64, f64, A(i64, 1),
                                         A(i64, 1), A(f64, 1)), cc=(9, 0))[0]})
    out.append({"kernel": "channels", "dtype": str(t), "disorder": False, "thermal": False,
                "ptx": cuda.compile_ptx(tk.channels_kernel.py_func, (A(t, 2), A(f32, 5), i64, A(f64, 3),
                                        A(f64, 3), A(f64, 1), f64, f64, f64), cc=(9, 0))[0]})
from tdglnre.physics.cuda import screened as ts
for t in (f32, f64):  # the screened model (lam < inf): link factors, the site update, the health check of a
    out.append({"kernel": "screened-links", "dtype": str(t), "disorder": False, "thermal": False,
                "ptx": cuda.compile_ptx(ts.links_kernel.py_func, (A(t, 4), A(t, 4), A(t, 3), A(f64, 3), A(t, 2)),
                                        cc=(9, 0))[0]})
    for dis in (False, True):
        for th_ in (False, True):
            sig = (A(t, 4), A(t, 4), A(t, 2), A(t, 4), A(t, 3), A(t, 3), A(t, 2), A(t, 1), A(u64, 1), i64)
            out.append({"kernel": "screened-sweep", "dtype": str(t), "disorder": dis, "thermal": th_,
                        "ptx": cuda.compile_ptx(ts.sweep_kernel(str(t), dis, th_).py_func, sig, cc=(9, 0))[0]})
    out.append({"kernel": "screened-health", "dtype": str(t), "disorder": False, "thermal": False,
                "ptx": cuda.compile_ptx(ts.field_health_kernel(tk.HEALTH_TPB).py_func,
                                        (A(t, 2), i64, i64, A(i64, 1), A(i64, 1), A(f64, 1)), cc=(9, 0))[0]})
out.append({"kernel": "displace", "dtype": "float64", "disorder": False, "thermal": False,
            "ptx": cuda.compile_ptx(th.displace_kernel.py_func, (A(f64, 1), A(f64, 1), A(f64, 1), A(f64, 2)),
                                    cc=(9, 0))[0]})
json.dump(out, sys.stdout)
'''

REGISTER_FILE = 65536
SHARED_LIMIT = 48 * 1024


def _toolkit() -> str | None:
    for root in [os.environ.get("CUDA_HOME", "")] + sorted(glob.glob("/usr/local/cuda*"), reverse=True):
        if root and glob.glob(os.path.join(root, "nvvm", "libdevice", "libdevice*.bc")):
            return root
    return None


def _ptxas(root: str | None) -> str | None:
    if root and os.path.exists(os.path.join(root, "bin", "ptxas")):
        return os.path.join(root, "bin", "ptxas")
    return shutil.which("ptxas")


ROOT = _toolkit()
PTXAS = _ptxas(ROOT)
pytestmark = pytest.mark.skipif(ROOT is None or PTXAS is None,
                                reason="needs the CUDA toolkit (NVVM + libdevice to compile PTX, ptxas to "
                                       "assemble it); no GPU needed")


def launch_threads(kernel: str) -> int:
    """The largest block the backend launches ``kernel`` with, over every N select_mode allows."""
    return {"step": tk.TPB, "fused-global": tk.FUSED_GLOBAL_BLOCK, "fused-shared": tk.MAX_BLOCK,
            "health": tk.HEALTH_TPB, "channels": tk.TPB, "displace": tk.TPB, "screened-links": tk.TPB,
            "screened-sweep": tk.TPB, "screened-health": tk.HEALTH_TPB}[kernel]


def register_cap(kernel: str) -> int | None:
    """The ``max_registers`` the backend compiles ``kernel`` with (None: uncapped)."""
    return tk.FUSED_MAX_REGISTERS if kernel.startswith("fused") else None


def max_dynamic_shared(kernel: str, dtype: str, sites: int | None) -> int:
    """Largest dynamic shared memory of a launch: one sample of the largest N the variant runs (fused-shared)."""
    if kernel != "fused-shared":
        return 0
    item = 4 if dtype == "float32" else 8
    N = max(n for n in range(4, 200) if tk.shared_fits(n, dtype) and tk.shared_sites(n) == sites)
    return 4 * N * N * item


def assemble(ptx: str, cap: int | None, tmp) -> dict:
    """ptxas -arch=sm_90 -v: registers, spill stores/loads (bytes), stack frame and static shared memory."""
    src = tmp / "k.ptx"
    src.write_text(ptx)
    cmd = [PTXAS, "-arch=sm_90", "-v", str(src), "-o", str(tmp / "k.cubin")]
    if cap is not None:
        cmd.insert(2, f"--maxrregcount={cap}")
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    log = res.stderr + res.stdout
    regs = int(re.search(r"Used (\d+) registers", log).group(1))
    smem = re.search(r"(\d+) bytes smem", log)
    frame = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", log)
    return {"registers": regs, "smem": int(smem.group(1)) if smem else 0,
            "stack": int(frame.group(1)), "spill_stores": int(frame.group(2)), "spill_loads": int(frame.group(3))}


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> list[dict]:
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="0", CUDA_HOME=ROOT)
    out = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    tmp = tmp_path_factory.mktemp("ptxas")
    rows = []
    for k in json.loads(out.stdout):
        cap = register_cap(k["kernel"])
        row = {key: k[key] for key in ("kernel", "dtype", "disorder", "thermal")}
        row["sites"] = k.get("sites")
        row["local_array"] = "__local_depot" in k["ptx"]  # a local array in NVVM's output (before ptxas)
        row.update(assemble(k["ptx"], cap, tmp), cap=cap, threads=launch_threads(k["kernel"]))
        row["uncapped_registers"] = assemble(k["ptx"], None, tmp)["registers"] if cap else row["registers"]
        row["allocated"] = -(-row["registers"] // 8) * 8  # registers are allocated 256 a warp: 8 a thread
        regs_per_block = row["allocated"] * row["threads"]
        row["blocks_per_sm"] = REGISTER_FILE // regs_per_block if regs_per_block else 0
        row["dynamic_smem"] = max_dynamic_shared(k["kernel"], k["dtype"], row["sites"])
        rows.append(row)
    print("\nkernel          dtype    δ T  regs (uncapped) cap  spill st/ld  stack  smem  threads  blocks/SM(regs)")
    for r in rows:
        name = r["kernel"] + (f"/{r['sites']}" if r["sites"] else "")
        print(f"{name:<15} {r['dtype']:<8} {int(r['disorder'])} {int(r['thermal'])}  "
              f"{r['registers']:>4} ({r['uncapped_registers']:>3})     {str(r['cap']):>4} "
              f"{r['spill_stores']:>5}/{r['spill_loads']:<5} {r['stack']:>5} {r['smem'] + r['dynamic_smem']:>6} "
              f"{r['threads']:>7}  {r['blocks_per_sm']:>3}")
    return rows


def test_every_kernel_fits_the_register_file_and_shared_memory(table):
    """registers × launched threads ≤ 65,536 and static + dynamic shared memory ≤ 48 KiB, every variant."""
    shared_variants = sum(len({tk.shared_sites(n) for n in range(4, 200) if tk.shared_fits(n, d)})
                          for d in ("float32", "float64"))
    assert len(table) == 2 * (4 * 2 + 2) + 4 * shared_variants + 1 + 2 * (1 + 4 + 1)
    over = [(r["kernel"], r["sites"], r["dtype"], r["disorder"], r["thermal"], r["registers"], r["threads"])
            for r in table if r["allocated"] * r["threads"] > REGISTER_FILE]
    assert over == []
    smem = [(r["kernel"], r["dtype"], r["smem"], r["dynamic_smem"]) for r in table
            if r["smem"] + r["dynamic_smem"] > SHARED_LIMIT]
    assert smem == []


def test_screened_kernels_do_not_spill(table):
    """The screened model's kernels (lam < inf, one thread a site, uncapped) keep every value in registers."""
    rows = [r for r in table if r["kernel"].startswith("screened")]
    assert len(rows) == 2 * 6
    assert [(r["kernel"], r["dtype"], r["spill_stores"], r["spill_loads"], r["stack"]) for r in rows
            if r["spill_stores"] or r["spill_loads"] or r["stack"]] == []


def test_fused_shared_has_no_local_staging_array(table):
    """Issue 22 #5: NVVM's code of every fused-shared variant has no local array (the staged values are scalars)."""
    local = [(r["sites"], r["dtype"], r["disorder"], r["thermal"]) for r in table
             if r["kernel"] == "fused-shared" and r["local_array"]]
    assert local == []
    assert any(r["kernel"] == "fused-shared" for r in table)
