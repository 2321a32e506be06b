"""Pure progress model: Docker build/push/pull events -> `BuildState` / `PushState`.

No docker, IPython or widget import: the pipeline feeds decoded engine events into a state's
`apply(event)`, and front-ends (the widget, the text sink, the CLI) render `snapshot()`s,
which are plain JSON-able dicts. `Throttle` decides when a snapshot is worth sending.

Facts about the streams this model relies on (recorded in tests/unit/fixtures/):
- build `{"stream": ...}` chunks are not line-aligned ("Step 2/6 : RUN x" and its "\\n"
  arrive separately; one chunk may carry several lines, or a line without its end);
- stderr of a RUN step comes wrapped in ANSI colour codes; tools draw bars with "\\r";
- base-image pulls inside a build and push streams report per layer (`id`, `status`,
  `progressDetail {current, total}`), and `current` can exceed `total`;
- success ends with `aux` (`{"ID"}` for builds, `{"Tag", "Digest", "Size"}` for pushes);
  failures come as `{"error", "errorDetail"}` inside the (HTTP 200) stream.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, TypedDict

from .imageref import parse_or_none

__all__ = [
    "BuildState",
    "LayerDict",
    "LayerProgress",
    "LineJoiner",
    "LogTail",
    "ProgressSnapshot",
    "PushState",
    "StepDict",
    "Throttle",
    "clean_line",
    "clip_line",
    "empty_snapshot",
    "format_duration",
    "format_line",
    "human_bytes",
    "shown_engine",
    "snapshot_fields",
]

LOG_TAIL = 200
"""Log lines a BuildState keeps for snapshots by default (the full log goes to a file)."""
LINE_BYTES = 2 * 1024
"""At most this many UTF-8 bytes of one line go into a snapshot (the log file keeps it all)."""
TAIL_BYTES = 64 * 1024
"""At most this many bytes of log tail in a snapshot, whatever the line count."""


class LayerDict(TypedDict):
    """One layer in a snapshot (`LayerProgress.as_dict()`)."""

    id: str
    status: str
    current: int
    total: int
    done: bool


class StepDict(TypedDict):
    """One build step the user wrote: `started_s` is seconds after the build started;
    `duration_s` is None while the step runs; `cached` when the engine reused its cache."""

    n: int
    instruction: str
    cached: bool
    started_s: float
    duration_s: float | None


class ProgressSnapshot(TypedDict):
    """The one message from the progress model to every view (widget, text, terminal).

    Build and push snapshots carry the same keys (a push has no steps, a build no digest),
    so a view never guesses which keys exist. The widget's synced traits are exactly these
    fields (tests/unit/test_progress.py checks it).
    """

    kind: str  # "build" | "push"
    title: str
    engine: str  # which Docker engine: "local", "tcp://h:2376 (TLS)", "ssh://user@h"; "" until known
    builder: str  # a build's builder once chosen: "classic" | "buildkit" ("" for a push, or not yet)
    status: str  # running | done | failed | cancelled (the widget starts as "starting")
    error: str | None
    warnings: list[str]
    started_at: float  # wall-clock epoch seconds: the front-end ticks elapsed time from it
    elapsed_s: float
    layers: list[LayerDict]
    layers_done: int
    layers_total: int
    bytes_current: int
    bytes_total: int
    fraction: float  # of bytes where sizes are known, else of layers
    rate_bps: float  # bytes per second, smoothed like tqdm; 0 when unknown
    eta_s: float | None
    step: int  # the user's steps: the LABEL steps dcs-magic appends are not counted
    total_steps: int
    instruction: str
    steps: list[StepDict]
    log_tail: list[str]  # complete lines, each at most LINE_BYTES, together at most TAIL_BYTES
    log_first: int  # index (0-based, in the whole log) of log_tail[0]
    log_lines: int  # complete lines written so far
    log_pending: str  # the line still being written (a progress bar), bounded like a line
    log_path: str | None
    image_id: str | None
    failed_step: int | None
    reference: str
    repository: str
    digest: str | None
    pinned: str | None
    size: int | None


LOCAL_ENGINE = "local"
"""The label of the engine on this machine's default socket (adapters.engine_address)."""


