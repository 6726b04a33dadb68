"""Block-fading statistics: power, Rician K, Gauss-Markov correlation, frequency correlation,
marginal laws (KS tests against scipy.stats), reproducibility."""

import math

import numpy as np
import pytest
from scipy import integrate, stats

from channel_models import (BlockFading, doppler_hz, gains_from_fading, gauss_markov_rho,
                            rician_k_db_to_linear, rician_k_factor_db)
from fsllm_sim.errors import ValidityRangeError


def k_moment_estimate(power):
    """K from the normalised fourth moment m = E|h|^4 / (E|h|^2)^2 = (K^2 + 4K + 2) / (K + 1)^2,
    whose root with K >= 0 is K = sqrt(2 - m) / (1 - sqrt(2 - m))."""
    m = np.mean(power**2) / np.mean(power) ** 2
    s = math.sqrt(max(2.0 - m, 0.0))
    return s / (1.0 - s)


def lag_corr(a, b):
    return float(np.real(np.mean(b * np.conj(a))) / np.mean(np.abs(a) ** 2))


def test_doppler_and_rho_literals():
    # 3 km/h at 3.5 GHz: (3/3.6) * 3.5e9 / 299792458 = 2.916667e9 / 2.99792458e8 = 9.72895 Hz.
    assert doppler_hz(3 / 3.6, 3.5e9) == pytest.approx(9.72895, abs=1e-5)
    # J0 via its integral form (1/pi) int_0^pi cos(x sin t) dt, independent of scipy.special.
    for fd, t in [(9.72914, 0.01), (97.2914, 0.01), (30.0, 0.005), (200.0, 0.01)]:
        x = 2 * math.pi * fd * t
        j0_ref = integrate.quad(lambda th: math.cos(x * math.sin(th)), 0, math.pi)[0] / math.pi
        assert gauss_markov_rho(fd, t) == pytest.approx(j0_ref, abs=1e-10)
    assert gauss_markov_rho(0.0, 0.01) == 1.0
    assert rician_k_db_to_linear(9.0) == pytest.approx(7.943282, rel=1e-6)
    assert rician_k_db_to_linear(-np.inf) == 0.0
    assert rician_k_factor_db("uma") == (9.0, 3.5)


@pytest.mark.parametrize("k_db", [None, 3.0, 9.0, 13.0])
def test_mean_power_and_k_factor(k_db):
    k_lin = 0.0 if k_db is None else float(rician_k_db_to_linear(k_db))
    fading = BlockFading(4000, 256, k_lin, 10.0, 0.01, np.random.default_rng(1))
    for _ in range(2):  # first (stationary draw) and a later block
        power = np.abs(fading.next_block()) ** 2
        assert power.mean() == pytest.approx(1.0, rel=0.01)
        if k_db is None:
            m = np.mean(power**2) / np.mean(power) ** 2
            assert m == pytest.approx(2.0, rel=0.01)  # exponential power: E p^2 = 2 (E p)^2
        else:
            assert k_moment_estimate(power) == pytest.approx(k_lin, rel=0.05)


def test_marginal_laws_ks():
    k_lin = float(rician_k_db_to_linear(9.0))
    rng = np.random.default_rng(2)
    ray = BlockFading(100, 200, 0.0, 5.0, 0.01, rng).next_block().ravel()
    assert stats.kstest(np.abs(ray) ** 2, stats.expon().cdf).pvalue > 0.01
    ric = BlockFading(100, 200, k_lin, 5.0, 0.01, rng)
    for _ in range(3):
        h = ric.next_block()
    # |h| is Rice with nu^2 = K/(K+1) and 2 sigma^2 = 1/(K+1): scipy's b = nu / sigma = sqrt(2K).
    law = stats.rice(b=math.sqrt(2 * k_lin), scale=math.sqrt(1 / (2 * (k_lin + 1))))
    assert stats.kstest(np.abs(h).ravel(), law.cdf).pvalue > 0.01
    assert stats.kstest(np.abs(h).ravel(), stats.rayleigh(scale=math.sqrt(0.5)).cdf).pvalue < 1e-6


@pytest.mark.parametrize("k_lin", [0.0, 5.0])
def test_lag_correlation_is_bessel(k_lin):
    speeds_kmh = np.array([3.0, 30.0, 60.0, 120.0])
    per_group = 250
    fd = np.repeat(doppler_hz(speeds_kmh / 3.6, 3.5e9), per_group)
    fading = BlockFading(fd.size, 256, k_lin, fd, 0.01, np.random.default_rng(3))
    spec = fading.specular
    d = [fading.next_block() - spec for _ in range(3)]
    # The generator's own view of the latest diffuse part is h - specular (to float32 rounding).
    np.testing.assert_allclose(fading.diffuse, d[2], rtol=0, atol=1e-6)
    for gi, v in enumerate(speeds_kmh):
        rows = slice(gi * per_group, (gi + 1) * per_group)
        x = 2 * math.pi * (v / 3.6) * 3.5e9 / 299792458.0 * 0.01
        rho = integrate.quad(lambda th: math.cos(x * math.sin(th)), 0, math.pi)[0] / math.pi
        assert lag_corr(d[0][rows], d[1][rows]) == pytest.approx(rho, abs=0.02)
        assert lag_corr(d[1][rows], d[2][rows]) == pytest.approx(rho, abs=0.02)
        assert lag_corr(d[0][rows], d[2][rows]) == pytest.approx(rho**2, abs=0.02)  # AR(1)
        # The diffuse power stays 1/(K+1) at every block.
        assert np.mean(np.abs(d[2][rows]) ** 2) == pytest.approx(1 / (k_lin + 1), rel=0.02)


