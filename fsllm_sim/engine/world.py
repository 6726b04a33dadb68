"""One assembly of a scenario's world: radio environment, devices, profile, convergence and the problem.

Every job and the engine start from :func:`build_world`, so a run, an optimisation and a simulation
of the same scenario see the same placement, gains, speeds and costs.
"""
from __future__ import annotations

from dataclasses import dataclass

from solvers.problem import Problem
from solvers.scenario import build_problem

from ..convergence import ConvergenceModel, load_convergence
from ..devices import DeviceFleet, make_fleet
from ..network import RadioEnvironment, build_environment
from ..privacy import scenario_privacy_floor
from ..profiles import scenario_profile
from ..seeding import stream


@dataclass(frozen=True)
class World:
    """Everything drawn or computed from a scenario before anything runs."""

    scenario: object
    env: RadioEnvironment
    fleet: DeviceFleet
    profile: object
    profile_meta: dict
    convergence: ConvergenceModel
    problem: Problem  # large-scale gains; rates per scenario.solver.rates (mean-gain | ergodic): spec section 4
    warnings: tuple = ()  # one line each: where the scenario leaves the regime its models were measured in,
    # and the problem's notes (protocol fl: the devices left out for lack of memory)

    @property
    def num_clients(self) -> int:
        return self.env.num_clients


def build_world(scenario, *, profile_source: str = "counted", progress: bool = True, echo=print,
                model=None) -> World:
    """Place clients, draw their channels and devices, profile the model and state the problem (``model``: an
    already loaded fsllm_sim.training.models model to profile, instead of loading the scenario's)."""
    env = build_environment(scenario)
    fleet = make_fleet(scenario.devices, env.num_clients, stream(scenario.seed, "devices"))
    convergence = load_convergence(scenario)
    profile, meta = scenario_profile(scenario, source=profile_source, progress=progress, echo=echo, model=model)
    problem = build_problem(scenario, env, fleet, profile, convergence)
    # the problem's convergence model: under fl with devices left out, a round trains fewer tokens
    return World(scenario, env, fleet, profile, meta, problem.convergence, problem,
                 tuple(convergence.regime_warnings(scenario)) + problem.notes + privacy_warnings(scenario))


def privacy_warnings(scenario) -> tuple:
    """One line when the scenario's own split (what equal-share and the fixed-split baselines train at) lies below
    the floor its leakage limit sets; the optimiser never goes below it."""
    floor = scenario_privacy_floor(scenario) if scenario.protocol != "fl" else None
    if floor is None or scenario.split.layer >= floor.split:
        return ()
    leak, attack = floor.measured.get(scenario.split.layer, (None, None))
    at = (f" ({floor.metric} upper bound {leak:.3f} there, attack {attack})" if leak is not None
          else " (a split not measured)")
    return (f"privacy: split.layer={scenario.split.layer} is below the floor {floor.split} that "
            f"privacy.{'max_token_accuracy' if floor.metric == 'token_acc' else 'max_rouge_l'}={floor.limit:g} sets"
            f"{at}; allocations at split.layer (equal-share, fixed-split baselines) exceed the limit",)


def print_warnings(world: World) -> None:
    """Each warning of the world as one ``warning: ...`` line on stderr."""
    import sys

    for line in world.warnings:
        print(f"warning: {line}", file=sys.stderr)