def shown_engine(label: str | None) -> str:
    """The engine label a view shows: "" for the local engine (the usual case says nothing),
    else the label (`tcp://h:2376 (TLS)`, `ssh://user@h`, a context's engine)."""
    return "" if not label or label == LOCAL_ENGINE else str(label)


def snapshot_fields() -> frozenset[str]:
    """The names of ProgressSnapshot's fields."""
    return frozenset(ProgressSnapshot.__annotations__)


def empty_snapshot(kind: str = "build", title: str = "", status: str = "starting") -> ProgressSnapshot:
    """A snapshot before any event: the initial state of every view."""
    return ProgressSnapshot(
        kind=kind, title=title, engine="", builder="", status=status, error=None, warnings=[], started_at=0.0,
        elapsed_s=0.0,
        layers=[], layers_done=0, layers_total=0, bytes_current=0, bytes_total=0, fraction=0.0,
        rate_bps=0.0, eta_s=None, step=0, total_steps=0, instruction="", steps=[], log_tail=[],
        log_first=0, log_lines=0, log_pending="", log_path=None, image_id=None, failed_step=None,
        reference="", repository="", digest=None, pinned=None, size=None)

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
# The builder's " ---> Running in ID", " ---> ID", " ---> Using cache" and "Removing
# intermediate container ID" (ID: 12-64 lowercase hex) are recognised by prefix and
# `_HEX` tests in `BuildState._take_line`, cheaper than regexes on every line. "Removing ..."
# is looked for at the end of a line, not only at its start: output without a final newline
# gets it appended to its last line.
_REMOVING = "Removing intermediate container "
_HEX = "0123456789abcdef"
# What str.rstrip() removes from each line (re's \s is str.isspace's set), newlines kept.
_TRAILING_BLANKS = re.compile(r"[^\S\n]+(?=\n)")
_TAGGED = re.compile(r"^Successfully tagged (\S+)$")
# What the engine prints for a LABEL step besides its headline: not shown (BuildState._take_line).
_LABEL_STEP_LINES = (" ---> ", _REMOVING)
_LABEL_STEP_FIRST = frozenset(prefix[0] for prefix in _LABEL_STEP_LINES)
_PUSH_REPO = re.compile(r"^The push refers to repository \[(.+)\]$")

# Lines the classic builder writes about itself, as opposed to a step's own output.
_BUILDER_PREFIXES = (" ---> ", "Removing intermediate container ", "Successfully built ",
                     "Successfully tagged ")
_BUILDER_FIRST = frozenset(prefix[0] for prefix in _BUILDER_PREFIXES)
# Layer statuses after which a layer needs nothing more (pull and push).
_LAYER_DONE = ("Pull complete", "Already exists", "Pushed", "Layer already exists", "Mounted from")
# Layer statuses that only move a byte counter: logged once, not on every tick.
_LAYER_TICKS = ("Downloading", "Extracting", "Pushing")
# A partial line longer than this is emitted as is, so one endless line stays bounded.
_MAX_PARTIAL = 64 * 1024


def clean_line(text: str) -> str:
    """A display line: ANSI codes removed, only what a terminal would show after a `\\r`."""
    if "\x1b" in text:  # the regex only when there is an escape (most lines have none)
        text = _ANSI.sub("", text)
    if "\r" in text:
        segments = [s for s in text.split("\r") if s.strip()]
        text = segments[-1] if segments else ""
    return text.rstrip()


def clip_line(line: str, limit: int = LINE_BYTES) -> str:
    """`line` cut to at most `limit` UTF-8 bytes, saying how much was left out.

    A 60 MB line without a newline must not put megabytes into every widget message; the
    full text is in the log file.
    """
    if len(line) * 4 <= limit:  # fast path: cannot exceed the limit even in 4-byte UTF-8
        return line
    data = line.encode("utf-8", "replace")
    if len(data) <= limit:
        return line
    kept = data[:max(limit - 48, 0)].decode("utf-8", "ignore")
    return f"{kept}… [{len(data) - len(kept.encode('utf-8'))} more bytes in the full log]"


