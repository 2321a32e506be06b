"""The pure progress model on event streams recorded from the real engine and registries.

Fixtures: tests/unit/fixtures/*.jsonl, written by tests/unit/fixtures/_record.py (Docker
20.10 classic builder, docker-registry 2.8, one registry answering 429). Synthetic events
cover what a recording cannot pin down: chunk boundaries, clamping, very long logs.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from support.recorder import Recorder

from dcs_magic.model import progress
from dcs_magic.model.progress import (
    BuildState,
    LayerProgress,
    LineJoiner,
    PushState,
    Throttle,
    clean_line,
    format_line,
    human_bytes,
)
from dcs_magic.ops.runner import Reporter

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).resolve().parents[2]


def events(name: str) -> list[dict]:
    return [json.loads(line) for line in (FIXTURES / f"{name}.jsonl").read_text().splitlines()]


def replay(state: BuildState | PushState, name: str) -> list[str]:
    lines: list[str] = []
    for event in events(name):
        lines += state.apply(event)
    if not state.failed:
        lines += state.finish()
    return lines


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# -- build streams ------------------------------------------------------------------------


def test_successful_build_steps_image_and_log() -> None:
    state = BuildState("default")
    lines = replay(state, "build_ok")
    aux_id = next(e["aux"]["ID"] for e in events("build_ok") if "aux" in e)
    assert state.status == "done" and state.image_id == aux_id
    assert (state.step, state.total_steps) == (8, 8)
    assert state.instruction == "LABEL dcs-test=1"
    assert state.tags == ["dcs-test-rec/ok:1"]
    assert "Step 3/8 : RUN echo line 0 && echo line 1 && echo line 2 && echo line 3 && echo line 4" in lines
    assert [line for line in lines if line.startswith("line ")] == [f"line {i}" for i in range(5)]
    # printf without a newline: its text is kept, the builder's next message still parsed
    assert any(line.startswith("no newline at end") for line in lines)
    assert state.container is None and state.last_image == aux_id.split(":")[1][:12]
    assert state.line_count == len(lines) == len(state.log_tail)


def test_step_and_container_tracking_while_running() -> None:
    state = BuildState()
    seen = []
    for event in events("build_ok"):
        state.apply(event)
        seen.append((state.step, state.container))
    running = {c for _, c in seen if c}
    assert len(running) == 6  # ENV, RUN, RUN, WORKDIR, LABEL, LABEL ran a container; COPY did not
    assert [s for s, _ in seen] == sorted(s for s, _ in seen)  # steps only move forward


def test_failing_run_names_step_instruction_and_its_output() -> None:
    state = BuildState()
    lines = replay(state, "build_fail_run")
    assert state.failed and state.status == "failed"
    assert state.failed_step == 4 and state.total_steps == 6
    assert state.failed_instruction == "RUN echo about to fail && false"
    assert state.last_lines == ["about to fail"]  # only the failing step's own output
    assert state.error == "The command '/bin/sh -c echo about to fail && false' returned a non-zero code: 1"
    assert lines[-1] == f"ERROR: {state.error}"
    # stderr arrives wrapped in ANSI colours; the lines are clean text
    assert "second" in lines and not any("\x1b" in line for line in lines)
    snap = state.snapshot()
    assert snap["status"] == "failed" and snap["failed_step"] == 4 and snap["error"] == state.error


def test_missing_base_image_fails_at_from() -> None:
    state = BuildState()
    replay(state, "build_missing_base")
    assert state.failed and state.failed_step == 1
    assert state.failed_instruction.startswith("FROM 127.0.0.1:")
    assert "manifest unknown" in state.error and state.last_lines == []


def test_base_image_pull_per_layer() -> None:
    state = BuildState()
    lines = replay(state, "build_pull")
    layers = state.snapshot()["layers"]
    assert [layer["status"] for layer in layers] == ["Already exists", "Pull complete"]
    assert all(layer["done"] for layer in layers)
    pulled = layers[1]
    recorded_total = next(e["progressDetail"]["total"] for e in events("build_pull") if e.get("status") == "Downloading")
    assert pulled["current"] == pulled["total"] == recorded_total
    # byte ticks are not log lines; each status change is, once
    assert lines.count(f"{pulled['id']}: Downloading") == 1
    assert lines.count(f"{pulled['id']}: Extracting") == 1
    assert f"{pulled['id']}: Pull complete" in lines
    assert any(line.startswith("Status: Downloaded newer image") for line in lines)
    assert state.status == "done" and state.image_id


def test_pull_progress_mid_stream_is_partial() -> None:
    state = BuildState()
    for event in events("build_pull"):
        state.apply(event)
        if event.get("status") == "Downloading":
            snap = state.snapshot()
            assert 0 < snap["bytes_current"] < snap["bytes_total"]
            assert snap["layers_done"] == 1 and snap["layers_total"] == 2
            # Weighted by bytes (the done layer had no size), not the layers' mean (0.5+).
            assert snap["fraction"] == round(snap["bytes_current"] / snap["bytes_total"], 4)
            assert "base layers" in format_line(snap)
            return
    pytest.fail("the recording has no Downloading event")


# -- chunk boundaries -----------------------------------------------------------------------


def _stream_text(name: str) -> str:
    return "".join(e["stream"] for e in events(name) if "stream" in e)


@pytest.mark.parametrize("seed", range(5))
def test_unaligned_chunks_give_the_same_lines(seed: int) -> None:
    text = _stream_text("build_fail_run") + _stream_text("build_ok")
    aligned = BuildState()
    expected = aligned.apply({"stream": text}) + aligned.finish()
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(text)), 150))
    chunks = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)])]
    state = BuildState()
    got = [line for chunk in chunks for line in state.apply({"stream": chunk})] + state.finish()
    assert got == expected
    assert (state.step, state.total_steps, state.tags) == (aligned.step, aligned.total_steps, aligned.tags)


def test_step_header_split_across_chunks() -> None:
    state = BuildState()
    for char in "Step 2/7 : RUN pip install -r requirements.txt":
        assert state.apply({"stream": char}) == []
    assert state.step == 0  # not a complete line yet...
    snap = state.snapshot()  # ...but shown, as the line being written
    assert snap["log_tail"] == [] and snap["log_pending"] == "Step 2/7 : RUN pip install -r requirements.txt"
    state.apply({"stream": "\n"})
    assert (state.step, state.total_steps, state.instruction) == (2, 7, "RUN pip install -r requirements.txt")


def test_carriage_return_progress_keeps_last_state() -> None:
    joiner = LineJoiner()
    assert joiner.feed("Downloading 10%\rDownloading 20%") == []
    assert joiner.pending == "Downloading 20%"
    assert joiner.feed("\rDownloading 100%\r\nnext") == ["Downloading 100%"]
    assert joiner.flush() == ["next"] and joiner.flush() == []
    assert clean_line("\x1b[91merror text\x1b[0m  ") == "error text"
    assert clean_line("a\r\r") == "a"


def test_endless_line_stays_bounded() -> None:
    joiner = LineJoiner()
    out = []
    for _ in range(100):
        out += joiner.feed("x" * 10_000)  # a megabyte without a newline
    assert out and all(len(line) <= 64 * 1024 + 10_000 for line in out)
    assert len(joiner.pending) <= 64 * 1024


def test_twenty_thousand_lines_keep_a_bounded_tail() -> None:
    state = BuildState(tail=200)
    state.apply({"stream": "Step 1/2 : RUN loop\n ---> Running in 0123456789ab\n"})
    for start in range(0, 20_000, 100):
        state.apply({"stream": "".join(f"line {i}\n" for i in range(start, start + 100))})
    snap = state.snapshot()
    assert snap["log_lines"] == 20_002
    assert len(snap["log_tail"]) == 200 and snap["log_tail"][-1] == "line 19999"
    assert len(state.step_output) == 30
    assert len(json.dumps(snap)) < 10_000


# -- push streams ---------------------------------------------------------------------------


def test_push_new_layers_with_clamping() -> None:
    state = PushState("127.0.0.1:5071/dcs-test/base:1")
    over = 0
    for event in events("push_new"):
        state.apply(event)
        detail = event.get("progressDetail") or {}
        if detail.get("current", 0) > detail.get("total", 1 << 62):
            over += 1
            layer = state.layers[event["id"]]
            assert layer.current == layer.total == detail["total"]
        snap = state.snapshot()
        assert snap["bytes_current"] <= snap["bytes_total"] and 0 <= snap["fraction"] <= 1
    assert over >= 1  # the recording really sends current > total
    state.finish()
    aux = next(e["aux"] for e in events("push_new") if "aux" in e)
    assert state.status == "done"
    assert (state.digest, state.tag, state.size) == (aux["Digest"], aux["Tag"], aux["Size"])
    assert state.pinned == f"127.0.0.1:5071/dcs-test/base@{aux['Digest']}"
    assert state.repository == "127.0.0.1:5071/dcs-test/base"
    snap = state.snapshot(elapsed_s=1.234)
    assert [layer["status"] for layer in snap["layers"]] == ["Pushed", "Pushed"]
    assert (snap["layers_done"], snap["layers_total"], snap["fraction"]) == (2, 2, 1.0)
    assert snap["elapsed_s"] == 1.23 and snap["pinned"] == state.pinned


@pytest.mark.parametrize("name, status", [("push_exists", "Layer already exists"),
                                          ("push_mounted", "Mounted from dcs-test/base")])
def test_push_skipped_layers_count_as_done(name: str, status: str) -> None:
    state = PushState("127.0.0.1:5071/dcs-test/app:1")
    replay(state, name)
    assert status in [layer.status for layer in state.layers.values()]
    assert all(layer.done for layer in state.layers.values())
    assert state.snapshot()["fraction"] == 1.0 and state.digest.startswith("sha256:")


def test_push_waiting_and_preparing_are_not_done() -> None:
    state = PushState("r/x:1")
    state.apply({"id": "a", "status": "Preparing", "progressDetail": {}})
    state.apply({"id": "b", "status": "Waiting", "progressDetail": {}})
    state.apply({"id": "a", "status": "Pushing", "progressDetail": {"current": 50, "total": 200}})
    snap = state.snapshot()
    # 50 of the 200 bytes known so far: 25% (b's size is not known yet).
    assert snap["layers_done"] == 0 and snap["fraction"] == pytest.approx(0.25)
    assert "0/2 layers, 50 B/200 B" in format_line(snap)


@pytest.mark.parametrize("name, words", [
    ("push_unauthorized", "no basic auth credentials"),
    ("push_wrong_password", "unauthorized: authentication required"),
    ("push_rate_limited", "toomanyrequests"),
    ("push_unreachable", "connection refused"),
])
def test_push_errors_inside_the_stream(name: str, words: str) -> None:
    state = PushState("x/y:1")
    lines = replay(state, name)
    assert state.failed and words in state.error
    assert lines[-1] == f"ERROR: {state.error}" and state.digest is None and state.pinned is None
    assert "failed" in format_line(state.snapshot())


def test_password_sent_with_the_push_is_not_in_the_recording() -> None:
    # _record.py pushes with a wrong password "not-the-password": the engine never echoes it.
    assert "not-the-password" not in (FIXTURES / "push_wrong_password.jsonl").read_text()


@pytest.mark.parametrize("detail, expected", [
    ({"current": 150, "total": 100}, (100, 100)),
    ({"current": -5, "total": 100}, (0, 100)),
    ({"current": 70}, (70, 0)),  # no total: kept, shown without a byte bar
    ({"current": None, "total": 10}, (0, 10)),
    ({}, (0, 0)),
])
def test_layer_clamping(detail: dict, expected: tuple[int, int]) -> None:
    layer = LayerProgress("abc")
    layer.update("Pushing", detail)
    assert (layer.current, layer.total) == expected and not layer.done


def test_layer_done_fills_its_bar() -> None:
    layer = LayerProgress("abc")
    layer.update("Pushing", {"current": 10, "total": 100})
    assert layer.update("Pushed", {}) is True and layer.done and layer.current == 100
    assert layer.fraction == 1.0


# -- snapshots, throttle, formatting -----------------------------------------------------


@pytest.mark.parametrize("name", sorted(p.stem for p in FIXTURES.glob("*.jsonl")))
def test_every_snapshot_is_json(name: str) -> None:
    state = PushState("x/y:1") if name.startswith("push") else BuildState()
    for event in events(name):
        if "_api_error" in event:  # build_parse_error: rejected before any stream
            continue
        state.apply(event)
        snap = state.snapshot(elapsed_s=0.5)
        assert json.loads(json.dumps(snap)) == snap


def test_state_warnings_and_cancel() -> None:
    state = BuildState("ctx")
    state.warn("built for linux/arm64")
    state.warn("built for linux/arm64")
    state.cancel()
    snap = state.snapshot()
    assert snap["warnings"] == ["built for linux/arm64"] and snap["status"] == "cancelled"
    assert format_line(snap, elapsed=False) == "[build ctx] cancelled"


def test_throttle_with_a_fake_clock() -> None:
    clock = FakeClock()
    throttle = Throttle(0.1, clock)
    assert throttle.ready()  # the first moment is always ready
    clock.now = 0.05
    assert not throttle.ready()
    clock.now = 0.1
    assert throttle.ready()
    clock.now = 0.19
    assert not throttle.ready()
    clock.now = 10.0
    assert throttle.ready() and not throttle.ready()
    assert Throttle(0, clock).ready() and Throttle(0, clock).ready()


def test_throttle_bounds_a_flood() -> None:
    clock = FakeClock()
    throttle = Throttle(0.1, clock)
    ready = 0
    for i in range(20_000):  # 20,000 events in 2 s
        clock.now = i * 0.0001
        ready += throttle.ready()
    assert ready == 20  # 2 s / 0.1 s




def test_reporter_sends_at_most_one_update_per_interval() -> None:
    clock = FakeClock()
    sink = Recorder()
    state = BuildState("flood")
    reporter = Reporter(state, sink, interval=0.1, clock=clock)
    reporter.apply({"stream": "Step 1/1 : RUN loop\n"})
    for i in range(20_000):  # 20,000 lines over 3 s of (fake) time
        clock.now = i * 0.00015
        reporter.apply({"stream": f"line {i}\n"})
    reporter.call(state.finish)
    reporter.close()
    assert len(sink.closed) == 1 and sink.closed[0]["log_lines"] == 20_001
    assert sink.closed[0]["status"] == "done"
    assert 25 <= len(sink.updates) <= 3.0 / 0.1 + 2  # the initial update + one per interval
    assert all(len(u["log_tail"]) <= 200 for u in sink.updates)


def test_human_bytes() -> None:
    assert [human_bytes(n) for n in (0, None, 999, 1000, 1536, 8_391_322, 2 * 10**12)] == [
        "0 B", "0 B", "999 B", "1.0 kB", "1.5 kB", "8.4 MB", "2.0 TB"]


def test_format_line_done_and_failed() -> None:
    state = BuildState("app")
    replay(state, "build_ok")
    assert format_line(state.snapshot(elapsed_s=2), elapsed=True).startswith("[build app] done sha256:")
    failed = BuildState("app")
    replay(failed, "build_fail_run")
    assert format_line(failed.snapshot(), elapsed=False) == f"[build app] failed: {failed.error}"


def test_core_module_imports_no_docker_or_ipython() -> None:
    code = ("import sys, dcs_magic.model.progress; "
            "bad = [m for m in ('docker', 'IPython', 'ipywidgets', 'anywidget', 'requests') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([shutil.which("python") or "python", "-c", code], check=True, cwd=REPO)
    assert progress.__all__ == sorted(progress.__all__)


# -- the front-end module ---------------------------------------------------------------


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_front_end_module_parses_and_formats() -> None:
    module = (REPO / "js" / "progress.js").as_uri()
    script = (f"const m = await import({json.dumps(module)});"
              "console.log(JSON.stringify([typeof m.default.render, m.humanBytes(0), m.humanBytes(1536),"
              " m.humanBytes(8391322), m.formatElapsed(3.25), m.formatElapsed(125)]));")
    out = subprocess.run(["node", "--input-type=module", "-e", script], capture_output=True, text=True,
                         check=True, timeout=30)
    assert json.loads(out.stdout) == ["function", "0 B", "1.5 kB", "8.4 MB", "3.3s", "2m 05s"]


# -- one snapshot type, user steps, cache markers, byte bounds (issues 11.7, 11.8, 12.1) --------


def test_widget_traits_are_the_snapshot_fields() -> None:
    from dcs_magic.jupyter.widgets import ProgressWidget

    fields = progress.snapshot_fields()
    assert ProgressWidget._display_traits() == fields
    # Both states fill every field (a view never guesses which keys exist).
    assert set(BuildState().snapshot()) == fields
    assert set(PushState("r/x:1").snapshot()) == fields
    assert set(progress.empty_snapshot()) == fields


def test_user_steps_leave_out_the_appended_label_steps() -> None:
    # 5 Dockerfile instructions + 2 labels: the engine says "Step 7/7 : LABEL dcs_magic.version".
    state = BuildState("app", label_steps=2)
    for event in events("build_labels_first"):
        state.apply(event)
        snap = state.snapshot()
        assert snap["total_steps"] in (0, 5) and snap["step"] <= 5
    assert state.engine_total_steps == 7
    state.finish()
    snap = state.snapshot()
    assert (snap["step"], snap["total_steps"]) == (5, 5)
    assert [s["n"] for s in snap["steps"]] == [1, 2, 3, 4, 5]
    assert [s["instruction"] for s in snap["steps"]][-1] == "WORKDIR /w"
    assert format_line(snap, elapsed=False).startswith("[build app] done sha256:")


def test_the_log_shows_the_users_steps_as_written() -> None:
    """Issue 24.3: the tail and the log lines count the user's steps ("Step 1/5", never the
    engine's "Step 1/7"), the appended LABEL steps and their builder lines are not shown, and
    the current instruction stays the user's last one (not "(dcs-magic labels)")."""
    state = BuildState("app", label_steps=2)
    logged: list[str] = []
    for event in events("build_labels_first"):
        logged += state.apply(event)
        snap = state.snapshot()
        assert "LABEL dcs_magic" not in " ".join(snap["log_tail"]) and "labels" not in snap["instruction"]
    logged += state.finish()
    steps = [line for line in logged if line.startswith("Step ")]
    assert [line.split(" : ")[0] for line in steps] == [f"Step {n}/5" for n in range(1, 6)]
    assert not any("LABEL dcs_magic" in line for line in logged)
    snap = state.snapshot()
    assert snap["instruction"] == "WORKDIR /w" and snap["log_tail"] == logged[-len(snap["log_tail"]):]
    assert any(line.startswith("Successfully built ") for line in logged)
    assert snap["log_lines"] == len(logged)
    engine_lines = [line for event in events("build_labels_first") for line in
                    str(event.get("stream", "")).splitlines()]
    assert any(" ---> Running in" in line for line in engine_lines[-8:])  # the engine did print them
    assert state.container is None


