"""Optimiser benchmarks (``python -m fsllm_sim.benchmarks.solvers``), measured in one run.

1. Scaling of bcd's wall time with the number of clients K = 10, 30, 100, 300 on random instances
   (``solvers.instances.random_problem``, the SmolLM2-shaped synthetic profile: all 29 split points x
   5 ranks = 145 pairs, pruning on, as ``solve`` runs by default), with the ratio to the K = 10 time.
   Bands: M = 128 s-band and N = 64 f-band subchannels. Every client needs one subchannel per band,
   so a band narrower than K is widened to the next multiple of 32 at or above 1.0625 K (K = 100:
   N = 128; K = 300: M = N = 320). The time of one fixed pair (split 15, rank 4) is shown too: it
   does not depend on how much the bound prunes.
2. The default-scenario size (K = 8, M = 32, N = 16): bcd's objective against each baseline
   (ratio = baseline / bcd, so > 1 means bcd is better), on one instance and as the mean over five.
"""
from __future__ import annotations

import math
import time

import numpy as np

from solvers import solve
from solvers.instances import random_problem

SCALING_CLIENTS = (10, 30, 100, 300)
BASELINES = ("equal", "random", "max-power")


def band_sizes(num_clients: int, num_s: int = 128, num_f: int = 64) -> tuple[int, int]:
    """(M, N), each widened to a multiple of 32 >= 1.0625 K when it is narrower than K."""
    wide = 32 * math.ceil(1.0625 * num_clients / 32)
    return (num_s if num_s >= num_clients else wide), (num_f if num_f >= num_clients else wide)


def scaling(clients=SCALING_CLIENTS, seed: int = 0) -> list[dict]:
    rows = []
    for k in clients:
        m, n = band_sizes(k)
        pb = random_problem(np.random.default_rng(seed), k, m, n)
        start = time.perf_counter()
        sol = solve(pb)
        all_pairs = time.perf_counter() - start
        start = time.perf_counter()
        solve(pb, split=15, rank=4)
        one_pair = time.perf_counter() - start
        rows.append({"K": k, "M": m, "N": n, "time_s": all_pairs, "pair_time_s": one_pair,
                     "objective_s": sol.objective_s, "split": sol.split, "rank": sol.rank,
                     "pairs": sol.notes[-3]})
    base = rows[0]["time_s"]
    for row in rows:
        row["ratio_to_first"] = row["time_s"] / base
    return rows


def baselines(seeds=range(5), k: int = 8, m: int = 32, n: int = 16) -> dict:
    ratios = {name: [] for name in BASELINES}
    first = None
    for seed in seeds:
        pb = random_problem(np.random.default_rng(seed), k, m, n)
        best = solve(pb)
        row = {"bcd": best.objective_s}
        for name in BASELINES:
            value = solve(pb, name).objective_s
            row[name] = value
            ratios[name].append(value / best.objective_s)
        if first is None:
            first = row
    return {"first": first, "mean_ratio": {name: float(np.mean(v)) for name, v in ratios.items()},
            "worst_ratio": {name: float(np.min(v)) for name, v in ratios.items()}}


def main() -> None:
    print("bcd wall time against K (all 29 splits x 5 ranks, pruning on; random instances, seed 0)")
    print(f"{'K':>5} {'M':>5} {'N':>5} {'time s':>9} {'x K=10':>8} {'1 pair s':>9}  best (split, rank)")
    for row in scaling():
        print(f"{row['K']:>5} {row['M']:>5} {row['N']:>5} {row['time_s']:>9.3f} {row['ratio_to_first']:>8.2f} "
              f"{row['pair_time_s']:>9.3f}  ({row['split']}, {row['rank']})   {row['pairs']}", flush=True)
    print("\nDefault-scenario size K=8, M=32, N=16: objective (s), ratio = baseline / bcd")
    res = baselines()
    first = res["first"]
    print(f"  seed 0: bcd {first['bcd']:.2f} s; "
          + "; ".join(f"{name} {first[name]:.2f} s ({first[name] / first['bcd']:.2f}x)" for name in BASELINES))
    print("  mean ratio over 5 seeds: " + ", ".join(f"{name} {v:.2f}x" for name, v in res["mean_ratio"].items()))
    print("  smallest ratio over 5 seeds: " + ", ".join(f"{name} {v:.3f}x" for name, v in res["worst_ratio"].items()))


if __name__ == "__main__":
    main()
