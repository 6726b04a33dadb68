// The playground page: it only draws. Every number is the JSON the Python API returns (server.py).
"use strict";

const PHASES = ["compute", "uplink", "server", "downlink", "aggregation"];
const COLORS = {compute: "#4c78a8", forward: "#4c78a8", backward: "#72b7b2", uplink: "#f58518",
                server: "#54a24b", server_wait: "#bab0ac", downlink: "#e45756", adapter_upload: "#b279a2",
                aggregation: "#9d755d", broadcast: "#ff9da6", adapter_download: "#eeca3b"};
const state = {controls: [], values: {}, seq: 0, shown: 0, optSeq: 0, evalTimer: null, optTimer: null};

function el(id) { return document.getElementById(id); }

async function post(path, body) {
  const response = await fetch(path, {method: "POST", headers: {"Content-Type": "application/json"},
                                      body: JSON.stringify(body)});
  const data = await response.json();
  if (!response.ok) { throw new Error(data.error || `HTTP ${response.status}`); }
  return data;
}

function fmt(x, digits) { return (x === null || x === undefined) ? "-" : Number(x).toFixed(digits); }

function buildControls(spec) {
  const box = el("controls");
  for (const c of spec.controls) {
    const label = document.createElement("label");
    const title = document.createElement("span");
    title.innerHTML = `${c.label}${c.unit ? " [" + c.unit + "]" : ""}: <span class="value" id="val-${c.name}"></span>`;
    label.appendChild(title);
    let input;
    if (c.kind === "choice") {
      input = document.createElement("select");
      for (const choice of c.choices) {
        const option = document.createElement("option");
        option.value = String(choice); option.textContent = String(choice);
        input.appendChild(option);
      }
    } else {
      input = document.createElement("input");
      input.type = "range"; input.min = c.low; input.max = c.high; input.step = c.step;
    }
    input.id = `ctl-${c.name}`;
    input.dataset.field = c.path;
    input.value = String(spec.values[c.name]);
    input.addEventListener("input", () => onChange(c, input));
    input.addEventListener("change", () => onChange(c, input));
    label.appendChild(input);
    box.appendChild(label);
    state.values[c.name] = spec.values[c.name];
    el(`val-${c.name}`).textContent = String(spec.values[c.name]);
  }
  state.controls = spec.controls;
}

function parseValue(c, input) {
  if (c.kind === "choice") {
    const n = Number(input.value);
    return (c.choices.length && typeof c.choices[0] === "number") ? n : input.value;
  }
  return c.kind === "int" ? parseInt(input.value, 10) : parseFloat(input.value);
}

function onChange(c, input) {
  state.values[c.name] = parseValue(c, input);
  el(`val-${c.name}`).textContent = String(state.values[c.name]);
  clearTimeout(state.evalTimer);
  state.evalTimer = setTimeout(evaluate, 30);
}

function showError(message) {
  const box = el("error");
  box.textContent = message; box.hidden = !message;
}

async function evaluate() {
  const seq = ++state.seq;
  const status = el("status");
  status.dataset.state = "busy"; status.textContent = "computing ...";
  try {
    const data = await post("/api/evaluate", {values: state.values});
    if (seq !== state.seq) { return; }  // a newer request is on its way
    showError("");
    render(data);
    status.dataset.state = "ready"; status.dataset.seq = String(seq);
    status.textContent = `up to date (${fmt(data.wall_ms, 0)} ms on the server)`;
    clearTimeout(state.optTimer);
    state.optTimer = setTimeout(() => optimise(seq), 150);
  } catch (err) {
    if (seq !== state.seq) { return; }
    showError(err.message);
    status.dataset.state = "error"; status.dataset.seq = String(seq);
    status.textContent = "the last change was not applied";
  }
}

function render(data) {
  const s = data.student;
  el("out-round-s").textContent = fmt(s.round_s, 3);
  el("out-rounds").textContent = fmt(s.rounds, 3);
  el("out-total-s").textContent = fmt(s.total_s, 3);
  el("out-straggler").textContent = String(s.straggler);
  el("out-wall-ms").textContent = fmt(data.wall_ms, 0);
  el("warnings").textContent = (data.warnings || []).map((w) => "warning: " + w).join("\n");
  state.last = data;
  drawBreakdown(s, null);
  drawCurve("plot-rank", data.against_rank, "rank", s.rank, "LoRA rank r", `N(r) T_round at split ${s.split}`, true);
  drawCurve("plot-split", data.against_split, "split", s.split, "split point l", `N(r) T_round at rank ${s.rank}`,
            false);
  drawGantt(data.gantt, `one round, closed form (your choice): ${fmt(s.round_s, 3)} s`);
}

