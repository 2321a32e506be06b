"""A build context as a stream of tar chunks, written by a thread while the upload runs.

docker-py's `utils.build.tar` writes the whole context into a temporary file before the
request starts, so a 500 MB context is read twice and the upload waits for the tarring. The
docker CLI streams instead; so does this: a thread writes the tar (stream mode, no seeking)
into a bounded queue, and the request body iterates the queue (requests sends an iterator
with `Transfer-Encoding: chunked`). Tarring and uploading overlap, and memory stays flat
in the context size: at most `queue_chunks` chunks of `chunk_size` bytes are held.

Which files go in is the caller's business (the engine applies `.dockerignore` with
docker-py's own matcher); this module only archives a given list of relative paths the way
docker-py's `create_archive` does, so both produce the same entries.
"""

from __future__ import annotations

import os
import queue
import tarfile
import threading
from collections.abc import Generator, Iterable
from pathlib import Path

__all__ = ["CHUNK_SIZE", "TarStream"]

CHUNK_SIZE = 1 << 20  # 1 MiB: large enough for few syscalls, small enough to keep memory flat
QUEUE_CHUNKS = 8
_DONE = object()


class _QueueWriter:
    """File-like sink for tarfile's stream mode: buffers writes into fixed-size chunks."""

    def __init__(self, chunks: queue.Queue[object], chunk_size: int, stopped: threading.Event,
                 owner: TarStream) -> None:
        self._owner = owner
        self._chunks = chunks
        self._chunk_size = chunk_size
        self._stopped = stopped
        self._buffer = bytearray()

    def write(self, data: bytes) -> int:
        self._buffer += data
        while len(self._buffer) >= self._chunk_size:
            self._put(bytes(self._buffer[:self._chunk_size]))
            del self._buffer[:self._chunk_size]
        return len(data)

    def flush_rest(self) -> None:
        if self._buffer:
            self._put(bytes(self._buffer))
            self._buffer.clear()

    def _put(self, item: object) -> None:
        # Wake up now and then so a consumer that went away (cancelled build) stops us.
        while not self._stopped.is_set():
            try:
                self._chunks.put(item, timeout=0.1)
                self._owner.bytes_queued += len(item) if isinstance(item, bytes) else 0
                return
            except queue.Full:
                continue
        raise _Stopped


class _Stopped(Exception):
    """The consumer closed the stream; the writer thread ends quietly."""


class TarStream:
    """Iterate to get the tar of `files` (paths relative to `root`) in chunks.

    Iterating starts the writer thread; closing the iterator early (a cancelled build, an
    engine error) stops it. An error while reading the context (a file vanished, no
    permission) is raised from the iteration as OSError naming the file.
    """

    def __init__(self, root: str | os.PathLike[str], files: Iterable[str], *,
                 chunk_size: int = CHUNK_SIZE, queue_chunks: int = QUEUE_CHUNKS) -> None:
        self.root = Path(root)
        self.files = sorted(files)
        self.chunk_size = chunk_size
        self.queue_chunks = queue_chunks
        self.bytes_sent = 0  # handed to the consumer
        self.bytes_queued = 0  # produced by the writer (at most queue_chunks ahead of bytes_sent)

    def __iter__(self) -> Generator[bytes, None, None]:
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
                assert isinstance(item, bytes)
                self.bytes_sent += len(item)
                yield item
            if failure:
                raise failure[0]
        finally:
            stopped.set()
            writer.join(timeout=5)

    def _write(self, chunks: queue.Queue[object], stopped: threading.Event,
               failure: list[BaseException]) -> None:
        sink = _QueueWriter(chunks, self.chunk_size, stopped, self)
        try:
            with tarfile.open(mode="w|", fileobj=sink, format=tarfile.PAX_FORMAT) as archive:  # type: ignore[call-overload]
                for name in self.files:
                    if stopped.is_set():
                        return
                    self._add(archive, name)
            sink.flush_rest()
        except _Stopped:
            return
        except BaseException as exc:  # noqa: BLE001 - handed to the consuming thread
            failure.append(exc)
        finally:
            if not stopped.is_set():
                try:
                    chunks.put(_DONE, timeout=5)
                except queue.Full:
                    pass

    def _add(self, archive: tarfile.TarFile, name: str) -> None:
        full = self.root / name
        info = archive.gettarinfo(str(full), arcname=name)
        if info is None:  # a socket: nothing to send (as docker-py does)
            return
        if info.mtime < 0 or info.mtime > 8 ** 11 - 1:
            info.mtime = int(info.mtime)
        if info.isfile():
            try:
                with open(full, "rb") as handle:
                    archive.addfile(info, handle)
            except OSError as exc:
                raise OSError(f"Can not read file in context: {full}: {exc.strerror or exc}") from exc
        else:
            archive.addfile(info)
