"""Tests of the Hessian analysis (issue 6): every assertion is a statement about ∂²F/∂z²."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tdglnre import ConfigError, SimConfig, simulate
from tdglnre.analysis.hessian import (
    FromParams,
    Hessian,
    HessianOptions,
    HessianResult,
    RelaxResult,
    analyze,
    dense_hessian,
    hessian,
    identify_zero_mode,
    load,
    load_result,
    lowest_eigenpairs,
    phase_generator,
    relax,
    save,
    uniform_spectrum,
    uniform_state,
)
from tdglnre.analysis.slq import exact_density, slq_density, wasserstein1
from threadpoolctl import threadpool_limits
from tdglnre.physics.solver import EnergyModel, psi_to_state


@pytest.fixture(autouse=True)
def _single_blas_thread():
    """Vector-sized BLAS work: threads only add contention on a shared machine (as analyze() does)."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _quench_state(N: int, *, n_v: int = 2, eta: float = 0.5, nu: float = 0.3, L: float | None = None,
                  t: float = 0.5, seed: int = 1) -> tuple[SimConfig, np.ndarray]:
    cfg = SimConfig(N=N, L=L or 0.6 * N, n_v=n_v, eta=eta, nu=nu, snapshot_times=(t,))
    p = simulate(cfg, seed=seed).psi[0, -1]
    return cfg, psi_to_state(p[0], p[1]).ravel()


# ------------------------------------------------------------- Hessian-vector products
@pytest.mark.parametrize("method,tol", [("richardson", 1e-12), ("central", 1e-6)])
def test_hvp_matches_exact_dense_hessian(method, tol):
    """Finite-difference HVPs of the numba gradient equal the analytic Hessian at N = 6."""
    cfg, z = _quench_state(6)
    model = EnergyModel(cfg)
    H = dense_hessian(model, z, method="exact")
    hess = Hessian(model, z, method=method)
    rng = np.random.default_rng(3)
    for _ in range(5):
        v = rng.standard_normal(model.size)
        err = np.linalg.norm(hess.matvec(v) - H @ v) / np.linalg.norm(H @ v)
        assert err <= tol, err
    # the FD dense matrix agrees entry-wise as well
    Hfd = hess.dense()
    assert np.abs(Hfd - H).max() <= tol * np.abs(H).max()


def test_exact_hessian_matches_second_differences_of_energy():
    """The analytic reference is independent of the gradient: check it against F itself."""
    cfg, z = _quench_state(6)
    model = EnergyModel(cfg)
    hess = Hessian(model, z, method="exact")
    rng = np.random.default_rng(4)
    v = rng.standard_normal(model.size)
    v /= np.linalg.norm(v)
    # F(z + e v) is a quartic in e; the 5-point second difference is exact for degree <= 5
    def d2(e):
        return (-model.energy(z + 2 * e * v) + 16 * model.energy(z + e * v) - 30 * model.energy(z)
                + 16 * model.energy(z - e * v) - model.energy(z - 2 * e * v)) / (12 * e * e)
    vhv = v @ hess.matvec(v)
    # the 5-point second difference is exact for polynomials of degree <= 5 (F is quartic along a line)
    assert abs(d2(0.3) - vhv) <= 1e-9 * max(1.0, abs(vhv))


def test_hvp_symmetry_and_linearity():
    cfg, z = _quench_state(8, n_v=3)
    hess = Hessian(EnergyModel(cfg), z)
    rng = np.random.default_rng(5)
    u, v = rng.standard_normal((2, hess.n))
    uHv, vHu = u @ hess.matvec(v), v @ hess.matvec(u)
    assert abs(uHv - vHu) <= 1e-12 * np.linalg.norm(u) * np.linalg.norm(v) * 70
    np.testing.assert_allclose(hess.matvec(2.5 * u - v), 2.5 * hess.matvec(u) - hess.matvec(v),
                               rtol=0, atol=1e-11 * np.abs(hess.matvec(u)).max())


