"""Arrow record batches in the decoders' one layout, from JSON lines or CSV batches.

Every batch carries the ten API fields first, as strings in a fixed order (null when absent),
then one column per unknown field. Unknown fields are kept losslessly as JSON text: each value
is the field's JSON text exactly as sent, without whitespace between its tokens (a CSV cell
becomes a JSON string), null when the field is absent.
Their Arrow fields carry the metadata `{"encoding": "json"}`, and `extra_column` turns them into
the archive's `extra` column. Keeping them as text, not as pyarrow's guessed types, means a
field that is a number in one row and an object in the next, or a date-like string pyarrow
would turn into a timestamp, arrives exactly as sent.

Blocks with unknown fields take `drift` (column-wise); what it cannot take exactly goes through
`_python_batch`, one record at a time, which keeps each value's text the same way.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pyarrow as pa
import pyarrow.json as pa_json

from receiver.decoding.drift import (
    MAX_UNKNOWN_FIELDS,
    Drift,
    check_unknown_count,
    drift_batch,
)
from receiver.decoding.errors import DecodeError
from receiver.decoding.jsonvalue import MAX_DEPTH, value_end
from receiver.decoding.labels import field_for
from storage.jsontext import compact_text, json_objects, json_strings
from storage.schema import API_FIELDS

__all__ = ["MAX_UNKNOWN_FIELDS", "Drift", "csv_batch", "extra_column", "json_block_batch"]

KNOWN_FIELDS: tuple[str, ...] = tuple(API_FIELDS)
_KNOWN = frozenset(KNOWN_FIELDS)
JSON_TEXT_METADATA = {b"encoding": b"json"}
_KNOWN_SCHEMA = pa.schema([pa.field(name, pa.string()) for name in KNOWN_FIELDS])
_PARSE_KNOWN_ONLY = pa_json.ParseOptions(
    explicit_schema=_KNOWN_SCHEMA, unexpected_field_behavior="error"
)
_SURROGATES = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_LEADING_SPACE = re.compile(rb"[ \t\r\n]*")
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def is_unknown(field: pa.Field) -> bool:
    """True for a column holding an unknown field (as JSON text)."""
    return field.name not in _KNOWN


def _clean(text: str) -> str:
    # json.loads accepts escaped lone surrogates (JavaScript emits them for a split emoji);
    # they cannot be UTF-8, so each becomes U+FFFD.
    return _SURROGATES.sub("\ufffd", text) if _SURROGATES.search(text) else text


def _known_value(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return _clean(value)
    return _clean(_ENCODER.encode(value))


def _batch(known: dict[str, pa.Array], unknown: dict[str, pa.Array], rows: int) -> pa.RecordBatch:
    fields = [pa.field(name, pa.string()) for name in KNOWN_FIELDS]
    arrays = [known.get(name, pa.nulls(rows, pa.string())) for name in KNOWN_FIELDS]
    for name, array in unknown.items():
        fields.append(pa.field(name, pa.string(), metadata=JSON_TEXT_METADATA))
        arrays.append(array)
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))


def _read_known(data: bytes, parse_options: pa_json.ParseOptions) -> pa.Table | None:
    """pyarrow's reading of JSON objects with known fields as strings; None if it refuses."""
    try:
        return pa_json.read_json(
            pa.BufferReader(data),
            read_options=pa_json.ReadOptions(use_threads=False, block_size=len(data) + 1),
            parse_options=parse_options,
        )
    except pa.ArrowInvalid:
        return None


def _known_batch(table: pa.Table, rows: int) -> pa.RecordBatch:
    table = table.combine_chunks()
    return _batch({name: table.column(name).chunk(0) for name in KNOWN_FIELDS}, {}, rows)


def json_block_batch(
    data: bytes, rows: int, first_record: int, drift: Drift | None = None
) -> pa.RecordBatch:
    """One batch from `rows` (at least one) JSON objects, one per line: pyarrow's parser when
    they hold only known fields as strings (the usual case), `drift` when they hold unknown
    fields too, an exact per-line path otherwise."""
    table = _read_known(data, _PARSE_KNOWN_ONLY)
    if table is not None and table.num_rows == rows and table.num_columns == len(_KNOWN):
        return _known_batch(table, rows)
    drifted = drift_batch(data, rows, drift if drift is not None else Drift())
    if drifted is not None:
        return _drifted_batch(*drifted, rows)
    lines = data.split(b"\n")
    if len(lines) != rows:
        raise AssertionError(f"a block of {rows} records has {len(lines)} lines")
    return _python_batch(lines, first_record)


def json_lines_batch(data: bytes, rows: int, drift: Drift | None = None) -> pa.RecordBatch | None:
    """The batch of `rows` lines that hold one JSON object each, with known fields as strings
    or null (and unknown fields, through `drift`); None for anything else, which the exact
    scanner then frames.

    pyarrow's parser crashes on some input the scanner never hands it: values nested
    thousands deep (it stops at the first unknown field or non-string known one here, before
    descending; `drift` hands it nothing msgspec has not read first) and a block that starts
    with `null` (not parsed at all).
    """
    start = _LEADING_SPACE.match(data).end()  # type: ignore[union-attr]
    if data[start : start + 1] != b"{":
        return None
    table = _read_known(data, _PARSE_KNOWN_ONLY)
    if table is None or table.num_rows != rows or table.num_columns != len(_KNOWN):
        drifted = drift_batch(data, rows, drift if drift is not None else Drift())
        return None if drifted is None else _drifted_batch(*drifted, rows)
    batch = _known_batch(table, rows)
    if batch.column(0).null_count:
        return None  # pyarrow reads a `null` line as a row of nulls, as it does `{}`
    return batch


