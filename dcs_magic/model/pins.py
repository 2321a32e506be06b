"""Package pins of each Databricks Runtime's /databricks/python3, by runtime key (pure).

The data (`data/runtime-pins.json`) is ingested, not hand-kept: `dcs runtimes --update`
(ops/runtimes.py) reads Databricks' public `databricks/environments` repository, whose
`python/dbr/<key>/constraints.txt` and `pyproject.toml` Databricks generates from the release
notes' "Installed Python libraries" tables for every key it publishes (12.2 up to the newest,
standard and ML, CPU and GPU, point releases such as 18.1.x). Lines that repository does not
cover (9.1, 10.4, 11.3) keep the pins read from the `databricks/containers` release branches,
each set with its own origin.

    parse_constraints(text)       `name~=1.2.3` / `name==1.2.3` lines -> {name: version}
    parse_requires_python(text)   a pyproject's `requires-python = "==3.12.*"` -> "3.12"
    from_tree(files, ...)         {repository path: text} -> PinData (one PinSet per key)
    PinData.find(key_or_line)     the set a runtime key names (exact key, its point release, its
                                  line's standard key), see `find`
    PinData.to_json / from_json   the data file, diff-friendly (sorted, one pin per line)

Names are normalised (PEP 503). A version is the one the release notes list: `~=X.Y.Z`
pins the runtime's X.Y.Z.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ENVIRONMENTS", "STALE_DAYS", "PinData", "PinSet", "age_days", "from_tree", "key_line", "normalise",
           "parse_constraints", "parse_requires_python"]

ENVIRONMENTS = "https://github.com/databricks/environments"
"""Databricks' repository of per-compute dependency constraints (the source of the pins)."""
DBR_DIR = "python/dbr/"
STALE_DAYS = 60
"""Pin data older than this is called out (`dcs runtimes`, the parity report)."""

