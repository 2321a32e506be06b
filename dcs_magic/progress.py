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
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from .imageref import parse_reference

__all__ = [
    "BuildState",
    "LayerProgress",
    "LineJoiner",
    "PushState",
    "Throttle",
    "clean_line",
    "format_line",
    "human_bytes",
]

LOG_TAIL = 200
"""Log lines a BuildState keeps for snapshots by default (the full log goes to a file)."""

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
_RUNNING_IN = re.compile(r"^ ---> Running in ([0-9a-f]{12,64})$")
# searched, not matched: output without a final newline gets this appended to its last line
_REMOVED = re.compile(r"Removing intermediate container ([0-9a-f]{12,64})$")
_STEP_IMAGE = re.compile(r"^ ---> ([0-9a-f]{12,64})$")
_TAGGED = re.compile(r"^Successfully tagged (\S+)$")
_PUSH_REPO = re.compile(r"^The push refers to repository \[(.+)\]$")

# Lines the classic builder writes about itself, as opposed to a step's own output.
_BUILDER_PREFIXES = (" ---> ", "Removing intermediate container ", "Successfully built ",
                     "Successfully tagged ")
# Layer statuses after which a layer needs nothing more (pull and push).
_LAYER_DONE = ("Pull complete", "Already exists", "Pushed", "Layer already exists", "Mounted from")
# Layer statuses that only move a byte counter: logged once, not on every tick.
_LAYER_TICKS = ("Downloading", "Extracting", "Pushing")
# A partial line longer than this is emitted as is, so one endless line stays bounded.
_MAX_PARTIAL = 64 * 1024


def clean_line(text: str) -> str:
    """A display line: ANSI codes removed, only what a terminal would show after a `\\r`."""
    text = _ANSI.sub("", text)
    if "\r" in text:
        segments = [s for s in text.split("\r") if s.strip()]
        text = segments[-1] if segments else ""
    return text.rstrip()


class LineJoiner:
    """Re-joins unaligned text chunks into complete lines."""

    def __init__(self) -> None:
        self._partial = ""

    def feed(self, chunk: str) -> list[str]:
        """Complete lines ended by this chunk (cleaned); the rest waits for the next chunk."""
        parts = (self._partial + chunk).split("\n")
        partial = parts.pop()
        if "\r" in partial:  # a progress bar redrawn in place: only its last state matters
            partial = partial[partial.rfind("\r", 0, len(partial) - 1) + 1:]
        if len(partial) > _MAX_PARTIAL:
            parts.append(partial)
            partial = ""
        self._partial = partial
        return [clean_line(p) for p in parts]

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

    def update(self, status: str, detail: dict | None) -> bool:
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


def _layer_totals(layers: dict[str, LayerProgress]) -> dict[str, Any]:
    """Byte and layer totals for a total bar (bytes only where the engine said how many)."""
    values = list(layers.values())
    return {
        "layers_done": sum(1 for layer in values if layer.done),
        "layers_total": len(values),
        "bytes_current": sum(layer.current for layer in values if layer.total),
        "bytes_total": sum(layer.total for layer in values),
        "fraction": round(sum(layer.fraction for layer in values) / len(values), 4) if values else 0.0,
    }


def _error_message(event: dict) -> str:
    detail = event.get("errorDetail") or {}
    return str(detail.get("message") or event.get("error") or "unknown error").strip()


class _StreamState:
    """What build and push states share: status, layers, errors, warnings."""

    kind = ""

    def __init__(self, title: str = "") -> None:
        self.title = title
        self.status = "running"  # running | done | failed | cancelled
        self.error: str | None = None
        self.warnings: list[str] = []
        self.layers: dict[str, LayerProgress] = {}

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    def warn(self, message: str) -> None:
        """A warning the user should see (shown by the widget, kept in the result)."""
        if message not in self.warnings:
            self.warnings.append(message)

    def fail(self, message: str) -> None:
        """Mark the stream failed; a later, more complete message replaces an earlier one."""
        self.status = "failed"
        self.error = message

    def cancel(self) -> None:
        if self.status == "running":
            self.status = "cancelled"

    def _apply_layer(self, event: dict) -> list[str]:
        layer = self.layers.get(event["id"])
        if layer is None:
            layer = self.layers[event["id"]] = LayerProgress(event["id"])
        status = str(event.get("status", ""))
        changed = layer.update(status, event.get("progressDetail"))
        if changed or not status.startswith(_LAYER_TICKS):
            return [f"{layer.id}: {status}"]
        return []

    def _common(self, elapsed_s: float) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "title": self.title,
            "status": self.status,
            "error": self.error,
            "warnings": list(self.warnings),
            "layers": [layer.as_dict() for layer in self.layers.values()],
            **_layer_totals(self.layers),
            "elapsed_s": round(float(elapsed_s), 2),
        }


