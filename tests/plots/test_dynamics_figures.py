"""Figures of a changing world: the Gantt chart draws drops, aborts and cancellations as marks and stalls as
bars; the participation figure draws what rounds.csv says; the layout draws trajectories."""
import numpy as np

from plots import plot_layout, plot_participation, plot_round_gantt


def test_gantt_draws_marks_and_stalls(tmp_path):
    rows = [
        dict(round=1, client=0, phase="forward", start_s=0.0, end_s=1.0),
        dict(round=1, client=0, phase="uplink", start_s=1.0, end_s=3.0),
        dict(round=1, client=0, phase="stall", start_s=1.5, end_s=2.0),
        dict(round=1, client=1, phase="forward", start_s=0.0, end_s=0.5),
        dict(round=1, client=1, phase="uplink", start_s=0.5, end_s=0.8),
        dict(round=1, client=1, phase="abort", start_s=0.8, end_s=0.8),
        dict(round=1, client=1, phase="drop", start_s=0.8, end_s=0.8),
        dict(round=1, client=2, phase="forward", start_s=0.0, end_s=2.5),
        dict(round=1, client=2, phase="cancel", start_s=2.5, end_s=2.5),
        dict(round=1, client=-1, phase="aggregation", start_s=3.0, end_s=3.1),
    ]
    drawn = plot_round_gantt(rows, 1, tmp_path / "g.png")
    assert (tmp_path / "g.png").stat().st_size > 0
    assert drawn["bars"]["stall"] == [(0, 1.5, 0.5)]
    assert drawn["marks"] == {"abort": [(1, 0.8)], "drop": [(1, 0.8)], "cancel": [(2, 2.5)]}


def test_participation_and_trajectories(tmp_path):
    rounds = [dict(round=1, attempt=1, selected=5, participants=3, dropped=1, cancelled=1, deadline_hit=True),
              dict(round=2, attempt=1, selected=4, participants=0, dropped=0, cancelled=4, deadline_hit=True),
              dict(round=2, attempt=2, selected=5, participants=5, dropped=0, cancelled=0, deadline_hit=False)]
    drawn = plot_participation(rounds, tmp_path / "p.png")
    assert drawn["aggregated"].tolist() == [3, 0, 5] and drawn["deadline_hit"].tolist() == [True, True, False]
    assert (tmp_path / "p.png").stat().st_size > 0
    pos = np.array([[100.0, 0.0], [0.0, 150.0]])
    plot_layout(pos, [True, False], [10.0, 5.0], 300.0, tmp_path / "l.png",
                trajectories={0: ([100.0, 120.0, 130.0], [0.0, 10.0, 30.0])})
    assert (tmp_path / "l.png").stat().st_size > 0
