"""Write docs/playground.png: the playground on the default scenario in headless Chromium, after the optimiser's
answer has arrived. Usage: .venv/bin/python scripts/playground_screenshot.py [--out docs/playground.png]"""
import argparse
import os
import shutil
import socket
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--out", default=str(ROOT / "docs" / "playground.png"))
    p.add_argument("--split", type=int, default=4, help="move the split slider here first")
    args = p.parse_args()
    chromium = os.environ.get("FSLLM_SIM_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("error: needs Chromium (apt-get install chromium, or set FSLLM_SIM_CHROMIUM)", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    from fsllm_sim.config import load_scenario
    from fsllm_sim.jobs.playground.server import make_server

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = make_server(load_scenario(ROOT / "scenarios" / "default.yaml"), "127.0.0.1", port)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1500, "height": 1050})
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_function("() => document.getElementById('status').dataset.state === 'ready'",
                                   timeout=120_000)
            page.eval_on_selector("#ctl-split", "(e, v) => { e.value = v; e.dispatchEvent(new Event('input')); }",
                                  args.split)
            page.wait_for_function("v => document.getElementById('val-split').textContent === String(v)",
                                   arg=args.split)
            page.wait_for_timeout(400)
            page.wait_for_function("() => { const s = document.getElementById('status'); return s.dataset.state"
                                   " === 'ready' && s.dataset.optSeq === s.dataset.seq; }", timeout=120_000)
            page.click("#btn-simulate")
            page.wait_for_function("() => document.getElementById('sim-summary').textContent.includes('events')",
                                   timeout=120_000)
            tmp = args.out + ".tmp.png"
            page.screenshot(path=tmp, full_page=True)
            os.replace(tmp, args.out)  # atomic: a reader never sees half a file
            browser.close()
    finally:
        srv.shutdown()
        srv.server_close()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
