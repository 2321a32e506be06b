"""`dcs run --python-file job.py` with a file on this machine (issue 24, item 5), as a user
runs it from a clean shell: a subprocess whose environment has no DATABRICKS_* or DCS_*
variable and whose HOME is an empty temp dir.

- against the local preflight workspace (real engine, the DCS base image pushed to the plain
  test registry): the file is uploaded to /Workspace/Users/<user>/.dcs/runs/<hash>/<name>,
  the run really runs it in the image, and a second run of the same file uses the same path;
- against the fake Clusters/Jobs API (tests/support/clusters_api.py, whose workspace/mkdirs
  and workspace/import check the bodies with the databricks-sdk's WorkspaceAPI parameters
  and ImportFormat): the upload destination under scim/v2/Me's userName, nothing of the
  user's written over;
- a local path that does not exist is a usage error (exit 2) naming it, before any request.
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support.clusters_api import ClustersApi, jobs_state
from support.images import job_cluster_spec

CLI = [sys.executable, "-m", "dcs_magic.cli"]
STATE_LINE = re.compile(r"^  \d\d:\d\d:\d\d ([A-Z_/]+)")


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """This process's environment without DATABRICKS_* / DCS_* variables, HOME an empty dir."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABRICKS_", "DCS_"))}
    return {**env, "HOME": str(home), **extra}


