"""`dcs_magic.build` against the real Docker engine (classic builder, busybox base)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import time
from pathlib import Path
from typing import Any

import docker.errors
import pytest
from support.cleanup import remove_step_images
from support.comms import RecordingComm, record_comms
from support.images import make_context
from support.recorder import Recorder

import dcs_magic
from dcs_magic import BuildError, BuildResult, ContextError, EngineError
from dcs_magic.adapters.engine import _context_tar
from dcs_magic.jupyter.widgets import ProgressWidget
from dcs_magic.ops.build import SHA_LABEL, VERSION_LABEL
from dcs_magic.ops.runner import Cancelled, Job

pytestmark = pytest.mark.docker




@pytest.fixture
def tag(docker_cleanup: Any) -> str:
    return f"{docker_cleanup.unique('build')}:1"


def test_build_labels_tags_and_log(tmp_path: Path, busybox_image: str, docker_client: Any,
                                   docker_cleanup: Any, tag: str) -> None:
    dockerfile = f"FROM {busybox_image}\nRUN echo hello-from-run && echo second line\nCOPY app.txt /app.txt\n"
    context = make_context(tmp_path / "ctx", dockerfile, {"app.txt": "app\n"})
    second = f"{docker_cleanup.unique('build2')}:latest"
    sink = Recorder()
    result = dcs_magic.build(context, tags=[tag, second.removesuffix(":latest")], name="app",
                             labels={"team": "data", "dcs-test": "1"}, progress=sink)

    assert isinstance(result, BuildResult) and result.image_id.startswith("sha256:")
    assert result.tags == [tag, second] and result.name == "app" and result.platform == "linux/amd64"
    assert result.dockerfile_sha256 == hashlib.sha256(dockerfile.encode()).hexdigest()
    assert result.duration_s > 0 and result.warnings == []
    image = docker_client.images.get(tag)
    assert image.id == result.image_id and second in image.tags
    assert image.labels[SHA_LABEL] == result.dockerfile_sha256
    assert image.labels[VERSION_LABEL] == dcs_magic.__version__ and image.labels["team"] == "data"

    log = Path(result.log_path)
    assert log.parent == context / ".dcs" and log.name.startswith("build-")
    text = log.read_text()
    assert "hello-from-run\nsecond line\n" in text and f"Successfully tagged {second}" in text
    # dcs-magic's labels are one LABEL step (appended to a copy of the Dockerfile the engine
    # gets, not to the file); the user's --label ones are the engine's usual one step each; none
    # is a user step, so the log shows the user's three, counted as the user counts them.
    steps = [line for line in text.splitlines() if line.startswith("Step ")]
    assert [line.split(" : ")[0] for line in steps] == ["Step 1/3", "Step 2/3", "Step 3/3"], steps
    assert "LABEL" not in text
    history = [row["CreatedBy"] for row in docker_client.api.history(tag)]
    assert sum(SHA_LABEL in h and VERSION_LABEL in h for h in history) == 1  # one instruction for both
    assert sum("LABEL" in h for h in history) == 1 + 2
    assert (context / "Dockerfile").read_text() == dockerfile
    assert sink.closed[0]["total_steps"] == 3 and sink.closed[0]["step"] == 3
    assert sink.closed[0]["status"] == "done" and sink.closed[0]["image_id"] == result.image_id
    assert sink.updates and sink.updates[0]["status"] == "running"
    assert "BuildResult(sha256:" in repr(result) and tag in repr(result)


def test_build_log_is_not_sent_and_dockerignore_is_honoured(tmp_path: Path, busybox_image: str,
                                                            tag: str) -> None:
    context = make_context(tmp_path / "ctx", f"FROM {busybox_image}\nCOPY . /ctx\nRUN ls -A /ctx\n",
                           {"keep.txt": "k", "secret.env": "x", ".dockerignore": "*.env\n!.dcs\n"})
    first = dcs_magic.build(context, tags=[tag])
    second = dcs_magic.build(context, tags=[tag])  # the first build's log now sits in .dcs/
    listing = Path(first.log_path).read_text()
    assert "keep.txt" in listing and "secret.env" not in listing and ".dcs" not in listing
    # the log is not part of the context, so COPY . stays a cache hit
    assert "Using cache" in Path(second.log_path).read_text().split("COPY . /ctx", 1)[1]
    assert first.image_id == second.image_id
    names = set()
    import io
    import tarfile
    with tarfile.open(fileobj=io.BytesIO(b"".join(_context_tar(context, "Dockerfile")))) as tar:
        names = set(tar.getnames())
    assert {"Dockerfile", "keep.txt", ".dockerignore"} <= names
    assert not any(n.startswith(".dcs") for n in names) and "secret.env" not in names


CONTEXT_MB = 400
_RSS_CHILD = """
import json, sys, dcs_magic
result = dcs_magic.build(sys.argv[1], tags=[sys.argv[2]], progress=None)
print(json.dumps({"image_id": result.image_id}))
"""


def test_a_large_context_streams_with_flat_memory(tmp_path: Path, busybox_image: str, docker_client: Any,
                                                   tag: str) -> None:
    """The context is tarred by a thread into a chunked upload: the building process holds a few
    MiB of it at a time, not the context (here 400 MB of sparse files, read as real bytes)."""
    import subprocess
    import sys

    context = make_context(tmp_path / "big", f"FROM {busybox_image}\nCOPY small.txt /small.txt\n",
                           {"small.txt": "ok\n"})
    for i in range(4):
        with open(context / f"blob-{i}.bin", "wb") as handle:
            handle.truncate(CONTEXT_MB // 4 * 1024 * 1024)
    peak = tmp_path / "peak-kib"
    # GNU time forks the child from a small process: the child's peak RSS is its own (measured
    # from this large pytest process, a child inherits the parent's high-water mark).
    proc = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(peak), sys.executable, "-c", _RSS_CHILD,
                           str(context), tag], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    image_id = json.loads(proc.stdout.strip().splitlines()[-1])["image_id"]
    assert docker_client.images.get(tag).id == image_id
    peak_mib = int(peak.read_text().split()[-1]) / 1024
    assert peak_mib < CONTEXT_MB / 4, f"{peak_mib:.0f} MiB peak for a {CONTEXT_MB} MB context"


def test_a_cancel_while_the_context_uploads_stops_the_upload(tmp_path: Path, busybox_image: str,
                                                           docker_client: Any, tag: str) -> None:
    """No response exists yet while the body is sent: the cancel stops the body itself, at
    the next chunk, rather than after the rest of the context (seconds for 400 MB)."""
    import threading

    from dcs_magic.ops.runner import CancelToken

    context = make_context(tmp_path / "big", f"FROM {busybox_image}\nCOPY small.txt /small.txt\n",
                           {"small.txt": "ok\n"})
    for i in range(4):
        with open(context / f"blob-{i}.bin", "wb") as handle:
            handle.truncate(CONTEXT_MB // 4 * 1024 * 1024)
    token = CancelToken()
    cancelled_at: list[float] = []

    def cancel() -> None:
        cancelled_at.append(time.monotonic())
        token.cancel()

    timer = threading.Timer(0.5, cancel)
    timer.start()
    with pytest.raises(Cancelled):
        dcs_magic.build(context, tags=[tag], no_cache=True, cancel=token)
    assert cancelled_at and time.monotonic() - cancelled_at[0] < 2.0
    assert not [t for t in threading.enumerate() if t.name == "dcs-context-tar"]
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get(tag)


def test_failing_run_step(tmp_path: Path, busybox_image: str, docker_client: Any, tag: str) -> None:
    context = make_context(tmp_path / "ctx", (
        f"FROM {busybox_image}\nRUN echo ok\n"
        "RUN echo compiling && echo 'error: missing header' && exit 3\nRUN echo never\n"))
    sink = Recorder()
    with pytest.raises(BuildError) as info:
        dcs_magic.build(context, tags=[tag], progress=sink)
    err = info.value
    remove_step_images(docker_client, err.log_path)
    text = str(err)
    assert text.startswith("Step 3/4 : RUN echo compiling && echo 'error: missing header' && exit 3 failed:")
    assert "returned a non-zero code: 3" in text
    assert text.endswith("    compiling\n    error: missing header")
    assert err.step == 3 and err.instruction.startswith("RUN echo compiling")
    assert err.last_lines == ["compiling", "error: missing header"]
    assert Path(err.log_path).is_file() and err.log_path in text
    assert sink.closed[0]["status"] == "failed" and "Step 3/4" in sink.closed[0]["error"]
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get(tag)


def test_dockerfile_parse_error(tmp_path: Path, busybox_image: str, tag: str) -> None:
    context = make_context(tmp_path / "ctx", f"FROM {busybox_image}\nRUNN echo typo\n")
    with pytest.raises(BuildError, match=r"could not parse the Dockerfile: .*line 2: unknown instruction: RUNN"):
        dcs_magic.build(context, tags=[tag])


def test_missing_base_image(tmp_path: Path, registry: Any, tag: str) -> None:
    base = f"{registry.host}/dcs-test-missing/base:404"
    context = make_context(tmp_path / "ctx", f"FROM {base}\nRUN true\n")
    with pytest.raises(BuildError) as info:
        dcs_magic.build(context, tags=[tag])
    assert str(info.value).startswith(f"Step 1/2 : FROM {base} failed: ")
    assert "not found" in str(info.value) and info.value.step == 1
    assert "base image could not be found" in info.value.hint


def test_bad_input_is_refused_before_the_engine(tmp_path: Path, busybox_image: str) -> None:
    with pytest.raises(ContextError, match=r"Build context 'nope' has no Dockerfile") as info:
        dcs_magic.build(tmp_path / "nope", tags=["x:1"], name="nope")
    assert "%%dockerfile nope" in info.value.hint
    context = make_context(tmp_path / "ctx", f"FROM {busybox_image}\n")
    with pytest.raises(BuildError, match="Invalid tag 'Not A Tag'"):
        dcs_magic.build(context, tags=["Not A Tag"])
    with pytest.raises(BuildError, match="cannot contain a digest"):
        dcs_magic.build(context, tags=["a/b@sha256:" + "0" * 64])


@pytest.mark.parametrize("host, reason", [("unix:///tmp/dcs-test-no-engine.sock", "No such file or directory"),
                                          ("tcp://127.0.0.1:9", "Connection refused")])
def test_engine_unreachable_names_the_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           host: str, reason: str) -> None:
    monkeypatch.setenv("DOCKER_HOST", host)
    context = make_context(tmp_path / "ctx", "FROM scratch\n")
    sink = Recorder()
    with pytest.raises(EngineError) as info:
        dcs_magic.build(context, tags=["dcs-test-x:1"], progress=sink)
    assert host in str(info.value) and "DOCKER_HOST" in str(info.value) and reason in str(info.value)
    assert "dockerd" in info.value.hint and info.value.host == host
    assert sink.closed[0]["status"] == "failed"


def test_platform_mismatch_is_a_visible_warning(tmp_path: Path, busybox_image: str, tag: str) -> None:
    context = make_context(tmp_path / "ctx", f"FROM {busybox_image}\nLABEL x=1\n")
    sink = Recorder()
    result = dcs_magic.build(context, tags=[tag], platform="linux/arm64", progress=sink)
    assert len(result.warnings) == 2
    assert "runs linux/amd64 images only" in result.warnings[0]
    assert "engine runs linux/amd64" in result.warnings[1]
    assert sink.closed[0]["warnings"] == result.warnings
    with pytest.raises(BuildError, match="unknown operating system or architecture"):
        dcs_magic.build(context, tags=[tag], platform="bogus")


class InterruptOnceRunning:
    """Sends SIGINT to this process (what Ctrl-C and the notebook's stop button do) as soon
    as the slow step's container is running. Just before, `bystander()` may start a
    container of the user's own from the same image, which the cleanup must not touch."""

    def __init__(self, bystander: Any = None) -> None:
        self.sent = False
        self.container: str | None = None
        self.closed: list[dict] = []
        self.bystander = bystander

    def update(self, snapshot: dict) -> None:
        for line in snapshot["log_tail"]:
            if match := re.fullmatch(r" ---> Running in ([0-9a-f]{12})", line):
                self.container = match[1]
        if self.container and "started" in snapshot["log_tail"] and not self.sent:
            self.sent = True
            if self.bystander is not None:
                self.bystander()
            os.kill(os.getpid(), signal.SIGINT)

    def close(self, snapshot: dict) -> None:
        self.closed.append(snapshot)


def _containers(client: Any, container_id: str) -> list[dict]:
    return client.api.containers(all=True, filters={"id": container_id})


def test_interrupt_stops_the_build_and_leaves_no_container(tmp_path: Path, busybox_image: str,
                                                           docker_client: Any, docker_cleanup: Any,
                                                           tag: str) -> None:
    context = make_context(tmp_path / "ctx", f"FROM {busybox_image}\nRUN echo started; sleep 60; echo done\n")
    name = docker_cleanup.add(docker_cleanup.unique("bystander"))
    sink = InterruptOnceRunning(lambda: docker_client.containers.create(busybox_image, ["sleep", "60"], name=name))
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        dcs_magic.build(context, tags=[tag], no_cache=True, progress=sink, interval=0.05)
    assert time.monotonic() - started < 45  # it did not wait for the 60 s step
    assert sink.sent and sink.container
    assert _containers(docker_client, sink.container) == []  # removed before build() returned
    assert docker_client.containers.get(name).status == "created"  # the user's own is untouched
    assert sink.closed[0]["status"] == "cancelled"
    log = max((context / ".dcs").glob("build-*.log"))
    assert log.read_text().endswith("INTERRUPTED\n")
    remove_step_images(docker_client, log)


def test_background_build_job(tmp_path: Path, busybox_image: str, docker_client: Any, tag: str) -> None:
    context = make_context(tmp_path / "ctx", f"FROM {busybox_image}\nRUN for i in 1 2 3; do echo $i; sleep 0.3; done\n")
    sink = Recorder()
    job = Job("build", "bg", dcs_magic.build, context, tags=[tag], name="bg", progress=sink)
    assert "Job build 'bg'" in repr(job)
    result = job.result(timeout=120)
    assert job.done() and isinstance(result, BuildResult)
    assert job.state["status"] == "done" and job.state["image_id"] == result.image_id
    assert sink.closed and sink.closed[0]["image_id"] == result.image_id
    assert repr(job).startswith("<Job build 'bg': done -> BuildResult(")
    assert docker_client.images.get(tag).id == result.image_id


def test_background_failure_and_cancel(tmp_path: Path, busybox_image: str, docker_client: Any,
                                       tag: str) -> None:
    failing = make_context(tmp_path / "fail", f"FROM {busybox_image}\nRUN echo nope && false\n")
    job = Job("build", "fail", dcs_magic.build, failing, tags=[tag])
    with pytest.raises(BuildError, match=r"Step 2/2 : RUN echo nope && false failed"):
        job.result(timeout=120)
    assert "failed: Step 2/2" in repr(job) and job.state["status"] == "failed"
    remove_step_images(docker_client, job.exception().log_path)

    slow = make_context(tmp_path / "slow", (f"FROM {busybox_image}\n"
                                            "RUN i=0; while [ $i -lt 600 ]; do echo tick $i; i=$((i+1)); sleep 0.1; done\n"))
    job = Job("build", "slow", dcs_magic.build, slow, tags=[tag], no_cache=True, interval=0.05)
    deadline = time.monotonic() + 60
    while "tick 3" not in job.state.get("log_tail", []) and time.monotonic() < deadline:
        time.sleep(0.05)
    container = next(m[1] for line in job.state["log_tail"]
                     if (m := re.fullmatch(r" ---> Running in ([0-9a-f]{12})", line)))
    job.cancel()
    with pytest.raises(Cancelled):
        job.result(timeout=60)
    assert job.state["status"] == "cancelled"
    assert _containers(docker_client, container) == []
    remove_step_images(docker_client, max((slow / ".dcs").glob("build-*.log")))


def test_twenty_thousand_log_lines_stay_throttled(tmp_path: Path, busybox_image: str,
                                                  monkeypatch: pytest.MonkeyPatch, tag: str) -> None:
    record_comms(monkeypatch)
    widget = ProgressWidget(kind="build", title="flood")
    assert isinstance(widget.comm, RecordingComm)
    context = make_context(tmp_path / "ctx", (f"FROM {busybox_image}\n"
                                              "RUN i=0; while [ $i -lt 20000 ]; do echo \"log line $i\"; "
                                              "i=$((i+1)); done\n"))
    interval = 0.1
    started = time.monotonic()
    result = dcs_magic.build(context, tags=[tag], no_cache=True, progress=widget, interval=interval)
    duration = time.monotonic() - started

    updates = [data for kind, data in widget.comm.messages
               if kind == "comm_msg" and data.get("method") in ("update", "custom")]
    # one message per update (a delta: new lines, changed fields), at most one per interval,
    # plus the first and the final state
    assert 2 <= len(updates) <= duration / interval + 5, (len(updates), duration)
    assert max(len(data.get("state", {}).get("log_tail", [])) for data in updates) <= 201
    assert max(len(json.dumps(data)) for data in updates) <= 128 * 1024
    assert widget.status == "done" and widget.image_id == result.image_id
    assert widget.log_lines >= 20_000 and widget.log_tail[-1].startswith("Successfully tagged")
    log_lines = Path(result.log_path).read_text().splitlines()
    assert sum(1 for line in log_lines if line.startswith("log line ")) == 20_000


def test_docker_contexts_pick_the_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from docker.context import ContextAPI

    from dcs_magic.adapters.engine import connect, engine_host

    config = tmp_path / "docker-config"
    config.mkdir()
    (config / "config.json").write_text("{}")
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(config))  # contexts live next to this config
    ContextAPI.create_context("dcs-test-dead", host="unix:///tmp/dcs-test-dead.sock")
    ContextAPI.create_context("dcs-test-live", host="unix:///var/run/docker.sock")

    monkeypatch.setenv("DOCKER_CONTEXT", "dcs-test-dead")
    with pytest.raises(EngineError, match=r"at unix:///tmp/dcs-test-dead.sock \(docker context 'dcs-test-dead'\)"):
        connect()
    monkeypatch.setenv("DOCKER_CONTEXT", "dcs-test-missing")
    with pytest.raises(EngineError, match="docker context 'dcs-test-missing' does not exist"):
        connect()
    monkeypatch.delenv("DOCKER_CONTEXT")
    (config / "config.json").write_text(json.dumps({"currentContext": "dcs-test-live"}))
    assert engine_host() == "unix:///var/run/docker.sock"
    engine = connect()
    assert engine.platform().startswith("linux/")
    engine.close()


