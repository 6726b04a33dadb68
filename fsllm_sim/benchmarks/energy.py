"""The energy objectives' cost (``fsllm-sim bench energy``), measured side by side in one run.

On one random instance (``solvers.instances.random_problem``: the SmolLM2-shaped synthetic profile, 29 splits x 5
ranks) with device energy (kappa 5e-27 J s^2 x a lognormal spread, f_max 1 GHz, f_min 0.3 GHz, rx 0.1 W, idle
0.05 W), bcd is timed with the delay objective (today's bcd) and with the weighted objective (lambda = the delay
optimum's T_round / E_round: a joule worth what the round's energy is worth per second of it), with one split and
with per-client splits. The issue's target: the energy objective with per-client splits at K = 100 within 3x of
today's bcd on the same instance.
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np

from solvers import solve
from solvers.instances import random_problem

from ..energy import DeviceEnergy
from .solvers import band_sizes


def energy_problem(seed: int, num_clients: int):
    """The random instance with device energy parameters (the speed at f_max is the instance's speed)."""
    rng = np.random.default_rng(seed)
    m, n = band_sizes(num_clients)
    pb = random_problem(rng, num_clients, m, n)
    f_max = np.full(num_clients, 1e9)
    energy = DeviceEnergy(kappa=5e-27 * rng.lognormal(0.0, 0.3, num_clients),
                          flops_per_cycle=pb.device_flops_per_s / f_max,
                          f_min_hz=np.full(num_clients, 0.3e9), f_max_hz=f_max, battery_j=np.full(num_clients, np.inf),
                          rx_power_w=np.full(num_clients, 0.1), idle_power_w=np.full(num_clients, 0.05))
    return dataclasses.replace(pb, energy=energy)


def compare(num_clients: int, seed: int = 0) -> dict:
    pb = energy_problem(seed, num_clients)
    start = time.perf_counter()
    delay = solve(pb)
    delay_s = time.perf_counter() - start
    weight = delay.round_time_s / delay.energy.total_j
    row = {"K": num_clients, "delay_bcd_s": delay_s, "weight_s_per_j": weight,
           "delay_objective": {"delay_s": delay.training_delay_s, "energy_j": delay.training_energy_j}}
    for label, per_client in (("weighted", False), ("weighted_per_client", True)):
        problem = dataclasses.replace(pb, objective="weighted", weight_s_per_j=weight, per_client_split=per_client)
        start = time.perf_counter()
        sol = solve(problem)
        row[label] = {"time_s": time.perf_counter() - start, "ratio": (time.perf_counter() - start) / delay_s,
                      "delay_s": sol.training_delay_s, "energy_j": sol.training_energy_j,
                      "objective_s": sol.objective_s, "split": sol.split, "rank": sol.rank}
    return row


def main(argv=None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m fsllm_sim.benchmarks.energy", description=__doc__.split("\n")[0])
    parser.add_argument("--clients", default="8,100", help="comma-separated K values (default 8,100)")
    args = parser.parse_args(argv)
    print("bcd with the weighted objective (DVFS + power + round time) against today's bcd (delay), same instance")
    print(f"{'K':>5} {'delay bcd s':>12} {'weighted s':>11} {'x':>6} {'+ per-client s':>15} {'x':>6}   "
          f"delay s / energy J: delay-optimal -> weighted -> per-client")
    for k in [int(x) for x in args.clients.split(",")]:
        r = compare(k)
        w, pc, d = r["weighted"], r["weighted_per_client"], r["delay_objective"]
        print(f"{k:>5} {r['delay_bcd_s']:>12.2f} {w['time_s']:>11.2f} {w['ratio']:>6.1f} {pc['time_s']:>15.2f} "
              f"{pc['ratio']:>6.1f}   {d['delay_s']:.1f} s / {d['energy_j']:.0f} J -> {w['delay_s']:.1f} / "
              f"{w['energy_j']:.0f} -> {pc['delay_s']:.1f} / {pc['energy_j']:.0f}", flush=True)


if __name__ == "__main__":
    main()
