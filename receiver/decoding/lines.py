"""NDJSON cut at its line breaks, so pyarrow parses it without each record being framed first.

Framing every record (`jsonscan`) runs a regular expression over every byte, which costs more
than parsing. In NDJSON the line breaks already frame the records, so the blocks cut here are
taken on trust and checked by the parser instead (`rows.json_lines_batch`): a block is accepted
only if pyarrow reads exactly one record per line, each with known fields only.

Anything else (a block the parser does not accept, a line longer than a block, invalid UTF-8)
ends the cutting: the exact scanner then reads on from the oldest block not yet accepted,
replaying the bytes kept for that, so what comes out, errors included, is what the scanner
alone would have produced.
"""

from __future__ import annotations

import io
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, cast

import pyarrow as pa

from receiver.decoding.jsonscan import CHUNK_BYTES, Handoff, Resume, _complete_utf8, _validate_utf8

# The first block is small, so that parsing starts early; blocks then double in size.
FIRST_BLOCK_BYTES = 256 * 1024


@dataclass(frozen=True)
class LineBlock:
    data: bytes
    """Whole lines joined by line breaks (the one after the last line is not included)."""
    rows: int
    """Lines in `data`: the records it must hold, one per line, for the parser to accept it."""
    first: int
    """Index of its first record in the file."""
    offset: int
    """Byte offset of data[0] in the stream."""


class LineBlocks:
    """Yields LineBlocks of at most `batch_rows` lines and about `block_bytes` bytes.

    Call `accepted` for each block the parser took, oldest first; once iteration ends,
    `rest()` says where the exact scanner must pick up, if anywhere.
    """

    def __init__(
        self,
        start: Handoff,
        stream: IO[bytes],
        *,
        batch_rows: int,
        block_bytes: int,
        read_bytes: int = CHUNK_BYTES,
    ) -> None:
        self._stream = stream
        self._batch_rows = batch_rows
        self._block_bytes = block_bytes
        self._limit = min(block_bytes, FIRST_BLOCK_BYTES)  # doubles up to block_bytes
        self._read_bytes = read_bytes
        self._buf = start.data
        self._pos = 0
        self._offset = start.offset  # of _buf[0] in the stream
        self._partial = start.partial
        self._eof = False
        self._refused = b""  # a read that failed UTF-8 validation, for the scanner to report
        self._records = 0
        self._unaccepted: deque[tuple[LineBlock, bytes]] = deque()  # (block, its line break)
        self.finished = False  # every byte was cut into blocks

    def __iter__(self) -> Iterator[LineBlock]:
        while self._fill():
            available = len(self._buf) - self._pos
            if available == 0:
                self.finished = True
                return
            if self._eof and available <= self._limit:
                cut = len(self._buf) - self._buf.endswith(b"\n")  # the rest, in one block
            else:
                cut = self._buf.rfind(b"\n", self._pos, self._pos + self._limit)
                if cut < 0 and self._limit < self._block_bytes:
                    self._limit = min(2 * self._limit, self._block_bytes)
                    continue
                if cut < 0:
                    return  # a line longer than a block: the scanner frames it
            data = self._buf[self._pos : cut]
            rows = data.count(b"\n") + 1
            if rows > self._batch_rows:
                cut = self._pos - 1
                for _ in range(self._batch_rows):
                    cut = self._buf.index(b"\n", cut + 1)
                data, rows = self._buf[self._pos : cut], self._batch_rows
            block = LineBlock(data, rows, self._records, self._offset + self._pos)
            newline = self._buf[cut : cut + 1]
            self._unaccepted.append((block, newline))
            self._pos = cut + len(newline)
            self._records += rows
            self._limit = min(2 * self._limit, self._block_bytes)
            yield block

    def accepted(self, block: LineBlock) -> None:
        oldest, _ = self._unaccepted.popleft()
        if oldest is not block:
            raise AssertionError("blocks must be accepted in the order they were cut")

    def rest(self) -> tuple[IO[bytes], Resume] | None:
        """The stream from the oldest block not accepted on, and where that is; None when the
        cutting finished and the parser accepted every block."""
        if self.finished and not self._unaccepted:
            return None
        kept = [data for block, newline in self._unaccepted for data in (block.data, newline)]
        if self._unaccepted:
            first = self._unaccepted[0][0]
            resume = Resume(first.offset, first.first)
        else:
            resume = Resume(self._offset + self._pos, self._records)
        kept += [self._buf[self._pos :], self._refused]
        self._unaccepted.clear()
        return cast(IO[bytes], _Replay(b"".join(kept), self._stream)), resume

    def _fill(self) -> bool:
        """Reads until a block's worth is buffered or the stream ends; False if a read is not
        valid UTF-8 (the scanner will say where)."""
        pieces: list[bytes | memoryview] = [memoryview(self._buf)[self._pos :]]
        buffered = len(pieces[0])
        while not self._eof and buffered < self._limit:
            data = self._stream.read(self._read_bytes)
            piece = self._partial + data if self._partial else data
            complete = _complete_utf8(piece) if data else len(piece)
            try:
                _validate_utf8(memoryview(piece)[:complete])
            except pa.ArrowInvalid:
                self._refused = data
                self._eof = True
                break
            self._partial = piece[complete:]
            if not data:
                self._eof = True
            pieces.append(data)
            buffered += len(data)
        if len(pieces) > 1:
            self._offset += self._pos
            self._buf, self._pos = b"".join(pieces), 0
        return not self._refused


class _Replay(io.RawIOBase):
    """Bytes already read from a stream, then the rest of that stream."""

    def __init__(self, head: bytes, tail: IO[bytes]) -> None:
        super().__init__()
        self._head = memoryview(head)
        self._tail = tail

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            data = bytes(self._head) + self._tail.read()
            self._head = self._head[len(self._head) :]
            return data
        if self._head:
            data = bytes(self._head[:size])
            self._head = self._head[size:]
            return data
        return self._tail.read(size)

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)
