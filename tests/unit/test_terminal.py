"""terminal.py: progress snapshots from recorded engine streams drawn as plain lines and rich."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from dcs_magic.cli.terminal import TerminalProgress, print_check_report, progress_sink
from dcs_magic.model.progress import BuildState, PushState
from dcs_magic.model.results import CheckItem, CheckReport

FIXTURES = Path(__file__).parent / "fixtures"


def events(name: str) -> list[dict]:
    return [json.loads(line) for line in (FIXTURES / name).read_text().splitlines() if line.strip()]


def replay(state: BuildState | PushState, name: str, sink: TerminalProgress, every: int = 1) -> list[str]:
    """Feed a recorded stream to STATE, sending a snapshot to SINK after every EVERY events;
    return the complete log lines the state produced (what a full log file would hold)."""
    lines: list[str] = []
    for i, event in enumerate(events(name), 1):
        if "error" in event or "errorDetail" in event:
            lines += state.apply(event)
            break
        lines += state.apply(event)
        if i % every == 0:
            sink.update(state.snapshot(elapsed_s=float(i)))
    else:
        lines += state.finish()
    sink.close(state.snapshot(elapsed_s=99.0))
    return lines


@pytest.mark.parametrize("every", [1, 3, 1000])
def test_plain_build_prints_every_log_line_once_in_order(every):
    out = io.StringIO()
    log = replay(BuildState(title="app"), "build_ok.jsonl", TerminalProgress(out, rich=False), every)
    printed = out.getvalue().splitlines()
    assert printed[:-1] == log  # each line once, in order, whatever the snapshot rate
    assert printed[-1].startswith("[build app] done sha256:")


def test_plain_build_failure_ends_with_the_error():
    out = io.StringIO()
    log = replay(BuildState(title="app"), "build_fail_run.jsonl", TerminalProgress(out, rich=False))
    printed = out.getvalue().splitlines()
    assert printed[:-1] == log and log[-1].startswith("ERROR: ")
    assert printed[-1].startswith("[build app] failed: ")


def test_partial_line_waits_until_complete():
    state, out = BuildState(title="t"), io.StringIO()
    sink = TerminalProgress(out, rich=False)
    state.apply({"stream": "Step 1/2 : RUN x"})
    sink.update(state.snapshot())
    assert out.getvalue() == ""  # "Step 1/2 : RUN x" has no newline yet
    state.apply({"stream": "\ndownloading 10%\r"})
    sink.update(state.snapshot())
    assert out.getvalue() == "Step 1/2 : RUN x\n"


def test_more_new_lines_than_the_snapshot_holds_says_so():
    state, out = BuildState(title="t", tail=5), io.StringIO()
    sink = TerminalProgress(out, rich=False)
    state.apply({"stream": "".join(f"line {i}\n" for i in range(12))})
    sink.update(state.snapshot())
    assert out.getvalue().splitlines() == ["... 7 log lines not shown (see the build log)",
                                           *[f"line {i}" for i in range(7, 12)]]


def test_plain_push_prints_layer_changes_not_ticks():
    out = io.StringIO()
    clock = iter(range(0, 10_000, 10)).__next__  # every summary is due
    replay(PushState(reference="127.0.0.1:5000/app:1"), "push_new.jsonl",
           TerminalProgress(out, rich=False, summary_interval=5.0, clock=clock))
    printed = out.getvalue().splitlines()
    layer_lines = [line for line in printed if ": " in line and not line.startswith("[")]
    assert len(layer_lines) == len(set(layer_lines))  # a status is printed once per layer
    assert any(line.endswith(": Pushed") for line in layer_lines)
    assert printed[-1].startswith("[push 127.0.0.1:5000/app:1] done ") and "@sha256:" in printed[-1]


def test_plain_push_failure():
    out = io.StringIO()
    replay(PushState(reference="127.0.0.1:9/app:1"), "push_unreachable.jsonl", TerminalProgress(out, rich=False))
    assert out.getvalue().splitlines()[-1].startswith("[push 127.0.0.1:9/app:1] failed: ")


@pytest.mark.parametrize("name, state", [("build_pull.jsonl", BuildState(title="pull")),
                                         ("push_new.jsonl", PushState(reference="r/app:1"))])
def test_rich_draws_and_ends_with_the_outcome(name, state):
    out = io.StringIO()
    sink = TerminalProgress(out, rich=True)
    replay(state, name, sink, every=2)
    text = out.getvalue()
    assert "\x1b[" in text  # drawn with terminal control codes
    assert "done" in text.splitlines()[-1]
    if state.kind == "build":
        assert "Step 1/" in text  # step headlines stay in the scrollback


def test_progress_sink_modes():
    assert progress_sink("none") is None
    assert progress_sink("auto", io.StringIO()).rich is False  # not a TTY: plain lines
    assert progress_sink("rich", io.StringIO()).rich is True
    assert progress_sink("plain", io.StringIO()).rich is False


def test_check_report_plain_and_rich():
    report = CheckReport("img:1", [CheckItem("java", False, "java is missing", fix="install a JDK"),
                                   CheckItem("bash", True, "GNU bash 5"),
                                   CheckItem("size", False, "big", fix="slim it", severity="warning")])
    out = io.StringIO()
    print_check_report(report, out, rich=False)
    assert out.getvalue().splitlines() == [
        "img:1: FAILED", "  [FAIL] java: java is missing", "      fix: install a JDK",
        "  [ok] bash: GNU bash 5", "  [WARN] size: big", "      fix: slim it"]
    out = io.StringIO()
    print_check_report(report, out, rich=True)
    assert "install a JDK" in out.getvalue() and "FAILED" in out.getvalue()


def test_plain_counts_lines_that_left_a_byte_bounded_tail():
    # 100 lines of 1 kB between two snapshots: the 64 kB tail keeps about 60 of them; the
    # terminal prints those and says exactly how many it could not show.
    out = io.StringIO()
    sink = TerminalProgress(out, rich=False)
    state = BuildState("big")
    state.apply({"stream": "Step 1/1 : RUN chatty\n"})
    sink.update(state.snapshot())
    for i in range(100):
        state.apply({"stream": f"{i:04d} " + "x" * 1000 + "\n"})
    snap = state.snapshot()
    kept = len(snap["log_tail"])
    assert kept < 100 and snap["log_first"] == 101 - kept
    sink.update(snap)
    printed = out.getvalue().splitlines()
    assert printed[1] == f"... {100 - kept} log lines not shown (see the build log)"
    assert [line[:4] for line in printed[2:]] == [f"{i:04d}" for i in range(100 - kept, 100)]
