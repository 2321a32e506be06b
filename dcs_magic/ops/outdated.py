"""Base drift: `dcs outdated NOTEBOOK` / `%dcs_outdated`.

    outdated("app.ipynb")              -> OutdatedReport (exit_code 0 / 1 / 2)
    outdated("app.dcs.lock.json", name="app")

For each entry of the notebook's lock, the registry is asked what the base tag serves now
(adapters/registry.py: HEAD on the tag). When that is not the digest the build recorded, both
images are read from the registry (manifest, the linux/amd64 image of an index, the config
blob; no layer, nothing run) and compared by model/drift.py: platform, Python, JDK, OS,
environment, pins, size. The answer names the one line that brings the entry up to date
(`drift.rebuild_command`: the same tags, `--push` when the entry was pushed, `--pull`).

What each entry can be: up to date; moved; `unrecorded` (the lock has no base digest: it was
written before dcs-magic recorded one, or the engine knew no registry digest for the base,
e.g. a base built locally): "rebuild to record it"; `gone` (the registry answers 404 for the
tag); `unreachable` (no answer, 401/403, 429, 5xx); `pinned` (FROM by digest alone); `no-base`
(FROM scratch). A FROM with a tag and a digest (`base:1@sha256:...`) is followed by its tag:
when the tag moved, the update is the new digest in the FROM.

The runtime the image is compared against is the cluster the lock last launched
(`spark_version`), else the Databricks line the base tag names, else none.

Credentials: this machine's `docker login` as Docker finds it (config.json's credHelpers,
credsStore, auths: adapters/docker_login.py); a credential helper that cannot answer makes the
entry `unreachable`, with the helper's error and its fix.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from ..errors import LockError, RegistryError
from ..model import drift
from ..settings import PLATFORM

if TYPE_CHECKING:
    from ..adapters.registry import RemoteImage
    from ..model.imageref import ImageRef
    from ..model.runtime import RuntimeLine
    from .lock import ImageLock, Lock

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")

__all__ = ["outdated"]


def outdated(notebook: str | os.PathLike[str], *, name: str | None = None,
             timeout: float | None = None) -> drift.OutdatedReport:
    """Whether the base of each lock entry of NOTEBOOK (or of the `.dcs.lock.json` given)
    moved, and what changed that matters on Databricks. `name`: only that entry.

    LockError when there is no lock, it cannot be read, or it has no entry NAME. Registry
    failures are answers (`unreachable`, `gone`), never raised."""
    lock_file, lock = _read(notebook)
    if name is not None and name not in lock.images:
        have = ", ".join(sorted(lock.images)) or "none"
        raise LockError(f"{lock_file} has no entry {name!r} (it has: {have})")
    names = [name] if name is not None else sorted(lock.images)
    shown = _notebook_shown(notebook, lock_file, lock)
    reader = _Reader(timeout)
    entries = [_assess(n, lock.images[n], shown, several=len(lock.images) > 1, reader=reader) for n in names]
    return drift.OutdatedReport(str(lock_file), entries, notebook=lock.notebook)


def _read(where: str | os.PathLike[str]) -> tuple[Path, Lock]:
    from .lock import LOCK_SUFFIX, lock_path, read_lock

    path = Path(where)
    lock_file = path if path.name.endswith(LOCK_SUFFIX) else lock_path(path)
    lock = read_lock(lock_file)
    if lock is None:
        raise LockError(f"there is no lock file {lock_file}",
                        hint="run `dcs build NOTEBOOK -t TAG --push` first; it writes the lock and records the "
                             "base image's digest")
    return lock_file, lock


def _notebook_shown(given: str | os.PathLike[str], lock_file: Path, lock: Lock) -> str:
    """The notebook as the update line names it: as the user gave it, or next to the lock."""
    from .lock import LOCK_SUFFIX

    text = os.fspath(given)
    if not Path(text).name.endswith(LOCK_SUFFIX):
        return text
    stem = lock_file.name[: -len(LOCK_SUFFIX)]
    return str(lock_file.with_name(Path(lock.notebook).name if lock.notebook else f"{stem}.ipynb"))


class _Reader:
    """The registry questions of one report, each asked once (entries often share a base)."""

    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        self._tags: dict[str, str | RegistryError] = {}
        self._images: dict[tuple[str, str], RemoteImage | RegistryError] = {}

    def _timeout(self) -> float:
        from ..adapters.registry import DIGEST_TIMEOUT_S

        return self.timeout if self.timeout is not None else DIGEST_TIMEOUT_S

    def tag(self, ref: ImageRef) -> str:
        from ..adapters.registry import current_digest

        return _once(self._tags, str(ref), lambda: current_digest(ref, timeout=self._timeout()))

    def image(self, pinned: str, platform: str) -> RemoteImage:
        from ..adapters.registry import read_image

        return _once(self._images, (pinned, platform),
                     lambda: read_image(pinned, platform=platform, timeout=self._timeout()))


def _once(answers: dict[K, T | RegistryError], key: K, ask: Callable[[], T]) -> T:
    """ASK's answer for KEY, asked once: a RegistryError is remembered and raised again."""
    if key not in answers:
        try:
            answers[key] = ask()
        except RegistryError as exc:
            answers[key] = exc
    answer = answers[key]
    if isinstance(answer, RegistryError):
        raise answer
    return answer


