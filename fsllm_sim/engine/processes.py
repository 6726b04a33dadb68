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

A changing world (docs/dynamics.md; ``Protocol.dynamic``): the coordinator selects among the clients
available at the round's start and follows the round rule (:mod:`.rounds`); a client that becomes
unavailable, or that the rule cancels, is interrupted (``simpy.Interrupt``): the phase in flight is cut at
that instant (a transfer records the bits that had arrived, :func:`channel_models.bits_until`) and marked
(``drop``, ``abort``, ``cancel``; ``stall`` for stretches of outage), and its round's work is lost. A request
that had reached the main server is served to its end by a process of its own (in SplitFed-V2 its update of
the shared server adapter stands); one still queued when its client leaves is withdrawn. A selected client
that missed the last broadcast first downloads the global adapter (``adapter_download``). In a static world
the processes run exactly as before (the same events in the same order: outputs byte for byte).

Energy (docs/energy.md): the trace's ``energy_j`` and the rounds' energy are computed from the rows when the
outputs are written (:mod:`.energy_account`). A scenario with a finite battery (``devices.energy.battery_j``)
runs in the dynamic mode and follows each client's energy online (:class:`Batteries`: its power changes at
each of its phases); a client whose battery runs out leaves for good at that instant (mark ``battery``), as a
client that becomes unavailable drops, and is never selected again.

DVFS and per-client splits: the allocation of each round sets each device's speed (phi_k f_k when it has
``frequency_hz``) and, with ``splits``, each client's costs (:meth:`AnalyticBackend.configure`).

Clients are indexed as in the problem (k = 0..K-1, the radio and the backend use that index); trace rows
and round records name the scenario's client id ``client_ids[k]`` (the same number except under ``fl``,
where devices without the memory for the whole model are left out).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import simpy

import channel_models as cm

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
    attempt: int = 1
    selected: list = field(default_factory=list)  # scenario client ids
    aggregated: list = field(default_factory=list)
    dropped: list = field(default_factory=list)
    cancelled: list = field(default_factory=list)
    deadline_hit: bool = False
    discarded: bool = False  # an attempt repeated for want of min_clients finishers
    analytic_energy: object = None  # the closed form's EnergyBreakdown of the round (None: none for this protocol)
    left_s: dict = field(default_factory=dict)  # scenario client id -> when it left the round (drop, cancel, battery)
    broadcast: tuple = None  # (start_s, receivers (problem indices; None: every client), end_s or their ends)


class Batteries:
    """Each client's energy followed online, for the battery check: its power is constant between two calls of
    :meth:`set` (a phase's start and end), so a battery with R joules left at power p empties at t0 + R / p, when
    a timeout scheduled at the last change fires (later changes make it stale). Clients without a battery (inf)
    are not followed."""

    def __init__(self, p: "Protocol", capacity_j):
        self.p = p
        self.env = p.env
        self.capacity = [float(c) for c in capacity_j]
        self.followed = [math.isfinite(c) for c in self.capacity]
        k = len(self.capacity)
        self.used = [0.0] * k
        self.power = [0.0] * k
        self.since = [0.0] * k
        self.generation = [0] * k
        self.empty = [False] * k

    def set(self, k: int, watts: float) -> None:
        """Client k draws ``watts`` from now on."""
        if not self.followed[k] or self.empty[k]:
            return
        now = self.env.now
        self.used[k] += self.power[k] * (now - self.since[k])
        self.since[k] = now
        self.power[k] = watts
        self.generation[k] += 1
        if watts > 0:
            generation = self.generation[k]
            left = self.capacity[k] - self.used[k]
            wake = self.env.timeout(max(0.0, left / watts))
            wake.callbacks.append(lambda _event: self._ran_out(k, generation))

    def _ran_out(self, k: int, generation: int) -> None:
        if generation != self.generation[k] or self.empty[k]:
            return
        self.used[k] = self.capacity[k]
        self.empty[k] = True
        self.power[k] = 0.0
        self.p.battery_out(k)


