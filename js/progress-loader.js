// dcs-magic progress widget loader: the only code sent with every widget (anywidget `_esm`).
//
// The drawing code (progress.js + progress.css) lives ONCE per kernel in a shared widget
// model (`_module` = "IPY_MODEL_<id>", dcs_magic.widgets.FrontEndModule) and is imported
// ONCE per page, cached on globalThis by its hash. This file also keeps each widget's log
// store: the kernel sends only deltas (new lines with their index, changed layers/steps,
// changed fields), so the store must exist from the model's creation (`initialize`), before
// any view renders. A gap in the line indexes asks the kernel for a resync.

const G = (globalThis.__dcsMagicProgress ??= { modules: new Map(), loads: 0, loadedBytes: 0, stores: new Map() });
const MAX_LINES = 200;
const MAX_BYTES = 64 * 1024;

function makeStore(model) {
  const store = {
    values: {}, first: 0, lines: [], bytes: 0, pending: "", layers: [], steps: new Map(),
    skew: null, listeners: new Set(), resyncAsked: false, messages: 0,
    get(name) { return name in this.values ? this.values[name] : model.get(name); },
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

function onMessage(store, model, msg) {
  if (!msg || (msg.type !== "delta" && msg.type !== "tail")) return;
  store.messages += 1;
  if (typeof msg.t === "number") {
    const skew = Date.now() / 1000 - msg.t;  // browser clock minus kernel clock (+ latency)
    store.skew = store.skew === null ? skew : Math.min(store.skew, skew);
  }
  Object.assign(store.values, msg.state || {});
  if (msg.type === "tail") {
    seed(store, msg.first || 0, msg.lines || []);
    store.layers = [];
    store.steps.clear();
    store.resyncAsked = false;
  } else if (msg.lines) {
    const next = store.first + store.lines.length;
    if (msg.first > next && !store.resyncAsked) {
      // A gap (e.g. the view was created mid-run): ask for the whole tail; a busy kernel
      // answers when the cell ends, meanwhile the new lines are shown.
      store.resyncAsked = true;
      model.send({ type: "resync" });
    }
    append(store, msg.first, msg.lines);
  }
  if ("pending" in msg) store.pending = msg.pending;
  if (msg.layers || msg.layer_ids) mergeLayers(store, msg.layers, msg.layer_ids);
  for (const step of msg.steps || []) store.steps.set(step.n, step);
  store.notify();
}

function storeFor(model) {
  const uid = model.get("_uid");
  let store = G.stores.get(uid);
  if (!store) {
    store = makeStore(model);
    G.stores.set(uid, store);
  }
  return store;
}

async function loadModule(model) {
  const id = String(model.get("_module") || "").replace(/^IPY_MODEL_/, "");
  const holder = await model.widget_manager.get_model(id);
  const hash = holder.get("hash");
  let entry = G.modules.get(hash);
  if (!entry) {
    entry = (async () => {
      const js = holder.get("js");
      const css = holder.get("css");
      G.loads += 1;
      G.loadedBytes += js.length + css.length;
      if (!document.getElementById(`dcs-progress-css-${hash}`)) {
        const style = document.createElement("style");
        style.id = `dcs-progress-css-${hash}`;
        style.textContent = css;
        document.head.appendChild(style);
      }
      const url = URL.createObjectURL(new Blob([js], { type: "text/javascript" }));
      try {
        return await import(/* webpackIgnore: true */ url);
      } finally {
        URL.revokeObjectURL(url);
      }
    })();
    G.modules.set(hash, entry);
  }
  return entry;
}

export default {
  initialize({ model }) {
    const store = storeFor(model);
    const onMsg = (msg) => onMessage(store, model, msg);
    model.on("msg:custom", onMsg);
    // A model created with state (page reload, reopened notebook) has no deltas before it.
    const onState = () => {
      for (const name of Object.keys(store.values)) delete store.values[name];
      store.notify();
    };
    model.on("change:status", onState);
    return () => {
      model.off("msg:custom", onMsg);
      model.off("change:status", onState);
    };
  },
  async render({ model, el }) {
    const store = storeFor(model);
    const mod = await loadModule(model);
    return mod.render({ model, el, store });
  },
};
