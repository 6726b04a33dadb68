"""`fsllm-sim compare`: one scenario and its seeds simulated under several allocations."""
import csv
import json

import yaml

from fsllm_sim.cli import main

from engine_helpers import BASE, merge


def test_compare_simulates_each_allocation_on_the_same_world(tmp_path, capsys):
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(merge(BASE, {"simulation": {"rounds": 3}})))
    assert main(["compare", str(f), "--methods", "bcd,equal,random,equal-share", "--runs-dir", str(tmp_path / "r"),
                 "--no-progress", "--profile", "analytic"]) == 0
    out = capsys.readouterr().out
    assert "time for 3 rounds s" in out
    run = next((tmp_path / "r").iterdir())
    rows = list(csv.DictReader((run / "compare.csv").open()))
    assert [r["allocation"] for r in rows] == ["bcd", "equal", "random", "equal-share"]
    assert (run / "rounds_vs_time.png").is_file()
    clients = {m: (run / m / "clients.csv").read_text() for m in ("bcd", "equal", "random")}
    distances = {m: [r["distance_m"] for r in csv.DictReader(t.splitlines())] for m, t in clients.items()}
    assert distances["bcd"] == distances["equal"] == distances["random"]  # same placement, same seeds
    # the optimiser's choice is the best of them in the closed form it optimises
    totals = {m: json.loads((run / m / "results.json").read_text())["summary"]["analytic_time_to_target_s"]
              for m in ("bcd", "equal", "random")}
    assert totals["bcd"] <= min(totals["equal"], totals["random"]) * (1 + 1e-9)
    assert float(rows[0]["vs_first"]) == 1.0 and all(float(r["mean_round_s"]) > 0 for r in rows)
    # energy beside the delay: each run's clients' total and its worst client, as its results.json says
    assert "energy J" in out and "worst client J" in out
    for r in rows:
        energy = json.loads((run / r["allocation"] / "results.json").read_text())["energy"]
        assert float(r["energy_j"]) == energy["total_j"] > 0
        assert float(r["worst_client_energy_j"]) == energy["worst_client_j"] <= energy["total_j"]


def test_compare_rejects_a_repeated_or_empty_method_list(tmp_path, capsys):
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(BASE))
    for methods, expected in (("bcd,bcd", "names an allocation twice"), (",", "at least one allocation"),
                              ("bcd,nonsense", "no such file")):
        assert main(["compare", str(f), "--methods", methods, "--runs-dir", str(tmp_path / "r"), "--no-progress",
                     "--profile", "analytic"]) == 2
        err = capsys.readouterr().err
        assert expected in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()
