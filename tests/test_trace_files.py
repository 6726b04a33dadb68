"""The mobility and availability trace CSVs: read exactly when good, one line naming file, line and field
when not."""
import numpy as np
import pytest

from fsllm_sim.errors import ConfigError
from fsllm_sim.trace_files import read_availability_csv, read_mobility_csv


def write(tmp_path, text, name="t.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_good_files_are_read_exactly(tmp_path):
    mob = read_mobility_csv(write(tmp_path, "client,t_s,x_m,y_m\n0,0,100,0\n0,10,110,0\n2,0,0,-50\n"), 3,
                            radius_m=300.0, min_distance_m=35.0)
    assert sorted(mob) == [0, 2]
    np.testing.assert_array_equal(mob[0][0], [0.0, 10.0])
    np.testing.assert_array_equal(mob[0][1], [[100.0, 0.0], [110.0, 0.0]])
    av = read_availability_csv(write(tmp_path, "client,start_s,end_s\n1,50,60\n1,0,10\n1,10,20\n0,5,6\n", "a.csv"), 2)
    assert av == {1: [(0.0, 20.0), (50.0, 60.0)], 0: [(5.0, 6.0)]}


@pytest.mark.parametrize("body, line, words", [
    ("0,0,100,0\n7,1,100,0\n", 3, ["client", "0 to 2"]),
    ("0,5,100,0\n0,4,100,0\n", 3, ["t_s", "back in time", "line 2"]),
    ("0,0,10,0\n", 2, ["x_m, y_m", "outside the cell", "35 to 300"]),
    ("0,0,nan,0\n", 2, ["x_m", "finite"]),
    ("0,-1,100,0\n", 2, ["t_s", ">= 0"]),
    ("0,0,100\n", 2, ["fields"]),
])
def test_bad_mobility_traces(tmp_path, body, line, words):
    p = write(tmp_path, "client,t_s,x_m,y_m\n" + body)
    with pytest.raises(ConfigError) as info:
        read_mobility_csv(p, 3, radius_m=300.0, min_distance_m=35.0)
    text = str(info.value)
    assert "\n" not in text and str(p) in text and f"line {line}" in text
    assert all(w in text for w in words), text


@pytest.mark.parametrize("body, line, words", [
    ("0,0,10\n0,5,20\n", 3, ["overlaps", "line 2"]),
    ("0,10,10\n", 2, ["end_s", "not after"]),
    ("3,0,10\n", 2, ["client"]),
    ("0,inf,10\n", 2, ["start_s", "finite"]),
])
def test_bad_availability_traces(tmp_path, body, line, words):
    p = write(tmp_path, "client,start_s,end_s\n" + body)
    with pytest.raises(ConfigError) as info:
        read_availability_csv(p, 2)
    text = str(info.value)
    assert "\n" not in text and f"line {line}" in text and all(w in text for w in words), text


def test_wrong_header_empty_and_binary_files(tmp_path):
    for text, word in (("client,t,x,y\n0,0,100,0\n", "header"), ("client,start_s,end_s\n", "no rows")):
        with pytest.raises(ConfigError) as info:
            read_availability_csv(write(tmp_path, text), 2) if "start_s" in text else \
                read_mobility_csv(write(tmp_path, text), 2, radius_m=300.0, min_distance_m=35.0)
        assert word in str(info.value)
    p = tmp_path / "b.csv"
    p.write_bytes(b"\x80\x04\x95 pickle")
    with pytest.raises(ConfigError) as info:
        read_availability_csv(p, 2)
    assert "pickle" in str(info.value)
