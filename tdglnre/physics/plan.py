"""The run plan both backends consume: one validation and one preparation per run (issue 18).

:func:`plan_run` checks a simulation call's arguments, builds its
:class:`~.options.SolverOptions` and returns a :class:`RunPlan`: the run's
config (dt, snapshot times and dtype those of the options), the per-sample
parameters (each sample validated once, here), the global sample indices and
initial states, the Euler coefficients and link tables, the nuisance inputs
(disorder coefficients, thermal amplitudes and noise keys; the disorder field
ξ per batch), the snapshot steps and check points, and how a divergence is
reported (:meth:`RunPlan.divergence`). The CPU solver
(:func:`tdglnre.physics.solver.run_plan`) and the CUDA driver
(:func:`tdglnre.physics.cuda.run.run_plan`) only execute it, so a new term of
the update adds its inputs here once for both.

Sample k's initial state, disorder field and thermal noise depend only on
(seed, k) (:mod:`.rng`), never on batch composition or device.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import ConfigError, DivergenceError
from . import kernels, screened
from ._args import check_run_arguments
from .config import SimConfig, as_sample_arrays, disorder_clip
from .lattice import gaussian_filter_field
from .options import SolverOptions
from .rng import STREAM_DISORDER, initial_state, sample_rng
from .screening import field_coefficients


def disorder_field(seed: int, index: int, config: SimConfig) -> np.ndarray:
    """Sample ``index``'s pinning-disorder field ξ(r) (N, N) float64.

    White noise from ``SeedSequence([seed, 2, index])`` filtered to the
    correlation length ``config.disorder_length`` and unit variance
    (:func:`.lattice.gaussian_filter_field`), then clipped to ±ξ_max
    (:func:`.config.disorder_clip`, reached with chance <= 1e-9 per sample)
    so that the time-step bound holds at every site. It does not depend on δ:
    samples differing only in δ see the same landscape, scaled.
    """
    white = sample_rng(seed, index, STREAM_DISORDER).standard_normal((config.N, config.N))
    xi = gaussian_filter_field(white, config.h, config.disorder_length)
    x = disorder_clip(config.N)
    return np.clip(xi, -x, x)


def disorder_batch(seed: int, indices: np.ndarray, delta: np.ndarray, config: SimConfig,
                   dtype: Any = np.float64) -> np.ndarray:
    """The disorder fields ξ (b, N, N) of a batch: sample r's field where δ_r ≠ 0, zeros elsewhere."""
    N = config.N
    xi = np.zeros((len(indices), N, N), dtype=dtype)
    for r, (k, d) in enumerate(zip(indices, delta)):
        if d != 0.0:
            xi[r] = disorder_field(seed, int(k), config)
    return xi


def thermal_amplitude(T: np.ndarray | float, dt: float, h: float) -> np.ndarray:
    """Standard deviation sqrt(T·dt)/h of the thermal kick of each real component per Euler step.

    Fluctuation–dissipation for ∂_t z = −(1/2h²) ∂F/∂z (docs/physics.md,
    "Thermal noise") makes exp(−F/T) the stationary distribution.
    """
    return np.sqrt(np.asarray(T, dtype=np.float64) * dt) / h


def state_to_psi(state: np.ndarray) -> np.ndarray:
    """(…, 4, N, N) real → (…, 2, N, N) complex (band 1, band 2)."""
    re = state[..., 0::2, :, :]
    im = state[..., 1::2, :, :]
    return re + 1j * im


def _reason_text(code: int, value: float) -> str:
    """Human-readable failure reason of the kernel's health check."""
    if code == kernels.STAGGERED:
        return (f"grid-scale checkerboard: staggered density ratio {value:.3g} > {kernels.STAGGERED_MAX:g}; "
                "the time step is unstable")
    if code == kernels.OSCILLATION:
        return (f"step-to-step oscillation: relative change {value:.3g} > {kernels.CHANGE_MAX:g} per step; "
                "the time step is unstable")
    return DivergenceError.NONFINITE


def divergence_error(pars: Mapping[str, np.ndarray], idx: np.ndarray, k: int, step: int, code: int,
                     value: float) -> DivergenceError:
    """The :class:`DivergenceError` of run row ``k`` (both backends report a failed sample with it).

    Names the global sample index, the step, the sample's η, n_v, ν (and T, δ
    where nonzero) and the health check's reason (:func:`_reason_text`).
    """
    bad_pars = {"eta": pars["eta"][k], "n_v": pars["n_v"][k], "nu": pars["nu"][k]}
    bad_pars.update({n: pars[n][k] for n in ("T", "delta") if pars[n][k] != 0.0})
    if "lam" in pars:
        bad_pars["lam"] = pars["lam"][k]
    return DivergenceError(int(idx[k]), int(step), bad_pars, _reason_text(int(code), float(value)))


