"""NDJSON cut at its line breaks, so pyarrow parses it without each record being framed first.

Framing every record (`jsonscan`) costs more than parsing. In NDJSON the line breaks already
frame the records, so the blocks cut here are taken on trust and checked by the parser instead
(`rows.json_lines_batch`): a block is accepted only if pyarrow reads exactly one record per
line, each with known fields only (or unknown ones, through `drift`).

An array of messages is cut the same way where its elements follow one another in one of the
ways writers put them: one per line (`[`, then `{...},` lines), cut at the commas that end
lines, or all on one line (`[{...},{...}]`, or `}, {` as Python writes it), cut between a `}`
and the next `{`. The separators become line breaks as the block is copied, so the parser reads
it as NDJSON. A separator found inside a record instead of between two (in a string, or between
two objects of a nested array) leaves a line that is not a whole JSON object, which the parser
refuses, so a block it accepts was cut only between elements. The elements after the last
separator, the closing bracket and whatever follows it are always left to the scanner.

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
import pyarrow.compute as pc

from receiver.decoding.buffers import complete_utf8, one_value, validate_utf8
from receiver.decoding.jsonscan import CHUNK_BYTES, Handoff, InArray, Resume

# The first block is small, so that parsing starts early; blocks then double in size.
FIRST_BLOCK_BYTES = 256 * 1024
_NEWLINE = ord("\n")
_COMMA = ord(",")


@dataclass(frozen=True)
class Layout:
    """How a stream's records follow one another: `pattern` is searched for between two, its
    first `before` bytes end the record before, and `between` (dropped from the blocks, a line
    break in their data) lies between the two records."""

    pattern: bytes
    before: int
    between: bytes

    @property
    def as_lines(self) -> bytes:
        """The pattern as it stands in a block's data."""
        return self.pattern[: self.before] + b"\n" + self.pattern[self.before + len(self.between) :]


NDJSON = Layout(b"\n", 0, b"\n")
ARRAY_LINES = Layout(b",\n", 0, b",\n")
_ONE_LINE_ARRAYS = (Layout(b"},{", 1, b","), Layout(b"}, {", 1, b", "))


