"""`fsllm-sim plot DIR`: every publication figure that applies to a run, compare or sweep directory.

The folder's kind is read from the files in it (see :func:`detect_kind`); each figure is written as PNG and PDF
into ``DIR/figures`` (or ``--out``) through :mod:`plots`, which only draws the plain arrays given here:

========================  ==============================================================================
figure                    from
========================  ==============================================================================
``gantt_round1``          a run's ``trace.csv`` (per method in a compare directory: ``gantt_round1_<m>``)
``delay_breakdown``       a run's ``clients.csv``: simulated per-client means per round, closed form marked
``loss_vs_time``          real training: ``rounds.csv`` validation losses (all methods of a compare directory)
``rounds_vs_time``        analytic training in a compare directory: rounds completed against simulated time
``decision_cost``         a compare directory, or a one-point sweep (paired by seed): each method's total
                          delay against the first one listed
``rank_tradeoff``         the resolved scenario (``config.resolved.yaml``): N(r), T_round, N(r)·T_round vs r
``split_tradeoff``        the resolved scenario: client FLOPs, activation payload, memory, delay vs ℓ
``doppler_gap``           simulated at each speed of ``--speeds-kmh`` (run/compare), or a simulate sweep over
                          ``channel.fading.speed_kmh`` (its rows' ``closed_form_round_s``)
``delay_vs_<axis>``       a sweep: total delay against each swept field, per method, 95 % CI over seeds
``pareto``                an optimize directory of ``--pareto`` (``pareto.csv``): training energy against delay,
                          the front as a line, the baselines as points
========================  ==============================================================================

Figures the job computes (trade-offs, Doppler gap) rebuild the scenario's world with the profile source the
run recorded (``results.json`` ``profile.source``), so they describe the very problem the run solved.
"""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np

from ..errors import USER_ERRORS, ConfigError
from ..rundir import ensure_output_dir, remove_stale_temp_files, run_status

FIGURES_DIR = "figures"
# Pedestrian, urban and vehicular speeds (3GPP TR 38.901 evaluations use 3, 30 and 120 km/h), plus a slower and a
# faster point so both ends of the trend show. Used when --speeds-kmh is not given; printed with the figure.
DOPPLER_SPEEDS_KMH = (1.0, 3.0, 10.0, 30.0, 60.0, 120.0)
SPEED_FIELD = "channel.fading.speed_kmh"
# Short names of the sweep axes researchers use most; any other field is named by its path.
AXIS_NAMES = {
    "channel.s_band.total_bandwidth_hz": "total s-band bandwidth",
    "channel.f_band.total_bandwidth_hz": "total f-band bandwidth",
    "channel.s_band.subchannels": "s-band subchannels M",
    "channel.s_band.subchannel_bandwidth_hz": "s-band subchannel bandwidth B",
    "channel.f_band.subchannels": "f-band subchannels N",
    "clients.count": "number of clients K",
    "channel.power.client_max_dbm": "client power cap P_max",
    "channel.power.total_cap_s_dbm": "total s-band power cap",
    "devices.speed.sigma": "device heterogeneity σ of ln f_k",
    SPEED_FIELD: "client speed v",
    "lora.rank": "LoRA rank r",
    "split.layer": "split point ℓ",
}
# Units by field-name suffix, for fields the schema does not (yet) declare: the project names carry units.
SUFFIX_UNITS = (("_flops_per_s", "FLOP/s"), ("_hz", "Hz"), ("_dbm", "dBm"), ("_db", "dB"), ("_kmh", "km/h"),
                ("_bytes", "B"), ("_m", "m"), ("_s", "s"))


# ----------------------------------------------------------------------------------------------- entry point

def run_plot(folder: str, *, out: str | None = None, speeds_kmh=None, doppler_rounds: int | None = None,
             progress: bool = True, echo=print) -> list[Path]:
    """Write every figure that applies to ``folder`` into ``out`` (default ``folder/figures``); returns the paths.

    ``speeds_kmh`` and ``doppler_rounds`` set the simulations of the Doppler figure of a run or compare directory
    (default :data:`DOPPLER_SPEEDS_KMH` and the rounds the run simulated)."""
    src = Path(folder)
    kind = detect_kind(src)
    if run_status(src) in ("running", "interrupted"):
        echo(f"note: {folder} is {run_status(src)} (status.json): the figures show what is written so far")
    dest = ensure_output_dir(out if out is not None else src / FIGURES_DIR, "--out")
    remove_stale_temp_files(dest)  # those of an earlier plot that was killed
    doppler = {"speeds": tuple(DOPPLER_SPEEDS_KMH if speeds_kmh is None else speeds_kmh), "rounds": doppler_rounds}
    writers = {"run": _plot_run, "compare": _plot_compare, "sweep": _plot_sweep, "privacy": _plot_privacy,
               "pareto": _plot_pareto}
    written: list[Path] = []
    try:
        for name, figure_paths, note in writers[kind](src, dest, doppler=doppler, progress=progress):
            if note:
                echo(f"note: {name}: {note}")
            written += figure_paths
    except (KeyError, IndexError) as exc:  # a result file cut short or written by another version
        raise ConfigError(f"plot {folder!r}: a result file lacks an entry the {kind} figures need ({exc!r}); "
                          f"rerun the command that wrote it") from None
    echo(f"{kind} directory {folder}: {len(written) // 2} figures (PNG and PDF) in {dest}: "
         + ", ".join(sorted({p.stem for p in written})))
    return written


