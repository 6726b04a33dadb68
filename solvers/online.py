"""Online policy: re-solve at the start of every global round on the gains measured then (spec section 5).

``OnlinePolicy(template, method="bcd").decide(gain_s, gain_f, round_index)`` builds the round's problem
(the template with the current gains, or ``template(gain_s, gain_f, round_index)`` when the template
is a function) and solves it.

Choices, documented:

* Split and rank are chosen in the first round and then kept (``reoptimise_split_rank=False``, the
  default): moving the split point re-partitions the model between devices and server and changing the
  rank changes the adapter shapes, which a real deployment does not do every round. With
  ``reoptimise_split_rank=True`` every round searches all allowed pairs again.
* Warm start (``warm_start=True``, bcd only): the previous round's assignment is handed to bcd as an
  extra starting point (``init``), besides its own greedy start, and the better of the two after local
  search and power control is kept (bcd's seeded perturbation search then continues from it). So an
  allocation that is still good under the new gains is kept (fewer reassignments), the result is at
  least as good as the cold start's before perturbation (not necessarily after: the perturbations
  follow a different path), and the answer stays a pure function of (gains, previous decision): the
  policy is deterministic. Only under ``protocol: sfl``: sl has no assignment to keep, and fl's previous
  solution reports its s-band empty.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Optional, Union

import numpy as np

from fsllm_sim.errors import SolverError

from .problem import Problem, Solution
from .registry import DEFAULT_METHOD, get_method, solve

ProblemFactory = Callable[[np.ndarray, np.ndarray, int], Problem]


class OnlinePolicy:
    """Per-round re-optimisation on current gains, warm-started from the last decision."""

    def __init__(self, template: Union[Problem, ProblemFactory], method: str = DEFAULT_METHOD,
                 reoptimise_split_rank: bool = False, warm_start: bool = True, **options):
        if not isinstance(template, Problem) and not callable(template):
            raise SolverError("OnlinePolicy needs a solvers.Problem or a function (gain_s, gain_f, round) -> Problem")
        get_method(method)  # unknown names fail now, not at the first round
        self.template = template
        self.method = method
        self.reoptimise_split_rank = bool(reoptimise_split_rank)
        self.warm_start = bool(warm_start)
        self.options = dict(options)
        self.last: Optional[Solution] = None
        self.history: list[Solution] = []

    def reset(self) -> None:
        """Forget past decisions (the next round chooses split and rank again)."""
        self.last = None
        self.history = []

    def problem_for(self, gain_s, gain_f, round_index: int) -> Problem:
        if isinstance(self.template, Problem):
            # Current (instantaneous) gains already include the fading: their Shannon rate is the rate,
            # so an ergodic template is scored on mean-gain rates here (no second average over fading).
            return dataclasses.replace(self.template, gain_s=np.asarray(gain_s, dtype=float),
                                       gain_f=np.asarray(gain_f, dtype=float), rate_model="mean-gain",
                                       rician_k_linear=None)
        problem = self.template(np.asarray(gain_s, dtype=float), np.asarray(gain_f, dtype=float), round_index)
        if not isinstance(problem, Problem):
            raise SolverError(f"OnlinePolicy: the problem factory returned {type(problem).__name__}, not a Problem")
        return problem

    def decide(self, gain_s, gain_f, round_index: int) -> Solution:
        """The allocation (and split/rank) for round ``round_index`` given the gains measured at its start."""
        problem = self.problem_for(gain_s, gain_f, round_index)
        split = rank = None
        options = dict(self.options)
        last = self.last
        if last is not None and not self.reoptimise_split_rank:
            split, rank = last.split, last.rank
        if (self.warm_start and self.method == "bcd" and last is not None and problem.protocol == "sfl"
                and last.assign_s.shape == (problem.num_subchannels_s,)
                and last.assign_f.shape == (problem.num_subchannels_f,)
                and int(max(last.assign_s.max(), last.assign_f.max())) < problem.num_clients):
            options.setdefault("init", (last.assign_s, last.assign_f))
        sol = solve(problem, self.method, split=split, rank=rank, **options)
        sol.notes.append(f"online round {round_index}: "
                         + ("split/rank chosen this round" if split is None else f"split/rank kept at ({split}, {rank})")
                         + (", warm-started" if "init" in options else ""))
        self.last = sol
        self.history.append(sol)
        return sol
