"""Notices a callback may carry instead of data: a link to the export file, or a failure.

Pure logic over one parsed JSON object; `classify` decides when a body is small enough to parse.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from receiver.decoding.jsonscan import WRAPPER_KEYS

LINK_KEYS = ("url", "fileUrl", "downloadUrl", "link")
LINK_HOLDERS = ("file", "data")
FAILED_STATUSES = frozenset({"failed", "failure", "error", "errored", "cancelled", "canceled"})
_REASON_KEYS = ("error", "message", "reason", "detail", "description")
_MAX_REASON = 500


@dataclass(frozen=True)
class LinkNotice:
    """The export is a file to download from `url`."""

    url: str


@dataclass(frozen=True)
class FailureNotice:
    """The platform says the export failed; `reason` is its own words."""

    reason: str


@dataclass(frozen=True)
class InlineFile:
    """The callback body is itself the data file."""

    path: Path


def http_url(value: Any) -> str | None:
    """`value` as an absolute http(s) URL with a host, or None."""
    if not isinstance(value, str):
        return None
    url = value.strip()
    if any(char.isspace() or ord(char) < 32 for char in url):
        return None
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 (raises on a malformed port)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not host:
        return None
    return url


def find_link(notice: dict[str, Any]) -> str | None:
    """The download link of a notice: `url`, `fileUrl`, `downloadUrl` or `link`, at the top
    or inside `file` or `data`."""
    for key in LINK_KEYS:
        if (url := http_url(notice.get(key))) is not None:
            return url
    for holder in LINK_HOLDERS:
        inner = notice.get(holder)
        if (url := http_url(inner)) is not None:
            return url
        if isinstance(inner, dict):
            for key in LINK_KEYS:
                if (url := http_url(inner.get(key))) is not None:
                    return url
    return None


def looks_like_message(value: dict[str, Any]) -> bool:
    """A chat message itself (an inline export of one), not a notice about one."""
    return "chatId" in value or ("id" in value and ("content" in value or "role" in value))


def holds_messages(value: dict[str, Any]) -> bool:
    return any(isinstance(value.get(key), list) for key in WRAPPER_KEYS)


def find_notice(notice: dict[str, Any]) -> LinkNotice | FailureNotice | None:
    """A failure notice (first), a link notice, or None when `notice` is neither."""
    if looks_like_message(notice):
        return None
    link = find_link(notice)
    status = notice.get("status")
    if isinstance(status, str) and status.strip().lower() in FAILED_STATUSES:
        return FailureNotice(_reason(notice, f"status {status.strip()!r}"))
    if link is None and not holds_messages(notice):
        if notice.get("error") not in (None, False, "", [], {}):
            return FailureNotice(_reason(notice, "error"))
        if notice.get("success") is False:
            return FailureNotice(_reason(notice, "success is false"))
    return None if link is None else LinkNotice(link)


def _reason(notice: dict[str, Any], fallback: str) -> str:
    """The platform's explanation, from the usual fields, in one line."""
    parts = []
    for key in _REASON_KEYS:
        value = notice.get(key)
        if isinstance(value, dict):
            value = value.get("message") or value.get("code") or value.get("name")
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
            parts.append(str(value).strip())
    text = " ".join(dict.fromkeys(parts)) or fallback
    text = " ".join(text.split())
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 1] + "…"
