"""The radio environment of a scenario, checked against the channel models it is built from."""
import numpy as np
import pytest

import channel_models as cm
from fsllm_sim.config import scenario_from_dict
from fsllm_sim.network import build_environment


def test_default_environment_is_consistent_with_the_channel_models():
    s = scenario_from_dict({})
    env = build_environment(s)
    assert env.num_clients == 8
    assert np.all((env.distance_2d_m >= 35) & (env.distance_2d_m <= 300))
    expected_pl = cm.path_loss_db("uma", env.distance_2d_m, 3.5, 25.0, 1.5, env.los)
    assert np.allclose(env.path_loss_db, expected_pl)
    assert np.allclose(env.large_scale_gain, 10 ** (-(env.path_loss_db + env.shadowing_db) / 10))
    # Rician only for LOS clients under fading model "auto". The default draw has both kinds of client
    # (1 LOS, 7 NLOS), so the checks below compare real values; test_forced_los covers all-LOS/all-NLOS.
    assert env.los.any() and not env.los.all(), env.los
    assert np.all((env.rician_k_linear > 0) == env.los)
    assert env.rician_k_linear[env.los] == pytest.approx(np.full(int(env.los.sum()), 10 ** 0.9))
    assert np.all(env.rician_k_linear[~env.los] == 0)
    # f_D = v f_c / c at 3 km/h and 3.5 GHz
    assert env.doppler_hz == pytest.approx(3 / 3.6 * 3.5e9 / 299_792_458)
    assert env.noise_psd_w_per_hz == pytest.approx(10 ** ((-174 + 7 - 30) / 10))
    assert env.p_max_w == pytest.approx(np.full(8, 10 ** ((23 - 30) / 10)))
    assert env.s_band.num_subchannels == 32 and env.f_band.total_bandwidth_hz == pytest.approx(16 * 360e3)


def test_downlink_shares_power_and_band_equally_and_broadcast_serves_the_weakest():
    env = build_environment(scenario_from_dict({}))
    n0 = env.noise_psd_w_per_hz
    p, b = 10 ** ((43 - 30) / 10), 20e6
    expected = (b / 8) * np.log2(1 + p * env.large_scale_gain / (n0 * b))
    assert np.allclose(env.downlink_rate_bps(), expected)
    assert env.broadcast_rate_bps() == pytest.approx(b * np.log2(1 + p * env.large_scale_gain.min() / (n0 * b)))


@pytest.mark.parametrize("los, expected", [("always", True), ("never", False)])
def test_forced_los(los, expected):
    env = build_environment(scenario_from_dict({"channel": {"path_loss": {"los": los}}}))
    assert np.all(env.los == expected)
    # Rician K (TR 38.901 UMa LOS: 9 dB) on every client when all are LOS, on none otherwise
    assert env.rician_k_linear == pytest.approx(np.full(env.num_clients, 10 ** 0.9 if expected else 0.0))


def test_log_distance_and_rma_build():
    env = build_environment(scenario_from_dict({"channel": {"path_loss": {"model": "log-distance"}}}))
    assert np.allclose(env.path_loss_db, 128.1 + 37.6 * np.log10(env.distance_2d_m / 1000))
    rma = build_environment(scenario_from_dict({"channel": {"path_loss": {"model": "rma", "bs_height_m": 35.0}}}))
    assert np.all(np.isfinite(rma.path_loss_db))


def test_no_fading_option():
    env = build_environment(scenario_from_dict({"channel": {"fading": {"model": "none"}}}))
    assert not env.fading_enabled and np.all(env.rician_k_linear == 0)