def _drifted_batch(known: pa.Table, unknown: dict[str, pa.Array], rows: int) -> pa.RecordBatch:
    known = known.combine_chunks()
    columns = {name: known.column(name).chunk(0) for name in KNOWN_FIELDS}
    return _batch(columns, unknown, rows)


def _python_batch(lines: list[bytes], first_record: int) -> pa.RecordBatch:
    known: dict[str, list[str | None]] = {name: [] for name in KNOWN_FIELDS}
    unknown: dict[str, dict[int, str]] = {}  # field -> row -> JSON text (sparse)
    for index, line in enumerate(lines):
        try:
            record = json.loads(line)
        except RecursionError:
            raise DecodeError(f"JSON nested deeper than {MAX_DEPTH} levels") from None
        except UnicodeDecodeError:
            raise DecodeError(f"record {first_record + index} is not valid UTF-8") from None
        except ValueError as error:
            raise DecodeError(
                f"record {first_record + index} is not valid JSON: {error.args[0]}"
            ) from None
        if not isinstance(record, dict):
            raise DecodeError(f"record {first_record + index} is not a JSON object")
        texts: dict[str, bytes] | None = None
        seen: set[str] = set()
        for key, value in record.items():
            field: str | None = key
            if key not in _KNOWN:
                # A differently spelled known field (`chat_id`) counts as it, unless the API's
                # own spelling is present too.
                field = field_for(key)
                if field is not None and (field in record or field in seen):
                    field = None
            if isinstance(value, dict | list) and texts is None:
                texts = _member_texts(line)  # checks how deep it is nested
            if field is not None:
                seen.add(field)
                known[field].append(_known_value(value))
            else:
                if key not in unknown:
                    check_unknown_count(len(unknown) + 1)
                    unknown[key] = {}
                if texts is None:
                    texts = _member_texts(line)
                unknown[key][index] = _value_text(texts[key], value)
        for name in KNOWN_FIELDS:
            if name not in seen:
                known[name].append(None)
    rows = len(lines)
    return _batch(
        {name: pa.array(values, pa.string()) for name, values in known.items()},
        {
            _clean(name): pa.array([cells.get(row) for row in range(rows)], pa.string())
            for name, cells in unknown.items()
        },
        rows,
    )


def _member_texts(line: bytes) -> dict[str, bytes]:
    """The text of each top-level member's value of a JSON object already known to be valid
    (the last one for a repeated key, as json.loads keeps)."""
    texts: dict[str, bytes] = {}
    pos = _LEADING_SPACE.match(line).end() + 1  # type: ignore[union-attr]
    while True:
        pos = _LEADING_SPACE.match(line, pos).end()  # type: ignore[union-attr]
        if line[pos : pos + 1] in (b"}", b""):
            return texts
        end = value_end(line, pos, True)
        key = json.loads(line[pos:end])
        pos = _LEADING_SPACE.match(line, end).end() + 1  # type: ignore[union-attr]  # the colon
        pos = _LEADING_SPACE.match(line, pos).end()  # type: ignore[union-attr]
        end = value_end(line, pos, True, max_depth=MAX_DEPTH - 1)
        texts[key] = line[pos:end]
        pos = _LEADING_SPACE.match(line, end).end() + 1  # type: ignore[union-attr]  # , or }


def _value_text(text: bytes, value: Any) -> str:
    """A value's JSON text as sent, compacted; re-encoded only to replace lone surrogates."""
    if _SURROGATE_ESCAPE.search(text):
        encoded = _ENCODER.encode(value)
        if _SURROGATES.search(encoded):
            return _clean(encoded)
    return compact_text(text.decode("utf-8"))


def csv_batch(batch: pa.RecordBatch) -> pa.RecordBatch:
    """A CSV batch (all columns strings, named by `labels.map_header`) in the common layout."""
    known = {name: batch.column(name) for name in batch.schema.names if name in _KNOWN}
    check_unknown_count(batch.num_columns - len(known))
    unknown = {
        name: json_strings(column)
        for name, column in zip(batch.schema.names, batch.columns, strict=True)
        if name not in _KNOWN
    }
    return _batch(known, unknown, batch.num_rows)


def extra_column(batch: pa.RecordBatch) -> pa.Array:
    """The unknown fields of a decoded batch as one JSON object per row, in the batch's order,
    a value sent as null included (null when the row has none). The archive's `extra` column
    is built by `storage.records` (keys sorted, nulls left out)."""
    columns = [
        (field.name, batch.column(field.name)) for field in batch.schema if is_unknown(field)
    ]
    return json_objects(columns, batch.num_rows)
