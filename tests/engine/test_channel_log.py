"""The channel log (simulation.channel_log): the summary is what the full log says per transfer, logging does
not change the simulation, a cut transfer's bits do not depend on what is logged, and the per-block Parquet
file holds every segment the radio recorded, written in row groups and atomically."""
import csv

import numpy as np
import pytest
import yaml

from fsllm_sim.cli import main
from fsllm_sim.engine import simulate
from fsllm_sim.engine.channel_log import read_blocks, summary_from_blocks, write_blocks_parquet

from engine_helpers import BASE, make_scenario

DROPPING = {"round": {"policy": "over-selection", "clients_per_round": 2, "over_selection": 1.5},
            "devices": {"speed": {"sigma": 1.0}}, "simulation": {"rounds": 3}}


@pytest.mark.parametrize("override", [{"channel": {"fading": {"block_s": 0.001}}}, DROPPING,
                                      {"radio": {"outage_rate_bps": 3.7e6}, "channel": {"fading": {"block_s": 0.001}}}],
                         ids=["fading", "over-selection", "outage"])
def test_the_summary_is_the_full_log_per_transfer_and_logging_changes_no_event(override):
    scenario = make_scenario(**override)
    summary = simulate(scenario, profile_source="analytic")
    full = simulate(scenario, profile_source="analytic", channel_log="full")
    assert summary.trace.rows == full.trace.rows and summary.events == full.events
    rows, derived = summary.channel_summary(), summary_from_blocks(full.radio_rows)
    assert len(rows) == len(derived) > 0
    assert [r[:4] for r in rows] == [r[:4] for r in derived]  # client, band, start and end exactly
    np.testing.assert_allclose(np.array([r[4:] for r in rows]), np.array([r[4:] for r in derived]), rtol=1e-9)
    assert summary.radio_rows == []  # the summary run kept no segment arrays
    with pytest.raises(Exception, match="channel_log: full"):
        summary.channel_rows()


def test_a_cut_transfer_carries_the_same_bits_whether_or_not_the_channel_is_logged():
    """A drop or a cancellation needs the bits sent by then, so the radio keeps a cuttable transfer's segments
    even with record_channel off."""
    logged = simulate(make_scenario(**DROPPING), profile_source="analytic")
    silent = simulate(make_scenario(**dict(DROPPING, simulation={"rounds": 3, "record_channel": False})),
                      profile_source="analytic")
    aborts = [r for r in logged.trace.rows if r[3] == "abort"]
    assert aborts and all(r[6] > 0 for r in aborts)
    assert silent.trace.rows == logged.trace.rows
    assert silent.channel_summary() == []


def test_the_parquet_file_holds_every_segment_in_row_groups(tmp_path):
    import pyarrow.parquet as pq

    res = simulate(make_scenario(channel={"fading": {"block_s": 0.001}}), profile_source="analytic",
                   channel_log="full")
    path = tmp_path / "blocks.parquet"
    n = write_blocks_parquet(path, res.radio_rows, row_group_rows=10)
    expected = res.channel_rows()
    assert n == len(expected) > 60
    assert read_blocks(path) == expected
    assert pq.ParquetFile(path).metadata.num_row_groups >= n // 10 // 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocks.parquet"]  # no temporary file left


def test_a_run_writes_the_summary_by_default_and_the_blocks_on_request(tmp_path):
    runs = {}
    for log in ("summary", "full"):
        f = tmp_path / f"{log}.yaml"
        f.write_text(yaml.safe_dump(dict(BASE, simulation={"rounds": 1, "training": "analytic",
                                                            **({"channel_log": log} if log == "full" else {})})))
        assert main(["run", str(f), "--runs-dir", str(tmp_path / log), "--no-progress", "--profile", "analytic"]) == 0
        runs[log] = next((tmp_path / log).iterdir())
    assert not (runs["summary"] / "channel_blocks.parquet").exists()
    read = {log: list(csv.reader((run / "channel.csv").open())) for log, run in runs.items()}
    assert [r[:4] for r in read["summary"]] == [r[:4] for r in read["full"]]  # the same transfers either way
    header = next(csv.reader((runs["summary"] / "channel.csv").open()))
    assert header == ["client", "band", "start_s", "end_s", "bits", "mean_rate_bps"]
    blocks = read_blocks(runs["full"] / "channel_blocks.parquet")
    transfers = list(csv.DictReader((runs["full"] / "channel.csv").open()))
    assert len(blocks) > len(transfers) > 0


def test_a_bad_channel_log_is_one_line(tmp_path, capsys):
    f = tmp_path / "bad.yaml"
    f.write_text(yaml.safe_dump(dict(BASE, simulation={"channel_log": "everything"})))
    assert main(["validate", str(f)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "simulation.channel_log" in err[0] and "summary" in err[0] and "full" in err[0]
