"""Cluster log delivery (`cluster_log_conf`) by the local preflight workspace, read back with the
official databricks-sdk as from Databricks: Files API for volumes, DBFS API for dbfs.

The Docker tests launch their three clusters at once (one module fixture) and each reads one:
    init scripts   volumes destination, one script that succeeds, one that fails
                   -> INIT_SCRIPT_FAILURE; both scripts' logs under init_scripts/<id>_<ip>/
    the check      dbfs destination, an image without java -> CONTAINER_LAUNCH_FAILURE;
                   driver/log4j-active.log names the check's failing row
    a job run      runs/submit, a Python task that prints and raises -> driver/stdout, stderr
The endpoints themselves (404s, Range, listings) are tested on a server without an engine.
"""

from __future__ import annotations

import base64
import io
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import BadRequest, NotFound, ResourceDoesNotExist
from databricks.sdk.service import compute, jobs
from support.images import build_image, containers_of, push_image
from support.local_sdk import sdk_client, settle
from support.registry import Registry

from dcs_magic.preflight import LocalWorkspaceServer

VOLUME = "/Volumes/main/default/dcs_test_logs"
OK_SCRIPT = b'#!/bin/bash\necho "ok: to stdout"\necho "ok: to stderr" >&2\n'
FAIL_SCRIPT = b'#!/bin/bash\necho "installing"\necho "boom: apt-get could not find libfoo" >&2\nexit 7\n'
JOB_SCRIPT = b'import sys\nprint("job: hello from the task", flush=True)\nraise RuntimeError("the input table is empty")\n'
SPARK_VERSION = "15.4.x-scala2.12"
NAME = "dcs-test-logs"  # images and (through them) driver containers: marked for tests/support/cleanup.py



def cluster_body(image: str, reg: Registry | None = None, **fields: Any) -> dict[str, Any]:
    auth = compute.DockerBasicAuth(username=reg.username, password=reg.password) if reg else None
    return {"cluster_name": "dcs-test-logs", "spark_version": SPARK_VERSION, "node_type_id": "i3.xlarge",
            "num_workers": 0, "docker_image": compute.DockerImage(url=image, basic_auth=auth), **fields}


def volumes_conf(path: str) -> compute.ClusterLogConf:
    return compute.ClusterLogConf(volumes=compute.VolumesStorageInfo(destination=path))


# -- the endpoints and the validation, without an engine ---------------------------------------------


@pytest.fixture(scope="module")
def offline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalWorkspaceServer, WorkspaceClient]]:
    server = LocalWorkspaceServer(docker_host="unix:///nonexistent/dcs-test.sock").start()
    yield server, sdk_client(server, tmp_path_factory.mktemp("sdk"))
    server.stop()


