// dcs-magic progress widget loader: the only code sent with every widget (anywidget `_esm`;
// comments and indentation are stripped before sending, see dcs_magic.widgets.compact_source).
// The drawing code and each widget's log store live in progress.js + progress.css, held ONCE
// per kernel by a shared model (`_module` = "IPY_MODEL_<id>", FrontEndModule) and imported
// ONCE per page, cached on globalThis by their hash (G.loads / G.loadedBytes count it).
// Custom messages that arrive before the module is loaded are queued and handed to it
// (`attach`), so no delta is lost.
const G = (globalThis.__dcsMagicProgress ??= { modules: new Map(), loads: 0, loadedBytes: 0, stores: new Map() });
async function load(model) {
  const m = await model.widget_manager.get_model(model.get("_module").slice(10));
  const h = m.get("hash"), js = m.get("js"), css = m.get("css");
  if (!G.modules.has(h)) {
    G.loads += 1;
    G.loadedBytes += js.length + css.length;
    const s = document.createElement("style");
    s.id = `dcs-progress-css-${h}`;
    s.textContent = css;
    document.head.appendChild(s);
    const url = URL.createObjectURL(new Blob([js], { type: "text/javascript" }));
    G.modules.set(h, import(url).finally(() => URL.revokeObjectURL(url)));
  }
  return G.modules.get(h);
}
export default {
  initialize({ model }) {
    const q = [], f = (msg) => q.push(msg);
    model.on("msg:custom", f);
    const d = load(model).then((mod) => { model.off("msg:custom", f); return mod.attach(model, q); });
    return () => { d.then((fn) => fn()); };
  },
  async render({ model, el }) {
    const mod = await load(model);
    return mod.render({ model, el, store: mod.storeFor(model) });
  },
};