@dataclass
class SimulationResult:
    """Snapshots of a batch of quenches."""

    config: SimConfig
    """The validated configuration."""
    times: np.ndarray
    """Snapshot times (T,)."""
    psi: np.ndarray | None
    """Order parameters (S, T, 2, N, N), complex; [..., 0, :, :] is band 1 (None where a run kept only ``x``)."""
    params: dict[str, np.ndarray]
    """Per-sample eta, n_v, nu, T, delta (S,)."""
    sample_indices: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    """Global sample index k of each row (its initial state depends on (seed, k))."""
    x: np.ndarray | None = None
    """Network channels (S, T, N, N, C) float32 where the run computed them (on the device for CUDA)."""
    a: np.ndarray | None = None
    """Vector potential (S, T, 2, N, N) real, [..., 0, :, :] = a_x, [..., 1, :, :] = a_y (λ < ∞ only, else None)."""

    def channels(self) -> np.ndarray:
        """Network channels (S, T, N, N, C) float32: [ρ1, ρ2, curl J], and B where λ < ∞ (``channel_names``)."""
        if self.x is not None:
            return self.x
        from .observables import channel_names, network_channels

        S, T = self.psi.shape[:2]
        C = len(channel_names(self.config))
        out = np.empty((S, T, self.config.N, self.config.N, C), dtype=np.float32)
        for s in range(S):
            for t in range(T):
                out[s, t] = network_channels(
                    self.psi[s, t, 0], self.psi[s, t, 1], self.config,
                    n_v=int(self.params["n_v"][s]), nu=float(self.params["nu"][s]),
                    a=None if self.a is None else self.a[s, t],
                )
        return out


@dataclass(frozen=True, eq=False)
class RunPlan:
    """Everything a backend needs to run a batch of quenches (see the module docstring)."""

    config: SimConfig
    options: SolverOptions
    seed: int
    pars: dict[str, np.ndarray]
    idx: np.ndarray
    initial: np.ndarray | None
    co: np.ndarray
    ly: np.ndarray
    lx: np.ndarray
    dco: np.ndarray | None
    amp: np.ndarray | None
    keys: np.ndarray | None
    bg: np.ndarray | None = None
    """Background links e^{−iθ⁰} (S, 4, N) of the screened kernel (λ < ∞, ``screened.background_links``), else None."""

    @property
    def screened(self) -> bool:
        """Whether the run evolves the vector potential too (λ < ∞: :mod:`.screened`'s kernel)."""
        return self.bg is not None

    @property
    def S(self) -> int:
        return int(self.idx.shape[0])

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.options.dtype)

    @property
    def snap(self) -> np.ndarray:
        """Snapshot steps (T,) int64."""
        return np.asarray(self.options.snapshot_steps, dtype=np.int64)

    @property
    def times(self) -> np.ndarray:
        return np.asarray(self.options.snapshot_times, dtype=np.float64)

    @property
    def nuisance_on(self) -> tuple[bool, bool]:
        """(pinning disorder, thermal noise): each variant of the kernels is compiled separately."""
        return self.dco is not None, self.amp is not None

    def batches(self, batch_size: int) -> list[tuple[int, int]]:
        return [(s, min(self.S, s + batch_size)) for s in range(0, self.S, batch_size)]

    def checkpoints(self) -> list[int]:
        """Steps at which a sample is checked: multiples of check_every and the snapshots (all > 0)."""
        snap, every = self.snap, self.options.check_every
        return sorted(set(range(every, int(snap.max()) + 1, every)) | {int(s) for s in snap})

    def initial_states(self, start: int, stop: int) -> np.ndarray:
        """Initial states (b, 4, N, N) of rows start..stop-1 in the working dtype; (b, 6, N, N) when screened.

        A screened run starts from a = 0 (the applied uniform field) unless its initial states hold a.
        """
        N = self.config.N
        states = np.zeros((stop - start, screened.N_COMP if self.screened else 4, N, N), dtype=self.dtype)
        for r in range(stop - start):
            init = (self.initial[start + r] if self.initial is not None
                    else initial_state(self.seed, self.idx[start + r], N))
            states[r, :init.shape[0]] = init
        return states

    def nuisance(self, start: int, stop: int) -> tuple | None:
        """(ξ, dco, amp, keys) of rows start..stop-1 (None entries for a feature that is off), or None if clean."""
        disordered, thermal = self.nuisance_on
        if not (disordered or thermal):
            return None
        sl = slice(start, stop)
        xi = disorder_batch(self.seed, self.idx[sl], self.pars["delta"][sl], self.config, self.dtype) \
            if disordered else None
        return (xi, None if self.dco is None else self.dco[sl], None if self.amp is None else self.amp[sl],
                None if self.keys is None else self.keys[sl])

    def divergence(self, row: int, step: int, code: int, value: float) -> DivergenceError:
        """The error a backend raises for run row ``row`` failing its health check at ``step``."""
        return divergence_error(self.pars, self.idx, row, step, code, value)

    def result(self, psi: np.ndarray | None, x: np.ndarray | None = None,
               a: np.ndarray | None = None) -> SimulationResult:
        return SimulationResult(config=self.config, times=self.times, psi=psi, params=self.pars,
                                sample_indices=self.idx, x=x, a=a)


