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

A certain log or event line makes a certain code likely (one kind of evidence is certain).
The lines are searched as one text, each pattern through the literals every match of it holds
(`_needles`), so megabytes of log4j take a second, not a minute; the answers are those of a
search of each line alone.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from importlib import resources
from itertools import accumulate
from typing import Any

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
    dockerfile: str = ""
    """A regex for the Dockerfile line the fix changes (`pip install`, `/databricks/jars`, ...);
    empty when the fix is not the Dockerfile's (the cluster JSON, the workspace)."""


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
        if len(parts) not in (8, 9) or parts[1] not in ("code", "event", "log") or parts[3] not in _CONFIDENCE:
            raise ValueError(f"signatures.tsv line {number}: expected 8 or 9 tab-separated columns "
                             "(id, kind, pattern, confidence, cause, fix, check, source[, dockerfile])")
        pattern = re.compile(rf"^{re.escape(parts[2])}$" if parts[1] == "code" else parts[2])
        if len(parts) == 9 and parts[8]:
            re.compile(parts[8])  # a bad line pattern fails here, naming nothing else
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
    candidates = list(evidence.lines)
    if evidence.message:
        candidates.insert(0, Line("termination", 0, evidence.message))
    text = _Text(candidates)
    for order, signature in enumerate(table if table is not None else signatures()):
        if signature.kind == "code":
            if evidence.code and signature.pattern.match(evidence.code):
                line = Line("termination", 0, f"{evidence.code}: {evidence.message}".strip(": "))
                found.append((_CONFIDENCE[signature.confidence], 1, order, _diagnosis(signature, {}, (line,))))
            continue
        matched = text.search(signature.pattern, limit=_EVIDENCE_LINES)
        if matched:
            groups = {k: v for k, v in matched[0][1].groupdict().items() if v}
            found.append((_CONFIDENCE[signature.confidence], 0, order,
                          _diagnosis(signature, groups, tuple(line for line, _ in matched))))
    # Two different causes cannot both be certain: when a log or event line is certain, a code
    # stated as certain becomes likely (it says the same in fewer words, or it is contradicted).
    if any(conf == 0 and kind == 0 for conf, kind, _, _ in found):
        found = [(1, kind, order, replace(d, confidence="likely")) if conf == 0 and kind == 1
                 else (conf, kind, order, d) for conf, kind, order, d in found]
    # A log line says more than a code: within a confidence, log and event matches come first.
    return [item for *_, item in sorted(found, key=lambda x: (x[0], x[1], x[2]))]


_EVIDENCE_LINES = 5


class _Text:
    """The candidate lines joined into one text, so a pattern is looked for once, not once per
    line (in Python, the per-line loop is what costs: 15 MB of log4j took 16 s that way).

    A pattern whose every match must contain one of a few literal strings (`_needles`: "No
    module named '", "manifest unknown", ...) is looked for with str.find of those, and only
    the lines holding one are searched with the pattern; any other pattern is searched in the
    whole text. Either way the answers are those of a search of each line alone: a match must
    lie within one line, and the search goes on at the next line."""

    def __init__(self, lines: Sequence[Line]) -> None:
        self.lines = list(lines)
        texts = [line.text for line in self.lines]
        self.text = "\n".join(texts)
        self.starts = list(accumulate((len(t) + 1 for t in texts), initial=0))[:-1]

    def search(self, pattern: re.Pattern[str], limit: int) -> list[tuple[Line, re.Match[str]]]:
        """(line, match) of the first `limit` lines the pattern matches, in order."""
        needles = _needles(pattern)
        found: list[tuple[Line, re.Match[str]]] = []
        if needles is not None:
            for index in self._lines_holding(needles):
                m = pattern.search(self.lines[index].text)
                if m is not None:
                    found.append((self.lines[index], m))
                    if len(found) == limit:
                        break
            return found
        position = 0
        while len(found) < limit and position <= len(self.text):
            m = pattern.search(self.text, position)
            if m is None:
                break
            index = bisect_right(self.starts, m.start()) - 1
            line = self.lines[index]
            end = self.starts[index] + len(line.text)
            # A match that runs into the next line is not this line's: ask the line alone.
            alone = m if m.end() <= end else pattern.search(line.text)
            if alone is not None:
                found.append((line, alone))
            position = end + 1
        return found

    def _lines_holding(self, needles: frozenset[str]) -> list[int]:
        """The indexes of the lines that hold one of the needles, in order."""
        indexes: set[int] = set()
        for needle in needles:
            at = self.text.find(needle)
            while at != -1:
                index = bisect_right(self.starts, at) - 1
                indexes.add(index)
                # On to the next line: one hit per line is enough.
                following = index + 1
                at = self.text.find(needle, self.starts[following]) if following < len(self.starts) else -1
        return sorted(indexes)


_MIN_NEEDLE = 3


@lru_cache(maxsize=512)
def _needles(pattern: re.Pattern[str]) -> frozenset[str] | None:
    """Literal strings one of which every match of `pattern` contains (None: none found that
    are long enough, or the pattern ignores case)."""
    if pattern.flags & re.IGNORECASE:
        return None
    try:
        from re import _constants as c  # type: ignore[attr-defined]
        from re import _parser  # type: ignore[attr-defined]

        parsed = _parser.parse(pattern.pattern, pattern.flags)
    except Exception:  # noqa: BLE001 - a private module of re: no shortcut if it changed
        return None

    def sequence(items: Any) -> frozenset[str] | None:
        """The best needle set of a sequence: its longest literal run, or a group's set."""
        options: list[frozenset[str]] = []
        run: list[str] = []

        def close() -> None:
            if run:
                options.append(frozenset(["".join(run)]))
                run.clear()

        for op, av in items:
            if op is c.LITERAL:
                run.append(chr(av))
            elif op in (c.AT, c.ASSERT, c.ASSERT_NOT):
                continue  # zero-width: the literals on both sides stay adjacent
            else:
                close()
                inner: frozenset[str] | None = None
                if op is c.SUBPATTERN and not (av[1] & re.IGNORECASE):
                    inner = sequence(av[3])
                elif op is c.BRANCH:
                    alternatives = [sequence(alt) for alt in av[1]]
                    if all(a is not None for a in alternatives):
                        inner = frozenset().union(*(a for a in alternatives if a is not None))
                elif op in (c.MAX_REPEAT, c.MIN_REPEAT) and av[0] >= 1:
                    inner = sequence(av[2])
                if inner is not None:
                    options.append(inner)
        close()
        good = [o for o in options if o and min(map(len, o)) >= _MIN_NEEDLE]
        return max(good, key=lambda o: (min(map(len, o)), -len(o))) if good else None

    return sequence(parsed.data)


def _diagnosis(signature: Signature, groups: dict[str, str], lines: tuple[Line, ...]) -> Diagnosis:
    return Diagnosis(signature.id, signature.confidence, _fill(signature.cause, groups),
                     _fill(signature.fix, groups), _fill(signature.check, groups), signature.source, lines)


def relevant_lines(lines: Sequence[Line], count: int = 12) -> list[Line]:
    """For an unknown failure: the error and exception lines first, then the last lines."""
    errors = [line for line in lines if _ERRORS.search(line.text)][:count]
    room = count - len(errors)
    tail = [line for line in lines if line not in errors][-room:] if room > 0 else []
    return errors + tail
