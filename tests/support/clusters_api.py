"""A local HTTP server speaking the Databricks Clusters API subset dcs-magic uses. TEST-ONLY.

Runs `http.server.ThreadingHTTPServer` on 127.0.0.1:<free port> in a daemon thread:

    with ClustersApi() as api:                  # api.host, api.token
        api.script({"state": "PENDING"}, {"state": "RUNNING"})   # the next created cluster
        ...
        api.requests                            # every request: method, path, query, headers, body

- Checks `Authorization: Bearer <token>` on every API path (401 without / with a wrong
  token, 403 for `forbidden_token`), as the real service does.
- clusters/create validates the body with the Databricks SDK's own type
  (`compute.ClusterSpec.from_dict(body).as_dict() == body`) and answers 400
  INVALID_PARAMETER_VALUE when it does not survive the round trip (recorded in
  `create_rejections`).
- clusters/get walks the scripted states one step per call, then stays on the last one; an
  unknown cluster_id gets the real service's 400 "Cluster ... does not exist".
- `fail(path, status, body, headers=..., times=n)` queues canned answers (429 with
  Retry-After, 503, 500, ...) for the next matching requests.
- workspace/mkdirs and workspace/import bodies are checked against the SDK's
  `WorkspaceAPI.mkdirs` / `import_` parameters and `ImportFormat` (else 400, recorded in
  `import_rejections`).
- Uploads land in `files` (workspace import, Files API PUT, DBFS put), keyed by the path
  as the init script references it (`/Workspace/...`, `/Volumes/...`, `dbfs:/...`); the Files
  API (GET, `Range: bytes=-N`, directory listing) and DBFS (list, get-status, read) read them.

Nothing here is part of dcs_magic; it is the "workspace" the client and widget tests talk to.
The HTTP plumbing (ThreadingHTTPServer, the explicit (method, path) route table, JSON
answers) is the preflight workspace's own `dcs_magic.preflight.http.JsonApiServer`; the
semantics differ on purpose (scripted states, canned failures, every request recorded, the
body read before the token is checked so that refused requests are recorded too), so the
clusters handlers are not shared.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from databricks.sdk.service import compute

from dcs_magic.preflight.http import Answer, JsonApiServer, Request

__all__ = ["HOST_METADATA_PATH", "NODE_TYPES", "SPARK_VERSIONS", "WORKSPACE_ID", "ClustersApi", "JobsState",
           "Recorded", "isolate_databricks_config", "jobs_state"]

HOST_METADATA_PATH = "/.well-known/databricks-config"
WORKSPACE_ID = "1234567890123456"

SPARK_VERSIONS = [
    {"key": "13.3.x-scala2.12", "name": "13.3 LTS (includes Apache Spark 3.4.1, Scala 2.12)"},
    {"key": "15.4.x-scala2.12", "name": "15.4 LTS (includes Apache Spark 3.5.0, Scala 2.12)"},
    {"key": "15.4.x-cpu-ml-scala2.12", "name": "15.4 LTS ML (includes Apache Spark 3.5.0, Scala 2.12)"},
    {"key": "15.4.x-aarch64-scala2.12", "name": "15.4 LTS aarch64 (includes Apache Spark 3.5.0, Scala 2.12)"},
    {"key": "16.2.x-scala2.12", "name": "16.2 (includes Apache Spark 3.5.2, Scala 2.12)"},
    {"key": "16.4.x-scala2.12", "name": "16.4 LTS (includes Apache Spark 3.5.2, Scala 2.12)"},
    {"key": "16.4.x-gpu-ml-scala2.12", "name": "16.4 LTS ML (GPU, Scala 2.12)"},
]
NODE_TYPES = [
    {"node_type_id": "m5d.large", "memory_mb": 8192, "num_cores": 2.0, "category": "General Purpose",
     "is_graviton": False, "is_deprecated": False, "is_hidden": False},
    {"node_type_id": "i3.xlarge", "memory_mb": 31232, "num_cores": 4.0, "category": "Storage Optimized",
     "is_graviton": False, "is_deprecated": False, "is_hidden": False},
    {"node_type_id": "m6gd.large", "memory_mb": 8192, "num_cores": 2.0, "category": "General Purpose",
     "is_graviton": True, "is_deprecated": False, "is_hidden": False},
    {"node_type_id": "r6gd.xlarge", "memory_mb": 32768, "num_cores": 4.0, "category": "Memory Optimized",
     "is_graviton": True},
    {"node_type_id": "m4.large", "memory_mb": 8192, "num_cores": 2.0, "category": "General Purpose",
     "is_deprecated": True},
    {"node_type_id": "g4dn.xlarge", "memory_mb": 16384, "num_cores": 4.0, "category": "GPU Accelerated",
     "num_gpus": 1},
]


@dataclass
class Recorded:
    """One request the server received."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class _Canned:
    path: str
    status: int
    body: Any
    headers: dict[str, str]
    times: int


