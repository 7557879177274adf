-- Spark SQL: a Parquet table over the layout; `date` is discovered from the paths.
CREATE TABLE IF NOT EXISTS chat_messages (
  `id` STRING,
  `chat_id` STRING,
  `chat_thread_id` STRING,
  `content` STRING,
  `raw_content` STRING,
  `external_id` STRING,
  `role` STRING,
  `sender_id` STRING,
  `created_at` TIMESTAMP,
  `updated_at` TIMESTAMP,
  `extra` STRING,
  `_export_id` STRING,
  `_window_start` TIMESTAMP,
  `_window_end` TIMESTAMP,
  `_ingested_at` TIMESTAMP,
  `date` STRING
)
USING PARQUET
PARTITIONED BY (`date`)
LOCATION 's3a://bucket/prefix/chat_messages/';

MSCK REPAIR TABLE chat_messages;

-- One row per message id: the newest updated_at, then the newest _ingested_at.
CREATE OR REPLACE VIEW chat_messages_latest AS
SELECT `id`, `chat_id`, `chat_thread_id`, `content`, `raw_content`, `external_id`, `role`, `sender_id`, `created_at`, `updated_at`, `extra`, `_export_id`, `_window_start`, `_window_end`, `_ingested_at`, `date`
FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY id ORDER BY updated_at DESC NULLS LAST, _ingested_at DESC) AS _version_rank FROM chat_messages)
WHERE _version_rank = 1;
