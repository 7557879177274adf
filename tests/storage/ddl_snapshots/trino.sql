-- Trino, Hive connector. Timestamps are declared timestamp(3), the connector's default
-- precision; with hive.timestamp-precision=MICROSECONDS use timestamp(6) to read them whole.
CREATE TABLE IF NOT EXISTS chat_messages (
  "id" varchar,
  "chat_id" varchar,
  "chat_thread_id" varchar,
  "content" varchar,
  "raw_content" varchar,
  "external_id" varchar,
  "role" varchar,
  "sender_id" varchar,
  "created_at" timestamp(3),
  "updated_at" timestamp(3),
  "extra" varchar,
  "_export_id" varchar,
  "_window_start" timestamp(3),
  "_window_end" timestamp(3),
  "_ingested_at" timestamp(3),
  "date" varchar
)
WITH (
  external_location = 's3://bucket/prefix/chat_messages/',
  format = 'PARQUET',
  partitioned_by = ARRAY['date']
);

CALL system.sync_partition_metadata('default', 'chat_messages', 'FULL');

-- One row per message id: the newest updated_at, then the newest _ingested_at.
CREATE OR REPLACE VIEW chat_messages_latest AS
SELECT "id", "chat_id", "chat_thread_id", "content", "raw_content", "external_id", "role", "sender_id", "created_at", "updated_at", "extra", "_export_id", "_window_start", "_window_end", "_ingested_at", "date"
FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY id ORDER BY updated_at DESC NULLS LAST, _ingested_at DESC) AS _version_rank FROM chat_messages)
WHERE _version_rank = 1;