def test_phase_rotation_identity_away_from_stationarity():
    """H(z)·(Jz) = J g(z) for any z (derivative of g(R_θ z) = R_θ g(z))."""
    cfg, z = _quench_state(8, n_v=1, t=0.1)
    model = EnergyModel(cfg)
    hess = Hessian(model, z)
    s = z.reshape(4, -1)
    Jz = np.concatenate([-s[1], s[0], -s[3], s[2]])
    np.testing.assert_allclose(phase_generator(z), Jz / np.linalg.norm(Jz))
    g = model.gradient(z).reshape(4, -1)
    Jg = np.concatenate([-g[1], g[0], -g[3], g[2]])
    lhs = hess.matvec(Jz)
    assert np.linalg.norm(Jg) > 1e-3  # the state is far from stationary
    assert np.linalg.norm(lhs - Jg) <= 1e-11 * np.linalg.norm(Jg) * 100


def test_sparse_assembly_equals_dense():
    for N in (6, 7, 10):  # greedy colouring (6, 7) and the 5-colour formula (10)
        cfg, z = _quench_state(N, n_v=1)
        hess = Hessian(EnergyModel(cfg), z)
        np.testing.assert_allclose(hess.sparse().toarray(), dense_hessian(hess.model, z), rtol=0, atol=1e-12)


# ------------------------------------------------------------------- eigenvalues
@pytest.mark.parametrize("N,method", [(8, "lanczos"), (10, "shift-invert"), (12, "shift-invert"),
                                      (12, "lanczos")])
def test_eigsh_lowest_match_dense(N, method):
    cfg, z = _quench_state(N, n_v=2)
    model = EnergyModel(cfg)
    dense = np.linalg.eigvalsh(dense_hessian(model, z))
    vals, vecs = lowest_eigenpairs(Hessian(model, z), 12, method=method)
    np.testing.assert_allclose(vals, dense[:12], rtol=0, atol=1e-6)
    # eigenvectors are eigenvectors of the dense matrix
    H = dense_hessian(model, z)
    assert np.abs(H @ vecs - vecs * vals).max() <= 1e-6


def test_unrelaxed_quench_state_is_not_a_minimum():
    """Early in a quench the state is far from stationary and H has negative directions."""
    cfg, z = _quench_state(10, n_v=2, t=0.05)
    dense = np.linalg.eigvalsh(dense_hessian(EnergyModel(cfg), z))
    vals, _ = lowest_eigenpairs(Hessian(EnergyModel(cfg), z), 6)
    assert dense[0] < -0.1
    np.testing.assert_allclose(vals, dense[:6], rtol=0, atol=1e-6)


@pytest.mark.parametrize("method", ["lbfgs", "trust-krylov"])
def test_relaxed_state_phase_mode_is_exact_zero(method):
    cfg, z = _quench_state(12, n_v=3, eta=0.4, nu=0.2)
    model = EnergyModel(cfg)
    rr = relax(model, z, residual_tol=1e-10, method=method)
    assert rr.converged and rr.residual_after <= 1e-10
    assert rr.F_after < rr.F_before
    assert rr.grad_norm_after < 1e-6 * rr.grad_norm_before
    hess = Hessian(model, rr.z)
    vals, vecs = lowest_eigenpairs(hess, 6)
    i, overlap = identify_zero_mode(vecs, rr.z)
    scale = np.abs(np.linalg.eigvalsh(dense_hessian(model, rr.z))).max()
    assert overlap > 1 - 1e-8
    assert abs(vals[i]) <= 1e-8 * scale
    # a relaxed vortex state of a minimiser: no negative directions apart from rounding
    assert vals.min() >= -1e-8 * scale


# ----------------------------------------------------------------- uniform state
@pytest.mark.parametrize("D,nu,alpha,beta", [((1.0, 1.0), 0.0, -1.0, 1.0), ((4.0, 1.0), 0.0, -1.0, 1.0),
                                             ((4.0, 1.0), 0.8, -1.0, 1.0),
                                             ((2.0, 1.5), -0.5, (-1.0, -0.6), (1.0, 1.5))])
