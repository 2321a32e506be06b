"""A build context as a stream of tar chunks, written by a thread while the upload runs.

docker-py's `utils.build.tar` writes the whole context into a temporary file before the
request starts, so a 500 MB context is read twice and the upload waits for the tarring. The
docker CLI streams instead; so does this: a thread writes the tar into a bounded queue of
fixed-size chunks, and the request body iterates the queue (requests sends an iterator with
`Transfer-Encoding: chunked`). Tarring and uploading overlap, and memory stays flat in the
context size: at most `queue_chunks` chunks of `chunk_size` bytes are held.

The per-file cost decides the speed on a context of many small files (the engine and this
process share the machine's cores), so the writer does not go through `tarfile.TarFile`:
it lstat()s each entry once, packs a ustar header itself (byte for byte what `tarfile`
writes; `TarInfo.tobuf` is the fallback for anything a plain ustar header cannot hold) and
reads file contents straight into the outgoing chunk. Modification times are whole seconds,
as the docker CLI sends them (docker-py's fractional seconds cost every file an extra pax
header; the engine's cache keys do not include mtimes either way).

Which paths go in is `iter_walk`'s business: the `.dockerignore` semantics of docker-py's
`PatternMatcher` (the engine adapter compiles the rules from docker-py's own pattern
parser), with one scandir per directory and the parent-directory matches computed once per
directory instead of once per file. The build hands the walk itself to the writer
(`ordered=True`): paths are produced as they are archived, in the docker CLI's order, so
nothing grows with the number of files (a 100,000-file context once cost a set of every path,
its sorted copy and an inode entry per file: ~30 MB). Only files with more than one link
are remembered for hard links, as the docker CLI does.
"""

from __future__ import annotations

import hashlib
import os
import queue
import re
import stat
import struct
import tarfile
import threading
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:  # owner names, as tarfile writes them; none on Windows
    import grp
    import pwd
except ImportError:  # pragma: no cover - Windows
    grp = pwd = None  # type: ignore[assignment]

__all__ = ["CHUNK_SIZE", "Rule", "TarStream", "UploadCancelled", "iter_walk", "walk"]

CHUNK_SIZE = 1 << 20  # 1 MiB: few syscalls and queue handoffs per MB, memory still flat
QUEUE_CHUNKS = 4  # the writer outruns the engine by far (it waits on the upload, not the reverse)
_DONE = object()
_BLOCK = tarfile.BLOCKSIZE  # 512
_RECORD = tarfile.RECORDSIZE  # 10240: tarfile pads the archive to whole records; so do we
# One ustar header: name, mode, uid, gid, size, mtime, checksum, type, linkname, magic+version,
# uname, gname, devmajor, devminor, prefix, and 12 bytes of padding (tarfile._create_header).
_USTAR = struct.Struct("100s8s8s8s12s12s8sc100s8s32s32s8s8s155s12x")
_MAX_ID = 8 ** 7  # uid/gid: 7 octal digits
_MAX_BIG = 8 ** 11  # size/mtime: 11 octal digits


@dataclass(frozen=True)
class Rule:
    """One `.dockerignore` pattern, compiled: `regex` matches the relative path, case-sensitively
    as the docker CLI and the engine do on Linux (docker-py's fnmatch lower-cases both sides:
    `secret*` would leave out `Secret.TXT`, which `docker build` sends), `exclude` is False for a `!` pattern,
    `depth` counts the pattern's path components, `text` is the cleaned pattern."""

    regex: re.Pattern[str]
    exclude: bool
    depth: int
    text: str


def walk(root: str | os.PathLike[str], rules: Sequence[Rule]) -> set[str]:
    """Relative paths (files and directories) under ROOT that RULES do not exclude: the same
    set as docker-py's `PatternMatcher(patterns).walk(root)` for the rules it compiles, except
    that names are matched case-sensitively (as the docker CLI does)."""
    return set(iter_walk(root, rules, explain=False))


