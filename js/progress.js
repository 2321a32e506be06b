// dcs-magic build/push progress view and log store (imported once per page by
// progress-loader.js; whole-line comments are stripped before sending).
//
// `attach(model, queued)` (from the loader's `initialize`) keeps each widget's store: what
// the kernel sends as deltas (log lines with the index of the first, changed layers and
// steps, changed fields). A gap in the line indexes asks the kernel for a resync.
// `render({ model, el, store })`: `store.get(name)` reads a field.
// Drawn: title, the engine ("on tcp://host:2376 (TLS)"), status badge (aria-live), elapsed time ticking locally from `started_at`,
// a Stop button, the user's steps with durations and CACHED markers, per-layer bars and a
// total bar weighted by bytes with rate and time left (role="progressbar"), the log tail
// with the full log's path, the image id / pinned digest with a copy button, and failures
// (role="alert"). Every colour comes from JupyterLab's --jp-* variables (progress.css).

const G = (globalThis.__dcsMagicProgress ??= { modules: new Map() });
G.stores ??= new Map();
const MAX_LINES = 200;
const MAX_BYTES = 64 * 1024;
const NUMBERS = new Set(["started_at", "elapsed_s", "layers_done", "layers_total", "bytes_current", "bytes_total",
  "fraction", "rate_bps", "step", "total_steps", "log_first", "log_lines"]);

function makeStore(model) {
  const store = {
    values: {}, first: 0, lines: [], bytes: 0, pending: "", layers: [], steps: new Map(),
    skew: null, listeners: new Set(), resyncAsked: false, messages: 0,
    // A field the kernel left out of the comm_open (an empty or zero default) reads as such.
    get(name) {
      const value = name in this.values ? this.values[name] : model.get(name);
      return value === undefined ? (NUMBERS.has(name) ? 0 : null) : value;
    },
    notify() { for (const fn of this.listeners) fn(); },
  };
  seed(store, model.get("log_first") || 0, model.get("log_tail") || []);
  store.pending = model.get("log_pending") || "";
  store.layers = [...(model.get("layers") || [])];
  for (const step of model.get("steps") || []) store.steps.set(step.n, step);
  return store;
}

function seed(store, first, lines) {
  store.first = first;
  store.lines = [];
  store.bytes = 0;
  append(store, first, lines);
}

function append(store, first, lines) {
  let next = store.first + store.lines.length;
  if (first > next) {  // lines the kernel's tail no longer had: start over from `first`
    store.first = first;
    store.lines = [];
    store.bytes = 0;
    next = first;
  }
  for (let i = Math.max(next - first, 0); i < lines.length; i += 1) {
    store.lines.push(lines[i]);
    store.bytes += lines[i].length + 1;
  }
  while (store.lines.length > MAX_LINES || (store.bytes > MAX_BYTES && store.lines.length > 1)) {
    store.bytes -= store.lines.shift().length + 1;
    store.first += 1;
  }
}

function mergeLayers(store, changed, ids) {
  const byId = new Map(store.layers.map((layer) => [layer.id, layer]));
  for (const layer of changed || []) byId.set(layer.id, layer);
  const order = ids || [...byId.keys()];
  store.layers = order.filter((id) => byId.has(id)).map((id) => byId.get(id));
}

// A message is a delta unless `type` says otherwise ("tail": the answer to a resync).
// Lines come as one string (`text`, joined by "\n"): cheaper than a JSON list.
function onMessage(store, model, msg) {
  if (!msg || typeof msg !== "object" || (msg.type && msg.type !== "tail")) return;
  store.messages += 1;
  if (typeof msg.t === "number") {
    const skew = Date.now() / 1000 - msg.t;  // browser clock minus kernel clock (+ latency)
    store.skew = store.skew === null ? skew : Math.min(store.skew, skew);
  }
  Object.assign(store.values, msg.state || {});
  // One string, not a list (cheaper): present only when there are lines, even one empty one.
  const lines = typeof msg.text === "string" ? msg.text.split("\n") : [];
  if (msg.type === "tail") {
    seed(store, msg.first || 0, lines);
    store.layers = [];
    store.steps.clear();
    store.resyncAsked = false;
  } else if (lines.length) {
    const next = store.first + store.lines.length;
    if (msg.first > next && !store.resyncAsked) {
      // A gap (e.g. the view was created mid-run): ask for the whole tail; a busy kernel
      // answers when the cell ends, meanwhile the new lines are shown.
      store.resyncAsked = true;
      model.send({ type: "resync" });
    }
    append(store, msg.first, lines);
  }
  if ("pending" in msg) store.pending = msg.pending;
  if (msg.layers || msg.layer_ids) mergeLayers(store, msg.layers, msg.layer_ids);
  // A step the store has comes with only what changed.
  for (const step of msg.steps || []) store.steps.set(step.n, { ...store.steps.get(step.n), ...step });
  store.notify();
}