def test_files_and_dbfs_endpoints(offline: tuple[LocalWorkspaceServer, WorkspaceClient]) -> None:
    server, w = offline
    data = bytes(range(256)) * 10
    server.store.put_file(f"{VOLUME}/logs/c1/driver/stdout", data, overwrite=True)
    server.store.put_file(f"{VOLUME}/logs/c1/init_scripts/n/a.sh.stderr.log", b"e\n", overwrite=True)
    server.store.put_file("dbfs:/cluster-logs/c1/driver/log4j-active.log", b"x" * 3000, overwrite=True)

    assert w.files.download(f"{VOLUME}/logs/c1/driver/stdout").contents.read() == data
    assert w.files.get_metadata(f"{VOLUME}/logs/c1/driver/stdout").content_length == len(data)
    listed = {(e.path, e.name, e.is_directory) for e in w.files.list_directory_contents(f"{VOLUME}/logs/c1")}
    assert listed == {(f"{VOLUME}/logs/c1/driver/", "driver", True),
                      (f"{VOLUME}/logs/c1/init_scripts/", "init_scripts", True)}
    (entry,) = w.files.list_directory_contents(f"{VOLUME}/logs/c1/driver")
    assert (entry.name, entry.file_size, entry.is_directory) == ("stdout", len(data), False)
    assert entry.last_modified and abs(entry.last_modified / 1000 - time.time()) < 600
    with pytest.raises(NotFound):
        w.files.download(f"{VOLUME}/logs/c1/nope").contents.read()
    with pytest.raises(NotFound):
        list(w.files.list_directory_contents(f"{VOLUME}/nothing"))

    headers = {"Authorization": f"Bearer {server.token}"}
    url = f"{server.host}/api/2.0/fs/files{VOLUME}/logs/c1/driver/stdout"
    part = requests.get(url, headers={**headers, "Range": "bytes=10-"}, timeout=10)
    assert (part.status_code, part.content, part.headers["Content-Range"]) == (
        206, data[10:], f"bytes 10-{len(data) - 1}/{len(data)}")
    assert requests.get(url, headers={**headers, "Range": "bytes=-5"}, timeout=10).content == data[-5:]
    assert requests.get(url, headers={**headers, "Range": "bytes=99999-"}, timeout=10).status_code == 416
    head = requests.head(url, headers=headers, timeout=10)
    assert (head.status_code, head.content, head.headers["Content-Length"]) == (200, b"", str(len(data)))
    assert head.headers["Content-Type"] == "application/octet-stream"
    missing = requests.get(url + "-nope", headers=headers, timeout=10)
    assert (missing.status_code, missing.json()["error_code"]) == (404, "NOT_FOUND")
    assert requests.get(url, timeout=10).status_code == 401  # the token, as everywhere

    (info,) = w.dbfs.list("dbfs:/cluster-logs/c1")
    assert (info.path, info.is_dir) == ("/cluster-logs/c1/driver", True)
    (info,) = w.dbfs.list("/cluster-logs/c1/driver")
    assert (info.path, info.file_size, info.is_dir) == ("/cluster-logs/c1/driver/log4j-active.log", 3000, False)
    assert w.dbfs.get_status("dbfs:/cluster-logs/c1/driver/log4j-active.log").file_size == 3000
    read = w.dbfs.read("dbfs:/cluster-logs/c1/driver/log4j-active.log", offset=2990, length=100)
    assert (read.bytes_read, base64.b64decode(read.data or "")) == (10, b"x" * 10)
    with pytest.raises(ResourceDoesNotExist):
        list(w.dbfs.list("dbfs:/cluster-logs/c2"))
    with pytest.raises(BadRequest, match="Cannot read more than"):  # MAX_READ_SIZE_EXCEEDED
        w.dbfs.read("dbfs:/cluster-logs/c1/driver/log4j-active.log", length=2 * 2**20)


@pytest.mark.parametrize("conf, words", [
    ({"volumes": {"destination": "/Volumes/main/default"}}, "/Volumes/<catalog>/<schema>/<volume>/"),
    ({"volumes": {"destination": "/tmp/logs"}}, "not inside a volume"),
    ({"volumes": {"destination": 3}}, "destination must be a non-empty string"),
    ({"dbfs": {"destination": "dbfs:/l"}, "volumes": {"destination": f"{VOLUME}/l"}}, "exactly one destination"),
    ({}, "exactly one destination"),
    ({"file": {"destination": "/tmp"}}, "exactly one destination"),
])
def test_bad_cluster_log_conf_is_refused(offline: tuple[LocalWorkspaceServer, WorkspaceClient],
                                         conf: dict[str, Any], words: str) -> None:
    server, w = offline
    body = {"cluster_name": "x", "spark_version": SPARK_VERSION, "num_workers": 0,
            "docker_image": {"url": "127.0.0.1:5000/x:1"}, "cluster_log_conf": conf}
    headers = {"Authorization": f"Bearer {server.token}"}
    answer = requests.post(f"{server.host}/api/2.1/clusters/create", json=body, headers=headers, timeout=10)
    assert (answer.status_code, answer.json()["error_code"]) == (400, "INVALID_PARAMETER_VALUE")
    assert words in answer.json()["message"]
    run = {"run_name": "x", "tasks": [{"task_key": "t", "new_cluster": body,
                                       "spark_python_task": {"python_file": "dbfs:/x.py"}}]}
    answer = requests.post(f"{server.host}/api/2.1/jobs/runs/submit", json=run, headers=headers, timeout=10)
    assert answer.status_code == 400 and words in answer.json()["message"]


# -- real launches ------------------------------------------------------------------------------------


@dataclass
class Launched:
    server: LocalWorkspaceServer
    w: WorkspaceClient
    scripts: str  # cluster ids
    lacking: str
    run_id: int


