"""Properties: any messages round-trip through every shape and wrapper; any bytes at all give
rows or a DecodeError, never another exception."""

from __future__ import annotations

import contextlib
import gzip
import tempfile
from collections.abc import Callable
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from receiver.decoding import DecodeError, UnrecognisedPayload, classify, read_batches
from receiver.decoding.rows import KNOWN_FIELDS
from tests.receiver.decoding.shapes import (
    CSV_SHAPES,
    JSON_SHAPES,
    WRAPPERS,
    Message,
    decoded,
    expected,
    zipped,
)

# Every character but surrogates (which UTF-8 cannot carry): newlines, quotes, commas,
# semicolons, tabs, NUL, U+2028 and emoji included.
text = st.text(max_size=60)
tricky = st.text(alphabet=st.sampled_from(list('\n\r\t",;|{}[]\\ \x00\u2028😀aé')), max_size=20)
identifier = st.uuids().map(str) | st.text(min_size=1, max_size=20)
timestamp = st.datetimes(timezones=st.just(None)).map(lambda d: d.isoformat() + "Z") | text


def nullable(strategy: st.SearchStrategy[str]) -> st.SearchStrategy[str | None]:
    return st.none() | strategy


messages = st.lists(
    st.fixed_dictionaries(
        {
            "id": identifier,
            "chatId": identifier,
            "chatThreadId": nullable(identifier),
            "content": text | tricky,
            "rawContent": nullable(text | tricky),
            "externalId": nullable(text),
            "role": st.sampled_from(["user", "assistant", "agent", "system"]) | text,
            "senderId": nullable(identifier),
            "createdAt": timestamp,
            "updatedAt": nullable(timestamp),
        }
    ),
    max_size=12,
)

FAST = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)


def drop_nulls(batch: list[Message]) -> list[Message]:
    return [{key: value for key, value in m.items() if value is not None} for m in batch]


@FAST
@given(
    batch=messages,
    shape=st.sampled_from(JSON_SHAPES + CSV_SHAPES),
    wrap=st.sampled_from(WRAPPERS),
    omit_nulls=st.booleans(),
    batch_rows=st.integers(1, 5),
)
def test_any_messages_decode_to_the_same_rows_in_every_shape(
    batch: list[Message],
    shape: Callable[[list[Message]], bytes],
    wrap: Callable[[bytes], bytes],
    omit_nulls: bool,
    batch_rows: int,
) -> None:
    source = drop_nulls(batch) if omit_nulls and shape in JSON_SHAPES else batch
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "export"
        path.write_bytes(wrap(shape(source)))

        assert decoded(path, batch_rows=batch_rows) == expected(batch)


PREFIXES = [
    b"",
    b"[",
    b"{",
    b'{"data":[',
    b'[{"id":"a"},',
    b'{"id":"a"}\n',
    b"\xef\xbb\xbf",
    b"ID,Chat ID,Content\n",
    b"id;chatId\n",
    b"\x1f\x8b",
    b"PK\x03\x04",
    gzip.compress(b'[{"id":'),
    zipped(b'{"id":"a"}\n')[:40],
]


def check_only_decode_errors(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "body"
        path.write_bytes(data)
        with contextlib.suppress(DecodeError):
            for batch in read_batches(path, batch_rows=3):
                assert batch.schema.names[: len(KNOWN_FIELDS)] == list(KNOWN_FIELDS)
        with contextlib.suppress(UnrecognisedPayload):
            classify({}, path)


@FAST
@given(prefix=st.sampled_from(PREFIXES), tail=st.binary(max_size=400))
def test_arbitrary_bytes_raise_nothing_but_decode_errors(prefix: bytes, tail: bytes) -> None:
    check_only_decode_errors(prefix + tail)


@FAST
@given(
    batch=messages,
    shape=st.sampled_from(JSON_SHAPES + CSV_SHAPES),
    wrap=st.sampled_from(WRAPPERS),
    cuts=st.lists(st.tuples(st.floats(0, 1), st.binary(max_size=3)), min_size=1, max_size=3),
)
def test_damaged_files_raise_nothing_but_decode_errors(
    batch: list[Message],
    shape: Callable[[list[Message]], bytes],
    wrap: Callable[[bytes], bytes],
    cuts: list[tuple[float, bytes]],
) -> None:
    data = wrap(shape(batch))
    for where, replacement in cuts:
        at = int(where * len(data))
        data = data[:at] + replacement + data[at + 1 :]
    check_only_decode_errors(data)
