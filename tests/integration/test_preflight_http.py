"""The preflight workspace's HTTP front door on loopback (no Docker needed): what a request
may cost is bounded before it costs anything (issue 13.9), and routes are an explicit table."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import requests
from support import rawhttp

from dcs_magic.preflight import LocalWorkspaceServer
from dcs_magic.preflight.http import MAX_BODY_BYTES, ApiFailure, JsonApiServer, Request


@pytest.fixture
def server() -> Iterator[LocalWorkspaceServer]:
    server = LocalWorkspaceServer(max_connections=4, idle_timeout_s=1.0).start()
    yield server
    server.stop()


_connect = rawhttp.connect


def _answer(sock: socket.socket) -> tuple[int, dict]:
    """Read one HTTP answer (status, JSON body) from a raw socket."""
    status, _headers, body = rawhttp.read_answer(sock)
    return status, json.loads(body) if body else {}


def _announce(host: str, path: str, length: int, token: str | None = None) -> bytes:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return (f"POST {path} HTTP/1.1\r\nHost: {host.removeprefix('http://')}\r\n{auth}Content-Type: application/json\r\n"
            f"Content-Length: {length}\r\n\r\n").encode()


def test_the_token_is_checked_before_the_body_is_read(server: LocalWorkspaceServer) -> None:
    """A request without the token announcing 3 GB is refused at once; nothing is read."""
    with _connect(server.host) as sock:
        sock.sendall(_announce(server.host, "/api/2.1/clusters/create", 3 * 10**9))
        status, body = _answer(sock)  # answered although not one body byte was sent
        assert (status, body["error_code"]) == (401, "UNAUTHENTICATED")
        sock.settimeout(5)
        assert sock.recv(1) == b""  # and the connection is closed: the body is never read


def test_a_body_over_the_cap_is_refused_from_its_length(server: LocalWorkspaceServer) -> None:
    with _connect(server.host) as sock:
        sock.sendall(_announce(server.host, "/api/2.1/clusters/create", MAX_BODY_BYTES + 1, server.token))
        status, body = _answer(sock)
        assert (status, body["error_code"]) == (413, "REQUEST_LIMIT_EXCEEDED")
        assert str(MAX_BODY_BYTES) in body["message"]
    # a body at the cap's side of the line is read and judged on its content
    answer = requests.post(f"{server.host}/api/2.1/clusters/create", data=b"[]",
                           headers={"Authorization": f"Bearer {server.token}"}, timeout=10)
    assert answer.status_code == 400 and answer.json()["error_code"] == "MALFORMED_REQUEST"


def test_connections_are_limited_and_idle_ones_time_out(server: LocalWorkspaceServer) -> None:
    idle = [_connect(server.host) for _ in range(4)]  # the limit: 4 connections that say nothing
    try:
        time.sleep(0.2)
        with _connect(server.host) as extra:
            status, body = _answer(extra)  # the fifth is answered 503 without a request
            assert (status, body["error_code"]) == (503, "TEMPORARILY_UNAVAILABLE")
        # The idle ones are closed by the server after idle_timeout_s (1 s here)...
        for sock in idle:
            sock.settimeout(10)
            assert sock.recv(1) == b""
    finally:
        for sock in idle:
            sock.close()
    # ...which frees their slots: requests are served again.
    deadline = time.monotonic() + 10
    while True:
        answer = requests.get(f"{server.host}/api/2.1/clusters/spark-versions",
                              headers={"Authorization": f"Bearer {server.token}"}, timeout=10)
        if answer.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert answer.status_code == 200 and answer.json()["versions"]


def test_many_idle_connections_do_not_make_many_threads() -> None:
    server = JsonApiServer({}, max_connections=8, idle_timeout_s=30).start()
    before = threading.active_count()
    socks = []
    try:
        for _ in range(200):
            try:
                socks.append(_connect(server.host))
            except OSError:
                break
        time.sleep(0.5)
        assert threading.active_count() - before <= 8
    finally:
        for sock in socks:
            sock.close()
        server.stop()


def test_routes_are_an_explicit_table() -> None:
    seen: list[Request] = []

    def get(request: Request) -> tuple[int, dict]:
        seen.append(request)
        return 200, {"params": request.params()}

    def boom(request: Request) -> tuple[int, dict]:
        raise ApiFailure(409, "RESOURCE_CONFLICT", "no")

    server = JsonApiServer({("GET", "/api/2.1/x/get"): get, ("PUT", "/api/2.0/files/*"): boom}).start()
    try:
        ok = requests.get(f"{server.host}/api/2.1/x/get?cluster_id=a%20b", timeout=10)
        assert ok.json() == {"params": {"cluster_id": "a b"}}
        assert requests.post(f"{server.host}/api/2.1/x/get", timeout=10).status_code == 404  # method matters
        assert requests.get(f"{server.host}/api/2.1/x/get_private", timeout=10).status_code == 404
        conflict = requests.put(f"{server.host}/api/2.0/files/Volumes/a/b.sh", data=b"x", timeout=10)
        assert (conflict.status_code, conflict.json()["error_code"]) == (409, "RESOURCE_CONFLICT")
    finally:
        server.stop()
    assert [r.path for r in seen] == ["/api/2.1/x/get"]


def test_the_local_workspace_serves_only_its_table(server: LocalWorkspaceServer) -> None:
    """No handler is reachable by naming it: `getattr(self, "_" + segment)` is gone."""
    headers = {"Authorization": f"Bearer {server.token}"}
    for path in ("/api/2.1/clusters/cluster", "/api/2.1/clusters/store_file", "/api/2.1/clusters/_create",
                 "/api/2.1/clusters/events/x"):
        answer = requests.post(f"{server.host}{path}", json={}, headers=headers, timeout=10)
        assert (answer.status_code, answer.json()["error_code"]) == (404, "ENDPOINT_NOT_FOUND"), path
    answer = requests.get(f"{server.host}/api/2.1/clusters/spark-versions", headers=headers, timeout=10)
    assert answer.status_code == 200