@dataclass(frozen=True)
class LineBlock:
    data: bytes
    """Whole records joined by line breaks (none after the last); in an array, the separators
    between its elements as line breaks (see `Layout`)."""
    rows: int
    """Lines in `data`: the records it must hold, one per line, for the parser to accept it."""
    first: int
    """Index of its first record in the file, counting a line as a record (see
    `LineBlocks.first`)."""
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
        self._miscounted = 0  # records framed exactly, less the lines they were counted as
        self._unaccepted: deque[tuple[LineBlock, bytes]] = deque()  # (block, its line break)
        self.finished = False  # every byte was cut into blocks
        self.array: InArray | None = start.array
        """The array the records are elements of; None for NDJSON."""
        self._layout: Layout | None = NDJSON if self.array is None else None  # None: not seen yet

    def __iter__(self) -> Iterator[LineBlock]:
        buf = self._buf
        while self._fill():
            available = self._end - self._pos
            if available == 0:
                self.finished = True
                return
            end = min(self._pos + self._limit, self._end)
            layout = self._layout or _array_layout(buf, self._pos, end)
            if layout is NDJSON and self._eof and available <= self._limit:
                # the rest, in one block
                cut = self._end - (buf[self._end - 1] == _NEWLINE)
            else:
                found = -1 if layout is None else buf.rfind(layout.pattern, self._pos, end)
                if found < 0 and self._limit < self._block_bytes:
                    self._limit = min(2 * self._limit, self._block_bytes)
                    continue
                if layout is None or found < 0:
                    return  # a line longer than a block, or an array's end: the scanner frames on
                cut = found + layout.before
            self._layout = layout
            block = self._block(layout, cut)
            if block is None:
                return  # a line break that is not between elements: the scanner's
            between = bytes(buf[block.end : min(block.end + len(layout.between), self._end)])
            self._unaccepted.append((block.block, between))
            self._pos = block.end + len(between)
            self._records += block.block.rows
            self._limit = min(2 * self._limit, self._block_bytes)
            yield block.block

    def _block(self, layout: Layout, cut: int) -> _Cut | None:
        """The block from the current position to `cut` (or to its `batch_rows`-th record),
        None if its line breaks do not all lie between records."""
        if layout is NDJSON or layout is ARRAY_LINES:
            return self._lines_block(layout, cut)
        buf, start = self._buf, self._pos
        if buf.find(b"\n", start, cut) >= 0:
            return None
        # Counted after the separators became line breaks: a byte is counted faster than three.
        with memoryview(buf) as view:
            data = _as_lines(view[start:cut], layout)
        rows = data.count(b"\n") + 1
        if rows > self._batch_rows:
            cut = _nth(buf, layout.pattern, start, self._batch_rows) + layout.before
            with memoryview(buf) as view:
                data = _as_lines(view[start:cut], layout)
            rows = self._batch_rows
        return _Cut(LineBlock(data, rows, self._records, self._offset + start), cut)

    def _lines_block(self, layout: Layout, cut: int) -> _Cut | None:
        buf, start = self._buf, self._pos
        rows = buf.count(b"\n", start, cut) + 1
        if rows > self._batch_rows:
            cut = _nth(buf, b"\n", start, self._batch_rows)
            rows = self._batch_rows
            if layout is ARRAY_LINES:
                if cut == start or buf[cut - 1] != _COMMA:
                    return None
                cut -= 1
        with memoryview(buf) as view:
            if layout is NDJSON:
                data = bytes(view[start:cut])
            else:
                data = _as_lines(view[start:cut], layout)
                if cut - start - len(data) != rows - 1:
                    return None  # a line break that does not follow a comma
        return _Cut(LineBlock(data, rows, self._records, self._offset + start), cut)

    def text(self, block: LineBlock) -> bytes:
        """The block as it stands in the stream (in an array, with its separators)."""
        layout = self._layout  # None only before any block is cut
        if layout is None or layout is NDJSON:
            return block.data
        return block.data.replace(layout.as_lines, layout.pattern)

    def accepted(self, block: LineBlock, records: int | None = None) -> None:
        """`block` was taken: as it was cut, or framed exactly as `records` records."""
        oldest, _ = self._unaccepted.popleft()
        if oldest is not block:
            raise AssertionError("blocks must be accepted in the order they were cut")
        if records is not None:
            self._miscounted += records - block.rows

    def first(self, block: LineBlock) -> int:
        """The index of the block's first record in the file, once those before it are accepted
        (a block framed exactly may hold more records than lines, or fewer)."""
        return block.first + self._miscounted

    def rest(self) -> tuple[IO[bytes], Resume] | None:
        """The stream from the oldest block not accepted on, and where that is; None when the
        cutting finished and the parser accepted every block."""
        if self.finished and not self._unaccepted:
            return None
        kept = [data for block, newline in self._unaccepted for data in (self.text(block), newline)]
        if self._unaccepted:
            first = self._unaccepted[0][0]
            resume = Resume(first.offset, self.first(first), self.array)
        else:
            resume = Resume(self._offset + self._pos, self._records + self._miscounted, self.array)
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
                complete = complete_utf8(unchecked) if read else len(unchecked)
                try:
                    validate_utf8(unchecked[:complete])
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


@dataclass(frozen=True)
class _Cut:
    block: LineBlock
    end: int
    """Where the block ends in the buffer (its separator starts there)."""


def _nth(buf: bytearray, pattern: bytes, start: int, count: int) -> int:
    """Where the `count`-th `pattern` from `start` on begins (there are at least that many)."""
    at = start - len(pattern)
    for _ in range(count):
        at = buf.index(pattern, at + len(pattern))
    return at


def _array_layout(buf: bytearray, start: int, end: int) -> Layout | None:
    """How the elements of an array follow one another, from its first bytes (`start:end`);
    None if that is not one of `Layout`'s ways (the scanner frames such an array)."""
    if buf.find(b",\n", start, end) >= 0:
        return ARRAY_LINES
    if buf.find(b"\n", start, end) >= 0:
        return None
    for layout in _ONE_LINE_ARRAYS:
        if buf.find(layout.pattern, start, end) >= 0:
            return layout
    return None


def _as_lines(text: memoryview, layout: Layout) -> bytes:
    """`text` with each separator between records as a line break, in one pass (Arrow's
    replace runs at twice the speed of bytes.replace, without the GIL)."""
    block = one_value(text, pa.large_binary())
    lines = pc.replace_substring(block, layout.pattern.decode(), layout.as_lines.decode())
    return bytes(lines[0].as_buffer())


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
