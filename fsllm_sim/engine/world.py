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
                 tuple(convergence.regime_warnings(scenario)) + problem.notes)


def print_warnings(world: World) -> None:
    """Each warning of the world as one ``warning: ...`` line on stderr."""
    import sys

    for line in world.warnings:
        print(f"warning: {line}", file=sys.stderr)