def test_specular_is_fixed_with_uniform_phase():
    k_lin = 4.0
    fading = BlockFading(300, 200, k_lin, 50.0, 0.01, np.random.default_rng(4))
    spec = fading.specular
    np.testing.assert_allclose(np.abs(spec), math.sqrt(k_lin / (k_lin + 1)), rtol=1e-6)
    assert stats.kstest((np.angle(spec).ravel() + np.pi) / (2 * np.pi), "uniform").pvalue > 0.01
    mean_h = sum(fading.next_block() for _ in range(400)) / 400
    # Averaging over blocks the diffuse part shrinks, the specular part stays.
    assert np.mean(np.abs(mean_h - spec) ** 2) < 0.1 / (k_lin + 1)


def test_subchannels_independent_without_coherence_bandwidth():
    fading = BlockFading(2000, 64, 0.0, 10.0, 0.01, np.random.default_rng(5))
    h = fading.next_block()
    h = fading.next_block()
    adj = np.real(np.mean(h[:, 1:] * np.conj(h[:, :-1])))
    assert abs(adj) < 0.01
    p = np.abs(h) ** 2
    assert abs(np.corrcoef(p[:, :-1].ravel(), p[:, 1:].ravel())[0, 1]) < 0.01


def test_coherence_bandwidth_correlation():
    s, bw, bc = 8, 360e3, 1.0e6
    fading = BlockFading(40000, s, 0.0, 50.0, 0.01, np.random.default_rng(6),
                         coherence_bandwidth_hz=bc, subchannel_bandwidth_hz=bw)
    blocks = [fading.next_block() for _ in range(6)]
    for h in (blocks[0], blocks[5]):  # stationary law and after several AR(1) steps
        cov = (h.T @ h.conj()) / h.shape[0]
        for i in range(s):
            for j in range(s):
                assert cov[i, j].real == pytest.approx(math.exp(-abs(i - j) * bw / bc), abs=0.02)
                assert abs(cov[i, j].imag) < 0.02


def test_reproducible_fresh_arrays_and_blocks_generator():
    def make(seed):
        return BlockFading(6, 5, np.array([0, 1, 2, 3, 4, 5.0]), np.linspace(1, 50, 6), 0.01,
                           np.random.default_rng(seed))

    a = list(make(7).blocks(4))
    b = list(make(7).blocks(4))
    c = list(make(8).blocks(4))
    assert len(a) == 4 and a[0].shape == (6, 5) and a[0].dtype == np.complex64
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.allclose(a[1], c[1])
    fading = make(9)
    first = fading.next_block()
    keep = first.copy()
    fading.next_block()
    np.testing.assert_array_equal(first, keep)  # an old block is not overwritten


def test_complex128_statistics():
    fading = BlockFading(2000, 128, 2.0, 20.0, 0.01, np.random.default_rng(10), dtype=np.complex128)
    h0 = fading.next_block() - fading.specular
    h1 = fading.next_block() - fading.specular
    assert h1.dtype == np.complex128
    assert np.mean(np.abs(h1) ** 2) == pytest.approx(1 / 3, rel=0.02)
    assert lag_corr(h0, h1) == pytest.approx(float(gauss_markov_rho(20.0, 0.01)), abs=0.02)


def test_gains_from_fading():
    h = np.array([[1 + 1j, 0.5], [2j, 0]])
    g = gains_from_fading(np.array([1e-10, 2e-12]), h)
    np.testing.assert_allclose(g, [[2e-10, 0.25e-10], [8e-12, 0.0]])
    with pytest.raises(ValidityRangeError, match="do not match"):
        gains_from_fading(np.ones(3), h)


def test_errors():
    rng = np.random.default_rng(0)
    with pytest.raises(ValidityRangeError, match="rician_k_linear=-1.0"):
        BlockFading(2, 3, -1.0, 1.0, 0.01, rng)
    with pytest.raises(ValidityRangeError, match=r"block_s=0.0 outside the validity range \(0, inf\) s"):
        BlockFading(2, 3, 0.0, 1.0, 0.0, rng)
    with pytest.raises(ValidityRangeError, match="subchannel_bandwidth_hz is required"):
        BlockFading(2, 3, 0.0, 1.0, 0.01, rng, coherence_bandwidth_hz=1e6)
    with pytest.raises(ValidityRangeError, match="not a numpy.random.Generator"):
        BlockFading(2, 3, 0.0, 1.0, 0.01, 42)
    with pytest.raises(ValidityRangeError, match="speed_mps=-1.0"):
        doppler_hz(-1.0, 3.5e9)
    msg = r"rician_k_linear has shape \(3,\), which does not broadcast to \(2,\)"
    with pytest.raises(ValidityRangeError, match=msg):
        BlockFading(2, 3, np.zeros(3), 1.0, 0.01, rng)
