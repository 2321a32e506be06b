"""Jobs request builders and run results (dcs_magic.model.jobs): bodies checked against the
databricks-sdk types, answers read into RunResult / RunError."""

from __future__ import annotations

import inspect
import json

import pytest
from databricks.sdk.service import compute, jobs

from dcs_magic import ClusterSpec, SpecError
from dcs_magic.errors import UsageError
from dcs_magic.model.jobs import (
    LOGS_MAX_BYTES,
    TRUNCATED_NOTE,
    RunError,
    last_lines,
    notebook_code,
    read_submit,
    run_result,
    submit_body,
    task_command,
    task_outcome,
    task_payload,
    task_run_id,
)

PINNED = "registry.example.com/team/app@sha256:" + "b" * 64
SPEC = ClusterSpec(cluster_name="etl", spark_version="15.4.x-scala2.12", node_type_id="i3.xlarge", num_workers=1,
                   autotermination_minutes=30,
                   docker_image={"url": PINNED, "basic_auth": {"username": "svc", "password": "{{secrets/s/k}}"}})


def test_submit_body_is_what_the_sdk_submits():
    body = submit_body(SPEC, python_file="/Workspace/Shared/etl.py", parameters=["--day", "1"])
    submit_params = set(inspect.signature(jobs.JobsAPI.submit).parameters) - {"self"}
    assert set(body) <= submit_params
    [task] = body["tasks"]
    assert jobs.SubmitTask.from_dict(task).as_dict() == task
    assert task["spark_python_task"] == {"python_file": "/Workspace/Shared/etl.py", "parameters": ["--day", "1"]}
    cluster = task["new_cluster"]
    assert compute.ClusterSpec.from_dict(cluster).as_dict() == cluster
    assert cluster["docker_image"] == SPEC.to_dict()["docker_image"]
    assert "autotermination_minutes" not in cluster  # a job cluster ends with its run
    assert body["run_name"] == "dcs run etl.py"


def test_notebook_task_takes_named_parameters():
    body = submit_body(SPEC, notebook="/Workspace/Shared/etl", parameters=["day=1", "mode=a=b"])
    [task] = body["tasks"]
    assert task["notebook_task"] == {"notebook_path": "/Workspace/Shared/etl",
                                     "base_parameters": {"day": "1", "mode": "a=b"}}
    assert jobs.SubmitTask.from_dict(task).as_dict() == task
    with pytest.raises(UsageError, match="NAME=VALUE"):
        task_payload(notebook="/Workspace/x", parameters=["nope"])


def test_exactly_one_task_kind():
    with pytest.raises(UsageError, match="exactly one"):
        submit_body(SPEC)
    with pytest.raises(UsageError, match="exactly one"):
        submit_body(SPEC, python_file="a.py", notebook="/Workspace/n")


def test_new_cluster_is_validated_like_a_cluster():
    with pytest.raises(SpecError) as info:
        submit_body(SPEC.replace(spark_version="15.4.x-cpu-ml-scala2.12"), python_file="/Workspace/a.py")
    assert info.value.field == "spark_version"
    with pytest.raises(SpecError) as info:
        submit_body(SPEC.replace(data_security_mode="USER_ISOLATION"), python_file="/Workspace/a.py")
    assert info.value.field == "data_security_mode"


def _run(life: str, result: str | None = None, message: str = "") -> dict:
    state = {"life_cycle_state": life, "state_message": message}
    if result:
        state["result_state"] = result
    return {"run_id": 7, "run_page_url": "https://x/#job/runs/7", "state": state,
            "tasks": [{"run_id": 70, "task_key": "main"}]}


def test_a_successful_run():
    result = run_result(_run("TERMINATED", "SUCCESS"), {"logs": "hello\n"})
    assert result.ok and result.done
    assert result.state == "TERMINATED/SUCCESS"
    assert result.task_run_id == 70
    assert result.output == "hello\n"
    assert result.raise_for_state() is result
    assert jobs.Run.from_dict(result.raw).state.result_state == jobs.RunResultState.SUCCESS