def test_uniform_state_spectrum_is_analytic(D, nu, alpha, beta):
    cfg = SimConfig(N=8, L=5.0, D=D, nu=nu, eta=0.4, n_v=0, alpha=alpha, beta=beta)
    model = EnergyModel(cfg)
    z = uniform_state(cfg)
    assert np.abs(model.gradient(z)).max() < 1e-12  # it is stationary
    dense = np.linalg.eigvalsh(dense_hessian(model, z))
    analytic = uniform_spectrum(cfg)
    assert analytic.shape == dense.shape == (4 * 64,)
    assert np.abs(dense - analytic).max() <= 1e-10 * np.abs(analytic).max()
    # the k = 0 phase block: global phase zero mode and the Leggett mode 2h²·η(u1/u2 + u2/u1)
    assert abs(analytic[0]) < 1e-12
    h2 = cfg.h ** 2
    u1, u2 = z[0, 0, 0], z[2, 0, 0]
    leggett = 2 * h2 * 0.4 * (u1 / u2 + u2 / u1)
    assert np.min(np.abs(analytic - leggett)) < 1e-12 * np.abs(analytic).max()


def test_uniform_state_analyze_reports_zero_mode():
    cfg = SimConfig(N=8, L=5.0, eta=0.4, n_v=0)
    res = analyze(cfg, uniform_state(cfg), n_eig=6, relax=True)
    np.testing.assert_allclose(res.eigenvalues, uniform_spectrum(cfg)[:6], atol=1e-9)
    assert res.zero_mode_index == 0 and res.zero_mode_overlap > 1 - 1e-10
    assert not res.is_saddle


# ------------------------------------------------------------------------- SLQ DOS
def test_slq_density_matches_dense_spectrum():
    """W1 distance between the SLQ and exact spectral CDFs ≤ 1% of the spectral width at N = 16."""
    cfg, z = _quench_state(16, n_v=4)
    model = EnergyModel(cfg)
    lam = np.linalg.eigvalsh(dense_hessian(model, z))
    width = lam[-1] - lam[0]
    ex = exact_density(lam)
    est = slq_density(Hessian(model, z).matvec, model.size, n_probes=10, n_steps=60, seed=2)
    w1 = wasserstein1(est, ex) / width
    assert w1 <= 0.01, w1
    # a random (non-spectral) measure of the same range is far away: the metric has power
    rng = np.random.default_rng(0)
    fake = exact_density(rng.uniform(lam[0], lam[-1], lam.shape[0]))
    assert wasserstein1(fake, ex) / width > 5 * w1
    # weights are a probability measure
    assert abs(est.weights.sum() - 1) < 1e-12 and np.all(est.weights >= 0)
    assert abs(np.sum(est.density * np.diff(est.edges)) - 1) < 1e-12


# ----------------------------------------------------------------- library API, I/O
def test_analyze_and_save_roundtrip(tmp_path):
    cfg, z = _quench_state(10, n_v=2, eta=0.6, nu=0.0)
    res = analyze(cfg, z, n_eig=8, dos=True, dos_probes=3, dos_steps=20)
    assert res.n_unknowns == 400 and res.eigenvalues.shape == (8,)
    assert np.all(np.diff(res.eigenvalues) >= 0)
    assert res.F_after <= res.F_before and res.grad_norm_after < res.grad_norm_before
    assert res.softest_index != res.zero_mode_index
    assert abs(np.linalg.norm(res.softest_vector) - 1) < 1e-10
    for suffix in (".h5", ".npz"):
        path = save(res, tmp_path / f"spec{suffix}")
        back = load(path)
        np.testing.assert_array_equal(back["eigenvalues"], res.eigenvalues)
        assert back["config"] == res.config
        assert back["summary"]["zero_mode_index"] == res.zero_mode_index
        np.testing.assert_array_equal(back["dos_density"], res.dos.density)
        again = load_result(path)
        assert again.zero_mode_index == res.zero_mode_index and again.config == res.config
        np.testing.assert_array_equal(again.softest_vector, res.softest_vector)


