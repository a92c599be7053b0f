"""regime(config, θ): Type I / 1.5 / II from √2λ against the normal-mode coherence lengths (issue 21).

The answers come from the analysis of Carlström, Babaev & Speight, Phys. Rev. B 83, 174509 (2011)
(docs/physics.md, "Regimes of a sample"): with Josephson coupling the density modes are mixtures of the
bands whose masses are the roots of det(M − μ²𝒟) = 0; for equal D that is M's eigenvalues over D, in
closed form here. The regime is Type II when the field is the lightest mode (μ_A = 1/λ below both), Type I
when it is the heaviest, Type 1.5 in between.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tdglnre.physics.config import SimConfig
from tdglnre.physics.lengths import REGIMES, coherence_lengths, regime as regime_of_lengths, uniform_state
from tdglnre.physics.screening import lam_boundaries, regime, regime_codes

# bare lengths ξ₁ = √(D/|α₁|) = 1, ξ₂ = 5 (docs/physics.md's example)
CFG = SimConfig(D=(1.0, 1.0), alpha=(-1.0, -0.04), beta=(1.0, 1.0))


def _mixed_lengths(eta: float) -> tuple[float, float]:
    """(ξ_short, ξ_long) in closed form for equal D: μ² are the eigenvalues of M over D, ξ = √2/μ."""
    f1, f2 = uniform_state(CFG.alpha, CFG.beta, eta)
    m11 = CFG.alpha[0] + 3 * CFG.beta[0] * f1 ** 2
    m22 = CFG.alpha[1] + 3 * CFG.beta[1] * f2 ** 2
    root = math.sqrt((m11 - m22) ** 2 + 4 * eta ** 2)
    mu2_heavy, mu2_light = (m11 + m22 + root) / 2, (m11 + m22 - root) / 2  # D = 1
    return math.sqrt(2 / mu2_heavy), math.sqrt(2 / mu2_light)


def test_uncoupled_bands_follow_the_bare_lengths():
    """η = 0: ξ = (5, 1) exactly; √2λ below 1 is Type I, between Type 1.5, above 5 Type II."""
    assert regime(CFG, {"eta": 0.0, "lam": 0.5}) == "I"  # √2λ = 0.71
    assert regime(CFG, {"eta": 0.0, "lam": 1.5}) == "1.5"  # 2.12
    assert regime(CFG, {"eta": 0.0, "lam": 5.0}) == "II"  # 7.07
    lo, hi = lam_boundaries(CFG, 0.0)
    assert lo[0] == pytest.approx(1 / math.sqrt(2), rel=1e-12) and hi[0] == pytest.approx(5 / math.sqrt(2), rel=1e-12)


@pytest.mark.parametrize("eta", [0.05, 0.3, 1.0])
def test_josephson_coupling_mixes_the_modes_and_moves_the_boundaries(eta):
    """The boundaries are the mixed modes' lengths over √2 (closed form), and each side is its regime."""
    short, long_ = _mixed_lengths(eta)
    lo, hi = lam_boundaries(CFG, eta)
    assert lo[0] == pytest.approx(short / math.sqrt(2), rel=1e-9)
    assert hi[0] == pytest.approx(long_ / math.sqrt(2), rel=1e-9)
    assert long_ < 5.0  # the coupling shortens the long length (the light mode mixes in band 1)
    assert regime(CFG, {"eta": eta, "lam": 0.95 * lo[0]}) == "I"
    assert regime(CFG, {"eta": eta, "lam": math.sqrt(lo[0] * hi[0])}) == "1.5"
    assert regime(CFG, {"eta": eta, "lam": 1.05 * hi[0]}) == "II"


def test_the_bare_lengths_would_misclassify_a_coupled_sample():
    """η = 0.3, λ = 2: the bare lengths (1, 5) put √2λ = 2.83 between them (Type 1.5), but the mixed
    modes are both shorter than 2.83 (Carlström, Babaev & Speight: the lengths are the modes'), so the
    sample is Type II."""
    short, long_ = _mixed_lengths(0.3)
    assert long_ < 2 * math.sqrt(2)
    assert regime_of_lengths(2.0, (1.0, 5.0)) == "1.5"
    assert regime(CFG, {"eta": 0.3, "lam": 2.0}) == "II"


def test_missing_parameters_are_the_configs_and_the_fixed_field_is_type_two():
    cfg = CFG.replace(eta=0.0, lam=1.5)
    assert regime(cfg, {}) == "1.5"
    assert regime(cfg, {"lam": math.inf}) == "II"
    assert regime(SimConfig(), {"eta": 0.5}) == "II"  # λ = ∞: no screening


def test_vectorised_codes_agree_with_the_lengths_regime():
    rng = np.random.default_rng(1)
    cfg = SimConfig(D=(4.0, 1.0), alpha=(-1.0, -1.0), beta=(1.0, 1.0))
    eta, nu, lam = rng.uniform(-1.5, 1.5, 60), rng.uniform(-0.5, 0.5, 60), np.exp(rng.uniform(-1.5, 1.5, 60))
    codes = regime_codes(cfg, {"eta": eta, "nu": nu, "lam": lam})
    want = [REGIMES.index(regime_of_lengths(lam[i], coherence_lengths(cfg.D, cfg.alpha, cfg.beta, eta[i], nu[i])))
            for i in range(60)]
    np.testing.assert_array_equal(codes, want)
    assert set(codes.tolist()) == {0, 1, 2}