def dcs(*args: str, env: dict[str, str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                          check=False)


def uploaded_to(stderr: str, source: str) -> str:
    found = re.findall(rf"^Uploaded {re.escape(source)} to (\S+)$", stderr, re.MULTILINE)
    assert len(found) == 1, stderr
    return found[0]


def states(stderr: str) -> list[str]:
    """The life cycle states of the state lines, consecutive repeats (new messages) folded."""
    seen: list[str] = []
    for line in stderr.splitlines():
        match = STATE_LINE.match(line)
        if match and (not seen or seen[-1] != match[1]):
            seen.append(match[1])
    return seen


# -- against the local preflight workspace --------------------------------------------------------


@pytest.fixture
def local_spec(dcs_base_image: str, registry: Any, docker_client: Any, docker_cleanup: Any, tmp_path: Path) -> Path:
    """A job cluster spec whose image is the DCS base, pushed to the plain registry."""
    return job_cluster_spec(docker_client, docker_cleanup, dcs_base_image, registry.host, "run-local-file",
                            tmp_path / "cluster.json")


@pytest.mark.docker
@pytest.mark.slow
def test_dcs_run_local_uploads_a_local_file_and_runs_it(local_spec: Path, tmp_path: Path) -> None:
    work, home = tmp_path / "project", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    script = work / "report_job.py"
    # The task outlasts a few of the local workspace's 0.1 s polls, so RUNNING is seen.
    script.write_text("import sys, time\ntime.sleep(0.6)\nprint('the local job ran', sys.argv[1:])\n")
    digest = hashlib.sha256(script.read_bytes()).hexdigest()[:16]
    expected = f"/Workspace/Users/{getpass.getuser()}/.dcs/runs/{digest}/report_job.py"
    env = clean_env(home)

    first = dcs("run", "--local", "--spec", str(local_spec), "--python-file", "report_job.py",
                "--parameters", "--day", "1", env=env, cwd=work)
    assert first.returncode == 0, first.stdout + first.stderr
    assert uploaded_to(first.stderr, "report_job.py") == expected
    assert "the local job ran ['--day', '1']" in first.stdout
    assert "State: TERMINATED/SUCCESS (exit code 0)" in first.stdout
    # The local workspace (and the run's page) end with the command: no URL that dies is printed.
    assert re.search(r"^Run \d+ on the local preflight workspace \(its pages end with this command\)$",
                     first.stdout, re.MULTILINE), first.stdout
    assert "http://" not in first.stdout + first.stderr
    shown = states(first.stderr)
    assert shown[0] == "PENDING" and shown[-1] == "TERMINATED/SUCCESS" and "RUNNING" in shown, first.stderr
    assert shown.index("PENDING") < shown.index("RUNNING") < shown.index("TERMINATED/SUCCESS")
    assert "Traceback" not in first.stderr

    # The same file, named by another path: the same upload path (content addressed).
    again = dcs("run", "--local", "--spec", str(local_spec), "--python-file", str(script), env=env, cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert uploaded_to(again.stderr, str(script)) == expected
    assert "the local job ran []" in again.stdout


def test_a_missing_local_file_is_a_usage_error(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / "cluster.json").write_text("{}")
    proc = dcs("run", "--local", "--spec", "cluster.json", "--python-file", "jobs/missing_job.py",
               env=clean_env(home), cwd=tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "jobs/missing_job.py: no such file on this machine" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""


# -- against the fake Clusters/Jobs API (where the file goes on Databricks) --------------------------


SPEC = {"cluster_name": "dcs-test-run-file", "spark_version": "15.4.x-scala2.12", "node_type_id": "i3.xlarge",
        "num_workers": 0, "data_security_mode": "SINGLE_USER", "single_user_name": "test@example.com",
        "docker_image": {"url": "registry.example.com/team/app@sha256:" + "c" * 64}}


def test_the_file_goes_to_the_users_run_folder_on_a_workspace(api: ClustersApi, tmp_path: Path) -> None:
    work, home = tmp_path / "project", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    (work / "cluster.json").write_text(json.dumps(SPEC))
    script = work / "etl_job.py"
    script.write_text("print('etl')\n")
    theirs = b"print('the user\\'s own file')\n"
    api.files["/Workspace/Users/test@example.com/etl_job.py"] = theirs
    env = clean_env(home, DATABRICKS_HOST=api.host, DATABRICKS_TOKEN=api.token)
    content = script.read_bytes()
    expected = ("/Workspace/Users/test@example.com/.dcs/runs/"
                f"{hashlib.sha256(content).hexdigest()[:16]}/etl_job.py")

    proc = dcs("run", "--spec", "cluster.json", "--python-file", "etl_job.py", "--wait", env=env, cwd=work,
               timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert uploaded_to(proc.stderr, "etl_job.py") == expected
    assert states(proc.stderr) == ["PENDING", "RUNNING", "TERMINATED/SUCCESS"]
    assert api.import_rejections == [] and jobs_state(api).submit_rejections == []
    [mkdirs] = api.requests_to("/api/2.0/workspace/mkdirs")
    assert mkdirs.json == {"path": expected.rsplit("/", 1)[0]}
    [upload] = api.requests_to("/api/2.0/workspace/import")
    assert upload.json == {"path": expected, "format": "AUTO", "content": base64.b64encode(content).decode(),
                           "overwrite": True}
    [submit] = api.requests_to("/api/2.2/jobs/runs/submit")
    assert submit.json["tasks"][0]["spark_python_task"] == {"python_file": expected}
    assert submit.json["run_name"] == "dcs run etl_job.py"
    assert api.files[expected] == content
    assert api.files["/Workspace/Users/test@example.com/etl_job.py"] == theirs  # the user's file untouched

    # The same file again: the same path; a changed file: a new one, the first left as it was.
    assert dcs("run", "--spec", "cluster.json", "--python-file", "etl_job.py", env=env, cwd=work,
               timeout=120).returncode == 0
    assert api.requests_to("/api/2.0/workspace/import")[-1].json["path"] == expected
    script.write_text("print('etl v2')\n")
    changed = dcs("run", "--spec", "cluster.json", "--python-file", "etl_job.py", env=env, cwd=work, timeout=120)
    assert changed.returncode == 0, changed.stderr
    moved = uploaded_to(changed.stderr, "etl_job.py")
    assert moved != expected and moved.endswith("/etl_job.py") and api.files[moved] == b"print('etl v2')\n"
    assert api.files[expected] == content

    # Remote paths are run as they are: nothing uploaded.
    imports = len(api.requests_to("/api/2.0/workspace/import"))
    api.files["/Workspace/Shared/etl.py"] = b"print(1)\n"
    remote = dcs("run", "--spec", "cluster.json", "--python-file", "/Workspace/Shared/etl.py", env=env, cwd=work,
                 timeout=120)
    assert remote.returncode == 0 and "Uploaded" not in remote.stderr
    assert len(api.requests_to("/api/2.0/workspace/import")) == imports
    assert api.requests_to("/api/2.2/jobs/runs/submit")[-1].json["tasks"][0]["spark_python_task"] == {
        "python_file": "/Workspace/Shared/etl.py"}


def test_a_missing_local_file_asks_the_workspace_nothing(api: ClustersApi, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / "cluster.json").write_text(json.dumps(SPEC))
    proc = dcs("run", "--spec", "cluster.json", "--python-file", "etl_jobb.py", "--wait", cwd=tmp_path, timeout=120,
               env=clean_env(home, DATABRICKS_HOST=api.host, DATABRICKS_TOKEN=api.token))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "UsageError: --python-file etl_jobb.py: no such file on this machine" in proc.stderr
    assert api.requests == []
