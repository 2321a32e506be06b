"""How `build()` and `push()` run: stoppable, reported, and in the background.

One concern shared by both operations (ops/build.py, ops/push.py): a run that can be stopped
from anywhere (`Cancelled`, `CancelToken`, `run_stoppable`: Ctrl-C, Kernel > Interrupt, a
Stop button or `Job.cancel()` close the engine's stream within about a second), whose engine
events fold into a progress state that reaches a sink at a bounded rate (`Reporter`; a sink
is any object with `update(snapshot)` and `close(snapshot)`, see dcs_magic.jupyter.widgets),
and that may run in a background thread (`Job`, `%dcs_build --bg`).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import closing, contextmanager, suppress
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar

from ..model.progress import BuildState, ProgressSnapshot, PushState, Throttle

if TYPE_CHECKING:  # imported lazily at run time
    from ..adapters.engine import Engine

__all__ = [
    "CLEANUP_WAIT_S",
    "CancelToken",
    "Cancelled",
    "Job",
    "ProgressSink",
    "Reporter",
    "aborting",
    "consume",
    "offer_cancel",
    "quietly",
    "reported",
    "run_stoppable",
    "token_for",
]

P = ParamSpec("P")
T = TypeVar("T")

CLEANUP_WAIT_S = 10.0
# The classic builder's own warnings in the build output, e.g. "[Warning] One or more
# build-args [FOO] were not consumed", "[WARNING]: Empty continuation line found in: ...".
_ENGINE_WARNING = re.compile(r"^\s*\[warning\]:?\s*(.+)$", re.IGNORECASE)


class ProgressSink(Protocol):
    """Where snapshots go: a widget, a text printer, a test recorder.

    A sink may also have `bind_cancel(cancel)`: build/push call it once at the start with a
    function that stops this run (thread-safe, idempotent, returns at once), e.g. for a
    Stop button. Sinks without it are fine.
    """

    def update(self, snapshot: ProgressSnapshot) -> None: ...

    def close(self, snapshot: ProgressSnapshot) -> None: ...


class Cancelled(KeyboardInterrupt):
    """A build or push was stopped: Ctrl-C, Kernel > Interrupt, a Stop button, `Job.cancel()`.

    A KeyboardInterrupt, so code that handles Ctrl-C handles it too; its message is the one
    line notebooks show ("Build cancelled; step container removed", "Push cancelled").
    """

    def __init__(self, message: str = "Cancelled") -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class CancelToken:
    """Cancellation of one run, shared by whoever may stop it and whatever must react.

    `cancel()` is thread-safe and idempotent and returns at once; it runs the callbacks
    registered with `on_cancel()` (e.g. `Engine.abort`, which closes the stream so a reader
    blocked on a silent step wakes up and the engine aborts). A callback registered after
    the cancellation runs immediately.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], Any]] = []

    def cancel(self) -> None:
        """Stop the run now (from any thread); later calls do nothing."""
        with self._lock:
            if self._event.is_set():
                return
            self._event.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            quietly(callback)

    set = cancel  # threading.Event's spelling, for code written against `cancel: Event`

    def is_set(self) -> bool:
        """True once cancelled."""
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until cancelled or `timeout` s passed; True when cancelled."""
        return self._event.wait(timeout)

    def on_cancel(self, callback: Callable[[], Any]) -> Callable[[], None]:
        """Run `callback()` on cancellation (now, if already cancelled); returns an unregister."""
        with self._lock:
            if not self._event.is_set():
                self._callbacks.append(callback)
                return lambda: self._forget(callback)
        quietly(callback)
        return lambda: None

    def _forget(self, callback: Callable[[], Any]) -> None:
        with self._lock:
            if callback in self._callbacks:
                self._callbacks.remove(callback)


def quietly(callback: Callable[[], Any]) -> None:
    # A failing reaction (a widget gone, an engine already closed) must not stop the others.
    with suppress(Exception):
        callback()


def token_for(cancel: CancelToken | threading.Event | None) -> CancelToken:
    """The run's token; a plain Event (older callers) is honoured at the next engine event."""
    if isinstance(cancel, CancelToken):
        return cancel
    token = CancelToken()
    if cancel is not None:
        token._event = cancel  # same flag: honoured at the next event (no callbacks on an Event)
    return token