@pytest.fixture(scope="module")
def launched(dcs_base_image: str, auth_registry: Registry, docker_client: Any,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launched]:
    """The base, and a copy of it without java, in the htpasswd registry (its layers are there
    already when other modules ran first); the three launches started together."""
    token = f"{time.time_ns() % 10**9}"
    good = f"{auth_registry.host}/{NAME}-good-{token}:1"
    lacking = f"{auth_registry.host}/{NAME}-nojava-{token}:1"
    docker_client.api.tag(dcs_base_image, *good.rsplit(":", 1))
    build_image(docker_client, lacking,
                f"FROM {dcs_base_image}\nRUN rm -rf /usr/lib/jvm /usr/bin/java /etc/alternatives/java\n", {})
    for ref in (good, lacking):
        push_image(docker_client, ref, auth_registry.auth_config)
    server = LocalWorkspaceServer().start()
    w = sdk_client(server, tmp_path_factory.mktemp("sdk"))
    try:
        w.files.upload(f"{VOLUME}/init/ok.sh", io.BytesIO(OK_SCRIPT), overwrite=True)
        w.files.upload(f"{VOLUME}/init/fail.sh", io.BytesIO(FAIL_SCRIPT), overwrite=True)
        w.dbfs.put("dbfs:/dcs-test-logs/job.py", contents=base64.b64encode(JOB_SCRIPT).decode(), overwrite=True)
        scripts = [compute.InitScriptInfo(volumes=compute.VolumesStorageInfo(destination=f"{VOLUME}/init/{name}"))
                   for name in ("ok.sh", "fail.sh")]
        with_scripts = w.clusters.create(**cluster_body(good, auth_registry, init_scripts=scripts,
                                                        cluster_log_conf=volumes_conf(f"{VOLUME}/logs"))).cluster_id
        without_java = w.clusters.create(**cluster_body(lacking, auth_registry, cluster_log_conf=compute.ClusterLogConf(
            dbfs=compute.DbfsStorageInfo(destination="dbfs:/cluster-logs")))).cluster_id
        new_cluster = compute.ClusterSpec(**cluster_body(good, auth_registry,
                                                         cluster_log_conf=volumes_conf(f"{VOLUME}/jobs")))
        run = w.jobs.submit(run_name="dcs-test-logs", tasks=[jobs.SubmitTask(
            task_key="t", new_cluster=new_cluster,
            spark_python_task=jobs.SparkPythonTask(python_file="dbfs:/dcs-test-logs/job.py"))])
        assert with_scripts and without_java and run.run_id
        yield Launched(server, w, with_scripts, without_java, run.run_id)
    finally:
        for cluster in server.store.clusters():
            if cluster.state not in ("TERMINATED",):
                server.launcher.terminate(cluster)
        server.stop()
        for ref in (good, lacking):
            docker_client.api.remove_image(ref, force=True)



def read(w: WorkspaceClient, path: str) -> str:
    return w.files.download(path).contents.read().decode()


def no_secret_delivered(launched: Launched, secret: str) -> None:
    store = launched.server.store
    for prefix in (VOLUME, "dbfs:/cluster-logs"):
        stack = [prefix]
        while stack:
            for entry in store.children(stack.pop()) or []:
                if entry.is_dir:
                    stack.append(entry.key)
                else:
                    assert secret not in (store.file(entry.key) or b"").decode("utf-8", "replace"), entry.key


