"""What the pipeline returns: plain data with readable reprs, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["BuildResult", "CheckItem", "CheckReport", "PushResult"]


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

    def __repr__(self) -> str:
        tags = ", ".join(self.tags) or "untagged"
        return (f"BuildResult({self.image_id[:19]} [{tags}] in {self.duration_s:.1f}s, "
                f"dockerfile sha256:{self.dockerfile_sha256[:12]}, log {self.log_path})")


@dataclass
class PushResult:
    """The outcome of a successful `%dcs_push` / `push()`."""

    reference: str
    digest: str
    pinned: str
    size: int | None = None
    duration_s: float = 0.0

    def __repr__(self) -> str:
        return f"PushResult({self.reference} -> {self.pinned})"


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
