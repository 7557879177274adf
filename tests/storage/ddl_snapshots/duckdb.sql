-- For s3:// first run: INSTALL httpfs; LOAD httpfs;
-- CREATE SECRET (TYPE s3, PROVIDER credential_chain);  -- add ENDPOINT for S3-compatible stores
CREATE OR REPLACE VIEW chat_messages AS
SELECT * FROM read_parquet('s3://bucket/prefix/chat_messages/*/*.parquet', hive_partitioning = true);