def detect_kind(src: Path) -> str:
    """``run`` (trace.csv and a results.json with a summary), ``compare`` (compare.csv), ``sweep``
    (results.csv / results.json rows of the sweep job, or the older sweep.csv), ``privacy`` (the privacy.json
    of `fsllm-sim privacy`) or ``pareto`` (the pareto.csv of `fsllm-sim optimize --pareto`); else a one-line
    ConfigError."""
    if not src.is_dir():
        raise ConfigError(f"plot {str(src)!r}: not a folder (allowed: a run, compare, sweep, privacy or pareto "
                          f"directory)")
    if (src / "privacy.json").is_file():
        return "privacy"
    if (src / "pareto.csv").is_file():
        return "pareto"
    if (src / "compare.csv").is_file():
        return "compare"
    if (src / "trace.csv").is_file() and (src / "results.json").is_file():
        return "run"
    if (src / "sweep.csv").is_file() or (src / "results.csv").is_file():
        return "sweep"
    raise ConfigError(f"plot {str(src)!r}: not a run, compare, sweep, privacy or pareto directory (no trace.csv "
                      f"with results.json, compare.csv, results.csv, sweep.csv, privacy.json or pareto.csv in it)")


# ------------------------------------------------------------------------------------------------- readers

def _read_csv(path: Path) -> list[dict]:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))
    except OSError as exc:
        raise ConfigError(f"plot: cannot read {str(path)!r} ({exc.strerror or type(exc).__name__})") from None


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"plot: cannot read {str(path)!r} ({exc.strerror or type(exc).__name__})") from None
    except ValueError as exc:
        raise ConfigError(f"plot: {str(path)!r} is not valid JSON ({exc})") from None


def cell(text):
    """A CSV cell back to its value: '' -> None, True/False, JSON numbers and lists, else the string."""
    if text is None or text == "":
        return None
    if text in ("True", "False"):
        return text == "True"
    try:
        return json.loads(text)
    except ValueError:
        return text


def _number(row: dict, key: str, where: str) -> float:
    try:
        return float(row[key])
    except (KeyError, TypeError, ValueError):
        raise ConfigError(f"plot: {where}: column {key!r} is missing or not a number") from None


# ----------------------------------------------------------------------------------------------- run directory

def _plot_run(src: Path, dest: Path, *, doppler, progress):
    results = _read_json(src / "results.json")
    summary = results["summary"]
    yield "gantt_round1", _gantt(src, dest / "gantt_round1"), ""
    yield "delay_breakdown", _breakdown(src, dest / "delay_breakdown", summary), ""
    if "val_loss" in _read_csv(src / "rounds.csv")[0]:
        from plots.loss_curve import loss_figure

        series = {summary["allocation"]: _loss_series(src, summary)}
        loss_figure(series, dest / "loss_vs_time", target=summary.get("target_val_loss"))
        yield "loss_vs_time", _saved(dest / "loss_vs_time"), ""
    else:
        yield "loss_vs_time", [], "skipped: analytic training has no validation loss"
    scenario = _scenario(src)
    world = _world(scenario, results["profile"]["source"], progress)
    yield from _tradeoffs(world, dest)
    yield _doppler_from_runs(scenario, world, summary, dest, doppler)


def _plot_privacy(src: Path, dest: Path, *, doppler, progress):
    from plots.privacy import plot_leakage_vs_noise, plot_leakage_vs_split

    from ..privacy import load_privacy_file

    doc = load_privacy_file(src / "privacy.json")
    plot_leakage_vs_split(doc["rows"], dest / "leakage_vs_split", title=f"{doc['model']}: leakage against split")
    yield "leakage_vs_split", _saved(dest / "leakage_vs_split"), ""
    plot_leakage_vs_noise(doc["rows"], dest / "leakage_vs_noise", title=f"{doc['model']}: leakage against noise")
    yield "leakage_vs_noise", _saved(dest / "leakage_vs_noise"), ""