def test_cached_steps_are_marked_and_every_step_timed() -> None:
    clock = FakeClock()
    state = BuildState("app", label_steps=2, clock=clock)
    for event in events("build_labels_cached"):
        if str(event.get("stream", "")).startswith("Step "):
            clock.now += 1.5  # each step takes 1.5 s of (fake) time
        state.apply(event)
    state.finish()
    steps = state.snapshot()["steps"]
    assert [s["cached"] for s in steps] == [False, True, True, True, True]  # FROM is never cached
    assert all(s["duration_s"] is not None for s in steps)
    assert [s["duration_s"] for s in steps[:4]] == [1.5, 1.5, 1.5, 1.5]
    first = BuildState("app", label_steps=2)
    replay(first, "build_labels_first")
    assert not any(s["cached"] for s in first.snapshot()["steps"])  # a fresh build uses no cache


def test_running_step_has_no_duration_until_the_next_starts() -> None:
    clock = FakeClock()
    state = BuildState(clock=clock)
    state.apply({"stream": "Step 1/2 : FROM x\n ---> 0123456789ab\n"})
    clock.now = 2.0
    state.apply({"stream": "Step 2/2 : RUN sleep 9\n"})
    clock.now = 3.0
    steps = state.snapshot()["steps"]
    assert steps[0]["duration_s"] == 2.0 and steps[1]["duration_s"] is None and steps[1]["started_s"] == 2.0
    state.fail("boom")
    assert state.snapshot()["steps"][1]["duration_s"] == 1.0


