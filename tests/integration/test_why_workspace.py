"""`dcs why CLUSTER_ID` against a workspace: clusters/get, every events page, and the logs
`cluster_log_conf` delivered, read through the Files API and DBFS (a local HTTP server that
speaks those APIs: support/clusters_api.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from support.clusters_api import ClustersApi, isolate_databricks_config

from dcs_magic.adapters.workspace import Workspace
from dcs_magic.cli.commands import main
from dcs_magic.ops.why import LOG_TAIL_BYTES, why_cluster

VOLUME = "/Volumes/main/default/logs/cluster-logs"
INIT_FAILED = {"code": "INIT_SCRIPT_FAILURE", "type": "CLIENT_ERROR", "parameters": {
    "databricks_error_message": "Cluster scoped init script /Volumes/main/default/scripts/setup.sh failed: "
                                "Script exit status is non-zero", "instance_id": "i-0abc"}}


def _spec(log_conf: dict[str, Any] | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"cluster_name": "why", "spark_version": "15.4.x-scala2.12", "node_type_id": "i3.xlarge",
                            "num_workers": 0, "docker_image": {"url": "registry.example.com/team/app:1"}}
    if log_conf:
        spec["cluster_log_conf"] = log_conf
    return spec


def _failed_cluster(api: ClustersApi, ws: Workspace, reason: dict[str, Any], log_conf: dict[str, Any] | None,
                    *, ended_ms: int | None = None) -> str:
    api.script({"state": "TERMINATED", "state_message": reason["parameters"]["databricks_error_message"],
                "termination_reason": reason, "terminated_time": ended_ms or int(time.time() * 1000)})
    return ws.create_cluster(_spec(log_conf))


@pytest.fixture
def cli_env(api: ClustersApi, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_databricks_config(monkeypatch, tmp_path)
    monkeypatch.setenv("DATABRICKS_HOST", api.host)
    monkeypatch.setenv("DATABRICKS_TOKEN", api.token)


def test_reads_every_event_page_and_the_tails_of_delivered_logs(
        api: ClustersApi, ws: Workspace, cli_env: None, capsys: pytest.CaptureFixture[str]) -> None:
    cluster_id = _failed_cluster(api, ws, INIT_FAILED, {"volumes": {"destination": VOLUME}})
    for number in range(520):  # more than one page of 500
        api.add_event(cluster_id, "RESIZING", {"target_num_workers": number})
    api.add_event(cluster_id, "INIT_SCRIPTS_FINISHED", {"init_scripts": {"cluster": [
        {"volumes": {"destination": "/Volumes/main/default/scripts/setup.sh"}, "status": "FAILED_EXECUTION",
         "error_message": "Script exit status is non-zero", "execution_duration_seconds": 3}]}})
    root = f"{VOLUME}/{cluster_id}"
    node = f"{root}/init_scripts/{cluster_id}_10_0_0_1"
    api.files[f"{node}/20261207_061000_00_setup.sh.stderr.log"] = (
        b"Collecting pandas==1.5.3\nTraceback (most recent call last):\n"
        b"ModuleNotFoundError: No module named 'pkg_resources'\n")
    api.files[f"{node}/20261207_061000_00_setup.sh.stdout.log"] = b"installing\n"
    # A long driver log: only its tail is fetched (Range), and that is where the end is.
    api.files[f"{root}/driver/stderr"] = b"x" * 80 + b"\n" + b"noise line\n" * 70_000 + b"last words\n"

    assert main(["why", cluster_id, "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert "setuptools" in found["cause"] and found["confidence"] in ("likely", "certain")
    assert found["code"] == "INIT_SCRIPT_FAILURE" and found["state"] == "TERMINATED"
    assert found["evidence"][0]["source"] == (f"init_scripts/{cluster_id}_10_0_0_1/"
                                              "20261207_061000_00_setup.sh.stderr.log:3")
    pages = api.requests_to("clusters/events")
    assert len(pages) == 2 and json.loads(pages[1].body)["offset"] == 500
    reads = [r for r in api.requests_to("/driver/stderr") if r.method == "GET"]
    assert reads and reads[0].headers.get("Range") == f"bytes=-{LOG_TAIL_BYTES}"


def test_a_volume_the_token_cannot_read_is_said_and_the_reason_still_explains(
        api: ClustersApi, ws: Workspace, cli_env: None, capsys: pytest.CaptureFixture[str]) -> None:
    denied = {"code": "IMAGE_PULL_PERMISSION_DENIED", "type": "CLIENT_ERROR", "parameters": {
        "databricks_error_message": "Failed to pull image registry.example.com/team/app:1: unauthorized"}}
    cluster_id = _failed_cluster(api, ws, denied, {"volumes": {"destination": VOLUME}})
    api.fail(f"/fs/directories{VOLUME}/{cluster_id}/init_scripts", 403,
             {"error_code": "PERMISSION_DENIED", "message": "User does not have READ VOLUME on main.default.logs"})
    assert main(["why", cluster_id]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("Cause (likely): The registry refused")
    assert "cannot be read with these credentials (403 PERMISSION_DENIED)" in captured.out
    assert "User does not have READ VOLUME on main.default.logs" in captured.out
    assert "Traceback" not in captured.out + captured.err


def test_logs_not_delivered_yet_and_no_log_conf_are_said(api: ClustersApi, ws: Workspace) -> None:
    cluster_id = _failed_cluster(api, ws, INIT_FAILED, {"dbfs": {"destination": "dbfs:/cluster-logs"}})
    found = why_cluster(ws, cluster_id)
    assert found.code == "INIT_SCRIPT_FAILURE" and found.causes
    assert any("yet: Databricks delivers logs every 5 minutes" in note for note in found.notes)

    bare = _failed_cluster(api, ws, INIT_FAILED, None)
    assert any(note.startswith("no cluster_log_conf") for note in why_cluster(ws, bare).notes)


def test_dbfs_logs_are_read_through_the_dbfs_api(api: ClustersApi, ws: Workspace) -> None:
    launch = {"code": "CONTAINER_LAUNCH_FAILURE", "type": "SERVICE_FAULT", "parameters": {
        "databricks_error_message": "Failed to launch spark container on instance i-0abc"}}
    cluster_id = _failed_cluster(api, ws, launch, {"dbfs": {"destination": "dbfs:/cluster-logs"}})
    api.files[f"dbfs:/cluster-logs/{cluster_id}/driver/log4j-active.log"] = (
        b"26/12/07 06:10:00 INFO DriverDaemon: starting\n"
        b"java.lang.Exception: Cannot run program \"virtualenv\" (in directory \"/local_disk0/pythonVirtualEnvDirs\"):"
        b" error=2, No such file or directory\n")
    found = why_cluster(ws, cluster_id)
    assert found.causes[0].signature == "virtualenv-missing" and found.confidence == "certain"
    assert found.causes[0].evidence[0].source == "driver/log4j-active.log"
    assert api.requests_to("/dbfs/read") and not found.notes


def test_a_running_cluster_is_not_a_failure(api: ClustersApi, ws: Workspace, cli_env: None,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    api.script({"state": "RUNNING", "state_message": ""})
    cluster_id = ws.create_cluster(_spec(None))
    assert main(["why", cluster_id]) == 0
    assert capsys.readouterr().out.startswith(f"Nothing failed: cluster {cluster_id} is RUNNING")


def test_an_unknown_cluster_is_a_clear_error(cli_env: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["why", "0101-000000-nothere"]) == 1
    err = capsys.readouterr().err
    assert "0101-000000-nothere does not exist" in err and "Traceback" not in err


def test_launch_wait_prints_the_diagnosis_of_a_failed_start(
        api: ClustersApi, cli_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "cluster.json"
    spec.write_text(json.dumps(_spec({"volumes": {"destination": VOLUME}})))
    api.script({"state": "PENDING"}, {"state": "TERMINATED", "state_message": INIT_FAILED["parameters"][
        "databricks_error_message"], "termination_reason": INIT_FAILED})
    api.files[f"{VOLUME}/0101-000000-test0001/init_scripts/0101-000000-test0001_10_0_0_1/"
              "20261207_061000_00_setup.sh.stderr.log"] = b"E: Unable to locate package libgeos-dev\n"
    assert main(["launch", "--spec", str(spec), "--wait"]) == 1
    err = capsys.readouterr().err
    assert "Why it failed (dcs why 0101-000000-test0001):" in err
    assert "Cause (likely):" in err and "libgeos-dev" in err
    assert err.index("dcs: ClusterError: cluster 0101-000000-test0001 is TERMINATED") > err.index("Why it failed")
    assert "the cause from its events and logs: dcs why 0101-000000-test0001" in err


def test_run_wait_prints_the_diagnosis_of_a_failed_run(
        api: ClustersApi, cli_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from support.clusters_api import jobs_state

    spec = tmp_path / "cluster.json"
    spec.write_text(json.dumps(_spec(None)))
    api.files["/Workspace/Shared/job.py"] = b"import xgboost\n"
    trace = "Traceback (most recent call last):\n  File \"job.py\", line 1\nModuleNotFoundError: No module named 'xgboost'\n"
    jobs_state(api).script_run({"life_cycle_state": "RUNNING"},
                               {"life_cycle_state": "TERMINATED", "result_state": "FAILED"},
                               output={"error": "ModuleNotFoundError: No module named 'xgboost'", "error_trace": trace})
    assert main(["run", "--spec", str(spec), "--python-file", "/Workspace/Shared/job.py", "--wait"]) == 1
    err = capsys.readouterr().err
    assert "Why it failed:" in err and "xgboost" in err.split("Why it failed:", 1)[1]
