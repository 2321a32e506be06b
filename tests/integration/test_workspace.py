"""Workspace against a local HTTP server speaking the Clusters API (tests/support/clusters_api.py).

Real HTTP on 127.0.0.1, the real Databricks SDK Config resolving credentials, real urllib3
retries; the server records every request so the tests check what was actually sent.
"""

from __future__ import annotations

import base64
import logging
import socket
import time

import pytest
from support.clock import FakeTime
from support.clusters_api import (
    HOST_METADATA_PATH,
)

from dcs_magic import (
    ApiError,
    ClusterError,
    ClusterSpec,
    ConfigError,
    SpecError,
    Workspace,
)
from dcs_magic.adapters.workspace import SDK_PROBE_TIMEOUT_S, api_error, check_host
from dcs_magic.errors import (
    BadRequest,
    NotFound,
    PermissionDenied,
    TemporarilyUnavailable,
    TooManyRequests,
    Unauthenticated,
)

SPEC = ClusterSpec(cluster_name="dcs-test", spark_version="15.4.x-scala2.12", node_type_id="i3.xlarge",
                   num_workers=1, docker_image={"url": "registry.example.com/team/app@sha256:" + "b" * 64},
                   init_scripts=["/Workspace/Shared/init.sh"], autotermination_minutes=30)


pytestmark = pytest.mark.usefixtures("no_databricks_config")


# -- requests, auth, bodies ------------------------------------------------------------------------


def test_create_sends_the_validated_body_with_the_bearer_token(ws, api):
    cluster_id = ws.create_cluster(SPEC)
    [create] = api.requests_to("/api/2.1/clusters/create")
    assert create.headers["Authorization"] == f"Bearer {api.token}"
    assert create.headers["User-Agent"].startswith("dcs-magic/")
    assert create.json == SPEC.to_dict()
    assert api.create_rejections == []  # the SDK's own ClusterSpec type read it unchanged
    assert api.clusters[cluster_id]["docker_image"] == SPEC.to_dict()["docker_image"]


def test_invalid_spec_fails_before_any_request(ws, api):
    before = len(api.requests)
    with pytest.raises(SpecError) as info:
        ws.create_cluster(SPEC.replace(data_security_mode="USER_ISOLATION"))
    assert info.value.field == "data_security_mode"
    assert len(api.requests) == before


def test_create_accepts_a_plain_dict_body(ws, api):
    cluster_id = ws.create_cluster({"spark_version": "16.4.x-scala2.12", "num_workers": 0})
    assert api.clusters[cluster_id]["spark_version"] == "16.4.x-scala2.12"


def test_api_version_is_one_setting(api):
    with Workspace(host=api.host, token=api.token, api_version="2.0", backoff_factor=0) as ws:
        api.fail("/clusters/create", 503, {"error_code": "TEMPORARILY_UNAVAILABLE", "message": "busy"})
        cluster_id = ws.create_cluster(SPEC)
        ws.get_cluster(cluster_id)
        ws.spark_versions()
    cluster_paths = [r.path for r in api.requests if "/clusters/" in r.path]
    assert cluster_paths and all(p.startswith("/api/2.0/clusters/") for p in cluster_paths)
    assert len(api.requests_to("/clusters/create")) == 2  # the create policy is mounted for 2.0 too


def test_repr_and_errors_never_show_the_token(api):
    ws = Workspace(host=api.host, token=api.token)
    assert repr(ws) == f"Workspace(host={api.host!r}, profile=None)"
    assert api.token not in repr(ws) + str(vars(ws).get("host"))


# -- retries ------------------------------------------------------------------------------------


def test_429_retry_after_is_honoured(ws, api):
    cluster_id = ws.create_cluster(SPEC)
    api.fail("/clusters/get", 429, {"error_code": "REQUEST_LIMIT_EXCEEDED", "message": "slow down"},
             headers={"Retry-After": "1"}, times=2)
    assert ws.get_cluster(cluster_id)["cluster_id"] == cluster_id
    gets = api.requests_to("/clusters/get")
    assert len(gets) == 3
    assert gets[1].at - gets[0].at >= 0.95 and gets[2].at - gets[1].at >= 0.95


