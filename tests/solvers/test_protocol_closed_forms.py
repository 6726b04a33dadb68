"""The closed forms of the baseline protocols sl and fl (docs/protocols.md) by hand, and how Problem and the
solvers score and optimise them."""
import dataclasses

import numpy as np
import pytest

import solvers
from fsllm_sim.delay import delay_breakdown, fl_delay_breakdown, sl_delay_breakdown
from fsllm_sim.errors import SolverError
from solvers.problem import ACTIVE_CLIENT, SplitRankProfile, check_allocation, evaluate
from solvers.protocols import sl_allocation, sl_lower_bound

from solver_helpers import N0, tiny_problem

HAND = dict(local_iterations=3, client_forward_flops=1e9, client_backward_flops=2e9, server_flops=6e9,
            activation_bits=8e6, adapter_bits=1e6, device_flops_per_s=[1e9, 2e9], server_flops_per_s=3e9,
            uplink_s_rate_bps=[4e6, 8e6], downlink_rate_bps=[16e6, 8e6], uplink_f_rate_bps=[1e6, 2e6])


def test_sl_two_clients_by_hand():
    """Turns add up: download of S_c + E iterations + upload of S_c, one client after the other."""
    bd = sl_delay_breakdown(**HAND)
    # client 0: tau = 1 + 2 + 2 + 0.5 + 2 = 7.5; download 1e6 / 16e6 = 0.0625; upload 1e6 / 1e6 = 1
    # client 1: tau = 0.5 + 1 + 2 + 1 + 1 = 5.5; download 1e6 / 8e6 = 0.125; upload 1e6 / 2e6 = 0.5
    assert bd.iteration_s.tolist() == pytest.approx([7.5, 5.5])
    assert bd.adapter_download_s.tolist() == pytest.approx([0.0625, 0.125])
    assert bd.client_round_s.tolist() == pytest.approx([0.0625 + 22.5 + 1.0, 0.125 + 16.5 + 0.5])
    assert bd.round_s == pytest.approx(23.5625 + 17.125)
    assert bd.aggregation_s == 0.0 and bd.broadcast_s == 0.0
    assert bd.straggler == 0
    assert bd.to_dict()["adapter_download_s"] == pytest.approx([0.0625, 0.125])


def test_fl_two_clients_by_hand():
    """The whole model on the device: no uplink, server or downlink inside an iteration."""
    bd = fl_delay_breakdown(local_iterations=3, forward_flops=3e9, backward_flops=6e9, adapter_bits=4e6,
                            device_flops_per_s=[1e9, 2e9], uplink_f_rate_bps=[1e6, 2e6], aggregation_time_s=0.25,
                            broadcast_rate_bps=4e6)
    # client 0: tau = 3 + 6 = 9 -> 27 + 4e6 / 1e6 = 31; client 1: tau = 4.5 -> 13.5 + 2 = 15.5
    assert bd.iteration_s.tolist() == pytest.approx([9.0, 4.5])
    assert bd.uplink_s.tolist() == [0.0, 0.0] and bd.server_compute_s.tolist() == [0.0, 0.0]
    assert bd.downlink_s.tolist() == [0.0, 0.0]
    assert bd.client_round_s.tolist() == pytest.approx([31.0, 15.5])
    assert bd.round_s == pytest.approx(31.0 + 0.25 + 1.0)


def test_sl_with_one_client_is_sfl_plus_the_hand_off_minus_fedavg():
    one = {k: (v[:1] if isinstance(v, list) else v) for k, v in HAND.items()}
    sfl = delay_breakdown(**one, aggregation_time_s=0.0, broadcast_rate_bps=16e6)
    sl = sl_delay_breakdown(**one)
    # sfl's broadcast to the one client at its downlink rate is sl's download: the same round
    assert sl.round_s == pytest.approx(sfl.round_s, rel=1e-15)


def _power_rates(power, gain, bw):
    return (bw * np.log2(1 + power * gain / (N0 * bw))).sum(axis=1)


def test_sl_problem_scores_each_client_on_every_subchannel_and_adds_the_turns():
    pb = tiny_problem(protocol="sl")
    p_s = np.array([[0.1, 0.0, 0.0], [0.0, 0.05, 0.05]])
    p_f = np.array([[0.02, 0.08], [0.1, 0.0]])
    a_s, a_f = np.full(3, ACTIVE_CLIENT), np.full(2, ACTIVE_CLIENT)
    sol = evaluate(pb, 1, 4, a_s, p_s, a_f, p_f)
    r_s = _power_rates(p_s, np.asarray(pb.gain_s), np.full(3, 1e6))
    r_f = _power_rates(p_f, np.asarray(pb.gain_f), np.array([1e6, 2e6]))
    tau = np.array([1.0, 0.5]) + 8e6 / r_s + 6e9 / 3e9 + 8e6 / np.array([16e6, 8e6]) + np.array([2.0, 1.0])
    turn = 4e6 / np.array([16e6, 8e6]) + 3 * tau + 4e6 / r_f
    assert sol.breakdown.client_round_s == pytest.approx(turn, rel=1e-12)
    assert sol.round_time_s == pytest.approx(turn.sum(), rel=1e-12)
    assert sol.objective_s == pytest.approx((10 + 20 / 4) * turn.sum(), rel=1e-12)


