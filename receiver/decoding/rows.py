"""Arrow record batches in the decoders' one layout, from JSON lines or CSV batches.

Every batch carries the ten API fields first, as strings in a fixed order (null when absent),
then one column per unknown field. Unknown fields are kept losslessly as JSON text: each value
is the field's JSON encoding (a CSV cell becomes a JSON string), null when the field is absent.
Their Arrow fields carry the metadata `{"encoding": "json"}`, and `extra_column` turns them into
the archive's `extra` column. Keeping them as text, not as pyarrow's guessed types, means a
field that is a number in one row and an object in the next, or a date-like string pyarrow
would turn into a timestamp, arrives exactly as sent.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

import pyarrow as pa
import pyarrow.json as pa_json

from receiver.decoding.errors import DecodeError
from receiver.decoding.labels import field_for
from storage.schema import API_FIELDS

KNOWN_FIELDS: tuple[str, ...] = tuple(API_FIELDS)
_KNOWN = frozenset(KNOWN_FIELDS)
JSON_TEXT_METADATA = {b"encoding": b"json"}
_KNOWN_SCHEMA = pa.schema([pa.field(name, pa.string()) for name in KNOWN_FIELDS])
_PARSE = pa_json.ParseOptions(explicit_schema=_KNOWN_SCHEMA, unexpected_field_behavior="infer")
_PARSE_KNOWN_ONLY = pa_json.ParseOptions(
    explicit_schema=_KNOWN_SCHEMA, unexpected_field_behavior="error"
)
_SURROGATES = re.compile("[\ud800-\udfff]")
_LEADING_SPACE = re.compile(rb"[ \t\r\n]*")
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
# Schema drift adds a field or two; thousands mean the records are not messages, and would cost
# a column each.
MAX_UNKNOWN_FIELDS = 256


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


def _read_known(data: bytes, parse_options: pa_json.ParseOptions = _PARSE) -> pa.Table | None:
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


def json_block_batch(data: bytes, rows: int, first_record: int) -> pa.RecordBatch:
    """One batch from `rows` (at least one) JSON objects, one per line: pyarrow's parser when
    they hold only known fields as strings (the usual case), an exact per-line path otherwise."""
    table = _read_known(data)
    if table is not None and table.num_rows == rows and table.num_columns == len(_KNOWN):
        return _known_batch(table, rows)
    lines = data.split(b"\n")
    if len(lines) != rows:
        raise AssertionError(f"a block of {rows} records has {len(lines)} lines")
    return _python_batch(lines, first_record)


def json_lines_batch(data: bytes, rows: int) -> pa.RecordBatch | None:
    """The batch of `rows` lines that hold one JSON object each, with known fields only (as
    strings or null) and an `id`; None for anything else, which the exact scanner then frames.

    pyarrow's parser crashes on some input the scanner never hands it: values nested
    thousands deep (it stops at the first unknown field or non-string known one here, before
    descending) and a block that starts with `null` (not parsed at all).
    """
    start = _LEADING_SPACE.match(data).end()  # type: ignore[union-attr]
    if data[start : start + 1] != b"{":
        return None
    table = _read_known(data, _PARSE_KNOWN_ONLY)
    if table is None or table.num_rows != rows or table.num_columns != len(_KNOWN):
        return None
    batch = _known_batch(table, rows)
    if batch.column(0).null_count:
        return None  # pyarrow reads a `null` line as a row of nulls, as it does `{}`
    return batch


def _python_batch(lines: list[bytes], first_record: int) -> pa.RecordBatch:
    known: dict[str, list[str | None]] = {name: [] for name in KNOWN_FIELDS}
    unknown: dict[str, dict[int, str]] = {}  # field -> row -> JSON text (sparse)
    for index, line in enumerate(lines):
        try:
            record = json.loads(line)
        except UnicodeDecodeError:
            raise DecodeError(f"record {first_record + index} is not valid UTF-8") from None
        except ValueError as error:
            raise DecodeError(
                f"record {first_record + index} is not valid JSON: {error.args[0]}"
            ) from None
        if not isinstance(record, dict):
            raise DecodeError(f"record {first_record + index} is not a JSON object")
        seen: set[str] = set()
        for key, value in record.items():
            field: str | None = key
            if key not in _KNOWN:
                # A differently spelled known field (`chat_id`) counts as it, unless the API's
                # own spelling is present too.
                field = field_for(key)
                if field is not None and (field in record or field in seen):
                    field = None
            if field is not None:
                seen.add(field)
                known[field].append(_known_value(value))
            else:
                if key not in unknown:
                    _check_unknown_count(len(unknown) + 1)
                    unknown[key] = {}
                unknown[key][index] = _clean(_ENCODER.encode(value))
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


def _check_unknown_count(count: int) -> None:
    if count > MAX_UNKNOWN_FIELDS:
        raise DecodeError(
            f"more than {MAX_UNKNOWN_FIELDS} fields the API does not have; this does not look "
            "like a chat message export"
        )


def csv_batch(batch: pa.RecordBatch) -> pa.RecordBatch:
    """A CSV batch (all columns strings, named by `labels.map_header`) in the common layout."""
    known = {name: batch.column(name) for name in batch.schema.names if name in _KNOWN}
    _check_unknown_count(batch.num_columns - len(known))
    unknown = {
        name: pa.array(
            [None if cell is None else _ENCODER.encode(cell) for cell in column.to_pylist()],
            pa.string(),
        )
        for name, column in zip(batch.schema.names, batch.columns, strict=True)
        if name not in _KNOWN
    }
    return _batch(known, unknown, batch.num_rows)


def extra_column(batch: pa.RecordBatch) -> pa.Array:
    """The archive's `extra` column for a decoded batch: a JSON object per row of its unknown
    fields (null when the row has none)."""
    names = [field.name for field in batch.schema if is_unknown(field)]
    if not names:
        return pa.nulls(batch.num_rows, pa.string())
    keys = [_ENCODER.encode(name) for name in names]
    columns: Iterable[tuple[Any, ...]] = zip(
        *(batch.column(name).to_pylist() for name in names), strict=True
    )
    extra = []
    for values in columns:
        parts = [
            f"{key}:{text}" for key, text in zip(keys, values, strict=True) if text is not None
        ]
        extra.append("{" + ",".join(parts) + "}" if parts else None)
    return pa.array(extra, pa.string())
