"""The local preflight workspace: a Clusters API subset on 127.0.0.1, backed by Docker.

`Workspace.local()` talks to it over HTTP exactly as `Workspace` talks to Databricks, so the
launch form, `wait_for_cluster` and the CLI use one code path. A cluster is launched the
way Databricks Container Services starts a driver, in a worker thread per cluster:

    create -> PENDING
      pull docker_image.url with its basic_auth (a real pull from the registry)
          auth refused                -> IMAGE_PULL_PERMISSION_DENIED
          missing image / unreachable -> DOCKER_IMAGE_PULL_FAILURE
      checks.check(image, runtime=spark_version)
          not linux/amd64             -> DOCKER_INVALID_OS_EXCEPTION
          java, bash, python... missing -> CONTAINER_LAUNCH_FAILURE (names what is missing)
      create + start the "driver" container (entrypoint replaced by an idle loop,
          spark_env_vars + DB_* variables as its environment, label dcs_magic.local_cluster)
      init scripts in order (`file:` inside the image; workspace/volumes/dbfs ones from what
          was uploaded to this server)  missing / non-zero exit -> INIT_SCRIPT_FAILURE
    -> RUNNING, or TERMINATED with termination_reason {code, type, parameters}.

A failed or terminated launch leaves no container behind. No Spark runs: this checks what
a cluster start would check, before a real cluster is paid for. A Docker engine that does
not answer terminates the cluster (CONTAINER_LAUNCH_FAILURE, type SERVICE_FAULT) with a
message saying so; `create` itself only validates the body.

Every request needs `Authorization: Bearer <token>` (token from `ensure_server()`).
Clusters whose driver container still runs are found again by a new process (`get`,
`list`, `delete`) through the container's labels.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import os
import re
import secrets
import tarfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .checks import OS_ITEMS, check, parse_runtime
from .errors import DcsError, EngineError, SpecError
from .imageref import parse_reference
from .spec import ClusterSpec, is_secret_reference

__all__ = ["LABEL", "SPARK_VERSIONS", "LocalWorkspaceServer", "ensure_server"]

LABEL = "dcs_magic.local_cluster"
"""Label on driver containers: its value is the cluster id."""

SPARK_VERSIONS = [
    {"key": f"{line}.x-scala2.12", "name": f"{line} LTS (local preflight)"}
    for line in ("17.3", "16.4", "15.4", "14.3", "13.3")
]
NODE_TYPE_ID = "local"

# Generous: init scripts may install packages; an engine that hangs longer is broken.
DOCKER_TIMEOUT_S = 1200
OUTPUT_KEEP_CHARS = 20_000
# PID 1 of the driver container: idles, and exits at once on `docker stop` (SIGTERM).
_IDLE = "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"
_INIT_DIR = "/tmp/dcs-init-scripts"
_CLUSTER_ROUTES = ("create", "get", "delete", "permanent-delete", "list", "spark-versions",
                   "list-node-types", "events")


class _ApiFailure(Exception):
    """An error answer: HTTP status + Databricks' {"error_code", "message"}."""

    def __init__(self, status: int, error_code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error_code, self.message = status, error_code, message


def secret_variable(reference: str) -> str:
    """The environment variable that holds `{{secrets/scope/key}}` for the local workspace:
    `DCS_SECRET_<SCOPE>_<KEY>`, upper case, other characters as `_`."""
    scope, key = reference.strip("{} ").split("/", 2)[1:]
    return "DCS_SECRET_" + re.sub(r"[^A-Z0-9]", "_", f"{scope}_{key}".upper())


def _resolve_secret(reference: str) -> str:
    """A secret scope stand-in: the value of `secret_variable(reference)` in this process.

    A cluster resolves the reference from the workspace's secret scope; locally the same
    reference resolves from the environment, so one cluster JSON serves both and a missing
    secret fails here as it would there.
    """
    variable = secret_variable(reference)
    value = os.environ.get(variable)
    if not value:
        raise _Terminate("SECRET_RESOLUTION_ERROR",
                         f"The registry password {reference.strip()} cannot be resolved: the local "
                         f"preflight workspace reads secret references from the environment variable "
                         f"{variable}, which is not set in the process that runs it")
    return value


class _Terminate(Exception):
    """Ends a launch: the termination reason a real cluster would get for the same failure."""

    def __init__(self, code: str, message: str, *, type_: str = "CLIENT_ERROR",
                 **parameters: str) -> None:
        super().__init__(message)
        self.code, self.type, self.message = code, type_, message
        self.parameters = {"databricks_error_message": message, **parameters}


def _now_ms() -> int:
    return int(time.time() * 1000)


def _not_found(cluster_id: Any) -> _ApiFailure:
    return _ApiFailure(404, "RESOURCE_DOES_NOT_EXIST", f"Cluster {cluster_id} does not exist")


@dataclass
class _Cluster:
    """One cluster's state. `auth` (the registry password) lives only here, never in info()."""

    cluster_id: str
    spec: dict[str, Any]
    auth: dict[str, str] | None = field(default=None, repr=False)
    state: str = "PENDING"
    state_message: str = "Starting the local preflight launch"
    start_time: int = field(default_factory=_now_ms)
    terminated_time: int | None = None
    termination_reason: dict[str, Any] | None = None
    container: str | None = None
    busy: bool = False  # a worker thread owns the launch
    cancel: threading.Event = field(default_factory=threading.Event)
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def image(self) -> str:
        return self.spec["docker_image"]["url"]

    def info(self) -> dict[str, Any]:
        """The clusters/get answer: the create body (password left out) + state."""
        info = json.loads(json.dumps(self.spec))
        auth = (info.get("docker_image") or {}).get("basic_auth")
        if isinstance(auth, dict):
            auth.pop("password", None)
        info.update(cluster_id=self.cluster_id, state=self.state, state_message=self.state_message,
                    start_time=self.start_time, creator_user_name="local", cluster_source="API",
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
        return info


def _new_cluster_id() -> str:
    """Shaped like Databricks' ids (MMDD-HHMMSS-xxxxxxxx); valid in a container name."""
    return time.strftime("%m%d-%H%M%S-") + secrets.token_hex(4)


def _validate_create(body: Any) -> dict[str, Any]:
    """The create body, or _ApiFailure(INVALID_PARAMETER_VALUE) saying what is wrong."""
    try:
        ClusterSpec.from_dict(body).validate()
    except SpecError as exc:
        raise _ApiFailure(400, "INVALID_PARAMETER_VALUE", str(exc)) from exc
    image = body.get("docker_image") or {}
    url = image.get("url") if isinstance(image, dict) else None
    if not url:
        raise _ApiFailure(400, "INVALID_PARAMETER_VALUE",
                          "The local preflight workspace launches custom containers only: "
                          "set docker_image.url")
    try:
        parse_reference(url)
    except ValueError as exc:
        raise _ApiFailure(400, "INVALID_PARAMETER_VALUE", f"docker_image.url: {exc}") from exc
    return body


def _runtime_of(spark_version: str | None) -> str | None:
    """The runtime line of a key, or None when it names none (the check then skips it)."""
    try:
        line = parse_runtime(spark_version)
    except ValueError:
        return None
    return str(line) if line else None


# -- uploaded files ------------------------------------------------------------------------


def _workspace_key(path: str) -> str:
    """Workspace paths are the same with or without the /Workspace prefix."""
    path = "/" + path.strip().lstrip("/")
    return path[len("/Workspace"):] or "/" if path.startswith("/Workspace/") else path


def _dbfs_key(path: str) -> str:
    path = path.strip()
    return "dbfs:/" + (path[len("dbfs:"):] if path.startswith("dbfs:") else path).lstrip("/")


def _b64(value: Any, what: str) -> bytes:
    try:
        return base64.b64decode(str(value or ""), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _ApiFailure(400, "INVALID_PARAMETER_VALUE", f"{what} is not valid base64") from exc


def _single_file_tar(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size, info.mode = len(data), 0o755
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class LocalWorkspaceServer:
    """The preflight workspace: an HTTP server on 127.0.0.1 and the clusters it launched.

    `docker_host` selects the engine (default: the one the Docker CLI would use).
    """

    def __init__(self, *, docker_host: str | None = None) -> None:
        self.token = secrets.token_urlsafe(32)
        self.docker_host = docker_host
        self._clusters: dict[str, _Cluster] = {}
        self._files: dict[str, bytes] = {}  # uploaded init scripts by canonical path
        self._lock = threading.RLock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.app = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        """`http://127.0.0.1:PORT`, what `Workspace(host=...)` takes."""
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def __repr__(self) -> str:
        return f"LocalWorkspaceServer({self.host})"

    def start(self) -> LocalWorkspaceServer:
        if self._thread is None:
            self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True,
                                            name="dcs-local-workspace")
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving (clusters keep their containers; a new server can adopt them)."""
        self._httpd.shutdown()
        self._httpd.server_close()

    # -- HTTP entry point ----------------------------------------------------------------

    def handle(self, method: str, target: str, headers: Any, body: bytes) -> tuple[int, Any]:
        """One request -> (status, JSON-able body or None). Never raises."""
        url = urlsplit(target)
        path = unquote(url.path)
        if path == "/.well-known/databricks-config":
            # The Databricks SDK's host-metadata probe: answered as a workspace does, so
            # making a Config for the local workspace logs no "failed to resolve" warning.
            return 200, {"workspace_id": "0"}
        if path.startswith("/.well-known/"):
            return 404, {"error_code": "NOT_FOUND", "message": "no host metadata on a local workspace"}
        if not self._authorized(headers.get("Authorization", "")):
            return 401, {"error_code": "UNAUTHENTICATED",
                         "message": "Missing or wrong bearer token for the local preflight workspace"}
        try:
            return self._route(method, path, url.query, body)
        except _ApiFailure as exc:
            return exc.status, {"error_code": exc.error_code, "message": exc.message}
        except Exception as exc:
            return 500, {"error_code": "INTERNAL_ERROR", "message": f"{type(exc).__name__}: {exc}"}

    def _authorized(self, header: str) -> bool:
        scheme, _, token = header.partition(" ")
        return scheme.lower() == "bearer" and secrets.compare_digest(token.strip(), self.token)

    def _route(self, method: str, path: str, query: str, body: bytes) -> tuple[int, Any]:
        if path.startswith("/api/2.0/fs/files/Volumes/") and method == "PUT":
            return self._put_volume_file(path[len("/api/2.0/fs/files"):], query, body)
        parts = path.strip("/").split("/")
        if len(parts) == 4 and parts[:2] in (["api", "2.0"], ["api", "2.1"]):
            params = self._params(method, query, body)
            if parts[2] == "clusters" and parts[3] in _CLUSTER_ROUTES:
                return 200, getattr(self, "_" + parts[3].replace("-", "_"))(params)
            if parts[1] == "2.0" and parts[2] == "workspace" and parts[3] in ("import", "mkdirs"):
                return 200, self._workspace_import(params) if parts[3] == "import" else {}
            if parts[1] == "2.0" and parts[2:] == ["dbfs", "put"]:
                return 200, self._dbfs_put(params)
        raise _ApiFailure(404, "ENDPOINT_NOT_FOUND",
                          f"{method} {path} is not served by the local preflight workspace")

    @staticmethod
    def _params(method: str, query: str, body: bytes) -> dict[str, Any]:
        params: dict[str, Any] = {k: v[-1] for k, v in parse_qs(query).items()}
        if body.strip():
            try:
                data = json.loads(body)
            except ValueError as exc:
                raise _ApiFailure(400, "MALFORMED_REQUEST", f"the request body is not JSON: {exc}") from exc
            if not isinstance(data, dict):
                raise _ApiFailure(400, "MALFORMED_REQUEST", "the request body must be a JSON object")
            params.update(data)
        return params

    # -- clusters API --------------------------------------------------------------------

    def _create(self, params: dict[str, Any]) -> dict[str, Any]:
        body = _validate_create(params)
        spec = json.loads(json.dumps(body))
        auth = (spec.get("docker_image") or {}).get("basic_auth")
        cluster = _Cluster(_new_cluster_id(), spec, auth=dict(auth) if isinstance(auth, dict) else None)
        if isinstance(auth, dict):
            auth.pop("password", None)  # kept in cluster.auth only
        with self._lock:
            self._clusters[cluster.cluster_id] = cluster
            cluster.busy = True
        self._event(cluster, "CREATING", {"user": "local"})
        threading.Thread(target=self._launch, args=(cluster,), daemon=True,
                         name=f"dcs-local-{cluster.cluster_id}").start()
        return {"cluster_id": cluster.cluster_id}

    def _get(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._cluster(params).info()

    def _list(self, params: dict[str, Any]) -> dict[str, Any]:
        self._adopt_all()
        with self._lock:
            clusters = sorted(self._clusters.values(), key=lambda c: -c.start_time)
            return {"clusters": [c.info() for c in clusters]}

    def _delete(self, params: dict[str, Any]) -> dict[str, Any]:
        cluster = self._cluster(params)
        with self._lock:
            if cluster.state in ("TERMINATED", "TERMINATING"):
                return {}
            cluster.cancel.set()
            previous, cluster.state = cluster.state, "TERMINATING"
            cluster.state_message = "Terminating at the user's request"
            if cluster.busy:  # the launch worker sees `cancel` at its next step and cleans up
                self._event(cluster, "TERMINATING", {"user": "local", "previous_state": previous})
                return {}
        try:
            api = self._connect()
        except _Terminate as exc:  # engine down: the driver container cannot be removed now
            with self._lock:
                cluster.state, cluster.state_message = previous, exc.message
                cluster.cancel.clear()
            raise _ApiFailure(500, "INTERNAL_ERROR",
                              f"{exc.message}; the cluster was not terminated") from exc
        self._event(cluster, "TERMINATING", {"user": "local", "previous_state": previous})
        try:
            self._finish(cluster, _Terminate("USER_REQUEST", "Terminated by the user", type_="SUCCESS",
                                             username="local"), api)
        finally:
            _close(api)
        return {}

    def _permanent_delete(self, params: dict[str, Any]) -> dict[str, Any]:
        self._delete(params)
        with self._lock:
            self._clusters.pop(str(params["cluster_id"]), None)
        return {}

    def _spark_versions(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"versions": [dict(v) for v in SPARK_VERSIONS]}

    def _list_node_types(self, params: dict[str, Any]) -> dict[str, Any]:
        try:
            memory_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
        except (ValueError, OSError, AttributeError):
            memory_mb = 0
        return {"node_types": [{
            "node_type_id": NODE_TYPE_ID, "instance_type_id": NODE_TYPE_ID,
            "description": "This machine's Docker engine (local preflight, no Spark)",
            "category": "Local", "num_cores": float(os.cpu_count() or 1), "memory_mb": memory_mb,
            "is_graviton": False, "is_deprecated": False, "is_hidden": False,
        }]}

    def _events(self, params: dict[str, Any]) -> dict[str, Any]:
        cluster = self._cluster(params)
        with self._lock:
            events = list(cluster.events)
        types = params.get("event_types")
        if types:
            events = [e for e in events if e["type"] in set(types)]
        start, end = params.get("start_time"), params.get("end_time")
        events = [e for e in events if (start is None or e["timestamp"] >= int(start))
                  and (end is None or e["timestamp"] <= int(end))]
        if str(params.get("order", "DESC")).upper() != "ASC":
            events.reverse()
        offset = int(params.get("offset") or 0)
        limit = min(int(params.get("limit") or params.get("page_size") or 50), 500)
        page = events[offset:offset + limit]
        answer: dict[str, Any] = {"events": page, "total_count": len(events)}
        if offset + limit < len(events):
            rest = {k: v for k, v in params.items() if k not in ("offset", "limit", "page_size")}
            answer["next_page"] = {**rest, "offset": offset + limit, "limit": limit}
        return answer

    def _cluster(self, params: dict[str, Any]) -> _Cluster:
        cluster_id = params.get("cluster_id")
        if not cluster_id or not isinstance(cluster_id, str):
            raise _ApiFailure(400, "INVALID_PARAMETER_VALUE", "cluster_id is required")
        with self._lock:
            cluster = self._clusters.get(cluster_id)
        return cluster or self._adopt(cluster_id)

    # -- uploads (init scripts) ----------------------------------------------------------

    def _store(self, key: str, data: bytes, overwrite: bool, exists_status: int) -> None:
        with self._lock:
            if key in self._files and not overwrite:
                code = "RESOURCE_ALREADY_EXISTS" if exists_status == 400 else "ALREADY_EXISTS"
                raise _ApiFailure(exists_status, code, f"{key} already exists; pass overwrite")
            self._files[key] = data

    def _workspace_import(self, params: dict[str, Any]) -> dict[str, Any]:
        path = params.get("path")
        if not isinstance(path, str) or not path.startswith("/"):
            raise _ApiFailure(400, "INVALID_PARAMETER_VALUE", "path must be an absolute workspace path")
        self._store(_workspace_key(path), _b64(params.get("content"), "content"),
                    bool(params.get("overwrite")), 400)
        return {}

    def _dbfs_put(self, params: dict[str, Any]) -> dict[str, Any]:
        path = params.get("path")
        if not isinstance(path, str) or not path.strip():
            raise _ApiFailure(400, "INVALID_PARAMETER_VALUE", "path is required")
        self._store(_dbfs_key(path), _b64(params.get("contents"), "contents"),
                    bool(params.get("overwrite")), 400)
        return {}

    def _put_volume_file(self, path: str, query: str, body: bytes) -> tuple[int, Any]:
        overwrite = parse_qs(query).get("overwrite", ["false"])[-1].lower() == "true"
        self._store(path, body, overwrite, 409)
        return 204, None

    # -- launch (worker thread) ----------------------------------------------------------

    def _launch(self, cluster: _Cluster) -> None:
        api = None
        try:
            api = self._connect()
            self._pull(api, cluster)
            self._check(api, cluster)
            self._start_driver(api, cluster)
            self._run_init_scripts(api, cluster)
            self._running(cluster)
        except _Terminate as exc:
            self._finish(cluster, exc, api)
        except Exception as exc:
            self._finish(cluster, _unexpected(exc), api)
        finally:
            _close(api)

    def _connect(self) -> Any:
        """A docker.APIClient for this server's engine, or _Terminate saying it is down."""
        import docker
        from docker.errors import DockerException

        try:
            if self.docker_host:
                return docker.APIClient(base_url=self.docker_host, version="auto",
                                        timeout=DOCKER_TIMEOUT_S)
            from .engine import connect

            return connect(timeout=DOCKER_TIMEOUT_S).api
        except (EngineError, DockerException) as exc:
            raise _engine_failure(exc) from exc

    def _step(self, cluster: _Cluster, message: str) -> None:
        """Enter a launch step; a terminate request since the last one ends the launch here."""
        with self._lock:
            if cluster.cancel.is_set():
                raise _Terminate("USER_REQUEST", "Terminated by the user", type_="SUCCESS",
                                 username="local")
            cluster.state_message = message

    def _pull(self, api: Any, cluster: _Cluster) -> None:
        from docker.errors import APIError

        self._step(cluster, f"Pulling {cluster.image}")
        auth = dict(cluster.auth or {})
        if is_secret_reference(auth.get("password")):
            auth["password"] = _resolve_secret(auth["password"])
        # `{}` rather than None: only basic_auth counts, as on a cluster, not this machine's
        # docker login.
        auth_config = {"username": auth.get("username", ""), "password": auth.get("password", "")} \
            if auth else {}
        try:
            for event in api.pull(cluster.image, stream=True, decode=True, auth_config=auth_config):
                if "error" in event or "errorDetail" in event:
                    detail = (event.get("errorDetail") or {}).get("message") or event.get("error")
                    raise _pull_failure(cluster.image, str(detail))
        except APIError as exc:
            raise _pull_failure(cluster.image, str(exc.explanation or exc)) from exc
        finally:
            cluster.auth = None  # the password is not needed after the pull

    def _check(self, api: Any, cluster: _Cluster) -> None:
        runtime = _runtime_of(cluster.spec.get("spark_version"))
        self._step(cluster, "Checking the image against the Databricks Container Services requirements"
                   + (f" for runtime {runtime}" if runtime else ""))
        try:
            report = check(cluster.image, runtime=runtime, client=api)
        except DcsError as exc:
            raise _Terminate("CONTAINER_LAUNCH_FAILURE", f"The image could not be started: {exc.message}",
                             type_="SERVICE_FAULT") from exc
        failed = [c for c in report.checks if not c.ok and c.severity == "error"]
        if not failed:
            return
        summary = "; ".join(f"{c.name}: {c.detail}" for c in failed)
        fixes = " | ".join(f"{c.name}: {c.fix}" for c in failed if c.fix)
        if any(c.name in OS_ITEMS for c in failed):
            raise _Terminate("DOCKER_INVALID_OS_EXCEPTION",
                             f"The image cannot run on Databricks' linux/amd64 hosts: {summary}",
                             fix=fixes)
        names = ", ".join(c.name for c in failed)
        raise _Terminate("CONTAINER_LAUNCH_FAILURE",
                         f"The image does not meet the Databricks Container Services requirements "
                         f"(missing or wrong: {names}): {summary}", fix=fixes)

    def _environment(self, cluster: _Cluster) -> dict[str, str]:
        spec = cluster.spec
        env = {str(k): str(v) for k, v in (spec.get("spark_env_vars") or {}).items()}
        env.update(DB_CLUSTER_ID=cluster.cluster_id, DB_CLUSTER_NAME=str(spec.get("cluster_name", "")),
                   DB_IS_DRIVER="TRUE", DB_IS_JOB_CLUSTER="FALSE",
                   DB_INSTANCE_TYPE=str(spec.get("node_type_id") or NODE_TYPE_ID))
        runtime = _runtime_of(spec.get("spark_version"))
        if runtime:
            env.setdefault("DATABRICKS_RUNTIME_VERSION", runtime)
        return env

    def _start_driver(self, api: Any, cluster: _Cluster) -> None:
        self._step(cluster, "Starting the driver container")
        name = f"dcs-local-{cluster.cluster_id}"
        spec = cluster.spec
        labels = {LABEL: cluster.cluster_id, "dcs_magic.cluster_name": str(spec.get("cluster_name", "")),
                  "dcs_magic.spark_version": str(spec.get("spark_version", "")),
                  "dcs_magic.image": cluster.image, "dcs_magic.start_time": str(cluster.start_time)}
        with self._lock:
            cluster.container = name  # set first: a failed create still gets cleaned up by name
        from docker.errors import APIError

        try:
            api.create_container(cluster.image, entrypoint=["/bin/sh", "-c", _IDLE], name=name,
                                 hostname="driver", user="0", environment=self._environment(cluster),
                                 labels=labels)
            api.start(name)
        except APIError as exc:
            raise _Terminate("DOCKER_CONTAINER_CREATION_EXCEPTION",
                             f"The driver container could not be started: {exc.explanation or exc}") from exc

    def _run_init_scripts(self, api: Any, cluster: _Cluster) -> None:
        scripts = cluster.spec.get("init_scripts") or []
        if not scripts:
            return
        self._event(cluster, "INIT_SCRIPTS_STARTED", {"reported_for_node": "driver"})
        results: list[dict[str, Any]] = []
        try:
            for index, item in enumerate(scripts, 1):
                kind, dest = next(iter(item.items()))
                where = _where(kind, dest["destination"])
                self._step(cluster, f"Running init script {index}/{len(scripts)} ({where})")
                result = self._run_init_script(api, cluster, index, kind, dest["destination"])
                results.append(result)
                if result["status"] != "SUCCEEDED":
                    raise _init_failure(index, where, result)
        finally:
            self._event(cluster, "INIT_SCRIPTS_FINISHED",
                        {"reported_for_node": "driver", "init_scripts": {"cluster": results}})

    def _run_init_script(self, api: Any, cluster: _Cluster, index: int, kind: str,
                         destination: str) -> dict[str, Any]:
        """Run one init script with bash in the driver; its result as an events entry."""
        result: dict[str, Any] = {kind: {"destination": destination}}
        path = self._place_init_script(api, cluster, index, kind, destination)
        if path is None:
            missing = ("does not exist in the image" if kind == "file" else
                       "was not uploaded to the local preflight workspace")
            return {**result, "status": "FAILED", "error": missing, "exit_code": None, "output": ""}
        from requests.exceptions import ReadTimeout

        started = time.monotonic()
        exec_id = api.exec_create(cluster.container, ["/bin/bash", path], user="0",
                                  environment=self._environment(cluster))["Id"]
        try:
            output = api.exec_start(exec_id, stream=False, demux=False) or b""
        except ReadTimeout as exc:
            raise _Terminate("INIT_SCRIPT_FAILURE", f"Init script {index} ({_where(kind, destination)}) did "
                             f"not finish within {DOCKER_TIMEOUT_S} s", instance_id="driver") from exc
        code = api.exec_inspect(exec_id).get("ExitCode")
        if code != 0:
            self._driver_alive(api, cluster, f"init script {index} ({_where(kind, destination)}) ran")
        text = output.decode("utf-8", "replace")[-OUTPUT_KEEP_CHARS:]
        return {**result, "status": "SUCCEEDED" if code == 0 else "FAILED", "exit_code": code,
                "execution_duration_seconds": round(time.monotonic() - started, 3), "output": text}

    def _driver_alive(self, api: Any, cluster: _Cluster, while_: str) -> None:
        """A script killed with the container is not the script's fault: say what happened."""
        from docker.errors import NotFound

        try:
            running = api.inspect_container(cluster.container)["State"].get("Running")
        except NotFound:
            running = False
        if not running:
            raise _Terminate("CONTAINER_LAUNCH_FAILURE", f"The driver container {cluster.container} "
                             f"stopped or was removed outside dcs-magic while {while_}",
                             type_="SERVICE_FAULT")

    def _place_init_script(self, api: Any, cluster: _Cluster, index: int, kind: str,
                           destination: str) -> str | None:
        """The script's path inside the driver (uploaded ones are copied in); None if missing."""
        if kind == "file":
            path = destination[len("file:"):] if destination.startswith("file:") else destination
            exec_id = api.exec_create(cluster.container, ["/bin/sh", "-c", '[ -f "$1" ]', "sh", path],
                                      user="0")["Id"]
            api.exec_start(exec_id)
            return path if api.exec_inspect(exec_id).get("ExitCode") == 0 else None
        key = {"workspace": _workspace_key, "volumes": lambda p: p.strip(),
               "dbfs": _dbfs_key}.get(kind, lambda p: None)(destination)
        if key is None:
            raise _Terminate("INIT_SCRIPT_FAILURE",
                             f"Init script {index} ({_where(kind, destination)}): {kind} init scripts cannot "
                             "be fetched by the local preflight workspace; upload it to /Workspace, /Volumes "
                             "or dbfs:/ of the local workspace (%%init_script NAME --upload DEST --local)")
        with self._lock:
            data = self._files.get(key)
        if data is None:
            return None
        name = f"{index}-{os.path.basename(key) or 'init.sh'}"
        api.exec_start(api.exec_create(cluster.container, ["mkdir", "-p", _INIT_DIR], user="0")["Id"])
        api.put_archive(cluster.container, _INIT_DIR, _single_file_tar(name, data))
        return f"{_INIT_DIR}/{name}"

    def _running(self, cluster: _Cluster) -> None:
        with self._lock:  # with _step's cancel check: a terminate request cannot slip between
            self._step(cluster, f"Local preflight: driver container {cluster.container} is running "
                       "(image pulled and checked, init scripts run; no Spark)")
            cluster.state = "RUNNING"
            cluster.busy = False
        self._event(cluster, "RUNNING", {"current_num_workers": 0, "target_num_workers": 0})

    def _finish(self, cluster: _Cluster, reason: _Terminate, api: Any) -> None:
        """Remove the driver container (if any) and mark the cluster TERMINATED."""
        removed = _remove_container(api, cluster.container) if api is not None else False
        with self._lock:
            cluster.auth = None
            cluster.busy = False
            cluster.state = "TERMINATED"
            cluster.state_message = reason.message
            cluster.terminated_time = _now_ms()
            cluster.termination_reason = {"code": reason.code, "type": reason.type,
                                          "parameters": dict(reason.parameters)}
            if removed:
                cluster.container = None
        self._event(cluster, "TERMINATED", {"reason": cluster.termination_reason})

    def _event(self, cluster: _Cluster, type_: str, details: dict[str, Any]) -> None:
        with self._lock:
            timestamp = max(_now_ms(), cluster.events[-1]["timestamp"] if cluster.events else 0)
            cluster.events.append({"cluster_id": cluster.cluster_id, "timestamp": timestamp,
                                   "type": type_, "details": details})

    # -- clusters of an earlier process (found through container labels) ----------------

    def _adopt(self, cluster_id: str) -> _Cluster:
        found = self._running_drivers({"label": f"{LABEL}={cluster_id}"})
        if not found:
            raise _not_found(cluster_id)
        return found[0]

    def _adopt_all(self) -> None:
        try:
            self._running_drivers({"label": LABEL})
        except _ApiFailure:
            pass

    def _running_drivers(self, filters: dict[str, str]) -> list[_Cluster]:
        """Register running driver containers this server does not know yet."""
        api = None
        try:
            api = self._connect()
            containers = api.containers(filters={**filters, "status": "running"})
        except Exception as exc:
            raise _ApiFailure(404, "RESOURCE_DOES_NOT_EXIST",
                              f"Cluster not known to this local workspace ({exc})") from exc
        finally:
            _close(api)
        adopted = []
        for container in containers:
            labels = container.get("Labels") or {}
            cluster_id = labels.get(LABEL, "")
            with self._lock:
                cluster = self._clusters.get(cluster_id)
                if cluster is None:
                    cluster = _Cluster(cluster_id, {
                        "cluster_name": labels.get("dcs_magic.cluster_name", ""),
                        "spark_version": labels.get("dcs_magic.spark_version", ""),
                        "docker_image": {"url": labels.get("dcs_magic.image", container.get("Image"))},
                        "num_workers": 0,
                    }, state="RUNNING", container=(container.get("Names") or ["/"])[0].lstrip("/"),
                        start_time=int(labels.get("dcs_magic.start_time") or _now_ms()),
                        state_message="Local preflight: driver container found running")
                    self._clusters[cluster_id] = cluster
            adopted.append(cluster)
        return adopted


def _unexpected(exc: BaseException) -> _Terminate:
    """A lost engine connection mid-launch, or else a failure nobody foresaw (named as such)."""
    from docker.errors import DockerException
    from requests.exceptions import RequestException

    if isinstance(exc, (DockerException, RequestException)):
        return _engine_failure(exc)
    return _Terminate("CONTAINER_LAUNCH_FAILURE", f"The local launch failed unexpectedly "
                      f"({type(exc).__name__}: {_short(exc)}); please report this dcs-magic bug",
                      type_="SERVICE_FAULT")


def _engine_failure(exc: BaseException) -> _Terminate:
    return _Terminate("CONTAINER_LAUNCH_FAILURE",
                      f"The local Docker engine is not reachable or failed ({_short(exc)}); start Docker, "
                      "then create the cluster again", type_="SERVICE_FAULT")


def _short(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc)
    return text.splitlines()[0][:300] if text else type(exc).__name__


_DENIED = ("unauthorized", "authentication required", "denied", "no basic auth credentials",
           "incorrect username or password", "401")


def _pull_failure(image: str, detail: str) -> _Terminate:
    if any(word in detail.lower() for word in _DENIED):
        return _Terminate("IMAGE_PULL_PERMISSION_DENIED",
                          f"The registry refused to let the cluster pull {image}: {detail}. Check "
                          "docker_image.basic_auth (username and password or token)")
    return _Terminate("DOCKER_IMAGE_PULL_FAILURE",
                      f"The image {image} could not be pulled: {detail}. Check that it was pushed "
                      "under this name and that the registry is reachable")


def _where(kind: str, destination: str) -> str:
    """`file:/x`, `dbfs:/x`, `workspace:/Users/...`: the script as users wrote it, kind first."""
    return destination if destination.startswith(f"{kind}:") else f"{kind}:{destination}"


def _init_failure(index: int, where: str, result: dict[str, Any]) -> _Terminate:
    if result["exit_code"] is None:
        return _Terminate("INIT_SCRIPT_FAILURE", f"Init script {index} ({where}) {result['error']}",
                          instance_id="driver")
    tail = "\n".join(result["output"].rstrip().splitlines()[-5:])
    return _Terminate("INIT_SCRIPT_FAILURE",
                      f"Init script {index} ({where}) exited with code {result['exit_code']}"
                      + (f"; last output:\n{tail}" if tail else ""), instance_id="driver",
                      exit_code=str(result["exit_code"]))


def _remove_container(api: Any, name: str | None) -> bool:
    if not name:
        return False
    from docker.errors import DockerException, NotFound
    from requests.exceptions import RequestException

    try:
        api.remove_container(name, force=True, v=True)
        return True
    except NotFound:
        return True
    except (DockerException, RequestException):
        return False


def _close(api: Any) -> None:
    if api is not None:
        try:
            api.close()
        except Exception:
            pass


class _Handler(BaseHTTPRequestHandler):
    """Thin HTTP adapter: read the body, call LocalWorkspaceServer.handle, write JSON."""

    protocol_version = "HTTP/1.1"
    server_version = "dcs-magic-local"

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        status, payload = self.server.app.handle(self.command, self.path, self.headers, body)  # type: ignore[attr-defined]
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        if data:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data and self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: notebooks must not fill with access logs."""


_SERVER: LocalWorkspaceServer | None = None
_SERVER_LOCK = threading.Lock()


def ensure_server() -> tuple[str, str]:
    """Start this process's local preflight workspace once; return (host, token)."""
    global _SERVER
    with _SERVER_LOCK:
        if _SERVER is None:
            _SERVER = LocalWorkspaceServer().start()
        return _SERVER.host, _SERVER.token
