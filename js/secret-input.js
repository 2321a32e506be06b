// dcs-magic secret input (dcs_magic.jupyter.secret_input.SecretInput): a labelled native
// <input type="password"> and its button, drawn here so that what is typed is never a widget
// trait (anywidget `_esm`; comments and indentation are stripped before sending).
// The value leaves the page once, in a custom message {type: "submit", value}, when the button
// is clicked or Enter is pressed in the box, and the box is emptied at once: nothing typed is in
// the model, so it is in no widget state and no saved notebook. The kernel answers
// {type: "done"} once it has handled it; until then another click sends nothing (a double click
// must not send an empty value whose answer would replace the outcome). Synced, all of them
// plain text: label, placeholder, button, button_tooltip, disabled.
// Keyboard: native controls in the page's tab order, the label tied to the box (`for`), a
// visible focus ring (secret-input.css); keystrokes in the box stay out of JupyterLab's shortcuts.
let serial = 0;
const PENDING_MS = 60000;

export default {
  render({ model, el }) {
    const id = `dcs-secret-input-${++serial}-${Math.random().toString(36).slice(2, 8)}`;
    el.classList.add("dcs-secret-input");
    const label = document.createElement("label");
    label.htmlFor = id;
    const input = document.createElement("input");
    input.id = id;
    input.type = "password";
    input.setAttribute("autocomplete", "off");
    input.spellcheck = false;
    const button = document.createElement("button");
    button.type = "button";
    el.replaceChildren(label, input, button);

    let pending = null;
    const idle = () => {
      clearTimeout(pending);
      pending = null;
      button.removeAttribute("aria-busy");
    };
    const show = () => {
      label.textContent = model.get("label");
      input.placeholder = model.get("placeholder");
      button.textContent = model.get("button");
      button.title = model.get("button_tooltip");
      input.disabled = button.disabled = model.get("disabled");
    };
    const submit = () => {
      if (pending !== null || input.disabled) return;
      const value = input.value;
      input.value = "";
      pending = setTimeout(idle, PENDING_MS);  // a kernel that never answers does not lock the button
      button.setAttribute("aria-busy", "true");
      model.send({ type: "submit", value });
    };
    const onMsg = (msg) => { if (msg && msg.type === "done") idle(); };
    const onKey = (e) => {
      e.stopPropagation();
      if (e.key === "Enter" && !e.isComposing) { e.preventDefault(); submit(); }
    };
    button.addEventListener("click", submit);
    input.addEventListener("keydown", onKey);
    model.on("change", show);
    model.on("msg:custom", onMsg);
    show();
    return () => {
      idle();
      input.value = "";
      model.off("change", show);
      model.off("msg:custom", onMsg);
    };
  },
};
