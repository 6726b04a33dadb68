"""Running sweep files: the same rows on every backend, resuming a killed sweep, honest summaries.

* sequential and local-process runs give byte-identical results.csv and summary.csv (wall times live in
  timing.csv only);
* the per-phase columns add up: with one client the closed-form round is E x (compute + uplink + server +
  downlink) + adapter upload + aggregation and broadcast; without fading the simulated round equals it;
* a sweep killed half-way (SIGKILL of its process group) or interrupted resumes: every row exactly once,
  identical to an uninterrupted run, no finished run computed again, no temporary file left;
* a changed base scenario gives new keys: no stale row is reused;
* the summary is the mean and 95 % Student-t interval over seeds; a run the scenario makes impossible is an
  ``error`` row, counted as failed.
"""
import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml
from scipy import stats

from fsllm_sim.jobs.sweep import run_sweep_file
from fsllm_sim.jobs.sweeps import points
from fsllm_sim.rundir import run_status

from test_sweep import BASE

ROOT = Path(__file__).resolve().parents[1]
QUIET = {"progress": False, "echo": lambda *_: None}
SWEEP = {"base": "base.yaml", "axes": {"channel.s_band.subchannels": [4, 8]},
         "zip": {"clients.count": [1, 2], "devices.speed.sigma": [0.3, 0.6]},
         "methods": ["bcd", "equal-share"], "seeds": 2, "evaluator": "analytic", "profile": "analytic"}
ROW_COLUMNS = ["key", "point", "axis:channel.s_band.subchannels", "axis:clients.count", "axis:devices.speed.sigma",
               "method", "seed", "evaluator", "status", "split", "rank", "rounds", "round_time_s", "total_s",
               "closed_form_round_s", "client_compute_s", "uplink_s", "server_compute_s", "server_wait_s",
               "downlink_s", "adapter_upload_s", "aggregation_broadcast_s", "lower_bound_s", "gap_to_bound", "note"]


def make_sweep(folder: Path, name: str = "sweep.yaml", base=None, **changes) -> Path:
    (folder / "base.yaml").write_text(yaml.safe_dump(base or BASE))
    path = folder / name
    data = {k: v for k, v in {**SWEEP, **changes}.items() if v is not None}  # None: leave the field out
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def rows_of(out: Path) -> list[dict]:
    return list(csv.DictReader((out / "results.csv").open()))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted sequential run of SWEEP: the rows every other run must reproduce."""
    folder = tmp_path_factory.mktemp("reference")
    return run_sweep_file(str(make_sweep(folder)), out_dir=str(folder / "out"), workers=1, **QUIET)


def test_rows_have_the_documented_schema_and_no_wall_time(reference):
    rows = rows_of(reference)
    assert list(rows[0]) == ROW_COLUMNS and len(rows) == 2 * 2 * 2 * 2
    assert [(r["point"], r["method"], r["seed"]) for r in rows[:4]] == [
        ("0", "bcd", "1"), ("0", "bcd", "2"), ("0", "equal-share", "1"), ("0", "equal-share", "2")]
    as_json = json.loads((reference / "results.json").read_text())
    assert [list(r) for r in as_json] == [ROW_COLUMNS] * 16 and [r["key"] for r in as_json] == [r["key"] for r in rows]
    assert as_json[0]["axis:clients.count"] == 1 and as_json[0]["seed"] == 1 and as_json[0]["note"] == ""
    timing = list(csv.DictReader((reference / "timing.csv").open()))
    assert [t["key"] for t in timing] == [r["key"] for r in rows] and all(float(t["wall_s"]) > 0 for t in timing)
    assert run_status(reference) == "complete"
    for r in rows:  # a point's configuration is kept beside its row
        cfg = json.loads(next((reference / "configs").glob("*.json")).read_text())
        assert cfg["model"]["name"] == "tiny-llama"
        assert (reference / "points" / f"{r['key']}.json").is_file()


def test_local_processes_give_the_same_bytes_as_sequential(reference, tmp_path):
    out = run_sweep_file(str(make_sweep(tmp_path)), out_dir=str(tmp_path / "out"), workers=2, **QUIET)
    for name in ("results.csv", "results.json", "summary.csv", "summary.json"):
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name
    assert json.loads((out / "sweep.json").read_text())["backend"] == "local"


def test_the_phase_columns_add_up_to_the_round(tmp_path):
    """One client, no fading: the closed form's round is E x iteration + upload + aggregation and broadcast,
    and the engine's simulated round equals it (with the same phases)."""
    base = {**BASE, "clients": {"count": 1}, "channel": {**BASE["channel"], "fading": {"model": "none"}},
            "simulation": {"rounds": 2}, "training": {"local_iterations": 3}}
    rows = {}
    for evaluator in ("analytic", "simulate"):
        path = make_sweep(tmp_path, f"{evaluator}.yaml", base=base, axes={"channel.s_band.subchannels": [4, 8]},
                          zip=None, evaluator=evaluator, seeds=1)
        rows[evaluator] = rows_of(run_sweep_file(str(path), out_dir=str(tmp_path / evaluator), workers=1, **QUIET))
    phases = ["client_compute_s", "uplink_s", "server_compute_s", "server_wait_s", "downlink_s"]
    for a, s in zip(rows["analytic"], rows["simulate"]):
        f = {k: float(v) for k, v in a.items() if k in phases + ["adapter_upload_s", "aggregation_broadcast_s",
                                                                 "round_time_s"]}
        by_phase = 3 * sum(f[p] for p in phases) + f["adapter_upload_s"] + f["aggregation_broadcast_s"]
        assert by_phase == pytest.approx(f["round_time_s"], rel=1e-12)
        assert float(s["round_time_s"]) == pytest.approx(f["round_time_s"], rel=1e-9)
        assert float(s["closed_form_round_s"]) == pytest.approx(f["round_time_s"], rel=1e-12)
        for p in phases + ["adapter_upload_s", "aggregation_broadcast_s"]:
            assert float(s[p]) == pytest.approx(f[p], rel=1e-9, abs=1e-15), p
        assert float(s["total_s"]) == pytest.approx(float(a["total_s"]), rel=1e-9)


