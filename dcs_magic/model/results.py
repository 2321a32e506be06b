"""What the pipeline returns: plain data with readable reprs, no I/O."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from html import escape
from typing import Any

from .imageref import ImageRef, parse_reference

__all__ = ["BuildResult", "CheckItem", "CheckReport", "ProgressRecord", "PushResult"]


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
    error: str | None = None  # the first line only: the details are in the widget / raised error
    step: str | None = None  # "Step 3/5 : RUN make" for a failed build
    cached_steps: int = 0
    total_steps: int = 0

    @classmethod
    def from_snapshot(cls, snapshot: dict[str, Any]) -> ProgressRecord:
        """The record of a final ProgressSnapshot."""
        steps = snapshot.get("steps") or []
        step = None
        if snapshot.get("status") == "failed" and snapshot.get("failed_step"):
            failed = next((s for s in steps if s.get("n") == snapshot["failed_step"]), None)
            instruction = failed["instruction"] if failed else snapshot.get("instruction", "")
            step = f"Step {snapshot['failed_step']}/{snapshot.get('total_steps') or '?'} : {instruction}"
        error = (snapshot.get("error") or "").strip().splitlines()
        if step and error and error[0].startswith(f"{step} failed: "):
            error[0] = error[0][len(f"{step} failed: "):]  # the step is its own row
        return cls(kind=str(snapshot.get("kind") or "build"), title=str(snapshot.get("title") or ""),
                   status=str(snapshot.get("status") or ""), duration_s=snapshot.get("elapsed_s"),
                   image_id=snapshot.get("image_id"), pinned=snapshot.get("pinned"),
                   digest=snapshot.get("digest"), log_path=snapshot.get("log_path"),
                   error=error[0] if error else None, step=step,
                   cached_steps=sum(1 for s in steps if s.get("cached")),
                   total_steps=int(snapshot.get("total_steps") or 0))

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
        if self.log_path:
            rows.append(("Log", self.log_path, True))
        return rows

    def headline(self) -> str:
        verb = "Build" if self.kind == "build" else "Push"
        took = f" in {_duration(self.duration_s)}" if self.duration_s is not None else ""
        return f"{verb} {self.title}: {self.status}{took}".replace("  ", " ")

    def __repr__(self) -> str:
        lines = [self.headline(), *(f"  {label}: {value}" for label, value, _ in self._facts())]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        accent = RECORD_ACCENTS.get(self.status, "var(--jp-border-color1, currentColor)")
        role = ' role="alert"' if self.status == "failed" else ' role="status"'
        rows = "".join(
            f"<div><b>{escape(label)}:</b> " + (f"<code>{escape(value)}</code>" if code else escape(value))
            + "</div>"
            for label, value, code in self._facts())
        return (f'<div class="dcs-record" data-kind="{escape(self.kind)}" data-status="{escape(self.status)}"'
                f'{role} style="{RECORD_STYLE.format(accent=accent)}">'
                f'<b>{escape(self.headline())}</b>{rows}</div>')

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

    def __repr__(self) -> str:
        tags = ", ".join(self.tags) or "untagged"
        return (f"BuildResult({self.image_id[:19]} [{tags}] in {self.duration_s:.1f}s, "
                f"dockerfile sha256:{self.dockerfile_sha256[:12]}, log {self.log_path})")

    def record(self) -> ProgressRecord:
        """This result as a static record (what the notebook keeps without widget state)."""
        return ProgressRecord(kind="build", title=self.name, status="done", duration_s=self.duration_s,
                              image_id=self.image_id, tags=list(self.tags), log_path=self.log_path)

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

    def __repr__(self) -> str:
        lines = [f"CheckReport({self.image}: {'ok' if self.ok else 'FAILED'})"]
        lines += [f"  {c!r}" for c in self.checks]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        """A table for notebooks: one row per item, with its fix when it failed.

        Colours come only from JupyterLab's theme variables: the text keeps the theme's text
        colour (>= 4.5:1 in light and dark themes) and the mark word says ok/FAIL/WARN; the
        status colour is a bar beside it, not the colour of the text.
        """
        from html import escape

        marks = {"ok": ("&#10004; ok", "--jp-success-color1"), "error": ("&#10008; FAIL", "--jp-error-color1"),
                 "warning": ("&#9888; WARN", "--jp-warn-color0")}
        cell = "text-align:left;vertical-align:top;color:var(--jp-content-font-color1)"
        rows = []
        for c in self.checks:
            status = "ok" if c.ok else (c.severity if c.severity in marks else "error")
            mark, bar = marks[status]
            rows.append(
                f'<tr class="dcs-check-{status}"><td class="dcs-mark" style="{cell};font-weight:bold;'
                f'white-space:nowrap;color:var(--jp-content-font-color0);border-left:4px solid var({bar})">'
                f'{mark}</td><td style="{cell}">{escape(c.name)}</td>'
                f'<td style="{cell}">{escape(c.detail)}</td>'
                f'<td style="{cell}">{"" if c.ok or not c.fix else f"<code>{escape(c.fix)}</code>"}</td></tr>')
        failed = sum(not c.ok and c.severity == "error" for c in self.checks)
        verdict = ("meets the Databricks Container Services requirements" if self.ok
                   else f"does NOT meet the requirements ({failed} failed)")
        head = "text-align:left;color:var(--jp-content-font-color0)"
        return (f'<div class="dcs-check" style="color:var(--jp-content-font-color1)">'
                f'<p role="status"><b>{escape(self.image)}</b> {verdict}</p>'
                f'<table><thead><tr><th style="{head}"></th><th style="{head}">check</th>'
                f'<th style="{head}">detail</th><th style="{head}">fix</th></tr></thead><tbody>'
                + "".join(rows) + "</tbody></table></div>")