def test_bad_input_errors():
    cfg = SimConfig(N=6, L=4.0)
    with pytest.raises(ConfigError, match="shape"):
        analyze(cfg, np.zeros((3, 6, 6)))
    with pytest.raises(ConfigError, match="N=6"):
        analyze(cfg, np.ones((4, 8, 8)))
    with pytest.raises(ConfigError, match="n_eig"):
        analyze(cfg, uniform_state(cfg.replace(eta=0.1)), n_eig=200, relax=False)
    with pytest.raises(ConfigError, match="HVP method"):
        Hessian(EnergyModel(cfg), np.ones(144), method="bogus")


# ----------------------------------------------------------------------------- CLI
def test_cli_json(tmp_path):
    from click.testing import CliRunner

    from tdglnre.cli.main import cli

    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["hessian", "--N", "8", "--L", "5", "--eta", "0.5", "--n-v", "2", "--t", "0.2",
                                 "--seed", "3", "--n-eig", "6", "--dos", "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    for key in ("eigenvalues", "zero_mode_index", "F_before", "F_after", "grad_norm_before",
                "grad_norm_after", "n_unknowns", "wall_seconds"):
        assert key in d
    assert d["n_unknowns"] == 256 and len(d["eigenvalues"]) == 6
    assert d["eigenvalues"] == sorted(d["eigenvalues"])
    assert abs(d["eigenvalues"][d["zero_mode_index"]]) < 1e-8 * d["lambda_max_est"]
    files = {p.name for p in out.iterdir()}
    assert {"spectrum.h5", "dos.png", "lowest_eigenvalues.png", "softest_mode.png"} <= files


def test_cli_errors(tmp_path):
    from click.testing import CliRunner

    from tdglnre.cli.main import cli

    r = CliRunner().invoke(cli, ["hessian", "--N", "8", "--nu", "9", "--out", str(tmp_path)])
    assert r.exit_code != 0 and "nu" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(cli, ["hessian", "--data", str(tmp_path / "missing.h5"), "--index", "0",
                                 "--out", str(tmp_path)])
    assert r.exit_code != 0 and "missing.h5" in r.output


def test_cli_data_and_preset_give_the_same_sample(tmp_path):
    """Sample k of `generate --preset P --seed S --store-fields` analysed from the file and re-simulated."""
    from click.testing import CliRunner

    from tdglnre.cli.main import cli

    sets = ["--set", "N=8", "--set", "L=5", "--set", "snapshot_times=0.3"]
    f = tmp_path / "e.h5"
    r = CliRunner().invoke(cli, ["generate", "--preset", "quick", *sets, "--n-samples", "2", "--seed", "4",
                                 "--out", str(f), "--store-fields", "--quiet"])
    assert r.exit_code == 0, r.output
    r1 = CliRunner().invoke(cli, ["hessian", "--data", str(f), "--index", "1", "--out", str(tmp_path / "a"),
                                  "--n-eig", "5", "--json"])
    r2 = CliRunner().invoke(cli, ["hessian", "--preset", "quick", *sets, "--seed", "4", "--index", "1",
                                  "--out", str(tmp_path / "b"), "--n-eig", "5", "--json"])
    assert r1.exit_code == 0 and r2.exit_code == 0, (r1.output, r2.output)
    a, b = json.loads(r1.stdout), json.loads(r2.stdout)
    assert (a["eta"], a["n_v"], a["nu"]) == (b["eta"], b["n_v"], b["nu"])
    np.testing.assert_allclose(a["eigenvalues"], b["eigenvalues"], rtol=0, atol=1e-9)
    r3 = CliRunner().invoke(cli, ["hessian", "--data", str(f), "--index", "7", "--out", str(tmp_path / "c")])
    assert r3.exit_code == 1 and "out of range" in r3.output


