// The explorer page: on every input change, one GET /api/explore with the inputs; draw what it returns.
// Every shown number carries the API's value in data-value (the page only formats it), so a test can read it.
"use strict";

const form = document.getElementById("inputs");
const LABELS = {  // summary rows: field -> [label, unit]
  devices: ["devices", ""], engine: ["engine", null], phase: ["phase", null], batch: ["batch", ""],
  step_s: ["time", "s"], ttft_s: ["TTFT", "s"], tpot_s: ["TPOT", "s"], tokens_per_s: ["tokens/s", ""],
  energy_j: ["energy", "J"], joules_per_token: ["energy per token", "J"], average_power_w: ["average power", "W"],
  memory_bytes_per_device: ["memory per chip", "B"], bound: ["bound", null], flops: ["FLOPs", ""],
  bytes: ["bytes", "B"], intensity_flop_per_byte: ["intensity", "FLOP/B"],
};
const PREFIXES = [[1e15, "P"], [1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "k"], [1, ""], [1e-3, "m"], [1e-6, "µ"],
                  [1e-9, "n"]];
const SUBUNIT_PREFIXES = ["s", "J", "W"];  // milli, micro, nano: for these units only (not 667 mFLOP/B)
let latest = 0;
let rendered = 0;
let urls = [];

const BINARY = [[2 ** 40, "Ti"], [2 ** 30, "Gi"], [2 ** 20, "Mi"], [2 ** 10, "Ki"], [1, ""]];

function human(value, unit) {
  if (value === null || value === undefined) return "—";
  if (unit === null || typeof value !== "number") return String(value);
  if (value === 0) return `0 ${unit}`.trim();
  if (unit === "B") {  // sizes in binary units, as the CLI prints them (80 GiB, not 85.9 GB)
    const [scale, prefix] = BINARY.find(([s]) => Math.abs(value) >= s) || BINARY[BINARY.length - 1];
    return `${Number((value / scale).toPrecision(4))} ${prefix}B`;
  }
  const prefixes = SUBUNIT_PREFIXES.includes(unit) ? PREFIXES : PREFIXES.filter(([s]) => s >= 1);
  const [scale, prefix] = prefixes.find(([s]) => Math.abs(value) >= s) || prefixes[prefixes.length - 1];
  return `${Number((value / scale).toPrecision(4))} ${prefix}${unit}`.trim();
}

function cell(tag, value, unit, attrs = {}) {
  const el = document.createElement(tag);
  el.textContent = human(value, unit);
  if (value !== null && value !== undefined) el.dataset.value = String(value);
  for (const [k, v] of Object.entries(attrs)) el.dataset[k] = v;
  return el;
}

function row(cells) {
  const tr = document.createElement("tr");
  tr.append(...cells);
  return tr;
}

function text(tag, content) {
  const el = document.createElement(tag);
  el.textContent = content;
  return el;
}

function svgUrl(svg) {
  const url = URL.createObjectURL(new Blob([svg], {type: "image/svg+xml"}));
  urls.push(url);
  return url;
}

function svgImage(svg, alt) {
  const img = document.createElement("img");
  img.src = svgUrl(svg);
  img.alt = alt;
  return img;
}

function query() {
  const op = form.elements.mode.value === "op";
  for (const el of form.querySelectorAll(".step input, .step select")) el.disabled = op;
  const opInput = document.getElementById("op");
  document.getElementById("model").disabled = op;
  opInput.disabled = !op;
  if (op && !opInput.value) opInput.value = opInput.placeholder;  // an example to start from
  const params = new URLSearchParams();
  for (const el of form.elements) {
    if (el.name && el.name !== "mode" && !el.disabled) params.set(el.name, el.value);
  }
  return params;
}

async function update() {
  const id = ++latest;
  const params = query();
  document.body.dataset.state = "loading";
  document.getElementById("status").textContent = "computing…";
  let payload;
  try {
    const response = await fetch(`/api/explore?${params}`);
    payload = await response.json();
  } catch (err) {
    payload = {error: `the perfsim ui server did not answer (${err.message})`};
  }
  if (id !== latest) return;  // a newer input set is on its way
  if (payload.error) showError(payload.error);
  else draw(payload);
  document.getElementById("status").textContent = "";
  document.body.dataset.query = params.toString();
  document.body.dataset.rendered = String(++rendered);
  document.body.dataset.state = payload.error ? "error" : "ready";
}

function showError(message) {
  const error = document.getElementById("error");
  error.textContent = message;
  error.hidden = false;
  document.getElementById("results").hidden = true;
}

