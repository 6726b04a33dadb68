"""What the channel log costs a large run (``fsllm-sim bench channel_log``): the whole ``fsllm-sim run`` path
(simulate, then write every output) at K clients with fading on, analytic training, once per log mode, each in
its own process so that each peak resident memory is its own:

* ``blocks-csv``: the reference, the log of before ``simulation.channel_log`` existed: every fading-block
  segment kept and written as CSV text (``channel.csv`` of one row per segment);
* ``full``: every segment kept and streamed to ``channel_blocks.parquet`` in row groups, plus the summary;
* ``summary`` (the default): one row per transfer, no segment kept.

Printed: wall time (simulation and writing), peak resident memory, bytes written and the ratios to the
reference, all measured in this one run.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

MODES = ("blocks-csv", "full", "summary")


def _child(mode: str, clients: int, subchannels: int, rounds: int, out_dir: str) -> dict:
    import dataclasses
    import resource
    import time

    from ..engine import simulate
    from ..engine.trace import CHANNEL_COLUMNS, csv_text
    from ..jobs.run import write_simulation
    from ..rundir import atomic_write_text
    from .engine import _scenario

    base = _scenario()
    channel = dataclasses.replace(base.channel, s_band=dataclasses.replace(base.channel.s_band, subchannels=subchannels),
                                  f_band=dataclasses.replace(base.channel.f_band, subchannels=subchannels))
    scenario = dataclasses.replace(base, channel=channel, clients=dataclasses.replace(base.clients, count=clients),
                                   simulation=dataclasses.replace(base.simulation, rounds=rounds,
                                                                  training="analytic"))
    start = time.perf_counter()
    res = simulate(scenario, profile_source="analytic", allocation="equal-share",
                   channel_log="summary" if mode == "summary" else "full")
    simulated = time.perf_counter()
    run_dir = Path(out_dir)
    if mode == "blocks-csv":  # every output as before, the channel as one CSV row per segment
        write_simulation(dataclasses.replace(res, radio_rows=[]), run_dir)
        atomic_write_text(run_dir / "channel.csv", csv_text(CHANNEL_COLUMNS, res.channel_rows()))
    else:
        write_simulation(res, run_dir)
    end = time.perf_counter()
    written = sum(p.stat().st_size for p in run_dir.rglob("*") if p.is_file())
    segments = sum(len(r[2]) for r in res.radio_rows)
    return {"mode": mode, "simulate_s": simulated - start, "write_s": end - simulated, "total_s": end - start,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "bytes_written": written,
            "segments": segments, "transfers": len(res.channel_summary()), "events": res.events}


def channel_log_benchmark(clients: int = 1000, subchannels: int = 1024, rounds: int = 4) -> list[dict]:
    results = []
    for mode in MODES:
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, "-m", "fsllm_sim.benchmarks.channel_log", "--child", mode, "--clients",
                   str(clients), "--subchannels", str(subchannels), "--rounds", str(rounds), "--out", tmp]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"channel_log bench ({mode}) failed: {done.stderr.strip().splitlines()[-1:]}")
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return results


def report(results: list[dict]) -> str:
    ref = results[0]
    lines = []
    for r in results:
        lines.append(f"{r['mode']:>10}: simulate {r['simulate_s']:.1f} s + write {r['write_s']:.1f} s = "
                     f"{r['total_s']:.1f} s ({ref['total_s'] / r['total_s']:.1f}x faster than blocks-csv), "
                     f"peak RSS {r['peak_rss_mib']:.0f} MiB, written {r['bytes_written'] / 2 ** 20:.1f} MiB; "
                     f"{r['segments']} segments kept, {r['transfers']} transfers, {r['events']} events")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fsllm_sim.benchmarks.channel_log", description=__doc__)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--subchannels", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.child, args.clients, args.subchannels, args.rounds, args.out)))
        return 0
    print(f"channel log: K = {args.clients} clients, {args.subchannels} subchannels per band, {args.rounds} rounds, "
          f"analytic training, fading on; the whole run (simulate + write), one process per mode", flush=True)
    print(report(channel_log_benchmark(args.clients, args.subchannels, args.rounds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
