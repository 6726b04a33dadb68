import math

import numpy as np
import pytest

from channel_models import db_to_linear, dbm_to_w, linear_to_db, noise_power_w, noise_psd_w_per_hz, w_to_dbm
from fsllm_sim.errors import ValidityRangeError


def test_literal_conversions():
    assert dbm_to_w(23.0) == pytest.approx(0.19953, abs=5e-6)
    assert dbm_to_w(30.0) == pytest.approx(1.0)
    assert dbm_to_w(43.0) == pytest.approx(19.953, abs=5e-4)
    assert w_to_dbm(1e-3) == pytest.approx(0.0, abs=1e-12)
    assert db_to_linear(3.0) == pytest.approx(1.99526, abs=5e-6)
    assert linear_to_db(100.0) == pytest.approx(20.0)
    assert linear_to_db(0.0) == -np.inf and w_to_dbm(0.0) == -np.inf


def test_round_trips_vectorised():
    x = np.linspace(-150.0, 60.0, 57).reshape(3, 19)
    np.testing.assert_allclose(w_to_dbm(dbm_to_w(x)), x, atol=1e-10)
    np.testing.assert_allclose(linear_to_db(db_to_linear(x)), x, atol=1e-10)
    assert dbm_to_w(x).shape == x.shape


def test_noise_psd_literal():
    # -174 dBm/Hz + 7 dB = -167 dBm/Hz = 10^(-16.7) mW/Hz.
    assert noise_psd_w_per_hz() == pytest.approx(10 ** (-16.7) / 1000, rel=1e-12)
    # kT at 290 K is -173.975 dBm/Hz: the -174 convention is within 0.03 dB of physics.
    kt = 1.380649e-23 * 290.0
    assert 10 * math.log10(kt * 1e3) == pytest.approx(-174.0, abs=0.03)


def test_noise_power_over_band():
    # 360 kHz at N0 = -167 dBm/Hz: -167 + 10 log10(360e3) = -111.44 dBm.
    assert w_to_dbm(noise_power_w(360e3)) == pytest.approx(-167 + 10 * math.log10(360e3), abs=1e-9)
    np.testing.assert_allclose(noise_power_w(np.array([1.0, 2.0]), -174.0, 0.0),
                               [10 ** -20.4, 2 * 10 ** -20.4])


def test_noise_errors():
    msg = r"noise_power_w: bandwidth_hz=-1.0 outside the validity range \(0, inf\) Hz"
    with pytest.raises(ValidityRangeError, match=msg):
        noise_power_w(-1.0)
    with pytest.raises(ValidityRangeError, match="noise_figure_db=-3.0"):
        noise_psd_w_per_hz(-174.0, -3.0)