// Once per page, when the loader imported this module: the CSS, and what was loaded.
export function setup(holder) {
  const hash = holder.get("hash"), js = holder.get("js"), css = holder.get("css");
  G.loads = (G.loads || 0) + 1;
  G.loadedBytes = (G.loadedBytes || 0) + js.length + css.length;
  if (!document.getElementById(`dcs-progress-css-${hash}`)) {
    const style = document.createElement("style");
    style.id = `dcs-progress-css-${hash}`;
    style.textContent = css;
    document.head.appendChild(style);
  }
}

export function storeFor(model) {
  const uid = model.get("_uid");
  let store = G.stores.get(uid);
  if (!store) {
    store = makeStore(model);
    G.stores.set(uid, store);
  }
  return store;
}

// Called once per model: replays what came before the module was loaded, then listens.
export function attach(model, queued) {
  const store = storeFor(model);
  const onMsg = (msg) => onMessage(store, model, msg);
  for (const msg of queued || []) onMsg(msg);
  model.on("msg:custom", onMsg);
  // A state update from the kernel (the final state) wins over the deltas for the fields it
  // has; the others (the log's path, which the final state leaves out) stay as sent.
  const onState = () => {
    for (const name of Object.keys(store.values)) {
      if (model.get(name) !== undefined && model.get(name) !== null) delete store.values[name];
    }
    store.notify();
  };
  model.on("change:status", onState);
  return () => {
    model.off("msg:custom", onMsg);
    model.off("change:status", onState);
  };
}

export function humanBytes(n) {
  if (!n) return "0 B";
  const units = ["B", "kB", "MB", "GB", "TB"];
  let value = n;
  let i = 0;
  while (Math.abs(value) >= 1000 && i < units.length - 1) {
    value /= 1000;
    i += 1;
  }
  return i === 0 ? `${Math.round(value)} B` : `${value.toFixed(1)} ${units[i]}`;
}

