"""`dcs why --from PATH`: the cause of a failed start from what a user downloaded or pasted.

PATH is a directory or a single file. What is read (all optional, any mix):

    a clusters/get JSON     (an object with `state` / `termination_reason`): the code, the message
    an events JSON          (`{"events": [...]}` or a list): event types, reasons, init-script details
    log files               a copied cluster-log folder (`<cluster-id>/driver/stderr`,
                            `init_scripts/.../*.sh.stderr.log`, ...) or any text file

Everything becomes `model.forensics.Evidence` (lines with their file and line number), and
`model.forensics.diagnose` names the causes. Unreadable files are skipped and said.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..model.forensics import Diagnosis, Evidence, Line, diagnose, relevant_lines

__all__ = ["Why", "why_from"]

MAX_FILE_BYTES = 16 * 2**20
MAX_FILES = 500


@dataclass
class Why:
    """A diagnosis: the causes (most likely first), the evidence read, what could not be read."""

    source: str
    code: str | None
    message: str
    causes: list[Diagnosis]
    shown: list[Line] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def confidence(self) -> str:
        return self.causes[0].confidence if self.causes else "unknown"

    def to_dict(self) -> dict[str, Any]:
        first = self.causes[0] if self.causes else None
        return {
            "cause": first.cause if first else None, "code": self.code,
            "evidence": [{"source": f"{line.source}:{line.number}" if line.number else line.source,
                          "line": line.text[:500]} for line in (first.evidence if first else self.shown)],
            "fix": first.fix if first else None, "check": first.check if first else None,
            "confidence": self.confidence,
            "also": [{"cause": d.cause, "confidence": d.confidence, "fix": d.fix} for d in self.causes[1:]],
            "skipped": self.skipped,
        }

    def lines(self) -> list[str]:
        out = []
        if not self.causes:
            out.append("Cause: unknown: no known signature matches"
                       + (f" (termination code {self.code})" if self.code else "") + "; the most relevant lines:")
            out += [f"  {line.source}:{line.number}: {line.text[:300]}" for line in self.shown]
        for index, cause in enumerate(self.causes):
            head = "Cause" if index == 0 else "Also possible"
            out.append(f"{head} ({cause.confidence}): {cause.cause}")
            out += [f"  evidence {line.source}{':' + str(line.number) if line.number else ''}: {line.text[:300]}"
                    for line in cause.evidence]
            out.append(f"  fix: {cause.fix}")
            out.append(f"  caught before a start by: {cause.check}")
        out += [f"(not read: {item})" for item in self.skipped]
        return out


def why_from(path: str | os.PathLike[str]) -> Why:
    """Diagnose the files at PATH (a directory or one file). UsageError when nothing is there."""
    root = Path(path).expanduser()
    if not root.exists():
        raise UsageError(f"{root} does not exist", hint="give a folder or file you downloaded: a clusters/get "
                         "JSON, an events JSON, cluster logs")
    files = sorted(p for p in (root.rglob("*") if root.is_dir() else [root]) if p.is_file())[:MAX_FILES]
    code, message = None, ""
    lines: list[Line] = []
    skipped: list[str] = []
    for file in files:
        name = file.relative_to(root).as_posix() if root.is_dir() else file.name
        try:
            if file.stat().st_size > MAX_FILE_BYTES:
                skipped.append(f"{name}: larger than {MAX_FILE_BYTES // 2**20} MiB")
                continue
            text = file.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            skipped.append(f"{name}: {exc.strerror or exc}")
            continue
        data = _json(text)
        if isinstance(data, dict) and ("termination_reason" in data or "state" in data):
            reason = data.get("termination_reason") or {}
            code = code or reason.get("code")
            message = message or str((reason.get("parameters") or {}).get("databricks_error_message")
                                     or data.get("state_message") or "")
            continue
        events = _events(data)
        if events is not None:
            lines += _event_lines(name, events)
            continue
        lines += [Line(name, number, row) for number, row in enumerate(text.splitlines(), 1) if row.strip()]
    if not files:
        raise UsageError(f"{root} holds no file to read", hint="put the cluster's JSON, events or logs there")
    evidence = Evidence(code, message, lines)
    causes = diagnose(evidence)
    return Why(str(root), code, message, causes, [] if causes else relevant_lines(lines), skipped)


def _json(text: str) -> Any:
    stripped = text.lstrip()
    if not stripped.startswith(("{", "[")):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _events(data: Any) -> list[Any] | None:
    if isinstance(data, dict) and isinstance(data.get("events"), list):
        return list(data["events"])
    if isinstance(data, list) and data and all(isinstance(e, dict) and "type" in e for e in data):
        return data
    return None


def _event_lines(name: str, events: list[Any]) -> list[Line]:
    """An event as lines: its type and reason, and each init script's status and error."""
    out = []
    for number, event in enumerate(events, 1):
        details = event.get("details") or {}
        reason = details.get("reason") or {}
        text = f"{event.get('type')}"
        if reason.get("code"):
            text += f" {reason.get('code')}: {(reason.get('parameters') or {}).get('databricks_error_message', '')}"
        out.append(Line(name, number, text.strip()))
        for script in ((details.get("init_scripts") or {}).get("cluster") or []):
            if script.get("status") not in (None, "SUCCEEDED"):
                out.append(Line(name, number, f"init script {script.get('status')}: {script.get('error_message', '')}"))
    return out
