"""The preflight workspace's HTTP API: the Clusters and Jobs API subset dcs-magic uses, on 127.0.0.1.

The route table in `LocalWorkspaceServer.__init__` is the whole surface, one explicit entry
per (method, path); handlers take a `Request` and answer `(status, body)`. Every request
needs a Host header naming this server (`http.JsonApiServer.check_host`: DNS rebinding) and
`Authorization: Bearer <token>`, checked from the headers before the body is read
(`http.JsonApiServer.admit`), except GETs of the read-only HTML status pages
(`/clusters/<id>`, `/compute/clusters/<id>`, `/runs/<id>`, see pages.py), which a browser
opens from a run_page_url or the launch form. State lives in a `store.Store`; launches run
in the `launcher.Launcher`, a run's task in its job cluster (runs.py). Clusters whose
driver container still runs are found again by a new server (`get`, `list`, `delete`)
through the container's labels.

Jobs: `runs/submit` (one task on a `new_cluster`, read with `jobs.read_submit`: the same
validation as clusters/create), `runs/get`, `runs/get-output` (of the task run),
`runs/cancel`, under /api/2.1 and /api/2.2. Also `workspace-conf` (enableDcs is "true")
and `preview/scim/v2/Me` (the OS user running the server).

Files (uploads of init scripts and task files; the cluster logs a `cluster_log_conf` has
delivered, see logs.py):
    POST workspace/import, POST dbfs/put, PUT fs/files/Volumes/...    store a file
    GET fs/files/Volumes/... (Range: bytes=N-M, N-, -N), HEAD           its bytes / headers
    GET fs/directories/Volumes/... (HEAD: exists?)                      immediate children
    GET dbfs/list, dbfs/get-status, dbfs/read (offset, length <= 1 MiB, base64)
Missing: 404 NOT_FOUND (Files API), 404 RESOURCE_DOES_NOT_EXIST (DBFS). Create and
runs/submit validate `cluster_log_conf` (exactly one of volumes, dbfs, s3; a volumes
destination inside a volume); clusters/get carries `cluster_log_status` once a delivery was
attempted.
"""

from __future__ import annotations

import base64
import binascii
import getpass
import json
import secrets
import threading
from collections.abc import Callable
from email.utils import formatdate
from pathlib import Path
from typing import Any

from ..adapters.secret_store import SecretStore, StoreFailure
from ..errors import SpecError, UsageError
from ..model import runtime
from ..model.imageref import parse_reference
from ..model.jobs import read_submit
from ..model.spec import ClusterSpec, dcs_runtimes, node_type_problem
from ..settings import local_state_dir
from . import ended, pages
from .http import Answer, ApiFailure, JsonApiServer, Request
from .launcher import LABEL, Launcher, Terminate
from .node_types import node_types
from .runs import CANCEL_MESSAGE, RunTask
from .store import Cluster, Entry, Run, Store, dbfs_key, new_cluster_id, workspace_key

__all__ = ["SPARK_VERSIONS", "LocalWorkspaceServer"]

# What a workspace offers today: the supported lines dcs-magic knows (dcs_magic.model.runtime).
SPARK_VERSIONS = [{"key": item["key"], "name": f"{item['name']} (local preflight)"}
                  for item in runtime.spark_versions()]


WORKSPACE_CONF = {"enableDcs": "true"}
"""The workspace settings a local workspace answers (Container Services is on)."""
# GET pages a browser opens without the token: read-only, and showing no secret (pages.py).
_PUBLIC_PAGES = ("/clusters/", "/compute/clusters/", "/runs/")


def _not_found(cluster_id: Any) -> ApiFailure:
    return ApiFailure(404, "RESOURCE_DOES_NOT_EXIST", f"Cluster {cluster_id} does not exist")