def test_503_on_create_is_retried_once_and_makes_one_cluster(ws, api):
    api.fail("/clusters/create", 503, {"error_code": "TEMPORARILY_UNAVAILABLE", "message": "try later"},
             headers={"Retry-After": "1"})
    cluster_id = ws.create_cluster(SPEC)
    creates = api.requests_to("/clusters/create")
    assert len(creates) == 2 and creates[1].at - creates[0].at >= 0.95
    assert list(api.clusters) == [cluster_id]


def test_502_on_create_is_not_retried_but_on_get_it_is(ws, api):
    api.fail("/clusters/create", 502, b"<html>Bad Gateway</html>")
    with pytest.raises(ApiError) as info:
        ws.create_cluster(SPEC)
    assert info.value.status == 502 and "Bad Gateway" in str(info.value)
    assert len(api.requests_to("/clusters/create")) == 1  # it may have been made: never twice
    api.fail("/clusters/spark-versions", 502, b"Bad Gateway", times=2)
    assert ws.spark_versions()
    assert len(api.requests_to("/clusters/spark-versions")) == 3


def test_exhausted_retries_raise_the_last_answer(api):
    with Workspace(host=api.host, token=api.token, retries=2, backoff_factor=0) as ws:
        api.fail("/clusters/spark-versions", 503, {"error_code": "TEMPORARILY_UNAVAILABLE",
                                                   "message": "The service is overloaded"}, times=10)
        with pytest.raises(ApiError) as info:
            ws.spark_versions()
    error = info.value
    assert (error.status, error.error_code) == (503, "TEMPORARILY_UNAVAILABLE")
    assert "The service is overloaded" in error.message and "after 2 retries" in error.hint
    assert len(api.requests_to("/clusters/spark-versions")) == 3


def test_unreachable_host_is_an_api_error_after_connection_retries(api):
    ws = Workspace(host=api.host, token=api.token, retries=1, backoff_factor=0)
    api.stop()
    with pytest.raises(ApiError) as info:
        ws.spark_versions()
    assert info.value.status is None and "cannot reach" in info.value.message
    assert api.token not in str(info.value)


# -- error answers --------------------------------------------------------------------------------


def test_400_shows_the_servers_message(ws, api):
    api.fail("/clusters/create", 400, {"error_code": "INVALID_PARAMETER_VALUE",
                                       "message": "Node type i3.xlarge is not supported in this region"})
    with pytest.raises(ApiError) as info:
        ws.create_cluster(SPEC)
    error = info.value
    assert (error.status, error.error_code) == (400, "INVALID_PARAMETER_VALUE")
    assert "Node type i3.xlarge is not supported in this region" in str(error)


def test_401_names_host_and_profile_never_the_token(api):
    ws = Workspace(host=api.host, token="dapi-wrong-token-value")
    with pytest.raises(ApiError) as info:
        ws.spark_versions()
    text = str(info.value)
    assert info.value.status == 401 and api.host in text and "profile" in text
    assert "dapi-wrong-token-value" not in text and "expired" in text


def test_403_from_a_profile_names_the_profile(api, tmp_path, monkeypatch):
    config = tmp_path / "databrickscfg"
    config.write_text(f"[readonly]\nhost = {api.host}\ntoken = {api.forbidden_token}\n")
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(config))
    ws = Workspace(profile="readonly")
    with pytest.raises(ApiError) as info:
        ws.create_cluster(SPEC)
    text = str(info.value)
    assert info.value.status == 403 and "profile readonly" in text and api.host in text
    assert api.forbidden_token not in text and "permission" in text