@dataclass
class ClustersApi:
    """The fake workspace. Start with `start()` or `with ClustersApi() as api:`."""

    token: str = "dapi-test-0123456789abcdef"
    forbidden_token: str = "dapi-test-forbidden"
    spark_versions: list[dict[str, Any]] = field(default_factory=lambda: [dict(v) for v in SPARK_VERSIONS])
    node_types: list[dict[str, Any]] = field(default_factory=lambda: [dict(n) for n in NODE_TYPES])
    requests: list[Recorded] = field(default_factory=list)
    clusters: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    directories: set[str] = field(default_factory=set)
    create_rejections: list[str] = field(default_factory=list)
    import_rejections: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._canned: list[_Canned] = []
        self._next_script: list[dict[str, Any]] = [{"state": "PENDING"}, {"state": "RUNNING"}]
        self._steps: dict[str, list[dict[str, Any]]] = {}
        self._server: _Server | None = None
        self._count = 0

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> ClustersApi:
        self._server = _Server(self).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> ClustersApi:  # noqa: PYI034 - not subclassed
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def host(self) -> str:
        assert self._server is not None, "start() the server first"
        return self._server.host

    def __repr__(self) -> str:
        return f"ClustersApi({self._server and self.host}, {len(self.requests)} requests)"

    # -- scripting --------------------------------------------------------------------------

    def script(self, *steps: dict[str, Any]) -> None:
        """States the next created cluster walks through, one clusters/get per step, e.g.
        `{"state": "PENDING"}, {"state": "TERMINATED", "termination_reason": {"code": ...}}`."""
        self._next_script = [dict(s) for s in steps]

    def fail(self, path: str, status: int, body: Any = None, *, headers: dict[str, str] | None = None,
             times: int = 1) -> None:
        """Answer the next `times` requests whose path ends with `path` with `status`/`body`."""
        with self._lock:
            self._canned.append(_Canned(path, status, body, dict(headers or {}), times))

    def requests_to(self, suffix: str) -> list[Recorded]:
        """The recorded requests whose path ends with `suffix` (query string excluded)."""
        return [r for r in self.requests if r.path.endswith(suffix)]

    def add_event(self, cluster_id: str, event_type: str, details: dict[str, Any] | None = None) -> None:
        with self._lock:
            self._add_event(cluster_id, event_type, details)

    # -- internals (called under the handler) ---------------------------------------------------

    def _add_event(self, cluster_id: str, event_type: str, details: dict[str, Any] | None = None) -> None:
        events = self.events.setdefault(cluster_id, [])
        events.append({"cluster_id": cluster_id, "timestamp": int(time.time() * 1000) + len(events),
                       "type": event_type, "details": details or {}})

    def _take_canned(self, path: str) -> _Canned | None:
        with self._lock:
            for canned in self._canned:
                if path.endswith(canned.path):
                    canned.times -= 1
                    if canned.times <= 0:
                        self._canned.remove(canned)
                    return canned
        return None

    def handle(self, route: Callable[..., tuple[int, Any, dict[str, str]]], request: Request
               ) -> tuple[int, Any, dict[str, str]]:
        payload: Any = None
        if request.body and route is not _files_put:
            try:
                payload = json.loads(request.body)
            except ValueError:
                return 400, {"error_code": "MALFORMED_REQUEST", "message": "Invalid JSON given in the body"}, {}
        with self._lock:
            return route(self, request.path, request.query, payload if payload is not None else request.body)

    def _cluster_or_error(self, cluster_id: str | None) -> tuple[dict[str, Any] | None, tuple | None]:
        cluster = self.clusters.get(cluster_id or "")
        if cluster is None:
            return None, (400, {"error_code": "INVALID_PARAMETER_VALUE",
                                "message": f"Cluster {cluster_id} does not exist"}, {})
        return cluster, None


