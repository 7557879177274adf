"""NDJSON cut at its line breaks, so pyarrow parses it without each record being framed first.

Framing every record (`jsonscan`) costs more than parsing. In NDJSON the line breaks already
frame the records, so the blocks cut here are taken on trust and checked by the parser instead
(`rows.json_lines_batch`): a block is accepted only if pyarrow reads exactly one record per
line, each with known fields only (or unknown ones, through `drift`).

An array of messages written one element per line (`[`, then `{...},` lines) is cut the same
way, at the commas that end lines, and those commas are taken out as the block is copied, so the
parser reads it as NDJSON. The elements after the last such comma, the closing bracket and
whatever follows it are always left to the scanner.

Anything else (a block the parser does not accept, a line longer than a block, invalid UTF-8)
ends the cutting: the exact scanner then reads on from the oldest block not yet accepted,
replaying the bytes kept for that, so what comes out, errors included, is what the scanner
alone would have produced.
"""

from __future__ import annotations

import io
import struct
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, cast

import pyarrow as pa
import pyarrow.compute as pc

from receiver.decoding.jsonscan import (
    CHUNK_BYTES,
    Handoff,
    InArray,
    Resume,
    _complete_utf8,
    _validate_utf8,
)

# The first block is small, so that parsing starts early; blocks then double in size.
FIRST_BLOCK_BYTES = 256 * 1024
_NEWLINE = ord("\n")
_COMMA = ord(",")


@dataclass(frozen=True)
class LineBlock:
    data: bytes
    """Whole lines joined by line breaks (the one after the last line is not included); in an
    array, without the comma that ended each line but the last."""
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

    The stream is read into one buffer that is reused for the whole file, so each block costs
    one copy (into the block handed to the parser) and no fresh pages for the reads.
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
        self._buf = bytearray(start.data)
        self._pos = 0  # the next block starts here
        self._end = len(start.data)  # bytes in _buf past this are stale
        self._checked = self._end - len(start.partial)  # valid UTF-8 up to here
        self._offset = start.offset  # of _buf[0] in the stream
        self._eof = False
        self._refused = False  # a read failed UTF-8 validation: the scanner will report it
        self._records = 0
        self._unaccepted: deque[tuple[LineBlock, bytes]] = deque()  # (block, its line break)
        self.finished = False  # every byte was cut into blocks
        self.array: InArray | None = start.array
        """The array the records are elements of; None for NDJSON."""
        self._separator = b"\n" if self.array is None else b",\n"

    def __iter__(self) -> Iterator[LineBlock]:
        buf = self._buf
        while self._fill():
            available = self._end - self._pos
            if available == 0:
                self.finished = True
                return
            if self._eof and available <= self._limit and self.array is None:
                # the rest, in one block
                cut = self._end - (buf[self._end - 1] == _NEWLINE)
            else:
                end = min(self._pos + self._limit, self._end)
                cut = buf.rfind(self._separator, self._pos, end)
                if cut < 0 and self._limit < self._block_bytes:
                    self._limit = min(2 * self._limit, self._block_bytes)
                    continue
                if cut < 0:
                    return  # a line longer than a block, or an array's end: the scanner frames on
            rows = buf.count(b"\n", self._pos, cut) + 1
            if rows > self._batch_rows:
                cut = self._pos - 1
                for _ in range(self._batch_rows):
                    cut = buf.index(b"\n", cut + 1, self._end)
                rows = self._batch_rows
                if self.array is not None:
                    if cut == self._pos or buf[cut - 1] != _COMMA:
                        return  # not a line between elements: the scanner frames on
                    cut -= 1
            with memoryview(buf) as view:
                if self.array is None:
                    data = bytes(view[self._pos : cut])
                else:
                    data = _without_line_commas(view[self._pos : cut])
                    if cut - self._pos - len(data) != rows - 1:
                        return  # a line break that does not follow an element: the scanner's
            block = LineBlock(data, rows, self._records, self._offset + self._pos)
            newline = bytes(buf[cut : min(cut + len(self._separator), self._end)])
            self._unaccepted.append((block, newline))
            self._pos = cut + len(newline)
            self._records += rows
            self._limit = min(2 * self._limit, self._block_bytes)
            yield block

    def text(self, block: LineBlock) -> bytes:
        """The block as it stands in the stream (in an array, with its commas)."""
        return block.data if self.array is None else block.data.replace(b"\n", b",\n")

    def accepted(self, block: LineBlock) -> None:
        oldest, _ = self._unaccepted.popleft()
        if oldest is not block:
            raise AssertionError("blocks must be accepted in the order they were cut")

    def rest(self) -> tuple[IO[bytes], Resume] | None:
        """The stream from the oldest block not accepted on, and where that is; None when the
        cutting finished and the parser accepted every block."""
        if self.finished and not self._unaccepted:
            return None
        kept = [data for block, newline in self._unaccepted for data in (self.text(block), newline)]
        if self._unaccepted:
            first = self._unaccepted[0][0]
            resume = Resume(first.offset, first.first, self.array)
        else:
            resume = Resume(self._offset + self._pos, self._records, self.array)
        kept.append(bytes(self._buf[self._pos : self._end]))
        self._unaccepted.clear()
        return cast(IO[bytes], _Replay(b"".join(kept), self._stream)), resume

    def _fill(self) -> bool:
        """Reads until a block's worth is buffered or the stream ends; False if a read is not
        valid UTF-8 (the scanner will say where)."""
        while not self._eof and not self._refused and self._end - self._pos < self._limit:
            self._make_room()
            with memoryview(self._buf) as view:
                read = self._read_into(view[self._end : self._end + self._read_bytes])
                self._end += read
                unchecked = view[self._checked : self._end]
                complete = _complete_utf8(unchecked) if read else len(unchecked)
                try:
                    _validate_utf8(unchecked[:complete])
                except pa.ArrowInvalid:
                    self._refused = True
                    break
                finally:
                    unchecked.release()
            self._checked += complete
            self._eof = read == 0
        return not self._refused

    def _make_room(self) -> None:
        """Room for one more read at the end of the buffer: the bytes not yet cut move to its
        start, and it grows only if they and a read do not fit."""
        if len(self._buf) - self._end >= self._read_bytes:
            return
        if self._pos:
            kept = self._end - self._pos
            with memoryview(self._buf) as view:
                view[:kept] = view[self._pos : self._end]  # a memmove, no temporary copy
            self._offset += self._pos
            self._checked -= self._pos
            self._end, self._pos = kept, 0
        if len(self._buf) - self._end < self._read_bytes:
            self._buf.extend(bytes(self._end + self._read_bytes - len(self._buf)))

    def _read_into(self, view: memoryview) -> int:
        readinto = getattr(self._stream, "readinto", None)
        if readinto is not None:
            return int(readinto(view) or 0)
        data = self._stream.read(len(view))
        view[: len(data)] = data
        return len(data)


def _without_line_commas(text: memoryview) -> bytes:
    """`text` with each comma that ends a line taken out, in one pass (Arrow's replace runs at
    twice the speed of bytes.replace, without the GIL)."""
    offsets = pa.py_buffer(struct.pack("=qq", 0, len(text)))
    block = pa.Array.from_buffers(pa.large_binary(), 1, [None, offsets, pa.py_buffer(text)])
    return bytes(pc.replace_substring(block, ",\n", "\n")[0].as_buffer())


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
