"""`dcs why --from PATH`: a failure explained from downloaded artefacts (no workspace)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dcs_magic.cli.commands import main


def test_cluster_json_events_and_logs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "cluster.json").write_text(json.dumps({
        "state": "TERMINATED", "termination_reason": {"code": "INIT_SCRIPT_FAILURE", "parameters": {
            "databricks_error_message": "Cluster scoped init script /Volumes/a/b/c/setup.sh failed"}}}))
    (tmp_path / "events.json").write_text(json.dumps({"events": [
        {"type": "INIT_SCRIPTS_FINISHED", "details": {"init_scripts": {"cluster": [
            {"volumes": {"destination": "/Volumes/a/b/c/setup.sh"}, "status": "FAILED_EXECUTION",
             "error_message": "Script exit status is non-zero"}]}}}]}))
    logs = tmp_path / "0101-x" / "init_scripts" / "0101-x_10_0_0_1"
    logs.mkdir(parents=True)
    (logs / "20261207_123_setup.sh.stderr.log").write_text("Collecting x\nModuleNotFoundError: No module named 'pkg_resources'\n")
    assert main(["why", "--from", str(tmp_path), "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["code"] == "INIT_SCRIPT_FAILURE" and found["confidence"] == "likely"
    assert "pkg_resources" in found["cause"] or "setuptools" in found["cause"]
    assert found["evidence"][0]["source"].endswith("setup.sh.stderr.log:2")


def test_unknown_failure_shows_lines_and_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "stderr"
    log.write_text("".join(f"step {n}\n" for n in range(30)) + "java.lang.IllegalStateException: odd\n")
    assert main(["why", "--from", str(log)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("Cause: unknown") and "stderr:31: java.lang.IllegalStateException: odd" in out


def test_nothing_to_read_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["why", "--from", str(tmp_path / "missing")]) == 2  # a bad --from: usage
    assert "does not exist" in capsys.readouterr().err


def test_lock_notebook_names_the_dockerfile_cell_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    from dcs_magic.ops.lock import ImageLock, Lock, lock_path, write_lock

    book = tmp_path / "app.ipynb"
    cell = ("%%dockerfile app\nFROM databricksruntime/standard:15.4-LTS\nRUN apt-get update\n"
            "RUN /databricks/python3/bin/pip install pandas==2.1.4\nCOPY app /app\n")
    nbformat.write(new_notebook(cells=[new_markdown_cell("# App"), new_code_cell(cell)]), book)
    pushed = "registry.example.com/team/app"
    write_lock(lock_path(book), Lock(images={"app": ImageLock(
        "0" * 64, tags=[f"{pushed}:1"],
        push={"reference": f"{pushed}:1", "digest": "sha256:" + "a" * 64, "pinned": f"{pushed}@sha256:" + "a" * 64})}))
    failed = tmp_path / "failed"
    failed.mkdir()
    (failed / "cluster.json").write_text(json.dumps({
        "state": "TERMINATED", "docker_image": {"url": f"{pushed}@sha256:" + "a" * 64},
        "termination_reason": {"code": "SPARK_STARTUP_FAILURE", "parameters": {}}}))
    (failed / "stderr").write_text("Traceback (most recent call last):\nModuleNotFoundError: No module named 'xgboost'\n")

    assert main(["why", "--from", str(failed), "--lock", str(book), "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert "xgboost" in found["cause"]
    assert found["where"] == ("%%dockerfile app (cell 2 of app.ipynb), line 4: "
                              "`RUN /databricks/python3/bin/pip install pandas==2.1.4`")
    assert found["fix"].startswith(found["where"] + ": ")
    # a lock file instead of its notebook is refused with the way out
    assert main(["why", "--from", str(failed), "--lock", str(lock_path(book))]) == 1
    assert "give the notebook it belongs to" in capsys.readouterr().err