def test_build_records_the_base_digest(tmp_path: Path, busybox_image: str, registry: Any,
                                       docker_client: Any, docker_cleanup: Any, tag: str) -> None:
    """Provenance: a base the engine knows by registry digest is labelled and returned."""
    base_repo = f"{registry.host}/{docker_cleanup.unique('base')}"
    base = docker_cleanup.add(f"{base_repo}:1")
    docker_client.images.get(busybox_image).tag(base_repo, "1")
    pushed = list(docker_client.api.push(base_repo, tag="1", stream=True, decode=True))
    assert not [e for e in pushed if "error" in e], pushed
    digest = registry.manifest_digest(base_repo.split("/", 1)[1], "1")

    context = make_context(tmp_path / "ctx", f"FROM {base}\nRUN echo derived > /derived\n")
    result = dcs_magic.build(context, tags=[tag])

    assert (result.base_image, result.base_digest) == (base, digest)
    assert docker_client.images.get(tag).labels["dcs_magic.base.digest"] == digest


def test_build_without_a_registry_digest_records_none(tmp_path: Path, busybox_image: str,
                                                      docker_client: Any, tag: str) -> None:
    """An imported base has no registry digest: nothing is invented."""
    result = dcs_magic.build(make_context(tmp_path / "ctx", f"FROM {busybox_image}\nRUN true\n"), tags=[tag])
    assert (result.base_image, result.base_digest) == (busybox_image, None)
    assert "dcs_magic.base.digest" not in docker_client.images.get(tag).labels


def test_target_stage_gets_the_labels_too(tmp_path: Path, busybox_image: str, docker_client: Any,
                                          tag: str) -> None:
    """With --target the built stage is not the last: the labels go as the engine's option."""
    dockerfile = (f"FROM {busybox_image} AS first\nRUN echo a > /a\n"
                  f"FROM {busybox_image} AS second\nRUN echo b > /b\n")
    context = make_context(tmp_path / "ctx", dockerfile)
    result = dcs_magic.build(context, tags=[tag], target="first")
    labels = docker_client.images.get(tag).labels
    assert labels[SHA_LABEL] == result.dockerfile_sha256 and labels[VERSION_LABEL] == dcs_magic.__version__
    out = docker_client.containers.run(tag, ["sh", "-c", "ls /a /b 2>&1; true"], remove=True).decode()
    assert "/a" in out and "No such file" in out  # the first stage, not the second