def _plot_pareto(src: Path, dest: Path, *, doppler, progress):
    """The delay-energy front of `fsllm-sim optimize --pareto`, redrawn from its pareto.csv."""
    from .pareto import draw_pareto

    rows = _read_csv(src / "pareto.csv")
    if not rows or "training_delay_s" not in rows[0] or "training_energy_j" not in rows[0]:
        raise ConfigError(f"plot: {str(src / 'pareto.csv')!r} has no rows with training_delay_s and "
                          f"training_energy_j; rerun fsllm-sim optimize --pareto")
    name, note = None, None
    if (src / "config.resolved.yaml").is_file():
        import yaml

        try:
            name = (yaml.safe_load((src / "config.resolved.yaml").read_text(encoding="utf-8")) or {}).get("name")
        except (OSError, yaml.YAMLError):
            name = None
    if (src / "results.json").is_file():
        sweep = _read_json(src / "results.json").get("pareto", {})
        if sweep.get("sweep"):
            note = f"{'budget' if sweep['sweep'] == 'budget' else 'weight λ'} sweep, {sweep.get('method', 'bcd')}"
    try:
        draw_pareto(rows, dest / "pareto", title=f"{name}: delay-energy front" if name else "delay-energy front",
                    note=note)
    except ValueError as exc:
        raise ConfigError(f"plot: {str(src / 'pareto.csv')!r}: {exc}") from None
    yield "pareto", _saved(dest / "pareto"), ""


def _saved(stem: Path) -> list[Path]:
    """The two files a ``*_figure`` function wrote for ``stem``."""
    return [stem.with_name(f"{stem.name}.png"), stem.with_name(f"{stem.name}.pdf")]


def _gantt(run: Path, stem: Path) -> list[Path]:
    from plots.gantt import gantt_figure

    gantt_figure(_read_csv(run / "trace.csv"), 1, stem)
    return _saved(stem)


BREAKDOWN_COLUMNS = (("client compute", "compute_s_per_round"), ("uplink (activations)", "uplink_s_per_round"),
                     ("server queue", "server_wait_s_per_round"), ("server compute", "server_s_per_round"),
                     ("downlink (gradients)", "downlink_s_per_round"),
                     ("adapter upload", "adapter_upload_s_per_round"))
# Written only by the protocols that have the phase (sl: the client adapter handed on to the next client).
OPTIONAL_BREAKDOWN_COLUMNS = (("adapter download", "adapter_download_s_per_round"),)


def breakdown_parts(clients: list[dict]) -> dict:
    """{part label: per-client simulated seconds per round} from a run's clients.csv rows."""
    present = [(label, col) for label, col in OPTIONAL_BREAKDOWN_COLUMNS if col in clients[0]]
    return {label: [_number(r, col, "clients.csv") for r in clients] for label, col in (*BREAKDOWN_COLUMNS, *present)}


def _breakdown(run: Path, stem: Path, summary: dict) -> list[Path]:
    from plots.delay_breakdown import breakdown_figure

    clients = _read_csv(run / "clients.csv")
    breakdown_figure(breakdown_parts(clients), stem, round_s=float(summary["mean_round_s"]),
                     reference_s=[_number(r, "analytic_client_round_s", "clients.csv") for r in clients],
                     reference_label="closed form (client round)")
    return _saved(stem)


def _loss_series(run: Path, summary: dict) -> dict:
    """Validation loss against simulated time: (0, initial loss), then (end of round t, loss after it)."""
    rounds = _read_csv(run / "rounds.csv")
    return {"time_s": [0.0] + [float(r["end_s"]) for r in rounds],
            "value": [float(summary["initial_val_loss"])] + [float(r["val_loss"]) for r in rounds]}


def _scenario(src: Path):
    """The run's resolved scenario; a compare directory's method folder shares its parent's."""
    from ..config import load_scenario

    for folder in (src, src.parent):
        if (folder / "config.resolved.yaml").is_file():
            return load_scenario(folder / "config.resolved.yaml")
    raise ConfigError(f"plot: {str(src)!r} has no config.resolved.yaml (the resolved scenario of the run)")


def _world(scenario, profile_source: str, progress: bool):
    from ..engine import build_world

    return build_world(scenario, profile_source=profile_source, progress=progress, echo=lambda *_: None)


# ------------------------------------------------------------------------------------------- trade-offs

