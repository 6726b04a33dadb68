"""OFDMA rates and power allocation, checked against explicit loops, KKT conditions and scipy."""

import math

import numpy as np
import pytest
from scipy.optimize import minimize

from channel_models import (Band, client_rates_bps, min_power_for_rate_w, min_power_for_rate_w_batched,
                            noise_psd_w_per_hz, nr_rb_bandwidth_hz, nr_subchannel_bandwidth_hz,
                            subchannel_rate_bps, water_filling_power_w, water_filling_power_w_batched)
from fsllm_sim.errors import ValidityRangeError

N0 = noise_psd_w_per_hz()


def rate_sum_bps(p, g, b):
    return sum(bi * math.log2(1 + pi * gi / (N0 * bi)) for pi, gi, bi in zip(p, g, b))


def instance(rng, s, deep_fades=2):
    """Gains around a cell-edge link, bandwidths unequal, a few subchannels in deep fades."""
    g = 1e-12 * rng.exponential(size=s)
    g[rng.choice(s, deep_fades, replace=False)] *= 1e-4
    b = rng.choice([180e3, 360e3, 720e3, 1440e3], size=s)
    return g, b


# ---------------------------------------------------------------- bands and numerology

def test_nr_numerology():
    assert nr_rb_bandwidth_hz(0) == 180e3
    assert nr_rb_bandwidth_hz(1) == 360e3
    assert nr_rb_bandwidth_hz(4) == 12 * 15e3 * 16
    assert nr_subchannel_bandwidth_hz(4, 1) == 1.44e6
    with pytest.raises(ValidityRangeError, match=r"numerology_mu=5.0 outside the validity range \[0, 4\]"):
        nr_rb_bandwidth_hz(5)
    with pytest.raises(ValidityRangeError, match="numerology_mu=1.5 is not an integer"):
        nr_rb_bandwidth_hz(1.5)


def test_band():
    band = Band.uniform("s", 32, 360e3)
    assert band.num_subchannels == 32
    assert band.total_bandwidth_hz == pytest.approx(11.52e6)
    assert Band.nr("s", 32, 1, 1) == band
    with pytest.raises(ValueError):
        band.bandwidth_hz[0] = 1.0
    src = np.array([180e3, 360e3])
    b2 = Band("f", src)
    src[0] = 1.0
    assert b2.bandwidth_hz[0] == 180e3
    with pytest.raises(ValidityRangeError, match=r"Band\(x\): bandwidth_hz=-1.0"):
        Band("x", np.array([1e3, -1.0]))
    with pytest.raises(ValidityRangeError, match="num_subchannels=0.0"):
        Band.uniform("x", 0, 1e3)


# ---------------------------------------------------------------- rates

def test_subchannel_rate_by_hand_and_broadcast():
    # SNR = 0.2 * 1e-12 / (N0 * 360e3) with N0 = 10^-19.7 W/Hz.
    snr = 0.2 * 1e-12 / (10 ** -19.7 * 360e3)
    assert subchannel_rate_bps(360e3, 0.2, 1e-12, N0) == pytest.approx(360e3 * math.log2(1 + snr), rel=1e-12)
    out = subchannel_rate_bps(np.array([180e3, 360e3]), 0.1, np.array([[1e-12], [1e-13]]), N0)
    assert out.shape == (2, 2)
    assert out[1, 0] == pytest.approx(180e3 * math.log2(1 + 0.1 * 1e-13 / (N0 * 180e3)))
    # Low SNR keeps precision (log1p): rate ~ p g / (N0 ln 2).
    tiny = subchannel_rate_bps(1e6, 1e-30, 1e-12, N0)
    assert tiny == pytest.approx(1e-30 * 1e-12 / (N0 * math.log(2)), rel=1e-9)
    with pytest.raises(ValidityRangeError, match="power_w=-0.1"):
        subchannel_rate_bps(1e5, -0.1, 1e-12, N0)


def test_client_rates_against_loop():
    rng = np.random.default_rng(3)
    k, s = 4, 12
    assign = rng.integers(-1, k, size=s)
    power = rng.uniform(0.0, 0.05, size=s)
    gain = 1e-12 * rng.exponential(size=(k, s))
    bw = rng.choice([180e3, 360e3], size=s)
    want = [0.0] * k
    for i in range(s):
        if assign[i] >= 0:
            want[assign[i]] += bw[i] * math.log2(1 + power[i] * gain[assign[i], i] / (N0 * bw[i]))
    np.testing.assert_allclose(client_rates_bps(assign, power, gain, bw, N0, k), want, rtol=1e-12)
    # A client without subchannels gets 0; the power of unused subchannels is ignored.
    none = client_rates_bps(np.full(s, -1), power, gain, bw, N0, k)
    assert np.all(none == 0.0)


