"""The Ray backend on a local Ray instance: the same rows as the sequential run, byte for byte.

Ray is an optional extra (``pip install 'fsllm-sim[ray]'``; ``make setup`` installs it), so the backend test
runs wherever Ray is installed and is skipped only where it is absent; without Ray, ``--backend ray`` is a
one-line error.
"""
import sys

import pytest

from fsllm_sim.errors import ConfigError
from fsllm_sim.jobs.sweep import run_sweep_file

from test_sweep_runs import QUIET, make_sweep


def test_ray_gives_the_same_rows_as_sequential(tmp_path):
    """No address: the sweep starts a local Ray instance of 2 CPUs for itself and shuts it down after."""
    ray = pytest.importorskip("ray")
    path = make_sweep(tmp_path)
    reference = run_sweep_file(str(path), out_dir=str(tmp_path / "seq"), workers=1, **QUIET)
    try:
        out = run_sweep_file(str(path), out_dir=str(tmp_path / "ray"), backend="ray", workers=2, **QUIET)
        assert not ray.is_initialized()
    finally:
        ray.shutdown()  # only if the sweep failed before its own shutdown
    for name in ("results.csv", "summary.csv"):
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name
    assert (out / "timing.csv").read_text().count("\n") == 17


def test_without_ray_the_backend_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now fails as if it were not installed
    with pytest.raises(ConfigError) as info:
        run_sweep_file(str(make_sweep(tmp_path)), out_dir=str(tmp_path / "o"), backend="ray", workers=2, **QUIET)
    assert str(info.value) == ("--backend ray: the ray package is not installed (allowed: install the extra with "
                               "pip install 'fsllm-sim[ray]', or use --backend local)")


def test_an_address_that_does_not_answer_fails_at_once_in_one_line(tmp_path):
    """Ray itself would retry for minutes, logging from C++; the sweep checks a host:port before any work."""
    pytest.importorskip("ray")
    with pytest.raises(ConfigError) as info:
        run_sweep_file(str(make_sweep(tmp_path)), out_dir=str(tmp_path / "o"), backend="ray", workers=2,
                       address="127.0.0.1:1", **QUIET)
    assert str(info.value).startswith("--address '127.0.0.1:1': nothing answers at 127.0.0.1:1 (")
    assert not (tmp_path / "o").exists()
