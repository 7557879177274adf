-- Snowflake: a stage over the archive and an external table on it; `date` comes from each
-- file's path. Give the stage access (STORAGE_INTEGRATION = ...) before running.
-- Timestamps are UTC, kept as TIMESTAMP_NTZ so no session time zone shifts them.
CREATE STAGE IF NOT EXISTS chat_messages_stage
  URL = 's3://bucket/prefix/chat_messages/'
  FILE_FORMAT = (TYPE = PARQUET);

CREATE EXTERNAL TABLE IF NOT EXISTS chat_messages (
  date DATE AS TO_DATE(SPLIT_PART(SPLIT_PART(METADATA$FILENAME, 'date=', 2), '/', 1)),
  id VARCHAR AS (VALUE:id::VARCHAR),
  chat_id VARCHAR AS (VALUE:chat_id::VARCHAR),
  chat_thread_id VARCHAR AS (VALUE:chat_thread_id::VARCHAR),
  content VARCHAR AS (VALUE:content::VARCHAR),
  raw_content VARCHAR AS (VALUE:raw_content::VARCHAR),
  external_id VARCHAR AS (VALUE:external_id::VARCHAR),
  role VARCHAR AS (VALUE:role::VARCHAR),
  sender_id VARCHAR AS (VALUE:sender_id::VARCHAR),
  created_at TIMESTAMP_NTZ AS (VALUE:created_at::TIMESTAMP_NTZ),
  updated_at TIMESTAMP_NTZ AS (VALUE:updated_at::TIMESTAMP_NTZ),
  extra VARCHAR AS (VALUE:extra::VARCHAR),
  _export_id VARCHAR AS (VALUE:_export_id::VARCHAR),
  _window_start TIMESTAMP_NTZ AS (VALUE:_window_start::TIMESTAMP_NTZ),
  _window_end TIMESTAMP_NTZ AS (VALUE:_window_end::TIMESTAMP_NTZ),
  _ingested_at TIMESTAMP_NTZ AS (VALUE:_ingested_at::TIMESTAMP_NTZ)
)
PARTITION BY (date)
LOCATION = @chat_messages_stage
FILE_FORMAT = (TYPE = PARQUET)
AUTO_REFRESH = FALSE;

ALTER EXTERNAL TABLE chat_messages REFRESH;

-- One row per message id: the newest updated_at, then the newest _ingested_at.
CREATE OR REPLACE VIEW chat_messages_latest AS
SELECT * FROM chat_messages
QUALIFY ROW_NUMBER() OVER (PARTITION BY id ORDER BY updated_at DESC NULLS LAST, _ingested_at DESC) = 1;
