"""Fault suite: a lock is trusted for a launch only when the registry agrees (issue 23, item 6).

The entry's seal has no key: anyone with dcs-magic can `seal()` a forged digest. So
`dcs launch --lock`, `dcs export --lock` and `dcs build --locked` ask the registry (HEAD of the recorded
reference's manifest) for the recorded digest first. Real parts: the `docker-registry`
process of the session fixture (no Docker engine: the image is uploaded over the registry's
HTTP API), a closed port for an unreachable registry, the `dcs` CLI.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook
from standins import refusing_engine
from support.registry import push_manifest

from dcs_magic.cli.commands import main
from dcs_magic.model.imageref import parse_reference
from dcs_magic.ops.lock import ImageLock, Lock, lock_path, write_lock
from dcs_magic.ops.notebook import read_notebook
from dcs_magic.ops.recipe import _lock_entry, render_one
from dcs_magic.settings import PLATFORM

SPEC = {"cluster_name": "dcs-test-lockreg", "spark_version": "15.4.x-scala2.12", "node_type_id": "i3.xlarge",
        "num_workers": 0}


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _write_lock(path: Path, reference: str, digest: str) -> Path:
    entry = ImageLock(dockerfile_sha256="0" * 64)
    ref = parse_reference(f"{reference}@{digest}")
    entry.record_push(ref)
    return write_lock(path, Lock({"app": entry.seal()}))  # a forger can seal too


@pytest.fixture(scope="module")
def pushed(registry: Any) -> tuple[str, str, str]:
    """(reference, its digest, another digest the same repository holds)."""
    repo = "dcs-test-lockreg/app"
    other = push_manifest(registry, repo, "old", "old")
    digest = push_manifest(registry, repo, "1", "current")
    return f"{registry.host}/{repo}:1", digest, other


ROWS = [
    # (id, which reference/digest the lock records, extra options, exit status, words in stderr)
    ("true", "true", [], 0, []),
    ("forged-digest", "forged", [], 1, ["but the registry serves", "forged"]),
    ("other-image-of-repo", "other", [], 1, ["but the registry serves"]),
    ("tag-gone", "gone", [], 1, ["answered 404", "--no-registry-check"]),
    ("unreachable", "unreachable", [], 1, ["is unreachable", "--no-registry-check"]),
    ("unreachable-way-out", "unreachable", ["--no-registry-check"], 0, []),
]


def _recorded(which: str, pushed: tuple[str, str, str]) -> tuple[str, str]:
    reference, digest, other = pushed
    return {
        "true": (reference, digest),
        "forged": (reference, "sha256:" + "f" * 64),
        "other": (reference, other),
        "gone": (reference.replace(":1", ":never-pushed"), digest),
        "unreachable": (f"127.0.0.1:{_closed_port()}/dcs-test-lockreg/app:1", digest),
    }[which]


@pytest.mark.parametrize("command", [["launch", "--print"], ["export", "bundle"]], ids=["launch", "export"])
@pytest.mark.parametrize(("which", "options", "status", "words"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_launch_lock_asks_the_registry(tmp_path: Path, pushed: tuple[str, str, str], which: str,
                                       options: list[str], status: int, words: list[str], command: list[str],
                                       capsys: pytest.CaptureFixture[str]) -> None:
    """`dcs launch --lock` and `dcs export --lock` (a launch later, from CI) alike."""
    reference, digest = _recorded(which, pushed)
    lock_file = _write_lock(tmp_path / "nb.dcs.lock.json", reference, digest)
    spec = tmp_path / "cluster.json"
    spec.write_text(json.dumps(SPEC))
    assert main([*command, "--spec", str(spec), "--lock", str(lock_file), *options]) == status
    out, err = capsys.readouterr()
    for word in words:
        assert word in err
    pinned = parse_reference(f"{reference}@{digest}").pinned()
    if status == 0 and command[0] == "launch":
        assert json.loads(out)["docker_image"]["url"] == pinned
    elif status == 0:
        assert pinned in out
    else:
        assert out == ""  # nothing printed, nothing sent


def test_locked_build_asks_the_registry(tmp_path: Path, pushed: tuple[str, str, str],
                                        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    reference, _digest, other = pushed
    sock = tmp_path / "engine.sock"
    nb_path = tmp_path / "nb.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell("%%dockerfile app\nFROM busybox@sha256:" + "cd" * 32 + "\n")]),
                   nb_path)
    with refusing_engine(sock):
        monkeypatch.setenv("DOCKER_HOST", f"unix://{sock}")
        entry = _lock_entry(render_one(read_notebook(nb_path), "app"), {}, PLATFORM, None)
        entry.record_push(parse_reference(f"{reference}@{other}"))  # the tag serves another digest now
        write_lock(lock_path(nb_path), Lock({"app": entry.seal()}))
        build = ["build", str(nb_path), "-t", "127.0.0.1:5999/dcs-test-lockreg/app:2", "--locked", "--progress",
                 "none"]
        assert main(build) == 1
        err = capsys.readouterr().err
        assert "but the registry serves" in err and "refused by the test engine" not in err
        assert main([*build, "--no-registry-check"]) == 1  # past the lock: the stand-in engine refuses the build
        assert "refused by the test engine" in capsys.readouterr().err


def test_a_registry_that_wants_credentials_nobody_gave(tmp_path: Path, auth_registry: Any,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """A spec whose password is a {{secrets/...}} reference, no --username, no docker login: the
    registry cannot be asked, which is said, and the recorded digest is used; credentials that
    are given and wrong are a LockError."""
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "no-docker-login"))
    reference = f"{auth_registry.host}/dcs-test-lockreg/private:1"
    digest = push_manifest(auth_registry, "dcs-test-lockreg/private", "1", "private")
    lock_file = _write_lock(tmp_path / "nb.dcs.lock.json", reference, digest)
    spec = tmp_path / "cluster.json"
    spec.write_text(json.dumps({**SPEC, "docker_image": {"url": reference, "basic_auth": {
        "username": auth_registry.username, "password": "{{secrets/ci/registry}}"}}}))
    assert main(["launch", "--spec", str(spec), "--lock", str(lock_file), "--print"]) == 0
    out, err = capsys.readouterr()
    assert "wants credentials" in err and "used unchecked" in err and "--username and --password-env" in err
    assert json.loads(out)["docker_image"]["url"] == parse_reference(f"{reference}@{digest}").pinned()
    monkeypatch.setenv("DCS_TEST_WRONG_PASSWORD", "not-the-password")
    assert main(["launch", "--spec", str(spec), "--lock", str(lock_file), "--print", "--username",
                 auth_registry.username, "--password-env", "DCS_TEST_WRONG_PASSWORD"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "answered 401" in err
