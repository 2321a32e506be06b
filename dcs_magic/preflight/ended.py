"""Ended clusters outlive the process that ran them, as a workspace keeps a terminated cluster.

`dcs launch --local` runs its workspace in its own process; `dcs why CLUSTER_ID --local` (or a
kernel's `%dcs_why`) comes later in another. So at termination the launcher writes one record
per cluster, `<settings.local_state_dir()>/clusters/<cluster-id>.json`: the clusters/get answer,
its events, and the log files delivered under its `cluster_log_conf` destination (each at most
1 MiB already). A workspace whose store lacks an id reads the record back (`load`), and serves
the cluster and its logs as if it had run it. The newest `KEEP` records are kept; files are
0600 in a 0700 folder (init-script logs hold whatever a script printed). Writing is best-effort:
a record that cannot be written changes no cluster's outcome.
"""

from __future__ import annotations

import base64
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["KEEP", "forget", "load", "save"]

KEEP = 200
"""How many ended clusters' records are kept (the newest)."""
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")


def _path(directory: Path, cluster_id: str) -> Path | None:
    return directory / "clusters" / f"{cluster_id}.json" if _ID.match(cluster_id) else None


def save(directory: Path, info: dict[str, Any], events: list[dict[str, Any]], files: dict[str, bytes]) -> bool:
    """Write the record of the ended cluster `info` (atomically); False when it could not be."""
    path = _path(directory, str(info.get("cluster_id") or ""))
    if path is None:
        return False
    record = {"info": info, "events": events,
              "files": {key: base64.b64encode(data).decode("ascii") for key, data in files.items()}}
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".record-", suffix=".tmp")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(record, out)
            os.chmod(temporary, 0o600)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        _prune(path.parent)
    except (OSError, TypeError, ValueError):
        return False
    return True


def load(directory: Path, cluster_id: str) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, bytes]] | None:
    """(clusters/get answer, events, delivered files by store key) of an ended cluster, or None
    when no readable record exists."""
    path = _path(directory, cluster_id)
    if path is None:
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        info, events, files = record["info"], record["events"], record["files"]
        if not isinstance(info, dict) or info.get("cluster_id") != cluster_id or not isinstance(events, list):
            return None
        return info, events, {str(k): base64.b64decode(v) for k, v in dict(files).items()}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def forget(directory: Path, cluster_id: str) -> None:
    """Remove the record (clusters/permanent-delete)."""
    path = _path(directory, cluster_id)
    if path is not None:
        path.unlink(missing_ok=True)


def _prune(folder: Path) -> None:
    records = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in records[KEEP:]:
        old.unlink(missing_ok=True)
