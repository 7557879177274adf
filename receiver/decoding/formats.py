"""Which format a data file is in (from its first bytes), and readers for JSON and CSV.

Sniffing looks at content only: a file's name or Content-Type says nothing reliable.
"""

from __future__ import annotations

import csv
import io
import re
import sys
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import IO

import pyarrow as pa
import pyarrow.csv as pa_csv

from receiver.decoding.archives import GZIP_MAGIC, ZIP_MAGICS
from receiver.decoding.errors import DecodeError
from receiver.decoding.jsonscan import InArray, RecordScanner, Resume
from receiver.decoding.labels import field_for, map_header
from receiver.decoding.lines import LineBlock, LineBlocks
from receiver.decoding.parsers import PARSERS, Parse, Parsers
from receiver.decoding.rows import csv_batch, json_block_batch, json_lines_batch

SNIFF_BYTES = 64 * 1024
# A batch of JSON lines is parsed once it holds this many bytes, even if short of batch_rows.
# Small enough that scanning the next batch overlaps parsing this one.
JSON_CHUNK_BYTES = 4 * 1024 * 1024
# pyarrow reads up to 32 blocks ahead, so this bounds memory (~64 MiB) as well as the
# largest CSV row (a message's content and raw content are at most 100000 characters each).
CSV_BLOCK_BYTES = 2 * 1024 * 1024
CSV_BATCH_BYTES = 4 * 1024 * 1024
# Framing (the exact scanner, msgspec for arrays) holds the GIL and is the slower side, so a
# second block parsing at once saves no time there and costs ~25 MB at a million messages.
FRAMED_AHEAD = 1
# Blocks pyarrow's CSV reader may read ahead of the batches taken from it, and how long a read
# waits for the next batch to be taken before holding back is given up.
CSV_READ_AHEAD = 4
CSV_READ_AHEAD_WAIT = 2.0
_DELIMITERS = (",", ";", "\t", "|")
_MIN_KNOWN_COLUMNS = 2
_LINE_END = re.compile(rb"\r\n|\r|\n")
_RAGGED = re.compile(r"Expected (\d+) columns, got (\d+)")


@dataclass(frozen=True)
class Gzip:
    pass


@dataclass(frozen=True)
class Zip:
    pass


@dataclass(frozen=True)
class Json:
    """A JSON array, an object holding one, NDJSON, or nothing at all (no records)."""


@dataclass(frozen=True)
class Csv:
    names: tuple[str, ...]  # API names for known labels, the label itself otherwise
    delimiter: str
    header_only: bool  # the file is its header row without even a line break


Format = Gzip | Zip | Json | Csv


def sniff(head: bytes, whole: bool) -> Format | None:
    """The format of a file starting with `head` (`whole`: the file is no longer than that)."""
    if head.startswith(GZIP_MAGIC):
        return Gzip()
    if head.startswith(ZIP_MAGICS):
        return Zip()
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip(b" \t\r\n")
    if not text or text[:1] in (b"[", b"{"):
        return Json()
    return _sniff_csv(head, whole)


def _sniff_csv(head: bytes, whole: bool) -> Csv | None:
    line, *rest = _LINE_END.split(head, maxsplit=1)
    if not rest and not whole:
        return None
    try:
        header = line.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        return None
    best: tuple[int, str, list[str]] | None = None
    for delimiter in _DELIMITERS:
        try:
            labels = next(csv.reader([header], delimiter=delimiter), [])
        except csv.Error:
            return None
        known = len({field_for(label) for label in labels} - {None})
        if best is None or known > best[0]:
            best = (known, delimiter, labels)
    if best is None or best[0] < _MIN_KNOWN_COLUMNS:
        return None
    _, delimiter, labels = best
    return Csv(tuple(map_header(labels)), delimiter, header_only=not rest)


def describe(head: bytes) -> str:
    """Why a file is not recognised, for the quarantine reason (a short prefix, no more)."""
    text = head.lstrip()
    if not text:
        return "the payload is empty"
    hint = "it looks like HTML or XML" if text[:1] == b"<" else f"it starts with {text[:24]!r}"
    return (
        "not a supported format (JSON array or object, NDJSON, CSV with a header row naming "
        f"the API's fields, gzip or zip of these): {hint}"
    )


