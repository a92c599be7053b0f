"""Memory placement and no-alias compilation of the CPU sweeps (tdglnre/physics/_memory.py).

Where the kernels' arrays sit in memory, and the compiler's licence to assume
they do not overlap, may change their speed but never a result: the step and
the gradient are the same bits at any placement, and an ``out`` that overlaps
the input is refused instead of being silently miscomputed.
"""

import numpy as np
import pytest

from tdglnre.errors import ConfigError
from tdglnre.physics import kernels, screened
from tdglnre.physics._memory import PAGE, SHIFT_FLUX, SHIFT_LINKS, SHIFT_NEXT, staggered
from tdglnre.physics.config import SimConfig
from tdglnre.physics.screened_model import ScreenedEnergyModel
from tdglnre.physics.solver import EnergyModel, initial_state

CFG = SimConfig(N=16, L=8.0, dt=1e-3, eta=0.5, n_v=3, nu=0.3, lam=2.0, sigma=2.0, snapshot_times=(0.03,))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shift", [0, 8, SHIFT_NEXT, SHIFT_LINKS, SHIFT_FLUX, PAGE - 8])
def test_staggered_lands_the_requested_bytes_past_the_reference_modulo_the_page(dtype, shift):
    ref = np.empty((3, 6, 16, 16), dtype=dtype)
    a = staggered(ref.size, ref, shift)
    assert a.shape == (ref.size,) and a.dtype == ref.dtype and a.flags.c_contiguous and a.flags.writeable
    assert (a.ctypes.data - ref.ctypes.data) % PAGE == shift
    a[:] = 1.0  # the whole view is usable
    assert a.sum() == ref.size


def test_the_default_shifts_keep_every_pair_of_step_arrays_apart_also_one_row_off():
    """The four arrays of a step (state, next state, link factors, fluxes) at least 256 bytes from congruent
    modulo the page, also for a neighbour row (±R) at row lengths R = 128 … 4096 bytes."""
    pts = [0, SHIFT_NEXT, SHIFT_LINKS, SHIFT_FLUX]
    for R in (128, 256, 512, 1024, 2048, 4096):
        for a in pts:
            for b in pts:
                if a < b:
                    for k in (-1, 0, 1):
                        d = (b - a - k * R) % PAGE
                        assert min(d, PAGE - d) >= 256, (a, b, R, k)


def _screened_inputs(S=2):
    co = screened.coefficients(CFG.D, CFG.alpha, CFG.beta, CFG.h, CFG.L, np.full(S, 0.5), np.full(S, 0.3),
                               np.full(S, 3), np.full(S, 5.0), scale=CFG.dt, keep=1.0, scale_a=CFG.dt / CFG.sigma,
                               sigma=CFG.sigma)
    bg = screened.background_links(CFG.N, CFG.L, np.full(S, 3))
    rng = np.random.default_rng(4)
    states = np.zeros((S, 6, CFG.N, CFG.N))
    for s in range(S):
        states[s, :4] = initial_state(11, s, CFG.N)
        states[s, 4:] = 0.2 * rng.normal(size=(2, CFG.N, CFG.N))  # rows above 1/8 and some above 0.78
    states[0, 4, 3, 5] = 2.5  # one link far out: the range-reduced sincos path
    return states, co, bg


def _place(a, shift):
    """A copy of ``a`` at ``shift`` bytes past a page boundary."""
    anchor = np.empty(1)
    out = staggered(a.size, anchor, shift - anchor.ctypes.data % PAGE).reshape(a.shape)
    out[...] = a
    return out


@pytest.mark.parametrize("shift", [0, 8, 64, SHIFT_NEXT, 2048])
def test_screened_evolution_is_the_same_bits_wherever_its_arrays_sit(shift):
    states, co, bg = _screened_inputs()
    S, N = states.shape[0], CFG.N

    def run(st, work):
        out = np.empty((S, 1, 6, N, N))
        status = np.zeros(S, dtype=np.int64)
        screened._evolve_batch(st, work, co, bg, np.array([40], dtype=np.int64), out, status, 10, np.inf, np.inf,
                               10**9, np.zeros(S, dtype=np.int64), np.zeros(S))
        assert np.all(status == -1)
        return out

    base = run(states.copy(), np.empty_like(states))
    moved = run(_place(states, 0), _place(np.zeros_like(states), shift))
    assert np.array_equal(base, moved)
    assert not np.array_equal(base[:, 0], states)  # it did evolve


@pytest.mark.parametrize("shift", [0, 8, SHIFT_NEXT])
def test_fixed_field_evolution_is_the_same_bits_wherever_its_arrays_sit(shift):
    cfg = CFG.replace(lam=float("inf"))
    S, N = 2, cfg.N
    co = kernels.coefficients(cfg.D, cfg.alpha, cfg.beta, cfg.h, np.full(S, 0.5), np.full(S, 0.3), scale=cfg.dt,
                              keep=1.0)
    ly, lx = kernels.link_tables(N, cfg.L, np.full(S, 3))
    states = np.stack([initial_state(11, s, N) for s in range(S)])

    def run(st, work):
        out = np.empty((S, 1, 4, N, N))
        status = np.zeros(S, dtype=np.int64)
        kernels._evolve_batch(st, work, co, ly, lx, np.array([40], dtype=np.int64), out, status, 10, np.inf, np.inf,
                              10**9, np.zeros(S, dtype=np.int64), np.zeros(S))
        assert np.all(status == -1)
        return out

    assert np.array_equal(run(states.copy(), np.empty_like(states)),
                          run(_place(states, 0), _place(np.zeros_like(states), shift)))


def test_a_gradient_into_its_own_input_is_refused_and_a_separate_out_is_exact():
    fixed = EnergyModel(CFG.replace(lam=float("inf")))
    scr = ScreenedEnergyModel(CFG)
    rng = np.random.default_rng(2)
    for model in (fixed, scr):
        z = rng.normal(size=model.size) * 0.3
        with pytest.raises(ConfigError, match="must not overlap"):
            model.gradient(z, out=z)
        out = np.full(model.size, np.nan)
        assert model.gradient(z, out=out) is not None
        assert np.array_equal(out, model.gradient(z))


def _define_line(dispatcher, name):
    ir = next(iter(dispatcher.inspect_llvm().values()))
    return next(line for line in ir.splitlines() if line.startswith("define") and name in line)


def test_the_sweeps_are_compiled_with_their_arrays_declared_non_overlapping():
    """The no-alias declaration reaches LLVM on this numba (a fresh function: cached ones keep no IR), and the
    two sweeps are compiled with it."""
    from numba import njit

    from tdglnre.physics._memory import NOALIAS_PIPELINE, njit_noalias

    def shift_copy(src, dst):
        for i in range(1, src.shape[0]):
            dst[i - 1] = src[i] + 1.0

    plain, declared = njit(shift_copy), njit_noalias()(shift_copy)
    a, b = np.arange(8.0), np.zeros(8)
    plain(a, b)
    declared(a, b)
    assert b[:7].tolist() == (a[1:] + 1.0).tolist()
    assert NOALIAS_PIPELINE is not None
    # numba always marks its return and exception pointers noalias; the declaration adds the arrays'
    assert _define_line(declared, "shift_copy").count("noalias") > _define_line(plain, "shift_copy").count("noalias")
    assert kernels._sweep._compiler.pipeline_class is NOALIAS_PIPELINE
    assert screened._step._compiler.pipeline_class is NOALIAS_PIPELINE