def tradeoff_series(problem) -> dict:
    """Rank and split trade-offs around the optimum (bcd over all pairs): every rank at the optimal split,
    every split at the optimal rank. A pair the problem does not allow (privacy floor, memory) is NaN."""
    import solvers

    best = solvers.solve(problem, "bcd")
    allowed = set(problem.candidate_pairs())
    prof = problem.profile

    def total(split, rank):
        if (split, rank) not in allowed:
            return math.nan, math.nan
        sol = solvers.solve(problem, "bcd", split=split, rank=rank)
        return sol.objective_s, sol.round_time_s

    ranks = [int(r) for r in prof.ranks]
    rank_pairs = [total(best.split, r) for r in ranks]
    splits = [int(s) for s in prof.splits]
    ri = prof.index(best.split, best.rank)[1]
    split_totals = [total(s, best.rank)[0] for s in splits]
    memory = None if prof.client_memory_bytes is None else prof.client_memory_bytes[:, ri].tolist()
    limits = problem.client_memory_limit_bytes
    return {
        "best": {"split": best.split, "rank": best.rank, "total_s": best.objective_s},
        "rank": {"ranks": ranks, "rounds": [float(problem.convergence.rounds(r)) for r in ranks],
                 "round_time_s": [t for _, t in rank_pairs], "total_s": [o for o, _ in rank_pairs]},
        "split": {"splits": splits,
                  "client_flops": (prof.client_forward_flops[:, ri] + prof.client_backward_flops[:, ri]).tolist(),
                  "activation_bits": prof.activation_bits[:, ri].tolist(), "client_memory_bytes": memory,
                  "memory_limit_bytes": None if limits is None else float(np.min(limits)),
                  "min_split": int(problem.min_split), "total_s": split_totals},
    }


def _tradeoffs(world, dest: Path):
    from plots.tradeoffs import rank_tradeoff_figure, split_tradeoff_figure

    t = tradeoff_series(world.problem)
    best, r, s = t["best"], t["rank"], t["split"]
    if len(r["ranks"]) > 1:
        rank_tradeoff_figure(r["ranks"], r["rounds"], r["round_time_s"], r["total_s"], dest / "rank_tradeoff",
                             split=best["split"])
        yield "rank_tradeoff", _saved(dest / "rank_tradeoff"), ""
    else:
        yield "rank_tradeoff", [], f"skipped: the problem has one rank only (r = {r['ranks'][0]})"
    if len(s["splits"]) > 1:
        split_tradeoff_figure(s["splits"], s["client_flops"], s["activation_bits"], s["total_s"],
                              dest / "split_tradeoff", rank=best["rank"], client_memory_bytes=s["client_memory_bytes"],
                              memory_limit_bytes=s["memory_limit_bytes"], min_split=s["min_split"])
        yield "split_tradeoff", _saved(dest / "split_tradeoff"), ""
    else:  # e.g. federated learning without a split: the whole model on the device
        yield "split_tradeoff", [], f"skipped: the problem has one split point only (ℓ = {s['splits'][0]})"


# ------------------------------------------------------------------------------------------- Doppler gap

