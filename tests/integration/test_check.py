"""check() on the real engine: the DCS base passes, bad images fail with fixes, and no probe
container is ever left behind."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from support.cleanup import DockerCleanup
from support.images import build_image, busybox_rootfs_tar

from dcs_magic import EngineError, check
from dcs_magic.adapters.engine import Engine, connect
from dcs_magic.errors import ImageNotFoundError, UsageError

pytestmark = pytest.mark.docker

REQUIRED = ["os", "architecture", "java", "bash", "iproute2", "coreutils", "procps", "sudo", "python",
            "ipython", "ipykernel", "numpy", "pandas", "pyarrow", "six", "virtualenv"]


@pytest.fixture
def engine(docker_client: Any) -> Iterator[Engine]:
    """dcs-magic's own adapter on the engine the tests use (docker_client starts it if needed)."""
    with connect() as engine:
        yield engine


def assert_no_probe_left(client: Any, image: str) -> None:
    """No probe container from `image` outlived check() (other sessions' probes may exist)."""
    left = client.api.containers(all=True, filters={"label": "dcs_magic.check", "ancestor": image})
    assert left == []


@pytest.mark.slow
def test_dcs_base_meets_the_requirements(engine: Engine, dcs_base_image: str, docker_client: Any) -> None:
    report = check(dcs_base_image, runtime="15.4.x-scala2.12", engine=engine)
    assert report.ok, report
    assert [name for name in REQUIRED if not report[name].ok] == []
    assert report["python"].detail.startswith("Python 3.11")
    assert report["architecture"].detail == "linux/amd64"
    assert report["entrypoint"].ok  # docker import + FROM: no CMD/ENTRYPOINT
    # The same image targeted at 16.4 fails on its Python (3.12 there).
    wrong = check(dcs_base_image, runtime="16.4", engine=engine)
    assert not wrong.ok and [c.name for c in wrong.failures] == ["python"]
    assert_no_probe_left(docker_client, dcs_base_image)


def test_busybox_fails_with_a_fix_for_each_failure(busybox_image: str, docker_client: Any) -> None:
    report = check(busybox_image)  # the engine from the environment, like %dcs_check
    assert not report.ok
    failed = {c.name for c in report.checks if not c.ok and c.severity == "error"}
    assert {"java", "bash", "iproute2", "coreutils", "procps", "sudo", "python"} <= failed
    assert all(c.fix for c in report.failures)
    assert "java is not on the PATH" in report["java"].detail
    assert_no_probe_left(docker_client, busybox_image)


def test_cmd_and_entrypoint_warn(engine: Engine, docker_client: Any, docker_cleanup: DockerCleanup,
                                 tiny_images: Any) -> None:
    ref = docker_cleanup.add(f"{docker_cleanup.unique('entrypoint')}:1")
    tiny_images.load(docker_client, ref, [busybox_rootfs_tar()],
                     config={"Entrypoint": ["/bin/sh", "-c"], "Cmd": ["exit 7"]})
    report = check(ref, engine=engine)
    item = report["entrypoint"]
    assert (item.ok, item.severity) == (False, "warning")
    assert "ENTRYPOINT ['/bin/sh', '-c']" in item.detail and "ignores" in item.detail
    # The entrypoint was overridden: the probe ran (it found busybox's tools).
    assert "busybox" in report["procps"].detail
    assert_no_probe_left(docker_client, ref)


def test_arm64_image(engine: Engine, docker_client: Any, docker_cleanup: DockerCleanup, tiny_images: Any) -> None:
    ref = docker_cleanup.add(f"{docker_cleanup.unique('arm64')}:1")
    arm64_shell = tiny_images.layer({"bin/sh": tiny_images.aarch64_elf()})
    tiny_images.load(docker_client, ref, [arm64_shell], architecture="arm64")
    report = check(ref, engine=engine)
    assert not report.ok
    assert not report["architecture"].ok and "linux/amd64 only" in report["architecture"].detail
    assert "--platform linux/amd64" in report["architecture"].fix
    assert not report["probe"].ok  # its /bin/sh is an aarch64 program
    assert_no_probe_left(docker_client, ref)


def test_image_without_a_shell(engine: Engine, docker_client: Any, docker_cleanup: DockerCleanup,
                               tiny_images: Any) -> None:
    ref = docker_cleanup.add(f"{docker_cleanup.unique('noshell')}:1")
    os_release = tiny_images.layer({"etc/os-release": b"ID=debian\n"}, mode=0o644)
    tiny_images.load(docker_client, ref, [os_release])
    report = check(ref, engine=engine)
    assert not report["probe"].ok and "/bin/sh" in report["probe"].detail
    assert_no_probe_left(docker_client, ref)


def test_probe_timeout_still_removes_the_container(engine: Engine, docker_client: Any, docker_cleanup: DockerCleanup,
                                                   tiny_images: Any) -> None:
    """A /databricks/python3 that hangs: check gives up after timeout_s and cleans up."""
    ref = docker_cleanup.add(f"{docker_cleanup.unique('hang')}:1")
    hang = tiny_images.layer({"databricks/python3/bin/python3": b"#!/bin/sh\nsleep 300\n"})
    tiny_images.load(docker_client, ref, [busybox_rootfs_tar(), hang])
    with pytest.raises(EngineError, match="did not finish within 3 s"):
        check(ref, engine=engine, timeout_s=3)
    assert_no_probe_left(docker_client, ref)


