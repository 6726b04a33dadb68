"""The main server's disciplines, acted out with tiny SimPy processes and checked against hand computations,
then their invariants on a loaded simulation: never idle while a request waits, busy time = work / speed."""
import numpy as np
import pytest
import simpy

from fsllm_sim.engine import simulate
from fsllm_sim.engine.server import make_server

from engine_helpers import make_scenario


def act(discipline, jobs, speed=10.0, clients=2, workers=1):
    """Requests (arrival_s, work) served by one discipline; returns {job: (start_s, end_s)}."""
    env = simpy.Environment()
    server = make_server(env, discipline, speed, clients, workers)
    out = {}

    def job(i, arrival, work):
        yield env.timeout(arrival)
        out[i] = yield from server.serve(lambda: work)

    for i, (arrival, work) in enumerate(jobs):
        env.process(job(i, arrival, work))
    env.run()
    return {i: (s, e) for i, (s, e, _) in out.items()}, server


def test_fifo_one_worker_by_hand():
    """f_s = 10 FLOP/s; works 30, 10, 10 arriving at 0, 1, 2: served [0,3], [3,4], [4,5]."""
    times, server = act("fifo", [(0, 30.0), (1, 10.0), (2, 10.0)])
    assert times == {0: (0, 3.0), 1: (3.0, 4.0), 2: (4.0, 5.0)}
    assert server.work_served_flops == 50.0


def test_fifo_two_workers_of_half_speed():
    """c = 2 workers of 5 FLOP/s: jobs 1 and 2 start at once; job 3 waits for the first free worker."""
    times, _ = act("fifo", [(0, 30.0), (0, 10.0), (1, 10.0)], workers=2)
    assert times == {0: (0, 6.0), 1: (0, 2.0), 2: (2.0, 4.0)}


def test_processor_sharing_by_hand():
    """Work 30 at t=0 alone until t=1 (20 left); then two share 10 FLOP/s: the 10 of job 2 take 2 s (ends 3);
    job 1 has 10 left at t=3 and ends alone at t=4."""
    times, server = act("processor-sharing", [(0, 30.0), (1, 10.0)])
    assert times[0] == (0, pytest.approx(4.0))
    assert times[1] == (1, pytest.approx(3.0))
    assert server.work_served_flops == 40.0


def test_processor_sharing_three_equal_jobs_finish_together():
    times, _ = act("processor-sharing", [(0, 10.0), (0, 10.0), (0, 10.0)])
    assert all(end == pytest.approx(3.0) for _, end in times.values())


def test_dedicated_and_partitioned_never_queue():
    times, _ = act("dedicated", [(0, 30.0), (0, 10.0)])
    assert times == {0: (0, 3.0), 1: (0, 1.0)}
    times, _ = act("partitioned", [(0, 30.0), (0, 10.0)], clients=4)  # slice of 10/4
    assert times == {0: (0, 12.0), 1: (0, 4.0)}


def union_length(intervals):
    total, cur_s, cur_e = 0.0, None, None
    for s, e in sorted(intervals):
        if cur_e is None or s > cur_e:
            if cur_e is not None:
                total += cur_e - cur_s
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    return total + ((cur_e - cur_s) if cur_e is not None else 0.0)


def concurrent_at(intervals, t):
    return sum(1 for s, e in intervals if s <= t < e)


@pytest.mark.parametrize("discipline,workers", [("dedicated", 1), ("partitioned", 1), ("processor-sharing", 1),
                                                ("fifo", 1), ("fifo", 3)])
def test_loaded_server_invariants(discipline, workers):
    # a slow server shared by 6 clients, so requests meet at the server
    scenario = make_scenario(clients={"count": 6}, channel={"s_band": {"subchannels": 12}, "f_band": {"subchannels": 6}},
                             server={"discipline": discipline, "workers": workers, "flops_per_s": 1e9},
                             simulation={"rounds": 2})
    res = simulate(scenario, profile_source="analytic")
    rows = res.trace.rows
    service = [(s, e, f) for (_, _, _, ph, s, e, _, f) in rows if ph == "server"]
    waits = [(s, e) for (_, _, _, ph, s, e, _, _) in rows if ph == "server_wait"]
    intervals = [(s, e) for s, e, _ in service]
    work = sum(f for _, _, f in service)
    f_s = scenario.server.flops_per_s
    assert len(service) == 6 * 2 * scenario.training.local_iterations
    if discipline == "dedicated":
        assert all(e - s == pytest.approx(f / f_s, rel=1e-12) for s, e, f in service)
    elif discipline == "partitioned":
        assert all(e - s == pytest.approx(6 * f / f_s, rel=1e-12) for s, e, f in service)
    elif discipline == "processor-sharing":
        # work-conserving at full capacity whenever a request is present
        assert union_length(intervals) == pytest.approx(work / f_s, rel=1e-9)
        assert not waits
        assert any(concurrent_at(intervals, (s + e) / 2) > 1 for s, e in intervals)  # they did share
    else:
        assert sum(e - s for s, e in intervals) == pytest.approx(work * workers / f_s, rel=1e-12)
        assert waits, "the load was meant to make requests queue"
        for s, e in waits:  # never idle while a request waits: every worker busy throughout the wait
            for t in np.linspace(s, e, 7)[1:-1]:
                assert concurrent_at(intervals, t) == workers
    if discipline in ("dedicated", "partitioned", "processor-sharing"):
        assert not waits
