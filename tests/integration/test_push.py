"""`dcs_magic.push` against the real engine and real registries (plain, htpasswd, 429)."""

from __future__ import annotations

import http.server
import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from support.recorder import Recorder
from support.registry import rate_limited_registry as registry_answering_429
from support.registry import serve_http

import dcs_magic
from dcs_magic import PushError, PushResult
from dcs_magic.ops.runner import Job

pytestmark = pytest.mark.docker




def tag_into(client: Any, image: str, host: str, cleanup: Any, name: str = "push") -> tuple[str, str, str]:
    """Tag `image` as HOST/<unique>:v1; returns (reference, repository path, tag)."""
    path = cleanup.unique(name)
    reference = f"{host}/{path}:v1"
    assert client.images.get(image).tag(f"{host}/{path}", "v1")
    cleanup.add(reference)
    return reference, path, "v1"


@pytest.fixture
def layered_image(tmp_path: Any, busybox_image: str, docker_cleanup: Any) -> str:
    """busybox + one layer of its own, so a push has two layers."""
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {busybox_image}\nRUN head -c 300000 /dev/urandom > /blob\n")
    ref = docker_cleanup.add(f"{docker_cleanup.unique('layered')}:1")
    dcs_magic.build(context, tags=[ref], labels={"dcs-test": "1"})
    return ref


def test_push_to_plain_registry(docker_client: Any, layered_image: str, registry: Any,
                                docker_cleanup: Any) -> None:
    reference, path, tag = tag_into(docker_client, layered_image, registry.host, docker_cleanup)
    sink = Recorder()
    result = dcs_magic.push(reference, progress=sink)
    assert isinstance(result, PushResult) and result.reference == reference
    assert result.digest == registry.manifest_digest(path, tag)
    assert result.pinned == f"{registry.host}/{path}@{result.digest}"
    assert result.size and result.duration_s > 0 and repr(result) == f"PushResult({reference} -> {result.pinned})"
    assert (result.image.repository, result.image.tag, result.image.digest) == (f"{registry.host}/{path}", tag,
                                                                                   result.digest)
    assert result.image.pinned() == result.pinned
    final = sink.closed[0]
    assert final["status"] == "done" and final["pinned"] == result.pinned
    assert final["layers_total"] == final["layers_done"] == 2 and final["fraction"] == 1.0
    # The base layer may already be in the session's registry under another repository
    # (other tests push busybox too): then the registry mounts it instead of receiving it.
    statuses = {layer["status"].split(" from ")[0] for layer in final["layers"]}
    assert statuses <= {"Pushed", "Layer already exists", "Mounted"}, statuses
    assert "Pushed" in statuses  # the image's own layer is new

    again = Recorder()
    assert dcs_magic.push(reference, progress=again).digest == result.digest
    assert {layer["status"] for layer in again.closed[0]["layers"]} == {"Layer already exists"}


def test_push_with_credentials_to_htpasswd_registry(docker_client: Any, busybox_image: str,
                                                    auth_registry: Any, docker_cleanup: Any) -> None:
    reference, path, tag = tag_into(docker_client, busybox_image, auth_registry.host, docker_cleanup)
    sink = Recorder()
    result = dcs_magic.push(reference, username=auth_registry.username, password=auth_registry.password,
                            progress=sink)
    assert result.digest == auth_registry.manifest_digest(path, tag)
    assert auth_registry.password not in repr(result) + sink.text()


def test_wrong_password_is_refused_and_never_shown(docker_client: Any, busybox_image: str,
                                                   auth_registry: Any, docker_cleanup: Any) -> None:
    reference, _, _ = tag_into(docker_client, busybox_image, auth_registry.host, docker_cleanup)
    wrong = "Wr0ng-" + auth_registry.password[::-1]
    sink = Recorder()
    with pytest.raises(PushError) as info:
        dcs_magic.push(reference, username=auth_registry.username, password=wrong, progress=sink)
    err = info.value
    shown = " ".join([str(err), repr(err), err.reason or "", err.hint, sink.text()])
    assert f"registry at {auth_registry.host} did not accept the credentials" in str(err)
    assert "unauthorized" in err.reason and err.reference == reference
    # The credentials given were refused: the hint is about them, not `docker login` (issue 24.8).
    assert "--username" in err.hint and "docker login" not in err.hint
    assert wrong not in shown and auth_registry.password not in shown
    assert sink.closed[0]["status"] == "failed"


