"""Screening (λ < ∞) in the NumPy reference and the uniform state's length scales.

Physical facts from docs/physics.md, "Screening (λ < ∞)": the London depth
λ² = c/K, the coherence lengths of the coupled normal modes, the regimes of
Babaev & Speight (2005) and Carlström, Babaev & Speight (2011), gauge
invariance, flux quantization and energy decrease of the (ψ, a) gradient flow,
and the Bogomolny bound of one band at κ = 1/√2.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import minimize

from tdglnre.errors import ConfigError
from tdglnre.physics import reference as ref
from tdglnre.physics.lattice import landau_links
from tdglnre.physics.lengths import (coherence_lengths, field_coefficient, regime, stiffness,
                                     uniform_state)
from tdglnre.physics.observables import supercurrent

PARS = dict(alpha=(-1.0, -0.5), beta=(1.0, 1.2), D=(1.0, 0.8), eta=0.3, nu=0.2)


def _state(rng, N, scale=0.3):
    psi1 = rng.normal(size=(N, N)) + 1j * rng.normal(size=(N, N))
    psi2 = rng.normal(size=(N, N)) + 1j * rng.normal(size=(N, N))
    return psi1, psi2, scale * rng.normal(size=(N, N)), scale * rng.normal(size=(N, N))


# ---------------------------------------------------------------- length scales
def test_one_band_coherence_length_and_london_depth():
    """One band: ξ² = D/|α|, ρ₀ = |α|/β, λ² = c/(Dρ₀); the second band, normal and decoupled, has no mode."""
    D, a, b = 0.5, -2.0, 4.0
    xi = coherence_lengths((D, 1.0), (a, 0.3), (b, 1.0), eta=0.0)
    assert xi.xi == pytest.approx((math.sqrt(D / abs(a)),), rel=1e-12)
    f = uniform_state((a, 0.3), (b, 1.0), 0.0)
    assert f == pytest.approx((math.sqrt(abs(a) / b), 0.0), rel=1e-12, abs=1e-300)
    lam = 0.9
    c = field_coefficient(lam, (D, 1.0), (a, 0.3), (b, 1.0), 0.0, 0.0)
    assert c == pytest.approx(lam**2 * D * abs(a) / b, rel=1e-12)


def test_bare_lengths_without_coupling():
    """η = ν = 0: the modes are the bands, ξᵢ = √(Dᵢ/|αᵢ|)."""
    xi = coherence_lengths((1.0, 2.0), (-1.0, -0.08), (1.0, 3.0), eta=0.0)
    assert xi.xi == pytest.approx((5.0, 1.0), rel=1e-12)
    np.testing.assert_allclose(np.abs(xi.modes), [[0, 1], [1, 0]], atol=1e-15)


@pytest.mark.parametrize("eta", [0.1, 0.5, 2.0])
def test_identical_bands_split_into_in_phase_and_out_of_phase_modes(eta):
    """Two identical bands with Josephson coupling η (docs/physics.md): f² = (|α| + η)/β,
    in-phase mode ξ² = D/(|α| + η), out-of-phase mode ξ² = D/(|α| + 2η) — fully mixed bands."""
    D, a, b = 1.3, -0.7, 2.0
    f = uniform_state((a, a), (b, b), eta)
    assert f == pytest.approx((math.sqrt((abs(a) + eta) / b),) * 2, rel=1e-12)
    xi = coherence_lengths((D, D), (a, a), (b, b), eta=eta)
    assert xi.xi == pytest.approx((math.sqrt(D / (abs(a) + eta)), math.sqrt(D / (abs(a) + 2 * eta))), rel=1e-10)
    np.testing.assert_allclose(np.abs(xi.modes), np.full((2, 2), 2**-0.5), atol=1e-10)
    # η < 0 locks the phases at π: the same amplitudes and lengths
    assert coherence_lengths((D, D), (a, a), (b, b), eta=-eta).xi == pytest.approx(xi.xi, rel=1e-10)


def test_josephson_coupling_gives_the_passive_band_a_condensate_and_mixes_the_modes():
    """α₂ > 0 with η ≠ 0: band 2 is induced (f₂ > 0) and both modes mix both bands
    (Carlström, Babaev & Speight 2011: no mode belongs to one band)."""
    f = uniform_state((-1.0, 0.5), (1.0, 1.0), 0.2)
    assert f[1] > 0.1
    xi = coherence_lengths((1.0, 1.0), (-1.0, 0.5), (1.0, 1.0), eta=0.2)
    assert len(xi.xi) == 2
    assert np.abs(xi.modes).min() > 0.05
    # the stationarity conditions αᵢfᵢ + βᵢfᵢ³ = η fⱼ hold
    assert -1.0 * f[0] + f[0] ** 3 == pytest.approx(0.2 * f[1], abs=1e-13)
    assert 0.5 * f[1] + f[1] ** 3 == pytest.approx(0.2 * f[0], abs=1e-13)


def test_regimes_of_the_documented_example():
    """D = (1, 1), α = (−1, −0.04), β = (1, 1): ξ = (5, 1); √2λ between them is Type 1.5."""
    xi = coherence_lengths((1.0, 1.0), (-1.0, -0.04), (1.0, 1.0), eta=0.0)
    assert xi.xi == pytest.approx((5.0, 1.0))
    assert regime(1.5, xi) == "1.5"
    assert regime(0.5, xi) == "I"
    assert regime(5.0, xi) == "II"
    assert regime(math.inf, xi) == "II"
    # the boundaries sit at √2λ = ξ_a
    assert regime(5.0 / math.sqrt(2) * 0.999, xi) == "1.5"
    assert regime(1.0 / math.sqrt(2) * 0.999, xi) == "I"


def test_drag_enters_the_stiffness():
    assert stiffness((1.0, 2.0), 0.3, (1.0, 0.5), eta=0.1) == pytest.approx(1.0 + 0.5 + 0.3)
    assert stiffness((1.0, 2.0), 0.3, (1.0, 0.5), eta=-0.1) == pytest.approx(1.0 + 0.5 - 0.3)


def test_bogomolny_coefficient():
    """κ = λ/ξ = 1/√2 is c = D²/(2β) for one band."""
    D, a, b = 1.7, -0.6, 0.8
    xi = math.sqrt(D / abs(a))
    c = field_coefficient(xi / math.sqrt(2), (D, 1.0), (a, 1.0), (b, 1.0), 0.0, 0.0)
    assert c == pytest.approx(D * D / (2 * b), rel=1e-12)


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf])
def test_field_coefficient_refuses_bad_lambda(bad):
    with pytest.raises(ConfigError, match="lam"):
        field_coefficient(bad, (1.0, 1.0), (-1.0, -1.0), (1.0, 1.0), 0.0, 0.0)


def test_normal_state_has_no_lengths():
    with pytest.raises(ConfigError, match="normal"):
        coherence_lengths((1.0, 1.0), (0.3, 0.5), (1.0, 1.0), eta=0.1)


# ---------------------------------------------------------------- the (ψ, a) flow in the reference
def test_link_force_is_minus_the_energy_gradient():
    """σ∂ₜa = −∂F/∂a and ∂ₜψ = −(1/h²)∂F/∂ψ*: central differences of screened_energy."""
    rng = np.random.default_rng(11)
    links = landau_links(10, 6.0, 3)
    psi1, psi2, ax, ay = _state(rng, 10)
    c = 0.7
    grad = ref.screened_gradient(psi1, psi2, ax, ay, links, c=c, **PARS)

    def F(p1, p2, x, y):
        return ref.screened_energy(p1, p2, x, y, links, c=c, **PARS)

    eps = 1e-6
    for i, j in ((0, 0), (3, 9), (9, 2)):
        for k in (0, 1):
            plus, minus = [ax.copy(), ay.copy()], [ax.copy(), ay.copy()]
            plus[k][i, j] += eps
            minus[k][i, j] -= eps
            fd = (F(psi1, psi2, *plus) - F(psi1, psi2, *minus)) / (2 * eps)
            assert grad[4 + k][i, j] == pytest.approx(fd, rel=1e-6, abs=1e-7)
        p, m = psi2.copy(), psi2.copy()
        p[i, j] += 1j * eps
        m[i, j] -= 1j * eps
        fd = (F(psi1, p, ax, ay) - F(psi1, m, ax, ay)) / (2 * eps)
        assert grad[3][i, j] == pytest.approx(fd, rel=1e-6, abs=1e-7)


def test_gauge_invariance_with_a_dynamical_field():
    """ψ → e^{iχ}ψ, a_μ → a_μ + χ(r+μ̂) − χ(r) leaves F, ρ, B and J unchanged and commutes with a step."""
    rng = np.random.default_rng(12)
    N = 12
    links = landau_links(N, 8.0, 5)
    psi1, psi2, ax, ay = _state(rng, N)
    chi = 3.0 * rng.uniform(-np.pi, np.pi, size=(N, N))
    g = np.exp(1j * chi)
    gx = ax + np.roll(chi, -1, axis=1) - chi
    gy = ay + np.roll(chi, -1, axis=0) - chi
    kw = dict(c=0.4, **PARS)
    F0 = ref.screened_energy(psi1, psi2, ax, ay, links, **kw)
    F1 = ref.screened_energy(g * psi1, g * psi2, gx, gy, links, **kw)
    assert F1 == pytest.approx(F0, rel=1e-12)
    np.testing.assert_allclose(ref.plaquette_flux(links, gx, gy), ref.plaquette_flux(links, ax, ay), atol=1e-12)
    J0 = supercurrent(psi1, psi2, ref.screened_links(links, ax, ay), PARS["D"], PARS["nu"])
    J1 = supercurrent(g * psi1, g * psi2, ref.screened_links(links, gx, gy), PARS["D"], PARS["nu"])
    for a, b in zip(J0, J1):
        np.testing.assert_allclose(a, b, atol=1e-11)
    step = dict(sigma=0.5, **kw)
    s0 = ref.screened_euler_step(psi1, psi2, ax, ay, links, 1e-3, **step)
    s1 = ref.screened_euler_step(g * psi1, g * psi2, gx, gy, links, 1e-3, **step)
    np.testing.assert_allclose(g * s0[0], s1[0], atol=1e-12)
    np.testing.assert_allclose(g * s0[1], s1[1], atol=1e-12)
    np.testing.assert_allclose(s0[2] + np.roll(chi, -1, axis=1) - chi, s1[2], atol=1e-11)
    np.testing.assert_allclose(s0[3] + np.roll(chi, -1, axis=0) - chi, s1[3], atol=1e-11)


def test_total_flux_stays_quantized_and_energy_decreases():
    """Σ_p Φ_p = 2π n_v at every step to round-off, while F falls along the flow and the field redistributes."""
    rng = np.random.default_rng(13)
    N, L, n_v = 12, 6.0, 4
    links = landau_links(N, L, n_v)
    psi1, psi2 = (0.5 * (rng.uniform(-1, 1, (N, N)) + 1j * rng.uniform(-1, 1, (N, N))) for _ in range(2))
    ax = ay = np.zeros((N, N))
    kw = dict(c=0.3, **PARS)
    energies = [ref.screened_energy(psi1, psi2, ax, ay, links, **kw)]
    for _ in range(300):
        psi1, psi2, ax, ay = ref.screened_euler_step(psi1, psi2, ax, ay, links, 2e-3, sigma=1.0, **kw)
        phi = ref.plaquette_flux(links, ax, ay)
        assert abs(phi.sum() - 2 * np.pi * n_v) <= 1e-11
        energies.append(ref.screened_energy(psi1, psi2, ax, ay, links, **kw))
    assert np.all(np.diff(energies) < 0)
    assert np.ptp(ref.plaquette_flux(links, ax, ay)) > 1e-3


# ---------------------------------------------------------------- the Bogomolny point
def _relax(N, L, n_v, c, seed, pars):
    """Minimise F(ψ, a) with L-BFGS from a quench-like random state; returns the energy."""
    links = landau_links(N, L, n_v)
    rng = np.random.default_rng(seed)
    n = N * N
    x0 = np.concatenate([rng.uniform(-0.5, 0.5, 4 * n), np.zeros(2 * n)])

    def fg(x):
        v = x.reshape(6, N, N)
        s = (v[0] + 1j * v[1], v[2] + 1j * v[3], v[4], v[5])
        F = ref.screened_energy(*s, links, c=c, **pars)
        return F, np.concatenate([g.ravel() for g in ref.screened_gradient(*s, links, c=c, **pars)])

    res = minimize(fg, x0, jac=True, method="L-BFGS-B",
                   options=dict(maxiter=20000, maxcor=30, gtol=1e-9, ftol=1e-15))
    return res.fun


ONE_BAND = dict(alpha=(-1.0, 1.0), beta=(1.0, 1.0), D=(1.0, 1.0), eta=0.0, nu=0.0)


def test_bogomolny_point_one_band():
    """κ = 1/√2 (c = D²/2β): the relaxed energy is the same from different initial states, linear
    in n_v, and equals the bound 2πDρ₀n_v − βρ₀²L²/2 up to the O(h²) core error (docs/physics.md)."""
    N, L = 16, 8.0
    c = 0.5  # D²/(2β) with D = β = 1; ρ₀ = 1
    bound = {n: 2 * np.pi * n - 0.5 * L * L for n in (1, 2)}
    E = {n: [_relax(N, L, n, c, s, ONE_BAND) for s in (0, 1)] for n in (1, 2)}
    for n in (1, 2):
        assert E[n][0] == pytest.approx(E[n][1], abs=1e-6)
    per_vortex = [(E[n][0] - bound[n]) / n for n in (1, 2)]
    # non-interacting: the excess over the bound is one core correction per vortex ...
    assert per_vortex[0] == pytest.approx(per_vortex[1], abs=3e-3)
    # ... below 2 % of a vortex's energy 2πDρ₀ at h = ξ/2 ...
    assert abs(per_vortex[0]) < 0.02 * 2 * np.pi
    # ... and it is the discretisation error: O(h²) (h = 2/3 against h = 1/2)
    coarse = _relax(12, L, 1, c, 0, ONE_BAND) - bound[1]
    assert coarse / per_vortex[0] == pytest.approx((16 / 12) ** 2, rel=0.2)


@pytest.mark.parametrize("kappa, sign", [(0.5, -1), (1.2, +1)])
def test_energy_per_vortex_falls_in_type_one_and_rises_in_type_two(kappa, sign):
    """One band, κ = 0.5: vortices attract (E(2)/2 < E(1)); κ = 1.2: they repel (E(2)/2 > E(1))."""
    N, L = 16, 8.0
    c = kappa**2  # λ² = c/(Dρ₀) with ξ = D = ρ₀ = 1
    base = -0.5 * L * L
    e1 = _relax(N, L, 1, c, 0, ONE_BAND) - base
    e2 = _relax(N, L, 2, c, 0, ONE_BAND) - base
    assert sign * (e2 / 2 - e1) > 1e-3 * e1


# ---------------------------------------------------------------- the field of an isolated vortex
def test_isolated_vortex_field_tail_gives_lambda():
    """B(r) ∝ K₀(r/λ) far from the core (docs/physics.md): a fit of the relaxed one-vortex field on a
    torus of 12λ (images summed) returns the configured λ (issue target 5 %; measured 0.6 %)."""
    from scipy.optimize import least_squares
    from scipy.special import k0

    N, L, lam, xi = 32, 12.0, 1.0, 0.5
    D, a = 1.0, -1.0 / xi**2
    pars = dict(alpha=(a, 1.0), beta=(-a, 1.0), D=(D, 1.0), eta=0.0, nu=0.0)  # ρ₀ = 1
    c = field_coefficient(lam, pars["D"], pars["alpha"], pars["beta"], 0.0, 0.0)
    links = landau_links(N, L, 1)
    h = L / N
    rng = np.random.default_rng(21)
    n = N * N
    x0 = np.concatenate([rng.uniform(-0.5, 0.5, 4 * n), np.zeros(2 * n)])

    def fg(x):
        v = x.reshape(6, N, N)
        s = (v[0] + 1j * v[1], v[2] + 1j * v[3], v[4], v[5])
        return (ref.screened_energy(*s, links, c=c, **pars),
                np.concatenate([g.ravel() for g in ref.screened_gradient(*s, links, c=c, **pars)]))

    v = minimize(fg, x0, jac=True, method="L-BFGS-B",
                 options=dict(maxiter=20000, maxcor=30, gtol=1e-10, ftol=1e-16)).x.reshape(6, N, N)
    B = ref.plaquette_flux(links, v[4], v[5]) / h**2
    assert B.sum() * h * h == pytest.approx(2 * np.pi, rel=1e-12)
    # centre: the field-weighted centroid around the maximum (plaquette coordinates, periodic)
    yy, xx = np.meshgrid(np.arange(N), np.arange(N), indexing="ij")
    i0, j0 = np.unravel_index(np.argmax(B), B.shape)

    def wrap(d):
        return (d + N / 2) % N - N / 2

    dy, dx = wrap(yy - i0), wrap(xx - j0)
    w = B * (dy**2 + dx**2 < (2 * lam / h) ** 2)
    ry = wrap(yy - i0 - (w * dy).sum() / w.sum()) * h
    rx = wrap(xx - j0 - (w * dx).sum() / w.sum()) * h
    r = np.hypot(ry, rx)
    tail = (r > 2 * lam) & (r < 5 * lam)

    def model(q):
        images = sum(k0(np.hypot(ry[tail] + m * L, rx[tail] + k * L) / q[0]) for m in (-1, 0, 1) for k in (-1, 0, 1))
        return np.log(q[1] * images / q[0] ** 2) - np.log(B[tail])

    fit = least_squares(model, x0=[1.3 * lam, 1.0])
    assert fit.x[0] == pytest.approx(lam, rel=0.02)
