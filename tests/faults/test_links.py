"""Fault suite, symlinks (issue 23, items 7 and 13): nothing dcs-magic writes or deletes goes
through a symlink, and the lock hashes a symlink as the link the engine receives.

Engine-free: each row plants a link in a real directory and runs the real code path up to
the point where it would write (a build stops before it connects to the engine).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from dcs_magic.errors import ContextError, DcsError, LockError
from dcs_magic.ops.build import build
from dcs_magic.ops.lock import Lock, context_files, symlink_sha256, update_lock, write_lock


def _elsewhere(tmp: Path) -> Path:
    outside = tmp / "elsewhere"
    outside.mkdir()
    for i in range(25):  # old "logs" a build would prune if it followed the link
        (outside / f"build-2020010{i:02d}.log").write_text("keep me\n")
    return outside


def _context(tmp: Path) -> Path:
    context = tmp / "dcs-build" / "app"
    context.mkdir(parents=True)
    (context / "Dockerfile").write_text("FROM busybox\n")
    return context


def _build_through_dcs_link(tmp: Path, outside: Path) -> Callable[[], object]:
    context = _context(tmp)
    (context / ".dcs").symlink_to(outside)
    return lambda: build(context, tags=["dcs-test-links:1"], name="app")


def _lock_through_flock_link(tmp: Path, outside: Path) -> Callable[[], object]:
    lock = tmp / "nb.dcs.lock.json"
    (tmp / ".nb.dcs.lock.json.flock").symlink_to(outside / "planted")
    return lambda: update_lock(lock, lambda _lock: None)


def _lock_through_dangling_flock_link(tmp: Path, outside: Path) -> Callable[[], object]:
    lock = tmp / "nb.dcs.lock.json"
    (tmp / ".nb.dcs.lock.json.flock").symlink_to(outside / "new-file")
    return lambda: update_lock(lock, lambda _lock: None)


def _lock_file_is_link(tmp: Path, outside: Path) -> Callable[[], object]:
    lock = tmp / "nb.dcs.lock.json"
    (outside / "target.json").write_text("{}\n")
    lock.symlink_to(outside / "target.json")
    return lambda: write_lock(lock, Lock())


ROWS = [
    # (id, setup, error type, words the message holds)
    ("build-log-dir-link", _build_through_dcs_link, ContextError, ["is a symlink", ".dcs"]),
    ("flock-sidecar-link", _lock_through_flock_link, LockError, ["is a symlink", ".flock"]),
    ("flock-sidecar-dangling-link", _lock_through_dangling_flock_link, LockError, ["is a symlink", ".flock"]),
    ("lock-file-link", _lock_file_is_link, LockError, ["is a symlink", "nb.dcs.lock.json"]),
]


@pytest.mark.parametrize(("setup", "error", "words"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_no_write_or_delete_through_a_link(tmp_path: Path, setup: Callable[[Path, Path], Callable[[], object]],
                                           error: type[DcsError], words: list[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/dcs-test-links.sock")  # no engine is reached
    outside = _elsewhere(tmp_path)
    run = setup(tmp_path, outside)
    before = {p.name: p.read_bytes() for p in outside.iterdir()}
    with pytest.raises(error) as caught:
        run()
    for word in words:
        assert word in str(caught.value)
    assert "rm " in (caught.value.hint or "")
    after = {p.name: p.read_bytes() for p in outside.iterdir()}
    assert after == before  # nothing written, created or deleted there


def test_build_log_is_never_opened_through_a_planted_link(tmp_path: Path) -> None:
    from dcs_magic.ops.build import _BuildLog

    outside = _elsewhere(tmp_path)
    log = tmp_path / "build-x.log"
    log.symlink_to(outside / "victim")
    with pytest.raises(ContextError, match="Cannot write the build log"):
        _BuildLog(log)
    assert not (outside / "victim").exists()


# -- item 13: what the lock hashes ----------------------------------------------------------

def test_lock_hashes_a_symlink_as_its_link_text(tmp_path: Path) -> None:
    context = _context(tmp_path)
    (context / "shadow").symlink_to("/etc/shadow")
    (context / "mem").symlink_to("/proc/self/mem")
    (context / "inside").write_text("x\n")
    (context / "alias").symlink_to("inside")
    hashes = context_files(context)
    assert hashes["shadow"] == symlink_sha256(context / "shadow")
    assert hashes["mem"] == symlink_sha256(context / "mem")
    assert hashes["alias"] == symlink_sha256(context / "alias") != hashes["inside"]
    assert all(hashes[k].startswith("symlink:") for k in ("shadow", "mem", "alias"))
    # Another target with the same name is a different link: the lock sees the change.
    (context / "alias").unlink()
    (context / "alias").symlink_to("Dockerfile")
    assert context_files(context)["alias"] != hashes["alias"]


def test_unreadable_context_file_is_a_context_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    context = _context(tmp_path)
    (context / "data.bin").write_text("x\n")
    import dcs_magic.ops.lock as lock_mod

    real_open = open

    def failing_open(path: object, *args: object, **kwargs: object) -> object:
        # A file that lists but fails to read, as /proc/self/mem does (EIO).
        if str(path).endswith("data.bin"):
            return real_open("/proc/self/mem", "rb")
        return real_open(path, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(lock_mod, "open", failing_open, raising=False)
    with pytest.raises(ContextError) as caught:
        context_files(context)
    assert "data.bin" in str(caught.value) and ".dockerignore" in (caught.value.hint or "")
    assert os.path.exists(context / "data.bin")
