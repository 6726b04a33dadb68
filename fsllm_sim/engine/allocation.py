"""Allocations the engine runs under, and the policies that choose one per round.

An :class:`Allocation` fixes split, rank, subchannels and powers on both bands. A policy hands the
engine the allocation of each round:

* :class:`StaticPolicy`: one allocation for the whole run: the equal-share reference, a solution saved
  by `fsllm-sim optimize`, or a solver method solved once on the mean gains at t = 0;
* :class:`OnlineAllocationPolicy`: :class:`solvers.OnlinePolicy` re-solved at each round start on the
  gains measured then (split and rank kept from the first round, since the trained model cannot change
  shape mid-run).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

import solvers
from channel_models import water_filling_power_w_batched
from solvers.baselines import equal_assignment
from solvers.problem import Problem, Solution, check_allocation
from solvers.protocols import sl_allocation

from ..errors import ConfigError
from ..seeding import stream_seed

EQUAL_SHARE = "equal-share"

# Methods that take a time limit (and, for exact/gurobi, show progress).
TIME_LIMITED_METHODS = ("exact", "gurobi", "relaxation")


def solver_options(scenario, method: str, *, progress: bool = False, time_limit_s: float | None = None) -> dict:
    """Options for ``solvers.solve`` with ``method``: the random baseline's seed from the scenario's ``solver``
    stream (so it changes with the scenario's seed, and only with it); time limit and progress for the exact
    methods."""
    options = {}
    if method == "random":
        options["seed"] = stream_seed(scenario.seed, "solver")
    if method in ("exact", "gurobi"):
        options["progress"] = bool(progress)
    if method in TIME_LIMITED_METHODS and time_limit_s is not None:
        options["time_limit_s"] = float(time_limit_s)
    return options


@dataclass(frozen=True)
class Allocation:
    split: int
    rank: int
    assign_s: np.ndarray
    power_s_w: np.ndarray
    assign_f: np.ndarray
    power_f_w: np.ndarray
    label: str
    note: str = ""  # a one-line caveat shown with the results (e.g. a solution made for another scenario)
    frequency_hz: Optional[np.ndarray] = None  # DVFS: each device's clock; None: every device at f_max
    splits: Optional[np.ndarray] = None  # per-client split points l_k; None: every client at ``split``

    @classmethod
    def from_solution(cls, sol: Solution, label: str) -> "Allocation":
        return cls(int(sol.split), int(sol.rank), np.asarray(sol.assign_s, dtype=int),
                   np.asarray(sol.power_s_w, dtype=float), np.asarray(sol.assign_f, dtype=int),
                   np.asarray(sol.power_f_w, dtype=float), label,
                   frequency_hz=None if sol.frequency_hz is None else np.asarray(sol.frequency_hz, dtype=float),
                   splits=None if sol.splits is None else np.asarray(sol.splits, dtype=int))

    def evaluate(self, problem: Problem) -> Solution:
        """The closed form (spec section 4) of this allocation on ``problem``'s gains."""
        return solvers.evaluate(problem, self.split, self.rank, self.assign_s, self.power_s_w, self.assign_f,
                                self.power_f_w, method=self.label, **self._choices(problem=problem))

    def _choices(self, members=None, problem: Problem | None = None) -> dict:
        """The DVFS clocks and per-client splits to score (of ``members`` only), as solvers.evaluate takes them:
        none when the allocation leaves both unset (every device at f_max, every client at ``split``). With
        ``problem``, a clock left unset (NaN: a client the round's allocation was not made for) is its f_max."""
        out = {}
        for name in ("frequency_hz", "splits"):
            value = getattr(self, name)
            if value is not None:
                if name == "frequency_hz" and problem is not None and problem.energy is not None:
                    value = problem.energy.frequency_or_max(value) if members is None else \
                        problem.energy.subset(members).frequency_or_max(np.asarray(value)[members])
                    out[name] = value
                    continue
                out[name] = np.asarray(value)[members] if members is not None else value
        return out

    def members(self, num_clients: int) -> np.ndarray:
        """The clients this allocation gives subchannels to (every client, except in a round of a changing
        world that only some take part in)."""
        if np.asarray(self.power_s_w).ndim == 2:  # sl: every client, in turn
            return np.arange(num_clients)
        return np.unique(self.assign_f[self.assign_f >= 0])

    def evaluate_members(self, problem: Problem) -> tuple[np.ndarray, Solution]:
        """(members, the closed form on the problem restricted to them): an allocation that leaves clients out
        is scored on the clients it serves."""
        members = self.members(problem.num_clients)
        if members.size == problem.num_clients:
            return members, self.evaluate(problem)
        index = {int(c): i for i, c in enumerate(members)}

        def sub(assign):
            return np.array([index.get(int(c), -1) for c in assign], dtype=int)
        restricted = problem.restricted(members)
        return members, solvers.evaluate(restricted, self.split, self.rank, sub(self.assign_s), self.power_s_w,
                                         sub(self.assign_f), self.power_f_w, method=self.label,
                                         **self._choices(members, problem))

    def on_clients(self, members, num_clients: int) -> "Allocation":
        """This allocation, made for the clients ``members`` of a restricted problem (indices 0..len-1), with
        the full problem's client indices: subchannel j of client i goes to client members[i]; client i's clock
        and split become client members[i]'s (the others: f_max, NaN, and ``split``)."""
        members = np.asarray(members, dtype=int)

        def full(assign):
            a = np.asarray(assign, dtype=int)
            return np.where(a >= 0, members[np.clip(a, 0, None)], -1)

        def spread(values, fill, dtype):
            if values is None:
                return None
            out = np.full(num_clients, fill, dtype=dtype)
            out[members] = np.asarray(values, dtype=dtype)
            return out
        return dataclasses.replace(self, assign_s=full(self.assign_s), assign_f=full(self.assign_f),
                                   frequency_hz=spread(self.frequency_hz, np.nan, float),
                                   splits=spread(self.splits, self.split, int))

    def to_dict(self) -> dict:
        return {"label": self.label, "split": self.split, "rank": self.rank,
                "assign_s": self.assign_s.tolist(), "power_s_w": self.power_s_w.tolist(),
                "assign_f": self.assign_f.tolist(), "power_f_w": self.power_f_w.tolist(),
                **{name: [None if isinstance(v, float) and np.isnan(v) else v for v in np.asarray(value).tolist()]
                   for name, value in self._choices().items()}}


def water_filled_powers(assign: np.ndarray, gain: np.ndarray, bandwidth_hz: np.ndarray, noise_psd_w_per_hz: float,
                        p_max_w: np.ndarray) -> np.ndarray:
    """Each client water-fills its cap over its own subchannels; returns the per-subchannel power (S,)."""
    k = gain.shape[0]
    mask = assign[None, :] == np.arange(k)[:, None]
    powers = water_filling_power_w_batched(gain, np.broadcast_to(bandwidth_hz, gain.shape), noise_psd_w_per_hz,
                                           p_max_w, mask=mask)
    return powers.sum(axis=0)


def _check_fits_memory(problem: Problem, split: int, rank: int) -> None:
    """The scenario's split and rank (what equal-share trains at) must fit every device's memory: one line naming
    split.layer, the first client that cannot hold it and the deepest split every client can."""
    prof, limit = problem.profile, problem.client_memory_limit_bytes
    if prof.client_memory_bytes is None or limit is None or split not in prof.splits or rank not in prof.ranks:
        return
    si, ri = prof.index(int(split), int(rank))
    need = float(prof.client_memory_bytes[si, ri])
    short = np.flatnonzero(need > limit)
    if short.size == 0:
        return
    k = int(short[0])
    fits = [int(s) for j, s in enumerate(prof.splits) if np.all(prof.client_memory_bytes[j, ri] <= limit)]
    deepest = f"at most {max(fits)}" if fits else "none"
    raise ConfigError(f"split.layer: {split} at lora.rank {rank} needs {need / 2 ** 30:.3g} GiB on the device, more "
                      f"than client {int(problem.client_ids[k])}'s {limit[k] / 2 ** 30:.3g} GiB; allowed: a split "
                      f"every device can hold at that rank ({deepest})")


def equal_share(problem: Problem, split: int, rank: int) -> Allocation:
    """Equal subchannel counts (interleaved over the band) with water-filled power on both bands.

    Per protocol: under sl each client, during its turn, water-fills its budget over every subchannel of
    both bands (there is nothing to share: that is sl's allocation); under fl the s-band stays empty and the
    split is J whatever ``split`` says (:func:`protocol_split`)."""
    split = protocol_split(problem, split)
    _check_fits_memory(problem, split, rank)
    if problem.protocol == "sl":
        return Allocation(int(split), int(rank), *sl_allocation(problem), EQUAL_SHARE)
    k = problem.num_clients
    if problem.protocol == "fl":
        a_f = equal_assignment(k, problem.num_subchannels_f)
        p_f = water_filled_powers(a_f, problem.gain_f, problem.bandwidth_f_hz, problem.noise_psd_w_per_hz,
                                  problem.p_max_w)
        a_s, p_s = np.full(problem.num_subchannels_s, -1), np.zeros(problem.num_subchannels_s)  # nothing on s
        return Allocation(int(split), int(rank), a_s, p_s, a_f, p_f, EQUAL_SHARE)
    a_s = equal_assignment(k, problem.num_subchannels_s)
    a_f = equal_assignment(k, problem.num_subchannels_f)
    p_s = water_filled_powers(a_s, problem.gain_s, problem.bandwidth_s_hz, problem.noise_psd_w_per_hz, problem.p_max_w)
    p_f = water_filled_powers(a_f, problem.gain_f, problem.bandwidth_f_hz, problem.noise_psd_w_per_hz, problem.p_max_w)
    return Allocation(int(split), int(rank), a_s, p_s, a_f, p_f, EQUAL_SHARE)


def load_scenario_plugins(scenario) -> list[str]:
    """Import the scenario's ``solver.plugins`` (once per process; solvers.plugins): the methods they register
    are then known to every command. Returns the method names added now."""
    try:
        return solvers.load_plugins(scenario.solver.plugins)
    except solvers.problem.SolverError as exc:
        raise ConfigError(str(exc)) from None


def protocol_split(problem: Problem, scenario_split: int) -> int:
    """The split an allocation uses: the scenario's, except under fl, where the whole model is on the device
    (the profile's one split, J)."""
    return int(problem.profile.splits[0]) if problem.protocol == "fl" else int(scenario_split)


def load_solution(path: str | Path, problem: Problem, fingerprint: str | None = None) -> Allocation:
    """Read a solution JSON written by `fsllm-sim optimize` and check it against the problem: its K must be
    the scenario's; a different problem fingerprint (another placement, channel, devices...) is a note."""
    p = Path(path)
    where = f"allocation {str(p)!r}"
    if not p.is_file():
        raise ConfigError(f"{where}: no such file (give equal-share, a solver method ({', '.join(solvers.method_names())}) "
                          f"or a solution.json written by `fsllm-sim optimize`)")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
        arrays = {key: np.asarray(data[key], dtype=float) for key in ("assign_s", "power_s_w", "assign_f", "power_f_w")}
        split, rank = int(data["split"]), int(data["rank"])
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError, OverflowError) as exc:
        raise ConfigError(f"{where}: not a solution file written by `fsllm-sim optimize` "
                          f"({type(exc).__name__})") from None
    made_for_k = data.get("num_clients") if isinstance(data, dict) else None
    if made_for_k is not None and made_for_k != problem.num_clients:
        raise ConfigError(f"{where}: made for K={made_for_k} clients, the scenario has K={problem.num_clients}")
    made_for_protocol = data.get("protocol", "sfl") if isinstance(data, dict) else "sfl"
    if made_for_protocol != problem.protocol:
        raise ConfigError(f"{where}: made for protocol {made_for_protocol}, the scenario has protocol "
                          f"{problem.protocol}")
    if arrays["assign_s"].shape != (problem.num_subchannels_s,) or arrays["assign_f"].shape != (problem.num_subchannels_f,):
        raise ConfigError(f"{where}: made for {arrays['assign_s'].size}+{arrays['assign_f'].size} subchannels, the "
                          f"scenario has {problem.num_subchannels_s}+{problem.num_subchannels_f} (K="
                          f"{problem.num_clients})")
    for band in ("s", "f"):
        a = arrays[f"assign_{band}"]
        if np.any(a != np.round(a)):
            raise ConfigError(f"{where}: assign_{band} must hold integer client indices")
    note = ""
    made_for = data.get("problem_fingerprint")
    if fingerprint is not None and made_for is not None and made_for != fingerprint:
        note = (f"allocation {p.name} was optimised for another problem (fingerprint {made_for}, this scenario "
                f"{fingerprint}): it is feasible here but not necessarily optimal")
    alloc = Allocation(split, rank, arrays["assign_s"].astype(int), arrays["power_s_w"], arrays["assign_f"].astype(int),
                       arrays["power_f_w"], f"solution {p.name}", note, **_solution_choices(data, where))
    if alloc.splits is None and (split, rank) not in problem.candidate_pairs():
        raise ConfigError(f"{where}: (split={split}, rank={rank}) is not allowed in this scenario")
    try:
        check_allocation(problem, alloc.assign_s, alloc.power_s_w, alloc.assign_f, alloc.power_f_w)
        if alloc.frequency_hz is not None or alloc.splits is not None:  # clocks in range, splits allowed
            alloc.evaluate(problem)
    except solvers.problem.SolverError as exc:
        raise ConfigError(f"{where}: {exc} (K={problem.num_clients})") from None
    return alloc