function drawBreakdown(student, optimiser) {
  const traces = [{type: "bar", name: "your choice", x: PHASES, y: PHASES.map((p) => student.phases_s[p])}];
  if (optimiser) {
    traces.push({type: "bar", name: "optimiser", x: PHASES, y: PHASES.map((p) => optimiser.phases_s[p])});
  }
  Plotly.react("plot-breakdown", traces, {title: {text: "straggler's round by phase", font: {size: 13}},
    barmode: "group", yaxis: {title: "s"}, xaxis: {tickangle: 0, tickfont: {size: 10}},
    margin: {t: 40, l: 50, r: 10, b: 40}, legend: {orientation: "h"}},
    {displayModeBar: false});
}

function drawCurve(id, points, key, current, xlabel, title, logx) {
  const xs = points.map((p) => p[key]);
  const ys = points.map((p) => p.total_s);
  const here = points.filter((p) => p[key] === current);
  Plotly.react(id, [
    {type: "scatter", mode: "lines+markers", name: "equal share", x: xs, y: ys},
    {type: "scatter", mode: "markers", name: "your choice", x: here.map((p) => p[key]), y: here.map((p) => p.total_s),
     marker: {size: 13, color: "#e45756", symbol: "diamond"}}],
    {title: {text: title, font: {size: 13}}, xaxis: {title: xlabel, type: logx ? "log" : "linear"},
     yaxis: {title: "total training delay [s]"}, showlegend: false, margin: {t: 40, l: 55, r: 10, b: 45}},
    {displayModeBar: false});
}

function drawGantt(bars, title) {
  const byPhase = {};
  for (const b of bars) {
    (byPhase[b.phase] = byPhase[b.phase] || []).push(b);
  }
  const traces = Object.entries(byPhase).map(([phase, list]) => ({
    type: "bar", orientation: "h", name: phase, marker: {color: COLORS[phase] || "#999"},
    base: list.map((b) => b.start_s), x: list.map((b) => Math.max(b.end_s - b.start_s, 0)),
    y: list.map((b) => (b.client < 0 ? "FS" : `client ${b.client}`)),
    hovertemplate: `${phase} %{base:.3f}-%{x:.3f} s<extra>%{y}</extra>`}));
  const clients = [...new Set(bars.filter((b) => b.client >= 0).map((b) => b.client))].sort((a, b) => a - b);
  const order = clients.map((c) => `client ${c}`).concat(bars.some((b) => b.client < 0) ? ["FS"] : []);
  Plotly.react("plot-gantt", traces, {title: {text: title, font: {size: 13}}, barmode: "overlay",
    xaxis: {title: "time [s]"},
    yaxis: {autorange: "reversed", categoryorder: "array", categoryarray: order},
    margin: {t: 40, l: 70, r: 10, b: 45},
    legend: {orientation: "h"}}, {displayModeBar: false});
}

async function optimise(seq) {
  try {
    const data = await post("/api/optimise", {values: state.values});
    if (seq !== state.seq) { return; }
    const o = data.optimiser;
    el("opt-method").textContent = data.method;
    el("opt-split").textContent = String(o.split);
    el("opt-rank").textContent = String(o.rank);
    el("opt-total-s").textContent = fmt(o.total_s, 3);
    el("opt-wall-ms").textContent = fmt(data.wall_ms, 0);
    const list = el("opt-explanation");
    list.innerHTML = "";
    for (const line of data.explanation) {
      const item = document.createElement("li"); item.textContent = line; list.appendChild(item);
    }
    drawBreakdown(data.student, o);
    el("status").dataset.optSeq = String(seq);
  } catch (err) {
    if (seq === state.seq) { showError(err.message); }
  }
}

async function simulateThis() {
  const button = el("btn-simulate");
  button.disabled = true; el("sim-summary").textContent = "simulating ...";
  try {
    const data = await post("/api/simulate", {values: state.values, rounds: 3});
    const rounds = data.rounds.map((r) => `round ${r.round}: ${fmt(r.duration_s, 3)} s (closed form ` +
                                         `${fmt(r.closed_form_s, 3)} s)`).join("; ");
    el("sim-summary").textContent = `${rounds}; ${data.events} events in ${fmt(data.wall_ms, 0)} ms`;
    drawGantt(data.gantt.filter((b) => b.round === 1), "round 1 simulated by the event engine");
  } catch (err) {
    showError(err.message); el("sim-summary").textContent = "";
  } finally {
    button.disabled = false;
  }
}

async function start() {
  const response = await fetch("/api/controls");
  const spec = await response.json();
  if (!response.ok) { showError(spec.error || "the controls could not be loaded"); return; }
  el("scenario-name").textContent = spec.scenario;
  buildControls(spec);
  el("btn-simulate").addEventListener("click", simulateThis);
  evaluate();
}

start();