def test_push_total_is_weighted_by_bytes() -> None:
    state = PushState("r/x:1")
    for layer_id, size in (("small1", 10_000), ("small2", 10_000), ("big", 280_000)):
        state.apply({"id": layer_id, "status": "Pushing", "progressDetail": {"current": 0, "total": size}})
    state.apply({"id": "small1", "status": "Pushed", "progressDetail": {}})
    state.apply({"id": "small2", "status": "Pushed", "progressDetail": {}})
    state.apply({"id": "big", "status": "Pushing", "progressDetail": {"current": 79_000, "total": 280_000}})
    snap = state.snapshot()
    # 99 kB of 300 kB: 33%, where the mean of the layers' fractions would say 76%.
    assert snap["fraction"] == 0.33
    assert (snap["bytes_current"], snap["bytes_total"], snap["layers_done"]) == (99_000, 300_000, 2)


def test_push_rate_and_time_left_like_tqdm() -> None:
    state = PushState("r/x:1")
    state.apply({"id": "a", "status": "Pushing", "progressDetail": {"current": 0, "total": 10_000_000}})
    state.snapshot(elapsed_s=0.0)
    state.apply({"id": "a", "status": "Pushing", "progressDetail": {"current": 2_000_000, "total": 10_000_000}})
    snap = state.snapshot(elapsed_s=1.0)
    assert snap["rate_bps"] == 2_000_000.0 and snap["eta_s"] == 4.0
    assert format_line(snap, elapsed=False).endswith("2.0 MB/10.0 MB, 2.0 MB/s, 4.0s left")
    state.apply({"id": "a", "status": "Pushing", "progressDetail": {"current": 3_000_000, "total": 10_000_000}})
    snap = state.snapshot(elapsed_s=2.0)  # smoothed: 0.3 * 1 MB/s + 0.7 * 2 MB/s
    assert snap["rate_bps"] == 1_700_000.0 and snap["eta_s"] == round(7_000_000 / 1_700_000, 1)
    state.fail("denied")
    assert state.snapshot(elapsed_s=3.0)["eta_s"] is None  # no time left on a failed push


