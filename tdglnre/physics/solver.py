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
from typing import Callable, Iterator, Mapping, Sequence

import numba
import numpy as np

from ..errors import ConfigError
from . import kernels, screened
from ._memory import SHIFT_NEXT, check_distinct, staggered
from .config import SimConfig
from .options import CPU_BATCH, SolverOptions
from .plan import (RunPlan, SimulationResult, disorder_batch, disorder_field,  # noqa: F401  (re-exported)
                   divergence_error, plan_run, prepare_run, state_to_psi, thermal_amplitude)
from .rng import (SEED_MAX, STREAM_DISORDER, STREAM_INITIAL_STATE, STREAM_PRIOR,  # noqa: F401  (re-exported)
                  initial_state, sample_rng)

log = logging.getLogger(__name__)


def psi_to_state(psi1: np.ndarray, psi2: np.ndarray, dtype=np.float64) -> np.ndarray:
    """Complex bands → (4, N, N) real state (Re ψ1, Im ψ1, Re ψ2, Im ψ2)."""
    psi1 = np.asarray(psi1)
    psi2 = np.asarray(psi2)
    return np.stack([psi1.real, psi1.imag, psi2.real, psi2.imag]).astype(dtype)


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


def simulate(
    config: SimConfig,
    params: Mapping[str, Sequence[float] | float] | None = None,
    *,
    seed: int = 0,
    sample_indices: Sequence[int] | None = None,
    n_samples: int | None = None,
    initial: np.ndarray | None = None,
    batch_size: int | None = None,
    threads: int | None = None,
    check_every: int | None = None,
    progress: Callable[[int], None] | None = None,
    options: SolverOptions | None = None,
    want_psi: bool = True,
    want_channels: bool = False,
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
        Optional initial states (S, 4, N, N) instead of the random quench;
        with λ < ∞ (``config.lam``) also (S, 6, N, N), whose last two
        components are the link field a_x, a_y (else a starts at 0).
    batch_size
        Samples evolved per kernel call (default 64; bounds memory; does not change results).
    threads
        numba threads (default: numba's setting). Does not change results.
    check_every
        Steps between health checks (default 100: NaN/Inf, and from step
        ``kernels.GRACE_STEPS`` on a staggered density or step-to-step
        oscillation); every snapshot is checked too.
    progress
        Called with the number of samples finished after each batch.
    options
        The run's :class:`~tdglnre.physics.options.SolverOptions` (default:
        :meth:`SolverOptions.from_config`); ``batch_size``, ``threads`` and
        ``check_every`` given as keywords replace its values. Its dt,
        snapshot times and dtype are the run's (the result's config carries them).
    want_psi, want_channels
        As :func:`tdglnre.physics.backends.simulate`: ``want_channels`` fills
        the result's ``x`` (from ψ, on the host); ψ is always kept on the CPU.

    Returns
    -------
    SimulationResult
        With λ < ∞ (the screened kernel, :mod:`.screened`) it also holds
        ``a`` (S, T, 2, N, N) and its channels add B.

    Raises
    ------
    ConfigError
        Invalid configuration, options or parameters.
    DivergenceError
        A sample produced NaN/Inf or a grid-scale oscillation (names the
        sample, its parameters, the step and the reason).
    """
    plan = plan_run(config, params, options=options, seed=seed, sample_indices=sample_indices,
                    n_samples=n_samples, initial=initial, batch_size=batch_size, threads=threads,
                    check_every=check_every)
    return run_plan(plan, progress, want_psi=want_psi, want_channels=want_channels)


def run_plan(plan: RunPlan, progress: Callable[[int], None] | None = None, *, want_psi: bool = True,
             want_channels: bool = False) -> SimulationResult:
    """Run a :class:`~.plan.RunPlan` on the CPU: batches of ``options.batch_size`` samples over numba threads.

    ψ is always kept (``want_psi`` is the CUDA driver's option); ``want_channels`` also fills ``x`` from it.
    """
    opts = plan.options
    N, S, T = plan.config.N, plan.S, plan.snap.shape[0]
    ctype = np.complex128 if plan.dtype == np.float64 else np.complex64
    psi = np.empty((S, T, 2, N, N), dtype=ctype)
    a = np.empty((S, T, 2, N, N), dtype=plan.dtype) if plan.screened else None
    if any(plan.nuisance_on):
        log.debug("simulate: nuisance physics on (disorder: %s, thermal noise: %s)", *plan.nuisance_on)
    with numba_threads(opts.threads):
        for start, stop in plan.batches(opts.batch_size or CPU_BATCH):
            out = _run_batch(plan, start, stop)
            psi[start:stop] = state_to_psi(out[:, :, :4])
            if a is not None:
                a[start:stop] = out[:, :, screened.AX:]
            if progress is not None:
                progress(stop - start)
            log.debug("simulated samples %d..%d of %d", start, stop - 1, S)
    res = plan.result(psi, a=a)
    if want_channels:
        res.x = res.channels()
    return res


def _run_batch(plan: RunPlan, start: int, stop: int) -> np.ndarray:
    """Snapshots (b, T, 4 or 6, N, N) of rows start..stop-1: one call of the Euler kernel (screened: ψ and a)."""
    states = plan.initial_states(start, stop)
    b = stop - start
    work = staggered(states.size, states, SHIFT_NEXT).reshape(states.shape)  # against 4K aliasing
    out = np.empty((b, plan.snap.shape[0]) + states.shape[1:], dtype=states.dtype)
    status = np.full(b, -1, dtype=np.int64)
    reason = np.zeros(b, dtype=np.int64)
    value = np.zeros(b, dtype=np.float64)
    extra = plan.nuisance(start, stop) or ()
    run = (screened._evolve_batch, plan.bg[start:stop]) if plan.screened else (
        kernels._evolve_batch, plan.ly[start:stop], plan.lx[start:stop])
    run[0](states, work, plan.co[start:stop], *run[1:], plan.snap, out, status, plan.options.check_every,
           kernels.STAGGERED_MAX, kernels.CHANGE_MAX, kernels.GRACE_STEPS, reason, value, *extra)
    bad = np.flatnonzero(status >= 0)
    if bad.size:
        r = int(bad[0])
        raise plan.divergence(start + r, int(status[r]), int(reason[r]), float(value[r]))
    return out


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
        if cfg.screened:  # F and ∂F/∂z here are those of ψ alone, at the fixed field
            raise ConfigError(f"EnergyModel covers the fixed field only (lam=inf); for lam={cfg.lam:g} use "
                              "tdglnre.physics.screened_model.ScreenedEnergyModel (or energy_model(config))")
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
        check_distinct(res, st)
        self._apply(st, res, self._grad_co, self._grad_dco)
        return res.reshape(np.shape(z))

    def rhs(self, z: np.ndarray) -> np.ndarray:
        """Time derivative ∂_tψ as a real state (4, N, N)."""
        res = np.empty(self.shape)
        self._apply(self._as_state(z), res, self._rhs_co, self._rhs_dco)
        return res