class Protocol:
    """Shared state of the processes: the world's facts, the resources and what is recorded."""

    def __init__(self, sim_env: simpy.Environment, *, radio, server, backend, trace, policy, problem,
                 device_flops_per_s, local_iterations: int, aggregation_s: float, rounds: int, on_round_end=None,
                 on_iteration=None, kind: str = "sfl", client_ids=None, rule=None, availability=None,
                 dynamic: bool = False, selection: str = "all", selection_rng=None, battery_j=None):
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
        self.stop_after = None  # record -> a reason to stop after that round (str), or None
        self.on_iteration = on_iteration
        self.records: list[RoundRecord] = []
        self.discarded: list[RoundRecord] = []
        if kind not in PROCESSES:
            raise ConfigError(f"protocol={kind!r} is not one of {', '.join(PROCESSES)}")
        self.kind = kind
        self.client_ids = list(range(self.num_clients)) if client_ids is None else [int(c) for c in client_ids]
        self.rule = rule
        self.availability = availability  # per problem client: a model of fsllm_sim.availability, or None
        self.dynamic = bool(dynamic)
        self.selection = selection
        self.selection_rng = selection_rng
        self.stopped: str | None = None  # why the run ended before its rounds (every client gone for good)
        # the round in progress
        self.start = [sim_env.event() for _ in range(self.num_clients)]
        self.procs: dict[int, simpy.Process] = {}
        self.active: set = set()
        self.pending: set = set()
        self.finished: list = []
        self.closed = None
        self.quota: int | None = None
        self.inflight: dict = {}
        self.session = [0] * self.num_clients  # bumped when a client's round work is cut: its queued requests go
        self.has_global = [0] * self.num_clients  # the last round whose aggregate the client received
        self.available = [True] * self.num_clients
        self.availability_changed = sim_env.event()
        self.base_flops_per_s = self.device_flops_per_s  # at f_max; an allocation with clocks sets each round's
        self.current: RoundRecord | None = None  # the attempt in progress
        self.window: set = set()  # the clients taking part in it that have not left it
        # batteries (a changing world only): each client's powers in the round in force
        self.dead = [False] * self.num_clients
        self.battery_out_s: dict = {}  # scenario client id -> when its battery ran out
        self.batteries = None
        if battery_j is not None and any(math.isfinite(float(b)) for b in battery_j):
            if not self.dynamic:
                raise ConfigError("batteries need the dynamic mode of the engine (Protocol(dynamic=True))")
            self.batteries = Batteries(self, battery_j)
            energy = problem.energy
            self.rx_w = [float(x) for x in energy.rx_power_w]
            self.idle_w = [float(x) for x in energy.idle_power_w]
            self.compute_w = [0.0] * self.num_clients
            self.band_w = {"s": [0.0] * self.num_clients, "f": [0.0] * self.num_clients}

    def start_processes(self) -> simpy.Process:
        client, coordinator = PROCESSES[self.kind]
        if client is not None:
            for k in range(self.num_clients):
                self.procs[k] = self.env.process(client(self, k))
        if self.availability is not None:
            for k, model in enumerate(self.availability):
                self.available[k] = bool(model.is_available(0.0))
                if math.isfinite(model.next_change_s(0.0)):
                    self.env.process(availability_process(self, k, model))
        return self.env.process(coordinator(self))

    start_all = start_processes

    def uploaded(self, k: int, end_s: float) -> None:
        self.records[-1].upload_end_s[self.client_ids[k]] = end_s
        self.active.discard(k)
        if k in self.pending:
            self.pending.discard(k)
            self.finished.append(k)
        self._check_closed()

    def _check_closed(self) -> None:
        if self.closed is None or self.closed.triggered:
            return
        if not self.pending or (self.quota is not None and len(self.finished) >= self.quota):
            self.closed.succeed()

    def went_away(self, k: int, cause: str = "drop") -> bool:
        """Client k has just become unavailable: if it is working on the round, it drops (``cause``: the mark);
        returns whether it did."""
        self.available[k] = False
        if k in self.window:  # its time in the round ends now (the energy it spends waiting in it)
            self._leave(k)
        if k in self.active:
            self.records[-1].dropped.append(self.client_ids[k])
            self.pending.discard(k)
            self.active.discard(k)
            self.procs[k].interrupt(cause)
            self._check_closed()
            return True
        return False

    def _leave(self, k: int) -> None:
        self.window.discard(k)
        self.current.left_s[self.client_ids[k]] = self.env.now
        if self.batteries is not None:
            self.batteries.set(k, 0.0)

    def battery_out(self, k: int) -> None:
        """Client k's battery has just run out: it leaves for good (never selected again); its work on the round,
        if any, is cut as in a drop, marked ``battery``."""
        self.dead[k] = True
        self.battery_out_s[self.client_ids[k]] = self.env.now
        if not self.went_away(k, "battery"):
            t = self.current.round if self.current is not None else 0
            self.trace.add(t, NO_ITERATION, self.client_ids[k], "battery", self.env.now, self.env.now, 0.0, 0.0)

    def came_back(self, k: int) -> None:
        if self.dead[k]:  # out of battery: for good
            return
        self.available[k] = True
        ev, self.availability_changed = self.availability_changed, self.env.event()
        ev.succeed()

    def cancel(self, clients) -> None:
        for k in sorted(clients):
            self.records[-1].cancelled.append(self.client_ids[k])
            self.pending.discard(k)
            self.active.discard(k)
            if k in self.window:
                self._leave(k)
            self.procs[k].interrupt("cancel")

    def power(self, k: int, phase: str) -> None:
        """Batteries: client k starts ``phase`` (its power until the next call); ``idle`` between phases."""
        b = self.batteries
        if phase == "idle":
            b.set(k, self.idle_w[k] if k in self.window else 0.0)
        elif phase in ("forward", "backward"):
            b.set(k, self.compute_w[k])
        elif phase in ("s", "f"):
            b.set(k, self.band_w[phase][k])
        else:  # receiving
            b.set(k, self.rx_w[k])


