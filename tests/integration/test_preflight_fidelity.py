"""The README's fidelity table, row by row, through the official databricks-sdk client.

Every row is a way a real cluster start fails; each test sends the same body a user would
send to Databricks (`WorkspaceClient.clusters.create` against the local preflight workspace)
and asserts what Databricks would answer: a 400 INVALID_PARAMETER_VALUE at create, or a
TERMINATED cluster whose `termination_reason` (read back as the SDK's own enums) has the
real code, type and parameters. A control reaches RUNNING with the same image and registry,
so no row holds vacuously. The registry rows run with the image already in the local
engine, where the engine alone would have said "Image is up to date".
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import InvalidParameterValue
from databricks.sdk.service import compute
from support.cleanup import DockerCleanup
from support.credential_helpers import ANSWERING, FAILING, on_path
from support.images import build_image, containers_of, push_image
from support.local_sdk import sdk_client, settle
from support.registry import Registry

from dcs_magic.preflight import LocalWorkspaceServer

pytestmark = [pytest.mark.docker, pytest.mark.slow]

# termination_reason.parameters keys Databricks sends (dcs-facts.md, "Why a start fails").
DATABRICKS_PARAMETER_KEYS = {"databricks_error_message", "username", "instance_id", "instance_pool_id",
                             "instance_pool_error_code", "inactivity_duration_min"}
FAILING_SCRIPT = b'#!/bin/bash\necho "installing things"\nexit 3\n'


@pytest.fixture(scope="module")
def server() -> Iterator[LocalWorkspaceServer]:
    local = LocalWorkspaceServer().start()
    yield local
    local.stop()


@pytest.fixture(scope="module")
def w(server: LocalWorkspaceServer, tmp_path_factory: pytest.TempPathFactory) -> WorkspaceClient:
    """The official client, configured for the local workspace only (no ~/.databrickscfg)."""
    return sdk_client(server, tmp_path_factory.mktemp("sdk"))


@pytest.fixture(scope="module")
def private_image(dcs_base_image: str, auth_registry: Registry, docker_client: Any) -> Iterator[str]:
    """The DCS base (Python 3.11, JDK 17) in the htpasswd registry, and in the local engine."""
    ref = f"{auth_registry.host}/dcs-test-fidelity:1"
    build_image(docker_client, ref, f"FROM {dcs_base_image}\nCOPY fail.sh /opt/dcs/fail.sh\n",
                {"fail.sh": FAILING_SCRIPT})
    push_image(docker_client, ref, auth_registry.auth_config)
    yield ref
    docker_client.api.remove_image(ref)


def auth(reg: Registry, password: str | None = None) -> compute.DockerBasicAuth:
    return compute.DockerBasicAuth(username=reg.username, password=password or reg.password)


def create(w: WorkspaceClient, image: str, basic_auth: compute.DockerBasicAuth | None = None,
           **fields: Any) -> str:
    body: dict[str, Any] = {"cluster_name": "dcs-test-fidelity", "spark_version": "15.4.x-scala2.12",
                            "node_type_id": "i3.xlarge", "num_workers": 0,
                            "data_security_mode": compute.DataSecurityMode.SINGLE_USER,
                            "single_user_name": "dcs-test@example.com",
                            "docker_image": compute.DockerImage(url=image, basic_auth=basic_auth), **fields}
    cluster_id = w.clusters.create(**body).cluster_id
    assert cluster_id
    return cluster_id



def fails(w: WorkspaceClient, client: Any, cluster_id: str) -> compute.TerminationReason:
    """The cluster ends TERMINATED, leaves no container, and tells it as Databricks does."""
    details = settle(w, cluster_id)
    assert details.state == compute.State.TERMINATED, details.state_message
    assert containers_of(client, cluster_id) == []
    reason = details.termination_reason
    assert reason is not None and isinstance(reason.code, compute.TerminationReasonCode)
    assert isinstance(reason.type, compute.TerminationReasonType)
    assert reason.parameters and reason.parameters["databricks_error_message"] == details.state_message
    assert set(reason.parameters) <= DATABRICKS_PARAMETER_KEYS, reason.parameters
    events = list(w.clusters.events(cluster_id))
    assert_databricks_events(events)
    (terminating,) = [e for e in events if e.type == compute.EventType.TERMINATING]
    assert terminating.details and terminating.details.reason == reason  # the reason rides on it
    return reason


def assert_databricks_events(events: list[compute.ClusterEvent]) -> None:
    """Only real EventType values (the SDK reads others as None) and only EventDetails fields."""
    known = {field.name for field in compute.EventDetails.__dataclass_fields__.values()}
    for event in events:
        assert isinstance(event.type, compute.EventType), event
        raw = event.as_dict().get("details") or {}
        assert set(raw) <= known, raw


# -- control -------------------------------------------------------------------------------------


def test_control_the_same_image_and_registry_reach_running(
        w: WorkspaceClient, private_image: str, auth_registry: Registry, docker_client: Any) -> None:
    cluster_id = create(w, private_image, auth(auth_registry))
    try:
        details = settle(w, cluster_id)
        assert details.state == compute.State.RUNNING, details.state_message
        events = list(w.clusters.events(cluster_id, order=compute.GetEventsOrder.ASC))
        assert [e.type for e in events] == [compute.EventType.CREATING, compute.EventType.RUNNING]
        assert_databricks_events(events)
    finally:
        w.clusters.delete(cluster_id)
    assert fails(w, docker_client, cluster_id).code == compute.TerminationReasonCode.USER_REQUEST


# -- registry: asked as a fresh VM would, although the image is in the local engine ----------------


def test_wrong_password_with_the_image_in_the_engine(
        w: WorkspaceClient, private_image: str, auth_registry: Registry, docker_client: Any) -> None:
    docker_client.images.get(private_image)  # the engine holds it: "Image is up to date" otherwise
    reason = fails(w, docker_client, create(w, private_image, auth(auth_registry, "wrong-password")))
    assert reason.code == compute.TerminationReasonCode.IMAGE_PULL_PERMISSION_DENIED
    assert reason.type == compute.TerminationReasonType.CLIENT_ERROR
    message = reason.parameters["databricks_error_message"]
    assert "401 Unauthorized" in message and "dcs-test" in message and "wrong-password" not in message


def test_pinned_digest_in_the_engine_still_asks_the_registry(
        w: WorkspaceClient, private_image: str, auth_registry: Registry, docker_client: Any) -> None:
    digest = auth_registry.manifest_digest("dcs-test-fidelity", "1")
    pinned = f"{auth_registry.host}/dcs-test-fidelity@{digest}"
    assert pinned in docker_client.images.get(private_image).attrs["RepoDigests"]
    reason = fails(w, docker_client, create(w, pinned, auth(auth_registry, "wrong-password")))
    assert reason.code == compute.TerminationReasonCode.IMAGE_PULL_PERMISSION_DENIED


@pytest.mark.parametrize("login", ["auths", "credential helper", "failing helper"])
def test_private_registry_without_basic_auth_and_with_a_docker_login(
        w: WorkspaceClient, private_image: str, auth_registry: Registry, docker_client: Any,
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch, login: str) -> None:
    # This machine's own `docker login` for the registry (in config.json's auths or behind a
    # credential helper) never counts on a cluster: the launch fails all the same, and its
    # message says the login that can read the image is what basic_auth needs.
    import base64

    helpers = on_path(tmp_path, monkeypatch, auth_registry)
    if login == "auths":
        token = base64.b64encode(f"{auth_registry.username}:{auth_registry.password}".encode()).decode()
        helpers.configure(auths={auth_registry.host: {"auth": token}})
    else:
        helpers.add("dcstest", FAILING if login == "failing helper" else ANSWERING)
        helpers.configure(credsStore="dcstest")
    reason = fails(w, docker_client, create(w, private_image))
    assert reason.code == compute.TerminationReasonCode.IMAGE_PULL_PERMISSION_DENIED
    message = reason.parameters["databricks_error_message"]
    assert "no basic_auth" in message and auth_registry.password not in message
    said = {"auths": "This machine's docker login (config.json auths) can read the image",
            "credential helper": "This machine's docker login (docker-credential-dcstest) can read the image"}
    if login in said:
        assert said[login] in message and "{{secrets/<scope>/<key>}}" in message
    else:
        assert "can read the image" not in message  # a helper that cannot answer says nothing


def test_tag_missing_from_the_registry_though_tagged_locally(
        w: WorkspaceClient, private_image: str, auth_registry: Registry, docker_client: Any,
        docker_cleanup: DockerCleanup) -> None:
    never_pushed = docker_cleanup.add(f"{auth_registry.host}/dcs-test-fidelity:never-pushed")
    docker_client.images.get(private_image).tag(never_pushed)
    reason = fails(w, docker_client, create(w, never_pushed, auth(auth_registry)))
    assert reason.code == compute.TerminationReasonCode.DOCKER_IMAGE_PULL_FAILURE
    assert "manifest unknown" in reason.parameters["databricks_error_message"]


def test_the_registry_digest_wins_over_a_different_local_copy(
        w: WorkspaceClient, private_image: str, registry: Registry, busybox_image: str,
        docker_client: Any, docker_cleanup: DockerCleanup) -> None:
    ref = docker_cleanup.add(f"{registry.host}/{docker_cleanup.unique('moved')}:1")
    docker_client.images.get(private_image).tag(ref)
    push_image(docker_client, ref)
    served = docker_client.images.get(ref).id
    docker_client.images.get(busybox_image).tag(ref)  # the local tag now means something else
    cluster_id = create(w, ref)
    try:
        assert settle(w, cluster_id).state == compute.State.RUNNING
        (driver,) = containers_of(docker_client, cluster_id)
        assert docker_client.containers.get(driver["Id"]).image.id == served
    finally:
        w.clusters.delete(cluster_id)


# -- the image ---------------------------------------------------------------------------------------


def test_wrong_architecture(w: WorkspaceClient, registry: Registry, docker_client: Any,
                            docker_cleanup: DockerCleanup, tiny_images: Any) -> None:
    ref = docker_cleanup.add(f"{registry.host}/{docker_cleanup.unique('arm64')}:1")
    tiny_images.load(docker_client, ref, [tiny_images.layer({"bin/sh": tiny_images.aarch64_elf()})],
                     architecture="arm64")
    push_image(docker_client, ref)
    reason = fails(w, docker_client, create(w, ref))
    assert reason.code == compute.TerminationReasonCode.DOCKER_INVALID_OS_EXCEPTION


def test_python_of_the_image_does_not_match_the_runtime(
        w: WorkspaceClient, private_image: str, auth_registry: Registry, docker_client: Any) -> None:
    reason = fails(w, docker_client, create(w, private_image, auth(auth_registry),
                                            spark_version="17.3.x-scala2.13"))
    assert reason.code == compute.TerminationReasonCode.CONTAINER_LAUNCH_FAILURE
    message = reason.parameters["databricks_error_message"]
    assert "3.11" in message and "3.12" in message


@pytest.mark.parametrize("removed, named", [
    ("/usr/lib/jvm /usr/bin/java /etc/alternatives/java", "java"),
    ("/databricks/python3", "/databricks/python3"),
])
def test_image_missing_a_requirement(w: WorkspaceClient, dcs_base_image: str, registry: Registry,
                                     docker_client: Any, docker_cleanup: DockerCleanup, removed: str,
                                     named: str) -> None:
    ref = docker_cleanup.add(f"{registry.host}/{docker_cleanup.unique('lacking')}:1")
    build_image(docker_client, ref, f"FROM {dcs_base_image}\nRUN rm -rf {removed}\n", {})
    push_image(docker_client, ref)
    reason = fails(w, docker_client, create(w, ref))
    assert reason.code == compute.TerminationReasonCode.CONTAINER_LAUNCH_FAILURE
    assert named in reason.parameters["databricks_error_message"]


# -- the cluster JSON, refused at create as the Clusters API does ------------------------------------


@pytest.mark.parametrize("fields, words", [
    ({"spark_version": "15.4.x-cpu-ml-scala2.12"}, "Runtime for ML"),
    ({"data_security_mode": compute.DataSecurityMode.USER_ISOLATION}, "standard (shared) access mode"),
    ({"data_security_mode": compute.DataSecurityMode.DATA_SECURITY_MODE_STANDARD}, "standard"),
    ({"data_security_mode": compute.DataSecurityMode.DATA_SECURITY_MODE_AUTO}, "standard access mode"),
    ({"node_type_id": "m6gd.large"}, "Graviton"),
    ({"driver_node_type_id": "m7gd.xlarge"}, "Graviton"),
    ({"node_type_id": "i3.gigantic"}, "Node type i3.gigantic is not supported"),
    ({"spark_version": "99.1.x-scala2.13"}, "99.1"),
])
def test_refused_at_create(w: WorkspaceClient, private_image: str, fields: dict[str, Any], words: str) -> None:
    with pytest.raises(InvalidParameterValue) as info:
        create(w, private_image, **fields)
    assert words in str(info.value)


def test_real_node_type_names_are_accepted_and_doctor_agrees(
        w: WorkspaceClient, server: LocalWorkspaceServer) -> None:
    from dcs_magic import ClusterSpec, Workspace
    from dcs_magic.ops.doctor import doctor

    offered = {n.node_type_id for n in w.clusters.list_node_types().node_types or []}
    assert {"local", "i3.xlarge", "Standard_DS3_v2", "n2-standard-4"} <= offered
    with Workspace(host=server.host, token=server.token) as ws:
        for node, ok in (("i3.xlarge", True), ("m6gd.large", False), ("i3.gigantic", False)):
            spec = ClusterSpec(spark_version="15.4.x-scala2.12", node_type_id=node, num_workers=0)
            (item,) = [i for i in doctor(ws, spec, probe=lambda *a: None).checks if i.name == "node types"]
            assert item.ok is ok, (node, item.detail)


# -- init scripts, secrets ------------------------------------------------------------------------------


def test_init_script_failure(w: WorkspaceClient, private_image: str, auth_registry: Registry,
                             docker_client: Any) -> None:
    scripts = [compute.InitScriptInfo(file=compute.LocalFileInfo(destination="file:/opt/dcs/fail.sh")),
               compute.InitScriptInfo(file=compute.LocalFileInfo(destination="file:/opt/dcs/fail.sh"))]
    cluster_id = create(w, private_image, auth(auth_registry), init_scripts=scripts)
    reason = fails(w, docker_client, cluster_id)
    assert reason.code == compute.TerminationReasonCode.INIT_SCRIPT_FAILURE
    assert reason.parameters["instance_id"]
    (finished,) = [e for e in w.clusters.events(cluster_id) if e.type == compute.EventType.INIT_SCRIPTS_FINISHED]
    assert finished.details and finished.details.init_scripts
    first, second = finished.details.init_scripts.cluster or []
    status = compute.InitScriptExecutionDetailsInitScriptExecutionStatus
    assert first.status == status.FAILED_EXECUTION and first.error_message == "Script exit status is non-zero"
    assert first.file and first.file.destination == "file:/opt/dcs/fail.sh"
    assert isinstance(first.execution_duration_seconds, int)
    assert second.status == status.SKIPPED


def test_unresolved_secret(w: WorkspaceClient, private_image: str, auth_registry: Registry,
                           docker_client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DCS_SECRET_DCS_TEST_NOWHERE", raising=False)
    reason = fails(w, docker_client, create(w, private_image, auth(auth_registry, "{{secrets/dcs-test/nowhere}}")))
    assert reason.code == compute.TerminationReasonCode.SECRET_RESOLUTION_ERROR


# -- lifecycle -------------------------------------------------------------------------------------------


def test_autotermination_minutes_is_honoured(private_image: str, auth_registry: Registry,
                                             docker_client: Any, tmp_path: Any) -> None:
    fast = LocalWorkspaceServer(minute_s=0.05).start()  # a "minute" of 50 ms
    try:
        w = sdk_client(fast, tmp_path)
        cluster_id = create(w, private_image, auth(auth_registry), autotermination_minutes=10)
        assert settle(w, cluster_id).state == compute.State.RUNNING
        deadline = time.monotonic() + 30
        while w.clusters.get(cluster_id).state != compute.State.TERMINATED and time.monotonic() < deadline:
            time.sleep(0.1)
        reason = fails(w, docker_client, cluster_id)
        assert reason.code == compute.TerminationReasonCode.INACTIVITY
        assert reason.parameters["inactivity_duration_min"] == "10"
    finally:
        fast.stop()


def test_sdk_create_and_wait_reports_the_failure(w: WorkspaceClient, private_image: str,
                                                 auth_registry: Registry) -> None:
    """The SDK's own waiter: what `databricks clusters create` users see."""
    from databricks.sdk.errors import OperationFailed

    with pytest.raises(OperationFailed) as info:
        w.clusters.create_and_wait(cluster_name="dcs-test-fidelity", spark_version="15.4.x-scala2.12",
                                   node_type_id="i3.xlarge", num_workers=0,
                                   docker_image=compute.DockerImage(url=private_image),
                                   timeout=timedelta(minutes=4))
    assert "TERMINATED" in str(info.value) and "no basic_auth" in str(info.value)
