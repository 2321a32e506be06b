"""A job run that prints 400 MB, on the local preflight workspace over HTTP (issue 23, item 4).

Databricks' runs/get-output answers a task's stdout/stderr in `logs`, only its last 5 MB, with
`logs_truncated: true` when cut (databricks-sdk `RunOutput`). The local workspace does the same
while the output streams from the driver container: neither the server nor the client holds
the whole output, so this process (which hosts both) grows by a few tens of MB (46 MB here),
not by the output's size (before: 1.9 GB here; 87 MB -> 1.4 GB in the issue).

    the image       the DCS base + /opt/dcs/loud.py (N numbered 100-byte lines, then a last
                    line), pushed to the plain test registry (the base's layers once per session)
    the 400 MB run  runs/submit of file:/opt/dcs/loud.py 4000000 through `Workspace`, followed to
                    its end; runs/get-output read raw and through `follow_run`; the peak RSS of
                    this process measured around it (VmHWM reset through /proc/self/clear_refs,
                    and VmRSS sampled every 10 ms)
    `dcs run`       a 6 MB run with the CLI: the output is printed with a note that it was cut
    a probe         `Engine.run_container` (the image check's) printing 3 MB: the last MiB kept
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from integration.conftest import dcs_base_image  # noqa: F401 - the session fixture, shared
from support.images import build_image, containers_of, push_image
from support.registry import Registry

from dcs_magic import Workspace
from dcs_magic.model.spec import ClusterSpec
from dcs_magic.ops.runs import follow_run
from dcs_magic.preflight import LocalWorkspaceServer

pytestmark = [pytest.mark.docker, pytest.mark.slow]

LOGS_LIMIT = 5 * 2**20  # Databricks: "the last 5 MB of these logs"
LINES = 4_000_000  # 100-byte lines: 400 MB
MAX_GROWTH_MB = 200
# N numbered lines of 100 bytes on stdout (written 1 MB at a time), one line on stderr first
# (dropped from a cut output), then the last line.
LOUD = b"""import sys
n = int(sys.argv[1])
print("starting", file=sys.stderr, flush=True)
out = sys.stdout.buffer
for start in range(0, n, 10000):
    out.write(b"".join(b"%099d\\n" % i for i in range(start, min(start + 10000, n))))