def iter_walk(root: str | os.PathLike[str], rules: Sequence[Rule], *, explain: bool = True) -> Iterator[str]:
    """`walk`'s paths one by one, in the docker CLI's order (its `filepath.Walk`: depth first,
    the names of each directory in byte order, a directory before what it holds), without
    holding them all: memory is the listing of the directories being walked, not the number
    of files. An unreadable directory raises OSError: scandir's own with EXPLAIN false, else one
    whose text names it (what the upload reports when the walk fails as it is sent)."""
    root = os.fspath(root)
    rules = tuple(rules)
    reincludes = tuple(rule.text for rule in rules if not rule.exclude)
    no_hits = (False,) * len(rules)
    # One frame per directory being walked: (its listing, next index, relative path, parent hits).
    stack: list[tuple[list[tuple[str, bool]], list[int], str, tuple[bool, ...]]] = []

    def enter(directory: str, rel: str) -> None:
        try:
            with os.scandir(directory) as entries:
                listing = sorted((entry.name, entry.is_dir(follow_symlinks=False)) for entry in entries)
        except OSError as exc:
            if not explain:
                raise
            raise OSError(exc.errno, f"Can not read directory in context: {directory}: "
                                     f"{exc.strerror or exc}") from exc
        if rel:  # the parent-directory half of PatternMatcher.matches: once per directory
            parents = rel.split("/")
            hits = tuple(rule.depth <= len(parents) and rule.regex.match("/".join(parents[:rule.depth])) is not None
                         for rule in rules)
        else:
            hits = no_hits
        stack.append((listing, [0], rel, hits))

    enter(root, "")
    while stack:
        listing, index, rel, hits = stack[-1]
        i = index[0]
        if i == len(listing):
            stack.pop()
            continue
        index[0] = i + 1
        name, is_dir = listing[i]
        path = f"{rel}/{name}" if rel else name
        matched = False
        for rule, hit in zip(rules, hits):
            if hit or rule.regex.match(path) is not None:
                matched = rule.exclude
        if not matched:
            yield path
        if not is_dir:  # symlinks to directories are entries, not followed
            continue
        # An excluded directory is still entered when a `!` pattern may re-include
        # something below it (docker-py's prefix test, kept as is).
        if matched and not any(text.startswith(path) for text in reincludes):
            continue
        enter(os.path.join(root, path), path)


class UploadCancelled(Exception):
    """Raised from the iteration when `cancelled()` says so: the upload stops mid-context."""


class _Stopped(Exception):
    """The consumer closed the stream; the writer thread ends quietly."""


class _Chunks:
    """The outgoing chunk being filled, handed to the queue when full.

    Each chunk is a fresh zeroed bytearray that is never touched again once queued, so
    it goes to the upload without a copy, and the zero padding after headers and file
    contents needs no writes.
    """

    def __init__(self, chunks: queue.Queue[object], chunk_size: int, stopped: threading.Event,
                 owner: TarStream) -> None:
        self._owner = owner
        self._chunks = chunks
        self._size = chunk_size
        self._stopped = stopped
        self.buffer = bytearray(chunk_size)
        self.view = memoryview(self.buffer)
        self.pos = 0
        self.offset = 0  # bytes of archive written so far

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = min(len(view), self._size - self.pos)
            self.view[self.pos:self.pos + n] = view[:n]
            view = view[n:]
            self.advance(n)

    def skip(self, n: int) -> None:
        """Zero bytes (padding): already zero in a fresh chunk."""
        while n:
            step = min(n, self._size - self.pos)
            self.advance(step)
            n -= step

    def room(self) -> memoryview:
        """Where the next bytes go (at least one byte; call `advance` after filling it)."""
        return self.view[self.pos:]

    def advance(self, n: int) -> None:
        self.pos += n
        self.offset += n
        if self.pos == self._size:
            self._put(self.buffer)
            self.buffer = bytearray(self._size)
            self.view = memoryview(self.buffer)
            self.pos = 0

    def flush_rest(self) -> None:
        if self.pos:
            self._put(self.buffer[:self.pos])
            self.pos = 0

    def _put(self, item: bytearray) -> None:
        self.view.release()  # the buffer may be handed on; our view must not pin it
        # Wake up now and then so a consumer that went away (cancelled build) stops us.
        while not self._stopped.is_set():
            try:
                self._chunks.put(item, timeout=0.1)
                self._owner.bytes_queued += len(item)
                return
            except queue.Full:
                continue
        raise _Stopped


