"""The main server as a SimPy resource, one class per discipline (spec section 3).

A client's request is a SimPy process: ``yield from server.serve(start_work)``. ``start_work()`` is
called when service starts and returns the request's work in FLOPs: that is where the engine runs
the real PyTorch step (so in SplitFed-V2 the shared server adapter is updated in the order requests
enter service) and where measured timing learns the work. ``serve`` returns (start_s, end_s, work).

* :class:`Dedicated`: every request is served at once at f_s (each client has a server to itself);
* :class:`Partitioned`: client k owns a static slice f_s / K (the closed form's shared server);
* :class:`ProcessorSharing`: f_s is split equally among the requests present at each instant;
* :class:`Fifo`: c workers of speed f_s / c and one first-come first-served queue.

The first two reproduce the closed form on a static channel; the last two show what it leaves out
(queueing, and the speed-up when fewer clients are present). Every discipline is work-conserving, so
its busy capacity-time equals the work served divided by f_s.
"""
from __future__ import annotations

import abc
import heapq
from typing import Callable

import simpy

from ..errors import ConfigError

DISCIPLINES: dict[str, type] = {}


def register(name: str):
    def deco(cls):
        cls.name = name
        DISCIPLINES[name] = cls
        return cls
    return deco


class MainServerResource(abc.ABC):
    """Base of the disciplines: a speed f_s [FLOP/s] shared by ``num_clients`` clients."""

    name = ""

    def __init__(self, env: simpy.Environment, flops_per_s: float, num_clients: int, workers: int = 1):
        self.env = env
        self.flops_per_s = float(flops_per_s)
        self.num_clients = int(num_clients)
        self.workers = int(workers)
        self.work_served_flops = 0.0

    @abc.abstractmethod
    def serve(self, start_work: Callable[[], float]):
        """SimPy process body of one request; returns (start_s, end_s, work_flops)."""


@register("dedicated")
class Dedicated(MainServerResource):
    """Every request served at once at a fixed speed: f_s here."""

    @property
    def request_flops_per_s(self) -> float:
        return self.flops_per_s

    def serve(self, start_work):
        start = self.env.now
        work = float(start_work())
        yield self.env.timeout(work / self.request_flops_per_s)
        self.work_served_flops += work
        return start, self.env.now, work


@register("partitioned")
class Partitioned(Dedicated):
    """Client k's requests run on its own static slice f_s / K."""

    @property
    def request_flops_per_s(self) -> float:
        return self.flops_per_s / self.num_clients


@register("fifo")
class Fifo(MainServerResource):
    def __init__(self, env, flops_per_s, num_clients, workers=1):
        super().__init__(env, flops_per_s, num_clients, workers)
        self._workers = simpy.Resource(env, capacity=self.workers)  # SimPy's Resource queues FIFO

    def serve(self, start_work):
        with self._workers.request() as req:
            yield req
            start = self.env.now
            work = float(start_work())
            yield self.env.timeout(work * self.workers / self.flops_per_s)
        self.work_served_flops += work
        return start, self.env.now, work


@register("processor-sharing")
class ProcessorSharing(MainServerResource):
    """Egalitarian processor sharing in virtual time.

    V(t) grows at f_s / n(t) while n(t) > 0 requests are present; a request of work W arriving at
    V_a leaves when V reaches V_a + W. A heap of those finishing values makes each arrival and
    departure O(log n), whatever the number of requests present.
    """

    def __init__(self, env, flops_per_s, num_clients, workers=1):
        super().__init__(env, flops_per_s, num_clients, workers)
        self._virtual = 0.0
        self._last_s = 0.0
        self._heap: list = []  # (finish_virtual, seq, event, work)
        self._seq = 0
        self._generation = 0

    def _advance(self) -> None:
        now = self.env.now
        if self._heap:
            self._virtual += (now - self._last_s) * self.flops_per_s / len(self._heap)
        self._last_s = now

    def _reschedule(self) -> None:
        self._generation += 1
        if not self._heap:
            return
        gap = max(0.0, self._heap[0][0] - self._virtual)
        wake = self.env.timeout(gap * len(self._heap) / self.flops_per_s)
        generation = self._generation
        wake.callbacks.append(lambda _event: self._on_wake(generation))

    def _on_wake(self, generation: int) -> None:
        if generation != self._generation:
            return  # an arrival or departure since has rescheduled
        self._advance()
        heap = self._heap
        while heap and heap[0][0] - self._virtual <= 1e-12 * max(1.0, abs(heap[0][0])):
            _, _, done, work = heapq.heappop(heap)
            self.work_served_flops += work
            done.succeed()
        self._reschedule()

    def serve(self, start_work):
        start = self.env.now
        work = float(start_work())
        self._advance()
        done = self.env.event()
        self._seq += 1
        heapq.heappush(self._heap, (self._virtual + work, self._seq, done, work))
        self._reschedule()
        yield done
        return start, self.env.now, work


def make_server(env: simpy.Environment, discipline: str, flops_per_s: float, num_clients: int,
                workers: int = 1) -> MainServerResource:
    try:
        cls = DISCIPLINES[discipline]
    except KeyError:
        raise ConfigError(f"server.discipline={discipline!r} is not one of {', '.join(DISCIPLINES)}") from None
    return cls(env, flops_per_s, num_clients, workers)
