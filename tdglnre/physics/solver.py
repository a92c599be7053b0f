"""Public solver API: quench simulations, energy and gradient.

* :func:`simulate` runs a batch of quenches (parallel over samples) and returns
  snapshots of ψ1, ψ2.
* :class:`EnergyModel` evaluates F, ∂F/∂z and ∂_tψ of one state with the same
  numba kernel as the dynamics (used by tests and the Hessian analysis).

Sample k's initial state depends only on (seed, k) — see :func:`sample_rng` —
so results never depend on batch composition or thread count. The same holds
for the nuisance physics (docs/physics.md, "Nuisance physics"): sample k's
pinning-disorder field comes from (seed, k) (:func:`disorder_field`) and its
thermal noise from a counter-based stream keyed by (seed, k, step, site)
evaluated inside the kernel (:func:`thermal_amplitude`, ``kernels.noise_key``).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence

import numba
import numpy as np

from ..errors import ConfigError, DivergenceError
from . import kernels
from ._args import check_run_arguments
from .config import SimConfig, as_sample_arrays, disorder_clip
from .lattice import gaussian_filter_field
from .rng import (SEED_MAX, STREAM_DISORDER, STREAM_INITIAL_STATE, STREAM_PRIOR,  # noqa: F401  (re-exported)
                  initial_state, sample_rng)

log = logging.getLogger(__name__)


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


def psi_to_state(psi1: np.ndarray, psi2: np.ndarray, dtype=np.float64) -> np.ndarray:
    """Complex bands → (4, N, N) real state (Re ψ1, Im ψ1, Re ψ2, Im ψ2)."""
    psi1 = np.asarray(psi1)
    psi2 = np.asarray(psi2)
    return np.stack([psi1.real, psi1.imag, psi2.real, psi2.imag]).astype(dtype)


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
    return DivergenceError(int(idx[k]), int(step), bad_pars, _reason_text(int(code), float(value)))


@contextlib.contextmanager
def numba_threads(n: int | None) -> Iterator[None]:
    """Temporarily set numba's thread count (None: leave as is)."""
    if n is None:
        yield
        return
    if not 1 <= n <= numba.config.NUMBA_NUM_THREADS:
        raise ConfigError(f"threads must be in 1..{numba.config.NUMBA_NUM_THREADS}, got {n}")
    old = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        yield
    finally:
        numba.set_num_threads(old)


@dataclass
class SimulationResult:
    """Snapshots of a batch of quenches."""

    config: SimConfig
    """The validated configuration."""
    times: np.ndarray
    """Snapshot times (T,)."""
    psi: np.ndarray
    """Order parameters (S, T, 2, N, N), complex; [..., 0, :, :] is band 1."""
    params: dict[str, np.ndarray]
    """Per-sample eta, n_v, nu, T, delta (S,)."""
    sample_indices: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    """Global sample index k of each row (its initial state depends on (seed, k))."""

    def channels(self) -> np.ndarray:
        """Network channels [ρ1, ρ2, curl J] as float32 (S, T, N, N, 3)."""
        from .observables import network_channels

        S, T = self.psi.shape[:2]
        out = np.empty((S, T, self.config.N, self.config.N, 3), dtype=np.float32)
        for s in range(S):
            for t in range(T):
                out[s, t] = network_channels(
                    self.psi[s, t, 0], self.psi[s, t, 1], self.config,
                    n_v=int(self.params["n_v"][s]), nu=float(self.params["nu"][s]),
                )
        return out


def prepare_run(config: SimConfig, params: Mapping[str, Sequence[float] | float] | None,
                sample_indices: Sequence[int] | None, n_samples: int | None, initial: np.ndarray | None,
                check_every: int) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray | None]:
    """Validate a run's arguments (shared by the CPU and CUDA backends).

    Returns the per-sample parameter arrays, the global sample indices and the
    initial states as float64 (or None for the random quench).
    """
    config.validate()
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
        if initial.shape != (S, 4, config.N, config.N):
            raise ConfigError(f"initial states must have shape {(S, 4, config.N, config.N)}, got {initial.shape}")
    if check_every < 1:
        raise ConfigError(f"check_every must be >= 1, got {check_every}")
    return pars, idx, initial


