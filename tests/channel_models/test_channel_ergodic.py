"""Ergodic spectral efficiency against independent references: Monte Carlo, Jensen, high-SNR asymptote."""
import numpy as np
import pytest
from scipy import integrate, special

from channel_models import (ValidityRangeError, ergodic_rate_bps, ergodic_spectral_efficiency_rayleigh,
                            ergodic_spectral_efficiency_rician)
from channel_models.ergodic import scaled_exp1

SNR_DB = np.array([-10.0, 0.0, 10.0, 20.0, 30.0, 40.0])
K_VALUES = [0.0, 1.0, 10 ** 0.9, 100.0]


@pytest.mark.parametrize("k", K_VALUES)
def test_monte_carlo_within_three_standard_errors(k):
    rng = np.random.default_rng(12345)
    n = 1_000_000
    mu = np.sqrt(k / (k + 1))
    sigma = np.sqrt(1 / (k + 1))
    h = mu + sigma * (rng.standard_normal(n) + 1j * rng.standard_normal(n)) / np.sqrt(2)
    power = np.abs(h) ** 2
    assert power.mean() == pytest.approx(1.0, abs=5e-3)
    snr = 10 ** (SNR_DB / 10)
    got = ergodic_spectral_efficiency_rician(snr, k)
    for s, g in zip(snr, got):
        samples = np.log2(1 + s * power)
        se = samples.std() / np.sqrt(n)
        assert abs(g - samples.mean()) < 3 * se, (k, s, g, samples.mean(), se)
    if k == 0:
        np.testing.assert_allclose(ergodic_spectral_efficiency_rayleigh(snr), got, rtol=1e-12)


def test_rician_matches_quadrature_over_the_noncentral_chi_square_density():
    for k in K_VALUES[1:]:
        for s in (0.1, 10.0, 1e4):
            def pdf(x):
                a = k + 1
                z = 2 * np.sqrt(k * a * x)
                return a * np.exp(-k - a * x + z) * special.i0e(z)
            ref, _ = integrate.quad(lambda x: np.log2(1 + s * x) * pdf(x), 0, 60, limit=400,
                                    points=[1.0], epsabs=0, epsrel=1e-11)
            assert ergodic_spectral_efficiency_rician(s, k) == pytest.approx(ref, rel=1e-7)


def test_jensen_bound_and_monotonicity_in_k():
    snr = np.logspace(-3, 6, 50)
    upper = np.log2(1 + snr)
    prev = np.zeros_like(snr)
    for k in [0.0, 0.5, 1.0, 10.0, 100.0, 1e4]:
        se = ergodic_spectral_efficiency_rician(snr, k)
        assert np.all(se <= upper * (1 + 1e-12))
        assert np.all(se >= prev * (1 - 1e-12))  # less fading, closer to the bound
        assert np.all(np.diff(se) > 0)  # increasing in snr
        prev = se
    np.testing.assert_allclose(ergodic_spectral_efficiency_rician(snr, 1e8), upper, rtol=1e-6)


def test_rayleigh_high_snr_asymptote_and_low_snr_limit():
    snr = np.array([1e4, 1e6, 1e8])
    asym = np.log2(snr) - np.euler_gamma / np.log(2)
    err = np.abs(ergodic_spectral_efficiency_rayleigh(snr) - asym)
    assert np.all(err < (np.log2(snr) + 2) / snr)  # the gap is (ln snr + 1 - gamma) / (snr ln 2) + ...
    tiny = np.array([1e-3, 1e-6, 1e-300])
    np.testing.assert_allclose(ergodic_spectral_efficiency_rayleigh(tiny), tiny / np.log(2), rtol=2e-3)
    assert ergodic_spectral_efficiency_rayleigh(0.0) == 0.0
    assert ergodic_spectral_efficiency_rician(0.0, 3.0) == 0.0


def test_scaled_exp1_is_continuous_across_the_asymptotic_switch_and_finite_beyond_overflow():
    x = np.array([499.999, 500.0, 500.001, 700.0, 710.0, 1e4, 1e300])
    y = scaled_exp1(x)
    assert np.all(np.isfinite(y)) and np.all(y > 0)
    assert y[0] == pytest.approx(y[2], rel=1e-5)
    # reference from mpmath-free identity: e^x E1(x) = ∫_0^∞ e^{-t} / (x + t) dt
    for xi, yi in zip(x[:6], y[:6]):
        ref, _ = integrate.quad(lambda t: np.exp(-t) / (xi + t), 0, np.inf, epsabs=0, epsrel=1e-12)
        assert yi == pytest.approx(ref, rel=1e-10)
    assert y[-1] == pytest.approx(1e-300, rel=1e-12)


def test_vectorised_shapes_and_rate():
    snr = np.full((3, 5), 10.0)
    k = np.array([[0.0], [1.0], [100.0]])
    se = ergodic_spectral_efficiency_rician(snr, k)
    assert se.shape == (3, 5)
    assert np.all(se[0] < se[1]) and np.all(se[1] < se[2])
    rate = ergodic_rate_bps(np.full((3, 5), 0.1), 1e-10, 360e3, 1e-20, k)
    expected = 360e3 * ergodic_spectral_efficiency_rician(0.1 * 1e-10 / (1e-20 * 360e3), k)
    np.testing.assert_allclose(rate, np.broadcast_to(expected, (3, 5)))


def test_invalid_inputs_raise_validity_range_error():
    with pytest.raises(ValidityRangeError, match="snr_linear"):
        ergodic_spectral_efficiency_rayleigh(-1.0)
    with pytest.raises(ValidityRangeError, match="snr_linear"):
        ergodic_spectral_efficiency_rician(np.nan, 1.0)
    with pytest.raises(ValidityRangeError, match="k_factor_linear"):
        ergodic_spectral_efficiency_rician(1.0, -0.5)
    with pytest.raises(ValidityRangeError, match="k_factor_linear"):
        ergodic_spectral_efficiency_rician(1.0, np.inf)