def test_a_failed_script_gives_exit_code_and_last_lines():
    logs = "\n".join(f"line {i}" for i in range(50)) + "\nTraceback: boom\n"
    result = run_result(_run("TERMINATED", "FAILED", "Workload failed"),
                        {"error": "Python script exited with code 3", "logs": logs})
    assert not result.ok and result.done
    assert result.exit_code == 3
    with pytest.raises(RunError) as info:
        result.raise_for_state()
    error = info.value
    assert error.exit_code == 3 and error.result_state == "FAILED"
    assert error.last_lines[-1] == "Traceback: boom"
    assert len(error.last_lines) == 20
    assert "exit code 3" in str(error) and "Traceback: boom" in str(error)
    assert "line 0\n" not in str(error)
    assert "https://x/#job/runs/7" in error.hint


def test_a_missing_file_says_where_the_file_is_read_from():
    result = run_result(_run("INTERNAL_ERROR", "FAILED", "Cannot read the python file /Workspace/x.py"),
                        {"error": "/Workspace/x.py does not exist"})
    error = result.to_error()
    assert "does not exist" in str(error)
    assert "upload it or fix the path" in error.hint


def test_states_that_are_not_final():
    for life in ("PENDING", "QUEUED", "RUNNING", "TERMINATING"):
        assert not run_result(_run(life)).done
    assert run_result(_run("SKIPPED")).done and not run_result(_run("SKIPPED")).ok
    assert not run_result(_run("TERMINATED", "CANCELED")).ok


def test_task_run_id_and_last_lines():
    assert task_run_id({"run_id": 5}) == 5
    assert task_run_id({"run_id": 5, "tasks": [{"run_id": 6}]}) == 6
    assert last_lines("a\nb\nc\n", 2) == ["b", "c"]
    assert last_lines(None) == []


# -- the server side: what the local preflight workspace reads and answers ----------------------


def test_read_submit_gives_the_validated_tasks():
    body = submit_body(SPEC, python_file="file:/databricks/app/main.py", parameters=["-v"])
    [task] = read_submit(body)
    assert task.python_file == "file:/databricks/app/main.py" and task.parameters == ["-v"]
    assert task.spec.to_dict() == body["tasks"][0]["new_cluster"]
    [nb] = read_submit(submit_body(SPEC, notebook="/Workspace/n", parameters=["a=1"]))
    assert nb.notebook == "/Workspace/n" and nb.parameters == {"a": "1"}


@pytest.mark.parametrize("body, message", [
    ({}, "non-empty tasks"),
    ({"tasks": [{"task_key": "t", "existing_cluster_id": "c", "spark_python_task": {"python_file": "a.py"}}]},
     "needs a new_cluster"),
    ({"tasks": [{"task_key": "t", "new_cluster": SPEC.to_dict(), "sql_task": {}}]}, "spark_python_task"),
])
def test_read_submit_refuses_what_it_cannot_run(body, message):
    with pytest.raises(UsageError, match=message):
        read_submit(body)


def test_read_submit_validates_new_cluster_like_clusters_create():
    body = submit_body(SPEC, python_file="/Workspace/a.py")
    body["tasks"][0]["new_cluster"]["spark_version"] = "15.4.x-cpu-ml-scala2.12"
    with pytest.raises(SpecError) as info:
        read_submit(body)
    assert info.value.field == "spark_version"


def test_task_outcome_reads_back_as_the_client_expects():
    state, output = task_outcome(0, "hello\n")
    ok = run_result({"run_id": 1, "state": state}, output)
    assert ok.ok and ok.output == "hello\n" and ok.exit_code == 0
    state, output = task_outcome(3, "".join(f"l{i}\n" for i in range(500)))
    failed = run_result({"run_id": 2, "state": state}, output)
    assert not failed.ok and failed.exit_code == 3 and failed.state == "TERMINATED/FAILED"
    assert failed.to_error().last_lines[-1] == "l499"
    state, output = task_outcome(None, "", error="file:/x.py does not exist in the image")
    missing = run_result({"run_id": 3, "state": state}, output)
    assert missing.life_cycle_state == "INTERNAL_ERROR"
    assert "upload it or fix the path" in missing.to_error().hint