def test_unknown_cluster(ws, api):
    with pytest.raises(ApiError) as info:  # what the real service answers
        ws.get_cluster("0000-missing")
    assert info.value.status == 400 and "does not exist" in str(info.value) and "check the id" in info.value.hint
    api.fail("/clusters/get", 404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "Cluster gone"})
    with pytest.raises(ApiError) as info:
        ws.get_cluster("0000-missing")
    assert info.value.status == 404 and info.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert "check the id" in info.value.hint


# -- waiting ---------------------------------------------------------------------------------------


def test_wait_for_cluster_reports_states_and_returns_running_info(ws, api):
    api.script({"state": "PENDING", "state_message": "Finding instances"},
               {"state": "PENDING", "state_message": "Pulling image"},
               {"state": "PENDING", "state_message": "Pulling image"},
               {"state": "RUNNING", "state_message": ""})
    cluster_id = ws.create_cluster(SPEC)
    seen: list[tuple[str, str]] = []
    fake = FakeTime()
    info = ws.wait_for_cluster(cluster_id, on_state=lambda i: seen.append((i["state"], i["state_message"])),
                               sleep=fake.sleep, clock=fake.clock)
    assert info["state"] == "RUNNING" and info["cluster_id"] == cluster_id
    assert seen == [("PENDING", "Finding instances"), ("PENDING", "Pulling image"), ("RUNNING", "")]
    # The pause starts over after the state message changed: the next change may come soon.
    assert fake.sleeps == [1.0, 1.0, 2.0]


def test_the_pause_schedule_is_the_workspaces_own(api):
    api.script(*[{"state": "PENDING"}] * 3, {"state": "RUNNING"})
    ws = Workspace(host=api.host, token=api.token, poll_s=(0.1, 0.25))
    try:
        fake = FakeTime()
        ws.wait_for_cluster(ws.create_cluster(SPEC), sleep=fake.sleep, clock=fake.clock)
    finally:
        ws.close()
    assert fake.sleeps == pytest.approx([0.1, 0.2, 0.25])


def test_poll_interval_grows_and_is_capped_at_10_s(ws, api):
    api.script(*[{"state": "PENDING"}] * 14, {"state": "RUNNING"})
    cluster_id = ws.create_cluster(SPEC)
    fake = FakeTime()
    ws.wait_for_cluster(cluster_id, sleep=fake.sleep, clock=fake.clock)
    assert fake.sleeps == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 10.0, 10.0, 10.0, 10.0]


def test_wait_times_out_with_the_last_state(ws, api):
    api.script({"state": "PENDING"})
    cluster_id = ws.create_cluster(SPEC)
    fake = FakeTime()
    with pytest.raises(ClusterError) as info:
        ws.wait_for_cluster(cluster_id, timeout_s=12, sleep=fake.sleep, clock=fake.clock)
    assert info.value.state == "PENDING" and "after 12 s" in info.value.message
    assert sum(fake.sleeps) == 12 and fake.sleeps[-1] <= 10


@pytest.mark.parametrize("code, state_message, words", [
    ("DOCKER_IMAGE_PULL_FAILURE", "Failed to pull image: manifest unknown", "could not pull"),
    ("IMAGE_PULL_PERMISSION_DENIED", "unauthorized: authentication required", "basic_auth"),
    ("INIT_SCRIPT_FAILURE", "Init script /Workspace/Shared/init.sh exited with code 1", "init script"),
    ("DOCKER_INVALID_OS_EXCEPTION", "Unsupported OS", "linux/amd64"),
    ("CONTAINER_LAUNCH_FAILURE", "Container exited", "%dcs_check"),
    ("SECRET_RESOLUTION_ERROR", "Secret does not exist with scope: ci and key: pw", "READ the scope"),
])
def test_failed_start_raises_cluster_error_with_a_hint(ws, api, code, state_message, words):
    api.script({"state": "PENDING"}, {"state": "TERMINATING"},
               {"state": "TERMINATED", "state_message": state_message,
                "termination_reason": {"code": code, "type": "CLIENT_ERROR", "parameters": {"k": "v"}}})
    cluster_id = ws.create_cluster(SPEC)
    fake = FakeTime()
    with pytest.raises(ClusterError) as info:
        ws.wait_for_cluster(cluster_id, sleep=fake.sleep, clock=fake.clock)
    error = info.value
    assert (error.state, error.termination_code, error.termination_type) == ("TERMINATED", code, "CLIENT_ERROR")
    assert error.cluster_id == cluster_id and error.parameters == {"k": "v"}
    assert state_message in error.message and code in error.message
    assert words in error.hint and ws.cluster_url(cluster_id) in error.hint


