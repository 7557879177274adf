"""Encoders for every file shape and wrapper the decoders accept, for the tests."""

from __future__ import annotations

import gzip
import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa

from receiver.decoding import read_batches
from receiver.decoding.labels import LABELS
from receiver.decoding.rows import KNOWN_FIELDS

Message = dict[str, Any]


def expected(messages: list[Message]) -> list[dict[str, str | None]]:
    """The rows a decoder should give for `messages`: the ten fields, None when absent."""
    return [{field: message.get(field) for field in KNOWN_FIELDS} for message in messages]


def decoded(path: Path, batch_rows: int = 65536) -> list[dict[str, Any]]:
    batches = list(read_batches(path, batch_rows=batch_rows))
    for batch in batches:
        assert batch.schema.names[: len(KNOWN_FIELDS)] == list(KNOWN_FIELDS)
        for field in KNOWN_FIELDS:
            assert batch.schema.field(field).type == pa.string()
    return [row for batch in batches for row in batch.to_pylist()]


def json_array(messages: list[Message]) -> bytes:
    return json.dumps(messages).encode()


def json_array_pretty(messages: list[Message]) -> bytes:
    return json.dumps(messages, indent=2, ensure_ascii=False).encode()


def json_array_lines(messages: list[Message]) -> bytes:
    """One element per line, as streaming writers produce it."""
    lines = ",\n".join(json.dumps(m, ensure_ascii=False, separators=(",", ":")) for m in messages)
    return f"[\n{lines}\n]".encode()


def wrapped(key: str) -> Callable[[list[Message]], bytes]:
    def encode(messages: list[Message]) -> bytes:
        document = {"status": "completed", "count": len(messages), key: messages, "next": None}
        return json.dumps(document, ensure_ascii=False).encode()

    encode.__name__ = f"wrapped_{key}"
    return encode


def wrapped_lines(messages: list[Message]) -> bytes:
    """The array one element per line inside a wrapper, with members after it."""
    lines = ",\n".join(json.dumps(m, ensure_ascii=False) for m in messages)
    return f'{{"status": "completed", "data": [\n{lines}\n], "next": null}}'.encode()


def ndjson(messages: list[Message]) -> bytes:
    return b"".join(json.dumps(m, ensure_ascii=False).encode() + b"\n" for m in messages)


def ndjson_crlf_blank_lines(messages: list[Message]) -> bytes:
    return b"\xef\xbb\xbf\r\n" + b"\r\n\r\n".join(json.dumps(m).encode() for m in messages)


def concatenated_pretty(messages: list[Message]) -> bytes:
    return "\n".join(json.dumps(m, indent=4, ensure_ascii=False) for m in messages).encode()


def _csv_cell(value: str | None) -> str:
    return "" if value is None else '"' + value.replace('"', '""') + '"'


def csv_with(
    language: str | None, delimiter: str = ",", newline: str = "\n"
) -> Callable[[list[Message]], bytes]:
    """CSV with the API's names (language None) or a language's labels; strings quoted, so
    an empty string stays one and an absent value is an empty cell."""

    def encode(messages: list[Message]) -> bytes:
        header = [
            field if language is None else LABELS[field][language][0] for field in KNOWN_FIELDS
        ]
        lines = [delimiter.join(header)]
        for message in messages:
            lines.append(delimiter.join(_csv_cell(message.get(f)) for f in KNOWN_FIELDS))
        return (newline.join(lines) + newline).encode()

    encode.__name__ = f"csv_{language or 'api'}"
    return encode


JSON_SHAPES: list[Callable[[list[Message]], bytes]] = [
    json_array,
    json_array_pretty,
    json_array_lines,
    *(wrapped(key) for key in ("data", "messages", "chatMessages", "items", "records")),
    wrapped_lines,
    ndjson,
    ndjson_crlf_blank_lines,
    concatenated_pretty,
]
CSV_SHAPES: list[Callable[[list[Message]], bytes]] = [
    csv_with(None),
    csv_with("enUs", newline="\r\n"),
    csv_with("esEs", delimiter=";"),
    csv_with("ptBr", delimiter="\t"),
]
SHAPES = JSON_SHAPES + CSV_SHAPES


def plain(data: bytes) -> bytes:
    return data


def gzipped(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=1)


def zipped(data: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("export/chat-messages.data", data)
    return out.getvalue()


def gzip_in_zip(data: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("chat-messages.gz", gzipped(data))
    return out.getvalue()


def zip_in_gzip(data: bytes) -> bytes:
    return gzipped(zipped(data))


WRAPPERS: list[Callable[[bytes], bytes]] = [plain, gzipped, zipped, gzip_in_zip, zip_in_gzip]


def zip_of_parts(parts: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in parts.items():
            archive.writestr(name, data)
    return out.getvalue()
