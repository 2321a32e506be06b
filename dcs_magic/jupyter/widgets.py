"""Progress display for builds and pushes: an anywidget, a text fallback, and a chooser.

Both displays are *sinks* for dcs_magic.ops.runner: `update(snapshot)` (already throttled by
the pipeline) and `close(snapshot)` (the final state); the widget also takes
`bind_cancel(cancel)` (its Stop button). Snapshots are `dcs_magic.model.progress.ProgressSnapshot`
dicts; the widget's synced traits are exactly the snapshot's fields, so a saved notebook
re-renders the last state and never contains a credential.

Traffic (issue 12): during a run the widget sends custom messages with only what changed:
new log lines (one string) with the index of the first (`first`), the line being written,
changed layers, changed steps (only their changed keys once the page has them), changed
scalar fields, and, with a status change, the kernel's clock (`t`). Elapsed time alone never
causes a message: the front-end ticks it from `started_at`. Messages are paced by what they
carry: a changed field, step or layer goes out at once (at most one message per
`MIN_GAP_S`); new log lines alone wait until `LOG_BATCH_BYTES` of them are waiting (at most
once per `LOG_MIN_GAP_S`) or `LOG_GAP_S` passed, so a chatty build costs about its raw log
plus ~5%; a timer sends what was held back. The front-end keeps the log tail; when it sees a
gap in the line indexes it asks for a resync (`{"type": "resync"}`) and gets the whole
bounded tail. The Python traits are kept current without syncing (so a page reload gets the
current state); at `close()` the fields that differ from what the page's model received are
synced once, without the lists (so saved widget state, e.g. nbclient's, shows the outcome).
The comm_open leaves out empty fields.

Once per kernel, not per widget: the front-end code (js/progress.js + js/progress.css,
comments and indentation stripped) in a shared `FrontEndModule` model, and one shared
`Layout`. Each widget's own `_esm` is a 0.8 KB loader (js/progress-loader.js) that imports
the module once per page. A wheel ships js/ as `dcs_magic/static/` (pyproject
force-include); a source checkout reads `js/`.

When the run ends, the widget's output is replaced by the static record (`ProgressRecord`:
status, image id or pinned digest, failed step, error, last output lines and hint, the log
as a link, duration) and the widget's model is closed: the cell keeps one outcome block that
renders without a kernel or widget state.

`RunStates` is `%dcs_run`'s view of a job run: no widget, one display-id output updated at
each state change (a static record from the start), or printed lines outside Jupyter.
"""

from __future__ import annotations

import copy
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

from ..model.jobs import RunProgress, RunResult, RunStateChange
from ..model.progress import ProgressSnapshot, format_line
from ..model.results import ProgressRecord

__all__ = ["FocusKeeper", "FrontEndModule", "ProgressWidget", "RunStates", "TextProgress", "asset_path", "has_widget_frontend",
           "kernel_id", "progress_sink"]

DELTA_FIELDS = ("log_tail", "log_first", "log_lines", "log_pending", "layers", "steps")
"""Snapshot fields sent as deltas (appended lines, changed layers/steps), not as values."""

OPEN_OMITS: tuple[Any, ...] = (None, "", [], (), 0, 0.0, False)
"""Values the comm_open state leaves out (the page reads an unset field as empty, zero or
false: js/progress.js `store.get`); kind, status and title always go."""

FINAL_SKIPS = ("log_tail", "layers", "steps", "started_at", "log_first", "log_lines", "log_path", "instruction")
"""What the final state message leaves out: the lists the page has from the deltas (the
static record and the log file keep what a reopened notebook needs; re-sending them at the
end would cost a push's every layer once more), what a finished run does not show, and the
log's details (the static record under the widget has the log path). The page keeps the
values it got as deltas for the fields its model lacks."""

LAZY_FIELDS = ("log_path",)
"""Fields whose change alone does not make a message (they ride on the next one)."""

MIN_GAP_S = 0.25
"""At most one running delta per this many seconds (the page redraws at that pace anyway)."""
LOG_BATCH_BYTES = 2048
"""New log lines alone wait until this many bytes are waiting (a message's own ~110 bytes
are then at most ~5% of it)...
"""
LOG_MIN_GAP_S = 1.0
"""...and at least this long since the last message (a fast log is redrawn once a second)...
"""
LOG_GAP_S = 4.0
"""...or at most this long (a slow log's lines are never older than that on the page)."""
LOG_FLUSH_BYTES = 16 * 1024
"""Past this many bytes waiting, log lines go as soon as MIN_GAP_S allows."""