# ------------------------------------------------- options, in-memory API (issue 10)
@pytest.mark.parametrize("bad,match", [
    ({"residual_tol": float("nan")}, "residual_tol must be finite and > 0"),
    ({"residual_tol": -1.0}, "residual_tol must be finite and > 0"),
    ({"residual_tol": float("inf")}, "residual_tol must be finite and > 0"),
    ({"residual_tol": 0.0}, "residual_tol must be finite and > 0"),
    ({"n_eig": 0}, "n_eig must be an integer >= 1"),
    ({"n_eig": True}, "n_eig must be an integer >= 1"),
    ({"n_eig": 2.5}, "n_eig must be an integer >= 1"),
    ({"eig_tol": -1e-3}, "eig_tol must be finite and >= 0"),
    ({"zero_tol": float("nan")}, "zero_tol must be finite and >= 0"),
    ({"dos_probes": 0}, "dos_probes"),
    ({"seed": -1}, "seed must be an integer >= 0"),
    ({"blas_thread_limit": 0}, "blas_thread_limit"),
    ({"relax": "yes"}, "relax must be True or False"),
    ({"eig_method": "qr"}, "unknown eigensolver method 'qr'"),
    ({"hvp_method": "bogus"}, "unknown HVP method"),
    ({"relax_method": "sgd"}, "unknown relaxation method"),
])
def test_options_are_validated_on_construction(bad, match):
    with pytest.raises(ConfigError, match=match):
        HessianOptions(**bad)


def test_options_frozen_replace_and_unknown_keys():
    import dataclasses

    opts = HessianOptions(n_eig=np.int64(6), residual_tol=1)
    assert opts.n_eig == 6 and type(opts.n_eig) is int and opts.residual_tol == 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.n_eig = 3
    assert opts.replace(dos=True).dos and not opts.dos
    with pytest.raises(ConfigError, match=r"unknown Hessian option.*'n_eigs'"):
        opts.replace(n_eigs=3)
    cfg = SimConfig(N=6, L=4.0)
    with pytest.raises(ConfigError, match=r"unknown Hessian option.*'tol'"):
        analyze(cfg, uniform_state(cfg), tol=1e-3)
    with pytest.raises(ConfigError, match="residual_tol"):  # the shorthand validates as the dataclass does
        analyze(cfg, uniform_state(cfg), residual_tol=float("nan"))
    with pytest.raises(ConfigError, match="n_eig must be in 1..143"):  # before any relaxation work
        analyze(cfg, uniform_state(cfg), HessianOptions(n_eig=144))


def test_hessian_pipeline_returns_in_memory_result_with_relaxation(tmp_path, monkeypatch):
    """hessian() writes nothing; the result holds the RelaxResult, the options and the source."""
    monkeypatch.chdir(tmp_path)
    src = FromParams(N=8, L=5.0, eta=0.5, n_v=2, nu=0.0, t=0.2, seed=3)
    opts = HessianOptions(n_eig=6, seed=3)
    res = hessian(src, opts)
    assert list(tmp_path.iterdir()) == []
    assert isinstance(res.relaxation, RelaxResult) and res.relaxed and res.relax_converged
    assert res.F_after == res.relaxation.F_after < res.F_before
    assert res.state.shape == (4, 8, 8) and np.shares_memory(res.state, res.relaxation.z)
    assert res.options is opts and res.source == src.record()
    assert res.summary()["source"]["t"] == 0.2
    # same state analysed directly: identical spectrum
    cfg, psi, params = src.resolve()
    direct = analyze(cfg, psi, opts, eta=params["eta"], n_v=params["n_v"], nu=params["nu"])
    np.testing.assert_array_equal(direct.eigenvalues, res.eigenvalues)
    # the phase mode is an exact zero mode of the relaxed vortex state
    assert abs(res.zero_mode_eigenvalue) < 1e-8 * res.lambda_max_est
    # Ritz values interlace: the Lanczos estimate of lambda_min is not below the true lowest eigenvalue
    assert res.eigenvalues[0] <= res.lambda_min_est + 1e-12 * res.lambda_max_est
    lines = res.report().splitlines()
    assert lines[0].startswith("N=8 (256 unknowns)") and "lowest:" in lines[-1]