def _create(api: ClustersApi, path: str, query: dict, body: Any) -> tuple[int, Any, dict]:
    if not isinstance(body, dict):
        return 400, {"error_code": "INVALID_PARAMETER_VALUE", "message": "body must be a JSON object"}, {}
    round_trip = compute.ClusterSpec.from_dict(body).as_dict()
    if round_trip != body or not body.get("spark_version"):
        reason = f"body does not match the SDK's ClusterSpec: sent {body!r}, SDK read {round_trip!r}"
        api.create_rejections.append(reason)
        return 400, {"error_code": "INVALID_PARAMETER_VALUE", "message": reason}, {}
    api._count += 1
    cluster_id = f"0101-000000-test{api._count:04d}"
    api._steps[cluster_id] = [dict(s) for s in api._next_script]
    api.clusters[cluster_id] = {**body, "cluster_id": cluster_id, "state": "PENDING",
                                "state_message": "Finding instances for new nodes"}
    api._add_event(cluster_id, "CREATING", {"user": "test@example.com"})
    return 200, {"cluster_id": cluster_id}, {}


def _get(api: ClustersApi, path: str, query: dict, body: Any) -> tuple[int, Any, dict]:
    cluster, error = api._cluster_or_error((query.get("cluster_id") or [None])[0])
    if error:
        return error
    steps = api._steps.get(cluster["cluster_id"]) or []
    if steps:
        step = steps.pop(0) if len(steps) > 1 else steps[0]
        before = cluster["state"]
        cluster.update(step)
        if cluster["state"] != before:
            api._add_event(cluster["cluster_id"], cluster["state"],
                           {"reason": step["termination_reason"]} if "termination_reason" in step else {})
    return 200, cluster, {}


def _delete(api: ClustersApi, path: str, query: dict, body: Any) -> tuple[int, Any, dict]:
    cluster, error = api._cluster_or_error((body or {}).get("cluster_id"))
    if error:
        return error
    api._steps[cluster["cluster_id"]] = []
    cluster.update(state="TERMINATED", state_message="Terminated by user",
                   termination_reason={"code": "USER_REQUEST", "type": "SUCCESS", "parameters": {}})
    api._add_event(cluster["cluster_id"], "TERMINATING", {"reason": cluster["termination_reason"]})
    return 200, {}, {}


def _list(api: ClustersApi, path: str, query: dict, body: Any) -> tuple[int, Any, dict]:
    return 200, {"clusters": list(api.clusters.values())}, {}


def _spark_versions(api: ClustersApi, path: str, query: dict, body: Any) -> tuple[int, Any, dict]:
    return 200, {"versions": api.spark_versions}, {}


def _node_types(api: ClustersApi, path: str, query: dict, body: Any) -> tuple[int, Any, dict]:
    return 200, {"node_types": api.node_types}, {}


def _events(api: ClustersApi, path: str, query: dict, body: Any) -> tuple[int, Any, dict]:
    cluster, error = api._cluster_or_error((body or {}).get("cluster_id"))
    if error:
        return error
    events = list(api.events.get(cluster["cluster_id"], []))
    if body.get("order", "DESC") == "DESC":
        events.reverse()
    offset, size = int(body.get("offset", 0)), int(body.get("page_size") or body.get("limit") or 50)
    page = events[offset:offset + size]
    answer: dict[str, Any] = {"events": page, "total_count": len(events)}
    if offset + size < len(events):
        answer["next_page"] = {**body, "offset": offset + size}
    return 200, answer, {}


