"""Figures: the round Gantt chart and loss curve draw exactly the data given, and files are written atomically.

The plotting functions return what they drew, so the checks compare data, not pixels; the PNG checks only
make sure a real image was written and no temporary file was left behind.
"""
from __future__ import annotations

import csv
import stat

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from plots import plot_loss_vs_time, plot_round_gantt, save_figure  # noqa: E402
from plots.gantt import PHASE_CATEGORY  # noqa: E402

PNG_MAGIC = b"\x89PNG"
N_CLIENTS = 2
N_ITERATIONS = 2


def _row(round_index, iteration, client, phase, start_s, end_s, bits=0.0, flops=0.0):
    return {"round": round_index, "iteration": iteration, "client": client, "phase": phase,
            "start_s": start_s, "end_s": end_s, "bits": bits, "flops": flops}


def synthetic_trace(round_start_s: dict[int, float]) -> list[dict]:
    """Two clients, two local iterations, every phase, for each round in ``round_start_s``.

    Client 1 is slower and queues behind client 0 at the main server; client 0's first queue wait is zero
    length (it must be skipped, not drawn).
    """
    rows = []
    for rnd, t0 in round_start_s.items():
        ready_s = {0: t0, 1: t0}
        server_free_s = t0
        for it in range(N_ITERATIONS):
            for k in range(N_CLIENTS):
                t = ready_s[k]
                fwd, up, srv, down, bwd = 0.10 * (k + 1), 0.20 * (k + 1), 0.50, 0.15, 0.12 * (k + 1)
                rows.append(_row(rnd, it, k, "forward", t, t + fwd, flops=1e9))
                t += fwd
                rows.append(_row(rnd, it, k, "uplink", t, t + up, bits=8e6))
                t += up
                wait_end = max(t, server_free_s)
                rows.append(_row(rnd, it, k, "server_wait", t, wait_end))
                rows.append(_row(rnd, it, k, "server", wait_end, wait_end + srv, flops=5e9))
                server_free_s = t = wait_end + srv
                rows.append(_row(rnd, it, k, "downlink", t, t + down, bits=8e6))
                t += down
                rows.append(_row(rnd, it, k, "backward", t, t + bwd, flops=2e9))
                ready_s[k] = t + bwd
        for k in range(N_CLIENTS):
            rows.append(_row(rnd, -1, k, "adapter_upload", ready_s[k], ready_s[k] + 0.3 * (k + 1), bits=4e6))
        agg_start_s = max(r["end_s"] for r in rows if r["round"] == rnd)
        rows.append(_row(rnd, -1, -1, "aggregation", agg_start_s, agg_start_s + 0.02, flops=1e6))
        rows.append(_row(rnd, -1, -1, "broadcast", agg_start_s + 0.02, agg_start_s + 0.27, bits=4e6))
    return rows


def expected_bars(rows, round_index):
    """The trace's rows of one round as {category: sorted [(client, start_rel_s, duration_s)]}."""
    mine = [r for r in rows if int(r["round"]) == round_index]
    t0 = min(float(r["start_s"]) for r in mine)
    out: dict[str, list] = {}
    for r in mine:
        start_s, end_s = float(r["start_s"]), float(r["end_s"])
        if end_s > start_s:
            out.setdefault(PHASE_CATEGORY[r["phase"]], []).append((int(r["client"]), start_s - t0, end_s - start_s))
    return {cat: sorted(v) for cat, v in out.items()}


def assert_bars_equal(got, want):
    assert set(got) == set(want)
    for cat in want:
        got_sorted = sorted(got[cat])
        assert len(got_sorted) == len(want[cat]), cat
        for (gk, gs, gd), (wk, ws, wd) in zip(got_sorted, want[cat]):
            assert gk == wk
            assert gs == pytest.approx(ws, abs=1e-12)
            assert gd == pytest.approx(wd, abs=1e-12)


def no_temp_files(folder):
    return not [p for p in folder.iterdir() if p.name.startswith(".") or p.name.endswith(".tmp")]


def test_gantt_draws_exactly_round_2(tmp_path):
    rows = synthetic_trace({1: 0.0, 2: 10.0})
    path = tmp_path / "gantt_round2.png"
    drawn = plot_round_gantt(rows, 2, path, title="test")

    assert path.read_bytes().startswith(PNG_MAGIC)
    assert no_temp_files(tmp_path)

    round2 = [r for r in rows if r["round"] == 2]
    assert drawn["round_start_s"] == pytest.approx(10.0)
    assert drawn["round_end_s"] == pytest.approx(max(r["end_s"] for r in round2))
    round_len_s = drawn["round_end_s"] - drawn["round_start_s"]

    bars = dict(drawn["bars"])
    idle = bars.pop("idle")
    assert sorted(idle) == [(k, 0.0, pytest.approx(round_len_s)) for k in range(N_CLIENTS)]
    assert_bars_equal(bars, expected_bars(rows, 2))
    # Every phase shows up (but split learning's adapter hand-off and outage stalls, absent in this sfl trace of a
    # static world), FS phases on the FS row (client -1).
    assert set(bars) == set(PHASE_CATEGORY.values()) - {"adapter download", "stall"}
    assert {k for k, _, _ in bars["aggregation"] + bars["broadcast"]} == {-1}
    # The zero-length queue wait of client 0's first iteration is not drawn.
    n_zero = sum(1 for r in round2 if r["end_s"] == r["start_s"])
    assert n_zero >= 1
    assert sum(len(v) for v in bars.values()) == len(round2) - n_zero

    # Nothing of round 1: all bars lie inside the round-2 window (round 1 ended well before t = 10 s).
    round1_end_s = max(r["end_s"] for r in rows if r["round"] == 1)
    assert round1_end_s < drawn["round_start_s"]
    for spans in drawn["bars"].values():
        for _, start_rel_s, dur_s in spans:
            assert start_rel_s >= 0.0
            assert start_rel_s + dur_s <= round_len_s + 1e-12