def mean_ci95(values) -> tuple[float, float, float]:
    """(mean, low, high): a Student-t 95 % interval of the mean; NaN bounds from fewer than two values."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if v.size == 0:
        return math.nan, math.nan, math.nan
    if v.size == 1:
        return float(v[0]), math.nan, math.nan
    from scipy.stats import t

    half = float(t.ppf(0.975, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    return float(v.mean()), float(v.mean() - half), float(v.mean() + half)


def simulated_gaps(scenario, world, *, allocation: str, policy: str, rounds: int, speeds) -> dict:
    """Per speed, the relative gap of each simulated round to the closed form with mean-gain rates and with the
    objective's (ergodic) rates: ``{speed: {"mean-gain": [per round], "ergodic": [per round]}}``.

    Speed changes only the fading's time correlation, so one world (placement, devices, profile) serves all.
    """
    import dataclasses

    from ..engine import simulate
    from ..engine.world import World
    from ..network import build_environment

    out = {}
    for v in speeds:
        fading = dataclasses.replace(scenario.channel.fading, speed_kmh=float(v))
        s_v = dataclasses.replace(scenario, channel=dataclasses.replace(scenario.channel, fading=fading))
        w_v = World(s_v, build_environment(s_v), world.fleet, world.profile, world.profile_meta, world.convergence,
                    world.problem, world.warnings)
        res = simulate(s_v, allocation=allocation, training="analytic", rounds=rounds, policy=policy,
                       record_channel=False, progress=False, echo=lambda *_: None, world=w_v)
        summ = res.summary()
        durations = np.array([r["duration_s"] for r in res.round_rows()])
        out[float(v)] = {"mean-gain": (durations / summ["mean_mean_gain_round_s"] - 1).tolist(),
                         "ergodic": (durations / summ["mean_analytic_round_s"] - 1).tolist()}
    return out


def _doppler_from_runs(scenario, world, summary: dict, dest: Path, doppler: dict):
    """The Doppler figure of a run (or of a compare directory's first method), simulated at each speed of
    ``doppler["speeds"]`` for ``doppler["rounds"]`` rounds (None: as many as the run)."""
    from plots.doppler import doppler_gap_figure

    if not world.env.fading_enabled:
        return "doppler_gap", [], "skipped: the scenario has no small-scale fading"
    allocation, speeds = summary["allocation"], doppler["speeds"]
    rounds = int(summary["rounds_simulated"]) if doppler["rounds"] is None else int(doppler["rounds"])
    try:
        gaps = simulated_gaps(scenario, world, allocation=allocation, policy=summary["policy"], rounds=rounds,
                              speeds=speeds)
    except USER_ERRORS as exc:  # e.g. the run's allocation was a solution.json that is no longer there
        return "doppler_gap", [], f"skipped: cannot simulate allocation {allocation!r} again ({exc})"
    series = {}
    for key in ("mean-gain", "ergodic"):
        stats = [mean_ci95(gaps[float(v)][key]) for v in speeds]
        series[f"simulated vs {key} closed form"] = {
            "mean_pct": [100 * m for m, _, _ in stats], "low_pct": [100 * lo for _, lo, _ in stats],
            "high_pct": [100 * hi for _, _, hi in stats]}
    doppler_gap_figure(list(speeds), series, dest / "doppler_gap",
                       carrier_hz=scenario.channel.path_loss.carrier_ghz * 1e9,
                       band_label=f"95 % CI over {rounds} rounds")
    return ("doppler_gap", _saved(dest / "doppler_gap"),
            f"simulated {rounds} rounds at {', '.join(f'{v:g}' for v in speeds)} km/h with allocation {allocation}")


# ------------------------------------------------------------------------------------------- compare directory

def compare_rows(src: Path) -> list[dict]:
    """compare.csv rows, each with its sub-run folder and summary and the total delay to draw (see
    :func:`total_delay`)."""
    rows = _read_csv(src / "compare.csv")
    if not rows:
        raise ConfigError(f"plot: {str(src / 'compare.csv')!r} has no rows")
    for r in rows:
        r["folder"] = src / r["allocation"].replace("/", "_")  # as fsllm-sim compare names them
        r["summary"] = _read_json(r["folder"] / "results.json")["summary"]
    return rows


def total_delay(rows: list[dict]) -> tuple[list[float], str]:
    """The total delay of each compared method and its axis label: the simulated time to the target loss when
    real training reached it for every method; else N(r) x the mean simulated round (fading-aware)."""
    reached = [r["summary"].get("simulated_time_to_target_s") for r in rows]
    if all(t is not None and math.isfinite(t) for t in reached):
        return [float(t) for t in reached], "simulated time to the target loss (s)"
    totals = [float(r["summary"]["rounds_to_target_model"]) * float(r["mean_round_s"]) for r in rows]
    return totals, "total delay N(r)·mean simulated round (s)"


def _plot_compare(src: Path, dest: Path, *, doppler, progress):
    from plots.loss_curve import loss_figure
    from plots.tradeoffs import decision_cost_figure

    rows = compare_rows(src)
    real = "val_loss" in _read_csv(rows[0]["folder"] / "rounds.csv")[0]
    name = "loss_vs_time" if real else "rounds_vs_time"
    series = {r["allocation"]: (_loss_series(r["folder"], r["summary"]) if real else _rounds_series(r["folder"]))
              for r in rows}
    loss_figure(series, dest / name, ylabel="validation loss" if real else "rounds completed",
                target=rows[0]["summary"].get("target_val_loss") if real else None, integer_y=not real)
    yield name, _saved(dest / name), "" if real else "analytic training: rounds completed, not loss"
    totals, label = total_delay(rows)
    decision_cost_figure([r["allocation"] for r in rows], totals, dest / "decision_cost",
                         reference=rows[0]["allocation"], x_label=label)
    yield "decision_cost", _saved(dest / "decision_cost"), f"relative to {rows[0]['allocation']} (listed first)"
    for r in rows:
        tag = r["folder"].name
        yield f"gantt_round1_{tag}", _gantt(r["folder"], dest / f"gantt_round1_{tag}"), ""
        yield (f"delay_breakdown_{tag}", _breakdown(r["folder"], dest / f"delay_breakdown_{tag}", r["summary"]), "")
    scenario = _scenario(src)
    profile = _read_json(rows[0]["folder"] / "results.json")["profile"]["source"]
    world = _world(scenario, profile, progress)
    yield from _tradeoffs(world, dest)
    yield _doppler_from_runs(scenario, world, rows[0]["summary"], dest, doppler)


def _rounds_series(run: Path) -> dict:
    rounds = _read_csv(run / "rounds.csv")
    return {"time_s": [0.0] + [float(r["end_s"]) for r in rounds], "value": list(range(len(rounds) + 1))}


# ------------------------------------------------------------------------------------------- sweep directory

# The sweep folder's layout (fsllm_sim.jobs.sweeps.results): the names this reader depends on, in one place.
SWEEP_ROWS = ("results.json", "results.csv")  # one row per point, method and seed
SWEEP_SUMMARY = "summary.csv"  # one row per point and method: mean and 95 % t interval over the seeds
AXIS_PREFIX, OLD_AXIS_PREFIX = "axis:", "set:"  # axis:<field path> (sweep files), set:<field path> (old --set grids)
SUMMARY_TOTAL = ("total_s_mean", "total_s_ci95_low", "total_s_ci95_high")
CLOSED_FORM_COLUMN = "closed_form_round_s"  # a simulate row's closed-form round of the same allocation
ERROR_STATUS = "error"  # a run the scenario made impossible: no result, a note instead


def read_sweep_rows(src: Path) -> list[dict]:
    """The sweep's finished rows (error rows left out), one per point, method and seed, as ``{"axes": {field:
    value}, "method", "seed", "evaluator", "total_s", ...}`` with the other columns kept as they are.

    This is the one function that knows the rows' layout:
    - ``results.json`` (a list of rows) or ``results.csv`` of a sweep file: ``point``, ``axis:<field path>``...,
      ``method``, ``seed``, ``evaluator`` (analytic | simulate), ``status``, ``total_s``, ``round_time_s``,
      ``closed_form_round_s``, per-phase means, ...;
    - ``sweep.csv`` of an older ``--set`` grid: ``set:<field path>``..., ``total_s`` of ``sweep.json``'s method
      and ``equal_total_s`` of the equal-share baseline, one seed: two rows per point.
    """
    if any((src / name).is_file() for name in SWEEP_ROWS):
        raw = _read_json(src / SWEEP_ROWS[0]) if (src / SWEEP_ROWS[0]).is_file() else \
            [{k: cell(v) for k, v in r.items()} for r in _read_csv(src / SWEEP_ROWS[1])]
        if not isinstance(raw, list) or not all(isinstance(r, dict) for r in raw):
            raise ConfigError(f"plot: {str(src / SWEEP_ROWS[0])!r} is not a list of sweep rows")
        return [_sweep_row(r, AXIS_PREFIX) for r in raw if r.get("status") != ERROR_STATUS]
    method = _read_json(src / "sweep.json")["method"] if (src / "sweep.json").is_file() else "optimised"
    rows = []
    for r in ({k: cell(v) for k, v in row.items()} for row in _read_csv(src / "sweep.csv")):
        base = _sweep_row({**r, "method": method, "evaluator": "analytic"}, OLD_AXIS_PREFIX)
        rows += [base, {**base, "method": "equal-share", "total_s": float(r["equal_total_s"])}]
    return rows


def _sweep_row(r: dict, prefix: str) -> dict:
    axes = {k[len(prefix):]: v for k, v in r.items() if k.startswith(prefix)}
    for column in ("method", "evaluator", "total_s"):
        if r.get(column) is None:
            raise ConfigError(f"plot: a sweep row at {axes or 'the base point'} has no {column}")
    rest = {k: v for k, v in r.items() if not k.startswith(prefix)}
    return {**rest, "axes": axes, "point": r.get("point", _key(axes)), "method": str(r["method"]),
            "evaluator": str(r["evaluator"]), "total_s": float(r["total_s"])}


def _key(value) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def sweep_summary(src: Path, rows: list[dict]) -> list[dict]:
    """Mean and 95 % CI of the total delay per point and method, as ``{"axes", "point", "method", "evaluator",
    "mean", "low", "high"}``: read from the sweep's ``summary.csv`` when it has one, so the figure shows the
    sweep's own numbers; else computed from the rows (Student t over seeds; one seed gives no interval)."""
    if (src / SWEEP_SUMMARY).is_file() and any((src / name).is_file() for name in SWEEP_ROWS):
        out = []
        for r in ({k: cell(v) for k, v in row.items()} for row in _read_csv(src / SWEEP_SUMMARY)):
            if r.get(SUMMARY_TOTAL[0]) is None:
                continue  # every seed of this point and method failed
            base = _sweep_row({**r, "total_s": r[SUMMARY_TOTAL[0]]}, AXIS_PREFIX)
            out.append({"axes": base["axes"], "point": base["point"], "method": base["method"],
                        "evaluator": base["evaluator"], "mean": base["total_s"],
                        "low": _or_nan(r.get(SUMMARY_TOTAL[1])), "high": _or_nan(r.get(SUMMARY_TOTAL[2]))})
        return out
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((_key(r["axes"]), r["method"], r["evaluator"]), []).append(r)
    out = []
    for members in groups.values():
        mean, low, high = mean_ci95([m["total_s"] for m in members])
        first = members[0]
        out.append({"axes": first["axes"], "point": first["point"], "method": first["method"],
                    "evaluator": first["evaluator"], "mean": mean, "low": low, "high": high})
    return out