out.write(b"done: %d lines of 100 bytes\\n" % n)
out.flush()
"""


def expected_tail(lines: int, limit: int = LOGS_LIMIT) -> bytes:
    """The last `limit` bytes of LOUD's stdout for `lines` lines."""
    tail = b"".join(b"%099d\n" % i for i in range(max(lines - limit // 100 - 2, 0), lines))
    return (tail + b"done: %d lines of 100 bytes\n" % lines)[-limit:]


@pytest.fixture(scope="module")
def loud_image(docker_client: Any, registry: Registry, dcs_base_image: str) -> Iterator[str]:  # noqa: F811
    """The DCS base (the session's `dcs_base_image`) + loud.py, pushed."""
    # Not named dcs-test: another test session's sweep (support/cleanup.py) removes the new
    # containers of dcs-test images, and would remove this run's check or driver mid-run.
    # The launcher removes its containers, this fixture the image.
    ref = f"{registry.host}/dcs-run-output-{time.time_ns() % 10**9}:1"
    build_image(docker_client, ref, f"FROM {dcs_base_image}\nCOPY loud.py /opt/dcs/\n", {"loud.py": LOUD})
    try:
        push_image(docker_client, ref)
        yield ref
    finally:
        docker_client.api.remove_image(ref, force=True)


def cluster(image: str) -> ClusterSpec:
    return ClusterSpec.from_dict({"cluster_name": "dcs-test-run-output", "spark_version": "15.4.x-scala2.12",
                                  "node_type_id": "local", "num_workers": 0, "docker_image": {"url": image}})


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/self/status")


@dataclass
class Memory:
    """Resident memory of this process, in kB: at the start of a block and its peak."""

    start: int
    peak: int = 0

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.start) * 1024 / 1e6


@contextmanager
def peak_rss() -> Iterator[Memory]:
    """The peak resident memory of this process while the block runs: VmHWM (reset on entry
    through /proc/self/clear_refs where the kernel allows it) and VmRSS sampled every 10 ms,
    whichever is higher."""
    memory = Memory(_status_kb("VmRSS"))
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")  # VmHWM := VmRSS
        hwm_reset = True
    except OSError:
        hwm_reset = False
    sampled = [memory.start]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.01):
            sampled[0] = max(sampled[0], _status_kb("VmRSS"))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield memory
    finally:
        stop.set()
        sampler.join()
        memory.peak = max(sampled[0], _status_kb("VmHWM") if hwm_reset else 0)


def test_a_400_mb_output_is_answered_as_its_last_5_mb(loud_image: str, docker_client: Any,
                                                       record_property: Any) -> None:
    server = LocalWorkspaceServer().start()
    try:
        with Workspace(host=server.host, token=server.token) as ws:
            with peak_rss() as memory:
                started = time.monotonic()
                run_id = ws.submit_run(cluster(loud_image), python_file="file:/opt/dcs/loud.py",
                                       parameters=[str(LINES)])
                result = follow_run(ws, run_id, timeout_s=900)
                seconds = time.monotonic() - started
                answer = requests.get(f"{server.host}/api/2.1/jobs/runs/get-output",
                                      params={"run_id": result.task_run_id},
                                      headers={"Authorization": f"Bearer {server.token}"}, timeout=60).json()
            cluster_id = ws.get_run(run_id)["tasks"][0]["cluster_instance"]["cluster_id"]
    finally:
        for launched in server.store.clusters():
            if launched.state != "TERMINATED":
                server.launcher.terminate(launched)
        server.stop()
    start_mb, peak_mb = memory.start * 1024 / 1e6, memory.peak * 1024 / 1e6
    record_property("memory", f"{start_mb:.0f} MB -> peak {peak_mb:.0f} MB (+{memory.growth_mb:.0f} MB) "
                              f"for {LINES * 100 / 1e6:.0f} MB of output in {seconds:.0f} s")
    print(f"\nrun output: RSS {start_mb:.0f} MB -> peak {peak_mb:.0f} MB (+{memory.growth_mb:.0f} MB), "
          f"{seconds:.0f} s", file=sys.stderr)

    assert result.state == "TERMINATED/SUCCESS" and result.exit_code == 0, result.to_error()
    assert answer["logs_truncated"] is True and answer["exit_code"] == 0
    logs = answer["logs"].encode()
    assert len(logs) == LOGS_LIMIT and logs.endswith(b"done: %d lines of 100 bytes\n" % LINES)
    assert logs == expected_tail(LINES)  # exactly the last 5 MB, the stderr line long gone
    assert result.logs_truncated and result.logs == answer["logs"]
    assert "(output truncated: only its last 5 MB" in result.shown_output.splitlines()[0]
    assert containers_of(docker_client, cluster_id) == []
    assert memory.growth_mb < MAX_GROWTH_MB, f"the process grew by {memory.growth_mb:.0f} MB"


def test_dcs_run_says_the_output_was_truncated(loud_image: str, tmp_path: Path) -> None:
    spec_file = tmp_path / "cluster.json"
    spec_file.write_text(json.dumps(cluster(loud_image).to_dict()))
    lines = 60_000  # 6 MB: just over the limit
    done = subprocess.run([sys.executable, "-m", "dcs_magic.cli", "run", "--local", "--spec", str(spec_file),
                           "--python-file", "file:/opt/dcs/loud.py", "--parameters", str(lines)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    before, note, after = done.stdout.partition("(output truncated: only its last 5 MB")
    assert note and "State: TERMINATED/SUCCESS (exit code 0)" in before, done.stdout[:2000]
    assert after.rstrip("\n").endswith(f"done: {lines} lines of 100 bytes")
    assert f"{lines - 100:099d}" in after and f"{0:099d}" not in after and "starting" not in after


def test_a_probe_container_keeps_the_last_mib_of_each_stream(loud_image: str) -> None:
    from dcs_magic.adapters.engine import CONTAINER_LOG_TAIL, connect

    lines = 30_000  # 3 MB on stdout, one line on stderr
    name = f"dcs-run-output-probe-{time.time_ns() % 10**9}"
    with connect() as engine:
        run = engine.run_container(loud_image, ["/databricks/python3/bin/python3", "/opt/dcs/loud.py", str(lines)],
                                   name=name, timeout_s=120)
        assert run.exit_code == 0 and run.truncated and run.stderr == "starting\n"
        assert run.stdout.encode() == expected_tail(lines, CONTAINER_LOG_TAIL)
        assert engine.inspect_container(name) is None  # removed
        short = engine.run_container(loud_image, ["/databricks/python3/bin/python3", "/opt/dcs/loud.py", "3"],
                                     name=f"dcs-run-output-probe-{time.time_ns() % 10**9}", timeout_s=120)
        assert not short.truncated and short.stdout.splitlines()[-1] == "done: 3 lines of 100 bytes"
