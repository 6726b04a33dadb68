"""`fsllm-sim figures` (``make figures``): the paper's figure set in one command.

Each step makes one result directory under ``OUT/data/<step>`` with an existing command (a sweep file, a run or
a compare) and draws it with ``fsllm-sim plot`` into ``OUT/<step>/``; ``OUT/README.md`` indexes every figure:
what it shows, the commands that made it, the seeds and the package versions. Steps are resumable the way their
commands are: a sweep skips its finished rows, and a run or compare step whose directory says ``complete`` is
not run again, so an interrupted ``make figures`` continues where it stopped. The shipped sizes take about
ten minutes on a 2-core CPU (the step times go into the index).
"""
from __future__ import annotations

import json
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..rundir import atomic_write_text, ensure_output_dir, mark_complete, mark_running, package_versions, run_status


@dataclass(frozen=True)
class FigureStep:
    """One result directory and the figures drawn from it. ``kind``: sweep (a sweep file), run or compare
    (a scenario, with ``methods`` for compare and ``training`` for both)."""

    name: str
    kind: str
    source: str
    shows: str
    methods: tuple[str, ...] = ()
    training: str = "analytic"


STEPS = (
    FigureStep("bandwidth", "sweep", "scenarios/sweeps/bandwidth.yaml",
               "total delay against total uplink bandwidth (both bands grow together): bcd against equal, random, "
               "max-power, fixed split and fixed rank, mean and 95 % interval over 3 seeds"),
    FigureStep("clients", "sweep", "scenarios/sweeps/clients.yaml",
               "total delay against the number of clients K on the default spectrum, optimiser against baselines"),
    FigureStep("power", "sweep", "scenarios/sweeps/power.yaml",
               "total delay against the per-client power cap P_max (dBm), optimiser against baselines"),
    FigureStep("heterogeneity", "sweep", "scenarios/sweeps/heterogeneity.yaml",
               "total delay against device heterogeneity (sigma of ln f_k), optimiser against baselines"),
    FigureStep("protocols", "sweep", "scenarios/sweeps/protocols.yaml",
               "split federated learning (sfl) against vanilla split learning (sl) and federated LoRA without a "
               "split (fl) over total bandwidth, each optimised (bcd) and with equal allocation"),
    FigureStep("decisions", "sweep", "scenarios/sweeps/tradeoffs.yaml",
               "what fixing one decision costs on scenarios/tradeoffs.yaml: the joint optimum against a fixed "
               "split, a fixed rank, both, equal and random allocation and no power control (paired per seed)"),
    FigureStep("doppler", "sweep", "scenarios/sweeps/doppler.yaml",
               "gap between the mean-gain closed form and the fading-aware event engine against client speed"),
    FigureStep("default-run", "run", "scenarios/default.yaml",
               "one simulated run of the default scenario (equal share, fading, analytic compute): Gantt chart of "
               "round 1, per-client delay breakdown, the rank and split trade-offs around the optimum, and the "
               "Doppler gap of its allocation against both closed forms"),
    FigureStep("tradeoffs-run", "compare", "scenarios/tradeoffs.yaml",
               "scenarios/tradeoffs.yaml simulated under bcd, equal-share and equal: rounds against simulated "
               "time, Gantt charts and breakdowns per method, the cost of each method against bcd, and the "
               "interior rank and split trade-offs", methods=("bcd", "equal-share", "equal")),
    FigureStep("loss", "compare", "scenarios/loss_curves.yaml",
               "validation loss against simulated time with real SmolLM2 training for the optimised allocation "
               "and two baselines", methods=("bcd", "equal-share", "random"), training="real"),
)

# What each figure file shows, by the start of its name (fsllm_sim/jobs/plot.py writes them).
FIGURE_MEANINGS = (
    ("delay_vs_", "total delay N(r)·T_round against the swept field, one line per method (and protocol), "
                  "95 % t interval over seeds as a band"),
    ("decision_cost", "total delay of each method, labelled with its cost against the first (paired per seed)"),
    ("gantt_round1", "Gantt chart of round 1: every client's compute, transfers and server phases"),
    ("delay_breakdown", "per-client delay breakdown of a round (stacked bars)"),
    ("rank_tradeoff", "N(r), round time and total delay against the LoRA rank r at the best split"),
    ("split_tradeoff", "client FLOPs, activation payload, client memory and total delay against the split l"),
    ("doppler_gap", "simulated mean round against the closed forms (mean-gain and ergodic) as client speed grows"),
    ("loss_vs_time", "validation loss against simulated time, one line per allocation"),
    ("rounds_vs_time", "rounds completed against simulated time, one line per allocation"),
)


def figure_meaning(stem: str) -> str:
    return next((text for prefix, text in FIGURE_MEANINGS if stem.startswith(prefix)), "")