class LogTail:
    """The last lines of a log, bounded in lines and in bytes; knows each line's index.

    Appending is the hot path (every log line of a build): it only clips an overlong line
    and appends to a deque bounded in lines. The byte bound is applied when the tail is read
    (a snapshot, at most a few per second): the kept lines are the longest suffix that fits
    in `max_bytes`, which is exactly what evicting the oldest lines on every append keeps.
    """

    def __init__(self, lines: int = LOG_TAIL, max_bytes: int = TAIL_BYTES, line_bytes: int = LINE_BYTES
                 ) -> None:
        self.max_lines = max(int(lines), 0)
        self.max_bytes = max_bytes
        self.line_bytes = line_bytes
        self._lines: deque[str] = deque(maxlen=self.max_lines)
        self._view: list[str] | None = None  # the byte-bounded tail as of `_view_count` lines
        self._view_count = 0
        self._bytes = 0
        self.count = 0  # lines ever appended

    def append(self, line: str) -> None:
        self.count += 1
        # (a deque with maxlen 0 keeps nothing: no test of max_lines needed)
        self._lines.append(line if len(line) * 4 <= self.line_bytes else clip_line(line, self.line_bytes))

    def extend(self, lines: list[str]) -> None:
        """`append` each of `lines` (one length test for them all when none is long)."""
        self.count += len(lines)
        limit = self.line_bytes
        self._lines.extend(lines if max(map(len, lines), default=0) * 4 <= limit else
                           [clip_line(line, limit) for line in lines])

    def _kept(self) -> list[str]:
        """The lines kept: the newest ones that fit in `max_bytes` (UTF-8, a newline each)."""
        if self._view is None or self._view_count != self.count:
            self._view_count = self.count
            lines = list(self._lines)
            total, start = 0, len(lines)
            for index in range(len(lines) - 1, -1, -1):
                line = lines[index]
                size = (len(line) if line.isascii() else len(line.encode("utf-8", "replace"))) + 1
                if total + size > self.max_bytes:
                    break
                total, start = total + size, index
            self._view, self._bytes = lines[start:], total
        return self._view

    @property
    def first(self) -> int:
        """Index in the whole log of the oldest line kept."""
        return self.count - len(self._kept())

    @property
    def nbytes(self) -> int:
        self._kept()
        return self._bytes

    def __iter__(self) -> Any:
        return iter(self._kept())

    def __len__(self) -> int:
        return len(self._kept())

    def __getitem__(self, index: int) -> str:
        return self._kept()[index]


class LineJoiner:
    """Re-joins unaligned text chunks into complete lines."""

    def __init__(self) -> None:
        self._partial = ""

    def feed(self, chunk: str) -> list[str]:
        """Complete lines ended by this chunk (cleaned); the rest waits for the next chunk."""
        if self._partial:
            chunk = self._partial + chunk
        parts = chunk.split("\n")
        partial = parts.pop()
        if partial:
            if "\r" in partial:  # a progress bar redrawn in place: only its last state matters
                partial = partial[partial.rfind("\r", 0, len(partial) - 1) + 1:]
            if len(partial) > _MAX_PARTIAL:
                parts.append(partial)
                partial = ""
        self._partial = partial
        # Most lines have no escape code and no "\r": clean_line only for those that do.
        return [clean_line(p) if "\x1b" in p or "\r" in p else p.rstrip() for p in parts]

    def flush(self) -> list[str]:
        """The unfinished last line, if any (at the end of a stream or on failure)."""
        partial, self._partial = self._partial, ""
        return [clean_line(partial)] if partial.strip() else []

    @property
    def pending(self) -> str:
        return clean_line(self._partial)