def test_error_state_without_reason_still_explains(ws, api):
    api.script({"state": "ERROR", "state_message": "Unexpected failure"})
    cluster_id = ws.create_cluster(SPEC)
    with pytest.raises(ClusterError) as info:
        ws.wait_for_cluster(cluster_id, sleep=lambda s: None)
    assert info.value.state == "ERROR" and "Unexpected failure" in str(info.value)
    assert "event log" in info.value.hint


def test_terminate_list_versions_node_types(ws, api):
    cluster_id = ws.create_cluster(SPEC)
    ws.terminate_cluster(cluster_id)
    assert api.requests_to("/clusters/delete")[0].json == {"cluster_id": cluster_id}
    info = ws.get_cluster(cluster_id)
    assert info["state"] == "TERMINATED" and info["termination_reason"]["code"] == "USER_REQUEST"
    assert [c["cluster_id"] for c in ws.list_clusters()] == [cluster_id]
    assert {v["key"] for v in ws.spark_versions()} >= {"15.4.x-scala2.12", "15.4.x-cpu-ml-scala2.12"}
    assert any(n["node_type_id"] == "m6gd.large" for n in ws.node_types())
    assert ws.cluster_url(cluster_id) == f"{api.host}/compute/clusters/{cluster_id}"


def test_events_follow_next_page(ws, api):
    cluster_id = ws.create_cluster(SPEC)
    for i in range(119):
        api.add_event(cluster_id, "DRIVER_HEALTHY", {"n": i})
    events = list(ws.events(cluster_id, page_size=50))
    assert len(events) == 120 and events[0]["details"] == {"n": 118}  # newest first
    pages = api.requests_to("/clusters/events")
    assert [p.json.get("offset", 0) for p in pages] == [0, 50, 100]
    assert pages[0].json == {"cluster_id": cluster_id, "order": "DESC", "page_size": 50}
    before = len(api.requests_to("/clusters/events"))
    assert len(list(ws.events(cluster_id, page_size=50, limit=10, order="ASC"))) == 10
    assert len(api.requests_to("/clusters/events")) == before + 1


# -- uploads --------------------------------------------------------------------------------------


def test_upload_to_workspace_volumes_and_dbfs(ws, api):
    script = "#!/bin/bash\nset -e\necho hello\n"
    assert ws.upload("/Workspace/Users/me@example.com/init/setup.sh", script) == \
        {"workspace": {"destination": "/Workspace/Users/me@example.com/init/setup.sh"}}
    mkdirs, imported = api.requests_to("/workspace/mkdirs")[0], api.requests_to("/workspace/import")[0]
    assert mkdirs.json == {"path": "/Workspace/Users/me@example.com/init"}
    assert imported.json["format"] == "AUTO" and imported.json["overwrite"] is True
    assert base64.b64decode(imported.json["content"]).decode() == script

    assert ws.upload("/Volumes/main/default/scripts/my init.sh", script.encode()) == \
        {"volumes": {"destination": "/Volumes/main/default/scripts/my init.sh"}}
    [put] = api.requests_to("/my%20init.sh")
    assert put.method == "PUT" and put.query == {"overwrite": ["true"]}
    assert put.headers["Content-Type"] == "application/octet-stream"

    assert ws.upload("dbfs:/databricks/init/setup.sh", script) == \
        {"dbfs": {"destination": "dbfs:/databricks/init/setup.sh"}}
    assert api.requests_to("/dbfs/put")[0].json["path"] == "/databricks/init/setup.sh"
    assert api.files == {"/Workspace/Users/me@example.com/init/setup.sh": script.encode(),
                         "/Volumes/main/default/scripts/my init.sh": script.encode(),
                         "dbfs:/databricks/init/setup.sh": script.encode()}


