"""Hessian of the screened model (λ < ∞): gradient, gauge generators, zero-mode counts (docs/hessian.md §8).

Physical facts checked: F(ψ, a) is gauge invariant and the N² generators are
the derivative of the finite gauge transformation; at a relaxed vortex state
the unprojected Hessian has N² + 2 near-zero modes (N² − 1 local gauge
directions, the global phase, the two nearly free vortex translations), the
gauge-projected one exactly 3, and the fixed-field model (λ = ∞) 1 (its
vortex is pinned by the lattice).
"""

import numpy as np
import pytest

from tdglnre.analysis.hessian import FromParams, Hessian, HessianOptions, analyze, hessian, phase_generator
from tdglnre.analysis.hessian.gauge import GaugeProjector, ProjectedHessian, gauge_generators
from tdglnre.errors import ConfigError
from tdglnre.physics import reference as ref
from tdglnre.physics.config import SimConfig
from tdglnre.physics.screened_model import ScreenedEnergyModel, energy_model
from tdglnre.physics.solver import EnergyModel

N = 8
ZERO = 1e-6  # |λ| / λ_max below this counts as a zero mode (the first non-zero one sits at >= 5e-4)


def _random_state(m, seed=0, a_scale=0.3):
    rng = np.random.default_rng(seed)
    z = rng.uniform(-0.5, 0.5, m.size)
    z[4 * N * N:] = rng.normal(0.0, a_scale, 2 * N * N)
    return z


@pytest.fixture(scope="module")
def model():
    return ScreenedEnergyModel(SimConfig(N=N, L=4.0, eta=0.5, n_v=1, lam=1.5))


def test_gradient_is_the_reference_gradient_and_dF(model):
    z = _random_state(model)
    s = z.reshape(6, N, N)
    g_ref = np.concatenate([x.ravel() for x in ref.screened_gradient(
        s[0] + 1j * s[1], s[2] + 1j * s[3], s[4], s[5], model._links, c=model.c, **model._pars)])
    g = model.gradient(z)
    assert np.abs(g - g_ref).max() <= 1e-12 * np.abs(g).max()
    v = np.random.default_rng(1).normal(size=model.size)
    eps = 1e-6
    dF = (model.energy(z + eps * v) - model.energy(z - eps * v)) / (2 * eps)
    assert dF == pytest.approx(g @ v, rel=1e-7)
    assert isinstance(energy_model(model.config), ScreenedEnergyModel)
    with pytest.raises(ConfigError, match="ScreenedEnergyModel"):
        EnergyModel(model.config)


def test_gauge_generators_are_the_symmetry(model):
    z = _random_state(model, seed=2)
    G = gauge_generators(z, N)
    g = model.gradient(z)
    assert np.abs(G.T @ g).max() <= 1e-12 * np.abs(g).max()  # F is flat along every generator, at any state
    chi = np.random.default_rng(3).normal(size=(N, N))

    def transform(eps):
        s = z.reshape(6, N, N).copy()
        ph = np.exp(1j * eps * chi)
        for re, im in ((0, 1), (2, 3)):
            p = (s[re] + 1j * s[im]) * ph
            s[re], s[im] = p.real, p.imag
        s[4] += eps * (np.roll(chi, -1, axis=1) - chi)  # a_x(r) += χ(r + x̂) − χ(r)
        s[5] += eps * (np.roll(chi, -1, axis=0) - chi)
        return s.reshape(-1)

    assert model.energy(transform(1.0)) == pytest.approx(model.energy(z), rel=1e-12)
    eps = 1e-6
    deriv = (transform(eps) - transform(-eps)) / (2 * eps)
    assert np.abs(deriv - G @ chi.ravel()).max() < 1e-8
    # the global phase (χ = const) changes no link: it is the λ = ∞ phase generator with δa = 0
    u = G @ np.ones(N * N)
    assert np.abs(u[4 * N * N:]).max() == 0.0
    np.testing.assert_allclose(u / np.linalg.norm(u), phase_generator(z), atol=1e-15)


def test_products_symmetric_and_step_converged(model):
    z = _random_state(model, seed=4)
    rng = np.random.default_rng(5)
    u, v = rng.normal(size=(2, model.size))
    H = Hessian(model, z)
    Hv = H.matvec(v)
    assert u @ Hv == pytest.approx(v @ H.matvec(u), rel=1e-8)
    fine = Hessian(model, z, method="central", rel_step=1e-4).matvec(v)
    assert np.linalg.norm(Hv - fine) <= 1e-7 * np.linalg.norm(Hv)
    with pytest.raises(ConfigError, match="exact"):
        Hessian(model, z, method="exact")


def test_projector_removes_local_gauge_directions_only(model):
    z = _random_state(model, seed=6)
    P = GaugeProjector(z, N)
    G = gauge_generators(z, N)
    chi = np.random.default_rng(7).normal(size=N * N)
    chi -= chi.mean()
    x = G @ chi  # a gauge direction
    # P_T is a projector onto a space of dimension N² − 1 that excludes the global phase
    assert np.linalg.norm(P.complement(P.apply(x))) <= 1e-10 * np.linalg.norm(x)
    assert np.linalg.norm(P.apply(P.global_phase)) < 1e-12
    w = np.random.default_rng(8).normal(size=model.size)
    assert np.linalg.norm(P.apply(P.apply(w)) - P.apply(w)) <= 1e-10 * np.linalg.norm(w)
    assert P.dim == N * N - 1


def _counts(lam, eig_method="shift-invert"):
    res = hessian(FromParams(N=N, L=4.0, eta=0.5, n_v=1, t=0.5, seed=1, lam=lam),
                  HessianOptions(n_eig=4, residual_tol=1e-8, newton_steps=8, eig_method=eig_method))
    m = energy_model(res.config)
    H = Hessian(m, res.relaxation.z)
    w = np.linalg.eigvalsh(H.dense())
    return res, m, H, w


def test_zero_modes_with_screening():
    res, m, H, w = _counts(1.5, "lanczos")
    lmax = w[-1]
    assert np.sum(np.abs(w) < ZERO * lmax) == N * N + 2  # N² − 1 gauge + global phase + 2 translations
    wp = np.linalg.eigvalsh(ProjectedHessian(H, lmax).dense())
    assert np.sum(np.abs(wp) < ZERO * lmax) == 3  # global phase + 2 translations
    assert wp[3] > 1e-4 * lmax
    # the pipeline (Lanczos on the projected operator) finds the same lowest modes and the phase mode
    assert res.gauge_removed == N * N - 1
    assert res.options.eig_method == "lanczos"
    np.testing.assert_allclose(res.eigenvalues, wp[:4], atol=1e-7 * lmax)
    assert res.zero_mode_overlap > 0.999


def test_zero_modes_fixed_field_unchanged():
    res, m, H, w = _counts(np.inf)
    lmax = w[-1]
    assert np.sum(np.abs(w) < ZERO * lmax) == 1  # the global phase only: the lattice pins the vortex
    assert w[1] > 1e-4 * lmax
    assert res.gauge_removed == 0 and res.options.eig_method == "shift-invert"
    assert res.zero_mode_overlap > 1 - 1e-9


def test_cuda_refuses_screened(model):
    z = _random_state(model)
    with pytest.raises(ConfigError, match="lam=inf"):
        analyze(model.config, z, device="cuda", n_eig=2)
