"""Which format a data file is in (from its first bytes), and readers for JSON and CSV.

Sniffing looks at content only: a file's name or Content-Type says nothing reliable.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

import pyarrow as pa
import pyarrow.csv as pa_csv

from receiver.decoding.archives import GZIP_MAGIC, ZIP_MAGICS
from receiver.decoding.errors import DecodeError
from receiver.decoding.jsonscan import RecordScanner
from receiver.decoding.labels import field_for, map_header
from receiver.decoding.rows import csv_batch, json_lines_batch

SNIFF_BYTES = 64 * 1024
# A batch of JSON lines is parsed once it holds this many bytes, even if short of batch_rows.
JSON_CHUNK_BYTES = 32 * 1024 * 1024
CSV_BLOCK_BYTES = 8 * 1024 * 1024
_DELIMITERS = (",", ";", "\t", "|")
_MIN_KNOWN_COLUMNS = 2


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
    line, newline, _ = head.partition(b"\n")
    if not newline and not whole:
        return None
    try:
        header = line.decode("utf-8").removeprefix("\ufeff").rstrip("\r")
    except UnicodeDecodeError:
        return None
    best: tuple[int, str, list[str]] | None = None
    for delimiter in _DELIMITERS:
        labels = next(csv.reader([header], delimiter=delimiter), [])
        known = len({field_for(label) for label in labels} - {None})
        if best is None or known > best[0]:
            best = (known, delimiter, labels)
    if best is None or best[0] < _MIN_KNOWN_COLUMNS:
        return None
    _, delimiter, labels = best
    return Csv(tuple(map_header(labels)), delimiter, header_only=not newline)


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
    """The records of a JSON or NDJSON stream, `batch_rows` (or 32 MiB) at a time."""
    scanner = RecordScanner(stream)
    lines: list[bytes] = []
    size = 0
    first = 0
    for record in scanner:
        lines.append(record)
        size += len(record)
        if len(lines) >= batch_rows or size >= JSON_CHUNK_BYTES:
            yield json_lines_batch(lines, first)
            first += len(lines)
            lines, size = [], 0
    if lines:
        yield json_lines_batch(lines, first)


def csv_batches(stream: IO[bytes], header: Csv, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """The rows of a CSV stream whose header row `sniff` read; all cells are strings, an
    unquoted empty cell is null and a quoted one ("") the empty string."""
    names = list(header.names)
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise DecodeError(f"the CSV header names {', '.join(repeated)} more than once")
    if header.header_only:
        return
    ragged: list[tuple[int, int]] = []

    def on_invalid_row(row: pa_csv.InvalidRow) -> str:
        ragged.append((row.actual_columns, row.expected_columns))
        return "error"

    rows = 0
    pending: list[pa.RecordBatch] = []
    try:
        reader = pa_csv.open_csv(
            stream,
            read_options=pa_csv.ReadOptions(
                column_names=names, skip_rows=1, block_size=CSV_BLOCK_BYTES
            ),
            parse_options=pa_csv.ParseOptions(
                delimiter=header.delimiter,
                newlines_in_values=True,
                invalid_row_handler=on_invalid_row,
            ),
            convert_options=pa_csv.ConvertOptions(
                column_types={name: pa.string() for name in names},
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
            ),
        )
        for batch in reader:
            pending.append(batch)
            if sum(b.num_rows for b in pending) >= batch_rows:
                for out in _rebatch(pending, batch_rows, final=False):
                    rows += out.num_rows
                    yield csv_batch(out)
        for out in _rebatch(pending, batch_rows, final=True):
            rows += out.num_rows
            yield csv_batch(out)
    except pa.ArrowInvalid as error:
        if ragged:
            actual, expected = ragged[0]
            raise DecodeError(
                f"a CSV row after data row {rows} has {actual} fields where the header has "
                f"{expected} (ragged rows or an unclosed quote)"
            ) from None
        if "invalid UTF8" in str(error):
            raise DecodeError(f"the CSV has invalid UTF-8 after data row {rows}") from None
        raise DecodeError(f"the CSV cannot be read after data row {rows}: {error}") from None


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