def availability_process(p: Protocol, k: int, model):
    """Client k's availability: sleeps until each change of its timeline and reports it."""
    env = p.env
    t = 0.0  # the timeline's own clock: env.now may differ from a switching time by rounding
    while True:
        change = model.next_change_s(t)
        if not math.isfinite(change):
            return
        yield env.timeout(max(0.0, change - env.now))
        t = change
        if model.is_available(change):
            p.came_back(k)
        else:
            p.went_away(k)


def device_compute(p: Protocol, t: int, e: int, k: int, phase: str):
    """Client k's forward or backward pass of iteration e on its own device, traced as ``phase``."""
    start = p.env.now
    step = p.backend.forward if phase == "forward" else p.backend.backward
    flops, duration = step(k, p.device_flops_per_s[k])
    p.inflight[k] = (phase, e, start, None, None, flops, duration)
    if p.batteries is not None:
        p.power(k, phase)
    yield p.env.timeout(duration)
    p.trace.add(t, e, p.client_ids[k], phase, start, p.env.now, 0.0, flops)
    if p.batteries is not None:
        p.power(k, "idle")


def uplink(p: Protocol, t: int, e: int, k: int, phase: str, band: str, bits: float):
    """Client k sends ``bits`` on ``band`` (s: activations, f: its adapter), traced as ``phase``."""
    env, radio = p.env, p.radio
    start = env.now
    if not p.dynamic:  # nothing can interrupt it: record now (the order of channel.csv as before)
        yield env.timeout(radio.transfer_end_s(k, band, start, bits) - start)
        p.trace.add(t, e, p.client_ids[k], phase, start, env.now, bits, 0.0)
        return
    res = radio.send(k, band, start, bits)
    p.inflight[k] = (phase, e, start, res, band, 0.0, 0.0)
    if p.batteries is not None:
        p.power(k, band)
    yield env.timeout(res.end_s - start)
    stalls = radio.record(k, band, res, start_s=start, bits=bits)
    p.trace.add(t, e, p.client_ids[k], phase, start, env.now, bits, 0.0)
    _mark_stalls(p, t, e, k, stalls)
    if p.batteries is not None:
        p.power(k, "idle")


def downlink(p: Protocol, t: int, e: int, k: int, phase: str, bits: float, num_served: int | None = None):
    """Client k receives ``bits`` on the downlink (gradients, or the global adapter), traced as ``phase``."""
    env, radio = p.env, p.radio
    start = env.now
    if not p.dynamic:
        yield env.timeout(radio.downlink_s(k, bits))
    else:
        res = radio.receive(k, start, bits, num_served=num_served)
        p.inflight[k] = (phase, e, start, res, "dl", 0.0, 0.0)
        if p.batteries is not None:
            p.power(k, "dl")
        yield env.timeout(res.end_s - start)
        if p.batteries is not None:
            p.power(k, "idle")
    p.trace.add(t, e, p.client_ids[k], phase, start, env.now, bits, 0.0)