def test_an_interrupted_sweep_resumes_without_running_anything_twice(reference, tmp_path, monkeypatch):
    path = make_sweep(tmp_path)
    calls = []
    real = points.EVALUATE["analytic"]

    def interrupted_after_5(run):
        if len(calls) == 5:
            raise KeyboardInterrupt
        calls.append(run.key)
        return real(run)

    monkeypatch.setitem(points.EVALUATE, "analytic", interrupted_after_5)
    with pytest.raises(KeyboardInterrupt):
        run_sweep_file(str(path), out_dir=str(tmp_path / "out"), workers=1, **QUIET)
    assert run_status(tmp_path / "out") != "complete" and len(rows_of(tmp_path / "out")) == 5
    first = list(calls)
    calls.clear()
    monkeypatch.setitem(points.EVALUATE, "analytic", lambda run: (calls.append(run.key), real(run))[1])
    messages = []
    out = run_sweep_file(str(path), out_dir=str(tmp_path / "out"), workers=1, progress=False, echo=messages.append)
    assert "resumed: 5 of 16 runs were already done" in messages
    assert len(calls) == 11 and not set(calls) & set(first)
    assert (out / "results.csv").read_bytes() == (reference / "results.csv").read_bytes()
    assert run_status(out) == "complete"


KILLED = textwrap.dedent("""
    import sys, time
    from fsllm_sim.jobs.sweeps import points
    fast = points.EVALUATE["analytic"]
    def slow(run):  # slow enough that the kill lands half-way; the rows do not change
        time.sleep(0.2)
        return fast(run)
    points.EVALUATE["analytic"] = slow  # forked workers inherit it
    from fsllm_sim.cli import main
    sys.exit(main(["sweep", sys.argv[1], "--out", sys.argv[2], "--workers", "2", "--no-progress"]))
""")


def test_a_killed_sweep_resumes_with_every_row_exactly_once(reference, tmp_path):
    path = make_sweep(tmp_path)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-c", KILLED, str(path), str(out)], cwd=ROOT, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(list((out / "points").glob("*.json"))) < 4 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its worker processes, all at once
    proc.wait()
    done = len(list((out / "points").glob("*.json")))
    assert 4 <= done < 16, done
    assert run_status(out) == "interrupted"
    messages = []
    run_sweep_file(str(path), out_dir=str(out), workers=2, progress=False, echo=messages.append)
    assert f"resumed: {done} of 16 runs were already done" in messages
    rows = rows_of(out)
    assert sorted(r["key"] for r in rows) == sorted({r["key"] for r in rows}) and len(rows) == 16
    assert (out / "results.csv").read_bytes() == (reference / "results.csv").read_bytes()
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name]


