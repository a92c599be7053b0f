"""Convergence of the shipped presets in the time step dt and the lattice spacing h (issue 19, validation 5).

Runs the λ = ∞ solver (``tdglnre.simulate``) on a few fixed (η, n_v) samples of
each preset and measures how the observables the network sees at t = 2
change with dt and h:

* ⟨ρᵢ⟩ — the spatial mean density of each band, per sample;
* S(k) — the shell-averaged structure factor of the channels ρ₁, ρ₂ and
  curl J (``tdglnre.physics.fourier.radial_structure_factor``), per sample.

**dt.** At the preset's N, dt runs from ``--dt-ref`` up to just below the
stability limit (2/140 ≈ 0.0143 < dt_max = 0.01466 at η = 1.5, h = 0.5); every
run of a sample starts from the same quench state. The error of each dt is
its difference from the ``--dt-ref`` run.

**h.** L stays the preset's and N doubles (h, h/2, h/4) at one small dt
(``--dt-h``). Every lattice starts from the same continuum initial condition,
sampled at h, h/2, h/4, so the differences are the spatial discretisation
error alone, not a change of the initial noise: the trigonometric
interpolant of the preset's quench state (its Nyquist modes dropped) times
a window sin⁴(πx/L) that vanishes at the seam (``--h-start windowed``, the
default; see :func:`h_start` for why a periodic start converges only at first
order when n_v ≠ 0; ``--h-start periodic`` measures that). A
piecewise-constant prolongation would not do either: it shifts the state by
a quarter of a coarse cell, which in a field is not a symmetry without a gauge
factor. The dt study starts from the preset's own quench states. S(k) is
compared on the shells the coarse lattice has. The error of the preset's h is
its difference from the finest lattice; the observed order p comes from the
three levels.

All runs use float64 (the truncation error, not rounding); one float32 run at
the preset's dt gives the precision error of the presets' dtype for comparison.
Errors are relative: |Δ⟨ρᵢ⟩|/⟨ρᵢ⟩, and for S(k) the largest |ΔS| over the
compared shells divided by the peak of S. The table reports the largest
error over the samples.

With ``--lam`` (and ``--sigma``) the presets run screened (the numba kernel of
ψ and the link field a, a = 0 at the start on every lattice) and S(k) also
covers the field B. The screened dt bound is tighter and scales with h², so
the dt study keeps the dt values the bound allows and the h study halves
``--dt-h`` until the finest lattice accepts it.

    python scripts/convergence.py [--presets quick,paper] [--out docs/figures/convergence/convergence.json]
    python scripts/convergence.py --presets quick --lam 2 --sigma 2 --out docs/figures/convergence/screened.json \
        --fig docs/figures/convergence/screened.png
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import tdglnre as tg
from tdglnre.errors import ConfigError
from tdglnre.physics.config import time_step_limit
from tdglnre.physics.observables import channel_names
from tdglnre.physics.fourier import radial_structure_factor
from tdglnre.physics.rng import initial_state

#: dt values that divide t = 2 exactly; the last is 2/140, just below dt_max(η = 1.5, h = 0.5) = 0.014663.
DTS = (0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 2.0 / 140)
CHANNELS = ("rho1", "rho2", "curlJ")


def allowed(cfg, params: dict) -> bool:
    """Whether ``cfg`` (its dt) passes the stability bound for every sample of ``params`` (screened: per sample)."""
    try:
        tg.simulate(cfg.replace(snapshot_times=(cfg.dt,)), params, seed=0)
    except ConfigError:
        return False
    return True


def sample_points(n_max: int, n: int) -> dict[str, np.ndarray]:
    """``n`` fixed samples spread over the preset's prior box: η from 0 to 1.5, n_v from 1 to n_max."""
    eta = np.linspace(0.0, 1.5, n)
    n_v = np.unique(np.rint(np.linspace(1, n_max, n)).astype(int))
    n_v = np.resize(n_v, n)
    return {"eta": eta, "n_v": n_v, "nu": np.zeros(n)}


def band_limited(states: np.ndarray, factor: int) -> np.ndarray:
    """The trigonometric interpolant of (S, 4, N, N) coarse states sampled on a lattice ``factor`` times finer.

    The Nyquist modes (|m| = N/2 on either axis) are dropped, so the result is
    one band-limited function sampled at spacing h/factor, and ``factor = 1``
    gives the same function on the coarse lattice. Site j of every lattice sits
    at x = j·h (the Landau gauge's A_y = Bx of ``lattice.seam_phases``), so
    fine site factor·j and coarse site j are the same point.
    """
    N = states.shape[-1]
    M = factor * N
    F = np.fft.fft2(states, axes=(-2, -1))
    m = np.rint(np.fft.fftfreq(N) * N).astype(int)
    keep = np.abs(m) < N // 2
    G = np.zeros(states.shape[:-2] + (M, M), dtype=complex)
    idx = m[keep] % M
    G[..., idx[:, None], idx[None, :]] = F[..., keep[:, None] & keep[None, :]].reshape(
        states.shape[:-2] + (keep.sum(), keep.sum()))
    return np.fft.ifft2(G, axes=(-2, -1)).real * factor**2


