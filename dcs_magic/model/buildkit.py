"""Pure BuildKit model: when a Dockerfile needs BuildKit, `--secret` specs, and the docker
CLI's BuildKit progress (`--progress=plain` lines, `--progress=rawjson` SolveStatus objects)
folded into the same `BuildState` the classic builder's events fill.

No process, file or engine here: the adapter (adapters/buildkit.py) runs the CLI and hands its
output over as events, `{"line": text}` for a line of text (plain progress, or whatever the
CLI prints that is not JSON) and `{"solve": object}` for one decoded rawjson SolveStatus.

Facts about the streams (recorded in tests/unit/fixtures/buildkit_*):
- plain: every line of a vertex starts `#N `; the first is its name, then (BuildKit 0.8, the
  docker 20.10 client) its digest, then statuses (`transferring context: 34B done`), log lines
  with the seconds since the vertex started (`#5 0.316 hello`), and its end: `#N DONE 0.4s`,
  `#N CACHED`, `#N ERROR: message` or `#N CANCELED`. Vertices run in parallel; the printer
  switches between them (`#N ...`, then the name again when it comes back). Lines without `#`
  come after the vertices: the failing vertex's last log lines between `------` rules, then
  the error (`executor failed running ...`, `failed to solve: ...`).
- rawjson (buildx): one JSON object a line, a `client.SolveStatus`: `vertexes` (digest, name,
  started/completed RFC 3339 times, cached, error), `statuses` (id, vertex, current, total,
  completed), `logs` (vertex, stream, base64 `data`, not line-aligned), `warnings` (base64
  `short` and `detail`). A vertex is sent again whenever it changes.
- A user's step is a vertex named `[STAGE N/TOTAL] INSTRUCTION` (`[N/TOTAL]` in newer
  BuildKit); `[internal] load ...`, `copy /context /`, `exporting to image` are BuildKit's own.
  Instructions that only change the image config (LABEL, ENV, CMD, ...) are not vertices, so
  the labels dcs-magic adds (given as `--label`) cost no step and need no hiding.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from .dockerfile import parse, stages
from .progress import LOG_TAIL, BuildState, StepDict, clean_line

__all__ = [
    "BUILDERS",
    "BuildKitState",
    "SecretSpec",
    "buildkit_reasons",
    "parse_secret",
]

BUILDERS = ("auto", "classic", "buildkit")
"""`--builder` values: `auto` picks BuildKit when the Dockerfile or a `--secret` needs it."""

_BUILDKIT_FLAGS = {"RUN": ("mount", "network", "security"),
                   "COPY": ("link", "chmod", "parents", "exclude"),
                   "ADD": ("link", "chmod", "checksum", "keep-git-dir", "parents", "exclude")}


def buildkit_reasons(text: str, *, secrets: bool = False) -> list[str]:
    """Why building TEXT needs BuildKit, one phrase each (empty: the classic builder can).

    `RUN --mount` (and BuildKit's other RUN/COPY/ADD flags), a heredoc (`RUN <<EOF`), a
    `# syntax=` directive, and `secrets` (a `--secret` was given)."""
    reasons: list[str] = []
    dockerfile = parse(text)
    if any(name.lower() == "syntax" for name, _ in dockerfile.directives):
        reasons.append("a `# syntax=` directive")
    for instruction in dockerfile.instructions:
        for flag in _BUILDKIT_FLAGS.get(instruction.keyword, ()):
            if instruction.has_flag(flag):
                reasons.append(f"{instruction.keyword} --{flag} (line {instruction.lineno})")
        if instruction.heredocs:
            reasons.append(f"a heredoc (line {instruction.lineno})")
    if secrets:
        reasons.append("--secret")
    return reasons


@dataclass(frozen=True)
class SecretSpec:
    """A build secret: `id` as `RUN --mount=type=secret,id=ID` names it, its value from the
    environment variable `env` or the file `src` (never the value itself)."""

    id: str
    env: str | None = None
    src: str | None = None

    def __str__(self) -> str:
        return f"id={self.id},env={self.env}" if self.env else f"id={self.id},src={self.src}"


_SECRET_ID = re.compile(r"^[A-Za-z0-9_.-]+$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse_secret(spec: str | SecretSpec) -> SecretSpec:
    """`id=NAME,env=VAR` / `id=NAME,src=FILE` (`source=`, and `type=env|file`, as the docker
    CLI reads them) -> SecretSpec; ValueError saying what is wrong (never a value: there is
    none in a spec)."""
    if isinstance(spec, SecretSpec):
        return spec
    fields: dict[str, str] = {}
    for part in str(spec).split(","):
        key, sep, value = part.partition("=")
        key = key.strip().lower()
        if not sep or not key:
            raise ValueError(f"--secret expects id=NAME,env=VAR or id=NAME,src=FILE, got {spec!r}")
        key = {"source": "src", "type": "type"}.get(key, key)
        if key not in ("id", "env", "src", "type"):
            raise ValueError(f"--secret: unknown key {key!r} in {spec!r} (use id=, env= or src=)")
        fields[key] = value.strip()
    kind = fields.pop("type", None)
    secret_id = fields.get("id", "")
    if not secret_id or not _SECRET_ID.match(secret_id):
        raise ValueError(f"--secret needs id=NAME (letters, digits, '.', '_', '-'), got {spec!r}")
    env, src = fields.get("env"), fields.get("src")
    if kind == "env" and env is None and src is None:
        env = secret_id
    if (env is None) == (src is None):
        raise ValueError(f"--secret {secret_id}: give exactly one of env=VAR or src=FILE")
    if env is not None and not _ENV_NAME.match(env):
        raise ValueError(f"--secret {secret_id}: env={env!r} is not an environment variable name")
    if src == "":
        raise ValueError(f"--secret {secret_id}: src= needs a file path")
    return SecretSpec(secret_id, env=env, src=src)


# -- progress ----------------------------------------------------------------------------------

_PLAIN = re.compile(r"^#(\d+) (.*)$")
_DONE = re.compile(r"^DONE(?: (\d+(?:\.\d+)?)s)?$")
_LOG = re.compile(r"^(\d+\.\d+) ?(.*)$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_USER_STEP = re.compile(r"^\[(?:(.+?) )?(\d+)/(\d+)\] (.*)$", re.DOTALL)
_IMAGE_ID = re.compile(r"writing image (sha256:[0-9a-f]{64})")
_STEP_OUTPUT = 30


@dataclass
class _Vertex:
    """One BuildKit vertex as the model knows it."""

    key: str  # "#N" (plain) or the digest (rawjson)
    index: int  # the N of `#N` (rawjson: in order of first appearance)
    name: str = ""
    step: StepDict | None = None  # the user's step, when the vertex is one
    started_at: float | None = None  # rawjson: epoch seconds
    done: bool = False
    cached: bool = False
    error: str | None = None
    output: deque[str] = field(default_factory=lambda: deque(maxlen=_STEP_OUTPUT))
    partial: str = ""  # rawjson: a log line still being written


class BuildKitState(BuildState):
    """BuildState for the docker CLI's BuildKit progress (see the module docstring).

    `apply({"line": ...})` takes a plain progress line (or any text line the CLI prints),
    `apply({"solve": ...})` one rawjson SolveStatus; both return the lines for the log file,
    which reads like `--progress=plain` in either case. The snapshot is BuildState's: the
    user's steps numbered in the order BuildKit starts them (`total_steps` from the stages'
    `N/TOTAL`), CACHED, per-step times (BuildKit's own), the log tail, the failing step.

    `dockerfile`, when given, names FROM steps as written (`FROM base:1`, not BuildKit's
    normalised `FROM docker.io/library/base:1@sha256:...`)."""

    def __init__(self, title: str = "", *, dockerfile: str | None = None, tail: int = LOG_TAIL,
                 clock: Callable[[], float] | None = None) -> None:
        super().__init__(title, tail=tail, clock=clock or time.monotonic)
        self.builder = "buildkit"
        self._vertices: dict[str, _Vertex] = {}
        self._stage_totals: dict[str, int] = {}
        self._from_lines = _from_lines(dockerfile) if dockerfile else {}
        self._t0_epoch: float | None = None  # rawjson: the first vertex's start
        self.trailer: list[str] = []  # text after the vertices (the CLI's error summary)

    # -- events ----------------------------------------------------------------------------

    def apply(self, event: dict[str, Any]) -> list[str]:
        if "line" in event:
            return self._apply_line(str(event["line"]))
        solve = event.get("solve")
        if isinstance(solve, Mapping):
            return self._apply_solve(solve)
        return []

    def _apply_line(self, raw: str) -> list[str]:
        line = clean_line(raw)
        match = _PLAIN.match(line)
        if match is None:
            if line.strip():
                self.trailer.append(line)
                self._tail(line)
                return [line]
            return []
        key, rest = f"#{match[1]}", match[2]
        vertex = self._vertices.get(key)
        if vertex is None:  # its first line is its name
            vertex = self._vertices[key] = _Vertex(key, int(match[1]))
            self._named(vertex, rest)
        elif rest == vertex.name or rest == "..." or _DIGEST.match(rest):
            pass  # the printer coming back to the vertex, or its digest: nothing new
        elif rest == "CACHED":
            self._ended(vertex, cached=True, duration=0.0)
        elif rest == "CANCELED":
            self._ended(vertex, error="canceled")
        elif rest.startswith("ERROR: ") or rest == "ERROR":
            self._ended(vertex, error=rest[7:].strip() or "failed")
        elif done := _DONE.match(rest):
            self._ended(vertex, duration=float(done[1]) if done[1] else None)
        elif log := _LOG.match(rest):
            self._output(vertex, log[2])
        else:  # a status: "transferring context: 34B done", "writing image sha256:... done"
            self._status(rest)
        self._tail(line)
        return [line]

    def _apply_solve(self, solve: Mapping[str, Any]) -> list[str]:
        lines: list[str] = []
        for item in solve.get("vertexes") or ():
            if isinstance(item, Mapping):
                lines += self._solve_vertex(item)
        for item in solve.get("statuses") or ():
            if isinstance(item, Mapping) and (vertex := self._vertices.get(str(item.get("vertex", "")))):
                text = _status_text(item)
                self._status(text)
                lines.append(self._line(vertex, text))
        for item in solve.get("logs") or ():
            if isinstance(item, Mapping) and (vertex := self._vertices.get(str(item.get("vertex", "")))):
                data = _b64(item.get("data"))
                at = _epoch(item.get("timestamp"))
                offset = at - vertex.started_at if at is not None and vertex.started_at is not None else 0.0
                text = vertex.partial + data.decode("utf-8", "replace")
                *complete, vertex.partial = text.split("\n")
                for part in complete:
                    shown = clean_line(part)
                    self._output(vertex, shown)
                    lines.append(self._line(vertex, f"{max(offset, 0.0):.3f} {shown}"))
        for item in solve.get("warnings") or ():
            if isinstance(item, Mapping):
                short = _b64(item.get("short")).decode("utf-8", "replace").strip()
                if short:
                    self.warn(short)
                    lines.append(f"WARNING: {short}")
        for line in lines:
            self._tail(line)
        return lines

    def _solve_vertex(self, item: Mapping[str, Any]) -> list[str]:
        digest = str(item.get("digest") or "")
        if not digest:
            return []
        lines: list[str] = []
        vertex = self._vertices.get(digest)
        started = _epoch(item.get("started"))
        if vertex is None:
            if started is None and not item.get("completed"):
                # announced, not started: remembered (for its logs), shown once it starts
                vertex = self._vertices[digest] = _Vertex(digest, 0, name=str(item.get("name") or ""))
                return []
            vertex = self._vertices[digest] = _Vertex(digest, 0)
        if vertex.index == 0 and (started is not None or item.get("completed")):
            vertex.index = sum(1 for v in self._vertices.values() if v.index) + 1
            vertex.name = ""
            if self._t0_epoch is None and started is not None:
                self._t0_epoch = started
            vertex.started_at = started
            name = str(item.get("name") or "")
            self._named(vertex, name, started_s=self._since_t0(started))
            lines.append(self._line(vertex, name))
        if vertex.done or not item.get("completed"):
            return lines
        completed = _epoch(item.get("completed"))
        duration = completed - vertex.started_at if completed is not None and vertex.started_at is not None else None
        error = str(item.get("error") or "") or None
        if vertex.partial:  # a log line without its newline
            self._output(vertex, clean_line(vertex.partial))
            lines.append(self._line(vertex, clean_line(vertex.partial)))
            vertex.partial = ""
        duration = max(duration, 0.0) if duration is not None else None
        if error and error.endswith("context canceled"):
            self._ended(vertex, error="canceled", duration=duration)
            lines.append(self._line(vertex, "CANCELED"))
        elif error:
            self._ended(vertex, error=error, duration=duration)
            lines.append(self._line(vertex, f"ERROR: {error}"))
        elif item.get("cached"):
            self._ended(vertex, cached=True, duration=0.0)
            lines.append(self._line(vertex, "CACHED"))
        else:
            self._ended(vertex, duration=duration)
            lines.append(self._line(vertex, "DONE" + (f" {duration:.1f}s" if duration is not None else "")))
        return lines

    # -- folding ---------------------------------------------------------------------------

    def _named(self, vertex: _Vertex, name: str, started_s: float | None = None) -> None:
        vertex.name = name
        match = _USER_STEP.match(name)
        if match is None:
            return
        stage, total, instruction = match[1] or "", int(match[3]), match[4]
        if int(match[2]) == 1 and instruction.startswith("FROM ") and stage in self._from_lines:
            instruction = self._from_lines[stage]
        self._stage_totals[stage] = total
        self.engine_total_steps = sum(self._stage_totals.values())
        now = self._elapsed() if started_s is None else started_s
        step = StepDict(n=len(self.steps) + 1, instruction=instruction, cached=False, started_s=now,
                        duration_s=None)
        vertex.step = step
        self.steps.append(step)
        self.step, self.instruction = step["n"], instruction

    def _ended(self, vertex: _Vertex, *, cached: bool = False, duration: float | None = None,
               error: str | None = None) -> None:
        vertex.done, vertex.cached = True, cached
        step = vertex.step
        if step is not None and step["duration_s"] is None:
            step["cached"] = cached
            step["duration_s"] = duration if duration is not None else max(self._elapsed() - step["started_s"], 0.0)
        if error and error != "canceled" and self.failed_step is None:
            vertex.error = error
            self.failed_step = step["n"] if step is not None else None
            self.failed_instruction = step["instruction"] if step is not None else vertex.name
            self.last_lines = list(vertex.output)
            self.error = error
        if step is not None and step["n"] == self.step:
            running = [v.step for v in self._vertices.values() if v.step is not None and not v.done]
            if running:
                last = running[-1]
                self.step, self.instruction = last["n"], last["instruction"]

    def _output(self, vertex: _Vertex, text: str) -> None:
        if text.strip():
            vertex.output.append(text)
            if vertex.step is not None:
                self.step_output.append(text)

    def _status(self, text: str) -> None:
        if image := _IMAGE_ID.search(text):
            self.image_id = image[1]

    def _tail(self, line: str) -> None:
        self.log_tail.append(line)

    def _line(self, vertex: _Vertex, text: str) -> str:
        return f"#{vertex.index} {text}"

    def _since_t0(self, epoch: float | None) -> float | None:
        if epoch is None or self._t0_epoch is None:
            return None
        return max(epoch - self._t0_epoch, 0.0)

    # -- the end ---------------------------------------------------------------------------

    def finish(self) -> list[str]:
        """End of a successful build: mark done, close the steps still open."""
        lines: list[str] = []
        for vertex in self._vertices.values():
            if vertex.partial:
                lines.append(self._line(vertex, clean_line(vertex.partial)))
                vertex.partial = ""
        for line in lines:
            self._tail(line)
        if self.status == "running":
            self.status = "done"
        self._close_steps()
        return lines

    def fail(self, message: str) -> None:
        super().fail(message)
        self._close_steps()

    def cancel(self) -> None:
        super().cancel()
        self._close_steps()

    def _close_steps(self) -> None:
        for step in self.steps:
            if step["duration_s"] is None:
                step["duration_s"] = max(self._elapsed() - step["started_s"], 0.0)

    def summary_error(self) -> str | None:
        """The error the CLI printed after the vertices (`failed to solve: ...`), or None."""
        for line in reversed(self.trailer):
            text = line.strip()
            if text and not text.startswith(("------", ">", "#")) and not _is_output_echo(text):
                return re.sub(r"^(ERROR|error): ", "", text)
        return None


def _is_output_echo(text: str) -> bool:
    """A line of the CLI's error summary that repeats a step's output (`0.327 oops`)."""
    return bool(re.match(r"^\d+\.\d+ ", text))


def _from_lines(dockerfile: str) -> dict[str, str]:
    """Stage label (`stage-0`, its `AS` name, and `` for unlabelled [N/TOTAL]) -> its FROM as written."""
    found: dict[str, str] = {}
    try:
        all_stages = stages(parse(dockerfile))
    except ValueError:  # a Dockerfile the parser cannot read: BuildKit's names stay
        return {}
    for stage in all_stages:
        written = " ".join(stage.from_instruction.raw.split())
        found[f"stage-{stage.index}"] = written
        if stage.name:
            found[stage.name.lower()] = written  # BuildKit names a stage in lower case
    if len(all_stages) == 1:
        found[""] = found["stage-0"]  # newer BuildKit: `[2/3] RUN ...` for a single stage
    return found


def _status_text(item: Mapping[str, Any]) -> str:
    """A rawjson status as the plain printer writes it: `ID [current / total] done`."""
    text = str(item.get("id") or item.get("name") or "")
    current, total = item.get("current") or 0, item.get("total") or 0
    if total:
        text += f" {current} / {total}"
    elif current:
        text += f" {current}"
    if item.get("completed"):
        text += " done"
    return text


def _b64(value: Any) -> bytes:
    if not isinstance(value, str) or not value:
        return b""
    try:
        return base64.b64decode(value)
    except (binascii.Error, ValueError):
        return b""


_RFC3339 = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?$")


def _epoch(value: Any) -> float | None:
    """An RFC 3339 time as Go writes it (nanoseconds, `Z` or an offset) -> epoch seconds."""
    if not isinstance(value, str) or not (match := _RFC3339.match(value.strip())):
        return None
    zone = match[3] or "Z"
    moment = datetime.fromisoformat(match[1] + ("+00:00" if zone == "Z" else zone))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp() + (float(match[2]) if match[2] else 0.0)


def secret_specs(values: Sequence[str | SecretSpec] | None) -> list[SecretSpec]:
    """`parse_secret` for each; one SecretSpec per id (a repeated id is a ValueError)."""
    specs = [parse_secret(value) for value in values or ()]
    seen: set[str] = set()
    for spec in specs:
        if spec.id in seen:
            raise ValueError(f"--secret id={spec.id} is given twice")
        seen.add(spec.id)
    return specs
