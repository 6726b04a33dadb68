"""Spatial consistency along a path: the exponential process has autocorrelation exp(-d/d_corr) whatever
the steps, keeps an N(0, 1) marginal, and the LOS state built from it has the table's probability."""
import numpy as np
import pytest
from scipy import stats
from scipy.special import ndtr

from channel_models.errors import ValidityRangeError
from channel_models.spatial_consistency import (correlated_gaussian_path, correlated_gaussian_step,
                                                gaussian_for_state,
                                                los_correlation_distance_m, los_from_gaussian, path_correlation)

N = 20_000  # independent clients walking the same kind of path


def walk(steps_m, d_corr, seed=3):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(N)
    out = [z]
    for step in steps_m:
        z = correlated_gaussian_step(rng, z, np.full(N, step), d_corr)
        out.append(z)
    return np.array(out)


@pytest.mark.parametrize("steps", [[1.0] * 40, [0.3, 2.2, 0.5, 1.0, 4.0, 2.0] * 5])
def test_autocorrelation_along_a_path_is_exponential_in_the_distance(steps):
    d_corr = 10.0
    z = walk(steps, d_corr)
    travelled = np.concatenate([[0.0], np.cumsum(steps)])
    tol = 4.0 / np.sqrt(N)
    checked = 0
    for target in (0.5 * d_corr, d_corr, 2 * d_corr):
        j = int(np.argmin(np.abs(travelled - target)))
        corr = np.mean(z[0] * z[j])
        assert corr == pytest.approx(np.exp(-travelled[j] / d_corr), abs=tol)
        checked += 1
    assert checked == 3
    assert np.mean(z[-1]) == pytest.approx(0.0, abs=tol) and np.var(z[-1]) == pytest.approx(1.0, abs=0.04)


def test_no_movement_keeps_the_value():
    rng = np.random.default_rng(0)
    z = rng.standard_normal(5)
    assert np.array_equal(correlated_gaussian_step(rng, z, np.zeros(5), 13.0), z)
    assert path_correlation(13.0, 13.0) == pytest.approx(np.exp(-1.0))


def test_a_state_drawn_first_gives_a_uniform_phi_and_is_recovered():
    rng = np.random.default_rng(11)
    p = rng.random(N)
    state = rng.random(N) < p
    z = gaussian_for_state(rng, state, p)
    assert stats.kstest(ndtr(z), "uniform").pvalue > 1e-3
    assert np.array_equal(los_from_gaussian(z, p), state)


def test_los_state_correlation_distances_of_table_7_6_3_1_2():
    assert [los_correlation_distance_m(s) for s in ("uma", "umi", "rma")] == [50.0, 50.0, 60.0]
    with pytest.raises(ValidityRangeError):
        los_correlation_distance_m("log-distance")


def test_the_compiled_path_equals_one_step_at_a_time_bit_for_bit():
    """Rule: correlated_gaussian_path (its recursion compiled) gives the bits of n calls of
    correlated_gaussian_step drawing the same innovations, pauses (no movement) included."""
    moved = np.random.default_rng(3).uniform(0.0, 2.0, (300, 40))
    moved[100:120] = 0.0
    z0 = np.random.default_rng(4).standard_normal(40)
    rng = np.random.default_rng(5)
    z, want = z0, []
    for row in moved:
        z = correlated_gaussian_step(rng, z, row, 13.0)
        want.append(z)
    w = np.random.default_rng(5).standard_normal((300, 40))
    got = correlated_gaussian_path(z0, np.exp(-moved / 13.0), w)
    np.testing.assert_array_equal(got, np.array(want))
    np.testing.assert_array_equal(z0, np.random.default_rng(4).standard_normal(40))  # z_prev is not written
