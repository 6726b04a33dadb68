"""The fading downlink (channel.downlink.fading: fading): its own Gauss-Markov streams, the closed form's law.

Rules: without fading in the limit (a Rician K-factor so large that |h| = 1), a gradient and the broadcast
take exactly the static time; with blocks much longer than a transfer, each transfer sees one fading block,
so its rate is a draw of (B/n) log2(1 + P G |h|^2 / (N0 B)): the mean SNR over many blocks is the static one
(E|h|^2 = 1) and the mean rate the ergodic rate of channel_models.ergodic (an independent formula).
"""
import dataclasses

import numpy as np
import pytest

import channel_models as cm
from fsllm_sim.engine import build_world
from fsllm_sim.engine.radio import Radio

from engine_helpers import make_scenario


def radio_for(world, env=None):
    env = env or world.env
    p = world.problem
    return Radio(env, root_seed=world.scenario.seed, downlink_rate_bps=p.downlink_rate_bps,
                 broadcast_rate_bps=p.broadcast_rate_bps, downlink_fading=True, downlink_num_served=env.num_clients)


def test_without_fading_in_the_limit_the_downlink_takes_the_static_time():
    world = build_world(make_scenario(), profile_source="analytic", progress=False)
    env = dataclasses.replace(world.env, rician_k_linear=np.full(world.env.num_clients, 1e14))
    radio = radio_for(world, env)
    bits = 2.0e6
    for k in range(env.num_clients):
        res = radio.receive(k, 0.5, bits)
        assert res.end_s - 0.5 == pytest.approx(bits / world.problem.downlink_rate_bps[k], rel=1e-6)
    end = radio.broadcast_end_s(range(env.num_clients), 3.0, bits)
    assert end - 3.0 == pytest.approx(bits / world.problem.broadcast_rate_bps, rel=1e-6)


def test_with_long_blocks_the_downlink_rate_has_the_fading_law():
    world = build_world(make_scenario(channel={"fading": {"block_s": 10.0, "model": "rayleigh"}}),
                        profile_source="analytic", progress=False)
    env = world.env
    radio = radio_for(world)
    n = env.num_clients
    bw = env.downlink_bandwidth_hz / n
    snr_static = env.downlink_power_w * env.large_scale_gain[0] / (env.noise_psd_w_per_hz * env.downlink_bandwidth_hz)
    bits = 1e3  # far shorter than a block: one block per transfer
    rates = []
    for b in range(6000):
        start = 10.0 * b + 1.0
        res = radio.receive(0, start, bits)
        assert res.starts_s.size == 1
        rates.append(bits / (res.end_s - start))
    rates = np.array(rates)
    snr = np.expm1(rates / bw * np.log(2.0))
    sem = snr.std() / np.sqrt(snr.size)
    assert snr.mean() == pytest.approx(snr_static, abs=4 * sem)
    ergodic = float(cm.ergodic_rate_bps(env.downlink_power_w / n, env.large_scale_gain[0], bw,
                                        env.noise_psd_w_per_hz, 0.0))
    assert rates.mean() == pytest.approx(ergodic, abs=4 * rates.std() / np.sqrt(rates.size))
    static_rate = float(world.problem.downlink_rate_bps[0])
    assert rates.mean() < static_rate  # Jensen: the fading downlink is slower on average