def _workspace_problems(method: str, body: Any) -> list[str]:
    """What in a workspace/mkdirs or workspace/import body the SDK's `WorkspaceAPI` method would
    not send: unknown fields, a non-absolute path, a `format` outside `ImportFormat`, content
    that is not base64."""
    import binascii
    import inspect

    from databricks.sdk.service import workspace

    if not isinstance(body, dict):
        return ["body must be a JSON object"]
    known = {p for p in inspect.signature(getattr(workspace.WorkspaceAPI, method)).parameters if p != "self"}
    problems = [f"unknown field {k}" for k in body if k not in known]
    if not isinstance(body.get("path"), str) or not body["path"].startswith("/"):
        problems.append("path must be an absolute workspace path")
    if "format" in body and body["format"] not in {f.value for f in workspace.ImportFormat}:
        problems.append(f"format {body['format']!r} is not an ImportFormat")
    if "overwrite" in body and not isinstance(body["overwrite"], bool):
        problems.append("overwrite must be a boolean")
    if method == "import_":
        try:
            base64.b64decode(body.get("content") or "", validate=True)
        except (binascii.Error, ValueError):
            problems.append("content must be base64")
    return problems


def _refused(api: ClustersApi, problems: list[str]) -> tuple[int, Any, dict]:
    api.import_rejections.append("; ".join(problems))
    return 400, {"error_code": "INVALID_PARAMETER_VALUE", "message": "; ".join(problems)}, {}


def _mkdirs(api: ClustersApi, path: str, query: dict, body: Any) -> tuple[int, Any, dict]:
    problems = _workspace_problems("mkdirs", body)
    if problems:
        return _refused(api, problems)
    api.directories.add(body["path"])
    return 200, {}, {}


def _import(api: ClustersApi, path: str, query: dict, body: Any) -> tuple[int, Any, dict]:
    problems = _workspace_problems("import_", body)
    if problems:
        return _refused(api, problems)
    target = body["path"]
    parent = target.rsplit("/", 1)[0]
    if parent not in api.directories:
        return 404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": f"The parent folder ({parent}) "
                                                                         "does not exist."}, {}
    if target in api.files and not body.get("overwrite"):
        return 400, {"error_code": "RESOURCE_ALREADY_EXISTS", "message": f"{target} already exists."}, {}
    api.files[target] = base64.b64decode(body["content"])
    return 200, {}, {}


def _files_put(api: ClustersApi, path: str, query: dict, body: Any) -> tuple[int, Any, dict]:
    target = path.split("/fs/files", 1)[1]  # the server unquoted the path
    if target in api.files and query.get("overwrite", ["true"])[0] != "true":
        return 409, {"error_code": "ALREADY_EXISTS", "message": f"{target} already exists"}, {}
    api.files[target] = body if isinstance(body, bytes) else json.dumps(body).encode()
    return 204, None, {}


def _dbfs_put(api: ClustersApi, path: str, query: dict, body: Any) -> tuple[int, Any, dict]:
    api.files["dbfs:" + body["path"]] = base64.b64decode(body["contents"])
    return 200, {}, {}


def _children(api: ClustersApi, directory: str) -> dict[str, int | None]:
    """Immediate children of `directory` among the stored files: name -> size (None: a folder)."""
    prefix = directory.rstrip("/") + "/"
    found: dict[str, int | None] = {}
    for key, data in api.files.items():
        if key.startswith(prefix):
            rest = key[len(prefix):]
            name, _, deeper = rest.partition("/")
            found[name] = None if deeper else len(data)
    return found


def _not_found(what: str) -> tuple[int, Any, dict]:
    return 404, {"error_code": "NOT_FOUND", "message": f"{what} does not exist"}, {}


def _files_get(api: ClustersApi, path: str, query: dict, body: Any) -> tuple[int, Any, dict]:
    """Files API download; honours `Range: bytes=-N` (206 with Content-Range) when asked."""
    target = path.split("/fs/files", 1)[1]
    data = api.files.get(target)
    if data is None:
        return _not_found(target)
    wanted = api.requests[-1].headers.get("Range", "") if api.requests else ""
    if wanted.startswith("bytes=-") and wanted[7:].isdigit() and data:
        count = min(int(wanted[7:]), len(data))
        first = len(data) - count
        return 206, data[first:], {"Content-Range": f"bytes {first}-{len(data) - 1}/{len(data)}"}
    return 200, data, {}


