from __future__ import annotations

import json
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pytest

from storage.records import Lineage, as_timestamp, normalize_batch, reject_lines
from storage.schema import MESSAGE_SCHEMA
from tests.storage.messages import DAY, INGESTED, WINDOW, batch, message

LINEAGE = Lineage("export-1", WINDOW, INGESTED)


def normalize(records: list[dict[str, object]]) -> tuple[list[dict[str, object]], list[dict]]:
    result = normalize_batch(batch(records), LINEAGE)
    assert result.batch.schema.equals(MESSAGE_SCHEMA)
    return result.batch.to_pylist(), [json.loads(r.to_json()) for r in result.rejects]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-03-01T10:00:00Z", datetime(2024, 3, 1, 10, tzinfo=UTC)),
        ("2024-03-01T10:00:00.123456+02:00", datetime(2024, 3, 1, 8, 0, 0, 123456, tzinfo=UTC)),
        ("2024-03-01T10:00:00-0530", datetime(2024, 3, 1, 15, 30, tzinfo=UTC)),
        ("2024-03-01 10:00:00+00:00", datetime(2024, 3, 1, 10, tzinfo=UTC)),
        ("2024-03-01T10:00:00.123456789Z", datetime(2024, 3, 1, 10, 0, 0, 123456, tzinfo=UTC)),
        ("2024-03-01T10:00:00", datetime(2024, 3, 1, 10, tzinfo=UTC)),
    ],
)
def test_timestamps_with_any_offset_become_utc(text: str, expected: datetime) -> None:
    rows, rejects = normalize([message(1, DAY, createdAt=text)])
    assert rejects == []
    assert rows[0]["created_at"] == expected


@pytest.mark.parametrize(
    ("created", "expected"),
    [
        (" 2024-03-01T10:00:00Z", datetime(2024, 3, 1, 10, tzinfo=UTC)),
        ("2024-03-01T10:00:00.5+01:00\t", datetime(2024, 3, 1, 9, 0, 0, 500000, tzinfo=UTC)),
        ("", None),
        ("   ", None),
    ],
)
def test_space_around_a_timestamp_is_ignored_and_a_blank_one_is_missing(
    created: str, expected: datetime | None
) -> None:
    rows, rejects = normalize(
        [message(1, DAY, createdAt="2024-03-01T08:00:00Z"), message(2, DAY, createdAt=created)]
    )

    assert [row["created_at"] for row in rows][1:] == ([expected] if expected else [])
    assert [reject["reason"] for reject in rejects] == ([] if expected else ["missing createdAt"])


def test_a_bad_timestamp_in_a_batch_does_not_spoil_the_others() -> None:
    rows, rejects = normalize(
        [
            message(1, DAY, createdAt="2024-03-01T10:00:00Z"),
            message(2, DAY, createdAt="yesterday"),
            message(3, DAY, createdAt="2024-03-01T11:00:00.5+01:00"),
        ]
    )
    assert [row["created_at"] for row in rows] == [
        datetime(2024, 3, 1, 10, tzinfo=UTC),
        datetime(2024, 3, 1, 10, 0, 0, 500000, tzinfo=UTC),
    ]
    assert rejects == [
        {
            "reason": "createdAt is not an ISO-8601 date-time: 'yesterday'",
            "record": message(2, DAY, createdAt="yesterday"),
        }
    ]


def test_rows_without_id_chat_or_created_at_are_rejected_with_reasons() -> None:
    rows, rejects = normalize(
        [
            message(1, DAY, id=None),
            message(2, DAY, id=""),
            message(3, DAY, chatId=None),
            message(4, DAY, createdAt=None),
            message(5, DAY, id=None, chatId=None),
            message(6, DAY),
        ]
    )
    assert [row["id"] for row in rows] == [message(6, DAY)["id"]]
    assert [r["reason"] for r in rejects] == [
        "missing id",
        "missing id",
        "missing chatId",
        "missing createdAt",
        "missing id; missing chatId",
    ]
    assert rejects[2]["record"] == message(3, DAY, chatId=None)


def test_missing_columns_become_nulls_and_missing_id_column_rejects_all() -> None:
    rows, _ = normalize([{"id": "a", "chatId": "c", "createdAt": "2024-03-01T00:00:00Z"}])
    assert rows[0]["content"] is None and rows[0]["role"] is None
    assert rows[0]["updated_at"] is None and rows[0]["extra"] is None
    rows, rejects = normalize([{"chatId": "c", "createdAt": "2024-03-01T00:00:00Z"}])
    assert rows == [] and rejects[0]["reason"] == "missing id"


