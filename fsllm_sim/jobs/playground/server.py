"""`fsllm-sim playground [FILE] [--port P]`: the what-if page, served on this machine (Flask, Plotly bundled).

The page (static/index.html, static/playground.js) only draws: every number comes from the JSON API below,
which calls :mod:`fsllm_sim.jobs.playground.model` (the project's delay model, solver and engine):

* ``GET /api/controls``: the controls, their ranges (the split's from the model) and the scenario's values;
* ``POST /api/evaluate`` ``{"values": {...}}``: the student's choice, its breakdown, Gantt bars and curves;
* ``POST /api/optimise`` ``{"values": {...}}``: the optimiser's choice beside it, explained;
* ``POST /api/simulate`` ``{"values": {...}, "rounds": n}``: the event engine, analytic backend.

A bad value answers 400 with ``{"error": "<the loader's one-line message>"}``. Plotly's JavaScript is served
from the installed plotly package (no CDN: the page works offline).
"""
from __future__ import annotations

import errno
import socket
import sys
import threading
from pathlib import Path

from ...errors import ConfigError, FsllmError
from .controls import BY_NAME, CONTROLS, control_values
from .model import WorldCache, evaluate, optimise, simulate

STATIC = Path(__file__).resolve().parent / "static"
MAX_BODY_BYTES = 64 * 1024
MAX_SIMULATED_ROUNDS = 10
DEFAULT_PORT = 8050


def plotly_js_path() -> Path:
    import plotly

    path = Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise ConfigError(f"playground: the plotly package has no bundled plotly.min.js at {path}")
    return path


class Playground:
    """The API's state: the base scenario and the world cache, behind one lock (one computation at a time)."""

    def __init__(self, scenario):
        self.base = scenario
        self.cache = WorldCache()
        self.lock = threading.Lock()

    def controls(self) -> dict:
        with self.lock:
            result = evaluate(self.base, {}, self.cache)
        described = []
        for c in CONTROLS:
            d = c.describe()
            if c.name == "split":
                d["low"], d["high"] = min(result["splits"]), max(result["splits"])
            described.append(d)
        return {"controls": described, "values": control_values(self.base), "scenario": self.base.name}

    def call(self, what: str, body) -> dict:
        if not isinstance(body, dict):
            raise ConfigError("request: expected a JSON object {\"values\": {...}}")
        values = body.get("values", {})
        with self.lock:
            if what == "evaluate":
                return evaluate(self.base, values, self.cache)
            if what == "optimise":
                return optimise(self.base, values, self.cache)
            rounds = body.get("rounds", 3)
            if isinstance(rounds, bool) or not isinstance(rounds, int) or not 1 <= rounds <= MAX_SIMULATED_ROUNDS:
                raise ConfigError(f"rounds: {str(rounds)[:20]!r} must be an integer in 1..{MAX_SIMULATED_ROUNDS}")
            return simulate(self.base, values, self.cache, rounds=rounds)


def create_app(scenario):
    """The Flask application of the playground on ``scenario`` (a loaded Scenario)."""
    from flask import Flask, jsonify, request, send_file

    app = Flask("fsllm_sim.playground", static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    state = Playground(scenario)
    js = plotly_js_path()

    @app.get("/")
    def index():
        return send_file(STATIC / "index.html", mimetype="text/html")

    @app.get("/static/<name>")
    def static_file(name: str):
        files = {"playground.js": "text/javascript", "playground.css": "text/css"}
        if name == "plotly.min.js":
            return send_file(js, mimetype="text/javascript")
        if name not in files:
            return jsonify({"error": f"no such file {name[:40]!r}"}), 404
        return send_file(STATIC / name, mimetype=files[name])

    @app.get("/api/controls")
    def controls():
        return jsonify(state.controls())

    def api(what: str):
        body = request.get_json(silent=True)
        try:
            return jsonify(state.call(what, body))
        except FsllmError as exc:
            return jsonify({"error": str(exc).splitlines()[0] if str(exc) else type(exc).__name__}), 400

    app.add_url_rule("/api/evaluate", "evaluate", lambda: api("evaluate"), methods=["POST"])
    app.add_url_rule("/api/optimise", "optimise", lambda: api("optimise"), methods=["POST"])
    app.add_url_rule("/api/simulate", "simulate", lambda: api("simulate"), methods=["POST"])
    app.playground = state  # for tests and the benchmark
    return app


def check_port_free(host: str, port: int) -> None:
    if not (isinstance(port, int) and 1 <= port <= 65535):
        raise ConfigError(f"--port {port!r} must be an integer in 1..65535")
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(f"--port {port}: already in use on {host} (pick another with --port)") from None
            raise ConfigError(f"--host {host} --port {port}: cannot listen there ({exc.strerror})") from None


def make_server(scenario, host: str = "127.0.0.1", port: int = DEFAULT_PORT):
    """A threaded WSGI server of the playground (``serve_forever()`` to run, ``shutdown()`` to stop); the
    world of the base scenario is built before it listens, so the first slider move is answered at once."""
    from werkzeug.serving import make_server as wsgi_server

    check_port_free(host, port)
    app = create_app(scenario)
    app.playground.controls()  # warm: loads the model's dimensions and builds the base world
    return wsgi_server(host, port, app, threaded=True)


def serve(scenario, host: str = "127.0.0.1", port: int = DEFAULT_PORT, echo=print) -> int:
    server = make_server(scenario, host, port)
    where = "this machine only" if host in ("127.0.0.1", "localhost", "::1") else f"every interface of {host}"
    echo(f"playground: http://{host}:{server.server_port}/ (listening on {host}: {where}; Ctrl-C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        echo("playground: stopped")
    finally:
        server.server_close()
    sys.stdout.flush()
    return 0
