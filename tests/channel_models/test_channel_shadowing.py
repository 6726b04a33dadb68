import numpy as np
import pytest

from channel_models import draw_shadowing_db, shadowing_correlation_distance_m, shadowing_std_db
from fsllm_sim.errors import ValidityRangeError


def test_std_per_table():
    los = np.array([True, False])
    np.testing.assert_array_equal(shadowing_std_db("uma", los), [4.0, 6.0])
    np.testing.assert_array_equal(shadowing_std_db("umi", los), [4.0, 7.82])
    np.testing.assert_array_equal(
        shadowing_std_db("rma", np.array([True, True, False]), beyond_breakpoint=np.array([False, True, True])),
        [4.0, 6.0, 8.0])
    assert shadowing_std_db("rma", False) == 8.0
    np.testing.assert_array_equal(shadowing_std_db("log-distance", los), [8.0, 8.0])
    np.testing.assert_array_equal(shadowing_std_db("log-distance", los, log_distance_std_db=10.0), [10.0, 10.0])
    assert shadowing_correlation_distance_m("uma", True) == 37.0
    assert shadowing_correlation_distance_m("umi", False) == 13.0


def test_rma_los_needs_breakpoint_side():
    with pytest.raises(ValidityRangeError, match="beyond_breakpoint is required"):
        shadowing_std_db("rma", np.array([True, False]))


def test_independent_draws_have_per_client_std():
    pos = np.array([[0.0, 50.0], [0.0, 51.0], [100.0, 0.0]])
    std = np.array([4.0, 6.0, 8.0])
    x = draw_shadowing_db(np.random.default_rng(0), pos, std, num_draws=40000)
    assert x.shape == (40000, 3)
    np.testing.assert_allclose(x.std(axis=0), std, rtol=0.02)
    np.testing.assert_allclose(x.mean(axis=0), 0.0, atol=0.1)
    # Close clients are still independent without a correlation distance.
    assert abs(np.corrcoef(x[:, 0], x[:, 1])[0, 1]) < 0.02
    assert draw_shadowing_db(np.random.default_rng(0), pos, std).shape == (3,)


def test_correlated_draws_follow_exponential_model():
    pos = np.array([[0.0, 0.0], [10.0, 0.0], [30.0, 40.0], [150.0, 0.0], [150.0, 0.0]])
    std = np.array([4.0, 6.0, 6.0, 8.0, 8.0])
    d_corr = 50.0
    x = draw_shadowing_db(np.random.default_rng(1), pos, std, correlation_distance_m=d_corr, num_draws=60000)
    np.testing.assert_allclose(x.std(axis=0), std, rtol=0.02)
    emp = np.corrcoef(x.T)
    for a in range(5):
        for b in range(5):
            dist = np.hypot(*(pos[a] - pos[b]))
            assert emp[a, b] == pytest.approx(np.exp(-dist / d_corr), abs=0.02)


def test_reproducible_and_errors():
    pos = np.array([[0.0, 1.0], [5.0, 5.0]])
    a = draw_shadowing_db(np.random.default_rng(3), pos, 6.0, correlation_distance_m=37.0)
    b = draw_shadowing_db(np.random.default_rng(3), pos, 6.0, correlation_distance_m=37.0)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValidityRangeError, match="correlation_distance_m=0.0"):
        draw_shadowing_db(np.random.default_rng(3), pos, 6.0, correlation_distance_m=0.0)
    with pytest.raises(ValidityRangeError, match=r"positions_m has shape \(2,\), expected \(K, 2\)"):
        draw_shadowing_db(np.random.default_rng(3), np.array([1.0, 2.0]), 6.0)
    with pytest.raises(ValidityRangeError, match="std_db=-1.0"):
        draw_shadowing_db(np.random.default_rng(3), pos, -1.0)