def test_task_outcome_keeps_the_last_5_mb_of_the_logs_as_databricks_does():
    assert jobs.RunOutput.from_dict({"logs": "x", "logs_truncated": True}).logs_truncated is True  # the SDK's field
    short = task_outcome(0, "hello\n")[1]
    assert (short["logs"], short["logs_truncated"]) == ("hello\n", False)
    lines = "".join(f"{i:09d}\n" for i in range(600_000))  # 6 MB
    state, output = task_outcome(0, lines)
    assert output["logs_truncated"] is True and len(output["logs"]) == LOGS_MAX_BYTES
    assert lines.endswith(output["logs"]) and output["logs"].endswith("000599999\n")
    # the engine already kept only the end: said as truncated even when it fits
    assert task_outcome(0, "the end\n", truncated=True)[1]["logs_truncated"] is True
    state, output = task_outcome(1, lines, truncated=True)
    assert output["logs_truncated"] is True and len(output["logs"]) == LOGS_MAX_BYTES
    assert output["error_trace"].splitlines() == [f"{i:09d}" for i in range(599_800, 600_000)]  # 200 lines
    result = run_result({"run_id": 4, "state": state}, output)
    assert result.logs_truncated and result.to_error().last_lines[-1] == "000599999"
    assert result.shown_output == f"{TRUNCATED_NOTE}\n{output['logs']}"
    assert TRUNCATED_NOTE == "(output truncated: only its last 5 MB are shown)"
    whole = run_result({"run_id": 5, "state": {}}, {"logs": "all\n", "logs_truncated": False})
    assert not whole.logs_truncated and whole.shown_output == "all\n"


@pytest.mark.parametrize("text", ["", "\n", "a", "a\n\n\n", "a\nb\r\nc\rd\n", "x\n" * 50, "\n\nq\u2028r\n\ns\n"])
def test_last_lines_reads_only_the_end_and_splits_as_splitlines(text: str) -> None:
    for count in (1, 2, 3, 20):
        assert last_lines(text, count) == text.rstrip("\n").splitlines()[-count:]
    assert last_lines(text, 0) == []


def test_task_command_runs_the_image_python_with_the_parameters():
    [task] = read_submit(submit_body(SPEC, python_file="file:/databricks/app/main.py", parameters=["--day", "1"]))
    assert task_command(task) == ["/databricks/python3/bin/python3", "/databricks/app/main.py", "--day", "1"]
    [ws_task] = read_submit(submit_body(SPEC, python_file="/Workspace/Shared/etl.py"))
    with pytest.raises(UsageError, match="not inside the image"):
        task_command(ws_task)
    assert task_command(ws_task, "/tmp/dcs-run/etl.py") == ["/databricks/python3/bin/python3", "/tmp/dcs-run/etl.py"]
    [nb] = read_submit(submit_body(SPEC, notebook="/Workspace/n", parameters=["day=1"]))
    assert task_command(nb, "/tmp/n.py")[2:] == ["--day", "1"]


def test_notebook_code_from_ipynb_and_source_format():
    ipynb = json.dumps({"cells": [{"cell_type": "markdown", "source": ["# title"]},
                                  {"cell_type": "code", "source": ["%pip install x\n", "import sys\n", "x = 1"]},
                                  {"cell_type": "code", "source": "!ls\nprint(x)"}],
                        "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
    code = notebook_code(ipynb.encode())
    assert code == "import sys\nx = 1\n\nprint(x)\n"
    compile(code, "nb", "exec")
    source = "# Databricks notebook source\nx = 2\n\n# COMMAND ----------\n\n# MAGIC %md hi\nprint(x)\n"
    assert notebook_code(source) == source
