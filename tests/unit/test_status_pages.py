"""The local workspace's tokenless status pages as a reader sees them (issue 24.8): init script
destinations written once ("file:/x.sh", not "file:file:/x.sh"), state colours readable on the
page (>= 4.5:1), and an end the user asked for not shown as an error."""

from __future__ import annotations

import re

import pytest

from dcs_magic.preflight import pages

INFO = {"cluster_id": "0101-000000-abc", "cluster_name": "c", "state": "TERMINATED"}


def _luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i:i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


@pytest.mark.parametrize(("kind", "destination", "shown"), [
    ("file", "file:/databricks/init.sh", "file:/databricks/init.sh SUCCEEDED"),
    ("workspace", "/Users/me/a.sh", "workspace /Users/me/a.sh SUCCEEDED"),
    ("volumes", "/Volumes/main/default/v/a.sh", "volumes /Volumes/main/default/v/a.sh SUCCEEDED"),
])
def test_init_script_destinations_are_written_once(kind: str, destination: str, shown: str) -> None:
    event = {"type": "INIT_SCRIPTS_FINISHED", "timestamp": 0, "details": {"init_scripts": {"cluster": [
        {kind: {"destination": destination}, "status": "SUCCEEDED"}]}}}
    page = pages.cluster_page(INFO, [event]).decode()
    assert shown in page and "file:file:" not in page


def test_state_colours_are_readable_on_the_page() -> None:
    colours = re.findall(r"color:#([0-9a-fA-F]{6})", pages._STYLE)
    assert colours and all(re.fullmatch(r"[0-9a-fA-F]{6}", c) for c in colours)
    for colour in colours:  # on the page's white background
        assert 1.05 / (_luminance(colour) + 0.05) >= 4.5, colour


@pytest.mark.parametrize(("code", "error"), [("USER_REQUEST", False), ("INACTIVITY", False),
                                             ("INIT_SCRIPT_FAILURE", True)])
def test_an_end_the_user_asked_for_is_not_an_error(code: str, error: bool) -> None:
    page = pages.cluster_page({**INFO, "termination_reason": {"code": code, "type": "SUCCESS"}}, []).decode()
    state = re.search(r'<b class="([^"]*)">TERMINATED</b>', page)
    assert state is not None
    assert ("asked" not in state[1]) is error


RUN = {"run_id": 7, "run_name": "job", "start_time": 0, "end_time": 1000,
       "tasks": [{"task_key": "main", "spark_python_task": {"python_file": "/Workspace/job.py"}}]}


@pytest.mark.parametrize(("life_cycle", "output", "shown"), [
    ("TERMINATED", {"logs": ""}, "(no output)"),
    ("TERMINATED", {"logs": "secret-ish words\nsecond line\n"}, "2 lines: in runs/get-output"),
    ("TERMINATED", {"logs": "x\n", "logs_truncated": True}, "1 line (its end): in runs/get-output"),
    ("INTERNAL_ERROR", {"error": "Traceback: boom words"}, "an error: in runs/get-output"),
    ("RUNNING", {"logs": ""}, None),
])
def test_a_finished_runs_page_says_how_much_it_printed_never_what(life_cycle: str, output: dict,
                                                                   shown: str | None) -> None:
    page = pages.run_page({**RUN, "state": {"life_cycle_state": life_cycle}}, output, None).decode()
    if shown is None:
        assert "<th>Output</th>" not in page
    else:
        assert shown in page
    assert "words" not in page
