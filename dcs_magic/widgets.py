"""Progress display for builds and pushes: an anywidget, a text fallback, and a chooser.

Both displays are *sinks* for dcs_magic.pipeline: `update(snapshot)` (already throttled by
the pipeline) and `close(snapshot)` (the final state); the widget also takes
`bind_cancel(cancel)` (its Stop button). Snapshots are `dcs_magic.progress.ProgressSnapshot`
dicts; the widget's synced traits are exactly the snapshot's fields, so a saved notebook
re-renders the last state and never contains a credential.

Traffic (issue 12): during a run the widget sends ONE custom message per update with only
what changed: new log lines with their index (`first`), the line being written, changed
layers and steps, changed scalar fields, and the kernel's clock (`t`). Elapsed time alone
never causes a message: the front-end ticks it from `started_at`. The front-end keeps the
log tail; when it sees a gap in the line indexes (or renders a widget it has no lines for)
it asks for a resync (`{"type": "resync"}`) and gets the whole bounded tail. The Python
traits are kept current without syncing (so a page reload gets the current state); at
`close()` the final state is synced once (so saved widget state shows the outcome).

The front-end code (js/progress.js + js/progress.css, 17 KB) is sent ONCE per kernel in a
shared `FrontEndModule` model; each widget's own `_esm` is a 2 KB loader
(js/progress-loader.js) that imports the module once per page. A wheel ships js/ as
`dcs_magic/static/` (pyproject force-include); a source checkout reads `js/`.

When the run ends the widget also leaves a static record (`ProgressRecord`: status, image id
or pinned digest, log path, duration) in the output, which renders without a kernel.
"""

from __future__ import annotations

import hashlib
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import anywidget
import ipywidgets
import traitlets as t

from .progress import ProgressSnapshot, format_line
from .results import ProgressRecord

__all__ = ["FrontEndModule", "ProgressWidget", "TextProgress", "asset_path", "has_widget_frontend",
           "kernel_id", "progress_sink"]

DELTA_FIELDS = ("log_tail", "log_first", "log_lines", "log_pending", "layers", "steps")
"""Snapshot fields sent as deltas (appended lines, changed layers/steps), not as values."""


def asset_path(name: str) -> Path:
    """`static/NAME` inside the installed package, else the source checkout's `js/NAME`."""
    package = Path(__file__).resolve().parent
    for candidate in (package / "static" / name, package.parent / "js" / name):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"dcs-magic front-end file {name} is missing (looked in "
                            f"{package / 'static'} and {package.parent / 'js'}); reinstall dcs-magic")


def kernel_id() -> str:
    """This kernel's id as the Jupyter server knows it (`kernel-<id>.json`), or "".

    Not a secret (it is in every kernel URL); the Stop button of a foreground build uses it
    to ask the server to interrupt the kernel, whose shell channel is busy with the cell.
    """
    if "ipykernel" not in sys.modules:  # not in a kernel; importing it would patch `comm`
        return ""
    try:
        from ipykernel.connect import get_connection_file

        name = Path(get_connection_file()).name
    except (ImportError, RuntimeError, OSError):  # no kernel connection file (terminal IPython)
        return ""
    match = re.fullmatch(r"kernel-([0-9A-Za-z-]+)\.json", name)
    return match[1] if match else ""


class FrontEndModule(ipywidgets.Widget):
    """The progress widget's JS and CSS, one model per kernel shared by every ProgressWidget.

    A plain widget model (no view): the front-end's widget manager keeps its state once per
    page, and js/progress-loader.js imports the code once per page by its `hash`.
    """

    js = t.Unicode(help="js/progress.js").tag(sync=True)
    css = t.Unicode(help="js/progress.css").tag(sync=True)
    hash = t.Unicode(help="sha256 of js + css: the page's cache key").tag(sync=True)

    _shared: FrontEndModule | None = None
    _lock = threading.Lock()

    @classmethod
    def shared(cls) -> FrontEndModule:
        """The kernel's module model (made again if it was closed)."""
        with cls._lock:
            module = cls._shared
            if module is None or module.comm is None:
                js = asset_path("progress.js").read_text(encoding="utf-8")
                css = asset_path("progress.css").read_text(encoding="utf-8")
                digest = hashlib.sha256((js + "\0" + css).encode("utf-8")).hexdigest()[:16]
                module = cls._shared = cls(js=js, css=css, hash=digest)
            return module


