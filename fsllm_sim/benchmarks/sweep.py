"""Sweep execution benchmarks, measured side by side in one run (``fsllm-sim bench sweep``).

A 200-run analytic sweep of the default scenario (SmolLM2 profile from the analytic formula; bcd at every
point of s-band subchannels 16..64 x clients 4..10 x device sigma 0.1..1.0), run end to end by
:func:`fsllm_sim.jobs.sweep.run_sweep_file` into fresh folders:

1. sequential (``--workers 1``, in this process) against the local backend on 2 worker processes, alternated
   ``repeats`` times; the speed-up is the ratio of the medians (target >= 1.7x on 2 cores). The plan (the
   points and their profile) is built once before, so both sides find the model's profile in memory.
2. the Ray backend on a local instance of 2 CPUs against the local backend: the instance's start-up, then its
   overhead per run, (Ray wall - local wall) / runs, with the instance already up.

Every run must give byte-identical ``results.csv``; the benchmark checks it. The CPU each side used is shown
next to its wall time: on a host where other work holds a core, the wall-clock speed-up cannot reach 2x, and
CPU / wall says how many cores the sweep actually got.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import yaml

TARGET = 1.7  # speed-up of 2 local workers over the sequential run (issue 10)
DEFAULT_SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "default.yaml"
AXES = {"channel.s_band.subchannels": [16, 24, 32, 48, 64], "clients.count": [4, 6, 8, 10],
        "devices.speed.sigma": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]}


def write_sweep_file(folder: Path, axes: dict = AXES, methods=("bcd",), base: Path = DEFAULT_SCENARIO) -> Path:
    path = folder / "bench-sweep.yaml"
    path.write_text(yaml.safe_dump({"base": str(base), "axes": axes, "methods": list(methods),
                                    "seeds": 1, "evaluator": "analytic", "profile": "analytic"}))
    return path


def _timed_sweep(path: Path, out: Path, **options) -> tuple[float, float]:
    """(wall s, CPU s of this process and its finished children: the local pool's workers, not Ray's)."""
    from ..jobs.sweep import run_sweep_file

    cpu0, start = os.times(), time.perf_counter()
    run_sweep_file(str(path), out_dir=str(out), progress=False, echo=lambda *_: None, **options)
    wall, cpu1 = time.perf_counter() - start, os.times()
    cpu = sum(getattr(cpu1, f) - getattr(cpu0, f) for f in ("user", "system", "children_user", "children_system"))
    return wall, cpu


def local_vs_sequential(path: Path, folder: Path, repeats: int = 2, workers: int = 2) -> dict:
    """Wall times (the speed-up) and CPU times: CPU / wall is the number of cores the sweep got, and the local
    side's CPU over the sequential side's is what parallel execution costs in work (pool, pipes, pickling)."""
    times: dict = {"sequential": [], "local": []}
    cpu: dict = {"sequential": [], "local": []}
    for i in range(repeats):  # alternated, so a change in the machine's load hits both sides alike
        for side, n in (("sequential", 1), ("local", workers)):
            wall, used = _timed_sweep(path, folder / f"{side}{i}", workers=n)
            times[side].append(wall)
            cpu[side].append(used)
    seq, par = statistics.median(times["sequential"]), statistics.median(times["local"])
    seq_cpu, par_cpu = statistics.median(cpu["sequential"]), statistics.median(cpu["local"])
    return {"sequential_s": seq, "local_s": par, "speedup": seq / par, "all": times,
            "sequential_cores": seq_cpu / seq, "local_cores": par_cpu / par, "cpu_ratio": par_cpu / seq_cpu}


def ray_overhead(path: Path, folder: Path, runs: int, local_s: float, workers: int = 2) -> dict | None:
    try:
        import ray
    except ImportError:
        return None
    start = time.perf_counter()
    ray.init(num_cpus=workers, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    init_s = time.perf_counter() - start
    try:
        ray_s, _ = _timed_sweep(path, folder / "ray", backend="ray", workers=workers)
    finally:
        ray.shutdown()
    return {"init_s": init_s, "ray_s": ray_s, "per_run_ms": 1e3 * (ray_s - local_s) / runs,
            "per_run_with_init_ms": 1e3 * (ray_s + init_s - local_s) / runs}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="fsllm-sim bench sweep", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--no-ray", action="store_true")
    args = parser.parse_args(argv)
    from ..config.sweep_file import load_sweep_file
    from ..jobs.sweeps.plan import build_plan

    with tempfile.TemporaryDirectory(prefix="fsllm-bench-sweep-") as tmp:
        folder = Path(tmp)
        path = write_sweep_file(folder)
        runs = len(build_plan(load_sweep_file(path)).runs)  # warms the profile memo for every side
        print(f"{runs}-run analytic sweep (bcd; default scenario, analytic profile), end to end", flush=True)
        res = local_vs_sequential(path, folder, repeats=args.repeats)
        print(f"  sequential (--workers 1): {res['sequential_s']:.2f} s; local, 2 workers: {res['local_s']:.2f} s "
              f"-> speed-up {res['speedup']:.2f}x ({'meets' if res['speedup'] >= TARGET else 'MISSES'} the "
              f"{TARGET}x target; medians of {args.repeats}: sequential "
              + ", ".join(f"{t:.2f}" for t in res["all"]["sequential"]) + " s; local "
              + ", ".join(f"{t:.2f}" for t in res["all"]["local"]) + " s)", flush=True)
        print(f"  cores the sweep got (CPU s / wall s): sequential {res['sequential_cores']:.2f}, local "
              f"{res['local_cores']:.2f}; CPU of the local run / sequential: {res['cpu_ratio']:.3f}; host load "
              f"average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores", flush=True)
        ray_res = None if args.no_ray else ray_overhead(path, folder, runs, res["local_s"])
        if ray_res is None and not args.no_ray:
            print("  ray: not installed (pip install 'fsllm-sim[ray]'); skipped")
        elif ray_res is not None:
            print(f"  ray, local instance of 2 CPUs: start-up {ray_res['init_s']:.2f} s, sweep "
                  f"{ray_res['ray_s']:.2f} s "
                  f"-> overhead {ray_res['per_run_ms']:.1f} ms per run against local "
                  f"({ray_res['per_run_with_init_ms']:.1f} ms with the start-up)", flush=True)
        reference = (folder / "sequential0" / "results.csv").read_bytes()
        outs = [p for p in folder.iterdir() if p.is_dir()]
        same = all((p / "results.csv").read_bytes() == reference for p in outs)
        print(f"  results.csv byte-identical across the {len(outs)} runs: {'yes' if same else 'NO'}")
        return {**res, "ray": ray_res, "identical": same, "runs": runs}


if __name__ == "__main__":
    main()
