"""cProfile of the dynamic benchmark's changing world with a static downlink (the figures of docs/dynamics.md,
"Where the time goes now"):

    python scripts/profile_dynamic.py --rounds 4 --top 25

The scale scenario of ``fsllm_sim.benchmarks.engine`` at K = 1000 with its changing world
(``changing_world``) and the deadline the benchmark derives at that size (253 s; ``--deadline-s`` to change).
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import sys


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="profile_dynamic")
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--deadline-s", type=float, default=253.0)
    p.add_argument("--top", type=int, default=25)
    args = p.parse_args(argv)

    from fsllm_sim.benchmarks.engine import changing_world, scale_scenario
    from fsllm_sim.engine import simulate
    from fsllm_sim.engine.world import build_world

    off = scale_scenario(args.clients, 1024, args.rounds)
    world = build_world(off, profile_source="analytic", progress=False)
    scenario = changing_world(off, args.deadline_s, downlink_fading=False)
    profile = cProfile.Profile()
    res = profile.runcall(simulate, scenario, profile_source="analytic", allocation="equal-share", world=world)
    print(f"event loop {res.wall_s:.1f} s ({res.events} events, {len(res.rounds)} rounds)")
    pstats.Stats(profile).sort_stats("cumulative").print_stats(r"fsllm_sim|channel_models", args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
