"""The streamed build context: the same entries as docker-py's tar, bounded memory, stoppable."""

from __future__ import annotations

import io
import os
import tarfile
import threading
from pathlib import Path

import pytest
from docker.utils import build as build_utils
from docker.utils import fnmatch as docker_fnmatch

from dcs_magic.adapters.tarstream import TarStream


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


# -- byte parity with tarfile, whole-second mtimes ------------------------------------------------


def _reference_tar(root: Path, files: list[str]) -> bytes:
    """What tarfile writes for FILES (stream mode, pax format, as docker-py's archive), with
    the modification times in whole seconds as the docker CLI sends them."""
    out = io.BytesIO()
    with tarfile.open(mode="w|", fileobj=out, format=tarfile.PAX_FORMAT) as archive:
        for name in sorted(files):
            info = archive.gettarinfo(str(root / name), arcname=name)
            info.mtime = os.lstat(root / name).st_mtime_ns // 1_000_000_000  # floor, exactly
            if info.isfile():
                with open(root / name, "rb") as handle:
                    archive.addfile(info, handle)
            else:
                archive.addfile(info)
    return out.getvalue()


def test_stream_is_byte_for_byte_what_tarfile_writes(tmp_path: Path) -> None:
    files = _context(tmp_path)
    # What a plain ustar header cannot hold goes through tarfile's own pax header.
    long_dir = tmp_path / ("d" * 60) / ("e" * 60)
    long_dir.mkdir(parents=True)
    (long_dir / "long-name.txt").write_text("long\n")
    (tmp_path / "caf\u00e9.txt").write_text("unicode\n")
    os.link(tmp_path / "run.sh", tmp_path / "run-hardlink.sh")
    os.mkfifo(tmp_path / "pipe")
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    os.utime(empty, ns=(0, 1_700_000_000_999_999_999))  # mtime rounded down, not up
    files = sorted(build_utils.exclude_paths(str(tmp_path), []))
    assert "run-hardlink.sh" in files and f"{'d' * 60}/{'e' * 60}/long-name.txt" in files
    for chunk_size in (512, 64 * 1024, 1 << 20):
        streamed = b"".join(TarStream(tmp_path, files, chunk_size=chunk_size))
        assert streamed == _reference_tar(tmp_path, files), chunk_size
    entries = _entries(streamed)
    assert entries["run-hardlink.sh"][0] == tarfile.LNKTYPE or entries["run.sh"][0] == tarfile.LNKTYPE
    with tarfile.open(fileobj=io.BytesIO(streamed)) as archive:
        assert archive.getmember("empty.txt").mtime == 1_700_000_000


def test_a_read_failure_is_kept_for_the_engine_to_report(tmp_path: Path) -> None:
    files = _context(tmp_path)
    (tmp_path / "big.bin").unlink()
    stream = TarStream(tmp_path, files)
    with pytest.raises(OSError) as info:
        b"".join(stream)
    assert stream.failure is info.value
    assert info.value.strerror == f"Can not read file in context: {tmp_path / 'big.bin'}: No such file or directory"


# -- the .dockerignore walk: the same set as docker-py's exclude_paths, matched case-sensitively ----


IGNORE_CASES = [
    [],
    ["*.log", "!keep.log", "**/__pycache__", "build/", "docs/**/*.md", "!docs/README.md", "secret*"],
    ["*", "!src", "!Dockerfile"],  # everything out but one directory
    ["src", "!src/keep/**"],  # an excluded directory re-entered for a `!` below it
    ["**/*.PY"],  # case-sensitive, as the docker CLI (docker-py lower-cases): A.PY out, a.py kept
    ["secret*", "A.*"],  # `secret*` keeps Secret.TXT
    ["/build/../src/a.py", "./docs/", "."],  # `..`, `./` and `.` as docker-py normalises them
    ["src/*/deep", "!src/keep/deep/x.txt", "Dockerfile", ".dockerignore"],  # both always kept
    ["[a-c]*.txt", "?.md", "linked"],  # a symlinked directory is an entry, never followed
    [".dcs", ".dcs/**"],
]


