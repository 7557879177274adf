"""Small decoded batches shaped like the decoders' output: the API's camelCase field names."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa

from storage.layout import Window

DAY = datetime(2024, 3, 1, tzinfo=UTC)
WINDOW = Window(DAY, DAY + timedelta(days=1))
INGESTED = datetime(2024, 3, 2, 3, 0, tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def message(number: int, created: datetime, **overrides: Any) -> dict[str, Any]:
    """One message as the API shows it; ids are stable per number."""
    record: dict[str, Any] = {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"message-{number}")),
        "chatId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"chat-{number % 3}")),
        "chatThreadId": None if number % 2 else str(uuid.uuid5(uuid.NAMESPACE_URL, "thread")),
        "content": f"message {number}: " + "lorem ipsum " * (number % 7),
        "rawContent": None if number % 3 else f"raw {number}",
        "externalId": None,
        "role": ["user", "assistant", "agent"][number % 3],
        "senderId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"sender-{number % 5}")),
        "createdAt": iso(created),
        "updatedAt": iso(created + timedelta(minutes=5)),
    }
    record.update(overrides)
    return record


def batch(records: list[dict[str, Any]]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist(records)


def day_of_messages(
    count: int, start: datetime = DAY, step: timedelta | None = None
) -> list[dict[str, Any]]:
    step = step or timedelta(days=1) / max(count, 1)
    return [message(n, start + step * n) for n in range(count)]


def batches_of(records: list[dict[str, Any]], size: int) -> list[pa.RecordBatch]:
    return [batch(records[i : i + size]) for i in range(0, len(records), size)]