def test_unknown_fields_go_to_extra_as_json_without_nulls() -> None:
    rows, _ = normalize(
        [
            message(1, DAY, ticketIds=["t1", "t2"], score=3, meta={"lang": "ptBr"}),
            message(2, DAY, ticketIds=None, score=None, meta=None),
        ]
    )
    assert json.loads(str(rows[0]["extra"])) == {
        "meta": {"lang": "ptBr"},
        "score": 3,
        "ticketIds": ["t1", "t2"],
    }
    assert rows[1]["extra"] is None


def test_unparseable_updated_at_is_kept_in_extra() -> None:
    rows, rejects = normalize([message(1, DAY, updatedAt="not a time")])
    assert rejects == []
    assert rows[0]["updated_at"] is None
    assert json.loads(str(rows[0]["extra"])) == {"updatedAt": "not a time"}


def test_role_is_dictionary_encoded_and_lineage_is_stamped() -> None:
    result = normalize_batch(batch([message(n, DAY) for n in range(6)]), LINEAGE)
    role = result.batch.column("role")
    assert role.type == pa.dictionary(pa.int32(), pa.string())
    assert sorted(role.dictionary.to_pylist()) == ["agent", "assistant", "user"]
    row = result.batch.to_pylist()[0]
    assert row["_export_id"] == "export-1"
    assert row["_window_start"] == WINDOW.start
    assert row["_window_end"] == WINDOW.end
    assert row["_ingested_at"] == INGESTED


def test_long_content_is_kept_whole() -> None:
    content = "x" * 250_000
    rows, _ = normalize([message(1, DAY, content=content)])
    assert rows[0]["content"] == content


def test_types_inferred_by_the_json_reader_are_accepted() -> None:
    data = (
        b'{"id": "a", "chatId": "c", "createdAt": "2024-03-01T10:00:00+02:00",'
        b' "updatedAt": "2024-03-01T10:00:00Z", "externalId": 12345, "nested": {"k": [1, 2]}}\n'
    )
    table = pajson.read_json(pa.BufferReader(data))
    assert pa.types.is_timestamp(table.schema.field("createdAt").type)
    result = normalize_batch(table.to_batches()[0], LINEAGE)
    row = result.batch.to_pylist()[0]
    assert row["created_at"] == datetime(2024, 3, 1, 8, tzinfo=UTC)
    assert row["external_id"] == "12345"
    assert json.loads(str(row["extra"])) == {"nested": {"k": [1, 2]}}


def test_types_inferred_by_the_csv_reader_are_accepted() -> None:
    data = b"id,chatId,createdAt,updatedAt,role\na,c,2024-03-01T10:00:00-03:00,,user\n"
    table = pacsv.read_csv(pa.BufferReader(data))
    row = normalize_batch(table.to_batches()[0], LINEAGE).batch.to_pylist()[0]
    assert row["created_at"] == datetime(2024, 3, 1, 13, tzinfo=UTC)
    assert row["updated_at"] is None
    assert row["role"] == "user"


def test_numbers_are_not_taken_for_timestamps() -> None:
    stamps, bad = as_timestamp(pa.array([1709251200, None]))
    assert stamps.to_pylist() == [None, None]
    assert bad.to_pylist() == [True, False]


def test_reject_lines_give_each_record_back_in_the_api_s_fields() -> None:
    tricky = 'quote " backslash \\ newline \n tab \t bell \x07 unicode ação 😀'
    records = [
        message(1, DAY, content=tricky, ticketIds=["t1"], meta={"a": {"b": [1, 2.5]}}),
        message(2, datetime(2024, 3, 1, 10, 0, 0, 123456, tzinfo=UTC), rawContent=None),
        message(3, DAY, updatedAt=None, role=None),
    ]
    normalized = normalize_batch(batch(records), Lineage("e", WINDOW, INGESTED)).batch

    reason = "createdAt lies outside the requested window"
    lines = reject_lines(normalized, reason)

    text = "".join(lines.to_pylist())
    assert text.count("\n") == len(records) and text.endswith("\n")
    parsed = [json.loads(line) for line in text.splitlines()]
    assert [line["reason"] for line in parsed] == [reason] * 3
    assert [line["record"] for line in parsed] == records
