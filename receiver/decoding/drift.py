"""Records with fields the API does not have (schema drift), decoded block-wise, not per record.

pyarrow reads the known fields (as strings); msgspec, in the same block, keeps the text of
each unknown field's value exactly as sent (`msgspec.Raw`: numbers as written, big integers,
nested objects with their key order), and its encoder writes those texts out one per line,
which Arrow splits into a column. Neither step runs Python code once per record or value.

Unknown field names are learnt from the columns pyarrow infers (or from msgspec's refusal of a
field it was not told about) and kept for the rest of the file, so a drifting export is read
once by each per block. A block this path cannot take exactly — a known field that is not a
string, a differently spelled known field (`chat_id`), a lone surrogate escape, invalid JSON,
values nested deeper than the scanner allows — goes to the exact per-record path, which gives
the same rows and the same `extra` text (see `rows`).
"""

from __future__ import annotations

import re
from operator import attrgetter

import msgspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from receiver.decoding.errors import DecodeError
from receiver.decoding.jsonvalue import MAX_DEPTH, value_end
from receiver.decoding.labels import field_for
from storage.jsontext import compact
from storage.schema import API_FIELDS

KNOWN_FIELDS: tuple[str, ...] = tuple(API_FIELDS)
_KNOWN_SCHEMA = pa.schema([pa.field(name, pa.string()) for name in KNOWN_FIELDS])
_PARSE_SKIPPING_UNKNOWN = pa_json.ParseOptions(
    explicit_schema=_KNOWN_SCHEMA, unexpected_field_behavior="ignore"
)
_PARSE_INFERRING = pa_json.ParseOptions(
    explicit_schema=_KNOWN_SCHEMA, unexpected_field_behavior="infer"
)
_UNKNOWN_FIELD = re.compile(r"Object contains unknown field `(.*)` - at `\$\[\d+\]`", re.DOTALL)
_UNNAMEABLE = re.compile('[\\\\"\x00-\x1f]')  # what msgspec cannot take as a field's name
_ABSENT = msgspec.Raw(b"")  # no JSON value is empty, so an empty line means "not sent"
_ENCODER = msgspec.json.Encoder()
# Brackets a value needs before it can be nested deeper than the scanner allows (the record
# itself is one level).
_DEEP_BRACKETS = MAX_DEPTH - 1
# Schema drift adds a field or two; thousands mean the records are not messages, and would
# cost a column each.
MAX_UNKNOWN_FIELDS = 256


def check_unknown_count(count: int) -> None:
    if count > MAX_UNKNOWN_FIELDS:
        raise DecodeError(
            f"more than {MAX_UNKNOWN_FIELDS} fields the API does not have; this does not look "
            "like a chat message export"
        )


