import math

import numpy as np
import pytest

from channel_models import dbm_to_w, downlink_rate_bps, noise_psd_w_per_hz
from fsllm_sim.errors import ValidityRangeError


def test_equal_share_formula_by_hand():
    n0 = noise_psd_w_per_hz()
    p, b, g = dbm_to_w(43.0), 20e6, 1e-11
    snr = p * g / (n0 * b)
    for n in (1, 2, 8):
        want = (b / n) * math.log2(1 + snr)
        assert downlink_rate_bps(g, p, b, n0, n) == pytest.approx(want, rel=1e-12)


def test_share_equals_split_power_and_band():
    # Each client on B/n with P/n sees the same SNR as one client on B with P.
    n0 = noise_psd_w_per_hz()
    g = np.array([1e-10, 1e-12, 1e-14])
    r = downlink_rate_bps(g, 20.0, 20e6, n0, 4)
    snr_share = (20.0 / 4) * g / (n0 * 20e6 / 4)
    np.testing.assert_allclose(r, (20e6 / 4) * np.log2(1 + snr_share), rtol=1e-12)


def test_finite_and_errors():
    n0 = noise_psd_w_per_hz()
    assert np.isfinite(downlink_rate_bps(1.0, 100.0, 1e8, n0, 1))
    assert downlink_rate_bps(0.0, 20.0, 20e6, n0, 3) == 0.0
    with pytest.raises(ValidityRangeError, match=r"num_served=0.0 outside the validity range \[1, inf\)"):
        downlink_rate_bps(1e-10, 20.0, 20e6, n0, 0)
    with pytest.raises(ValidityRangeError, match="noise_psd_w_per_hz=0.0"):
        downlink_rate_bps(1e-10, 20.0, 20e6, 0.0, 1)
    with pytest.raises(ValidityRangeError, match="gain=inf"):
        downlink_rate_bps(np.inf, 20.0, 20e6, n0, 1)
    with pytest.raises(ValidityRangeError, match="num_served=1.5 is not an integer"):
        downlink_rate_bps(1e-10, 20.0, 20e6, n0, 1.5)


def test_rate_function_equals_the_checked_rate_and_checks_its_scalars():
    from channel_models import downlink_rate_bps, downlink_rate_function

    gains = np.geomspace(1e-14, 1e-7, 9)
    for n in (1, 7):
        f = downlink_rate_function(20.0, 20e6, 4e-21, n)
        assert np.array_equal(f(gains), downlink_rate_bps(gains, 20.0, 20e6, 4e-21, n))
    with pytest.raises(ValidityRangeError, match="num_served"):
        downlink_rate_function(20.0, 20e6, 4e-21, 0)
    with pytest.raises(ValidityRangeError, match="noise_psd_w_per_hz"):
        downlink_rate_function(20.0, 20e6, 0.0, 1)
