"""One way to follow a cluster: `ClusterFollower` polls `clusters/get` (and, when asked,
`clusters/events`) until the cluster runs or ends, pausing as its workspace's `PollPolicy` says.

Used by `Workspace.wait_for_cluster` (and through it `dcs launch --wait` and
`recipe.create_cluster`) and by the `%dcs_launch` form, which follows in a thread past RUNNING
to see the cluster end. Because the pauses come from the workspace client (`Workspace.polling`,
made from its `poll_s`), the local preflight workspace's 0.1 s polls reach every follower: the
form sees a local cluster's state changes as fast as `wait_for_cluster` does.

The follower knows nothing of HTTP or of what an outcome means: it returns the last
`clusters/get` answer and lets the caller turn TERMINATED/ERROR into a `ClusterError`
(`workspace.cluster_error`), or into "terminated from this form".
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import DcsError

__all__ = ["ENDED_STATES", "MAX_POLL_INTERVAL_S", "RUNNING_POLL_S", "STARTING_STATES", "ClusterClient",
           "ClusterFollower", "PollPolicy"]

MAX_POLL_INTERVAL_S = 10.0
"""Pauses between state polls grow 1, 2, 3, ... seconds, never more than this (like the SDK/CLI)."""
RUNNING_POLL_S = 10.0
"""Seconds between state polls once the cluster runs (it may still stop on its own)."""
ENDED_STATES = ("TERMINATED", "ERROR")
STARTING_STATES = ("PENDING", "RESTARTING")
EVENTS_KEPT = 40
"""The newest events a follower keeps (the form's timeline shows them)."""


@dataclass(frozen=True)
class PollPolicy:
    """How long to pause between polls of something that changes (a cluster, a run).

    While nothing changes the pause grows by `first` (first, 2*first, ...) up to `cap`, and
    starts over after a change: progress tends to come in bursts. `steady` is the beat for a
    cluster that runs and is followed past RUNNING (only a stop or a failure changes it now).
    """

    first: float = 1.0
    cap: float = MAX_POLL_INTERVAL_S
    steady: float = RUNNING_POLL_S

    def next_pause(self, pause: float, *, changed: bool) -> float:
        """The pause after `pause`: `first` again after a change, else one `first` longer."""
        return min((0.0 if changed else pause) + self.first, self.cap)


class ClusterClient(Protocol):
    """What a follower needs of a workspace client (`Workspace` is one)."""

    @property
    def polling(self) -> PollPolicy: ...

    def get_cluster(self, cluster_id: str) -> dict[str, Any]: ...

    def events(self, cluster_id: str, *, order: str = ..., limit: int | None = ...) -> Iterable[dict[str, Any]]: ...


def _event_key(event: Mapping[str, Any]) -> tuple[Any, Any]:
    return event.get("timestamp"), event.get("type")


class ClusterFollower:
    """Follows one cluster's state.

    - `on_state(info)` is called with the `clusters/get` answer whenever state or
      state_message changes (the first answer included).
    - `on_events(events)` (optional: without it no events are read) is called with the newest
      `EVENTS_KEPT` events, oldest first, whenever new ones arrived; read before `on_state`
      so a timeline is up to date when the state is shown. An events request that fails is
      skipped (the timeline is a help, not the outcome).
    - `stop` (an Event the caller may share) ends `follow` at the next poll or pause;
      `wake()` polls at once and starts the pauses over (after a terminate request).
    - Pauses come from `client.polling` (`policy` overrides it); `sleep(seconds)` takes them
      while the cluster changes (default: a wait that `wake()` and `stop()` cut short); the
      steady beat of a running cluster is always such a wait.
    """

    def __init__(self, client: ClusterClient, cluster_id: str, *,
                 on_state: Callable[[dict[str, Any]], Any] | None = None,
                 on_events: Callable[[list[dict[str, Any]]], Any] | None = None,
                 stop: threading.Event | None = None, policy: PollPolicy | None = None,
                 sleep: Callable[[float], Any] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.cluster_id = cluster_id
        self.policy = policy if policy is not None else client.polling
        self.info: dict[str, Any] | None = None
        self.events: list[dict[str, Any]] = []
        self._on_state = on_state
        self._on_events = on_events
        self._stop = stop if stop is not None else threading.Event()
        self._wake = threading.Event()
        self._sleep = sleep
        self._clock = clock
        self._seen: Any = object()  # (state, state_message) last reported
        self._pause = 0.0

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def stop(self) -> None:
        """Stop following (the cluster is not touched)."""
        self._stop.set()
        self._wake.set()

    def wake(self) -> None:
        """Poll now, and pause `first` again after it (a change is on its way)."""
        self._wake.set()

    def follow(self, until: Collection[str] = ("RUNNING",), timeout_s: float | None = None) -> dict[str, Any] | None:
        """Poll until the state is in `until` or has ended (TERMINATED/ERROR), and return that
        `clusters/get` answer. Pass `until=()` to follow a running cluster to its end.

        When `timeout_s` passes first, the last answer is returned (its state is not one
        asked for; the cluster goes on). When stopped, the last answer so far (None before
        the first). A failed `clusters/get` raises its DcsError. Calling `follow` again
        goes on where the last call stopped (no state is reported twice).
        """
        deadline = None if timeout_s is None else self._clock() + timeout_s
        while not self._stop.is_set():
            info = self.client.get_cluster(self.cluster_id)
            self.info = info
            if self._on_events is not None:
                self._read_events()
            key = (info.get("state"), info.get("state_message"))
            changed = key != self._seen
            self._seen = key
            if changed and self._on_state is not None:
                self._on_state(info)
            state = info.get("state")
            if state in until or state in ENDED_STATES:
                return info
            if self._wake.is_set():  # woken while polling: poll again at once
                self._wake.clear()
                self._pause = 0.0
                continue
            if state == "RUNNING":
                self._pause = 0.0
                self._wait(self.policy.steady)
                continue
            remaining = None if deadline is None else deadline - self._clock()
            if remaining is not None and remaining <= 0:
                return info
            self._pause = self.policy.next_pause(self._pause, changed=changed)
            pause = self._pause if remaining is None else min(self._pause, remaining)
            if self._sleep is not None:
                self._sleep(pause)
            else:
                self._wait(pause)
        return self.info

    def _wait(self, seconds: float) -> None:
        """A pause that `wake()` or `stop()` cuts short; after a wake the pauses start over."""
        if self._wake.wait(seconds):
            self._wake.clear()
            self._pause = 0.0

    def _read_events(self) -> None:
        try:
            latest = list(self.client.events(self.cluster_id, order="DESC", limit=EVENTS_KEPT))
        except DcsError:
            return
        known = {_event_key(e) for e in self.events}
        fresh = [e for e in reversed(latest) if _event_key(e) not in known]
        if fresh:
            self.events = (self.events + fresh)[-EVENTS_KEPT:]
            assert self._on_events is not None
            self._on_events(list(self.events))