def step_commands(step: FigureStep, data_dir: Path, fig_dir: Path) -> list[str]:
    """The shell commands that reproduce one step (written into the index)."""
    q = shlex.quote
    if step.kind == "sweep":
        make = f"fsllm-sim sweep {q(step.source)} --out {q(str(data_dir))}"
    elif step.kind == "run":
        make = (f"fsllm-sim run {q(step.source)} --training {step.training} --runs-dir {q(str(data_dir))} "
                f"--profile counted")
    else:
        make = (f"fsllm-sim compare {q(step.source)} --methods {','.join(step.methods)} --training {step.training} "
                f"--runs-dir {q(str(data_dir))} --profile counted")
    return [make, f"fsllm-sim plot {q(str(data_dir if step.kind == 'sweep' else data_dir / '<run directory>'))} "
                  f"--out {q(str(fig_dir))}"]


def _complete_result(folder: Path) -> Path | None:
    """The newest complete run/compare directory in ``folder`` (a step already done), else None."""
    if not folder.is_dir():
        return None
    done = [d for d in folder.iterdir() if d.is_dir() and run_status(d) == "complete"]
    return max(done, key=lambda d: d.stat().st_mtime) if done else None


def run_step(step: FigureStep, data_dir: Path, *, workers: int | None, progress: bool, echo) -> Path:
    """Make (or reuse) the step's result directory; returns the directory to plot."""
    from ..config import load_scenario

    if step.kind == "sweep":
        from .sweep import run_sweep_file

        return run_sweep_file(step.source, out_dir=str(data_dir), workers=workers, progress=progress, echo=echo)
    done = _complete_result(data_dir)
    if done is not None:
        echo(f"{step.name}: {done} is complete, reused")
        return done
    scenario = load_scenario(step.source)
    if step.kind == "run":
        from .run import run_simulation

        return run_simulation(scenario, training=step.training, runs_dir=str(data_dir), progress=progress,
                              profile_source="counted")
    from .compare import run_compare

    return run_compare(scenario, list(step.methods), training=step.training, runs_dir=str(data_dir),
                       progress=progress, profile_source="counted", echo=echo)


def _seeds_of(result_dir: Path, step: FigureStep) -> str:
    if step.kind == "sweep":
        try:
            rows = json.loads((result_dir / "results.json").read_text(encoding="utf-8"))
            return ", ".join(str(s) for s in sorted({int(r["seed"]) for r in rows}))
        except (OSError, ValueError, KeyError, TypeError):
            return "see results.json"
    from ..config import load_scenario

    try:
        return str(load_scenario(result_dir / "config.resolved.yaml").seed)
    except ConfigError:  # the index still lists the figures
        return "see config.resolved.yaml"


def index_markdown(entries: list[dict], versions: dict, total_wall_s: float) -> str:
    lines = ["# fsllm-sim figure set", "",
             "Written by `make figures` (`fsllm-sim figures`). Each section: what the figures show, the commands that "
             "made them (rerun them to reproduce one section), the seeds, and the wall time of the step on the "
             "machine that ran it. PNG for screens, PDF (TrueType fonts embedded) for papers.", "",
             f"Total wall time: {total_wall_s:.0f} s. Versions: "
             + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())) + ".", ""]
    for e in entries:
        lines += [f"## {e['name']}", "", e["shows"] + ".", "", "```"] + e["commands"] + ["```", "",
                  f"Seeds: {e['seeds']}. Wall time: {e['wall_s']:.0f} s. Data: `{e['data']}`.", ""]
        for stem in e["figures"]:
            meaning = figure_meaning(stem)
            lines.append(f"- `{e['name']}/{stem}.png` (`.pdf`)" + (f": {meaning}" if meaning else ""))
        lines.append("")
    return "\n".join(lines)


def run_figures(out_dir: str = "runs/figures", *, only: list[str] | None = None, workers: int | None = None,
                progress: bool = True, echo=print) -> Path:
    from .plot import run_plot

    names = [s.name for s in STEPS]
    unknown = [n for n in (only or []) if n not in names]
    if unknown:
        raise ConfigError(f"--only {','.join(unknown)}: no such step (allowed: {', '.join(names)})")
    steps = [s for s in STEPS if not only or s.name in only]
    out = ensure_output_dir(out_dir, "--out")
    mark_running(out, "figures")
    entries, started = [], time.perf_counter()
    for i, step in enumerate(steps, 1):
        echo(f"[{i}/{len(steps)}] {step.name}: {step.kind} {step.source}")
        t0 = time.perf_counter()
        data_dir = ensure_output_dir(out / "data" / step.name, "--out")
        fig_dir = out / step.name
        result = run_step(step, data_dir, workers=workers, progress=progress, echo=echo)
        written = run_plot(str(result), out=str(fig_dir), progress=progress, echo=echo)
        entries.append({"name": step.name, "shows": step.shows, "commands": step_commands(step, data_dir, fig_dir),
                        "seeds": _seeds_of(result, step), "wall_s": time.perf_counter() - t0,
                        "data": str(result), "figures": sorted({p.stem for p in written})})
    total = time.perf_counter() - started
    atomic_write_text(out / "README.md", index_markdown(entries, package_versions(), total))
    mark_complete(out)
    n = sum(len(e["figures"]) for e in entries)
    echo(f"{n} figures (PNG and PDF) in {len(entries)} sections; index {out / 'README.md'} ({total:.0f} s)")
    return out
