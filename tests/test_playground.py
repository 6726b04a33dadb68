"""The playground's API without a browser: its numbers are the delay model's, the solver's and the engine's;
bad values get the loader's one-line message; the server listens on 127.0.0.1 and a port in use is one line."""

import socket
from pathlib import Path

import numpy as np
import pytest

import solvers
from fsllm_sim.config import load_scenario
from fsllm_sim.engine.allocation import equal_share
from fsllm_sim.engine.world import build_world
from fsllm_sim.errors import ConfigError
from fsllm_sim.jobs.playground.controls import CONTROLS, apply_controls, control_values
from fsllm_sim.jobs.playground.model import PHASES, WorldCache, evaluate, optimise, simulate
from fsllm_sim.jobs.playground.server import check_port_free, create_app

DEFAULT = Path(__file__).resolve().parents[1] / "scenarios" / "default.yaml"


@pytest.fixture(scope="module")
def base():
    return load_scenario(DEFAULT)


@pytest.fixture(scope="module")
def cache():
    return WorldCache()


def test_controls_round_trip_and_map_to_scenario_fields(base):
    values = control_values(base)
    assert set(values) == {c.name for c in CONTROLS}
    s = apply_controls(base, {"clients": 5, "power": 17, "rank": 4, "precision": "int8", "radius": 250})
    assert (s.clients.count, s.channel.power.client_max_dbm, s.lora.rank) == (5, 17.0, 4)
    assert s.training.activation_precision == "int8" and s.clients.layout.radius_m == 250.0


@pytest.mark.parametrize("values, fragment", [
    ({"power": 99}, "channel.power.client_max_dbm: 99 dBm is out of range"),
    ({"clients": 40}, "clients.count: 40 clients exceed channel.s_band.subchannels=32"),
    ({"rank": 3}, "lora.rank: 3 is not one of 1, 2, 4, 8, 16"),
    ({"nonsense": 1}, "controls: unknown nonsense"),
    ({"clients": "many"}, "clients.count: 'many' is not a number"),
])
def test_bad_values_are_one_line(base, cache, values, fragment):
    with pytest.raises(ConfigError) as err:
        evaluate(base, values, cache)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_student_numbers_are_the_closed_form(base, cache):
    values = {"clients": 6, "split": 4, "rank": 2, "power": 20}
    out = evaluate(base, values, cache)
    scenario = apply_controls(base, values)
    problem = build_world(scenario, profile_source="analytic", progress=False).problem
    ref = equal_share(problem, 4, 2).evaluate(problem)
    st = out["student"]
    assert st["total_s"] == pytest.approx(ref.objective_s, rel=1e-12)
    assert st["round_s"] == pytest.approx(ref.round_time_s, rel=1e-12)
    # the straggler's phases add up to the round
    assert sum(st["phases_s"][p] for p in PHASES) == pytest.approx(ref.round_time_s, rel=1e-9)
    # each curve point is the same rule at another rank or split; the student's point lies on both curves
    by_rank = {p["rank"]: p["total_s"] for p in out["against_rank"]}
    by_split = {p["split"]: p["total_s"] for p in out["against_split"]}
    assert by_rank[2] == pytest.approx(st["total_s"]) and by_split[4] == pytest.approx(st["total_s"])
    ref8 = equal_share(problem, 4, 8).evaluate(problem)
    assert by_rank[8] == pytest.approx(ref8.objective_s, rel=1e-12)
    # a client's Gantt bars end with its adapter upload; the federated server's at the end of the round
    bars = [b for b in out["gantt"] if b["client"] == 0]
    assert max(b["end_s"] for b in bars) == pytest.approx(ref.breakdown.client_round_s[0], rel=1e-9)
    assert max(b["end_s"] for b in out["gantt"]) == pytest.approx(ref.round_time_s, rel=1e-9)


def test_optimiser_is_bcd_and_never_worse_than_the_student(base, cache):
    values = {"clients": 6, "split": 12, "rank": 16}
    out = optimise(base, values, cache)
    scenario = apply_controls(base, values)
    problem = build_world(scenario, profile_source="analytic", progress=False).problem
    ref = solvers.solve(problem, "bcd")
    assert out["optimiser"]["total_s"] == pytest.approx(ref.objective_s, rel=1e-12)
    assert out["optimiser"]["total_s"] <= out["student"]["total_s"] + 1e-9
    assert any("total training delay" in line for line in out["explanation"])


def test_simulate_runs_the_engine(base, cache):
    out = simulate(base, {"clients": 4}, cache, rounds=2)
    assert len(out["rounds"]) == 2 and out["events"] > 0
    # fading on: the simulated round is near the closed form, not equal to it
    r = out["rounds"][0]
    assert r["duration_s"] == pytest.approx(r["closed_form_s"], rel=0.3)
    assert {b["phase"] for b in out["gantt"]} >= {"forward", "uplink", "server", "downlink", "backward"}
    closed = evaluate(base, {"clients": 4}, cache)["gantt"]  # the closed form's bars use the same phase names
    assert {b["phase"] for b in closed} <= {b["phase"] for b in out["gantt"]}


def test_http_api_and_errors(base):
    app = create_app(base)
    client = app.test_client()
    spec = client.get("/api/controls").get_json()
    split = next(c for c in spec["controls"] if c["name"] == "split")
    assert split["low"] == 1 and split["high"] == 29  # SmolLM2's 30 blocks
    ok = client.post("/api/evaluate", json={"values": {"split": 3}})
    assert ok.status_code == 200 and ok.get_json()["student"]["split"] == 3
    bad = client.post("/api/evaluate", json={"values": {"power": 99}})
    assert bad.status_code == 400 and "client_max_dbm" in bad.get_json()["error"]
    assert client.post("/api/simulate", json={"values": {}, "rounds": 99}).status_code == 400
    assert client.post("/api/evaluate", data="not json", content_type="application/json").status_code == 400
    assert client.get("/static/../server.py").status_code == 404
    js = client.get("/static/plotly.min.js")
    assert js.status_code == 200 and len(js.data) > 1_000_000  # bundled, no CDN


def test_port_in_use_is_one_line():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        with pytest.raises(ConfigError, match=f"--port {port}: already in use on 127.0.0.1"):
            check_port_free("127.0.0.1", port)