def seam_window(N: int) -> np.ndarray:
    """w(x) = sin⁴(πx/L) at the sites x = j·h of an N-site row: zero, with three derivatives, at the seam x = 0 ≡ L."""
    return np.sin(np.pi * np.arange(N) / N) ** 4


def h_start(quench: np.ndarray, factor: int, start: str) -> np.ndarray:
    """The h study's initial states on the lattice ``factor`` times finer than the preset's.

    ``periodic``: the band-limited interpolant of the quench state. With n_v ≠ 0
    the Landau gauge's seam twists the boundary condition at x = L, so a
    periodic ψ is, in the continuum, discontinuous there (its phase jumps by
    BLy along the seam): the lattices then converge to a state with a seam
    defect, at first order in h. ``windowed``: the same interpolant times
    :func:`seam_window`, a smooth section of the twisted bundle (zero at the
    seam), whose continuum limit is smooth: the solver's own error.
    """
    z = band_limited(quench, factor)
    if start == "windowed":
        z = z * seam_window(z.shape[-1])[None, None, None, :]
    return z


def observe(cfg, params: dict, initial: np.ndarray, threads: int) -> dict:
    """⟨ρᵢ⟩ (S, 2) and the radial S(k) of the three channels (S, 3, M) at the last snapshot."""
    res = tg.simulate(cfg, params, seed=0, initial=initial, threads=threads)
    psi = res.psi[:, -1]  # (S, 2, N, N)
    rho = (np.abs(psi) ** 2).mean(axis=(-2, -1))
    x = res.channels()[:, -1].astype(np.float64)  # (S, N, N, 3)
    k, S, _ = radial_structure_factor(np.moveaxis(x, -1, 1), cfg.L)  # (S, 3, M)
    return {"rho": rho, "S": S, "k": k, "channels": channel_names(cfg)}


def errors(run: dict, ref: dict) -> dict:
    """Relative errors of ``run`` against ``ref`` per sample: ⟨ρᵢ⟩ and S(k) on the shells both have."""
    M = min(run["S"].shape[-1], ref["S"].shape[-1])
    out = {f"rho{b + 1}": np.abs(run["rho"][:, b] - ref["rho"][:, b]) / ref["rho"][:, b] for b in range(2)}
    peak = ref["S"][..., :M].max(axis=-1)
    dS = np.abs(run["S"][..., :M] - ref["S"][..., :M]).max(axis=-1) / peak  # (S, 3)
    for c, name in enumerate(run["channels"]):
        out[f"S_{name}"] = dS[:, c]
    return {key: v.tolist() for key, v in out.items()}


def worst(err: dict) -> dict:
    return {key: float(np.max(v)) for key, v in err.items()}


