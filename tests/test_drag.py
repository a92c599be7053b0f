"""Drag science (issue 12): S(k, t) of stored channels, the `structure` CLI, the old structure_factor's
binning, and the ν = 0 / ν > 0 model comparison on an analytic toy (docs/drag.md)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from tdglnre.analysis.structure import shell_index


@pytest.fixture(scope="module")
def tiny_ensemble(tmp_path_factory):
    """8 samples of drag-quick at N = 8, L = 4, two snapshots, with ψ stored."""
    from tdglnre.cli.main import cli

    path = tmp_path_factory.mktemp("drag") / "tiny.h5"
    res = CliRunner().invoke(cli, ["generate", "--preset", "drag-quick", "--n-samples", "8", "--seed", "3",
                                   "--set", "N=8", "--set", "L=4", "--set", "snapshot_times=[0.1,0.2]",
                                   "--store-fields", "--out", str(path), "-q"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return path


def _structure(*args):
    from tdglnre.cli.structure import command

    return CliRunner().invoke(command, list(args), catch_exceptions=False)


def test_S_k_t_of_stored_channels_equals_a_direct_fft_of_the_file(tiny_ensemble):
    import h5py

    from tdglnre.workflows.structure import structure

    res = structure(data=tiny_ensemble, all=True)
    with h5py.File(tiny_ensemble, "r") as f:
        x = f["x"][()].astype(np.float64)
        psi = f["psi"][()]
    S_, T, N = x.shape[0], x.shape[1], x.shape[2]
    assert set(res.channels) == {"rho1", "rho2", "curlJ", "cos_dphi"}
    shell = shell_index(N)
    for c, name in enumerate(("rho1", "rho2", "curlJ")):
        for s in (0, 5):
            for t in range(T):
                d = x[s, t, ..., c] - x[s, t, ..., c].mean()
                direct = np.abs(np.fft.fft2(d)) ** 2 / N ** 4
                for m in range(1, shell.max() + 1):
                    assert res.series.S[name][s, t, m - 1] == pytest.approx(direct[shell == m].mean(),
                                                                            rel=1e-9, abs=1e-30)
                # Parseval: the shells hold the whole variance
                assert (res.series.S[name][s, t] * res.series.counts).sum() == pytest.approx(d.var(), rel=1e-9)
    # the interband phase channel from ψ: cos(φ1 − φ2) = Re(ψ1 ψ2*) / |ψ1 ψ2|
    z = psi[2, 1, 0].astype(np.complex128) * np.conj(psi[2, 1, 1])
    c = z.real / np.abs(z)
    direct = np.abs(np.fft.fft2(c - c.mean())) ** 2 / N ** 4
    assert res.series.S["cos_dphi"][2, 1, 0] == pytest.approx(direct[shell == 1].mean(), rel=1e-6)
    # ensemble means are the sample means; the standard error is std/√n
    mean, se = res.series.mean("rho1")
    np.testing.assert_allclose(mean, res.series.S["rho1"].mean(axis=0))
    np.testing.assert_allclose(se, res.series.S["rho1"].std(axis=0, ddof=1) / np.sqrt(S_))


def test_structure_cli_end_to_end(tiny_ensemble, tmp_path):
    out = tmp_path / "s"
    r = _structure("--data", str(tiny_ensemble), "--all", "--out", str(out), "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["n_samples"] == 8 and d["t"] == [0.1, 0.2]
    assert len(d["S"]["rho1"]) == 2 and len(d["S"]["rho1"][0]) == len(d["k"])
    assert d["k"][0] == pytest.approx(2 * np.pi / 4)  # first shell centred on 2π/L
    # ν bins cover every sample once; the fingerprint has one S(k*, t) curve per bin
    assert sum(g["n"] for g in d["groups"]["nu"]) == 8
    fp = d["fingerprint"]["rho1"]
    assert len(fp["groups"]) == len(d["groups"]["nu"]) and all(len(g["mean"]) == 2 for g in fp["groups"])
    saved = json.loads((out / "structure.json").read_text())
    assert saved["S"] == d["S"]
    assert {"S_rho1.png", "fingerprint_nu.png", "S_by_nu.png", "S_k_t.npz"} <= {p.name for p in out.iterdir()}
    # one sample from the file and the same sample simulated afresh from the preset agree (same seed, index 0)
    r1 = _structure("--data", str(tiny_ensemble), "--index", "0", "--out", str(tmp_path / "one"), "--json",
                    "--no-plots")
    r2 = _structure("--preset", "drag-quick", "--set", "N=8", "--set", "L=4", "--set", "snapshot_times=[0.1,0.2]",
                    "--seed", "3", "--out", str(tmp_path / "sim"), "--json", "--no-plots")
    assert r1.exit_code == 0 and r2.exit_code == 0, r1.output + r2.output
    a, b = json.loads(r1.output), json.loads(r2.output)
    np.testing.assert_allclose(a["S"]["rho1"], b["S"]["rho1"], rtol=1e-4)
    assert sorted(p.name for p in (tmp_path / "one").iterdir()) == ["S_k_t.npz", "structure.json"]


def test_structure_cli_refuses_bad_input_in_one_line(tiny_ensemble, tmp_path):
    r = _structure("--data", str(tiny_ensemble), "--index", "99", "--out", str(tmp_path / "a"))
    assert r.exit_code == 1 and "--index 99 out of range" in r.output and len(r.output.strip().splitlines()) == 1
    r = _structure("--preset", "drag-quick", "--out", str(tmp_path / "b"))
    assert r.exit_code == 2 and "--preset needs --seed" in r.output
    r = _structure("--data", str(tmp_path / "missing.h5"), "--out", str(tmp_path / "c"))
    assert r.exit_code == 1 and "does not exist" in r.output
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()


def test_parameter_bins_give_nu_zero_its_own_group():
    from tdglnre.analysis.structure import parameter_bins

    nu = np.r_[np.zeros(5), np.linspace(0.01, 0.5, 10)]
    g = parameter_bins(nu, 2, 0.0, 0.5)
    assert [(lo, hi, int(m.sum())) for lo, hi, m in g] == [(0.0, 0.0, 5), (0.0, 0.25, 5), (0.25, 0.5, 5)]
    assert sum(int(m.sum()) for *_, m in g) == nu.size


def test_old_structure_factor_bins_N48_L24_axis_modes_into_their_own_shell():
    from tdglnre.physics.observables import structure_factor

    N, L = 48, 24.0
    x = np.arange(N) * L / N
    for m in range(1, N // 2 + 1):  # m = 7 and 14 fell in the wrong shell before
        rho = 1.0 + 0.2 * np.cos(2 * np.pi * m * x / L)[None, :] * np.ones((N, 1))
        k, S = structure_factor(rho, L)
        peak = int(np.argmax(S))
        assert k[peak] == pytest.approx(2 * np.pi * m / L)  # shell centred on the mode
        assert S[peak] > 1e6 * np.delete(S, peak).max()
    # Parseval normalisation: a plane wave of amplitude a holds a²/2 in its 2·... modes' shell
    rho = 1.0 + 0.2 * np.cos(2 * np.pi * 7 * x / L)[None, :] * np.ones((N, 1))
    k, S = structure_factor(rho, L)
    counts = np.bincount(shell_index(N).ravel())[1:]
    assert (S * counts).sum() == pytest.approx(0.2 ** 2 / 2, rel=1e-12)
    # a stack is averaged; n_bins keeps the first shells
    k3, S3 = structure_factor(np.stack([rho, rho]), L, n_bins=3)
    np.testing.assert_allclose(S3, S[:3])
    assert len(k3) == 3


def test_model_comparison_recovers_the_analytic_bayes_factor_of_a_gaussian_toy():
    """x | ν ~ N(ν, σ²); M0: ν = 0, M1: ν ~ N(0, τ²): B10(x) = N(x; 0, σ²+τ²) / N(x; 0, σ²)."""
    from tdglnre.nre.infer.model_comparison import fit_model_classifier, reliability, roc_auc

    rng = np.random.default_rng(0)
    sig, tau = 1.0, 2.0
    n0, n1 = 4000, 2000  # unbalanced on purpose: the Bayes factor removes the training odds log(n1/n0)
    x0 = rng.normal(0.0, sig, (n0, 1))
    x1 = rng.normal(0.0, np.hypot(sig, tau), (n1, 1))
    clf = fit_model_classifier(x0, x1, epochs=40, hidden=(32, 32), batch_size=256, learning_rate=3e-3, seed=0)
    xs = np.linspace(-2.5, 2.5, 51)[:, None]
    s2 = sig ** 2 + tau ** 2
    true = -0.5 * np.log(s2 / sig ** 2) + 0.5 * xs[:, 0] ** 2 * (1 / sig ** 2 - 1 / s2)
    est = clf.log_bayes_factor(xs)
    assert np.abs(est - true).max() < 0.35, np.abs(est - true).max()
    assert np.abs(est - true).mean() < 0.15
    # the posterior model probability under equal prior mass is calibrated on fresh draws
    t0 = rng.normal(0.0, sig, (3000, 1))
    t1 = rng.normal(0.0, np.hypot(sig, tau), (3000, 1))
    p = clf.p_drag(np.concatenate([t0, t1]))
    y = np.r_[np.zeros(3000), np.ones(3000)]
    assert reliability(p, y, 10)["ece"] < 0.05
    # and ranks as well as the exact Bayes factor does
    exact = np.concatenate([t0, t1])[:, 0] ** 2
    assert roc_auc(p, y) == pytest.approx(roc_auc(exact, y), abs=0.01)


def test_roc_auc_and_reliability_on_known_cases():
    from tdglnre.nre.infer.model_comparison import reliability, roc_auc

    assert roc_auc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 1.0
    assert roc_auc([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1]) == 0.0
    assert roc_auc([0.5, 0.5, 0.5, 0.5], [0, 1, 0, 1]) == 0.5  # ties count ½
    rng = np.random.default_rng(1)
    p = rng.random(20000)
    y = rng.random(20000) < p  # labels drawn with the predicted probability: perfectly calibrated
    rel = reliability(p, y, 10)
    assert rel["ece"] < 0.02 and sum(rel["count"]) == 20000


def _drag_study():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "drag_study.py"
    spec = importlib.util.spec_from_file_location("drag_study", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_drag_study_snr_and_ridge_measure_a_planted_nu_signal():
    """log S(k, t) = 20ν·[k = k0, t = 0] + unit noise: SNR at (t0, k0) is 20·Δν̄ / spread, nowhere else."""
    ds = _drag_study()
    rng = np.random.default_rng(4)
    n, T, M = 4000, 3, 6
    nu = rng.uniform(0, 0.5, n)
    logS = rng.normal(size=(n, T, M))
    logS[:, 0, 2] += 20.0 * nu  # strong signal at t index 0, shell 2
    tab = ds.snr_table(logS, nu, (0.0, 0.1), (0.4, 0.5))
    # mean ν of the bins is 0.05 and 0.45: the planted difference is 20·0.4 = 8; the spread within a bin is
    # the unit noise plus 20² times the variance of ν uniform over a width-0.1 bin, 0.1²/12
    assert tab["snr"][0, 2] == pytest.approx(8.0 / np.sqrt(1 + 400 * 0.01 / 12), rel=0.05)
    assert np.delete(tab["snr"].ravel(), 2).max() < 0.3
    r0 = ds.ridge_cv(logS[:, 0], nu)
    r1 = ds.ridge_cv(logS[:, 1], nu)
    # ν = (log S − noise)/20: the residual MAE is E|noise|/20 = 0.8/20 = 0.04, R² = 1 − (1/400)/var(ν)
    assert r0["mae"] == pytest.approx(np.sqrt(2 / np.pi) / 20, rel=0.1)
    assert r0["r2"] == pytest.approx(1 - (1 / 400) / (0.25 / 12), abs=0.03)
    assert r1["r2"] < 0.01 and r1["mae"] == pytest.approx(0.125, rel=0.05)  # no signal: the prior MAE


def test_saved_classifier_gives_p_drag_from_raw_observations(tmp_path):
    """Fields whose fluctuations are 2× larger under M1 (S(k) up by 4 at every k) are told apart;
    the saved classifier applies its recorded log S(k, t) features to raw (T, N, N, C) observations."""
    from tdglnre.nre.infer.model_comparison import fit_model_classifier, p_drag, structure_features

    rng = np.random.default_rng(7)
    n, T, N, L = 300, 2, 8, 4.0
    x0 = rng.normal(size=(n, T, N, N, 1))
    x1 = 2.0 * rng.normal(size=(n, T, N, N, 1))
    spec = {"kind": "log_structure", "L": L, "floor": None}
    clf = fit_model_classifier(structure_features(x0, L), structure_features(x1, L), epochs=30, hidden=(16,),
                               learning_rate=3e-3, seed=1, features=spec)
    clf.save(tmp_path / "mc")
    t0 = rng.normal(size=(50, T, N, N, 1))
    t1 = 2.0 * rng.normal(size=(50, T, N, N, 1))
    p0, p1 = p_drag(tmp_path / "mc", t0), p_drag(tmp_path / "mc", t1)
    assert np.median(p0) < 0.1 and np.median(p1) > 0.9
    np.testing.assert_allclose(p1, clf.p_drag(structure_features(t1, L)), rtol=1e-5)
    # one observation (T, N, N, C) gives one probability; prior odds enter as log(π1/π0)
    one = p_drag(tmp_path / "mc", t1[0], prior_p=0.2)
    lbf = clf.log_bayes_factor(structure_features(t1[:1], L))
    assert one.shape == (1,) and one[0] == pytest.approx(1 / (1 + np.exp(-(lbf[0] + np.log(0.25)))), rel=1e-5)


def test_conditional_snr_removes_the_eta_and_n_v_spread():
    """log S = 3η² + 0.5 n_v + 2ν + 0.1·noise: marginally η and n_v swamp ν; at fixed (η, n_v) ν stands out."""
    ds = _drag_study()
    rng = np.random.default_rng(5)
    n = 4000
    eta, n_v, nu = rng.uniform(0, 1.5, n), rng.integers(1, 9, n).astype(float), rng.uniform(0, 0.5, n)
    logS = (3 * eta ** 2 + 0.5 * n_v + 2 * nu + 0.1 * rng.normal(size=n))[:, None, None]
    marginal = ds.snr_table(logS, nu, (0.0, 0.1), (0.4, 0.5))["snr"][0, 0]
    cond = ds.snr_table(ds.residualize(logS, eta, n_v), nu, (0.0, 0.1), (0.4, 0.5))["snr"][0, 0]
    assert marginal < 0.6
    # residual spread at fixed (η, n_v): 0.1 noise plus 2ν's spread within a bin (2·0.1/√12); difference 2·0.4
    assert cond == pytest.approx(0.8 / np.sqrt(0.01 + 0.04 / 12), rel=0.1)


def test_temperature_scaling_undoes_an_overconfident_logit():
    """Labels drawn with P = σ(z) while the classifier reports 3z: the fitted temperature is 3."""
    from tdglnre.nre.infer.model_comparison import fit_temperature

    rng = np.random.default_rng(2)
    z = rng.normal(0.0, 2.0, 200000)
    y = rng.random(z.size) < 1.0 / (1.0 + np.exp(-z))
    assert fit_temperature(3.0 * z, y) == pytest.approx(3.0, rel=0.03)
    assert fit_temperature(z, y) == pytest.approx(1.0, rel=0.03)


def test_drag_figures_plot_the_measured_numbers(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from tdglnre.nre.infer.model_comparison import auc_by_nu, reliability
    from tdglnre.plots.structure import plot_auc_by_nu, plot_reliability, plot_snr

    rng = np.random.default_rng(3)
    p0, p1, nu1 = rng.random(300) * 0.5, 0.5 + rng.random(300) * 0.5, rng.uniform(0, 0.5, 300)
    rel = reliability(np.r_[p0, p1], np.r_[np.zeros(300), np.ones(300)], 5)
    fig = plot_reliability(rel)
    x, y = fig.axes[0].lines[1].get_data()  # lines[0] is the diagonal
    np.testing.assert_allclose(x, [v for v in rel["predicted"] if v is not None])
    np.testing.assert_allclose(y, [v for v in rel["observed"] if v is not None])
    rows = auc_by_nu(p0, p1, nu1)
    assert all(r["auc"] == 1.0 for r in rows)  # every ν > 0 score exceeds every ν = 0 score
    assert plot_auc_by_nu(rows, tmp_path / "auc.png") == tmp_path / "auc.png" and (tmp_path / "auc.png").exists()
    fig = plot_snr(np.array([0.5, 1.0]), {"rho1": np.array([3.0, 1.0])})
    np.testing.assert_allclose(fig.axes[0].lines[0].get_ydata(), [3.0, 1.0])


def test_time_encoder_shares_its_cnn_over_snapshots_and_pools_over_time(tmp_path):
    import keras

    from tdglnre.nre.settings import NetworkConfig
    from tdglnre.nre.net.time_encoder import build_time_encoder

    cfg = NetworkConfig(filters=(4, 8), embed_dim=8)
    C = 3
    enc2 = build_time_encoder(cfg, 2 * C, 2)
    enc5 = build_time_encoder(cfg, 5 * C, 5)
    n_weights = lambda m: sum(int(np.prod(w.shape)) for w in m.trainable_weights)  # noqa: E731
    # weights shared by all snapshots: only the time embedding (T × D) grows with T
    assert n_weights(enc5) - n_weights(enc2) == 3 * cfg.embed_dim
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 16, 16, 5 * C)).astype(np.float32)
    h = np.asarray(enc5(x))
    assert h.shape == (4, cfg.embed_dim)
    # mean/max pooling over time: with the (initially zero) time embedding, the order of snapshots is irrelevant
    perm = [3, 0, 4, 1, 2]
    xp = x.reshape(4, 16, 16, 5, C)[:, :, :, perm].reshape(4, 16, 16, 5 * C)
    np.testing.assert_allclose(np.asarray(enc5(xp)), h, rtol=1e-5, atol=1e-6)
    # it saves and loads without custom objects, like the stacked encoder, and encodes the same
    enc5.save(tmp_path / "enc.keras")
    back = keras.saving.load_model(tmp_path / "enc.keras")
    np.testing.assert_allclose(np.asarray(back(x)), h, rtol=1e-6)