def simulate(
    config: SimConfig,
    params: Mapping[str, Sequence[float] | float] | None = None,
    *,
    seed: int = 0,
    sample_indices: Sequence[int] | None = None,
    n_samples: int | None = None,
    initial: np.ndarray | None = None,
    batch_size: int = 64,
    threads: int | None = None,
    check_every: int = 100,
    progress: Callable[[int], None] | None = None,
) -> SimulationResult:
    """Simulate quenches of the two-band TDGL equations.

    Parameters
    ----------
    config
        Simulation settings; validated here.
    params
        Per-sample ``eta``, ``n_v``, ``nu``, ``T`` (temperature of the
        thermal noise) and ``delta`` (pinning-disorder strength), arrays of
        length S or scalars; missing ones take the config's value.
    seed
        Run seed. Sample k's initial state, disorder field and thermal noise
        depend only on (seed, k).
    sample_indices
        Global index k of each sample (default 0..S-1).
    n_samples
        Number of samples when all parameters are scalars.
    initial
        Optional initial states (S, 4, N, N) instead of the random quench.
    batch_size
        Samples evolved per kernel call (bounds memory; does not change results).
    threads
        numba threads (default: numba's setting). Does not change results.
    check_every
        Steps between health checks (NaN/Inf, and from step
        ``kernels.GRACE_STEPS`` on a staggered density or step-to-step
        oscillation); every snapshot is checked too.
    progress
        Called with the number of samples finished after each batch.

    Returns
    -------
    SimulationResult

    Raises
    ------
    ConfigError
        Invalid configuration or parameters.
    DivergenceError
        A sample produced NaN/Inf or a grid-scale oscillation (names the
        sample, its parameters, the step and the reason).
    """
    check_run_arguments(config, params, seed=seed, n_samples=n_samples, batch_size=batch_size, threads=threads,
                        check_every=check_every)
    pars, idx, initial = prepare_run(config, params, sample_indices, n_samples, initial, check_every)
    S = idx.shape[0]
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")

    dtype = np.dtype(config.dtype)
    N = config.N
    snap = np.asarray(config.snapshot_steps, dtype=np.int64)
    T = snap.shape[0]
    co = kernels.coefficients(config.D, config.alpha, config.beta, config.h, pars["eta"], pars["nu"],
                              scale=config.dt, keep=1.0, dtype=dtype)
    ly, lx = kernels.link_tables(N, config.L, pars["n_v"], dtype=dtype)
    ctype = np.complex128 if dtype == np.float64 else np.complex64
    psi = np.empty((S, T, 2, N, N), dtype=ctype)
    # nuisance physics: each variant is compiled separately, so clean runs use the clean kernel
    disordered = bool(np.any(pars["delta"] != 0.0))
    thermal = bool(np.any(pars["T"] > 0.0))
    dco = kernels.disorder_coefficients(config.alpha, pars["delta"], scale=config.dt, dtype=dtype) \
        if disordered else None
    amp = thermal_amplitude(pars["T"], config.dt, config.h) if thermal else None
    keys = np.array([kernels.noise_key(seed, int(k)) for k in idx], dtype=np.uint64) if thermal else None
    if disordered or thermal:
        log.debug("simulate: nuisance physics on (disorder: %s, thermal noise: %s)", disordered, thermal)

    with numba_threads(threads):
        for start in range(0, S, batch_size):
            stop = min(S, start + batch_size)
            b = stop - start
            states = np.empty((b, 4, N, N), dtype=dtype)
            for r in range(b):
                states[r] = initial[start + r] if initial is not None else initial_state(seed, idx[start + r], N)
            work = np.empty_like(states)
            out = np.empty((b, T, 4, N, N), dtype=dtype)
            status = np.full(b, -1, dtype=np.int64)
            reason = np.zeros(b, dtype=np.int64)
            value = np.zeros(b, dtype=np.float64)
            extra: tuple = ()
            if disordered or thermal:
                xi = disorder_batch(seed, idx[start:stop], pars["delta"][start:stop], config, dtype) \
                    if disordered else None
                extra = (xi, None if dco is None else dco[start:stop],
                         None if amp is None else amp[start:stop], None if keys is None else keys[start:stop])
            kernels._evolve_batch(states, work, co[start:stop], ly[start:stop], lx[start:stop],
                                  snap, out, status, check_every, kernels.STAGGERED_MAX, kernels.CHANGE_MAX,
                                  kernels.GRACE_STEPS, reason, value, *extra)
            bad = np.flatnonzero(status >= 0)
            if bad.size:
                r = int(bad[0])
                raise divergence_error(pars, idx, start + r, int(status[r]), int(reason[r]), float(value[r]))
            psi[start:stop] = state_to_psi(out)
            if progress is not None:
                progress(b)
            log.debug("simulated samples %d..%d of %d", start, stop - 1, S)
    times = np.asarray(config.snapshot_times, dtype=np.float64)
    return SimulationResult(config=config, times=times, psi=psi, params=pars, sample_indices=idx)


