"""The SimPy processes of one simulation: a long-lived process per client and one round coordinator.

Only the coordinator knows the round's rules (who takes part, when the round ends); a client only
knows its own protocol: E local iterations of forward -> uplink -> main server -> downlink -> backward,
then its adapter upload. The federated server's work (aggregation, broadcast) is the coordinator's.
Every phase is one SimPy timeout (a queue wait is a request on the server resource).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import simpy

from .trace import FS_CLIENT, NO_ITERATION


@dataclass
class RoundRecord:
    round: int
    start_s: float
    end_s: float = 0.0
    straggler: int = -1
    analytic_round_s: float = 0.0
    upload_end_s: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    allocation: object = None


class Protocol:
    """Shared state of the processes: the world's facts, the resources and what is recorded."""

    def __init__(self, sim_env: simpy.Environment, *, radio, server, backend, trace, policy, problem,
                 device_flops_per_s, local_iterations: int, aggregation_s: float, rounds: int, on_round_end=None,
                 on_iteration=None):
        self.env = sim_env
        self.radio = radio
        self.server = server
        self.backend = backend
        self.trace = trace
        self.policy = policy
        self.problem = problem
        self.device_flops_per_s = [float(x) for x in device_flops_per_s]
        self.num_clients = len(self.device_flops_per_s)
        self.local_iterations = int(local_iterations)
        self.aggregation_s = float(aggregation_s)
        self.rounds = int(rounds)
        self.on_round_end = on_round_end
        self.on_iteration = on_iteration
        self.records: list[RoundRecord] = []
        self.next_round = sim_env.event()
        self.pending_uploads = 0
        self.all_uploaded = None

    def start(self) -> simpy.Process:
        for k in range(self.num_clients):
            self.env.process(client_process(self, k))
        return self.env.process(coordinator_process(self))

    def uploaded(self, k: int, end_s: float) -> None:
        self.records[-1].upload_end_s[k] = end_s
        self.pending_uploads -= 1
        if self.pending_uploads == 0:
            self.all_uploaded.succeed()


def client_process(p: Protocol, k: int):
    env, trace, radio, backend, server = p.env, p.trace, p.radio, p.backend, p.server
    speed = p.device_flops_per_s[k]
    while True:
        t = yield p.next_round
        act_bits, grad_bits = backend.activation_bits(), backend.gradient_bits()
        for e in range(p.local_iterations):
            start = env.now
            flops, duration = backend.forward(k, speed)
            yield env.timeout(duration)
            trace.add(t, e, k, "forward", start, env.now, 0.0, flops)

            start = env.now
            yield env.timeout(radio.transfer_end_s(k, "s", start, act_bits) - start)
            trace.add(t, e, k, "uplink", start, env.now, act_bits, 0.0)

            arrival = env.now
            s_start, s_end, work = yield from server.serve(lambda: backend.server_work(k))
            if s_start > arrival:
                trace.add(t, e, k, "server_wait", arrival, s_start, 0.0, 0.0)
            trace.add(t, e, k, "server", s_start, s_end, 0.0, work)

            start = env.now
            yield env.timeout(radio.downlink_s(k, grad_bits))
            trace.add(t, e, k, "downlink", start, env.now, grad_bits, 0.0)

            start = env.now
            flops, duration = backend.backward(k, speed)
            yield env.timeout(duration)
            trace.add(t, e, k, "backward", start, env.now, 0.0, flops)
            if p.on_iteration is not None:
                p.on_iteration(t, env.now)

        start = env.now
        bits = backend.adapter_bits()
        yield env.timeout(radio.transfer_end_s(k, "f", start, bits) - start)
        trace.add(t, NO_ITERATION, k, "adapter_upload", start, env.now, bits, 0.0)
        p.uploaded(k, env.now)


def coordinator_process(p: Protocol):
    env = p.env
    for t in range(1, p.rounds + 1):
        record = RoundRecord(round=t, start_s=env.now)
        p.records.append(record)
        if p.policy.needs_gains:
            gain_s, gain_f = p.radio.gains_at(env.now)
            alloc = p.policy.decide(t, gain_s, gain_f)
        else:
            alloc = p.policy.decide(t)
        record.allocation = alloc
        record.analytic_round_s = alloc.evaluate(p.problem).round_time_s
        p.backend.configure(alloc.split, alloc.rank)
        p.radio.use(alloc)
        p.pending_uploads = p.num_clients
        p.all_uploaded = env.event()
        go, p.next_round = p.next_round, env.event()
        go.succeed(t)
        yield p.all_uploaded

        start = env.now
        yield env.timeout(p.aggregation_s)
        p.trace.add(t, NO_ITERATION, FS_CLIENT, "aggregation", start, env.now)
        start = env.now
        bits = p.backend.adapter_bits()
        yield env.timeout(p.radio.broadcast_s(bits))
        p.trace.add(t, NO_ITERATION, FS_CLIENT, "broadcast", start, env.now, bits, 0.0)

        record.end_s = env.now
        record.straggler = max(record.upload_end_s, key=lambda k: (record.upload_end_s[k], -k))
        record.metrics = p.backend.finish_round(t)
        if p.on_round_end is not None:
            p.on_round_end(record)
