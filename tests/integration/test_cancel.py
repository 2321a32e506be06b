"""Stopping builds and pushes at once, and streams that may stay silent, on the real engine.

Issue 11 (2, 3) and 13 (12, 17): `Job.cancel()` and a sink's `bind_cancel` function stop a
build whose step prints nothing (`sleep 40`) within a second, remove the step's container
and report "cancelled"; a push cancelled while the registry holds its upload stops too; a
registry slower than the engine-API timeout does not fail the push; the engine's "build-args
were not consumed" warning reaches `BuildResult.warnings`; "cancelled" is printed once.
"""

from __future__ import annotations

import io
import re
import threading
import time
from pathlib import Path
from typing import Any

import docker.errors
import pytest
from support.cleanup import remove_step_images
from support.registry import stalling_proxy

import dcs_magic
from dcs_magic.jupyter.widgets import TextProgress
from dcs_magic.ops.runner import Cancelled, Job

pytestmark = pytest.mark.docker

# Generous: the bound promised is one second; the engine may be busy with other sessions.
CANCEL_BOUND_S = 2.0
SILENT_STEP = "RUN echo started; sleep 40; echo never"


class StopButtonSink:
    """A sink like the progress widget: keeps snapshots and the cancel function the pipeline
    binds (what a Stop button calls). `running` is set once the silent step runs."""

    def __init__(self) -> None:
        self.updates: list[dict] = []
        self.closed: list[dict] = []
        self.stop: Any = None
        self.running = threading.Event()
        self.container: str | None = None

    def bind_cancel(self, cancel: Any) -> None:
        self.stop = cancel

    def update(self, snapshot: dict) -> None:
        self.updates.append(snapshot)
        for line in snapshot.get("log_tail") or []:
            if match := re.fullmatch(r" ---> Running in ([0-9a-f]{12})", line):
                self.container = match[1]
        if self.container and "started" in (snapshot.get("log_tail") or []):
            self.running.set()

    def close(self, snapshot: dict) -> None:
        self.closed.append(snapshot)


def make_context(root: Path, *steps: str, base: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "Dockerfile").write_text("\n".join([f"FROM {base}", *steps]) + "\n")
    return root


@pytest.fixture
def tag(docker_cleanup: Any) -> str:
    return docker_cleanup.add(f"{docker_cleanup.unique('cancel')}:1")


def test_job_cancel_on_a_silent_step_is_prompt_and_clean(tmp_path: Path, busybox_image: str,
                                                        docker_client: Any, tag: str) -> None:
    context = make_context(tmp_path / "ctx", SILENT_STEP, base=busybox_image)
    sink = StopButtonSink()
    job = Job("build", "silent", dcs_magic.build, context, tags=[tag], no_cache=True, progress=sink,
              interval=0.05)
    assert sink.running.wait(60), sink.updates[-1:]
    assert callable(sink.stop)  # the pipeline bound its cancel function through the Job
    assert _container_ids(docker_client, sink.container)  # the step really runs
    started = time.monotonic()
    assert job.cancel() is True
    took = time.monotonic() - started
    assert took < CANCEL_BOUND_S, f"cancel took {took:.1f}s"
    assert job.status == "cancelled" and job.state["status"] == "cancelled"
    assert repr(job) == "<Job build 'silent': cancelled>"
    with pytest.raises(Cancelled, match=r"^Build cancelled; step container removed$"):
        job.result(timeout=0)
    assert _container_ids(docker_client, sink.container) == []
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get(tag)
    assert [s["status"] for s in sink.closed] == ["cancelled"]
    assert all(s["status"] == "running" for s in sink.updates)  # the outcome comes once, in close()
    assert job.cancel() is True  # idempotent
    log = max((context / ".dcs").glob("build-*.log")).read_text()
    assert log.endswith("started\nINTERRUPTED\n")  # the step never got to "echo never"
    remove_step_images(docker_client, context)


def test_stop_button_function_stops_a_foreground_build(tmp_path: Path, busybox_image: str,
                                                       docker_client: Any, tag: str) -> None:
    """The function given to `bind_cancel`, called from another thread (a widget's comm
    handler) while build() runs in the main thread."""
    context = make_context(tmp_path / "ctx", SILENT_STEP, base=busybox_image)
    sink = StopButtonSink()
    pressed: list[float] = []

    def press_stop() -> None:
        if sink.running.wait(60):
            pressed.append(time.monotonic())
            sink.stop()
            sink.stop()  # a double click is harmless

    threading.Thread(target=press_stop, daemon=True).start()
    with pytest.raises(Cancelled, match="Build cancelled; step container removed"):
        dcs_magic.build(context, tags=[tag], no_cache=True, progress=sink, interval=0.05)
    assert pressed, "the step never ran"
    took = time.monotonic() - pressed[0]
    assert took < CANCEL_BOUND_S, f"stop took {took:.1f}s"
    assert _container_ids(docker_client, sink.container) == []
    assert sink.closed[0]["status"] == "cancelled"
    remove_step_images(docker_client, context)


def test_cancelled_is_printed_once(tmp_path: Path, busybox_image: str, docker_client: Any, tag: str) -> None:
    context = make_context(tmp_path / "ctx", SILENT_STEP, base=busybox_image)
    out = io.StringIO()
    text = TextProgress(out)
    job = Job("build", "once", dcs_magic.build, context, tags=[tag], name="once", no_cache=True, progress=text,
              interval=0.05)
    deadline = time.monotonic() + 60
    while "Step 2/" not in out.getvalue() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # into the step
    assert job.cancel()
    lines = out.getvalue().splitlines()
    assert sum("cancelled" in line for line in lines) == 1, lines
    assert lines[-1].startswith("[build once] cancelled")
    remove_step_images(docker_client, context)


