"""What the preflight workspace knows: cluster records, job runs, files, cluster events.

Pure state behind one lock (no HTTP, no Docker): the server's request threads and the
launcher's worker threads read and change it only through `Store` methods or inside
`with store.lock:`.

Files (uploads, and the cluster logs the launcher delivers) are kept by key: a `/Volumes/...`
path as it is, a workspace path without its `/Workspace` prefix (`workspace_key`), a DBFS
path as `dbfs:/...` (`dbfs_key`); each with its modification time. `children(directory)`
lists what is directly under a directory, the directories implied by the keys below it.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["NODE_TYPE_ID", "Cluster", "Entry", "Run", "Store", "dbfs_key", "new_cluster_id", "now_ms",
           "workspace_key"]

NODE_TYPE_ID = "local"


def now_ms() -> int:
    return int(time.time() * 1000)


def new_cluster_id() -> str:
    """Shaped like Databricks' ids (MMDD-HHMMSS-xxxxxxxx); valid in a container name."""
    return time.strftime("%m%d-%H%M%S-") + secrets.token_hex(4)


def workspace_key(path: str) -> str:
    """Workspace paths are the same with or without the /Workspace prefix."""
    path = "/" + path.strip().lstrip("/")
    return path[len("/Workspace"):] or "/" if path.startswith("/Workspace/") else path


def dbfs_key(path: str) -> str:
    """`dbfs:/x`, `/x` and `dbfs:x` are one DBFS path: `dbfs:/x`."""
    path = path.strip()
    return "dbfs:/" + (path.removeprefix("dbfs:")).lstrip("/")


@dataclass(frozen=True)
class Entry:
    """One item of a directory listing: a file (its size and modification time) or a
    directory (size 0, the newest modification time below it)."""

    key: str  # a directory's key has no trailing slash
    is_dir: bool
    size: int
    mtime_ms: int

    @property
    def name(self) -> str:
        return self.key.rstrip("/").rsplit("/", 1)[-1]


@dataclass
class Cluster:
    """One cluster's state. `auth` (the registry password) lives only here, never in info()."""

    cluster_id: str
    spec: dict[str, Any]
    auth: dict[str, str] | None = field(default=None, repr=False)
    state: str = "PENDING"
    state_message: str = "Starting the local preflight launch"
    start_time: int = field(default_factory=now_ms)
    terminated_time: int | None = None
    termination_reason: dict[str, Any] | None = None
    container: str | None = None
    busy: bool = False  # a launch worker thread owns the cluster
    ending: Any = None  # the launcher's Terminate reason once a terminate was asked for
    source: str = "API"  # "JOB" for a run's job cluster
    cancel: threading.Event = field(default_factory=threading.Event)
    events: list[dict[str, Any]] = field(default_factory=list)
    # Log delivery (logs.py): the launch's own log lines (driver/log4j-active.log), the init
    # scripts' log names on the node, the driver's IP, cluster_log_status once attempted.
    launch_log: list[str] = field(default_factory=list)
    init_logs: list[str] = field(default_factory=list)
    driver_ip: str | None = None
    log_status: dict[str, Any] | None = None
    delivering: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def image(self) -> str:
        return str(self.spec["docker_image"]["url"])

    def info(self) -> dict[str, Any]:
        """The clusters/get answer: the create body (password left out) + state."""
        info: dict[str, Any] = json.loads(json.dumps(self.spec))
        auth = (info.get("docker_image") or {}).get("basic_auth")
        if isinstance(auth, dict):
            auth.pop("password", None)
        info.update(cluster_id=self.cluster_id, state=self.state, state_message=self.state_message,
                    start_time=self.start_time, creator_user_name="local", cluster_source=self.source,
                    default_tags={"Vendor": "Databricks", "Creator": "local",
                                  "ClusterName": str(self.spec.get("cluster_name", "")),
                                  "ClusterId": self.cluster_id})
        info.setdefault("node_type_id", NODE_TYPE_ID)
        info.setdefault("driver_node_type_id", info["node_type_id"])
        if self.container and self.state == "RUNNING":
            info["driver"] = {"node_id": self.container, "instance_id": self.container}
        if self.terminated_time is not None:
            info["terminated_time"] = self.terminated_time
        if self.termination_reason is not None:
            info["termination_reason"] = self.termination_reason
        if self.spec.get("cluster_log_conf") and self.log_status is not None:
            info["cluster_log_status"] = dict(self.log_status)
        return info