def _directories_get(api: ClustersApi, path: str, query: dict, body: Any) -> tuple[int, Any, dict]:
    target = path.split("/fs/directories", 1)[1].rstrip("/")
    children = _children(api, target)
    if not children:
        return _not_found(target)
    return 200, {"contents": [{"path": f"{target}/{name}" + ("/" if size is None else ""), "name": name,
                               "is_directory": size is None, **({"file_size": size} if size is not None else {})}
                              for name, size in sorted(children.items())]}, {}


def _dbfs_list(api: ClustersApi, path: str, query: dict, body: Any) -> tuple[int, Any, dict]:
    target = (query.get("path") or [""])[0].rstrip("/")
    children = _children(api, "dbfs:" + target)
    if not children:
        return 404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": f"No file or directory exists on path {target}."}, {}
    return 200, {"files": [{"path": f"{target}/{name}", "is_dir": size is None, "file_size": size or 0}
                           for name, size in sorted(children.items())]}, {}


def _dbfs_status(api: ClustersApi, path: str, query: dict, body: Any) -> tuple[int, Any, dict]:
    target = (query.get("path") or [""])[0]
    data = api.files.get("dbfs:" + target)
    if data is None:
        return 404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": f"No file or directory exists on path {target}."}, {}
    return 200, {"path": target, "is_dir": False, "file_size": len(data)}, {}


def _dbfs_read(api: ClustersApi, path: str, query: dict, body: Any) -> tuple[int, Any, dict]:
    target = (query.get("path") or [""])[0]
    data = api.files.get("dbfs:" + target)
    if data is None:
        return 404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": f"No file or directory exists on path {target}."}, {}
    offset, length = int((query.get("offset") or ["0"])[0]), int((query.get("length") or ["524288"])[0])
    chunk = data[offset:offset + min(length, 2**20)]
    return 200, {"bytes_read": len(chunk), "data": base64.b64encode(chunk).decode()}, {}


# (method, path under /api/<version>/) -> handler; `*` ends a prefix route.
_ROUTES = {
    ("POST", "clusters/create"): _create,
    ("GET", "clusters/get"): _get,
    ("POST", "clusters/delete"): _delete,
    ("GET", "clusters/list"): _list,
    ("GET", "clusters/spark-versions"): _spark_versions,
    ("GET", "clusters/list-node-types"): _node_types,
    ("POST", "clusters/events"): _events,
    ("POST", "workspace/mkdirs"): _mkdirs,
    ("POST", "workspace/import"): _import,
    ("PUT", "fs/files/*"): _files_put,
    ("POST", "dbfs/put"): _dbfs_put,
    ("GET", "fs/files/*"): _files_get,
    ("GET", "fs/directories/*"): _directories_get,
    ("GET", "dbfs/list"): _dbfs_list,
    ("GET", "dbfs/get-status"): _dbfs_status,
    ("GET", "dbfs/read"): _dbfs_read,
}


# -- jobs runs, workspace-conf and scim Me (dcs run / dcs doctor) ------------------------------
# State lives in a JobsState attached to the ClustersApi on first use (`jobs_state(api)`):
#
#     jobs_state(api).script_run({"life_cycle_state": "RUNNING"},
#                                {"life_cycle_state": "TERMINATED", "result_state": "FAILED",
#                                 "state_message": "Workload failed"},
#                                output={"error": "Python script exited with code 3", "logs": "..."})
#     jobs_state(api).conf["enableDcs"] = "false"
#
# runs/submit checks the body with the SDK's types: every task survives
# `jobs.SubmitTask.from_dict(t).as_dict()`, its new_cluster `compute.ClusterSpec`'s round trip,
# and the top-level keys are parameters of `JobsAPI.submit` (else 400, in `submit_rejections`).
# A spark_python_task whose /Workspace/... or dbfs:/... file was never uploaded ends FAILED
# like the real service ("... does not exist").


@dataclass
class JobsState:
    """The fake workspace's runs, settings and identity."""

    conf: dict[str, Any] = field(default_factory=lambda: {"enableDcs": "true"})
    user: dict[str, Any] = field(default_factory=lambda: {"id": "1234", "userName": "test@example.com",
                                                          "displayName": "Test User", "active": True})
    runs: dict[int, dict[str, Any]] = field(default_factory=dict)
    outputs: dict[int, dict[str, Any]] = field(default_factory=dict)
    submit_rejections: list[str] = field(default_factory=list)
    _steps: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    _next: list[dict[str, Any]] | None = None
    _next_output: dict[str, Any] | None = None
    _count: int = 0

    def script_run(self, *steps: dict[str, Any], output: dict[str, Any] | None = None) -> None:
        """States (`state` objects) the next submitted run walks through, one runs/get per step,
        and what runs/get-output then answers for its task."""
        self._next = [dict(s) for s in steps]
        self._next_output = dict(output or {})