def _or_nan(value) -> float:
    return math.nan if value is None else float(value)


def _one_to_one(summary: list[dict], a: str, b: str) -> bool:
    """Whether the swept fields ``a`` and ``b`` determine each other (a zip group) over the summary rows."""
    pairs = {(_key(r["axes"][a]), _key(r["axes"][b])) for r in summary}
    return len(pairs) == len({x for x, _ in pairs}) == len({y for _, y in pairs})


def _independent_axes(summary: list[dict], axis: str) -> list[str]:
    """The other axes that take several values at one value of ``axis`` (a field zipped with ``axis`` moves with
    it and would split every line into single points, so it is not one)."""
    out = []
    for other in summary[0]["axes"]:
        if other == axis:
            continue
        seen: dict[str, set] = {}
        for r in summary:
            seen.setdefault(_key(r["axes"][axis]), set()).add(_key(r["axes"][other]))
        if any(len(v) > 1 for v in seen.values()):
            out.append(other)
    return out


def sweep_series(summary: list[dict], axis: str) -> tuple[dict, list | None]:
    """Lines of total delay against ``axis`` from :func:`sweep_summary` rows: one per method (and evaluator, and
    value of the other independent axes). Returns (series for ``delay_vs_axis_figure``, x tick labels, or None
    when the axis values are numbers)."""
    values = list(dict.fromkeys(_key(r["axes"][axis]) for r in summary))
    decoded = [json.loads(v) for v in values]
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in decoded)
    position = {v: (float(d) if numeric else float(i)) for i, (v, d) in enumerate(zip(values, decoded))}
    evaluators = {r["evaluator"] for r in summary}
    others = _independent_axes(summary, axis)
    series: dict[str, dict[str, list]] = {}
    for r in summary:
        label = ", ".join([r["method"]] + ([r["evaluator"]] if len(evaluators) > 1 else [])
                          + [f"{a}={_show(r['axes'][a])}" for a in others])
        line = series.setdefault(label, {"x": [], "mean": [], "low": [], "high": []})
        line["x"].append(position[_key(r["axes"][axis])])
        for k in ("mean", "low", "high"):
            line[k].append(r[k])
    return series, None if numeric else [_show(d) for d in decoded]


