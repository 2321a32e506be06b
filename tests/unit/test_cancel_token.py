"""CancelToken, the stoppable runner and the reporter's outcome-once rule (no engine needed)."""

from __future__ import annotations

import _thread
import threading
import time

import pytest
from support.recorder import Recorder

from dcs_magic.model.progress import BuildState
from dcs_magic.ops.runner import Cancelled, CancelToken, Reporter, run_stoppable


def test_cancel_runs_callbacks_once_and_late_ones_at_once() -> None:
    token = CancelToken()
    calls: list[str] = []
    token.on_cancel(lambda: calls.append("a"))
    forget = token.on_cancel(lambda: calls.append("b"))
    forget()
    token.on_cancel(lambda: 1 / 0)  # a failing reaction does not stop the others
    token.on_cancel(lambda: calls.append("c"))
    assert not token.is_set()
    token.cancel()
    token.cancel()
    token.set()
    assert token.is_set() and token.wait(0) and calls == ["a", "c"]
    token.on_cancel(lambda: calls.append("late"))
    assert calls == ["a", "c", "late"]


def test_cancel_from_many_threads_runs_each_callback_once() -> None:
    token = CancelToken()
    calls: list[int] = []
    token.on_cancel(lambda: calls.append(1))
    threads = [threading.Thread(target=token.cancel) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls == [1]


def test_interrupt_of_the_main_thread_cancels_the_worker() -> None:
    """`_thread.interrupt_main()` does not wake a blocking read, so the work runs in a worker
    and the main thread's wait turns the interrupt into a cancel."""
    token = CancelToken()
    seen: list[str] = []

    def work() -> str:
        if token.wait(10):  # stands in for a read that the cancel wakes up
            seen.append(threading.current_thread().name)
            raise Cancelled("Build cancelled")
        return "finished"

    threading.Timer(0.2, _thread.interrupt_main).start()
    started = time.monotonic()
    with pytest.raises(Cancelled, match="^Build cancelled$"):
        run_stoppable(token, work)
    assert time.monotonic() - started < 5
    assert token.is_set() and seen == ["dcs-run"]
    assert run_stoppable(CancelToken(), lambda: "result") == "result"


@pytest.mark.parametrize("end", ["cancel", "fail"])
def test_the_outcome_is_sent_once_by_close(end: str) -> None:
    """13.17: an update() with the final status followed by close() printed it twice."""
    sink = Recorder()
    reporter = Reporter(BuildState(title="x"), sink, interval=0)
    reporter.apply({"stream": "Step 1/2 : FROM busybox\n"})
    if end == "cancel":
        reporter.call(reporter.state.cancel)
    else:
        reporter.call(reporter.state.fail, "boom")
    reporter.close()
    assert [s["status"] for s in sink.updates] == ["running", "running"]
    assert [s["status"] for s in sink.closed] == ["cancelled" if end == "cancel" else "failed"]


def test_a_set_token_stops_at_the_next_event() -> None:
    token = CancelToken()
    reporter = Reporter(BuildState(title="x"), None, interval=0, cancel=token)
    reporter.apply({"stream": "Step 1/2 : FROM busybox\n"})
    token.cancel()
    with pytest.raises(Cancelled, match="^Build cancelled$"):
        reporter.apply({"stream": "more\n"})
