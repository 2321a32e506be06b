"""ops/runs.py: following a run over any object with the Workspace run methods (no HTTP)."""

from __future__ import annotations

from typing import Any

from dcs_magic.errors import ApiError
from dcs_magic.ops.runs import follow_run


class FakeRuns:
    """wait_for_run / get_run_output / run_url, answering what a workspace would."""

    def __init__(self, run: dict[str, Any], output: dict[str, Any] | Exception) -> None:
        self.run, self.output = run, output
        self.waits: list[dict[str, Any]] = []

    def wait_for_run(self, run_id: int, **kwargs: Any) -> dict[str, Any]:
        self.waits.append({"run_id": run_id, **kwargs})
        return self.run

    def get_run_output(self, task_run_id: int) -> dict[str, Any]:
        if isinstance(self.output, Exception):
            raise self.output
        return {**self.output, "asked": task_run_id}

    def run_url(self, run: dict[str, Any]) -> str:
        return f"https://ws.example.com/jobs/runs/{run['run_id']}"


def test_follow_run_reads_the_task_output_and_fills_the_run_page() -> None:
    run = {"run_id": 7, "tasks": [{"run_id": 8}],
           "state": {"life_cycle_state": "TERMINATED", "result_state": "FAILED"}}
    fake = FakeRuns(run, {"error": "Script exited with exit code 3", "logs": "boom"})
    result = follow_run(fake, 7, timeout_s=5, sleep=None)  # type: ignore[arg-type]
    assert fake.waits == [{"run_id": 7, "timeout_s": 5, "on_state": None, "sleep": None}]
    assert (result.run_id, result.exit_code, result.ok) == (7, 3, False)
    assert result.run_page_url == "https://ws.example.com/jobs/runs/7"


def test_an_unreadable_output_still_gives_the_runs_state() -> None:
    run = {"run_id": 7, "run_page_url": "https://ws/runs/7", "tasks": [{"run_id": 8}],
           "state": {"life_cycle_state": "TERMINATED", "result_state": "SUCCESS"}}
    result = follow_run(FakeRuns(run, ApiError("gone", status=404)), 7)  # type: ignore[arg-type]
    assert result.ok and result.run_page_url == "https://ws/runs/7"
    assert "its output could not be read: gone" in result.error
