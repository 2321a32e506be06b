"""A stand-in for the kernel's comm, to see what a widget would send to the page."""

from __future__ import annotations

from typing import Any

from comm.base_comm import BaseComm


class RecordingComm(BaseComm):
    """Stands in for the kernel's comm: keeps every message a widget would send.

    Install it with `record_comms(monkeypatch)`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.messages: list[tuple[str, dict]] = []
        super().__init__(*args, **kwargs)

    def publish_msg(self, msg_type: str, data: dict | None = None, metadata: dict | None = None,
                    buffers: list | None = None, **keys: Any) -> None:
        self.messages.append((msg_type, data or {}))


def record_comms(monkeypatch: Any) -> None:
    """Widgets created from now on (in this test) get a RecordingComm.

    Patched where ipywidgets asks for its comms (`ipywidgets.comm.create_comm`), not on the
    `comm` package: importing ipykernel, which a widget may do the first time, sets
    `comm.create_comm` to ipykernel's own and would undo a patch made there earlier.
    """
    import ipywidgets.comm

    monkeypatch.setattr(ipywidgets.comm, "create_comm", RecordingComm)