def jobs_state(api: ClustersApi) -> JobsState:
    """The JobsState of a ClustersApi (made on first use)."""
    state = api.__dict__.get("_jobs_state")
    if state is None:
        state = api.__dict__["_jobs_state"] = JobsState()
    return state


def _submit_keys() -> set[str]:
    import inspect

    from databricks.sdk.service import jobs

    return {p for p in inspect.signature(jobs.JobsAPI.submit).parameters if p != "self"}


def _submit_problems(body: Any) -> list[str]:
    from databricks.sdk.service import jobs

    if not isinstance(body, dict) or not isinstance(body.get("tasks"), list) or not body["tasks"]:
        return ["body must be a JSON object with a non-empty tasks list"]
    problems = [f"unknown field {k}" for k in body if k not in _submit_keys()]
    for task in body["tasks"]:
        if jobs.SubmitTask.from_dict(task).as_dict() != task:
            problems.append(f"task does not match the SDK's SubmitTask: {task!r}")
        cluster = task.get("new_cluster")
        if cluster is not None and compute.ClusterSpec.from_dict(cluster).as_dict() != cluster:
            problems.append(f"new_cluster does not match the SDK's ClusterSpec: {cluster!r}")
        if not any(k.endswith("_task") for k in task):
            problems.append(f"task {task.get('task_key')} has no *_task")
    return problems


def _runs_submit(api: ClustersApi, path: str, query: dict, body: Any) -> tuple[int, Any, dict]:
    state = jobs_state(api)
    problems = _submit_problems(body)
    if problems:
        state.submit_rejections.append("; ".join(problems))
        return 400, {"error_code": "INVALID_PARAMETER_VALUE", "message": "; ".join(problems)}, {}
    state._count += 1
    run_id = 1000 + state._count
    task = body["tasks"][0]
    steps = state._next or [{"life_cycle_state": "PENDING", "state_message": "Waiting for cluster"},
                            {"life_cycle_state": "RUNNING"},
                            {"life_cycle_state": "TERMINATED", "result_state": "SUCCESS"}]
    output = state._next_output or {}
    python_file = (task.get("spark_python_task") or {}).get("python_file", "")
    if state._next is None and python_file.startswith(("/Workspace/", "dbfs:/")) and python_file not in api.files:
        steps = [{"life_cycle_state": "PENDING"},
                 {"life_cycle_state": "INTERNAL_ERROR", "result_state": "FAILED",
                  "state_message": f"Run failed with error message Cannot read the python file {python_file}. "
                                   "File does not exist."}]
        output = {"error": f"{python_file} does not exist"}
    state._next, state._next_output = None, None
    state._steps[run_id] = [dict(s) for s in steps]
    state.outputs[run_id + 1000] = output
    state.runs[run_id] = {"run_id": run_id, "run_name": body.get("run_name"), "state": {"life_cycle_state": "PENDING"},
                          "run_page_url": f"{api.host}/?o=0#job/runs/{run_id}",
                          "tasks": [{"run_id": run_id + 1000, "task_key": task["task_key"],
                                     "new_cluster": task.get("new_cluster")}]}
    return 200, {"run_id": run_id}, {}


def _runs_get(api: ClustersApi, path: str, query: dict, body: Any) -> tuple[int, Any, dict]:
    state = jobs_state(api)
    run = state.runs.get(int((query.get("run_id") or ["0"])[0]))
    if run is None:
        return 400, {"error_code": "INVALID_PARAMETER_VALUE", "message": "Run does not exist"}, {}
    steps = state._steps.get(run["run_id"]) or []
    if steps:
        run["state"] = steps.pop(0) if len(steps) > 1 else steps[0]
        run["tasks"][0]["state"] = run["state"]
    return 200, run, {}


