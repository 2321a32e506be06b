"""Why a cluster start or run failed: evidence in, causes out, most likely first (pure).

The knowledge is data (`data/signatures.tsv`): each row a termination code or a log/event
pattern, the cause, the fix, the local check that would have caught it, and the public
thread it came from. Patterns match structure (an exception class, a path, a code), and their
named groups fill the cause and fix, so a variant (another module, another image) matches.

    Evidence(code, message, lines)   what was gathered: the termination code and message,
                                     and (source, line number, text) lines of events and logs
    diagnose(evidence) -> [Diagnosis]  every matching signature, certain before likely, the
                                     table's order within; unknown failures give none, never
                                     an invented cause (see `relevant_lines` for what to show)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from importlib import resources

__all__ = ["Diagnosis", "Evidence", "Line", "Signature", "diagnose", "parse_signatures", "relevant_lines",
           "signatures"]

_CONFIDENCE = {"certain": 0, "likely": 1}
_ERRORS = re.compile(r"(?i)(error|exception|traceback|failed|failure|fatal|denied|refused|not found)")


@dataclass(frozen=True)
class Signature:
    id: str
    kind: str  # code | event | log
    pattern: re.Pattern[str]
    confidence: str
    cause: str
    fix: str
    check: str
    source: str


@dataclass(frozen=True)
class Line:
    """One line of evidence: where it is (`driver/stderr`, `events`, `termination`), its number."""

    source: str
    number: int
    text: str


@dataclass(frozen=True)
class Evidence:
    code: str | None = None
    message: str = ""
    lines: Sequence[Line] = field(default_factory=tuple)


@dataclass(frozen=True)
class Diagnosis:
    signature: str
    confidence: str
    cause: str
    fix: str
    check: str
    source: str
    evidence: tuple[Line, ...]


def parse_signatures(text: str) -> list[Signature]:
    """The table's rows (comments and the header skipped); ValueError naming a bad row."""
    rows = []
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip() or raw.startswith("#") or raw.startswith("id\t"):
            continue
        parts = raw.split("\t")
        if len(parts) != 8 or parts[1] not in ("code", "event", "log") or parts[3] not in _CONFIDENCE:
            raise ValueError(f"signatures.tsv line {number}: expected 8 tab-separated columns "
                             "(id, kind, pattern, confidence, cause, fix, check, source)")
        pattern = re.compile(rf"^{re.escape(parts[2])}$" if parts[1] == "code" else parts[2])
        rows.append(Signature(parts[0], parts[1], pattern, parts[3], *parts[4:]))
    return rows


@lru_cache(maxsize=1)
def signatures() -> tuple[Signature, ...]:
    """The shipped table (package data: the one read this module does)."""
    text = resources.files("dcs_magic").joinpath("data/signatures.tsv").read_text(encoding="utf-8")
    return tuple(parse_signatures(text))


def _fill(template: str, groups: dict[str, str]) -> str:
    """{name} takes the named group's text; {name|words} takes `words` when the group did not
    match (an optional part of the pattern). `{{secrets/...}}` is literal text, never filled."""
    def one(m: re.Match[str]) -> str:
        if m[1] in groups:
            return groups[m[1]]
        return m[2] if m[2] is not None else m[0]
    return re.sub(r"(?<!\{)\{(\w+)(?:\|([^{}]*))?\}(?!\})", one, template)


def diagnose(evidence: Evidence, table: Iterable[Signature] | None = None) -> list[Diagnosis]:
    """Every signature the evidence matches, certain first, then log/event matches before code
    matches, the table's order within; each with the lines that matched (a code matches the
    termination line). A certain log/event match makes a certain code match likely: at most one
    kind of evidence is stated as certain."""
    found: list[tuple[int, int, int, Diagnosis]] = []
    for order, signature in enumerate(table if table is not None else signatures()):
        if signature.kind == "code":
            if evidence.code and signature.pattern.match(evidence.code):
                line = Line("termination", 0, f"{evidence.code}: {evidence.message}".strip(": "))
                found.append((_CONFIDENCE[signature.confidence], 1, order, _diagnosis(signature, {}, (line,))))
            continue
        candidates = list(evidence.lines)
        if evidence.message:
            candidates.insert(0, Line("termination", 0, evidence.message))
        matched = [(line, m) for line in candidates for m in [signature.pattern.search(line.text)] if m]
        if matched:
            groups = {k: v for k, v in matched[0][1].groupdict().items() if v}
            found.append((_CONFIDENCE[signature.confidence], 0, order,
                          _diagnosis(signature, groups, tuple(line for line, _ in matched[:5]))))
    # Two different causes cannot both be certain: when a log or event line is certain, a code
    # stated as certain becomes likely (it says the same in fewer words, or it is contradicted).
    if any(conf == 0 and kind == 0 for conf, kind, _, _ in found):
        found = [(1, kind, order, replace(d, confidence="likely")) if conf == 0 and kind == 1
                 else (conf, kind, order, d) for conf, kind, order, d in found]
    # A log line says more than a code: within a confidence, log and event matches come first.
    return [item for *_, item in sorted(found, key=lambda x: (x[0], x[1], x[2]))]


def _diagnosis(signature: Signature, groups: dict[str, str], lines: tuple[Line, ...]) -> Diagnosis:
    return Diagnosis(signature.id, signature.confidence, _fill(signature.cause, groups),
                     _fill(signature.fix, groups), signature.check, signature.source, lines)


def relevant_lines(lines: Sequence[Line], count: int = 12) -> list[Line]:
    """For an unknown failure: the error and exception lines first, then the last lines."""
    errors = [line for line in lines if _ERRORS.search(line.text)][:count]
    room = count - len(errors)
    tail = [line for line in lines if line not in errors][-room:] if room > 0 else []
    return errors + tail