def test_client_rates_errors():
    g = np.ones((2, 3)) * 1e-12
    with pytest.raises(ValidityRangeError, match=r"assign=2.0 outside the validity range \[-1, 1\]"):
        client_rates_bps(np.array([0, 2, -1]), np.ones(3), g, 1e5, N0, 2)
    with pytest.raises(ValidityRangeError, match=r"gain has shape \(2, 3\), expected \(3, 3\)"):
        client_rates_bps(np.array([0, 1, -1]), np.ones(3), g, 1e5, N0, 3)


# ---------------------------------------------------------------- water-filling

def scipy_max_rate(g, b, p_max):
    scale = 1e-6  # Mbit/s keeps SLSQP's gradients O(1)

    def neg(p):
        return -scale * np.sum(b * np.log2(1 + np.maximum(p, 0) * g / (N0 * b)))

    def grad(p):
        return -scale * b * (g / (N0 * b)) / (np.log(2) * (1 + np.maximum(p, 0) * g / (N0 * b)))

    res = minimize(neg, np.full(g.size, p_max / g.size), jac=grad, method="SLSQP",
                   bounds=[(0, p_max)] * g.size,
                   constraints=[{"type": "ineq", "fun": lambda p: p_max - p.sum(),
                                 "jac": lambda p: -np.ones_like(p)}],
                   options={"ftol": 1e-15, "maxiter": 2000})
    # SLSQP may overshoot the budget by rounding; project back so its rate is a feasible one.
    p = np.maximum(res.x, 0.0)
    p *= min(1.0, p_max / p.sum())
    return p, rate_sum_bps(p, g, b)


@pytest.mark.parametrize("seed", range(6))
def test_water_filling_matches_scipy(seed):
    rng = np.random.default_rng(seed)
    s = int(rng.integers(3, 10))
    g, b = instance(rng, s)
    p_max = float(rng.choice([0.01, 0.2, 1.0]))
    p = water_filling_power_w(g, b, N0, p_max)
    p_ref, r_ref = scipy_max_rate(g, b, p_max)
    r = rate_sum_bps(p, g, b)
    assert np.all(p >= 0) and p.sum() == pytest.approx(p_max, rel=1e-12)
    assert r >= r_ref * (1 - 1e-12)  # never worse than the numerical optimiser
    assert r == pytest.approx(r_ref, rel=1e-6)
    np.testing.assert_allclose(p, p_ref, atol=1e-4 * p_max)


def test_water_filling_kkt_and_deep_fades():
    rng = np.random.default_rng(11)
    g, b = instance(rng, 9, deep_fades=3)
    p = water_filling_power_w(g, b, N0, 0.2)
    deep = g < 1e-15
    assert np.all(p[deep] == 0.0)
    # dR/dp_i = g_i / (ln2 (N0 + p_i g_i / B_i)) equals lambda on active subchannels,
    # and is <= lambda at p_i = 0 on inactive ones.
    slope = g / (math.log(2) * (N0 + p * g / b))
    active = p > 0
    lam = slope[active].mean()
    np.testing.assert_allclose(slope[active], lam, rtol=1e-9)
    assert np.all(slope[~active] <= lam * (1 + 1e-12))


def test_water_filling_equal_gains_split_by_bandwidth():
    b = np.array([180e3, 360e3, 720e3])
    p = water_filling_power_w(np.full(3, 1e-12), b, N0, 0.7)
    np.testing.assert_allclose(p, 0.7 * b / b.sum(), rtol=1e-12)


def test_water_filling_edge_cases():
    assert np.all(water_filling_power_w(np.array([1e-12, 2e-12]), 1e5, N0, 0.0) == 0.0)
    assert np.all(water_filling_power_w(np.zeros(3), 1e5, N0, 0.2) == 0.0)
    p = water_filling_power_w(np.array([0.0, 1e-12, 0.0]), 1e5, N0, 0.2)
    np.testing.assert_allclose(p, [0.0, 0.2, 0.0])
    with pytest.raises(ValidityRangeError, match="p_max_w=-1.0"):
        water_filling_power_w(np.ones(2), 1e5, N0, -1.0)
    with pytest.raises(ValidityRangeError, match="gain has 2 dimensions, expected 1"):
        water_filling_power_w(np.ones((2, 2)), 1e5, N0, 1.0)


