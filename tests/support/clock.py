"""Injected sleep/clock for the workspace's poll loops (wait_for_cluster, wait_for_run).

Not a stand-in for anything in the product: the loops take `sleep` and `clock` arguments, and
this records the pauses they ask for while advancing its own clock by them.
"""

from __future__ import annotations

__all__ = ["FakeTime"]


class FakeTime:
    """Records each pause asked for (`sleeps`) and advances `now` by it."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now