def _show(value) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def axis_meta(field: str) -> tuple[str, str]:
    """(name, unit) of a swept field: the unit from the scenario schema, or from the name's suffix when the
    schema does not declare the field."""
    from ..config.loader import field_spec
    from ..config.schema import Scenario

    try:
        unit = field_spec(Scenario, field).unit
    except KeyError:
        unit = next((u for suffix, u in SUFFIX_UNITS if field.endswith(suffix)), "")
    return AXIS_NAMES.get(field, field), unit


def _plot_sweep(src: Path, dest: Path, *, doppler, progress):
    from plots.sweep import delay_vs_axis_figure

    rows = read_sweep_rows(src)
    if not rows:
        raise ConfigError(f"plot: the sweep in {str(src)!r} has no finished rows yet")
    summary = sweep_summary(src, rows)
    drawn: list[str] = []
    for axis in rows[0]["axes"]:
        twin = next((a for a in drawn if _one_to_one(summary, a, axis)), None)
        if twin is not None:  # a zipped field moves with one already drawn: the same figure again
            yield f"delay_vs_{axis.replace('.', '_')}", [], f"not drawn: {axis} is zipped with {twin} (see its figure)"
            continue
        drawn.append(axis)
        series, ticks = sweep_series(summary, axis)
        name, unit = axis_meta(axis)
        stem = dest / f"delay_vs_{axis.replace('.', '_')}"
        means = [m for line in series.values() for m in line["mean"] if m > 0]
        # a delay that spans decades (e.g. against bandwidth) is read on a log axis; the ticks show it
        delay_vs_axis_figure(series, stem, x_name=name, x_unit=unit, x_ticklabels=ticks,
                             log_y=bool(means) and max(means) / min(means) > 30)
        yield stem.name, _saved(stem), ""
    yield _decision_cost_from_sweep(rows, summary, dest)
    if SPEED_FIELD in rows[0]["axes"]:
        yield _doppler_from_sweep(src, rows, dest)