class TarStream:
    """Iterate to get the tar of `files` (paths relative to `root`) in chunks.

    Iterating starts the writer thread; closing the iterator early (a cancelled build, an
    engine error) stops it. An error while reading the context (a file vanished, no
    permission) is raised from the iteration as OSError naming the file, and kept in
    `failure` (the upload may report it only as a broken connection). `cancelled`, asked
    before each chunk is handed on, ends the iteration with UploadCancelled: a build
    cancelled while its context uploads stops within a chunk, not after the whole context.
    `ordered=True`: FILES is sent in its own order and read lazily by the writer (an iterator
    such as `iter_walk`'s: memory stays flat in the number of files; an OSError it raises is a
    failure like a file that cannot be read); otherwise FILES is sorted first.
    `extra` maps member names that are not on disk to the bytes sent as regular files after
    `files` (with the mode, owner and mtime of `extra_like`, a stat result; the build sends
    its own Dockerfile this way, beside the user's). With `hashes` (a dict), the sha256 of
    every regular file's bytes *as streamed* is put there by name (a symlink:
    `symlink:<sha256 of the link text>`; a hard link: its file's), so what is recorded is
    what the engine received even when a file changes while the context is read.
    """

    def __init__(self, root: str | os.PathLike[str], files: Iterable[str], *,
                 chunk_size: int = CHUNK_SIZE, queue_chunks: int = QUEUE_CHUNKS,
                 cancelled: Callable[[], bool] | None = None,
                 extra: Mapping[str, bytes] | None = None, extra_like: os.stat_result | None = None,
                 hashes: dict[str, str] | None = None, ordered: bool = False) -> None:
        if chunk_size % _BLOCK:
            raise ValueError(f"chunk_size must be a multiple of {_BLOCK}")
        self.root = Path(root)
        # `ordered`: FILES is already in the order to send (e.g. `iter_walk`'s generator) and is
        # consumed as the tar is written, never held whole; otherwise it is sorted here.
        self.files: Iterable[str] = files if ordered else sorted(files)
        self.chunk_size = chunk_size
        self.queue_chunks = queue_chunks
        self.bytes_sent = 0  # handed to the consumer
        self.bytes_queued = 0  # produced by the writer (at most queue_chunks ahead of bytes_sent)
        self.failure: OSError | None = None
        self._cancelled = cancelled
        self._extra = dict(extra or {})
        if self._extra and extra_like is None:
            raise ValueError("extra members need extra_like (a stat result for their metadata)")
        self._extra_like = extra_like
        self.hashes = hashes
        self._inodes: dict[tuple[int, int], str] = {}  # hard links: the first name archived
        self._unames: dict[int, str] = {}
        self._gnames: dict[int, str] = {}

    def __iter__(self) -> Generator[bytearray, None, None]:
        chunks: queue.Queue[object] = queue.Queue(maxsize=self.queue_chunks)
        stopped = threading.Event()
        failure: list[BaseException] = []
        writer = threading.Thread(target=self._write, args=(chunks, stopped, failure),
                                  name="dcs-context-tar", daemon=True)
        writer.start()
        try:
            while True:
                item = chunks.get()
                if item is _DONE:
                    break
                assert isinstance(item, bytearray)
                if self._cancelled is not None and self._cancelled():
                    raise UploadCancelled("build context upload cancelled")
                self.bytes_sent += len(item)
                yield item  # a bytearray: bytes-like, and no copy of the chunk
            if failure:
                raise failure[0]
        finally:
            stopped.set()
            writer.join(timeout=5)

    def _write(self, chunks: queue.Queue[object], stopped: threading.Event,
               failure: list[BaseException]) -> None:
        out = _Chunks(chunks, self.chunk_size, stopped, self)
        self._inodes.clear()
        try:
            root = os.path.join(os.fspath(self.root), "")  # names are appended to it
            for name in self.files:
                if stopped.is_set():
                    return
                self._add(out, root, name)
            for name, data in self._extra.items():
                assert self._extra_like is not None
                out.write(self._header(name, self._extra_like, tarfile.REGTYPE, len(data), ""))
                out.write(data)
                out.skip(-len(data) % _BLOCK)
            out.skip(2 * _BLOCK)  # end of archive: two zero blocks, then pad to a whole record
            out.skip(-out.offset % _RECORD)
            out.flush_rest()
        except _Stopped:
            return
        except OSError as exc:
            self.failure = exc
            failure.append(exc)
        except BaseException as exc:  # noqa: BLE001 - handed to the consuming thread
            failure.append(exc)
        finally:
            if not stopped.is_set():
                try:
                    chunks.put(_DONE, timeout=5)
                except queue.Full:
                    pass

    def _add(self, out: _Chunks, root: str, name: str) -> None:
        if os.sep != "/":
            name = name.replace(os.sep, "/")
        name = name.lstrip("/")
        full = root + name
        try:
            st = os.lstat(full)
        except OSError as exc:
            raise OSError(exc.errno, f"Can not read file in context: {full}: {exc.strerror or exc}") from exc
        mode = st.st_mode
        size = 0
        linkname = ""
        if stat.S_ISREG(mode):
            first = None
            if st.st_nlink > 1:  # only a file with other names can be linked to (the CLI's rule too)
                inode = (st.st_ino, st.st_dev)
                first = self._inodes.get(inode)
                if first is None and st.st_ino:
                    self._inodes[inode] = name
            if first is not None and first != name:  # a hard link to a file already archived
                kind, linkname = tarfile.LNKTYPE, first
                if self.hashes is not None and first in self.hashes:
                    self.hashes[name] = self.hashes[first]
            else:
                kind, size = tarfile.REGTYPE, st.st_size
        elif stat.S_ISDIR(mode):
            kind = tarfile.DIRTYPE
        elif stat.S_ISLNK(mode):
            kind, linkname = tarfile.SYMTYPE, os.readlink(full)
            if self.hashes is not None:
                self.hashes[name] = "symlink:" + hashlib.sha256(os.fsencode(linkname)).hexdigest()
        elif stat.S_ISFIFO(mode):
            kind = tarfile.FIFOTYPE
        elif stat.S_ISCHR(mode):
            kind = tarfile.CHRTYPE
        elif stat.S_ISBLK(mode):
            kind = tarfile.BLKTYPE
        else:  # a socket: nothing to send (as docker-py does)
            return
        out.write(self._header(name, st, kind, size, linkname))
        if kind == tarfile.REGTYPE:
            digest = hashlib.sha256() if self.hashes is not None else None
            if size:
                self._copy(out, full, size, digest)
            if digest is not None and self.hashes is not None:
                self.hashes[name] = digest.hexdigest()

    def _header(self, name: str, st: os.stat_result, kind: bytes, size: int, linkname: str) -> bytes:
        """The entry's header: one ustar block when it fits, else tarfile's pax header."""
        if kind == tarfile.DIRTYPE and not name.endswith("/"):
            name += "/"
        uname = self._uname(st.st_uid)
        gname = self._gname(st.st_gid)
        mtime = st.st_mtime_ns // 1_000_000_000
        if (kind in _PLAIN and 0 <= st.st_uid < _MAX_ID and 0 <= st.st_gid < _MAX_ID
                and size < _MAX_BIG and 0 <= mtime < _MAX_BIG):
            try:
                fields = (name.encode("ascii"), linkname.encode("ascii"), uname.encode("ascii"),
                          gname.encode("ascii"))
            except UnicodeEncodeError:
                fields = None
            if fields and len(fields[0]) <= 100 and len(fields[1]) <= 100 \
                    and len(fields[2]) <= 32 and len(fields[3]) <= 32:
                header = bytearray(_USTAR.pack(
                    fields[0], b"%07o\0" % (st.st_mode & 0o7777), b"%07o\0" % st.st_uid,
                    b"%07o\0" % st.st_gid, b"%011o\0" % size, b"%011o\0" % mtime, b" " * 8, kind,
                    fields[1], tarfile.POSIX_MAGIC, fields[2], fields[3], b"", b"", b""))
                # The checksum counts its own field as spaces: the plain byte sum.
                header[148:155] = b"%06o\0" % sum(header)
                return bytes(header)
        info = tarfile.TarInfo(name)
        info.mode, info.uid, info.gid = st.st_mode, st.st_uid, st.st_gid
        info.size, info.mtime, info.type, info.linkname = size, mtime, kind, linkname
        info.uname, info.gname = uname, gname
        if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")

    def _copy(self, out: _Chunks, full: str, size: int, digest: Any = None) -> None:
        """SIZE bytes of FULL read straight into the outgoing chunks, then block padding;
        DIGEST (a hashlib object), when given, is updated with the bytes as they are sent."""
        try:
            fd = os.open(full, _OPEN_FLAGS)
        except OSError as exc:
            raise OSError(exc.errno, f"Can not read file in context: {full}: {exc.strerror or exc}") from exc
        try:
            left = size
            while left:
                room = out.room()
                target = room[:left] if len(room) > left else room
                try:
                    n = _readinto(fd, target)
                    if digest is not None and n:
                        digest.update(target[:n])
                except OSError as exc:
                    raise OSError(exc.errno, f"Can not read file in context: {full}: "
                                             f"{exc.strerror or exc}") from exc
                finally:
                    target.release()
                    room.release()
                if n == 0:  # the file shrank after its size was taken (tarfile says the same)
                    raise OSError(f"Can not read file in context: {full}: unexpected end of data "
                                  f"({size - left} of {size} bytes)")
                out.advance(n)
                left -= n
        finally:
            os.close(fd)
        out.skip(-size % _BLOCK)

    def _uname(self, uid: int) -> str:
        return _cached_name(self._unames, uid, pwd.getpwuid if pwd else None)

    def _gname(self, gid: int) -> str:
        return _cached_name(self._gnames, gid, grp.getgrgid if grp else None)


_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
_PLAIN = (tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE)


def _read_copy(fd: int, target: memoryview) -> int:
    """Where os.readv is missing (Windows): read, then copy into TARGET."""
    data = os.read(fd, len(target))
    target[:len(data)] = data
    return len(data)


def _readv(fd: int, target: memoryview) -> int:
    return os.readv(fd, [target])


_readinto = _readv if hasattr(os, "readv") else _read_copy


def _cached_name(cache: dict[int, str], number: int, lookup: Callable[[int], Any] | None) -> str:
    """The user or group name of `number` (looked up once per stream; "" when unknown)."""
    name = cache.get(number)
    if name is None:
        try:
            name = lookup(number)[0] if lookup else ""
        except KeyError:
            name = ""
        cache[number] = name
    return name
