"""`%dcs_run` shows the run's state changes as they come, with the run page link (issue 24,
item 4), against the local preflight workspace (real engine, the DCS base image pushed to
the plain test registry), with a local --python-file (item 5: uploaded first).

In Jupyter (`DcsMagics.progress = 'widget'`, or 'auto' in a kernel) that is one output shown
with a display id and updated at each change: plain display data (HTML with the link, and
text/plain), so the saved notebook keeps the last one as a static record. In a terminal
(this test's InteractiveShell: 'auto' without a kernel) the same lines are printed.
"""

from __future__ import annotations

import getpass
import hashlib
import re
from pathlib import Path
from typing import Any

import pytest
from integration.conftest import dcs_base_image  # noqa: F401 - the session fixture, shared
from IPython.utils.capture import capture_output
from support.images import job_cluster_spec

from dcs_magic.model.jobs import RunError

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.usefixtures("no_databricks_config")]

STATE_LINE = re.compile(r"^  \d\d:\d\d:\d\d ([A-Z_/]+)(: .*)?$")
ENDING = {"TERMINATING/SUCCESS", "TERMINATING/FAILED"}  # the job cluster going away (may be too quick to see)


@pytest.fixture
def spec(dcs_base_image: str, registry: Any, docker_client: Any, docker_cleanup: Any,  # noqa: F811
         tmp_path: Path) -> Path:
    return job_cluster_spec(docker_client, docker_cleanup, dcs_base_image, registry.host, "run-states",
                            tmp_path / "cluster.json")


def folded_states(lines: list[str]) -> list[str]:
    """The states of the state lines in order, repeats (new state messages) folded."""
    states: list[str] = []
    for line in lines:
        match = STATE_LINE.match(line)
        assert match, f"not a state line: {line!r}"
        if not states or states[-1] != match[1]:
            states.append(match[1])
    return states


def test_the_output_is_updated_at_each_state_change_with_the_run_page_link(
        shell: Any, dcs_magics: Any, spec: Path, tmp_path: Path) -> None:
    script = tmp_path / "states_job.py"
    # The task outlasts a few of the local workspace's 0.1 s polls, so RUNNING is seen (a task
    # that ends between two polls goes from PENDING to TERMINATING, as on Databricks).
    script.write_text("import time\ntime.sleep(0.6)\nprint('states job done')\n")
    digest = hashlib.sha256(script.read_bytes()).hexdigest()[:16]
    shell.run_line_magic("config", "DcsMagics.progress = 'widget'")
    with capture_output() as captured:
        result = shell.run_line_magic("dcs_run", f"--local --spec {spec} --python-file states_job.py")
    assert result.ok and dcs_magics.last_run is result
    assert captured.stdout.splitlines() == [
        f"Uploaded states_job.py to /Workspace/Users/{getpass.getuser()}/.dcs/runs/{digest}/states_job.py",
        "states job done"]

    first, *updates = captured.outputs
    assert not first.update and updates and all(output.update for output in updates)
    display_id = first.transient["display_id"]
    assert all(output.transient["display_id"] == display_id for output in updates)  # one output, updated
    texts = [output.data["text/plain"].splitlines() for output in captured.outputs]
    assert texts[0] == [f"Run {result.run_id}: {result.run_page_url}"]  # shown before the first state
    for before, after in zip(texts, texts[1:]):  # each update adds one line: the changes, in order
        assert after[:-1] == before
    *changes, outcome = texts[-1][1:]
    assert outcome == "State: TERMINATED/SUCCESS (exit code 0)"
    states = folded_states(changes)
    assert [s for s in states if s not in ENDING] == ["PENDING", "RUNNING", "TERMINATED/SUCCESS"], changes
    assert states.index("RUNNING") < min([states.index(s) for s in ENDING if s in states] + [len(states)])

    html = captured.outputs[-1].data["text/html"]
    assert f'<a href="{result.run_page_url}"' in html and 'data-status="done"' in html
    assert html.index("<b>PENDING</b>") < html.index("<b>RUNNING</b>") < html.index("<b>TERMINATED/SUCCESS</b>")
    assert "State:</b> TERMINATED/SUCCESS (exit code 0)" in html
    assert 'data-status="running"' in captured.outputs[-2].data["text/html"]  # live until the end


def test_a_terminal_gets_the_same_lines_printed_and_a_failure_raises(
        shell: Any, dcs_magics: Any, spec: Path, tmp_path: Path) -> None:
    (tmp_path / "failing_job.py").write_text("import sys, time\ntime.sleep(0.6)\nprint('about to fail')\nsys.exit(3)\n")
    with capture_output() as captured, pytest.raises(RunError) as info:
        shell.run_line_magic("dcs_run", f"--local --spec {spec} --python-file failing_job.py")
    assert captured.outputs == []  # nothing displayed: printed lines only
    lines = captured.stdout.splitlines()
    assert lines[0].startswith("Uploaded failing_job.py to /Workspace/Users/")
    assert re.fullmatch(r"Run (\d+): http://127\.0\.0\.1:\d+/runs/\1", lines[1]), lines
    end = lines.index("State: TERMINATED/FAILED (exit code 3)")
    states = folded_states(lines[2:end])
    assert [s for s in states if s not in ENDING] == ["PENDING", "RUNNING", "TERMINATED/FAILED"], lines
    assert lines[end + 1:] == ["about to fail"]
    assert info.value.exit_code == 3 and dcs_magics.last_run.run_id == int(lines[1].split()[1].rstrip(":"))