def test_sl_allocation_checks_name_the_problem():
    pb = tiny_problem(protocol="sl")
    a_s, a_f = np.full(3, ACTIVE_CLIENT), np.full(2, ACTIVE_CLIENT)
    good_s, good_f = np.full((2, 3), 0.03), np.full((2, 2), 0.05)
    check_allocation(pb, a_s, good_s, a_f, good_f)
    with pytest.raises(SolverError, match="power_s_w must be a K x 3"):
        check_allocation(pb, a_s, np.full(3, 0.03), a_f, good_f)
    with pytest.raises(SolverError, match="client 1 uses 0.12 W on the f-band, above its cap 0.1 W"):
        check_allocation(pb, a_s, good_s, a_f, np.array([[0.05, 0.05], [0.06, 0.06]]))
    with pytest.raises(SolverError, match="assign_s must hold -2"):
        check_allocation(pb, np.array([0, 1, 0]), good_s, a_f, good_f)
    capped = tiny_problem(protocol="sl", p_total_f_w=0.06)  # alone on the band: the total cap is its own
    with pytest.raises(SolverError, match="above its cap 0.06 W"):
        check_allocation(capped, a_s, good_s, a_f, np.full((2, 2), 0.035))


def test_sl_solvers_water_fill_and_certify_the_mean_gain_optimum():
    pb = tiny_problem(protocol="sl")
    exact = solvers.solve(pb, "exact")
    assert exact.status == "optimal"
    assert exact.lower_bound_s == pytest.approx(exact.objective_s, rel=1e-12)
    assert sl_lower_bound(pb) == pytest.approx(exact.objective_s, rel=1e-12)
    # water-filling beats every other spectrum at every pair
    for method in ("equal", "max-power", "random"):
        other = solvers.solve(pb, method, seed=3) if method == "random" else solvers.solve(pb, method)
        assert other.objective_s >= exact.objective_s * (1 - 1e-12), method
    rng = np.random.default_rng(0)
    a_s, p_s, a_f, p_f = sl_allocation(pb)
    for _ in range(50):
        q_s = rng.dirichlet(np.ones(3), size=2) * 0.1
        q_f = rng.dirichlet(np.ones(2), size=2) * 0.1
        for split, rank in pb.candidate_pairs():
            assert (evaluate(pb, split, rank, a_s, q_s, a_f, q_f).objective_s
                    >= evaluate(pb, split, rank, a_s, p_s, a_f, p_f).objective_s * (1 - 1e-12))
    bound = solvers.solve(pb, "relaxation")
    assert bound.status == "lower_bound" and bound.objective_s == pytest.approx(exact.objective_s)


def _with_unsplit(**over):
    pb = tiny_problem()
    prof = dataclasses.replace(pb.profile, num_blocks=3, unsplit_forward_flops=[3e9, 3e9],
                               unsplit_backward_flops=[6e9, 6e9], unsplit_adapter_bits=[3e6, 12e6],
                               unsplit_memory_bytes=[5.0, 9.0])
    return tiny_problem(profile=prof.unsplit(), protocol="fl", **over)


def test_fl_problem_scores_the_unsplit_model_and_solvers_leave_the_s_band_empty():
    pb = _with_unsplit()
    assert pb.candidate_pairs() == [(3, 1), (3, 4)]
    for method in ("bcd", "exact", "equal", "random", "max-power"):
        sol = solvers.solve(pb, method)
        assert sol.split == 3
        assert np.all(sol.assign_s == -1) and np.all(sol.power_s_w == 0)
        again = evaluate(pb, sol.split, sol.rank, sol.assign_s, sol.power_s_w, sol.assign_f, sol.power_f_w)
        assert again.objective_s == pytest.approx(sol.objective_s, rel=1e-12)
        bd = again.breakdown
        assert np.all(bd.uplink_s == 0) and np.all(bd.server_compute_s == 0) and np.all(bd.downlink_s == 0)
    # by hand at rank 1 with client 0 on subchannel 0 and client 1 on subchannel 1
    p_f = np.array([0.1, 0.1])
    sol = evaluate(pb, 3, 1, np.full(3, -1), np.zeros(3), np.array([0, 1]), p_f)
    r_f = np.array([1e6 * np.log2(1 + 0.1 * 1e-10 / (N0 * 1e6)), 2e6 * np.log2(1 + 0.1 * 1e-10 / (N0 * 2e6))])
    client = 3 * np.array([9.0, 4.5]) + 3e6 / r_f
    assert sol.round_time_s == pytest.approx(client.max() + 0.25 + 3e6 / 4e6, rel=1e-12)


def test_fl_memory_limits_drop_ranks_and_a_split_profile_is_refused():
    assert _with_unsplit(client_memory_limit_bytes=[6.0, 10.0]).candidate_pairs() == [(3, 1)]
    with pytest.raises(SolverError, match="protocol fl needs the unsplit profile"):
        tiny_problem(protocol="fl")
    with pytest.raises(SolverError, match="unsplit model's costs"):
        tiny_problem().profile.unsplit()
    with pytest.raises(SolverError, match="give num_blocks and all of"):
        SplitRankProfile(splits=[1], ranks=[1], client_forward_flops=[[1]], client_backward_flops=[[1]],
                         server_flops=[[1]], activation_bits=[[1]], adapter_bits=[[1]], unsplit_forward_flops=[1])
    with pytest.raises(SolverError, match="protocol='split' is not one of sfl, sl, fl"):
        tiny_problem(protocol="split")
