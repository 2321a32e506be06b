"""Fault suite, the local workspace's HTTP front door (issue 23, items 2, 8, 17).

One row per fault, over real HTTP (raw sockets where a client must misbehave) to a real
`LocalWorkspaceServer` on 127.0.0.1 without an engine. Every row also asserts that the
server wrote nothing to stderr (capfd: its threads share the test's file descriptors): no
traceback for a client that went away, a bad header or a bad number.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from support import rawhttp

from dcs_magic.preflight import LocalWorkspaceServer
from dcs_magic.preflight.pages import ENDED_CLUSTER_NOTE, ENDED_RUN_NOTE
from dcs_magic.preflight.server import MAX_TIMEOUT_S
from dcs_magic.preflight.store import Cluster, Run, new_cluster_id

NO_ENGINE = "unix:///nonexistent/dcs-faults-http.sock"
MARK = "OUTPUT-MARK-7f3a"  # stands for process output (it could hold a secret)
SPEC = {"cluster_name": "http-faults", "spark_version": "15.4.x-scala2.12", "num_workers": 0,
        "node_type_id": "local", "docker_image": {"url": "127.0.0.1:5000/team/app:1"}}


@dataclass
class Env:
    server: LocalWorkspaceServer
    make: Callable[..., LocalWorkspaceServer]  # another server with other limits (stopped after the row)

    @property
    def port(self) -> int:
        return int(self.server.host.rsplit(":", 1)[1])

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.server.token}"}


# -- helpers ------------------------------------------------------------------------------------


def connect(server: LocalWorkspaceServer) -> socket.socket:
    return rawhttp.connect(server.host)


def raw(server: LocalWorkspaceServer, head: bytes, body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    """Send HEAD (request line and headers, without the blank line) and BODY; read one answer."""
    with connect(server) as sock:
        sock.sendall(head + b"\r\n\r\n" + body)
        return rawhttp.read_answer(sock)


def reset(sock: socket.socket) -> None:
    """Close with a TCP RST (SO_LINGER 0): the server's next write or read fails."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def closed(sock: socket.socket, within_s: float) -> bool:
    """Whether the server closes SOCK within WITHIN_S (reading and dropping what it sends)."""
    sock.settimeout(within_s)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except OSError:
        pass  # reset: closed too
    return True


def ended_cluster(server: LocalWorkspaceServer, state: str = "TERMINATED") -> Cluster:
    """A job cluster whose termination message, reason and init script status quote output."""
    cluster = Cluster(new_cluster_id(), dict(SPEC), state=state, source="JOB",
                      state_message=f"The image could not be started: python3: {MARK}",
                      termination_reason={"code": "INIT_SCRIPT_FAILURE", "type": "CLIENT_ERROR",
                                          "parameters": {"databricks_error_message": MARK}})
    server.store.add(cluster)
    server.store.event(cluster, "INIT_SCRIPTS_FINISHED", {"init_scripts": {"cluster": [
        {"workspace": {"destination": "/Users/me/a.sh"}, "status": "FAILED_EXECUTION",
         "error_message": MARK}]}})
    server.store.event(cluster, "TERMINATING", {"reason": cluster.termination_reason})
    return cluster


# -- item 2: the tokenless pages show no output; the Host header names this server ----------------


def row_cluster_page_shows_no_output(env: Env) -> None:
    cluster = ended_cluster(env.server)
    for path in (f"/clusters/{cluster.cluster_id}", f"/compute/clusters/{cluster.cluster_id}"):
        page = requests.get(env.server.host + path, timeout=10)  # no token
        assert page.status_code == 200, path
        assert MARK not in page.text
        assert "INIT_SCRIPT_FAILURE (CLIENT_ERROR)" in page.text and "FAILED_EXECUTION" in page.text
        assert "Not shown on this page" in page.text and ENDED_CLUSTER_NOTE.split(":")[0] in page.text
    # With the token, the API still says it all.
    got = requests.get(f"{env.server.host}/api/2.1/clusters/get", params={"cluster_id": cluster.cluster_id},
                       headers=env.auth(), timeout=10)
    assert MARK in got.json()["state_message"]


