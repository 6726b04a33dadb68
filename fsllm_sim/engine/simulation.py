"""`simulate(scenario)`: the discrete-event simulation of split federated LoRA training over the radio.

Assembles the world (:func:`.world.build_world`), the allocation policy, the radio, the main-server
discipline and the backend, runs the processes of :mod:`.processes` on a SimPy environment, and
returns a :class:`SimulationResult` with the trace, the rates the radio used and one record per round.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field

import numpy as np

import simpy

from ..errors import ConfigError
from ..seeding import stream
from .allocation import make_policy
from .backends import AnalyticBackend, TorchBackend
from .channel_log import CHANNEL_LOGS, summary_from_blocks
from .collector import loop_collector
from .energy_account import EnergyAccount, account
from .processes import Protocol
from .radio import Radio
from .rounds import fastest_round_s, is_static_world, make_rule
from .server import make_server
from .trace import Trace, channel_rows
from .world import World, build_world

TRAINING_MODES = ("real", "analytic")
TIMING_MODES = ("flops", "measured")


@dataclass
class SimulationResult:
    world: World
    settings: dict
    trace: Trace
    radio_rows: list
    rounds: list  # RoundRecord
    initial_val_loss: float
    target_val_loss: float | None
    events: int
    wall_s: float  # host seconds of the event loop (real training: without model loading and data setup)
    op_wall_s: float  # of which inside PyTorch ops
    notes: list = field(default_factory=list)
    discarded: list = field(default_factory=list)  # RoundRecord of the attempts repeated (round.below_min)
    positions: object = field(default_factory=list)  # positions.csv rows when clients move (mobility.PositionRows)
    stopped: str | None = None  # why the run ended before its rounds, if it did
    dynamic: bool = False  # the simulated scenario changes (its world may be shared with a static one)
    fading_blocks: int = 0  # block-subchannel fading coefficients drawn (uplink and downlink): the fading's cost
    summary_rows: list = field(default_factory=list)  # channel_log summary: one row per uplink transfer
    channel_log: str = "full"
    battery_out_s: dict = field(default_factory=dict)  # scenario client id -> when its battery ran out
    _energy: EnergyAccount | None = field(default=None, repr=False, compare=False)

    @property
    def energy(self) -> EnergyAccount:
        """The clients' energy of every trace row, round and client (:mod:`.energy_account`), computed once."""
        if self._energy is None:
            self._energy = account(self.trace.rows, self.rounds + self.discarded, self.world.problem,
                                   self.battery_out_s)
        return self._energy

    def trace_table(self) -> list[tuple]:
        """trace.csv's rows: the trace's rows with their ``energy_j`` (trace.TRACE_COLUMNS)."""
        return [row + (e,) for row, e in zip(self.trace.rows, self.energy.row_j.tolist())]

    @property
    def real(self) -> bool:
        return self.settings["training"] == "real"

    @property
    def simulated_s(self) -> float:
        return self.rounds[-1].end_s if self.rounds else 0.0

    def channel_rows(self) -> list[tuple]:
        """Every recorded segment as ``(client, band, start_s, end_s, rate_bps[, outage_subchannels])``."""
        if self.channel_log != "full":
            raise ConfigError("the per-block channel log was not kept: simulate with simulation.channel_log: full")
        return channel_rows(self.radio_rows)

    def channel_summary(self) -> list[tuple]:
        """One row per recorded uplink transfer (channel_log.SUMMARY_COLUMNS, + stall_s with an outage rule)."""
        return self.summary_rows if self.channel_log == "summary" else summary_from_blocks(self.radio_rows)

    def round_rows(self) -> list[dict]:
        """One row per round (and per discarded attempt, participants 0), in simulated-time order."""
        rows = []
        for r in sorted(self.rounds + self.discarded, key=lambda r: (r.start_s, r.round, r.attempt)):
            row = {"round": r.round, "start_s": r.start_s, "end_s": r.end_s, "duration_s": r.end_s - r.start_s,
                   "straggler": r.straggler, "analytic_round_s": r.analytic_round_s, "attempt": r.attempt,
                   "selected": len(r.selected), "participants": 0 if r.discarded else len(r.aggregated),
                   "dropped": len(r.dropped), "cancelled": len(r.cancelled), "deadline_hit": bool(r.deadline_hit),
                   "aggregated_clients": "" if r.discarded else ";".join(str(c) for c in r.aggregated),
                   "energy_j": self.energy.round_j(r), "worst_client_energy_j": self.energy.worst_client_round_j(r)}
            if self.real:
                row["train_loss"] = r.metrics.get("train_loss", math.nan)
                row["val_loss"] = r.metrics.get("val_loss", math.nan)
            rows.append(row)
        return rows

    def energy_summary(self) -> dict:
        """results.json's ``energy``: each client's energy over the run (scenario client ids), the total, the worst
        client, the battery check, and the closed form of one round (``Solution.energy`` of the allocation in
        force) against the simulated rounds, as ``analytic_round_s`` is for delay."""
        acc = self.energy
        problem = self.world.problem
        ids = [int(c) for c in acc.client_ids]
        per_client = {str(c): float(e) for c, e in zip(ids, acc.client_j)}
        worst = int(np.argmax(acc.client_j)) if acc.client_j.size else None
        battery = problem.energy.battery_j if problem.energy is not None else np.full(len(ids), np.inf)
        check = {}
        for i, c in enumerate(ids):
            cap = float(battery[i])
            out = self.battery_out_s.get(c)
            check[str(c)] = {"battery_j": cap if math.isfinite(cap) else None,
                             "used_fraction": float(acc.client_j[i] / cap) if math.isfinite(cap) else None,
                             "ran_out": out is not None, "ran_out_s": out}
        simulated = [acc.round_j(r) for r in self.rounds]
        closed = [r.analytic_energy for r in self.rounds]
        have_closed = bool(closed) and all(e is not None for e in closed)
        mean = float(np.mean(simulated)) if simulated else None
        mean_closed = float(np.mean([e.total_j for e in closed])) if have_closed else None
        return {
            "per_client_j": per_client,
            "total_j": float(np.sum(acc.client_j)),
            "worst_client": ids[worst] if worst is not None else None,
            "worst_client_j": float(acc.client_j[worst]) if worst is not None else None,
            "battery": check,
            "batteries_out": len(self.battery_out_s),
            "mean_round_j": mean,
            "mean_analytic_round_j": mean_closed,
            "round_gap_vs_analytic": (mean / mean_closed - 1.0) if have_closed and mean_closed > 0 else None,
            "mean_worst_client_round_j": float(np.mean([acc.worst_client_round_j(r) for r in self.rounds]))
            if self.rounds else None,
            "mean_analytic_worst_client_round_j": float(np.mean([e.worst_client_j for e in closed]))
            if have_closed else None,
            # the closed form of round 1 (per client, the clients of round 1 in order; null: none for the protocol)
            "analytic_round": closed[0].to_dict() if have_closed else None,
            "budget": self._budget_check(acc),
        }

    def _budget_check(self, acc) -> dict | None:
        """Under objective delay-under-energy: how often the simulated round (fading, queueing) made a client spend
        more than its budget, which the optimiser's model never does."""
        problem = self.world.problem
        if getattr(problem, "objective", "delay") != "delay-under-energy" or problem.budget_j is None:
            return None
        over = [acc.of_record(r) > problem.budget_j * (1 + 1e-9) for r in self.rounds]
        worst = max((float(np.max(acc.of_record(r) / problem.budget_j)) for r in self.rounds), default=None)
        return {"budget_j": problem.budget_j.tolist(),
                "rounds_over": int(sum(bool(np.any(o)) for o in over)), "rounds": len(self.rounds),
                "client_rounds_over": int(sum(int(np.sum(o)) for o in over)),
                "worst_ratio_to_budget": worst}

    def loss_curve(self) -> tuple[list[float], list[float]]:
        """Validation loss against simulated time: (0, initial) then (end of round t, loss after it)."""
        times = [0.0] + [r.end_s for r in self.rounds]
        losses = [self.initial_val_loss] + [r.metrics.get("val_loss", math.nan) for r in self.rounds]
        return times, losses

    def time_to_target_s(self) -> float | None:
        """Simulated time at the end of the first round whose validation loss is at or below the target."""
        if not self.real or self.target_val_loss is None:
            return None
        for r in self.rounds:
            if r.metrics.get("val_loss", math.inf) <= self.target_val_loss:
                return r.end_s
        return None

    def summary(self) -> dict:
        if not self.rounds:
            return {**self.settings, "rounds_simulated": 0, "simulated_s": self.simulated_s, "stopped": self.stopped,
                    "events": self.events, "wall_s": self.wall_s, "notes": list(self.notes)}
        alloc = self.rounds[0].allocation
        durations = np.array([r.end_s - r.start_s for r in self.rounds])
        analytic = np.array([r.analytic_round_s for r in self.rounds])
        n_r = float(self.world.convergence.rounds(alloc.rank))
        problem = self.world.problem
        mean_gain_problem = dataclasses.replace(problem, rate_model="mean-gain")
        mean_gain = np.array([r.allocation.evaluate_members(mean_gain_problem)[1].round_time_s for r in self.rounds])
        out = {
            "allocation": alloc.label, "split": alloc.split, "rank": alloc.rank, **self.settings,
            "rounds_simulated": len(self.rounds), "simulated_s": self.simulated_s,
            # the closed form with the problem's rates (solver.rates), and with mean-gain rates
            "analytic_rates": problem.rate_model,
            "mean_round_s": float(durations.mean()), "mean_analytic_round_s": float(analytic.mean()),
            "mean_mean_gain_round_s": float(mean_gain.mean()),
            # > 0: the fading-aware, contended simulation is slower than the closed form
            "round_gap_vs_analytic": float(durations.mean() / analytic.mean() - 1.0),
            "round_gap_vs_mean_gain": float(durations.mean() / mean_gain.mean() - 1.0),
            "convergence": {"a": self.world.convergence.a, "b": self.world.convergence.b,
                            "c": self.world.convergence.c, "source": self.world.convergence.source,
                            "factor": self.world.convergence.factor,
                            "description": self.world.convergence.description},
            "rounds_to_target_model": n_r,
            "analytic_time_to_target_s": n_r * float(analytic[0]),
            "events": self.events, "wall_s": self.wall_s,
        }
        if self.dynamic:
            out.update({"mean_participants": float(np.mean([len(r.aggregated) for r in self.rounds])),
                        "dropped": int(sum(len(r.dropped) for r in self.rounds + self.discarded)),
                        "cancelled": int(sum(len(r.cancelled) for r in self.rounds + self.discarded)),
                        "deadline_hits": int(sum(r.deadline_hit for r in self.rounds + self.discarded)),
                        "repeated_attempts": len(self.discarded), "stopped": self.stopped})
        if self.real:
            out.update({"initial_val_loss": self.initial_val_loss,
                        "final_val_loss": self.rounds[-1].metrics.get("val_loss"),
                        "target_val_loss": self.target_val_loss,
                        "simulated_time_to_target_s": self.time_to_target_s(),
                        "target_reached": self.time_to_target_s() is not None,
                        "host_op_share": self.op_wall_s / self.wall_s if self.wall_s > 0 else None})
        out["notes"] = list(self.notes)
        return out


