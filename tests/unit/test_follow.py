"""The one cluster follower (`adapters/follow.py`): states reported once, pauses from the
workspace's own policy, the deadline, the running beat, wake and stop, the event timeline.

A scripted client (the three calls a follower makes of a workspace, answering from a list)
for the pause arithmetic with a fake clock; the scripted Clusters API server and a real
`Workspace` for the policy a workspace owns and for the threaded wake/stop paths.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any

import pytest
from support.clock import FakeTime
from support.clusters_api import ClustersApi

from dcs_magic.adapters.follow import ClusterFollower, PollPolicy
from dcs_magic.adapters.workspace import Workspace
from dcs_magic.errors import ApiError, DcsError
from dcs_magic.model.spec import ClusterSpec

SPEC = ClusterSpec(spark_version="15.4.x-scala2.12", num_workers=0,
                   docker_image={"url": "registry.example.com/team/app@sha256:" + "d" * 64})


class Scripted:
    """A workspace that answers clusters/get from `states` (one per call, then the last one
    again) and clusters/events from `events` (newest first, as order=DESC asks)."""

    def __init__(self, *states: dict[str, Any], policy: PollPolicy | None = None,
                 events: list[dict[str, Any]] | None = None, events_fail: bool = False) -> None:
        self.states = list(states)
        self.polling = policy or PollPolicy()
        self.gets = 0
        self.event_log = events if events is not None else []
        self.events_fail = events_fail

    def get_cluster(self, cluster_id: str) -> dict[str, Any]:
        self.gets += 1
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        return {"cluster_id": cluster_id, "state_message": "", **state}

    def events(self, cluster_id: str, *, order: str = "DESC", limit: int | None = None) -> Iterable[dict[str, Any]]:
        if self.events_fail:
            raise ApiError("clusters/events answered 500", status=500)
        assert order == "DESC"
        return list(reversed(self.event_log))[:limit]


def test_states_are_reported_once_and_pauses_start_over_after_a_change() -> None:
    client = Scripted({"state": "PENDING", "state_message": "Finding instances"},
                      {"state": "PENDING", "state_message": "Finding instances"},
                      {"state": "PENDING", "state_message": "Finding instances"},
                      {"state": "PENDING", "state_message": "Pulling image"},
                      {"state": "PENDING", "state_message": "Pulling image"},
                      {"state": "RUNNING"})
    seen: list[tuple[str, str]] = []
    fake = FakeTime()
    follower = ClusterFollower(client, "c-1", on_state=lambda i: seen.append((i["state"], i["state_message"])),
                               sleep=fake.sleep, clock=fake.clock)
    info = follower.follow(("RUNNING",), timeout_s=100)
    assert info is not None and info["state"] == "RUNNING" and follower.info == info
    assert seen == [("PENDING", "Finding instances"), ("PENDING", "Pulling image"), ("RUNNING", "")]
    assert fake.sleeps == [1.0, 2.0, 3.0, 1.0, 2.0]


def test_pauses_are_capped_and_the_policy_is_the_clients() -> None:
    client = Scripted(*[{"state": "PENDING"}] * 6, {"state": "RUNNING"}, policy=PollPolicy(0.5, 1.2))
    fake = FakeTime()
    ClusterFollower(client, "c-1", sleep=fake.sleep, clock=fake.clock).follow()
    assert fake.sleeps == pytest.approx([0.5, 1.0, 1.2, 1.2, 1.2, 1.2])


@pytest.mark.parametrize("state", ["TERMINATED", "ERROR"])
def test_an_ended_cluster_stops_the_follow_whatever_was_asked(state: str) -> None:
    client = Scripted({"state": "PENDING"}, {"state": "RUNNING"}, {"state": "TERMINATING"}, {"state": state})
    fake = FakeTime()
    follower = ClusterFollower(client, "c-1", sleep=fake.sleep, clock=fake.clock,
                               policy=PollPolicy(1.0, 10.0, steady=0.01))
    info = follower.follow((), timeout_s=None)
    assert info is not None and info["state"] == state and client.gets == 4


def test_the_deadline_returns_the_last_answer_and_is_never_overslept() -> None:
    client = Scripted({"state": "PENDING"})
    fake = FakeTime()
    follower = ClusterFollower(client, "c-1", sleep=fake.sleep, clock=fake.clock)
    info = follower.follow(("RUNNING",), timeout_s=12)
    assert info is not None and info["state"] == "PENDING"
    assert fake.sleeps == [1.0, 2.0, 3.0, 4.0, 2.0] and sum(fake.sleeps) == 12


def test_a_second_follow_goes_on_without_reporting_the_state_again() -> None:
    client = Scripted({"state": "PENDING"}, {"state": "RUNNING"}, {"state": "RUNNING"}, {"state": "TERMINATED"})
    seen: list[str] = []
    follower = ClusterFollower(client, "c-1", on_state=lambda i: seen.append(i["state"]), sleep=lambda s: None,
                               policy=PollPolicy(steady=0.01))
    assert (follower.follow() or {}).get("state") == "RUNNING"
    assert (follower.follow(()) or {}).get("state") == "TERMINATED"
    assert seen == ["PENDING", "RUNNING", "TERMINATED"]


def test_events_arrive_oldest_first_each_once_and_a_failed_read_is_skipped() -> None:
    log = [{"timestamp": 1, "type": "CREATING"}, {"timestamp": 2, "type": "STARTING"}]
    client = Scripted({"state": "PENDING"}, {"state": "PENDING"}, {"state": "RUNNING"}, events=log)
    batches: list[list[str]] = []
    states: list[str] = []

    def on_state(info: dict[str, Any]) -> None:
        states.append(info["state"])
        log.append({"timestamp": len(log) + 1, "type": info["state"]})  # the next read sees it

    follower = ClusterFollower(client, "c-1", on_state=on_state, sleep=lambda s: None,
                               on_events=lambda events: batches.append([e["type"] for e in events]))
    follower.follow()
    # Read before the state is told: the PENDING event shows at the next poll, RUNNING's never
    # (the follow ends at RUNNING); nothing is told twice.
    assert batches == [["CREATING", "STARTING"], ["CREATING", "STARTING", "PENDING"]]
    assert states == ["PENDING", "RUNNING"]
    assert [e["type"] for e in follower.events] == batches[-1]

    failing = Scripted({"state": "RUNNING"}, events_fail=True)
    called: list[Any] = []
    info = ClusterFollower(failing, "c-2", on_events=called.append).follow()
    assert info is not None and info["state"] == "RUNNING" and called == []


def test_without_on_events_no_events_are_read() -> None:
    client = Scripted({"state": "RUNNING"}, events_fail=True)  # a read would be noticed: it raises
    assert ClusterFollower(client, "c-1").follow() is not None


def test_a_failed_get_raises_its_error() -> None:
    class Down(Scripted):
        def get_cluster(self, cluster_id: str) -> dict[str, Any]:
            raise ApiError("clusters/get answered 503", status=503)

    with pytest.raises(DcsError, match="503"):
        ClusterFollower(Down({"state": "PENDING"}), "c-1").follow()


# -- a real workspace: its own policy, and the threaded paths ---------------------------------------


@pytest.fixture
def clusters() -> Any:
    with ClustersApi() as api:
        yield api


def test_the_workspace_owns_the_policy(clusters: ClustersApi) -> None:
    clusters.script(*[{"state": "PENDING"}] * 3, {"state": "RUNNING"})
    with Workspace(host=clusters.host, token=clusters.token, poll_s=(0.1, 0.25)) as ws:
        assert ws.polling == PollPolicy(0.1, 0.25)
        fake = FakeTime()
        info = ClusterFollower(ws, ws.create_cluster(SPEC), sleep=fake.sleep, clock=fake.clock).follow()
    assert info is not None and info["state"] == "RUNNING"
    assert fake.sleeps == pytest.approx([0.1, 0.2, 0.25])


def test_fast_polls_reach_a_follower_without_a_sleep_of_its_own(clusters: ClustersApi) -> None:
    """The local workspace's 0.1 s polls: no injected sleep, five PENDING answers, well under
    the 1+2+3+4+5 s a default policy would take."""
    clusters.script(*[{"state": "PENDING"}] * 5, {"state": "RUNNING"})
    with Workspace(host=clusters.host, token=clusters.token, poll_s=(0.05, 0.05)) as ws:
        started = time.monotonic()
        info = ClusterFollower(ws, ws.create_cluster(SPEC)).follow(timeout_s=30)
        took = time.monotonic() - started
    assert info is not None and info["state"] == "RUNNING" and took < 3


def test_wake_cuts_the_running_beat_short_and_stop_ends_the_follow(clusters: ClustersApi) -> None:
    clusters.script({"state": "RUNNING"})
    with Workspace(host=clusters.host, token=clusters.token) as ws:
        cluster_id = ws.create_cluster(SPEC)
        follower = ClusterFollower(ws, cluster_id, policy=PollPolicy(steady=60.0))
        assert (follower.follow() or {}).get("state") == "RUNNING"
        outcome: list[dict[str, Any] | None] = []
        thread = threading.Thread(target=lambda: outcome.append(follower.follow(())))
        thread.start()
        time.sleep(0.2)  # the follower now waits out its 60 s beat
        ws.terminate_cluster(cluster_id)  # the scripted server: TERMINATED at once
        follower.wake()
        thread.join(10)
        assert not thread.is_alive() and outcome[0] is not None and outcome[0]["state"] == "TERMINATED"

        clusters.script({"state": "RUNNING"})
        stop = threading.Event()
        running = ClusterFollower(ws, ws.create_cluster(SPEC), stop=stop, policy=PollPolicy(steady=60.0))
        thread = threading.Thread(target=lambda: outcome.append(running.follow(())))
        thread.start()
        time.sleep(0.2)
        running.stop()
        thread.join(10)
        assert not thread.is_alive() and stop.is_set() and running.stopped
        assert outcome[1] is not None and outcome[1]["state"] == "RUNNING"  # the last answer; it still runs