def json_batches(stream: IO[bytes], batch_rows: int) -> Iterator[pa.RecordBatch]:
    """The records of a JSON or NDJSON stream, `batch_rows` (or 4 MiB) at a time.

    NDJSON, and an array written one element per line or all on one line, is cut between its
    records and checked by the parser (see `lines`); the exact scanner frames everything else,
    and the records from where the parser does not accept a block on.
    Blocks are parsed (pyarrow, which releases the GIL) on two threads while the next ones are
    read, and handed on in order (see `parsers`).
    """
    with Parsers() as parsers:
        scanner = RecordScanner(stream, hand_off_lines=True)
        yield from _parsed(parsers, _json_blocks(scanner, batch_rows, 0))
        if scanner.handoff is None:
            return
        lines = LineBlocks(
            scanner.handoff, stream, batch_rows=batch_rows, block_bytes=JSON_CHUNK_BYTES
        )
        yield from _line_batches(parsers, lines, batch_rows)
        rest = lines.rest()
        if rest is not None:
            replay, resume = rest
            resumed = RecordScanner(replay, resume=resume)
            yield from _parsed(parsers, _json_blocks(resumed, batch_rows, resume.records))


def _parsed(
    parsers: Parsers, blocks: Iterator[tuple[bytes, int, int]], ahead: int = FRAMED_AHEAD
) -> Iterator[pa.RecordBatch]:
    """The batches of framed blocks, parsed while the next ones are framed, at most `ahead`
    at a time besides the one being handed on."""
    pending: deque[Parse[pa.RecordBatch]] = deque()
    try:
        while True:
            try:
                data, rows, first = next(blocks)
            except StopIteration:
                break
            except DecodeError:
                while pending:
                    pending.popleft().result()  # a problem earlier in the file is the one to report
                raise
            job = partial(json_block_batch, data, rows, first)
            pending.append(parsers.submit(job, alone=ahead == 1))
            while pending and (len(pending) > ahead or pending[0].done()):
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for parse in pending:
            parse.cancel()