def test_a_changed_base_scenario_never_reuses_stale_rows(reference, tmp_path):
    path = make_sweep(tmp_path)
    out = run_sweep_file(str(path), out_dir=str(tmp_path / "out"), workers=1, **QUIET)
    (tmp_path / "base.yaml").write_text(yaml.safe_dump({**BASE, "server": {"flops_per_s": 1e12}}))
    messages = []
    run_sweep_file(str(path), out_dir=str(out), workers=1, progress=False, echo=messages.append)
    assert not any(m.startswith("resumed") for m in messages)
    new, old = rows_of(out), rows_of(reference)
    assert len(new) == 16 and not {r["key"] for r in new} & {r["key"] for r in old}
    assert all(float(n["server_compute_s"]) > float(o["server_compute_s"]) for n, o in zip(new, old))


def test_the_summary_is_the_mean_and_t_interval_over_seeds(reference):
    rows, summary = rows_of(reference), list(csv.DictReader((reference / "summary.csv").open()))
    assert len(summary) == 4 * 2 and summary[0]["seeds"] == "2" and summary[0]["failed"] == "0"
    for s in summary:
        totals = [float(r["total_s"]) for r in rows if (r["point"], r["method"]) == (s["point"], s["method"])]
        mean = sum(totals) / 2
        half = stats.t.ppf(0.975, 1) * stats.tstd(totals) / 2 ** 0.5
        assert float(s["total_s_mean"]) == pytest.approx(mean, rel=1e-12)
        assert float(s["total_s_ci95_low"]) == pytest.approx(mean - half, rel=1e-9)
        assert float(s["total_s_ci95_high"]) == pytest.approx(mean + half, rel=1e-9)
    assert list(summary[0])[:8] == ["point", "axis:channel.s_band.subchannels", "axis:clients.count",
                                    "axis:devices.speed.sigma", "method", "evaluator", "seeds", "failed"]


def test_an_impossible_point_is_an_error_row_not_a_crash(tmp_path):
    path = make_sweep(tmp_path, axes={"devices.memory_bytes": [1, 4_000_000_000]}, zip=None, seeds=1)
    out = run_sweep_file(str(path), out_dir=str(tmp_path / "out"), workers=1, **QUIET)
    rows = rows_of(out)
    assert [r["status"] for r in rows][:2] == ["error", "error"] and rows[0]["total_s"] == ""
    assert "no (split, rank) pair is allowed" in rows[0]["note"] and rows[2]["status"] != "error"
    summary = list(csv.DictReader((out / "summary.csv").open()))
    assert (summary[0]["seeds"], summary[0]["failed"], summary[0]["total_s_mean"]) == ("0", "1", "")


WORKER_DIES = textwrap.dedent("""
    import os, signal, sys
    from fsllm_sim.jobs.sweeps import points
    fast = points.EVALUATE["analytic"]
    def dies(run):  # as if the system killed the worker (out of memory) at the sixth run
        if run.index == 5:
            os.kill(os.getpid(), signal.SIGKILL)
        return fast(run)
    points.EVALUATE["analytic"] = dies  # forked workers inherit it
    from fsllm_sim.cli import main
    sys.exit(main(["sweep", sys.argv[1], "--out", sys.argv[2], "--workers", "2", "--no-progress"]))
""")


def test_a_worker_killed_by_the_system_is_one_line_and_the_rerun_completes(reference, tmp_path):
    path, out = make_sweep(tmp_path), tmp_path / "out"
    result = subprocess.run([sys.executable, "-c", WORKER_DIES, str(path), str(out)], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: sweep: a worker process died (killed by the system, e.g. out of memory)")
    assert run_status(out) != "complete"
    run_sweep_file(str(path), out_dir=str(out), workers=2, **QUIET)
    assert (out / "results.csv").read_bytes() == (reference / "results.csv").read_bytes()