def test_gantt_accepts_rows_read_back_from_csv(tmp_path):
    rows = synthetic_trace({1: 0.0, 2: 10.0})
    csv_path = tmp_path / "trace.csv"
    with csv_path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with csv_path.open(newline="") as fh:
        str_rows = list(csv.DictReader(fh))
    assert isinstance(str_rows[0]["round"], str)

    drawn = plot_round_gantt(str_rows, 2, tmp_path / "g.pdf")
    bars = dict(drawn["bars"])
    bars.pop("idle")
    assert_bars_equal(bars, expected_bars(rows, 2))
    assert (tmp_path / "g.pdf").read_bytes().startswith(b"%PDF")


def test_gantt_missing_round_raises(tmp_path):
    rows = synthetic_trace({1: 0.0})
    with pytest.raises(ValueError, match="round 3") as info:
        plot_round_gantt(rows, 3, tmp_path / "g.png")
    assert "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_loss_vs_time_draws_the_series(tmp_path):
    series = {
        "optimised": {"time_s": [0.0, 12.5, 25.0, 37.5], "value": [3.2, 2.6, 2.3, 2.1]},
        "equal share": {"time_s": [0, 20, 40], "value": ["3.2", "2.7", "2.4"]},
    }
    path = tmp_path / "loss.png"
    drawn = plot_loss_vs_time(series, path, target=2.5, title="test")

    assert path.read_bytes().startswith(PNG_MAGIC)
    assert no_temp_files(tmp_path)
    assert list(drawn) == list(series)
    for label, data in series.items():
        times_s, values = drawn[label]
        assert times_s == [float(t) for t in data["time_s"]]
        assert values == [float(v) for v in data["value"]]


@pytest.mark.parametrize("bad", [
    {"a": {"time_s": [0.0, 1.0], "value": [1.0]}},
    {"a": {"time_s": [], "value": []}},
    {},
])
def test_loss_vs_time_rejects_bad_series(tmp_path, bad):
    with pytest.raises(ValueError) as info:
        plot_loss_vs_time(bad, tmp_path / "loss.png")
    assert "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


def _small_figure():
    fig, ax = plt.subplots(figsize=(2, 2), dpi=50)
    ax.plot([0, 1], [0, 1])
    return fig


def test_save_figure_writes_readable_file(tmp_path):
    path = tmp_path / "fig.png"
    fig = _small_figure()
    assert save_figure(fig, path) == path
    assert path.read_bytes().startswith(PNG_MAGIC)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert no_temp_files(tmp_path)
    assert not plt.fignum_exists(fig.number)


def test_save_figure_failure_keeps_previous_file(tmp_path):
    path = tmp_path / "fig.xyz"
    previous = b"previous good figure"
    path.write_bytes(previous)
    fig = _small_figure()
    with pytest.raises(ValueError):
        save_figure(fig, path)
    assert path.read_bytes() == previous
    assert [p.name for p in tmp_path.iterdir()] == ["fig.xyz"]
    assert not plt.fignum_exists(fig.number)


def test_save_figure_replaces_previous_file(tmp_path):
    path = tmp_path / "fig.png"
    path.write_bytes(b"old")
    save_figure(_small_figure(), path)
    assert path.read_bytes().startswith(PNG_MAGIC)
    assert [p.name for p in tmp_path.iterdir()] == ["fig.png"]


def test_a_thousand_clients_give_page_sized_figures_with_every_bar(tmp_path):
    """At K = 1000 the Gantt chart and the delay breakdown keep a page's size (rows and bars share it), the
    chart holds one collection per category with every client's bars, and the PNGs stay small."""
    from plots.delay_breakdown import breakdown_figure
    from plots.gantt import gantt_figure

    k = 1000
    rows = []
    for c in range(k):
        rows.append(_row(1, 0, c, "forward", 0.0, 0.01 * (1 + c % 7)))
        rows.append(_row(1, 0, c, "uplink", 0.01 * (1 + c % 7), 0.1 + 0.001 * c, bits=8e6))
    rows.append(_row(1, -1, -1, "aggregation", 1.1, 1.2, flops=1e6))
    fig = gantt_figure(rows, 1, tmp_path / "gantt")
    width_in, height_in = fig.get_size_inches()
    assert height_in <= 1.3 + 0.2 * 48 + 1e-9
    ax = fig.axes[0]
    per_category = [c for c in ax.collections if c.get_label() in ("idle", "compute", "uplink",
                                                                   "aggregation")]
    assert len(per_category) == 4
    assert sum(len(c.get_paths()) for c in per_category) == k + 2 * k + 1  # idle rows, the bars, the FS
    assert len(ax.get_yticklabels()) <= 66 and ax.get_yticklabels()[-1].get_text() == "FS"
    assert (tmp_path / "gantt.png").stat().st_size < 2_000_000
    fig = breakdown_figure({"client compute": [0.1] * k, "uplink (activations)": [0.2] * k}, tmp_path / "bd")
    assert fig.get_size_inches()[0] <= 0.25 * 48 + 1.5 + 1e-9
    steps = {p.get_label(): p.get_data() for p in fig.axes[0].patches if hasattr(p, "get_data")}
    assert set(steps) == {"client compute", "uplink (activations)"}
    assert np.allclose(steps["uplink (activations)"].values, 0.3) and np.allclose(steps["uplink (activations)"].baseline, 0.1)
    assert len(steps["client compute"].edges) == k + 1
