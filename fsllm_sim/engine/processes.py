"""The SimPy processes of one simulation: a long-lived process per client and one round coordinator.

Only the coordinator knows the round's rules (who takes part, when the round ends); a client only
knows its own protocol: E local iterations of forward -> uplink -> main server -> downlink -> backward,
then its adapter upload. The federated server's work (aggregation, broadcast) is the coordinator's.
Every phase is one SimPy timeout (a queue wait is a request on the server resource).

The scenario's ``protocol`` (docs/protocols.md) picks the processes (``Protocol.start``):

* ``sfl``: one long-lived process per client and the round coordinator, as above;
* ``sl``: the coordinator alone gives the turns: for each client in order it starts the client's turn
  (:func:`sl_turn`: the client adapter relayed to it on the downlink, its E iterations, its adapter upload)
  and waits for it to end, so no two clients' phases overlap; no aggregation, no broadcast;
* ``fl``: one process per participating client (:func:`fl_client_process`: E iterations of forward and
  backward of the whole model on the device, then the adapter upload) and the sfl coordinator.

Clients are indexed as in the problem (k = 0..K-1, the radio and the backend use that index); trace rows
and round records name the scenario's client id ``client_ids[k]`` (the same number except under ``fl``,
where devices without the memory for the whole model are left out).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import simpy

from ..errors import ConfigError
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
                 on_iteration=None, kind: str = "sfl", client_ids=None):
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
        if kind not in PROCESSES:
            raise ConfigError(f"protocol={kind!r} is not one of {', '.join(PROCESSES)}")
        self.kind = kind
        self.client_ids = list(range(self.num_clients)) if client_ids is None else [int(c) for c in client_ids]

    def start(self) -> simpy.Process:
        client, coordinator = PROCESSES[self.kind]
        if client is not None:
            for k in range(self.num_clients):
                self.env.process(client(self, k))
        return self.env.process(coordinator(self))

    def uploaded(self, k: int, end_s: float) -> None:
        self.records[-1].upload_end_s[self.client_ids[k]] = end_s
        self.pending_uploads -= 1
        if self.pending_uploads == 0:
            self.all_uploaded.succeed()


def device_compute(p: Protocol, t: int, e: int, k: int, phase: str):
    """Client k's forward or backward pass of iteration e on its own device, traced as ``phase``."""
    start = p.env.now
    step = p.backend.forward if phase == "forward" else p.backend.backward
    flops, duration = step(k, p.device_flops_per_s[k])
    yield p.env.timeout(duration)
    p.trace.add(t, e, p.client_ids[k], phase, start, p.env.now, 0.0, flops)


def split_iterations(p: Protocol, t: int, k: int):
    """Client k's E local iterations of split training (sfl and sl): forward, uplink of the activations on
    the s-band, main-server service, gradient downlink, backward."""
    env, trace, radio, backend, server = p.env, p.trace, p.radio, p.backend, p.server
    c = p.client_ids[k]
    act_bits, grad_bits = backend.activation_bits(), backend.gradient_bits()
    for e in range(p.local_iterations):
        yield from device_compute(p, t, e, k, "forward")

        start = env.now
        yield env.timeout(radio.transfer_end_s(k, "s", start, act_bits) - start)
        trace.add(t, e, c, "uplink", start, env.now, act_bits, 0.0)

        arrival = env.now
        s_start, s_end, work = yield from server.serve(lambda: backend.server_work(k))
        if s_start > arrival:
            trace.add(t, e, c, "server_wait", arrival, s_start, 0.0, 0.0)
        trace.add(t, e, c, "server", s_start, s_end, 0.0, work)

        start = env.now
        yield env.timeout(radio.downlink_s(k, grad_bits))
        trace.add(t, e, c, "downlink", start, env.now, grad_bits, 0.0)

        yield from device_compute(p, t, e, k, "backward")
        if p.on_iteration is not None:
            p.on_iteration(t, env.now)


def adapter_upload(p: Protocol, t: int, k: int):
    """Client k sends its client adapter (S_c bits) to the federated server on the f-band."""
    env = p.env
    start = env.now
    bits = p.backend.adapter_bits()
    yield env.timeout(p.radio.transfer_end_s(k, "f", start, bits) - start)
    p.trace.add(t, NO_ITERATION, p.client_ids[k], "adapter_upload", start, env.now, bits, 0.0)


def client_process(p: Protocol, k: int):
    """sfl: every round, E split iterations then the adapter upload."""
    while True:
        t = yield p.next_round
        yield from split_iterations(p, t, k)
        yield from adapter_upload(p, t, k)
        p.uploaded(k, p.env.now)


def fl_client_process(p: Protocol, k: int):
    """fl: every round, E iterations of the whole model on the device (nothing on the air), then the upload."""
    env = p.env
    while True:
        t = yield p.next_round
        for e in range(p.local_iterations):
            yield from device_compute(p, t, e, k, "forward")
            yield from device_compute(p, t, e, k, "backward")
            if p.on_iteration is not None:
                p.on_iteration(t, env.now)
        yield from adapter_upload(p, t, k)
        p.uploaded(k, env.now)


def sl_turn(p: Protocol, t: int, k: int):
    """sl: client k's turn: the federated server relays the client adapter to it on the downlink (the
    hand-off from the previous client), it runs its E iterations alone, and uploads its adapter on the f-band
    for the next client."""
    env = p.env
    start = env.now
    bits = p.backend.adapter_bits()
    yield env.timeout(p.radio.downlink_s(k, bits))
    p.trace.add(t, NO_ITERATION, p.client_ids[k], "adapter_download", start, env.now, bits, 0.0)
    p.backend.begin_turn(k)
    yield from split_iterations(p, t, k)
    yield from adapter_upload(p, t, k)
    p.backend.end_turn(k)


def _begin_round(p: Protocol, t: int) -> RoundRecord:
    """Record the round, take the policy's allocation and put it in force."""
    env = p.env
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
    return record


def sl_coordinator_process(p: Protocol):
    """sl: the turns of clients 0..K-1 one after the other; the round ends with the last upload. The
    straggler is the client whose turn was longest."""
    env = p.env
    for t in range(1, p.rounds + 1):
        record = _begin_round(p, t)
        turns = {}
        for k in range(p.num_clients):
            start = env.now
            yield env.process(sl_turn(p, t, k))
            record.upload_end_s[p.client_ids[k]] = env.now
            turns[p.client_ids[k]] = env.now - start
        record.end_s = env.now
        record.straggler = max(turns, key=lambda c: (turns[c], -c))
        record.metrics = p.backend.finish_round(t)
        if p.on_round_end is not None:
            p.on_round_end(record)


def coordinator_process(p: Protocol):
    env = p.env
    for t in range(1, p.rounds + 1):
        record = _begin_round(p, t)
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


# protocol -> (client process or None, coordinator process)
PROCESSES = {
    "sfl": (client_process, coordinator_process),
    "sl": (None, sl_coordinator_process),
    "fl": (fl_client_process, coordinator_process),
}
