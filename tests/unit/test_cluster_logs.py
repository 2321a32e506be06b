"""Cluster log delivery's pure parts: the store's listing, cluster_log_conf's rules, the names
and shapes of delivered files (preflight/store.py, model/spec.py, preflight/logs.py)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from dcs_magic.errors import SpecError
from dcs_magic.model.spec import ClusterSpec
from dcs_magic.preflight.logs import (
    MAX_LOG_BYTES,
    deliver,
    exception_line,
    init_log_name,
    log4j_line,
    log_destination,
    tail_note,
)
from dcs_magic.preflight.server import _byte_range
from dcs_magic.preflight.store import Cluster, Store


def test_children_are_immediate_and_directories_are_implied() -> None:
    store = Store()
    store.put_file("/Volumes/c/s/v/logs/a/driver/stdout", b"12345", overwrite=True)
    store.put_file("/Volumes/c/s/v/logs/a/driver/stderr", b"", overwrite=True)
    store.put_file("/Volumes/c/s/v/logs/a/init_scripts/n/x.sh.stdout.log", b"x", overwrite=True)
    store.put_file("/Volumes/c/s/v/logs/ab", b"not under a/", overwrite=True)
    store.put_file("dbfs:/cluster-logs/a/driver/stdout", b"d", overwrite=True)

    children = store.children("/Volumes/c/s/v/logs/a/")
    assert children is not None
    assert [(e.key, e.name, e.is_dir) for e in children] == [
        ("/Volumes/c/s/v/logs/a/driver", "driver", True), ("/Volumes/c/s/v/logs/a/init_scripts", "init_scripts", True)]
    assert store.children("/Volumes/c/s/v/logs/a") == children
    files = store.children("/Volumes/c/s/v/logs/a/driver") or []
    assert [(e.name, e.size, e.is_dir) for e in files] == [("stderr", 0, False), ("stdout", 5, False)]
    assert store.children("/Volumes/c/s/v/logs/nothing") is None
    assert store.children("/Volumes/c/s/v/logs/a/driver/stdout") is None  # a file has no children
    assert [e.key for e in store.children("dbfs:/") or []] == ["dbfs:/cluster-logs"]

    stat = store.stat("/Volumes/c/s/v/logs/a/driver/stdout")
    assert stat is not None and (stat.is_dir, stat.size) == (False, 5) and stat.mtime_ms > 0
    directory = store.stat("/Volumes/c/s/v/logs/a/")
    assert directory is not None and directory.is_dir and directory.key == "/Volumes/c/s/v/logs/a"
    assert store.stat("/Volumes/c/s/v/logs/zzz") is None


def test_put_file_keeps_the_modification_time_of_each_version() -> None:
    store = Store()
    assert store.put_file("dbfs:/x", b"1", overwrite=False)
    assert not store.put_file("dbfs:/x", b"2", overwrite=False)
    assert store.file("dbfs:/x") == b"1"
    assert store.put_file("dbfs:/x", b"22", overwrite=True)
    entry = store.stat("dbfs:/x")
    assert store.file("dbfs:/x") == b"22" and entry is not None and entry.size == 2


@pytest.mark.parametrize("conf, words", [
    ({"volumes": {"destination": "/Volumes/main/default"}}, "must start with /Volumes/<catalog>/<schema>/<volume>/"),
    ({"volumes": {"destination": "dbfs:/logs"}}, "is not inside a volume"),
    ({"volumes": {"destination": ["/Volumes/c/s/v"]}}, "volumes.destination must be a non-empty string"),
    ({"dbfs": {"destination": ""}}, "dbfs.destination must be a non-empty string"),
    ({"dbfs": {"destination": "/Volumes/c/s/v/x"}}, "is not a DBFS path"),
    ({"s3": {"destination": "bucket/logs"}}, "is not an S3 URI"),
    ({"dbfs": {"destination": "dbfs:/a"}, "s3": {"destination": "s3://b/a"}}, "exactly one destination"),
    ({"volume": {"destination": "/Volumes/c/s/v"}}, "exactly one destination, dbfs, s3 or volumes (it has: volume)"),
    ({}, "(it has: none)"),
    ("dbfs:/logs", "must be an object"),
])
def test_bad_cluster_log_conf(conf: Any, words: str) -> None:
    spec = ClusterSpec(spark_version="15.4.x-scala2.12", num_workers=0, cluster_log_conf=conf)
    with pytest.raises(SpecError) as info:
        spec.validate()
    assert info.value.field == "cluster_log_conf" and words in str(info.value)


@pytest.mark.parametrize("conf, where", [
    ({"volumes": {"destination": "/Volumes/c/s/v"}}, ("volumes", "/Volumes/c/s/v")),
    ({"volumes": {"destination": " /Volumes/c/s/v/logs/ "}}, ("volumes", "/Volumes/c/s/v/logs")),
    ({"dbfs": {"destination": "dbfs:/cluster-logs/"}}, ("dbfs", "dbfs:/cluster-logs")),
    ({"dbfs": {"destination": "/cluster-logs"}}, ("dbfs", "dbfs:/cluster-logs")),
    ({"s3": {"destination": "s3://bucket/logs", "region": "us-west-2"}}, ("s3", "s3://bucket/logs")),
])
def test_good_cluster_log_conf(conf: dict[str, Any], where: tuple[str, str]) -> None:
    ClusterSpec(spark_version="15.4.x-scala2.12", num_workers=0, cluster_log_conf=conf).validate()
    assert log_destination({"cluster_log_conf": conf}) == where
    assert log_destination({}) is None


def test_delivered_names_and_lines() -> None:
    when = 1796623800.0  # 2026-12-07 06:10:00 UTC
    assert init_log_name(1, "/Volumes/c/s/v/init/install.sh", when) == "20261207_061000_00_install.sh"
    assert init_log_name(2, "dbfs:/scripts/setup env", when) == "20261207_061000_01_setup_env.sh"
    assert log4j_line("INFO", "Pulled x\n  (digest)", when=when) == "26/12/07 06:10:00 INFO DriverDaemon: Pulled x (digest)"
    assert exception_line("CONTAINER_LAUNCH_FAILURE", "java: not found") == \
        "ContainerLaunchException: CONTAINER_LAUNCH_FAILURE: java: not found"
    assert exception_line("IMAGE_PULL_PERMISSION_DENIED", "401").startswith("ImagePullException: ")
    assert exception_line("SOMETHING_NEW", "x") == "LaunchFailureException: SOMETHING_NEW: x"


def test_tail_note_keeps_the_tail_within_the_limit() -> None:
    assert tail_note(3, b"abc") == b"abc"
    data = bytes(range(256)) * (MAX_LOG_BYTES // 256 + 10)
    cut = tail_note(len(data), data[-MAX_LOG_BYTES:])
    assert len(cut) <= MAX_LOG_BYTES
    note, _, kept = cut.partition(b"\n")
    match = re.fullmatch(rb"\(truncated: first (\d+) bytes dropped\)", note)
    assert match and int(match[1]) + len(kept) == len(data) and data.endswith(kept)
    assert tail_note(200, b"x" * 10, limit=100) == b"(truncated: first 190 bytes dropped)\n" + b"x" * 10


@pytest.mark.parametrize("header, answer", [
    ("bytes=10-", (10, 99)), ("bytes=10-19", (10, 19)), ("bytes=-5", (95, 99)), ("bytes=90-500", (90, 99)),
    ("bytes=-500", (0, 99)), ("", None), ("items=1-2", None), ("bytes=1-2,5-6", None), ("bytes=x-", None),
])
def test_byte_ranges(header: str, answer: tuple[int, int] | None) -> None:
    assert _byte_range(header, 100) == answer


def test_deliver_without_an_engine_writes_the_launch_log_and_the_status() -> None:
    store = Store()
    spec = {"docker_image": {"url": "r/x:1"}, "cluster_log_conf": {"dbfs": {"destination": "dbfs:/logs/"}}}
    cluster = store.add(Cluster("0101-000000-abcd0123", spec))
    cluster.launch_log.extend(["26/12/07 06:10:00 INFO DriverDaemon: one", "26/12/07 06:10:01 ERROR DriverDaemon: two"])
    assert "cluster_log_status" not in cluster.info()  # not attempted yet
    deliver(store, cluster, None)
    assert store.file("dbfs:/logs/0101-000000-abcd0123/driver/log4j-active.log") == (
        b"26/12/07 06:10:00 INFO DriverDaemon: one\n26/12/07 06:10:01 ERROR DriverDaemon: two\n")
    status = cluster.info()["cluster_log_status"]
    assert set(status) == {"last_attempted"} and status["last_attempted"] > 0

    s3 = store.add(Cluster("0101-000000-abcd0124", {**spec, "cluster_log_conf": {"s3": {"destination": "s3://b/l"}}}))
    deliver(store, s3, None)
    assert "Cluster logs are not delivered to s3://b/l" in s3.info()["cluster_log_status"]["last_exception"]
    assert store.children("dbfs:/logs") is not None and len(store.children("dbfs:/logs") or []) == 1

    plain = store.add(Cluster("0101-000000-abcd0125", {"docker_image": {"url": "r/x:1"}}))
    deliver(store, plain, None)
    assert plain.log_status is None and "cluster_log_status" not in plain.info()
