"""NDJSON cut at line breaks: what the exact scanner would give, whatever a block holds."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from receiver.decoding import DecodeError
from receiver.decoding.jsonscan import Handoff, InArray, RecordScanner
from receiver.decoding.lines import LineBlocks
from tests.receiver.decoding.shapes import decoded

ONE = {"id": "a", "chatId": "c", "content": "x {y} [z]"}


def record(number: int, **fields: object) -> dict[str, object]:
    return {"id": f"m{number}", "chatId": "c", **fields}


def lines(*records: dict[str, object]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


def read(tmp_path: Path, data: bytes, batch_rows: int = 2) -> list[dict[str, object]]:
    path = tmp_path / "export.ndjson"
    path.write_bytes(data)
    return decoded(path, batch_rows=batch_rows)


def scanned(data: bytes) -> list[bytes]:
    """The records as the exact scanner frames them, one per item."""
    return [line for block, _ in RecordScanner(io.BytesIO(data)) for line in block.split(b"\n")]


def element_lines(*records: dict[str, object], opening: bytes = b"[\n") -> bytes:
    """An array of `records` one element per line, as streaming writers produce it."""
    return opening + b",\n".join(json.dumps(r).encode() for r in records) + b"\n]"


def one_line(*records: dict[str, object], separator: bytes = b",") -> bytes:
    """An array of `records` on one line: compact (`},{`), or as Python writes it (`}, {`)."""
    return b"[" + separator.join(json.dumps(r).encode() for r in records) + b"]"


def spaced(*records: dict[str, object]) -> bytes:
    return one_line(*records, separator=b", ")


@pytest.mark.parametrize("layout", [lines, element_lines, one_line, spaced])
def test_many_blocks_give_every_record_in_order(
    tmp_path: Path, layout: Callable[..., bytes]
) -> None:
    records = [record(n, content=f"text {n},\n{{not json}}") for n in range(25)]

    rows = read(tmp_path, layout(*records), batch_rows=3)

    assert [row["id"] for row in rows] == [r["id"] for r in records]
    assert [row["content"] for row in rows] == [r["content"] for r in records]


def test_a_record_spread_over_lines_in_a_later_block_is_framed_exactly(tmp_path: Path) -> None:
    pretty = json.dumps(record(3, content="spread"), indent=2).encode() + b"\n"
    data = lines(record(0), record(1), record(2)) + pretty + lines(record(4), record(5))

    rows = read(tmp_path, data, batch_rows=2)

    assert [row["id"] for row in rows] == ["m0", "m1", "m2", "m3", "m4", "m5"]
    assert rows[3]["content"] == "spread"


def test_unknown_and_nested_fields_in_a_later_block_keep_their_values(tmp_path: Path) -> None:
    data = lines(record(0), record(1), record(2, meta={"tags": [1, {"a": None}]}), record(3))

    rows = read(tmp_path, data, batch_rows=2)

    assert [row["id"] for row in rows] == ["m0", "m1", "m2", "m3"]
    assert json.loads(str(rows[2]["meta"])) == {"tags": [1, {"a": None}]}
    assert rows[3].get("meta") is None


def test_blank_lines_and_crlf_between_blocks_lose_nothing(tmp_path: Path) -> None:
    data = lines(record(0), record(1)).replace(b"\n", b"\r\n") + b"\r\n\n" + lines(record(2))

    assert [row["id"] for row in read(tmp_path, data, batch_rows=1)] == ["m0", "m1", "m2"]


@pytest.mark.parametrize(
    ("tail", "reason"),
    [
        (b"null\n", "expected a JSON object (NDJSON line), found 'n' at byte 22"),
        (b"[1]\n", "expected a JSON object (NDJSON line), found '[' at byte 22"),
        (b'{"x":' + b"[" * 100 + b"]" * 100 + b"}\n", "nested deeper than 64"),
        (b'{"x":' + b"[" * 50_000 + b"]" * 50_000 + b"}\n", "nested deeper than 64"),
        (b'{"id": "a\tb"}\n', "record 2 is not valid JSON"),
        (b'{"id":"a"} x\n', "expected a JSON object (NDJSON line), found 'x' at byte 33"),
        (b'{"id":"a"\n', "truncated"),
    ],
)
def test_a_bad_line_in_a_later_block_is_the_scanners_error(
    tmp_path: Path, tail: bytes, reason: str
) -> None:
    data = b'{"id":"a"}\n{"id":"b"}\n' + tail

    with pytest.raises(DecodeError, match=re.escape(reason)):
        read(tmp_path, data, batch_rows=1)


def blocks(data: bytes, block_bytes: int, accept: bool = True) -> tuple[list[bytes], LineBlocks]:
    cutter = LineBlocks(
        Handoff(b"", 0, b""),
        io.BytesIO(data),
        batch_rows=100,
        block_bytes=block_bytes,
        read_bytes=16,
    )
    out = []
    for block in cutter:
        out.append(block.data)
        if accept:
            cutter.accepted(block)
    return out, cutter


def test_blocks_are_whole_lines_and_nothing_is_left_once_all_are_accepted() -> None:
    data = lines(*(record(n) for n in range(9)))

    cut, cutter = blocks(data, block_bytes=64)

    assert b"\n".join(cut) + b"\n" == data
    assert all(len(block) <= 64 for block in cut[:-1])
    assert cutter.rest() is None


def test_the_scanner_resumes_at_the_oldest_block_not_accepted() -> None:
    data = lines(*(record(n) for n in range(9)))
    _, cutter = blocks(data, block_bytes=64, accept=False)

    rest = cutter.rest()

    assert rest is not None
    replay, resume = rest
    assert (resume.offset, resume.records) == (0, 0)
    assert scanned(replay.read()) == scanned(data)


def test_a_line_longer_than_a_block_hands_over_to_the_scanner() -> None:
    long = record(2, content="z" * 200)
    data = lines(record(0), record(1), long, record(3))

    cut, cutter = blocks(data, block_bytes=64)
    rest = cutter.rest()

    assert rest is not None
    replay, resume = rest
    assert resume.records == len(b"\n".join(cut).split(b"\n"))
    assert resume.offset == len(b"\n".join(cut)) + 1
    framed = list(RecordScanner(replay, resume=resume))
    assert [json.loads(line)["id"] for block, _ in framed for line in block.split(b"\n")] == [
        f"m{n}" for n in range(resume.records, 4)
    ]


def test_invalid_utf8_after_the_first_read_is_reported_at_its_byte() -> None:
    data = b'{"id":"a"}\n' * 10 + b'{"id":"\xff"}\n' + b'{"id":"b"}\n'
    _, cutter = blocks(data, block_bytes=32)

    rest = cutter.rest()

    assert rest is not None
    replay, resume = rest
    with pytest.raises(DecodeError, match="invalid UTF-8 at byte 117"):
        list(RecordScanner(replay, resume=resume))


@pytest.mark.parametrize("read_bytes", [1, 7, 16, 1000])
def test_blocks_cut_from_a_reused_buffer_give_back_every_byte_in_order(read_bytes: int) -> None:
    data = lines(*(record(n, content="é€😀" * (n % 4)) for n in range(40)))
    cutter = LineBlocks(
        Handoff(data[:5], 0, b""),
        io.BytesIO(data[5:]),
        batch_rows=3,
        block_bytes=96,
        read_bytes=read_bytes,
    )
    cut = []
    for number, block in enumerate(cutter):
        assert block.offset == len(b"".join(piece + b"\n" for piece in cut))
        cut.append(block.data)
        if number < 6:
            cutter.accepted(block)

    rest = cutter.rest()

    assert rest is not None
    replay, resume = rest
    assert b"\n".join(cut[:6]) + b"\n" + replay.read() == data
    assert resume.offset == len(b"\n".join(cut[:6])) + 1
    assert all(len(block.split(b"\n")) <= 3 for block in cut)


def exact_error(data: bytes) -> str:
    """What the exact scanner alone says of `data` (it must refuse it)."""
    with pytest.raises(DecodeError) as raised:
        list(RecordScanner(io.BytesIO(data)))
    return str(raised.value)


def test_members_after_a_wrappers_array_are_still_read(tmp_path: Path) -> None:
    records = [record(n) for n in range(7)]
    data = element_lines(*records, opening=b'{"status": "ok", "data": [\n')
    data += b', "next": {"cursor": [1, 2]}, "items": []}\n'

    rows = read(tmp_path, data, batch_rows=2)

    assert [row["id"] for row in rows] == [f"m{n}" for n in range(7)]


@pytest.mark.parametrize(
    "after",
    [
        b', "items": [{"id": "x"}]}',
        b"}, {}",
        b"",
        b', "next" null}',
    ],
)
def test_what_is_wrong_after_a_wrappers_array_is_the_scanners_error(
    tmp_path: Path, after: bytes
) -> None:
    data = element_lines(*(record(n) for n in range(5)), opening=b'{"data": [\n') + after

    with pytest.raises(DecodeError, match=re.escape(exact_error(data))):
        read(tmp_path, data, batch_rows=2)


def test_elements_spread_over_lines_in_a_later_block_are_framed_exactly(tmp_path: Path) -> None:
    pretty = json.dumps(record(3, content="spread"), indent=2).encode()
    data = element_lines(record(0), record(1), record(2), record(9), record(4), record(5))
    data = data.replace(json.dumps(record(9)).encode(), pretty)

    rows = read(tmp_path, data, batch_rows=2)

    assert [row["id"] for row in rows] == [f"m{n}" for n in range(6)]
    assert rows[3]["content"] == "spread"


@pytest.mark.parametrize("position", [2, 3, 4, 5])
def test_a_record_broken_between_two_inner_objects_is_one_record(
    tmp_path: Path, position: int
) -> None:
    # A record's own array broken across lines after an object, as if between elements.
    parts = [{"x": position}, {"y": position}]
    records = [record(n, parts=parts) if n == position else record(n) for n in range(9)]
    data = element_lines(*records).replace(b'}, {"y"', b'},\n{"y"')

    rows = read(tmp_path, data, batch_rows=2)

    assert [row["id"] for row in rows] == [f"m{n}" for n in range(9)]
    assert json.loads(str(rows[position]["parts"])) == parts


@pytest.mark.parametrize("separator", [b",\n\n", b" ,\n  ", b"\t,\n\n \n"])
def test_whitespace_between_elements_is_whitespace(tmp_path: Path, separator: bytes) -> None:
    data = element_lines(*(record(n) for n in range(6))).replace(b",\n", separator)

    rows = read(tmp_path, data, batch_rows=1)

    assert [row["id"] for row in rows] == [f"m{n}" for n in range(6)]


def test_unknown_fields_and_two_elements_on_a_line_lose_nothing(tmp_path: Path) -> None:
    data = element_lines(record(0), record(1, meta={"n": 1.50}), record(2), record(3))
    data = data.replace(b'"m2", "chatId": "c"},\n', b'"m2", "chatId": "c"}, ' + b'{"id": "m2b"},\n')

    rows = read(tmp_path, data, batch_rows=2)

    assert [row["id"] for row in rows] == ["m0", "m1", "m2", "m2b", "m3"]
    assert rows[1]["meta"] == '{"n":1.5}'


@pytest.mark.parametrize("separator", [b",\n", b",", b", "], ids=["lines", "one line", "spaced"])
@pytest.mark.parametrize("element", [b"null", b"[1]", b"{", b'{"id":"a"} x', b"", b"\n"])
def test_a_bad_element_in_a_later_block_is_the_scanners_error(
    tmp_path: Path, element: bytes, separator: bytes
) -> None:
    elements = [b'{"id":"a"}'] * 6 + [element] + [b'{"id":"b"}'] * 3
    data = b"[" + separator.join(elements) + b"]"

    with pytest.raises(DecodeError, match=re.escape(exact_error(data))):
        read(tmp_path, data, batch_rows=2)


def test_an_element_nested_too_deep_in_a_later_block_is_refused(tmp_path: Path) -> None:
    deep = b'{"x":' + b"[" * 100 + b"]" * 100 + b"}"
    data = b"[\n" + b",\n".join([b'{"id":"a"}'] * 6 + [deep] + [b'{"id":"b"}'] * 3) + b"\n]"

    with pytest.raises(DecodeError, match="nested deeper than 64"):
        read(tmp_path, data, batch_rows=2)


def test_an_element_that_is_not_valid_json_is_named(tmp_path: Path) -> None:
    data = element_lines(*(record(n) for n in range(6))).replace(b'"m4"', b'"m\t4"')

    with pytest.raises(DecodeError, match="record 4 is not valid JSON"):
        read(tmp_path, data, batch_rows=2)


TOP_LEVEL = InArray("the top-level array", None)


def test_an_array_on_one_line_is_cut_between_its_elements() -> None:
    records = [record(n, content="x" * 20) for n in range(12)]
    data = one_line(*records)
    cutter = LineBlocks(
        Handoff(data[1:], 1, b"", TOP_LEVEL), io.BytesIO(b""), batch_rows=5, block_bytes=200
    )

    cut = []
    for block in cutter:
        cut.append(block)
        cutter.accepted(block)

    assert len(cut) > 2
    lines_cut = [line for block in cut for line in block.data.split(b"\n")]
    assert [json.loads(line)["id"] for line in lines_cut] == [f"m{n}" for n in range(11)]
    assert all(block.rows <= 5 for block in cut)
    rest = cutter.rest()
    assert rest is not None
    replay, resume = rest
    assert resume.records == 11
    assert replay.read() == json.dumps(records[11]).encode() + b"]"


@pytest.mark.parametrize("layout", [one_line, spaced])
@pytest.mark.parametrize("position", [1, 2, 3, 4, 5])
def test_a_separator_inside_a_record_leaves_it_one_record(
    tmp_path: Path, layout: Callable[..., bytes], position: int
) -> None:
    # The separator between elements, inside a string and between a nested array's objects.
    parts = [{"x": position}, {"y": position}]
    inside = record(position, content='a},{b}, {"c"', parts=parts)
    records = [inside if n == position else record(n) for n in range(8)]

    rows = read(tmp_path, layout(*records), batch_rows=2)

    assert [row["id"] for row in rows] == [f"m{n}" for n in range(8)]
    assert rows[position]["content"] == 'a},{b}, {"c"'
    assert json.loads(str(rows[position]["parts"])) == parts


def test_both_separators_and_line_breaks_in_one_array_lose_nothing(tmp_path: Path) -> None:
    data = one_line(*(record(n) for n in range(10)))
    data = data.replace(b'}, {"id": "m3"', b'},{"id": "m3"').replace(
        b'{"id": "m6"', b'\n{"id": "m6"'
    )

    rows = read(tmp_path, data, batch_rows=2)

    assert [row["id"] for row in rows] == [f"m{n}" for n in range(10)]


def test_unknown_fields_and_a_wrapper_around_a_one_line_array_lose_nothing(
    tmp_path: Path,
) -> None:
    records = [record(n, meta={"n": 1.50, "tags": [{"a": n}, {"b": -0}]}) for n in range(9)]
    data = b'{"status": "ok", "data": ' + spaced(*records) + b', "next": {"cursor": [1]}}'

    rows = read(tmp_path, data, batch_rows=2)

    assert [row["id"] for row in rows] == [f"m{n}" for n in range(9)]
    assert [row["meta"] for row in rows] == [
        f'{{"n":1.5,"tags":[{{"a":{n}}},{{"b":0}}]}}' for n in range(9)
    ]


@pytest.mark.parametrize(
    ("early", "bad"),
    [(b"\n\n\n", 7), (b'{"id":"x"} {"id":"y"}\n', 9)],
    ids=["blank lines", "two records on a line"],
)
def test_records_after_a_block_framed_exactly_are_numbered_as_the_scanner_numbers_them(
    tmp_path: Path, early: bytes, bad: int
) -> None:
    good = b'{"id":"a"}\n'
    data = good * 3 + early + good * 4 + b'{"id": "a\tb"}\n'

    with pytest.raises(DecodeError, match=f"record {bad} is not valid JSON"):
        read(tmp_path, data, batch_rows=2)


def test_elements_after_a_block_framed_exactly_are_numbered_as_the_scanner_numbers_them(
    tmp_path: Path,
) -> None:
    good = b'{"id":"a"},\n'
    data = b"[\n" + good * 3 + b'{"id":"x"},{"id":"y"},\n' + good * 4 + b"null\n]"

    with pytest.raises(DecodeError, match=re.escape(exact_error(data))):
        read(tmp_path, data, batch_rows=2)