def _validate_create(body: Any) -> dict[str, Any]:
    """The create body, or ApiFailure(INVALID_PARAMETER_VALUE) saying what is wrong: the rules
    of the Clusters API for a container cluster (ClusterSpec.validate: ML runtimes, standard
    access modes, Graviton, ...), then what this workspace offers (its runtime keys and node
    types, by the one rule `node_type_problem`), whichever client sent it."""
    try:
        ClusterSpec.from_dict(body).validate()
    except SpecError as exc:
        raise ApiFailure(400, "INVALID_PARAMETER_VALUE", str(exc)) from exc
    image = body.get("docker_image") or {}
    url = image.get("url") if isinstance(image, dict) else None
    if not url:
        raise ApiFailure(400, "INVALID_PARAMETER_VALUE",
                         "The local preflight workspace launches custom containers only: "
                         "set docker_image.url")
    try:
        parse_reference(url)
    except ValueError as exc:
        raise ApiFailure(400, "INVALID_PARAMETER_VALUE", f"docker_image.url: {exc}") from exc
    key = body.get("spark_version")
    if key not in {v["key"] for v in SPARK_VERSIONS}:
        offered = ", ".join(v["key"] for v in dcs_runtimes(SPARK_VERSIONS)[:4])
        raise ApiFailure(400, "INVALID_PARAMETER_VALUE",
                         f"Invalid spark version {key}. This workspace offers e.g. {offered} "
                         "(GET /api/2.1/clusters/spark-versions lists them)")
    offered_nodes = node_types()
    for field_name in ("node_type_id", "driver_node_type_id"):
        node = body.get(field_name)
        problem = node_type_problem(node, offered_nodes) if isinstance(node, str) and node else None
        if problem:
            raise ApiFailure(400, "INVALID_PARAMETER_VALUE", f"{field_name}: {problem}")
    return dict(body)


MAX_TIMEOUT_S = 2**31 - 1
"""The largest timeout_seconds (the Jobs API's int32; threading's timers take it)."""


def _timeout(body: dict[str, Any], task: dict[str, Any]) -> int:
    """The run's timeout in seconds (the task's or the body's timeout_seconds; 0: none)."""
    values = []
    for where in (task, body):
        raw = where.get("timeout_seconds") or 0
        try:
            seconds = int(raw)
        except (TypeError, ValueError, OverflowError) as exc:  # also "soon", NaN, Infinity
            raise ApiFailure(400, "INVALID_PARAMETER_VALUE",
                             f"timeout_seconds must be a whole number of seconds, not {str(raw)[:40]!r}") from exc
        if seconds > MAX_TIMEOUT_S:
            raise ApiFailure(400, "INVALID_PARAMETER_VALUE",
                             f"timeout_seconds must be at most {MAX_TIMEOUT_S} (an int32), not {str(raw)[:40]}")
        if seconds > 0:
            values.append(seconds)
    return min(values) if values else 0


