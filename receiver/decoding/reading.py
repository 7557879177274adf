"""read_batches: a data file, whatever its wrapping, as a stream of Arrow record batches."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing
from pathlib import Path
from typing import IO, cast

import pyarrow as pa

from receiver.decoding.archives import (
    ExpansionBudget,
    Opener,
    gunzip,
    open_file,
    spool,
    zip_members,
)
from receiver.decoding.errors import DecodeError, UnrecognisedPayload
from receiver.decoding.formats import (
    SNIFF_BYTES,
    Csv,
    Gzip,
    Json,
    Zip,
    csv_batches,
    describe,
    json_batches,
    sniff,
)
from receiver.decoding.readahead import ReadAhead

MAX_LAYERS = 3  # e.g. a zip holding gzip files is two


def read_batches(
    path: Path, *, batch_rows: int = 65536, tmp_dir: Path | None = None
) -> Iterator[pa.RecordBatch]:
    """The messages in the data file at `path`, as record batches of at most `batch_rows` rows.

    The format is sniffed from the content (gzip and zip are unwrapped, zip members read in
    name order): a JSON array of messages, a JSON object holding that array under `data`,
    `messages`, `chatMessages`, `items` or `records`, NDJSON, or CSV whose header row names
    the API's fields or their enUs/esEs/ptBr labels. Each batch has the API's ten fields as
    string columns (named as in the API, null when absent) followed by any unknown fields as
    JSON text (see `rows`). Batches of one file may differ in their unknown columns. An empty
    file, an empty array, or a CSV with only a header, yields no batches.

    Raises DecodeError (UnrecognisedPayload for an unknown format) saying what is wrong;
    batches yielded before the error are then not to be trusted as the whole export.
    `tmp_dir` holds the copy of a zip nested in another archive; memory stays bounded by
    `batch_rows` and the size of a single record.
    """
    if batch_rows < 1:
        raise ValueError("batch_rows must be at least 1")
    budget = ExpansionBudget(path.stat().st_size)
    with ExitStack() as cleanup:

        def scratch() -> Path:
            return Path(cleanup.enter_context(tempfile.TemporaryDirectory(dir=tmp_dir)))

        yield from _read(open_file(path), path, 0, budget, batch_rows, scratch)


def _ahead(stream: IO[bytes], depth: int) -> IO[bytes]:
    """A decompressing stream read ahead in a thread (inflating overlaps with parsing)."""
    return cast(IO[bytes], ReadAhead(stream)) if depth else stream


def _read(
    opener: Opener,
    path: Path | None,
    depth: int,
    budget: ExpansionBudget,
    batch_rows: int,
    scratch: Callable[[], Path],
) -> Iterator[pa.RecordBatch]:
    with opener() as stream:
        head = stream.read(SNIFF_BYTES)
        whole = len(head) < SNIFF_BYTES or not stream.read(1)
    found = sniff(head, whole)
    if isinstance(found, Gzip | Zip) and depth >= MAX_LAYERS:
        raise DecodeError(f"archives nested more than {MAX_LAYERS} deep")
    if isinstance(found, Gzip):
        yield from _read(gunzip(opener, budget), None, depth + 1, budget, batch_rows, scratch)
    elif isinstance(found, Zip):
        archive = path if path is not None else spool(opener, scratch(), budget)
        with zip_members(archive, budget) as members:
            for name, member in members:
                try:
                    yield from _read(member, None, depth + 1, budget, batch_rows, scratch)
                except DecodeError as error:
                    if str(error).startswith(f"zip member {name!r}"):
                        raise
                    raise type(error)(f"zip member {name!r}: {error}") from None
    elif isinstance(found, Json):
        with opener() as stream, closing(_ahead(stream, depth)) as ahead:
            yield from json_batches(ahead, batch_rows)
    elif isinstance(found, Csv):
        with opener() as stream:
            yield from csv_batches(stream, found, batch_rows)
    else:
        raise UnrecognisedPayload(describe(head))