def asset_path(name: str) -> Path:
    """`static/NAME` inside the installed package, else the source checkout's `js/NAME`."""
    package = Path(__file__).resolve().parents[1]
    for candidate in (package / "static" / name, package.parent / "js" / name):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"dcs-magic front-end file {name} is missing (looked in "
                            f"{package / 'static'} and {package.parent / 'js'}); reinstall dcs-magic")


def compact_source(text: str) -> str:
    """JS or CSS without its whole-line `//` comments, `/* */` blocks and indentation (sent,
    not read; js/ has no multi-line string literal whose indentation would matter)."""
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S) if "/*" in text else text
    lines = (line.strip() for line in text.splitlines())
    return "\n".join(line for line in lines if line and not line.startswith("//")) + "\n"


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
                js = compact_source(asset_path("progress.js").read_text(encoding="utf-8"))
                css = compact_source(asset_path("progress.css").read_text(encoding="utf-8"))
                digest = hashlib.sha256((js + "\0" + css).encode("utf-8")).hexdigest()[:16]
                module = cls._shared = cls(js=js, css=css, hash=digest)
            return module

    _layout: ipywidgets.Layout | None = None

    @classmethod
    def shared_layout(cls) -> ipywidgets.Layout:
        """One default Layout model for every ProgressWidget of the kernel (not one each)."""
        with cls._lock:
            layout = cls._layout
            if layout is None or layout.comm is None:
                layout = cls._layout = ipywidgets.Layout()
            return layout


