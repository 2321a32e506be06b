"""The local preflight workspace on the real engine and registries, through `Workspace`.

One good image (the DCS base + a baked init script) is built and pushed to the htpasswd
registry once per module; every termination path then reuses it or a tiny image.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from support.cleanup import DockerCleanup
from support.images import build_image, containers_of, push_image
from support.registry import Registry

from dcs_magic import ApiError, ClusterError, Workspace
from dcs_magic.preflight import LABEL, LocalWorkspaceServer, secret_variable

pytestmark = [pytest.mark.docker, pytest.mark.slow]

BAKED_SCRIPT = b"""#!/bin/bash
set -e
echo "file:$DB_CLUSTER_ID:$DCS_TEST_VAR" >> /tmp/dcs-init.log
echo "baked init script ran"
"""
WORKSPACE_SCRIPT = '#!/bin/bash\necho "workspace:$(id -u)" >> /tmp/dcs-init.log\n'
FAILING_SCRIPT = '#!/bin/bash\necho "installing things"\necho "boom: no such package" >&2\nexit 3\n'


@pytest.fixture(scope="module")
def good_image(dcs_base_image: str, auth_registry: Registry, docker_client: Any) -> Iterator[str]:
    """The DCS base + /opt/dcs/init-file.sh, pushed to the htpasswd registry."""
    ref = f"{auth_registry.host}/dcs-test-local-good:1"
    build_image(docker_client, ref, f"FROM {dcs_base_image}\nCOPY init-file.sh /opt/dcs/init-file.sh\n",
          {"init-file.sh": BAKED_SCRIPT})
    push_image(docker_client, ref, auth_registry.auth_config)
    yield ref
    docker_client.api.remove_image(ref)


@pytest.fixture(scope="module")
def ws() -> Iterator[Workspace]:
    workspace = Workspace.local()
    yield workspace
    workspace.close()


def spec(image: str, reg: Registry | None = None, *, password: str | None = None,
         init_scripts: list[dict] | None = None, **extra: Any) -> dict[str, Any]:
    docker_image: dict[str, Any] = {"url": image}
    if reg is not None and reg.username:
        docker_image["basic_auth"] = {"username": reg.username, "password": password or reg.password}
    body = {"cluster_name": "dcs-test-local", "spark_version": "15.4.x-scala2.12", "node_type_id": "local",
            "num_workers": 0, "docker_image": docker_image, **extra}
    if init_scripts:
        body["init_scripts"] = init_scripts
    return body


def launch_fails(ws: Workspace, client: Any, body: dict[str, Any]) -> tuple[ClusterError, str]:
    """Create, wait for the failure, and check that nothing was left behind."""
    cluster_id = ws.create_cluster(body)
    with pytest.raises(ClusterError) as info:
        ws.wait_for_cluster(cluster_id, timeout_s=240)
    assert info.value.state == "TERMINATED"
    assert containers_of(client, cluster_id) == []
    assert client.api.containers(all=True, filters={"label": "dcs_magic.check"}) == []
    return info.value, cluster_id


# -- the good path -------------------------------------------------------------------------


def test_good_image_reaches_running_with_its_init_scripts(
        ws: Workspace, good_image: str, auth_registry: Registry, docker_client: Any) -> None:
    item = ws.upload("/Workspace/Users/dcs-test@example.com/second.sh", WORKSPACE_SCRIPT)
    body = spec(good_image, auth_registry, spark_env_vars={"DCS_TEST_VAR": "hello"},
                init_scripts=[{"file": {"destination": "file:/opt/dcs/init-file.sh"}}, item])
    cluster_id = ws.create_cluster(body)
    info = ws.wait_for_cluster(cluster_id, timeout_s=240)
    try:
        assert info["state"] == "RUNNING" and "Local preflight" in info["state_message"]
        assert "password" not in info["docker_image"]["basic_auth"]
        assert auth_registry.password not in str(info)
        (container,) = containers_of(docker_client, cluster_id)
        log = docker_client.containers.get(container["Id"]).exec_run(["cat", "/tmp/dcs-init.log"])
        assert log.output.decode() == f"file:{cluster_id}:hello\nworkspace:0\n"  # both, in order

        (finished,) = ws.events(cluster_id, event_types=["INIT_SCRIPTS_FINISHED"])
        results = finished["details"]["init_scripts"]["cluster"]
        assert [r["status"] for r in results] == ["SUCCEEDED", "SUCCEEDED"]
        assert results[0]["file"] == {"destination": "file:/opt/dcs/init-file.sh"}
        assert all(isinstance(r["execution_duration_seconds"], int) for r in results)
        assert not any("output" in r or "exit_code" in r for r in results)  # not Databricks' fields
        types = [e["type"] for e in ws.events(cluster_id, order="ASC")]
        assert types == ["CREATING", "INIT_SCRIPTS_STARTED", "INIT_SCRIPTS_FINISHED", "RUNNING"]
        assert cluster_id in [c["cluster_id"] for c in ws.list_clusters()]
        paged = [e["type"] for e in ws.events(cluster_id, order="ASC", page_size=1)]  # next_page
        assert paged == types

        # A second server (a new process would do the same) finds the running cluster.
        other = LocalWorkspaceServer().start()
        try:
            with Workspace(host=other.host, token=other.token) as second:
                assert second.get_cluster(cluster_id)["state"] == "RUNNING"
        finally:
            other.stop()
    finally:
        ws.terminate_cluster(cluster_id)
    info = ws.get_cluster(cluster_id)
    assert info["state"] == "TERMINATED"
    assert info["termination_reason"]["code"] == "USER_REQUEST"
    assert containers_of(docker_client, cluster_id) == []


def test_terminate_while_pending(ws: Workspace, good_image: str, auth_registry: Registry,
                                 docker_client: Any) -> None:
    """A terminate request during the launch stops it at the next step and cleans up."""
    cluster_id = ws.create_cluster(spec(good_image, auth_registry))
    ws.terminate_cluster(cluster_id)
    with pytest.raises(ClusterError) as info:
        ws.wait_for_cluster(cluster_id, timeout_s=240)
    assert (info.value.state, info.value.termination_code) == ("TERMINATED", "USER_REQUEST")
    assert containers_of(docker_client, cluster_id) == []


def test_secret_reference_resolves_from_the_secret_store(
        ws: Workspace, good_image: str, auth_registry: Registry, docker_client: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """One cluster JSON for both: `{{secrets/scope/key}}` resolves from the scope the Secrets API
    filled (the DCS_SECRET_* variable is only a fallback, unset here); the value is in no answer,
    event, status page, launch log line or process command line."""
    reference = "{{secrets/dcs-test-store/registry-password}}"
    monkeypatch.delenv(secret_variable(reference), raising=False)
    if "dcs-test-store" not in {s["name"] for s in ws.list_secret_scopes()}:
        ws.create_secret_scope("dcs-test-store")
    ws.put_secret("dcs-test-store", "registry-password", auth_registry.password)
    cluster_id = ws.create_cluster(spec(good_image, auth_registry, password=reference))
    try:
        info = ws.wait_for_cluster(cluster_id, timeout_s=240)
        assert info["state"] == "RUNNING"
        page = requests.get(f"{ws.host}/clusters/{cluster_id}", timeout=10).text
        processes = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
        seen = {"info": json.dumps(info), "events": json.dumps(list(ws.events(cluster_id))), "page": page,
                "secrets/list": json.dumps(ws.list_secrets("dcs-test-store")), "ps": processes}
        assert [where for where, text in seen.items() if auth_registry.password in text] == []
    finally:
        ws.terminate_cluster(cluster_id)
    assert containers_of(docker_client, cluster_id) == []


def test_unresolvable_secret_reference(ws: Workspace, good_image: str, auth_registry: Registry,
                                       docker_client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DCS_SECRET_DCS_TEST_MISSING", raising=False)
    body = spec(good_image, auth_registry, password="{{secrets/dcs-test/missing}}")
    error, _ = launch_fails(ws, docker_client, body)
    assert error.termination_code == "SECRET_RESOLUTION_ERROR"
    assert "DCS_SECRET_DCS_TEST_MISSING" in error.message  # the fallback variable, after the store
    assert "dcs secrets put --local --create-scope dcs-test missing" in error.message


# -- every termination path ----------------------------------------------------------------


def test_image_that_does_not_exist(ws: Workspace, auth_registry: Registry, docker_client: Any) -> None:
    missing = f"{auth_registry.host}/dcs-test-missing:1"
    error, _ = launch_fails(ws, docker_client, spec(missing, auth_registry))
    assert error.termination_code == "DOCKER_IMAGE_PULL_FAILURE"
    assert "dcs-test-missing:1: the registry has no such tag or digest" in error.message
    assert "404 Not Found (manifest_unknown: manifest unknown)" in error.message  # the registry's words


def test_wrong_registry_password(ws: Workspace, good_image: str, auth_registry: Registry,
                                 docker_client: Any) -> None:
    wrong = "dcs-test-wrong-password"
    error, cluster_id = launch_fails(ws, docker_client, spec(good_image, auth_registry, password=wrong))
    assert error.termination_code == "IMAGE_PULL_PERMISSION_DENIED"
    assert "basic_auth" in error.message
    assert wrong not in str(ws.get_cluster(cluster_id)) and wrong not in str(error)


def test_image_without_java(ws: Workspace, busybox_image: str, registry: Registry, docker_client: Any,
                            docker_cleanup: DockerCleanup) -> None:
    ref = docker_cleanup.add(f"{registry.host}/{docker_cleanup.unique('nojava')}:1")
    docker_client.images.get(busybox_image).tag(ref)
    push_image(docker_client, ref, registry.auth_config)
    error, _ = launch_fails(ws, docker_client, spec(ref))
    assert error.termination_code == "CONTAINER_LAUNCH_FAILURE"
    assert "java" in error.message and "bash" in error.message and "python" in error.message
    assert "java is not on the PATH" in error.message


def test_arm64_image(ws: Workspace, registry: Registry, docker_client: Any, docker_cleanup: DockerCleanup,
                     tiny_images: Any) -> None:
    ref = docker_cleanup.add(f"{registry.host}/{docker_cleanup.unique('arm64')}:1")
    tiny_images.load(docker_client, ref, [tiny_images.layer({"bin/sh": tiny_images.aarch64_elf()})],
                     architecture="arm64")
    push_image(docker_client, ref, registry.auth_config)
    error, _ = launch_fails(ws, docker_client, spec(ref))
    assert error.termination_code == "DOCKER_INVALID_OS_EXCEPTION"
    assert "arm64" in error.message and "linux/amd64" in error.message


def test_init_script_exits_non_zero(ws: Workspace, good_image: str, auth_registry: Registry,
                                    docker_client: Any) -> None:
    item = ws.upload("/Volumes/main/default/dcs_test/fail.sh", FAILING_SCRIPT)
    body = spec(good_image, auth_registry,
                init_scripts=[{"file": {"destination": "file:/opt/dcs/init-file.sh"}}, item])
    error, cluster_id = launch_fails(ws, docker_client, body)
    assert error.termination_code == "INIT_SCRIPT_FAILURE"
    assert ("Cluster scoped init script volumes:/Volumes/main/default/dcs_test/fail.sh "
            "failed: Script exit status is non-zero (init script 2 exited with code 3)") in error.message
    assert "boom: no such package" not in error.message  # the output can hold secrets: in its stderr log only
    (finished,) = ws.events(cluster_id, event_types=["INIT_SCRIPTS_FINISHED"])
    first, second = finished["details"]["init_scripts"]["cluster"]
    assert first["status"] == "SUCCEEDED"
    assert (second["status"], second["error_message"]) == ("FAILED_EXECUTION", "Script exit status is non-zero")


@pytest.mark.parametrize("destination, expected", [
    ({"file": {"destination": "file:/opt/dcs/nope.sh"}},
     "The script file:/opt/dcs/nope.sh does not exist in the image"),
    ({"dbfs": {"destination": "dbfs:/dcs-test/never-uploaded.sh"}},
     "The script dbfs:/dcs-test/never-uploaded.sh was not uploaded"),
])
def test_init_script_path_does_not_exist(ws: Workspace, good_image: str, auth_registry: Registry,
                                         docker_client: Any, destination: dict, expected: str) -> None:
    error, cluster_id = launch_fails(ws, docker_client, spec(good_image, auth_registry, init_scripts=[destination]))
    assert error.termination_code == "INIT_SCRIPT_FAILURE"
    assert expected in error.message
    (finished,) = ws.events(cluster_id, event_types=["INIT_SCRIPTS_FINISHED"])
    (result,) = finished["details"]["init_scripts"]["cluster"]
    assert result["status"] == "FAILED_FETCH" and expected in result["error_message"]


def test_engine_down(busybox_image: str, tmp_path: Any) -> None:
    server = LocalWorkspaceServer(docker_host=f"unix://{tmp_path}/no-engine.sock").start()
    try:
        with Workspace(host=server.host, token=server.token) as ws:
            cluster_id = ws.create_cluster(spec(busybox_image))
            with pytest.raises(ClusterError) as info:
                ws.wait_for_cluster(cluster_id, timeout_s=60)
    finally:
        server.stop()
    assert info.value.termination_code == "CONTAINER_LAUNCH_FAILURE"
    assert info.value.termination_type == "SERVICE_FAULT"
    assert "Docker engine is not reachable" in info.value.message


# -- API surface ------------------------------------------------------------------------------


def test_unknown_cluster_id(ws: Workspace) -> None:
    for call in (ws.get_cluster, ws.terminate_cluster, lambda cid: list(ws.events(cid))):
        with pytest.raises(ApiError) as info:
            call("0101-000000-dcstest0")
        assert (info.value.status, info.value.error_code) == (404, "RESOURCE_DOES_NOT_EXIST")


def test_requests_without_the_token_are_refused(ws: Workspace) -> None:
    url = f"{ws.host}/api/2.1/clusters/spark-versions"
    assert requests.get(url, timeout=10).status_code == 401
    answer = requests.get(url, headers={"Authorization": "Bearer not-the-token"}, timeout=10)
    assert answer.status_code == 401 and answer.json()["error_code"] == "UNAUTHENTICATED"


def test_invalid_body(ws: Workspace) -> None:
    url = f"{ws.host}/api/2.1/clusters/create"
    headers = dict(ws._headers())
    answer = requests.post(url, json={"spark_version": "15.4.x-scala2.12", "num_workers": 0,
                                      "autotermination_minutes": 5, "docker_image": {"url": "x:1"}},
                           headers=headers, timeout=10)
    assert answer.status_code == 400 and answer.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "autotermination_minutes" in answer.json()["message"]
    answer = requests.post(url, json={"spark_version": "15.4.x-scala2.12", "num_workers": 0},
                           headers=headers, timeout=10)
    assert answer.status_code == 400 and "docker_image.url" in answer.json()["message"]


def test_spark_versions_and_node_types_say_local(ws: Workspace) -> None:
    versions = ws.spark_versions()
    # The supported lines of dcs_magic.model.runtime, each marked local; 17 and later are Scala 2.13 only.
    by_key = {v["key"]: v["name"] for v in versions}
    assert by_key["15.4.x-scala2.12"].startswith("15.4 LTS") and by_key["15.4.x-scala2.12"].endswith("(local preflight)")
    assert "18.x-scala2.13" in by_key and "17.3.x-scala2.13" in by_key and "17.3.x-scala2.12" not in by_key
    assert "13.3.x-scala2.12" not in by_key  # out of support since 2026-08-22
    nodes = {n["node_type_id"]: n for n in ws.node_types()}
    assert "local" in nodes["local"]["description"].lower()
    # The clouds' own names are accepted, so one cluster.json serves both; Graviton is marked.
    assert {"i3.xlarge", "Standard_DS3_v2", "n2-standard-4"} <= set(nodes)
    assert nodes["m6gd.large"]["is_graviton"] and not nodes["i3.xlarge"]["is_graviton"]


# -- stopping at once (issue 13.11, 13.15) -------------------------------------------------


def _wait_for(predicate: Any, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_terminate_stops_a_running_init_script_at_once(
        ws: Workspace, good_image: str, auth_registry: Registry, docker_client: Any) -> None:
    item = ws.upload("/Workspace/Users/dcs-test@example.com/slow.sh", "#!/bin/bash\nsleep 300\n")
    cluster_id = ws.create_cluster(spec(good_image, auth_registry, init_scripts=[item]))
    try:
        _wait_for(lambda: "Running init script 1/1" in ws.get_cluster(cluster_id)["state_message"], 240,
                  "the init script to start")
        time.sleep(0.5)  # the script is inside `sleep 300` now
        asked = time.monotonic()
        ws.terminate_cluster(cluster_id)
        info = _wait_for(lambda: (c := ws.get_cluster(cluster_id))["state"] == "TERMINATED" and c, 60,
                         "TERMINATED")
        assert time.monotonic() - asked < 30  # not the script's 300 s (generous: a loaded engine)
    finally:
        ws.terminate_cluster(cluster_id)
    assert info["termination_reason"]["code"] == "USER_REQUEST"
    assert containers_of(docker_client, cluster_id) == []


_LAUNCH_AND_WAIT = """
import json, sys
from dcs_magic import Workspace
ws = Workspace.local()
cluster_id = ws.create_cluster(json.loads(sys.argv[1]))
print(cluster_id, flush=True)
ws.wait_for_cluster(cluster_id, timeout_s=600)
"""


def test_ctrl_c_during_the_check_leaves_no_container(
        busybox_image: str, registry: Registry, docker_client: Any, docker_cleanup: DockerCleanup,
        tiny_images: Any) -> None:
    """`dcs launch --local --wait` interrupted while the image is checked: the process's exit
    cancels the launch and its worker removes the probe and the driver, which is created and
    started while the check runs (the two overlap; a launch waits for the longer one)."""
    import signal
    import subprocess
    import sys

    from support.images import busybox_rootfs_tar

    ref = docker_cleanup.add(f"{registry.host}/{docker_cleanup.unique('hangcheck')}:1")
    hang = tiny_images.layer({"databricks/python3/bin/python3": b"#!/bin/sh\nsleep 300\n"})
    tiny_images.load(docker_client, ref, [busybox_rootfs_tar(), hang])
    push_image(docker_client, ref, registry.auth_config)
    proc = subprocess.Popen([sys.executable, "-c", _LAUNCH_AND_WAIT, json.dumps(spec(ref))],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        cluster_id = proc.stdout.readline().strip()
        probes = {"label": "dcs_magic.check", "ancestor": ref}
        _wait_for(lambda: docker_client.api.containers(filters=probes), 120, "the probe container")
        # The probe hangs (its python sleeps), yet the driver comes up meanwhile.
        _wait_for(lambda: docker_client.api.containers(filters={"label": f"{LABEL}={cluster_id}"}), 120,
                  "the driver container running during the check")
        assert docker_client.api.containers(filters=probes)  # the check is still running
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "KeyboardInterrupt" in stderr  # it was interrupted, not finished
    assert docker_client.api.containers(all=True, filters=probes) == []
    assert containers_of(docker_client, cluster_id) == []