def test_batched_water_filling_equals_per_client_with_mask():
    rng = np.random.default_rng(5)
    k, s = 5, 16
    g = 1e-12 * rng.exponential(size=(k, s))
    b = rng.choice([180e3, 360e3], size=s)
    owner = rng.integers(0, k, size=s)
    mask = owner[None, :] == np.arange(k)[:, None]
    p_max = rng.uniform(0.05, 0.3, size=k)
    p = water_filling_power_w_batched(g, b, N0, p_max, mask=mask)
    assert np.all(p[~mask] == 0.0)
    for c in range(k):
        own = mask[c]
        np.testing.assert_allclose(p[c, own], water_filling_power_w(g[c, own], b[own], N0, p_max[c]),
                                   rtol=1e-12, atol=0)


# ---------------------------------------------------------------- minimum power for a rate

def scipy_min_power(g, b, rate):
    scale = 1e-6

    def cons(p):
        return scale * (np.sum(b * np.log2(1 + np.maximum(p, 0) * g / (N0 * b))) - rate)

    def cons_grad(p):
        return scale * b * (g / (N0 * b)) / (math.log(2) * (1 + np.maximum(p, 0) * g / (N0 * b)))

    p0 = np.ones(g.size)
    while cons(p0) < 0:  # start feasible: SLSQP's line search struggles from the infeasible side
        p0 *= 2.0
    res = minimize(lambda p: p.sum(), p0, jac=lambda p: np.ones_like(p), method="SLSQP",
                   bounds=[(0, None)] * g.size,
                   constraints=[{"type": "ineq", "fun": cons, "jac": cons_grad}],
                   options={"ftol": 1e-12, "maxiter": 2000})
    assert res.success
    return res.x, res.fun


@pytest.mark.parametrize("seed", range(5))
def test_min_power_matches_scipy_and_reaches_rate(seed):
    rng = np.random.default_rng(100 + seed)
    s = int(rng.integers(3, 9))
    g, b = instance(rng, s)
    rate = float(rng.uniform(1e6, 2e7))
    p, total = min_power_for_rate_w(g, b, N0, rate)
    assert rate_sum_bps(p, g, b) == pytest.approx(rate, rel=1e-9)
    assert total == pytest.approx(p.sum())
    _, total_ref = scipy_min_power(g, b, rate)
    assert total <= total_ref * (1 + 1e-6)
    assert total == pytest.approx(total_ref, rel=1e-4)


@pytest.mark.parametrize("seed", range(4))
def test_min_power_inverts_water_filling(seed):
    rng = np.random.default_rng(200 + seed)
    g, b = instance(rng, 10)
    p_max = 0.2
    p = water_filling_power_w(g, b, N0, p_max)
    p_inv, total = min_power_for_rate_w(g, b, N0, rate_sum_bps(p, g, b))
    assert total == pytest.approx(p_max, rel=1e-9)
    np.testing.assert_allclose(p_inv, p, atol=1e-9 * p_max)


def test_min_power_edge_cases_and_batch():
    p, total = min_power_for_rate_w(np.array([1e-12, 1e-13]), 1e5, N0, 0.0)
    assert total == 0.0 and np.all(p == 0.0)
    p, total = min_power_for_rate_w(np.zeros(3), 1e5, N0, 1e6)
    assert total == np.inf  # no usable subchannel: infeasible
    rng = np.random.default_rng(9)
    g = 1e-12 * rng.exponential(size=(3, 6))
    b = np.full(6, 360e3)
    mask = np.array([[1, 1, 0, 0, 0, 0], [0, 0, 1, 1, 1, 0], [0, 0, 0, 0, 0, 0]], bool)
    rates = np.array([5e6, 8e6, 1e6])
    pb, tb = min_power_for_rate_w_batched(g, b, N0, rates, mask=mask)
    for c in range(2):
        pc, tc = min_power_for_rate_w(g[c, mask[c]], b[mask[c]], N0, rates[c])
        assert tb[c] == pytest.approx(tc, rel=1e-12)
        np.testing.assert_allclose(pb[c, mask[c]], pc, rtol=1e-12)
    assert tb[2] == np.inf
    with pytest.raises(ValidityRangeError, match="rate_bps=-5.0"):
        min_power_for_rate_w(np.ones(2), 1e5, N0, -5.0)