def row_cluster_page_shows_launch_steps(env: Env) -> None:
    cluster = Cluster(new_cluster_id(), dict(SPEC), state="PENDING", state_message="Pulling 127.0.0.1:5000/a:1")
    env.server.store.add(cluster)
    page = requests.get(f"{env.server.host}/clusters/{cluster.cluster_id}", timeout=10)
    assert page.status_code == 200 and "Pulling 127.0.0.1:5000/a:1" in page.text


def row_run_page_shows_no_output(env: Env) -> None:
    cluster = ended_cluster(env.server)
    run_id, task_run_id = env.server.store.new_run_ids()
    task = {"task_key": "t", "spark_python_task": {"python_file": "/Workspace/a.py"}, "new_cluster": dict(SPEC)}
    run = env.server.store.add_run(Run(run_id, task_run_id, "faulty", task, cluster))
    env.server.store.update_run(run, output={"logs": f"{MARK} out\n", "error": f"Boom: {MARK}",
                                             "error_trace": MARK, "exit_code": 3},
                                end=True, life_cycle_state="TERMINATED", result_state="FAILED",
                                state_message=f"Python script exited with code 3: {MARK}")
    page = requests.get(env.server.run_page_url(run_id), timeout=10)
    assert page.status_code == 200
    assert MARK not in page.text
    assert "TERMINATED/FAILED" in page.text and "<th>Exit code</th><td>3</td>" in page.text
    assert "runs/get-output" in page.text and ENDED_RUN_NOTE.split(":")[0] in page.text
    assert f"/clusters/{cluster.cluster_id}" in page.text


def row_foreign_host_is_refused(env: Env) -> None:
    """A DNS-rebinding page reaches 127.0.0.1:PORT under its own name: refused, pages and APIs."""
    cluster = ended_cluster(env.server)
    foreign = [f"evil.example:{env.port}", f"127.0.0.1.nip.io:{env.port}", f"localhost:{env.port + 1}",
               "127.0.0.1", f"localhost.:{env.port}", f"[::1]:{env.port}@evil.example", "x" * 300]
    for host in foreign:
        for path, auth in ((f"/clusters/{cluster.cluster_id}", ""),
                           ("/api/2.1/clusters/list", f"\r\nAuthorization: Bearer {env.server.token}")):
            status, headers, body = raw(env.server, f"GET {path} HTTP/1.1\r\nHost: {host}{auth}".encode())
            answer = json.loads(body)
            assert (status, answer["error_code"]) == (403, "PERMISSION_DENIED"), (host, path)
            assert headers["content-type"] == "application/json" and len(answer["message"]) < 300
            assert "is not this server" in answer["message"] and MARK not in body.decode()
    status, _, body = raw(env.server, b"GET /api/2.1/clusters/list HTTP/1.0")  # no Host at all
    assert status == 403 and "(none)" in json.loads(body)["message"]
    for host in (f"127.0.0.1:{env.port}", f"localhost:{env.port}", f"[::1]:{env.port}", f"LocalHost:{env.port}"):
        status, _, _ = raw(env.server, f"GET /api/2.1/clusters/list HTTP/1.1\r\nHost: {host}\r\n"
                                       f"Authorization: Bearer {env.server.token}".encode())
        assert status == 200, host


# -- item 8: slow request heads ---------------------------------------------------------------------


def row_slow_header_clients(env: Env) -> None:
    """64 clients each dribbling a request head (a byte every 0.3 s; head deadline 1.5 s here,
    10 s by default): real requests are served meanwhile, and every dribbler is closed by the
    deadline although the idle timeout (30 s) never passes."""
    server = env.make(max_connections=64, idle_timeout_s=30.0, head_timeout_s=1.5)
    started = time.monotonic()
    slow = [connect(server) for _ in range(64)]
    head = b"GET /api/2.1/clusters/list HTTP/1.1\r\nX-Slow: " + b"a" * 100
    for sock in slow:
        sock.sendall(head[:1])
    time.sleep(0.5)
    served = []
    for step in range(1, 6):
        for sock in slow:
            try:
                sock.sendall(head[step:step + 1])
            except OSError:
                pass  # evicted or timed out: closed by the server
        answer = requests.get(f"{server.host}/api/2.1/clusters/spark-versions",
                              headers={"Authorization": f"Bearer {server.token}"}, timeout=5)
        served.append(answer.status_code)
        time.sleep(0.3)
    assert served == [200] * 5
    assert all(closed(sock, within_s=max(0.1, started + 1.5 + 2.0 - time.monotonic())) for sock in slow)
    assert time.monotonic() - started < 5
    for sock in slow:
        sock.close()