def _solution_choices(data: dict, where: str) -> dict:
    """A solution file's DVFS clocks (``frequency_hz``, null entries: f_max) and per-client ``splits``, if any."""
    out = {}
    try:
        if data.get("frequency_hz") is not None:
            out["frequency_hz"] = np.array([np.nan if v is None else float(v) for v in data["frequency_hz"]])
        if data.get("splits") is not None:
            splits = np.asarray(data["splits"], dtype=float)
            if np.any(splits != np.round(splits)):
                raise ValueError("splits")
            out["splits"] = splits.astype(int)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ConfigError(f"{where}: frequency_hz and splits must be lists of numbers ({type(exc).__name__})") \
            from None
    return out


def solved(problem: Problem, method: str, **options) -> Allocation:
    """Solve ``problem`` with a registered method; a lower bound is not an allocation and is refused."""
    if method in solvers.registry.BOUND_METHODS:
        raise ConfigError(f"allocation: {method!r} computes a lower bound, not an allocation; allowed: "
                          f"{', '.join(m for m in solvers.method_names() if m not in solvers.registry.BOUND_METHODS)}")
    sol = solvers.solve(problem, method, **options)
    return Allocation.from_solution(sol, method)


class StaticPolicy:
    """The same allocation in every round."""

    needs_gains = False

    def __init__(self, allocation: Allocation):
        self.allocation = allocation

    def __init__(self, allocation: Allocation, problem: Problem | None = None):
        self.allocation = allocation
        self.problem = problem

    def decide(self, round_index: int, gain_s=None, gain_f=None) -> Allocation:
        return self.allocation

    def decide_for(self, round_index: int, gain_s, gain_f, members, commit: bool = True):
        """(allocation, problem it is scored on, the same allocation): a static allocation keeps every client's
        subchannels, so those of the clients not taking part stay idle."""
        return self.allocation, self.problem, self.allocation


