"""The playground in a real browser: headless Chromium (Debian's package, found on PATH or in
FSLLM_SIM_CHROMIUM) driven by Playwright. A slider is moved with the keyboard and the page's numbers must equal
the Python API's for the same settings; a valid slider position that makes an invalid scenario shows the
loader's one-line message on the page. Without Chromium the test says so and is skipped."""

import os
import shutil
import socket
import threading

import pytest

from fsllm_sim.config import load_scenario
from fsllm_sim.jobs.playground.model import WorldCache, evaluate
from fsllm_sim.jobs.playground.server import make_server

from test_playground import DEFAULT

CHROMIUM = os.environ.get("FSLLM_SIM_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (pip install -e '.[dev]')")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium: `apt-get install chromium` (make setup "
                                                          "does it where it can) or set FSLLM_SIM_CHROMIUM")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    base = load_scenario(DEFAULT)
    srv = make_server(base, "127.0.0.1", _free_port())
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield base, f"http://127.0.0.1:{srv.server_port}/"
    srv.shutdown()
    srv.server_close()


def _wait_ready(page, after_seq: int):
    page.wait_for_function(
        "s => { const e = document.getElementById('status'); return e && Number(e.dataset.seq) > s && "
        "(e.dataset.state === 'ready' || e.dataset.state === 'error'); }", arg=after_seq, timeout=60_000)
    return int(page.get_attribute("#status", "data-seq")), page.get_attribute("#status", "data-state")


def test_slider_moves_and_page_equals_python_api(server, tmp_path):
    base, url = server
    cache = WorldCache()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        seq, st = _wait_ready(page, 0)
        assert st == "ready"
        expect = evaluate(base, {}, cache)["student"]
        assert page.inner_text("#out-total-s") == f"{expect['total_s']:.3f}"
        assert page.inner_text("#out-round-s") == f"{expect['round_s']:.3f}"

        # move the split slider two steps to the left with the keyboard, as a student would
        split0 = int(page.input_value("#ctl-split"))
        page.focus("#ctl-split")
        page.keyboard.press("ArrowLeft")
        page.keyboard.press("ArrowLeft")
        page.wait_for_function("v => Number(document.getElementById('ctl-split').value) === v", arg=split0 - 2)
        page.wait_for_timeout(300)
        seq, st = _wait_ready(page, seq)
        assert st == "ready"
        expect = evaluate(base, {"split": split0 - 2}, cache)["student"]
        assert page.inner_text("#out-total-s") == f"{expect['total_s']:.3f}"
        assert page.inner_text("#out-rounds") == f"{expect['rounds']:.3f}"
        assert page.inner_text("#val-split") == str(split0 - 2)

        # the optimiser's answer arrives beside it, and equals the API's
        page.wait_for_function("s => Number(document.getElementById('status').dataset.optSeq) === s", arg=seq,
                               timeout=120_000)
        from fsllm_sim.jobs.playground.model import optimise

        best = optimise(base, {"split": split0 - 2}, cache)["optimiser"]
        assert page.inner_text("#opt-total-s") == f"{best['total_s']:.3f}"
        assert int(page.inner_text("#opt-split")) == best["split"]
        page.screenshot(path=str(tmp_path / "playground.png"), full_page=True)
        assert (tmp_path / "playground.png").stat().st_size > 10_000

        # more clients than subchannels: a valid slider position, an invalid scenario, said in one line
        page.focus("#ctl-clients")
        page.keyboard.press("End")
        seq, st = _wait_ready(page, seq)
        assert st == "error"
        message = page.inner_text("#error")
        assert "clients.count" in message and "subchannel" in message and "\n" not in message
        browser.close()
