"""The JSON framing: wrappers, NDJSON, and malformed or hostile JSON as a DecodeError."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from receiver.decoding import DecodeError
from tests.receiver.decoding.shapes import decoded

ONE = {"id": "a", "chatId": "c"}
TWO = {"id": "b", "chatId": "c"}


def read(tmp_path: Path, data: bytes) -> list[dict[str, object]]:
    path = tmp_path / "export"
    path.write_bytes(data)
    return decoded(path)


def ids(rows: list[dict[str, object]]) -> list[object]:
    return [row["id"] for row in rows]


def test_metadata_around_the_wrapped_array_is_ignored(tmp_path: Path) -> None:
    data = json.dumps({"page": {"n": [1, 2]}, "items": [ONE, TWO], "total": 2, "ok": True})

    assert ids(read(tmp_path, data.encode())) == ["a", "b"]


def test_an_object_with_an_id_before_a_data_array_is_a_message(tmp_path: Path) -> None:
    data = json.dumps({"id": "x", "chatId": "c", "data": [ONE]}).encode()

    rows = read(tmp_path, data)

    assert ids(rows) == ["x"]
    assert rows[0]["data"] == json.dumps([ONE], separators=(",", ":"))


def test_a_single_message_object_is_one_row(tmp_path: Path) -> None:
    assert ids(read(tmp_path, json.dumps(ONE, indent=2).encode())) == ["a"]


def test_nested_unknown_fields_survive_the_framing(tmp_path: Path) -> None:
    nested = dict(ONE, meta={"tags": ["x", {"y": [1, 2, {"z": None}]}]})
    data = (json.dumps([nested, TWO], indent=1) + "\n").encode()

    rows = read(tmp_path, data)

    assert json.loads(str(rows[0]["meta"])) == nested["meta"]
    assert rows[1]["meta"] is None


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"[" * 100_000, "element 0 of the top-level array is not an object"),
        (b"{" * 100_000, "expected a quoted key"),
        (b'[{"a":' + b"[" * 100_000, "nested deeper than 64"),
        (b'{"data":[{"a":' + b"{" * 100_000, "nested deeper than 64"),
        (b'{"id":"a"}\n{"x":' + b"[" * 100_000 + b"]" * 100_000 + b"}\n", "nested deeper"),
        (b'[{"id":"a"},', "truncated"),
        (b'[{"id":"a"', "truncated"),
        (b'[{"id":"a\\', "truncated"),
        (b'{"data":[{"id":"a"}]', "truncated"),
        (b'[{"id":"a"},]', "is not an object"),
        (b'[{"id":"a"}]]', "unexpected data after the top-level array"),
        (b'[{"id":"a"}] {"id":"b"}', "unexpected data after the top-level array"),
        (b'{"data":[{"id":"a"}]}\n{"id":"b"}', "after the object holding the messages"),
        (b'{"data":[{"id":"a"}],"items":[{"id":"b"}]}', "under both 'data' and 'items'"),
        (b'[{"id":"a"} {"id":"b"}]', "expected ',' or ']'"),
        (b'{"id":"a"}\n[1]\n', "expected a JSON object"),
        (b'{"id":"a"}\n"text"\n', "expected a JSON object"),
        (b"[1, 2]", "is not an object"),
        (b'[{"id":"a"}, null]', "is not an object"),
        (b'[{"id": "a\nb"}]', "raw line break in a string"),
        (b'{"id": "a",\n "x": "b\rc"}', "raw line break in a string"),
        (b'[{"id": "a\tb"}]', "record 0 is not valid JSON"),
        (b'[{"id": tru}]', "record 0 is not valid JSON"),
        (b'[{"id":"a"},{"id": "b",}]', "record 1 is not valid JSON"),
        (b'[{"id":"a"]', "mismatched"),
        (b'{"id":"a"}\n{"id":"\xff"}', "invalid UTF-8 at byte 18"),
        (b'[{"id":"\xc3"}]', "invalid UTF-8"),
        (b'{"id":"a"}\n\xe2\x82', "found byte 0xe2 at byte 11"),
        (b"\xef\xbb\xbf\xef\xbb\xbf[]", "not a supported format"),
        (b'{"\xff": 1}', "invalid UTF-8"),
    ],
)
def test_malformed_json_is_a_decode_error_naming_the_problem(
    tmp_path: Path, data: bytes, reason: str
) -> None:
    with pytest.raises(DecodeError, match=reason):
        read(tmp_path, data)


def test_errors_carry_the_byte_offset(tmp_path: Path) -> None:
    data = b'[{"id":"a"},\n {"id":"b"}\n x]'

    with pytest.raises(DecodeError, match="at byte 26"):
        read(tmp_path, data)


def test_records_crossing_read_chunks_are_reassembled(tmp_path: Path) -> None:
    content = "ü" * 3_000_000  # 6 MB of two-byte characters: records cross the 4 MiB reads
    messages = [dict(ONE, content=content), dict(TWO, content=content[:10], x=[{"y": 1}])]
    data = json.dumps(messages, ensure_ascii=False).encode()

    rows = read(tmp_path, data)

    assert [row["content"] for row in rows] == [content, content[:10]]