def _mark_stalls(p: Protocol, t: int, e: int, k: int, stalls) -> None:
    for s0, s1 in stalls:
        p.trace.add(t, e, p.client_ids[k], "stall", s0, s1, 0.0, 0.0)


def served(p: Protocol, t: int, e: int, k: int, session: int):
    """One request of client k at the main server, as a process of its own (a changing world): it is served
    to its end even if the client leaves meanwhile; withdrawn if the client left before its service starts."""
    env, trace, backend, c = p.env, p.trace, p.backend, p.client_ids[k]
    arrival = env.now
    withdrawn = []

    def start_work():
        if p.session[k] != session:
            withdrawn.append(True)
            return 0.0
        return backend.server_work(k)

    s_start, s_end, work = yield from p.server.serve(start_work)
    if withdrawn:
        return None
    if s_start > arrival:
        trace.add(t, e, c, "server_wait", arrival, s_start, 0.0, 0.0)
    trace.add(t, e, c, "server", s_start, s_end, 0.0, work)
    return s_end


def split_iterations(p: Protocol, t: int, k: int):
    """Client k's E local iterations of split training (sfl and sl): forward, uplink of the activations on
    the s-band, main-server service, gradient downlink, backward."""
    if not p.dynamic:
        return (yield from _static_split_iterations(p, t, k))
    env, trace, backend, server = p.env, p.trace, p.backend, p.server
    c = p.client_ids[k]
    act_bits, grad_bits = backend.activation_bits(k), backend.gradient_bits(k)
    for e in range(p.local_iterations):
        yield from device_compute(p, t, e, k, "forward")
        yield from uplink(p, t, e, k, "uplink", "s", act_bits)

        if p.dynamic:
            p.inflight[k] = ("server", e, env.now, None, None, 0.0, 0.0)
            yield env.process(served(p, t, e, k, p.session[k]))
        else:
            arrival = env.now
            s_start, s_end, work = yield from server.serve(lambda: backend.server_work(k))
            if s_start > arrival:
                trace.add(t, e, c, "server_wait", arrival, s_start, 0.0, 0.0)
            trace.add(t, e, c, "server", s_start, s_end, 0.0, work)

        yield from downlink(p, t, e, k, "downlink", grad_bits)
        yield from device_compute(p, t, e, k, "backward")
        if p.on_iteration is not None:
            p.on_iteration(t, env.now)


def _static_split_iterations(p: Protocol, t: int, k: int):
    """:func:`split_iterations` in a world that does not change (nothing interrupts a phase, no battery is
    followed): the same timeouts in the same order and the same trace rows as :func:`device_compute`,
    :func:`uplink` and :func:`downlink` in sequence, written out in one generator (no nested generators to
    resume at each event)."""
    env, backend, server, radio = p.env, p.backend, p.server, p.radio
    timeout, add = env.timeout, p.trace.rows.append
    c = p.client_ids[k]
    act_bits, grad_bits = backend.activation_bits(k), backend.gradient_bits(k)
    forward, backward = backend.forward, backend.backward
    speed = p.device_flops_per_s[k]

    def work():
        return backend.server_work(k)

    for e in range(p.local_iterations):
        start = env.now
        flops, duration = forward(k, speed)
        yield timeout(duration)
        now = env.now
        add((t, e, c, "forward", start, now, 0.0, flops))
        yield timeout(radio.transfer_end_s(k, "s", now, act_bits) - now)
        arrival = env.now
        add((t, e, c, "uplink", now, arrival, act_bits, 0.0))
        s_start, s_end, served = yield from server.serve(work)
        if s_start > arrival:
            add((t, e, c, "server_wait", arrival, s_start, 0.0, 0.0))
        add((t, e, c, "server", s_start, s_end, 0.0, served))
        start = env.now
        yield timeout(radio.downlink_s(k, grad_bits))
        now = env.now
        add((t, e, c, "downlink", start, now, grad_bits, 0.0))
        flops, duration = backward(k, speed)
        yield timeout(duration)
        end = env.now
        add((t, e, c, "backward", now, end, 0.0, flops))
        if p.on_iteration is not None:
            p.on_iteration(t, end)