def test_no_credentials_for_htpasswd_registry(docker_client: Any, busybox_image: str,
                                              auth_registry: Any, docker_cleanup: Any) -> None:
    reference, _, _ = tag_into(docker_client, busybox_image, auth_registry.host, docker_cleanup)
    with pytest.raises(PushError, match="did not accept the credentials: no basic auth credentials") as info:
        dcs_magic.push(reference)
    assert "docker login" in info.value.hint


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_registry_unreachable(docker_client: Any, busybox_image: str, docker_cleanup: Any) -> None:
    host = f"127.0.0.1:{_closed_port()}"
    reference, _, _ = tag_into(docker_client, busybox_image, host, docker_cleanup)
    with pytest.raises(PushError, match=rf"registry unreachable at {host}: .*connection refused"):
        dcs_magic.push(reference)


@pytest.fixture
def rate_limited_registry() -> Iterator[str]:
    with registry_answering_429() as host:
        yield host


def test_rate_limit_says_so(docker_client: Any, busybox_image: str, rate_limited_registry: str,
                            docker_cleanup: Any) -> None:
    reference, _, _ = tag_into(docker_client, busybox_image, rate_limited_registry, docker_cleanup)
    with pytest.raises(PushError, match=r"rate limited by the registry at .*\(429 Too Many Requests\)") as info:
        dcs_magic.push(reference)
    assert "toomanyrequests" in info.value.reason and "Wait" in info.value.hint


def test_image_not_found_locally(registry: Any, docker_cleanup: Any) -> None:
    reference = f"{registry.host}/{docker_cleanup.unique('absent')}:1"
    with pytest.raises(PushError, match=f"No local image {reference} to push") as info:
        dcs_magic.push(reference)
    assert f"%dcs_build -t {reference}" in info.value.hint


def test_missing_tag_with_registry_down_is_no_local_image(docker_client: Any, busybox_image: str,
                                                          docker_cleanup: Any) -> None:
    # The engine reaches for the registry before it looks up a tag of a repository it has;
    # with the registry down, the push fails on that first, and the real cause is still named.
    host = f"127.0.0.1:{_closed_port()}"
    present, path, _ = tag_into(docker_client, busybox_image, host, docker_cleanup)
    reference = f"{host}/{path}:v2"
    with pytest.raises(PushError, match=f"No local image {reference} to push") as info:
        dcs_magic.push(reference)
    assert f"%dcs_build -t {reference}" in info.value.hint and present != reference


def test_engine_api_version_comes_from_ping() -> None:
    from dcs_magic.adapters.engine import connect

    with connect() as engine:
        assert engine.api._version == engine.api.version()["ApiVersion"]


def test_engine_without_version_header_is_asked_for_its_version() -> None:
    """An engine (or proxy) whose /_ping has no API-Version header: /version, as docker-py does."""
    from dcs_magic.adapters.engine import connect

    asked: list[str] = []

    class OldEngine(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            asked.append(self.path)
            body = b"OK" if self.path == "/_ping" else json.dumps({"ApiVersion": "1.41"}).encode()
            self.send_response(200 if self.path in ("/_ping", "/version") else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    with serve_http(OldEngine) as host, connect(host=f"tcp://{host}") as engine:
        assert engine.api._version == "1.41"
    assert asked == ["/_ping", "/version"]


@pytest.mark.parametrize("reference, words", [("Not A Ref", "not a valid image reference"),
                                              ("reg.example:5000/a@sha256:" + "a" * 64, "push a tag, not a digest")])
def test_bad_reference(reference: str, words: str) -> None:
    with pytest.raises(PushError, match=words):
        dcs_magic.push(reference)


def test_username_without_password(busybox_image: str) -> None:
    with pytest.raises(PushError, match="needs a password"):
        dcs_magic.push("127.0.0.1:5000/dcs-test/x:1", username="someone")


def test_background_push(docker_client: Any, busybox_image: str, registry: Any, docker_cleanup: Any) -> None:
    reference, path, tag = tag_into(docker_client, busybox_image, registry.host, docker_cleanup)
    remembered: list[PushResult] = []
    job = Job("push", reference, dcs_magic.push, reference, on_result=remembered.append)
    result = job.result(timeout=120)
    assert remembered == [result] and result.digest == registry.manifest_digest(path, tag)
    assert job.state["status"] == "done" and job.state["digest"] == result.digest
    assert repr(job).startswith(f"<Job push '{reference}': done -> PushResult(")
