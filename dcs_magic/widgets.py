"""Progress display for builds and pushes: an anywidget, a text fallback, and a chooser.

Both displays are *sinks* for dcs_magic.pipeline: `update(snapshot)` (already throttled by
the pipeline) and `close(snapshot)` (the final state). Snapshots are the plain dicts of
dcs_magic.progress; the widget's synced traits hold only that display state, so a saved
notebook re-renders the last state and never contains a credential.

The front-end is `js/progress.js` + `js/progress.css` (plain ES module, no bundler). A wheel
ships them as `dcs_magic/static/` (pyproject force-include); a source checkout reads `js/`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, TextIO

import anywidget
import traitlets as t

from .progress import format_line

__all__ = ["ProgressWidget", "TextProgress", "asset_path", "has_widget_frontend", "progress_sink"]


def asset_path(name: str) -> Path:
    """`static/NAME` inside the installed package, else the source checkout's `js/NAME`."""
    package = Path(__file__).resolve().parent
    for candidate in (package / "static" / name, package.parent / "js" / name):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"dcs-magic front-end file {name} is missing (looked in "
                            f"{package / 'static'} and {package.parent / 'js'}); reinstall dcs-magic")


class ProgressWidget(anywidget.AnyWidget):
    """Live build/push progress: steps, elapsed time, log tail, layer bars, result, error."""

    _esm = asset_path("progress.js")
    _css = asset_path("progress.css")

    kind = t.Unicode("build", help="'build' or 'push'").tag(sync=True)
    title = t.Unicode("", help="Build context name or pushed reference").tag(sync=True)
    status = t.Unicode("starting", help="starting | running | done | failed | cancelled").tag(sync=True)
    step = t.Int(0).tag(sync=True)
    total_steps = t.Int(0).tag(sync=True)
    instruction = t.Unicode("", help="The Dockerfile instruction of the current step").tag(sync=True)
    log_tail = t.List(t.Unicode(), help="The last lines of the build log (bounded)").tag(sync=True)
    log_lines = t.Int(0, help="How many log lines the build wrote in total").tag(sync=True)
    layers = t.List(t.Dict(), help="Per layer: id, status, current, total, done").tag(sync=True)
    layers_done = t.Int(0).tag(sync=True)
    layers_total = t.Int(0).tag(sync=True)
    bytes_current = t.Int(0).tag(sync=True)
    bytes_total = t.Int(0).tag(sync=True)
    fraction = t.Float(0.0).tag(sync=True)
    elapsed_s = t.Float(0.0).tag(sync=True)
    image_id = t.Unicode(None, allow_none=True).tag(sync=True)
    reference = t.Unicode("").tag(sync=True)
    digest = t.Unicode(None, allow_none=True).tag(sync=True)
    pinned = t.Unicode(None, allow_none=True).tag(sync=True)
    error = t.Unicode(None, allow_none=True).tag(sync=True)
    warnings = t.List(t.Unicode()).tag(sync=True)

    def update(self, snapshot: dict) -> None:
        """Show a snapshot; all changed traits go to the front-end in one message."""
        names = self._display_traits()
        with self.hold_sync():
            for key, value in snapshot.items():
                if key in names and getattr(self, key) != value:
                    setattr(self, key, value)

    def close(self, snapshot: dict | None = None) -> None:  # type: ignore[override]
        """Sink interface: show the final snapshot (the widget stays on screen).

        Without a snapshot this is ipywidgets' own `close()` (removes the widget).
        """
        if snapshot is None:
            super().close()
            return
        self.update(snapshot)

    @classmethod
    def _display_traits(cls) -> frozenset[str]:
        names = cls.__dict__.get("_dcs_names")
        if names is None:
            names = frozenset(n for n in cls.class_trait_names(sync=True) if not n.startswith("_"))
            cls._dcs_names = names
        return names

    def __repr__(self) -> str:
        # Also the text/plain fallback a widget-less front-end keeps, frozen at display time:
        # say what it is rather than a state that will look stuck.
        if self.status == "starting":
            return f"ProgressWidget({self.kind} {self.title!r}: live progress needs a widget front-end)"
        return f"ProgressWidget({format_line(self._snapshot())})"

    def _snapshot(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._display_traits()}


class TextProgress:
    """Throttled plain-text progress for terminals and front-ends without widgets.

    Prints a line when the headline changes (new step, layer counts), not on every update,
    so a 20,000-line build prints a handful of lines; the full log stays in its file.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self._last = ""
        self._warned: set[str] = set()

    def _print(self, text: str) -> None:
        print(text, file=self.stream or sys.stdout, flush=True)

    def _warnings(self, snapshot: dict) -> None:
        for warning in snapshot.get("warnings") or []:
            if warning not in self._warned:
                self._warned.add(warning)
                self._print(f"Warning: {warning}")

    def update(self, snapshot: dict) -> None:
        self._warnings(snapshot)
        headline = format_line(snapshot, elapsed=False)
        if headline != self._last:
            self._last = headline
            self._print(format_line(snapshot))

    def close(self, snapshot: dict) -> None:
        self._warnings(snapshot)
        self._last = format_line(snapshot, elapsed=False)
        self._print(format_line(snapshot))  # a failure's details come with the raised error


def has_widget_frontend() -> bool:
    """True inside a Jupyter kernel (widget messages have somewhere to go)."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def progress_sink(kind: str, mode: str = "auto", *, title: str = "", display: bool = True
                  ) -> ProgressWidget | TextProgress | None:
    """The display for one build/push: 'widget', 'text', 'none', or 'auto'.

    'auto' uses the widget in a Jupyter kernel and text elsewhere (terminal IPython). A
    widget is displayed right away when `display` is true.
    """
    if mode == "none":
        return None
    if mode == "auto":
        mode = "widget" if has_widget_frontend() else "text"
    if mode == "text":
        return TextProgress()
    if mode != "widget":
        raise ValueError(f"progress mode must be auto, widget, text or none, not {mode!r}")
    widget = ProgressWidget(kind=kind, title=title)
    if display:
        from IPython.display import display as show

        show(widget)
    return widget