def test_a_huge_line_puts_kilobytes_not_megabytes_in_a_snapshot() -> None:
    state = BuildState()
    state.apply({"stream": "Step 1/1 : RUN big\n ---> Running in 0123456789ab\n"})
    for _ in range(60):  # 60 MB on one line, in 1 MB chunks
        state.apply({"stream": "y" * 1_000_000})
        snap = state.snapshot()
        assert len(snap["log_pending"].encode()) <= progress.LINE_BYTES
    snap = state.snapshot()
    assert sum(len(line.encode()) + 1 for line in snap["log_tail"]) <= progress.TAIL_BYTES
    assert all(len(line.encode()) <= progress.LINE_BYTES for line in snap["log_tail"])
    assert len(json.dumps(snap)) < progress.TAIL_BYTES + 8 * 1024
    assert snap["log_lines"] == 2 + 60  # each 1 MB piece is emitted as a line: all counted
    assert snap["log_first"] + len(snap["log_tail"]) == snap["log_lines"]


def test_clip_line_counts_what_it_left_out() -> None:
    assert progress.clip_line("short") == "short"
    clipped = progress.clip_line("é" * 5000)  # 10,000 bytes
    assert len(clipped.encode()) <= progress.LINE_BYTES
    kept = len(clipped.split("…")[0].encode())
    assert clipped.endswith(f"[{10_000 - kept} more bytes in the full log]")


