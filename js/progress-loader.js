// dcs-magic progress widget loader: the only code sent with every widget (anywidget `_esm`;
// whole-line comments are stripped before sending, see dcs_magic.widgets.compact_source).
// The drawing code and each widget's log store live in progress.js + progress.css, held ONCE
// per kernel by a shared model (`_module` = "IPY_MODEL_<id>", FrontEndModule) and imported
// ONCE per page, cached on globalThis by their hash. Custom messages that arrive before the
// module is loaded are queued and handed to it (`attach`), so no delta is lost.
const G = (globalThis.__dcsMagicProgress ??= { modules: new Map(), loads: 0, loadedBytes: 0, stores: new Map() });
async function load(model) {
  const holder = await model.widget_manager.get_model(String(model.get("_module")).replace(/^IPY_MODEL_/, ""));
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
    const queued = [];
    const queue = (msg) => queued.push(msg);
    model.on("msg:custom", queue);
    const detach = load(model).then((mod) => {
      model.off("msg:custom", queue);
      return mod.attach(model, queued);
    });
    return () => { detach.then((fn) => fn()); };
  },
  async render({ model, el }) {
    const mod = await load(model);
    return mod.render({ model, el, store: mod.storeFor(model) });
  },
};