@dataclass
class LayerProgress:
    """One image layer being pulled or pushed; `current` never exceeds a known `total`."""

    id: str
    status: str = ""
    current: int = 0
    total: int = 0
    done: bool = False

    def update(self, status: str, detail: dict[str, Any] | None) -> bool:
        """Apply one status; True when the status text changed (worth a log line)."""
        changed = status != self.status
        self.status = status
        detail = detail or {}
        if detail.get("total"):
            self.total = max(int(detail["total"]), 0)
        if "current" in detail:
            self.current = max(int(detail["current"] or 0), 0)
        if status.startswith(_LAYER_DONE):
            self.done = True
            if self.total:
                self.current = self.total
        if self.total:
            self.current = min(self.current, self.total)
        return changed

    @property
    def fraction(self) -> float:
        if self.done:
            return 1.0
        return self.current / self.total if self.total else 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _layer_totals(layers: Iterable[LayerProgress]) -> dict[str, Any]:
    """Byte and layer totals for a total bar, weighted by bytes as tqdm does.

    Where the engine gave sizes, the fraction is bytes sent / bytes known (33% of the bytes
    shows 33%, whatever the layer count); layers without sizes (all "Layer already exists")
    count by number.
    """
    values = list(layers)
    done = sum(1 for layer in values if layer.done)
    current = sum(layer.current for layer in values if layer.total)
    total = sum(layer.total for layer in values)
    if total:
        fraction = current / total
    else:
        fraction = done / len(values) if values else 0.0
    return {"layers_done": done, "layers_total": len(values), "bytes_current": current,
            "bytes_total": total, "fraction": round(min(fraction, 1.0), 4)}


class _RateMeter:
    """Bytes per second, exponentially smoothed over snapshots (tqdm's `smoothing=0.3`)."""

    def __init__(self, smoothing: float = 0.3) -> None:
        self.smoothing = smoothing
        self.rate = 0.0
        self._last: tuple[float, int] | None = None

    def sample(self, elapsed_s: float, current: int) -> float:
        if self._last is not None:
            dt, db = elapsed_s - self._last[0], current - self._last[1]
            if dt <= 0:
                return self.rate
            if db >= 0:
                instant = db / dt
                self.rate = instant if self.rate == 0 else (
                    self.smoothing * instant + (1 - self.smoothing) * self.rate)
        self._last = (elapsed_s, current)
        return self.rate


def _error_message(event: dict[str, Any]) -> str:
    detail = event.get("errorDetail") or {}
    return str(detail.get("message") or event.get("error") or "unknown error").strip()


class _StreamState:
    """What build and push states share: status, layers, errors, warnings."""

    kind = ""

    def __init__(self, title: str = "") -> None:
        self.title = title
        self.engine = ""  # the engine's label (adapters.engine_address), set once connected
        self.status = "running"  # running | done | failed | cancelled
        self.error: str | None = None
        self.warnings: list[str] = []
        self.layers: dict[str, LayerProgress] = {}
        self.started_at = time.time()
        self._rate = _RateMeter()

    def apply(self, event: dict[str, Any]) -> list[str]:  # pragma: no cover - each state has its own
        raise NotImplementedError

    def apply_many(self, events: Iterable[dict[str, Any]]) -> list[str]:
        """`apply` each event in order; the log lines they completed, together."""
        apply = self.apply
        lines: list[str] = []
        for event in events:
            lines += apply(event)
        return lines

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    def warn(self, message: str) -> None:
        """A warning the user should see (shown by the widget, kept in the result)."""
        if message not in self.warnings:
            self.warnings.append(message)

    def use_engine(self, label: str) -> None:
        """The run talks to this engine (its label: `local`, `tcp://h:2376 (TLS)`, ...)."""
        self.engine = label

    def fail(self, message: str) -> None:
        """Mark the stream failed; a later, more complete message replaces an earlier one."""
        self.status = "failed"
        self.error = message

    def cancel(self) -> None:
        if self.status == "running":
            self.status = "cancelled"

    def _apply_layer(self, event: dict[str, Any]) -> list[str]:
        layer = self.layers.get(event["id"])
        if layer is None:
            layer = self.layers[event["id"]] = LayerProgress(event["id"])
        status = str(event.get("status", ""))
        changed = layer.update(status, event.get("progressDetail"))
        if changed or not status.startswith(_LAYER_TICKS):
            return [f"{layer.id}: {status}"]
        return []

    def _common(self, elapsed_s: float) -> ProgressSnapshot:
        snap = empty_snapshot(self.kind, self.title, self.status)
        totals = _layer_totals(self.layers.values())
        rate = self._rate.sample(float(elapsed_s), totals["bytes_current"]) if totals["bytes_total"] else 0.0
        left = totals["bytes_total"] - totals["bytes_current"]
        snap["error"], snap["warnings"] = self.error, list(self.warnings)
        snap["engine"] = self.engine
        snap["started_at"], snap["elapsed_s"] = round(self.started_at, 3), round(float(elapsed_s), 2)
        snap["layers"] = [LayerDict(**layer.as_dict()) for layer in self.layers.values()]  # type: ignore[typeddict-item]
        snap["rate_bps"] = round(rate, 1)
        snap["eta_s"] = round(left / rate, 1) if rate > 0 and self.status == "running" else None
        snap["layers_done"], snap["layers_total"] = totals["layers_done"], totals["layers_total"]
        snap["bytes_current"], snap["bytes_total"] = totals["bytes_current"], totals["bytes_total"]
        snap["fraction"] = totals["fraction"]
        return snap


