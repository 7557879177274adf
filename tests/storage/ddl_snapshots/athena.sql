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
