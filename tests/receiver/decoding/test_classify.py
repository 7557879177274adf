"""classify: link notices, failure notices, inline files and unrecognised bodies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from receiver.decoding import (
    FailureNotice,
    InlineFile,
    LinkNotice,
    UnrecognisedPayload,
    classify,
)
from tests.receiver.decoding.shapes import SHAPES, Message, gzipped, zipped

URL = "https://files.example.com/exports/abc.ndjson.gz?X-Amz-Signature=s"
JSON_HEADERS = {"content-type": "application/json"}
MESSAGE: Message = {
    "id": "m1",
    "chatId": "c1",
    "content": "hi",
    "createdAt": "2024-01-01T00:00:00Z",
}


def body(tmp_path: Path, content: bytes | dict[str, Any]) -> Path:
    path = tmp_path / "callback.body"
    path.write_bytes(content if isinstance(content, bytes) else json.dumps(content).encode())
    return path


@pytest.mark.parametrize(
    "notice",
    [
        {"url": URL},
        {"fileUrl": URL, "status": "completed"},
        {"downloadUrl": URL, "expiresAt": "2024-01-01T00:00:00Z"},
        {"link": URL},
        {"file": {"url": URL, "size": 10, "format": "ndjson"}},
        {"data": {"url": URL}},
        {"data": {"downloadUrl": URL}},
        {"status": "done", "error": None, "url": URL},
        {"url": "  " + URL + "\n"},
    ],
)
def test_link_notices_in_every_spelling(tmp_path: Path, notice: dict[str, Any]) -> None:
    assert classify(JSON_HEADERS, body(tmp_path, notice)) == LinkNotice(URL)


def test_a_plain_http_link_is_still_a_link_the_download_policy_judges(tmp_path: Path) -> None:
    notice = {"url": "http://127.0.0.1:9000/file"}

    assert classify({}, body(tmp_path, notice)) == LinkNotice("http://127.0.0.1:9000/file")


@pytest.mark.parametrize(
    ("notice", "reason"),
    [
        ({"status": "failed", "error": "Export timed out"}, "Export timed out"),
        ({"status": "ERROR"}, "status 'ERROR'"),
        ({"status": "failed", "url": URL, "message": "partial"}, "partial"),
        ({"error": {"code": "EXPORT_FAILED", "message": "Too many rows"}}, "Too many rows"),
        ({"error": "quota exceeded"}, "quota exceeded"),
        ({"success": False, "reason": "internal"}, "internal"),
        (
            {"code": "x", "message": "The export failed.", "name": "ExportError", "error": True},
            "The export failed.",
        ),
    ],
)
def test_failure_notices_come_first_and_carry_the_platforms_reason(
    tmp_path: Path, notice: dict[str, Any], reason: str
) -> None:
    assert classify(JSON_HEADERS, body(tmp_path, notice)) == FailureNotice(reason)


def test_an_error_beside_data_is_not_a_failure(tmp_path: Path) -> None:
    path = body(tmp_path, {"error": "2 messages skipped", "data": [MESSAGE]})

    assert classify(JSON_HEADERS, path) == InlineFile(path)


def test_a_message_with_link_like_fields_is_data(tmp_path: Path) -> None:
    path = body(tmp_path, dict(MESSAGE, link="https://example.com", status="error"))

    assert classify(JSON_HEADERS, path) == InlineFile(path)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: s.__name__)
def test_inline_data_files_are_inline_files(tmp_path: Path, shape: Any) -> None:
    path = body(tmp_path, shape([MESSAGE, dict(MESSAGE, id="m2")]))

    assert classify({"content-type": "text/plain"}, path) == InlineFile(path)


@pytest.mark.parametrize("wrap", [gzipped, zipped])
def test_archives_are_inline_files_whatever_the_headers_say(tmp_path: Path, wrap: Any) -> None:
    path = body(tmp_path, wrap(b"[]"))

    assert classify(JSON_HEADERS, path) == InlineFile(path)


def test_a_large_body_is_sniffed_not_parsed_whole(tmp_path: Path) -> None:
    line = json.dumps(dict(MESSAGE, content="x" * 1000)).encode() + b"\n"
    path = body(tmp_path, line * 1500)

    assert classify({}, path) == InlineFile(path)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty"),
        (b" \r\n", "empty"),
        (b'{"message": "Export started."}', "its keys: message"),
        (b'{"status": "ok", "url": "ftp://files.example.com/x"}', "its keys: status, url"),
        (b'{"url": "not a url"}', "its keys: url"),
        (b"<html><body>Bad gateway</body></html>", "looks like HTML"),
        (b"hello world\n", "starts with b'hello world"),
        (b"\xff\xfe{\x00", "not a supported format"),
    ],
)
def test_anything_else_is_unrecognised_with_a_reason(
    tmp_path: Path, content: bytes, reason: str
) -> None:
    with pytest.raises(UnrecognisedPayload, match=reason):
        classify(JSON_HEADERS, body(tmp_path, content))


def test_a_deeply_nested_small_body_does_not_recurse(tmp_path: Path) -> None:
    path = body(tmp_path, b'{"url": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")

    assert classify(JSON_HEADERS, path) == InlineFile(path)
