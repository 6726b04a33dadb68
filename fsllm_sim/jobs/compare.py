"""`fsllm-sim compare`: the same scenario and seeds simulated under several allocations, side by side.

Each method is one simulation on the same world (placement, gains, devices, fading seeds), so the
differences are the allocations' alone. ``--policies static,online`` and ``--round-policies
wait-all,deadline,over-selection`` add the allocation policy and the round rule as further axes: every
combination is simulated on the same world, the same mobility and the same availability (they are
exogenous), which is how the online policy is judged against a changing network (docs/dynamics.md).
With real training the table gives the simulated time to the target validation loss and the figure the
loss against simulated time; with analytic training, the simulated time of the rounds and the rounds
completed against time. Beside the delay, each run's clients' energy over the simulation (results.json
``energy``: ``energy_j``, the total over the clients, and ``worst_client_energy_j``, the client that spent most)
goes into compare.csv and the table; it covers the rounds simulated, as the delay column does.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from plots import plot_loss_vs_time

from ..engine import build_world, simulate
from ..engine.allocation import load_scenario_plugins
from ..engine.world import print_warnings
from ..errors import ConfigError
from ..report import format_table
from ..rundir import atomic_write_csv, atomic_write_json, check_output_dir, create_run_dir, mark_complete
from .run import write_simulation


def parse_methods(text: str) -> list[str]:
    methods = [m.strip() for m in text.split(",") if m.strip()]
    if not methods:
        raise ConfigError("--methods: give at least one allocation, e.g. bcd,equal,random")
    if len(set(methods)) != len(methods):
        raise ConfigError(f"--methods {text!r} names an allocation twice")
    return methods


def parse_choices(text: str | None, flag: str, allowed: tuple) -> list[str] | None:
    """A comma-separated list of distinct values among ``allowed`` (None: the option was not given)."""
    if text is None:
        return None
    items = [m.strip() for m in text.split(",") if m.strip()]
    bad = [m for m in items if m not in allowed]
    if not items or bad or len(set(items)) != len(items):
        raise ConfigError(f"{flag} {text!r}: give distinct values among {', '.join(allowed)}")
    return items


def variants(scenario, methods, policies, round_policies) -> list[tuple[str, str, object, str | None]]:
    """(label, method, scenario, policy) of every combination; the label names only the axes given."""
    from dataclasses import replace

    from ..config.loader import _dynamics_checks

    out = []
    for m in methods:
        for pol in policies or [None]:
            for rp in round_policies or [None]:
                s = scenario if rp is None else replace(scenario, round=replace(scenario.round, policy=rp))
                try:
                    _dynamics_checks(s)
                except ConfigError as exc:
                    raise ConfigError(f"--round-policies {rp}: {exc}") from None
                label = "/".join([m] + ([pol] if pol else []) + ([rp] if rp else []))
                out.append((label, m, s, pol))
    return out


def run_compare(scenario, methods: list[str], *, training: str | None = None, rounds: int | None = None,
                runs_dir: str | None = None, progress: bool = True, profile_source: str = "counted",
                echo=print, policies: list[str] | None = None, round_policies: list[str] | None = None) -> Path:
    check_output_dir(runs_dir or scenario.output.runs_dir, "--runs-dir" if runs_dir else "output.runs_dir")
    load_scenario_plugins(scenario)
    runs = variants(scenario, methods, policies, round_policies)
    world = build_world(scenario, profile_source=profile_source, progress=progress, echo=echo)
    print_warnings(world)
    results = {}
    for label, m, s, pol in runs:  # every allocation is resolved (and can fail) before anything is written
        if progress:
            echo(f"simulating {label} ...")
        results[label] = simulate(s, allocation=m, training=training, rounds=rounds, progress=progress,
                                  echo=echo, world=world, policy=pol)
    methods = list(results)
    run_dir = create_run_dir(scenario, "compare", runs_dir)
    rows, series = [], {}
    for m, res in results.items():
        sub = run_dir / m.replace("/", "_")
        sub.mkdir()
        summary = write_simulation(res, sub, label=m)
        if not res.rounds:
            raise ConfigError(f"compare {m}: {res.stopped}")
        energy = json.loads((sub / "results.json").read_text(encoding="utf-8")).get("energy") or {}
        row = {"allocation": m, "split": summary["split"], "rank": summary["rank"],
               "simulated_s": summary["simulated_s"], "mean_round_s": summary["mean_round_s"],
               "mean_analytic_round_s": summary["mean_analytic_round_s"],
               "analytic_time_to_target_s": summary["analytic_time_to_target_s"],
               "energy_j": energy.get("total_j"), "worst_client_energy_j": energy.get("worst_client_j")}
        dynamic = "mean_participants" in summary
        if dynamic:
            row.update({"rounds": summary["rounds_simulated"], "mean_participants": summary["mean_participants"],
                        "dropped": summary["dropped"], "cancelled": summary["cancelled"],
                        "deadline_hits": summary["deadline_hits"]})
        if res.real:
            t = summary["simulated_time_to_target_s"]
            row.update({"final_val_loss": summary["final_val_loss"],
                        "simulated_time_to_target_s": math.nan if t is None else t})
            times, losses = res.loss_curve()
        else:
            times = [0.0] + [r.end_s for r in res.rounds]
            losses = list(range(len(times)))
        series[m] = {"time_s": times, "value": losses}
        rows.append(row)
    real = next(iter(results.values())).real
    base = rows[0]
    for r in rows:
        key = "simulated_time_to_target_s" if real else "simulated_s"
        r["vs_first"] = r[key] / base[key] if base[key] and not math.isnan(base[key]) else math.nan
    atomic_write_csv(run_dir / "compare.csv", rows)
    atomic_write_json(run_dir / "results.json", {"methods": methods, "rows": rows})
    target = next(iter(results.values())).target_val_loss
    plot_loss_vs_time(series, run_dir / ("loss_vs_time.png" if real else "rounds_vs_time.png"),
                      ylabel="validation loss" if real else "rounds completed",
                      title=f"{scenario.name}: {'validation loss' if real else 'progress'} against simulated time",
                      target=target if real else None)
    headers = ["allocation", "split", "rank", "closed-form round s", "simulated round s"]
    dyn = ["mean_participants", "dropped", "cancelled", "deadline_hits"] if "mean_participants" in rows[0] else []
    if real:
        headers += ["final val loss", "time to target s", f"x {methods[0]}"]
        table = [[r["allocation"], r["split"], r["rank"], r["mean_analytic_round_s"], r["mean_round_s"],
                  r["final_val_loss"], r["simulated_time_to_target_s"], r["vs_first"]] for r in rows]
    else:
        headers += [f"time for {len(next(iter(results.values())).rounds)} rounds s", f"x {methods[0]}"]
        table = [[r["allocation"], r["split"], r["rank"], r["mean_analytic_round_s"], r["mean_round_s"],
                  r["simulated_s"], r["vs_first"]] for r in rows]
    headers += ["energy J", "worst client J"]
    table = [t + ["" if r[c] is None else r[c] for c in ("energy_j", "worst_client_energy_j")]
             for t, r in zip(table, rows)]
    if dyn:
        headers += ["participants", "dropped", "cancelled", "deadline hits"]
        table = [t + [r[c] for c in dyn] for t, r in zip(table, rows)]
    echo(format_table(headers, table))
    mark_complete(run_dir)  # the last step: status.json says complete only once everything is written
    echo(f"compare directory: {run_dir}")
    return run_dir
