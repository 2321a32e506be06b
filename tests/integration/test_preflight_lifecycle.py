"""Local clusters live and die as on Databricks: with their kernel, after a crash, on SIGTERM.

Each test runs the process that owns the local workspace as a real subprocess, ends it the
way it ends in life (a normal exit, SIGKILL, SIGTERM), and then looks at the engine and at a
new local workspace: nothing half-launched is ever adopted as RUNNING, and nothing a dead
process made is left running.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.images import build_image, containers_of, push_image
from support.registry import Registry

from dcs_magic import ClusterError, Workspace
from dcs_magic.preflight import LocalWorkspaceServer

pytestmark = [pytest.mark.docker, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
OWNER = r'''
import json, sys, time
from dcs_magic import Workspace
from dcs_magic.preflight import LocalWorkspaceServer

body, ends, until = json.loads(sys.argv[1]), sys.argv[2] == "1", sys.argv[3]
server = LocalWorkspaceServer(clusters_end_with_process=ends).start()
ws = Workspace(host=server.host, token=server.token)
cluster_id = ws.create_cluster(body)
print(cluster_id, flush=True)
while True:
    info = ws.get_cluster(cluster_id)
    if info["state"] == until or until in info["state_message"]:
        break
    if info["state"] == "TERMINATED":
        sys.exit("TERMINATED: " + info["state_message"])
    time.sleep(0.1)
print("READY", flush=True)
sys.stdin.read()  # until the test closes stdin (a normal exit) or kills this process
'''


@pytest.fixture(scope="module")
def slow_image(dcs_base_image: str, registry: Registry, docker_client: Any) -> Iterator[str]:
    """The DCS base with an init script that takes minutes (/opt/dcs/slow.sh), in a registry."""
    ref = f"{registry.host}/dcs-test-lifecycle:1"
    build_image(docker_client, ref, f"FROM {dcs_base_image}\nCOPY slow.sh /opt/dcs/slow.sh\n",
                {"slow.sh": b"#!/bin/bash\necho starting\nsleep 300\n"})
    push_image(docker_client, ref)
    yield ref
    docker_client.api.remove_image(ref)


def body(image: str, *, slow: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {"cluster_name": "dcs-test-lifecycle", "spark_version": "15.4.x-scala2.12",
                            "node_type_id": "local", "num_workers": 0, "docker_image": {"url": image}}
    if slow:
        spec["init_scripts"] = [{"file": {"destination": "file:/opt/dcs/slow.sh"}}]
    return spec


class Owner:
    """A subprocess owning a local workspace with one cluster, stopped at `until`."""

    def __init__(self, spec: dict[str, Any], *, ends_with_process: bool, until: str) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        self.proc = subprocess.Popen([sys.executable, "-c", OWNER, json.dumps(spec),
                                      "1" if ends_with_process else "0", until],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env)
        assert self.proc.stdout is not None
        self.cluster_id = self.proc.stdout.readline().strip()
        ready = self.proc.stdout.readline().strip()
        assert self.cluster_id and ready == "READY", self.proc.stderr.read() if self.proc.stderr else ""

    def exit(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        assert self.proc.wait(timeout=60) == 0

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=30)


def new_server_view(cluster_id: str) -> dict[str, Any]:
    """What a fresh local workspace (another kernel, the next `dcs`) says of `cluster_id`
    once its start-up sweep is done."""
    server = LocalWorkspaceServer().start()
    try:
        assert server.swept.wait(60)
        with Workspace(host=server.host, token=server.token) as ws:
            info = ws.get_cluster(cluster_id)
            events = list(ws.events(cluster_id))
            if info["state"] == "RUNNING":
                ws.terminate_cluster(cluster_id)
            return {**info, "events": events}
    finally:
        server.stop()


def test_a_kernels_clusters_end_with_the_kernel(slow_image: str, docker_client: Any) -> None:
    owner = Owner(body(slow_image), ends_with_process=True, until="RUNNING")
    assert len(containers_of(docker_client, owner.cluster_id)) == 1
    owner.exit()
    assert containers_of(docker_client, owner.cluster_id) == []


def test_a_killed_kernels_running_cluster_is_ended_by_the_next_start(slow_image: str, docker_client: Any) -> None:
    owner = Owner(body(slow_image), ends_with_process=True, until="RUNNING")
    owner.kill()
    assert len(containers_of(docker_client, owner.cluster_id)) == 1  # SIGKILL: nothing could run
    info = new_server_view(owner.cluster_id)
    assert info["state"] == "TERMINATED" and "kernel" in info["state_message"]
    assert [e["type"] for e in info["events"]] == ["TERMINATING"]
    assert containers_of(docker_client, owner.cluster_id) == []


def test_a_commands_running_cluster_outlives_it_and_is_found_again(slow_image: str, docker_client: Any) -> None:
    owner = Owner(body(slow_image), ends_with_process=False, until="RUNNING")
    owner.kill()
    info = new_server_view(owner.cluster_id)  # terminates it after looking
    assert info["state"] == "RUNNING"
    assert containers_of(docker_client, owner.cluster_id) == []


def test_a_half_launched_cluster_is_never_adopted_as_running(slow_image: str, docker_client: Any) -> None:
    owner = Owner(body(slow_image, slow=True), ends_with_process=False, until="Running init script")
    owner.kill()
    assert len(containers_of(docker_client, owner.cluster_id)) == 1  # the driver, mid init script
    info = new_server_view(owner.cluster_id)
    assert info["state"] == "TERMINATED"
    assert info["termination_reason"]["code"] == "UNEXPECTED_LAUNCH_FAILURE"
    assert "interrupted" in info["state_message"]
    assert containers_of(docker_client, owner.cluster_id) == []


LEFTOVER = r'''
import os, sys
from dcs_magic.adapters.engine import connect
with connect() as engine:
    engine.create_container(sys.argv[1], name=sys.argv[2], entrypoint=["sleep", "300"],
                            labels={"dcs_magic.check": "1"})
    engine.start(sys.argv[2])
os._exit(0)  # as if killed: no clean-up
'''


def test_leftover_check_containers_of_dead_processes_are_removed_at_start(
        busybox_image: str, docker_client: Any) -> None:
    from dcs_magic.adapters.engine import connect

    suffix = os.urandom(4).hex()
    dead, live = f"dcs-check-dead-{suffix}", f"dcs-check-live-{suffix}"
    subprocess.run([sys.executable, "-c", LEFTOVER, busybox_image, dead], check=True, timeout=60,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})
    with connect() as engine:  # a check this (live) process is running
        engine.create_container(busybox_image, name=live, entrypoint=["sleep", "300"],
                                labels={"dcs_magic.check": "1"})
        engine.start(live)
        try:
            server = LocalWorkspaceServer().start()
            try:
                assert server.swept.wait(60)
            finally:
                server.stop()
            names = {c["Names"][0].lstrip("/") for c in docker_client.api.containers(all=True)}
            assert dead not in names and live in names
        finally:
            engine.remove_container(live)
            engine.remove_container(dead, quiet=True)


def test_sigterm_to_dcs_launch_wait_terminates_what_it_started(
        slow_image: str, docker_client: Any, tmp_path: Path) -> None:
    spec = tmp_path / "cluster.json"
    spec.write_text(json.dumps(body(slow_image, slow=True)))
    proc = subprocess.Popen([sys.executable, "-m", "dcs_magic.cli", "launch", "--spec", str(spec), "--local",
                             "--wait"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=tmp_path)
    assert proc.stdout is not None and proc.stderr is not None
    cluster_id = proc.stdout.readline().strip()
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if "Running init script" in line:
            break
    assert len(containers_of(docker_client, cluster_id)) == 1, lines
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143
    assert "terminated" in proc.stderr.read().lower()
    deadline = time.monotonic() + 10
    while containers_of(docker_client, cluster_id) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert containers_of(docker_client, cluster_id) == []


def test_the_launch_waits_and_a_kernel_bound_cluster_says_so(slow_image: str) -> None:
    server = LocalWorkspaceServer(clusters_end_with_process=True).start()
    try:
        with Workspace(host=server.host, token=server.token) as ws:
            cluster_id = ws.create_cluster(body(slow_image))
            try:
                info = ws.wait_for_cluster(cluster_id, timeout_s=240)
                assert "ends with this kernel" in info["state_message"]
            finally:
                ws.terminate_cluster(cluster_id)
            with pytest.raises(ClusterError):
                ws.wait_for_cluster(cluster_id, timeout_s=60)
    finally:
        server.stop()