def row_idle_keepalive_still_waits_idle_timeout(env: Env) -> None:
    """The head deadline starts with a request's first byte: an idle keep-alive connection
    waits the idle timeout, not the head deadline."""
    server = env.make(idle_timeout_s=2.0, head_timeout_s=0.5)
    with connect(server) as sock:
        time.sleep(1.0)  # twice the head deadline, idle
        sock.sendall(f"GET /api/2.1/clusters/spark-versions HTTP/1.1\r\nHost: {server.host[7:]}\r\n"
                     f"Authorization: Bearer {server.token}\r\n\r\n".encode())
        assert sock.recv(12).startswith(b"HTTP/1.1 200")


# -- item 17: bad input -------------------------------------------------------------------------------


def row_non_ascii_token(env: Env) -> None:
    for token in ("tökén".encode(), "tökén".encode("latin-1"), b"\xff\xfe", "€".encode() + env.server.token.encode()):
        status, _, body = raw(env.server, b"GET /api/2.1/clusters/list HTTP/1.1\r\nHost: "
                              + env.server.host[7:].encode() + b"\r\nAuthorization: Bearer " + token)
        assert (status, json.loads(body)["error_code"]) == (401, "UNAUTHENTICATED"), token


def row_early_disconnects_are_silent(env: Env) -> None:
    env.server.store.put_file("/Volumes/main/default/v/big.bin", b"x" * (16 * 2**20), overwrite=True)
    host = env.server.host[7:]
    get_big = (f"GET /api/2.0/fs/files/Volumes/main/default/v/big.bin HTTP/1.1\r\nHost: {host}\r\n"
               f"Authorization: Bearer {env.server.token}\r\n\r\n").encode()
    for _ in range(3):
        sock = connect(env.server)  # asks for 16 MiB, then resets while the answer is written
        sock.sendall(get_big)
        sock.recv(1)
        reset(sock)
        sock = connect(env.server)  # half a body, then a reset
        sock.sendall(f"POST /api/2.1/clusters/create HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer "
                     f"{env.server.token}\r\nContent-Length: 1000\r\n\r\n{{\"a\":".encode())
        reset(sock)
        sock = connect(env.server)  # half a request line, then a reset
        sock.sendall(b"GET /api/2.1/clu")
        reset(sock)
        reset(connect(env.server))  # nothing at all
        sock = connect(env.server)  # a request, then gone before the answer (FIN)
        sock.sendall(get_big)
        sock.close()
    time.sleep(0.5)  # the server's threads meet the resets
    answer = requests.get(f"{env.server.host}/api/2.1/clusters/list", headers=env.auth(), timeout=10)
    assert answer.status_code == 200


def row_deeply_nested_json(env: Env) -> None:
    for depth in (5_000, 100_000):
        body = b"[" * depth + b"]" * depth
        answer = requests.post(f"{env.server.host}/api/2.1/clusters/create", data=body, headers=env.auth(),
                               timeout=10)
        assert (answer.status_code, answer.json()["error_code"]) == (400, "MALFORMED_REQUEST"), depth
        assert "nests too deeply" in answer.json()["message"]
    answer = requests.post(f"{env.server.host}/api/2.1/jobs/runs/cancel", data=b'{"run_id": ' + b"9" * 5000 + b"}",
                           headers=env.auth(), timeout=10)
    assert (answer.status_code, answer.json()["error_code"]) == (400, "MALFORMED_REQUEST")


