"""`dcs runtimes --update`: refresh the runtime pins from Databricks' published constraints.

    update(source=None, out=None, today=None) -> Updated

reads `databricks/environments` (adapters/environments.py: a checkout, or the repository's
tarball over HTTPS: one public GET, no credentials), turns every `python/dbr/<key>/` into a
pin set (model/pins.py), keeps the `databricks/containers` sets of the lines that repository
does not cover (9.1, 10.4, 11.3), and writes the data file (`settings.runtime_pins_file()`,
or `out`; the maintainer's `--out dcs_magic/data/runtime-pins.json` refreshes the shipped
data). A line published upstream that this dcs-magic does not know appears in the runtime
facts with no code change (`runtime._inferred_lines`, which says so).
"""

from __future__ import annotations

import datetime as _dt
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..adapters.environments import read_source
from ..errors import SourceError
from ..model import runtime
from ..model.pins import ENVIRONMENTS, PinData, from_tree, key_line
from ..settings import runtime_pins_file

__all__ = ["Updated", "update"]

_CONTAINERS = "databricks/containers"


@dataclass
class Updated:
    """What an update wrote: the file, the data, and what changed against the data before."""

    path: Path
    data: PinData
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    new_lines: list[str] = field(default_factory=list)
    default_place: bool = True  # written where dcs-magic reads updates (not a maintainer's --out)

    def lines_of_text(self) -> list[str]:
        out = [f"Wrote {self.path}: {self.data.describe()}"]
        for label, keys in (("new keys", self.added), ("changed", self.changed), ("no longer published", self.removed)):
            if keys:
                out.append(f"  {label}: {', '.join(keys)}")
        if self.removed and self.default_place:
            out.append(f"  (to go back to the pins shipped with dcs-magic, remove {self.path})")
        for line in self.new_lines:
            out.append(f"  Databricks Runtime {line} is new to this dcs-magic: its Python and pins come from the "
                       "data; JDK, Ubuntu and Spark are assumed as in the newest line it knows (dcs runtimes "
                       "marks it; a newer dcs-magic knows its own facts)")
        return out


def update(source: str | None = None, *, out: str | os.PathLike[str] | None = None,
           today: _dt.date | None = None) -> Updated:
    """Read `source` (a directory or a tarball URL; default: GitHub's archive of
    databricks/environments) and write the pins to `out` (default: settings.runtime_pins_file())."""
    snapshot = read_source(source)
    read = (today or _dt.date.today()).isoformat()
    name = ENVIRONMENTS if source is None or "github.com/databricks/environments" in source \
        or "codeload.github.com/databricks/environments" in source else snapshot.source
    fresh = from_tree(snapshot.files, source=name, commit=snapshot.commit, date=snapshot.date, read=read)
    if not fresh.sets:
        raise SourceError(f"{snapshot.source} has no python/dbr/<key>/constraints.txt with pins",
                         hint="is it a copy of https://github.com/databricks/environments?")
    before = runtime.pin_data()
    kept = [s for s in before.sets.values() if _CONTAINERS in s.origin and s.key not in fresh.sets]
    data = fresh.merged(kept)
    path = Path(out).expanduser() if out is not None else runtime_pins_file()[0]
    _write(path, data.to_json())
    return Updated(
        path, data,
        added=sorted(set(data.sets) - set(before.sets), key=_key_order),
        changed=sorted((k for k in set(data.sets) & set(before.sets) if data.sets[k].pins != before.sets[k].pins),
                       key=_key_order),
        removed=sorted(set(before.sets) - set(data.sets), key=_key_order),
        new_lines=runtime.new_lines(data, runtime.FACTS), default_place=out is None)


def _key_order(key: str) -> tuple[int, ...]:
    line = key_line(key) or "0"
    return tuple(int(n) for n in line.split("."))


def _write(path: Path, text: str) -> None:
    """Atomically: a reader never sees half a file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.",
                                         delete=False) as handle:
            handle.write(text)
        os.replace(handle.name, path)
    except OSError as exc:
        raise SourceError(f"could not write {path}: {exc.strerror or exc}",
                         hint="pass --out FILE somewhere writable (and set DCS_RUNTIME_PINS=FILE to use it)") from exc
