"""The analysis pipeline: relax → lowest eigenpairs → global-phase zero mode → optional SLQ density of states.

:func:`analyze` works on a state in memory; :func:`hessian` first resolves a
state source (:mod:`.states`). Both return a :class:`~.result.HessianResult`
and write nothing: call its :meth:`~.result.HessianResult.save` and
:meth:`~.result.HessianResult.plot`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from ...errors import ConfigError
from ...physics.config import SimConfig
from ...physics.screened_model import energy_model
from .gauge import ProjectedHessian
from .operator import Hessian, spectral_scale
from .options import HessianOptions, Progress
from .relaxation import relax as relax_state
from .relaxation import unrelaxed
from .result import HessianResult
from .spectrum import THRESHOLDS, density_of_states, identify_zero_mode, lowest_eigenpairs
from .states import StateSource, as_state

log = logging.getLogger(__name__)

#: Largest number of unknowns for which a screened analysis asked for shift-invert uses "dense" (N = 36: 7776).
DENSE_MAX = 8192


def _options(options: HessianOptions | None, overrides: dict[str, Any]) -> HessianOptions:
    if options is None:
        options = HessianOptions()
    elif not isinstance(options, HessianOptions):
        raise ConfigError(f"options must be a HessianOptions, got {type(options).__name__}")
    return options.replace(**overrides) if overrides else options


def analyze(
    config: SimConfig,
    state: np.ndarray,
    options: HessianOptions | None = None,
    *,
    eta: float | None = None,
    n_v: int | None = None,
    nu: float | None = None,
    progress: Progress | None = None,
    delta: float | None = None,
    seed: int | None = None,
    index: int | None = None,
    **overrides: Any,
) -> HessianResult:
    """Soft-mode spectrum of the GL free-energy Hessian at (a relaxed) ``state``.

    Parameters
    ----------
    config
        Lattice and GL parameters; ``eta``, ``n_v``, ``nu`` override its defaults. With a finite
        ``lam`` the screened model is analysed on the CPU: coordinates (ψ, a), the N² − 1 local
        gauge directions projected out (docs/hessian.md §8).
    state
        Complex (2, N, N) ψ or real (4, N, N) / (4N²,) state; with λ < ∞ also (6, N, N) / (6N²,)
        (ψ then a_x, a_y; a ψ alone starts from a = 0).
    options
        Settings of the analysis (default :class:`HessianOptions()`).
    eta, n_v, nu
        The sample's parameters (default: the config's).
    delta, seed, index
        Pinning strength δ (default: the config's) and the run seed and sample
        index whose landscape ξ(r) the energy uses when δ ≠ 0 (docs/physics.md,
        "Nuisance physics"); the exact Hessian then includes the linear
        disorder term.
    progress
        ``progress(stage, done, total)`` callback.
    **overrides
        :class:`HessianOptions` fields changing ``options``, e.g. ``analyze(cfg, z, n_eig=8, dos=True)``.

    Returns
    -------
    HessianResult
        In memory; nothing is written.

    Raises
    ------
    ConfigError
        Invalid configuration, parameters, options or state.
    """
    opts = _options(options, overrides)
    limit = (threadpool_limits(limits=opts.blas_thread_limit, user_api="blas")
             if opts.blas_thread_limit is not None else contextlib.nullcontext())
    with limit:
        return _analyze(config, state, opts, eta=eta, n_v=n_v, nu=nu, progress=progress, delta=delta, seed=seed,
                        index=index)


def _analyze(config: SimConfig, state: np.ndarray, opts: HessianOptions, *, eta: float | None, n_v: int | None,
             nu: float | None, progress: Progress | None, delta: float | None = None, seed: int | None = None,
             index: int | None = None) -> HessianResult:
    t_start = time.perf_counter()
    device, gpu = "cpu", ""
    if config.screened and opts.device == "cuda":
        raise ConfigError(f"`device` cuda: the GPU Hessian covers the fixed field only (lam=inf); lam={config.lam:g} "
                          "runs on the CPU (device cpu)")
    if opts.device != "cpu" and not (config.screened and opts.device == "auto"):  # auto: screened stays on the CPU
        from ...physics import cuda

        device = cuda.resolve_device(opts.device)
    if device == "cuda":
        if (config.delta if delta is None else delta) != 0.0:
            raise ConfigError("`device` cuda: the GPU energy has no pinning disorder yet; use device cpu")
        model: Any = cuda.CudaEnergyModel(config, eta=eta, n_v=n_v, nu=nu)
        gpu = cuda.gpu_name()
        log.info("hessian: gradients and Hessian-vector products on the GPU (%s)", gpu)
    else:
        model = energy_model(config, eta=eta, n_v=n_v, nu=nu, delta=delta, seed=seed, index=index)
    z0 = as_state(state, model.N, screened=config.screened).reshape(-1)
    if opts.n_eig >= model.size:
        raise ConfigError(f"n_eig must be in 1..{model.size - 1} for {model.size} unknowns, got {opts.n_eig}")
    timings: dict[str, float] = {}
    t = time.perf_counter()
    if opts.relax:
        rr = relax_state(model, z0, residual_tol=opts.residual_tol, max_iter=opts.max_iter,
                         newton_steps=opts.newton_steps, method=opts.relax_method, progress=progress)
    else:
        rr = unrelaxed(model, z0, opts.residual_tol)
    timings["relax"] = time.perf_counter() - t
    hess: Any = Hessian(model, rr.z, method=opts.hvp_method)
    t = time.perf_counter()
    lo_est, hi_est = spectral_scale(hess, seed=opts.seed)
    timings["scale"] = time.perf_counter() - t
    gauge_removed = 0
    if hess.screened:  # λ < ∞: the N² − 1 local gauge directions lifted to the top (docs/hessian.md §8)
        hess = ProjectedHessian(hess, lift=max(hi_est, 1.0))
        gauge_removed = hess.projector.dim
        if opts.eig_method == "shift-invert":  # the projected operator is not sparse
            method = "dense" if hess.n <= DENSE_MAX else "lanczos"
            log.info("hessian: lam < inf: eig_method %s (the gauge-projected Hessian has no sparse form)", method)
            opts = opts.replace(eig_method=method)
    t = time.perf_counter()
    vals, vecs = lowest_eigenpairs(hess, opts.n_eig, method=opts.eig_method, tol=opts.eig_tol, ncv=opts.ncv,
                                   seed=opts.seed, progress=progress)
    timings["eigsh"] = time.perf_counter() - t
    zi, zov = identify_zero_mode(vecs, rr.z)
    others = [i for i in range(vals.shape[0]) if i != zi]
    si = int(others[int(np.argmin(vals[others]))]) if others else zi
    scale = max(abs(hi_est), abs(lo_est), 1e-300)
    n_neg = int(np.sum(vals < -opts.zero_tol * scale))
    counts = {f"{th:g}": int(np.sum(vals < th * scale)) for th in THRESHOLDS}
    log.info("spectrum: lambda_max ~ %.4g; phase mode #%d lambda = %.3e (overlap %.6f); softest #%d lambda = %.6g; "
             "%d negative", hi_est, zi, vals[zi], zov, si, vals[si], n_neg)
    if n_neg:
        log.info("the state is a saddle point: %d negative eigenvalue(s) among the %d lowest", n_neg, opts.n_eig)
    density = None
    if opts.dos:
        t = time.perf_counter()
        density = density_of_states(hess, n_probes=opts.dos_probes, n_steps=opts.dos_steps, bins=opts.dos_bins,
                                    seed=opts.seed + 1, progress=progress)
        timings["dos"] = time.perf_counter() - t
    return HessianResult(
        config=model.config, eigenvalues=vals, zero_mode_index=zi, zero_mode_overlap=zov, softest_index=si,
        softest_vector=vecs[:, si].reshape(model.shape).copy(), relaxation=rr, relaxed=opts.relax,
        lambda_min_est=lo_est, lambda_max_est=hi_est, n_negative=n_neg, counts_below=counts,
        wall_seconds=time.perf_counter() - t_start, options=opts.replace(device=device) if opts.device != device
        else opts, timings=timings, n_matvec=hess.n_matvec,
        hvp_step=hess.step, dos=density, device=device, gpu_name=gpu, gauge_removed=gauge_removed,
    )


def hessian(source: StateSource, options: HessianOptions | None = None, *,
            progress: Progress | None = None) -> HessianResult:
    """Resolve a state source and analyse its state; the result records the source.

    Parameters
    ----------
    source
        :class:`~.states.FromEnsemble`, :class:`~.states.FromPreset` or :class:`~.states.FromParams`.
    options
        Settings of the analysis (default :class:`HessianOptions()`).
    progress
        ``progress(stage, done, total)`` callback.

    Returns
    -------
    HessianResult
        In memory, with ``source`` set; write it with ``.save(dir)`` and ``.plot(dir)``.

    Examples
    --------
    >>> from tdglnre.analysis.hessian import FromParams, HessianOptions, hessian
    >>> res = hessian(FromParams(N=8, L=5.0, t=0.2), HessianOptions(n_eig=6))  # doctest: +SKIP
    >>> res.save("out"); res.plot("out")  # doctest: +SKIP
    """
    opts = _options(options, {})
    if progress is not None and not callable(progress):
        raise ConfigError(f"progress must be None or a function progress(stage, done, total), got {progress!r}")
    resolve = getattr(source, "resolve", None)
    if resolve is None:
        raise ConfigError(f"source must be FromEnsemble, FromPreset or FromParams, got {type(source).__name__}")
    if opts.device != "cpu":  # refuse an unusable device before the state is read or simulated
        from ...physics.cuda import resolve_device

        opts = opts.replace(device=resolve_device(opts.device))
    sample = resolve()
    params = sample.params
    result = analyze(sample.config, sample.psi, opts, eta=params["eta"], n_v=int(params["n_v"]), nu=params["nu"],
                     progress=progress, delta=params.get("delta"), seed=sample.seed, index=sample.index)
    result.source = source.record()
    return result


__all__ = ["analyze", "hessian"]
