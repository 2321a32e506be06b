"""model/tail.py: keeping the end of an output too large to hold."""

from __future__ import annotations

import random

import pytest

from dcs_magic.model.tail import Tail, text_tail, utf8_tail


@pytest.mark.parametrize("limit", [0, 1, 7, 100, 4096])
def test_the_tail_is_the_last_bytes_whatever_the_chunks(limit: int) -> None:
    rng = random.Random(limit)
    data = bytes(rng.randrange(256) for _ in range(20_000))
    tail, pos, biggest = Tail(limit), 0, 0
    while pos < len(data):  # chunks of 0 to 3 x the limit, empty ones included
        size = rng.randrange(0, 3 * limit + 2)
        tail.add(data[pos:pos + size])
        pos, biggest = pos + size, max(biggest, size)
        assert tail._held <= limit + biggest  # never more than the limit and one chunk
        assert tail.data == data[:pos][-limit:] if limit else tail.data == b""
    assert (tail.total, tail.dropped, tail.truncated) == (len(data), len(data) - limit, True)


def test_a_short_stream_is_kept_whole() -> None:
    tail = Tail(10)
    for chunk in (b"ab", b"", b"cdefgh"):
        tail.add(chunk)
    assert (tail.data, tail.total, tail.dropped, tail.truncated) == (b"abcdefgh", 8, 0, False)
    tail.add(b"ijk")  # 11 bytes: one dropped
    assert (tail.data, tail.dropped, tail.truncated) == (b"bcdefghijk", 1, True)
    assert Tail(5).data == b""
    with pytest.raises(ValueError):
        Tail(-1)


def test_a_character_cut_in_two_is_left_out() -> None:
    data = "né à Zürich: 北京\n".encode()
    assert text_tail(data, cut=False) == "né à Zürich: 北京\n"
    cut = data[-5:]  # the last byte of 北, 京 and the newline
    assert text_tail(cut, cut=True) == "京\n"
    assert text_tail(data[-4:], cut=True) == "京\n"  # the cut falls exactly before 京
    assert text_tail(b"\xbf\xbf\xbf\xbfx", cut=True) == "\ufffdx"  # at most 3 bytes are skipped
    assert text_tail(b"\xa9x", cut=False) == "\ufffdx"  # not cut: an invalid byte stays visible


def test_utf8_tail_counts_bytes() -> None:
    assert utf8_tail("abc", 3) == ("abc", False)
    assert utf8_tail("abcd", 3) == ("bcd", True)
    text = "é" * 10  # 20 bytes
    assert utf8_tail(text, 20) == (text, False)
    assert utf8_tail(text, 7) == ("ééé", True)  # 6 bytes: half a character is not kept
    kept, cut = utf8_tail("x" * (6 * 2**20), 5 * 2**20)
    assert cut and len(kept) == 5 * 2**20
