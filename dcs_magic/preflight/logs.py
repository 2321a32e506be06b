"""Cluster log delivery as Databricks does it (`cluster_log_conf`), into the store's files.

What a cluster with `{"volumes": {"destination": D}}` (or `{"dbfs": ...}`) gets, at the real
paths (dcs-facts.md, "Why a start fails"):

    D/<cluster-id>/driver/stdout, driver/stderr   the driver container's output; a job
                                                  cluster's task writes its own, teed on the
                                                  node to /databricks/driver/logs/ (runs.py)
    D/<cluster-id>/driver/log4j-active.log        the local launch's own log: one log4j-shaped
                                                  line per step, `yy/MM/dd HH:mm:ss LEVEL
                                                  DriverDaemon: ...`; a failure is an ERROR line
                                                  `<Exception>: <CODE>: <facts>` (`exception_line`)
    D/<cluster-id>/init_scripts/<cluster-id>_<ip with dots as underscores>/
        <yyyyMMdd_HHmmss>_<log-id>_<script>.sh.stdout.log and .sh.stderr.log
                                                  each script's output, written by the script on
                                                  the node under /databricks/init_scripts/

Store keys: a volumes destination as its path, a dbfs one through `store.dbfs_key`; `s3` is
accepted but cannot be delivered locally (said in `cluster_log_status.last_exception`). Each
file holds at most `MAX_LOG_BYTES`, the tail, read back from the container with `tail -c`
(never the whole output in memory); a cut one starts with "(truncated: first N bytes
dropped)". `deliver` runs when the cluster reaches RUNNING and at its termination, before the
driver container is removed; it never raises: what failed is in `cluster_log_status`
(`{"last_attempted": ms, "last_exception": "..."}`), the cluster's outcome is unchanged.
"""

from __future__ import annotations

import os
import re
import time
from typing import TYPE_CHECKING, Any

from ..errors import DcsError
from .store import Cluster, Store, dbfs_key, now_ms

if TYPE_CHECKING:
    from ..adapters.engine import Engine

__all__ = ["MAX_LOG_BYTES", "NODE_DRIVER_LOGS", "NODE_INIT_DIR", "deliver", "exception_line",
           "init_log_name", "log4j_line", "log_destination", "s3_message", "tail_note"]

MAX_LOG_BYTES = 1 << 20
"""The most a delivered file holds (its tail)."""
NODE_INIT_DIR = "/databricks/init_scripts"
"""Where init scripts write their output on the node (the driver container)."""
NODE_DRIVER_LOGS = "/databricks/driver/logs"
"""Where a job task's stdout and stderr are teed on the node."""
_NOTE_ROOM = 64  # bytes kept free for the truncation note
_MISSING = 66  # exit status of the read-back command for a file that is not there

# The exception a Databricks driver log names for a termination code (ERROR lines).
_EXCEPTIONS = {
    "IMAGE_PULL_PERMISSION_DENIED": "ImagePullException",
    "DOCKER_IMAGE_PULL_FAILURE": "ImagePullException",
    "DOCKER_INVALID_OS_EXCEPTION": "DockerInvalidOsException",
    "DOCKER_CONTAINER_CREATION_EXCEPTION": "DockerContainerCreationException",
    "CONTAINER_LAUNCH_FAILURE": "ContainerLaunchException",
    "INIT_SCRIPT_FAILURE": "InitScriptFailureException",
    "SECRET_RESOLUTION_ERROR": "SecretResolutionException",
}


def log_destination(spec: dict[str, Any]) -> tuple[str, str] | None:
    """(kind, where): `volumes` / `dbfs` with the store key of the destination directory, or
    `s3` with its URI; None without a (valid) cluster_log_conf."""
    conf = spec.get("cluster_log_conf")
    if not isinstance(conf, dict) or len(conf) != 1:
        return None
    ((kind, where),) = conf.items()
    destination = where.get("destination") if isinstance(where, dict) else None
    if not isinstance(destination, str) or not destination.strip():
        return None
    destination = destination.strip()
    if kind == "volumes":
        return kind, destination.rstrip("/")
    if kind == "dbfs":
        return kind, dbfs_key(destination).rstrip("/")
    if kind == "s3":
        return kind, destination
    return None


def s3_message(uri: str) -> str:
    return (f"Cluster logs are not delivered to {uri}: the local preflight workspace delivers to volumes "
            "and dbfs destinations only (an s3 destination is delivered by a real cluster)")


def log4j_line(level: str, message: str, *, logger: str = "DriverDaemon", when: float | None = None) -> str:
    """`26/12/07 06:10:00 INFO DriverDaemon: message` (UTC, as on a cluster node), one line."""
    stamp = time.strftime("%y/%m/%d %H:%M:%S", time.gmtime(time.time() if when is None else when))
    text = " ".join(part.strip() for part in message.splitlines() if part.strip())
    return f"{stamp} {level} {logger}: {text}"


def exception_line(code: str, message: str) -> str:
    """The message of an ERROR line: `ImagePullException: IMAGE_PULL_PERMISSION_DENIED: ...`."""
    return f"{_EXCEPTIONS.get(code, 'LaunchFailureException')}: {code}: {message}"


