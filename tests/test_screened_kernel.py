"""The screened numba kernel (λ < ∞, issue 19) against the NumPy reference and the physics it must keep.

docs/physics.md, "Screening (λ < ∞)": the kernel of :mod:`tdglnre.physics.screened`
follows ``reference.screened_euler_step`` to round-off (seam, η, ν, pinning
disorder, thermal noise on ψ and a), F does not increase along its flow, the
total flux stays 2π n_v, a step commutes with a gauge transformation, a large
λ approaches the fixed field, the dt bound covers the a update, and bad
settings are refused with one ConfigError. Small lattices: each test takes seconds.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import tdglnre
from tdglnre.errors import ConfigError
from tdglnre.physics import kernels, screened
from tdglnre.physics import reference as ref
from tdglnre.physics.config import SimConfig
from tdglnre.physics.lattice import landau_links
from tdglnre.physics.lengths import field_coefficient
from tdglnre.physics.observables import SCREENED_CHANNELS, channel_names, magnetic_field, network_channels
from tdglnre.physics.plan import disorder_field, plan_run
from tdglnre.physics.screening import screened_rate

CFG = SimConfig(N=12, L=6.0, dt=1e-3, alpha=(-1.0, -0.6), beta=(1.0, 1.2), D=(2.0, 1.0), eta=0.4, nu=0.3,
                n_v=3, lam=1.5, sigma=1.5, snapshot_times=(0.3,))


def _pars(cfg, **over):
    p = dict(alpha=cfg.alpha, beta=cfg.beta, D=cfg.D, eta=cfg.eta, nu=cfg.nu)
    p.update(over)
    return p


def _c(cfg):
    return field_coefficient(cfg.lam, cfg.D, cfg.alpha, cfg.beta, cfg.eta, cfg.nu)


def _random_state(seed, N, a_scale=0.3):
    rng = np.random.default_rng(seed)
    st = np.zeros((6, N, N))
    st[:4] = rng.uniform(-0.6, 0.6, (4, N, N))
    st[4:] = a_scale * rng.normal(size=(2, N, N))
    return st


def _reference_run(cfg, st, steps, alpha=None, thermal=None):
    """``steps`` reference Euler steps of (ψ, a); ``thermal`` = (T, key): Euler–Maruyama steps with the kernel's
    normals (``reference.screened_langevin_step``)."""
    links = landau_links(cfg.N, cfg.L, cfg.n_v)
    p1, p2, ax, ay = st[0] + 1j * st[1], st[2] + 1j * st[3], st[4].copy(), st[5].copy()
    kw = dict(c=_c(cfg), sigma=cfg.sigma, **_pars(cfg, alpha=alpha or cfg.alpha))
    for n in range(steps):
        if thermal is None:
            p1, p2, ax, ay = ref.screened_euler_step(p1, p2, ax, ay, links, cfg.dt, **kw)
        else:
            T, key = thermal
            p1, p2, ax, ay = ref.screened_langevin_step(p1, p2, ax, ay, links, cfg.dt, T,
                                                        ref.thermal_normals(key, n, cfg.N),
                                                        ref.link_normals(key, n, cfg.N), **kw)
    return p1, p2, ax, ay


@pytest.mark.parametrize("delta, a_scale", [(0.0, 0.3), (0.3, 0.3), (0.0, 0.0)])
def test_kernel_follows_the_reference_over_many_steps(delta, a_scale):
    """300 steps through tdglnre.simulate (plan, batch kernel) agree with the reference to round-off.

    a ~ 0.3 takes every path of the link factors (rows above 0.78, below it, below 1/8); a = 0 at the
    start (the quench) keeps every row on the shortest polynomials.
    """
    st = _random_state(1, CFG.N, a_scale)
    res = tdglnre.simulate(CFG, {"delta": delta}, initial=st[None], seed=7)
    alpha = CFG.alpha
    if delta:
        xi = disorder_field(7, 0, CFG)
        alpha = tuple(a * (1.0 + delta * xi) for a in CFG.alpha)
    p1, p2, ax, ay = _reference_run(CFG, st, 300, alpha=alpha)
    np.testing.assert_allclose(res.psi[0, -1, 0], p1, rtol=0, atol=1e-12)
    np.testing.assert_allclose(res.psi[0, -1, 1], p2, rtol=0, atol=1e-12)
    np.testing.assert_allclose(res.a[0, -1, 0], ax, rtol=0, atol=1e-12)
    np.testing.assert_allclose(res.a[0, -1, 1], ay, rtol=0, atol=1e-12)
    assert np.abs(ax - st[4]).max() > 1e-3  # a moved: the test sees its dynamics


@pytest.mark.parametrize("dtype, atol", [("float64", 1e-12), ("float32", 3e-5)])
def test_thermal_noise_kicks_psi_and_a(dtype, atol):
    """With T > 0 the kernel adds the counter-based normals to ψ (as λ = ∞) and √(2T·dt/σ)·g to a."""
    T = 0.01
    st = _random_state(2, CFG.N)
    res = tdglnre.simulate(CFG.replace(snapshot_times=(0.05,), dtype=dtype), {"T": T}, initial=st[None], seed=3)
    p1, p2, ax, ay = _reference_run(CFG, st, 50, thermal=(T, kernels.noise_key(3, 0)))
    np.testing.assert_allclose(res.psi[0, -1, 0], p1, rtol=0, atol=atol)
    np.testing.assert_allclose(res.psi[0, -1, 1], p2, rtol=0, atol=atol)
    np.testing.assert_allclose(res.a[0, -1, 0], ax, rtol=0, atol=atol)
    np.testing.assert_allclose(res.a[0, -1, 1], ay, rtol=0, atol=atol)
    clean = _reference_run(CFG, st, 50)
    kick = math.sqrt(2 * T * CFG.dt / CFG.sigma) * math.sqrt(50)  # the kicks' spread after 50 steps
    assert 0.5 * kick < np.std(ax - clean[2]) < 1.5 * kick  # a felt the noise, at its size


def test_field_fluctuations_reach_equipartition():
    """Fluctuation–dissipation of a's kick: in the normal state the field energy (c/h²) Σ_p Φ_p² averages
    ½T per transverse mode of a, corrected for the explicit step, Σ_{k≠0} ½T / (1 − dt·λ_k/2) with
    λ_k = (2c/σh²)(4 sin²(k_x/2) + 4 sin²(k_y/2)) (docs/physics.md, "Thermal noise").

    D = 0 decouples ψ from a exactly (no current, no covariant kinetic term), so only a's own kick acts.
    """
    N, h, c, sigma, dt, T = 12, 1.0, 1.0, 1.0, 0.02, 0.05
    co = screened.coefficients((0.0, 0.0), (1.0, 1.0), (1.0, 1.0), h, N * h, np.zeros(1), np.zeros(1),
                               np.zeros(1), np.array([c]), scale=dt, keep=1.0, scale_a=dt / sigma, sigma=sigma)
    bg = screened.background_links(N, N * h, np.zeros(1, dtype=np.int64))
    S, per, chunks = 16, 25, 400
    k = 2 * np.pi * np.fft.fftfreq(N)
    mu = (4 * np.sin(k[:, None] / 2) ** 2 + 4 * np.sin(k[None, :] / 2) ** 2).ravel()[1:]
    want = np.sum(0.5 * T / (1 - dt * (2 * c / (sigma * h * h)) * mu / 2))
    links = landau_links(N, N * h, 0)

    def run(states, co, m):  # `per` Euler–Maruyama steps of S samples, stream keys of chunk m
        out = np.empty((S, 1, 6, N, N))
        status = np.zeros(S, dtype=np.int64)
        keys = np.array([kernels.noise_key(m, s) for s in range(S)], dtype=np.uint64)
        screened._evolve_batch(states, np.empty_like(states), np.repeat(co, S, 0), np.repeat(bg, S, 0),
                               np.array([per], dtype=np.int64), out, status, per, np.inf, np.inf, 10**9,
                               np.zeros(S, dtype=np.int64), np.zeros(S), None, None,
                               np.full(S, math.sqrt(T * dt) / h), keys)
        assert np.all(status == -1)
        return out[:, 0].copy()

    states, energies = np.zeros((S, 6, N, N)), []
    for m in range(chunks):
        states = run(states, co, m)
        if m >= chunks // 4:  # after 50 time units (the slowest mode relaxes at rate 2·0.54)
            energies += [ref.field_energy(links, st[4], st[5], c) for st in states]
    e = np.asarray(energies)
    sem = e.reshape(-1, S).mean(axis=1).std(ddof=1) / math.sqrt(e.size / S)
    assert abs(e.mean() - want) < max(4 * sem, 0.02 * want), (e.mean(), want, sem)
    # the field energy is a's own kick's: with its slot at 0 the ψ kicks alone leave a at exactly 0
    co0 = co.copy()
    co0[:, screened.KICK] = 0.0
    quiet = run(np.zeros((S, 6, N, N)), co0, 0)
    assert np.all(quiet[:, 4:] == 0.0) and np.abs(quiet[:, :4]).max() > 0


def test_float32_follows_float64():
    st = _random_state(4, CFG.N)
    r64 = tdglnre.simulate(CFG, initial=st[None])
    r32 = tdglnre.simulate(CFG.replace(dtype="float32"), initial=st[None])
    assert r32.a.dtype == np.float32
    np.testing.assert_allclose(r32.psi[0, -1], r64.psi[0, -1], atol=2e-5)
    np.testing.assert_allclose(r32.a[0, -1], r64.a[0, -1], atol=2e-5)


def test_energy_falls_and_total_flux_stays_quantized_along_the_numba_flow():
    """From a quench (a = 0): F (reference.screened_energy) never rises, Σ_p Φ_p = 2π n_v to round-off,
    and the field leaves the uniform applied value (B varies over the plaquettes)."""
    cfg = CFG.replace(snapshot_times=tuple(np.round(np.arange(1, 41) * 0.01, 10)))
    res = tdglnre.simulate(cfg, seed=5)
    links = landau_links(cfg.N, cfg.L, cfg.n_v)
    kw = dict(c=_c(cfg), **_pars(cfg))
    F = []
    for t in range(res.psi.shape[1]):
        p1, p2 = res.psi[0, t]
        ax, ay = res.a[0, t]
        F.append(ref.screened_energy(p1, p2, ax, ay, links, **kw))
        B = magnetic_field(links, ax, ay)
        assert abs(B.sum() * cfg.h ** 2 - 2 * np.pi * cfg.n_v) <= 1e-11
    assert np.all(np.diff(F) <= 1e-12 * np.abs(F[:-1]).max())
    assert F[-1] < F[0]
    assert np.ptp(magnetic_field(links, *res.a[0, -1])) > 1e-3


def test_a_step_commutes_with_a_gauge_transformation():
    """ψ → e^{iχ}ψ, a → a + χ(r+μ̂) − χ(r): the numba step of the transformed state is the transformed
    step, so ρ, B and the channels (curl J on the links θ⁰ + a) after it are unchanged."""
    N = CFG.N
    st = _random_state(6, N)
    chi = np.random.default_rng(8).uniform(-3 * np.pi, 3 * np.pi, (N, N))
    g = np.exp(1j * chi)
    dx, dy = np.roll(chi, -1, axis=1) - chi, np.roll(chi, -1, axis=0) - chi
    gt = st.copy()
    for b in range(2):
        z = g * (st[2 * b] + 1j * st[2 * b + 1])
        gt[2 * b], gt[2 * b + 1] = z.real, z.imag
    gt[4] += dx
    gt[5] += dy
    plan = plan_run(CFG, n_samples=2, initial=np.stack([st, gt]))
    out = np.empty((2, 6, N, N))
    for k, s in enumerate((st, gt)):
        screened.apply(np.ascontiguousarray(s), out[k], plan.co[k], plan.bg[k])
    (a, b) = out
    z0 = [a[2 * k] + 1j * a[2 * k + 1] for k in range(2)]
    z1 = [b[2 * k] + 1j * b[2 * k + 1] for k in range(2)]
    for k in range(2):
        np.testing.assert_allclose(z1[k], g * z0[k], atol=1e-12)
        np.testing.assert_allclose(np.abs(z1[k]) ** 2, np.abs(z0[k]) ** 2, atol=1e-12)
    np.testing.assert_allclose(b[4], a[4] + dx, atol=1e-11)
    np.testing.assert_allclose(b[5], a[5] + dy, atol=1e-11)
    links = landau_links(N, CFG.L, CFG.n_v)
    np.testing.assert_allclose(magnetic_field(links, b[4], b[5]), magnetic_field(links, a[4], a[5]), atol=1e-10)
    x0 = network_channels(z0[0], z0[1], CFG, a=a[4:])
    x1 = network_channels(z1[0], z1[1], CFG, a=b[4:])
    np.testing.assert_allclose(x1, x0, atol=1e-4)


def test_large_lambda_approaches_the_fixed_field():
    """λ → ∞ with σ ∝ λ² (a's relaxation as slow as the field is stiff) converges to the λ = ∞ run as 1/λ².

    At fixed σ it does not: the longitudinal (pure-gauge) part of a relaxes with the link current at a rate
    2K/σ whatever λ (docs/physics.md, "Lattice form and dynamics"); the fixed field is σ → ∞ too.
    """
    base = CFG.replace(lam=math.inf, sigma=1.0, snapshot_times=(0.3,))
    rho0 = np.abs(tdglnre.simulate(base, seed=2).psi) ** 2
    diffs = []
    for lam in (4.0, 8.0, 16.0):
        r = tdglnre.simulate(base.replace(lam=lam, sigma=lam * lam / 2.0), seed=2)
        diffs.append(np.abs(np.abs(r.psi) ** 2 - rho0).max())
    assert diffs[0] > 3.0 * diffs[1] > 9.0 * diffs[2]
    assert diffs[2] < 1e-4


def test_infinite_lambda_runs_the_fixed_field_kernel():
    plan = plan_run(CFG.replace(lam=math.inf))
    assert not plan.screened and plan.co.shape[1] == kernels.N_COEF
    res = tdglnre.simulate(CFG.replace(lam=math.inf), seed=1)
    assert res.a is None and res.channels().shape[-1] == 3
    assert channel_names(CFG.replace(lam=math.inf)) == ("rho1", "rho2", "curlJ")


def test_channels_gain_the_field():
    res = tdglnre.simulate(CFG, n_samples=2, seed=4, want_channels=True)
    assert channel_names(CFG) == SCREENED_CHANNELS and res.x.shape == (2, 1, CFG.N, CFG.N, 4)
    for s in range(2):
        assert res.x[s, 0, :, :, 3].sum() * CFG.h ** 2 == pytest.approx(2 * np.pi * CFG.n_v, rel=1e-6)
    with pytest.raises(ConfigError, match="vector potential"):
        network_channels(res.psi[0, 0, 0], res.psi[0, 0, 1], CFG)


# ---------------------------------------------------------------- stability
def _bound(cfg):
    from tdglnre.physics.config import rate_bound

    rb = rate_bound(cfg.D, cfg.alpha, cfg.beta, cfg.eta, cfg.nu, cfg.h)
    return 2.0 / screened_rate(rb.rate, rb.density, cfg.D, cfg.nu, _c(cfg), cfg.sigma, cfg.h)[0]


def test_time_step_bound_includes_the_vector_potential():
    """dt just above 2/μ_max is refused with the largest safe value; just below, a quench stays finite."""
    cfg = CFG.replace(lam=2.5, sigma=1.0)
    dt_max = _bound(cfg)
    # the field term alone needs dt < σh²/(8c): the bound is below it, and well below the λ = ∞ one
    assert dt_max < cfg.sigma * cfg.h ** 2 / (8 * _c(cfg))
    with pytest.raises(ConfigError, match=f"largest stable explicit Euler step {dt_max:.6g}"):
        cfg.replace(dt=dt_max * 1.001, snapshot_times=(dt_max * 1.001,)).validate()
    dt = dt_max * 0.99
    res = tdglnre.simulate(cfg.replace(dt=dt, snapshot_times=(400 * dt,)), n_samples=2, seed=1)
    assert np.isfinite(res.psi).all() and np.isfinite(res.a).all()
    # the same dt without screening would be fine: the refusal comes from a
    cfg.replace(lam=math.inf, dt=dt_max * 1.001, snapshot_times=(dt_max * 1.001,)).validate()


def test_health_check_covers_a():
    N = 6
    cur = np.zeros((6, N, N))
    cur[:4] = 0.5
    value = np.zeros(1)
    assert screened._check(cur, cur.copy(), 0.5, 0.5, False, value) == kernels.OK
    cur[5, 2, 3] = np.nan
    assert screened._check(cur, cur.copy(), 0.5, 0.5, False, value) == kernels.NONFINITE


# ---------------------------------------------------------------- bad input and round trips
@pytest.mark.parametrize("bad, match", [
    (dict(lam=0.0), "lam must be a number > 0"),
    (dict(lam=-2.0), "lam must be a number > 0"),
    (dict(lam=float("nan")), "lam must be a number > 0"),
    (dict(lam=-math.inf), "lam must be a number > 0"),
    (dict(lam="2"), "lam must be a number > 0"),
    (dict(lam=0.4), "below the lattice spacing h=0.5"),
    (dict(sigma=0.0), "sigma .* must be a finite number > 0"),
    (dict(sigma=-1.0), "sigma .* must be a finite number > 0"),
    (dict(sigma=float("nan")), "sigma .* must be a finite number > 0"),
    (dict(sigma=math.inf), "sigma .* must be a finite number > 0"),
])
def test_bad_screening_settings_are_refused(bad, match):
    with pytest.raises(ConfigError, match=match):
        CFG.replace(**bad).validate()


def test_config_round_trips():
    for cfg in (CFG, CFG.replace(lam=math.inf)):
        text = cfg.to_json()
        json.loads(text)  # plain JSON: λ = ∞ is written as null
        assert SimConfig.from_json(text) == cfg
    # no screening: the JSON of the files written before it (older readers keep reading them)
    fixed = CFG.replace(lam=math.inf, sigma=1.0)
    assert "lam" not in fixed.to_dict() and "sigma" not in fixed.to_dict()
    assert SimConfig.from_dict(fixed.to_dict()) == fixed
    assert SimConfig.from_json(CFG.replace(lam=math.inf, sigma=2.0).to_json()).sigma == 2.0


def test_preset_overrides():
    from tdglnre.io import load_preset

    cfg, _ = load_preset("quick", ["N=16", "L=8", "lam=1.5", "sigma=3", "prior.eta=fixed(0.5)"])
    assert (cfg.lam, cfg.sigma, cfg.screened) == (1.5, 3.0, True)
    cfg, _ = load_preset("quick", ["lam=inf"])
    assert math.isinf(cfg.lam) and not cfg.screened
    with pytest.raises(ConfigError, match="lam"):
        load_preset("quick", ["N=16", "L=8", "lam=0.1"])


# ---------------------------------------------------------------- files
def test_screened_ensemble_stores_the_field_and_a(tmp_path):
    """A screened generate writes format v2 with the channel B and, with --store-fields, a beside ψ;
    a fixed-field file stays v1 with three channels and no a."""
    from tdglnre.io import Prior, open_ensemble
    from tdglnre.io.generate import generate_ensemble

    cfg = CFG.replace(snapshot_times=(0.1,))
    prior = Prior({"eta": "uniform(0.2, 0.5)", "n_v": 3.0, "nu": 0.3})
    out = tmp_path / "s.h5"
    generate_ensemble(cfg, prior, 3, 11, out, store_fields=True, progress=False)
    with open_ensemble(out) as e:
        assert e.attrs["format_version"] == 2 and e.channels == list(SCREENED_CHANNELS)
        assert e.config == cfg and e.a().shape == (3, 1, 2, cfg.N, cfg.N) and e.a().dtype == np.float32
        x, psi, a = e.x(), e.psi(), e.a()
    res = tdglnre.simulate(cfg, prior.params(prior.sample(11, np.arange(3))), seed=11, sample_indices=np.arange(3))
    np.testing.assert_array_equal(a, res.a.astype(np.float32))
    np.testing.assert_array_equal(psi, res.psi.astype(np.complex64))
    np.testing.assert_allclose(x[..., 3].sum(axis=(2, 3)) * cfg.h ** 2, 2 * np.pi * 3, rtol=1e-6)
    from click.testing import CliRunner

    from tdglnre.cli.main import cli

    r = CliRunner().invoke(cli, ["inspect", str(out)])
    assert r.exit_code == 0 and "channels rho1, rho2, curlJ, B" in r.output and "lam=1.5 sigma=1.5" in r.output
    assert "screening     lam=1.5" in r.output and "kappa=(" in r.output
    plain = tmp_path / "p.h5"
    generate_ensemble(cfg.replace(lam=math.inf, sigma=1.0), prior, 2, 11, plain, store_fields=True, progress=False)
    with open_ensemble(plain) as e:
        assert e.attrs["format_version"] == 1 and e.channels == ["rho1", "rho2", "curlJ"]
        assert "lam" not in json.loads(e.attrs["config"])
        with pytest.raises(Exception, match="no screening"):
            e.a()


def test_gradient_shares_the_step_code_path():
    """screened.apply with keep = 0 and scales (−2h², −1) is ∂F/∂(Re ψ, Im ψ, a) of reference.screened_gradient."""
    st = _random_state(9, CFG.N)
    c = _c(CFG)
    h = CFG.h
    co = screened.coefficients(CFG.D, CFG.alpha, CFG.beta, h, CFG.L, CFG.eta, CFG.nu, CFG.n_v, c,
                               scale=-2.0 * h * h, keep=0.0, scale_a=-1.0)[0]
    bg = screened.background_links(CFG.N, CFG.L, np.array([CFG.n_v]))[0]
    g = np.empty_like(st)
    screened.apply(st, g, co, bg)
    links = landau_links(CFG.N, CFG.L, CFG.n_v)
    want = ref.screened_gradient(st[0] + 1j * st[1], st[2] + 1j * st[3], st[4], st[5], links, c=c, **_pars(CFG))
    for k in range(6):
        np.testing.assert_allclose(g[k], want[k], rtol=0, atol=1e-11)


def test_lengths_of_a_screened_config():
    from tdglnre.physics.screening import lengths

    cfg = SimConfig(N=16, L=8.0, D=(1.0, 1.0), alpha=(-1.0, -0.04), beta=(1.0, 1.0), lam=1.5)
    d = lengths(cfg)  # docs/physics.md's example: ξ = (5, 1), √2λ = 2.12 between them
    assert d["xi"] == pytest.approx((5.0, 1.0)) and d["kappa"] == pytest.approx((0.3, 1.5))
    assert d["regime"] == "1.5" and d["c"] == pytest.approx(1.5 ** 2 * (1.0 + 0.04))
    assert lengths(cfg.replace(lam=math.inf))["regime"] == "II"


def test_energy_model_refuses_screening():
    """The energy model (and the Hessian built on it) knows only ψ at the fixed field: no silent λ = ∞ answer."""
    from tdglnre.physics.solver import EnergyModel

    with pytest.raises(ConfigError, match="fixed field only"):
        EnergyModel(CFG)
    EnergyModel(CFG.replace(lam=math.inf))


def test_results_do_not_depend_on_batch_or_threads():
    """As at λ = ∞: sample k of a screened run depends only on (seed, k), bit for bit."""
    cfg = CFG.replace(snapshot_times=(0.05, 0.1))
    pars = {"eta": [0.1, 0.3, 0.5], "T": [0.0, 0.01, 0.0]}
    ref_run = tdglnre.simulate(cfg, pars, seed=4, batch_size=3, threads=2)
    one = tdglnre.simulate(cfg, pars, seed=4, batch_size=1, threads=1)
    np.testing.assert_array_equal(one.psi, ref_run.psi)
    np.testing.assert_array_equal(one.a, ref_run.a)
    last = tdglnre.simulate(cfg, {"eta": 0.5}, seed=4, sample_indices=[2])
    np.testing.assert_array_equal(last.a[0], ref_run.a[2])


def test_link_factors_are_cos_and_sin_to_round_off():
    """screened._sincos to a few ulp over |x| < 10⁴, the small-|a| shortcut gives its numbers bit for bit,
    and the tiny-|a| polynomials are as accurate on |x| <= 1/8."""
    from numba import njit

    sincos = njit(lambda x: screened._sincos(x))
    poly = njit(lambda x: screened._poly(x))
    rng = np.random.default_rng(0)
    for x in np.concatenate([rng.uniform(-1e4, 1e4, 2000), rng.uniform(-7, 7, 2000),
                             [0.0, -0.0, np.pi / 4, np.pi / 2, -np.pi, 3 * np.pi / 2, 1e-300]]):
        c, s = sincos(x)
        assert abs(c - np.cos(x)) <= 4e-16 and abs(s - np.sin(x)) <= 4e-16, x
    for x in rng.uniform(-0.78, 0.78, 2000):
        assert sincos(x) == poly(x)
    tiny = njit(lambda x: screened._poly_tiny(x))
    for x in np.concatenate([rng.uniform(-0.125, 0.125, 2000), [0.125, -0.125, 1e-300]]):
        c, s = tiny(x)
        assert abs(c - np.cos(x)) <= 2.3e-16 and abs(s - np.sin(x)) <= 3e-17, x
