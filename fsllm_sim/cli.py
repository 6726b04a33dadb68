"""The `fsllm-sim` command line: validate and show scenarios, run, optimise, calibrate, benchmark.

Errors the user can fix are printed as one line (``error: ...``) with exit status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import sys

from .errors import USER_ERRORS

EXIT_USER_ERROR = 2
DEFAULT_PLAYGROUND_SCENARIO = __import__("pathlib").Path(__file__).resolve().parents[1] / "scenarios" / "default.yaml"
EXIT_INTERRUPTED = 130


def _cmd_validate(args) -> int:
    from .config import load_scenario
    from .config.loader import deep_checks
    from .convergence import load_convergence
    from .devices import load_device_trace
    from .errors import ConfigError

    s = load_scenario(args.scenario)
    try:  # the files the scenario names (device trace, calibration) are read and checked too: no model needed
        if s.devices.speed.distribution == "trace":
            load_device_trace(s.devices.speed.trace_path, s.clients.count)
        load_convergence(s)
        deep = deep_checks(s) if args.deep else None
    except ConfigError as exc:
        raise ConfigError(f"{args.scenario}: {exc}") from None
    extra = f"; {deep['model']}: {deep['blocks']} blocks, context {deep['context']}" if deep else ""
    print(f"{args.scenario}: valid (scenario {s.name!r}, K={s.clients.count}, model {s.model.name}{extra})")
    return 0


def _cmd_show_config(args) -> int:
    from .config import dump_scenario, load_scenario

    sys.stdout.write(dump_scenario(load_scenario(args.scenario)))
    return 0


def _cmd_reference(args) -> int:
    from pathlib import Path

    from .config.loader import _display_path
    from .config.reference import reference_markdown
    from .errors import ConfigError
    from .rundir import atomic_write_text, ensure_output_dir

    text = reference_markdown()
    if args.write:
        path = Path(args.write)
        shown = f"--write {_display_path(path)!r}"
        try:
            is_folder = path.is_dir()
        except OSError:
            is_folder = False  # e.g. a name too long: writing reports it
        if is_folder:
            raise ConfigError(f"{shown}: is a folder, not a file (allowed: the path of a file to write)")
        ensure_output_dir(path.parent, f"{shown}: its folder")
        try:
            atomic_write_text(path, text)
        except OSError as exc:
            raise ConfigError(f"{shown}: cannot write the file ({exc.strerror or type(exc).__name__})") from None
        print(f"wrote {args.write}")
    else:
        sys.stdout.write(text)
    return 0


def _cmd_run(args) -> int:
    from .config import load_scenario
    from .jobs.run import run_simulation

    run_simulation(load_scenario(args.scenario), allocation=args.allocation, training=args.training,
                   rounds=args.rounds, policy=args.policy, timing=args.timing, runs_dir=args.runs_dir,
                   progress=not args.no_progress, profile_source=args.profile)
    return 0


def _cmd_compare(args) -> int:
    from .config import load_scenario
    from .jobs.compare import parse_choices, parse_methods, run_compare

    run_compare(load_scenario(args.scenario), parse_methods(args.methods), training=args.training,
                rounds=args.rounds, runs_dir=args.runs_dir, progress=not args.no_progress,
                profile_source=args.profile,
                policies=parse_choices(args.policies, "--policies", ("static", "online")),
                round_policies=parse_choices(args.round_policies, "--round-policies",
                                             ("wait-all", "deadline", "over-selection")))
    return 0


def _cmd_optimize(args) -> int:
    from .config import load_scenario
    from .errors import ConfigError
    from .jobs.optimize import run_optimize

    if args.pareto:
        from .jobs.pareto import check_points, run_pareto

        check_points(args.points)
        if args.bound != "bcd":
            raise ConfigError(f"--bound {args.bound} applies to one allocation, not to --pareto")
        run_pareto(load_scenario(args.scenario), points=args.points, budgets=args.budgets, method=args.method,
                   runs_dir=args.runs_dir, progress=not args.no_progress, profile_source=args.profile,
                   baselines=not args.no_baselines, time_limit_s=args.time_limit)
        return 0
    for flag, given in (("--points", args.points is not None), ("--budgets", args.budgets)):
        if given:
            raise ConfigError(f"{flag} applies to --pareto (the delay-energy front); add --pareto")
    run_optimize(load_scenario(args.scenario), method=args.method, runs_dir=args.runs_dir,
                 progress=not args.no_progress, profile_source=args.profile, baselines=not args.no_baselines,
                 bound=args.bound, time_limit_s=args.time_limit)
    return 0


def _cmd_calibrate(args) -> int:
    from .config import load_scenario
    from .jobs.calibrate import run_calibrate

    run_calibrate(load_scenario(args.scenario), out_dir=args.out, progress=not args.no_progress)
    return 0


def _cmd_sweep(args) -> int:
    from .config.sweep_file import is_sweep_data, read_yaml_file
    from .errors import ConfigError
    from .jobs.sweep import parse_assignment, run_sweep, run_sweep_file

    if args.set:  # a scenario file and a quick --set grid, as before sweep files
        grid = [parse_assignment(a) for a in args.set]
        try:
            sweep_file = is_sweep_data(read_yaml_file(args.scenario))
        except ConfigError:
            sweep_file = False  # the scenario loader reports it in its own words
        if sweep_file:
            raise ConfigError(f"{args.scenario}: --set takes a scenario file, this is a sweep file (put the values "
                              f"under its axes:)")
        for flag, value in (("--workers", args.workers), ("--address", args.address),
                            ("--backend", None if args.backend == "local" else args.backend)):
            if value is not None:
                raise ConfigError(f"{flag} applies to sweep files; a --set grid runs in this process")
        run_sweep(args.scenario, grid, out_dir=args.out,
                  method=args.method or "bcd", profile_source=args.profile or "counted",
                  progress=not args.no_progress)
        return 0
    if not is_sweep_data(read_yaml_file(args.scenario)):
        raise ConfigError(f"{args.scenario}: not a sweep file (it has no base: field); sweep a scenario file with "
                          f"--set FIELD=V1,V2, or write a sweep file naming it as base: (see scenarios/sweeps/)")
    for flag, value in (("--method", args.method), ("--profile", args.profile)):
        if value is not None:
            raise ConfigError(f"{flag} applies to --set grids; a sweep file names its methods: and profile:")
    run_sweep_file(args.scenario, out_dir=args.out, backend=args.backend, workers=args.workers,
                   address=args.address, progress=not args.no_progress)
    return 0


def _cmd_plot(args) -> int:
    from .jobs.plot import run_plot

    run_plot(args.folder, out=args.out, speeds_kmh=args.speeds_kmh, doppler_rounds=args.doppler_rounds,
             progress=not args.no_progress)
    return 0


def _cmd_figures(args) -> int:
    from .jobs.figures import run_figures

    only = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else None
    run_figures(args.out, only=only, workers=args.workers, progress=not args.no_progress)
    return 0


def _speed_list(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of speeds in km/h") from None
    if not values or any(not 0 <= v <= 500 for v in values) or len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"{text!r}: give distinct speeds from 0 to 500 km/h, e.g. 3,30,120")
    return values


def _cmd_playground(args) -> int:
    from .config import load_scenario
    from .jobs.playground.server import serve

    path = args.scenario or str(DEFAULT_PLAYGROUND_SCENARIO)
    return serve(load_scenario(path), host=args.host, port=args.port)


def _cmd_profile_device(args) -> int:
    from .jobs.profile_device import run_profile_device

    run_profile_device(out=args.out, model=args.model, batch_size=args.batch, seq_len=args.seq_len, rank=args.rank,
                       device=args.device, dtype=args.dtype, reps=args.reps, memory_bytes=args.memory_bytes,
                       count=args.count, append=args.append)
    return 0


def _cmd_privacy(args) -> int:
    from .config import load_scenario
    from .jobs.privacy import run_privacy

    run_privacy(load_scenario(args.scenario), runs_dir=args.runs_dir, out_dir=args.out, progress=not args.no_progress)
    return 0


def _cmd_bench(args) -> int:
    from .benchmarks.runner import run_benchmarks

    return run_benchmarks(args.which)


class _OneLineParser(argparse.ArgumentParser):
    """Usage mistakes are one line too (``error: fsllm-sim run: argument --rounds: ...``), exit status 2."""

    def error(self, message: str):
        print(f"error: {self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)


def _bounded_int(low: int, high: int, what: str = "an integer"):
    """An argparse type: an integer in low..high, else a one-line message naming the range."""
    allowed = f"{what} from {low} to {high}" if what == "an integer" else f"{what} ({low}..{high})"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {allowed}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text!r} is not {allowed}")
        return value

    return parse


_port = _bounded_int(1, 65535, "a port number")
_positive_int = _bounded_int(1, 1_000_000)
_points = _bounded_int(2, 64)


def build_parser() -> argparse.ArgumentParser:
    p = _OneLineParser(prog="fsllm-sim", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_OneLineParser)

    def scenario_cmd(name, func, help_text):
        c = sub.add_parser(name, help=help_text, description=help_text)
        c.add_argument("scenario", help="scenario YAML file")
        c.set_defaults(func=func)
        return c

    scenario_cmd("validate", _cmd_validate, "check a scenario file (and the trace and calibration files it names) "
                                           "and report the first problem in one line").add_argument(
        "--deep", action="store_true", help="also load the model's configuration and check split.layer, "
                                            "split.min_layer, privacy.splits and training.seq_len against it")
    scenario_cmd("show-config", _cmd_show_config, "print the fully resolved scenario, defaults included")
    ref = sub.add_parser("reference", help="print (or --write) the scenario reference document")
    ref.add_argument("--write", metavar="PATH", help="write the reference to PATH instead of printing it")
    ref.set_defaults(func=_cmd_reference)

    for name, func, text in (("run", _cmd_run, "simulate the scenario end to end (event engine) and write a run "
                                                "directory"),
                             ("compare", _cmd_compare, "simulate the same scenario and seeds under several "
                                                       "allocations and compare them in simulated time"),
                             ("optimize", _cmd_optimize, "choose subchannels, power, split and rank; compare with "
                                                         "baselines and the lower bound")):
        c = scenario_cmd(name, func, text)
        c.add_argument("--runs-dir", help="folder for run directories (default: the scenario's output.runs_dir)")
        c.add_argument("--no-progress", action="store_true", help="hide progress bars")
        c.add_argument("--profile", choices=("counted", "analytic"), default="counted",
                       help="FLOPs per phase counted from the real PyTorch model (default) or from the analytic formula")
    for name in ("run", "compare"):
        c = sub.choices[name]
        c.add_argument("--training", choices=("real", "analytic"), default=None,
                       help="real PyTorch training in simulated order, or analytic costs only (default: the "
                            "scenario's simulation.training)")
        c.add_argument("--rounds", type=_positive_int, default=None,
                       help="global rounds to simulate (default: the scenario's simulation.rounds)")
    run = sub.choices["run"]
    run.add_argument("--allocation", metavar="SOLUTION_JSON|METHOD", default=None,
                     help="equal-share, a solver method (solved on the mean gains at t=0) or a solution.json from "
                          "`fsllm-sim optimize` (default: the scenario's simulation.allocation)")
    run.add_argument("--policy", choices=("static", "online"), default=None,
                     help="static allocation, or re-solved each round on the gains measured then")
    run.add_argument("--timing", choices=("flops", "measured"), default=None,
                     help="compute durations from counted FLOPs (deterministic) or measured host times scaled to "
                          "the devices (default: the scenario's simulation.timing)")
    sub.choices["compare"].add_argument("--methods", required=True, metavar="M1,M2,...",
                                        help="allocations to compare: equal-share, solver methods (bcd, equal, "
                                             "random, max-power, exact, gurobi) or solution.json paths")
    sub.choices["compare"].add_argument("--policies", default=None, metavar="static,online",
                                        help="also compare allocation policies: static (solved once) and online "
                                             "(re-solved each round on the clients taking part)")
    sub.choices["compare"].add_argument("--round-policies", default=None, metavar="wait-all,deadline,...",
                                        help="also compare round rules (round.policy): wait-all, deadline, "
                                             "over-selection (deadline_s and clients_per_round from the scenario)")
    sub.choices["optimize"].add_argument("--method", default=None,
                                         help="solver (default: the scenario's solver.method)")
    sub.choices["optimize"].add_argument("--no-baselines", action="store_true", help="skip the baseline comparison")
    sub.choices["optimize"].add_argument("--bound", choices=("bcd", "relaxation"), default="bcd",
                                         help="lower bound to report: bcd's pair bound (default, cheap) or the LP "
                                              "relaxation (tighter, slow; refused above K*M = 4096)")
    sub.choices["optimize"].add_argument("--time-limit", type=float, default=None, metavar="SECONDS",
                                         help="wall-clock limit of the exact, gurobi and relaxation methods "
                                              "(default: 300 s for exact and gurobi, none for relaxation)")
    sub.choices["optimize"].add_argument("--pareto", action="store_true",
                                         help="sweep the energy weight λ of the weighted objective (or with "
                                              "--budgets the per-client energy budget) and write the delay-energy "
                                              "front: pareto.csv, pareto.png/.pdf (protocol sfl, no total power caps)")
    sub.choices["optimize"].add_argument("--points", type=_points, default=None, metavar="N",
                                         help="with --pareto: points of the sweep, 2 to 64 (default 9: λ = 0 and 8 "
                                              "values over λ_ref 10^[-2, 2], λ_ref = T_round / E_round of the delay "
                                              "optimum)")
    sub.choices["optimize"].add_argument("--budgets", action="store_true",
                                         help="with --pareto: sweep the per-client energy budget of a round "
                                              "(objective delay-under-energy) from the delay optimum's worst client "
                                              "down to just above the least feasible, instead of λ")

    cal = scenario_cmd("calibrate", _cmd_calibrate, "train at every rank of lora.ranks and fit N(r) = a + b r^-c")
    cal.add_argument("--out", help="output folder (default: a run directory); rerun with the same folder to resume")
    cal.add_argument("--no-progress", action="store_true", help="hide progress bars")

    sw = sub.add_parser("sweep", help="run a sweep file (points x methods x seeds, in parallel), or optimise a "
                                      "--set grid of a scenario; rerun with the same --out to resume",
                        description="run a sweep file (points x methods x seeds, in parallel), or optimise a --set "
                                    "grid of a scenario; rerun with the same --out to resume")
    sw.add_argument("scenario", metavar="FILE", help="a sweep file (see scenarios/sweeps/), or a scenario file with "
                                                     "--set")
    sw.set_defaults(func=_cmd_sweep)
    sw.add_argument("--set", action="append", default=[], metavar="FIELD=V1,V2,...",
                    help="with a scenario file: a field and the values to sweep (repeat for a grid, one --set per "
                         "field); the values are YAML, each once: numbers, null, true/false, quoted strings, or "
                         "lists in brackets, e.g. lora.ranks=[4,8],[8,16] sweeps two lists")
    sw.add_argument("--out", required=True, help="sweep folder (finished points in it are skipped)")
    sw.add_argument("--method", default=None, help="with --set: solver for each point (default: bcd)")
    sw.add_argument("--profile", choices=("counted", "analytic"), default=None,
                    help="with --set: FLOP source (default: counted)")
    sw.add_argument("--backend", choices=("local", "ray"), default="local",
                    help="sweep file: local processes (default) or Ray tasks")
    sw.add_argument("--workers", type=_positive_int, default=None,
                    help="sweep file: parallel processes (default: the number of cores; 1 runs in this process); "
                         "with --backend ray, the CPUs of the local Ray instance")
    sw.add_argument("--address", default=None, metavar="ADDR",
                    help="with --backend ray: the Ray cluster to use (default: start a local instance)")
    sw.add_argument("--no-progress", action="store_true", help="hide progress bars")

    from .jobs.plot import DOPPLER_SPEEDS_KMH

    pl = sub.add_parser("plot", help="write every figure that applies to a run, compare or sweep directory "
                                     "(PNG and PDF, publication style)",
                        description="write every figure that applies to a run, compare or sweep directory "
                                    "(PNG and PDF, publication style)")
    pl.add_argument("folder", metavar="DIR", help="a run directory (fsllm-sim run), a compare directory "
                                                  "(fsllm-sim compare) or a sweep folder (fsllm-sim sweep --out)")
    pl.add_argument("--out", metavar="FIGDIR", default=None, help="folder for the figures (default: DIR/figures)")
    pl.add_argument("--speeds-kmh", type=_speed_list, default=None, metavar="V1,V2,...",
                    help="client speeds of the Doppler-gap figure of a run or compare directory, simulated with "
                         "analytic training (default: " + ",".join(f"{v:g}" for v in DOPPLER_SPEEDS_KMH) + ")")
    pl.add_argument("--doppler-rounds", type=_positive_int, default=None, metavar="N",
                    help="rounds simulated at each speed of the Doppler-gap figure (default: as many as the run)")
    pl.add_argument("--no-progress", action="store_true", help="hide progress bars")
    pl.set_defaults(func=_cmd_plot)

    fig = sub.add_parser("figures", help="run the shipped sweeps, runs and compares and write the paper's figure "
                                         "set with an index (make figures)")
    fig.add_argument("--out", default="runs/figures", metavar="DIR", help="output folder (default: runs/figures)")
    fig.add_argument("--only", default=None, metavar="STEP,...", help="run only these steps (names in the index)")
    fig.add_argument("--workers", type=_positive_int, default=None, help="local processes for the sweeps "
                                                                        "(default: the number of cores)")
    fig.add_argument("--no-progress", action="store_true", help="hide progress bars")
    fig.set_defaults(func=_cmd_figures)

    play = sub.add_parser("playground", help="serve the what-if page on this machine: sliders for bandwidth, clients, "
                                             "split, rank, power, ...; every number from the delay model, solver "
                                             "and engine (docs/playground.md)",
                          description="serve the what-if page on this machine (docs/playground.md)")
    play.add_argument("scenario", nargs="?", default=None,
                      help="scenario YAML file the controls start from (default: scenarios/default.yaml)")
    play.add_argument("--port", type=_port, default=8050, help="TCP port (default: 8050)")
    play.add_argument("--host", default="127.0.0.1",
                      help="address to listen on (default: 127.0.0.1, this machine only)")
    play.set_defaults(func=_cmd_playground)

    prof = sub.add_parser("profile-device", help="measure this host as a client device and write device-trace "
                                                 "rows (devices.speed.trace_path)",
                          description="measure this host as a client device (one LoRA block forward and backward, "
                                      "the embedding and the LM head at the given shape, peak memory, achieved "
                                      "FLOP/s) and write rows in the device-trace CSV format")
    prof.add_argument("--out", required=True, metavar="FILE.csv", help="device trace to write")
    prof.add_argument("--model", default="smollm2-135m", help="model (registry name, Hugging Face id or path)")
    prof.add_argument("--batch", type=int, default=4, help="batch size b (default 4)")
    prof.add_argument("--seq-len", type=int, default=128, help="sequence length L (default 128)")
    prof.add_argument("--rank", type=int, default=8, help="LoRA rank r (default 8)")
    prof.add_argument("--device", default="cpu", help="auto, cpu, cuda or cuda:N (default cpu)")
    prof.add_argument("--dtype", default="float32", help="float32, bfloat16 or float16 (default float32)")
    prof.add_argument("--reps", type=int, default=10, help="timed repetitions of each piece (default 10)")
    prof.add_argument("--memory-bytes", type=int, default=None,
                      help="memory the device offers training (default: the card's, or this host's physical memory)")
    prof.add_argument("--count", type=int, default=1, help="client rows of this device to write (default 1)")
    prof.add_argument("--append", action="store_true", help="add the rows after those already in --out")
    prof.set_defaults(func=_cmd_profile_device)

    priv = scenario_cmd("privacy", _cmd_privacy, "measure how much of the clients' text an attacker recovers from "
                                                 "the activations at each split and defence (privacy.csv, "
                                                 "privacy.json for privacy.file; docs/privacy.md)")
    priv.add_argument("--runs-dir", help="folder for run directories (default: the scenario's output.runs_dir)")
    priv.add_argument("--out", help="write into this folder instead of a new run directory; rerun with the same "
                                    "folder to resume an interrupted measurement")
    priv.add_argument("--no-progress", action="store_true", help="hide progress lines")

    bench = sub.add_parser("bench", help="run the benchmarks (ratios measured side by side in one run)")
    # No argparse `choices` here: with nargs="*" it rejects the list default; run_benchmarks checks names.
    bench.add_argument("which", nargs="*", default=["all"], metavar="NAME",
                       help="all (default), fading, solvers, training, engine, sweep, playground, channel_log")
    bench.set_defaults(func=_cmd_bench)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