def test_unconsumed_build_arg_is_a_result_warning(tmp_path: Path, busybox_image: str, tag: str) -> None:
    context = make_context(tmp_path / "ctx", "ARG USED", "RUN echo $USED", base=busybox_image)
    result = dcs_magic.build(context, tags=[tag], build_args={"USED": "1", "UNUSED_X": "2"})
    assert result.warnings == ["One or more build-args [UNUSED_X] were not consumed"]


def test_a_silent_step_longer_than_the_api_timeout_builds(tmp_path: Path, busybox_image: str, tag: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """13.12 for builds: the API timeout (1 s here) does not apply to the build stream."""
    monkeypatch.setenv("DOCKER_CLIENT_TIMEOUT", "1")
    context = make_context(tmp_path / "ctx", "RUN sleep 3", base=busybox_image)
    result = dcs_magic.build(context, tags=[tag], no_cache=True)
    assert result.image_id.startswith("sha256:")


# -- push ----------------------------------------------------------------------------------


@pytest.fixture
def fresh_image(tmp_path: Path, busybox_image: str, docker_cleanup: Any) -> str:
    """busybox + a random layer of its own: its upload is never skipped by the registry."""
    context = make_context(tmp_path / "img", "RUN head -c 2000000 /dev/urandom > /blob", base=busybox_image)
    ref = docker_cleanup.add(f"{docker_cleanup.unique('cancelpush')}:1")
    dcs_magic.build(context, tags=[ref], labels={"dcs-test": "1"}, no_cache=True)
    return ref


def _tag_for(client: Any, image: str, host: str, cleanup: Any) -> tuple[str, str]:
    path = cleanup.unique("stall")
    assert client.images.get(image).tag(f"{host}/{path}", "v1")
    cleanup.add(f"{host}/{path}:v1")
    return f"{host}/{path}:v1", path


def test_push_survives_a_registry_slower_than_the_api_timeout(docker_client: Any, fresh_image: str,
                                                              registry: Any, docker_cleanup: Any,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """13.12: the registry holds a layer's final PUT for 4 s; with a 1 s API timeout the push
    used to fail with urllib3's ReadTimeoutError. The push stream has no read timeout."""
    monkeypatch.setenv("DOCKER_CLIENT_TIMEOUT", "1")
    with stalling_proxy(registry, stall_s=4) as proxy:
        reference, path = _tag_for(docker_client, fresh_image, proxy.host, docker_cleanup)
        result = dcs_magic.push(reference)
        assert proxy.stalled == 1  # the stall really happened
        assert result.digest == registry.manifest_digest(path, "v1")


def test_bg_push_cancelled_while_the_registry_holds_the_upload(docker_client: Any, fresh_image: str,
                                                                registry: Any, docker_cleanup: Any) -> None:
    with stalling_proxy(registry, stall_s=60) as proxy:
        reference, path = _tag_for(docker_client, fresh_image, proxy.host, docker_cleanup)
        sink = StopButtonSink()
        job = Job("push", reference, dcs_magic.push, reference, progress=sink, interval=0.05)
        assert proxy.stalling.wait(60), job
        assert callable(sink.stop)
        started = time.monotonic()
        assert job.cancel() is True
        took = time.monotonic() - started
        assert took < CANCEL_BOUND_S, f"cancel took {took:.1f}s"
        assert job.status == "cancelled" and repr(job) == f"<Job push {reference!r}: cancelled>"
        with pytest.raises(Cancelled, match=r"^Push cancelled$"):
            job.result(timeout=0)
        assert sink.closed[0]["status"] == "cancelled"
    assert registry.tags(path) == []  # no manifest was pushed


def _container_ids(client: Any, short_id: str | None) -> list[str]:
    assert short_id
    return [c["Id"] for c in client.api.containers(all=True, filters={"id": short_id})]


def test_bg_job_line_in_a_kernel_is_replaced_when_cancelled(tmp_path: Path, busybox_image: str,
                                                            docker_client: Any, tag: str) -> None:
    """In a real kernel (nbclient), the `<Job ... running>` line under `%dcs_build --bg` is
    updated in place (display id) when the job ends: the saved notebook says "cancelled"."""
    import os

    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in [
        "%load_ext dcs_magic\n%config DcsMagics.progress = 'none'",
        f"%%dockerfile slow --base {busybox_image} --quiet\nFROM {{{{ base }}}}\n{SILENT_STEP}",
        f"%dcs_build slow -t {tag} --no-cache --bg",
        ("import time\njob = _\nwhile 'started' not in job.state.get('log_tail', []):\n"
         "    time.sleep(0.1)\nstarted = time.monotonic()\nassert job.cancel()\n"
         "print(job.status, round(time.monotonic() - started, 1))"),
    ]]
    client = NotebookClient(nb, kernel_name="python3", timeout=120, startup_timeout=120,
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute(env=dict(os.environ))
    job_line = [o for o in nb.cells[2].outputs if o.output_type == "display_data"]
    assert [o.data["text/plain"] for o in job_line] == ["<Job build 'slow': cancelled>"]
    status, took = nb.cells[3].outputs[0].text.split()
    assert status == "cancelled" and float(took) < CANCEL_BOUND_S
    remove_step_images(docker_client, tmp_path / "dcs-build" / "slow")