def init_log_name(index: int, destination: str, when: float | None = None) -> str:
    """`20261207_061000_00_install.sh`: the name (without `.stdout.log`) of an init script's
    logs, as Databricks names them: start time (UTC), log id (the script's place, from 00),
    the script's file name."""
    stamp = time.strftime("%Y%m%d_%H%M%S", time.gmtime(time.time() if when is None else when))
    base = os.path.basename(destination.rstrip("/").split(":", 1)[-1]) or "init"
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", base).removesuffix(".sh") or "init"
    return f"{stamp}_{index - 1:02d}_{stem}.sh"


def tail_note(total: int, tail: bytes, limit: int = MAX_LOG_BYTES) -> bytes:
    """`tail` (the end of `total` bytes) as a delivered file: at most `limit` bytes, starting
    with "(truncated: first N bytes dropped)" when anything was cut."""
    total = max(total, len(tail))
    if total <= limit:
        return tail
    room = max(limit - _NOTE_ROOM, 0)
    kept = tail[len(tail) - room:] if room < len(tail) else tail
    return f"(truncated: first {total - len(kept)} bytes dropped)\n".encode() + kept


def deliver(store: Store, cluster: Cluster, engine: Engine | None) -> None:
    """Deliver the cluster's logs now, if it has a cluster_log_conf; never raises.

    The launch log is always written; the driver's output and the init scripts' logs only
    while the driver container exists (a later delivery without it keeps what an earlier one
    wrote). One delivery at a time per cluster, so the last one holds the newest lines.
    """
    where = log_destination(cluster.spec)
    if where is None:
        return
    kind, base = where
    with cluster.delivering:
        attempted = now_ms()
        problems: list[str] = []
        try:
            if kind == "s3":
                problems.append(s3_message(base))
            else:
                root = f"{base}/{cluster.cluster_id}"
                with store.lock:
                    lines = list(cluster.launch_log)
                files = {f"{root}/driver/log4j-active.log":
                         tail_note(*_joined([_sized("".join(f"{line}\n" for line in lines).encode())]))}
                if engine is not None and cluster.container:
                    try:
                        files.update(_from_container(engine, cluster, root))
                    except (DcsError, _Unreadable) as exc:
                        problems.append(f"The logs of the driver container {cluster.container} could not be "
                                        f"read: {getattr(exc, 'message', None) or exc}")
                for key, data in files.items():
                    store.put_file(key, data, overwrite=True)
        except Exception as exc:  # noqa: BLE001 - a delivery failure never changes the cluster's outcome
            problems.append(f"{type(exc).__name__}: {exc}")
        status: dict[str, Any] = {"last_attempted": attempted}
        if problems:
            status["last_exception"] = "; ".join(problems)
        store.update(cluster, log_status=status)


class _Unreadable(Exception):
    """A file in the driver could not be read back."""


def _sized(data: bytes) -> tuple[int, bytes]:
    return len(data), data


def _joined(parts: list[tuple[int, bytes]]) -> tuple[int, bytes]:
    """Several (size, tail) pieces as one: sizes added, tails concatenated, the last
    MAX_LOG_BYTES kept."""
    total = sum(size for size, _ in parts)
    return total, b"".join(tail for _, tail in parts)[-MAX_LOG_BYTES:]


def _from_container(engine: Engine, cluster: Cluster, root: str) -> dict[str, bytes]:
    """driver/stdout, driver/stderr and the init scripts' logs, read from the driver."""
    container = cluster.container or ""
    info = engine.inspect_container(container)
    if info is None:
        return {}  # removed (a terminate): what an earlier delivery wrote stays
    running = bool((info.get("State") or {}).get("Running"))
    files: dict[str, bytes] = {}
    for stream in ("stdout", "stderr"):
        parts = []
        logged = engine.log_tail(container, stderr=stream == "stderr", limit=MAX_LOG_BYTES)
        if logged is not None:
            parts.append(logged)
        teed = _file_tail(engine, container, f"{NODE_DRIVER_LOGS}/{stream}") if running else None
        if teed is not None:
            parts.append(teed)
        files[f"{root}/driver/{stream}"] = tail_note(*_joined(parts))
    if running and cluster.init_logs:
        node = f"{cluster.cluster_id}_{(cluster.driver_ip or '127.0.0.1').replace('.', '_')}"
        for name in list(cluster.init_logs):
            for stream in ("stdout", "stderr"):
                found = _file_tail(engine, container, f"{NODE_INIT_DIR}/{name}.{stream}.log")
                if found is not None:
                    files[f"{root}/init_scripts/{node}/{name}.{stream}.log"] = tail_note(*found)
    return files


_READ_BACK = f'[ -f "$1" ] || exit {_MISSING}; wc -c <"$1" 2>/dev/null; tail -c "$2" "$1" 2>/dev/null'


def _file_tail(engine: Engine, container: str, path: str) -> tuple[int, bytes] | None:
    """(size, last MAX_LOG_BYTES bytes) of a file in the running container; None if missing."""
    ran = engine.exec(container, ["/bin/sh", "-c", _READ_BACK, "sh", path, str(MAX_LOG_BYTES)])
    if ran.exit_code == _MISSING:
        return None
    head, newline, body = ran.output.partition(b"\n")
    if ran.timed_out or ran.exit_code != 0 or not newline or not head.strip().isdigit():
        raise _Unreadable(f"{path}: the read-back command ended with "
                          f"{'a timeout' if ran.timed_out else f'exit code {ran.exit_code}'}")
    return int(head.strip()), body
