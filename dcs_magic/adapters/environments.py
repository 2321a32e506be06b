"""Reading Databricks' `databricks/environments` repository: a checkout, or its tarball over HTTPS.

    read_source(source) -> Snapshot(files, commit, date, source)

`source` is a directory (a checkout, or any copy with the repository's layout), a
downloaded tarball, or an http(s) URL of a gzipped tarball of the repository, by default GitHub's archive of the main
branch (`ARCHIVE`). One GET, no credentials, nothing sent but the request: what
`dcs runtimes --update` sends over the network. GitHub's archives name the commit in the
tar's pax header (`comment`) and date every member with the commit time, so the snapshot
knows both; a checkout's commit is read from `.git` when there is one.

Only `python/dbr/<key>/constraints.txt` and `pyproject.toml` are kept (a few hundred kB).
"""

from __future__ import annotations

import datetime as _dt
import io
import tarfile
from dataclasses import dataclass
from pathlib import Path

import requests

from ..errors import SourceError

__all__ = ["ARCHIVE", "MAX_ARCHIVE_BYTES", "Snapshot", "read_source"]

ARCHIVE = "https://codeload.github.com/databricks/environments/tar.gz/refs/heads/main"
MAX_ARCHIVE_BYTES = 64 * 2**20
TIMEOUT_S = 60.0
_KEPT = ("constraints.txt", "pyproject.toml")


@dataclass(frozen=True)
class Snapshot:
    """The repository's pin files ({path from its root: text}), its commit and commit date."""

    files: dict[str, str]
    commit: str | None
    date: str | None
    source: str


def _wanted(path: str) -> bool:
    parts = path.split("/")
    return len(parts) == 4 and parts[:2] == ["python", "dbr"] and parts[3] in _KEPT


def read_source(source: str | None = None, *, timeout: float = TIMEOUT_S) -> Snapshot:
    """The pin files of `source` (a directory, or a tarball URL; default: GitHub's archive of
    databricks/environments). SourceError saying what is wrong when it cannot be read."""
    source = source or ARCHIVE
    if source.startswith(("http://", "https://")):
        return _read_archive(source, timeout)
    path = Path(source).expanduser()
    if path.is_file():  # a downloaded tarball (offline: curl it elsewhere, bring it along)
        try:
            return _snapshot_of(path.read_bytes(), str(path))
        except OSError as exc:
            raise SourceError(f"could not read {path}: {exc.strerror or exc}") from exc
    return _read_directory(path)


def _read_directory(root: Path) -> Snapshot:
    if not (root / "python" / "dbr").is_dir():
        raise SourceError(f"{root} has no python/dbr/ folder: it is not a copy of databricks/environments",
                          hint="pass a checkout (git clone https://github.com/databricks/environments) "
                               "or leave --from out to download it")
    files = {}
    for path in sorted((root / "python" / "dbr").glob("*/*")):
        relative = path.relative_to(root).as_posix()
        if _wanted(relative):
            files[relative] = path.read_text(encoding="utf-8")
    commit, date = _git_head(root)
    return Snapshot(files, commit, date, str(root))


def _git_head(root: Path) -> tuple[str | None, str | None]:
    """The checked-out commit of a git checkout (HEAD, following one ref), without git."""
    git = root / ".git"
    try:
        head = (git / "HEAD").read_text(encoding="ascii").strip()
        if head.startswith("ref: "):
            ref = head[5:]
            loose = git / ref
            if loose.is_file():
                head = loose.read_text(encoding="ascii").strip()
            else:
                packed = (git / "packed-refs").read_text(encoding="ascii")
                head = next(line.split()[0] for line in packed.splitlines() if line.endswith(f" {ref}"))
    except (OSError, StopIteration):
        return None, None
    return (head if len(head) == 40 else None), None


def _read_archive(url: str, timeout: float) -> Snapshot:
    try:
        with requests.get(url, stream=True, timeout=timeout) as answer:
            answer.raise_for_status()
            data = bytearray()
            for chunk in answer.iter_content(1 << 16):
                data += chunk
                if len(data) > MAX_ARCHIVE_BYTES:
                    raise SourceError(f"{url} is larger than {MAX_ARCHIVE_BYTES // 2**20} MiB; not a copy of "
                                      "databricks/environments?")
    except requests.RequestException as exc:
        raise SourceError(f"could not download {url}: {exc}",
                          hint="check the network (the update reads one public GitHub repository), or pass "
                               "--from DIR with a checkout (or --from FILE.tar.gz)") from exc
    return _snapshot_of(bytes(data), url)


def _snapshot_of(data: bytes, url: str) -> Snapshot:
    """A GitHub archive's pin files, commit (pax header) and commit date (members' mtime)."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            commit = tar.pax_headers.get("comment")
            files: dict[str, str] = {}
            newest = 0.0
            for member in tar.getmembers():
                relative = member.name.split("/", 1)[1] if "/" in member.name else ""
                newest = max(newest, float(member.mtime or 0))
                if member.isfile() and _wanted(relative):
                    handle = tar.extractfile(member)
                    if handle is not None:
                        files[relative] = handle.read().decode("utf-8")
    except (tarfile.TarError, UnicodeDecodeError, OSError) as exc:
        first = str(exc).splitlines()[0].rstrip(": ") if str(exc) else type(exc).__name__
        raise SourceError(f"{url} is not a readable tarball of the repository ({first})",
                          hint="give the .tar.gz GitHub serves for databricks/environments, or a checkout") from exc
    if not files:
        raise SourceError(f"{url} holds no python/dbr/<key>/constraints.txt: not a copy of databricks/environments")
    date = _dt.datetime.fromtimestamp(newest, _dt.timezone.utc).date().isoformat() if newest else None
    return Snapshot(files, commit if commit and len(commit) == 40 else None, date, url)
