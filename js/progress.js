// dcs-magic build/push progress widget (anywidget ES module; no bundler, no network imports).
//
// The Python side (dcs_magic/widgets.py ProgressWidget) syncs plain display state, at most
// about ten times a second. This module draws it: title and status, step bar N/M with the
// current instruction, elapsed time (ticking locally between syncs), warnings, per-layer
// bars with bytes and a total bar, a collapsible log tail, the final image id / digest
// (selectable, with a copy button) and failures in a red block.

const TRAITS = [
  "kind", "title", "status", "step", "total_steps", "instruction", "log_tail", "log_lines",
  "layers", "layers_done", "layers_total", "bytes_current", "bytes_total", "fraction",
  "elapsed_s", "image_id", "reference", "digest", "pinned", "error", "warnings",
];

export function humanBytes(n) {
  if (!n) return "0 B";
  const units = ["B", "kB", "MB", "GB", "TB"];
  let value = n;
  let i = 0;
  while (Math.abs(value) >= 1000 && i < units.length - 1) {
    value /= 1000;
    i += 1;
  }
  return i === 0 ? `${value} B` : `${value.toFixed(1)} ${units[i]}`;
}

export function formatElapsed(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const m = Math.floor(s / 60);
  return m ? `${m}m ${String(s % 60).padStart(2, "0")}s` : `${(Math.max(0, seconds)).toFixed(1)}s`;
}

function node(tag, className, text) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (text !== undefined) el.textContent = text;
  return el;
}

function bar(className) {
  const outer = node("div", `dcs-bar ${className || ""}`.trim());
  const inner = node("div", "dcs-bar-fill");
  outer.appendChild(inner);
  return { outer, inner };
}