export function formatElapsed(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const m = Math.floor(s / 60);
  if (m >= 60) return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, "0")}m`;
  return m ? `${m}m ${String(s % 60).padStart(2, "0")}s` : `${(Math.max(0, seconds)).toFixed(1)}s`;
}

const ACTIVE = new Set(["starting", "running"]);

function node(tag, className, text) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (text !== undefined) el.textContent = text;
  return el;
}

function bar(className, label) {
  const outer = node("div", `dcs-bar ${className || ""}`.trim());
  outer.setAttribute("role", "progressbar");
  outer.setAttribute("aria-valuemin", "0");
  outer.setAttribute("aria-valuemax", "100");
  outer.setAttribute("aria-label", label);
  const inner = node("div", "dcs-bar-fill");
  outer.appendChild(inner);
  return { outer, inner };
}

function setBar(b, fraction, { indeterminate = false, text = "" } = {}) {
  const pct = Math.max(0, Math.min(1, fraction || 0)) * 100;
  b.inner.style.width = `${pct.toFixed(1)}%`;
  b.outer.classList.toggle("dcs-indeterminate", Boolean(indeterminate));
  if (indeterminate) {
    b.outer.removeAttribute("aria-valuenow");
  } else {
    b.outer.setAttribute("aria-valuenow", pct.toFixed(0));
  }
  if (text) b.outer.setAttribute("aria-valuetext", text);
}

async function copyText(text, button) {
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = "Copied";
  } catch (_err) {
    button.textContent = "Select and copy";  // clipboard needs a secure context
  }
  setTimeout(() => { button.textContent = "Copy"; }, 1500);
}

function pageConfig() {
  const el = document.getElementById("jupyter-config-data");
  try {
    return el ? JSON.parse(el.textContent || "{}") : {};
  } catch (_err) {
    return {};
  }
}

function cookie(name) {
  const match = document.cookie.match(`\\b${name}=([^;]*)\\b`);
  return match ? decodeURIComponent(match[1]) : undefined;
}

// Interrupt the kernel through the Jupyter server, as JupyterLab's own Kernel > Interrupt
// does (@jupyterlab/services ServerConnection: baseUrl and token from PageConfig's
// #jupyter-config-data, the _xsrf cookie as X-XSRFToken). Needed for a foreground run: the
// kernel's shell channel is busy with the cell, so a comm message would wait for its end.
export async function interruptKernel(kernelId) {
  const config = pageConfig();
  let base = config.baseUrl || "/";
  if (!base.endsWith("/")) base += "/";
  const headers = { "Content-Type": "application/json" };
  if (config.token) headers.Authorization = `token ${config.token}`;
  const xsrf = cookie("_xsrf");
  if (xsrf) headers["X-XSRFToken"] = xsrf;
  const response = await fetch(`${base}api/kernels/${encodeURIComponent(kernelId)}/interrupt`, {
    method: "POST", headers, credentials: "same-origin", cache: "no-store",
  });
  if (!response.ok) throw new Error(`interrupt failed: HTTP ${response.status}`);
}

// The keyboard focus when the view is removed while it has it: the static record replaces a
// finished widget's output (DcsMagics.finished_widget = 'record', e.g. right after Stop), the
// removed element takes the focus with it and the browser drops it to <body>. The notebook cell
// that held the widget (`.jp-Cell` in JupyterLab and Notebook 7, focusable) takes it instead
// (issue 24.6). Returns the view's cleanup; the cell is found while the view is on the page.
export function keepFocusInCell(root) {
  let cell = null, inside = false;
  const onIn = () => { inside = true; cell = root.closest(".jp-Cell") || cell; };
  const onOut = () => setTimeout(() => { if (root.isConnected) inside = root.contains(document.activeElement); }, 0);
  root.addEventListener("focusin", onIn);
  root.addEventListener("focusout", onOut);
  return () => {
    root.removeEventListener("focusin", onIn);
    root.removeEventListener("focusout", onOut);
    const active = document.activeElement;
    if (inside && cell && cell.isConnected && (!active || active === document.body || !active.isConnected)) {
      cell.focus({ preventScroll: true });
    }
  };
}

export function render({ model, el, store }) {
  const get = (name) => (store ? store.get(name) : model.get(name));
  const root = node("div", "dcs-progress");
  // Where the focus goes when Stop, which had it, is hidden as the run ends (issue 24.6).
  root.tabIndex = -1;
  root.setAttribute("role", "group");
  const header = node("div", "dcs-header");
  const title = node("span", "dcs-title");
  const engine = node("span", "dcs-engine");
  // The builder a build uses (classic or BuildKit), beside the title (issue 25.1).
  const builder = node("span", "dcs-builder");
  const badge = node("span", "dcs-badge");
  badge.setAttribute("role", "status");
  badge.setAttribute("aria-live", "polite");
  const elapsed = node("span", "dcs-elapsed");
  elapsed.setAttribute("aria-label", "elapsed time");
  const stop = node("button", "dcs-stop", "Stop");
  stop.type = "button";
  header.append(title, builder, engine, badge, elapsed, stop);

  const stepRow = node("div", "dcs-step");
  const stepLabel = node("span", "dcs-step-label");
  const stepBar = bar("dcs-step-bar", "build steps");
  const instruction = node("code", "dcs-instruction");
  stepRow.append(stepLabel, stepBar.outer, instruction);

  const stepsBox = node("details", "dcs-steps");
  const stepsSummary = node("summary", "dcs-steps-summary");
  const stepsList = node("ol", "dcs-steps-list");
  stepsBox.append(stepsSummary, stepsList);

  const warnings = node("ul", "dcs-warnings");

  const layersBox = node("div", "dcs-layers");
  const layersTitle = node("div", "dcs-layers-title");
  const layerRows = node("div", "dcs-layer-rows");
  const totalRow = node("div", "dcs-total");
  const totalLabel = node("span", "dcs-total-label");
  const totalBar = bar("dcs-total-bar", "total");
  const totalPct = node("span", "dcs-total-pct");
  totalRow.append(totalLabel, totalBar.outer, totalPct);
  layersBox.append(layersTitle, layerRows, totalRow);

  const details = node("details", "dcs-log");
  const summary = node("summary", "dcs-log-summary");
  const pre = node("pre", "dcs-log-text");
  const logPath = node("div", "dcs-log-path");
  details.append(summary, pre, logPath);

  const result = node("div", "dcs-result");
  const resultLabel = node("span", "dcs-result-label");
  const resultText = node("code", "dcs-result-text");
  const copy = node("button", "dcs-copy", "Copy");
  copy.type = "button";
  copy.addEventListener("click", () => copyText(resultText.textContent, copy));
  result.append(resultLabel, resultText, copy);

  const error = node("div", "dcs-error");
  error.setAttribute("role", "alert");
  const errorTitle = node("div", "dcs-error-title");
  const errorText = node("pre", "dcs-error-text");
  error.append(errorTitle, errorText);

  root.append(header, stepRow, stepsBox, warnings, layersBox, details, result, error);
  el.appendChild(root);
  const releaseFocus = keepFocusInCell(root);

  const rows = new Map();  // layer id -> { row, status, bar, bytes }
  let frame = null;
  let stopping = false;

  stop.addEventListener("click", async () => {
    if (stopping || !ACTIVE.has(get("status"))) return;
    stopping = true;
    // aria-disabled, not disabled: a disabled button drops the keyboard focus to the page.
    stop.setAttribute("aria-disabled", "true");
    stop.textContent = "Stopping…";
    try {
      if (model.get("_foreground") && model.get("_kernel_id")) {
        await interruptKernel(model.get("_kernel_id"));
      } else {
        model.send({ type: "stop" });
      }
    } catch (err) {
      stopping = false;
      stop.removeAttribute("aria-disabled");
      stop.textContent = "Stop";
      console.error("[dcs-magic] Stop failed", err);
    }
  });

  function nowElapsed() {
    const startedAt = get("started_at");
    if (ACTIVE.has(get("status")) && startedAt && store && store.skew !== null) {
      return Math.max(0, Date.now() / 1000 - store.skew - startedAt);
    }
    return get("elapsed_s") || 0;
  }

  function layerRow(id) {
    let r = rows.get(id);
    if (!r) {
      const row = node("div", "dcs-layer");
      const name = node("code", "dcs-layer-id", id);
      const status = node("span", "dcs-layer-status");
      const b = bar("dcs-layer-bar", `layer ${id}`);
      const bytes = node("span", "dcs-layer-bytes");
      row.append(name, status, b.outer, bytes);
      layerRows.appendChild(row);
      r = { row, status, bar: b, bytes };
      rows.set(id, r);
    }
    return r;
  }

  function drawTimes() {
    const now = nowElapsed();
    elapsed.textContent = formatElapsed(now);
    const running = stepsList.querySelector(".dcs-step-running .dcs-step-time");
    if (running && ACTIVE.has(get("status"))) {
      running.textContent = formatElapsed(Math.max(0, now - Number(running.dataset.started || 0)));
    }
  }

  function drawSteps(status) {
    const steps = store ? [...store.steps.values()] : (model.get("steps") || []);
    steps.sort((a, b) => a.n - b.n);
    stepsBox.hidden = steps.length === 0;
    const cached = steps.filter((s) => s.cached).length;
    // A failed or cancelled run's last step ended, but it is not done.
    const ended = steps.filter((s) => s.duration_s !== null).length;
    const finished = status === "failed" || status === "cancelled" ? Math.max(ended - 1, 0) : ended;
    stepsSummary.textContent = `Steps: ${finished} of ${get("total_steps") || steps.length} done` +
      `${cached ? `, ${cached} cached` : ""}`;
    const items = steps.map((s) => {
      const li = node("li", "dcs-step-item");
      const running = s.duration_s === null && ACTIVE.has(status);
      li.classList.toggle("dcs-step-running", running);
      li.classList.toggle("dcs-step-failed", status === "failed" && s.n === get("failed_step"));
      const n = node("span", "dcs-step-n", String(s.n));
      const text = node("code", "dcs-step-instruction", s.instruction);
      const mark = node("span", "dcs-cached", s.cached ? "CACHED" : "");
      mark.hidden = !s.cached;
      const time = node("span", "dcs-step-time", s.duration_s === null ? "" : formatElapsed(s.duration_s));
      time.dataset.started = String(s.started_s || 0);
      li.append(n, text, mark, time);
      return li;
    });
    stepsList.replaceChildren(...items);
    drawTimes();  // the running step's time now, not blank until the next tick
  }

  function draw() {
    frame = null;
    const kind = get("kind");
    const status = get("status");
    const active = ACTIVE.has(status);
    root.dataset.status = status;
    root.dataset.kind = kind;
    title.textContent = `${kind === "push" ? "Push" : "Build"} ${get("title") || ""}`.trim();
    const engineText = get("engine") === "local" ? "" : get("engine") || ""; // said only when not local
    engine.textContent = engineText ? `on ${engineText}` : "";
    engine.title = engineText ? `Docker engine: ${engineText}` : "";
    engine.hidden = !engineText;
    const chosen = kind === "build" ? get("builder") || "" : "";
    builder.textContent = chosen === "buildkit" ? "BuildKit" : chosen;
    builder.hidden = !chosen;
    badge.textContent = status;
    badge.className = `dcs-badge dcs-badge-${status}`;
    const canStop = model.get("_foreground") ? Boolean(model.get("_kernel_id")) : Boolean(get("_can_stop"));
    root.setAttribute("aria-label", title.textContent);
    const hide = !(active && canStop);
    if (hide && document.activeElement === stop) root.focus({ preventScroll: true });
    stop.hidden = hide;
    drawTimes();

    const total = get("total_steps");
    stepRow.hidden = kind !== "build" || !total;
    if (total) {
      const step = get("step");
      const doneSteps = status === "done" ? total : Math.max(step - (active ? 1 : 0), 0);
      stepLabel.textContent = `Step ${step}/${total}`;
      setBar(stepBar, doneSteps / total, { text: `step ${step} of ${total}` });
      stepBar.outer.setAttribute("aria-valuemax", String(total));
      stepBar.outer.setAttribute("aria-valuenow", String(doneSteps));
      instruction.textContent = get("instruction") || "";
    }
    drawSteps(status);

    const warningList = get("warnings") || [];
    warnings.replaceChildren(...warningList.map((w) => node("li", "", w)));
    warnings.hidden = warningList.length === 0;

    const layers = store ? store.layers : (model.get("layers") || []);
    layersBox.hidden = layers.length === 0;
    layersTitle.textContent = kind === "push" ? "Layers" : "Base image layers";
    const seen = new Set();
    for (const layer of layers) {
      seen.add(layer.id);
      const r = layerRow(layer.id);
      r.status.textContent = layer.status;
      const fraction = layer.done ? 1 : (layer.total ? layer.current / layer.total : 0);
      // Animated only while the run is alive: a failed push leaves no "Preparing" bar moving.
      setBar(r.bar, fraction, { indeterminate: active && !layer.done && !layer.total && /ing$/.test(layer.status) });
      r.bytes.textContent = layer.total ? `${humanBytes(layer.current)} / ${humanBytes(layer.total)}` : "";
      r.row.classList.toggle("dcs-done", Boolean(layer.done));
    }
    for (const [id, r] of rows) {
      if (!seen.has(id)) { r.row.remove(); rows.delete(id); }
    }
    const bytesTotal = get("bytes_total");
    const fraction = get("fraction") || 0;
    let label = `${get("layers_done")}/${get("layers_total")} layers`;
    if (bytesTotal) label += `, ${humanBytes(get("bytes_current"))} / ${humanBytes(bytesTotal)}`;
    if (active && get("rate_bps")) {
      label += `, ${humanBytes(get("rate_bps"))}/s`;
      if (get("eta_s") !== null && get("eta_s") !== undefined) label += `, ${formatElapsed(get("eta_s"))} left`;
    }
    totalLabel.textContent = label;
    totalPct.textContent = `${Math.floor(fraction * 100)}%`;
    setBar(totalBar, fraction, { text: `${Math.floor(fraction * 100)}%` });

    const lines = store ? store.lines : (model.get("log_tail") || []);
    const pending = store ? store.pending : (model.get("log_pending") || "");
    const count = store ? Math.max(store.first + store.lines.length, get("log_lines") || 0) : (get("log_lines") || 0);
    details.hidden = kind !== "build";
    summary.textContent = count > lines.length
      ? `Log: last ${lines.length} of ${count} lines` : `Log: ${count} lines`;
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    pre.textContent = (active && pending ? [...lines, pending] : lines).join("\n");
    if (atBottom) pre.scrollTop = pre.scrollHeight;
    const path = get("log_path");
    logPath.hidden = !path;
    logPath.textContent = path ? `Full log: ${path}` : "";

    const value = kind === "push" ? (get("pinned") || get("digest")) : get("image_id");
    result.hidden = !(status === "done" && value);
    resultLabel.textContent = kind === "push" ? "Pinned:" : "Image:";
    resultText.textContent = value || "";

    const message = get("error");
    error.hidden = !(status === "failed" && message);
    errorTitle.textContent = kind === "push" ? "Push failed" : "Build failed";
    errorText.textContent = message || "";
  }

  function schedule() {
    if (frame === null) frame = requestAnimationFrame(draw);
  }

  const onChange = () => schedule();
  model.on("change", onChange);
  if (store) store.listeners.add(schedule);
  const ticker = setInterval(drawTimes, 1000);
  draw();

  return () => {
    clearInterval(ticker);
    if (frame !== null) cancelAnimationFrame(frame);
    model.off("change", onChange);
    if (store) store.listeners.delete(schedule);
    releaseFocus();
  };
}

export default { render, attach, setup, storeFor, keepFocusInCell };
