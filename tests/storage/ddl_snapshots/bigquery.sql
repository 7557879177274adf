-- BigQuery: external tables read Parquet from Cloud Storage (gs://). The location is kept as
-- given: for an s3:// archive add WITH CONNECTION `region.connection` (BigQuery Omni) before
-- OPTIONS, or copy the archive to a gs:// bucket and change both URIs.
-- Qualify the table with its dataset: dataset.table.
CREATE EXTERNAL TABLE IF NOT EXISTS chat_messages (
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
  `_ingested_at` TIMESTAMP
)
WITH PARTITION COLUMNS (
  `date` DATE
)
OPTIONS (
  format = 'PARQUET',
  uris = ['s3://bucket/prefix/chat_messages/*'],
  hive_partition_uri_prefix = 's3://bucket/prefix/chat_messages',
  require_hive_partition_filter = false
);

-- One row per message id: the newest updated_at, then the newest _ingested_at.
CREATE OR REPLACE VIEW chat_messages_latest AS
SELECT * FROM chat_messages
WHERE TRUE
QUALIFY ROW_NUMBER() OVER (PARTITION BY id ORDER BY updated_at DESC NULLS LAST, _ingested_at DESC) = 1;