def _line_batches(parsers: Parsers, lines: LineBlocks, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """The batches of line blocks, parsed while the next ones are cut. A block the parser
    does not accept is framed exactly on its own; one that cannot be (a record continues past
    it, or an error) ends this, leaving the rest to the exact scanner."""
    pending: deque[tuple[LineBlock, Parse[pa.RecordBatch | None]]] = deque()

    def settle() -> list[pa.RecordBatch] | None:
        block, parsed = pending.popleft()
        batch = parsed.result()
        if batch is not None:
            lines.accepted(block)
            return [batch]
        batches = _framed(parsers, lines, block, batch_rows)
        if batches is not None:
            lines.accepted(block, records=sum(framed.num_rows for framed in batches))
        return batches

    try:
        for block in lines:
            parsed = parsers.submit(partial(json_lines_batch, block.data, block.rows))
            pending.append((block, parsed))
            while len(pending) > PARSERS or pending[0][1].done():
                if (batches := settle()) is None:
                    return
                yield from batches
                if not pending:
                    break
        while pending:
            if (batches := settle()) is None:
                return
            yield from batches
    finally:
        for _, parsed in pending:
            parsed.cancel()


def _framed(
    parsers: Parsers, lines: LineBlocks, block: LineBlock, batch_rows: int
) -> list[pa.RecordBatch] | None:
    """The block's records framed by the exact scanner, or None if they do not end with it."""
    data = lines.text(block)
    array = lines.array
    if array is not None:
        # The block's elements, as if their array closed after them.
        data, array = data + b"]", InArray(array.what, None)
    first = lines.first(block)
    scanner = RecordScanner(io.BytesIO(data), resume=Resume(block.offset, first, array))
    try:
        return list(_parsed(parsers, _json_blocks(scanner, batch_rows, first)))
    except DecodeError:
        return None


def _json_blocks(
    scanner: RecordScanner, batch_rows: int, first: int
) -> Iterator[tuple[bytes, int, int]]:
    """(NDJSON block, rows, index of its first record), each at most `batch_rows` rows."""
    parts: list[bytes] = []
    rows = size = 0
    for data, count in scanner:
        while rows + count > batch_rows:
            take = batch_rows - rows
            cut = -1
            for _ in range(take):
                cut = data.index(b"\n", cut + 1)
            parts.append(data[:cut])
            yield b"\n".join(parts), batch_rows, first
            first += batch_rows
            parts, rows, size = [], 0, 0
            data, count = data[cut + 1 :], count - take
        parts.append(data)
        rows += count
        size += len(data)
        if rows >= batch_rows or size >= JSON_CHUNK_BYTES:
            yield b"\n".join(parts), rows, first
            first += rows
            parts, rows, size = [], 0, 0
    if parts:
        yield b"\n".join(parts), rows, first


def csv_batches(stream: IO[bytes], header: Csv, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """The rows of a CSV stream whose header row `sniff` read; all cells are strings, an
    unquoted empty cell is null and a quoted one ("") the empty string."""
    names = list(header.names)
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise DecodeError(f"the CSV header names {', '.join(repeated)} more than once")
    if header.header_only:
        return
    rows = 0
    pending: list[pa.RecordBatch] = []
    counted = _QuoteCounter(stream)
    try:
        reader = pa_csv.open_csv(
            counted,
            read_options=pa_csv.ReadOptions(
                column_names=names, skip_rows=1, block_size=CSV_BLOCK_BYTES
            ),
            parse_options=pa_csv.ParseOptions(
                delimiter=header.delimiter,
                newlines_in_values=True,
            ),
            convert_options=pa_csv.ConvertOptions(
                column_types={name: pa.string() for name in names},
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
            ),
        )
        for batch in reader:
            counted.took_batch()
            pending.append(batch)
            pending_rows = sum(b.num_rows for b in pending)
            # Batches as large in memory as a JSON block's, not only as long: a batch of wide
            # rows costs several times its size while it is normalised.
            if pending_rows >= batch_rows or sum(b.nbytes for b in pending) >= CSV_BATCH_BYTES:
                for out in _rebatch(pending, min(pending_rows, batch_rows), final=False):
                    rows += out.num_rows
                    yield csv_batch(out)
        if counted.quotes % 2:
            # pyarrow takes an unclosed quote at the end as running to the end of the file,
            # which would swallow the rows after it into one value.
            raise DecodeError(
                "the CSV has an odd number of double quotes: a quoted value left open "
                "(truncated file?) or a stray quote in an unquoted value"
            )
        for out in _rebatch(pending, batch_rows, final=True):
            rows += out.num_rows
            yield csv_batch(out)
    except pa.ArrowInvalid as error:
        # pyarrow's message quotes the row; only its counts go into ours (no message content).
        if ragged := _RAGGED.search(str(error)):
            expected, actual = ragged.groups()
            raise DecodeError(
                f"a CSV row after data row {rows} has {actual} fields where the header has "
                f"{expected} (ragged rows or an unclosed quote)"
            ) from None
        if "straddles" in str(error):
            raise DecodeError(
                f"a CSV row after data row {rows} is larger than {CSV_BLOCK_BYTES} bytes"
            ) from None
        if "invalid UTF8" in str(error):
            raise DecodeError(f"the CSV has invalid UTF-8 after data row {rows}") from None
        raise DecodeError(f"the CSV cannot be read after data row {rows}: {error}") from None
    finally:
        counted.stop_holding_back()  # a reader given up must not wait for batches never taken


class _QuoteCounter(io.RawIOBase):
    """Passes a stream through, counting `"`: a well-formed CSV has an even number of them
    (quoted values open and close, and quotes inside them are doubled).

    It also holds pyarrow's CSV reader back: the reader reads up to 32 blocks ahead of the
    batches taken from it (64 MiB of raw text at our block size; not a setting pyarrow has).
    A read waits while `ahead` reads are not matched by batches taken (`took_batch`); a row
    never spans more than two blocks, so the reader always has what it needs for the next
    batch. Should a wait ever run out anyway, holding back stops for the rest of the file.
    """

    def __init__(self, inner: IO[bytes], ahead: int = CSV_READ_AHEAD) -> None:
        super().__init__()
        self._inner = inner
        self.quotes = 0
        self._ahead = ahead
        self._reads = 0
        self._taken = 0
        self._turn = threading.Condition()

    def readable(self) -> bool:
        return True

    def took_batch(self) -> None:
        with self._turn:
            self._taken += 1
            self._turn.notify_all()

    def stop_holding_back(self) -> None:
        """Lets every read through (the reader is being abandoned, or holding back failed)."""
        with self._turn:
            self._ahead = sys.maxsize
            self._turn.notify_all()

    def read(self, size: int | None = -1) -> bytes:
        with self._turn:
            caught_up = self._turn.wait_for(
                lambda: self._reads - self._taken < self._ahead, CSV_READ_AHEAD_WAIT
            )
            if not caught_up:
                self._ahead = sys.maxsize
            self._reads += 1
        data = self._inner.read(-1 if size is None else size)
        self.quotes += data.count(b'"')
        return data

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _rebatch(
    pending: list[pa.RecordBatch], batch_rows: int, final: bool
) -> Iterator[pa.RecordBatch]:
    """Cuts the batches in `pending` into `batch_rows`-row batches, leaving the remainder
    in `pending` unless `final`."""
    if not pending:
        return
    table = pa.Table.from_batches(pending).combine_chunks()
    pending.clear()
    start = 0
    while table.num_rows - start >= batch_rows or (final and start < table.num_rows):
        yield from table.slice(start, batch_rows).to_batches()
        start += batch_rows
    if start < table.num_rows:
        pending.extend(table.slice(start).to_batches())
