"""When each client can be reached: a timeline of available (on) intervals per client (no SimPy here).

Every model answers the same four questions (the engine's availability process asks them):

* ``is_available(t_s)``: intervals are half-open, [start, end): available at start, not at end;
* ``next_change_s(t_s)``: the first time > t_s at which the state changes (inf if never);
* ``available_until_s(t_s)``: the end of the current on interval if available at t_s (inf: for good), else t_s;
* ``next_available_s(t_s)``: t_s if available, else the start of the next on interval (inf: never again).

Models: :class:`AlwaysAvailable`; :class:`MarkovAvailability`, a two-state continuous-time Markov on/off
process (exponential on and off sojourns, means ``mean_on_s`` and ``mean_off_s``); :class:`IntervalAvailability`,
a given list of on intervals (``availability.model: trace``, read by :mod:`fsllm_sim.trace_files`).

A Markov timeline started in its stationary law (on with probability mean_on / (mean_on + mean_off)) is
stationary from t = 0: by memorylessness the rest of the first sojourn has the same exponential law as a
whole one. The switching times are drawn lazily in chunks from the client's own stream, so the answers do
not depend on which times are asked, or in which order.
"""
from __future__ import annotations

import math

import numpy as np

from .errors import ConfigError

CHUNK = 64


def markov_on_fraction(mean_on_s: float, mean_off_s: float) -> float:
    """Long-run fraction of time available, mean_on / (mean_on + mean_off)."""
    return float(mean_on_s) / (float(mean_on_s) + float(mean_off_s))


class _Switching:
    """A timeline given by its state at t = 0 and its increasing switching times (possibly extended)."""

    def __init__(self, on_at_zero: bool):
        self._on0 = bool(on_at_zero)
        self._times = np.empty(0)

    def _ensure(self, t_s: float) -> None:
        """Make the switching times known past ``t_s`` (the generated models extend, the fixed ones do not)."""

    def _changes_before(self, t_s: float) -> int:
        self._ensure(t_s)
        return int(np.searchsorted(self._times, t_s, side="right"))

    def is_available(self, t_s: float) -> bool:
        return self._on0 ^ bool(self._changes_before(t_s) % 2)

    def next_change_s(self, t_s: float) -> float:
        i = self._changes_before(t_s)
        return float(self._times[i]) if i < self._times.size else math.inf

    def available_until_s(self, t_s: float) -> float:
        return self.next_change_s(t_s) if self.is_available(t_s) else float(t_s)

    def next_available_s(self, t_s: float) -> float:
        return float(t_s) if self.is_available(t_s) else self.next_change_s(t_s)


class AlwaysAvailable(_Switching):
    def __init__(self):
        super().__init__(True)


class IntervalAvailability(_Switching):
    """Available on the given sorted, non-overlapping [start_s, end_s) intervals only."""

    def __init__(self, intervals):
        spans = [(float(s), float(e)) for s, e in intervals]
        for i, (s, e) in enumerate(spans):
            if not (math.isfinite(s) and math.isfinite(e) and 0 <= s < e) or (i and s < spans[i - 1][1]):
                raise ConfigError(f"availability intervals: [{s:g}, {e:g}) is not allowed (allowed: sorted, "
                                  f"non-overlapping intervals with 0 <= start < end)")
        on0 = bool(spans) and spans[0][0] == 0.0
        times = [t for s, e in spans for t in (s, e)]
        if on0:
            times = times[1:]
        # touching intervals make a pair of equal switching times: drop both (no change there)
        cleaned: list[float] = []
        for t in times:
            if cleaned and cleaned[-1] == t:
                cleaned.pop()
            else:
                cleaned.append(t)
        super().__init__(on0)
        self._times = np.array(cleaned)


class MarkovAvailability(_Switching):
    """Two-state Markov on/off availability (module docstring); ``initial``: stationary or on."""

    def __init__(self, rng: np.random.Generator, mean_on_s: float, mean_off_s: float, *, initial: str = "stationary"):
        if not (mean_on_s > 0 and mean_off_s > 0 and math.isfinite(mean_on_s) and math.isfinite(mean_off_s)):
            raise ConfigError(f"MarkovAvailability: mean_on_s={mean_on_s!r}, mean_off_s={mean_off_s!r} (allowed: "
                              f"finite numbers > 0)")
        if initial not in ("stationary", "on"):
            raise ConfigError(f"MarkovAvailability: initial={initial!r} is not one of stationary, on")
        self._rng = rng
        on0 = True if initial == "on" else bool(rng.random() < markov_on_fraction(mean_on_s, mean_off_s))
        super().__init__(on0)
        self._means = (float(mean_on_s), float(mean_off_s))

    def _ensure(self, t_s: float) -> None:
        while not self._times.size or self._times[-1] <= t_s:
            n = self._times.size
            m = CHUNK  # a fixed chunk: the draws do not depend on the times asked
            # sojourn i is on when (i even) == on0
            on = (np.arange(n, n + m) % 2 == 0) == self._on0
            scale = np.where(on, self._means[0], self._means[1])
            d = self._rng.exponential(1.0, m) * scale
            start = self._times[-1] if n else 0.0
            self._times = np.concatenate([self._times, start + np.cumsum(d)])


def on_fraction(model, until_s: float) -> float:
    """Fraction of [0, until_s] during which ``model`` is available (exact, from its switching times)."""
    t, total = 0.0, 0.0
    while t < until_s:
        nxt = min(model.next_change_s(t), until_s)
        if model.is_available(t):
            total += nxt - t
        t = nxt
    return total / until_s


def make_availability(model: str, num_clients: int, *, seed_sequence: np.random.SeedSequence, mean_on_s=None,
                      mean_off_s=None, share: float = 1.0, intervals: dict | None = None,
                      initial: str = "stationary") -> list:
    """One availability model per client. markov: clients 0..round(share K)-1 come and go, each from its own
    stream (a child of ``seed_sequence`` with spawn key (..., k): client k's timeline does not depend on K),
    the others are always available. trace: ``intervals`` client -> [(start, end)]; clients it does not
    name are always available."""
    if model == "always":
        return [AlwaysAvailable() for _ in range(num_clients)]
    if model == "trace":
        intervals = intervals or {}
        return [IntervalAvailability(intervals[k]) if k in intervals else AlwaysAvailable()
                for k in range(num_clients)]
    if model != "markov":
        raise ConfigError(f"availability.model={model!r} is not one of always, markov, trace")
    churning = int(round(share * num_clients))
    out = []
    for k in range(num_clients):
        if k >= churning:
            out.append(AlwaysAvailable())
            continue
        child = np.random.SeedSequence(entropy=seed_sequence.entropy, spawn_key=tuple(seed_sequence.spawn_key) + (k,))
        out.append(MarkovAvailability(np.random.Generator(np.random.PCG64(child)), mean_on_s, mean_off_s,
                                      initial=initial))
    return out