class ProgressWidget(anywidget.AnyWidget):
    """Live build/push progress: steps with durations, elapsed time, log tail, layer bars
    weighted by bytes with rate and time left, result, error, and a Stop button.

    Public synced traits == ProgressSnapshot fields (tests/unit/test_progress.py checks it);
    `_`-prefixed traits are the widget's own plumbing (loader, stop).
    """

    _esm = asset_path("progress-loader.js")

    # -- ProgressSnapshot, field by field --
    kind = t.Unicode("build", help="'build' or 'push'").tag(sync=True)
    title = t.Unicode("", help="Build context name or pushed reference").tag(sync=True)
    status = t.Unicode("starting", help="starting | running | done | failed | cancelled").tag(sync=True)
    error = t.Unicode(None, allow_none=True, help="The failure's message").tag(sync=True)
    warnings = t.List(t.Unicode(), help="Warnings the user should see").tag(sync=True)
    started_at = t.Float(0.0, help="Epoch seconds (kernel clock) the run started").tag(sync=True)
    elapsed_s = t.Float(0.0, help="Duration; synced when the run ends (the page ticks it)").tag(sync=True)
    layers = t.List(t.Dict(), help="Per layer: id, status, current, total, done").tag(sync=True)
    layers_done = t.Int(0).tag(sync=True)
    layers_total = t.Int(0).tag(sync=True)
    bytes_current = t.Int(0, help="Bytes sent/received of the layers with a known size").tag(sync=True)
    bytes_total = t.Int(0, help="Sum of the known layer sizes").tag(sync=True)
    fraction = t.Float(0.0, help="Total progress, weighted by bytes").tag(sync=True)
    rate_bps = t.Float(0.0, help="Bytes per second (smoothed)").tag(sync=True)
    eta_s = t.Float(None, allow_none=True, help="Seconds left at the current rate").tag(sync=True)
    step = t.Int(0, help="The user's step running (appended LABEL steps not counted)").tag(sync=True)
    total_steps = t.Int(0, help="The user's steps in the Dockerfile").tag(sync=True)
    instruction = t.Unicode("", help="The Dockerfile instruction of the current step").tag(sync=True)
    steps = t.List(t.Dict(), help="Per step: n, instruction, cached, started_s, duration_s").tag(sync=True)
    log_tail = t.List(t.Unicode(), help="The last lines of the build log (bounded in lines and bytes)"
                      ).tag(sync=True)
    log_first = t.Int(0, help="Index of log_tail[0] in the whole log").tag(sync=True)
    log_lines = t.Int(0, help="How many log lines the build wrote in total").tag(sync=True)
    log_pending = t.Unicode("", help="The log line being written (bounded)").tag(sync=True)
    log_path = t.Unicode(None, allow_none=True, help="The full build log file").tag(sync=True)
    image_id = t.Unicode(None, allow_none=True).tag(sync=True)
    failed_step = t.Int(None, allow_none=True).tag(sync=True)
    reference = t.Unicode("").tag(sync=True)
    repository = t.Unicode("").tag(sync=True)
    digest = t.Unicode(None, allow_none=True).tag(sync=True)
    pinned = t.Unicode(None, allow_none=True).tag(sync=True)
    size = t.Int(None, allow_none=True).tag(sync=True)

    # -- plumbing --

    _module = t.Unicode("", help="IPY_MODEL_<id> of the shared FrontEndModule").tag(sync=True)
    _uid = t.Unicode("", help="Key of this widget's log store in the page").tag(sync=True)
    _kernel_id = t.Unicode("", help="Kernel id for the Stop button of a foreground run").tag(sync=True)
    _foreground = t.Bool(True, help="True while the run blocks the cell: Stop interrupts the "
                         "kernel (comm messages wait until the cell ends)").tag(sync=True)
    _can_stop = t.Bool(False, help="A cancel function is bound (Stop of a background run)").tag(sync=True)

    def __init__(self, kind: str = "build", title: str = "", *, foreground: bool = True,
                 **kwargs: Any) -> None:
        module = FrontEndModule.shared()
        super().__init__(kind=kind, title=title, status="starting", _module=f"IPY_MODEL_{module.model_id}",
                         _uid=uuid.uuid4().hex, _kernel_id=kernel_id(), _foreground=foreground, **kwargs)
        self._module_ref = module  # keep the shared model alive as long as a widget uses it
        self._sync_lock = threading.RLock()
        self._quiet: set[str] = set()
        self._sent_lines = 0
        self._sent_layers: dict[str, dict] = {}
        self._sent_steps: dict[int, dict] = {}
        self._cancel: Callable[[], None] | None = None
        self._record: Any = None
        self.on_msg(self._on_front_end_msg)

    # -- sink interface ----------------------------------------------------------------

    def bind_cancel(self, cancel: Callable[[], None]) -> None:
        """Sink interface: the function the Stop button calls (from the front-end's message)."""
        self._cancel = cancel
        self._can_stop = True

    def update(self, snapshot: ProgressSnapshot | dict) -> None:
        """Show a running snapshot: one message with what changed (nothing if only time did)."""
        with self._sync_lock:
            message = self._delta(snapshot, final=False)
            if message is not None and self.comm is not None:
                self.send(message)

    def close(self, snapshot: ProgressSnapshot | dict | None = None) -> None:
        """Sink interface: show the final snapshot (the widget stays on screen) and leave the
        static record under it.

        Without a snapshot this is ipywidgets' own `close()` (removes the widget).
        """
        if snapshot is None:
            super().close()
            return
        with self._sync_lock:
            message = self._delta(snapshot, final=True)
            if self.comm is not None:
                if message is not None:
                    self.send(message)
                # One state message with the final values, so saved widget state shows the
                # outcome; the log tail stays in the kernel (it is in the log file).
                self.send_state([name for name in self._display_traits() if name != "log_tail"])
        self.show_record(snapshot)

    # -- the static record ---------------------------------------------------------------

    def display_with_record(self) -> None:
        """Display the widget and, under it, the place where the static record will appear."""
        from IPython.display import display

        display(self)
        # An empty placeholder now, replaced by the record at close(), also from a background
        # thread: update_display finds the right cell whatever runs at that moment.
        self._record = display({"text/plain": ""}, raw=True, display_id=True)

    def show_record(self, snapshot: ProgressSnapshot | dict) -> None:
        """Replace the placeholder with the outcome (no-op when the widget was not displayed)."""
        if self._record is None:
            return
        record = ProgressRecord.from_snapshot(dict(snapshot))
        self._record.update(record._repr_mimebundle_(), raw=True)

    # -- the delta protocol ----------------------------------------------------------------

    def _delta(self, snapshot: ProgressSnapshot | dict, *, final: bool) -> dict | None:
        """Set the traits (without syncing) and build the message of what changed."""
        names = self._display_traits()
        running = snapshot.get("status") == "running" and not final
        state: dict[str, Any] = {}
        for key, value in snapshot.items():
            if key not in names or key in DELTA_FIELDS:
                continue
            if key == "elapsed_s" and running:
                continue  # the front-end ticks it from started_at
            if getattr(self, key) != value:
                state[key] = value
        message: dict[str, Any] = {}
        lines_first, lines = self._new_lines(snapshot)
        if lines:
            message.update(first=lines_first, lines=lines)
        pending = str(snapshot.get("log_pending") or "")
        if pending != self.log_pending:
            message["pending"] = pending
        layers = [layer for layer in snapshot.get("layers") or []
                  if self._sent_layers.get(layer["id"]) != layer]
        if layers:
            message["layers"] = layers
            self._sent_layers.update((layer["id"], dict(layer)) for layer in layers)
            if len(self._sent_layers) != len(snapshot.get("layers") or []):
                message["layer_ids"] = [layer["id"] for layer in snapshot.get("layers") or []]
        steps = [step for step in snapshot.get("steps") or [] if self._sent_steps.get(step["n"]) != step]
        if steps:
            message["steps"] = steps
            self._sent_steps.update((step["n"], dict(step)) for step in steps)
        self._set_quietly({**state, **{k: snapshot[k] for k in DELTA_FIELDS if k in snapshot}})  # type: ignore[literal-required]
        if not message and not state:
            return None
        message.update(type="delta", t=round(time.time(), 3), state=state)
        return message

    def _new_lines(self, snapshot: ProgressSnapshot | dict) -> tuple[int, list[str]]:
        tail = list(snapshot.get("log_tail") or [])
        total = int(snapshot.get("log_lines") or 0)
        first = int(snapshot.get("log_first", total - len(tail)) or 0)
        start = max(self._sent_lines, first)  # lines that left the tail meanwhile are skipped
        self._sent_lines = max(self._sent_lines, total)
        return start, tail[start - first:] if start < total else []

    def _resync_message(self) -> dict:
        return {"type": "tail", "t": round(time.time(), 3), "first": self.log_first,
                "lines": list(self.log_tail), "pending": self.log_pending, "layers": list(self.layers),
                "layer_ids": [layer["id"] for layer in self.layers], "steps": list(self.steps),
                "state": self._snapshot()}

    def _on_front_end_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if not isinstance(content, dict):
            return
        if content.get("type") == "resync":
            with self._sync_lock:
                message = self._resync_message()
                message["state"].pop("log_tail", None)
                self.send(message)
        elif content.get("type") == "stop" and self._cancel is not None and self.status in ("starting", "running"):
            self._cancel()

    def _set_quietly(self, values: dict[str, Any]) -> None:
        """Assign traits without ipywidgets sending them (the delta message carries them)."""
        self._quiet.update(values)
        try:
            for key, value in values.items():
                setattr(self, key, value)
        finally:
            self._quiet.difference_update(values)

    def _should_send_property(self, key: str, value: Any) -> bool:
        # ipywidgets' hook for "is this change worth a message": not while _set_quietly runs.
        if key in self._quiet:
            return False
        return super()._should_send_property(key, value)

    @classmethod
    def _display_traits(cls) -> frozenset[str]:
        """The public synced traits: the ProgressSnapshot fields."""
        names = cls.__dict__.get("_dcs_names")
        if names is None:
            inherited = set(ipywidgets.DOMWidget.class_trait_names(sync=True))  # layout, tooltip, ...
            names = frozenset(n for n in cls.class_trait_names(sync=True)
                              if not n.startswith("_") and n not in inherited)
            cls._dcs_names = names
        return names

    def __repr__(self) -> str:
        # Also the text/plain fallback a widget-less front-end keeps, frozen at display time:
        # say what it is rather than a state that will look stuck.
        if self.status == "starting":
            # What a reopened notebook without widget state shows: point at the static record.
            return f"ProgressWidget({self.kind} {self.title!r}: live progress; its outcome is recorded below)"
        return f"ProgressWidget({format_line(self._snapshot())})"

    def _snapshot(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._display_traits()}