class ProgressWidget(anywidget.AnyWidget):
    """Live build/push progress: steps with durations, elapsed time, log tail, layer bars
    weighted by bytes with rate and time left, result, error, and a Stop button.

    Public synced traits == ProgressSnapshot fields (tests/unit/test_progress.py checks it);
    `_`-prefixed traits are the widget's own plumbing (loader, stop).
    """

    _esm = compact_source(asset_path("progress-loader.js").read_text(encoding="utf-8"))

    # -- ProgressSnapshot, field by field --
    kind = t.Unicode("build", help="'build' or 'push'").tag(sync=True)
    title = t.Unicode("", help="Build context name or pushed reference").tag(sync=True)
    engine = t.Unicode("", help="Which Docker engine: local, tcp://host:2376 (TLS), ssh://user@host").tag(sync=True)
    builder = t.Unicode("", help="A build's builder, shown in the header: classic | buildkit").tag(sync=True)
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
        kwargs.setdefault("layout", FrontEndModule.shared_layout())
        super().__init__(kind=kind, title=title, status="starting", _module=f"IPY_MODEL_{module.model_id}",
                         _uid=uuid.uuid4().hex, _kernel_id=kernel_id(), _foreground=foreground, **kwargs)
        self._module_ref = module  # keep the shared model alive as long as a widget uses it
        self._sync_lock = threading.RLock()
        self._quiet: set[str] = set()
        self._sent_lines = 0
        self._sent_layers: dict[str, dict[str, Any]] = {}
        self._sent_steps: dict[int, dict[str, Any]] = {}
        # What the page's model holds (the comm_open state): close() syncs what differs.
        self._synced = {name: copy.deepcopy(getattr(self, name)) for name in self._display_traits()}
        self._extra: dict[str, Any] = {}  # plumbing fields for the next delta (_can_stop)
        self._latest: ProgressSnapshot | dict[str, Any] | None = None  # held back, sent by the timer
        self._clock: Callable[[], float] = time.monotonic  # the pacing's clock (tests set it)
        self._last_sent = -1e9  # clock time of the last delta (none yet)
        self._last_t = -1e9  # ... and of the last one that carried the kernel's clock
        self._timer: threading.Timer | None = None
        self._timer_due = 0.0
        self._closed = False
        self._cancel: Callable[[], None] | None = None
        self._record: Any = None
        self._keep = False  # display_with_record(keep=True): the record goes under the widget
        self.recorded = False  # True once the static record replaced the displayed widget
        self.on_msg(self._on_front_end_msg)

    # -- sink interface ----------------------------------------------------------------

    def bind_cancel(self, cancel: Callable[[], None]) -> None:
        """Sink interface: the function the Stop button calls (from the front-end's message)."""
        self._cancel = cancel
        with self._sync_lock:
            self._set_quietly({"_can_stop": True})
            if not self._foreground:  # a foreground run's Stop interrupts the kernel instead
                self._extra["_can_stop"] = True  # rides on the next delta, not a message of its own
            if self._latest is not None:
                self._pace()

    def update(self, snapshot: ProgressSnapshot | dict[str, Any]) -> None:
        """Show a running snapshot: what changed goes out now or with the next message
        (nothing if only time did)."""
        with self._sync_lock:
            if self._closed:
                return
            self._latest = snapshot
            self._pace()

    def close(self, snapshot: ProgressSnapshot | dict[str, Any] | None = None) -> None:
        """Sink interface: the run ended. A widget shown by `display_with_record` is replaced by
        the static record (and its model closed); one displayed otherwise shows the final
        snapshot.

        Without a snapshot this is ipywidgets' own `close()` (removes the widget).
        """
        if snapshot is None:
            with self._sync_lock:
                self._closed = True
                self._stop_timer()
            super().close()
            return
        if self._record is not None and not self._keep:
            self.show_record(snapshot)
            return
        with self._sync_lock:
            self._closed = True
            self._stop_timer()
            self._latest = None
            message = self._delta(snapshot, final=True)
            if self.comm is not None:
                if message is not None:
                    self.send(message)
                # The fields that differ from the page's model, in one state message, so saved
                # widget state shows the outcome; the log tail stays in the kernel (and its file).
                changed = [name for name in self._display_traits()
                           if name not in FINAL_SKIPS and getattr(self, name) != self._synced.get(name)]
                if changed:
                    self.send_state(changed)
                    self._synced.update((name, copy.deepcopy(getattr(self, name))) for name in changed)
        self.show_record(snapshot)

    # -- pacing ------------------------------------------------------------------------------

    def _pace(self) -> None:
        """Send the latest snapshot's delta now, or arm the timer for when it is due."""
        snapshot = self._latest
        if snapshot is None:
            return
        now = self._clock()
        urgent, log_bytes = self._weigh(snapshot)
        if not urgent and not log_bytes:
            self._latest = None  # nothing the page does not have (only the elapsed time moved)
            self._set_quietly({k: snapshot[k] for k in snapshot if k in self._display_traits()  # type: ignore[literal-required]
                               and not (k == "elapsed_s" and snapshot.get("status") == "running")})
            return
        if urgent or log_bytes >= LOG_FLUSH_BYTES:
            gap = MIN_GAP_S
        else:
            gap = LOG_MIN_GAP_S if log_bytes >= LOG_BATCH_BYTES else LOG_GAP_S
        due = self._last_sent + gap
        if now >= due:
            self._latest = None
            self._stop_timer()
            message = self._delta(snapshot, final=False)
            if message is not None and self.comm is not None:
                self._last_sent = now
                self.send(message)
        elif self._timer is None or due < self._timer_due - 0.01:  # an urgent change: sooner
            self._stop_timer()
            self._timer_due = due
            self._timer = threading.Timer(due - now, self._on_timer)
            self._timer.daemon = True
            self._timer.start()

    def _on_timer(self) -> None:
        with self._sync_lock:
            self._timer = None
            if not self._closed:
                try:
                    self._pace()
                except Exception:  # noqa: BLE001 - a broken display must not break anything else
                    return

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _weigh(self, snapshot: ProgressSnapshot | dict[str, Any]) -> tuple[bool, int]:
        """(does it change a field, step or layer the page shows; bytes of new log text)."""
        names = self._display_traits()
        running = snapshot.get("status") == "running"
        urgent = bool(self._extra) or any(
            getattr(self, key) != value for key, value in snapshot.items()
            if key in names and key not in DELTA_FIELDS and key not in LAZY_FIELDS
            and not (key == "elapsed_s" and running))
        urgent = urgent or any(self._sent_layers.get(layer["id"]) != layer for layer in snapshot.get("layers") or [])
        urgent = urgent or any(self._sent_steps.get(step["n"]) != step for step in snapshot.get("steps") or [])
        _first, lines = self._new_lines(snapshot, consume=False)
        log_bytes = sum(len(line) + 1 for line in lines)
        if str(snapshot.get("log_pending") or "") != self.log_pending:
            log_bytes += 1 + len(str(snapshot.get("log_pending") or ""))
        return urgent, log_bytes

    # -- the static record ---------------------------------------------------------------

    def display_with_record(self, *, keep: bool = False) -> None:
        """Display the widget in an output that the static record replaces when the run ends;
        with `keep`, the finished widget stays and the record goes in an output under it."""
        from IPython.display import display

        if keep:
            display(self)
            # An empty placeholder now, filled with the record at close(), also from a
            # background thread: update_display finds the right cell whatever runs then.
            self._record = display({"text/plain": ""}, raw=True, display_id=True)
            self._keep = True
        else:
            self._record = display(self, display_id=True)

    def show_record(self, snapshot: ProgressSnapshot | dict[str, Any]) -> None:
        """Replace the displayed widget with the outcome's static record, then close the widget's
        model (no-op when the widget was not displayed by display_with_record).

        The output then holds only text/plain + text/html: a notebook reopened without widget
        state (JupyterLab's default), without a kernel, on GitHub or in nbconvert shows the
        record once, and no "Error displaying widget: model not found" above it. The display
        id finds the right cell also from a background job's thread.
        """
        if self._record is None:
            return
        if self._keep:  # the widget shows the final state; the record goes under it
            self._record.update(ProgressRecord.from_snapshot(dict(snapshot))._repr_mimebundle_(), raw=True)
            self.recorded = True
            return
        with self._sync_lock:
            self._closed = True  # no delta after the record
            self._stop_timer()
            handle, self._record = self._record, None
        handle.update(ProgressRecord.from_snapshot(dict(snapshot))._repr_mimebundle_(), raw=True)
        self.recorded = True
        ipywidgets.Widget.close(self)  # nothing left on the page shows it

    # -- the delta protocol ----------------------------------------------------------------

    def _delta(self, snapshot: ProgressSnapshot | dict[str, Any], *, final: bool) -> dict[str, Any] | None:
        """Set the traits (without syncing) and build the message of what changed.

        The final one carries only lines, layers and steps: its fields go in close()'s state
        message (which the page's model and saved widget state both take).
        """
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
            message.update(first=lines_first, text="\n".join(lines))
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
            # A step the page has gets only what changed (its duration, CACHED), not its
            # instruction again.
            message["steps"] = [{k: v for k, v in step.items() if k == "n" or self._sent_steps[step["n"]].get(k) != v}
                                if step["n"] in self._sent_steps else step for step in steps]
            self._sent_steps.update((step["n"], dict(step)) for step in steps)
        self._set_quietly({**state, **{k: snapshot[k] for k in DELTA_FIELDS if k in snapshot}})  # type: ignore[literal-required]
        if final:
            return message or None
        state.update(self._extra)
        self._extra.clear()
        if state:
            message["state"] = state
        if not message:
            return None
        now = self._clock()
        if "status" in state or now - self._last_t >= 10:  # the page's clock skew: a few samples do
            self._last_t = now
            message["t"] = round(time.time(), 2)
        return message

    def _new_lines(self, snapshot: ProgressSnapshot | dict[str, Any], *, consume: bool = True) -> tuple[int, list[str]]:
        tail = list(snapshot.get("log_tail") or [])
        total = int(snapshot.get("log_lines") or 0)
        first = int(snapshot.get("log_first", total - len(tail)) or 0)
        start = max(self._sent_lines, first)  # lines that left the tail meanwhile are skipped
        if consume:
            self._sent_lines = max(self._sent_lines, total)
        return start, tail[start - first:] if start < total else []

    def _resync_message(self) -> dict[str, Any]:
        lines = {"text": "\n".join(self.log_tail)} if self.log_tail else {}
        return {"type": "tail", "t": round(time.time(), 2), "first": self.log_first, **lines,
                "pending": self.log_pending, "layers": list(self.layers),
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

    def get_state(self, key: Any = None, drop_defaults: bool = False) -> dict[str, Any]:
        """ipywidgets' state; for the comm_open (no comm yet) without the empty fields.

        Later calls (a page reload asks for the state, saving) get every field.
        """
        state: dict[str, Any] = super().get_state(key, drop_defaults)
        if key is None and getattr(self, "comm", None) is None:
            keep = ("kind", "status", "title")
            state = {k: v for k, v in state.items() if k in keep or not any(v == e and type(v) is type(e)
                                                                          for e in OPEN_OMITS)}
        return state

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
        send: bool = super()._should_send_property(key, value)
        return send

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
        # Also the text/plain fallback a widget-less front-end keeps, frozen at display time
        # (replaced by the record's when the run ends): say what it is, not a state that
        # would look stuck.
        if self.status == "starting":
            return f"ProgressWidget({self.kind} {self.title!r}: live progress; replaced by its record when it ends)"
        return f"ProgressWidget({format_line(self._snapshot())})"

    def _snapshot(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._display_traits()}


class FocusKeeper(anywidget.AnyWidget):
    """Drawn as nothing, inside a form whose output its record replaces (the launch form): when
    the form is removed while it has the keyboard focus, the enclosing notebook cell takes the
    focus instead of the page's <body> (js/focus-keeper.js; the progress widget does the same
    in js/progress.js)."""

    _esm = compact_source(asset_path("focus-keeper.js").read_text(encoding="utf-8"))

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("layout", ipywidgets.Layout(display="none"))
        super().__init__(**kwargs)


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
        self._engine = ""

    def _print(self, text: str) -> None:
        print(text, file=self.stream or sys.stdout, flush=True)

    def _engine_line(self, snapshot: ProgressSnapshot | dict[str, Any]) -> None:
        engine = str(snapshot.get("engine") or "")
        if engine and engine != self._engine:
            self._engine = engine
            self._print(f"engine: {engine}")

    def _warnings(self, snapshot: ProgressSnapshot | dict[str, Any]) -> None:
        for warning in snapshot.get("warnings") or []:
            if warning not in self._warned:
                self._warned.add(warning)
                self._print(f"Warning: {warning}")

    def update(self, snapshot: ProgressSnapshot | dict[str, Any]) -> None:
        """Print the headline when it changed."""
        self._engine_line(snapshot)
        self._warnings(snapshot)
        headline = format_line(snapshot, elapsed=False)
        if headline != self._last:
            self._last = headline
            self._print(format_line(snapshot))

    def close(self, snapshot: ProgressSnapshot | dict[str, Any]) -> None:
        """Print the outcome line (not for a foreground cancel: the error's line says it)."""
        self._engine_line(snapshot)
        self._warnings(snapshot)
        self._last = format_line(snapshot, elapsed=False)
        if self.foreground and snapshot.get("status") == "cancelled":
            return
        self._print(format_line(snapshot))  # a failure's details come with the raised error


class RunStates:
    """`%dcs_run`'s view of a run (a sink for `ops.runs.follow_run`'s `on_change`).

    `live` (a Jupyter front-end): one output, shown with a display id and updated in place at
    each state change and at the end (`RunProgress`'s HTML, the run page as a link, and its
    text/plain twin). It is ordinary display data, so the saved notebook keeps the last
    version as a static record; no widget state is involved. Otherwise (terminal IPython,
    `DcsMagics.progress = 'text'`) the same lines are printed as they come, as `dcs run` does.
    """

    def __init__(self, progress: RunProgress, *, live: bool, stream: TextIO | None = None) -> None:
        self.progress = progress
        self.live = live
        self.stream = stream
        self._handle: Any = None
        if live:
            from IPython.display import display

            self._handle = display(progress._repr_mimebundle_(), raw=True, display_id=True)
        else:
            self._print(progress.heading())

    def _print(self, text: str) -> None:
        print(text, file=self.stream or sys.stdout, flush=True)

    def _show(self) -> None:
        if self._handle is not None:
            self._handle.update(self.progress._repr_mimebundle_(), raw=True)

    def change(self, change: RunStateChange) -> None:
        """A state change: the output shows it (or its line is printed)."""
        self.progress.add(change)
        if self.live:
            self._show()
        else:
            self._print(f"  {change.line()}")

    def finish(self, result: RunResult) -> None:
        """The run's outcome, as the last line."""
        self.progress.finish(result)
        if self.live:
            self._show()
        else:
            self._print(f"State: {self.progress.outcome}")


def has_widget_frontend() -> bool:
    """True inside a Jupyter kernel (widget messages have somewhere to go)."""
    try:
        from IPython.core.getipython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def progress_sink(kind: str, mode: str = "auto", *, title: str = "", display: bool = True,
                  foreground: bool = True, keep: bool = False) -> ProgressWidget | TextProgress | None:
    """The display for one build/push: 'widget', 'text', 'none', or 'auto'.

    'auto' uses the widget in a Jupyter kernel and text elsewhere (terminal IPython). A
    widget is displayed right away when `display` is true, in an output its static record
    replaces when the run ends (with `keep`, the finished widget stays, its record under it).
    `foreground` is False for `--bg` jobs (Stop then messages the kernel
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
        widget.display_with_record(keep=keep)
    return widget