def offer_cancel(sink: Any, cancel: Callable[[], None]) -> None:
    """Give a sink with `bind_cancel` (a widget's Stop button) the way to stop this run."""
    bind = getattr(sink, "bind_cancel", None)
    if callable(bind):
        bind(cancel)


def run_stoppable(token: CancelToken, fn: Callable[[], T]) -> T:
    """Run `fn()`; in the main thread, in a worker so that an interrupt acts at once.

    A blocking socket read does not see `_thread.interrupt_main()` (nor, on Windows, Ctrl-C),
    so the main thread only waits; on KeyboardInterrupt it cancels the token (which closes
    the stream) and waits for the worker's cleanup, then raises the worker's `Cancelled`.
    Off the main thread (a `--bg` Job) `fn` runs right there: no signal reaches it anyway.
    """
    if threading.current_thread() is not threading.main_thread():
        return fn()
    result: list[T] = []
    error: list[BaseException] = []
    done = threading.Event()

    def work() -> None:
        try:
            result.append(fn())
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            error.append(exc)
        finally:
            done.set()

    threading.Thread(target=work, name="dcs-run", daemon=True).start()
    try:
        while not done.wait(0.1):
            pass
    except KeyboardInterrupt:
        token.cancel()
        deadline = time.monotonic() + CLEANUP_WAIT_S + 5
        while not done.is_set() and time.monotonic() < deadline:
            try:
                done.wait(0.1)
            except KeyboardInterrupt:  # pressed again: the cleanup is already under way
                pass
        if not done.is_set():
            raise Cancelled("Cancelled; the cleanup goes on in the background") from None
    if error:
        raise error.pop()
    return result[0]


# -- throttled reporting ----------------------------------------------------------------


