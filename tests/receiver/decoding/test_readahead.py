"""Reading ahead in a thread: the same bytes in the same order, errors where they happened."""

from __future__ import annotations

import io
import threading

import pytest

from receiver.decoding import DecodeError
from receiver.decoding.readahead import ReadAhead

DATA = bytes(range(256)) * 40


@pytest.mark.parametrize("size", [1, 7, 100, 4096, -1])
def test_reads_give_the_streams_bytes_in_order(size: int) -> None:
    ahead = ReadAhead(io.BytesIO(DATA), chunk_bytes=100, depth=2)
    parts = []
    while data := ahead.read(size):
        parts.append(data)
    ahead.close()

    assert b"".join(parts) == DATA
    assert all(len(part) <= size for part in parts if size > 0)


class Failing(io.RawIOBase):
    """Two chunks, then a corrupt archive."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        self.reads += 1
        if self.reads > 2:
            raise DecodeError("the gzip data is corrupt")
        return b"x" * 10


def test_an_error_is_raised_after_the_bytes_before_it() -> None:
    ahead = ReadAhead(Failing(), chunk_bytes=10, depth=1)

    assert ahead.read(10) + ahead.read(10) == b"x" * 20
    with pytest.raises(DecodeError, match="corrupt"):
        ahead.read(10)
    ahead.close()


class Endless(io.RawIOBase):
    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        return b"y" * (size or 1)


def test_close_stops_the_thread_even_with_the_queue_full() -> None:
    before = threading.active_count()
    ahead = ReadAhead(Endless(), chunk_bytes=8, depth=2)
    ahead.read(3)

    ahead.close()

    assert threading.active_count() == before


def test_a_chunk_size_of_zero_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ReadAhead(io.BytesIO(DATA), chunk_bytes=0)
