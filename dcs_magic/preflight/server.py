"""The preflight workspace's HTTP API: the Clusters API subset dcs-magic uses, on 127.0.0.1.

`ROUTES` below is the whole surface, one explicit entry per (method, path); handlers take
a `Request` and answer `(status, body)`. Every request needs `Authorization: Bearer <token>`,
checked from the headers before the body is read (`http.JsonApiServer.admit`). State lives
in a `store.Store`; launches run in the `launcher.Launcher`. Clusters whose driver
container still runs are found again by a new server (`get`, `list`, `delete`) through
the container's labels.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
from collections.abc import Callable
from typing import Any

from ..errors import SpecError
from ..imageref import parse_reference
from ..spec import ClusterSpec
from .http import Answer, ApiFailure, JsonApiServer, Request
from .launcher import LABEL, Launcher, Terminate, dbfs_key, workspace_key
from .store import NODE_TYPE_ID, Cluster, Store, new_cluster_id

__all__ = ["SPARK_VERSIONS", "LocalWorkspaceServer"]

SPARK_VERSIONS = [
    {"key": f"{line}.x-scala2.12", "name": f"{line} LTS (local preflight)"}
    for line in ("17.3", "16.4", "15.4", "14.3", "13.3")
]


def _not_found(cluster_id: Any) -> ApiFailure:
    return ApiFailure(404, "RESOURCE_DOES_NOT_EXIST", f"Cluster {cluster_id} does not exist")


def _validate_create(body: Any) -> dict[str, Any]:
    """The create body, or ApiFailure(INVALID_PARAMETER_VALUE) saying what is wrong."""
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
    return dict(body)


def _b64(value: Any, what: str) -> bytes:
    try:
        return base64.b64decode(str(value or ""), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ApiFailure(400, "INVALID_PARAMETER_VALUE", f"{what} is not valid base64") from exc


class LocalWorkspaceServer(JsonApiServer):
    """The preflight workspace: an HTTP server on 127.0.0.1 and the clusters it launched.

    `docker_host` selects the engine (default: the one the Docker CLI would use).
    """

    def __init__(self, *, docker_host: str | None = None, **limits: Any) -> None:
        self.token = secrets.token_urlsafe(32)
        self.docker_host = docker_host
        self.store = Store()
        self.launcher = Launcher(self.store, docker_host=docker_host)
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
        })
        super().__init__(routes, name="the local preflight workspace", **limits)

    def __repr__(self) -> str:
        return f"LocalWorkspaceServer({self.host})"

    def start(self) -> LocalWorkspaceServer:
        super().start()
        return self

    def stop(self) -> None:
        """Stop serving (clusters keep their containers; a new server can adopt them)."""
        super().stop()

    # -- admission (before the body is read) ---------------------------------------------

    def admit(self, request: Request) -> None:
        if request.path.startswith("/.well-known/"):
            raise ApiFailure(404, "NOT_FOUND", "no host metadata on a local workspace")
        scheme, _, token = str(request.headers.get("Authorization", "")).partition(" ")
        if not (scheme.lower() == "bearer" and secrets.compare_digest(token.strip(), self.token)):
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
        return 200, {}

    def _spark_versions(self, request: Request) -> Answer:
        return 200, {"versions": [dict(v) for v in SPARK_VERSIONS]}

    def _list_node_types(self, request: Request) -> Answer:
        try:
            memory_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
        except (ValueError, OSError, AttributeError):
            memory_mb = 0
        return 200, {"node_types": [{
            "node_type_id": NODE_TYPE_ID, "instance_type_id": NODE_TYPE_ID,
            "description": "This machine's Docker engine (local preflight, no Spark)",
            "category": "Local", "num_cores": float(os.cpu_count() or 1), "memory_mb": memory_mb,
            "is_graviton": False, "is_deprecated": False, "is_hidden": False,
        }]}

    def _events(self, request: Request) -> Answer:
        params = request.params()
        events = self.store.events(self._cluster(params))
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
        if not found:
            raise _not_found(cluster_id)
        return found[0]

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
