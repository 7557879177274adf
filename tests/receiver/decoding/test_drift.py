"""Unknown fields (schema drift): whatever they hold, in whatever shape, `extra` carries each
value exactly as sent, and the block-wise path gives what the per-record path gives."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from receiver.decoding import read_batches
from receiver.decoding.labels import field_for
from receiver.decoding.rows import KNOWN_FIELDS, _python_batch, json_block_batch
from storage.jsontext import compact, compact_text, json_strings
from storage.layout import Window
from storage.records import Lineage, normalize_batch
from tests.receiver.decoding.shapes import CSV_SHAPES, JSON_SHAPES, WRAPPERS, Message

FAST = settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)
WINDOW = Window(datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 3, 2, tzinfo=UTC))
LINEAGE = Lineage("export-1", WINDOW, datetime(2024, 3, 3, tzinfo=UTC))

# Numbers as JSON lets them be written: signs, zeros, fractions with trailing zeros,
# exponents of every spelling, integers far beyond 64 bits.
digits = st.text(alphabet="0123456789", min_size=1, max_size=30)
integer = st.builds(
    lambda sign, first, rest: sign + (first + rest if first != "0" else "0"),
    st.sampled_from(["", "-"]),
    st.sampled_from(list("0123456789")),
    st.text(alphabet="0123456789", max_size=40),
)
number = st.builds(
    lambda whole, fraction, exponent: whole + fraction + exponent,
    integer,
    st.sampled_from([""]) | digits.map(lambda d: "." + d),
    st.sampled_from([""])
    | st.builds(
        lambda e, s, d: e + s + d, st.sampled_from("eE"), st.sampled_from(["", "+", "-"]), digits
    ),
)
string = st.builds(
    lambda text, ascii_only: json.dumps(text, ensure_ascii=ascii_only),
    st.text(max_size=12),
    st.booleans(),
)
space = st.sampled_from(["", " ", "  ", "\t"])
scalar = st.sampled_from(["null", "true", "false"]) | number | string


def _array(items: list[str], gap: str) -> str:
    return "[" + gap + ("," + gap).join(items) + "]"


def _object(members: list[tuple[str, str]], gap: str) -> str:
    inside = ("," + gap).join(f"{json.dumps(key)}:{gap}{value}" for key, value in members)
    return "{" + gap + inside + "}"


json_text = st.recursive(
    scalar,
    lambda inner: (
        st.builds(_array, st.lists(inner, max_size=4), space)
        | st.builds(_object, st.lists(st.tuples(st.text(max_size=6), inner), max_size=4), space)
    ),
    max_leaves=10,
)
unknown_name = st.text(min_size=1, max_size=10).filter(
    lambda name: name not in KNOWN_FIELDS and field_for(name) is None
)
drift = st.dictionaries(unknown_name, json_text, max_size=4)


def base(index: int) -> Message:
    return {
        "id": f"m{index}",
        "chatId": "c",
        "chatThreadId": None,
        "content": f"hello {index}",
        "rawContent": None,
        "externalId": None,
        "role": "user",
        "senderId": None,
        "createdAt": "2024-03-01T10:00:00Z",
        "updatedAt": None,
    }


def with_raw_values(
    encode: Callable[[list[Message]], bytes], records: list[dict[str, str]]
) -> bytes:
    """`encode` of the messages, each with its unknown fields' values spliced in as the
    JSON text given (so numbers keep the spelling chosen for them)."""
    messages: list[Message] = []
    texts: dict[str, str] = {}
    for index, unknown in enumerate(records):
        message = base(index)
        for name, text in unknown.items():
            token = f"@@value-{len(texts)}@@"
            texts[token] = text
            message[name] = token
        messages.append(message)
    data = encode(messages).decode()
    for token, text in texts.items():
        data = data.replace(json.dumps(token), text, 1)
    return data.encode()


def tagged(text: str) -> Any:
    """A JSON text read so that equality means the same numbers spelt the same way, the same
    strings, and objects with the same members in the same order."""
    return json.loads(
        text,
        parse_int=lambda t: ("number", t),
        parse_float=lambda t: ("number", t),
        object_pairs_hook=lambda pairs: ("object", pairs),
    )


def extras(path: Path, batch_rows: int) -> list[dict[str, Any] | None]:
    out: list[dict[str, Any] | None] = []
    for batch in read_batches(path, batch_rows=batch_rows):
        normalized = normalize_batch(batch, LINEAGE)
        assert not normalized.rejects
        for text in normalized.batch.column("extra").to_pylist():
            out.append(None if text is None else dict(tagged(text)[1]))
    return out


def sent(records: list[dict[str, str]]) -> list[dict[str, Any] | None]:
    """What `extra` must hold: every unknown field not sent as null, value as sent."""
    out: list[dict[str, Any] | None] = []
    for unknown in records:
        kept = {name: tagged(text) for name, text in unknown.items() if text != "null"}
        out.append(kept or None)
    return out


@FAST
@given(
    records=st.lists(drift, min_size=1, max_size=8),
    shape=st.sampled_from(JSON_SHAPES),
    wrap=st.sampled_from(WRAPPERS),
    batch_rows=st.integers(1, 5),
)
def test_unknown_json_values_reach_extra_exactly_as_sent_in_every_shape(
    records: list[dict[str, str]],
    shape: Callable[[list[Message]], bytes],
    wrap: Callable[[bytes], bytes],
    batch_rows: int,
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "export"
        path.write_bytes(wrap(with_raw_values(shape, records)))

        assert extras(path, batch_rows) == sent(records)


csv_cell = st.none() | st.text(max_size=12)
# A header label is read trimmed, and a blank one is named by its position.
csv_name = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp")),
    min_size=1,
    max_size=10,
).filter(lambda name: name not in KNOWN_FIELDS and field_for(name) is None)


@FAST
@given(
    cells=st.lists(st.dictionaries(csv_name, csv_cell, max_size=3), min_size=1, max_size=6),
    shape=st.sampled_from(CSV_SHAPES),
)
def test_unknown_csv_columns_reach_extra_as_the_strings_sent(
    cells: list[dict[str, str | None]], shape: Callable[[list[Message]], bytes]
) -> None:
    names = sorted({name for row in cells for name in row})
    encoded = shape([base(index) for index in range(len(cells))]).decode()
    header, *lines = encoded.splitlines(keepends=True)
    newline = header[len(header.rstrip("\r\n")) :]
    delimiter = ";" if ";" in header else "\t" if "\t" in header else ","

    def cell(value: str | None) -> str:
        return "" if value is None else '"' + value.replace('"', '""') + '"'

    header_cells = [header.rstrip("\r\n")] + [cell(name) for name in names]
    rows = [
        line.rstrip("\r\n") + "".join(delimiter + cell(row.get(name)) for name in names)
        for line, row in zip(lines, cells, strict=True)
    ]
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "export.csv"
        path.write_text(delimiter.join(header_cells) + newline + newline.join(rows) + newline)

        expected = [
            {name: value for name, value in row.items() if value is not None} or None
            for row in cells
        ]
        got = [
            None if extra is None else json.loads(extra)
            for batch in read_batches(path)
            for extra in normalize_batch(batch, LINEAGE).batch.column("extra").to_pylist()
        ]
        assert got == expected


@FAST
@given(records=st.lists(drift, min_size=1, max_size=8))
def test_block_wise_and_per_record_paths_give_the_same_batch(
    records: list[dict[str, str]],
) -> None:
    lines = [line for line in with_raw_values(_ndjson, records).split(b"\n") if line]
    data = b"\n".join(lines)

    fast = json_block_batch(data, len(lines), 0)
    exact = _python_batch(lines, 0)

    assert _rows(fast) == _rows(exact)


def _ndjson(messages: list[Message]) -> bytes:
    return b"".join(json.dumps(m, ensure_ascii=False).encode() + b"\n" for m in messages)


def _rows(batch: pa.RecordBatch) -> list[dict[str, Any]]:
    return [
        {key: value for key, value in row.items() if value is not None} for row in batch.to_pylist()
    ]


def test_big_integers_and_number_spellings_are_kept_as_written(tmp_path: Path) -> None:
    path = tmp_path / "export.ndjson"
    line = json.dumps(base(0))[:-1] + ', "n": [1.50, 1E+2, -0, 123456789012345678901234567890]}'
    path.write_text(line + "\n")

    assert extras(path, 10)[0] == {"n": tagged("[1.50,1E+2,-0,123456789012345678901234567890]")}
    (batch,) = read_batches(path)
    assert batch.column("n").to_pylist() == ["[1.50,1E+2,-0,123456789012345678901234567890]"]


@FAST
@given(texts=st.lists(st.none() | st.text(max_size=20), max_size=10))
def test_json_strings_encode_as_the_json_module_does(texts: list[str | None]) -> None:
    encoded = json_strings(pa.array(texts, pa.string())).to_pylist()

    assert encoded == [None if t is None else json.dumps(t, ensure_ascii=False) for t in texts]


@FAST
@given(texts=st.lists(json_text, max_size=10))
def test_compact_keeps_values_and_drops_only_whitespace(texts: list[str]) -> None:
    compacted = compact(pa.array(texts, pa.string())).to_pylist()

    assert compacted == [compact_text(text) for text in texts]
    for text, tight in zip(texts, compacted, strict=True):
        assert tagged(tight) == tagged(text)
        assert len(tight) <= len(text)