def test_result_save_plot_and_file_roundtrip_keep_every_field(tmp_path):
    """save(dir) + from_file restore lambda_min_est (dropped before), the relaxation, options and source."""
    res = hessian(FromParams(N=8, L=5.0, eta=0.6, n_v=1, t=0.2, seed=2), HessianOptions(n_eig=5, dos=True,
                                                                                        dos_probes=2, dos_steps=10))
    path = res.save(tmp_path / "new")
    assert path == tmp_path / "new" / "spectrum.h5"
    figs = res.plot(tmp_path / "new")
    assert {p.name for p in figs} == {"dos.png", "lowest_eigenvalues.png", "softest_mode.png"}
    assert all(p.stat().st_size > 1000 for p in figs)
    for f in (path, res.to_file(tmp_path / "r.npz")):
        back = HessianResult.from_file(f)
        assert np.isfinite(res.lambda_min_est) and back.lambda_min_est == res.lambda_min_est
        assert back.relaxation.n_lbfgs == res.relaxation.n_lbfgs > 0
        assert back.relaxation.message == res.relaxation.message
        assert back.F_before == res.F_before and back.residual_after == res.residual_after
        np.testing.assert_array_equal(back.state, res.state)
        assert back.options == res.options and back.source == res.source
        assert back.summary() == res.summary()
    with pytest.raises(ConfigError, match="does not exist"):
        HessianResult.from_file(tmp_path / "missing.h5")


def test_analyze_limits_blas_threads_and_restores_them():
    """BLAS runs single-threaded during analyze (threadpoolctl) and its thread count is restored after."""
    from threadpoolctl import threadpool_info

    def blas_threads() -> set[int]:
        return {d["num_threads"] for d in threadpool_info() if d["user_api"] == "blas"}

    if not blas_threads():
        pytest.skip("no BLAS library visible to threadpoolctl")
    seen: list[set[int]] = []
    cfg = SimConfig(N=6, L=4.0, eta=0.4, n_v=0)
    with threadpool_limits(limits=2, user_api="blas"):
        before = blas_threads()
        opts = HessianOptions(n_eig=3, dos=True, dos_probes=2, dos_steps=5)  # "dos" progress: one call per probe
        analyze(cfg, uniform_state(cfg), opts, progress=lambda *a: seen.append(blas_threads()))
        assert blas_threads() == before
        analyze(cfg, uniform_state(cfg), opts, blas_thread_limit=None,
                progress=lambda *a: seen.append({-1} | blas_threads()))
    limited = [s for s in seen if -1 not in s]
    assert limited and all(s == {1} for s in limited)
    assert all(s - {-1} == before for s in seen if -1 in s)


def test_wasserstein1_of_point_masses_and_shifts():
    """W1(δ_0, δ_3) = 3; shifting a measure by c moves it by |c|; weights matter."""
    from tdglnre.analysis.slq import SpectralDensity

    def measure(nodes, weights):
        nodes, weights = np.asarray(nodes, float), np.asarray(weights, float)
        return SpectralDensity(nodes, weights, np.array([-10.0, 10.0]), np.array([0.05]), 1, 1)

    assert wasserstein1(measure([0.0], [1.0]), measure([3.0], [1.0])) == pytest.approx(3.0)
    lam = np.random.default_rng(1).normal(size=40)
    a = exact_density(lam)
    assert wasserstein1(a, exact_density(lam + 0.7)) == pytest.approx(0.7)
    # mass 0.9 at 0 and 0.1 at 1 versus all at 0: W1 = 0.1
    assert wasserstein1(measure([0.0, 1.0], [0.9, 0.1]), measure([0.0], [1.0])) == pytest.approx(0.1)