class BuildState(_StreamState):
    """Reducer for `APIClient.build(decode=True)` events (classic builder).

    `apply(event)` returns the complete log lines the event finished, for the full log file;
    the state itself keeps only a bounded tail (`tail` lines, `TAIL_BYTES` bytes) and a line
    count. `label_steps` is how many LABEL steps follow the Dockerfile's own: the one
    dcs-magic appends with its labels, and the builder's one per label of the `labels` build
    option. They are not the user's steps, so `total_steps` and the snapshot leave them out.
    `clock` times the steps.
    """

    kind = "build"

    def __init__(self, title: str = "", *, tail: int = LOG_TAIL, step_tail: int = 30,
                 label_steps: int = 0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(title)
        self.step = 0
        self.engine_total_steps = 0  # as the engine counts them, appended LABEL steps included
        self.label_steps = label_steps
        self._in_labels = False  # one of those LABEL steps runs
        self.instruction = ""
        self.log_tail = LogTail(tail)
        self.step_output: deque[str] = deque(maxlen=step_tail)  # the current step's own output
        self.container: str | None = None  # intermediate container running right now
        self.last_image: str | None = None  # image id of the last finished step
        self.image_id: str | None = None
        self.tags: list[str] = []
        self.failed_step: int | None = None
        self.failed_instruction: str | None = None
        self.last_lines: list[str] = []
        self.log_path: str | None = None  # the full log file, when the pipeline writes one
        self.steps: list[StepDict] = []
        self.builder = ""  # "classic" | "buildkit", set by ops/build.py when it chose
        self._clock = clock
        self._t0 = clock()
        self._joiner = LineJoiner()

    @property
    def total_steps(self) -> int:
        """The user's steps: the engine's count without the LABEL steps dcs-magic appends."""
        return max(self.engine_total_steps - self.label_steps, 0) if self.engine_total_steps else 0

    @property
    def line_count(self) -> int:
        return self.log_tail.count

    def apply(self, event: dict[str, Any]) -> list[str]:
        """Fold one decoded build event into the state; return the log lines it completed."""
        chunk = event.get("stream")
        if chunk.__class__ is str and len(event) == 1 and chunk:
            # The common event (a step's output, the builder's own lines), on the hot path:
            # LineJoiner.feed inlined for whole lines with nothing to clean but trailing blanks.
            joiner = self._joiner
            partial = joiner._partial
            if chunk[-1] != "\n" or "\r" in chunk or "\x1b" in chunk or "\r" in partial or "\x1b" in partial:
                if not ("\n" in chunk or "\r" in chunk or "\r" in partial
                        or len(partial) + len(chunk) > _MAX_PARTIAL):
                    # more of a line still being written ("Step 2/6 : RUN x" before its "\n")
                    joiner._partial = partial + chunk
                    return []
                lines = joiner.feed(chunk)
                chunk = partial + chunk  # what the lines came from, for the builder-line test below
            else:
                if partial:  # the end of a line written in pieces: whole lines from here on
                    chunk, joiner._partial = partial + chunk, ""
                if chunk.find("\n") == len(chunk) - 1:  # one line: no list to loop over
                    shown = self._take_line(chunk[:-1].rstrip())
                    return [] if shown is None else [shown]
                # each line right-stripped (as clean_line does), by one regex pass in C
                lines = _TRAILING_BLANKS.sub("", chunk)[:-1].split("\n")
            if len(lines) > 1 and not ("Step " in chunk or " ---> " in chunk or "Successfully " in chunk
                                       or "Removing intermediate container " in chunk):
                # Several lines of a step's own output (no builder line can hide among them):
                # no per-line work but the tail's clipping test.
                self.log_tail.extend(lines)
                self.step_output.extend(filter(None, lines))  # right-stripped: "" is a blank line
                return lines
            return self._take_lines(lines)
        if "error" in event or "errorDetail" in event:
            return self._apply_error(event)
        lines = []
        if "stream" in event:
            lines = self._joiner.feed(str(event["stream"]))
        elif event.get("id") and "status" in event and not str(event["status"]).startswith("Pulling from"):
            lines = self._apply_layer(event)
        elif "status" in event:
            lines = [clean_line(str(event["status"]))]
        aux = event.get("aux")
        if isinstance(aux, dict) and aux.get("ID"):
            self.image_id = str(aux["ID"])
        return self._take_lines(lines)

    def finish(self) -> list[str]:
        """End of a successful stream: flush the unfinished line, mark done."""
        lines = self._take_lines(self._joiner.flush())
        self.container = None
        if self.status == "running":
            self.status = "done"
        self._end_step()
        return lines

    def fail(self, message: str) -> None:
        super().fail(message)
        self._end_step()

    def cancel(self) -> None:
        super().cancel()
        self._end_step()

    def _apply_error(self, event: dict[str, Any]) -> list[str]:
        lines = self._take_lines(self._joiner.flush())
        message = _error_message(event)
        self.failed_step = self.step or None
        self.failed_instruction = self.instruction or None
        self.last_lines = list(self.step_output)
        self.fail(message)
        line = f"ERROR: {message}"
        self._take_line(line, output=False)
        return [*lines, line]

    def _elapsed(self) -> float:
        # Steps keep exact times (rounding a float costs more than the rest of a step line);
        # snapshots round them.
        return self._clock() - self._t0

    def _end_step(self) -> None:
        if self.steps and self.steps[-1]["duration_s"] is None:
            step = self.steps[-1]
            step["duration_s"] = max(self._elapsed() - step["started_s"], 0.0)

    def _take_lines(self, lines: list[str]) -> list[str]:
        """`_take_line` for each of LINES; the lines as shown (step lines renumbered, the
        appended LABEL steps' builder lines left out)."""
        take = self._take_line
        shown = [take(line) for line in lines]
        return [line for line in shown if line is not None]

    def _take_line(self, line: str, *, output: bool | None = None) -> str | None:
        """Fold one complete line in; return it as the log shows it, or None when it is left out.

        Step lines are renumbered to the user's count ("Step 3/8", not the engine's "Step 3/9"
        that counts the LABEL steps dcs-magic appends); those LABEL steps and their builder
        lines are not shown (their containers are still tracked, for a cancel)."""
        # The hot path (every log line): LogTail.append inlined, then a first-character test
        # before any prefix test or regex. A step's own output costs a few C-level checks.
        first = line[:1]
        tail = self.log_tail
        if first == "S" and line.startswith("Step ") and (step := _STEP.match(line)):
            n, engine_total = int(step[1]), int(step[2])
            self._start_step(n, engine_total, step[3].strip())
            if self.label_steps and engine_total > self.label_steps:
                if n > engine_total - self.label_steps:
                    return None
                line = f"Step {n}/{engine_total - self.label_steps} : {step[3]}"
            tail.count += 1
            tail._lines.append(line if len(line) * 4 <= tail.line_bytes else clip_line(line, tail.line_bytes))
            return line
        hidden = self._in_labels and first in _LABEL_STEP_FIRST and line.startswith(_LABEL_STEP_LINES)
        if not hidden:
            tail.count += 1
            tail._lines.append(line if len(line) * 4 <= tail.line_bytes else clip_line(line, tail.line_bytes))
        shown: str | None = None if hidden else line
        if self.container and (at := line.rfind(_REMOVING)) >= 0:
            removed = line[at + len(_REMOVING):]
            if 12 <= len(removed) <= 64 and not removed.strip(_HEX) and removed.startswith(self.container[:12]):
                self.container = None
                line = line[:at]  # keep what a step printed without a final newline
                first = line[:1]
        if output is None:
            output = first not in _BUILDER_FIRST or not line.startswith(_BUILDER_PREFIXES)
        if output:
            if line and not line.isspace():
                self.step_output.append(line)
        elif first == " ":  # " ---> ..."
            rest = line[6:]
            if rest == "Using cache":
                if self.steps and self.steps[-1]["n"] == self.step:
                    self.steps[-1]["cached"] = True
            elif rest.startswith("Running in "):
                if 12 <= len(rest) - 11 <= 64 and not rest[11:].strip(_HEX):
                    self.container = rest[11:]
            elif 12 <= len(rest) <= 64 and not rest.strip(_HEX):
                self.last_image = rest
        elif first == "S" and (match := _TAGGED.match(line)):
            self.tags.append(match[1])
        return shown

    def _start_step(self, step: int, engine_total: int, instruction: str) -> None:
        now = self._clock() - self._t0
        if self.steps and self.steps[-1]["duration_s"] is None:  # _end_step, sharing `now`
            last = self.steps[-1]
            last["duration_s"] = max(now - last["started_s"], 0.0)
        self.engine_total_steps = engine_total
        self.step_output.clear()
        self._in_labels = step > engine_total - self.label_steps
        if not self._in_labels:  # one of the user's steps (total_steps)
            self.step, self.instruction = step, instruction
            self.steps.append({"n": step, "instruction": instruction, "cached": False,
                               "started_s": now, "duration_s": None})

    def snapshot(self, *, elapsed_s: float = 0.0, tail: int | None = None) -> ProgressSnapshot:
        """The display state: steps, instruction, log tail, pull layers, result, error."""
        log_tail = list(self.log_tail)
        if tail is not None:
            log_tail = log_tail[-tail:] if tail else []
        pending = self._joiner.pending if self.status == "running" else ""
        total = self.total_steps
        snap = self._common(elapsed_s)
        snap["builder"] = self.builder
        snap["step"] = self.step
        snap["total_steps"] = total
        snap["instruction"] = self.instruction
        snap["steps"] = [  # copies (the state keeps changing), rounded for display
            StepDict(n=step["n"], instruction=step["instruction"], cached=step["cached"],
                     started_s=round(step["started_s"], 2),
                     duration_s=None if step["duration_s"] is None else round(step["duration_s"], 2))
            for step in self.steps]
        snap["log_tail"] = log_tail
        snap["log_first"] = self.log_tail.count - len(log_tail)
        snap["log_lines"] = self.log_tail.count
        snap["log_pending"] = clip_line(pending)
        snap["log_path"] = self.log_path
        snap["image_id"] = self.image_id
        snap["failed_step"] = min(self.failed_step, total) if self.failed_step and total else self.failed_step
        return snap


class PushState(_StreamState):
    """Reducer for `APIClient.push(stream=True, decode=True)` events."""

    kind = "push"

    def __init__(self, reference: str = "", title: str = "") -> None:
        super().__init__(title or reference)
        self.reference = reference
        self._image = parse_or_none(reference) if reference else None  # parsed once, pinned per snapshot
        self.repository = ""
        self.digest: str | None = None
        self.tag: str | None = None
        self.size: int | None = None

    def apply(self, event: dict[str, Any]) -> list[str]:
        """Fold one decoded push event into the state; return loggable lines."""
        if "error" in event or "errorDetail" in event:
            message = _error_message(event)
            self.fail(message)
            return [f"ERROR: {message}"]
        aux = event.get("aux")
        if isinstance(aux, dict) and aux.get("Digest"):
            self.digest = str(aux["Digest"])
            self.tag = aux.get("Tag")
            self.size = aux.get("Size")
            return []
        status = str(event.get("status", ""))
        if event.get("id"):
            return self._apply_layer(event)
        if match := _PUSH_REPO.match(status):
            self.repository = match[1]
        return [status] if status else []

    def finish(self) -> list[str]:
        if self.status == "running":
            self.status = "done"
        return []

    @property
    def pinned(self) -> str | None:
        """`repository@sha256:...` once the registry reported the manifest digest."""
        if not self.digest:
            return None
        if self._image is not None:
            return self._image.pinned(self.digest)
        return f"{self.repository}@{self.digest}" if self.repository else None

    def snapshot(self, *, elapsed_s: float = 0.0) -> ProgressSnapshot:
        """The display state: per-layer bars, totals (by bytes), rate, digest, error."""
        snap = self._common(elapsed_s)
        snap["reference"], snap["repository"] = self.reference, self.repository
        snap["digest"], snap["pinned"], snap["size"] = self.digest, self.pinned, self.size
        return snap


class Throttle:
    """At most one `ready()` == True per `interval` seconds of `clock`."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = max(float(interval), 0.0)
        self.clock = clock
        self._last: float | None = None

    def ready(self) -> bool:
        """True (and restart the interval) when the last ready moment is `interval` old."""
        now = self.clock()
        if self._last is None or now - self._last >= self.interval:
            self._last = now
            return True
        return False


def human_bytes(n: float | None) -> str:
    """`1536` -> `1.5 kB` (decimal units, like the Docker CLI)."""
    if not n:
        return "0 B"
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(value) < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"  # pragma: no cover - loop always returns


def format_duration(seconds: float | None) -> str:
    """`75.2` -> `1m 15s`, `3.24` -> `3.2s` (as the widget shows it)."""
    if seconds is None:
        return ""
    seconds = max(float(seconds), 0.0)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60}h {minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m {secs:02d}s"


def _rate_text(snapshot: ProgressSnapshot | Mapping[str, Any]) -> str:
    """`, 12.0 MB/s, 3.0s left` (tqdm's rate and remaining time), or nothing when unknown."""
    rate = snapshot.get("rate_bps") or 0
    if not rate:
        return ""
    text = f", {human_bytes(rate)}/s"
    if snapshot.get("eta_s") is not None:
        text += f", {format_duration(snapshot['eta_s'])} left"
    return text


def format_line(snapshot: ProgressSnapshot | Mapping[str, Any], *, elapsed: bool = True) -> str:
    """One plain-text line for a terminal describing a snapshot (headline, no log)."""
    kind, status = snapshot.get("kind"), snapshot.get("status")
    label = f"[{kind} {snapshot.get('title')}]" if snapshot.get("title") else f"[{kind}]"
    if kind == "build" and snapshot.get("builder") == "buildkit":  # the classic builder is the default
        label = f"{label[:-1]} (BuildKit)]"
    if status == "failed":
        first = (snapshot.get("error") or "failed").splitlines()[0]
        text = f"{label} failed: {first}"
    elif status == "cancelled":
        text = f"{label} cancelled"
    elif status == "done":
        result = snapshot.get("image_id") or snapshot.get("pinned") or snapshot.get("digest") or ""
        text = f"{label} done {result}".rstrip()
    else:
        parts = []
        if kind == "build" and snapshot.get("total_steps"):
            parts.append(f"Step {snapshot['step']}/{snapshot['total_steps']} : {snapshot.get('instruction', '')}")
        if snapshot.get("layers_total") and (kind == "push" or snapshot["layers_done"] < snapshot["layers_total"]):
            what = "layers" if kind == "push" else "base layers"
            parts.append(f"{snapshot['layers_done']}/{snapshot['layers_total']} {what}, "
                         f"{human_bytes(snapshot['bytes_current'])}/{human_bytes(snapshot['bytes_total'])}"
                         + _rate_text(snapshot))
        text = f"{label} {' | '.join(parts) or 'starting'}"
    if elapsed:
        text += f" ({snapshot.get('elapsed_s', 0.0):.1f}s)"
    return text
