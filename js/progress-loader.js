// dcs-magic progress widget loader: the only code sent with every widget (anywidget `_esm`;
// comments and indentation are stripped before sending, see dcs_magic.jupyter.widgets.compact_source;
// short on purpose: it is sent with every build).
// The drawing code, the CSS and each widget's log store live in progress.js + progress.css,
// held ONCE per kernel by a shared model (`_module` = "IPY_MODEL_<id>", FrontEndModule) and
// imported ONCE per page, cached on globalThis by their hash; the module's `setup` adds the
// CSS. Custom messages that arrive before the module is loaded are queued and handed to it
// (`attach`), so no delta is lost.
const G = (globalThis.__dcsMagicProgress ??= { modules: new Map() });
async function load(model) {
  const m = await model.widget_manager.get_model(model.get("_module").slice(10)), h = m.get("hash");
  if (!G.modules.has(h)) {
    const url = URL.createObjectURL(new Blob([m.get("js")], { type: "text/javascript" }));
    G.modules.set(h, import(url).then((x) => (x.setup(m), x)).finally(() => URL.revokeObjectURL(url)));
  }
  return G.modules.get(h);
}
export default {
  initialize({ model }) {
    const q = [], f = (msg) => q.push(msg);
    model.on("msg:custom", f);
    const d = load(model).then((x) => (model.off("msg:custom", f), x.attach(model, q)));
    return () => d.then((fn) => fn());
  },
  async render({ model, el }) {
    const x = await load(model);
    return x.render({ model, el, store: x.storeFor(model) });
  },
};