def test_plots_module_leaves_the_matplotlib_backend_alone():
    import subprocess
    import sys

    code = ("import matplotlib; matplotlib.use('svg'); import tdglnre.plots.hessian; "
            "print(matplotlib.get_backend())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "svg"


@pytest.mark.parametrize("args,match", [(["--tol", "nan"], "--tol must be finite and > 0"),
                                        (["--tol", "-1"], "--tol must be finite and > 0"),
                                        (["--seed", "-2"], "--seed must be an integer >= 0"),
                                        (["--N", "4", "--L", "3", "--n-v", "1", "--n-eig", "100"],
                                         "--n-eig must be in 1..63")])
def test_cli_failures_leave_no_out_directory(tmp_path, args, match):
    """Bad options fail with one line naming the flag, and --out is not created (it used to be left empty)."""
    from click.testing import CliRunner

    from tdglnre.cli.main import cli

    out = tmp_path / "never"
    r = CliRunner().invoke(cli, ["hessian", "--N", "6", "--L", "4", "--t", "0.1", *args, "--out", str(out)])
    assert r.exit_code == 1, r.output
    assert match in r.output and "Traceback" not in r.output
    assert not out.exists()


def test_files_without_options_still_load_and_foreign_files_are_refused(tmp_path):
    """A spectrum.h5 of the earlier layout (no options attribute, no lambda_min_est) loads; others are refused."""
    import h5py

    from tdglnre.analysis.hessian import io

    cfg = SimConfig(N=6, L=4.0, eta=0.4, n_v=0)
    res = analyze(cfg, uniform_state(cfg), n_eig=4, relax=False, eig_method="lanczos")
    # a stationary state analysed as is: the "relaxation" is the identity and converged
    assert res.relaxation.message == "not relaxed" and res.relaxation.n_lbfgs == 0
    assert res.F_before == res.F_after and res.relax_converged
    old = {k: v for k, v in res.summary().items()
           if k not in ("lambda_min_est", "relax_iterations", "newton_steps", "relax_message", "hvp_step",
                        "zero_tol", "device", "gpu_name")}
    path = io.write(tmp_path / "old.h5", {"eigenvalues": res.eigenvalues, "softest_mode": res.softest_vector,
                                          "state": res.state},
                    {"config": cfg.to_json(), "summary": json.dumps(old)})
    back = load_result(path)
    assert np.isnan(back.lambda_min_est) and back.options.eig_method == "lanczos"
    assert (back.device, back.gpu_name, back.options.device) == ("cpu", "", "cpu")  # before issue 11: the CPU
    np.testing.assert_array_equal(back.eigenvalues, res.eigenvalues)
    assert back.relaxation.message == "not relaxed" and not back.relaxed
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.attrs["format"] = "tdglnre-ensemble"
    with pytest.raises(ConfigError, match="not a tdglnre-hessian file"):
        load_result(tmp_path / "other.h5")
    with pytest.raises(ConfigError, match=r"must end in \.h5, \.hdf5 or \.npz"):
        res.to_file(tmp_path / "spec.txt")


def test_cli_device_auto_says_when_it_ran_on_the_cpu(tmp_path):
    """Issue 18: --device auto on a machine without a usable GPU says so in the report and the JSON."""
    from click.testing import CliRunner

    from tdglnre.cli.main import cli

    args = ["hessian", "--N", "6", "--L", "4", "--t", "0.1", "--n-eig", "4", "--device", "auto"]
    r = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "a"), "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    on_cpu = d["device"] == "cpu"
    assert on_cpu == any(n.startswith("device auto: ran on the CPU (") for n in d.get("notes", []))
    r = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "b")])
    assert r.exit_code == 0 and ("device auto: ran on the CPU (" in r.output) == on_cpu, r.output
    # an explicit --device cpu is what was asked for: no note
    r = CliRunner().invoke(cli, [*args[:-2], "--out", str(tmp_path / "c"), "--json"])
    assert r.exit_code == 0 and "notes" not in json.loads(r.stdout)


def test_run_hessian_names_its_arguments_and_writes_only_on_success(tmp_path):
    from tdglnre.workflows.hessian import run_hessian

    with pytest.raises(ConfigError, match=r"^`n_eig` must be an integer >= 1, got 0$"):
        run_hessian(tmp_path / "a", N=6, L=4.0, t=0.1, n_eig=0)
    with pytest.raises(ConfigError, match=r"^`seed` must be an integer >= 0"):
        run_hessian(tmp_path / "a", N=6, L=4.0, t=0.1, seed=-1)
    with pytest.raises(ConfigError, match="`data` needs `index`"):
        run_hessian(tmp_path / "a", data=tmp_path / "e.h5")
    with pytest.raises(ConfigError, match="`out` must be a file or directory path"):
        run_hessian(3)
    assert not (tmp_path / "a").exists()
    run = run_hessian(tmp_path / "a", N=6, L=4.0, t=0.1, n_eig=4)
    assert run.notes == [] and run.files[0].endswith("spectrum.h5") and all(Path(f).exists() for f in run.files)
