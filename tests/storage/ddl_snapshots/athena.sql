-- Athena: partition projection finds new dates without MSCK REPAIR TABLE.
-- Quote the partition column in queries: WHERE "date" = '2024-01-31'.
CREATE EXTERNAL TABLE IF NOT EXISTS chat_messages (
  `id` string,
  `chat_id` string,
  `chat_thread_id` string,
  `content` string,
  `raw_content` string,
  `external_id` string,
  `role` string,
  `sender_id` string,
  `created_at` timestamp,
  `updated_at` timestamp,
  `extra` string,
  `_export_id` string,
  `_window_start` timestamp,
  `_window_end` timestamp,
  `_ingested_at` timestamp
)
PARTITIONED BY (`date` string)
STORED AS PARQUET
LOCATION 's3://bucket/prefix/chat_messages/'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.date.type' = 'date',
  'projection.date.format' = 'yyyy-MM-dd',
  'projection.date.range' = '2000-01-01,NOW',
  'projection.date.interval' = '1',
  'projection.date.interval.unit' = 'DAYS',
  'storage.location.template' = 's3://bucket/prefix/chat_messages/date=${date}/'
);

-- One row per message id: the newest updated_at, then the newest _ingested_at.
CREATE OR REPLACE VIEW chat_messages_latest AS
SELECT "id", "chat_id", "chat_thread_id", "content", "raw_content", "external_id", "role", "sender_id", "created_at", "updated_at", "extra", "_export_id", "_window_start", "_window_end", "_ingested_at", "date"
FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY id ORDER BY updated_at DESC NULLS LAST, _ingested_at DESC) AS _version_rank FROM chat_messages)
WHERE _version_rank = 1;
