"""The progress widget's traffic (issue 12.1): deltas only, paced by what they carry.

The widget's messages are recorded by replacing its `send` / `send_state`, or, for the
comm_open, by a comm that keeps what it would send; the pacing runs on a clock the test moves.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import ipywidgets
import pytest
from support.comms import record_comms

from dcs_magic.jupyter import widgets
from dcs_magic.jupyter.widgets import FrontEndModule, ProgressWidget
from dcs_magic.model.progress import BuildState, PushState


class _Sent(list):
    """The custom messages a ProgressWidget sends (its `send`, replaced for the test)."""

    def size(self) -> int:
        return sum(len(json.dumps(m)) for m in self)


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class _Made:
    def __init__(self) -> None:
        self.widgets: list[ProgressWidget] = []

    def __call__(self, kind: str = "build", *, foreground: bool = True
                 ) -> tuple[ProgressWidget, _Sent, list[list[str]], _Clock]:
        widget = ProgressWidget(kind, "t", foreground=foreground)
        sent = _Sent()
        states: list[list[str]] = []
        clock = _Clock()
        widget.send = sent.append
        widget.send_state = lambda key=None: states.append(list(key or []))
        widget._clock = clock
        self.widgets.append(widget)
        return widget, sent, states, clock


@pytest.fixture
def make_widget() -> Iterator[_Made]:
    """ProgressWidgets whose messages are recorded, on a test clock; closed after the test."""
    made = _Made()
    yield made
    shown: list[ipywidgets.Widget] = [*made.widgets, FrontEndModule.shared()]
    for widget in shown:
        try:
            widget.close()
        except KeyError:  # no kernel: the comm was a DummyComm the kernel's manager never held
            widget.comm = None


def _lines(message: dict) -> list[str]:
    return message["text"].split("\n") if "text" in message else []


def test_widget_sends_only_new_lines_with_their_index(make_widget) -> None:
    widget, sent, _states, clock = make_widget()
    state = BuildState("t")
    state.apply({"stream": "Step 1/1 : RUN loop\n"})
    widget.update(state.snapshot(elapsed_s=0.1))
    clock.now += 5
    widget.update(state.snapshot(elapsed_s=0.2))  # only the elapsed time changed: no message
    assert len(sent) == 1 and sent[0]["first"] == 0 and _lines(sent[0]) == ["Step 1/1 : RUN loop"]
    for i in range(3):
        state.apply({"stream": f"line {i}\n"})
    state.apply({"stream": "partial"})
    widget.update(state.snapshot(elapsed_s=0.3))
    assert sent[-1]["first"] == 1 and _lines(sent[-1]) == ["line 0", "line 1", "line 2"]
    assert sent[-1]["pending"] == "partial"
    assert "state" not in sent[-1]  # no field changed (the elapsed time is the page's)
    # Python-side traits stay current (a page reload gets them), without extra messages.
    assert widget.log_lines == 4 and widget.log_tail[-1] == "line 2"


def test_log_lines_alone_wait_while_fields_go_at_once(make_widget) -> None:
    widget, sent, _states, clock = make_widget()
    state = BuildState("t")
    state.apply({"stream": "Step 1/2 : RUN chatty\n"})
    widget.update(state.snapshot())
    assert len(sent) == 1
    for i in range(5):  # a few short lines, every 0.1 s: held back
        clock.now += 0.1
        state.apply({"stream": f"line {i}\n"})
        widget.update(state.snapshot())
    assert len(sent) == 1
    clock.now += widgets.LOG_GAP_S  # ... until they are LOG_GAP_S old
    state.apply({"stream": "line 5\n"})
    widget.update(state.snapshot())
    assert len(sent) == 2 and _lines(sent[1]) == [f"line {i}" for i in range(6)] and sent[1]["first"] == 1
    # A new step is a field change: it goes after MIN_GAP_S.
    clock.now += widgets.MIN_GAP_S
    state.apply({"stream": "Step 2/2 : RUN next\n"})
    widget.update(state.snapshot())
    assert len(sent) == 3 and sent[2]["state"]["step"] == 2 and _lines(sent[2]) == ["Step 2/2 : RUN next"]
    # A batch's worth of lines goes after LOG_MIN_GAP_S, not LOG_GAP_S ...
    batch = widgets.LOG_BATCH_BYTES // 100 + 1
    state.apply({"stream": ("y" * 99 + "\n") * batch})
    clock.now += widgets.LOG_MIN_GAP_S / 2
    widget.update(state.snapshot())
    assert len(sent) == 3
    clock.now += widgets.LOG_MIN_GAP_S / 2
    widget.update(state.snapshot())
    assert len(sent) == 4 and len(_lines(sent[3])) == batch
    # ... and a flood after MIN_GAP_S.
    clock.now += widgets.MIN_GAP_S
    state.apply({"stream": ("z" * 999 + "\n") * (widgets.LOG_FLUSH_BYTES // 1000 + 1)})
    widget.update(state.snapshot())
    assert len(sent) == 5


def test_held_back_lines_are_sent_by_the_timer(make_widget, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(widgets, "LOG_GAP_S", 0.2)
    widget, sent, _states, _clock = make_widget()
    widget._clock = time.monotonic  # real time: the timer thread sends
    state = BuildState("t")
    state.apply({"stream": "Step 1/1 : RUN quiet\n"})
    widget.update(state.snapshot())
    state.apply({"stream": "the last line before a long silence\n"})
    widget.update(state.snapshot())
    assert len(sent) == 1
    deadline = time.monotonic() + 5
    while len(sent) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(sent) == 2 and _lines(sent[1]) == ["the last line before a long silence"]


def test_drip_build_traffic_stays_near_the_raw_log(make_widget) -> None:
    widget, sent, _states, clock = make_widget()
    state = BuildState("t")
    state.apply({"stream": "Step 1/1 : RUN chatty\n ---> Running in 0123456789ab\n"})
    raw = 0
    for i in range(300):  # a drip build: two lines per 0.1 s update, for 15 s
        for j in (0, 1):
            line = f"Collecting package-{i}-{j}==1.0 (from -r requirements.txt (line {i}))\n"
            raw += len(line)
            state.apply({"stream": line})
        clock.now += 0.05
        widget.update(state.snapshot(elapsed_s=i * 0.05))
    # About one message per LOG_BATCH_BYTES of log, each costing ~5% of it in its envelope.
    assert len(sent) <= raw / widgets.LOG_BATCH_BYTES + 2
    assert sent.size() < 1.05 * raw


def test_field_changes_are_bounded_to_one_message_per_min_gap(make_widget) -> None:
    widget, sent, _states, clock = make_widget()
    state = BuildState("t", label_steps=0)
    for n in range(1, 101):  # a new step every 0.1 s for 10 s
        state.apply({"stream": f"Step {n}/100 : RUN step-{n}\n"})
        widget.update(state.snapshot())
        clock.now += 0.1
    assert len(sent) <= 10 / widgets.MIN_GAP_S + 1
    steps = {step["n"] for message in sent for step in message.get("steps", [])}
    assert steps == set(range(1, len(steps) + 1))  # none skipped, only later


def test_widget_sends_only_changed_layers(make_widget) -> None:
    widget, sent, _states, clock = make_widget("push")
    state = PushState("r/x:1")
    for layer_id in "abcdefghij":
        state.apply({"id": layer_id, "status": "Preparing", "progressDetail": {}})
    widget.update(state.snapshot())
    assert len(sent[-1]["layers"]) == 10
    clock.now += widgets.MIN_GAP_S
    state.apply({"id": "c", "status": "Pushing", "progressDetail": {"current": 5, "total": 10}})
    widget.update(state.snapshot())
    assert [layer["id"] for layer in sent[-1]["layers"]] == ["c"]
    assert sent[-1]["state"]["fraction"] == 0.5


def test_resync_stop_and_the_final_state_as_a_delta(make_widget) -> None:
    widget, sent, states, clock = make_widget(foreground=False)  # a --bg job: Stop messages the kernel
    state = BuildState("t")
    for i in range(5):
        state.apply({"stream": f"line {i}\n"})
    widget.update(state.snapshot())
    widget._on_front_end_msg(widget, {"type": "resync"}, [])
    assert sent[-1]["type"] == "tail" and sent[-1]["first"] == 0 and len(_lines(sent[-1])) == 5
    cancelled = []
    widget.bind_cancel(lambda: cancelled.append(True))
    assert widget._can_stop and states == []  # no state message of its own ...
    clock.now += widgets.MIN_GAP_S
    widget.update(state.snapshot())
    assert sent[-1]["state"] == {"_can_stop": True}  # ... it rides on the next delta
    widget._on_front_end_msg(widget, {"type": "stop"}, [])
    assert cancelled == [True]
    state.apply({"stream": "line 5\n"})
    state.cancel()
    widget.close(state.snapshot(elapsed_s=1.25))
    assert widget.status == "cancelled" and widget.elapsed_s == 1.25
    assert _lines(sent[-1]) == ["line 5"] and "state" not in sent[-1]
    # One state message with the fields that differ from the page's model, no lists.
    (final,) = states
    assert {"status", "elapsed_s"} <= set(final)
    assert not {"log_tail", "layers", "steps", "kind", "title", "log_path"} & set(final)
    widget._on_front_end_msg(widget, {"type": "stop"}, [])
    assert cancelled == [True]  # a finished run ignores a late Stop


def test_a_foreground_stop_needs_no_message(make_widget) -> None:
    widget, sent, states, clock = make_widget()  # its Stop interrupts the kernel
    state = BuildState("t")
    widget.update(state.snapshot())
    widget.bind_cancel(lambda: None)
    clock.now += widgets.MIN_GAP_S
    widget.update(state.snapshot())
    assert len(sent) == 1 and states == []


def test_comm_open_is_small_and_the_code_and_layout_are_shared(monkeypatch: pytest.MonkeyPatch) -> None:
    record_comms(monkeypatch)
    monkeypatch.setattr(FrontEndModule, "_shared", None)
    monkeypatch.setattr(FrontEndModule, "_layout", None)
    first, second = ProgressWidget("build", "a"), ProgressWidget("push", "b")
    try:
        assert first._module == second._module and first.layout is second.layout
        (kind, data), *_ = first.comm.messages
        opened = data["state"]
        assert kind == "comm_open" and opened["kind"] == "build" and opened["status"] == "starting"
        assert "error" not in opened and "log_tail" not in opened  # empty fields are left out
        assert len(opened["_esm"]) < 1500 and len(json.dumps(opened)) < 2500
        assert "js" in FrontEndModule.shared().get_state()  # the code, once per kernel
        assert first.get_state()["error"] is None  # a page reload gets every field
    finally:
        for widget in (first, second, FrontEndModule.shared(), FrontEndModule.shared_layout()):
            widget.close()


def test_compact_source_keeps_the_code() -> None:
    js = widgets.compact_source("// a comment\nconst a = 1;  // kept: not a whole line\n\n  /* block\n */ f(a);\n")
    assert js == "const a = 1;  // kept: not a whole line\nf(a);\n"
