-- For s3:// first run: INSTALL httpfs; LOAD httpfs;
-- CREATE SECRET (TYPE s3, PROVIDER credential_chain);  -- add ENDPOINT for S3-compatible stores
CREATE OR REPLACE VIEW chat_messages AS
SELECT * FROM read_parquet('s3://bucket/prefix/chat_messages/*/*.parquet', hive_partitioning = true);

-- One row per message id: the newest updated_at, then the newest _ingested_at.
CREATE OR REPLACE VIEW chat_messages_latest AS
SELECT * FROM chat_messages
QUALIFY ROW_NUMBER() OVER (PARTITION BY id ORDER BY updated_at DESC NULLS LAST, _ingested_at DESC) = 1;
