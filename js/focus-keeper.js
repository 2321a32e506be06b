// dcs-magic launch form's focus keeper: an anywidget inside the form that draws nothing
// (anywidget `_esm`; comments and indentation are stripped before sending).
// When the form is removed while it has the keyboard focus (its static record replaces it:
// the cluster ended with DcsMagics.finished_widget = 'record', or Done was pressed), the
// removed button takes the focus with it and the browser drops it to <body>. The notebook
// cell that held the form (`.jp-Cell` in JupyterLab and Notebook 7, focusable) takes it.
// Focus inside the form is followed at the document (the form's element is an ancestor,
// attached after render); the cell is found while the form is still on the page.
export default {
  render({ el }) {
    let cell = null, inside = false;
    const form = () => el.closest(".dcs-launch");
    const onIn = (e) => {
      const f = form();
      if (f && f.contains(e.target)) { inside = true; cell = f.closest(".jp-Cell") || cell; }
    };
    const onOut = (e) => {
      const f = form();
      if (f && f.contains(e.target)) setTimeout(() => { if (f.isConnected) inside = f.contains(document.activeElement); }, 0);
    };
    document.addEventListener("focusin", onIn, true);
    document.addEventListener("focusout", onOut, true);
    return () => {
      document.removeEventListener("focusin", onIn, true);
      document.removeEventListener("focusout", onOut, true);
      const active = document.activeElement;
      if (inside && cell && cell.isConnected && (!active || active === document.body || !active.isConnected)) {
        cell.focus({ preventScroll: true });
      }
    };
  },
};