class Drift:
    """The unknown fields one file has shown so far, in the order they were first seen.

    Not shared between threads: a block parsed on another thread gets a `snapshot`, and what
    it learnt is merged back by the thread that hands the blocks on (see `parsers`)."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.refusals = 0  # blocks `drift_batch` left to the exact path
        self._decoders: dict[bool, msgspec.json.Decoder[object]] = {}

    def snapshot(self) -> Drift:
        """A copy to parse with elsewhere (the decoders are shared: they keep no state)."""
        copy = Drift()
        copy.names = list(self.names)
        copy._decoders = dict(self._decoders)
        return copy

    def adopt(self, other: Drift) -> None:
        """Takes on what `other`, a snapshot of this one as it still is, learnt."""
        self.names = other.names
        self._decoders = other._decoders

    def decoder(self, strict: bool) -> msgspec.json.Decoder[object]:
        """A decoder of the unknown fields' raw values; `strict` also refuses a field neither
        known nor learnt (naming it), at the cost of declaring the known ones."""
        if strict not in self._decoders:
            fields = [
                (f"u{index}", msgspec.Raw, msgspec.field(default=_ABSENT, name=name))
                for index, name in enumerate(self.names)
            ]
            if strict:
                fields += [
                    (f"k{index}", msgspec.Raw, msgspec.field(default=_ABSENT, name=name))
                    for index, name in enumerate(KNOWN_FIELDS)
                ]
            record = msgspec.defstruct("Record", fields, forbid_unknown_fields=strict)
            self._decoders[strict] = msgspec.json.Decoder(record)
        return self._decoders[strict]

    def learn(self, name: str) -> bool:
        """Adds an unknown field; False if this path cannot take it."""
        if name in self.names or field_for(name) is not None or _UNNAMEABLE.search(name):
            return False
        check_unknown_count(len(self.names) + 1)
        self.names.append(name)
        self._decoders.clear()
        return True


def drift_batch(
    data: bytes, rows: int, drift: Drift
) -> tuple[pa.Table, dict[str, pa.Array]] | None:
    """See `_drift_batch`; a refusal is counted in `drift`."""
    drifted = _drift_batch(data, rows, drift)
    if drifted is None:
        drift.refusals += 1
    return drifted


def _drift_batch(
    data: bytes, rows: int, drift: Drift
) -> tuple[pa.Table, dict[str, pa.Array]] | None:
    """The known columns (pyarrow's table) and the unknown fields' JSON texts of `rows` JSON
    objects, one per line; None when the exact path must decide.

    msgspec reads the block first (it validates it and bounds its depth, which pyarrow's
    parser must not meet unbounded), then pyarrow, whose inferred columns name every field
    present; a field not learnt yet has msgspec read the block again. Where pyarrow cannot
    infer a type (a field that is a number in one row and a string in another), msgspec
    learns the names by refusing them, one at a time.
    """
    records = _decoded(data, drift.decoder(strict=False))
    if records is None or len(records) != rows:
        return None
    table = _read(data, _PARSE_INFERRING)
    if table is None:
        return _discovering(data, rows, drift)
    new = [name for name in table.schema.names[len(KNOWN_FIELDS) :] if name not in drift.names]
    if new:
        if not all(drift.learn(name) for name in new):
            return None
        records = _decoded(data, drift.decoder(strict=False))
        if records is None:
            return None
    return _columns(table.select(list(KNOWN_FIELDS)), records, rows, drift)


def _discovering(
    data: bytes, rows: int, drift: Drift
) -> tuple[pa.Table, dict[str, pa.Array]] | None:
    while True:
        try:
            records = drift.decoder(strict=True).decode_lines(data)
            break
        except RecursionError:
            return None  # nested too deep for msgspec: the exact path says where
        except msgspec.DecodeError as error:
            found = _UNKNOWN_FIELD.fullmatch(str(error))
            if found is None or not drift.learn(found.group(1)):
                return None
    table = _read(data, _PARSE_SKIPPING_UNKNOWN)
    if table is None or len(records) != rows:
        return None  # a known field that is not a string
    return _columns(table, records, rows, drift)


def _decoded(data: bytes, decoder: msgspec.json.Decoder[object]) -> list[object] | None:
    try:
        return decoder.decode_lines(data)
    except (msgspec.DecodeError, RecursionError):
        return None


def _read(data: bytes, options: pa_json.ParseOptions) -> pa.Table | None:
    try:
        table = pa_json.read_json(
            pa.BufferReader(data),
            read_options=pa_json.ReadOptions(use_threads=False, block_size=len(data) + 1),
            parse_options=options,
        )
    except pa.ArrowInvalid:
        return None
    return table


def _columns(
    known: pa.Table, records: list[object], rows: int, drift: Drift
) -> tuple[pa.Table, dict[str, pa.Array]] | None:
    if known.num_rows != rows:
        return None
    unknown: dict[str, pa.Array] = {}
    for index, name in enumerate(drift.names):
        texts = _texts(list(map(attrgetter(f"u{index}"), records)), rows)
        if texts is None:
            return None
        if texts.null_count < rows:
            unknown[name] = texts
    return known, unknown


def _texts(values: list[msgspec.Raw], rows: int) -> pa.Array | None:
    """The values' JSON texts as a string column (null where absent), compacted; None if one
    is nested deeper than the scanner allows."""
    lines = pa.array([_ENCODER.encode_lines(values)], pa.large_string())
    texts = pc.split_pattern(lines, "\n").flatten().slice(0, rows).cast(pa.string())
    texts = _absent_as_null(texts)
    # Only a text this long can hold that many brackets: the count runs on those alone.
    long = pc.greater_equal(pc.binary_length(texts), _DEEP_BRACKETS)
    if pc.any(long).as_py():
        candidates = pc.filter(texts, long)
        brackets = pc.add(pc.count_substring(candidates, "["), pc.count_substring(candidates, "{"))
        for text in pc.filter(candidates, pc.greater_equal(brackets, _DEEP_BRACKETS)).to_pylist():
            try:
                value_end(text.encode(), 0, True, max_depth=_DEEP_BRACKETS)
            except DecodeError:
                return None
    return compact(texts)


def _absent_as_null(texts: pa.Array) -> pa.Array:
    """The empty texts (absent values: no JSON value is empty) as nulls, without copying the
    texts: the same buffers under a validity bitmap."""
    present = pc.greater(pc.binary_length(texts), 0)
    absent = len(texts) - (pc.sum(present).as_py() or 0)
    if absent == 0:
        return texts
    if texts.null_count or texts.offset or present.offset:
        return pc.if_else(present, texts, pa.scalar(None, pa.string()))
    _, offsets, data = texts.buffers()
    validity = present.buffers()[1]
    return pa.Array.from_buffers(pa.string(), len(texts), [validity, offsets, data], absent)
