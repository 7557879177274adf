"""The batch layout: known fields as strings, unknown fields as JSON text, and `extra`."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from receiver.decoding import (
    JSON_TEXT_METADATA,
    DecodeError,
    extra_column,
    is_unknown,
    read_batches,
)
from receiver.decoding.rows import KNOWN_FIELDS

BASE = {"id": "a", "chatId": "c", "createdAt": "2024-01-01T00:00:00+03:00"}


def batch_of(tmp_path: Path, lines: list[object]) -> pa.RecordBatch:
    path = tmp_path / "export.ndjson"
    path.write_text("\n".join(json.dumps(line) for line in lines))
    (batch,) = read_batches(path)
    return batch


def test_date_like_strings_stay_exactly_as_sent(tmp_path: Path) -> None:
    batch = batch_of(tmp_path, [dict(BASE, deletedAt="2024-01-01T00:00:00.123456789+03:00")])

    assert batch.column("createdAt").to_pylist() == ["2024-01-01T00:00:00+03:00"]
    assert batch.column("deletedAt").to_pylist() == ['"2024-01-01T00:00:00.123456789+03:00"']


def test_unknown_fields_are_json_text_marked_as_such(tmp_path: Path) -> None:
    batch = batch_of(
        tmp_path,
        [
            dict(BASE, meta={"a": [1, 2.5, None]}),
            dict(BASE, meta="text"),
            dict(BASE, meta=None),
            BASE,
        ],
    )

    field = batch.schema.field("meta")
    assert is_unknown(field) and field.metadata == JSON_TEXT_METADATA
    assert batch.column("meta").to_pylist() == ['{"a":[1,2.5,null]}', '"text"', "null", None]
    assert not any(is_unknown(batch.schema.field(name)) for name in KNOWN_FIELDS)


def test_known_fields_that_are_not_strings_become_their_json_text(tmp_path: Path) -> None:
    batch = batch_of(tmp_path, [dict(BASE, id=123, role={"name": "user"}, content=True)])

    row = batch.to_pylist()[0]
    assert (row["id"], row["role"], row["content"]) == ("123", '{"name":"user"}', "true")


def test_other_spellings_of_known_fields_count_as_them(tmp_path: Path) -> None:
    batch = batch_of(
        tmp_path,
        [
            {"id": "a", "chat_id": "c", "Created at": "t"},
            {"id": "b", "chatId": "c", "chat_id": "d"},
        ],
    )

    rows = batch.to_pylist()
    assert (rows[0]["chatId"], rows[0]["createdAt"]) == ("c", "t")
    assert (rows[1]["chatId"], rows[1]["chat_id"]) == ("c", '"d"')


def test_lone_surrogate_escapes_become_replacement_characters(tmp_path: Path) -> None:
    path = tmp_path / "export.ndjson"
    path.write_bytes(b'{"id":"a","content":"broken \\ud83d emoji","x":"\\udc00"}\n')

    (batch,) = read_batches(path)

    assert batch.column("content").to_pylist() == ["broken \ufffd emoji"]
    assert batch.column("x").to_pylist() == ['"\ufffd"']


def test_duplicate_keys_keep_the_last_value(tmp_path: Path) -> None:
    path = tmp_path / "export.ndjson"
    path.write_bytes(b'{"id":"a","id":"b"}\n')

    (batch,) = read_batches(path)

    assert batch.column("id").to_pylist() == ["b"]


def test_extra_column_folds_unknown_fields_into_one_json_object_per_row(tmp_path: Path) -> None:
    batch = batch_of(
        tmp_path, [dict(BASE, ticketId=7, meta={"k": "v"}), BASE, dict(BASE, ticketId=None)]
    )

    extra = extra_column(batch).to_pylist()

    assert [None if e is None else json.loads(e) for e in extra] == [
        {"ticketId": 7, "meta": {"k": "v"}},
        None,
        {"ticketId": None},
    ]


def test_extra_column_is_null_without_unknown_fields(tmp_path: Path) -> None:
    batch = batch_of(tmp_path, [BASE, BASE])

    assert extra_column(batch).to_pylist() == [None, None]


def test_csv_unknown_columns_are_json_strings(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text('ID,Chat ID,Ticket\n"a","c","T-1"\n"b","c",\n')

    (batch,) = read_batches(path)

    assert batch.schema.names == [*KNOWN_FIELDS, "Ticket"]
    assert extra_column(batch).to_pylist() == ['{"Ticket":"T-1"}', None]


def test_hundreds_of_unknown_fields_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "export.ndjson"
    path.write_text("\n".join(json.dumps(dict(BASE, **{f"k{i}": i})) for i in range(300)))

    with pytest.raises(DecodeError, match="more than 256 fields the API does not have"):
        list(read_batches(path))