class OnlineAllocationPolicy:
    """Re-solve at each round start on the gains measured then (see :class:`solvers.OnlinePolicy`); in a
    changing world, on the clients taking part only (the others' subchannels are reassigned)."""

    needs_gains = True

    def __init__(self, problem: Problem, method: str = "bcd", **options):
        if method in solvers.registry.BOUND_METHODS:
            raise ConfigError(f"policy online: {method!r} computes a lower bound, not an allocation")
        self.method = method
        self.problem = problem
        self._members = None
        self._options = options
        self._policy = solvers.OnlinePolicy(self._problem_for, method=method, **options)

    def _problem_for(self, gain_s, gain_f, round_index: int) -> Problem:
        # current (instantaneous) gains already include the fading: scored on mean-gain rates (see
        # solvers.OnlinePolicy.problem_for)
        now = dataclasses.replace(self.problem, gain_s=gain_s, gain_f=gain_f, rate_model="mean-gain",
                                  rician_k_linear=None)
        members = self._members
        if members is None or len(members) == self.problem.num_clients:
            return now
        return now.restricted(members)

    def decide(self, round_index: int, gain_s=None, gain_f=None) -> Allocation:
        sol = self._policy.decide(gain_s, gain_f, round_index)
        return Allocation.from_solution(sol, f"online {self.method}")

    def decide_for(self, round_index: int, gain_s, gain_f, members, commit: bool = True):
        """(allocation with the full problem's indices, the restricted problem, the allocation on it)."""
        members = list(members)
        # a warm start from another set of clients would start from a plan that leaves some of them out
        self._policy.warm_start = self._members is None or members == self._members
        self._members = members
        sub = self._problem_for(np.asarray(gain_s, dtype=float), np.asarray(gain_f, dtype=float), round_index)
        if commit:
            sol = self._policy.decide(gain_s, gain_f, round_index)
        else:  # a look (selection by the solver): the policy's history and warm start are left as they are
            last = self._policy.last
            sol = solvers.solve(sub, self.method, **({"split": last.split, "rank": last.rank} if last else {}),
                                **self._options)
        sub_alloc = Allocation.from_solution(sol, f"online {self.method}")
        return sub_alloc.on_clients(members, self.problem.num_clients), sub, sub_alloc


