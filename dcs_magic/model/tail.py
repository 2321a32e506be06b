"""The end of an output too large to hold: what a stream's consumer keeps. Pure: no I/O.

    tail = Tail(5 * 2**20)
    for chunk in stream:
        tail.add(chunk)            # memory stays near the limit, whatever the stream's size
    tail.data, tail.total, tail.dropped

`text_tail` decodes such a tail (a cut may fall inside a UTF-8 character) and `utf8_tail` cuts
a text to its last N bytes (how much Databricks keeps of a task's logs is counted in bytes).
"""

from __future__ import annotations

from collections import deque

__all__ = ["Tail", "text_tail", "utf8_tail"]


class Tail:
    """The last `limit` bytes of the chunks given to `add`, and how many came in all.

    Chunks are kept as they come and whole ones dropped from the front once the rest holds
    `limit` bytes, so at most `limit` bytes plus one chunk are held and nothing is copied
    until `data` is asked for.
    """

    def __init__(self, limit: int) -> None:
        if limit < 0:
            raise ValueError(f"limit must be >= 0, not {limit}")
        self.limit = limit
        self.total = 0  # bytes given to add()
        self._chunks: deque[bytes] = deque()
        self._held = 0  # bytes in _chunks

    def add(self, chunk: bytes) -> None:
        if not chunk:
            return
        self.total += len(chunk)
        self._chunks.append(bytes(chunk))
        self._held += len(chunk)
        while self._chunks and self._held - len(self._chunks[0]) >= self.limit:
            self._held -= len(self._chunks.popleft())

    @property
    def dropped(self) -> int:
        """Bytes given to add() that `data` does not hold (the front of the stream)."""
        return self.total - min(self._held, self.limit)

    @property
    def truncated(self) -> bool:
        return self.dropped > 0

    @property
    def data(self) -> bytes:
        """The last `limit` bytes (all of them when fewer came)."""
        joined = b"".join(self._chunks)
        return joined[len(joined) - self.limit:] if len(joined) > self.limit else joined


def text_tail(data: bytes, *, cut: bool) -> str:
    """`data` decoded as UTF-8 (an invalid byte as U+FFFD); when `cut` (the front of the output
    was dropped), the bytes of a character whose start was dropped are left out too."""
    if cut:
        skip = 0
        while skip < min(len(data), 3) and 0x80 <= data[skip] <= 0xBF:  # continuation bytes
            skip += 1
        data = data[skip:]
    return data.decode("utf-8", "replace")


def utf8_tail(text: str, limit: int) -> tuple[str, bool]:
    """(the end of `text` that is at most `limit` bytes in UTF-8, whether anything was cut)."""
    if len(text) * 4 <= limit:  # cannot be longer than the limit
        return text, False
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= limit:
        return text, False
    return text_tail(data[len(data) - limit:], cut=True), True