class TextProgress:
    """Throttled plain-text progress for terminals and front-ends without widgets.

    Prints a line when the headline changes (new step, layer counts), not on every update,
    so a 20,000-line build prints a handful of lines; the full log stays in its file.
    With `foreground=True` (a magic running in the cell) a cancelled run's close() prints
    nothing: the raised `Cancelled` is shown as the cell's one line ("Build cancelled; step
    container removed"), which says it once. A `--bg` job has no such line, so it prints.
    """

    def __init__(self, stream: TextIO | None = None, *, foreground: bool = False) -> None:
        self.stream = stream
        self.foreground = foreground
        self._last = ""
        self._warned: set[str] = set()

    def _print(self, text: str) -> None:
        print(text, file=self.stream or sys.stdout, flush=True)

    def _warnings(self, snapshot: ProgressSnapshot | dict) -> None:
        for warning in snapshot.get("warnings") or []:
            if warning not in self._warned:
                self._warned.add(warning)
                self._print(f"Warning: {warning}")

    def update(self, snapshot: ProgressSnapshot | dict) -> None:
        """Print the headline when it changed."""
        self._warnings(snapshot)
        headline = format_line(snapshot, elapsed=False)
        if headline != self._last:
            self._last = headline
            self._print(format_line(snapshot))

    def close(self, snapshot: ProgressSnapshot | dict) -> None:
        """Print the outcome line (not for a foreground cancel: the error's line says it)."""
        self._warnings(snapshot)
        self._last = format_line(snapshot, elapsed=False)
        if self.foreground and snapshot.get("status") == "cancelled":
            return
        self._print(format_line(snapshot))  # a failure's details come with the raised error


def has_widget_frontend() -> bool:
    """True inside a Jupyter kernel (widget messages have somewhere to go)."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def progress_sink(kind: str, mode: str = "auto", *, title: str = "", display: bool = True,
                  foreground: bool = True) -> ProgressWidget | TextProgress | None:
    """The display for one build/push: 'widget', 'text', 'none', or 'auto'.

    'auto' uses the widget in a Jupyter kernel and text elsewhere (terminal IPython). A
    widget is displayed right away when `display` is true, with the place for its static
    record under it. `foreground` is False for `--bg` jobs (Stop then messages the kernel
    instead of interrupting it).
    """
    if mode == "none":
        return None
    if mode == "auto":
        mode = "widget" if has_widget_frontend() else "text"
    if mode == "text":
        return TextProgress(foreground=foreground)
    if mode != "widget":
        raise ValueError(f"progress mode must be auto, widget, text or none, not {mode!r}")
    widget = ProgressWidget(kind=kind, title=title, foreground=foreground)
    if display:
        widget.display_with_record()
    return widget