def test_missing_image_says_how_to_get_it(engine: Engine) -> None:
    with pytest.raises(ImageNotFoundError) as info:
        check("dcs-test/does-not-exist:1", engine=engine)
    assert info.value.image == "dcs-test/does-not-exist:1" and info.value.host == engine.host
    assert "not in the local Docker engine" in info.value.message
    assert "%dcs_build -t dcs-test/does-not-exist:1" in info.value.hint


def test_unreachable_engine_names_the_host(busybox_image: str, monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Any) -> None:
    host = f"unix://{tmp_path}/no-engine.sock"
    monkeypatch.setenv("DOCKER_HOST", host)
    with pytest.raises(EngineError) as info:
        check(busybox_image)
    assert not isinstance(info.value, ImageNotFoundError)
    assert info.value.host == host and host in info.value.message and "dockerd" in info.value.hint


def test_bad_arguments_are_usage_errors(engine: Engine, busybox_image: str) -> None:
    with pytest.raises(UsageError, match="No image given"):
        check("  ", engine=engine)
    with pytest.raises(UsageError, match="not a Databricks Runtime line") as info:
        check(busybox_image, runtime="newest", engine=engine)
    assert "--runtime like 15.4" in info.value.hint


def test_interrupted_check_leaves_no_probe(engine: Engine, docker_client: Any, docker_cleanup: DockerCleanup,
                                           tiny_images: Any) -> None:
    """Ctrl-C while the probe runs: the container is removed before the interrupt propagates."""
    import signal
    import threading

    ref = docker_cleanup.add(f"{docker_cleanup.unique('interrupt')}:1")
    hang = tiny_images.layer({"databricks/python3/bin/python3": b"#!/bin/sh\nsleep 300\n"})
    tiny_images.load(docker_client, ref, [busybox_rootfs_tar(), hang])

    def interrupt_once_running() -> None:
        for _ in range(600):
            if docker_client.api.containers(filters={"label": "dcs_magic.check", "ancestor": ref}):
                signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
                return
            threading.Event().wait(0.1)

    watcher = threading.Thread(target=interrupt_once_running, daemon=True)
    watcher.start()
    with pytest.raises(KeyboardInterrupt):
        check(ref, engine=engine, timeout_s=120)
    watcher.join(5)
    assert_no_probe_left(docker_client, ref)


def test_concurrent_removals_both_return_once_the_container_is_gone(
        engine: Engine, busybox_image: str, docker_client: Any, docker_cleanup: DockerCleanup) -> None:
    """A terminate and the launch's own cleanup remove the same driver at once: the engine
    answers the second 409 ("removal already in progress"); that caller still returns only
    when the container is no longer listed (a finished run must not show its driver)."""
    import threading

    for round_ in range(8):
        name = docker_cleanup.unique(f"remove-race-{round_}")
        engine.create_container(busybox_image, name=name, entrypoint=["sh", "-c", "sleep 300"],
                                labels={"dcs-test": "remove-race"})
        engine.start(name)
        barrier = threading.Barrier(2)
        still_listed: list[bool] = []

        def remove(name: str, barrier: threading.Barrier, still_listed: list[bool]) -> None:
            with connect() as own:
                barrier.wait()
                own.remove_container(name)
                still_listed.append(bool(docker_client.api.containers(all=True, filters={"name": name})))

        threads = [threading.Thread(target=remove, args=(name, barrier, still_listed)) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(90)
        assert still_listed == [False, False], f"round {round_}: a removal returned while the container was listed"


def test_image_python_runs_one_short_container_per_image(
        engine: Engine, busybox_image: str, docker_client: Any, docker_cleanup: DockerCleanup) -> None:
    """The launch form's quick look (no %dcs_check): `python3 --version` in one container, then
    remembered by image id, so another name for the same image starts no second container."""
    import time

    from dcs_magic.ops.check import image_python

    ref = docker_cleanup.add(f"{docker_cleanup.unique('python')}:1")
    build_image(docker_client, ref, f"FROM {busybox_image}\nCOPY python3 /databricks/python3/bin/python3\n",
                {"python3": b'#!/bin/sh\necho "Python 3.12.3"\n'})
    again = docker_cleanup.add(f"{docker_cleanup.unique('python-again')}:1")
    docker_client.api.tag(ref, again.rsplit(":", 1)[0], "1")
    since = int(time.time()) - 1
    assert image_python(ref, engine=engine) == "3.12.3"
    assert image_python(again, engine=engine) == "3.12.3"
    assert image_python(again) == "3.12.3"  # its own engine connection: the same process, the same answer
    events = docker_client.events(since=since, until=int(time.time()) + 1, decode=True,
                                  filters={"type": "container", "event": "create", "label": "dcs_magic.check=1"})
    created = [e["Actor"]["Attributes"].get("image") for e in events]
    assert [image for image in created if image in (ref, again)] == [ref]
    assert image_python(busybox_image, engine=engine) is None  # no /databricks/python3: it cannot tell
    assert image_python("dcs-test/never-built:1", engine=engine) is None
    assert_no_probe_left(docker_client, ref)
