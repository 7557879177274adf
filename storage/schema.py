"""The archive's record schema: one row per chat message."""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = 1
STREAM = "chat_messages"

UTC_MICROS = pa.timestamp("us", tz="UTC")

MESSAGE_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("chat_id", pa.string(), nullable=False),
        pa.field("chat_thread_id", pa.string()),
        pa.field("content", pa.string()),
        pa.field("raw_content", pa.string()),
        pa.field("external_id", pa.string()),
        pa.field("role", pa.dictionary(pa.int32(), pa.string())),
        pa.field("sender_id", pa.string()),
        pa.field("created_at", UTC_MICROS, nullable=False),
        pa.field("updated_at", UTC_MICROS),
        pa.field("extra", pa.string()),
        pa.field("_export_id", pa.string()),
        pa.field("_window_start", UTC_MICROS),
        pa.field("_window_end", UTC_MICROS),
        pa.field("_ingested_at", UTC_MICROS),
    ]
)

# The upstream API's field names and the columns they land in. Decoders emit batches whose
# column names are the API's names; anything not listed here is kept in `extra`.
API_FIELDS: dict[str, str] = {
    "id": "id",
    "chatId": "chat_id",
    "chatThreadId": "chat_thread_id",
    "content": "content",
    "rawContent": "raw_content",
    "externalId": "external_id",
    "role": "role",
    "senderId": "sender_id",
    "createdAt": "created_at",
    "updatedAt": "updated_at",
}

LINEAGE_COLUMNS = ("_export_id", "_window_start", "_window_end", "_ingested_at")
