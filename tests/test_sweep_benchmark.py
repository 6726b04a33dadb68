"""The sweep benchmark's measurement on a tiny sweep: both sides timed, CPU accounted, the same rows."""
import yaml

from fsllm_sim.benchmarks.sweep import local_vs_sequential, write_sweep_file

from test_sweep import BASE


def test_local_vs_sequential_measures_both_sides_on_the_same_rows(tmp_path):
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(BASE))
    path = write_sweep_file(tmp_path, {"channel.s_band.subchannels": [4, 8], "clients.count": [1, 2]},
                            methods=("bcd", "equal"), base=tmp_path / "base.yaml")
    res = local_vs_sequential(path, tmp_path, repeats=1)
    assert res["speedup"] > 0 and len(res["all"]["sequential"]) == len(res["all"]["local"]) == 1
    assert res["cpu_ratio"] > 0 and res["sequential_cores"] > 0
    seq, loc = (tmp_path / "sequential0" / "results.csv"), (tmp_path / "local0" / "results.csv")
    assert seq.read_bytes() == loc.read_bytes() and seq.read_text().count("\n") == 1 + 8
