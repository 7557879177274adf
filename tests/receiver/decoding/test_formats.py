"""Sniffing by content, and the CSV reader's handling of headers and malformed rows."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import pytest

from receiver.decoding import DecodeError, UnrecognisedPayload
from receiver.decoding.formats import CSV_BLOCK_BYTES, Csv, Gzip, Json, Zip, _QuoteCounter, sniff
from tests.receiver.decoding.shapes import decoded


def read(tmp_path: Path, data: bytes) -> list[dict[str, object]]:
    path = tmp_path / "export"
    path.write_bytes(data)
    return decoded(path)


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"\x1f\x8b\x08\x00", Gzip),
        (b"PK\x03\x04", Zip),
        (b"PK\x05\x06" + b"\x00" * 18, Zip),
        (b"\xef\xbb\xbf \n[", Json),
        (b'\t{"id":1}', Json),
        (b"", Json),
        (b"ID;Chat ID;Conte\xc3\xbado\n", Csv),
    ],
)
def test_sniffs_the_format_from_the_first_bytes(head: bytes, kind: type) -> None:
    assert isinstance(sniff(head, whole=True), kind)


@pytest.mark.parametrize(
    "head",
    [b"id\n1\n", b"name,email\n", b"ID,Ch\xffat ID\n", b"hello", b"ID,Chat ID" + b"x" * 10],
)
def test_a_csv_header_must_name_two_known_fields(head: bytes) -> None:
    assert sniff(head, whole=head != b"ID,Chat ID" + b"x" * 10) is None


def test_picks_the_delimiter_that_names_the_most_fields() -> None:
    found = sniff(b"Created at;ID;Contenido, con coma\n", whole=True)

    assert isinstance(found, Csv)
    assert (found.delimiter, found.names) == (";", ("createdAt", "id", "Contenido, con coma"))


def test_csv_fields_may_span_lines_and_hold_quotes(tmp_path: Path) -> None:
    rows = read(tmp_path, b'ID,Chat ID,Content\r\n"a","c","line 1\r\nline ""2"", end"\r\n')

    assert rows[0]["content"] == 'line 1\r\nline "2", end'


def test_ragged_csv_rows_are_a_decode_error(tmp_path: Path) -> None:
    data = b"ID,Chat ID,Content\na,c,x\nb,c\n"

    with pytest.raises(DecodeError, match="has 2 fields where the header has 3"):
        read(tmp_path, data)


def test_an_unclosed_quote_is_a_decode_error(tmp_path: Path) -> None:
    with pytest.raises(DecodeError, match="quoted value left open"):
        read(tmp_path, b'ID,Chat ID,Content\na,c,"never closed\nb,c,x\n')


def test_invalid_utf8_in_csv_is_a_decode_error(tmp_path: Path) -> None:
    with pytest.raises(DecodeError, match="invalid UTF-8"):
        read(tmp_path, b"ID,Chat ID,Content\na,c,caf\xe9\n")


def test_a_field_named_twice_in_the_header_is_a_decode_error(tmp_path: Path) -> None:
    with pytest.raises(DecodeError, match="names id more than once"):
        read(tmp_path, b"ID,id,Chat ID\n1,2,3\n")


def test_text_that_is_not_a_known_header_is_unrecognised(tmp_path: Path) -> None:
    with pytest.raises(UnrecognisedPayload, match="starts with b'name,email"):
        read(tmp_path, b"name,email\nana,a@example.com\n")


def test_a_csv_row_larger_than_a_read_block_is_a_decode_error(tmp_path: Path) -> None:
    huge = b"x" * (3 * CSV_BLOCK_BYTES)

    with pytest.raises(DecodeError, match="is larger than"):
        read(tmp_path, b'ID,Chat ID,Content\na,c,"' + huge + b'"\n')


def test_the_csv_reader_is_held_to_a_few_blocks_ahead_of_the_batches_taken() -> None:
    counted = _QuoteCounter(io.BytesIO(b"x" * 100), ahead=2)
    reads: list[bytes] = []

    def reader() -> None:
        for _ in range(4):
            reads.append(counted.read(10))

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    while len(reads) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    thread.join(0.2)
    assert len(reads) == 2 and thread.is_alive()  # held: two reads, no batch taken yet

    counted.took_batch()
    counted.stop_holding_back()
    thread.join(5)
    assert len(reads) == 4 and not thread.is_alive()