def adapter_upload(p: Protocol, t: int, k: int):
    """Client k sends its client adapter (S_c bits) to the federated server on the f-band."""
    yield from uplink(p, t, NO_ITERATION, k, "adapter_upload", "f", p.backend.adapter_bits(k))


def catch_up(p: Protocol, t: int, k: int):
    """A selected client that missed the last broadcast downloads the global adapter first (unicast)."""
    if p.has_global[k] < t - 1:
        yield from downlink(p, t, NO_ITERATION, k, "adapter_download", p.backend.broadcast_bits())
        p.has_global[k] = t - 1


def interrupted(p: Protocol, t: int, k: int, cause: str) -> None:
    """Record the phase client k was in when ``cause`` (drop, cancel) stopped its round's work."""
    env, c = p.env, p.client_ids[k]
    now = env.now
    phase, e, start, res, band, flops, duration = p.inflight.get(k, ("", NO_ITERATION, now, None, None, 0.0, 0.0))
    if res is not None:  # a transfer: the bits that had arrived by now
        bits = cm.bits_until(res, now)
        stalls = p.radio.record(k, band, res, until_s=now) if band in ("s", "f") else []
        p.radio.release(k, band, now)
        p.trace.add(t, e, c, phase, start, now, bits, 0.0)
        _mark_stalls(p, t, e, k, stalls)
        p.trace.add(t, e, c, "abort", now, now, bits, 0.0)
    elif phase in ("forward", "backward"):
        done = (now - start) / duration if duration > 0 else 1.0
        p.trace.add(t, e, c, phase, start, now, 0.0, flops * min(1.0, done))
    p.trace.add(t, e, c, cause, now, now, 0.0, 0.0)
    p.session[k] += 1


def _wait_for_start(p: Protocol, k: int):
    """The round index when the coordinator starts client k (an interrupt while idle has nothing to cut)."""
    while True:
        try:
            return (yield p.start[k])
        except simpy.Interrupt:
            continue


def client_process(p: Protocol, k: int):
    """sfl: every round it is selected for, E split iterations then the adapter upload."""
    while True:
        t = yield from _wait_for_start(p, k)
        try:
            if p.dynamic:
                yield from catch_up(p, t, k)
            yield from split_iterations(p, t, k)
            yield from adapter_upload(p, t, k)
        except simpy.Interrupt as stop:
            interrupted(p, t, k, stop.cause)
            continue
        p.uploaded(k, p.env.now)


def fl_client_process(p: Protocol, k: int):
    """fl: every round, E iterations of the whole model on the device (nothing on the air), then the upload."""
    env = p.env
    while True:
        t = yield from _wait_for_start(p, k)
        try:
            if p.dynamic:
                yield from catch_up(p, t, k)
            for e in range(p.local_iterations):
                yield from device_compute(p, t, e, k, "forward")
                yield from device_compute(p, t, e, k, "backward")
                if p.on_iteration is not None:
                    p.on_iteration(t, env.now)
            yield from adapter_upload(p, t, k)
        except simpy.Interrupt as stop:
            interrupted(p, t, k, stop.cause)
            continue
        p.uploaded(k, env.now)


def sl_turn(p: Protocol, t: int, k: int):
    """sl: client k's turn: the federated server relays the client adapter to it on the downlink (the
    hand-off from the previous client), it runs its E iterations alone, and uploads its adapter on the f-band
    for the next client."""
    bits = p.backend.adapter_bits(k)
    yield from downlink(p, t, NO_ITERATION, k, "adapter_download", bits)
    p.backend.begin_turn(k)
    yield from split_iterations(p, t, k)
    yield from adapter_upload(p, t, k)
    p.backend.end_turn(k)