def _target_loss(scenario) -> float | None:
    if scenario.simulation.target_val_loss is not None:
        return float(scenario.simulation.target_val_loss)
    if scenario.convergence.calibration is None:
        return None
    from ..convergence import BUILTIN_CALIBRATION, builtin_calibration_path, read_calibration_document

    cal = scenario.convergence.calibration
    doc = read_calibration_document(builtin_calibration_path() if cal == BUILTIN_CALIBRATION else cal)
    value = (doc.get("target") or {}).get("value")
    return float(value) if value is not None else None


def _discipline(protocol: str, discipline: str) -> str:
    """The main server's discipline in the engine. Under sl one client is served at a time, so its static
    slice is the whole server: partitioned serves at f_s (dedicated), as the closed form assumes;
    processor-sharing serves a lone request at f_s too; fifo keeps its workers of f_s / c."""
    return "dedicated" if protocol == "sl" and discipline == "partitioned" else discipline


def simulate(scenario, *, allocation: str | None = None, training: str | None = None, rounds: int | None = None,
             policy: str | None = None, timing: str | None = None, profile_source: str = "counted",
             record_channel: bool | None = None, channel_log: str | None = None, progress: bool = False, echo=print,
             world: World | None = None, on_round_end=None) -> SimulationResult:
    """Simulate ``rounds`` global rounds of the scenario end to end (None: the scenario's ``simulation`` choice).

    ``allocation``: equal-share, a solver method name or a solution.json path; ``policy``: static or online;
    ``training``: real or analytic; ``timing``: flops or measured.
    """
    sim_cfg = scenario.simulation
    training = training or sim_cfg.training
    timing = timing or sim_cfg.timing
    rounds = sim_cfg.rounds if rounds is None else rounds
    record = sim_cfg.record_channel if record_channel is None else record_channel
    channel_log = channel_log or sim_cfg.channel_log
    if channel_log not in CHANNEL_LOGS:
        raise ConfigError(f"simulation.channel_log={channel_log!r} is not one of {', '.join(CHANNEL_LOGS)}")
    if training not in TRAINING_MODES:
        raise ConfigError(f"--training {training!r} is not one of {', '.join(TRAINING_MODES)}")
    if timing not in TIMING_MODES:
        raise ConfigError(f"simulation.timing={timing!r} is not one of {', '.join(TIMING_MODES)}")
    if timing == "measured" and training != "real":
        raise ConfigError("simulation.timing=measured needs training: real (analytic training runs no op to time)")
    if isinstance(rounds, bool) or not isinstance(rounds, int) or not 1 <= rounds <= 1_000_000:
        raise ConfigError(f"--rounds {rounds!r} is invalid; allowed: an integer from 1 to 1000000")
    kind = getattr(scenario, "protocol", "sfl")

    if world is None:
        world = build_world(scenario, profile_source=profile_source, progress=progress, echo=echo)
    problem = world.problem
    battery = problem.energy.battery_j if problem.energy is not None else None
    has_battery = battery is not None and bool(np.any(np.isfinite(battery)))
    if has_battery and kind == "sl":
        raise ConfigError("devices.energy.battery_j under protocol sl: not supported (sl gives every client its turn "
                          "and cannot drop one; allowed under sl: null)")
    pol = make_policy(problem, scenario, allocation=allocation, policy=policy)
    if training == "real":
        backend = TorchBackend(problem, scenario, timing=timing, host_flops_per_s=sim_cfg.host_flops_per_s,
                               progress=progress, echo=echo)
    else:
        backend = AnalyticBackend(problem)
    target = _target_loss(scenario) if training == "real" else None

    sim_env = simpy.Environment(initial_time=0.0)
    srv = scenario.server
    server = make_server(sim_env, _discipline(kind, srv.discipline), srv.flops_per_s, problem.num_clients,
                         srv.workers)
    # a finite battery can cut a phase: the dynamic mode, whose phases can be interrupted
    dynamic = not is_static_world(scenario) or has_battery
    timeline = availability = outage = None
    rule = make_rule(scenario.round)
    if dynamic:
        timeline, availability, outage = _changing_world(scenario, world, problem)
    radio = Radio(world.env, root_seed=scenario.seed, downlink_rate_bps=problem.downlink_rate_bps,
                  broadcast_rate_bps=problem.broadcast_rate_bps, record=record, channel_log=channel_log,
                  client_ids=problem.client_ids,
                  timeline=timeline, outage=outage, downlink_fading=scenario.channel.downlink.fading == "fading",
                  downlink_num_served=1 if kind == "sl" else world.env.num_clients,
                  carrier_hz=scenario.channel.path_loss.carrier_ghz * 1e9, interruptible=dynamic)
    trace = Trace()

    if not pol.needs_gains:
        # a static allocation fixes split and rank now: prepare the model and data before the clock starts
        first = pol.decide(1)
        if first.splits is None:
            backend.configure(first.split, first.rank)
        else:
            backend.configure(first.split, first.rank, splits=first.splits)
    if rule.deadline_s is not None:
        _check_deadline(problem, [(first.split, first.rank)] if not pol.needs_gains else problem.candidate_pairs(),
                        rule)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=rounds * problem.num_clients * scenario.training.local_iterations, unit="it",
                   desc=f"{scenario.name}: simulating", leave=False)
    initial = backend.initial_val_loss
    status = {"round": 1, "t_sim": "0s", "val_loss": "-" if math.isnan(initial) else f"{initial:.4f}"}

    def iteration_done(round_index, now_s):
        if bar is not None:
            status.update(round=round_index, t_sim=f"{now_s:.4g}s")
            bar.set_postfix(status, refresh=False)
            bar.update(1)

    def round_done(record_):
        if bar is not None and "val_loss" in record_.metrics:
            status["val_loss"] = f"{record_.metrics['val_loss']:.4f}"
        if on_round_end is not None:
            on_round_end(record_)

    protocol = Protocol(sim_env, radio=radio, server=server, backend=backend, trace=trace, policy=pol,
                        problem=problem, device_flops_per_s=problem.device_flops_per_s,
                        local_iterations=scenario.training.local_iterations,
                        aggregation_s=problem.aggregation_time_s, rounds=rounds, on_round_end=round_done,
                        on_iteration=iteration_done if bar is not None else None, kind=kind,
                        client_ids=problem.client_ids, rule=rule if dynamic else None, availability=availability,
                        dynamic=dynamic, selection=scenario.round.selection, selection_rng=stream(scenario.seed,
                                                                                                  "selection"),
                        battery_j=battery if has_battery else None)
    if target is not None and sim_cfg.stop_at_target:
        def stop_at_target(record_):
            loss = record_.metrics.get("val_loss", math.inf)
            if loss <= target:
                return (f"round {record_.round} met the target validation loss {target:.4g} ({loss:.4f}; "
                        f"simulation.stop_at_target): the run ends after {len(protocol.records)} round(s)")
            return None

        protocol.stop_after = stop_at_target
    setup_before_s = backend.setup_wall_s
    wall_start = time.perf_counter()
    coordinator = protocol.start_processes()
    events = 0
    try:
        with loop_collector():  # the collector's settings for the loop (collector.py says why)
            # step by step rather than env.run(): the same loop, and it counts the events processed; a changing
            # world ends with the coordinator (availability timelines would run on for ever)
            step = sim_env.step
            while not (dynamic and coordinator.triggered):
                step()
                events += 1
    except simpy.core.EmptySchedule:
        pass
    finally:
        if bar is not None:
            bar.close()
    if coordinator.triggered and not coordinator.ok:  # e.g. an allocation the problem refuses: its own error
        raise coordinator.value
    # an online policy prepares the real model inside the loop (at its first decision): not engine overhead
    wall = time.perf_counter() - wall_start - (backend.setup_wall_s - setup_before_s)
    notes = list(world.warnings) + sorted({r.allocation.note for r in protocol.records if r.allocation.note})
    if protocol.stopped:
        notes.append(f"stopped: {protocol.stopped}")
    if training == "real" and kind == "sl" and scenario.training.server_mode != "v2":
        notes.append(f"protocol sl: one server-side adapter trained in turn order (training.server_mode="
                     f"{scenario.training.server_mode} does not apply)")
    if training == "real" and timing == "measured":
        notes.append(f"timing measured: host {backend.host_flops_per_s:.4g} FLOP/s; a device of f_k FLOP/s takes "
                     f"wall x {backend.host_flops_per_s:.4g} / f_k")
    settings = {**({} if kind == "sfl" else {"protocol": kind}),
                "training": training, "timing": timing, "policy": policy or sim_cfg.policy,
                "server_discipline": srv.discipline, "server_workers": srv.workers,
                "fading": bool(world.env.fading_enabled), "block_s": world.env.block_s,
                "host_flops_per_s": backend.host_flops_per_s}
    if dynamic:
        settings.update({"mobility": scenario.mobility.model if not scenario.mobility.groups else "groups",
                         "availability": scenario.availability.model, "round_policy": scenario.round.policy,
                         "selection": scenario.round.selection,
                         "downlink_fading": scenario.channel.downlink.fading,
                         "outage": outage is not None})
    end_s = max([r.end_s for r in protocol.records + protocol.discarded] + [0.0])
    positions = timeline.position_rows(end_s) if timeline is not None else []
    return SimulationResult(world=world, settings=settings, trace=trace, radio_rows=radio.channel_rows,
                            rounds=protocol.records, initial_val_loss=backend.initial_val_loss,
                            target_val_loss=target, events=events, wall_s=wall, op_wall_s=backend.op_wall_s,
                            notes=notes, discarded=protocol.discarded, positions=positions,
                            stopped=protocol.stopped, dynamic=dynamic, fading_blocks=radio.fading_blocks_drawn,
                            summary_rows=radio.summary_rows, channel_log=channel_log,
                            battery_out_s=dict(protocol.battery_out_s))


