"""`verify --source`: archived chats read back from the platform and compared, message by message.

The platform lists a chat's messages oldest first, at most `pagination[limit]` (1000) of them.
Only messages whose `createdAt` lies in a committed window are expected in the archive; when the
platform returns a full page, archived messages newer than its last one are not judged.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pyarrow as pa

from storage.errors import TransientError
from storage.layout import Window
from storage.records import Lineage, normalize_batch

PAGE_LIMIT = 1000
COMPARED = (
    "chat_thread_id",
    "content",
    "raw_content",
    "external_id",
    "role",
    "sender_id",
    "created_at",
    "updated_at",
)
_LINEAGE = Lineage(
    "source",
    Window(datetime(1970, 1, 1, tzinfo=UTC), datetime.max.replace(tzinfo=UTC)),
    datetime.now(UTC),
)


class SourceError(TransientError):
    """The platform could not be asked; the message says why."""


@dataclass(frozen=True)
class Difference:
    kind: str
    """missing (on the platform, not archived), extra (archived, gone from the platform) or
    changed (both, with different values)"""
    chat_id: str
    id: str
    detail: str


def fetch_chat(client: httpx.Client, chat_id: str) -> list[dict[str, Any]]:
    """The chat's messages as the platform lists them; [] for a chat it no longer has."""
    try:
        answer = client.get(
            "/api/v1/chat-messages", params={"chatId": chat_id, "pagination[limit]": PAGE_LIMIT}
        )
    except httpx.HTTPError as error:
        raise SourceError(f"GET /api/v1/chat-messages failed: {type(error).__name__}") from error
    if answer.status_code == 404:
        return []
    if answer.status_code != 200:
        raise SourceError(
            f"GET /api/v1/chat-messages?chatId={chat_id} answered {answer.status_code}"
        )
    body = answer.json()
    return body if isinstance(body, list) else list(body.get("data", []))


def as_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """API records in the archive's columns and types (the same normalisation as archiving)."""
    if not records:
        return []
    return normalize_batch(pa.RecordBatch.from_pylist(records), _LINEAGE).batch.to_pylist()


def _covered(moment: datetime, windows: list[Window]) -> bool:
    return any(window.start <= moment < window.end for window in windows)


def compare_chat(
    chat_id: str,
    archived: Iterable[dict[str, Any]],
    upstream: list[dict[str, Any]],
    committed: list[Window],
) -> Iterator[Difference]:
    source = {row["id"]: row for row in as_rows(upstream)}
    horizon = (
        max(row["created_at"] for row in source.values())
        if len(upstream) >= PAGE_LIMIT and source
        else None
    )
    kept = {row["id"]: row for row in archived}
    for id_, row in sorted(source.items()):
        if id_ not in kept and _covered(row["created_at"], committed):
            yield Difference("missing", chat_id, id_, f"created {row['created_at'].isoformat()}")
    for id_, row in sorted(kept.items()):
        theirs = source.get(id_)
        if theirs is None:
            if horizon is None or row["created_at"] <= horizon:
                yield Difference("extra", chat_id, id_, "archived, not on the platform any more")
            continue
        changed = [name for name in COMPARED if row.get(name) != theirs.get(name)]
        if changed:
            yield Difference("changed", chat_id, id_, "differs in " + ", ".join(changed))