@dataclass
class Run:
    """One submitted run of one task on its own job cluster.

    `state` is runs/get's state object, `output` the task's runs/get-output answer (without
    `metadata`); both change only through `Store.update_run` or under `store.lock`.
    """

    run_id: int
    task_run_id: int
    run_name: str
    task: dict[str, Any]  # the submitted task, new_cluster without the password
    cluster: Cluster
    state: dict[str, Any] = field(default_factory=lambda: {
        "life_cycle_state": "PENDING", "state_message": "Waiting for the job cluster"})
    output: dict[str, Any] = field(default_factory=dict)
    start_time: int = field(default_factory=now_ms)
    end_time: int | None = None
    timeout_s: int = 0  # timeout_seconds of the body (0: none)
    timed_out: bool = False  # ended by its timeout rather than a cancel

    @property
    def done(self) -> bool:
        return self.state.get("life_cycle_state") in ("TERMINATED", "SKIPPED", "INTERNAL_ERROR")

    def task_info(self, run_page_url: str) -> dict[str, Any]:
        """tasks[0] of the runs/get answer (also the get-output `metadata`)."""
        info: dict[str, Any] = json.loads(json.dumps(self.task))
        info.update(run_id=self.task_run_id, state=dict(self.state), start_time=self.start_time,
                    cluster_instance={"cluster_id": self.cluster.cluster_id}, run_page_url=run_page_url,
                    attempt_number=0)
        if self.end_time is not None:
            info["end_time"] = self.end_time
        return info

    def info(self, run_page_url: str) -> dict[str, Any]:
        """The runs/get answer."""
        info: dict[str, Any] = {
            "run_id": self.run_id, "run_name": self.run_name, "run_type": "SUBMIT_RUN",
            "creator_user_name": "local", "state": dict(self.state), "start_time": self.start_time,
            "run_page_url": run_page_url, "tasks": [self.task_info(run_page_url)],
        }
        if self.end_time is not None:
            info["end_time"] = self.end_time
        return info


