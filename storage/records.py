"""Turns decoded record batches (the API's field names, whatever types a reader inferred) into
batches of MESSAGE_SCHEMA, plus the rows that cannot be made to fit.

Pure: no I/O, one batch at a time, so memory stays bounded by the batch.

Choices worth knowing:
- Timestamps are ISO-8601 with any UTC offset or `Z`; one without an offset (or an already
  typed timestamp without a time zone, as pyarrow's JSON reader produces) is taken as UTC.
- `content` longer than the API's documented 100000 characters is kept whole: the archive
  never truncates, so nothing is lost and nothing needs recording.
- Fields the schema does not know go into `extra` as one JSON object per row, keys sorted,
  null values left out, each value's JSON text exactly as the decoder kept it (see
  `extra_json`); `extra` is null when a row has none. An `updatedAt` that does not
  parse becomes null and its original text is kept in `extra` under `updatedAt`.
- A row with no `id`, no `chatId`, or a missing or unparseable `createdAt` is rejected with
  the reason and the original record; it never reaches Parquet.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from storage.jsontext import json_objects, json_strings
from storage.layout import Window
from storage.schema import API_FIELDS, MESSAGE_SCHEMA, UTC_MICROS

ROLE_TYPE = pa.dictionary(pa.int32(), pa.string())
_STRING_COLUMNS = (
    "id",
    "chat_id",
    "chat_thread_id",
    "content",
    "raw_content",
    "external_id",
    "sender_id",
)


@dataclass(frozen=True)
class Lineage:
    """Where a batch came from; stamped on every row."""

    export_id: str
    window: Window
    ingested_at: datetime


@dataclass(frozen=True)
class Reject:
    reason: str
    record: dict[str, Any]

    def to_json(self) -> str:
        return dumps({"reason": self.reason, "record": self.record})


@dataclass(frozen=True)
class Normalized:
    batch: pa.RecordBatch
    """Rows that fit, in MESSAGE_SCHEMA, in their original order."""
    rejects: list[Reject]


def normalize_batch(batch: pa.RecordBatch, lineage: Lineage) -> Normalized:
    """Maps one decoded batch onto MESSAGE_SCHEMA and separates the rows that cannot fit."""
    rows = batch.num_rows
    known: dict[str, pa.Array] = {}
    unknown: dict[str, pa.Array] = {}
    for name, values in zip(batch.schema.names, batch.columns, strict=True):
        target = API_FIELDS.get(name)
        if target is not None and target not in known:
            known[target] = values
        else:
            unknown[name] = values

    def column(name: str) -> pa.Array:
        found = known.get(name)
        return pa.nulls(rows) if found is None else found

    strings = {name: as_string(column(name)) for name in _STRING_COLUMNS}
    created_at, created_bad = as_timestamp(column("created_at"))
    updated_at, updated_bad = as_timestamp(column("updated_at"))
    if pc.any(updated_bad).as_py():
        unknown["updatedAt"] = pc.if_else(updated_bad, as_string(column("updated_at")), None)

    missing_id = _blank(strings["id"])
    missing_chat = _blank(strings["chat_id"])
    missing_created = pc.and_(pc.is_null(created_at), pc.invert(created_bad))
    rejected = pc.or_(pc.or_(missing_id, missing_chat), pc.or_(missing_created, created_bad))
    rejects = _rejects(batch, rejected, missing_id, missing_chat, missing_created, created_bad)

    window = lineage.window
    arrays = {
        **strings,
        "role": pc.dictionary_encode(as_string(column("role"))).cast(ROLE_TYPE),
        "created_at": created_at,
        "updated_at": updated_at,
        "extra": extra_json(unknown, rows, json_text=_json_text_fields(batch.schema)),
        "_export_id": pa.repeat(pa.scalar(lineage.export_id, pa.string()), rows),
        "_window_start": pa.repeat(pa.scalar(window.start, UTC_MICROS), rows),
        "_window_end": pa.repeat(pa.scalar(window.end, UTC_MICROS), rows),
        "_ingested_at": pa.repeat(pa.scalar(lineage.ingested_at, UTC_MICROS), rows),
    }
    out = pa.RecordBatch.from_arrays(
        [arrays[name] for name in MESSAGE_SCHEMA.names], schema=MESSAGE_SCHEMA
    )
    if rejects:
        out = out.filter(pc.invert(rejected))
    return Normalized(out, rejects)


def reject_lines(batch: pa.RecordBatch, reason: str) -> pa.Array:
    """MESSAGE_SCHEMA rows as lines of the rejects file, `{"reason":...,"record":{...}}` and a
    line break each: the record in the API's field names (timestamps as ISO text, nulls as
    null, `extra` fields merged in). Built column-wise, so a window whose export is all
    outside it costs what the rows cost to write, not a Python object per value."""
    names = {column: field for field, column in API_FIELDS.items()}
    known = []
    for column in batch.schema.names:
        if column not in names:
            continue
        values = batch.column(column)
        if pa.types.is_dictionary(values.type):
            values = values.cast(pa.string())
        if pa.types.is_timestamp(values.type):
            text = json_strings(_iso_z(values))
        elif pa.types.is_string(values.type):
            text = json_strings(values)
        else:
            text = values.cast(pa.string())
        known.append((names[column], pc.fill_null(text, "null")))
    record = json_objects(known, batch.num_rows)
    if "extra" in batch.schema.names:
        extra = batch.column("extra")
        # `extra` is a compact JSON object of the fields the API does not have: its members
        # go in front of the known ones, as one object.
        merged = pc.binary_join_element_wise(
            pc.utf8_slice_codeunits(extra, 0, -1), ",", pc.utf8_slice_codeunits(record, 1), ""
        )
        empty = pc.fill_null(pc.less_equal(pc.utf8_length(extra), 2), True)
        record = pc.if_else(empty, record, merged)
    head = '{"reason":' + json.dumps(reason, ensure_ascii=False) + ',"record":'
    return pc.binary_join_element_wise(head, record, "}\n", "")


def _iso_z(moments: pa.Array) -> pa.Array:
    """`storage.instants.iso_z` column-wise: microseconds only when there are any."""
    text = pc.strftime(moments.cast(UTC_MICROS), format="%Y-%m-%dT%H:%M:%S", locale="C")
    text = pc.replace_substring_regex(text, r"\.000000$", "")
    return pc.binary_join_element_wise(text, "Z", "")


def as_string(array: pa.Array) -> pa.Array:
    """Any column as strings: text as is, scalars in their usual text form, nested as JSON."""
    array = _plain(array)
    kind = array.type
    if pa.types.is_string(kind):
        return array
    if pa.types.is_null(kind):
        return pa.nulls(len(array), pa.string())
    if pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        return array.cast(pa.string())
    simple = (
        pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_boolean(kind)
        or pa.types.is_decimal(kind)
        or pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
    )
    if simple:
        try:
            return array.cast(pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass  # not UTF-8: the per-value path below encodes it
    return pa.array([_text(value) for value in array.to_pylist()], pa.string())


# What Python's datetime (and so every reader of the archive) can hold, in UTC.
_EARLIEST = pa.scalar(datetime(1, 1, 1, tzinfo=UTC), UTC_MICROS)
_LATEST = pa.scalar(datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), UTC_MICROS)


def as_timestamp(array: pa.Array) -> tuple[pa.Array, pa.Array]:
    """The column as timestamp[us, UTC], and a mask of values present but not date-times
    (unparseable, or outside years 1 to 9999 once in UTC, such as a `0000-01-01` sentinel)."""
    stamps, bad = _as_timestamp(array)
    outside = pc.fill_null(pc.or_(pc.less(stamps, _EARLIEST), pc.greater(stamps, _LATEST)), False)
    if not pc.any(outside).as_py():
        return stamps, bad
    return pc.if_else(outside, pa.scalar(None, UTC_MICROS), stamps), pc.or_(bad, outside)


def _as_timestamp(array: pa.Array) -> tuple[pa.Array, pa.Array]:
    array = _plain(array)
    kind = array.type
    none_bad = pa.repeat(pa.scalar(False), len(array))
    if pa.types.is_null(kind):
        return pa.nulls(len(array), UTC_MICROS), none_bad
    if pa.types.is_timestamp(kind):
        if kind.tz is None:
            array = array.cast(pa.timestamp(kind.unit, tz="UTC"))
        return array.cast(UTC_MICROS, safe=False), none_bad
    if pa.types.is_date(kind):
        return array.cast(pa.timestamp("us")).cast(UTC_MICROS), none_bad
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        return pa.nulls(len(array), UTC_MICROS), pc.is_valid(array)
    try:
        # The usual case in one pass: the cast refuses surrounding space and empty strings,
        # so when it succeeds, trimming and blanking would have changed nothing.
        return array.cast(UTC_MICROS), none_bad
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    text = pc.utf8_trim_whitespace(array.cast(pa.string()))
    text = pc.if_else(pc.equal(text, ""), None, text)
    for target in (UTC_MICROS, pa.timestamp("us")):
        try:
            return text.cast(target).cast(UTC_MICROS), none_bad
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue  # some values need the per-value parser, or are not date-times
    parsed = [_parse_datetime(value) for value in text.to_pylist()]
    stamps = pa.array(parsed, UTC_MICROS)
    return stamps, pc.and_(pc.is_null(stamps), pc.is_valid(text))


def _json_text_fields(schema: pa.Schema) -> frozenset[str]:
    """Columns whose values decoders kept as JSON text (field metadata `encoding: json`), so
    that a date-like string or a field whose type varies between rows arrives unchanged."""
    return frozenset(
        field.name
        for field in schema
        if field.metadata and field.metadata.get(b"encoding") == b"json"
    )


def extra_json(
    columns: dict[str, pa.Array], rows: int, json_text: frozenset[str] = frozenset()
) -> pa.Array:
    """One JSON object per row of the non-null values in `columns`, keys sorted; null when
    none. Columns in `json_text` hold each value's JSON text as sent (a JSON `null` among them
    is left out like a missing value); strings are encoded as JSON strings; other types (a
    reader's inferred structs or numbers) go through `dumps`. Built column-wise."""
    texts = []
    for name in sorted(columns):
        array = _plain(columns[name])
        if array.null_count == rows:
            continue
        if name in json_text:
            text = array.cast(pa.string())
            sent_null = pc.equal(text, "null")
            if pc.any(sent_null).as_py():
                text = pc.if_else(sent_null, pa.scalar(None, pa.string()), text)
        elif pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
            text = json_strings(array)
        else:
            text = pa.array(
                [None if value is None else dumps(value) for value in array.to_pylist()],
                pa.string(),
            )
        texts.append((name, text))
    return json_objects(texts, rows)


def dumps(value: Any) -> str:
    """Compact, key-sorted JSON that accepts whatever pyarrow's to_pylist returns."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_json_default
    )


def _rejects(
    batch: pa.RecordBatch,
    rejected: pa.Array,
    missing_id: pa.Array,
    missing_chat: pa.Array,
    missing_created: pa.Array,
    created_bad: pa.Array,
) -> list[Reject]:
    indices = pc.indices_nonzero(rejected)
    if len(indices) == 0:
        return []
    records = batch.take(indices).to_pylist()
    out = []
    for index, record in zip(indices.to_pylist(), records, strict=True):
        reasons = []
        if missing_id[index].as_py():
            reasons.append("missing id")
        if missing_chat[index].as_py():
            reasons.append("missing chatId")
        if missing_created[index].as_py():
            reasons.append("missing createdAt")
        if created_bad[index].as_py():
            shown = _text(record.get("createdAt"))
            reasons.append(f"createdAt is not an ISO-8601 date-time: {shown!r}")
            if pc.is_valid(batch.column("createdAt")[index]).as_py() and _parses(shown):
                reasons[-1] += " (outside years 1 to 9999 in UTC)"
        out.append(Reject("; ".join(reasons), record))
    return out


def _parses(text: str | None) -> bool:
    """Whether `text` is ISO-8601 at all (so a rejection must be for its range)."""
    if text is None:
        return False
    try:
        datetime.fromisoformat(text.strip())
    except ValueError:
        return False
    return True


def _blank(strings: pa.Array) -> pa.Array:
    return pc.fill_null(pc.equal(strings, ""), True)


def _plain(array: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    return array


def _parse_datetime(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        return None  # not a date-time, or one that falls outside years 1..9999 in UTC


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict | list | tuple):
        return dumps(value)
    if isinstance(value, bytes):
        return _bytes_text(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return str(value)


def _bytes_text(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(value).decode("ascii")


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes):
        return _bytes_text(value)
    if isinstance(value, Decimal | timedelta):
        return str(value)
    return str(value)