class BuildState(_StreamState):
    """Reducer for `APIClient.build(decode=True)` events (classic builder).

    `apply(event)` returns the complete log lines the event finished, for the full log file;
    the state itself keeps only a bounded tail (`tail` lines) and a line count.
    """

    kind = "build"

    def __init__(self, title: str = "", *, tail: int = LOG_TAIL, step_tail: int = 30) -> None:
        super().__init__(title)
        self.step = 0
        self.total_steps = 0
        self.instruction = ""
        self.log_tail: deque[str] = deque(maxlen=tail)
        self.line_count = 0
        self.step_output: deque[str] = deque(maxlen=step_tail)  # the current step's own output
        self.container: str | None = None  # intermediate container running right now
        self.last_image: str | None = None  # image id of the last finished step
        self.image_id: str | None = None
        self.tags: list[str] = []
        self.failed_step: int | None = None
        self.failed_instruction: str | None = None
        self.last_lines: list[str] = []
        self._joiner = LineJoiner()

    def apply(self, event: dict) -> list[str]:
        """Fold one decoded build event into the state; return the log lines it completed."""
        if "error" in event or "errorDetail" in event:
            return self._apply_error(event)
        lines: list[str] = []
        if "stream" in event:
            lines = self._joiner.feed(str(event["stream"]))
        elif event.get("id") and "status" in event and not str(event["status"]).startswith("Pulling from"):
            lines = self._apply_layer(event)
        elif "status" in event:
            lines = [clean_line(str(event["status"]))]
        aux = event.get("aux")
        if isinstance(aux, dict) and aux.get("ID"):
            self.image_id = str(aux["ID"])
        for line in lines:
            self._take_line(line)
        return lines

    def finish(self) -> list[str]:
        """End of a successful stream: flush the unfinished line, mark done."""
        lines = self._joiner.flush()
        for line in lines:
            self._take_line(line)
        self.container = None
        if self.status == "running":
            self.status = "done"
        return lines

    def _apply_error(self, event: dict) -> list[str]:
        lines = self._joiner.flush()
        for line in lines:
            self._take_line(line)
        message = _error_message(event)
        self.failed_step = self.step or None
        self.failed_instruction = self.instruction or None
        self.last_lines = list(self.step_output)
        self.fail(message)
        line = f"ERROR: {message}"
        self._take_line(line, output=False)
        return [*lines, line]

    def _take_line(self, line: str, *, output: bool | None = None) -> None:
        self.log_tail.append(line)
        self.line_count += 1
        if step := _STEP.match(line):
            self.step, self.total_steps = int(step[1]), int(step[2])
            self.instruction = step[3].strip()
            self.step_output.clear()
            return
        if (removed := _REMOVED.search(line)) and self.container and removed[1].startswith(self.container[:12]):
            self.container = None
            line = line[:removed.start()]  # keep what a step printed without a final newline
        if output is None:
            output = not line.startswith(_BUILDER_PREFIXES)
        if output:
            if line.strip():
                self.step_output.append(line)
        elif match := _RUNNING_IN.match(line):
            self.container = match[1]
        elif match := _STEP_IMAGE.match(line):
            self.last_image = match[1]
        elif match := _TAGGED.match(line):
            self.tags.append(match[1])

    def snapshot(self, *, elapsed_s: float = 0.0, tail: int | None = None) -> dict[str, Any]:
        """JSON-able display state: steps, instruction, log tail, pull layers, result, error."""
        log_tail = list(self.log_tail)
        if tail is not None:
            log_tail = log_tail[-tail:] if tail else []
        pending = self._joiner.pending
        if pending and self.status == "running":
            log_tail.append(pending)  # show a line still being written (e.g. a progress bar)
        return {
            **self._common(elapsed_s),
            "step": self.step,
            "total_steps": self.total_steps,
            "instruction": self.instruction,
            "log_tail": log_tail,
            "log_lines": self.line_count,
            "image_id": self.image_id,
            "failed_step": self.failed_step,
        }


class PushState(_StreamState):
    """Reducer for `APIClient.push(stream=True, decode=True)` events."""

    kind = "push"

    def __init__(self, reference: str = "", title: str = "") -> None:
        super().__init__(title or reference)
        self.reference = reference
        self.repository = ""
        self.digest: str | None = None
        self.tag: str | None = None
        self.size: int | None = None

    def apply(self, event: dict) -> list[str]:
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
        try:
            return parse_reference(self.reference).pinned(self.digest)
        except ValueError:
            return f"{self.repository}@{self.digest}" if self.repository else None

    def snapshot(self, *, elapsed_s: float = 0.0) -> dict[str, Any]:
        """JSON-able display state: per-layer bars, totals, digest, error."""
        return {
            **self._common(elapsed_s),
            "reference": self.reference,
            "repository": self.repository,
            "digest": self.digest,
            "pinned": self.pinned,
            "size": self.size,
        }


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


def format_line(snapshot: dict[str, Any], *, elapsed: bool = True) -> str:
    """One plain-text line for a terminal describing a snapshot (headline, no log)."""
    kind, status = snapshot.get("kind"), snapshot.get("status")
    label = f"[{kind} {snapshot.get('title')}]" if snapshot.get("title") else f"[{kind}]"
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
                         f"{human_bytes(snapshot['bytes_current'])}/{human_bytes(snapshot['bytes_total'])}")
        text = f"{label} {' | '.join(parts) or 'starting'}"
    if elapsed:
        text += f" ({snapshot.get('elapsed_s', 0.0):.1f}s)"
    return text
