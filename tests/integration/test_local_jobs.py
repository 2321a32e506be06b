"""Job runs on the local preflight workspace: a Python file (or a notebook's code) really runs
in the image's /databricks/python3, on a job cluster launched like a cluster, on the real
engine and the htpasswd registry. Also `dcs run --local`, `dcs doctor --local`, and the
tokenless status pages.

The runs of one test are submitted together and then followed, so their launches overlap.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
import requests
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from support.images import build_image, containers_of, push_image
from support.registry import Registry

from dcs_magic import Workspace
from dcs_magic.model.jobs import IMAGE_PYTHON, submit_body
from dcs_magic.model.spec import ClusterSpec
from dcs_magic.ops.doctor import doctor
from dcs_magic.ops.runs import follow_run

pytestmark = [pytest.mark.docker, pytest.mark.slow]

CLI = [sys.executable, "-m", "dcs_magic.cli"]
REFERENCE = "{{secrets/dcs-test-jobs/registry}}"
SECRET_ENV = "DCS_SECRET_DCS_TEST_JOBS_REGISTRY"
OK_SCRIPT = b"""import os, sys
print("interpreter", sys.executable)
print("argv", sys.argv[1:])
print("job cluster", os.environ.get("DB_IS_JOB_CLUSTER"), os.environ.get("DCS_TEST_VAR"))
"""
# stdout and stderr reach the engine through two pipes: the pause keeps their order certain.
FAIL_SCRIPT = b"""import sys, time
for i in range(30):
    print(f"line {i}")
