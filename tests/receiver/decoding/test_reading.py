"""read_batches: every file shape and wrapper decodes to the same rows."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import pytest

from receiver.decoding import DecodeError, UnrecognisedPayload, read_batches
from receiver.decoding.rows import KNOWN_FIELDS
from tests.receiver.decoding.shapes import (
    CSV_SHAPES,
    SHAPES,
    WRAPPERS,
    Message,
    decoded,
    expected,
    gzipped,
    ndjson,
    zip_of_parts,
)

MESSAGES: list[Message] = [
    {
        "id": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
        "chatId": "3f2504e0-4f89-11d3-9a0c-0305e82c3301",
        "chatThreadId": None,
        "content": 'Olá, "mundo"!\nLine two, with commas; semicolons\tand tabs 😀',
        "rawContent": None,
        "externalId": "ext-001",
        "role": "user",
        "senderId": "9b2d1c8e-1111-4a5b-8c7d-123456789abc",
        "createdAt": "2024-03-01T23:59:59.123456-03:00",
        "updatedAt": "2024-03-02T02:59:59Z",
    },
    {
        "id": "id-2",
        "chatId": "chat-1",
        "chatThreadId": "thread-[1]",
        "content": "",
        "rawContent": "{braces} and [brackets], \\ backslash, \r\n crlf",
        "role": "assistant",
        "createdAt": "2024-03-01T00:00:00Z",
    },
    {
        "id": "id-3",
        "chatId": "chat-1",
        "content": "ação, conteúdo — 中文 — \u2028 — \x00 nul",
        "role": "agent",
        "senderId": None,
        "createdAt": "2024-03-01T00:00:01+00:00",
        "updatedAt": None,
    },
]


def write(tmp_path: Path, data: bytes, name: str = "body.bin") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("wrap", WRAPPERS, ids=lambda w: w.__name__)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: s.__name__)
def test_every_shape_and_wrapper_decodes_to_the_same_rows(
    tmp_path: Path,
    shape: Callable[[list[Message]], bytes],
    wrap: Callable[[bytes], bytes],
) -> None:
    path = write(tmp_path, wrap(shape(MESSAGES)))

    assert decoded(path) == expected(MESSAGES)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: s.__name__)
def test_batches_hold_at_most_batch_rows_rows(
    tmp_path: Path, shape: Callable[[list[Message]], bytes]
) -> None:
    messages = [dict(MESSAGES[i % 3], id=f"m{i}") for i in range(50)]
    path = write(tmp_path, shape(messages))

    sizes = [batch.num_rows for batch in read_batches(path, batch_rows=7)]

    assert max(sizes) <= 7 and sum(sizes) == 50
    assert decoded(path, batch_rows=7) == expected(messages)


def test_the_file_name_does_not_matter(tmp_path: Path) -> None:
    path = write(tmp_path, gzipped(ndjson(MESSAGES)), name="export.csv")

    assert decoded(path) == expected(MESSAGES)


def test_zip_members_are_read_in_name_order_skipping_directories_and_resource_forks(
    tmp_path: Path,
) -> None:
    parts = {
        "part-2.json": ndjson(MESSAGES[2:]),
        "__MACOSX/._part-1.ndjson": b"\x00\x05\x16\x07junk",
        "part-1.ndjson": gzipped(ndjson(MESSAGES[:2])),
        "empty/": b"",
    }
    path = write(tmp_path, zip_of_parts(parts))

    assert decoded(path) == expected(MESSAGES)


def test_an_unreadable_zip_member_is_named_in_the_error(tmp_path: Path) -> None:
    path = write(tmp_path, zip_of_parts({"a.ndjson": ndjson(MESSAGES), "b.txt": b"hello"}))

    with pytest.raises(UnrecognisedPayload, match=r"zip member 'b\.txt'"):
        decoded(path)


@pytest.mark.parametrize(
    "data", [b"", b"  \n", b"[]", b'{"data": []}', b"[\n]\n", b"ID,Chat ID,Content\n"]
)
def test_empty_exports_yield_no_batches(tmp_path: Path, data: bytes) -> None:
    assert list(read_batches(write(tmp_path, data))) == []


def test_a_csv_header_without_a_line_break_is_an_empty_export(tmp_path: Path) -> None:
    assert list(read_batches(write(tmp_path, b"id,chatId,content"))) == []


def test_the_nested_zip_copy_is_removed_afterwards(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    path = write(tmp_path, gzipped(zip_of_parts({"a.ndjson": ndjson(MESSAGES)})))

    rows = [row for batch in read_batches(path, tmp_dir=scratch) for row in batch.to_pylist()]

    assert len(rows) == 3
    assert list(scratch.iterdir()) == []


def test_archives_nested_too_deep_are_refused(tmp_path: Path) -> None:
    data = ndjson(MESSAGES)
    for _ in range(4):
        data = gzip.compress(data)

    with pytest.raises(DecodeError, match="nested more than 3 deep"):
        decoded(write(tmp_path, data))


def test_unknown_formats_are_unrecognised_with_a_hint(tmp_path: Path) -> None:
    with pytest.raises(UnrecognisedPayload, match="looks like HTML"):
        decoded(write(tmp_path, b"<html><body>502 Bad Gateway</body></html>"))


def test_unknown_fields_follow_the_known_ones(tmp_path: Path) -> None:
    path = write(tmp_path, ndjson([dict(MESSAGES[0], ticketId=42)]))

    (batch,) = read_batches(path)

    assert batch.schema.names == [*KNOWN_FIELDS, "ticketId"]
    assert batch.column("ticketId").to_pylist() == ["42"]


@pytest.mark.parametrize("shape", CSV_SHAPES, ids=lambda s: s.__name__)
def test_csv_keeps_empty_strings_apart_from_absent_values(
    tmp_path: Path, shape: Callable[[list[Message]], bytes]
) -> None:
    rows = decoded(write(tmp_path, shape(MESSAGES)))

    assert rows[1]["content"] == ""
    assert rows[1]["senderId"] is None
