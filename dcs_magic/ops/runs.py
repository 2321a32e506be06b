"""Following a one-time job run to its end: the I/O half of `dcs run --wait` / `%dcs_run`.

The run bodies and the reading of the answers are pure (`dcs_magic.model.jobs`); this module
asks a workspace (any object with the `Workspace` run methods, the local preflight one
included) for them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import DcsError
from ..model.jobs import RunResult, run_result, task_run_id
from ..settings import RUN_TIMEOUT_S

if TYPE_CHECKING:  # imported lazily at run time: the workspace adapter loads requests
    from ..adapters.workspace import Workspace

__all__ = ["follow_run"]


def follow_run(workspace: Workspace, run_id: int, *, timeout_s: float = RUN_TIMEOUT_S,
               on_state: Callable[[dict[str, Any]], Any] | None = None, **wait: Any) -> RunResult:
    """Wait for the run to end, fetch its task's output, and return the RunResult (which
    may be a failure: `result.ok`, `result.raise_for_state()`). `wait` goes to
    `wait_for_run` (its `sleep` / `clock`)."""
    run = workspace.wait_for_run(run_id, timeout_s=timeout_s, on_state=on_state, **wait)
    task = task_run_id(run)
    output = None
    if task is not None:
        try:
            output = workspace.get_run_output(task)
        except DcsError as exc:  # the run's state still says what happened
            output = {"error": f"(its output could not be read: {exc.message})"}
    result = run_result(run, output)
    if not result.run_page_url:
        result.run_page_url = workspace.run_url(run)
    return result
