"""The real-parts fixtures of tests/conftest.py do what later tests rely on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
from support.cleanup import DockerCleanup
from support.engine import EngineUnavailable, connect_or_start
from support.images import ensure_busybox_image
from support.registry import Registry, RegistryError

from dcs_magic import DcsError


def push(client: Any, repo: str, tag: str, auth_config: dict | None = None) -> list[dict]:
    """Every decoded event of a push (errors arrive inside the stream, not as exceptions)."""
    return list(client.api.push(repo, tag=tag, stream=True, decode=True, auth_config=auth_config))


def pushed_digest(events: list[dict]) -> str:
    errors = [e["error"] for e in events if "error" in e]
    assert not errors, errors
    digests = [e["aux"]["Digest"] for e in events if "Digest" in e.get("aux", {})]
    assert len(digests) == 1, events
    return digests[0]


def tag_for(client: Any, image: str, reg: Registry, cleanup: DockerCleanup) -> tuple[str, str]:
    """Tag `image` into `reg` under a per-test name; returns (repo with host, tag)."""
    repo = f"{reg.host}/{cleanup.unique('harness')}"
    assert client.images.get(image).tag(repo, "v1")
    return repo, "v1"


@pytest.mark.docker
def test_busybox_image_runs_its_shell(docker_client: Any, busybox_image: str,
                                      docker_cleanup: DockerCleanup) -> None:
    name = docker_cleanup.add(docker_cleanup.unique("run"))
    out = docker_client.containers.run(busybox_image, ["sh", "-c", "echo hi; ls /bin | wc -l"],
                                       name=name)
    hi, applets = out.decode().split()
    assert hi == "hi" and int(applets) > 100
    assert docker_client.images.get(busybox_image).labels.get("dcs-test") == "busybox"


@pytest.mark.docker
def test_busybox_import_makes_a_working_image(docker_client: Any,
                                              docker_cleanup: DockerCleanup) -> None:
    # The session image may predate this run; import a second one to exercise the import.
    ref = docker_cleanup.add(docker_cleanup.unique("busybox") + ":1")
    assert ensure_busybox_image(docker_client, ref) == ref  # runs `sh -c 'echo ok'` itself
    image = docker_client.images.get(ref)
    assert image.labels == {"dcs-test": "busybox"} and image.attrs["Config"]["Cmd"] == ["sh"]


@pytest.mark.docker
def test_plain_registry_digest_matches_push(docker_client: Any, busybox_image: str,
                                            registry: Registry,
                                            docker_cleanup: DockerCleanup) -> None:
    repo, tag = tag_for(docker_client, busybox_image, registry, docker_cleanup)
    digest = pushed_digest(push(docker_client, repo, tag))
    path = repo.removeprefix(registry.host + "/")
    assert digest.startswith("sha256:") and len(digest) == 71
    assert registry.manifest_digest(path, tag) == digest
    assert registry.tags(path) == [tag]
    assert path in registry.catalog()


@pytest.mark.docker
def test_auth_registry_accepts_the_right_password(docker_client: Any, busybox_image: str,
                                                  auth_registry: Registry,
                                                  docker_cleanup: DockerCleanup) -> None:
    repo, tag = tag_for(docker_client, busybox_image, auth_registry, docker_cleanup)
    digest = pushed_digest(push(docker_client, repo, tag, auth_registry.auth_config))
    path = repo.removeprefix(auth_registry.host + "/")
    assert auth_registry.manifest_digest(path, tag) == digest
    assert auth_registry.tags(path) == [tag]


@pytest.mark.docker
def test_auth_registry_rejects_a_wrong_password(docker_client: Any, busybox_image: str,
                                                auth_registry: Registry,
                                                docker_cleanup: DockerCleanup) -> None:
    repo, tag = tag_for(docker_client, busybox_image, auth_registry, docker_cleanup)
    wrong = dict(auth_registry.auth_config or {}, password="not-the-password")
    events = push(docker_client, repo, tag, wrong)
    errors = [e["error"] for e in events if "error" in e]
    assert errors and "unauthorized" in errors[-1].lower(), events
    assert not any("Digest" in e.get("aux", {}) for e in events)
    assert auth_registry.tags(repo.removeprefix(auth_registry.host + "/")) == []


def test_auth_registry_http_api_needs_credentials(auth_registry: Registry) -> None:
    assert requests.get(auth_registry.url + "/v2/", timeout=5).status_code == 401
    assert requests.get(auth_registry.url + "/v2/", timeout=5,
                        auth=(auth_registry.username, auth_registry.password)).status_code == 200
    assert auth_registry.password not in repr(auth_registry)


def test_registry_helpers_report_missing_manifests(registry: Registry) -> None:
    with pytest.raises(RegistryError) as info:
        registry.manifest_digest("dcs-test/never-pushed", "v1")
    assert info.value.status == 404
    assert registry.tags("dcs-test/never-pushed") == []


@pytest.mark.docker
def test_docker_cleanup_removes_only_what_the_test_made(docker_client: Any,
                                                        busybox_image: str) -> None:
    sweeper = DockerCleanup(docker_client, protected={busybox_image})
    container = docker_client.containers.create(busybox_image, ["true"],
                                                name=sweeper.unique("sweep"))
    extra_tag = sweeper.unique("sweep") + ":v1"
    docker_client.images.get(busybox_image).tag(extra_tag)

    removed = sweeper.run()

    assert set(removed) == {container.id, extra_tag}
    assert not docker_client.containers.list(all=True, filters={"id": container.id})
    assert not docker_client.images.list(name=extra_tag.split(":")[0])
    assert docker_client.images.get(busybox_image)  # untagged, not deleted


@pytest.mark.parametrize("run", [1, 2])
def test_shell_is_fresh_for_every_test(shell: Any, dcs_magics: Any, tmp_path: Path,
                                       run: int) -> None:
    # Whichever run goes second fails if the first one's variable or %config leaked.
    assert "dcs_leak" not in shell.user_ns
    assert dcs_magics.short_errors is True
    shell.run_cell("dcs_leak = 1")
    shell.run_line_magic("config", "DcsMagics.short_errors = False")
    assert shell.user_ns["dcs_leak"] == 1 and dcs_magics.short_errors is False
    assert "dockerfile" in shell.magics_manager.magics["cell"]
    assert Path.cwd() == tmp_path


def test_shell_magic_errors_surface(shell: Any) -> None:
    # DcsMagics installs a custom handler for DcsError in run_cell; run_line_magic and
    # run_cell_magic must still raise, so tests can assert on the exception.
    def fail(line: str) -> None:
        raise DcsError(f"boom: {line}")

    shell.register_magic_function(fail, "line", "dcs_test_fail")
    try:
        with pytest.raises(DcsError, match="boom: now"):
            shell.run_line_magic("dcs_test_fail", "now")
    finally:
        del shell.magics_manager.magics["line"]["dcs_test_fail"]


def test_engine_at_a_dead_docker_host_fails_clearly(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    # A DOCKER_HOST pointing elsewhere is reported, not replaced by a local dockerd.
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/nothing.sock")
    with pytest.raises(EngineUnavailable, match="does not answer.*unset DOCKER_HOST"):
        connect_or_start(timeout_s=1)
