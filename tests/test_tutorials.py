"""The tutorials of docs/tutorials/ run as written (scripts/run_tutorials.py), write the figures they show, and
ship the same my_allocation.py they write; the runner reports failing blocks and commands."""
import importlib.util
import re
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUNNER = ROOT / "scripts" / "run_tutorials.py"


def _load_runner():
    spec = importlib.util.spec_from_file_location("run_tutorials", RUNNER)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while it is imported
    spec.loader.exec_module(module)
    return module


rt = _load_runner()
TUTORIALS = rt.tutorials()


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Every tutorial, run once for the whole module."""
    return {path.stem: rt.run_tutorial(path, tmp_path_factory.mktemp(path.stem), echo=lambda *_: None)
            for path in TUTORIALS}


def test_there_are_three_tutorials():
    assert [p.name[:2] for p in TUTORIALS] == ["01", "02", "03"]


@pytest.mark.parametrize("path", TUTORIALS, ids=lambda p: p.stem)
def test_tutorial_runs_and_writes_its_figures(results, path):
    result = results[path.stem]
    assert result.ok, result.message
    shown = rt.figure_links(path.read_text())
    assert shown, f"{path.name} shows no figure"
    written = {p.name: p for p in result.figures}
    for link in shown:
        name = Path(link).name
        assert name in written, f"{path.name} shows {link} but did not write it"
        assert rt.is_png(written[name]) and written[name].stat().st_size > 1000
        committed = rt.TUTORIALS_DIR / link
        assert committed.is_file() and rt.is_png(committed), f"{committed} is missing: run --update-figures"


def test_my_allocation_is_the_file_tutorial_3_writes():
    path = next(p for p in TUTORIALS if p.name.startswith("03"))
    blocks = [b for b in rt.parse_blocks(path.read_text()) if b.file == "my_allocation.py"]
    assert len(blocks) == 1
    assert blocks[0].text == (rt.TUTORIALS_DIR / "my_allocation.py").read_text()


def test_parse_blocks_reads_file_markers_and_languages():
    text = "intro\n<!-- file: a.yaml -->\n```yaml\nx: 1\n```\n\n```python\nprint(1)\n```\n```console\n$ fsllm-sim x\nout\n```\n"
    blocks = rt.parse_blocks(text)
    assert [(b.lang, b.file, b.line) for b in blocks] == [("yaml", "a.yaml", 3), ("python", None, 7),
                                                          ("console", None, 10)]
    assert blocks[0].text == "x: 1\n"


def _tutorial(tmp_path, body):
    path = tmp_path / "99-broken.md"
    path.write_text(textwrap.dedent(body))
    return path


def test_runner_reports_a_failing_python_block(tmp_path):
    path = _tutorial(tmp_path, """
        # broken
        ```python
        x = 1
        ```
        text
        ```python
        y = x + 1
        raise ValueError("boom")
        ```
    """)
    result = rt.run_tutorial(path, tmp_path / "work")
    assert not result.ok
    assert result.message == "99-broken: line 9: ValueError: boom"


def test_runner_reports_a_console_command_with_a_bad_scenario(tmp_path):
    path = _tutorial(tmp_path, """
        <!-- file: bad.yaml -->
        ```yaml
        clients:
          count: 0
        ```
        ```console
        $ fsllm-sim validate bad.yaml
        bad.yaml: valid
        ```
    """)
    result = rt.run_tutorial(path, tmp_path / "work")
    assert not result.ok
    assert re.fullmatch(r"99-broken: line 8: `\$ fsllm-sim validate bad.yaml` exited with status 2", result.message)
    assert (tmp_path / "work" / "bad.yaml").read_text() == "clients:\n  count: 0\n"


def test_runner_reports_an_unknown_flag(tmp_path):
    path = _tutorial(tmp_path, """
        ```console
        $ fsllm-sim run --no-such-flag x.yaml
        ```
    """)
    result = rt.run_tutorial(path, tmp_path / "work")
    assert not result.ok and "exited with status 2" in result.message


def test_main_exits_1_on_failure(tmp_path, monkeypatch, capsys):
    broken = _tutorial(tmp_path, "```python\n1 / 0\n```\n")
    monkeypatch.setattr(rt, "TUTORIALS_DIR", tmp_path)
    assert rt.main([broken.stem]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "FAILED 99-broken: line 2: ZeroDivisionError" in err[0]


def test_the_output_shown_must_be_what_was_printed(tmp_path):
    body = """
        ```python
        for i in range(3):
            print(f"line {i} took {0.1 * i:.2f} s")
        ```
        It prints
        ```
        {shown}
        ```
    """
    for shown, ok in [("line 0 took 0.00 s\nline 1 took 0.10 s\nline 2 took 0.20 s", True),
                      ("line 0 took ... s\n...\nline 2 took ... s", True),
                      ("...", True),
                      ("line 0 took 0.00 s\nline 1 took 0.11 s\nline 2 took 0.20 s", False),
                      ("line 0 took 0.00 s\nline 2 took 0.20 s", False),
                      ("line 0 took 0.00 s\n...\nline 3 took 0.30 s", False)]:
        text = textwrap.dedent(body).replace("{shown}", shown)
        path = tmp_path / "99-output.md"
        path.write_text(text)
        result = rt.run_tutorial(path, tmp_path / "work")
        assert result.ok is ok, (shown, result.message)
        if not ok:
            assert result.message.startswith("99-output: line 8: the output shown is not what was printed")


def test_a_commands_shown_output_is_checked_and_update_output_rewrites_it(tmp_path):
    (tmp_path / "s.yaml").write_text("name: s\nclients:\n  count: 2\n")
    path = _tutorial(tmp_path, """
        <!-- file: s.yaml -->
        ```yaml
        name: s
        clients:
          count: 2
        ```
        ```console
        $ fsllm-sim validate s.yaml
        s.yaml: valid (scenario 's', K=3, model smollm2-135m)
        $ fsllm-sim validate s.yaml
        ```
    """)
    result = rt.run_tutorial(path, tmp_path / "work")
    assert not result.ok and "line 10: the output shown is not what was printed" in result.message
    assert "K=3" in result.message and "K=2" in result.message
    assert rt.update_outputs(path, result.outputs) == 1
    assert "s.yaml: valid (scenario 's', K=2, model smollm2-135m)\n$ fsllm-sim validate s.yaml\n" in path.read_text()
    assert rt.run_tutorial(path, tmp_path / "work2").ok
