"""The in-memory outcome of a Hessian analysis, :class:`HessianResult`, with its file and figure output."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...physics.config import SimConfig
from ..slq import SpectralDensity
from . import io
from .options import HessianOptions
from .relaxation import RelaxResult

log = logging.getLogger(__name__)

#: File name of the spectrum written by :meth:`HessianResult.save`.
SPECTRUM_FILE = "spectrum.h5"


@dataclass
class HessianResult:
    """Soft-mode spectrum of one state (output of :func:`~tdglnre.analysis.hessian.analyze`).

    The relaxation's outcome is kept whole in :attr:`relaxation`; its fields are
    also readable here (``F_before``, ``residual_after``, ``state``, …).
    """

    config: SimConfig
    """Configuration with the sample's η, n_v, ν filled in."""
    eigenvalues: np.ndarray
    """The ``n_eig`` lowest eigenvalues of ∂²F/∂z², ascending."""
    zero_mode_index: int
    """Index in ``eigenvalues`` of the global-phase mode (largest overlap with the generator)."""
    zero_mode_overlap: float
    """|⟨generator, eigenvector⟩| of that mode (1 = pure phase rotation)."""
    softest_index: int
    """Index of the softest mode other than the phase mode."""
    softest_vector: np.ndarray
    """Eigenvector of the softest mode, (4, N, N)."""
    relaxation: RelaxResult
    """Relaxation outcome (``message == "not relaxed"`` with identical before/after values when not relaxed)."""
    relaxed: bool
    """Whether relaxation was run."""
    lambda_min_est: float
    """Smallest Ritz value of a 30-step Lanczos run (spectral range estimate)."""
    lambda_max_est: float
    """Largest Ritz value of the same run: the spectrum's scale."""
    n_negative: int
    """Eigenvalues below −zero_tol·λ_max (saddle directions), among those computed."""
    counts_below: dict[str, int]
    """Number of computed eigenvalues below thresholds (relative to λ_max), e.g. {"1e-06": 3}."""
    wall_seconds: float
    options: HessianOptions = field(default_factory=HessianOptions)
    """The settings of the analysis."""
    timings: dict[str, float] = field(default_factory=dict)
    n_matvec: int = 0
    hvp_step: float = 0.0
    dos: SpectralDensity | None = None
    source: dict[str, Any] | None = None
    """Where the state came from (set by :func:`~tdglnre.analysis.hessian.hessian`), JSON-ready."""
    device: str = "cpu"
    """Where gradients and Hessian-vector products ran ("cpu" or "cuda"; ``options.device`` resolved)."""
    gpu_name: str = ""
    """The GPU's name when ``device == "cuda"``, else ""."""
    gauge_removed: int = 0
    """Local gauge directions projected out (N² − 1 with λ < ∞, docs/hessian.md §8; 0 at λ = ∞)."""

    # ------------------------------------------------------------ derived values
    @property
    def n_unknowns(self) -> int:
        """Number of real unknowns 4N²."""
        return int(self.relaxation.z.size)

    @property
    def state(self) -> np.ndarray:
        """The analysed (relaxed) state, (4, N, N) (ψ; with λ < ∞ (6, N, N): ψ then a_x, a_y)."""
        return self.relaxation.z.reshape(-1, self.config.N, self.config.N)

    @property
    def F_before(self) -> float:
        """Free energy before relaxation."""
        return self.relaxation.F_before

    @property
    def F_after(self) -> float:
        """Free energy of the analysed state."""
        return self.relaxation.F_after

    @property
    def grad_norm_before(self) -> float:
        """‖∇F‖₂ before relaxation."""
        return self.relaxation.grad_norm_before

    @property
    def grad_norm_after(self) -> float:
        """‖∇F‖₂ of the analysed state."""
        return self.relaxation.grad_norm_after

    @property
    def residual_before(self) -> float:
        """RMS GL residual ‖∇F‖₂ / (2h²√n) before relaxation."""
        return self.relaxation.residual_before

    @property
    def residual_after(self) -> float:
        """RMS GL residual of the analysed state."""
        return self.relaxation.residual_after

    @property
    def relax_converged(self) -> bool:
        """Whether the residual reached ``options.residual_tol`` (also when not relaxed)."""
        return bool(self.relaxation.converged)

    @property
    def hvp_method(self) -> str:
        """Hessian-vector product method (``options.hvp_method``)."""
        return self.options.hvp_method

    @property
    def eig_method(self) -> str:
        """Eigensolver (``options.eig_method``)."""
        return self.options.eig_method

    @property
    def zero_tol(self) -> float:
        """Relative zero threshold (``options.zero_tol``)."""
        return self.options.zero_tol

    @property
    def is_saddle(self) -> bool:
        """Whether any computed eigenvalue is negative (the state is a saddle point)."""
        return self.n_negative > 0

    @property
    def zero_mode_eigenvalue(self) -> float:
        """Eigenvalue of the phase mode."""
        return float(self.eigenvalues[self.zero_mode_index])

    @property
    def soft_eigenvalues(self) -> np.ndarray:
        """The computed eigenvalues without the phase mode."""
        return np.delete(self.eigenvalues, self.zero_mode_index)

    # ------------------------------------------------------------------ summary
    def summary(self) -> dict[str, Any]:
        """Plain-JSON summary (what ``tdglnre hessian --json`` prints)."""
        c = self.config
        r = self.relaxation
        d: dict[str, Any] = {
            "eigenvalues": [float(x) for x in self.eigenvalues],
            "zero_mode_index": self.zero_mode_index,
            "zero_mode_eigenvalue": self.zero_mode_eigenvalue,
            "zero_mode_overlap": self.zero_mode_overlap,
            "softest_index": self.softest_index,
            "softest_eigenvalue": float(self.eigenvalues[self.softest_index]),
            "F_before": r.F_before,
            "F_after": r.F_after,
            "grad_norm_before": r.grad_norm_before,
            "grad_norm_after": r.grad_norm_after,
            "residual_before": r.residual_before,
            "residual_after": r.residual_after,
            "relaxed": self.relaxed,
            "relax_converged": self.relax_converged,
            "relax_iterations": r.n_lbfgs,
            "newton_steps": r.n_newton,
            "relax_message": r.message,
            "n_unknowns": self.n_unknowns,
            "N": c.N,
            "eta": c.eta,
            "n_v": c.n_v,
            "nu": c.nu,
            "lambda_min_est": self.lambda_min_est,
            "lambda_max_est": self.lambda_max_est,
            "n_negative": self.n_negative,
            "is_saddle": self.is_saddle,
            "counts_below": dict(self.counts_below),
            "n_matvec": self.n_matvec,
            "hvp_method": self.hvp_method,
            "hvp_step": self.hvp_step,
            "eig_method": self.eig_method,
            "zero_tol": self.zero_tol,
            "wall_seconds": self.wall_seconds,
            "timings": dict(self.timings),
            "device": self.device,
            "gpu_name": self.gpu_name,
            "lam": c.lam if c.screened else None,  # None: λ = ∞ (strict JSON has no Infinity)
            "gauge_removed": self.gauge_removed,
        }
        if self.source is not None:
            d["source"] = dict(self.source)
        if self.dos is not None:
            d["dos"] = {"n_probes": self.dos.n_probes, "n_steps": self.dos.n_steps,
                        "edges": self.dos.edges.tolist(), "density": self.dos.density.tolist()}
        return d

    def report(self) -> str:
        """A few human-readable lines: energies, phase mode, softest mode, saddle check, lowest eigenvalues."""
        c, r, lam = self.config, self.relaxation, self.eigenvalues
        counts = ", ".join(f"{k}: {v}" for k, v in self.counts_below.items())
        saddle = (f"SADDLE: {self.n_negative} negative eigenvalue(s)" if self.is_saddle
                  else "no negative eigenvalues (local minimum among the computed modes)")
        return "\n".join([
            f"N={c.N} ({self.n_unknowns} unknowns), eta={c.eta:g}, n_v={c.n_v}, nu={c.nu:g}",
            f"F: {r.F_before:.10g} -> {r.F_after:.10g};  |grad F|: {r.grad_norm_before:.3e} -> "
            f"{r.grad_norm_after:.3e}" + ("" if r.converged else "  (relaxation did NOT reach the tolerance)"),
            f"phase zero mode: #{self.zero_mode_index}, lambda = {self.zero_mode_eigenvalue:.3e} "
            f"(overlap {self.zero_mode_overlap:.8f}); lambda_max ~ {self.lambda_max_est:.4g}",
            f"softest mode: lambda = {lam[self.softest_index]:.6g};  {saddle}",
            f"eigenvalues below threshold x lambda_max: {counts}",
            f"{len(lam)} lowest: " + " ".join(f"{x:.4g}" for x in lam[:12]) + (" ..." if len(lam) > 12 else ""),
        ])

    # ------------------------------------------------------------------- output
    def to_file(self, path: str | Path) -> Path:
        """Write the result to one HDF5 (``.h5``/``.hdf5``) or NPZ (``.npz``) file (layout in :mod:`.io`)."""
        summ = self.summary()
        summ.pop("dos", None)
        arrays = {"eigenvalues": self.eigenvalues, "softest_mode": self.softest_vector, "state": self.state}
        if self.dos is not None:
            summ["dos_probes"], summ["dos_steps"] = self.dos.n_probes, self.dos.n_steps
            arrays.update(dos_edges=self.dos.edges, dos_density=self.dos.density, dos_nodes=self.dos.nodes,
                          dos_weights=self.dos.weights)
        attrs = {"config": self.config.to_json(), "summary": json.dumps(summ),
                 "options": json.dumps(self.options.to_dict())}
        return io.write(path, arrays, attrs)

    def save(self, out_dir: str | Path) -> Path:
        """Write ``spectrum.h5`` into ``out_dir`` (created if needed); returns its path."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        return self.to_file(out / SPECTRUM_FILE)

    def plot(self, out_dir: str | Path | None = None) -> list[Any]:
        """Figures: lowest_eigenvalues.png, softest_mode.png and dos.png (with a DOS).

        With ``out_dir`` (created if needed) they are written there and their
        paths returned; without, the open figures are returned (inline in
        Jupyter). Uses :mod:`tdglnre.plots.hessian`, which leaves the
        matplotlib backend alone.
        """
        from ...plots.hessian import save_figures

        if out_dir is None:
            return save_figures(self, None)
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        return save_figures(self, out)

    @classmethod
    def from_file(cls, path: str | Path) -> "HessianResult":
        """Rebuild a result from a file written by :meth:`to_file` or :meth:`save` (e.g. to redraw figures)."""
        d = io.load(path)
        sm = d["summary"]
        dos = None
        if "dos_nodes" in d:
            dos = SpectralDensity(d["dos_nodes"], d["dos_weights"], d["dos_edges"], d["dos_density"],
                                  int(sm.get("dos_probes", 0)), int(sm.get("dos_steps", 0)))
        # files written before options were stored carry the methods in the summary only
        opts = d["options"] or {k: sm[k] for k in ("hvp_method", "eig_method", "zero_tol") if k in sm}
        relaxed = bool(sm["relaxed"])
        rr = RelaxResult(
            z=np.asarray(d["state"], dtype=np.float64).reshape(-1), F_before=sm["F_before"], F_after=sm["F_after"],
            grad_norm_before=sm["grad_norm_before"], grad_norm_after=sm["grad_norm_after"],
            residual_before=sm["residual_before"], residual_after=sm["residual_after"],
            converged=bool(sm["relax_converged"]), n_lbfgs=int(sm.get("relax_iterations", 0)),
            n_newton=int(sm.get("newton_steps", 0)),
            message=sm.get("relax_message", "" if relaxed else "not relaxed"),
        )
        return cls(
            config=d["config"], eigenvalues=d["eigenvalues"], zero_mode_index=int(sm["zero_mode_index"]),
            zero_mode_overlap=float(sm["zero_mode_overlap"]), softest_index=int(sm["softest_index"]),
            softest_vector=d["softest_mode"], relaxation=rr, relaxed=relaxed,
            lambda_min_est=float(sm.get("lambda_min_est", float("nan"))),
            lambda_max_est=float(sm["lambda_max_est"]), n_negative=int(sm["n_negative"]),
            counts_below=dict(sm["counts_below"]), wall_seconds=float(sm["wall_seconds"]),
            options=HessianOptions.from_dict(opts), timings=dict(sm.get("timings", {})),
            n_matvec=int(sm.get("n_matvec", 0)), hvp_step=float(sm.get("hvp_step", 0.0)), dos=dos,
            source=sm.get("source"), device=str(sm.get("device", "cpu")), gpu_name=str(sm.get("gpu_name", "")),
            gauge_removed=int(sm.get("gauge_removed", 0)),
        )


def save(result: HessianResult, path: str | Path) -> Path:
    """Write a result to one file: HDF5 (``.h5``/``.hdf5``) or NPZ (``.npz``); see :meth:`HessianResult.to_file`."""
    return result.to_file(path)


def load(path: str | Path) -> dict[str, Any]:
    """Read a file written by :func:`save` into a dict (arrays, ``config``, ``summary``, ``options``)."""
    return io.load(path)


def load_result(path: str | Path) -> HessianResult:
    """Rebuild a :class:`HessianResult` from a file written by :func:`save` (see :meth:`HessianResult.from_file`)."""
    return HessianResult.from_file(path)


__all__ = ["HessianResult", "SPECTRUM_FILE", "load", "load_result", "save"]
