"""The engine-stream reader (`dcs_magic.adapters.engine._read_batches`): chunked framing undone on large
reads, JSON lines decoded in batches, objects that are not newline-aligned split as docker-py
splits them, and a truncated or garbled stream reported as a broken stream.

The reader gets a real `io.BufferedReader` (what http.client reads a socket through) over a
raw stream that hands out one given block per read, so the read boundaries are exact.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from pathlib import Path

import pytest
import urllib3.exceptions

from dcs_magic.adapters import engine
from dcs_magic.model.progress import BuildState

FIXTURES = Path(__file__).parent / "fixtures"


class _Blocks(io.RawIOBase):
    """A raw stream that returns the given blocks, one per read (as a socket returns packets)."""

    def __init__(self, blocks: Iterable[bytes]) -> None:
        self._blocks = [bytes(b) for b in blocks if b]

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if not self._blocks:
            return 0
        block = self._blocks.pop(0)
        n = min(len(buffer), len(block))
        buffer[:n] = block[:n]
        if n < len(block):
            self._blocks.insert(0, block[n:])
        return n


def _chunked(chunks: Iterable[bytes], *, last: bool = True) -> bytes:
    """HTTP/1.1 chunked framing of `chunks`, with the last (empty) chunk unless last=False."""
    body = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks if c)
    return body + (b"0\r\n\r\n" if last else b"")


def _blocks(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


def _read(blocks: list[bytes]) -> list[list[dict]]:
    return list(engine._read_batches(io.BufferedReader(_Blocks(blocks))))


def _fixture(name: str) -> list[dict]:
    return [json.loads(line) for line in (FIXTURES / name).read_text().splitlines() if line]


@pytest.mark.parametrize("block", [1, 2, 7, 64, 1000, 1 << 20])
def test_one_object_per_chunk_read_in_blocks_of_any_size(block: int) -> None:
    """The engine's usual framing (one `\\r\\n`-ended object per chunk) read in blocks that cut
    chunk-size lines, objects, multi-byte characters and CRLFs anywhere: the same events."""
    events = _fixture("build_ok.jsonl") + [{"stream": "héllo → wörld ✓\n"}]
    data = _chunked(json.dumps(e, ensure_ascii=False).encode() + b"\r\n" for e in events)
    batches = _read(_blocks(data, block))
    assert [e for batch in batches for e in batch] == events
    assert all(batches)  # never an empty batch
    if block >= 1 << 20:  # one read holds the whole stream: one batch of everything
        assert len(batches) == 1


def test_objects_split_across_chunks_and_several_per_chunk() -> None:
    lines = [json.dumps({"stream": f"line {i}\n"}).encode() + b"\r\n" for i in range(50)]
    text = b"".join(lines)
    # chunk boundaries that ignore the objects: 13 bytes each, then one chunk of the rest
    chunks = [text[:13], text[13:26], text[26:400], text[400:]]
    events = [e for batch in _read([_chunked(chunks)]) for e in batch]
    assert events == [{"stream": f"line {i}\n"} for i in range(50)]


def test_objects_that_are_not_newline_aligned() -> None:
    """Back-to-back objects on one line, blank lines, and a last object without a newline."""
    chunks = [b'{"stream": "a\\n"}{"stream": "b\\n"}\r\n', b"\r\n", b'  {"stream": "c\\n"}\r\n',
              b'{"aux": {"ID": "sha256:abc"}}']
    events = [e for batch in _read([_chunked(chunks)]) for e in batch]
    assert events == [{"stream": "a\n"}, {"stream": "b\n"}, {"stream": "c\n"}, {"aux": {"ID": "sha256:abc"}}]


def test_an_object_without_newline_is_decoded_when_complete_not_at_the_end() -> None:
    """A complete object not followed by a newline is handed on at once (its read ends with
    `}`), not held until the stream ends."""
    data = _chunked([b'{"stream": "x\\n"}', b'{"stream": "y\\n"}\r\n'])
    frame = data.index(b"\r\n", data.index(b"x")) + 2  # the end of the first chunk
    batches = _read([data[:frame], data[frame:]])
    assert batches == [[{"stream": "x\n"}], [{"stream": "y\n"}]]


def test_an_error_event_ends_the_stream_after_the_events_before_it() -> None:
    """Through `_checked_batches`: the events before the error come first, then StreamError
    carrying the engine's message; the state folds them exactly as one by one."""
    events = _fixture("build_fail_run.jsonl")
    assert any("error" in e for e in events)
    data = _chunked(json.dumps(e).encode() + b"\r\n" for e in events)
    got: list[dict] = []
    with pytest.raises(engine.StreamError) as caught:
        for batch in engine._checked_batches(_read([data])):
            got += batch
    error = next(e for e in events if "error" in e)
    assert got == events[:events.index(error)]
    assert caught.value.message == error["errorDetail"]["message"].strip()

    one_by_one, batched = BuildState(), BuildState()
    for event in got:
        one_by_one.apply(event)
    batched.apply_many(got)
    assert batched.snapshot()["log_tail"] == one_by_one.snapshot()["log_tail"]
    assert batched.step == one_by_one.step > 0


def test_a_stream_cut_before_its_last_chunk_is_a_broken_stream() -> None:
    data = _chunked([b'{"stream": "a\\n"}\r\n', b'{"stream": "b'], last=False)
    with pytest.raises(urllib3.exceptions.ProtocolError) as caught:
        _read([data])
    assert engine._broken_stream(caught.value)  # -> BuildError "the output stream ... broke"


def test_garbage_in_the_stream_is_a_protocol_error_not_a_json_traceback() -> None:
    with pytest.raises(urllib3.exceptions.ProtocolError, match="not JSON"):
        _read([_chunked([b'{"stream": "a\\n"}\r\n', b"<html>502 Bad Gateway</html>\r\n"])])
    with pytest.raises(urllib3.exceptions.ProtocolError, match="chunk size"):
        _read([b"zz\r\n{}\r\n0\r\n\r\n"])


def test_event_stream_over_a_real_engine_connection_is_an_iterator_that_closes() -> None:
    """`_EventStream` as docker-py hands it out: over a real HTTP response from a local
    server speaking the engine's framing; iterating gives events one by one (`next()` works,
    as on docker-py's generator) and the end of the stream closes the response."""
    import http.server
    import threading

    from dcs_magic.adapters.engine_address import EngineAddress

    events = _fixture("build_ok.jsonl")
    body = _chunked(json.dumps(e).encode() + b"\r\n" for e in events)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path.endswith("/_ping"):  # the client asks the engine's API version first
                self.send_response(200)
                self.send_header("API-Version", "1.41")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"OK")
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for block in _blocks(body, 100):  # several writes: the client sees them as they come
                self.wfile.write(block)
                self.wfile.flush()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        address = EngineAddress(f"tcp://127.0.0.1:{server.server_port}", "host argument")
        client = engine._StreamingClient(address, 10.0)
        with client:
            response = client._get(f"http://127.0.0.1:{server.server_port}/stream", stream=True)
            client._streams.add(response)
            stream = client._stream_helper(response, decode=True)
            assert next(stream) == events[0]
            assert list(stream) == events[1:]
            assert not client._streams  # forgotten (and closed) at the end
    finally:
        server.shutdown()
        server.server_close()
