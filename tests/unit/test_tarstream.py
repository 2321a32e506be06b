"""The streamed build context: the same entries as docker-py's tar, bounded memory, stoppable."""

from __future__ import annotations

import io
import os
import tarfile
import threading
from pathlib import Path

import pytest
from docker.utils import build as build_utils

from dcs_magic.tarstream import TarStream


def _context(root: Path) -> list[str]:
    (root / "app").mkdir()
    (root / "app" / "main.py").write_text("print('hi')\n")
    (root / "run.sh").write_text("#!/bin/sh\necho run\n")
    (root / "run.sh").chmod(0o755)
    (root / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    (root / "Dockerfile").write_text("FROM scratch\nCOPY . /\n")
    os.symlink("run.sh", root / "link.sh")
    return sorted(build_utils.exclude_paths(str(root), []))


def _entries(data: bytes) -> dict[str, tuple]:
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        out = {}
        for member in archive.getmembers():
            content = archive.extractfile(member).read() if member.isfile() else None
            out[member.name] = (member.type, member.mode, member.size, member.linkname, content)
        return out


def test_stream_has_the_same_entries_as_docker_py_tar(tmp_path: Path) -> None:
    files = _context(tmp_path)
    streamed = b"".join(TarStream(tmp_path, files, chunk_size=64 * 1024))
    with build_utils.create_archive(str(tmp_path), files=files) as archive:
        reference = archive.read()
    ours, theirs = _entries(streamed), _entries(reference)
    assert set(ours) == {"app", "app/main.py", "run.sh", "big.bin", "Dockerfile", "link.sh"}
    assert ours == theirs


def test_chunks_are_bounded_and_the_writer_waits_for_the_reader(tmp_path: Path) -> None:
    files = _context(tmp_path)
    stream = TarStream(tmp_path, files, chunk_size=16 * 1024, queue_chunks=2)
    iterator = iter(stream)
    first = next(iterator)
    assert len(first) == 16 * 1024
    # The writer is blocked on the full queue: it has produced at most the queue's worth ahead.
    threading.Event().wait(0.3)
    assert stream.bytes_sent == 16 * 1024
    assert stream.bytes_queued <= 16 * 1024 * (1 + 2)
    sizes = [len(first)] + [len(chunk) for chunk in iterator]
    assert max(sizes) == 16 * 1024
    assert sum(sizes) == stream.bytes_sent > 3 * 1024 * 1024


def test_closing_early_stops_the_writer_thread(tmp_path: Path) -> None:
    files = _context(tmp_path)
    before = {t.ident for t in threading.enumerate()}
    iterator = iter(TarStream(tmp_path, files, chunk_size=4096, queue_chunks=1))
    next(iterator)
    iterator.close()  # what requests does when the upload is aborted
    writers = [t for t in threading.enumerate() if t.name == "dcs-context-tar" and t.ident not in before]
    assert writers == []


def test_a_file_that_vanishes_raises_oserror_naming_it(tmp_path: Path) -> None:
    files = _context(tmp_path)
    (tmp_path / "app" / "main.py").unlink()
    with pytest.raises(OSError, match="main.py"):
        b"".join(TarStream(tmp_path, files))
