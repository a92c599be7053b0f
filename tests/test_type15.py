"""Type-1.5 superconductivity: a preferred vortex density (issue 19, validation 4; docs/physics.md,
"Type-1.5: a preferred vortex spacing").

Two bands with ξ₁ < √2λ < ξ₂ and no Josephson coupling (Babaev & Speight, Phys. Rev. B 72, 180502
(2005)): vortices repel at short range and attract at long range, so the relaxed energy per vortex on a
torus, against the number of vortices, has its minimum at an intermediate density. The one-band controls
at the same λ do not: band 1 alone (Type II) rises from the first vortex on; band 2 alone (Type I) falls
until the torus is entirely normal, and that minimum is the normal state (ψ = 0), not a vortex state.

A coarse lattice (h = ξ₁) keeps this a few seconds; scripts/screening_validation.py type15 measures the
same curves at h = ξ₁/2 and ξ₁/2.7 (the minimum stays at n_v = 2 of this torus).
"""

from __future__ import annotations

import math

import pytest

from tdglnre.physics.lengths import coherence_lengths, field_coefficient, regime, uniform_state
from tdglnre.physics.relax import relax_screened, uniform_energy

N, L, LAM = 12, 6.0, 0.8
XI1, XI2 = 0.5, 2.0
A1, A2 = -1.0 / XI1**2, -1.0 / XI2**2  # ρ₀ = D = 1 in both bands (β = −α)
CASES = {
    "1.5": dict(alpha=(A1, A2), beta=(-A1, -A2), D=(1.0, 1.0), eta=0.0, nu=0.0),
    "II": dict(alpha=(A1, 1.0), beta=(-A1, 1.0), D=(1.0, 1.0), eta=0.0, nu=0.0),  # band 2 off
    "I": dict(alpha=(1.0, A2), beta=(1.0, -A2), D=(1.0, 1.0), eta=0.0, nu=0.0),  # band 1 off
}


def _curve(kind: str, n_vs):
    """E/n_v (lowest over two quench starts) and the relaxed states, for each n_v."""
    p = CASES[kind]
    c = field_coefficient(LAM, p["D"], p["alpha"], p["beta"], 0.0, 0.0)
    E0 = uniform_energy(L, p)
    out = []
    for n_v in n_vs:
        best = min((relax_screened(N, L, n_v, c, p, seed=s) for s in (0, 1)), key=lambda r: r.energy)
        out.append(((best.energy - E0) / n_v, best.state))
    return out, c


@pytest.mark.parametrize("kind", ["1.5", "II", "I"])
def test_the_cases_are_in_their_regimes(kind):
    p = CASES[kind]
    assert regime(LAM, coherence_lengths(p["D"], p["alpha"], p["beta"], 0.0)) == kind


def test_type_one_point_five_energy_per_vortex_has_an_interior_minimum():
    """E/n_v falls from one vortex to two and rises after: a finite preferred density, in a vortex state
    (band 1 superconducting between the cores, far below the normal state's energy)."""
    ((e1, _), (e2, s2), (e3, _)), c = _curve("1.5", (1, 2, 3))
    assert e2 < e1 - 0.3 and e2 < e3 - 0.05
    rho1 = s2[0] ** 2 + s2[1] ** 2
    assert rho1.mean() > 0.5  # ρ₀ = 1
    B = 4 * math.pi / L**2
    normal = (-uniform_energy(L, CASES["1.5"]) + c * B * B * L * L) / 2
    assert e2 < 0.5 * normal


def test_type_two_control_rises():
    e = [v for v, _ in _curve("II", (1, 2, 3))[0]]
    assert e[0] < e[1] < e[2]


def test_type_one_control_falls_to_the_normal_state():
    """Band 2 alone: E/n_v falls; its minimum is the normal state ψ = 0 with uniform B (no vortices)."""
    ((e1, _), (e2, s2)), c = _curve("I", (1, 2))
    assert e2 < e1
    rho2 = s2[2] ** 2 + s2[3] ** 2
    assert rho2.max() < 1e-6
    B = 4 * math.pi / L**2
    normal = (-uniform_energy(L, CASES["I"]) + c * B * B * L * L) / 2
    assert e2 == pytest.approx(normal, rel=1e-6)
    assert uniform_state(CASES["I"]["alpha"], CASES["I"]["beta"], 0.0)[1] == pytest.approx(1.0)
