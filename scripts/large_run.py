"""Time one large run the way ``fsllm-sim run`` does it (simulate, then write every output) and report where it
went: the figures of docs/performance.md come from this script.

    python scripts/large_run.py --clients 1000 --subchannels 1024 --rounds 20            # whole run
    python scripts/large_run.py --clients 10000 --subchannels 10240 --rounds 20          # K = 10,000
    python scripts/large_run.py --clients 10000 --subchannels 10240 --rounds 4 --fading none --no-write [--gc-off]
    python scripts/large_run.py --clients 1000 --subchannels 1024 --rounds 20 --profile-write 30
    python scripts/large_run.py --clients 1000 --rounds 20 --no-write --bare [--fading none]    # loop vs SimPy
    python scripts/large_run.py --clients 1000 --rounds 20 --no-write --fading-timers           # fading's parts

The scale scenario of ``fsllm_sim.benchmarks.engine`` (the default scenario, equal-share, analytic training).
It uses only ``simulate`` and ``write_simulation``, so it also runs against an older checkout, for a before /
after comparison on one machine:

    git worktree add /tmp/old <commit> && (cd /tmp/old && PYTHONPATH=. python /path/to/scripts/large_run.py ...)
"""
from __future__ import annotations

import argparse
import cProfile
import dataclasses
import pstats
import resource
import sys
import tempfile
import time
from pathlib import Path


def _time_fading_parts() -> dict:
    """Wrap the fading's calls with timers: name -> [total_s, calls] (each wrapper adds ~0.1 us a call)."""
    from channel_models import fading_kernels, observed_fading
    from fsllm_sim.engine import radio

    timers: dict = {}

    def wrap(owner, attr, name):
        original = getattr(owner, attr)
        slot = timers.setdefault(name, [0.0, 0])

        def timed(*a, **k):
            t0 = time.perf_counter()
            try:
                return original(*a, **k)
            finally:
                slot[0] += time.perf_counter() - t0
                slot[1] += 1
        setattr(owner, attr, timed)

    wrap(radio.Radio, "transfer_end_s", "Radio.transfer_end_s (uplink transfers, all of it)")
    wrap(observed_fading.ObservedFading, "transfer_end_s",
         "ObservedFading.transfer_end_s (kernel and refills included)")
    wrap(fading_kernels, "transfer_end", "fading_kernels.transfer_end (the kernel)")
    wrap(observed_fading._Client, "ensure", "refills of the clients' normal buffers (numpy)")
    return timers


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--subchannels", type=int, default=1024, help="M = N")
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--fading", choices=("auto", "none"), default="auto")
    p.add_argument("--no-write", action="store_true", help="simulate only (the event loop's time)")
    p.add_argument("--gc-off", action="store_true", help="disable Python's cyclic garbage collector for the run")
    p.add_argument("--bare", action="store_true",
                   help="also time a bare SimPy model of the same number of events (the per-event ratio)")
    p.add_argument("--fading-timers", action="store_true",
                   help="time the fading's parts inside the loop (the radio's uplink transfers, the fading's Python "
                        "around the kernel, the kernel, the refills of the normal buffers): perf_counter around "
                        "each call (this checkout's code only)")
    p.add_argument("--profile-write", type=int, metavar="N", default=0,
                   help="profile write_simulation and print its N costliest calls (cumulative)")
    args = p.parse_args(argv)

    import fsllm_sim
    from fsllm_sim.benchmarks.engine import _scenario
    from fsllm_sim.engine import simulate
    from fsllm_sim.jobs.run import write_simulation

    base = _scenario()
    m = args.subchannels
    channel = dataclasses.replace(base.channel, s_band=dataclasses.replace(base.channel.s_band, subchannels=m),
                                  f_band=dataclasses.replace(base.channel.f_band, subchannels=m),
                                  fading=dataclasses.replace(base.channel.fading, model=args.fading))
    # the benchmark's training settings written out (an older checkout's default scenario may differ)
    training = dataclasses.replace(base.training, local_iterations=5, batch_size=4, seq_len=128)
    scenario = dataclasses.replace(base, channel=channel, clients=dataclasses.replace(base.clients, count=args.clients),
                                   training=training,
                                   simulation=dataclasses.replace(base.simulation, rounds=args.rounds,
                                                                  training="analytic"))
    print(f"code: {Path(fsllm_sim.__file__).parent}; K = {args.clients}, M = N = {m}, {args.rounds} rounds, "
          f"fading {args.fading}", flush=True)
    if args.gc_off:
        import gc

        gc.disable()
    timers = _time_fading_parts() if args.fading_timers else None
    start = time.perf_counter()
    res = simulate(scenario, profile_source="analytic", allocation="equal-share", progress=False)
    simulated = time.perf_counter()
    print(f"simulate {simulated - start:.1f} s (event loop {res.wall_s:.2f} s, {res.events} events, "
          f"{1e6 * res.wall_s / res.events:.2f} us an event)", flush=True)
    if timers is not None:
        for name, (total, calls) in timers.items():
            print(f"  {name}: {total:.2f} s in {calls} calls", flush=True)
    if args.bare:
        from fsllm_sim.benchmarks.engine import bare_simpy_s  # in checkouts since the engine benchmark

        bare = bare_simpy_s(args.clients, res.events)
        print(f"bare SimPy, {res.events} events from {args.clients} processes: {bare:.2f} s; the event loop "
              f"{res.wall_s / bare:.2f}x bare SimPy", flush=True)
    if not args.no_write:
        run_dir = Path(tempfile.mkdtemp(prefix="large_run-"))
        if args.profile_write:
            profile = cProfile.Profile()
            profile.runcall(write_simulation, res, run_dir)
            pstats.Stats(profile).sort_stats("cumulative").print_stats(args.profile_write)
        else:
            write_simulation(res, run_dir)
        end = time.perf_counter()
        written = sum(f.stat().st_size for f in run_dir.rglob("*") if f.is_file())
        print(f"write {end - simulated:.1f} s; whole run {end - start:.1f} s; written {written / 2 ** 20:.1f} MiB "
              f"in {run_dir}")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