_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(?:~=|==|===)\s*([^\s;,#]+)")
_REQUIRES = re.compile(r"""^\s*requires-python\s*=\s*["']([^"']+)["']""", re.MULTILINE)
_PY_MINOR = re.compile(r"3\.(\d+)")
# A runtime key: `18.x-scala2.13`, `18.1.x-scala2.13`, `17.3.x-cpu-ml-scala2.13`, `9.1.x-scala2.12`.
_KEY = re.compile(r"^(?P<major>\d{1,2})(?:\.(?P<minor>\d{1,2}))?\.x(?:-(?P<variant>[a-z0-9-]*?))?"
                  r"(?:-scala(?P<scala>\d+\.\d+))?$", re.IGNORECASE)


_SEPARATORS = re.compile(r"[-_.]+")


def normalise(name: str) -> str:
    """PEP 503: `Jinja2`, `jinja_2` -> `jinja2`, `jinja-2`."""
    return _SEPARATORS.sub("-", name).lower()


def parse_constraints(text: str) -> dict[str, str]:
    """`constraints.txt` / requirements lines -> {normalised name: version}; comments, blank
    lines, options and unpinned lines are skipped, environment markers dropped."""
    pins: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        match = _PIN.match(line) if line and not line.startswith("-") else None
        if match:
            pins[normalise(match[1])] = match[2]
    return pins


def parse_requires_python(text: str) -> str | None:
    """The Python minor a pyproject's `requires-python` admits: `==3.12.*` -> `3.12`,
    `>=3.10,<3.11` -> `3.10`; None when absent or not one minor."""
    match = _REQUIRES.search(text)
    if not match:
        return None
    minors = {int(m) for m in _PY_MINOR.findall(match[1])}
    spec = match[1].replace(" ", "")
    if spec.startswith("==") or spec.startswith("~="):
        minor = _PY_MINOR.search(spec)
        return f"3.{minor[1]}" if minor else None
    if spec.startswith(">=") and "<" in spec and len(minors) == 2 and max(minors) - min(minors) == 1:
        return f"3.{min(minors)}"
    return None


def key_line(key: str) -> str | None:
    """The runtime line a key names: `18.x-scala2.13` -> `18`, `18.1.x-scala2.13` -> `18.1`,
    `17.3.x-cpu-ml-scala2.13` -> `17.3`; None for no key."""
    match = _KEY.match(key.strip())
    if not match:
        return None
    return match["major"] + (f".{match['minor']}" if match["minor"] else "")


def _variant(key: str) -> str:
    """`` (standard), `cpu-ml`, `gpu-ml`; `photon` runs the standard Python environment."""
    match = _KEY.match(key.strip())
    variant = (match["variant"] or "") if match else ""
    return "" if variant in ("", "photon") else variant


def _scala(key: str) -> tuple[int, ...]:
    match = _KEY.match(key.strip())
    return tuple(int(n) for n in match["scala"].split(".")) if match and match["scala"] else ()


@dataclass(frozen=True)
class PinSet:
    """The pins of one runtime key: `python` its minor (from `requires-python`), `origin` where
    they were read (`databricks/environments@<commit>:python/dbr/<key>/constraints.txt`)."""

    key: str
    python: str | None
    pins: Mapping[str, str] = field(repr=False)
    origin: str = ""

    @property
    def line(self) -> str | None:
        return key_line(self.key)

    @property
    def variant(self) -> str:
        return _variant(self.key)

    def to_dict(self) -> dict[str, Any]:
        return {"python": self.python, "origin": self.origin, "pins": dict(sorted(self.pins.items()))}


@dataclass(frozen=True)
class PinData:
    """Every key's pins, and where they came from: `source` (a repository URL or a directory),
    `commit` (the source commit, when known), `date` (its commit date, ISO), `read` (when the
    update ran, ISO)."""

    source: str
    commit: str | None
    date: str | None
    read: str | None
    sets: Mapping[str, PinSet]

    # -- lookup ----------------------------------------------------------------------------

    def find(self, key_or_line: str, *, variant: str | None = None) -> PinSet | None:
        """The set a runtime key or line names, most specific first:

            the exact key (`18.1.x-scala2.13`, `17.3.x-gpu-ml-scala2.13`)
            the same line and variant, newest Scala (`18.x-scala2.12` -> `18.x-scala2.13`)
            the line's major-only key (`18.3.x-scala2.13` -> `18.x-scala2.13`)

        A bare line (`15.4`, `18`) names its standard variant. Photon runs the standard
        Python environment. None when nothing matches."""
        text = key_or_line.strip()
        if text in self.sets:
            return self.sets[text]
        line = key_line(text) or (text if re.fullmatch(r"\d{1,2}(?:\.\d{1,2})?", text) else None)
        if line is None:
            return None
        wanted = _variant(text) if variant is None else variant
        candidates = [s for s in self.sets.values() if s.variant == wanted]
        for name in (line, line.split(".")[0]):
            same = [s for s in candidates if s.line == name]
            if same:
                return max(same, key=lambda s: _scala(s.key))
        return None

    def keys(self) -> list[str]:
        return sorted(self.sets, key=_order)

    def lines(self) -> list[str]:
        """The lines (`12.2`, `18`, `20`) with a standard set, oldest first."""
        found = {s.line for s in self.sets.values() if s.line and s.variant == ""}
        return sorted(found, key=lambda line: tuple(int(n) for n in line.split(".")))

    def describe(self) -> str:
        """One line: where the data comes from and how fresh it is."""
        commit = f"@{self.commit[:12]}" if self.commit else ""
        when = f" (commit of {self.date})" if self.date else ""
        read = f", read {self.read}" if self.read else ""
        return f"{self.source}{commit}{when}{read}; {len(self.sets)} runtime keys"

    # -- the data file ---------------------------------------------------------------------

    def to_json(self) -> str:
        body = {"source": self.source, "commit": self.commit, "date": self.date, "read": self.read,
                "keys": {key: self.sets[key].to_dict() for key in self.keys()}}
        return json.dumps(body, indent=1, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> PinData:
        data = json.loads(text)
        sets = {key: PinSet(key, item.get("python"), {normalise(k): str(v) for k, v in item["pins"].items()},
                            str(item.get("origin") or ""))
                for key, item in (data.get("keys") or {}).items()}
        return cls(str(data.get("source") or ""), data.get("commit"), data.get("date"), data.get("read"), sets)

    def merged(self, kept: Iterable[PinSet]) -> PinData:
        """These sets plus `kept` ones whose keys these lack (the containers-derived 9.1-11.3)."""
        sets = dict(self.sets)
        for item in kept:
            sets.setdefault(item.key, item)
        return PinData(self.source, self.commit, self.date, self.read, sets)


def _order(key: str) -> tuple[Any, ...]:
    match = _KEY.match(key)
    if not match:
        return (999, 0, key)
    return (int(match["major"]), int(match["minor"] or -1), key)


def from_tree(files: Mapping[str, str], *, source: str, commit: str | None, date: str | None,
              read: str | None) -> PinData:
    """PinData from a repository's files ({path: text}; paths relative to its root):
    `python/dbr/<key>/constraints.txt` gives the pins, its `pyproject.toml` the Python."""
    sets: dict[str, PinSet] = {}
    where = source.rstrip("/").removeprefix("https://github.com/")
    for path, text in files.items():
        if not path.startswith(DBR_DIR) or not path.endswith("/constraints.txt"):
            continue
        key = path[len(DBR_DIR):].split("/")[0]
        if key_line(key) is None:
            continue
        pyproject = files.get(f"{DBR_DIR}{key}/pyproject.toml", "")
        origin = f"{where}{'@' + commit[:12] if commit else ''}:{path}"
        sets[key] = PinSet(key, parse_requires_python(pyproject), parse_constraints(text), origin)
    return PinData(source, commit, date, read, sets)


def age_days(data: PinData, today: _dt.date) -> int | None:
    """How old the data is on `today` (by its commit date, else the date it was read)."""
    for text in (data.date, data.read):
        if text:
            try:
                return (today - _dt.date.fromisoformat(text[:10])).days
            except ValueError:
                continue
    return None