def _runtime(entry: ImageLock, base: ImageRef) -> RuntimeLine | None:
    from ..model.runtime import line_of, line_of_image

    key = (entry.cluster or {}).get("spark_version")
    found = line_of(str(key)) if key else None
    return found if found is not None else line_of(line_of_image(base))


def _assess(name: str, entry: ImageLock, notebook: str, *, several: bool, reader: _Reader) -> drift.BaseDrift:
    from ..model.imageref import parse_or_none

    base = entry.base
    if not base:
        return drift.BaseDrift(name, None, "no-base")
    ref = parse_or_none(base)
    if ref is None:
        return drift.BaseDrift(name, base, "unreachable", notes=[f"{base!r} is not an image reference the registry "
                                                                 "can be asked about"])
    if ref.digest and not ref.tag:
        return drift.BaseDrift(name, base, "pinned", recorded=ref.digest, current=ref.digest)
    recorded = ref.digest or entry.base_digest
    rebuild = drift.rebuild_command(notebook, name=name if several else None, tags=entry.tags or _pushed(entry),
                                    push=entry.push is not None)
    try:
        current = reader.tag(ref)
    except RegistryError as exc:
        status = "gone" if exc.status == 404 else "unreachable"
        notes = [exc.message] + ([exc.hint] if exc.hint else [])
        return drift.BaseDrift(name, base, status, recorded=recorded, notes=notes)
    if recorded is None:
        return drift.BaseDrift(name, base, "unrecorded", current=current, update=rebuild, notes=[
            "the lock was written before dcs-magic recorded base digests, or the engine knew no registry digest "
            "for the base (built locally, never pushed or pulled); the rebuild records the digest it pulls"])
    if current == recorded:
        return drift.BaseDrift(name, base, "current", recorded=recorded, current=current)
    update = rebuild
    if ref.digest:  # FROM repo:tag@sha256:...: the edit is the digest in the FROM
        update = (f"pin the new digest in the %%dockerfile cell: FROM {ref.repository}:{ref.tag}@{current}, "
                  f"then {rebuild.replace(' --pull', '')}")
    moved = drift.BaseDrift(name, base, "moved", recorded=recorded, current=current, update=update)
    _explain(moved, ref, entry, reader)
    return moved


def _pushed(entry: ImageLock) -> list[str]:
    reference = (entry.push or {}).get("reference")
    return [reference] if reference else []


def _explain(moved: drift.BaseDrift, ref: ImageRef, entry: ImageLock, reader: _Reader) -> None:
    """Read both images from the registry and fill in what changed (or why it cannot say)."""
    platform = entry.platform or PLATFORM
    facts: list[drift.ImageFacts | None] = []
    for label, digest in (("the image the lock was built on", moved.recorded), ("the image the tag serves now",
                                                                                 moved.current)):
        try:
            image = reader.image(f"{ref.repository}@{digest}", platform)
        except RegistryError as exc:
            moved.notes.append(f"cannot read {label} ({digest}): {exc.message}"
                               + ("; the registry may have deleted it" if exc.status == 404 else ""))
            facts.append(None)
            continue
        facts.append(drift.image_facts(image.config, digest=image.digest, manifest=image.manifest,
                                       platforms=image.platforms, size=image.size, layers=image.layers))
    old, new = facts
    moved.old, moved.new = old, new
    if old is None or new is None:
        return
    moved.changes = drift.diff(old, new, line=_runtime(entry, ref))
    if old.manifest and old.manifest == new.manifest:
        moved.notes.append(f"the tag serves another index, but its {platform} image is the same one "
                           f"({new.manifest}): only other platforms changed; the rebuild gives the same image")
    elif not any(change.matters for change in moved.changes):
        moved.notes.append("nothing that matters on Databricks changed in the image config; the layers differ "
                           "(e.g. security updates), which the rebuild picks up")
