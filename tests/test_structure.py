"""S(k, t): shells centred on 2πm/L, Parseval, plane waves, exact binning (docs/physics.md)."""

from __future__ import annotations

import numpy as np
import pytest

from tdglnre.analysis.structure import (
    mode_structure_factor,
    radial_structure_factor,
    shell_index,
    structure_series,
)


def _plane_wave(N, L, mx, my, amp=0.3):
    y, x = np.meshgrid(np.arange(N) * L / N, np.arange(N) * L / N, indexing="ij")
    return 1.0 + amp * np.cos(2 * np.pi * (mx * x + my * y) / L)


@pytest.mark.parametrize("mx,my", [(3, 0), (0, 5), (3, 4), (7, 0)])
def test_plane_wave_puts_all_power_in_its_shell(mx, my):
    N, L = 32, 16.0
    k, S, counts = radial_structure_factor(_plane_wave(N, L, mx, my), L)
    m = round(np.hypot(mx, my))
    power = S * counts
    assert np.argmax(power) == m - 1
    assert k[m - 1] == pytest.approx(2 * np.pi * m / L)  # shell centred on 2πm/L
    # all the variance (amp²/2) sits in that one shell
    assert power[m - 1] == pytest.approx(0.3 ** 2 / 2, rel=1e-12)
    assert np.delete(power, m - 1).max() < 1e-25


def test_parseval_sum_of_S_equals_the_variance():
    rng = np.random.default_rng(3)
    f = rng.normal(size=(5, 24, 24)) ** 2
    P = mode_structure_factor(f)
    np.testing.assert_allclose(P.sum(axis=(-2, -1)), f.var(axis=(-2, -1)), rtol=1e-12)
    _, S, counts = radial_structure_factor(f, 12.0)
    np.testing.assert_allclose((S * counts).sum(axis=-1), f.var(axis=(-2, -1)), rtol=1e-12)


def test_axis_wavevectors_land_in_their_own_shell_N48_L24():
    # the old binning put the axis modes on shell edges: m = 7 and 14 fell in the wrong shell
    N, L = 48, 24.0
    shell = shell_index(N)
    for m in range(1, N // 2 + 1):
        assert shell[0, m] == m and shell[m, 0] == m and shell[0, -m] == m
        k, S, counts = radial_structure_factor(_plane_wave(N, L, m, 0), L)
        assert np.argmax(S * counts) == m - 1


def test_shells_follow_the_exact_integer_rule():
    N = 40
    mm = np.rint(np.fft.fftfreq(N) * N).astype(int)
    q = mm[:, None] ** 2 + mm[None, :] ** 2
    shell = shell_index(N)
    nz = shell > 0
    assert np.all(shell[nz] ** 2 - shell[nz] + 1 <= q[nz])
    assert np.all(q[nz] <= shell[nz] ** 2 + shell[nz])
    assert shell[0, 0] == 0 and np.count_nonzero(shell == 0) == 1


def test_structure_series_matches_a_direct_fft():
    rng = np.random.default_rng(0)
    S_, T, N = 3, 2, 16
    x = rng.random((S_, T, N, N, 3)).astype(np.float32)
    ser = structure_series(x, 8.0, ("rho1", "rho2", "curlJ"), times=np.array([1.0, 2.0]))
    assert ser.S["curlJ"].shape == (S_, T, len(ser.k))
    d = x[1, 1, ..., 0].astype(np.float64)
    F = np.fft.fft2(d - d.mean())
    direct = np.abs(F) ** 2 / N ** 4
    shell = shell_index(N)
    for m in (1, 2, 5):
        assert ser.S["rho1"][1, 1, m - 1] == pytest.approx(direct[shell == m].mean(), rel=1e-12)
    mean, se = ser.mean("rho1")
    np.testing.assert_allclose(mean, ser.S["rho1"].mean(axis=0))
    assert np.all(se > 0)
