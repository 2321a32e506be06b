"""What the pipeline returns: plain data with readable reprs, no I/O."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .imageref import ImageRef, parse_reference
from .progress import shown_engine

__all__ = ["BuildResult", "CheckItem", "CheckReport", "LaunchRecord", "ProgressRecord", "PushResult", "path_href",
           "path_link", "url_link"]


# -- the static record a finished build/push leaves in the notebook -------------------------

# Theme variables only (JupyterLab light and dark both define them). The text keeps the output
# area's own colour (the theme's content colour, AA in either theme); the status colour marks
# the border, never text. Fallbacks are keywords, not colours, for front-ends without --jp-*.
# Short on purpose (it is sent with every build): font, size and background are the output
# area's too, and <code> gets the theme's code font from JupyterLab (monospace elsewhere).
RECORD_STYLE = "padding:2px 8px;border-left:4px solid {accent};overflow-wrap:anywhere"
RECORD_ACCENTS = {"done": "var(--jp-success-color1, currentColor)",
                  "failed": "var(--jp-error-color1, currentColor)",
                  "cancelled": "var(--jp-warn-color1, currentColor)",
                  "running": "var(--jp-brand-color1, currentColor)"}


def path_href(path: str, base: str | None = None) -> str:
    """The link target for a local file shown in an output: relative to BASE (default: the
    current directory, which in Jupyter is the notebook's, so JupyterLab and Notebook 7 open the
    file in a tab), else a `file://` URI (a file outside the notebook's folder)."""
    base = base or os.getcwd()
    absolute = os.path.abspath(os.path.join(base, path))
    try:
        relative = os.path.relpath(absolute, base)
    except ValueError:  # another drive (Windows)
        relative = os.pardir
    if relative == os.pardir or relative.startswith(os.pardir + os.sep) or os.path.isabs(relative):
        return Path(absolute).as_uri()
    return quote(Path(relative).as_posix())


def path_link(path: str, base: str | None = None) -> str:
    """HTML: the path as a <code> link to the file (see path_href)."""
    return f'<a href="{escape(path_href(path, base))}"><code>{escape(path)}</code></a>'


def url_link(url: str, text: str | None = None) -> str:
    """HTML: an http(s) URL as a link that opens in a new tab (anything else: plain text)."""
    shown = escape(text if text is not None else url)
    if not url.startswith(("http://", "https://")):
        return shown
    return f'<a href="{escape(url)}" target="_blank" rel="noopener">{shown}</a>'


def _error_parts(text: str) -> tuple[str | None, list[str], str | None]:
    """(first line, last output lines, hint) of a BuildError/PushError's text (its message,
    "Full log: ..." and "Last output lines:" blocks, then "Hint: ...")."""
    first: str | None = None
    lines: list[str] = []
    hint: str | None = None
    in_lines = False
    for line in text.strip().splitlines():
        if first is None:
            first = line
        elif line.startswith("Hint: "):
            hint, in_lines = line[len("Hint: "):], False
        elif line == "Last output lines:":
            in_lines = True
        elif in_lines and line.startswith("    "):
            lines.append(line[4:])
        elif hint is not None:
            hint += "\n" + line
        else:
            in_lines = False
    return first, lines, hint


def _duration(seconds: float | None) -> str:
    from .progress import format_duration  # the widget's own wording

    return format_duration(seconds)


@dataclass
class ProgressRecord:
    """The outcome of a build or push as static output: it renders without a kernel.

    JupyterLab does not save widget state by default, so a reopened notebook cannot draw the
    progress widget; this record (HTML and a text/plain twin) stays readable. Built from the
    final progress snapshot (`from_snapshot`) or from a result object.
    """

    kind: str  # "build" | "push"
    title: str
    status: str  # done | failed | cancelled
    duration_s: float | None = None
    image_id: str | None = None
    pinned: str | None = None
    digest: str | None = None
    log_path: str | None = None
    tags: list[str] = field(default_factory=list)
    error: str | None = None  # the failure's first line (the raised error then says only what failed)
    step: str | None = None  # "Step 3/5 : RUN make" for a failed build
    cached_steps: int = 0
    total_steps: int = 0
    last_lines: list[str] = field(default_factory=list)  # a failed step's last output lines
    hint: str | None = None  # how to fix the failure
    engine: str = ""  # the engine it ran on (a row when not the local one)
    builder: str = ""  # a build's builder (a row when BuildKit, the classic builder being the default)

    @classmethod
    def from_snapshot(cls, snapshot: dict[str, Any]) -> ProgressRecord:
        """The record of a final ProgressSnapshot."""
        steps = snapshot.get("steps") or []
        step = None
        if snapshot.get("status") == "failed" and snapshot.get("failed_step"):
            failed = next((s for s in steps if s.get("n") == snapshot["failed_step"]), None)
            instruction = failed["instruction"] if failed else snapshot.get("instruction", "")
            step = f"Step {snapshot['failed_step']}/{snapshot.get('total_steps') or '?'} : {instruction}"
        error, last_lines, hint = _error_parts(str(snapshot.get("error") or ""))
        if step and error and error.startswith(f"{step} failed: "):
            error = error[len(f"{step} failed: "):]  # the step is its own row
        return cls(kind=str(snapshot.get("kind") or "build"), title=str(snapshot.get("title") or ""),
                   status=str(snapshot.get("status") or ""), duration_s=snapshot.get("elapsed_s"),
                   image_id=snapshot.get("image_id"), pinned=snapshot.get("pinned"),
                   digest=snapshot.get("digest"), log_path=snapshot.get("log_path"),
                   error=error, step=step, last_lines=last_lines, hint=hint,
                   cached_steps=sum(1 for s in steps if s.get("cached")),
                   total_steps=int(snapshot.get("total_steps") or 0), engine=str(snapshot.get("engine") or ""),
                   builder=str(snapshot.get("builder") or ""))

    @property
    def result(self) -> str | None:
        """What the outcome produced: the image id (build) or the pinned reference (push)."""
        return self.image_id if self.kind == "build" else (self.pinned or self.digest)

    def _facts(self) -> list[tuple[str, str, bool]]:
        """(label, value, is_code) rows shared by the HTML and the text."""
        rows: list[tuple[str, str, bool]] = []
        if self.status == "done" and self.result:
            rows.append(("Image" if self.kind == "build" else "Pinned", self.result, True))
        if self.tags:
            rows.append(("Tags", ", ".join(self.tags), True))
        if self.kind == "build" and self.total_steps:
            cached = f", {self.cached_steps} cached" if self.cached_steps else ""
            rows.append(("Steps", f"{self.total_steps}{cached}", False))
        if self.step:
            rows.append(("Failed at", self.step, True))
        if self.error and self.status != "done":
            rows.append(("Error", self.error, False))
        if self.hint and self.status != "done":
            rows.append(("Hint", self.hint, False))
        if shown_engine(self.engine):
            rows.append(("Engine", self.engine, False))
        if self.kind == "build" and self.builder == "buildkit":
            rows.append(("Builder", "BuildKit", False))
        if self.log_path:
            rows.append(("Log", self.log_path, True))
        return rows

    def headline(self) -> str:
        verb = "Build" if self.kind == "build" else "Push"
        took = f" in {_duration(self.duration_s)}" if self.duration_s is not None else ""
        return f"{verb} {self.title}: {self.status}{took}".replace("  ", " ")

    def _shown_lines(self) -> list[str]:
        return self.last_lines if self.status == "failed" else []

    def __repr__(self) -> str:
        lines = [self.headline(), *(f"  {label}: {value}" for label, value, _ in self._facts())]
        if self._shown_lines():
            lines += ["  Last output lines:", *(f"    {line}" for line in self._shown_lines())]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        accent = RECORD_ACCENTS.get(self.status, "var(--jp-border-color1, currentColor)")
        role = ' role="alert"' if self.status == "failed" else ' role="status"'

        def value_html(label: str, value: str, code: bool) -> str:
            if label == "Log":
                return path_link(value)
            return f"<code>{escape(value)}</code>" if code else escape(value)

        rows = "".join(f'<div data-row="{escape(label.lower())}"><b>{escape(label)}:</b> '
                       f"{value_html(label, value, code)}</div>" for label, value, code in self._facts())
        if self._shown_lines():
            rows += ('<div data-row="output"><b>Last output lines:</b><pre style="margin:2px 0;white-space:pre-wrap">'
                     + escape("\n".join(self._shown_lines())) + "</pre></div>")
        return (f'<div class="dcs-record" data-kind="{escape(self.kind)}" data-status="{escape(self.status)}"'
                f'{role} style="{RECORD_STYLE.format(accent=accent)}">'
                f'<b>{escape(self.headline())}</b>{rows}</div>')

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {"text/plain": repr(self), "text/html": self._repr_html_()}


_LAUNCH_ACCENTS = {"RUNNING": RECORD_ACCENTS["done"], "TERMINATED": RECORD_ACCENTS["failed"], "ERROR": RECORD_ACCENTS["failed"]}


@dataclass
class LaunchRecord:
    """What a launch form did, as static output (it renders without a kernel or widget state):
    the workspace, the cluster created (id, state, link), its failure and the diagnosis of it,
    how the form ended, and the masked clusters/create JSON it sent (or, before Create, the one
    it shows)."""

    workspace: str | None  # the host, None for a preview-only form
    cluster_id: str | None = None
    state: str | None = None  # the last state seen (PENDING, RUNNING, TERMINATED, ...)
    url: str | None = None  # the cluster's page (None on the local workspace)
    error: str | None = None
    hint: str | None = None
    spec_json: str = ""  # masked (ClusterSpec.to_json()): never a password
    sent: bool = False  # spec_json is the body Create sent
    # How the form ended: "terminated" (its Terminate ended the cluster), "done" (closed with
    # Done: a cluster still starting or running was left to run), None (still open, or ended
    # by a failure).
    closed: str | None = None
    diagnosis: tuple[str, ...] = ()  # `dcs why`'s lines for a failed start (`Why.lines()`)

    def headline(self) -> str:
        if self.cluster_id:
            return f"Launch: cluster {self.cluster_id} {self.state or 'created'}"
        if self.error:
            return "Launch: not created"
        return "Launch form: no cluster created" + ("" if self.workspace else " (preview only)")

    def _note(self) -> str | None:
        if self.closed == "terminated" and self.state == "TERMINATED":
            return "terminated from this form"
        if self.closed == "done" and self.cluster_id and self.state not in ("TERMINATED", "ERROR"):
            return f"form closed with Done while the cluster was {self.state or 'being created'}; it kept running"
        return None

    def _facts(self) -> list[tuple[str, str]]:
        rows = [("Workspace", self.workspace or "none (preview only)")]
        if self.cluster_id:
            rows.append(("Cluster", self.cluster_id))
        note = self._note()
        if note:
            rows.append(("Note", note))
        if self.error:
            rows.append(("Error", self.error))
        if self.hint:
            rows.append(("Hint", self.hint))
        return rows

    def _spec_label(self) -> str:
        return ("clusters/create JSON sent" if self.sent else "clusters/create JSON") + " (passwords masked)"

    def __repr__(self) -> str:
        lines = [self.headline(), *(f"  {label}: {value}" for label, value in self._facts())]
        if self.url:
            lines.append(f"  Open: {self.url}")
        if self.diagnosis:
            lines += [f"  Why: {self.diagnosis[0]}", *(f"    {line.strip()}" for line in self.diagnosis[1:])]
        if self.spec_json:
            lines += [f"  {self._spec_label()}:", *(f"    {line}" for line in self.spec_json.splitlines())]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        failed = bool(self.error) or self.state in ("TERMINATED", "ERROR")
        accent = _LAUNCH_ACCENTS.get(self.state or "", RECORD_ACCENTS["failed"] if failed
                                     else "var(--jp-border-color1, currentColor)")
        if self._note() == "terminated from this form" and not self.error:  # asked for: not a failure
            accent = "var(--jp-border-color1, currentColor)"
        role = ' role="alert"' if self.error else ' role="status"'
        rows = ""
        for label, value in self._facts():
            shown = (url_link(self.url, value) if label == "Cluster" and self.url
                     else f"<code>{escape(value)}</code>" if label in ("Cluster", "Workspace") else escape(value))
            rows += f'<div data-row="{label.lower()}"><b>{escape(label)}:</b> {shown}</div>'
        if self.diagnosis:
            rest = "".join(f"<li>{escape(line.strip())}</li>" for line in self.diagnosis[1:])
            rows += (f'<div data-row="diagnosis"><b>Why:</b> {escape(self.diagnosis[0])}'
                     + (f'<ul style="margin:2px 0">{rest}</ul>' if rest else "") + "</div>")
        if self.spec_json:
            rows += (f'<details data-row="spec"><summary style="cursor:pointer">{escape(self._spec_label())}</summary>'
                     f'<pre style="margin:2px 0;max-height:24em;overflow:auto">{escape(self.spec_json)}</pre></details>')
        return (f'<div class="dcs-record" data-kind="launch" data-state="{escape(self.state or "")}"{role} '
                f'style="{RECORD_STYLE.format(accent=accent)}"><b>{escape(self.headline())}</b>{rows}</div>')

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {"text/plain": repr(self), "text/html": self._repr_html_()}


@dataclass
class BuildResult:
    """The outcome of a successful `%dcs_build` / `build()`."""

    image_id: str
    tags: list[str]
    dockerfile_sha256: str
    duration_s: float
    log_path: str
    name: str = "default"
    base_image: str | None = None
    base_digest: str | None = None
    platform: str | None = None
    warnings: list[str] = field(default_factory=list)
    context_files: dict[str, str] | None = None  # sha256 of each file as streamed (build(hash_files=True))
    builder: str = "classic"  # "classic" (docker-py) or "buildkit" (the docker CLI)

    def __repr__(self) -> str:
        tags = ", ".join(self.tags) or "untagged"
        return (f"BuildResult({self.image_id[:19]} [{tags}] in {self.duration_s:.1f}s, "
                f"dockerfile sha256:{self.dockerfile_sha256[:12]}, log {self.log_path})")

    def record(self) -> ProgressRecord:
        """This result as a static record (what the notebook keeps without widget state)."""
        return ProgressRecord(kind="build", title=self.name, status="done", duration_s=self.duration_s,
                              image_id=self.image_id, tags=list(self.tags), log_path=self.log_path,
                              builder=self.builder)

    def _repr_html_(self) -> str:
        return self.record()._repr_html_()


@dataclass
class PushResult:
    """The outcome of a successful `%dcs_push` / `push()`.

    `reference` (`repo:tag`), `digest` and `pinned` (`repo@sha256:...`) are the strings to
    show and store; `image` is the same pushed image as an ImageRef (repository, tag and
    digest) for code that needs its parts, so nobody parses the strings again.

    The launch form starts its registry auth from the push: `username` is the `--username`
    the push used (None: Docker's own credentials), and `secret_ref` the `{{secrets/...}}`
    reference `--secret-ref` named for the password. Never the password itself.
    """

    reference: str
    digest: str
    pinned: str
    size: int | None = None
    duration_s: float = 0.0
    image: ImageRef = field(default=None, repr=False)  # type: ignore[assignment]  # filled in below
    username: str | None = None
    secret_ref: str | None = None

    def __post_init__(self) -> None:
        if self.image is None:  # built from the strings alone: parse them once, here
            self.image = dataclasses.replace(parse_reference(self.reference), digest=self.digest)

    def __repr__(self) -> str:
        return f"PushResult({self.reference} -> {self.pinned})"

    def record(self) -> ProgressRecord:
        """This result as a static record (what the notebook keeps without widget state)."""
        return ProgressRecord(kind="push", title=self.reference, status="done", duration_s=self.duration_s,
                              pinned=self.pinned, digest=self.digest)

    def _repr_html_(self) -> str:
        return self.record()._repr_html_()


@dataclass
class CheckItem:
    """One DCS requirement checked against an image."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    severity: str = "error"  # "error" fails the report; "warning" only informs

    def __repr__(self) -> str:
        mark = "ok" if self.ok else ("WARN" if self.severity == "warning" else "FAIL")
        return f"[{mark}] {self.name}: {self.detail}"


@dataclass
class CheckReport:
    """`%dcs_check` / `check()` result. `ok` is False when any error-severity item failed."""

    image: str
    checks: list[CheckItem]
    engine: str = ""  # the engine the image was checked on ("local", "tcp://h:2376 (TLS)", ...)

    @property
    def ok(self) -> bool:
        return all(c.ok or c.severity != "error" for c in self.checks)

    @property
    def failures(self) -> list[CheckItem]:
        return [c for c in self.checks if not c.ok]

    def __getitem__(self, name: str) -> CheckItem:
        for item in self.checks:
            if item.name == name:
                return item
        raise KeyError(name)

    def _ordered(self) -> tuple[list[CheckItem], list[CheckItem]]:
        """(what needs a look: failures, then warnings; what passed), each in check order."""
        errors = [c for c in self.checks if not c.ok and c.severity == "error"]
        warnings = [c for c in self.checks if not c.ok and c.severity != "error"]
        return errors + warnings, [c for c in self.checks if c.ok]

    def __repr__(self) -> str:
        """Failures first (with their fix), then the passed checks on one line."""
        lines = [f"CheckReport({self.image}: {'ok' if self.ok else 'FAILED'})"]
        if shown_engine(self.engine):
            lines.append(f"  engine: {self.engine}")
        attention, passed = self._ordered()
        for c in attention:
            lines.append(f"  {c!r}")
            if c.fix:
                lines.append(f"      fix: {c.fix}")
        if passed:
            lines.append(f"  {_passed(len(passed))}: " + ", ".join(c.name for c in passed))
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        """A table for notebooks: failures (with their fix) and warnings first, the passed
        checks folded into a `<details>` line ("12 checks passed").

        Colours come only from JupyterLab's theme variables: the text keeps the theme's text
        colour (>= 4.5:1 in light and dark themes) and the mark word says ok/FAIL/WARN; the
        status colour is a bar beside it, not the colour of the text.
        """
        marks = {"ok": ("&#10004; ok", "--jp-success-color1"), "error": ("&#10008; FAIL", "--jp-error-color1"),
                 "warning": ("&#9888; WARN", "--jp-warn-color0")}
        cell = "text-align:left;vertical-align:top;color:var(--jp-content-font-color1)"
        head = "text-align:left;color:var(--jp-content-font-color0)"

        def row(c: CheckItem) -> str:
            status = "ok" if c.ok else (c.severity if c.severity in marks else "error")
            mark, bar = marks[status]
            return (f'<tr class="dcs-check-{status}"><td class="dcs-mark" style="{cell};font-weight:bold;'
                    f'white-space:nowrap;color:var(--jp-content-font-color0);border-left:4px solid var({bar})">'
                    f'{mark}</td><td style="{cell}">{escape(c.name)}</td>'
                    f'<td style="{cell}">{escape(c.detail)}</td>'
                    f'<td style="{cell}">{"" if c.ok or not c.fix else f"<code>{escape(c.fix)}</code>"}</td></tr>')

        def table(items: list[CheckItem]) -> str:
            return (f'<table><thead><tr><th style="{head}"></th><th style="{head}">check</th>'
                    f'<th style="{head}">detail</th><th style="{head}">fix</th></tr></thead><tbody>'
                    + "".join(row(c) for c in items) + "</tbody></table>")

        attention, passed = self._ordered()
        failed = sum(c.severity == "error" for c in attention)
        verdict = ("meets the Databricks Container Services requirements" if self.ok
                   else f"does NOT meet the requirements ({failed} failed)")
        # What needs a look stays open; the passed rows fold into one line (a long report was
        # thousands of pixels of "ok").
        body = table(attention) if attention else ""
        if passed:
            body += (f'<details class="dcs-check-passed"><summary style="cursor:pointer">{_passed(len(passed))}'
                     f"</summary>{table(passed)}</details>")
        return (f'<div class="dcs-check" style="color:var(--jp-content-font-color1)">'
                f'<p role="status"><b>{escape(self.image)}</b> {verdict}'
                + (f' <span class="dcs-check-engine">(engine: {escape(self.engine)})</span>'
                   if shown_engine(self.engine) else "")
                + f"</p>{body}</div>")


def _passed(n: int) -> str:
    return f"{n} check{'' if n == 1 else 's'} passed"