class EnergyModel:
    """F, ∂F/∂z and ∂_tψ of one sample, from the dynamics' own kernel.

    Coordinates are real states (4, N, N) = (Re ψ1, Im ψ1, Re ψ2, Im ψ2),
    float64, or their flattening (4N²,).

    With pinning disorder (``delta`` ≠ 0, or the config's δ) the landscape is
    sample ``index``'s of run ``seed`` (:func:`disorder_field`), or ``xi`` if
    given — one of the two is required, since F depends on the sample's
    landscape; energy and gradient both include α_b·δ·ξ(r)·|ψ_b|². Thermal
    noise is not part of F (T only enters the dynamics).
    """

    def __init__(self, config: SimConfig, *, eta: float | None = None, n_v: int | None = None,
                 nu: float | None = None, delta: float | None = None, seed: int | None = None,
                 index: int | None = None, xi: np.ndarray | None = None):
        cfg = config.replace(
            eta=config.eta if eta is None else float(eta),
            n_v=config.n_v if n_v is None else n_v,
            nu=config.nu if nu is None else float(nu),
            delta=config.delta if delta is None else float(delta),
            dtype="float64",
        )
        cfg.validate()
        self.config = cfg
        self.N = cfg.N
        self.shape = (4, cfg.N, cfg.N)
        self.size = 4 * cfg.N * cfg.N
        h = cfg.h
        self._grad_co = kernels.coefficients(cfg.D, cfg.alpha, cfg.beta, h, cfg.eta, cfg.nu,
                                             scale=-2.0 * h * h, keep=0.0)[0]
        self._rhs_co = kernels.coefficients(cfg.D, cfg.alpha, cfg.beta, h, cfg.eta, cfg.nu,
                                            scale=1.0, keep=0.0)[0]
        ly, lx = kernels.link_tables(cfg.N, cfg.L, np.array([cfg.n_v]))
        self._ly, self._lx = ly[0], lx[0]
        #: disorder field ξ (N, N) or None for a clean sample
        self.xi: np.ndarray | None = None
        self._grad_dco = self._rhs_dco = None
        if cfg.delta != 0.0:
            if xi is None:
                if seed is None or index is None:
                    raise ConfigError(f"the energy with pinning disorder (delta={cfg.delta:g}) depends on the "
                                      "sample's landscape: give its run seed and sample index, or xi")
                xi = disorder_field(seed, index, cfg)
            xi = np.ascontiguousarray(xi, dtype=np.float64)
            if xi.shape != (cfg.N, cfg.N):
                raise ConfigError(f"disorder field must have shape {(cfg.N, cfg.N)}, got {xi.shape}")
            self.xi = xi
            self._grad_dco = kernels.disorder_coefficients(cfg.alpha, cfg.delta, scale=-2.0 * h * h)[0]
            self._rhs_dco = kernels.disorder_coefficients(cfg.alpha, cfg.delta, scale=1.0)[0]

    def _as_state(self, z: np.ndarray) -> np.ndarray:
        z = np.ascontiguousarray(z, dtype=np.float64)
        if z.size != self.size:
            raise ConfigError(f"state has {z.size} values, expected 4*N^2 = {self.size}")
        return z.reshape(self.shape)

    def energy(self, z: np.ndarray) -> float:
        """Free energy F(z)."""
        c = self.config
        args = (self._as_state(z), c.D[0], c.D[1], c.alpha[0], c.alpha[1],
                c.beta[0], c.beta[1], c.eta, c.nu, c.h, self._ly, self._lx)
        if self.xi is None:
            return float(kernels._energy(*args))
        return float(kernels._energy(*args, self.xi, c.delta))

    def _apply(self, st: np.ndarray, res: np.ndarray, co: np.ndarray, dco: np.ndarray | None) -> None:
        if self.xi is None:
            kernels._sweep(st, res, co, self._ly, self._lx)
        else:
            kernels._sweep(st, res, co, self._ly, self._lx, self.xi, dco)

    def gradient(self, z: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Real gradient ∂F/∂z with the shape of ``z`` (= −2h² · ∂_tψ)."""
        st = self._as_state(z)
        res = np.empty(self.shape) if out is None else out.reshape(self.shape)
        self._apply(st, res, self._grad_co, self._grad_dco)
        return res.reshape(np.shape(z))

    def rhs(self, z: np.ndarray) -> np.ndarray:
        """Time derivative ∂_tψ as a real state (4, N, N)."""
        res = np.empty(self.shape)
        self._apply(self._as_state(z), res, self._rhs_co, self._rhs_dco)
        return res