# The widget's delta protocol (issue 12.1): tests/unit/test_widget_protocol.py.


def test_static_record_text_and_html() -> None:
    from dcs_magic.model.results import ProgressRecord

    state = BuildState("app", label_steps=2)
    replay(state, "build_labels_cached")
    state.log_path = "/tmp/ctx/.dcs/build-1.log"
    record = ProgressRecord.from_snapshot(dict(state.snapshot(elapsed_s=3.5)))
    text = repr(record)
    assert text.splitlines()[0] == "Build app: done in 3.5s"
    assert f"Image: {state.image_id}" in text and "Steps: 5, 4 cached" in text
    assert "Log: /tmp/ctx/.dcs/build-1.log" in text
    html = record._repr_html_()
    assert state.image_id in html and 'role="status"' in html
    assert not re.search(r"#[0-9a-fA-F]{3,8}\b|rgb\(", html)  # theme variables only
    failed = BuildState("app")
    replay(failed, "build_fail_run")
    record = ProgressRecord.from_snapshot(dict(failed.snapshot(elapsed_s=1.0)))
    assert record.status == "failed" and 'role="alert"' in record._repr_html_()
    assert "Failed at: Step" in repr(record) and "returned a non-zero code" in repr(record)


def test_failed_record_says_the_error_once_with_its_last_lines_and_hint() -> None:
    """The record replaces the widget (issue 24.1): it carries the failing step, the error, the
    last output lines and the hint, so the raised error only says what failed."""
    from dcs_magic.model.results import ProgressRecord

    error = ("Step 3/3 : RUN make && exit 3 failed: The command returned a non-zero code: 3\n"
             "Full log: /tmp/ctx/.dcs/build-1.log\nLast output lines:\n    compiling\n    boom <b>\n"
             "Hint: Fix the failing step")
    snapshot = {"kind": "build", "title": "app", "status": "failed", "elapsed_s": 1.0, "failed_step": 3,
                "total_steps": 3, "steps": [{"n": 3, "instruction": "RUN make && exit 3"}], "error": error,
                "log_path": "/tmp/ctx/.dcs/build-1.log"}
    record = ProgressRecord.from_snapshot(snapshot)
    assert record.error == "The command returned a non-zero code: 3"
    assert record.last_lines == ["compiling", "boom <b>"] and record.hint == "Fix the failing step"
    text = repr(record)
    assert text.count("non-zero code: 3") == 1 and "Hint: Fix the failing step" in text
    assert text.endswith("Last output lines:\n    compiling\n    boom <b>")
    html = record._repr_html_()
    assert html.count("non-zero code: 3") == 1 and "boom &lt;b&gt;" in html
    assert '<a href="file:///tmp/ctx/.dcs/build-1.log"><code>/tmp/ctx/.dcs/build-1.log</code></a>' in html
    push = ProgressRecord.from_snapshot({"kind": "push", "title": "r/x:1", "status": "failed",
                                         "error": "Push of r/x:1 failed: denied\nHint: docker login r"})
    assert push.error == "Push of r/x:1 failed: denied" and push.hint == "docker login r"
    assert repr(push).count("docker login r") == 1


def test_log_paths_link_relative_to_the_notebook_folder(tmp_path) -> None:
    from dcs_magic.model.results import path_href, url_link

    log = tmp_path / "dcs-build" / "my app" / ".dcs" / "build-1.log"
    assert path_href(str(log), base=str(tmp_path)) == "dcs-build/my%20app/.dcs/build-1.log"
    assert path_href("/elsewhere/x.log", base=str(tmp_path)) == "file:///elsewhere/x.log"
    assert url_link("https://h/#/setting/clusters/1", "1") == \
        '<a href="https://h/#/setting/clusters/1" target="_blank" rel="noopener">1</a>'
    assert url_link("javascript:alert(1)") == "javascript:alert(1)"  # only http(s) becomes a link