def _runs_get_output(api: ClustersApi, path: str, query: dict, body: Any) -> tuple[int, Any, dict]:
    state = jobs_state(api)
    task_run_id = int((query.get("run_id") or ["0"])[0])
    if task_run_id not in state.outputs:
        return 400, {"error_code": "INVALID_PARAMETER_VALUE", "message": f"Run {task_run_id} does not exist"}, {}
    return 200, {**state.outputs[task_run_id], "metadata": {"run_id": task_run_id}}, {}


def _runs_cancel(api: ClustersApi, path: str, query: dict, body: Any) -> tuple[int, Any, dict]:
    state = jobs_state(api)
    run_id = int((body or {}).get("run_id") or 0)
    if run_id not in state.runs:
        return 400, {"error_code": "INVALID_PARAMETER_VALUE", "message": "Run does not exist"}, {}
    state._steps[run_id] = [{"life_cycle_state": "TERMINATED", "result_state": "CANCELED",
                             "state_message": "Run cancelled."}]
    return 200, {}, {}


def _workspace_conf(api: ClustersApi, path: str, query: dict, body: Any) -> tuple[int, Any, dict]:
    keys = ",".join(query.get("keys") or []).split(",")
    conf = jobs_state(api).conf
    return 200, {k: conf.get(k) for k in keys if k}, {}


def _scim_me(api: ClustersApi, path: str, query: dict, body: Any) -> tuple[int, Any, dict]:
    return 200, jobs_state(api).user, {}


_ROUTES.update({
    ("POST", "jobs/runs/submit"): _runs_submit,
    ("GET", "jobs/runs/get"): _runs_get,
    ("GET", "jobs/runs/get-output"): _runs_get_output,
    ("POST", "jobs/runs/cancel"): _runs_cancel,
    ("GET", "workspace-conf"): _workspace_conf,
    ("GET", "preview/scim/v2/Me"): _scim_me,
})


class _Server(JsonApiServer):
    """The shared plumbing, answering from _ROUTES; records every request first."""

    def __init__(self, api: ClustersApi) -> None:
        self.api = api
        routes = {(method, f"/api/{version}/{path}"): self._bind(route)
                  for (method, path), route in _ROUTES.items() for version in ("2.0", "2.1", "2.2")}
        super().__init__(routes, name="clusters-api")

    def _bind(self, route: Callable[..., tuple[int, Any, dict[str, str]]]) -> Callable[[Request], Answer]:
        return lambda request: self.api.handle(route, request)

    def dispatch(self, request: Request) -> Answer:
        api = self.api
        api.requests.append(Recorded(request.method, urllib.parse.urlsplit(request.target).path, request.query,
                                     dict(request.headers.items()), request.body, time.monotonic()))
        if request.path == HOST_METADATA_PATH:
            # The SDK's host-metadata probe (no credentials), answered as a workspace does.
            return 200, {"workspace_id": WORKSPACE_ID}, {}
        if not request.path.startswith("/api/"):
            return 404, {"error_code": "NOT_FOUND", "message": f"{request.path} not found"}, {}
        auth = request.headers.get("Authorization", "")
        if auth == f"Bearer {api.forbidden_token}":
            return 403, {"error_code": "PERMISSION_DENIED",
                         "message": "You are not authorized to perform this operation"}, {}
        if auth != f"Bearer {api.token}":
            return 401, {"error_code": "UNAUTHENTICATED",
                         "message": "Credential was not sent or was of an unsupported type for this API."}, {}
        canned = api._take_canned(request.path)
        if canned is not None:
            return canned.status, canned.body, canned.headers
        if self.route(request.method, request.path) is None:
            return 404, {"error_code": "ENDPOINT_NOT_FOUND",
                         "message": f"No API found for '{request.method} {request.path}'"}, {}
        return super().dispatch(request)


def isolate_databricks_config(monkeypatch: Any, tmp_dir: Any) -> None:
    """Hide the machine's DATABRICKS_*/ARM_* variables and ~/.databrickscfg from a test
    (`monkeypatch` is pytest's; `tmp_dir` a directory for the absent config file)."""
    import os

    for name in list(os.environ):
        if name.startswith(("DATABRICKS_", "ARM_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", os.path.join(str(tmp_dir), "absent.databrickscfg"))
