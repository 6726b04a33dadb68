"""`make bench` / `fsllm-sim bench`: run the selected benchmarks one after another."""
from __future__ import annotations

import importlib
import time

BENCHMARKS = {
    "fading": "fsllm_sim.benchmarks.fading",
    "solvers": "fsllm_sim.benchmarks.solvers",
    "training": "fsllm_sim.benchmarks.training",
    "engine": "fsllm_sim.benchmarks.engine",
    "sweep": "fsllm_sim.benchmarks.sweep",
    "playground": "fsllm_sim.benchmarks.playground",
    "channel_log": "fsllm_sim.benchmarks.channel_log",
    "energy": "fsllm_sim.benchmarks.energy",
}


def run_benchmarks(which: list[str]) -> int:
    from ..errors import ConfigError

    unknown = [w for w in which if w != "all" and w not in BENCHMARKS]
    if unknown:
        raise ConfigError(f"unknown benchmark {unknown[0]!r}; allowed: all, {', '.join(BENCHMARKS)}")
    names = list(BENCHMARKS) if "all" in which else which
    for name in names:
        print(f"\n=== benchmark: {name} ===", flush=True)
        start = time.perf_counter()
        module = importlib.import_module(BENCHMARKS[name])
        # The training benchmark has its own CLI; give it no arguments rather than fsllm-sim's argv.
        module.main([]) if name in ("training", "engine", "sweep", "playground", "channel_log", "energy") else module.main()
        print(f"({name}: {time.perf_counter() - start:.1f} s)", flush=True)
    return 0
