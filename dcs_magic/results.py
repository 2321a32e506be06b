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
        """A table for notebooks: one row per item, with its fix when it failed."""
        from html import escape

        marks = {"ok": ("ok", "#1a7f37"), "error": ("FAIL", "#cf222e"), "warning": ("WARN", "#9a6700")}
        rows = []
        for c in self.checks:
            mark, color = marks["ok"] if c.ok else marks.get(c.severity, marks["error"])
            rows.append(
                f'<tr><td style="color:{color};font-weight:bold">{mark}</td><td>{escape(c.name)}</td>'
                f'<td style="text-align:left">{escape(c.detail)}</td>'
                f'<td style="text-align:left"><code>{escape("" if c.ok else c.fix)}</code></td></tr>')
        verdict = ("meets the Databricks Container Services requirements" if self.ok
                   else f"does NOT meet the requirements ({sum(not c.ok and c.severity == 'error' for c in self.checks)} failed)")
        return (f'<div class="dcs-check"><p><b>{escape(self.image)}</b> {verdict}</p>'
                '<table><thead><tr><th></th><th>check</th><th style="text-align:left">detail</th>'
                '<th style="text-align:left">fix</th></tr></thead><tbody>'
                + "".join(rows) + "</tbody></table></div>")