@pytest.mark.parametrize("dest", ["s3://bucket/init.sh", "file:/databricks/init.sh", "init.sh"])
def test_upload_refuses_destinations_it_cannot_reach_before_sending(ws, api, dest):
    before = len(api.requests)
    with pytest.raises(SpecError):
        ws.upload(dest, "echo")
    assert len(api.requests) == before


# -- configuration --------------------------------------------------------------------------------


def test_no_configuration_says_how_to_configure():
    with pytest.raises(ConfigError) as info:
        Workspace()
    text = str(info.value)
    assert "DATABRICKS_HOST" in text and "~/.databrickscfg" in text and "--profile NAME" in text
    assert "Workspace(profile='NAME')" in text
    assert "%config" not in text  # the library's words serve `dcs` too; a notebook adds its own way


def test_missing_profile_is_named(tmp_path, monkeypatch):
    config = tmp_path / "databrickscfg"
    config.write_text("[dev]\nhost = https://dev.cloud.databricks.com\ntoken = dapi-x\n")
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(config))
    with pytest.raises(ConfigError, match="profile prod.*has no prod profile"):
        Workspace(profile="prod")


def test_profile_resolution_from_the_config_file(api, tmp_path, monkeypatch):
    config = tmp_path / "databrickscfg"
    config.write_text("[__settings__]\ndefault_profile = dev\n\n"
                      f"[dev]\nhost = {api.host}\ntoken = {api.token}\n\n"
                      f"[other]\nhost = {api.host}\ntoken = dapi-other\n")
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(config))
    ws = Workspace()
    assert (ws.host, ws.profile) == (api.host, "dev")
    assert ws.spark_versions()
    other = Workspace(profile="other")
    assert other.profile == "other"
    with pytest.raises(ApiError, match="profile other"):
        other.spark_versions()


def test_environment_variables(api, monkeypatch):
    monkeypatch.setenv("DATABRICKS_HOST", api.host)
    monkeypatch.setenv("DATABRICKS_TOKEN", api.token)
    assert Workspace().node_types()
    assert api.requests_to("/clusters/list-node-types")[0].headers["Authorization"] == f"Bearer {api.token}"


@pytest.mark.parametrize("host", ["http://example.com", "http://10.255.255.1:8080", "ftp://example.com"])
def test_plain_http_needs_a_loopback_host_and_nothing_is_sent(host):
    started = time.monotonic()
    with pytest.raises(ConfigError) as info:
        Workspace(host=host, token="dapi-x")
    assert time.monotonic() - started < 1.0  # a request to 10.255.255.1 would hang for seconds
    assert "dapi-x" not in str(info.value)


@pytest.mark.parametrize("source", ["default profile", "named profile", "settings default", "environment"])
def test_host_from_a_profile_or_the_environment_is_checked_before_the_metadata_probe(tmp_path, monkeypatch,
                                                                                        source):
    config = tmp_path / "databrickscfg"
    bad = "host = http://10.255.255.1\ntoken = dapi-x\n"
    good = "host = https://ok.cloud.databricks.com\ntoken = dapi-y\n"
    config.write_text({"default profile": f"[DEFAULT]\n{bad}",
                       "named profile": f"[DEFAULT]\n{good}\n[dev]\n{bad}",
                       "settings default": f"[__settings__]\ndefault_profile = dev\n\n[dev]\n{bad}",
                       "environment": f"[DEFAULT]\n{good}"}[source])
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(config))
    if source == "environment":
        monkeypatch.setenv("DATABRICKS_HOST", "http://10.255.255.1")
        monkeypatch.setenv("DATABRICKS_TOKEN", "dapi-x")
    started = time.monotonic()
    with pytest.raises(ConfigError, match="plain http"):
        Workspace(profile="dev" if source == "named profile" else None)
    assert time.monotonic() - started < 1.0  # the probe would wait SDK_PROBE_TIMEOUT_S on 10.255.255.1