def _b64(value: Any, what: str) -> bytes:
    try:
        return base64.b64decode(str(value or ""), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ApiFailure(400, "INVALID_PARAMETER_VALUE", f"{what} is not valid base64") from exc


DBFS_READ_DEFAULT = 512 * 1024
DBFS_READ_MAX = 1024 * 1024
"""dbfs/read's default and largest `length`."""


def _dbfs_info(entry: Entry) -> dict[str, Any]:
    """A DBFS FileInfo: the path as DBFS shows it (absolute, without `dbfs:`)."""
    return {"path": entry.key.removeprefix("dbfs:") or "/", "is_dir": entry.is_dir,
            "file_size": entry.size, "modification_time": entry.mtime_ms}


def _byte_range(header: str, size: int) -> tuple[int, int] | None:
    """(first, last) byte of a single `Range: bytes=...` header, None for none (or one this
    server does not read: several ranges, other units): the whole file is then answered."""
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash or not (first.isdigit() or last.isdigit()):
        return None
    if not first:  # the last N bytes
        return max(0, size - int(last)), size - 1
    end = int(last) if last.isdigit() else size - 1
    return int(first), min(end, size - 1)


_HOST_METADATA = "/.well-known/databricks-config"


def _required(params: dict[str, Any], name: str) -> str:
    value = params.get(name)
    if not isinstance(value, str) or not value:
        raise ApiFailure(400, "INVALID_PARAMETER_VALUE", f"{name} is required")
    return value

_DEFAULT = object()  # records: the user's state directory

class LocalWorkspaceServer(JsonApiServer):
    """The preflight workspace: an HTTP server on 127.0.0.1 and the clusters it launched.

    `docker_host` selects the engine (default: the one the Docker CLI would use).
    """

    def __init__(self, *, docker_host: str | None = None, minute_s: float = 60.0,
                 clusters_end_with_process: bool = False, records: Path | None | object = _DEFAULT,
                 secrets_file: Path | None = None, **limits: Any) -> None:
        self.token = secrets.token_urlsafe(32)
        self.docker_host = docker_host
        self.store = Store()
        self.launcher = Launcher(self.store, docker_host=docker_host, minute_s=minute_s)
        self.launcher.clusters_end_with_process = clusters_end_with_process
        # Ended clusters' records (ended.py): shared by every process of this user, so a later
        # `dcs why --local` finds a cluster an earlier `dcs launch --local` ran.
        self.launcher.records = local_state_dir() if records is _DEFAULT else records if isinstance(records, Path) else None
        # Secret scopes (secret_store.py): one 0600 file every process of this user shares, so a
        # `dcs secrets put --local` is seen by the next `dcs launch --local` or kernel.
        self.secrets = SecretStore(secrets_file)
        self.launcher.secrets = self.secrets
        self.swept = threading.Event()  # set once the start's sweep of leftovers is done
        routes: dict[tuple[str, str], Callable[[Request], Answer]] = {}
        for version in ("2.0", "2.1"):
            clusters = f"/api/{version}/clusters"
            routes.update({
                ("POST", f"{clusters}/create"): self._create,
                ("GET", f"{clusters}/get"): self._get,
                ("POST", f"{clusters}/delete"): self._delete,
                ("POST", f"{clusters}/permanent-delete"): self._permanent_delete,
                ("GET", f"{clusters}/list"): self._list,
                ("GET", f"{clusters}/spark-versions"): self._spark_versions,
                ("GET", f"{clusters}/list-node-types"): self._list_node_types,
                ("POST", f"{clusters}/events"): self._events,
            })
        routes.update({
            ("POST", "/api/2.0/workspace/import"): self._workspace_import,
            ("POST", "/api/2.0/workspace/mkdirs"): lambda request: (200, {}),
            ("POST", "/api/2.0/dbfs/put"): self._dbfs_put,
            ("PUT", "/api/2.0/fs/files/Volumes/*"): self._put_volume_file,
            ("PUT", "/api/2.0/fs/directories/Volumes/*"): lambda request: (204, None),
            # Reading files back (uploads, and the cluster logs cluster_log_conf delivers).
            ("GET", "/api/2.0/fs/files/Volumes/*"): self._get_volume_file,
            ("HEAD", "/api/2.0/fs/files/Volumes/*"): self._get_volume_file,
            ("GET", "/api/2.0/fs/directories/Volumes/*"): self._list_volume_directory,
            ("HEAD", "/api/2.0/fs/directories/Volumes/*"): self._volume_directory_metadata,
            ("GET", "/api/2.0/dbfs/list"): self._dbfs_list,
            ("GET", "/api/2.0/dbfs/get-status"): self._dbfs_get_status,
            ("GET", "/api/2.0/dbfs/read"): self._dbfs_read,
            ("GET", "/api/2.0/workspace-conf"): self._workspace_conf,
            # Secrets: names and times only; a value is never answered (secrets/get is refused).
            ("POST", "/api/2.0/secrets/scopes/create"): self._create_scope,
            ("GET", "/api/2.0/secrets/scopes/list"): self._list_scopes,
            ("POST", "/api/2.0/secrets/scopes/delete"): self._delete_scope,
            ("POST", "/api/2.0/secrets/put"): self._put_secret,
            ("GET", "/api/2.0/secrets/list"): self._list_secrets,
            ("POST", "/api/2.0/secrets/delete"): self._delete_secret,
            ("GET", "/api/2.0/secrets/get"): self._get_secret,
            ("GET", "/api/2.0/preview/scim/v2/Me"): self._me,
            ("GET", "/clusters/*"): self._cluster_page,
            ("GET", "/compute/clusters/*"): self._cluster_page,
            ("GET", "/runs/*"): self._run_page,
            # The Databricks SDK's host-metadata probe, answered as a workspace does, so making
            # a Config for the local workspace logs no "failed to resolve" warning.
            ("GET", _HOST_METADATA): lambda request: (200, {"workspace_id": "0"}),
        })
        for version in ("2.1", "2.2"):
            runs = f"/api/{version}/jobs/runs"
            routes.update({
                ("POST", f"{runs}/submit"): self._submit,
                ("GET", f"{runs}/get"): self._get_run,
                ("GET", f"{runs}/get-output"): self._get_output,
                ("POST", f"{runs}/cancel"): self._cancel_run,
            })
        super().__init__(routes, name="the local preflight workspace", **limits)

    def __repr__(self) -> str:
        return f"LocalWorkspaceServer({self.host})"

    def start(self) -> LocalWorkspaceServer:
        """Serve; meanwhile (in the background) clean up what killed processes left: probe
        containers of interrupted checks, half-launched drivers (`Launcher.sweep`)."""
        super().start()
        threading.Thread(target=self._sweep, daemon=True, name="dcs-local-sweep").start()
        return self

    def _sweep(self) -> None:
        try:
            self.launcher.sweep()
        except Terminate:
            pass  # no engine: nothing it holds can be cleaned up now
        finally:
            self.swept.set()

    def stop(self) -> None:
        """Stop serving (clusters keep their containers; a new server can adopt them)."""
        super().stop()

    # -- admission (before the body is read) ---------------------------------------------

    def admit(self, request: Request) -> None:
        if request.path == _HOST_METADATA:
            return  # the SDK's probe carries no credentials; answered from the route table
        if request.path.startswith("/.well-known/"):
            raise ApiFailure(404, "NOT_FOUND", "no host metadata on a local workspace")
        if request.method == "GET" and request.path.startswith(_PUBLIC_PAGES):
            return  # a status page: read-only, no secrets (pages.py)
        scheme, _, token = str(request.headers.get("Authorization", "")).partition(" ")
        # As bytes: compare_digest refuses str with non-ASCII characters (a header is latin-1).
        given = token.strip().encode("utf-8", "surrogateescape")
        if not (scheme.lower() == "bearer" and secrets.compare_digest(given, self.token.encode("ascii"))):
            raise ApiFailure(401, "UNAUTHENTICATED",
                             "Missing or wrong bearer token for the local preflight workspace")

    # -- clusters API --------------------------------------------------------------------

    def _create(self, request: Request) -> Answer:
        spec = json.loads(json.dumps(_validate_create(request.params())))
        auth = (spec.get("docker_image") or {}).get("basic_auth")
        cluster = Cluster(new_cluster_id(), spec, auth=dict(auth) if isinstance(auth, dict) else None,
                          busy=True)
        if isinstance(auth, dict):
            auth.pop("password", None)  # kept in cluster.auth only
        self.store.add(cluster)
        self.store.event(cluster, "CREATING", {"user": "local"})
        self.launcher.start(cluster)
        return 200, {"cluster_id": cluster.cluster_id}

    def _get(self, request: Request) -> Answer:
        return 200, self._cluster(request.params()).info()

    def _list(self, request: Request) -> Answer:
        try:
            self.launcher.adopt({"label": LABEL})
        except Terminate:
            pass  # engine down: the clusters this server knows are still listed
        return 200, {"clusters": [c.info() for c in self.store.clusters()]}

    def _delete(self, request: Request) -> Answer:
        cluster = self._cluster(request.params())
        try:
            self.launcher.terminate(cluster)
        except Terminate as exc:
            raise ApiFailure(500, "INTERNAL_ERROR", f"{exc.message}; the cluster was not terminated") from exc
        return 200, {}

    def _permanent_delete(self, request: Request) -> Answer:
        params = request.params()
        self._delete(request)
        self.store.remove(str(params["cluster_id"]))
        if self.launcher.records is not None:
            ended.forget(self.launcher.records, str(params["cluster_id"]))
        return 200, {}

    def _spark_versions(self, request: Request) -> Answer:
        return 200, {"versions": [dict(v) for v in SPARK_VERSIONS]}

    def _list_node_types(self, request: Request) -> Answer:
        return 200, {"node_types": node_types()}

    def _events(self, request: Request) -> Answer:
        params = request.params()
        events = self.store.events(self._cluster(params))
        types = params.get("event_types")
        if types:
            events = [e for e in events if e["type"] in set(types)]
        try:
            start, end = (None if params.get(k) is None else int(params[k]) for k in ("start_time", "end_time"))
            offset = int(params.get("offset") or 0)
            limit = min(int(params.get("limit") or params.get("page_size") or 50), 500)
        except (TypeError, ValueError, OverflowError) as exc:
            raise ApiFailure(400, "INVALID_PARAMETER_VALUE",
                             "start_time, end_time, offset and limit must be whole numbers") from exc
        events = [e for e in events if (start is None or e["timestamp"] >= start)
                  and (end is None or e["timestamp"] <= end)]
        if str(params.get("order", "DESC")).upper() != "ASC":
            events.reverse()
        page = events[offset:offset + limit]
        answer: dict[str, Any] = {"events": page, "total_count": len(events)}
        if offset + limit < len(events):
            rest = {k: v for k, v in params.items() if k not in ("offset", "limit", "page_size")}
            answer["next_page"] = {**rest, "offset": offset + limit, "limit": limit}
        return 200, answer

    def _cluster(self, params: dict[str, Any]) -> Cluster:
        cluster_id = params.get("cluster_id")
        if not cluster_id or not isinstance(cluster_id, str):
            raise ApiFailure(400, "INVALID_PARAMETER_VALUE", "cluster_id is required")
        cluster = self.store.get(cluster_id)
        if cluster is not None:
            return cluster
        try:
            found = self.launcher.adopt({"label": f"{LABEL}={cluster_id}"})
        except Terminate as exc:
            raise ApiFailure(404, "RESOURCE_DOES_NOT_EXIST",
                             f"Cluster {cluster_id} is not known to this local workspace ({exc.message})") from exc
        if found:
            return found[0]
        kept = self.launcher.recorded(cluster_id)
        if kept is None:
            raise _not_found(cluster_id)
        return kept

    # -- uploads (init scripts) ----------------------------------------------------------

    def _store_file(self, key: str, data: bytes, overwrite: bool, exists_status: int) -> None:
        if not self.store.put_file(key, data, overwrite=overwrite):
            code = "RESOURCE_ALREADY_EXISTS" if exists_status == 400 else "ALREADY_EXISTS"
            raise ApiFailure(exists_status, code, f"{key} already exists; pass overwrite")

    def _workspace_import(self, request: Request) -> Answer:
        params = request.params()
        path = params.get("path")
        if not isinstance(path, str) or not path.startswith("/"):
            raise ApiFailure(400, "INVALID_PARAMETER_VALUE", "path must be an absolute workspace path")
        self._store_file(workspace_key(path), _b64(params.get("content"), "content"),
                         bool(params.get("overwrite")), 400)
        return 200, {}

    def _dbfs_put(self, request: Request) -> Answer:
        params = request.params()
        path = params.get("path")
        if not isinstance(path, str) or not path.strip():
            raise ApiFailure(400, "INVALID_PARAMETER_VALUE", "path is required")
        self._store_file(dbfs_key(path), _b64(params.get("contents"), "contents"),
                         bool(params.get("overwrite")), 400)
        return 200, {}

    def _put_volume_file(self, request: Request) -> Answer:
        path = request.path[len("/api/2.0/fs/files"):]
        overwrite = request.query.get("overwrite", ["false"])[-1].lower() == "true"
        self._store_file(path, request.body, overwrite, 409)
        return 204, None

    # -- reading files: the Files API (volumes) and DBFS ---------------------------------

    def _get_volume_file(self, request: Request) -> Answer:
        """The file's bytes (HEAD: its headers only); `Range: bytes=N-M`, `bytes=N-`, `bytes=-N`
        answer 206 with that part."""
        path = request.path[len("/api/2.0/fs/files"):]
        with self.store.lock:
            data, entry = self.store.file(path), self.store.stat(path)
        if data is None or entry is None:
            raise ApiFailure(404, "NOT_FOUND", f"The file {path} does not exist")
        headers = {"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes",
                   "Last-Modified": formatdate(entry.mtime_ms / 1000, usegmt=True)}
        wanted = _byte_range(str(request.headers.get("Range") or ""), len(data))
        if wanted is None:
            return 200, data, headers
        start, end = wanted
        if start >= len(data) or start > end:
            return 416, None, {**headers, "Content-Range": f"bytes */{len(data)}"}
        return 206, data[start:end + 1], {**headers, "Content-Range": f"bytes {start}-{end}/{len(data)}"}

    def _volume_directory(self, request: Request) -> tuple[str, list[Entry]]:
        path = request.path[len("/api/2.0/fs/directories"):]
        children = self.store.children(path)
        if children is None:
            raise ApiFailure(404, "NOT_FOUND", f"The directory {path} does not exist")
        return path, children

    def _list_volume_directory(self, request: Request) -> Answer:
        """The directory's immediate children (directories implied by the files below them)."""
        _path, children = self._volume_directory(request)
        return 200, {"contents": [
            {"path": e.key + ("/" if e.is_dir else ""), "is_directory": e.is_dir, "name": e.name,
             **({} if e.is_dir else {"file_size": e.size, "last_modified": e.mtime_ms})} for e in children]}

    def _volume_directory_metadata(self, request: Request) -> Answer:
        self._volume_directory(request)
        return 200, None

    def _dbfs_entry(self, params: dict[str, Any]) -> Entry:
        path = params.get("path")
        if not isinstance(path, str) or not path.strip():
            raise ApiFailure(400, "INVALID_PARAMETER_VALUE", "path is required (e.g. dbfs:/cluster-logs)")
        entry = self.store.stat(dbfs_key(path))
        if entry is None:
            raise ApiFailure(404, "RESOURCE_DOES_NOT_EXIST", f"No file or directory exists on path {path.strip()}.")
        return entry

    def _dbfs_list(self, request: Request) -> Answer:
        """A directory's immediate children; a file lists as itself (as DBFS answers)."""
        entry = self._dbfs_entry(request.params())
        children = self.store.children(entry.key) if entry.is_dir else [entry]
        return 200, {"files": [_dbfs_info(e) for e in children or []]}

    def _dbfs_get_status(self, request: Request) -> Answer:
        return 200, _dbfs_info(self._dbfs_entry(request.params()))

    def _dbfs_read(self, request: Request) -> Answer:
        """`length` bytes (default 0.5 MiB, at most 1 MiB) from `offset`, base64."""
        params = request.params()
        try:
            offset = int(params.get("offset") or 0)
            raw = params.get("length")
            length = DBFS_READ_DEFAULT if raw in (None, "") else int(raw)
        except (TypeError, ValueError) as exc:
            raise ApiFailure(400, "INVALID_PARAMETER_VALUE", "offset and length must be numbers") from exc
        if offset < 0 or length < 0:
            raise ApiFailure(400, "INVALID_PARAMETER_VALUE", "offset and length must not be negative")
        if length > DBFS_READ_MAX:
            raise ApiFailure(400, "MAX_READ_SIZE_EXCEEDED",
                             f"Cannot read more than {DBFS_READ_MAX} bytes at once (length {length})")
        entry = self._dbfs_entry(params)
        if entry.is_dir:
            raise ApiFailure(400, "INVALID_PARAMETER_VALUE", f"{params['path']} is a directory, not a file")
        data = (self.store.file(entry.key) or b"")[offset:offset + length]
        return 200, {"bytes_read": len(data), "data": base64.b64encode(data).decode("ascii")}

    # -- secrets (secret_store.py) ----------------------------------------------------------------

    def _secrets_call(self, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except StoreFailure as exc:
            raise ApiFailure(exc.status, exc.error_code, exc.message) from None
        except OSError as exc:  # the state folder cannot be written: say where, never a value
            raise ApiFailure(500, "INTERNAL_ERROR", f"the local secret store {self.secrets.path} cannot be used: "
                             f"{exc.strerror or type(exc).__name__}") from None

    def _create_scope(self, request: Request) -> Answer:
        params = request.params()
        backend = str(params.get("scope_backend_type") or "DATABRICKS").upper()
        if backend != "DATABRICKS":
            raise ApiFailure(400, "INVALID_PARAMETER_VALUE",
                             f"the local preflight workspace keeps DATABRICKS scopes only, not {backend[:40]}")
        scope = _required(params, "scope")
        self._secrets_call(lambda: self.secrets.create_scope(scope))
        return 200, {}

    def _list_scopes(self, request: Request) -> Answer:
        names = self._secrets_call(self.secrets.scopes)
        return 200, {"scopes": [{"name": name, "backend_type": "DATABRICKS"} for name in names]}

    def _delete_scope(self, request: Request) -> Answer:
        scope = _required(request.params(), "scope")
        self._secrets_call(lambda: self.secrets.delete_scope(scope))
        return 200, {}

    def _put_secret(self, request: Request) -> Answer:
        params = request.params()
        scope, key = _required(params, "scope"), _required(params, "key")
        string_value, bytes_value = params.get("string_value"), params.get("bytes_value")
        if (string_value is None) == (bytes_value is None):
            raise ApiFailure(400, "INVALID_PARAMETER_VALUE", "exactly one of string_value and bytes_value must be given")
        if string_value is not None:
            if not isinstance(string_value, str):
                raise ApiFailure(400, "INVALID_PARAMETER_VALUE", "string_value must be a string")
            value = string_value.encode("utf-8")
        else:
            value = _b64(bytes_value, "bytes_value")
        del params, string_value, bytes_value
        self._secrets_call(lambda: self.secrets.put(scope, key, value))
        return 200, {}

    def _list_secrets(self, request: Request) -> Answer:
        scope = _required(request.params(), "scope")
        found = self._secrets_call(lambda: self.secrets.list(scope))
        return 200, {"secrets": [{"key": s.key, "last_updated_timestamp": s.last_updated_timestamp} for s in found]}

    def _delete_secret(self, request: Request) -> Answer:
        params = request.params()
        scope, key = _required(params, "scope"), _required(params, "key")
        self._secrets_call(lambda: self.secrets.delete(scope, key))
        return 200, {}

    def _get_secret(self, request: Request) -> Answer:
        """As Databricks answers a caller outside a notebook or job: BAD_REQUEST. A value is
        read by the cluster that references it (its image pull here), never through the API."""
        raise ApiFailure(400, "BAD_REQUEST",
                         "secrets/get can only be called from a notebook or job running on a cluster "
                         "(dbutils.secrets.get); the REST API never returns a secret's value")

    # -- workspace settings, identity ---------------------------------------------------------

    def _workspace_conf(self, request: Request) -> Answer:
        keys = [k.strip() for k in str(request.params().get("keys") or "").split(",") if k.strip()]
        if not keys:
            raise ApiFailure(400, "INVALID_PARAMETER_VALUE", "keys is required (e.g. keys=enableDcs)")
        unknown = [k for k in keys if k not in WORKSPACE_CONF]
        if unknown:
            raise ApiFailure(400, "INVALID_PARAMETER_VALUE",
                             f"Invalid keys: {unknown} (the local preflight workspace knows {sorted(WORKSPACE_CONF)})")
        return 200, {k: WORKSPACE_CONF[k] for k in keys}

    def _me(self, request: Request) -> Answer:
        try:
            user = getpass.getuser()
        except (OSError, KeyError):  # no USER/LOGNAME and no passwd entry (some containers)
            user = "local"
        return 200, {"id": "local", "userName": user, "displayName": f"{user} (local preflight workspace)",
                     "active": True, "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"]}

    # -- jobs runs ------------------------------------------------------------------------------

    def run_page_url(self, run_id: int) -> str:
        """The run's status page (no token in it: the page needs none)."""
        return f"{self.host}/runs/{run_id}"

    def cluster_page_url(self, cluster_id: str) -> str:
        return f"{self.host}/clusters/{cluster_id}"

    def _submit(self, request: Request) -> Answer:
        body = request.params()
        try:
            tasks = read_submit(body)
        except (SpecError, UsageError) as exc:
            raise ApiFailure(400, "INVALID_PARAMETER_VALUE", str(exc)) from exc
        if len(tasks) != 1:
            raise ApiFailure(400, "INVALID_PARAMETER_VALUE",
                             f"the local preflight workspace runs one task per run; this body has {len(tasks)}")
        (task,) = tasks
        raw = next(t for t in body["tasks"] if t.get("task_key") == task.task_key)
        timeout_s = _timeout(body, raw)  # refused before anything is registered
        new_cluster = json.loads(json.dumps(_validate_create(raw["new_cluster"])))
        auth = (new_cluster.get("docker_image") or {}).get("basic_auth")
        cluster = Cluster(new_cluster_id(), new_cluster, auth=dict(auth) if isinstance(auth, dict) else None,
                          busy=True, source="JOB")
        if isinstance(auth, dict):
            auth.pop("password", None)  # kept in cluster.auth only
        shown_task = {k: json.loads(json.dumps(v)) for k, v in raw.items()
                      if k in ("task_key", "spark_python_task", "notebook_task", "timeout_seconds")}
        shown_task["new_cluster"] = new_cluster  # without the password
        run_id, task_run_id = self.store.new_run_ids()
        name = str(body.get("run_name") or "Untitled")
        run = Run(run_id, task_run_id, name, shown_task, cluster, timeout_s=timeout_s)
        token = body.get("idempotency_token")
        registered = self.store.add_run(run, str(token) if token else None)
        if registered is run:
            self.store.event(cluster, "CREATING", {"user": "local", "job_run_name": f"run-{run_id}"})
            self.launcher.start(cluster, job=RunTask(self.store, run, task))
            if run.timeout_s:
                timer = threading.Timer(run.timeout_s, self._time_out, args=(run,))
                timer.daemon = True
                timer.start()
        return 200, {"run_id": registered.run_id}

    def _time_out(self, run: Run) -> None:
        """timeout_seconds passed: end the run (TIMEDOUT) as a cancel would."""
        with self.store.lock:
            if run.done:
                return
            run.timed_out = True
            self.store.update_run(run, life_cycle_state="TERMINATING",
                                  state_message=f"Run timed out after {run.timeout_s} s")
        try:
            self.launcher.terminate(run.cluster)
        except Terminate:
            pass  # engine down: the launch ends at its next step, and `ended` says TIMEDOUT

    def _run(self, params: dict[str, Any], *, task: bool = False) -> Run:
        try:
            run_id = int(params.get("run_id"))  # type: ignore[arg-type]
        except (TypeError, ValueError) as exc:
            raise ApiFailure(400, "INVALID_PARAMETER_VALUE", "run_id is required (a number)") from exc
        run = self.store.task_run(run_id) if task else self.store.run(run_id)
        if run is not None:
            return run
        if task and self.store.run(run_id) is not None:
            raise ApiFailure(400, "INVALID_PARAMETER_VALUE",
                             f"Run {run_id} is a run with tasks: get the output of its task run "
                             "(tasks[0].run_id of runs/get)")
        raise ApiFailure(400, "INVALID_PARAMETER_VALUE", f"Run {run_id} does not exist.")

    def _get_run(self, request: Request) -> Answer:
        run = self._run(request.params())
        with self.store.lock:
            info = run.info(self.run_page_url(run.run_id))
            if not run.done and run.state.get("life_cycle_state") == "PENDING":
                info["state"]["state_message"] = run.cluster.state_message  # the launch step
        return 200, info

    def _get_output(self, request: Request) -> Answer:
        run = self._run(request.params(), task=True)
        with self.store.lock:
            answer = dict(run.output)
            answer["metadata"] = run.task_info(self.run_page_url(run.run_id))
        return 200, answer

    def _cancel_run(self, request: Request) -> Answer:
        run = self._run(request.params())
        with self.store.lock:
            if run.done:
                return 200, {}
            self.store.update_run(run, life_cycle_state="TERMINATING", state_message=CANCEL_MESSAGE)
        try:
            self.launcher.terminate(run.cluster)
        except Terminate as exc:
            raise ApiFailure(500, "INTERNAL_ERROR", f"{exc.message}; the run was not cancelled") from exc
        return 200, {}

    # -- status pages (no token: see admit) --------------------------------------------------------

    def _cluster_page(self, request: Request) -> Answer:
        cluster_id = request.path.rstrip("/").rsplit("/", 1)[-1]
        cluster = self.store.get(cluster_id)
        if cluster is None:
            cluster_id = cluster_id if len(cluster_id) <= 40 else cluster_id[:40] + "..."
            return 404, pages.not_found_page(f"Cluster {cluster_id}"), pages.PAGE_HEADERS
        with self.store.lock:
            info, events = cluster.info(), list(cluster.events)
            runs = [(r.run_id, self.run_page_url(r.run_id)) for r in self.store.runs_of(cluster)]
        return 200, pages.cluster_page(info, events, runs), pages.PAGE_HEADERS

    def _run_page(self, request: Request) -> Answer:
        text = request.path.rstrip("/").rsplit("/", 1)[-1]
        # ASCII digits only ("²".isdigit() is true), and no more than a run id has.
        run = self.store.run(int(text)) if text.isascii() and text.isdigit() and len(text) <= 19 else None
        text = text if len(text) <= 40 else text[:40] + "..."
        if run is None:
            return 404, pages.not_found_page(f"Run {text}"), pages.PAGE_HEADERS
        with self.store.lock:
            info, output = run.info(self.run_page_url(run.run_id)), dict(run.output)
        return 200, pages.run_page(info, output, self.cluster_page_url(run.cluster.cluster_id)), pages.PAGE_HEADERS