class Reporter:
    """Applies events to a state and sends throttled snapshots to a sink.

    The event loop sends when the throttle allows; when events pause (a silent RUN step), a
    small flusher thread sends what is still unsent, so the display never lags more than one
    interval behind. Both go through one lock and one Throttle, so the rate bound holds.
    """

    def __init__(self, state: BuildState | PushState, sink: ProgressSink | None, interval: float,
                 cancel: CancelToken | None = None, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        self.state = state
        self.sink = sink
        self.cancel = cancel
        self.clock = clock
        self.started = clock()
        self._throttle = Throttle(interval, clock)
        self._lock = threading.RLock()
        self._dirty = False
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None
        if sink is not None:
            self._send()  # show the widget's first state at once
            if interval > 0:
                self._flusher = threading.Thread(target=self._flush_loop, args=(interval,),
                                                 name="dcs-progress", daemon=True)
                self._flusher.start()

    @property
    def elapsed_s(self) -> float:
        return self.clock() - self.started

    def apply(self, event: dict[str, Any]) -> list[str]:
        return self.apply_many((event,))

    def apply_many(self, events: list[dict[str, Any]] | tuple[dict[str, Any], ...]) -> list[str]:
        """Fold events (one read's worth) into the state under one lock acquisition, one
        cancel check and one throttle check; the log lines they completed."""
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled(f"{self.state.kind.capitalize()} cancelled")
        with self._lock:
            lines = self.state.apply_many(events)
            self._changed()
        return lines

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a state method under the lock (finish, fail, warn, cancel)."""
        with self._lock:
            result = fn(*args)
            self._changed()
        return result

    def close(self) -> None:
        """Stop the flusher; send the final snapshot with `close()`."""
        self._stop.set()
        if self._flusher is not None and self._flusher is not threading.current_thread():
            self._flusher.join(timeout=5)
        if self.sink is not None:
            with self._lock:
                self.sink.close(self._snapshot())

    def _changed(self) -> None:
        self._dirty = True
        if self.sink is not None and self._running() and self._throttle.ready():
            self._send()

    def _running(self) -> bool:
        # Once the state says how the run ended, only close() shows it: an update() with
        # the same outcome made text sinks print "cancelled" (or "failed") twice.
        return self.state.status == "running"

    def _snapshot(self) -> ProgressSnapshot:
        return self.state.snapshot(elapsed_s=self.elapsed_s)

    def _send(self) -> None:
        self._dirty = False
        if self.sink is not None:
            self.sink.update(self._snapshot())

    def _flush_loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            with self._lock:
                if self._stop.is_set():
                    return
                if self._dirty and self._running() and self._throttle.ready():
                    try:
                        self._send()
                    except Exception:  # noqa: BLE001 - a broken display must not break the build
                        return


def reported(reporter: Reporter, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Run `fn`; whatever happens, the sink gets a final snapshot that says how it ended."""
    state = reporter.state
    try:
        result = fn(*args, **kwargs)
    except KeyboardInterrupt:
        reporter.call(state.cancel)
        reporter.close()
        raise
    except BaseException as exc:
        # The error's full message (step, last lines, hint) replaces the engine's short one.
        reporter.call(state.fail, str(exc) or type(exc).__name__)
        reporter.close()
        raise
    reporter.close()
    return result


def consume(reporter: Reporter, events: Any, log: Any = None, token: CancelToken | None = None) -> None:
    """Feed a stream to the reporter: events one by one, or lists of them (one per read from
    the engine, `Engine.build_batches`), each list applied at once; log lines to `log`."""
    # closing(): if we stop early (interrupt, cancel, a sink error) the generator's finally
    # closes the HTTP response at once, which is what makes the engine abort the build.
    build = isinstance(reporter.state, BuildState)
    try:
        with closing(events):
            for item in events:
                lines = reporter.apply_many(item if item.__class__ is list else (item,))
                if not lines:
                    continue
                text = "\n".join(lines) + "\n"
                if log is not None:
                    log.write(text)
                if build and "[" in text:  # the builder's "[Warning] ..." lines: rare, regex only then
                    for line in lines:
                        if "[" in line and (warning := _ENGINE_WARNING.match(line)):
                            reporter.call(reporter.state.warn, warning[1].strip())
    except Exception as exc:
        # A stream shut by a cancel ends with whatever the transport says (StreamAborted, a
        # reset connection): that is the cancellation, not a failure.
        if token is not None and token.is_set():
            raise Cancelled(f"{reporter.state.kind.capitalize()} cancelled") from exc
        raise


@contextmanager
def aborting(token: CancelToken, engine: Engine) -> Iterator[None]:
    """While inside: cancelling the token aborts the engine's stream (from any thread)."""
    forget = token.on_cancel(engine.abort)
    try:
        yield
    finally:
        forget()


# -- background jobs --------------------------------------------------------------------


class _TeeSink:
    """Keeps the last snapshot for `Job.state` and forwards to the real sink (if any)."""

    def __init__(self, sink: ProgressSink | None) -> None:
        self.sink = sink
        self.last: ProgressSnapshot | dict[str, Any] = {}

    def update(self, snapshot: ProgressSnapshot) -> None:
        self.last = snapshot
        if self.sink is not None:
            self.sink.update(snapshot)

    def close(self, snapshot: ProgressSnapshot) -> None:
        self.last = snapshot
        if self.sink is not None:
            self.sink.close(snapshot)

    def bind_cancel(self, cancel: Callable[[], None]) -> None:
        offer_cancel(self.sink, cancel)


class Job:
    """A build or push running in a background thread (`--bg`).

    `status` ("running", "done", "failed", "cancelled"), `done()`, `result(timeout=None)`
    (returns the result or re-raises the failure; `Cancelled` after a cancel), `state` (the
    latest progress snapshot), `cancel()` (stops it within about a second, whatever the step
    prints, and cleans up like Ctrl-C), `add_done_callback(fn)`.

    Kernel > Interrupt interrupts the cell that is running, not a background job: stop a job
    with its widget's Stop button or `job.cancel()`.
    """

    def __init__(self, kind: str, title: str, fn: Callable[..., Any], *args: Any,
                 on_result: Callable[[Any], Any] | None = None, **kwargs: Any) -> None:
        """Start `fn(*args, **kwargs, progress=..., cancel=...)` in a daemon thread.

        `on_result(result)` runs in that thread after a success (e.g. to remember the result).
        """
        self.kind = kind
        self.title = title
        self._future: Future[Any] = Future()
        self._cancel = CancelToken()
        self._tee = _TeeSink(kwargs.pop("progress", None))
        self._thread = threading.Thread(target=self._run, args=(fn, args, kwargs, on_result),
                                        name=f"dcs-{kind}-{title}", daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
             on_result: Callable[[Any], Any] | None) -> None:
        self._future.set_running_or_notify_cancel()
        try:
            result = fn(*args, progress=self._tee, cancel=self._cancel, **kwargs)
            if on_result is not None:
                on_result(result)
        except BaseException as exc:  # noqa: BLE001 - kept for result() / exception()
            self._future.set_exception(exc)
        else:
            self._future.set_result(result)

    @property
    def state(self) -> dict[str, Any]:
        """The latest progress snapshot (updated at most once per progress interval)."""
        return dict(self._tee.last)

    @property
    def status(self) -> str:
        """"running", "done", "failed" or "cancelled"."""
        if not self._future.done():
            return "running"
        error = self._future.exception()
        if error is None:
            return "done"
        return "cancelled" if isinstance(error, KeyboardInterrupt) else "failed"

    def done(self) -> bool:
        return self._future.done()

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the result; re-raise the build's / push's error. TimeoutError if not done."""
        return self._future.result(timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        return self._future.exception(timeout)

    def cancel(self, timeout: float | None = CLEANUP_WAIT_S + 5) -> bool:
        """Stop the job now: the stream is closed at once (the engine aborts the step or the
        upload) and the step's container removed. Waits up to `timeout` s (None: no limit,
        0: not at all) for that cleanup; True when the job has ended. Safe to call twice."""
        self._cancel.cancel()
        if timeout == 0 or threading.current_thread() is self._thread:  # e.g. from a sink callback
            return self.done()
        self._thread.join(timeout)
        return self.done()

    def add_done_callback(self, fn: Callable[[Job], Any]) -> None:
        self._future.add_done_callback(lambda _future: fn(self))

    def _ipython_display_(self) -> None:
        """Show the job's line with a display id and replace it when the job ends, so a
        notebook never keeps a stale "running" line under a finished widget."""
        from IPython.core.getipython import get_ipython
        from IPython.display import display

        # IPython's functions carry no annotations: called through typed names (mypy --strict).
        show: Callable[..., Any] = display
        shell: Callable[[], Any] = get_ipython
        handle = show({"text/plain": repr(self)}, raw=True, display_id=True)
        # Only a notebook front-end replaces the line; a terminal would print it again later,
        # in the middle of whatever the user is typing.
        if handle is not None and getattr(shell(), "kernel", None) is not None:
            self.add_done_callback(lambda job: quietly(
                lambda: handle.update({"text/plain": repr(job)}, raw=True)))

    def __repr__(self) -> str:
        status = self.status
        if status == "running":
            state = self.state
            where = ""
            if state.get("total_steps"):
                where = f", step {state['step']}/{state['total_steps']}"
            elif state.get("layers_total"):
                where = f", {state['layers_done']}/{state['layers_total']} layers"
            return f"<Job {self.kind} {self.title!r}: running{where}, {state.get('elapsed_s', 0.0):.1f}s>"
        if status == "cancelled":
            return f"<Job {self.kind} {self.title!r}: cancelled>"
        error = self._future.exception()
        if error is not None:
            first = (getattr(error, "message", None) or str(error) or type(error).__name__).splitlines()[0]
            return f"<Job {self.kind} {self.title!r}: failed: {first}>"
        return f"<Job {self.kind} {self.title!r}: done -> {self._future.result()!r}>"