function setBar(b, fraction, indeterminate) {
  const pct = Math.max(0, Math.min(1, fraction || 0)) * 100;
  b.inner.style.width = `${pct.toFixed(1)}%`;
  b.outer.classList.toggle("dcs-indeterminate", Boolean(indeterminate));
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

function render({ model, el }) {
  const root = node("div", "dcs-progress");
  const header = node("div", "dcs-header");
  const title = node("span", "dcs-title");
  const badge = node("span", "dcs-badge");
  const elapsed = node("span", "dcs-elapsed");
  header.append(title, badge, elapsed);

  const stepRow = node("div", "dcs-step");
  const stepLabel = node("span", "dcs-step-label");
  const stepBar = bar("dcs-step-bar");
  const instruction = node("code", "dcs-instruction");
  stepRow.append(stepLabel, stepBar.outer, instruction);

  const warnings = node("ul", "dcs-warnings");

  const layersBox = node("div", "dcs-layers");
  const layersTitle = node("div", "dcs-layers-title");
  const layerRows = node("div", "dcs-layer-rows");
  const totalRow = node("div", "dcs-total");
  const totalLabel = node("span", "dcs-total-label");
  const totalBar = bar("dcs-total-bar");
  totalRow.append(totalLabel, totalBar.outer);
  layersBox.append(layersTitle, layerRows, totalRow);

  const details = node("details", "dcs-log");
  const summary = node("summary", "dcs-log-summary");
  const pre = node("pre", "dcs-log-text");
  details.append(summary, pre);

  const result = node("div", "dcs-result");
  const resultLabel = node("span", "dcs-result-label");
  const resultText = node("code", "dcs-result-text");
  const copy = node("button", "dcs-copy", "Copy");
  copy.type = "button";
  copy.addEventListener("click", () => copyText(resultText.textContent, copy));
  result.append(resultLabel, resultText, copy);

  const error = node("div", "dcs-error");
  const errorTitle = node("div", "dcs-error-title");
  const errorText = node("pre", "dcs-error-text");
  error.append(errorTitle, errorText);

  root.append(header, stepRow, warnings, layersBox, details, result, error);
  el.appendChild(root);

  const rows = new Map();  // layer id -> { row, status, bar, bytes }
  let receivedAt = Date.now();
  let frame = null;

  function layerRow(id) {
    let r = rows.get(id);
    if (!r) {
      const row = node("div", "dcs-layer");
      const name = node("code", "dcs-layer-id", id);
      const status = node("span", "dcs-layer-status");
      const b = bar("dcs-layer-bar");
      const bytes = node("span", "dcs-layer-bytes");
      row.append(name, status, b.outer, bytes);
      layerRows.appendChild(row);
      r = { row, status, bar: b, bytes };
      rows.set(id, r);
    }
    return r;
  }

  function drawElapsed() {
    const base = model.get("elapsed_s") || 0;
    const running = model.get("status") === "running" || model.get("status") === "starting";
    const extra = running ? (Date.now() - receivedAt) / 1000 : 0;
    elapsed.textContent = formatElapsed(base + extra);
  }

  function draw() {
    frame = null;
    const kind = model.get("kind");
    const status = model.get("status");
    root.dataset.status = status;
    title.textContent = `${kind === "push" ? "Push" : "Build"} ${model.get("title") || ""}`.trim();
    badge.textContent = status;
    badge.className = `dcs-badge dcs-badge-${status}`;
    drawElapsed();

    const total = model.get("total_steps");
    stepRow.hidden = kind !== "build" || !total;
    if (total) {
      stepLabel.textContent = `Step ${model.get("step")}/${total}`;
      setBar(stepBar, status === "done" ? 1 : (model.get("step") - 1) / total);
      instruction.textContent = model.get("instruction") || "";
    }

    const warningList = model.get("warnings") || [];
    warnings.replaceChildren(...warningList.map((w) => node("li", "", w)));
    warnings.hidden = warningList.length === 0;

    const layers = model.get("layers") || [];
    layersBox.hidden = layers.length === 0;
    layersTitle.textContent = kind === "push" ? "Layers" : "Base image layers";
    const seen = new Set();
    for (const layer of layers) {
      seen.add(layer.id);
      const r = layerRow(layer.id);
      r.status.textContent = layer.status;
      const fraction = layer.done ? 1 : (layer.total ? layer.current / layer.total : 0);
      setBar(r.bar, fraction, !layer.done && !layer.total && /ing$/.test(layer.status));
      r.bytes.textContent = layer.total ? `${humanBytes(layer.current)} / ${humanBytes(layer.total)}` : "";
      r.row.classList.toggle("dcs-done", Boolean(layer.done));
    }
    for (const [id, r] of rows) {
      if (!seen.has(id)) { r.row.remove(); rows.delete(id); }
    }
    const bytesTotal = model.get("bytes_total");
    totalLabel.textContent = `${model.get("layers_done")}/${model.get("layers_total")} layers` +
      (bytesTotal ? `, ${humanBytes(model.get("bytes_current"))} / ${humanBytes(bytesTotal)}` : "");
    setBar(totalBar, model.get("fraction"));

    const lines = model.get("log_tail") || [];
    const count = model.get("log_lines") || 0;
    details.hidden = kind !== "build";
    summary.textContent = count > lines.length
      ? `Log: last ${lines.length} of ${count} lines` : `Log: ${count} lines`;
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    pre.textContent = lines.join("\n");
    if (atBottom) pre.scrollTop = pre.scrollHeight;

    const value = kind === "push" ? (model.get("pinned") || model.get("digest")) : model.get("image_id");
    result.hidden = !(status === "done" && value);
    resultLabel.textContent = kind === "push" ? "Pinned:" : "Image:";
    resultText.textContent = value || "";

    const message = model.get("error");
    error.hidden = !(status === "failed" && message);
    errorTitle.textContent = kind === "push" ? "Push failed" : "Build failed";
    errorText.textContent = message || "";
  }

  function schedule() {
    receivedAt = Date.now();
    if (frame === null) frame = requestAnimationFrame(draw);
  }

  for (const name of TRAITS) model.on(`change:${name}`, schedule);
  const ticker = setInterval(drawElapsed, 1000);
  draw();

  return () => {
    clearInterval(ticker);
    if (frame !== null) cancelAnimationFrame(frame);
    for (const name of TRAITS) model.off(`change:${name}`, schedule);
  };
}

export default { render };
