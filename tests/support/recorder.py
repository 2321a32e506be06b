"""A progress sink that keeps everything it was sent (for asserting on what a display got)."""

from __future__ import annotations

import json

__all__ = ["Recorder"]


class Recorder:
    """`update()`/`close()` like a widget or terminal sink; `updates` and `closed` keep the snapshots."""

    def __init__(self) -> None:
        self.updates: list[dict] = []
        self.closed: list[dict] = []

    def update(self, snapshot: dict) -> None:
        self.updates.append(snapshot)

    def close(self, snapshot: dict) -> None:
        self.closed.append(snapshot)

    def text(self) -> str:
        """Everything sent, as one JSON text (to search for what must never be shown)."""
        return json.dumps([*self.updates, *self.closed])
