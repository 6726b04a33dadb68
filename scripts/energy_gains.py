"""The gains of per-client splits and DVFS on scenarios/heterogeneous.yaml (docs/energy.md, "Measured").

For each objective (delay, weighted) and split rule (one common split, per-client splits) bcd solves the scenario
(counted FLOPs), then the event engine simulates the chosen allocation for ``--rounds`` rounds (fading on, analytic
training) and reports its mean round time and energy beside the closed form's; equal-share at the scenario's split
and rank is the baseline. Usage: python scripts/energy_gains.py [--rounds 3] [--scenario PATH]
"""
from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np

import solvers
from fsllm_sim.config.loader import load_scenario
from fsllm_sim.engine import build_world, simulate


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenario", default="scenarios/heterogeneous.yaml")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    base = load_scenario(args.scenario)
    print(f"{'objective':<10} {'splits':<8} {'l_k':<26} {'r':>3} {'N(r) T s':>9} {'N(r) E J':>9} {'objective':>10} "
          f"{'engine T s':>11} {'engine E/round J':>17} {'closed E/round J':>17} {'mean f GHz':>10}")
    for objective in ("delay", "weighted"):
        for per_client in (False, True):
            sc = dataclasses.replace(base, objective=dataclasses.replace(base.objective, kind=objective),
                                     split=dataclasses.replace(base.split, per_client=per_client))
            world = build_world(sc, progress=False)
            start = time.perf_counter()
            res = simulate(sc, allocation="bcd", world=world, rounds=args.rounds, training="analytic")
            wall = time.perf_counter() - start
            sol = res.rounds[0].allocation.evaluate(world.problem)  # the closed form of what the engine ran
            summary = res.energy_summary()
            durations = [r.end_s - r.start_s for r in res.rounds]
            splits = "common" if sol.splits is None else "own"
            l_k = str(sol.split) if sol.splits is None else ",".join(map(str, sol.splits.tolist()))
            f = world.problem.energy.frequency_or_max(sol.frequency_hz)
            print(f"{objective:<10} {splits:<8} {l_k:<26} {sol.rank:>3} {sol.training_delay_s:>9.1f} "
                  f"{sol.training_energy_j:>9.0f} {sol.objective_s:>10.1f} {np.mean(durations):>11.2f} "
                  f"{summary['mean_round_j']:>17.1f} {summary['mean_analytic_round_j']:>17.1f} "
                  f"{np.mean(f) / 1e9:>10.2f}   (solve + simulate {wall:.1f} s)", flush=True)
    world = build_world(base, progress=False)
    eq = solvers.solve(world.problem, "equal", split=base.split.layer, rank=base.lora.rank)
    print(f"equal-share at l = {base.split.layer}, r = {base.lora.rank}, f_max: N(r) T {eq.training_delay_s:.1f} s, "
          f"N(r) E {eq.training_energy_j:.0f} J, weighted objective {eq.objective_s:.1f}")


if __name__ == "__main__":
    main()
