"""LOS probability against TR 38.901 Table 7.4.2-1, re-written per point with ``math``."""

import math

import numpy as np
import pytest

from channel_models import draw_los, los_probability
from fsllm_sim.errors import ValidityRangeError


def ref(scenario, d, h_ut):
    if scenario == "rma":
        return 1.0 if d <= 10 else math.exp(-(d - 10) / 1000)
    if d <= 18:
        return 1.0
    if scenario == "umi":
        return 18 / d + math.exp(-d / 36) * (1 - 18 / d)
    c = 0.0 if h_ut <= 13 else ((h_ut - 13) / 10) ** 1.5
    # The table's product slightly exceeds 1 just past 18 m for tall UTs; a probability caps at 1.
    return min(1.0, (18 / d + math.exp(-d / 63) * (1 - 18 / d)) * (1 + c * 1.25 * (d / 100) ** 3 * math.exp(-d / 150)))


DISTANCES = [0.0, 5.0, 10.0, 12.0, 18.0, 18.5, 35.0, 60.0, 100.0, 250.0, 500.0, 2000.0]


@pytest.mark.parametrize("scenario,h_ut", [("uma", 1.5), ("uma", 13.0), ("uma", 17.0), ("uma", 23.0),
                                           ("umi", 1.5), ("rma", 1.5)])
def test_matches_table(scenario, h_ut):
    got = los_probability(scenario, np.array(DISTANCES), h_ut)
    want = [ref(scenario, d, h_ut) for d in DISTANCES]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    assert np.all((got >= 0) & (got <= 1))


def test_literals():
    # UMa, d = 100 m, h_UT = 1.5 m: 0.18 + exp(-100/63) * 0.82 = 0.34768.
    assert los_probability("uma", 100.0, 1.5) == pytest.approx(0.34768, abs=1e-5)
    # h_UT = 20 m: C' = 0.7^1.5 = 0.58566; factor 1 + 0.58566 * 1.25 * exp(-2/3) = 1.37585.
    assert los_probability("uma", 100.0, 20.0) == pytest.approx(0.34768 * 1.37585, abs=1e-4)
    assert los_probability("umi", 100.0) == pytest.approx(0.18 + 0.82 * math.exp(-100 / 36), abs=1e-12)
    assert los_probability("rma", 1010.0) == pytest.approx(math.exp(-1.0))
    assert np.all(los_probability("uma", np.array([1.0, 10.0, 18.0]), 1.5) == 1.0)
    assert np.all(los_probability("umi", np.array([1.0, 18.0])) == 1.0)


def test_tall_ut_raises_uma_probability_only_above_13m():
    d = np.array([50.0, 150.0, 400.0])
    low = los_probability("uma", d, 13.0)
    high = los_probability("uma", d, 22.0)
    np.testing.assert_allclose(low, los_probability("uma", d, 1.5))
    assert np.all(high > low)


def test_uma_tall_ut_cap():
    raw = (18 / 18.5 + math.exp(-18.5 / 63) * (1 - 18 / 18.5)) * (
        1 + 1.25 * (18.5 / 100) ** 3 * math.exp(-18.5 / 150))
    assert raw > 1.0
    assert los_probability("uma", 18.5, 23.0) == 1.0


def test_log_distance_is_always_nlos():
    assert np.all(los_probability("log-distance", np.array([10.0, 100.0])) == 0.0)


def test_draw_los_frequency_and_reproducibility():
    p = np.array([0.0, 0.3, 1.0])
    draws = draw_los(np.random.default_rng(1), np.tile(p, (100000, 1)))
    freq = draws.mean(axis=0)
    assert freq[0] == 0.0 and freq[2] == 1.0
    assert freq[1] == pytest.approx(0.3, abs=0.005)
    np.testing.assert_array_equal(draw_los(np.random.default_rng(7), p), draw_los(np.random.default_rng(7), p))


def test_errors():
    with pytest.raises(ValidityRangeError, match=r"h_ut_m=30.0 outside the validity range \[1.5, 23\] m"):
        los_probability("uma", 100.0, 30.0)
    with pytest.raises(ValidityRangeError, match="d_2d_m=-1.0"):
        los_probability("umi", -1.0)
    with pytest.raises(ValidityRangeError, match="probability=1.5"):
        draw_los(np.random.default_rng(0), 1.5)