def paired_costs(rows: list[dict], reference: str) -> dict[str, tuple[float, float, float]]:
    """{method: (mean, low, high)} of the per-seed relative cost total_m / total_reference - 1: the methods of
    one seed share its placement, devices and fading, so the ratio removes the spread between placements."""
    ref = {r["seed"]: r["total_s"] for r in rows if r["method"] == reference}
    ratios: dict[str, list[float]] = {}
    for r in rows:
        if r["seed"] in ref:
            ratios.setdefault(r["method"], []).append(r["total_s"] / ref[r["seed"]] - 1)
    return {m: mean_ci95(v) for m, v in ratios.items()}


def _decision_cost_from_sweep(rows: list[dict], summary: list[dict], dest: Path):
    """The cost-of-fixing bars of a sweep with one point (e.g. methods bcd, bcd/fixed-split, bcd/fixed-rank,
    equal...): mean total delay per method with its 95 % CI over seeds as error bars, labelled with the paired
    relative cost to the first method (mean ± 95 % half width over seeds)."""
    from plots.tradeoffs import decision_cost_figure

    if len({r["point"] for r in summary}) != 1:
        return "decision_cost", [], "skipped: the sweep has several points (drawn for a one-point sweep)"
    if len(summary) < 2:
        return "decision_cost", [], "skipped: the sweep compares one method only"
    reference = summary[0]["method"]
    costs = paired_costs(rows, reference)
    methods = [r["method"] for r in summary]
    rel = [costs.get(m, (math.nan,) * 3) for m in methods]
    decision_cost_figure(methods, [r["mean"] for r in summary], dest / "decision_cost", reference=reference,
                         low=[r["low"] for r in summary], high=[r["high"] for r in summary],
                         relative_pct=[100 * c[0] for c in rel],
                         relative_half_pct=[100 * (c[2] - c[0]) for c in rel], x_label="total training delay (s)")
    return "decision_cost", _saved(dest / "decision_cost"), f"relative to {reference} (listed first), paired by seed"


def _sweep_settings(src: Path, path: tuple[str, str]) -> set:
    """The values one field takes in the sweep's resolved scenarios (``configs/*.json``), e.g. which rates the
    objective of a simulate row's ``closed_form_round_s`` uses (solver.rates), or the carrier frequency."""
    values = set()
    for config in sorted((src / "configs").glob("*.json")) if (src / "configs").is_dir() else ():
        node = _read_json(config)
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, (str, int, float)) and not isinstance(node, bool):
            values.add(node)
    return values


def _doppler_from_sweep(src: Path, rows: list[dict], dest: Path):
    """The Doppler figure from a sweep over speed with the simulate evaluator: each row's simulated mean round
    against the closed-form round of the same allocation, mean and 95 % CI over seeds per method."""
    from plots.doppler import doppler_gap_figure

    sim = [r for r in rows if r["evaluator"] == "simulate" and r.get(CLOSED_FORM_COLUMN)]
    if not sim:
        return ("doppler_gap", [], f"skipped: the sweep over {SPEED_FIELD} has no simulate rows with "
                                   f"{CLOSED_FORM_COLUMN} (plot a run directory to simulate the speeds)")
    speeds = sorted({float(r["axes"][SPEED_FIELD]) for r in sim})
    rates = _sweep_settings(src, ("solver", "rates"))
    carriers = _sweep_settings(src, ("channel", "path_loss", "carrier_ghz"))
    vs = f"{next(iter(rates))} closed form" if len(rates) == 1 else "closed form"
    series = {}
    for method in dict.fromkeys(r["method"] for r in sim):
        stats = [mean_ci95([float(r["round_time_s"]) / float(r[CLOSED_FORM_COLUMN]) - 1 for r in sim
                            if r["method"] == method and float(r["axes"][SPEED_FIELD]) == v]) for v in speeds]
        series[f"{method} vs {vs}"] = {"mean_pct": [100 * m for m, _, _ in stats],
                                       "low_pct": [100 * lo for _, lo, _ in stats],
                                       "high_pct": [100 * hi for _, _, hi in stats]}
    carrier_hz = 1e9 * next(iter(carriers)) if len(carriers) == 1 else None  # Doppler axis: one carrier only
    doppler_gap_figure(speeds, series, dest / "doppler_gap", carrier_hz=carrier_hz, band_label="95 % CI over seeds")
    return "doppler_gap", _saved(dest / "doppler_gap"), ""