@pytest.mark.docker
@pytest.mark.slow
def test_init_script_logs_are_delivered(launched: Launched, auth_registry: Registry, docker_client: Any) -> None:
    w, cluster_id = launched.w, launched.scripts
    details = settle(w, cluster_id)
    assert details.state == compute.State.TERMINATED, details.state_message
    assert containers_of(docker_client, cluster_id) == []
    reason = details.termination_reason
    assert reason and reason.code == compute.TerminationReasonCode.INIT_SCRIPT_FAILURE
    message = (reason.parameters or {})["databricks_error_message"]
    assert message == (f"Cluster scoped init script volumes:{VOLUME}/init/fail.sh failed: Script exit status "
                       "is non-zero (init script 2 exited with code 7)")  # no output: it can hold secrets
    assert details.cluster_log_status and details.cluster_log_status.last_attempted
    assert details.cluster_log_status.last_exception is None

    root = f"{VOLUME}/logs/{cluster_id}"
    assert {e.name for e in w.files.list_directory_contents(root)} == {"driver", "init_scripts"}
    (node,) = w.files.list_directory_contents(f"{root}/init_scripts")
    assert node.is_directory and re.fullmatch(rf"{cluster_id}_\d+_\d+_\d+_\d+", node.name or ""), node.name
    names = sorted(e.name or "" for e in w.files.list_directory_contents(f"{root}/init_scripts/{node.name}"))
    assert len(names) == 4, names
    shape = r"\d{8}_\d{6}_(?P<id>\d+)_(?P<script>ok|fail)\.sh\.(?P<stream>stdout|stderr)\.log"
    assert all(re.fullmatch(shape, name) for name in names), names
    logs = {(m["script"], m["stream"]): read(w, f"{root}/init_scripts/{node.name}/{name}")
            for name in names if (m := re.fullmatch(shape, name))}
    assert logs == {("ok", "stdout"): "ok: to stdout\n", ("ok", "stderr"): "ok: to stderr\n",
                    ("fail", "stdout"): "installing\n", ("fail", "stderr"): "boom: apt-get could not find libfoo\n"}

    log4j = read(w, f"{root}/driver/log4j-active.log").splitlines()
    assert all(re.match(r"\d\d/\d\d/\d\d \d\d:\d\d:\d\d (INFO|WARN|ERROR) DriverDaemon: ", line) for line in log4j)
    assert any(f"Pulled {details.docker_image.url}" in line for line in log4j)  # type: ignore[union-attr]
    assert any(f"Init script 1/2 volumes:{VOLUME}/init/ok.sh: SUCCEEDED (exit code 0" in ln for ln in log4j)
    assert any(" ERROR DriverDaemon: InitScriptFailureException: INIT_SCRIPT_FAILURE: Init script 2/2 "
               f"volumes:{VOLUME}/init/fail.sh: FAILED_EXECUTION (exit code 7" in line for line in log4j)
    assert log4j[-1].endswith(f"ERROR DriverDaemon: InitScriptFailureException: INIT_SCRIPT_FAILURE: {message}")
    assert read(w, f"{root}/driver/stdout") == ""
    no_secret_delivered(launched, auth_registry.password)


@pytest.mark.docker
@pytest.mark.slow
def test_check_failure_is_in_the_dbfs_log4j(launched: Launched, docker_client: Any) -> None:
    w, cluster_id = launched.w, launched.lacking
    details = settle(w, cluster_id)
    assert details.state == compute.State.TERMINATED, details.state_message
    assert details.termination_reason and details.termination_reason.code == \
        compute.TerminationReasonCode.CONTAINER_LAUNCH_FAILURE
    assert containers_of(docker_client, cluster_id) == []
    driver = f"dbfs:/cluster-logs/{cluster_id}/driver"
    assert {f.path for f in w.dbfs.list(driver)} == {f"/cluster-logs/{cluster_id}/driver/{name}"
                                                     for name in ("log4j-active.log", "stdout", "stderr")}
    answer = w.dbfs.read(f"{driver}/log4j-active.log")
    log4j = base64.b64decode(answer.data or "").decode()
    assert answer.bytes_read == len(log4j.encode())
    assert re.search(r"^\d\d/\d\d/\d\d \d\d:\d\d:\d\d ERROR DriverDaemon: ContainerLaunchException: "
                     r"CONTAINER_LAUNCH_FAILURE: java: java is not on the PATH", log4j, re.M), log4j
    assert "Driver container dcs-local-" in log4j  # the driver started while the check ran


@pytest.mark.docker
@pytest.mark.slow
def test_job_task_output_is_delivered(launched: Launched, docker_client: Any) -> None:
    w = launched.w
    deadline = time.monotonic() + 240
    while (run := w.jobs.get_run(launched.run_id)).state.life_cycle_state not in (  # type: ignore[union-attr]
            jobs.RunLifeCycleState.TERMINATED, jobs.RunLifeCycleState.INTERNAL_ERROR):
        assert time.monotonic() < deadline, run.state
        time.sleep(0.2)
    assert run.state and run.state.result_state == jobs.RunResultState.FAILED, run.state
    cluster_id = run.tasks[0].cluster_instance.cluster_id  # type: ignore[index,union-attr]
    assert containers_of(docker_client, cluster_id) == []
    root = f"{VOLUME}/jobs/{cluster_id}/driver"
    assert read(w, f"{root}/stdout") == "job: hello from the task\n"
    stderr = read(w, f"{root}/stderr")
    assert stderr.startswith("Traceback") and "RuntimeError: the input table is empty" in stderr
    assert "job: hello" not in stderr
    log4j = read(w, f"{root}/log4j-active.log")
    assert "ERROR DriverDaemon: TaskFailedException: FAILED: The task t of run" in log4j
    assert "INFO DriverDaemon: Cluster terminated: JOB_FINISHED" in log4j
    output = w.jobs.get_run_output(run.tasks[0].run_id)  # type: ignore[index,arg-type]
    assert "job: hello from the task" in (output.logs or "") and "RuntimeError" in (output.logs or "")
