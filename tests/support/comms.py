"""A stand-in for the kernel's comm, to see what a widget would send to the page."""

from __future__ import annotations

from typing import Any

from comm.base_comm import BaseComm


class RecordingComm(BaseComm):
    """Stands in for the kernel's comm: keeps every message a widget would send.

    Use with `monkeypatch.setattr(comm, "create_comm", RecordingComm)`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.messages: list[tuple[str, dict]] = []
        super().__init__(*args, **kwargs)

    def publish_msg(self, msg_type: str, data: dict | None = None, metadata: dict | None = None,
                    buffers: list | None = None, **keys: Any) -> None:
        self.messages.append((msg_type, data or {}))