def _changing_world(scenario, world: World, problem):
    """The timeline of positions and gains (None if no client moves), the availability of each problem
    client (None: always), and the outage rule (None: none)."""
    import channel_models as cm

    k = world.env.num_clients
    timeline = None
    mob = scenario.mobility
    traces = None
    if mob.model != "static" or mob.groups:
        from ..trace_files import read_mobility_csv
        from .mobility import LargeScaleTimeline, client_motion
    if mob.model == "trace":
        traces = world.env.mobility_traces  # parsed once, when the clients were placed
        if traces is None:
            lay = scenario.clients.layout
            traces = read_mobility_csv(mob.trace_path, k, radius_m=lay.radius_m, min_distance_m=lay.min_distance_m)
    if mob.model != "static" or mob.groups and (traces or any(m is not None for m in client_motion(scenario, k))):
        timeline = LargeScaleTimeline(scenario, world.env, traces=traces)
    av = scenario.availability
    availability = None
    if av.model != "always":
        from ..availability import make_availability
        from ..seeding import seed_sequence
        from ..trace_files import read_availability_csv

        intervals = read_availability_csv(av.trace_path, k) if av.model == "trace" else None
        models = make_availability(av.model, k, seed_sequence=seed_sequence(scenario.seed, "availability"),
                                   mean_on_s=av.mean_on_s, mean_off_s=av.mean_off_s, share=av.share,
                                   intervals=intervals, initial=av.initial)
        availability = [models[int(c)] for c in problem.client_ids]
    radio = scenario.radio
    outage = None
    if radio.outage_rate_bps is not None or radio.outage_snr_db is not None:
        snr = None if radio.outage_snr_db is None else float(cm.db_to_linear(radio.outage_snr_db))
        outage = cm.Outage(rate_bps=radio.outage_rate_bps, snr_linear=snr)
    return timeline, availability, outage


def _check_deadline(problem, pairs, rule) -> None:
    """A deadline no client can meet fails now, with the fastest possible round time (not an endless loop)."""
    times = np.sort(np.min([fastest_round_s(problem, split, rank) for split, rank in pairs], axis=0))
    need = max(1, rule.min_clients)
    fastest = float(times[min(need, times.size) - 1])
    if rule.deadline_s < fastest:
        who = "client" if need == 1 else f"{need} clients (round.min_clients)"
        raise ConfigError(f"round.deadline_s={rule.deadline_s:g} s: no {who} can finish in time; the fastest possible "
                          f"client round is {fastest:.4g} s (alone on every subchannel at full power, the server "
                          f"to itself, mean gains at t = 0; allowed: a deadline >= {fastest:.4g} s)")