def row_odd_run_ids(env: Env) -> None:
    for text in ("²", "١٢", "9" * 5000, "-1", "1e3", "%C2%B2", "99999999999999999999"):
        page = requests.get(f"{env.server.host}/runs/{text}", timeout=10)
        assert page.status_code == 404 and page.headers["Content-Type"].startswith("text/html"), text
        assert len(page.text) < 2000
        answer = requests.get(f"{env.server.host}/api/2.1/jobs/runs/get", params={"run_id": text},
                              headers=env.auth(), timeout=10)
        assert (answer.status_code, answer.json()["error_code"]) == (400, "INVALID_PARAMETER_VALUE"), text
    page = requests.get(f"{env.server.host}/clusters/{'c' * 5000}", timeout=10)
    assert page.status_code == 404 and len(page.text) < 2000
    cluster = ended_cluster(env.server)
    answer = requests.post(f"{env.server.host}/api/2.1/clusters/events", headers=env.auth(), timeout=10,
                           json={"cluster_id": cluster.cluster_id, "start_time": "soon"})
    assert (answer.status_code, answer.json()["error_code"]) == (400, "INVALID_PARAMETER_VALUE")


def row_huge_timeout_seconds(env: Env) -> None:
    crashed: list[Any] = []
    hook = threading.excepthook
    threading.excepthook = crashed.append
    try:
        submit = f"{env.server.host}/api/2.1/jobs/runs/submit"
        for where, value in (("body", 1e30), ("task", 1e30), ("body", "Infinity"), ("body", "NaN"),
                             ("task", 2**31), ("body", "soon"), ("body", "9" * 5000)):
            task: dict[str, Any] = {"task_key": "t", "new_cluster": dict(SPEC),
                                    "spark_python_task": {"python_file": "dbfs:/x.py"}}
            run: dict[str, Any] = {"run_name": "t", "tasks": [task]}
            (run if where == "body" else task)["timeout_seconds"] = value
            data = json.dumps(run).replace('"Infinity"', "Infinity").replace('"NaN"', "NaN")
            answer = requests.post(submit, data=data, headers=env.auth(), timeout=10)
            assert (answer.status_code, answer.json()["error_code"]) == (400, "INVALID_PARAMETER_VALUE"), value
            assert "timeout_seconds" in answer.json()["message"]
        listed = requests.get(f"{env.server.host}/api/2.1/clusters/list", headers=env.auth(), timeout=10)
        assert listed.json()["clusters"] == []  # nothing registered by a refused submit
        # The largest accepted timeout arms a timer that waits: no thread dies.
        body = {"run_name": "t", "timeout_seconds": MAX_TIMEOUT_S, "tasks": [
            {"task_key": "t", "new_cluster": dict(SPEC), "spark_python_task": {"python_file": "dbfs:/x.py"}}]}
        answer = requests.post(submit, json=body, headers=env.auth(), timeout=10)
        assert answer.status_code == 200, answer.text
        time.sleep(0.3)
        assert crashed == []
    finally:
        threading.excepthook = hook


ROWS = [row_cluster_page_shows_no_output, row_cluster_page_shows_launch_steps, row_run_page_shows_no_output,
        row_foreign_host_is_refused, row_slow_header_clients, row_idle_keepalive_still_waits_idle_timeout,
        row_non_ascii_token, row_early_disconnects_are_silent, row_deeply_nested_json, row_odd_run_ids,
        row_huge_timeout_seconds]


@pytest.fixture
def servers() -> Iterator[Callable[..., LocalWorkspaceServer]]:
    made: list[LocalWorkspaceServer] = []

    def make(**limits: Any) -> LocalWorkspaceServer:
        server = LocalWorkspaceServer(docker_host=NO_ENGINE, records=None, **limits).start()
        made.append(server)
        return server

    yield make
    for server in made:
        server.stop()


@pytest.mark.parametrize("row", ROWS, ids=[row.__name__.removeprefix("row_") for row in ROWS])
def test_workspace_http(row: Callable[[Env], None], servers: Callable[..., LocalWorkspaceServer],
                        capfd: pytest.CaptureFixture[str]) -> None:
    env = Env(servers(), servers)
    row(env)
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Exception" not in err and "Error" not in err, err[-3000:]
