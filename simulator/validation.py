"""Request validation of the upstream API, as its documentation states it.

Pure functions: JSON values and query pairs in, typed requests or an ApiError out.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from simulator.config import LANGUAGES
from simulator.corpus import ROLES
from simulator.errors import bad_request, period_too_long, unauthorized

MAX_PERIOD = timedelta(days=183)
JOINS = ("chat-message-follow-ups", "senders")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)


@dataclass(frozen=True)
class ExportRequest:
    start: datetime
    end: datetime
    callback_url: str
    language: str


@dataclass(frozen=True)
class ListQuery:
    chat_id: str
    chat_thread_id: str | None
    joins: tuple[str, ...]
    limit: int
    ticket_ids: tuple[str, ...]


def is_uuid(value: Any) -> bool:
    return isinstance(value, str) and _UUID.match(value) is not None


def parse_datetime(value: Any, field: str) -> datetime:
    """An ISO-8601 date-time with a time zone (`Z` or an offset); a bare date is refused."""
    message = f"{field} must be an ISO-8601 date-time with a time zone, like 2024-01-31T00:00:00Z."
    if not isinstance(value, str) or len(value) < 16 or value[10] not in "Tt ":
        raise bad_request(message)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise bad_request(message) from None
    if moment.tzinfo is None:
        raise bad_request(message)
    return moment


def parse_export_request(body: Any, *, now: datetime, allow_insecure: bool) -> ExportRequest:
    """Validates an export request body; a missing or null rangeEnd means `now`."""
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    if body.get("rangeStart") is None:
        raise bad_request("rangeStart is required.")
    start = parse_datetime(body["rangeStart"], "rangeStart")
    raw_end = body.get("rangeEnd")
    end = now if raw_end is None else parse_datetime(raw_end, "rangeEnd")
    if end < start:
        raise bad_request("rangeEnd must not be before rangeStart.")
    if end - start > MAX_PERIOD:
        raise period_too_long()
    callback_url = body.get("callbackUrl")
    if callback_url is None:
        raise bad_request("callbackUrl is required.")
    _check_callback_url(callback_url, allow_insecure)
    language = body.get("language", "enUs")
    if language not in LANGUAGES:
        raise bad_request(f"language must be one of {', '.join(LANGUAGES)}.")
    return ExportRequest(start, end, callback_url, language)


def _check_callback_url(value: Any, allow_insecure: bool) -> None:
    schemes = ("https", "http") if allow_insecure else ("https",)
    rule = "an HTTP or HTTPS URL" if allow_insecure else "an HTTPS URL"
    if not isinstance(value, str) or any(char.isspace() for char in value):
        raise bad_request(f"callbackUrl must be {rule}.")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise bad_request(f"callbackUrl must be {rule}.") from None
    if parts.scheme not in schemes or not parts.hostname:
        raise bad_request(f"callbackUrl must be {rule}.")


def parse_new_message(body: Any) -> dict[str, Any]:
    """Validates a create-message body; every field is required, some may be null."""
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    for field in ("chatId", "chatThreadId", "content", "externalId", "senderId", "role"):
        if field not in body:
            raise bad_request(f"{field} is required.")
    if not is_uuid(body["chatId"]):
        raise bad_request("chatId must be a UUID.")
    if body["chatThreadId"] is not None and not is_uuid(body["chatThreadId"]):
        raise bad_request("chatThreadId must be a UUID or null.")
    content = body["content"]
    if not isinstance(content, str) or len(content) > 4000:
        raise bad_request("content must be a string of at most 4000 characters.")
    external = body["externalId"]
    if external is not None and (not isinstance(external, str) or not 3 <= len(external) <= 250):
        raise bad_request("externalId must be null or a string of 3 to 250 characters.")
    if not is_uuid(body["senderId"]):
        raise bad_request("senderId must be a UUID.")
    if body["role"] not in ROLES:
        raise bad_request(f"role must be one of {', '.join(ROLES)}.")
    return {field: body[field] for field in ("chatId", "chatThreadId", "content", "externalId")} | {
        "senderId": body["senderId"],
        "role": body["role"],
    }


def parse_list_query(pairs: Sequence[tuple[str, str]]) -> ListQuery:
    """Validates the query of GET /chat-messages; list parameters may repeat or use `name[]`."""
    values: dict[str, list[str]] = {}
    for key, value in pairs:
        values.setdefault(key.removesuffix("[]"), []).append(value)
    chat_ids = values.get("chatId", [])
    if len(chat_ids) != 1 or not is_uuid(chat_ids[0]):
        raise bad_request("chatId is required and must be a UUID.")
    threads = values.get("chatThreadId", [])
    if len(threads) > 1 or (threads and not is_uuid(threads[0])):
        raise bad_request("chatThreadId must be a UUID.")
    joins = tuple(_split(values.get("joins", [])))
    if any(join not in JOINS for join in joins):
        raise bad_request(f"joins must be among {', '.join(JOINS)}.")
    ticket_ids = tuple(_split(values.get("ticketIds", [])))
    if not all(is_uuid(ticket) for ticket in ticket_ids):
        raise bad_request("ticketIds must be UUIDs.")
    limits = values.get("pagination[limit]", ["250"])
    if (
        len(limits) != 1
        or not (limits[0].isascii() and limits[0].isdigit())
        or not 1 <= int(limits[0]) <= 1000
    ):
        raise bad_request("pagination[limit] must be a whole number from 1 to 1000.")
    return ListQuery(
        chat_ids[0], threads[0] if threads else None, joins, int(limits[0]), ticket_ids
    )


def _split(values: list[str]) -> list[str]:
    return [item for value in values for item in value.split(",") if item]


def require_key(header: str | None, api_key: str) -> None:
    """The raw key in `authorization`, compared in constant time."""
    if header is None or not hmac.compare_digest(header.encode(), api_key.encode()):
        raise unauthorized()
