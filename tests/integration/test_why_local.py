"""`dcs why --local`, end to end: every way the local preflight workspace fails a start (or a
run), produced for real, then explained from its real artefacts (termination reason, events,
delivered logs) by a workspace that did not run it, as `dcs why CLUSTER_ID --local` in the next
command does (the ended clusters' records, preflight/ended.py).

One module fixture launches all nine at once through the official databricks-sdk: the
registry refusing the password, a tag never pushed, a runtime whose Python differs, images
without java / without /databricks/python3 / without virtualenv, an init script that fails,
a secret reference nobody set, and a job whose task lacks a module.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from databricks.sdk.service import compute, jobs
from support.images import build_image, push_image
from support.local_sdk import sdk_client, settle
from support.registry import Registry

from dcs_magic.adapters.workspace import Workspace
from dcs_magic.ops.why import why_cluster
from dcs_magic.preflight import LocalWorkspaceServer

pytestmark = [pytest.mark.docker, pytest.mark.slow]

NAME = "dcs-test-why"
VOLUME = "/Volumes/main/default/dcs_test_why"
APT_SCRIPT = b"#!/bin/bash\nset -e\napt-get install -y dcs-test-no-such-package\n"
JOB = b"import xgboost\n"
SECRET = "{{secrets/dcs-test-why/nowhere}}"
# kind -> (image variant, spark_version, the signature `dcs why` must name first)
KINDS = {
    "pull-denied": ("good", "15.4.x-scala2.12", "registry-unauthorized"),
    "missing-tag": ("never-pushed", "15.4.x-scala2.12", "manifest-unknown"),
    "python-mismatch": ("good", "17.3.x-scala2.13", "local-python-mismatch"),
    "no-java": ("nojava", "15.4.x-scala2.12", "local-java-missing"),
    "no-python3": ("nopython", "15.4.x-scala2.12", "python3-missing"),
    "no-virtualenv": ("novirtualenv", "15.4.x-scala2.12", "virtualenv-missing"),
    "init-script": ("good", "15.4.x-scala2.12", "apt-no-package"),
    "secret-unresolved": ("good", "15.4.x-scala2.12", "local-secret-env"),
}
VARIANTS = {
    "nojava": "RUN rm -rf /usr/lib/jvm /usr/bin/java /etc/alternatives/java\n",
    "nopython": "RUN rm -rf /databricks/python3\n",
    "novirtualenv": ("RUN rm -rf /usr/lib/python3/dist-packages/virtualenv* "
                     "/databricks/python3/lib/python3*/site-packages/virtualenv*\n"),
}


@dataclass
class Failed:
    server: LocalWorkspaceServer
    clusters: dict[str, str]  # kind -> cluster id
    password: str


def _body(kind: str, image: str, spark_version: str, reg: Registry) -> dict[str, Any]:
    password = {"pull-denied": "not-the-password", "secret-unresolved": SECRET}.get(kind, reg.password)
    body: dict[str, Any] = {
        "cluster_name": f"{NAME}-{kind}", "spark_version": spark_version, "node_type_id": "i3.xlarge",
        "num_workers": 0, "cluster_log_conf": compute.ClusterLogConf(volumes=compute.VolumesStorageInfo(
            destination=f"{VOLUME}/logs")),
        "docker_image": compute.DockerImage(url=image, basic_auth=compute.DockerBasicAuth(
            username=reg.username, password=password))}
    if kind == "init-script":
        body["init_scripts"] = [compute.InitScriptInfo(volumes=compute.VolumesStorageInfo(
            destination=f"{VOLUME}/init/apt.sh"))]
    return body



@pytest.fixture(scope="module")
def failed(dcs_base_image: str, auth_registry: Registry, docker_client: Any,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Failed]:
    token = f"{time.time_ns() % 10**9}"
    refs = {"good": f"{auth_registry.host}/{NAME}-good-{token}:1",
            "never-pushed": f"{auth_registry.host}/{NAME}-good-{token}:never-pushed"}
    docker_client.api.tag(dcs_base_image, *refs["good"].rsplit(":", 1))
    for variant, line in VARIANTS.items():
        refs[variant] = f"{auth_registry.host}/{NAME}-{variant}-{token}:1"
        build_image(docker_client, refs[variant], f"FROM {dcs_base_image}\n{line}", {})
    for variant, ref in refs.items():
        if variant != "never-pushed":
            push_image(docker_client, ref, auth_registry.auth_config)
    os.environ.pop("DCS_SECRET_DCS_TEST_WHY_NOWHERE", None)
    server = LocalWorkspaceServer().start()
    w = sdk_client(server, tmp_path_factory.mktemp("sdk"))
    try:
        w.files.upload(f"{VOLUME}/init/apt.sh", io.BytesIO(APT_SCRIPT), overwrite=True)
        w.files.upload(f"{VOLUME}/jobs/job.py", io.BytesIO(JOB), overwrite=True)
        clusters = {kind: w.clusters.create(**_body(kind, refs[variant], version, auth_registry)).cluster_id
                    for kind, (variant, version, _) in KINDS.items()}
        new_cluster = compute.ClusterSpec(**_body("job", refs["good"], "15.4.x-scala2.12", auth_registry))
        run = w.jobs.submit(run_name=f"{NAME}-job", tasks=[jobs.SubmitTask(
            task_key="t", new_cluster=new_cluster,
            spark_python_task=jobs.SparkPythonTask(python_file=f"{VOLUME}/jobs/job.py"))])
        for cluster_id in clusters.values():
            settle(w, str(cluster_id))
        deadline = time.monotonic() + 300
        while (got := w.jobs.get_run(run.run_id)).state.life_cycle_state not in (  # type: ignore[union-attr]
                jobs.RunLifeCycleState.TERMINATED, jobs.RunLifeCycleState.INTERNAL_ERROR):
            assert time.monotonic() < deadline, got.state
            time.sleep(0.2)
        clusters["job"] = got.tasks[0].cluster_instance.cluster_id  # type: ignore[index,union-attr]
        settle(w, str(clusters["job"]))
        yield Failed(server, {k: str(v) for k, v in clusters.items()}, auth_registry.password or "")
    finally:
        for cluster in server.store.clusters():
            if cluster.state != "TERMINATED":
                server.launcher.terminate(cluster)
        server.stop()
        for variant, ref in refs.items():
            if variant != "never-pushed":  # a tag of nothing: never made
                docker_client.api.remove_image(ref, force=True)


def test_each_local_failure_is_explained_by_a_workspace_that_did_not_run_it(failed: Failed) -> None:
    # A fresh workspace (another process's, as `dcs why --local` starts one): its store is
    # empty, the clusters and their logs come back from the ended clusters' records.
    fresh = LocalWorkspaceServer().start()
    try:
        assert fresh.store.clusters() == []
        with Workspace(host=fresh.host, token=fresh.token) as ws:
            named = {kind: why_cluster(ws, cluster_id) for kind, cluster_id in failed.clusters.items()}
    finally:
        fresh.stop()
    wanted = {**{kind: signature for kind, (_, _, signature) in KINDS.items()}, "job": "module-missing"}
    got = {kind: found.causes[0].signature if found.causes else None for kind, found in named.items()}
    assert got == wanted, {k: named[k].lines()[:4] for k in got if got[k] != wanted[k]}
    assert not [k for k, found in named.items() if found.causes[0].confidence == "certain"
                and found.causes[0].signature != wanted[k]]
    # the evidence comes from the delivered logs where the failure is in them
    assert named["init-script"].causes[0].evidence[0].source.startswith(
        f"init_scripts/{failed.clusters['init-script']}_")
    assert named["job"].causes[0].evidence[0].source.startswith("driver/stderr")
    assert "xgboost" in named["job"].causes[0].cause
    for found in named.values():  # no registry password in any diagnosis
        assert failed.password not in json.dumps(found.to_dict())


def test_dcs_why_local_in_the_next_command(failed: Failed) -> None:
    cluster_id = failed.clusters["no-java"]
    ran = subprocess.run([sys.executable, "-m", "dcs_magic.cli", "why", cluster_id, "--local", "--json"],
                         capture_output=True, text=True, timeout=120, env={**os.environ, "NO_COLOR": "1"})
    assert ran.returncode == 0, ran.stderr
    found = json.loads(ran.stdout)
    assert found["code"] == "CONTAINER_LAUNCH_FAILURE" and found["state"] == "TERMINATED"
    assert "java" in found["cause"].lower() and found["confidence"] == "certain"
    assert found["evidence"] and all(e["line"] for e in found["evidence"])
    assert found["check"].startswith("%dcs_check")
