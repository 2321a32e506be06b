"""BuildKit builds through the docker CLI against the real engine (busybox base, few and small:
CI time is tight).

On this machine `docker` on PATH is 28.2.2 without buildx (it cannot build with BuildKit)
and Debian's /usr/bin/docker 20.10 builds with its own BuildKit: the search finds the latter.
`FROM dcs-test/busybox:1` resolves from the engine's image store ("load metadata for
docker.io/dcs-test/busybox:1" takes 0.0 s; Docker Hub is not reachable and not asked).
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from support.images import make_context
from support.recorder import Recorder

import dcs_magic
from dcs_magic import BuildError
from dcs_magic.adapters import buildkit
from dcs_magic.ops.build import BUILDKIT_DOCKERFILE_SENT, SHA_LABEL, VERSION_LABEL
from dcs_magic.ops.runner import Cancelled

pytestmark = pytest.mark.docker


@pytest.fixture(autouse=True)
def _buildkit_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DCS_DOCKER_CLI", raising=False)
    buildkit.forget_cli()
    if buildkit.find_cli() is None:
        pytest.fail(f"no BuildKit-capable docker CLI (bash scripts/dev-env.sh deps installs docker.io): "
                    f"{buildkit.probe_report()}")


def processes_with(text: str) -> list[int]:
    """Pids (not ours) whose command line holds TEXT: the engine's step processes are visible
    here (the engine runs on this machine)."""
    found = []
    needle = text.encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                if needle in handle.read():
                    found.append(int(entry))
        except OSError:
            continue
    return found


def test_cache_mount_builds_with_buildkit_then_rebuilds_cached(tmp_path: Path, busybox_image: str,
                                                                 docker_client: Any, docker_cleanup: Any) -> None:
    token = docker_cleanup.unique("bk")
    dockerfile = (f"FROM {busybox_image}\n"
                  f"RUN --mount=type=cache,target=/cache echo {token} >> /cache/runs && wc -l < /cache/runs\n"
                  "COPY app.txt /app.txt\n")
    context = make_context(tmp_path / "ctx", dockerfile, {"app.txt": "app\n", ".dockerignore": "secret.txt\n",
                                                          "secret.txt": "not sent\n"})
    tags = [f"{token}:1", f"{token}:2"]
    sink = Recorder()
    result = dcs_magic.build(context, tags=tags, name="app", labels={"team": "data"}, progress=sink,
                             hash_files=True)  # builder="auto"
    assert result.builder == "buildkit" and result.tags == tags
    image = docker_client.images.get(tags[0])
    assert image.id == result.image_id and tags[1] in image.tags
    assert image.labels[SHA_LABEL] == result.dockerfile_sha256 and image.labels[VERSION_LABEL]
    assert image.labels["team"] == "data"
    assert result.context_files is not None and set(result.context_files) == {"app.txt", ".dockerignore"}
    final = sink.closed[0]
    assert final["builder"] == "buildkit" and final["status"] == "done" and final["image_id"] == result.image_id
    assert [s["instruction"] for s in final["steps"]] == [f"FROM {busybox_image}", dockerfile.splitlines()[1],
                                                         "COPY app.txt /app.txt"]
    assert final["total_steps"] == 3 and not final["steps"][1]["cached"]
    log = Path(result.log_path)
    assert log.parent == context / ".dcs" and "BuildKit: " in log.read_text() and "#" in log.read_text()

    again = Recorder()
    rebuilt = dcs_magic.build(context, tags=tags[:1], name="app", labels={"team": "data"}, progress=again)
    assert rebuilt.image_id == result.image_id
    assert [s["cached"] for s in again.closed[0]["steps"]][1:] == [True, True]


def test_a_dockerfile_left_out_by_dockerignore_is_said_to_reach_copy_dot(
        tmp_path: Path, busybox_image: str, docker_client: Any, docker_cleanup: Any) -> None:
    # BuildKit reads the Dockerfile from the streamed tar, so `COPY .` has it: the build says so
    # (a known difference from the CLI building a folder), and nothing is said without the pattern.
    token = docker_cleanup.unique("bk-ignored")
    dockerfile = f"FROM {busybox_image}\nRUN --mount=type=cache,target=/c true\nCOPY . /ctx\n"
    context = make_context(tmp_path / "ctx", dockerfile, {"app.txt": "app\n", ".dockerignore": "Dockerfile\n"})
    result = dcs_magic.build(context, tags=[f"{token}:1"], name="app", progress=Recorder())
    assert result.builder == "buildkit" and result.warnings == [BUILDKIT_DOCKERFILE_SENT]
    listed = docker_client.containers.run(f"{token}:1", ["ls", "/ctx"], remove=True).decode().split()
    assert "Dockerfile" in listed and "app.txt" in listed  # what the warning says
    (context / ".dockerignore").write_text("secret.txt\n")
    again = dcs_magic.build(context, tags=[f"{token}:2"], name="app", progress=Recorder())
    assert again.warnings == []


def test_failing_step_is_named(tmp_path: Path, busybox_image: str, docker_cleanup: Any) -> None:
    context = make_context(tmp_path / "ctx", f"FROM {busybox_image}\nRUN --mount=type=cache,target=/c "
                                             "echo about to fail && exit 3\nRUN echo never\n")
    with pytest.raises(BuildError) as caught:
        dcs_magic.build(context, tags=[f"{docker_cleanup.unique('bkfail')}:1"])
    error = caught.value
    assert error.step == 2 and error.instruction == "RUN --mount=type=cache,target=/c echo about to fail && exit 3"
    assert str(error).startswith("Step 2/3 : RUN --mount=type=cache,target=/c echo about to fail && exit 3 failed: ")
    assert "exit code: 3" in str(error) and error.last_lines == ["about to fail"]


class InterruptWhenStarted:
    """Sends SIGINT to this process (Ctrl-C, Kernel > Interrupt) once the slow step printed."""

    def __init__(self, marker: str) -> None:
        self.marker = marker
        self.running: list[int] = []
        self.at = 0.0
        self.closed: list[dict] = []

    def update(self, snapshot: dict) -> None:
        if not self.running and any(line.endswith(" started") for line in snapshot["log_tail"]):
            self.running = processes_with(self.marker)
            self.at = time.monotonic()
            os.kill(os.getpid(), signal.SIGINT)

    def close(self, snapshot: dict) -> None:
        self.closed.append(snapshot)


def test_interrupt_ends_the_cli_and_the_build(tmp_path: Path, busybox_image: str, docker_cleanup: Any) -> None:
    marker = docker_cleanup.unique("bkstop")
    context = make_context(tmp_path / "ctx", f"FROM {busybox_image}\n"
                                             f"RUN --mount=type=cache,target=/c echo started && sleep 60 && echo {marker}\n")
    sink = InterruptWhenStarted(marker)
    started = time.monotonic()

    with pytest.raises(Cancelled, match="the BuildKit build was stopped"):
        dcs_magic.build(context, tags=[f"{marker}:1"], progress=sink, interval=0.05)
    assert time.monotonic() - sink.at < 5  # the CLI is gone within a second (SIGINT, then SIGKILL)
    assert time.monotonic() - started < 30
    assert sink.running, "the step was running in the engine when the interrupt came"
    deadline = time.monotonic() + 10
    while processes_with(marker) and time.monotonic() < deadline:  # the engine ends the step
        time.sleep(0.2)
    assert processes_with(marker) == []  # neither the CLI nor the step is left
    assert sink.closed[0]["status"] == "cancelled"
    assert max((context / ".dcs").glob("build-*.log")).read_text().endswith("INTERRUPTED\n")


def test_build_secrets_do_not_leak(tmp_path: Path, busybox_image: str, docker_cleanup: Any,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    value = "s3cr3t-" + os.urandom(8).hex()
    from_file = "f1le-" + os.urandom(8).hex()
    monkeypatch.setenv("DCS_TEST_PIP_TOKEN", value)
    (tmp_path / "token.txt").write_text(from_file)
    # The step proves the secrets were there without printing them: it fails unless their sha256
    # is the expected one (a hash in the Dockerfile, not the value).
    expected = [hashlib.sha256(text.encode()).hexdigest() for text in (value, from_file)]
    context = make_context(tmp_path / "ctx", f"FROM {busybox_image}\n"
                                             "RUN --mount=type=secret,id=pip --mount=type=secret,id=file "
                                             f'test "$(sha256sum < /run/secrets/pip)" = "{expected[0]}  -" && '
                                             f'test "$(sha256sum < /run/secrets/file)" = "{expected[1]}  -" && '
                                             "touch /checked\n")
    tag = f"{docker_cleanup.unique('bksecret')}:1"
    temp_before = set(Path(tempfile.gettempdir()).glob("dcs-buildkit-*"))

    class Watch(Recorder):
        """Looks at every process's command line while the build runs."""
        seen: list[int] = []

        def update(self, snapshot: dict) -> None:
            super().update(snapshot)
            self.seen += processes_with(value) + processes_with(from_file)

    sink = Watch()
    result = dcs_magic.build(context, tags=[tag], progress=sink, interval=0.02,
                             secrets=["id=pip,env=DCS_TEST_PIP_TOKEN", f"id=file,src={tmp_path / 'token.txt'}"])
    assert result.builder == "buildkit"  # auto: a --secret needs BuildKit
    assert sink.seen == [] and len(sink.updates) > 2
    history = subprocess.run(["docker", "history", "--no-trunc", tag], capture_output=True, text=True, check=True)
    inspect = subprocess.run(["docker", "image", "inspect", tag], capture_output=True, text=True, check=True)
    written = [history.stdout, inspect.stdout, Path(result.log_path).read_text(), sink.text(), repr(result),
               str(result.__dict__)]
    for text in written:
        assert value not in text and from_file not in text
    assert "id=pip" in history.stdout or "/run/secrets/pip" in history.stdout  # the step is there, not the value
    assert set(Path(tempfile.gettempdir()).glob("dcs-buildkit-*")) == temp_before  # the private file is gone


def test_buildkit_without_a_capable_cli_is_one_clear_error(tmp_path: Path, busybox_image: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    new_client = "/usr/local/bin/docker"  # 28.2.2 without buildx
    if not os.access(new_client, os.X_OK) or buildkit._capable(new_client)[0] is not None:
        pytest.skip(f"{new_client} is not a docker >= 23 without buildx here")
    monkeypatch.setenv("DCS_DOCKER_CLI", new_client)
    context = make_context(tmp_path / "ctx", f"FROM {busybox_image}\nRUN echo hi\n")
    sink = Recorder()
    with pytest.raises(BuildError) as caught:
        dcs_magic.build(context, tags=["dcs-test-never:1"], builder="buildkit", progress=sink)
    assert re.search(r"no docker CLI here can build with BuildKit \(tried: /usr/local/bin/docker: "
                     r"docker 28\.\d+\.\d+ without buildx", str(caught.value))
    assert "buildx" in caught.value.hint and "docker.io" in caught.value.hint
    assert sink.closed[0]["status"] == "failed"
