"""Writes the golden outputs of tests/engine/test_static_world_golden.py.

They were made at commit 89c720b, before the changing network (mobility, availability, round policies,
outage, downlink fading) existed: a scenario that leaves every one of those at its default must still
write these bytes. The cases with fading were re-recorded once, when the compiled fading kernel changed the
order of the draws (CHANGELOG.md, "The fading kernel"). Run from the repository root:
``python tests/engine/golden/make_golden.py``; never regenerate them to make a failing test pass.
"""
from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from engine_helpers import make_scenario, write_corpus  # noqa: E402

from fsllm_sim.engine import simulate  # noqa: E402
from fsllm_sim.engine.trace import CHANNEL_COLUMNS, ROW_COLUMNS, TRACE_COLUMNS, csv_text  # noqa: E402

CASES = {
    "sfl_fading_ps": dict(server={"discipline": "processor-sharing"}, simulation={"rounds": 3}),
    "sfl_static_fifo": dict(channel={"fading": {"model": "none"}}, server={"discipline": "fifo", "workers": 2}),
    "sfl_online": dict(simulation={"policy": "online", "allocation": "bcd", "rounds": 2}),
    "sl_fading": dict(protocol="sl"),
    "fl_fading": dict(protocol="fl", split={"layer": 2}),
    "sfl_real_v2": dict(simulation={"rounds": 2, "training": "real"}, training={"server_mode": "v2"},
                        server={"discipline": "fifo", "flops_per_s": 2e9}, devices={"speed": {"sigma": 1.2}}),
}
ROUND_COLUMNS = ("round", "start_s", "end_s", "duration_s", "straggler", "analytic_round_s")
# columns added since, left out of the comparison and checked on their own (energy, docs/energy.md)
NEW_TRACE_COLUMNS = ("energy_j",)
NEW_ROUND_COLUMNS = ("energy_j", "worst_client_energy_j")


def written(name: str, corpus: str) -> dict[str, str]:
    """trace.csv and channel.csv as a run writes them today (trace.csv with its energy_j), and rounds.csv's
    columns of then followed by the energy columns added since."""
    case = dict(CASES[name])
    if case.get("simulation", {}).get("training") == "real":
        case["data"] = {"source": corpus, "partition": "iid"}
    res = simulate(make_scenario(**case), profile_source="analytic", channel_log="full")
    columns = ROUND_COLUMNS + (("train_loss", "val_loss") if res.real else ()) + NEW_ROUND_COLUMNS
    rounds = [[r[c] for c in columns] for r in res.round_rows()]
    return {"trace": csv_text(TRACE_COLUMNS, res.trace_table()),
            "channel": csv_text(CHANNEL_COLUMNS, res.channel_rows()),
            "rounds": csv_text(columns, rounds)}


def without_last_columns(text: str, n: int) -> str:
    """A CSV text without its last ``n`` columns (numbers and names only: no quoted commas)."""
    return "".join(line.rsplit(",", n)[0] + "\n" for line in text.splitlines())


def outputs(name: str, corpus: str) -> dict[str, str]:
    """The files of commit 89c720b: what :func:`written` gives, less the columns added since."""
    out = written(name, corpus)
    assert tuple(out["trace"].split("\n", 1)[0].split(",")) == ROW_COLUMNS + NEW_TRACE_COLUMNS
    return {"trace": without_last_columns(out["trace"], len(NEW_TRACE_COLUMNS)), "channel": out["channel"],
            "rounds": without_last_columns(out["rounds"], len(NEW_ROUND_COLUMNS))}


if __name__ == "__main__":
    import tempfile

    corpus = write_corpus(Path(tempfile.mkdtemp()) / "corpus")
    for case in CASES:
        for kind, text in outputs(case, corpus).items():
            (HERE / f"{case}.{kind}.csv").write_text(text)
        print(case, "written")