def _select(p: Protocol, available: list, gains) -> list:
    """The clients of this round among the available ones (problem indices, increasing)."""
    n = p.rule.num_selected(len(available)) if p.rule is not None else len(available)
    if n >= len(available) or p.selection == "all":
        return list(available)
    if p.selection == "random":
        return sorted(int(x) for x in p.selection_rng.choice(np.asarray(available), size=n, replace=False))
    # solver: the n shortest closed-form client rounds under the allocation the policy makes for all of them
    _, sub, sub_alloc = p.policy.decide_for(len(p.records), gains[0], gains[1], available, commit=False)
    times = sub_alloc.evaluate(sub).breakdown.client_round_s
    if times.size != len(available):  # a static allocation: scored on every client
        times = times[np.asarray(available)]
    order = np.argsort(times, kind="stable")[:n]
    return sorted(int(available[i]) for i in order)


def _begin_round(p: Protocol, t: int, available: list | None = None) -> RoundRecord:
    """Record the round, take the policy's allocation and put it in force."""
    env = p.env
    record = RoundRecord(round=t, start_s=env.now)
    p.records.append(record)
    p.current = record
    p.radio.forget_before(env.now)
    gains = p.radio.gains_at(env.now) if (p.policy.needs_gains or p.selection == "solver") else (None, None)
    members = list(range(p.num_clients)) if available is None else _select(p, available, gains)
    record.selected = [p.client_ids[k] for k in members]
    if not p.dynamic:
        alloc = p.policy.decide(t, *gains) if p.policy.needs_gains else p.policy.decide(t)
        closed = alloc.evaluate(p.problem)
    else:
        alloc, sub, sub_alloc = p.policy.decide_for(t, gains[0], gains[1], members)
        closed = sub_alloc.evaluate(sub)
    record.analytic_round_s = closed.round_time_s
    record.analytic_energy = closed.energy
    record.allocation = alloc
    if alloc.splits is None:
        p.backend.configure(alloc.split, alloc.rank)
    else:
        p.backend.configure(alloc.split, alloc.rank, splits=alloc.splits)
    p.device_flops_per_s = p.base_flops_per_s if alloc.frequency_hz is None else \
        [float(x) for x in p.problem.device_speed_flops_per_s(alloc.frequency_hz)]
    if p.batteries is not None:
        from .energy_account import allocation_powers

        compute_w, s_w, f_w = allocation_powers(alloc, p.problem.energy, p.num_clients)
        p.compute_w = compute_w.tolist()
        p.band_w = {"s": s_w.tolist(), "f": f_w.tolist()}
    p.radio.use(alloc)
    return record


def _broadcast_power(p: Protocol, receivers, ends, end: float) -> None:
    """Batteries: each receiver draws p_rx until its own reception ends, then idles (a client of the round) or
    stops (any other)."""
    env = p.env
    for k, own in zip(receivers, ends):
        p.power(k, "dl")
        if own < end:
            env.timeout(own - env.now).callbacks.append(lambda _event, k=k: p.power(k, "idle"))


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
        record.aggregated = list(record.selected)
        record.straggler = max(turns, key=lambda c: (turns[c], -c))
        record.metrics = p.backend.finish_round(t)
        if p.on_round_end is not None:
            p.on_round_end(record)
        if _stops(p, record):
            return


def _stops(p: Protocol, record) -> bool:
    """Whether the run ends after this round (``Protocol.stop_after``, e.g. the target loss met); says why."""
    why = p.stop_after(record) if p.stop_after is not None else None
    if why:
        p.stopped = why
    return bool(why)


def _wait_for_clients(p: Protocol, need: int):
    """Wait until at least ``need`` clients are available; False if that can never happen again."""
    while sum(p.available) < need:
        coming = sum(1 for k, m in enumerate(p.availability or []) if not p.available[k] and not p.dead[k]
                     and math.isfinite(m.next_available_s(p.env.now)))
        if sum(p.available) + coming < need:
            return False
        yield p.availability_changed
    return True