class Store:
    """Clusters by id, uploaded files by canonical path; one re-entrant lock for both.

    `changed` is notified on every state change and event, so a reader can wait for one.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self._clusters: dict[str, Cluster] = {}
        self._files: dict[str, tuple[bytes, int]] = {}  # key -> (content, modification time in ms)
        self._runs: dict[int, Run] = {}
        self._tasks: dict[int, Run] = {}  # by task run id
        self._tokens: dict[str, Run] = {}  # by runs/submit idempotency_token
        self._next_run_id = 1000 + secrets.randbelow(9000) * 1000

    # -- clusters ------------------------------------------------------------------------

    def add(self, cluster: Cluster) -> Cluster:
        """Register `cluster` unless one with its id is known; return the registered one."""
        with self.lock:
            return self._clusters.setdefault(cluster.cluster_id, cluster)

    def get(self, cluster_id: str) -> Cluster | None:
        with self.lock:
            return self._clusters.get(cluster_id)

    def remove(self, cluster_id: str) -> None:
        with self.lock:
            self._clusters.pop(cluster_id, None)
            self.changed.notify_all()

    def clusters(self) -> list[Cluster]:
        """Newest first."""
        with self.lock:
            return sorted(self._clusters.values(), key=lambda c: -c.start_time)

    def busy(self) -> list[Cluster]:
        with self.lock:
            return [c for c in self._clusters.values() if c.busy]

    def update(self, cluster: Cluster, **changes: Any) -> None:
        """Set fields of `cluster` and wake whoever waits for a change."""
        with self.lock:
            for key, value in changes.items():
                setattr(cluster, key, value)
            self.changed.notify_all()

    def event(self, cluster: Cluster, type_: str, details: dict[str, Any]) -> None:
        """Append a cluster event; timestamps never go backwards."""
        with self.lock:
            timestamp = max(now_ms(), cluster.events[-1]["timestamp"] if cluster.events else 0)
            cluster.events.append({"cluster_id": cluster.cluster_id, "timestamp": timestamp,
                                   "type": type_, "details": details})
            self.changed.notify_all()

    def events(self, cluster: Cluster) -> list[dict[str, Any]]:
        with self.lock:
            return list(cluster.events)

    # -- job runs ------------------------------------------------------------------------

    def new_run_ids(self) -> tuple[int, int]:
        """(run id, task run id), never used before by this store."""
        with self.lock:
            self._next_run_id += 2
            return self._next_run_id - 1, self._next_run_id

    def add_run(self, run: Run, idempotency_token: str | None = None) -> Run:
        """Register `run` and its job cluster; with an idempotency token already used, the
        run registered then is returned instead (and `run` is not registered)."""
        with self.lock:
            if idempotency_token and idempotency_token in self._tokens:
                return self._tokens[idempotency_token]
            if idempotency_token:
                self._tokens[idempotency_token] = run
            self._runs[run.run_id] = self._tasks[run.task_run_id] = run
            self._clusters[run.cluster.cluster_id] = run.cluster
            return run

    def run(self, run_id: int) -> Run | None:
        with self.lock:
            return self._runs.get(run_id)

    def task_run(self, task_run_id: int) -> Run | None:
        with self.lock:
            return self._tasks.get(task_run_id)

    def runs_of(self, cluster: Cluster) -> list[Run]:
        """The runs `cluster` is the job cluster of."""
        with self.lock:
            return [r for r in self._runs.values() if r.cluster is cluster]

    def update_run(self, run: Run, *, output: dict[str, Any] | None = None, end: bool = False,
                   **state: Any) -> None:
        """Merge `state` into run.state (a final one sets end_time once), set the output."""
        with self.lock:
            run.state.update(state)
            if output is not None:
                run.output = dict(output)
            if (end or run.done) and run.end_time is None:
                run.end_time = now_ms()
            self.changed.notify_all()

    def snapshot(self, run: Run) -> tuple[dict[str, Any], dict[str, Any]]:
        """(state, output) copies, consistent with each other."""
        with self.lock:
            return dict(run.state), dict(run.output)

    # -- files (uploads, delivered logs) -------------------------------------------------

    def put_file(self, key: str, data: bytes, *, overwrite: bool) -> bool:
        """Store a file; False (nothing stored) when it exists and overwrite is False."""
        with self.lock:
            if key in self._files and not overwrite:
                return False
            self._files[key] = (bytes(data), now_ms())
            return True

    def file(self, key: str) -> bytes | None:
        with self.lock:
            found = self._files.get(key)
            return found[0] if found is not None else None

    def stat(self, key: str) -> Entry | None:
        """The file `key`, or the directory `key` when files are below it; None for neither."""
        key = key.rstrip("/") or key
        with self.lock:
            found = self._files.get(key)
            if found is not None:
                return Entry(key, False, len(found[0]), found[1])
            below = [mtime for k, (_, mtime) in self._files.items() if k.startswith(_as_directory(key))]
            return Entry(key, True, 0, max(below)) if below else None

    def files_under(self, directory: str) -> dict[str, bytes]:
        """Every file below `directory` (any depth), by key."""
        prefix = _as_directory(directory)
        with self.lock:
            return {key: data for key, (data, _) in self._files.items() if key.startswith(prefix)}

    def children(self, directory: str) -> list[Entry] | None:
        """What is directly under `directory` (files, and the directories the keys below it
        imply), sorted by key; None when nothing is under it."""
        prefix = _as_directory(directory)
        entries: dict[str, Entry] = {}
        with self.lock:
            for key, (data, mtime) in self._files.items():
                if not key.startswith(prefix) or key == prefix:
                    continue
                head, slash, _rest = key[len(prefix):].partition("/")
                if not slash:
                    entries[key] = Entry(key, False, len(data), mtime)
                    continue
                child = prefix + head
                seen = entries.get(child)
                if seen is None or (seen.is_dir and seen.mtime_ms < mtime):
                    entries[child] = Entry(child, True, 0, mtime)
        if not entries:
            return None
        return [entries[k] for k in sorted(entries)]


def _as_directory(key: str) -> str:
    """`key` with one trailing slash (`dbfs:/` and `/` stay themselves)."""
    return key if key.endswith("/") else key + "/"