def study(preset: str, a) -> dict:
    cfg0, prior = tg.load_preset(preset)
    n_max = int(prior["n_v"].high)
    params = sample_points(n_max, a.samples)
    N0, L = cfg0.N, cfg0.L
    base = cfg0.replace(dtype="float64", **({"lam": a.lam, "sigma": a.sigma} if a.lam is not None else {}))
    if a.lam is not None:
        cfg0 = cfg0.replace(lam=a.lam, sigma=a.sigma)
    start = np.stack([initial_state(0, k, N0) for k in range(a.samples)])  # the preset's quench states
    print(f"{preset}: N={N0}, L={L:g}, h={L / N0:g}, preset dt={cfg0.dt:g}, samples eta={params['eta'].round(2).tolist()} "
          f"n_v={params['n_v'].tolist()}", flush=True)
    dt_max = min(time_step_limit(cfg0.D, cfg0.alpha, cfg0.beta, float(e), 0.0, L / N0) for e in params["eta"])
    dts = tuple(dt for dt in DTS if allowed(base.replace(dt=dt), params))
    dt_h = a.dt_h
    while not allowed(base.replace(N=4 * N0, dt=dt_h), params):
        dt_h /= 2
    out = {"preset": preset, "lam": a.lam, "sigma": a.sigma if a.lam is not None else None, "dt_h": dt_h, "N": N0, "L": L, "h": L / N0, "dt_preset": cfg0.dt, "dt_max": dt_max,
           "params": {k: v.tolist() for k, v in params.items()}}
    # ---- dt at the preset's N
    t0 = time.time()
    runs = {dt: observe(base.replace(dt=dt), params, start, a.threads) for dt in dts}
    ref = runs[dts[0]]
    out["dt"] = [{"dt": dt, "worst": worst(errors(runs[dt], ref)), "per_sample": errors(runs[dt], ref)}
                 for dt in dts[1:]]
    for row in out["dt"]:
        print(f"  dt={row['dt']:.6g}: " + "  ".join(f"{k} {v:.2e}" for k, v in row["worst"].items()), flush=True)
    f32 = observe(cfg0.replace(dtype="float32"), params, start, a.threads)
    out["float32_vs_float64"] = worst(errors(f32, runs[cfg0.dt]))
    print("  float32 vs float64 at the preset dt: "
          + "  ".join(f"{k} {v:.2e}" for k, v in out["float32_vs_float64"].items()), flush=True)
    # sample-to-sample scatter of the observables, for scale
    out["rho_mean"] = ref["rho"].mean(axis=0).tolist()
    out["dt_seconds"] = time.time() - t0
    # ---- h at fixed L, one small dt, prolonged initial states
    t0 = time.time()
    levels = {}
    for f in (1, 2, 4):
        N = N0 * f
        levels[f] = observe(base.replace(N=N, dt=dt_h), params, h_start(start, f, a.h_start), a.threads)
        print(f"  h={L / N:g} (N={N}) done ({time.time() - t0:.0f} s)", flush=True)
    fine = levels[4]
    out["h"] = []
    for f in (1, 2):
        e = errors(levels[f], fine)
        out["h"].append({"N": N0 * f, "h": L / (N0 * f), "worst": worst(e), "per_sample": e})
        print(f"  h={L / (N0 * f):g} vs h={L / (4 * N0):g}: "
              + "  ".join(f"{k} {v:.2e}" for k, v in worst(e).items()), flush=True)
    # observed order from the three levels: |X(h) − X(h/2)| / |X(h/2) − X(h/4)| = 2^p
    e12, e24 = errors(levels[1], levels[2]), errors(levels[2], fine)
    out["h_order"] = {k: float(np.log2(np.median(np.array(e12[k]) / np.maximum(np.array(e24[k]), 1e-300))))
                      for k in e12}
    print("  observed order in h: " + "  ".join(f"{k} {v:.2f}" for k, v in out["h_order"].items()), flush=True)
    out["h_seconds"] = time.time() - t0
    out["S_k"] = {"k": levels[1]["k"].tolist(), "preset_dt": runs[cfg0.dt]["S"].mean(axis=0).tolist(),
                  "fine_h": fine["S"].mean(axis=0)[:, : len(levels[1]["k"])].tolist()}
    return out


def plot(d: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for st, mk in zip(d["studies"], ("o", "s")):
        dts = [r["dt"] for r in st["dt"]]
        for key, ls in (("rho1", "-"), ("S_rho1", "--"), ("S_curlJ", ":")):
            axes[0].loglog(dts, [r["worst"][key] for r in st["dt"]], mk + ls, ms=4, label=f"{st['preset']}: {key}")
        hs = [r["h"] for r in st["h"]]
        for key, ls in (("rho1", "-"), ("S_rho1", "--"), ("S_curlJ", ":")):
            axes[1].loglog(hs, [r["worst"][key] for r in st["h"]], mk + ls, ms=4, label=f"{st['preset']}: {key}")
    axes[0].axvline(0.001, color="grey", lw=0.8)
    axes[0].set_xlabel("dt (preset N); error vs dt = 0.00025")
    dt_h = d["studies"][0].get("dt_h", d["dt_h"])  # a screened run halves --dt-h until the finest lattice allows it
    lam = d["studies"][0].get("lam")
    axes[1].set_xlabel("h (fixed L, dt = %g, %s start); error vs h/4" % (dt_h, d.get("h_start", "")))
    if lam is not None:
        fig.suptitle("screened: λ = %g, σ = %g" % (lam, d["studies"][0]["sigma"]), fontsize=9)
    for ax in axes:
        ax.set_ylabel("largest relative error over the samples")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default="quick,paper")
    ap.add_argument("--samples", type=int, default=6, help="fixed (eta, n_v) samples per preset")
    ap.add_argument("--dt-h", type=float, default=0.00025, help="time step of the h study")
    ap.add_argument("--h-start", choices=("windowed", "periodic"), default="windowed",
                    help="initial states of the h study (see h_start)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--lam", type=float, default=None, help="London depth: run screened (default: the fixed field)")
    ap.add_argument("--sigma", type=float, default=2.0, help="relaxation rate of a, with --lam")
    ap.add_argument("--out", type=Path, default=Path("docs/figures/convergence/convergence.json"))
    ap.add_argument("--fig", type=Path, default=Path("docs/figures/convergence/convergence.png"))
    ap.add_argument("--plot-only", action="store_true")
    a = ap.parse_args(argv)
    if a.plot_only:
        d = json.loads(a.out.read_text())
    else:
        t0 = time.time()
        d = {"dt_h": a.dt_h, "h_start": a.h_start, "studies": [study(p, a) for p in a.presets.split(",")]}
        d["wall_s"] = time.time() - t0
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(d, indent=1))
        print(f"wrote {a.out} ({d['wall_s']:.0f} s)")
    a.fig.parent.mkdir(parents=True, exist_ok=True)
    plot(d, a.fig)
    print(f"wrote {a.fig}")


if __name__ == "__main__":
    main()
