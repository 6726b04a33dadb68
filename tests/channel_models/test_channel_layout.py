import numpy as np
import pytest
from scipy import stats

from channel_models import distances_2d_m, place_clients_in_disc
from fsllm_sim.errors import ValidityRangeError


def test_inside_annulus_and_area_uniform():
    r_max, r_min = 300.0, 35.0
    pos = place_clients_in_disc(np.random.default_rng(0), 20000, r_max, r_min)
    assert pos.shape == (20000, 2)
    r = distances_2d_m(pos)
    assert r.min() >= r_min and r.max() <= r_max
    # Radial CDF of an area-uniform annulus: (r^2 - r0^2) / (R^2 - r0^2).
    ks = stats.kstest(r, lambda x: (np.clip(x, r_min, r_max) ** 2 - r_min**2) / (r_max**2 - r_min**2))
    assert ks.pvalue > 0.01
    # A radius uniform in [r0, R] (the classic mistake) is rejected by the same test.
    wrong = stats.kstest(r, stats.uniform(loc=r_min, scale=r_max - r_min).cdf)
    assert wrong.pvalue < 1e-6
    angle = np.arctan2(pos[:, 1], pos[:, 0])
    assert stats.kstest(angle, stats.uniform(loc=-np.pi, scale=2 * np.pi).cdf).pvalue > 0.01


def test_reproducible_and_distances():
    a = place_clients_in_disc(np.random.default_rng(5), 8, 300.0, 35.0)
    np.testing.assert_array_equal(a, place_clients_in_disc(np.random.default_rng(5), 8, 300.0, 35.0))
    np.testing.assert_allclose(distances_2d_m(np.array([[3.0, 4.0], [0.0, -2.0]])), [5.0, 2.0])
    assert distances_2d_m(np.array([[3.0, 4.0]]), bs_position_m=(3.0, 0.0))[0] == pytest.approx(4.0)


def test_errors():
    rng = np.random.default_rng(0)
    with pytest.raises(ValidityRangeError, match=r"min_distance_m=400.0 outside the validity range \[0, 300\] m"):
        place_clients_in_disc(rng, 4, 300.0, 400.0)
    with pytest.raises(ValidityRangeError, match="num_clients=0.0"):
        place_clients_in_disc(rng, 0, 300.0)
