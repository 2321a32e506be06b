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
    assert main(["why", "--from", str(tmp_path / "missing")]) == 1
    assert "does not exist" in capsys.readouterr().err