def make_policy(problem: Problem, scenario, *, allocation: str | None = None, policy: str | None = None):
    """The allocation policy a scenario (or the command line's overrides) asks for."""
    spec = allocation if allocation is not None else scenario.simulation.allocation
    kind = policy if policy is not None else scenario.simulation.policy
    load_scenario_plugins(scenario)
    if kind not in ("static", "online"):
        raise ConfigError(f"policy={kind!r} is not one of static, online")
    if isinstance(spec, Allocation):  # solved by the caller (a sweep's fixed-split method): run it as it is
        if kind == "online":
            raise ConfigError("policy online: re-solves every round; give a method name, not an allocation")
        return StaticPolicy(spec, problem)
    if kind == "online":
        method = "bcd" if spec == EQUAL_SHARE else spec
        if not solvers.is_method(method):
            raise ConfigError(f"policy online: allocation={spec!r} must be a solver method "
                              f"({', '.join(solvers.method_names())})")
        return OnlineAllocationPolicy(problem, method, **solver_options(scenario, method))
    if spec == EQUAL_SHARE:
        return StaticPolicy(equal_share(problem, scenario.split.layer, scenario.lora.rank), problem)
    if solvers.is_method(spec):
        return StaticPolicy(solved(problem, spec, **solver_options(scenario, spec)), problem)
    from ..config import problem_fingerprint

    return StaticPolicy(load_solution(spec, problem, problem_fingerprint(scenario)), problem)
