"""Issue 24 items 4-5, the pure part: which --python-file is local, where it is uploaded, and
the one message (RunProgress) that `dcs run`'s lines and `%dcs_run`'s output are made from."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import pytest

from dcs_magic.errors import UsageError
from dcs_magic.model.jobs import RunProgress, RunStateChange, is_remote_path, run_result, staged_path
from dcs_magic.ops.runs import follow_run, python_file_source


@pytest.mark.parametrize("path", ["/Workspace/Users/a@b.com/etl.py", "/Users/a@b.com/etl.py", "/Shared/etl.py",
                                  "/Repos/team/app/etl.py", "/Volumes/main/default/jobs/etl.py", "dbfs:/jobs/etl.py",
                                  "file:/opt/app/etl.py", "s3://bucket/etl.py", "abfss://c@acct.dfs.core.windows.net/e.py",
                                  "gs://bucket/etl.py"])
def test_remote_paths_are_left_as_they_are(path: str) -> None:
    assert is_remote_path(path)
    assert python_file_source(path) == path  # never looked up on this machine


@pytest.mark.parametrize("path", ["job.py", "./job.py", "../jobs/job.py", "/tmp/job.py", "C:\\jobs\\job.py",
                                  "job:v2.py", "/WorkspaceX/job.py"])
def test_other_paths_are_local(path: str) -> None:
    assert not is_remote_path(path)


def test_a_local_file_is_a_path_and_a_missing_one_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "job.py").write_text("print(1)\n")
    assert python_file_source("job.py") == Path("job.py")
    with pytest.raises(UsageError) as info:
        python_file_source("nope.py")
    assert "nope.py" in info.value.message and "no such file on this machine" in info.value.message
    assert "file:/..." in info.value.hint and "/Workspace/..." in info.value.hint
    with pytest.raises(UsageError, match="is a directory"):
        python_file_source(str(tmp_path))


def test_staged_path_is_content_addressed_under_the_users_folder() -> None:
    content = b"print('hello')\n"
    digest = hashlib.sha256(content).hexdigest()[:16]
    assert staged_path("me@example.com", "job.py", content) == f"/Workspace/Users/me@example.com/.dcs/runs/{digest}/job.py"
    assert staged_path("me@example.com", "job.py", content) == staged_path("me@example.com", "job.py", content)
    assert staged_path("me@example.com", "job.py", content + b"#\n") != staged_path("me@example.com", "job.py", content)


def test_state_change_lines_and_the_progress_record() -> None:
    at = time.mktime((2026, 1, 2, 12, 0, 1, 0, 0, -1))
    progress = RunProgress(7, "https://ws.example.com/jobs/runs/7")
    progress.add(RunStateChange.from_run({"state": {"life_cycle_state": "PENDING",
                                                    "state_message": "Waiting for <cluster>"}}, at))
    progress.add(RunStateChange.from_run({"state": {"life_cycle_state": "RUNNING"}}, at + 5))
    assert progress.status == "running"
    assert repr(progress).splitlines() == ["Run 7: https://ws.example.com/jobs/runs/7",
                                           "  12:00:01 PENDING: Waiting for <cluster>", "  12:00:06 RUNNING"]
    html = progress._repr_html_()
    assert '<a href="https://ws.example.com/jobs/runs/7"' in html and 'aria-live="polite"' in html
    assert "Waiting for &lt;cluster&gt;" in html and "<cluster>" not in html
    assert html.index("PENDING") < html.index("RUNNING") and "var(--jp-brand-color1" in html
    result = run_result({"run_id": 7, "state": {"life_cycle_state": "TERMINATED", "result_state": "FAILED"}},
                        {"error": "Python script exited with code 3"})
    progress.finish(result)
    assert repr(progress).splitlines()[-1] == "State: TERMINATED/FAILED (exit code 3)"
    assert progress.status == "failed" and 'role="alert"' in progress._repr_html_()
    bundle = progress._repr_mimebundle_()
    assert bundle["text/plain"] == repr(progress) and bundle["text/html"] == progress._repr_html_()


def test_only_a_web_address_becomes_a_link() -> None:
    html = RunProgress(1, "javascript:alert(1)")._repr_html_()
    assert "href" not in html and "<code>javascript:alert(1)</code>" in html


class Runs:
    """wait_for_run calling on_state for each scripted answer, as Workspace._follow does."""

    def __init__(self, *states: dict[str, Any]) -> None:
        self.states = states

    def wait_for_run(self, run_id: int, *, timeout_s: float, on_state: Any) -> dict[str, Any]:
        for state in self.states:
            on_state({"run_id": run_id, "state": state})
        return {"run_id": run_id, "state": self.states[-1]}

    def get_run_output(self, task_run_id: int) -> dict[str, Any]:
        return {"logs": "done\n"}

    def run_url(self, run: dict[str, Any]) -> str:
        return f"https://ws/runs/{run['run_id']}"


def test_follow_run_reports_each_change_stamped_with_now() -> None:
    seen: list[RunStateChange] = []
    raw: list[str] = []
    clock = iter([100.0, 101.0, 102.0])
    runs = Runs({"life_cycle_state": "PENDING"}, {"life_cycle_state": "RUNNING"},
                {"life_cycle_state": "TERMINATED", "result_state": "SUCCESS"})
    result = follow_run(runs, 5, on_change=seen.append, now=lambda: next(clock),  # type: ignore[arg-type]
                        on_state=lambda run: raw.append(run["state"]["life_cycle_state"]))
    assert [(c.at, c.state) for c in seen] == [(100.0, "PENDING"), (101.0, "RUNNING"), (102.0, "TERMINATED/SUCCESS")]
    assert raw == ["PENDING", "RUNNING", "TERMINATED"]
    assert result.ok and result.outcome == "TERMINATED/SUCCESS" and result.output == "done\n"