@pytest.mark.parametrize("patterns", IGNORE_CASES)
def test_walk_selects_what_docker_py_selects(tmp_path: Path, patterns: list[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from dcs_magic.adapters.engine import context_rules
    from dcs_magic.adapters.tarstream import walk

    for name in ["a.py", "b.txt", "x.log", "keep.log", "Dockerfile", ".dockerignore", "A.PY", "c.md",
                 "pkg/__pycache__/m.pyc", "pkg/m.py", "build/out.bin", "docs/README.md",
                 "docs/guide/intro.md", "secret.env", "sub/secret.txt", "src/a.py", "src/keep/deep/x.txt",
                 "src/other/deep/y.txt", "src/keep/z.py", ".dcs/build-1.log", "empty/.keep"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    os.symlink("src", tmp_path / "linked")
    (tmp_path / "Secret.TXT").write_text("kept")
    # docker-py's matcher with its case folding taken out: the docker CLI's semantics on Linux.
    monkeypatch.setattr(build_utils, "fnmatch", docker_fnmatch.fnmatchcase)
    expected = build_utils.exclude_paths(str(tmp_path), list(patterns), dockerfile="Dockerfile")
    assert walk(tmp_path, context_rules(list(patterns))) == expected
    if "secret*" in patterns:
        assert "Secret.TXT" in expected and "secret.env" not in expected


def test_a_bad_dockerignore_is_a_context_error_saying_what_to_fix(tmp_path: Path) -> None:
    from dcs_magic.adapters.engine import context_paths
    from dcs_magic.errors import ContextError

    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / ".dockerignore").write_text("*.log\n[z-a]*.txt\n")
    with pytest.raises(ContextError, match=r"pattern '\[z-a\]\*.txt' is not valid") as info:
        context_paths(tmp_path)
    assert "[a-z]" in (info.value.hint or "")
    (tmp_path / ".dockerignore").write_bytes(b"*.log\n\xff\xfe\n")
    with pytest.raises(ContextError, match=r"Cannot read .*\.dockerignore") as info:
        context_paths(tmp_path)
    assert "UTF-8" in (info.value.hint or "")


def test_cancelled_ends_the_upload_at_the_next_chunk_and_stops_the_writer(tmp_path: Path) -> None:
    from dcs_magic.adapters.tarstream import UploadCancelled

    files = _context(tmp_path)
    cancel = threading.Event()
    stream = TarStream(tmp_path, files, chunk_size=64 * 1024, queue_chunks=2, cancelled=cancel.is_set)
    iterator = iter(stream)
    next(iterator)
    cancel.set()
    with pytest.raises(UploadCancelled):
        next(iterator)
    assert stream.bytes_sent == 64 * 1024
    assert not [t for t in threading.enumerate() if t.name == "dcs-context-tar"]


def test_the_read_and_copy_path_writes_the_same_archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where os.readv is missing (Windows) contents are read, then copied: same bytes."""
    from dcs_magic.adapters import tarstream

    files = _context(tmp_path)
    fast = b"".join(TarStream(tmp_path, files, chunk_size=64 * 1024))
    monkeypatch.setattr(tarstream, "_readinto", tarstream._read_copy)
    assert b"".join(TarStream(tmp_path, files, chunk_size=64 * 1024)) == fast == _reference_tar(tmp_path, files)


def test_extra_members_are_sent_beside_the_files_with_the_given_metadata(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM x\n")
    (tmp_path / "app.txt").write_text("app\n")
    os.chmod(tmp_path / "Dockerfile", 0o640)
    data = b"FROM x\nLABEL a=\"1\"\n" * 100  # longer than a chunk: sizes and padding follow it
    like = os.stat(tmp_path / "Dockerfile")
    stream = TarStream(tmp_path, ["Dockerfile", "app.txt"], chunk_size=1024,
                       extra={".aside": data, ".dockerignore": b".aside\n"}, extra_like=like)
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        assert tar.getnames() == ["Dockerfile", "app.txt", ".aside", ".dockerignore"]
        member = tar.getmember(".aside")
        assert tar.extractfile(member).read() == data and member.size == len(data)
        assert member.mode == 0o640 and member.mtime == int(like.st_mtime)
        assert tar.extractfile("Dockerfile").read() == b"FROM x\n"  # the user's, as on disk
        assert tar.extractfile(".dockerignore").read() == b".aside\n"


def test_hashes_are_of_the_bytes_streamed(tmp_path: Path) -> None:
    import hashlib

    (tmp_path / "a.txt").write_bytes(b"a" * 5000)
    (tmp_path / "empty").write_bytes(b"")
    os.link(tmp_path / "a.txt", tmp_path / "hard.txt")
    os.symlink("/etc/shadow", tmp_path / "link")
    (tmp_path / "dir").mkdir()
    hashes: dict[str, str] = {}
    body = b"".join(TarStream(tmp_path, ["a.txt", "dir", "empty", "hard.txt", "link"], chunk_size=1024,
                              hashes=hashes))
    assert hashes == {"a.txt": hashlib.sha256(b"a" * 5000).hexdigest(),
                      "empty": hashlib.sha256(b"").hexdigest(),
                      "hard.txt": hashlib.sha256(b"a" * 5000).hexdigest(),
                      "link": "symlink:" + hashlib.sha256(b"/etc/shadow").hexdigest()}
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        assert tar.extractfile("a.txt").read() == b"a" * 5000


# -- many small files: walked as sent, memory flat in the number of files (issue 25.5) ------------


def test_the_walk_streams_in_the_docker_cli_order(tmp_path: Path) -> None:
    """Depth first, each directory's names in byte order, a directory before what it holds
    (Go's filepath.Walk, which the docker CLI's tar follows): `a`, `a/b`, `a.txt`, not the
    sorted full paths (`a.txt` < `a/b`). An excluded directory a `!` re-enters is not sent."""
    from dcs_magic.adapters.engine import _context_tar, context_paths, context_rules
    from dcs_magic.adapters.tarstream import iter_walk

    for name in ["a/b", "a.txt", "Dockerfile", "z/y/x", "z/w", "B", "skip/keep.txt", "skip/out.txt"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    rules = context_rules(["skip", "!skip/keep.txt"])
    order = list(iter_walk(tmp_path, rules))
    assert order == ["B", "Dockerfile", "a", "a/b", "a.txt", "skip/keep.txt", "z", "z/w", "z/y", "z/y/x"]
    (tmp_path / ".dockerignore").write_text("skip\n!skip/keep.txt\n")
    with tarfile.open(fileobj=io.BytesIO(b"".join(_context_tar(tmp_path, "Dockerfile")))) as tar:
        assert tar.getnames() == [".dockerignore", "B", "Dockerfile", "a", "a/b", "a.txt", "skip/keep.txt",
                                  "z", "z/w", "z/y", "z/y/x"]
    assert set(order) | {".dockerignore"} == context_paths(tmp_path)


def _tar_peak(root: Path, files: int) -> int:
    """tracemalloc's peak while walking and tarring ROOT filled with FILES small files (100 a
    directory), with no engine: what the build does per file, minus the upload."""
    import tracemalloc

    from dcs_magic.adapters.engine import _context_tar

    for i in range(files):
        directory = root / f"d{i // 100:03d}"
        if i % 100 == 0:
            directory.mkdir(parents=True)
        (directory / f"file-{i:06d}.txt").write_bytes(b"x" * (i % 50))
    (root / "Dockerfile").write_text("FROM scratch\n")
    stream = _context_tar(root, "Dockerfile")
    stream.chunk_size, stream.queue_chunks = 64 * 1024, 2
    tracemalloc.start()
    try:
        sent = sum(len(chunk) for chunk in stream)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert sent > files * 512
    return peak


def test_memory_does_not_grow_with_the_number_of_files(tmp_path: Path) -> None:
    """4x the files, the same peak: no set, list or dict of every path or inode is held.
    (Holding them all cost ~300 bytes a file: ~0.45 MB more for the larger context here.)"""
    small = _tar_peak(tmp_path / "small", 500)
    large = _tar_peak(tmp_path / "large", 2_000)
    assert large - small < 100_000, (small, large)


def test_a_directory_that_cannot_be_listed_while_streaming_fails_the_stream_naming_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The walk runs as the tar is written: an unreadable directory is the stream's failure
    (the build reports it as a ContextError), named, as a file that cannot be read is."""
    from dcs_magic.adapters.engine import _context_tar

    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "sub").mkdir()
    real = os.scandir

    def scandir(path: str) -> object:
        if str(path).endswith("sub"):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    stream = _context_tar(tmp_path, "Dockerfile")
    with pytest.raises(OSError) as info:
        b"".join(stream)
    assert stream.failure is info.value
    assert info.value.strerror == f"Can not read directory in context: {tmp_path / 'sub'}: Permission denied"


@pytest.mark.parametrize(("ignore", "left_out"), [
    ("Dockerfile\n", True), ("*\n", True), ("*\n!Dockerfile\n", False),
    ("dockerfile\n", False),  # case-sensitive, as the CLI matches on Linux
    ("sub/Dockerfile\n", False), ("", False)])
def test_dockerfile_left_out_matches_the_top_level_name_as_the_cli_does(
        tmp_path: Path, ignore: str, left_out: bool) -> None:
    from dcs_magic.adapters.engine import dockerfile_left_out

    (tmp_path / "Dockerfile").write_text("FROM a\n")
    if ignore:
        (tmp_path / ".dockerignore").write_text(ignore)
    assert dockerfile_left_out(tmp_path) is left_out