def _run_attempt(p: Protocol, t: int, attempt: int):
    """One attempt of round t under the round rule; returns its record (``discarded`` if it must be repeated)."""
    env, rule = p.env, p.rule
    available = [k for k in range(p.num_clients) if p.available[k]]
    record = _begin_round(p, t, available if p.dynamic else None)
    record.attempt = attempt
    selected = set(record.selected)  # once: a set per client made this O(K^2) a round
    members = [k for k in range(p.num_clients) if p.client_ids[k] in selected]
    p.pending, p.finished, p.closed = set(members), [], env.event()
    p.quota = rule.quota(len(members)) if rule is not None else None
    p.window = set(members)
    for k in members:
        p.active.add(k)
        go, p.start[k] = p.start[k], env.event()
        go.succeed(t)
        if p.batteries is not None:
            p.power(k, "idle")
    deadline = rule.deadline_s if rule is not None else None
    if deadline is None:
        yield p.closed
    else:
        timer = env.timeout(deadline)
        yield p.closed | timer
        if not p.closed.triggered:
            record.deadline_hit = True
            if len(p.finished) < rule.min_clients and rule.below_min == "extend" and p.pending:
                p.quota = rule.min_clients
                p._check_closed()
                yield p.closed
    if p.pending:
        p.cancel(p.pending)
        yield env.timeout(0.0)  # the cancelled clients record their cut work (interrupts are urgent) first
    p.closed = None
    record.aggregated = [p.client_ids[k] for k in sorted(p.finished)]
    need = rule.min_clients if rule is not None else 1
    if len(p.finished) < max(1, need):
        record.discarded = True
        record.end_s = env.now
        p.records.pop()
        p.discarded.append(record)
        _end_window(p)
    return record


def _end_window(p: Protocol) -> None:
    """The attempt in progress is over: its clients spend nothing more on it."""
    if p.batteries is not None:
        for k in p.window:
            p.batteries.set(k, 0.0)
    p.window = set()


def coordinator_process(p: Protocol):
    env = p.env
    rule = p.rule
    for t in range(1, p.rounds + 1):
        attempt = 0
        while True:
            attempt += 1
            need = rule.min_clients if rule is not None else 1
            if p.dynamic:
                ok = yield from _wait_for_clients(p, need)
                if not ok:
                    out = sum(p.dead)
                    why = "availability" if not out else (f"{out} client(s) out of battery" if p.availability is None
                                                          else f"availability; {out} client(s) out of battery")
                    p.stopped = (f"round {t}: fewer than {need} client(s) available and none will become available "
                                 f"again ({why}); the run stops after {len(p.records)} round(s)")
                    return
            record = yield from _run_attempt(p, t, attempt)
            if not record.discarded:
                break
            if attempt >= (rule.max_repeats if rule is not None else 1):
                p.stopped = (f"round {t}: {attempt} attempts ended with fewer than {need} finished client(s) "
                             f"(round.max_repeats); the run stops after {len(p.records)} round(s)")
                return

        start = env.now
        yield env.timeout(p.aggregation_s)
        p.trace.add(t, NO_ITERATION, FS_CLIENT, "aggregation", start, env.now)
        start = env.now
        bits = p.backend.broadcast_bits()
        if p.dynamic:
            receivers = [k for k in range(p.num_clients) if p.available[k]]
            ends = p.radio.broadcast_ends_s(receivers, start, bits)
            end = max(ends) if ends else float(start)
            record.broadcast = (start, np.asarray(receivers, dtype=np.int32), np.asarray(ends, dtype=float))
            if p.batteries is not None:
                _broadcast_power(p, receivers, ends, end)
            yield env.timeout(end - start)
            for k in receivers:
                p.has_global[k] = t
            if p.batteries is not None:
                for k in set(receivers) | p.window:
                    p.batteries.set(k, 0.0)
            p.window = set()
        else:
            yield env.timeout(p.radio.broadcast_s(bits))
            record.broadcast = (start, None, env.now)
        p.trace.add(t, NO_ITERATION, FS_CLIENT, "broadcast", start, env.now, bits, 0.0)

        record.end_s = env.now
        uploads = {c: record.upload_end_s[c] for c in record.aggregated}
        record.straggler = max(uploads, key=lambda k: (uploads[k], -k))
        participants = None if not p.dynamic else [k for k in range(p.num_clients)
                                                   if p.client_ids[k] in set(record.aggregated)]
        record.metrics = p.backend.finish_round(t, participants)
        if p.on_round_end is not None:
            p.on_round_end(record)
        if _stops(p, record):
            return


# protocol -> (client process or None, coordinator process)
PROCESSES = {
    "sfl": (client_process, coordinator_process),
    "sl": (None, sl_coordinator_process),
    "fl": (fl_client_process, coordinator_process),
}