def run_config(config: SimConfig, options: SolverOptions) -> SimConfig:
    """``config`` with the options' dt, snapshot times and dtype (itself when they agree, keeping its check)."""
    fields = options.physics_fields()
    if all(getattr(config, k) == v for k, v in fields.items()):
        return config
    return config.replace(**fields)


def prepare_run(config: SimConfig, params: Mapping[str, Sequence[float] | float] | None, *, seed: int,
                sample_indices: Sequence[int] | None, n_samples: int | None, initial: np.ndarray | None,
                options: SolverOptions) -> RunPlan:
    """Validate a run once (config, every sample, initial states) and prepare its inputs for either backend."""
    config = run_config(config, options).validate()
    if sample_indices is not None:
        idx = np.asarray(sample_indices, dtype=np.int64).reshape(-1)
        if n_samples is not None and n_samples != idx.shape[0]:
            raise ConfigError(f"n_samples={n_samples} but {idx.shape[0]} sample indices were given")
        n_samples = idx.shape[0]
    pars = as_sample_arrays(config, dict(params or {}), n_samples)
    S = pars["eta"].shape[0]
    if sample_indices is None:
        idx = np.arange(S, dtype=np.int64)
    if initial is not None:
        initial = np.asarray(initial, dtype=np.float64)
        ok = [(S, m, config.N, config.N) for m in ((4, screened.N_COMP) if config.screened else (4,))]
        if initial.shape not in ok:
            raise ConfigError(f"initial states must have shape {' or '.join(map(str, ok))}, got {initial.shape}"
                              + ("" if config.screened else " (a vector potential needs lam < inf)"))
    dtype = np.dtype(options.dtype)
    bg = None
    if config.screened:
        c = field_coefficients(pars.get("lam", config.lam), config.D, config.alpha, config.beta, pars["eta"], pars["nu"])
        co = screened.coefficients(config.D, config.alpha, config.beta, config.h, config.L, pars["eta"],
                                   pars["nu"], pars["n_v"], c, scale=options.dt, keep=1.0,
                                   scale_a=options.dt / config.sigma, sigma=config.sigma, dtype=dtype)
        bg = screened.background_links(config.N, config.L, pars["n_v"])
    else:
        co = kernels.coefficients(config.D, config.alpha, config.beta, config.h, pars["eta"], pars["nu"],
                                  scale=options.dt, keep=1.0, dtype=dtype)
    ly, lx = kernels.link_tables(config.N, config.L, pars["n_v"], dtype=dtype)
    disordered = bool(np.any(pars["delta"] != 0.0))
    thermal = bool(np.any(pars["T"] > 0.0))
    dco = kernels.disorder_coefficients(config.alpha, pars["delta"], scale=options.dt, dtype=dtype) \
        if disordered else None
    amp = thermal_amplitude(pars["T"], options.dt, config.h) if thermal else None
    keys = np.array([kernels.noise_key(seed, int(k)) for k in idx], dtype=np.uint64) if thermal else None
    return RunPlan(config, options, int(seed), pars, idx, initial, co, ly, lx, dco, amp, keys, bg)


def solver_options(config: SimConfig, options: SolverOptions | None, **run: Any) -> SolverOptions:
    """The options of a call: ``options`` (or the config's) with the run keywords given (not None) applied."""
    given = {k: v for k, v in run.items() if v is not None}
    if options is None:
        return SolverOptions.from_config(config, **given)
    if not isinstance(options, SolverOptions):
        raise ConfigError(f"`options` must be a SolverOptions, got {type(options).__name__}")
    return options.replace(**given) if given else options


def plan_run(config: Any, params: Any = None, *, options: SolverOptions | None = None, seed: Any = 0,
             sample_indices: Sequence[int] | None = None, n_samples: Any = None, initial: Any = None,
             **run: Any) -> RunPlan:
    """Check a simulation call's arguments, build its options (``run``: solver keywords) and plan it."""
    check_run_arguments(config, params, seed=seed, n_samples=n_samples, **run)
    options = solver_options(config, options, **run)
    return prepare_run(config, params, seed=seed, sample_indices=sample_indices, n_samples=n_samples,
                       initial=initial, options=options)