function draw(payload) {
  document.getElementById("error").hidden = true;
  urls.forEach(URL.revokeObjectURL);
  urls = [];
  const devices = payload.devices;
  const summary = document.getElementById("summary");
  summary.replaceChildren(row([text("th", ""), ...devices.map((d) => text("th", d.head.hardware))]));
  for (const field of Object.keys(devices[0].head)) {
    if (field === "hardware") continue;
    const [label, unit] = LABELS[field] || [field, ""];
    summary.append(row([text("th", label),
      ...devices.map((d, i) => cell("td", d.head[field], unit, {device: i, field}))]));
  }
  const notes = devices.flatMap((d) => d.notes);
  document.getElementById("notes").replaceChildren(...[...new Set(notes)].map((n) => text("li", n)));
  drawMemory(devices);
  document.getElementById("roofline").src = svgUrl(payload.roofline.svg);
  drawPoints(payload.roofline.points);
  drawBreakdown(devices);
  const timeline = document.getElementById("timeline");
  timeline.replaceChildren(...devices.map((d) => d.timeline_svg
    ? svgImage(d.timeline_svg, `timeline on ${d.head.hardware}`)
    : text("p", payload.mode === "op" ? "one op: no timeline" : "the timeline needs engine des")));
  document.getElementById("results").hidden = false;
}

function drawMemory(devices) {
  const memory = document.getElementById("memory");
  memory.replaceChildren(...devices.map((d, i) => {
    const box = document.createElement("div");
    if (!d.memory) {
      box.append(text("p", `${d.head.hardware}: one op has no memory fit`));
      return box;
    }
    const m = d.memory;
    const bar = document.createElement("div");
    bar.className = "bar";
    for (const [part, key] of [["weights", "weights_bytes"], ["kv", "kv_bytes"], ["activations", "activation_bytes"]]) {
      const span = document.createElement("span");
      span.className = part;
      span.style.width = `${Math.min(100, (100 * m[key]) / m.capacity_bytes)}%`;
      span.title = `${part}: ${human(m[key], "B")}`;
      bar.append(span);
    }
    const line = document.createElement("p");
    line.append(`${d.head.hardware}: `, cell("span", m.total_bytes, "B", {device: i, field: "total_bytes"}), " of ",
                cell("span", m.capacity_bytes, "B", {device: i, field: "capacity_bytes"}), " (",
                cell("span", m.fraction, null, {device: i, field: "fraction"}), " used): weights ",
                cell("span", m.weights_bytes, "B", {device: i, field: "weights_bytes"}), ", KV ",
                cell("span", m.kv_bytes, "B", {device: i, field: "kv_bytes"}), ", activations ",
                cell("span", m.activation_bytes, "B", {device: i, field: "activation_bytes"}));
    line.querySelector("[data-field=fraction]").textContent = `${(100 * m.fraction).toFixed(1)}%`;
    box.append(bar, line);
    return box;
  }));
}

function drawPoints(points) {
  const table = document.getElementById("points");
  table.replaceChildren(row(["device", "op", "intensity", "attained", "time", "bound"].map((h) => text("th", h))));
  for (const p of points) {
    const attrs = {device: p.device, op: p.op};
    table.append(row([text("td", p.device), text("td", p.op),
      cell("td", p.intensity_flop_per_byte, "FLOP/B", {...attrs, field: "intensity_flop_per_byte"}),
      cell("td", p.attained_flop_per_s, "FLOP/s", {...attrs, field: "attained_flop_per_s"}),
      cell("td", p.time_s, "s", {...attrs, field: "time_s"}), text("td", p.bound)]));
  }
}

function drawBreakdown(devices) {
  const breakdown = document.getElementById("breakdown");
  breakdown.replaceChildren(...devices.map((d, i) => {
    const box = document.createElement("div");
    box.className = "device";
    const table = document.createElement("table");
    table.append(row(["op", "count", "time", "energy", "bound"].map((h) => text("th", h))));
    for (const op of d.ops) {
      const attrs = {device: i, op: op.op};
      table.append(row([text("td", op.op), cell("td", op.count, "", {...attrs, field: "count"}),
        cell("td", op.time_s, "s", {...attrs, field: "time_s"}), cell("td", op.energy_j, "J", {...attrs, field: "energy_j"}),
        text("td", op.bound)]));
    }
    if (d.idle_energy_j) table.append(row([text("td", "chips waiting"), text("td", ""), text("td", ""),
      cell("td", d.idle_energy_j, "J", {device: i, field: "idle_energy_j"}), text("td", "")]));
    const resources = document.createElement("table");
    resources.append(row([text("th", "binding resource"), text("th", "time")]));
    for (const [name, seconds] of Object.entries(d.by_resource_s)) {
      resources.append(row([text("td", name), cell("td", seconds, "s", {device: i, resource: name})]));
    }
    box.append(text("h3", d.head.hardware), table, resources);
    return box;
  }));
}

function debounce(fn, ms) {
  let timer;
  return () => { clearTimeout(timer); timer = setTimeout(fn, ms); };
}

async function start() {
  const choices = await (await fetch("/api/choices")).json();
  for (const [list, names] of [["hardware-names", choices.hardware], ["model-names", choices.model],
                               ["dtype-names", choices.dtype]]) {
    document.getElementById(list).replaceChildren(...names.map((n) => Object.assign(document.createElement("option"), {value: n})));
  }
  for (const [name, value] of Object.entries(choices.defaults)) {
    const el = form.elements.namedItem(name);
    if (el && value !== null) el.value = String(value);
  }
  form.addEventListener("change", debounce(update, 100));
  form.addEventListener("submit", (event) => { event.preventDefault(); update(); });
  await update();
}

start();