@pytest.mark.parametrize("host, url", [
    ("adb-1.2.azuredatabricks.net/", "https://adb-1.2.azuredatabricks.net"),
    ("https://dbc-1.cloud.databricks.com/?o=1", "https://dbc-1.cloud.databricks.com"),
    ("http://localhost:8080", "http://localhost:8080"),
    ("http://127.0.0.5:1", "http://127.0.0.5:1"),
    ("http://[::1]:9", "http://[::1]:9"),
])
def test_check_host_normalises(host, url):
    assert check_host(host) == url


def test_the_sdk_probe_reads_host_metadata_without_credentials_or_warning(api, caplog):
    caplog.set_level(logging.DEBUG)
    Workspace(host=api.host, token=api.token)
    [probe] = api.requests_to(HOST_METADATA_PATH)  # the SDK's probe, answered like a workspace
    assert "Authorization" not in probe.headers  # the token never goes to the probe
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_the_sdk_probe_is_bounded_on_an_unreachable_loopback_host(caplog):
    """Nothing listens on the port: the SDK's probe fails within SDK_PROBE_TIMEOUT_S (plus
    one connect timeout per try), not its default 300 s, and the Workspace is still made."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again when the block ends: connection refused
    started = time.monotonic()
    ws = Workspace(host=f"http://127.0.0.1:{port}", token="dapi-x", timeout=1)
    assert time.monotonic() - started < SDK_PROBE_TIMEOUT_S + 30  # generous; unbounded is 300 s
    assert ws.host == f"http://127.0.0.1:{port}"
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("host metadata" in w for w in warnings) and not any("dapi-x" in w for w in warnings)


@pytest.mark.parametrize("status, body, klass", [
    (400, {"error_code": "INVALID_PARAMETER_VALUE", "message": "Cluster 0-x does not exist"}, NotFound),
    (400, {"error_code": "INVALID_PARAMETER_VALUE", "message": "spark_version is wrong"}, BadRequest),
    (401, {"error_code": "UNAUTHENTICATED", "message": "no"}, Unauthenticated),
    (403, {"error_code": "PERMISSION_DENIED", "message": "no"}, PermissionDenied),
    (404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "gone"}, NotFound),
    (429, {"error_code": "REQUEST_LIMIT_EXCEEDED", "message": "slow down"}, TooManyRequests),
    (503, {"error_code": "TEMPORARILY_UNAVAILABLE", "message": "later"}, TemporarilyUnavailable),
])
def test_api_error_picks_the_class_and_the_hint(status, body, klass):
    error = api_error(status, body, what="clusters/get", host="https://h.example.com", profile="dev", retried=2)
    assert type(error) is klass and error.status == status and error.error_code == body["error_code"]
    assert error.hint
    if klass in (Unauthenticated, PermissionDenied):
        assert "https://h.example.com" in error.message and "profile dev" in error.message
    if status >= 429:
        assert "after 2 retries" in error.hint


def test_feature_disabled_says_who_enables_it():
    error = api_error(400, {"error_code": "FEATURE_DISABLED", "message": "Container Services are disabled"},
                      what="clusters/create", host="https://h.example.com", profile=None)
    assert type(error) is BadRequest and "workspace admin" in error.hint


def test_local_returns_a_client_of_the_local_preflight_workspace(caplog):
    ws = Workspace.local()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # it answers the SDK's probe
    assert ws.host.startswith("http://127.0.0.1:")
    assert Workspace.local().host == ws.host  # one server per process
    assert ws.spark_versions() and ws.node_types()
