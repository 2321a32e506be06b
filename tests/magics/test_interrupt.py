"""Interrupting `%dcs_build` / `%dcs_push` in a real InteractiveShell (issue 11, items 2-3).

Kernel > Interrupt, Ctrl-C and the widget's Stop button on a foreground build raise
KeyboardInterrupt in the main thread. The cell then shows ONE line, after the cleanup, with
no traceback through docker-py and http.client; the magic returns no result. A `--bg` job's
line in the cell is shown with a display id and replaced when the job ends.
"""

from __future__ import annotations

import _thread
import threading
import time
from pathlib import Path
from typing import Any

import docker.errors
import pytest
from IPython.utils.capture import capture_output
from support.cleanup import remove_step_images

from dcs_magic.ops.runner import Cancelled, Job

pytestmark = pytest.mark.docker

SILENT_STEP = "RUN echo started; sleep 40"


@pytest.fixture
def tag(docker_cleanup: Any) -> str:
    return docker_cleanup.add(f"{docker_cleanup.unique('interrupt')}:1")


def sleeping_containers(client: Any) -> list[dict]:
    return [c for c in client.api.containers(all=True) if "sleep 40" in (c.get("Command") or "")]


def interrupt_when_the_step_runs(client: Any, known: set[str]) -> threading.Thread:
    """Raise KeyboardInterrupt in the main thread (as Kernel > Interrupt does) once a new
    container runs the silent step. The step prints nothing more, so nothing else wakes the
    build up."""

    def watch() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if any(c["Id"] not in known and c.get("State") == "running" for c in sleeping_containers(client)):
                time.sleep(0.3)
                _thread.interrupt_main()
                return
            time.sleep(0.1)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_interrupted_foreground_build_shows_one_line(shell: Any, dcs_magics: Any, busybox_image: str,
                                                     docker_client: Any, tag: str, tmp_path: Path) -> None:
    shell.run_cell_magic("dockerfile", f"slow --base {busybox_image} --quiet", f"FROM {{{{ base }}}}\n{SILENT_STEP}\n")
    shell.run_line_magic("config", "DcsMagics.progress = 'none'")
    known = {c["Id"] for c in sleeping_containers(docker_client)}
    watcher = interrupt_when_the_step_runs(docker_client, known)
    started = time.monotonic()
    with capture_output() as cell:
        outcome = shell.run_cell(f"%dcs_build slow -t {tag} --no-cache")
    took = time.monotonic() - started
    watcher.join(1)
    assert isinstance(outcome.error_in_exec, Cancelled)
    assert cell.stdout.splitlines() == ["Build cancelled; step container removed"]
    assert cell.stderr == "" and cell.outputs == []
    assert outcome.result is None and dcs_magics.last_build is None  # no result
    assert took < 30, f"the build was not stopped by the interrupt ({took:.0f}s)"  # the step sleeps 40 s
    assert [c for c in sleeping_containers(docker_client) if c["Id"] not in known] == []
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get(tag)
    remove_step_images(docker_client, tmp_path)


def test_interrupt_with_text_progress_says_cancelled_without_traceback(
        shell: Any, busybox_image: str, docker_client: Any, tag: str, tmp_path: Path) -> None:
    shell.run_cell_magic("dockerfile", f"slow --base {busybox_image} --quiet", f"FROM {{{{ base }}}}\n{SILENT_STEP}\n")
    known = {c["Id"] for c in sleeping_containers(docker_client)}
    interrupt_when_the_step_runs(docker_client, known)
    with capture_output() as cell:
        outcome = shell.run_cell(f"%dcs_build slow -t {tag} --no-cache")
    assert isinstance(outcome.error_in_exec, Cancelled)
    lines = cell.stdout.splitlines()
    assert lines[0].startswith("[build slow] ")  # the text progress ran
    assert lines[-1] == "Build cancelled; step container removed"
    # "cancelled" once: the progress printer leaves the outcome to the error's one line.
    assert sum("cancelled" in line for line in lines) == 1, lines
    assert "Traceback" not in cell.stdout + cell.stderr and "http.client" not in cell.stdout
    remove_step_images(docker_client, tmp_path)


def test_bg_job_line_is_displayed_with_an_id(shell: Any, dcs_magics: Any, busybox_image: str,
                                             docker_client: Any, tag: str, tmp_path: Path) -> None:
    shell.run_cell_magic("dockerfile", f"slow --base {busybox_image} --quiet", f"FROM {{{{ base }}}}\n{SILENT_STEP}\n")
    shell.run_line_magic("config", "DcsMagics.progress = 'none'")
    with capture_output() as cell:
        shell.run_cell(f"%dcs_build slow -t {tag} --no-cache --bg")
    job = dcs_magics.jobs[-1]
    assert isinstance(job, Job)
    assert len(cell.outputs) == 1  # the job's line, published with a display id (no Out[] repr)
    assert cell.outputs[0].data["text/plain"].startswith("<Job build 'slow': running")
    assert job.cancel() is True and job.status == "cancelled"
    remove_step_images(docker_client, tmp_path)


def test_cancelled_bg_job_with_text_progress_says_cancelled_once(
        shell: Any, dcs_magics: Any, busybox_image: str, docker_client: Any, tag: str, tmp_path: Path) -> None:
    shell.run_cell_magic("dockerfile", f"slow --base {busybox_image} --quiet", f"FROM {{{{ base }}}}\n{SILENT_STEP}\n")
    shell.run_line_magic("config", "DcsMagics.progress = 'text'")
    known = {c["Id"] for c in sleeping_containers(docker_client)}
    with capture_output() as cell:  # also catches what the job's thread prints
        shell.run_cell(f"%dcs_build slow -t {tag} --no-cache --bg")
        job = dcs_magics.jobs[-1]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(
                c["Id"] not in known and c.get("State") == "running" for c in sleeping_containers(docker_client)):
            time.sleep(0.1)
        assert job.cancel() is True and job.status == "cancelled"
    lines = cell.stdout.splitlines()
    # No error line in the cell for a job: the progress printer says it, once.
    assert sum("cancelled" in line for line in lines) == 1, lines
    assert lines[-1].startswith("[build slow] cancelled ("), lines
    assert [c for c in sleeping_containers(docker_client) if c["Id"] not in known] == []
    remove_step_images(docker_client, tmp_path)