time.sleep(0.3)
print("boom: the input table is empty", file=sys.stderr)
sys.exit(3)
"""
SLEEP_SCRIPT = b"import time\nprint('sleeping', flush=True)\ntime.sleep(600)\n"


@pytest.fixture(scope="module")
def job_image(dcs_base_image: str, auth_registry: Registry, docker_client: Any) -> Iterator[str]:
    """The DCS base + two scripts baked in /opt/dcs, pushed to the htpasswd registry."""
    ref = f"{auth_registry.host}/dcs-test-local-jobs:1"
    build_image(docker_client, ref, f"FROM {dcs_base_image}\nCOPY ok.py fail.py /opt/dcs/\n",
          {"ok.py": OK_SCRIPT, "fail.py": FAIL_SCRIPT})
    push_image(docker_client, ref, auth_registry.auth_config)
    yield ref
    docker_client.api.remove_image(ref)


@pytest.fixture(scope="module")
def ws() -> Iterator[Workspace]:
    workspace = Workspace.local()
    yield workspace
    workspace.close()


@pytest.fixture
def secret_password(auth_registry: Registry, monkeypatch: pytest.MonkeyPatch) -> str:
    """The registry password, resolvable from REFERENCE (as the local workspace resolves it)."""
    monkeypatch.setenv(SECRET_ENV, auth_registry.password)
    return auth_registry.password


def spec(image: str, reg: Registry, **extra: Any) -> ClusterSpec:
    return ClusterSpec.from_dict({
        "cluster_name": "dcs-test-job", "spark_version": "15.4.x-scala2.12", "node_type_id": "local",
        "num_workers": 0, "docker_image": {"url": image, "basic_auth": {"username": reg.username,
                                                                         "password": REFERENCE}},
        **extra})


def token_of(ws: Workspace) -> str:
    return str(dict(ws._headers())["Authorization"]).split()[-1]


def job_cluster_id(ws: Workspace, run_id: int) -> str:
    return ws.get_run(run_id)["tasks"][0]["cluster_instance"]["cluster_id"]


def test_python_files_succeed_fail_or_are_missing(
        ws: Workspace, job_image: str, auth_registry: Registry, secret_password: str, docker_client: Any) -> None:
    body = spec(job_image, auth_registry, spark_env_vars={"DCS_TEST_VAR": "from-the-spec"})
    ws.upload("/Workspace/Users/dcs-test@example.com/ok.py", OK_SCRIPT)
    ok = ws.submit_run(body, python_file="/Workspace/Users/dcs-test@example.com/ok.py",
                       parameters=["--day", "2024-01-01"])
    failing = ws.submit_run(body, python_file="file:/opt/dcs/fail.py")
    missing = ws.submit_run(body, python_file="/Workspace/Users/dcs-test@example.com/nope.py")
    missing_in_image = ws.submit_run(body, python_file="file:/opt/dcs/nope.py")

    result = follow_run(ws, ok, timeout_s=300)
    assert result.state == "TERMINATED/SUCCESS" and result.exit_code == 0, result.to_error()
    assert result.output.splitlines() == [f"interpreter {IMAGE_PYTHON}", "argv ['--day', '2024-01-01']",
                                          "job cluster TRUE from-the-spec"]
    assert result.run_page_url == f"{ws.host}/runs/{ok}"

    result = follow_run(ws, failing, timeout_s=300)
    assert result.state == "TERMINATED/FAILED" and result.exit_code == 3
    error = result.to_error()
    assert "exit code 3" in str(error) and error.last_lines[-1] == "boom: the input table is empty"
    assert error.last_lines[-2] == "line 29" and "line 0" not in error.last_lines  # the tail only

    for run_id, path in ((missing, "/Workspace/Users/dcs-test@example.com/nope.py"),
                         (missing_in_image, "file:/opt/dcs/nope.py")):
        result = follow_run(ws, run_id, timeout_s=300)
        assert result.result_state == "FAILED" and result.exit_code is None
        assert f"{path} does not exist" in result.error
        assert "upload it or fix the path" in str(result.to_error())

    for run_id in (ok, failing, missing, missing_in_image):  # every job cluster terminated
        cluster = ws.get_cluster(job_cluster_id(ws, run_id))
        assert cluster["state"] == "TERMINATED" and cluster["cluster_source"] == "JOB"
        assert cluster["termination_reason"]["code"] == "JOB_FINISHED"
        assert containers_of(docker_client, cluster["cluster_id"]) == []


def test_notebook_task_runs_the_notebooks_code(
        ws: Workspace, job_image: str, auth_registry: Registry, secret_password: str, tmp_path: Path) -> None:
    notebook = new_notebook(cells=[
        new_markdown_cell("# A job"),
        new_code_cell("%pip install nothing-at-all\nimport sys"),
        new_code_cell("total = sum(range(10))\nprint('total', total, sys.argv[1:])"),
    ])
    ws.upload("/Workspace/Users/dcs-test@example.com/job.ipynb", nbformat.writes(notebook))
    run_id = ws.submit_run(spec(job_image, auth_registry), notebook="/Users/dcs-test@example.com/job",
                           parameters=["day=2024-01-01"])
    result = follow_run(ws, run_id, timeout_s=300)
    assert result.ok, result.to_error()
    assert result.output.strip() == "total 45 ['--day', '2024-01-01']"


def test_cancel_and_timeout_stop_the_run_and_remove_its_cluster(
        ws: Workspace, job_image: str, auth_registry: Registry, secret_password: str, docker_client: Any) -> None:
    ws.upload("dbfs:/dcs-test/sleep.py", SLEEP_SCRIPT)
    run_id = ws.submit_run(spec(job_image, auth_registry), python_file="dbfs:/dcs-test/sleep.py")
    timing_out = ws.submit_run(body=submit_body(spec(job_image, auth_registry), python_file="dbfs:/dcs-test/sleep.py",
                                                timeout_seconds=25))
    deadline = time.monotonic() + 240
    while ws.get_run(run_id)["state"]["life_cycle_state"] != "RUNNING":
        assert time.monotonic() < deadline, ws.get_run(run_id)
        time.sleep(0.5)
    cancelled = time.monotonic()
    ws.cancel_run(run_id)
    run = ws.wait_for_run(run_id, timeout_s=60)
    assert time.monotonic() - cancelled < 30  # at once (a generous margin): not the script's 600 s
    assert (run["state"]["life_cycle_state"], run["state"]["result_state"]) == ("TERMINATED", "CANCELED")
    assert containers_of(docker_client, job_cluster_id(ws, run_id)) == []

    result = follow_run(ws, timing_out, timeout_s=120)  # well before the script's 600 s
    assert result.state == "TERMINATED/TIMEDOUT" and "timed out after 25 s" in result.state_message
    assert "timeout_seconds" in str(result.to_error())
    assert containers_of(docker_client, job_cluster_id(ws, timing_out)) == []


def test_job_cluster_that_cannot_start_fails_the_run(
        ws: Workspace, job_image: str, auth_registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SECRET_ENV, raising=False)
    run_id = ws.submit_run(spec(job_image, auth_registry), python_file="file:/opt/dcs/ok.py")
    result = follow_run(ws, run_id, timeout_s=120)
    assert (result.life_cycle_state, result.result_state) == ("INTERNAL_ERROR", "FAILED")
    assert "SECRET_RESOLUTION_ERROR" in result.state_message and SECRET_ENV in result.state_message
    assert "read the run page's cluster events" in str(result.to_error())


def test_submit_body_errors_are_400_with_the_reason(ws: Workspace, job_image: str) -> None:
    url = f"{ws.host}/api/2.1/jobs/runs/submit"
    body = submit_body({"spark_version": "15.4.x-scala2.12", "num_workers": 0, "docker_image": {"url": job_image}},
                       python_file="file:/opt/dcs/ok.py")
    body["tasks"][0]["new_cluster"]["autotermination_minutes"] = 5
    answer = requests.post(url, json=body, headers=dict(ws._headers()), timeout=10)
    assert answer.status_code == 400 and answer.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "autotermination_minutes" in answer.json()["message"]
    del body["tasks"][0]["new_cluster"]["autotermination_minutes"], body["tasks"][0]["spark_python_task"]
    answer = requests.post(url, json=body, headers=dict(ws._headers()), timeout=10)
    assert answer.status_code == 400 and "spark_python_task" in answer.json()["message"]
    assert requests.post(url, json=body, timeout=10).status_code == 401


def test_status_pages_need_no_token_and_show_no_secret(
        ws: Workspace, job_image: str, auth_registry: Registry, secret_password: str) -> None:
    run_id = ws.submit_run(spec(job_image, auth_registry, spark_env_vars={"DCS_TEST_ENV": "env-value-hidden"}),
                           python_file="file:/opt/dcs/ok.py")
    result = follow_run(ws, run_id, timeout_s=300)
    assert result.ok, result.to_error()
    cluster_id = job_cluster_id(ws, run_id)
    token = token_of(ws)
    assert token not in result.run_page_url
    page = requests.get(result.run_page_url, timeout=10)  # no Authorization header
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "TERMINATED/SUCCESS" in page.text and "<th>Exit code</th><td>0</td>" in page.text
    assert f"interpreter {IMAGE_PYTHON}" not in page.text  # the task's output: with the token only
    assert f"/clusters/{cluster_id}" in page.text
    # The run is TERMINATED only once its job cluster is (it is TERMINATING meanwhile).
    for url in (f"{ws.host}/clusters/{cluster_id}", ws.cluster_url(cluster_id)):
        cluster_page = requests.get(url, timeout=10)
        assert cluster_page.status_code == 200 and "JOB_FINISHED" in cluster_page.text
        assert f"/runs/{run_id}" in cluster_page.text
        for text in (page.text, cluster_page.text):
            assert secret_password not in text and token not in text and "env-value-hidden" not in text
    assert requests.get(f"{ws.host}/runs/999", timeout=10).status_code == 404
    # Only those pages: the API still wants the token, for reads too.
    assert requests.get(f"{ws.host}/api/2.2/jobs/runs/get", params={"run_id": run_id}, timeout=10).status_code == 401


def test_workspace_conf_identity_and_doctor(ws: Workspace, job_image: str, auth_registry: Registry,
                                            secret_password: str, tmp_path: Path) -> None:
    assert ws.workspace_conf(["enableDcs"]) == {"enableDcs": "true"}
    assert ws.current_user()["userName"]
    report = doctor(ws, spec(job_image, auth_registry))
    assert [(c.name, c.ok) for c in report.checks] == [
        ("workspace", True), ("credentials", True), ("container services", True), ("runtime", True),
        ("node types", True), ("registry", True)]
    spec_file = tmp_path / "cluster.json"
    spec_file.write_text(json.dumps(spec(job_image, auth_registry).to_dict()))
    proc = subprocess.run([*CLI, "doctor", "--local", "--spec", str(spec_file)], capture_output=True, text=True,
                          timeout=120, check=False, env={**os.environ, SECRET_ENV: secret_password})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith(f"{ws.host.rsplit(':', 1)[0]}") and ": ok" in proc.stdout.splitlines()[0]
    assert secret_password not in proc.stdout + proc.stderr


def test_dcs_run_local(job_image: str, auth_registry: Registry, secret_password: str, tmp_path: Path) -> None:
    spec_file = tmp_path / "cluster.json"
    spec_file.write_text(json.dumps(spec(job_image, auth_registry).to_dict()))
    env = {**os.environ, SECRET_ENV: secret_password}
    runs = {name: subprocess.Popen([*CLI, "run", "--local", "--spec", str(spec_file), "--python-file",
                                    f"file:/opt/dcs/{name}.py", "--wait", "--parameters", "--day", "1"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            for name in ("ok", "fail")}
    done = {name: (proc.wait(timeout=400), *proc.communicate()) for name, proc in runs.items()}
    code, out, err = done["ok"]
    assert code == 0, out + err
    assert "State: TERMINATED/SUCCESS (exit code 0)" in out and "argv ['--day', '1']" in out
    # The local workspace ends with the command: no run page URL that dies with it.
    assert "on the local preflight workspace" in out and "/runs/" not in out and "Traceback" not in err
    code, out, err = done["fail"]
    assert code == 1, out + err
    assert "State: TERMINATED/FAILED (exit code 3)" in out
    assert "exit code 3" in err and "boom: the input table is empty" in err and "Traceback" not in err
    assert secret_password not in out + err
