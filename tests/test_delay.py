"""The analytic delay model against a hand computation of spec section 4."""
import numpy as np
import pytest

from fsllm_sim.convergence import ConvergenceModel
from fsllm_sim.delay import delay_breakdown, server_speed_seen_flops_per_s, transfer_time_s
from fsllm_sim.errors import ConfigError


def test_two_clients_by_hand():
    bd = delay_breakdown(local_iterations=3, client_forward_flops=1e9, client_backward_flops=2e9, server_flops=6e9,
                         activation_bits=8e6, adapter_bits=1e6, device_flops_per_s=[1e9, 2e9],
                         server_flops_per_s=3e9, uplink_s_rate_bps=[4e6, 8e6], downlink_rate_bps=[16e6, 8e6],
                         uplink_f_rate_bps=[1e6, 2e6], aggregation_time_s=0.25, broadcast_rate_bps=4e6)
    # client 0: fwd 1, up 2, srv 2, down 0.5, bwd 2 -> tau 7.5; round part 3*7.5 + 1 = 23.5
    # client 1: fwd .5, up 1, srv 2, down 1, bwd 1 -> tau 5.5; round part 16.5 + .5 = 17
    assert bd.iteration_s.tolist() == pytest.approx([7.5, 5.5])
    assert bd.client_round_s.tolist() == pytest.approx([23.5, 17.0])
    assert bd.broadcast_s == pytest.approx(0.25)
    assert bd.round_s == pytest.approx(23.5 + 0.25 + 0.25)
    assert bd.straggler == 0


def test_zero_rate_is_infinite_not_an_error_and_zero_bits_take_no_time():
    assert transfer_time_s(1.0, 0.0) == np.inf
    assert transfer_time_s(0.0, 0.0) == 0.0


def test_server_speed_seen_by_the_closed_form():
    for discipline in ("partitioned", "processor-sharing", "fifo"):
        assert server_speed_seen_flops_per_s(50e12, 8, discipline) == pytest.approx(6.25e12)
    assert server_speed_seen_flops_per_s(50e12, 8, "dedicated") == 50e12
    with pytest.raises(ConfigError, match="discipline='both'"):
        server_speed_seen_flops_per_s(1.0, 1, "both")


def test_convergence_model():
    m = ConvergenceModel(a=10, b=20, c=1.0)
    assert m.rounds(4) == pytest.approx(15.0)
    with pytest.raises(ConfigError, match="convergence.c=-1"):
        ConvergenceModel(a=1, b=1, c=-1)
