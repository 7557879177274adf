"""classify: what a stored callback body is (a link, a failure notice, or the data itself)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from receiver.decoding.errors import DecodeError, UnrecognisedPayload
from receiver.decoding.formats import SNIFF_BYTES, Json, describe, sniff
from receiver.decoding.jsonvalue import value_end
from receiver.decoding.notices import (
    FailureNotice,
    InlineFile,
    LinkNotice,
    find_notice,
    holds_messages,
)
from receiver.decoding.rows import KNOWN_FIELDS

# Notices are small; a body larger than this is only ever sniffed, never parsed whole here.
NOTICE_MAX_BYTES = 1024 * 1024
_WHITESPACE = b" \t\r\n"


def classify(
    headers: Mapping[str, str], body_path: Path
) -> LinkNotice | FailureNotice | InlineFile:
    """Decides what the callback body at `body_path` is, from its content alone.

    In order: a failure notice (a JSON object whose `status` is failed/error, or that has
    `error` and neither data nor a link); a link notice (`url`, `fileUrl`, `downloadUrl`,
    `link`, `file.url` or `data.url` holding an http(s) URL); the data itself, when it sniffs
    as a supported file format. `headers` are the callback's; content is never judged by them.
    Raises UnrecognisedPayload otherwise. Reads at most NOTICE_MAX_BYTES of the body.
    """
    size = body_path.stat().st_size
    with body_path.open("rb") as body:
        head = body.read(NOTICE_MAX_BYTES)
    text = head.removeprefix(b"\xef\xbb\xbf").strip(_WHITESPACE)
    if not text:
        raise UnrecognisedPayload("the callback body is empty")
    single = _single_object(text) if size <= NOTICE_MAX_BYTES else None
    if single is not None and (notice := find_notice(single)) is not None:
        return notice
    found = sniff(head[:SNIFF_BYTES], whole=size <= SNIFF_BYTES)
    if found is None:
        raise UnrecognisedPayload(describe(head[:SNIFF_BYTES]))
    if isinstance(found, Json) and single is not None and not _is_data(single):
        keys = ", ".join(list(single)[:12]) or "none"
        raise UnrecognisedPayload(
            f"a JSON object that is neither a notice nor messages (its keys: {keys})"
        )
    return InlineFile(body_path)


def _single_object(text: bytes) -> dict[str, Any] | None:
    """`text` parsed, when it is exactly one JSON object of modest depth; else None."""
    if not text.startswith(b"{"):
        return None
    try:
        end = value_end(text, 0, final=True)
    except DecodeError:
        return None
    if end != len(text):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _is_data(value: dict[str, Any]) -> bool:
    """One message, or an object holding the messages array."""
    return holds_messages(value) or any(field in value for field in KNOWN_FIELDS)
