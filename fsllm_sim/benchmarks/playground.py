"""The playground's response time (``fsllm-sim bench playground``): one control changed at a time, through the
HTTP API (Flask's test client: routing, JSON in and out, the delay model, the curves), at K = 10 and K = 50.
Target: every change answered in under 200 ms. A change that alters the world (clients, cell radius, device
spread, bandwidth, wire precision) rebuilds it (placement, channel, devices, analytic profile); the split and
the rank reuse it. The optimiser's answer (bcd) is a separate request and is reported beside, without a target.
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path

DEFAULT_SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "default.yaml"
TARGET_MS = 200.0


def changes(k: int) -> list[dict]:
    """A walk through the controls, one change at a time, starting from K clients on 2K + 14 subchannels."""
    m = 2 * k + 14
    start = {"clients": k, "s_subchannels": m, "f_subchannels": m // 2}
    steps = [{"split": 3}, {"split": 9}, {"rank": 2}, {"rank": 16}, {"power": 17}, {"speed_sigma": 1.0},
             {"radius": 500}, {"precision": "int8"}, {"discipline": "fifo"}, {"s_subchannels": m + 10},
             {"f_subchannels": m // 2 + 5}, {"clients": k - 1}, {"split": 1}]
    out, values = [], dict(start)
    for step in steps:
        values = {**values, **step}
        out.append((next(iter(step)), dict(values)))
    return [("start", start)] + out


def measure(k: int) -> dict:
    from ..config import load_scenario
    from ..jobs.playground.server import create_app

    app = create_app(load_scenario(DEFAULT_SCENARIO))
    client = app.test_client()
    client.get("/api/controls")  # the server warms up like this before it listens
    times = []
    for name, values in changes(k):
        start = time.perf_counter()
        response = client.post("/api/evaluate", json={"values": values})
        ms = 1e3 * (time.perf_counter() - start)
        if response.status_code != 200:
            raise RuntimeError(f"playground bench: {name}: {response.get_json()}")
        if name != "start":
            times.append((ms, name))
    start = time.perf_counter()
    opt = client.post("/api/optimise", json={"values": changes(k)[-1][1]})
    opt_ms = 1e3 * (time.perf_counter() - start)
    if opt.status_code != 200:
        raise RuntimeError(f"playground bench: optimise: {opt.get_json()}")
    worst = max(times)
    return {"clients": k, "median_ms": statistics.median(t for t, _ in times), "max_ms": worst[0],
            "max_control": worst[1], "changes": len(times), "optimise_ms": opt_ms}


def main(argv=None) -> int:
    for k in (10, 50):
        r = measure(k)
        ok = "met" if r["max_ms"] < TARGET_MS else "NOT met"
        print(f"playground: K={r['clients']}: {r['changes']} single-control changes through the HTTP API: median "
              f"{r['median_ms']:.0f} ms, slowest {r['max_ms']:.0f} ms ({r['max_control']}); target < "
              f"{TARGET_MS:.0f} ms {ok}; the optimiser's answer (bcd) {r['optimise_ms']:.0f} ms", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
